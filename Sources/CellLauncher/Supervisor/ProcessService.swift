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

    /// The listener, then each running process's connection (its signals and its hang-up).
    var pollDescriptors: [Int32] { listener < 0 ? [] : [listener] + running.values.map(\.fd) }

    func handle(_ fd: Int32) {
        if fd == listener {
            accept()
        } else if let client = running.values.first(where: { $0.fd == fd }) {
            readFrom(client)
        }
    }

    // MARK: - requests

    private func accept() {
        // A request comes whole, at once: `exec` has it ready before it connects. A peer that
        // stalls cannot hold the monitor (and so the container's audit) for long.
        let fd = cell_unix_accept(listener, 2)
        guard fd >= 0 else { return }
        var fds: [Int32] = [-1, -1, -1]
        var count: Int32 = 0
        let byte = cell_receive_with_descriptors(fd, &fds, &count)
        let stdio = Array(fds.prefix(Int(count)))
        func refuse(_ message: String) {
            for descriptor in stdio { close(descriptor) }
            let line = Array("error: \(message)\n".utf8)
            _ = send(fd, line, line.count, Int32(MSG_NOSIGNAL))
            close(fd)
        }
        guard byte == Int32(UInt8(ascii: "X")) else { return refuse("not a process request") }
        let request: ProcessRequest
        do throws(LaunchError) {
            request = try ProcessRequest(records: try readRecords(fd))
        } catch {
            return refuse(error.message)
        }
        if let problem = ProcessService.stdioProblem(stdio, terminal: request.terminal != nil) { return refuse(problem) }
        waiting.append(Client(fd: fd, request: request, stdio: stdio))
        sendNext()
    }

    /// The request's records, up to END_PROCESS, decoded.
    private func readRecords(_ fd: Int32) throws(LaunchError) -> [PlanRecord] {
        var bytes: [UInt8] = []
        while true {
            let header = readExactly(fd, 8)
            guard header.count == 8 else { throw .invalid("the process request ended early") }
            let type = UInt32(header[0]) | UInt32(header[1]) << 8 | UInt32(header[2]) << 16 | UInt32(header[3]) << 24
            let length = Int(UInt32(header[4]) | UInt32(header[5]) << 8 | UInt32(header[6]) << 16 | UInt32(header[7]) << 24)
            guard bytes.count + 8 + length <= ProcessRequest.maxBytes + 8 * (2 * ProcessRequest.maxEntries + 2) else {
                throw .invalid("the process request is larger than 1 MiB")
            }
            let payload = readExactly(fd, length)
            guard payload.count == length else { throw .invalid("the process request ended early") }
            bytes += header + payload
            if type == CELL_REC_END_PROCESS.rawValue { break }
        }
        do {
            return try PlanEncoding.decode(bytes, headed: false)
        } catch {
            throw .invalid("a malformed process request: \(error.message)")
        }
    }

    /// What a process's descriptors may not be: three for stdin, stdout and stderr, or none
    /// with a pty; never a directory or an O_PATH descriptor, either of which would be a way
    /// out of the container's root (CVE-2024-21626's, through a leaked directory).
    static func stdioProblem(_ fds: [Int32], terminal: Bool) -> String? {
        guard fds.count == (terminal ? 0 : 3) else {
            return terminal ? "a process with a pty takes no descriptors" : "a process needs its stdin, stdout and stderr"
        }
        for fd in fds where cell_is_directory_or_path(fd) != 0 {
            return "a process's stdin, stdout and stderr cannot be directories"
        }
        return nil
    }

    /// The next waiting request to pid 1: 'X' with its descriptors, then its records.
    private func sendNext() {
        guard withPID1 == nil, !waiting.isEmpty else { return }
        let client = waiting.removeFirst()
        let sent = cell_send_with_descriptors(sandbox.control, "X", 1, client.stdio, Int32(client.stdio.count)) == 0
            && sandbox.send(PlanEncoding.encode(client.request.records))
        // pid 1 has its own copies now (or is gone): the monitor keeps none.
        for fd in client.stdio { close(fd) }
        client.stdio = []
        guard sent else {
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
            signal(client.pid, SIGKILL)
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
                signal(client.pid, number)
            }
        }
        if client.incoming.count > 1024 { client.incoming = [] }
    }

    /// 'K' and SIGNAL_PROCESS: pid 1 signals the process only if it has not reaped it.
    private func signal(_ pid: Int32, _ number: Int32) {
        guard pid > 0, cell_send_with_descriptors(sandbox.control, "K", 1, nil, 0) == 0 else { return }
        _ = sandbox.send(PlanEncoding.encode([.signalProcess(pid: UInt32(pid), signal: UInt32(number))]))
    }

    /// The sandbox is over: every `exec` still waiting learns it from its connection's end.
    func finish() {
        for client in waiting + [withPID1].compactMap({ $0 }) + Array(running.values) { client.close() }
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

/// Exactly `count` bytes from `fd`, or fewer at end of file, an error or the receive timeout.
public func readExactly(_ fd: Int32, _ count: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    var got = 0
    while got < count {
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, count - got) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        got += n
    }
    return Array(bytes[0..<got])
}
