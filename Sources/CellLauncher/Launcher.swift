import CCellSpawn
import CellAudit
import CellPolicy
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
    /// `cell learn`: what the command was seen doing.
    public var observed: ObservedRun?
}

/// Executes a launch, as one list of steps: what must exist before the sandbox (audit log,
/// limits, cgroup, signal relay), then pid 1 — cloned, mapped, handed the setup part of the
/// plan — then the seccomp filters, compiled while pid 1 builds the sandbox, and then the
/// `Supervisor` until the sandbox ends.
public enum Launcher {
    /// Signals that `cell` passes on to the sandbox instead of dying of them.
    public static let forwardedSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2]

    /// Runs `plan` with the pid-1 program at `initHelper` until the sandbox ends. `learning`:
    /// `cell learn`'s run, where every call outside the core is seen (CallLearner) and the
    /// outcome says what the command did.
    ///
    /// `whenHeld` (cell-runtime): called with pid 1's pid once the container is built and its
    /// command held; it returns when the command may start (nil) or must not (why).
    public static func run(_ plan: LaunchPlan, initHelper: String, version: String, learning: Bool = false,
                           whenHeld: ((pid_t) -> String?)? = nil) -> SandboxOutcome {
        let started = monotonicMilliseconds()
        func finish(_ end: SandboxEnd, notes: [String] = [], summary: String? = nil, limitsHit: [String] = []) -> SandboxOutcome {
            var usage = rusage()
            getrusage(RUSAGE_CHILDREN.rawValue, &usage)
            return SandboxOutcome(end: end, durationMilliseconds: monotonicMilliseconds() - started,
                                  maxRSSKilobytes: Int(usage.ru_maxrss), notes: notes, auditSummary: summary, limitsHit: limitsHit)
        }

        // The audit log is opened by the supervisor before the sandbox exists, close-on-exec:
        // the trampoline closes every descriptor but cell-init's own before anything runs.
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

        if let problem = StandardDescriptors.problem(skipping: plan.terminal?.descriptors ?? []) { return failed(problem) }
        // An overlay's kept changes say which tree they were made over (`cell changes`).
        for op in plan.mounts where op.kind == .overlay {
            if let changes = op.changes, let lower = op.source {
                do { try OverlayChanges.recordLower(lower, in: changes) } catch { return failed(error.message) }
            }
        }
        // An unprivileged process can lower its rlimits, never raise them: refuse, do not shrink.
        if let above = plan.limits.aboveHardLimits().first { return failed(above) }
        if let unmet = plan.limits.unmetRequirement() { return failed(unmet) }
        var cgroup: SandboxCgroup?
        switch HostCgroupTree.find(plan.limits.cgroup, id: audit.sandbox) {
        case .success(let placement):
            do {
                cgroup = try SandboxCgroup(placement, limits: plan.limits)
            } catch {
                return failed(error.message)
            }
        case .failure(let unavailable):
            // `auto` without a delegated cgroup: rlimits only, silently (cell doctor says why),
            // unless the profile requires the sandbox-wide memory limit only a cgroup gives.
            if plan.limits.cgroup == .auto && plan.limits.required.contains("memory") {
                return failed("the profile requires a sandbox-wide memory limit, but no delegated cgroup v2 was found: \(unavailable.reason) (cell doctor says how to get one; or --cgroup PATH)")
            }
        }
        defer { cgroup?.remove() }

        // Block the forwarded signals before the sandbox exists and read them from a signalfd:
        // one that arrives while the sandbox is being built waits in the queue and is passed on
        // once pid 1 runs, instead of killing cell mid-way.
        // With a pty, the terminal's own signals (window size, stop, continue) are cell's.
        guard let relay = SignalRelay(signals: forwardedSignals + (plan.relaysTerminal ? TerminalRelay.signals : [])) else {
            return failed("cannot set up signal forwarding: \(errorText(errno))")
        }
        defer { relay.close() }

        // --isolation landlock: the private TMPDIR and HOME, and the supervisor as the subreaper
        // that ends every descendant (Descendants), as a pid namespace would — before the spawn,
        // so that no process of the sandbox can ever be orphaned past it.
        if let dir = plan.privateDirectory {
            guard mkdir(dir, 0o700) == 0 else { return failed("cannot make the sandbox's private directory \(dir): \(errorText(errno))") }
        }
        defer { if let dir = plan.privateDirectory { removeTree(dir) } }
        if plan.isolation == .landlock {
            do throws(LaunchError) { try Descendants.adopt() } catch { return failed(error.message) }
        }

        // pid 1: cloned, mapped, and released to execute cell-init, which reads the plan...
        let sandbox: SandboxProcess
        do {
            sandbox = try SandboxProcess.spawn(plan, initHelper: initHelper, cgroupProcs: cgroup?.procsFD ?? -1)
        } catch {
            return failed(error.message)
        }
        // ...whose setup part it executes while the filters are compiled here (plain overlap:
        // the filters are needed only at the end of pid 1's setup). A send that fails means
        // pid 1 is gone; its report says why, and the supervisor reads it below.
        _ = sandbox.send(PlanEncoding.header + PlanEncoding.encode(plan.setupRecords()))
        var filters: FilterSet
        do {
            filters = learning ? try SeccompCompiler.learningFilters(plan.seccomp)
                : try SeccompCompiler.compileFilters(plan.seccomp, takingProcesses: plan.container != nil)
            if let engine = plan.container?.engineSeccomp {
                filters.engine = try SeccompCompiler.engineFilter(engine, deferringTo: filters.decisions)
            }
        } catch {
            // pid 1 waits for its filters and has run nothing of the caller's: it is ended.
            sandbox.kill()
            return failed(error.message)
        }
        _ = sandbox.send(PlanEncoding.encode(filters.records))

        try? audit.write("start", [
            ("profile", .string(plan.profileName)), ("command", .strings(plan.command)),
            ("namespaces", .strings(plan.namespaceNames)), ("policy", .string(plan.seccomp.name)),
            ("host_pid", .int(Int(sandbox.pid))), ("cell_version", .string(version)),
            ("landlock", plan.landlock.map { .int(Int($0.abi)) } ?? .null), ("isolation", .string(plan.isolation.rawValue)),
        ] + (learning ? [("learning", .bool(true))] : []) + (plan.container?.id.map { [("container", .string($0))] } ?? []))

        // User-mode networking: the helper (pasta or slirp4netns) attaches to pid 1's network
        // namespace while the command is held (CELL_REC_HOLD), and must never outlive the sandbox.
        var network: UserNetwork?
        defer { network?.stop() }
        // --net proxy: cell-proxy on the listeners pid 1 handed out, started while the command
        // is held likewise; its events are the supervisor's to read.
        let proxy = plan.network == .proxy ? EgressProxy() : nil
        defer { proxy?.stop() }
        var learner: CallLearner?
        let supervisor = Supervisor(plan: plan, sandbox: sandbox, decisions: filters.decisions, audit: audit, relay: relay, proxy: proxy,
                                    makeHandler: !learning ? nil : { listener in
            let handler = CallLearner(listener: listener, decisions: filters.decisions, log: audit, run: ObservedRun(command: plan.command),
                                      sandboxPID: sandbox.pid)
            learner = handler
            return handler
        }) { handedOut in
            if let whenHeld, let problem = whenHeld(sandbox.pid) { return problem }
            if let proxy {
                do throws(LaunchError) {
                    try proxy.start(listeners: handedOut, policy: plan.egress ?? EgressPolicy(rules: []))
                    cgroup?.adopt(proxy.pid)
                    return nil
                } catch {
                    return error.message
                }
            }
            guard plan.network == .user else { return nil }
            let userNetwork = UserNetwork(helper: plan.networkHelper)
            network = userNetwork
            do throws(LaunchError) {
                try userNetwork.start(sandboxPID: sandbox.pid, allowHostLoopback: plan.allowHostLoopback, publish: plan.publish,
                                      rootMapped: plan.identity.innerUID == 0 && plan.identity.innerGID == 0)
                cgroup?.adopt(userNetwork.pid)
                return nil
            } catch {
                return error.message
            }
        }
        let end = supervisor.run()
        // The proxy's last decisions (connections open until the end) belong in this log.
        proxy?.stop(draining: audit)
        if plan.isolation == .landlock { Descendants.killAll() }
        var exitFields: [(String, JSONField)] = [("status", .int(Int(end.exitStatus)))]
        if case .signaled(let s) = end { exitFields.append(("signal", .int(Int(s)))) } else { exitFields.append(("signal", .null)) }
        if case .setupFailed(let m) = end { exitFields.append(("error", .string(m))) }
        var limitsHit = supervisor.limitsHit
        for which in cgroup?.limitsHit() ?? [] where !limitsHit.contains(which) {
            limitsHit.append(which)
            try? audit.record("limit", keyField: "which", key: which) { [("which", .string(which))] }
        }
        let failedDuringRun = audit.failure != nil
        try? audit.flushSuppressed()
        var outcome = finish(end, notes: (cgroup?.notes ?? []) + supervisor.notes + audit.notes, summary: plan.auditLogPath == nil ? audit.summaryLine() : nil,
                             limitsHit: limitsHit)
        outcome.observed = learner?.finish()
        exitFields += [("duration_ms", .int(outcome.durationMilliseconds)), ("max_rss_kb", .int(outcome.maxRSSKilobytes)),
                       ("violations", .int(audit.violations))]
        try? audit.write("exit", exitFields)
        // The end of the run could not be recorded (the disk filled, through a writable bind on
        // the log's filesystem, say): never silently. The counts go to stderr instead.
        if !failedDuringRun, let failure = audit.failure {
            outcome.notes.append("\(failure); the log lacks this run's end: \(audit.summaryLine() ?? "no violations")")
        }
        return outcome
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

/// Forwarded signals, blocked and read from a signalfd.
public final class SignalRelay {
    public let fd: Int32

    public init?(signals: [Int32]) {
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
    public func next() -> Int32? {
        var info = signalfd_siginfo()
        let n = withUnsafeMutableBytes(of: &info) { read(fd, $0.baseAddress, $0.count) }
        return n == MemoryLayout<signalfd_siginfo>.size ? Int32(info.ssi_signo) : nil
    }

    /// Closes the signalfd. The signals stay blocked: one that arrives after the sandbox ended
    /// must not kill cell before it reports the command's status.
    public func close() {
        Glibc.close(fd)
    }
}

func monotonicMilliseconds() -> Int {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec * 1000 + now.tv_nsec / 1_000_000
}
