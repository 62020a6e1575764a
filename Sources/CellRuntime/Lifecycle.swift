import CCellSpawn
import CellAudit
import CellLauncher
import CellPolicy
import CellProfile
import Glibc

/// The container lifecycle engines drive: create → start → (kill) → delete, and state and ps.
///
/// Who supervises after `create` returns (docs/oci-runtime.md): `create` forks a **monitor**,
/// which runs the same launcher and supervisor as `cell run` — it clones the container's pid 1
/// (cell-init), holds the seccomp listener and writes the audit log — and `create` returns once
/// pid 1 has built the container and holds its process. The monitor's pid goes into
/// `--pid-file`: it is the process conmon or containerd's shim reaps as their subreaper, and its
/// exit status is the container's (the process's own status, 128+N after signal N). `state`
/// reports, and `kill` signals, the container's pid 1, which is in every namespace of the
/// container. pid 1 dies with the monitor (PR_SET_PDEATHSIG): a container never runs
/// unsupervised, unaudited.
public struct Lifecycle {
    public let store: StateStore
    public let log: RuntimeLog

    public init(store: StateStore, log: RuntimeLog) {
        self.store = store
        self.log = log
    }

    // MARK: - create

    public struct CreateOptions {
        public var bundle: String
        public var pidFile: String?
        public var consoleSocket: String?
        public var preserveFDs: Int = 0
        public init(bundle: String) { self.bundle = bundle }
    }

    /// Builds the container and leaves it held: its process waits for `start`.
    public func create(id: String, _ options: CreateOptions) throws(RuntimeError) {
        guard StateStore.isValidID(id) else { throw RuntimeError("invalid container id '\(TerminalText.escaped(id))'") }
        guard options.preserveFDs == 0 else { throw RuntimeError("--preserve-fds is not supported yet: the container gets descriptors 0-2 only") }
        guard let bundle = SandboxPath.normalize(options.bundle, relativeTo: currentDirectory()) else {
            throw RuntimeError("--bundle \(options.bundle): give a path without '..'")
        }
        guard let text = readSmallFile(bundle + "/config.json", limit: 4 << 20) else {
            throw RuntimeError("cannot read \(bundle)/config.json: \(errorText(errno))")
        }
        let config = try OCIConfig.parse(text, file: bundle + "/config.json")
        if options.consoleSocket != nil && !config.terminal {
            throw RuntimeError("--console-socket is given but process.terminal is false")
        }
        // The engine relays a container's terminal: without its socket nobody could.
        if config.terminal && options.consoleSocket == nil {
            throw RuntimeError("process.terminal is true: --console-socket is needed, for the pty's master")
        }
        var plan = try Lifecycle.plan(config, bundle: bundle)
        plan.container?.id = id
        plan.container?.consoleSocket = try options.consoleSocket.map { path throws(RuntimeError) in
            guard let absolute = SandboxPath.normalize(path, relativeTo: currentDirectory()) else {
                throw RuntimeError("--console-socket \(path): give a path without '..'")
            }
            return absolute
        }
        plan.container?.processSocket = store.processSocket(id)
        guard let helper = InitHelper.locate() else {
            throw RuntimeError("cannot find cell-init (looked in \(InitHelper.candidates().joined(separator: ", ")))")
        }
        // The pid file is opened now, before anything runs: a path that cannot take it fails
        // the create, not a running container.
        let pidFile = try Lifecycle.openPidFile(options.pidFile)
        defer { if let pidFile { ReportFile.release(pidFile) } }

        try store.create(id)
        var ready: [Int32] = [-1, -1]
        guard cell_pipe_cloexec(&ready) == 0 else {
            try? store.remove(id)
            throw RuntimeError("cannot make a pipe: \(errorText(errno))")
        }
        let monitor = fork()
        if monitor == 0 {
            // The monitor keeps its standard descriptors (the container's, which pid 1 takes
            // over), the ready pipe and the log: nothing else of the engine's. conmon leaves its
            // own sync sockets open in the runtime it starts; a monitor that kept them would
            // hold them open for the container's whole life.
            closeDescriptors(except: [0, 1, 2, ready[1]] + log.descriptors)
            exit(runMonitor(id: id, bundle: bundle, config: config, plan: plan, helper: helper, ready: ready[1]))
        }
        close(ready[1])
        guard monitor > 0 else {
            close(ready[0])
            try? store.remove(id)
            throw RuntimeError("cannot start the container's monitor: \(errorText(errno))")
        }
        let answer = readAll(ready[0])
        close(ready[0])
        guard answer == "ok" else {
            var status: Int32 = 0
            while waitpid(monitor, &status, 0) < 0 && errno == EINTR {}
            try? store.remove(id)
            throw RuntimeError(answer.hasPrefix("error: ") ? String(answer.dropFirst(7)) : "the container's monitor ended before the container was created")
        }
        if let pidFile, let code = ReportFile.replaceContents(pidFile, Array("\(monitor)".utf8)) {
            // The engine cannot follow a container whose pid it was not told: end it, and
            // leave nothing of it behind.
            try? delete(id: id, force: true)
            throw RuntimeError("cannot write the pid file \(pidFile.path): \(errorText(code))")
        }
    }

    /// `--pid-file`, opened before anything runs (ReportFile: never through a symlink).
    static func openPidFile(_ path: String?) throws(RuntimeError) -> ReportFile.Opened? {
        do {
            return try path.map { path throws(LaunchError) in try ReportFile.open(path, what: "--pid-file", append: false) }
        } catch {
            throw RuntimeError(error.message)
        }
    }

    /// The plan for `config`: the annotation's profile (or `default`) gives the policy.
    static func plan(_ config: OCIConfig, bundle: String) throws(RuntimeError) -> LaunchPlan {
        let profile = try CellAnnotations.profile(config, loader: ProfileLoader.forCaller())
        let auditLog = try CellAnnotations.auditLogPath(config) { () throws(RuntimeError) -> String in
            guard let dir = AuditDirectory.path(stateHome: environment("XDG_STATE_HOME"), home: environment("HOME"),
                                                realRoot: geteuid() == 0 && IdentityMapping.inInitialUserNamespace()) else {
                throw RuntimeError("annotation \(CellAnnotations.auditLog): no audit directory (set XDG_STATE_HOME or HOME)")
            }
            return try AuditDirectory.make(dir)
        }
        var plan = try ContainerPlanner(config: config, bundle: bundle, policy: .default, profileName: profile.name,
                                        auditLogPath: auditLog).plan()
        do {
            plan.seccomp = try Planner.seccompPolicy(profile, kept: plan.keptCapabilities)
        } catch {
            throw RuntimeError("profile \(profile.name): \(error.message)")
        }
        return plan
    }

    /// The monitor: runs the container to its end; its exit status is the container's.
    /// `ready` gets "ok" once the container is created and held, or "error: …".
    func runMonitor(id: String, bundle: String, config: OCIConfig, plan: LaunchPlan, helper: String, ready: Int32) -> Int32 {
        // Its own session: the engine's terminal signals for `create` are not the container's.
        _ = setsid()
        // The config's umask is pid 1's (and so the process's), inherited through the clone;
        // the monitor's own files get explicit modes.
        if let mask = config.umask { umask(mode_t(mask)) }
        // Recorded at once, pid 1 not yet known: `state` says creating, and `delete --force`
        // can end a container whose create an engine gave up on.
        guard let own = ProcessInfo.stat(getpid()),
              (try? store.write(ContainerRecord(id: id, bundle: bundle, pid: 0, pidStart: 0, monitor: getpid(), monitorStart: own.start,
                                                created: AuditClock.now(), started: false, annotations: config.annotations))) != nil else {
            _ = "error: cannot record the container in \(store.directory(id))".withCString { write(ready, $0, strlen($0)) }
            return 1
        }
        var readyFD = ready
        /// Tells `create`; false when it is gone (an engine's timeout killed it): nobody
        /// would ever learn of this container, so it is ended.
        func answer(_ text: String) -> Bool {
            guard readyFD >= 0 else { return false }
            let sent = text.withCString { write(readyFD, $0, strlen($0)) } == text.utf8.count
            close(readyFD)
            readyFD = -1
            return sent
        }
        var told = false
        let outcome = Launcher.run(plan, initHelper: helper, version: InitHelper.cellVersion) { pid in
            do throws(RuntimeError) {
                try waitForStart(id: id, bundle: bundle, config: config, pid: pid, monitorStart: own.start) {
                    told = answer("ok")
                    return told
                }
                return nil
            } catch {
                return error.message
            }
        }
        if case .setupFailed(let message) = outcome.end {
            // Before "ok", create reports it (and removes the directory); after, only the log can.
            if told {
                log.error("container \(id): \(message)")
            } else if !answer("error: " + message) {
                try? store.remove(id)
            }
        }
        if let summary = outcome.auditSummary { log.warning("container \(id): \(summary)") }
        for note in outcome.notes { log.warning("container \(id): \(note)") }
        return outcome.end.exitStatus
    }

    /// In the monitor, with the container built and held: records it, says so (`created`), then
    /// waits for `start` on the start FIFO, or for pid 1's end (a delete or kill before start).
    func waitForStart(id: String, bundle: String, config: OCIConfig, pid: pid_t, monitorStart: UInt64, created: () -> Bool) throws(RuntimeError) {
        guard let pidInfo = ProcessInfo.stat(pid) else { throw RuntimeError("cannot read the container's process in /proc") }
        let fifo = store.startFIFO(id)
        guard mkfifo(fifo, 0o600) == 0, chmod(fifo, 0o600) == 0 else { throw RuntimeError("cannot make \(fifo): \(errorText(errno))") }
        // Read end for the monitor, and a write end of its own so that the FIFO never reads as
        // hung up between engines' `start` calls; `start` opens it to write one byte.
        let reader = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW)
        let keeper = reader < 0 ? -1 : open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW)
        let exited = cell_pidfd_open(pid)
        defer { for fd in [reader, keeper, exited] where fd >= 0 { close(fd) } }
        guard reader >= 0, keeper >= 0, exited >= 0 else { throw RuntimeError("cannot open \(fifo): \(errorText(errno))") }
        var record = ContainerRecord(id: id, bundle: bundle, pid: pid, pidStart: pidInfo.start, monitor: getpid(), monitorStart: monitorStart,
                                     created: AuditClock.now(), started: false, annotations: config.annotations)
        try store.write(record)
        guard created() else { throw RuntimeError("create ended before the container was ready") }
        var fds = [pollfd(fd: reader, events: Int16(POLLIN), revents: 0), pollfd(fd: exited, events: Int16(POLLIN), revents: 0)]
        while true {
            if poll(&fds, 2, -1) < 0 {
                if errno == EINTR { continue }
                throw RuntimeError("waiting for start: \(errorText(errno))")
            }
            if fds[1].revents != 0 { throw RuntimeError("the container was ended before it started") }
            var byte: UInt8 = 0
            if fds[0].revents != 0 && read(reader, &byte, 1) == 1 && byte == UInt8(ascii: "s") { break }
        }
        unlink(fifo)
        record.started = true
        try store.write(record)
    }

    // MARK: - start, state, kill, delete

    public func start(id: String) throws(RuntimeError) {
        let record = try store.read(id)
        switch StateStore.status(record) {
        case .created: break
        case .creating: throw RuntimeError("container \(id) is still being created")
        case .running: throw RuntimeError("cannot start an already running container")
        case .stopped: throw RuntimeError("cannot start a container that has stopped")
        }
        // Non-blocking: with no reader (ENXIO) the monitor is gone, and nothing may start.
        let fd = open(store.startFIFO(id), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw RuntimeError("cannot start container \(id): its monitor is gone (\(errorText(errno)))") }
        let sent = write(fd, "s", 1)
        close(fd)
        guard sent == 1 else { throw RuntimeError("cannot start container \(id): \(errorText(errno))") }
        // Returns once the monitor has let the process go: `state` right after says running.
        for _ in 0..<10_000 {
            let now = try store.read(id)
            if now?.started == true || StateStore.status(now) == .stopped { return }
            usleep(1_000)
        }
        throw RuntimeError("container \(id) did not start within 10 seconds")
    }

    /// The runtime-spec state document.
    public func state(id: String) throws(RuntimeError) -> String {
        let record = try store.read(id)
        let status = StateStore.status(record)
        var fields: [(String, JSONField)] = [
            ("ociVersion", .string(Lifecycle.ociVersion)), ("id", .string(id)), ("status", .string(status.rawValue)),
            ("pid", .int(status == .created || status == .running ? Int(record?.pid ?? 0) : 0)),
            ("bundle", .string(record?.bundle ?? "")),
        ]
        if let record {
            fields.append(("created", .string(record.created)))
            fields.append(("annotations", .raw("{" + record.annotations.map { "\(JSONField.quote($0.name)):\(JSONField.quote($0.value))" }.joined(separator: ",") + "}")))
        }
        return "{" + fields.map { "\(JSONField.quote($0.0)):\($0.1.encoded)" }.joined(separator: ",") + "}\n"
    }

    public static let ociVersion = "1.0.2"

    public func kill(id: String, signal: Int32, all: Bool) throws(RuntimeError) {
        let record = try store.read(id)
        guard let record, [.created, .running].contains(StateStore.status(record)) else { throw RuntimeError("container not running") }
        // pid 1 (cell-init) passes the signal on to the process; SIGKILL ends pid 1 and with it
        // the whole pid namespace. --all: every process of the container's pid namespace too.
        var targets = [record.pid]
        if all, let namespace = namespaceOf(record.pid) {
            targets += processIDs().filter { $0 != record.pid && namespaceOf($0) == namespace }
        }
        for target in targets where Glibc.kill(target, signal) != 0 && errno != ESRCH {
            throw RuntimeError("cannot signal container \(id) (pid \(target)): \(errorText(errno))")
        }
    }

    public func delete(id: String, force: Bool) throws(RuntimeError) {
        let record = try store.read(id)
        let status = StateStore.status(record)
        if (status == .running || status == .creating) && !force {
            throw RuntimeError("cannot delete container \(id) that is not stopped: \(status.rawValue) (use --force)")
        }
        // A created container never ran its process: deleting it ends it (as runc does). One
        // still being created is ended through its monitor, whose death ends pid 1.
        if let record, status != .stopped {
            Glibc.kill(record.pid > 0 ? record.pid : record.monitor, SIGKILL)
        }
        if let record {
            // The monitor writes the audit log's end and leaves: wait for it, so that nothing of
            // the container is left when delete returns.
            for _ in 0..<10_000 where ProcessInfo.isAlive(record.monitor, start: record.monitorStart) { usleep(1_000) }
            if ProcessInfo.isAlive(record.monitor, start: record.monitorStart) { Glibc.kill(record.monitor, SIGKILL) }
        }
        try store.remove(id)
    }

    /// The container's processes: pid 1 and every process of its pid namespace, as host pids
    /// (as runc's `ps --format json` gives them), with their command lines.
    public func processes(id: String) throws(RuntimeError) -> [(pid: Int32, command: String)] {
        let record = try store.read(id)
        guard let record, [.created, .running].contains(StateStore.status(record)), let namespace = namespaceOf(record.pid) else {
            throw RuntimeError("container not running")
        }
        let pids = [record.pid] + processIDs().filter { $0 != record.pid && namespaceOf($0) == namespace }.sorted()
        return pids.map { pid in
            let raw = readSmallFile("/proc/\(pid)/cmdline") ?? ""
            return (pid, raw.split(separator: "\0").joined(separator: " "))
        }
    }

    func namespaceOf(_ pid: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/\(pid)/ns/pid", &buffer, buffer.count - 1)
        return n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
    }

    func processIDs() -> [Int32] {
        directoryEntries("/proc").compactMap { Int32($0) }
    }
}

/// Closes every open descriptor of this process but `kept`.
func closeDescriptors(except kept: [Int32]) {
    let open = directoryEntries("/proc/self/fd").compactMap { Int32($0) }
    for fd in open where !kept.contains(fd) { close(fd) }
}

func readAll(_ fd: Int32, limit: Int = 1 << 16) -> String {
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while bytes.count < limit {
        let n = read(fd, &buffer, buffer.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += buffer[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

func environment(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}
