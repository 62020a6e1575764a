import CCellProxy
import CellEgress
import Glibc

/// One client connection, from its first byte to its close: what it asks for, the decision,
/// the upstream connection, the bytes both ways, and one event at the end.
struct Connection {
    let client: Int32
    let `protocol`: ClientProtocol
    let configuration: Configuration
    let events: EventChannel

    func run() {
        openSockets.add(client)
        defer { openSockets.remove(client); close(client) }
        // A client gets 30 s to say where it wants to go; after that only the relay's own end.
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        switch `protocol` {
        case .http: http()
        case .socks5: socks5()
        }
    }

    // MARK: HTTP: plain requests in absolute form (or with a Host header), and CONNECT.

    private func http() {
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var end: Int?
        while end == nil {
            let n = read(client, &buffer, buffer.count)
            if n <= 0 { return }
            head += buffer[0..<n]
            end = findHeadEnd(head)
            if end == nil && head.count > 16 << 10 {
                reply("431 Request Header Fields Too Large", "the request head is larger than 16 KiB")
                return events.send(Decision(protocol: .http, host: "", port: 0, refusedBecause: "a request head larger than 16 KiB"))
            }
        }
        let early = Array(head[end!...]) // bytes the client sent after its head (a body, TLS)
        switch ProxyRequest.parse(head: Array(head[..<end!])) {
        case .failure(let error):
            reply("400 Bad Request", error.message)
            events.send(Decision(protocol: .http, host: "", port: 0, refusedBecause: error.message))
        case .success(let request):
            var decision = Decision(protocol: .http, host: request.host, port: request.port)
            let started = monotonicMilliseconds()
            switch open(request.host, request.port, &decision) {
            case nil:
                reply(decision.outcome == .refused ? "403 Forbidden" : "502 Bad Gateway", decision.reason ?? "")
            case let upstream?:
                defer { openSockets.remove(upstream); close(upstream) }
                if case .forward(_, _, let rewritten) = request {
                    guard writeAll(upstream, rewritten + early) else { break }
                    decision.bytesOut += rewritten.count + early.count
                } else {
                    guard writeAll(client, Array("HTTP/1.1 200 Connection established\r\n\r\n".utf8)) else { break }
                    guard writeAll(upstream, early) else { break }
                    decision.bytesOut += early.count
                }
                relay(upstream, &decision)
            }
            decision.milliseconds = monotonicMilliseconds() - started
            events.send(decision)
        }
    }

    private func findHeadEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i + 4
        }
        return nil
    }

    private func reply(_ status: String, _ reason: String) {
        let body = "cell: \(reason)\n"
        _ = writeAll(client, Array("HTTP/1.1 \(status)\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8))
    }

    // MARK: SOCKS5 (RFC 1928): no authentication, CONNECT only; names resolved here (socks5h).

    private func socks5() {
        guard let greeting = readExactly(2), greeting[0] == 5, let methods = readExactly(Int(greeting[1])) else { return }
        guard methods.contains(0) else {
            _ = writeAll(client, [5, 0xff])
            return events.send(Decision(protocol: .socks5, host: "", port: 0, refusedBecause: "the client offers no method without authentication"))
        }
        guard writeAll(client, [5, 0]), let request = readExactly(4), request[0] == 5 else { return }
        let host: String
        switch request[3] {
        case 1: guard let a = readExactly(4) else { return }; host = IPAddress(bytes: a)!.description
        case 4: guard let a = readExactly(16) else { return }; host = IPAddress(bytes: a)!.description
        case 3:
            guard let length = readExactly(1), let name = readExactly(Int(length[0])) else { return }
            host = String(decoding: name, as: UTF8.self)
        default:
            _ = writeAll(client, [5, 8, 0, 1, 0, 0, 0, 0, 0, 0])
            return events.send(Decision(protocol: .socks5, host: "", port: 0, refusedBecause: "an unknown SOCKS address type"))
        }
        guard let portBytes = readExactly(2) else { return }
        let port = UInt16(portBytes[0]) << 8 | UInt16(portBytes[1])
        var decision = Decision(protocol: .socks5, host: host, port: port)
        guard request[1] == 1 else {
            _ = writeAll(client, [5, 7, 0, 1, 0, 0, 0, 0, 0, 0])
            decision.reason = "only SOCKS CONNECT is supported (no BIND, no UDP)"
            return events.send(decision)
        }
        let started = monotonicMilliseconds()
        if let upstream = open(host, port, &decision) {
            if writeAll(client, [5, 0, 0, 1, 0, 0, 0, 0, 0, 0]) { relay(upstream, &decision) }
            openSockets.remove(upstream)
            close(upstream)
        } else {
            // 2: not allowed by the ruleset; 4: host unreachable.
            _ = writeAll(client, [5, decision.outcome == .refused ? 2 : 4, 0, 1, 0, 0, 0, 0, 0, 0])
        }
        decision.milliseconds = monotonicMilliseconds() - started
        events.send(decision)
    }

    private func readExactly(_ count: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var at = 0
        while at < count {
            let n = out[at...].withUnsafeMutableBytes { read(client, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            at += n
        }
        return out
    }

    // MARK: the decision, the resolution and the upstream connection

    /// The upstream socket for host:port, or nil with `decision` saying why not. Checks the
    /// name, resolves it, checks each address, and connects to the first one allowed and
    /// reachable: to exactly the address checked, never resolving again.
    private func open(_ requested: String, _ port: UInt16, _ decision: inout Decision) -> Int32? {
        if let refusal = configuration.policy.refusal(host: requested, port: port) {
            decision.outcome = .refused
            decision.reason = refusal
            return nil
        }
        // The name as checked is the name resolved: canonical, ASCII, no NUL.
        let host = EgressRule.canonicalHost(requested)!
        decision.host = host
        let addresses = resolve(host)
        guard !addresses.isEmpty else {
            decision.outcome = .failed
            decision.reason = "\(host) does not resolve"
            return nil
        }
        var refusals: [String] = [], failure: String?
        for address in addresses {
            if let refusal = configuration.policy.refusal(address: address) {
                refusals.append(refusal)
                continue
            }
            decision.address = address.description
            switch connectTo(address, port) {
            case .success(let fd):
                decision.outcome = .allowed
                decision.reason = nil
                openSockets.add(fd)
                return fd
            case .failure(let error):
                failure = "connecting to \(address) port \(port): \(String(cString: strerror(error.code)))"
            }
        }
        if let failure {
            decision.outcome = .failed
            decision.reason = failure
        } else {
            decision.outcome = .refused
            decision.address = addresses.first?.description
            decision.reason = refusals.first
        }
        return nil
    }

    private func resolve(_ host: String) -> [IPAddress] {
        if let literal = IPAddress.parse(host) { return [literal] }
        if let listed = configuration.hosts[host] { return listed }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0 else { return [] }
        defer { freeaddrinfo(list) }
        var out: [IPAddress] = []
        var entry = list
        while let e = entry {
            if let sa = e.pointee.ai_addr {
                if e.pointee.ai_family == AF_INET {
                    let a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                    out.append(IPAddress(bytes: withUnsafeBytes(of: a) { Array($0) })!)
                } else if e.pointee.ai_family == AF_INET6 {
                    let a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                    out.append(IPAddress(bytes: withUnsafeBytes(of: a) { Array($0) })!)
                }
            }
            entry = e.pointee.ai_next
        }
        var seen = Set<IPAddress>()
        return out.filter { seen.insert($0).inserted }
    }

    private func connectTo(_ address: IPAddress, _ port: UInt16) -> Result<Int32, ConnectError> {
        let family = address.isV6 ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return .failure(ConnectError(code: errno)) }
        var storage = sockaddr_storage()
        let length: Int
        if address.isV6 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyBytes(from: address.bytes) }
            withUnsafeMutableBytes(of: &storage) { raw in withUnsafeBytes(of: sa) { raw.copyMemory(from: $0) } }
            length = MemoryLayout<sockaddr_in6>.size
        } else {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin_addr) { $0.copyBytes(from: address.bytes) }
            withUnsafeMutableBytes(of: &storage) { raw in withUnsafeBytes(of: sa) { raw.copyMemory(from: $0) } }
            length = MemoryLayout<sockaddr_in>.size
        }
        let rc = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(length)) } }
        if rc != 0 && errno != EINPROGRESS {
            let code = errno
            close(fd)
            return .failure(ConnectError(code: code))
        }
        if rc != 0 {
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&pfd, 1, 15_000) == 1 else {
                close(fd)
                return .failure(ConnectError(code: ETIMEDOUT))
            }
            var code: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &size)
            if code != 0 {
                close(fd)
                return .failure(ConnectError(code: code))
            }
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~Int32(O_NONBLOCK))
        return .success(fd)
    }

    // MARK: the relay

    /// Carries bytes both ways until both sides have closed (CCellProxy/relay.c: splice, so the
    /// bytes never pass through this process's memory).
    private func relay(_ upstream: Int32, _ decision: inout Decision) {
        var none = timeval()
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &none, socklen_t(MemoryLayout<timeval>.size))
        var out: UInt64 = 0, back: UInt64 = 0
        _ = cell_relay(client, upstream, &out, &back)
        decision.bytesOut += Int(out)
        decision.bytesIn += Int(back)
    }
}

struct ConnectError: Error {
    var code: Int32
}

func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var at = 0
    while at < bytes.count {
        let n = bytes[at...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        at += n
    }
    return true
}
