/// What a client inside the sandbox asked the HTTP proxy for, read from its request head (the
/// bytes up to and including the blank line). Pure, so that every odd request is unit-tested.
public enum ProxyRequest: Equatable, Sendable {
    /// `CONNECT host:port`: answer 200, then carry bytes both ways (HTTPS, or anything else).
    case tunnel(host: String, port: UInt16)
    /// A plain HTTP request: send `head` (rewritten to origin form, without the proxy's own
    /// headers) to host:port, then carry bytes both ways.
    case forward(host: String, port: UInt16, head: [UInt8])

    public var host: String {
        switch self {
        case .tunnel(let host, _), .forward(let host, _, _): return host
        }
    }

    public var port: UInt16 {
        switch self {
        case .tunnel(_, let port), .forward(_, let port, _): return port
        }
    }

    /// Headers that are for the proxy alone and must not reach the server.
    static let proxyHeaders: Set<String> = ["proxy-connection", "proxy-authorization"]

    public static func parse(head: [UInt8]) -> Result<ProxyRequest, EgressError> {
        // Bytes, not Characters, at the end: "\r\n" is one Character in Swift.
        guard head.count >= 4, head.suffix(4).elementsEqual([13, 10, 13, 10]),
              let text = String(validating: head.dropLast(4), as: UTF8.self) else {
            return .failure(EgressError("not an HTTP request head"))
        }
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        // A bare CR or LF would end a line for some servers and not for this parser: a header
        // (a second Host, a Proxy-Authorization) smuggled past it.
        guard !lines.contains(where: { $0.contains("\r") || $0.contains("\n") || $0.utf8.contains(0) }) else {
            return .failure(EgressError("a bare CR, LF or NUL in the request head"))
        }
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: false)
        guard requestLine.count == 3, requestLine[2].hasPrefix("HTTP/1.") else { return .failure(EgressError("a malformed request line")) }
        let method = String(requestLine[0]), target = String(requestLine[1]), version = String(requestLine[2])
        guard !method.isEmpty, method.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5a }) else { return .failure(EgressError("a malformed method")) }
        var headers: [(name: String, line: String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex,
                  !line[..<colon].contains(" "), !line.hasPrefix(" "), !line.hasPrefix("\t") else {
                return .failure(EgressError("a malformed header line"))
            }
            headers.append((line[..<colon].lowercased(), line))
        }

        if method == "CONNECT" {
            guard case .success(let (host, port)) = authority(target, defaultPort: nil) else {
                return .failure(EgressError("CONNECT needs host:port"))
            }
            return .success(.tunnel(host: host, port: port))
        }
        let host: String, port: UInt16, path: String
        var uriAuthority: String? // which the server must see as Host
        if target.lowercased().hasPrefix("http://") {
            let rest = target.dropFirst(7)
            let slash = rest.firstIndex(of: "/") ?? rest.endIndex
            guard case .success(let (h, p)) = authority(String(rest[..<slash]), defaultPort: 80) else {
                return .failure(EgressError("a malformed URL"))
            }
            (host, port, path) = (h, p, slash == rest.endIndex ? "/" : String(rest[slash...]))
            uriAuthority = String(rest[..<slash])
        } else if target.hasPrefix("/") {
            let hosts = headers.filter { $0.name == "host" }
            guard hosts.count == 1, let value = hosts.first.map({ $0.line.drop { $0 != ":" }.dropFirst().trimmingSpaces() }),
                  case .success(let (h, p)) = authority(value, defaultPort: 80) else {
                return .failure(EgressError("a request without one valid Host header"))
            }
            (host, port, path) = (h, p, target)
        } else {
            return .failure(EgressError(target.lowercased().hasPrefix("https://")
                ? "https:// through a plain proxy request: use CONNECT (HTTPS_PROXY)" : "a request target that is not http://"))
        }
        // One request per connection, to the host that was checked: Host is the URI's, and the
        // server closes after its answer (a pipelined request for another host would otherwise
        // reach the checked address unrecorded; the audit log counts connections).
        var out = "\(method) \(path) \(version)\r\n"
        if let uriAuthority { out += "Host: \(uriAuthority)\r\n" }
        for header in headers where !proxyHeaders.contains(header.name) && header.name != "connection"
            && !(uriAuthority != nil && header.name == "host") {
            out += header.line + "\r\n"
        }
        out += "Connection: close\r\n\r\n"
        return .success(.forward(host: host, port: port, head: Array(out.utf8)))
    }

    /// "host:port", "[v6]:port", or a host alone when there is a default port.
    public static func authority(_ text: String, defaultPort: UInt16?) -> Result<(String, UInt16), EgressError> {
        var host = Substring(text), portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return .failure(EgressError("an unclosed '['")) }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return .failure(EgressError("junk after ']'")) }
                portText = rest.dropFirst()
            }
        } else if let colon = text.lastIndex(of: ":") {
            guard text.firstIndex(of: ":") == colon else { return .failure(EgressError("an IPv6 address without brackets")) }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != 0x2f && $0 != 0x40 }) else {
            return .failure(EgressError("a malformed host"))
        }
        if let portText {
            guard let port = UInt16(portText), port > 0 else { return .failure(EgressError("a malformed port")) }
            return .success((String(host), port))
        }
        guard let defaultPort else { return .failure(EgressError("no port")) }
        return .success((String(host), defaultPort))
    }
}

extension Substring {
    func trimmingSpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

/// A JSON string literal (RFC 8259): quotes, backslashes and control characters escaped, C1
/// controls too, so that a log or a profile shown with cat cannot drive the terminal. The
/// proxy's events carry names the sandbox chose; cell's JSON uses the same function.
public func jsonQuoted(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value) {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}
