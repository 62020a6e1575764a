/// One entry of the egress allow-list (`--allow-net HOST[:PORT]`, `[network] allow`): a host
/// name, a `*.` pattern matching every subdomain of a name (not the name itself), or an IP
/// literal; a port, or none for 443 and 80. Names compare case-insensitively, without a
/// trailing dot.
///
/// Pure and dependency-free: the profile loader parses with it, the proxy (`cell-proxy`)
/// decides with it, and both are unit-tested against the same code.
public struct EgressRule: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var ports: [UInt16]

    public static let defaultPorts: [UInt16] = [443, 80]

    public init(host: String, ports: [UInt16] = EgressRule.defaultPorts) {
        self.host = host
        self.ports = ports
    }

    /// "pypi.org", "*.pythonhosted.org:443", "192.0.2.7:8080", "[2001:db8::1]:443", or nil
    /// when it is none of these (with why).
    public static func parse(_ text: String) -> Result<EgressRule, EgressError> {
        var hostPart = Substring(text)
        var port: UInt16?
        if text.hasPrefix("[") {
            // An IPv6 literal is bracketed so that its colons are not read as a port.
            guard let close = text.firstIndex(of: "]") else { return .failure(.init("'\(text)': an unclosed '['")) }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let p = UInt16(rest.dropFirst()), p > 0 else { return .failure(.init("'\(text)': a port must be 1-65535")) }
                port = p
            }
            guard IPAddress.parse(String(hostPart))?.isV6 == true else { return .failure(.init("'\(text)': not an IPv6 address in brackets")) }
        } else if let colon = text.lastIndex(of: ":") {
            guard text.firstIndex(of: ":") == colon else {
                return .failure(.init("'\(text)': write an IPv6 address in brackets, as [2001:db8::1]:443"))
            }
            guard let p = UInt16(text[text.index(after: colon)...]), p > 0 else { return .failure(.init("'\(text)': a port must be 1-65535")) }
            hostPart = text[..<colon]
            port = p
        }
        let wildcard = hostPart.hasPrefix("*.")
        guard let host = canonicalHost(String(wildcard ? hostPart.dropFirst(2) : hostPart)) else {
            return .failure(.init("'\(text)': not a host name (ASCII letters, digits, '-', '_' and '.', optionally starting with '*.'; "
                + "an IPv4 address only in dotted decimal), nor an IP address"))
        }
        if wildcard && IPAddress.parse(host) != nil { return .failure(.init("'\(text)': '*.' goes before a name, not an address")) }
        return .success(EgressRule(host: wildcard ? "*." + host : host, ports: port.map { [$0] } ?? defaultPorts))
    }

    /// Whether a connection to `host` (a name as the client gave it, or an IP literal) on
    /// `port` is allowed by this rule. An IP literal matches only the same literal.
    public func allows(host requested: String, port: UInt16) -> Bool {
        guard ports.contains(port), let name = Self.canonicalHost(requested) else { return false }
        if let wanted = IPAddress.parse(host) { return IPAddress.parse(name) == wanted }
        if IPAddress.parse(name) != nil { return false }
        if host.hasPrefix("*.") { return name.hasSuffix(host.dropFirst(1)) && name.count > host.count - 1 }
        return name == host
    }

    public var description: String {
        let shown = host.contains(":") ? "[\(host)]" : host // an IPv6 literal
        return ports == Self.defaultPorts ? shown : ports.map { "\(shown):\($0)" }.joined(separator: ",")
    }

    /// The one form a host is compared, resolved and logged in: an IP literal as its canonical
    /// text; a name in ASCII lower case without a trailing dot. nil for anything else — a NUL, a
    /// non-ASCII character (U+212A KELVIN SIGN lower-cases to "k"), a name the resolver would
    /// read as an address in another form ("2130706433", "0x7f.1": a last label that is a
    /// number), or more than 253 bytes — so that what is checked is exactly what is resolved.
    public static func canonicalHost(_ raw: String) -> String? {
        guard !raw.isEmpty, raw.utf8.count <= 254, raw.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { return nil }
        if let address = IPAddress.parse(raw) { return address.description }
        var name = String(decoding: raw.utf8.map { $0 >= 0x41 && $0 <= 0x5a ? $0 + 0x20 : $0 }, as: UTF8.self)
        if name.hasSuffix(".") { name.removeLast() }
        guard isHostName(name), let last = name.split(separator: ".").last,
              !last.allSatisfy({ $0.isNumber }), !last.hasPrefix("0x") else { return nil }
        return name
    }

    static func isHostName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d || $0 == 0x5f }
        }
    }
}

/// The whole allow-list, and whether names may lead to addresses of this machine or its networks.
public struct EgressPolicy: Equatable, Sendable {
    public var rules: [EgressRule]
    public var allowPrivateAddresses: Bool
    /// The addresses of this machine's own interfaces (the proxy reads them at its start): a
    /// listed name pointed at one of them would reach this machine's services, whatever kind
    /// of address it is. Refused unless private addresses are allowed.
    public var localAddresses: Set<IPAddress> = []

    public init(rules: [EgressRule], allowPrivateAddresses: Bool = false) {
        self.rules = rules
        self.allowPrivateAddresses = allowPrivateAddresses
    }

    /// Why a connection to `host`:`port` is refused before any name is resolved, or nil.
    public func refusal(host: String, port: UInt16) -> String? {
        guard EgressRule.canonicalHost(host) != nil else { return "not a host name nor an IP address" }
        return rules.contains { $0.allows(host: host, port: port) } ? nil
            : IPAddress.parse(host) != nil ? "the address \(host) is not on the allow-list (only listed literals are)"
            : rules.contains { $0.allows(host: host, port: $0.ports[0]) } ? "port \(port) of \(host) is not on the allow-list"
            : "\(host) is not on the allow-list"
    }

    /// Why a resolved address may not be connected to, or nil.
    public func refusal(address: IPAddress) -> String? {
        guard !allowPrivateAddresses else { return nil }
        if let kind = address.nonPublicKind { return "\(address) is a \(kind) address (--allow-private-addresses allows it)" }
        if localAddresses.contains(address) { return "\(address) is an address of this machine (--allow-private-addresses allows it)" }
        return nil
    }
}

public struct EgressError: Error, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

/// An IPv4 or IPv6 address as bytes, parsed without the C library (the profile loader is pure).
public struct IPAddress: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var bytes: [UInt8] // 4 or 16

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    public var isV6: Bool { bytes.count == 16 }

    public static func parse(_ text: String) -> IPAddress? {
        if let v4 = parseV4(Substring(text)) { return IPAddress(bytes: v4) }
        return parseV6(text).flatMap { IPAddress(bytes: $0) }
    }

    static func parseV4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt8(p),
                  p.count == 1 || !p.hasPrefix("0") else { return nil }
            out.append(v)
        }
        return out
    }

    static func parseV6(_ text: String) -> [UInt8]? {
        guard text.contains(":"), !text.contains("%") else { return nil }
        let halves = text.splitAtDoubleColon()
        guard halves.count <= 2 else { return nil }
        func groups(_ part: Substring) -> [UInt8]? {
            if part.isEmpty { return [] }
            var out: [UInt8] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (i, piece) in pieces.enumerated() {
                if i == pieces.count - 1, piece.contains(".") {
                    guard let v4 = parseV4(piece) else { return nil }
                    out += v4
                    continue
                }
                guard !piece.isEmpty, piece.count <= 4, let v = UInt16(piece, radix: 16) else { return nil }
                out += [UInt8(v >> 8), UInt8(v & 0xff)]
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        if halves.count == 1 { return head.count == 16 ? head : nil }
        guard let tail = groups(halves[1]), head.count + tail.count < 16 else { return nil }
        return head + [UInt8](repeating: 0, count: 16 - head.count - tail.count) + tail
    }

    /// What kind of non-public address this is, or nil for a public one: the addresses by which
    /// a listed name could be pointed at this machine or the networks around it.
    public var nonPublicKind: String? {
        let b = bytes
        if b.count == 4 {
            switch (b[0], b[1]) {
            case (127, _): return "loopback"
            case (0, _): return "unspecified"
            case (10, _), (192, 168): return "private"
            case (172, 16...31): return "private"
            case (169, 254): return "link-local"
            case (100, 64...127): return "shared (carrier-grade NAT)"
            case (224...239, _): return "multicast"
            case (240...255, _): return "reserved"
            default: return nil
            }
        }
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xff && b[11] == 0xff { return "IPv4-mapped" }
        if b[0..<15].allSatisfy({ $0 == 0 }) { return b[15] == 1 ? "loopback" : b[15] == 0 ? "unspecified" : "IPv4-compatible" }
        if b[0..<12].allSatisfy({ $0 == 0 }) { return "IPv4-compatible" }
        if b[0] & 0xfe == 0xfc { return "unique local (ULA)" }
        if b[0] == 0xfe && b[1] & 0xc0 == 0x80 { return "link-local" }
        if b[0] == 0xff { return "multicast" }
        if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && (b[4..<12].allSatisfy { $0 == 0 } || (b[4] == 0 && b[5] == 1)) {
            return "NAT64" // 64:ff9b::/96 and the local-use 64:ff9b:1::/48
        }
        if b[0] == 0x20 && b[1] == 0x02 { return "6to4" }
        return nil
    }

    public var description: String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        // RFC 5952: lower case, the longest run of two or more zero groups as "::".
        let groups = (0..<8).map { UInt16(bytes[2 * $0]) << 8 | UInt16(bytes[2 * $0 + 1]) }
        var best = (start: -1, length: 0), run = (start: -1, length: 0)
        for (i, g) in groups.enumerated() {
            if g == 0 {
                run = run.start < 0 ? (i, 1) : (run.start, run.length + 1)
                if run.length > best.length { best = run }
            } else {
                run = (-1, 0)
            }
        }
        let hex = groups.map { String($0, radix: 16) }
        guard best.length >= 2 else { return hex.joined(separator: ":") }
        return hex[..<best.start].joined(separator: ":") + "::" + hex[(best.start + best.length)...].joined(separator: ":")
    }
}

extension String {
    /// Splits at the first "::" (an IPv6 address has at most one: a second makes three parts).
    fileprivate func splitAtDoubleColon() -> [Substring] {
        let parts = split(separator: "::", maxSplits: 1, omittingEmptySubsequences: false)
        if parts.count == 2 && parts[1].split(separator: "::", omittingEmptySubsequences: false).count > 1 { return [parts[0], "", ""] }
        return parts
    }
}
