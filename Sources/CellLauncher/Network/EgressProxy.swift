import CCellSpawn
import CellAudit
import CellPolicy
import Glibc

/// `--net proxy`: cell-proxy (Sources/cell-proxy) started with the two listeners the sandbox's
/// pid 1 handed out (CELL_REC_SEND_FD: HTTP on the sandbox's 127.0.0.1:3128, SOCKS5 on :1080)
/// as its descriptors 3 and 4, and the write end of a pipe as 5, on which it sends one JSON
/// line per decision. cell reads that pipe in the supervisor's loop and records each line as a
/// `net` audit event, within the log's bounds.
///
/// cell-proxy is dynamically linked, unlike cell, so that names resolve through the system's
/// resolver (NSS). It dies with cell (PR_SET_PDEATHSIG, cell_spawn_helper), gets no descriptor
/// of the caller's, and exits when its listeners or its pipe go.
final class EgressProxy {
    private(set) var pid: pid_t = -1
    /// The read end of its event pipe; -1 until it runs.
    private(set) var events: Int32 = -1
    private var pending: [UInt8] = []

    /// Where cell-proxy lives: beside cell, or in ../libexec/cell/.
    static func locate() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let dir = String(exe[..<(exe.lastIndex(of: "/") ?? exe.startIndex)])
        return [dir + "/cell-proxy", dir + "/../libexec/cell/cell-proxy"].first { access($0, X_OK) == 0 }
    }

    /// Starts cell-proxy on `listeners` (HTTP, SOCKS5) and waits (at most 10 s) for its ready line.
    func start(listeners: [Int32], policy: EgressPolicy) throws(LaunchError) {
        guard listeners.count == 2 else { throw .setup("the sandbox's pid 1 did not hand out the proxy's listeners") }
        guard let binary = Self.locate() else {
            throw .setup("--net proxy needs cell-proxy next to cell (Scripts/build builds it), and it is missing")
        }
        var pipe: [Int32] = [-1, -1]
        guard cell_pipe_cloexec(&pipe) == 0 else { throw .setup("cannot create the proxy's event pipe: \(errorText(errno))") }
        events = pipe[0]
        var arguments = [binary] + policy.rules.flatMap { ["--allow", $0.description] }
        if policy.allowPrivateAddresses { arguments.append("--allow-private-addresses") }
        // A hosts file read before the system's resolver: tests point names at loopback servers.
        if let hosts = getenv("CELL_PROXY_HOSTS") { arguments += ["--hosts", String(cString: hosts)] }
        let argv = CStringArray(arguments)
        let envp = CStringArray(["PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
        let log = cell_memfd("cell-proxy-log")
        defer { if log >= 0 { close(log) } }
        let from = [listeners[0], listeners[1], pipe[1]], to: [Int32] = [3, 4, 5]
        pid = argv.withPointers { a in envp.withPointers { e in cell_spawn_helper(binary, a, e, from, to, 3, log) } }
        close(pipe[1])
        guard pid > 0 else { throw .setup("cannot start cell-proxy: \(errorText(errno))") }
        var ready = pollfd(fd: events, events: Int16(POLLIN), revents: 0)
        var n: Int32
        repeat { n = poll(&ready, 1, 10_000) } while n < 0 && errno == EINTR
        guard n == 1, fill(), let line = nextLine(), line == "{\"ready\":true}" else {
            let message = UserNetwork.readBack(log)
            stop()
            throw .setup("cell-proxy did not start\(message.isEmpty ? "" : ": " + message)")
        }
    }

    /// Reads what cell-proxy sent and records each decision; false once the pipe is closed.
    func readEvents(into audit: AuditLog) -> Bool {
        guard fill() else { return false }
        while let line = nextLine() { record(line, audit) }
        if pending.count > 64 << 10 { pending.removeAll() } // not a line: drop it
        return true
    }

    /// One read from the pipe into `pending`; false at its end.
    private func fill() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        var n: Int
        repeat { n = read(events, &buffer, buffer.count) } while n < 0 && errno == EINTR
        guard n > 0 else { return false }
        pending += buffer[0..<n]
        return true
    }

    private func nextLine() -> String? {
        guard let end = pending.firstIndex(of: 10) else { return nil }
        let line = String(decoding: pending[..<end], as: UTF8.self)
        pending.removeSubrange(...end)
        return line
    }

    /// One decision as a `net` event. The host is the sandbox's choice: it is recorded as
    /// JSON (escaped), and the stderr summary escapes it for the terminal.
    private func record(_ line: String, _ audit: AuditLog) {
        guard let event = try? JSONParser.parse(line), let decision = event["decision"]?.string else {
            // Never dropped: a line that does not parse is counted as a refusal of its own.
            try? audit.connection(host: "(unreadable)", port: 0, decision: "refused") {
                [("host", .string("(unreadable)")), ("decision", .string("refused")), ("reason", .string("the proxy's event did not parse"))]
            }
            return
        }
        let host = event["host"]?.string ?? ""
        let port = event["port"]?.int ?? 0
        try? audit.connection(host: host, port: port, decision: decision) {
            var fields: [(String, JSONField)] = [("protocol", .string(event["protocol"]?.string ?? "")), ("host", .string(host)),
                                                 ("port", .int(port)), ("decision", .string(decision))]
            fields.append(("address", event["address"]?.string.map(JSONField.string) ?? .null))
            fields.append(("reason", event["reason"]?.string.map(JSONField.string) ?? .null))
            for key in ["bytes_out", "bytes_in", "duration_ms"] { fields.append((key, .int(event[key]?.int ?? 0))) }
            return fields
        }
    }

    /// Ends cell-proxy, after the events of the connections that were still open: on SIGTERM it
    /// closes its listeners, lets those connections end (their sandbox side is gone) and exits;
    /// the event pipe's end of file says every event is in. SIGKILL if that takes 3 s.
    func stop(draining audit: AuditLog? = nil) {
        if pid > 0 {
            kill(pid, SIGTERM)
            if events >= 0 {
                let deadline = monotonicMilliseconds() + 3000
                var pfd = pollfd(fd: events, events: Int16(POLLIN), revents: 0)
                while monotonicMilliseconds() < deadline, poll(&pfd, 1, Int32(max(0, deadline - monotonicMilliseconds()))) == 1 {
                    guard let audit else {
                        var sink = [UInt8](repeating: 0, count: 4096)
                        if read(events, &sink, sink.count) <= 0 { break } else { continue }
                    }
                    if !readEvents(into: audit) { break }
                }
            }
            kill(pid, SIGKILL) // gone already, unless it overran its time
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            pid = -1
        }
        if events >= 0 {
            if let audit { while readEvents(into: audit) {} }
            close(events)
            events = -1
        }
    }

    deinit { stop() }
}
