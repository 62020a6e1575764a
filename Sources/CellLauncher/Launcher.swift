import CCellSpawn
import CellAudit
import Glibc

/// What `cell run` reports when a sandbox is over.
public struct SandboxOutcome: Sendable {
    public var end: SandboxEnd
    public var durationMilliseconds: Int
    /// Peak resident set of the largest sandboxed process, as getrusage reports it.
    public var maxRSSKilobytes: Int
    /// Things the user should know that did not stop the run (e.g. the working directory).
    public var notes: [String]
    /// The one-line digest of violations when there is no audit log file (nil: none).
    public var auditSummary: String?
    /// Limits the sandbox ran into, as far as cell can tell: "timeout", "cpu_time" (SIGXCPU),
    /// "file_size" (SIGXFSZ).
    public var limitsHit: [String] = []
}

/// Executes a `LaunchPlan`: compiles the filters, spawns the sandbox (CCellSpawn) and hands it
/// to the `Supervisor` until it ends.
public enum Launcher {
    /// Signals that `cell` passes on to the sandbox instead of dying of them.
    public static let forwardedSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2]

    public static func run(_ plan: LaunchPlan, initHelper: String, version: String) -> SandboxOutcome {
        let started = monotonicMilliseconds()
        func finish(_ end: SandboxEnd, notes: [String] = [], summary: String? = nil, limitsHit: [String] = []) -> SandboxOutcome {
            var usage = rusage()
            getrusage(RUSAGE_CHILDREN.rawValue, &usage)
            return SandboxOutcome(end: end, durationMilliseconds: monotonicMilliseconds() - started,
                                  maxRSSKilobytes: Int(usage.ru_maxrss), notes: notes, auditSummary: summary, limitsHit: limitsHit)
        }

        // The audit log is opened here, by the supervisor, before the sandbox exists: the
        // sandbox never holds its descriptor (every descriptor above 2 is closed in the child).
        let audit: AuditLog
        do {
            audit = try AuditLog(path: plan.auditLogPath)
        } catch {
            return finish(.setupFailed(error.message))
        }
        func failed(_ message: String) -> SandboxOutcome {
            try? audit.write("error", [("message", .string(message))])
            return finish(.setupFailed(message))
        }

        // An unprivileged process can lower its rlimits, never raise them: refuse, do not shrink.
        if let above = plan.limits.aboveHardLimits().first {
            return failed(above)
        }
        if let unmet = plan.limits.unmetRequirement() {
            return failed(unmet)
        }
        var cgroup: SandboxCgroup?
        if let parent = plan.limits.cgroup {
            do {
                cgroup = try SandboxCgroup(parent: parent, id: audit.sandbox, limits: plan.limits)
            } catch {
                return failed(error.message)
            }
        }
        defer { cgroup?.remove() }

        // The filters are compiled in the supervisor (the sandbox only loads ready programs), on
        // a thread of their own while the sandbox is being built; pid 1 waits for them last.
        guard let compilation = FilterCompilation(plan.seccomp) else {
            return failed("cannot create the seccomp filters' pipe: \(errorText(errno))")
        }

        let initFD = cell_sealed_copy(initHelper, "cell-init")
        if initFD < 0 {
            return failed("cannot load the helper \(initHelper): \(errorText(errno))")
        }
        defer { close(initFD) }

        // Block the forwarded signals before the sandbox exists and read them from a signalfd:
        // one that arrives while the sandbox is being built waits in the queue and is passed on
        // once pid 1 runs, instead of killing cell and orphaning a half-built sandbox.
        guard let relay = SignalRelay(signals: forwardedSignals) else {
            return failed("cannot set up signal forwarding: \(errorText(errno))")
        }
        defer { relay.close() }

        var result = cell_spawn_result()
        let rc = SpawnRequest(plan: plan, initFD: initFD, filters: compilation, cgroupProcsFD: cgroup?.procsFD ?? -1).spawn(&result)
        let filters: FilterSet
        switch compilation.finish() {
        case .success(let set):
            filters = set
        case .failure(let error):
            // pid 1 saw the pipe close without a byte and stopped: reap it, say why.
            if rc == 0 { abandon(result) }
            return failed(error.message)
        }
        if rc != 0 {
            return failed(SetupFailure.message(step: result.failed_step, errno: result.error, plan: plan))
        }

        // User-mode networking: attach slirp4netns while cell-init waits, then let it go.
        var network: UserNetwork?
        if plan.network == .user && result.init_pid > 0 {
            let userNetwork = UserNetwork()
            do {
                try userNetwork.start(sandboxPID: result.init_pid, allowHostLoopback: plan.allowHostLoopback, publish: plan.publish)
            } catch {
                abandon(result)
                return failed(error.message)
            }
            network = userNetwork
        }
        if plan.network == .user {
            writeAll(result.lifeline_fd, "g")
        }
        defer { network?.stop() }

        try? audit.write("start", [
            ("profile", .string(plan.profileName)), ("command", .strings(plan.command)),
            ("namespaces", .strings(plan.namespaceNames)), ("policy", .string(plan.seccomp.name)),
            ("host_pid", .int(Int(result.init_pid))), ("cell_version", .string(version)),
        ])

        let supervisor = Supervisor(plan: plan, spawned: result, decisions: filters.decisions, audit: audit, relay: relay)
        let end = supervisor.run()
        try? audit.flushSuppressed()
        var exitFields: [(String, JSONField)] = [("status", .int(Int(end.exitStatus)))]
        if case .signaled(let s) = end { exitFields.append(("signal", .int(Int(s)))) } else { exitFields.append(("signal", .null)) }
        if case .setupFailed(let m) = end { exitFields.append(("error", .string(m))) }
        var limitsHit = supervisor.limitsHit
        for which in cgroup?.limitsHit() ?? [] where !limitsHit.contains(which) {
            limitsHit.append(which)
            try? audit.write("limit", [("which", .string(which))])
        }
        let outcome = finish(end, notes: (cgroup?.notes ?? []) + supervisor.notes, summary: plan.auditLogPath == nil ? audit.summaryLine() : nil,
                             limitsHit: limitsHit)
        exitFields += [("duration_ms", .int(outcome.durationMilliseconds)), ("max_rss_kb", .int(outcome.maxRSSKilobytes)),
                       ("violations", .int(audit.violations))]
        try? audit.write("exit", exitFields)
        return outcome
    }
}

/// Ends a sandbox whose setup the supervisor gave up on: kills pid 1 (and so the whole pid
/// namespace), reaps it, and closes what cell_spawn handed over.
private func abandon(_ result: cell_spawn_result) {
    if result.init_pid > 0 {
        kill(result.init_pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(result.init_pid, &status, 0) < 0 && errno == EINTR {}
    }
    close(result.status_fd)
    close(result.lifeline_fd)
    if result.listener_fd >= 0 { close(result.listener_fd) }
}

/// The C plan for `cell_spawn`, with every string and buffer it points to kept alive.
struct SpawnRequest {
    let plan: LaunchPlan
    let initFD: Int32
    let filters: FilterCompilation
    let cgroupProcsFD: Int32

    func spawn(_ result: inout cell_spawn_result) -> Int32 {
        let argv = CStringArray(plan.command)
        let envp = CStringArray(plan.environment)
        // One array for every other string: hostname, cwd, fallback, root base, then four per mount.
        let fixed = [plan.hostname, plan.workingDirectory, plan.workingDirectoryFallback ?? "", plan.rootBase]
        let strings = CStringArray(fixed + plan.mounts.flatMap { op in
            [op.source ?? "", op.destination, op.size.map(String.init) ?? "", op.mode.map { String($0, radix: 8) } ?? ""]
        })

        var c = cell_spawn_plan()
        c.outer_uid = plan.identity.outerUID
        c.outer_gid = plan.identity.outerGID
        c.deny_setgroups = plan.identity.denySetgroups ? 1 : 0
        c.namespaces = Int32(plan.namespaces.reduce(0) { $0 | $1.cBit })
        c.hostname_len = plan.hostname.utf8.count
        c.keep_caps = plan.keptCapabilities
        c.max_user_namespaces = plan.seccomp.allowNestedNamespaces ? -1 : 0
        c.init_fd = initFD
        c.seccomp_listener = 1
        c.cgroup_procs_fd = cgroupProcsFD
        c.unprivileged_ports = plan.namespaces.contains(.net) ? 1 : 0
        c.wait_for_go = plan.network == .user ? 1 : 0
        let rlimits = plan.limits.rlimits.map { limit in
            cell_rlimit(resource: limit.resource, soft: limit.value,
                        hard: limit.resource == Int32(RLIMIT_CPU.rawValue) ? limit.value + 1 : limit.value)
        }
        c.rlimit_count = Int32(rlimits.count)
        return strings.withPointers { s in
            c.hostname = UnsafePointer(s[0])
            c.cwd = UnsafePointer(s[1])
            c.cwd_fallback = plan.workingDirectoryFallback == nil ? nil : UnsafePointer(s[2])
            c.root_base = UnsafePointer(s[3])
            let ops = plan.mounts.enumerated().map { index, op in
                let base = fixed.count + 4 * index
                return cell_mount_op(
                    kind: op.cKind, flags: op.cFlags,
                    source: op.source == nil ? nil : UnsafePointer(s[base]),
                    source_len: op.source?.utf8.count ?? 0,
                    dest: UnsafePointer(s[base + 1]),
                    size: op.size == nil ? nil : UnsafePointer(s[base + 2]),
                    mode: op.mode == nil ? nil : UnsafePointer(s[base + 3]))
            }
            c.mount_count = Int32(ops.count)
            return ops.withUnsafeBufferPointer { opsBuffer in
                c.mounts = opsBuffer.baseAddress
                return rlimits.withUnsafeBufferPointer { rl in
                c.rlimits = rl.baseAddress
                return argv.withPointers { a in
                    envp.withPointers { e in
                        c.argv = a
                        c.envp = e
                        c.filters = UnsafePointer(filters.shared)
                        c.filters_ready_fd = filters.readyFD
                        return cell_spawn(&c, &result)
                    }
                }
                }
            }
        }
    }
}

extension Namespace {
    var cBit: Int {
        switch self {
        case .mount: return Int(CELL_NS_MOUNT)
        case .pid: return Int(CELL_NS_PID)
        case .net: return Int(CELL_NS_NET)
        case .ipc: return Int(CELL_NS_IPC)
        case .uts: return Int(CELL_NS_UTS)
        case .cgroup: return Int(CELL_NS_CGROUP)
        case .time: return Int(CELL_NS_TIME)
        }
    }
}

/// NUL-terminated C strings with a NULL-terminated pointer array, freed with the value.
final class CStringArray {
    private var pointers: [UnsafeMutablePointer<CChar>?]

    init(_ strings: [String]) {
        pointers = strings.map { strdup($0) } + [nil]
    }

    func withPointers<R>(_ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    deinit {
        for pointer in pointers { free(pointer) }
    }
}

/// Forwarded signals, blocked and read from a signalfd.
final class SignalRelay {
    let fd: Int32

    init?(signals: [Int32]) {
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in signals { sigaddset(&mask, signal) }
        var saved = sigset_t()
        sigprocmask(SIG_BLOCK, &mask, &saved)
        fd = signalfd(-1, &mask, Int32(SFD_CLOEXEC | SFD_NONBLOCK))
        if fd < 0 {
            sigprocmask(SIG_SETMASK, &saved, nil)
            return nil
        }
    }

    /// The next pending signal, or nil when none is queued.
    func next() -> Int32? {
        var info = signalfd_siginfo()
        let n = withUnsafeMutableBytes(of: &info) { read(fd, $0.baseAddress, $0.count) }
        return n == MemoryLayout<signalfd_siginfo>.size ? Int32(info.ssi_signo) : nil
    }

    /// Closes the signalfd. The signals stay blocked: one that arrives after the sandbox ended
    /// must not kill cell before it reports the command's status.
    func close() {
        Glibc.close(fd)
    }
}

func monotonicMilliseconds() -> Int {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec * 1000 + now.tv_nsec / 1_000_000
}
