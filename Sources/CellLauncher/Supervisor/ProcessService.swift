import CCellSpawn
import CellAudit
import CellPolicy
import Glibc

/// `cell-runtime exec`, on the container monitor's side: a unix socket in the container's state
/// directory, where each `exec` asks for one process and stays connected until it ends.
///
/// The monitor checks each request (ProcessRequest) and passes it to pid 1 (cell-init/process.c),
/// which starts the process with everything of the container's; pid 1's reports say whether it
/// started, and how it ended, and the monitor tells the `exec` that asked. The audit log gets an
/// `exec` event and an `exec_exit` event for each; its calls are audited as the command's are,
/// through the same filters.
///
/// The connection is the process's lifeline: `exec` (or the process it leaves behind with
/// `--detach`, whose pid the engine follows) sends the signals it receives down it, and when it
/// closes with the process still running, the process is killed, as runc's would be with its
/// pid-file process.
///
/// One request is with pid 1 at a time: a pty's master ('T', on the control socket) and the
/// answer (on the report pipe) then belong to that request, whichever arrives first.
final class ProcessService {
    /// Messages to `exec`, one line each: "started PID" (with the pty's master, if any),
    /// "error: MESSAGE", "exited STATUS" (the raw wait status). From `exec`: "signal N".
    final class Client {
        let fd: Int32
        let request: ProcessRequest
        var stdio: [Int32]
        var master: Int32 = -1
        var pid: Int32 = 0
        /// The request's number, as pid 1 counts them (the first is 1): what a signal names.
        var number: UInt32 = 0
        var incoming: [UInt8] = []

        init(fd: Int32, request: ProcessRequest, stdio: [Int32]) {
            self.fd = fd
            self.request = request
            self.stdio = stdio
        }

        func tell(_ line: String, passing fds: [Int32] = []) {
            let bytes = Array((line + "\n").utf8)
            _ = cell_send_with_descriptors(fd, bytes, bytes.count, fds, Int32(fds.count))
        }

        func close() {
            for descriptor in stdio + [master, fd] where descriptor >= 0 { Glibc.close(descriptor) }
            stdio = []
            master = -1
        }
    }

    let socketPath: String
    private let sandbox: SandboxProcess
    private let audit: AuditLog
    private(set) var listener: Int32 = -1
    private var waiting: [Client] = []
    private var withPID1: Client?
    private var running: [Int32: Client] = [:]
    /// Requests sent to pid 1 so far ('X').
    private var sent: UInt32 = 0

    init(socketPath: String, sandbox: SandboxProcess, audit: AuditLog) {
        self.socketPath = socketPath
        self.sandbox = sandbox
        self.audit = audit
    }

    deinit { finish() }

    /// pid 1 takes requests ('R'): the socket opens. Only the container's owner may connect
    /// (the state directory is theirs alone; the socket is 0600 besides).
    func open() -> String? {
        unlink(socketPath)
        let fd = cell_unix_listen(socketPath)
        guard fd >= 0 else { return "cell-runtime exec will not work in this container: cannot listen on \(socketPath): \(errorText(errno))" }
        chmod(socketPath, 0o600)
        listener = fd
        return nil
    }

    /// The listener, the connections whose request is arriving, then each running process's
    /// connection (its signals and its hang-up).
    var pollDescriptors: [Int32] { listener < 0 ? [] : [listener] + arriving.map(\.fd) + running.values.map(\.fd) }

    /// When the first arriving request runs out of time (a monotonic millisecond), if any: the
    /// supervisor wakes for it.
    var nextDeadline: Int? { arriving.map(\.deadline).min() }

    func handle(_ fd: Int32) {
        if fd == listener {
            accept()
        } else if let connection = arriving.first(where: { $0.fd == fd }) {
            readMore(connection)
        } else if let client = running.values.first(where: { $0.fd == fd }) {
            readFrom(client)
        }
    }

    // MARK: - requests

    /// A connection whose request is still arriving. It is read as its bytes come, in the
    /// supervisor's loop, never waited for: the monitor also answers the container's notified
    /// calls, and a client that sends slowly (or not at all) must not hold them.
    final class Arriving {
        let fd: Int32
        let deadline: Int
        var stdio: [Int32] = []
        var sawRequestByte = false
        var bytes: [UInt8] = []

        init(fd: Int32, deadline: Int) {
            self.fd = fd
            self.deadline = deadline
        }
    }

    private var arriving: [Arriving] = []
    /// Requests being read at once, and the time each has to arrive whole.
    static let maxArriving = 32
    static let requestMilliseconds = 2_000
    /// The most bytes of records a request may take (1 MiB of text, and each record's header).
    static let maxRequestBytes = ProcessRequest.maxBytes + 8 * (2 * ProcessRequest.maxEntries + 2)

    private func accept() {
        let fd = cell_unix_accept(listener)
        guard fd >= 0 else { return }
        if let problem = ProcessService.peerProblem(fd) { return refuse(fd, problem) }
        guard arriving.count < ProcessService.maxArriving else { return refuse(fd, "too many requests are arriving at once; try again") }
        let connection = Arriving(fd: fd, deadline: monotonicMilliseconds() + ProcessService.requestMilliseconds)
        arriving.append(connection)
        // `exec` has its request ready before it connects: usually it is here already.
        readMore(connection)
    }

    /// Requests that have not arrived whole in time are refused.
    func expire(now: Int) {
        for connection in arriving where now >= connection.deadline {
            drop(connection, "the request did not arrive within \(ProcessService.requestMilliseconds / 1000) seconds")
        }
    }

    /// Only a process of the monitor's own pid namespace (an engine's `exec`) may ask: one in a
    /// container, even a container of the same user that was given the state directory, may not.
    /// A process of a pid namespace below the monitor's has more entries in its NSpid line (one
    /// per level; /proc/PID/status is readable across user namespaces, its ns links are not);
    /// one the monitor cannot see at all has pid 0 in SO_PEERCRED.
    static func peerProblem(_ fd: Int32) -> String? {
        let peer = cell_peer_pid(fd)
        guard peer > 0, let theirs = pidNamespaceDepth("/proc/\(peer)/status"), let ours = pidNamespaceDepth("/proc/self/status"),
              theirs == ours else {
            return "a request from a process in another pid namespace (a container's?) is refused"
        }
        return nil
    }

    /// How many pid namespaces deep the process is (the fields of its NSpid line).
    static func pidNamespaceDepth(_ statusPath: String) -> Int? {
        guard let text = readSmallFile(statusPath),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("NSpid:") }) else { return nil }
        return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).count - 1
    }

    private func readMore(_ connection: Arriving) {
        if !connection.sawRequestByte {
            var fds: [Int32] = [-1, -1, -1]
            var count: Int32 = 0
            let byte = cell_receive_with_descriptors(connection.fd, &fds, &count)
            if byte == -2 && (errno == EAGAIN || errno == EINTR) { return }
            connection.stdio = Array(fds.prefix(Int(count)))
            guard byte == Int32(UInt8(ascii: "X")) else { return drop(connection, "not a process request") }
            connection.sawRequestByte = true
        }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(connection.fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if n < 0 && errno == EINTR { continue }
            if n < 0 { break } // EAGAIN: the rest comes later
            if n == 0 { return drop(connection, "the process request ended early") }
            connection.bytes += buffer[0..<n]
            guard connection.bytes.count <= ProcessService.maxRequestBytes else { return drop(connection, "the process request is larger than 1 MiB") }
        }
        switch ProcessService.completeness(connection.bytes) {
        case .partial: return
        case .malformed(let why): return drop(connection, why)
        case .whole: break
        }
        arriving.removeAll { $0 === connection }
        let request: ProcessRequest
        do throws(LaunchError) {
            request = try ProcessService.request(from: connection.bytes)
        } catch {
            return refuse(connection.fd, error.message, closing: connection.stdio)
        }
        if let problem = ProcessService.stdioProblem(connection.stdio, terminal: request.terminal != nil) {
            return refuse(connection.fd, problem, closing: connection.stdio)
        }
        waiting.append(Client(fd: connection.fd, request: request, stdio: connection.stdio))
        sendNext()
    }

    enum Completeness: Equatable {
        case partial, whole
        case malformed(String)
    }

    /// Whether `bytes` hold a whole request: records up to END_PROCESS, and nothing after it.
    static func completeness(_ bytes: [UInt8]) -> Completeness {
        var at = 0
        while bytes.count - at >= 8 {
            func u32(_ i: Int) -> Int { Int(bytes[i]) | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2]) << 16 | Int(bytes[i + 3]) << 24 }
            let type = u32(at), length = u32(at + 4)
            guard length <= maxRequestBytes else { return .malformed("the process request is larger than 1 MiB") }
            guard bytes.count - at - 8 >= length else { return .partial }
            at += 8 + length
            if type == Int(CELL_REC_END_PROCESS.rawValue) {
                return at == bytes.count ? .whole : .malformed("bytes follow the end of the process request")
            }
        }
        return .partial
    }

    /// The request in `bytes`, decoded and checked. Its text must be UTF-8 as it came: a
    /// request is passed on to pid 1 as it is decoded, never with bytes replaced.
    static func request(from bytes: [UInt8]) throws(LaunchError) -> ProcessRequest {
        let records: [PlanRecord]
        do {
            records = try PlanEncoding.decode(bytes, headed: false)
        } catch {
            throw .invalid("a malformed process request: \(error.message)")
        }
        guard PlanEncoding.encode(records) == bytes else { throw .invalid("the process request holds text that is not UTF-8") }
        return try ProcessRequest(records: records)
    }

    private func drop(_ connection: Arriving, _ message: String) {
        arriving.removeAll { $0 === connection }
        refuse(connection.fd, message, closing: connection.stdio)
    }

    private func refuse(_ fd: Int32, _ message: String, closing stdio: [Int32] = []) {
        for descriptor in stdio { close(descriptor) }
        let line = Array("error: \(message)\n".utf8)
        _ = send(fd, line, line.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
        close(fd)
    }

    /// What a process's descriptors may not be: three for stdin, stdout and stderr, or none
    /// with a pty; never a directory or an O_PATH descriptor, either of which would be a way
    /// out of the container's root (CVE-2024-21626's, through a leaked directory), and never a
    /// terminal.
    static func stdioProblem(_ fds: [Int32], terminal: Bool) -> String? {
        guard fds.count == (terminal ? 0 : 3) else {
            return terminal ? "a process with a pty takes no descriptors" : "a process needs its stdin, stdout and stderr"
        }
        for fd in fds where cell_is_directory_or_path(fd) != 0 {
            return "a process's stdin, stdout and stderr cannot be directories"
        }
        // The caller's terminal never enters a container (as under `cell run`): a process there
        // could read what is typed after exec returned, and write escapes to it.
        for fd in fds where cell_is_terminal(fd) == 1 {
            return "a process's stdin, stdout and stderr cannot be a terminal, which would hand it yours (use --tty with --console-socket, or redirect them)"
        }
        return nil
    }

    /// The next waiting request to pid 1: 'X' with its descriptors, then its records.
    private func sendNext() {
        guard withPID1 == nil, !waiting.isEmpty else { return }
        let client = waiting.removeFirst()
        sent &+= 1
        client.number = sent
        let delivered = cell_send_with_descriptors(sandbox.control, "X", 1, client.stdio, Int32(client.stdio.count)) == 0
            && sandbox.send(PlanEncoding.encode(client.request.records))
        // pid 1 has its own copies now (or is gone): the monitor keeps none.
        for fd in client.stdio { close(fd) }
        client.stdio = []
        guard delivered else {
            client.tell("error: the container is ending")
            client.close()
            return sendNext()
        }
        withPID1 = client
    }

    // MARK: - pid 1's answers

    /// 'T' from pid 1: the master of the pty of the request it is starting. False when no
    /// request wants one (the supervisor treats that as a message out of place).
    func takeMaster(_ fd: Int32) -> Bool {
        guard let client = withPID1, client.request.terminal != nil, client.master < 0 else { return false }
        client.master = fd
        return true
    }

    func started(pid: Int32) {
        guard let client = withPID1 else { return }
        withPID1 = nil
        client.pid = pid
        client.tell("started \(pid)", passing: client.master >= 0 ? [client.master] : [])
        if client.master >= 0 { close(client.master) }
        client.master = -1
        running[pid] = client
        try? audit.write("exec", [("command", .strings(client.request.arguments)), ("sandbox_pid", .int(Int(pid))),
                                  ("terminal", .bool(client.request.terminal != nil))])
        sendNext()
    }

    func failed(step: Int32, errno code: Int32) {
        guard let client = withPID1 else { return }
        withPID1 = nil
        let program = TerminalText.escaped(client.request.arguments[0])
        switch cell_step(rawValue: UInt32(step)) {
        case CELL_STEP_EXEC_COMMAND:
            client.tell("error: cannot run \(program) in the container (or enter \(client.request.workingDirectory)): \(errorText(code))")
        default:
            client.tell("error: cannot start \(program) in the container: \(code == EINVAL ? "the request was refused" : errorText(code))")
        }
        client.close()
        sendNext()
    }

    func exited(pid: Int32, status: Int32) {
        guard let client = running.removeValue(forKey: pid) else { return }
        let end = SandboxEnd.fromWaitStatus(status)
        var fields: [(String, JSONField)] = [("sandbox_pid", .int(Int(pid))), ("status", .int(Int(end.exitStatus)))]
        if case .signaled(let s) = end { fields.append(("signal", .int(Int(s)))) } else { fields.append(("signal", .null)) }
        try? audit.write("exec_exit", fields)
        client.tell("exited \(status)")
        client.close()
    }

    // MARK: - from exec

    /// "signal N" lines, passed on to pid 1; end of file (the `exec` that holds the process is
    /// gone) kills the process.
    private func readFrom(_ client: Client) {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = recv(client.fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        if n < 0 && (errno == EINTR || errno == EAGAIN) { return }
        if n <= 0 {
            signal(client, SIGKILL)
            running[client.pid] = nil
            try? audit.write("exec_exit", [("sandbox_pid", .int(Int(client.pid))), ("status", .int(137)), ("signal", .int(Int(SIGKILL))),
                                           ("error", .string("cell-runtime exec, which held the process, is gone: the process was killed"))])
            client.close()
            return
        }
        client.incoming += buffer[0..<n]
        while let newline = client.incoming.firstIndex(of: UInt8(ascii: "\n")) {
            let line = String(decoding: client.incoming[..<newline], as: UTF8.self)
            client.incoming.removeSubrange(...newline)
            if line.hasPrefix("signal "), let number = Int32(line.dropFirst(7)), number > 0, number < 65 {
                signal(client, number)
            }
        }
        if client.incoming.count > 1024 { client.incoming = [] }
    }

    /// 'K' and SIGNAL_PROCESS, naming the client's request: pid 1 signals its process only if
    /// it has not reaped it, so a pid that is another process's by now is never signalled.
    private func signal(_ client: Client, _ number: Int32) {
        guard client.number > 0, cell_send_with_descriptors(sandbox.control, "K", 1, nil, 0) == 0 else { return }
        _ = sandbox.send(PlanEncoding.encode([.signalProcess(process: client.number, signal: UInt32(number))]))
    }

    /// The sandbox is over: every `exec` still waiting learns it from its connection's end.
    func finish() {
        for client in waiting + [withPID1].compactMap({ $0 }) + Array(running.values) { client.close() }
        for connection in arriving { drop(connection, "the container is ending") }
        waiting = []
        withPID1 = nil
        running = [:]
        if listener >= 0 {
            close(listener)
            listener = -1
            unlink(socketPath)
        }
    }
}
