import CCellSpawn
import CellLauncher
import CellPolicy
import Glibc

/// `cell-runtime exec`: a second process in a running container.
///
/// The container's monitor takes the request (ProcessService) and pid 1 starts the process
/// (cell-init/process.c), so it has everything the container's process has — namespaces, root,
/// ids, capabilities, no_new_privs, Landlock, seccomp filters — and its refusals go to the same
/// audit log. A request may only say what the process is; a process.json that asks for
/// something else than the container has (another user, other capabilities or rlimits, an
/// AppArmor profile) is refused by name, never run with the container's instead.
///
/// `exec` stays connected to the monitor until the process ends, passes the signals it gets
/// on, and exits with the process's status (128+N after signal N). With `--detach` it leaves a
/// child to do that and returns once the process runs: the child's pid is the one in
/// `--pid-file`, which conmon and containerd's shim follow as the process.
extension Lifecycle {
    public struct ExecOptions {
        public var processFile: String
        public var pidFile: String?
        public var consoleSocket: String?
        public var detach = false
        public var tty = false
        public init(processFile: String) { self.processFile = processFile }
    }

    /// The process's exit status (without `--detach`), or 0 once it runs (with it).
    public func exec(id: String, _ options: ExecOptions) throws(RuntimeError) -> Int32 {
        let record = try store.read(id)
        let status = StateStore.status(record)
        guard let record, status == .running else {
            throw RuntimeError(status == .stopped || record == nil ? "cannot exec in a stopped container" : "cannot exec in container \(id): it is \(status.rawValue), not running")
        }
        guard let text = readSmallFile(options.processFile, limit: 4 << 20) else {
            throw RuntimeError("cannot read --process \(options.processFile): \(errorText(errno))")
        }
        var process = try OCIProcess.parse(text, file: options.processFile)
        if options.tty { process.terminal = true }
        guard let configText = readSmallFile(record.bundle + "/config.json", limit: 4 << 20) else {
            throw RuntimeError("cannot read the container's config \(record.bundle)/config.json: \(errorText(errno))")
        }
        let container = try OCIConfig.parse(configText, file: record.bundle + "/config.json")
        try Lifecycle.checkExec(process, against: container)
        if process.terminal && options.consoleSocket == nil {
            throw RuntimeError("a process with a terminal needs --console-socket, for the pty's master")
        }
        if !process.terminal && options.consoleSocket != nil {
            throw RuntimeError("--console-socket is given but the process has no terminal (process.terminal, --tty)")
        }
        let request: ProcessRequest
        do {
            request = try ProcessRequest(arguments: process.args, environment: process.env, workingDirectory: process.cwd,
                                         terminal: process.terminal ? .init(rows: process.rows ?? 24, columns: process.columns ?? 80) : nil)
        } catch {
            throw RuntimeError(error.message)
        }
        let pidFile = try Lifecycle.openPidFile(options.pidFile)
        defer { if let pidFile { ReportFile.release(pidFile) } }

        let connection = try Lifecycle.ask(store.processSocket(id), for: request, id: id)
        if let master = connection.master {
            let problem = options.consoleSocket.flatMap { ConsoleSocket.send(master: master, to: $0) }
            close(master)
            if let problem {
                close(connection.fd) // the monitor kills the process
                throw RuntimeError(problem)
            }
        }
        // The signals an engine sends the process's pid go to the process. Blocked before the
        // fork, so that none is lost between it and the waiter's first read.
        guard let relay = SignalRelay(signals: Lifecycle.passedSignals) else {
            close(connection.fd)
            throw RuntimeError("cannot set up signal forwarding: \(errorText(errno))")
        }
        var waiter = getpid()
        if options.detach {
            waiter = fork()
            if waiter == 0 {
                // The engine's descriptors are the process's, not the waiter's to hold open.
                let null = open("/dev/null", O_RDWR | O_CLOEXEC)
                for fd: Int32 in 0...2 { dup2(null, fd) }
                closeDescriptors(except: [0, 1, 2, connection.fd, relay.fd])
                exit(Lifecycle.waitForEnd(connection.fd, relay: relay))
            }
            guard waiter > 0 else {
                close(connection.fd)
                throw RuntimeError("cannot start exec's waiting process: \(errorText(errno))")
            }
            close(connection.fd)
        }
        if let pidFile, let code = ReportFile.replaceContents(pidFile, Array("\(waiter)".utf8)) {
            if options.detach { Glibc.kill(waiter, SIGKILL) } else { close(connection.fd) }
            throw RuntimeError("cannot write the pid file \(pidFile.path): \(errorText(code))")
        }
        return options.detach ? 0 : Lifecycle.waitForEnd(connection.fd, relay: relay)
    }

    /// Signals `exec` passes on to its process (runc's exec passes these too).
    static let passedSignals: [Int32] = [SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGALRM, SIGPWR]

    /// What a process.json asks for that the container's process does not have: exec cannot
    /// give it (pid 1, which starts the process, has nothing else to give).
    static func checkExec(_ process: OCIProcess, against container: OCIConfig) throws(RuntimeError) {
        if let field = process.present.sorted().first {
            throw RuntimeError("\(field) is not supported: an exec'd process gets the container's own security settings")
        }
        let own = container.process
        guard process.uid == own.uid, process.gid == own.gid, process.additionalGids == own.additionalGids else {
            let groups = own.additionalGids.isEmpty ? "" : ", groups \(own.additionalGids.map(String.init).joined(separator: " "))"
            throw RuntimeError("cell-runtime exec runs processes as the container's user (uid \(own.uid), gid \(own.gid)\(groups)); the process asks for uid \(process.uid), gid \(process.gid)")
        }
        let asked = try ContainerPlanner.keptCapabilities(process), has = try ContainerPlanner.keptCapabilities(own)
        guard asked == has else {
            func names(_ set: UInt64) -> String { set == 0 ? "none" : Capabilities.names(set).joined(separator: " ") }
            throw RuntimeError("cell-runtime exec gives a process the container's capabilities (\(names(has))); the process asks for \(names(asked))")
        }
        if let mask = process.umask, mask != own.umask {
            throw RuntimeError("cell-runtime exec gives a process the container's umask (\(own.umask.map { String($0, radix: 8) } ?? "the runtime's")); the process asks for \(String(mask, radix: 8))")
        }
        func limits(_ list: [OCIConfig.Rlimit]) -> [String] { list.map { "\($0.type)=\($0.soft):\($0.hard)" }.sorted() }
        guard limits(process.rlimits) == limits(own.rlimits) else {
            throw RuntimeError("cell-runtime exec gives a process the container's rlimits; the process asks for others (\(limits(process.rlimits).joined(separator: " ")))")
        }
    }

    /// Connects to the container's monitor and asks for `request`: the connection, once the
    /// process runs, with its pty's master if it has one. Our stdin, stdout and stderr go with
    /// a request without a pty.
    static func ask(_ socket: String, for request: ProcessRequest, id: String) throws(RuntimeError) -> (fd: Int32, master: Int32?) {
        let fd = cell_unix_connect(socket)
        guard fd >= 0 else { throw RuntimeError("cannot reach container \(id)'s monitor at \(socket): \(errorText(errno))") }
        let stdio: [Int32] = request.terminal == nil ? [0, 1, 2] : []
        let records = PlanEncoding.encode(request.records)
        guard cell_send_with_descriptors(fd, "X", 1, stdio, Int32(stdio.count)) == 0,
              cell_send_with_descriptors(fd, records, records.count, nil, 0) == 0 else {
            let code = errno
            close(fd)
            throw RuntimeError("cannot send the request to container \(id)'s monitor: \(errorText(code))")
        }
        // The answer's first byte carries the master, if any; the rest of its line follows.
        var fds: [Int32] = [-1, -1, -1]
        var count: Int32 = 0
        let first = cell_receive_with_descriptors(fd, &fds, &count)
        let received = Array(fds.prefix(Int(count)))
        var line = first >= 0 ? [UInt8(first)] : []
        var byte: UInt8 = 0
        while first >= 0, line.last != UInt8(ascii: "\n"), line.count < 4096 {
            let n = read(fd, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            guard n == 1 else { break }
            line.append(byte)
        }
        let answer = String(decoding: line, as: UTF8.self).trimmingNewline
        guard answer.hasPrefix("started ") else {
            for descriptor in received { close(descriptor) }
            close(fd)
            throw RuntimeError(answer.hasPrefix("error: ") ? String(answer.dropFirst(7)) : "container \(id)'s monitor did not answer the request (the container is ending?)")
        }
        guard received.count == (request.terminal == nil ? 0 : 1) else {
            for descriptor in received { close(descriptor) }
            close(fd)
            throw RuntimeError("container \(id)'s monitor answered with \(received.count) descriptors")
        }
        return (fd, received.first)
    }

    /// Waits for the process's end on the connection, passing signals on; its exit status. The
    /// connection's end without one means the container ended, and the process with it.
    static func waitForEnd(_ fd: Int32, relay: SignalRelay) -> Int32 {
        var pending: [UInt8] = []
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: relay.fd, events: Int16(POLLIN), revents: 0)]
        while true {
            if poll(&fds, 2, -1) < 0 {
                if errno == EINTR { continue }
                return 137
            }
            if fds[1].revents != 0 {
                while let signal = relay.next() {
                    let line = Array("signal \(signal)\n".utf8)
                    _ = send(fd, line, line.count, Int32(MSG_NOSIGNAL))
                }
            }
            guard fds[0].revents != 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 256)
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return 128 + SIGKILL }
            pending += buffer[0..<n]
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                if line.hasPrefix("exited "), let status = Int32(line.dropFirst(7)) {
                    return SandboxEnd.fromWaitStatus(status).exitStatus
                }
            }
        }
    }
}

extension String {
    var trimmingNewline: String { hasSuffix("\n") ? String(dropLast()) : self }
}
