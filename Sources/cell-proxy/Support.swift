import CellEgress
import Glibc

/// Runs `body` on a detached thread of its own (one per connection: a sandbox's proxy carries a
/// handful of connections, and blocking code reads as the protocol it speaks).
@discardableResult
func startThread(_ body: @escaping @Sendable () -> Void) -> Bool {
    final class Box { let body: @Sendable () -> Void; init(_ body: @escaping @Sendable () -> Void) { self.body = body } }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    pthread_attr_setstacksize(&attributes, 256 << 10)
    let rc = pthread_create(&thread, &attributes, { raw in
        Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, box)
    pthread_attr_destroy(&attributes)
    if rc != 0 {
        Unmanaged<Box>.fromOpaque(box).release()
    }
    return rc == 0
}

/// A mutex around a value.
final class Locked<Value>: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var value: Value
    init(_ value: Value) {
        self.value = value
        pthread_mutex_init(&mutex, nil)
    }
    func with<R>(_ body: (inout Value) -> R) -> R {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body(&value)
    }
}

/// At most `maximum` connections at once: a sandbox opening thousands gets refusals, not the
/// proxy's (and so cell's user's) threads and descriptors.
final class ConnectionLimiter: Sendable {
    let maximum: Int
    private let count = Locked(0)
    init(maximum: Int) { self.maximum = maximum }
    func enter() -> Bool { count.with { n in n < maximum ? { n += 1; return true }() : false } }
    func leave() { count.with { $0 -= 1 } }
    var active: Int { count.with { $0 } }
}

/// Every connection's sockets, so that the end of the sandbox can end them all: a relay whose
/// client has gone waits for the server's side, which may never come (a half-closed tunnel).
final class OpenSockets: Sendable {
    private let sockets = Locked(Set<Int32>())
    func add(_ fd: Int32) { sockets.with { _ = $0.insert(fd) } }
    func remove(_ fd: Int32) { sockets.with { _ = $0.remove(fd) } }
    /// Both directions of every open connection shut: each relay sees its ends and finishes.
    func shutdownAll() { sockets.with { for fd in $0 { shutdown(fd, Int32(SHUT_RDWR)) } } }
}

enum ClientProtocol: String, Sendable {
    case http, socks5
}

/// One connection's outcome, as cell's audit log records it (`"event":"net"`).
enum Outcome: String, Sendable {
    case allowed, refused, failed
}

struct Decision: Sendable {
    var `protocol`: ClientProtocol
    var host: String
    var port: UInt16
    var address: String?
    /// allowed: connected; refused: by the policy; failed: allowed, but no connection could be made.
    var outcome = Outcome.refused
    var reason: String?
    var bytesOut = 0
    var bytesIn = 0
    var milliseconds = 0

    init(protocol: ClientProtocol, host: String, port: UInt16, refusedBecause reason: String? = nil) {
        self.protocol = `protocol`
        self.host = host
        self.port = port
        self.reason = reason
    }

    /// One line, bounded whatever the client sent: a host the policy refused for not being a
    /// name is cut to 255 bytes (valid names are at most 253); reasons name only valid ones.
    var json: String {
        let shown = host.utf8.count > 255 ? String(decoding: host.utf8.prefix(255), as: UTF8.self) + "…" : host
        return "{\"protocol\":\"\(`protocol`.rawValue)\",\"host\":\(jsonQuoted(shown)),\"port\":\(port),"
            + "\"address\":\(address.map(jsonQuoted) ?? "null"),\"decision\":\"\(outcome.rawValue)\","
            + "\"reason\":\(reason.map(jsonQuoted) ?? "null"),\"bytes_out\":\(bytesOut),\"bytes_in\":\(bytesIn),"
            + "\"duration_ms\":\(milliseconds)}\n"
    }
}

/// JSON lines to cell, one write each (a line below PIPE_BUF is never interleaved).
final class EventChannel: Sendable {
    let fd: Int32
    private let lock = Locked(())
    init(fd: Int32) { self.fd = fd }

    func ready() { write("{\"ready\":true}\n") }
    func send(_ decision: Decision) { write(decision.json) }

    private func write(_ line: String) {
        lock.with { _ in
            let bytes = Array(line.utf8)
            var at = 0
            while at < bytes.count {
                let n = bytes[at...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { exit(0) } // cell is gone
                at += n
            }
        }
    }
}

func monotonicMilliseconds() -> Int {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
}

func readFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while out.count < 1 << 20 {
        let n = read(fd, &buffer, buffer.count)
        if n <= 0 { break }
        out += buffer[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
}

/// "ADDRESS NAME..." lines, as /etc/hosts.
enum HostsFile {
    static func parse(_ text: String) -> [String: [IPAddress]] {
        var out: [String: [IPAddress]] = [:]
        for line in text.split(separator: "\n") {
            let words = line.prefix { $0 != "#" }.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count >= 2, let address = IPAddress.parse(String(words[0])) else { continue }
            for name in words.dropFirst() {
            if let canonical = EgressRule.canonicalHost(String(name)) { out[canonical, default: []].append(address) }
        }
        }
        return out
    }
}

extension Array where Element == String {
    /// A NULL-free array of C strings valid for the call.
    func withCStrings<R>(_ body: ([UnsafePointer<CChar>?]) -> R) -> R {
        let copies = map { strdup($0) }
        defer { copies.forEach { free($0) } }
        return body(copies.map { UnsafePointer($0) })
    }
}
