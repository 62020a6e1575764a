import CCellSpawn
import Glibc

/// What `cell run` reports when a sandbox is over.
public struct SandboxOutcome: Sendable {
    public var end: SandboxEnd
    public var durationMilliseconds: Int
    /// Peak resident set of the largest sandboxed process, as getrusage reports it.
    public var maxRSSKilobytes: Int
    /// Things the user should know that did not stop the run (e.g. the working directory).
    public var notes: [String]
}

/// Executes a `LaunchPlan`: spawns the sandbox (CCellSpawn) and supervises it to the end.
public enum Launcher {
    /// Signals that `cell` passes on to the sandbox instead of dying of them.
    public static let forwardedSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2]

    public static func run(_ plan: LaunchPlan, initHelper: String) -> SandboxOutcome {
        let started = monotonicMilliseconds()
        var notes: [String] = []
        func finish(_ end: SandboxEnd) -> SandboxOutcome {
            var usage = rusage()
            getrusage(RUSAGE_CHILDREN.rawValue, &usage)
            return SandboxOutcome(end: end, durationMilliseconds: monotonicMilliseconds() - started,
                                  maxRSSKilobytes: Int(usage.ru_maxrss), notes: notes)
        }

        // Compile the filters here, in the supervisor: the sandbox only loads ready programs.
        let baseline: CompiledFilter, policy: CompiledFilter
        do {
            baseline = try SeccompCompiler.compile(plan.seccomp.baseline())
            policy = try SeccompCompiler.compile(plan.seccomp)
        } catch {
            return finish(.setupFailed(error.message))
        }

        let initFD = cell_sealed_copy(initHelper, "cell-init")
        if initFD < 0 {
            return finish(.setupFailed("cannot load the helper \(initHelper): \(errorText(errno))"))
        }
        defer { close(initFD) }

        // Block the forwarded signals before the sandbox exists and read them from a signalfd:
        // one that arrives while the sandbox is being built waits in the queue and is passed on
        // once pid 1 runs, instead of killing cell and orphaning a half-built sandbox.
        guard let relay = SignalRelay(signals: forwardedSignals) else {
            return finish(.setupFailed("cannot set up signal forwarding: \(errorText(errno))"))
        }
        defer { relay.close() }

        let argv = CStringArray(plan.command)
        let envp = CStringArray(plan.environment)
        let hostname = CStringArray([plan.hostname])
        let cwd = CStringArray([plan.workingDirectory] + (plan.workingDirectoryFallback.map { [$0] } ?? []))

        var cPlan = cell_spawn_plan()
        cPlan.outer_uid = plan.identity.outerUID
        cPlan.outer_gid = plan.identity.outerGID
        cPlan.deny_setgroups = plan.identity.denySetgroups ? 1 : 0
        cPlan.namespaces = Int32(plan.namespaces.reduce(0) { $0 | $1.cBit })
        cPlan.hostname_len = plan.hostname.utf8.count
        cPlan.keep_caps = plan.keptCapabilities
        cPlan.max_user_namespaces = plan.seccomp.allowNestedNamespaces ? -1 : 0
        cPlan.init_fd = initFD
        cPlan.keep_fds = nil
        cPlan.keep_fds_count = 0

        // The filesystem view, flattened: every string lives in `mountStrings` until spawn returns.
        let mountStrings = CStringArray(plan.mounts.flatMap { op in
            [op.source ?? "", op.destination, op.size.map(String.init) ?? "", op.mode.map { String($0, radix: 8) } ?? ""]
        } + [plan.rootBase])

        var result = cell_spawn_result()
        let rc = mountStrings.withPointers { strings in
            var ops = plan.mounts.enumerated().map { index, op in
                cell_mount_op(
                    kind: op.cKind, flags: op.cFlags,
                    source: op.source == nil ? nil : UnsafePointer(strings[4 * index]),
                    source_len: op.source?.utf8.count ?? 0,
                    dest: UnsafePointer(strings[4 * index + 1]),
                    size: op.size == nil ? nil : UnsafePointer(strings[4 * index + 2]),
                    mode: op.mode == nil ? nil : UnsafePointer(strings[4 * index + 3]))
            }
            cPlan.mount_count = Int32(ops.count)
            cPlan.root_base = UnsafePointer(strings[4 * plan.mounts.count])
            return ops.withUnsafeMutableBufferPointer { buffer in
                cPlan.mounts = UnsafePointer(buffer.baseAddress)
                return hostname.withPointers { hostnamePointers in
            cwd.withPointers { cwdPointers in
                argv.withPointers { argvPointers in
                    envp.withPointers { envpPointers in
                        cPlan.hostname = UnsafePointer(hostnamePointers[0])
                        cPlan.cwd = UnsafePointer(cwdPointers[0])
                        cPlan.cwd_fallback = plan.workingDirectoryFallback == nil ? nil : UnsafePointer(cwdPointers[1])
                        cPlan.argv = argvPointers
                        cPlan.envp = envpPointers
                        return baseline.bpf.withUnsafeBufferPointer { baselineBytes in
                            policy.bpf.withUnsafeBufferPointer { policyBytes in
                                cPlan.seccomp_baseline = baselineBytes.baseAddress
                                cPlan.seccomp_baseline_len = baselineBytes.count
                                cPlan.seccomp_policy = policyBytes.baseAddress
                                cPlan.seccomp_policy_len = policyBytes.count
                                return cell_spawn(&cPlan, &result)
                            }
                        }
                    }
                }
            }
        }
            }
        }
        if rc != 0 {
            return finish(.setupFailed(SetupFailure.message(step: result.failed_step, errno: result.error, plan: plan)))
        }
        defer {
            close(result.status_fd)
            close(result.lifeline_fd)
        }

        let initPID = result.init_pid
        var ending: SandboxEnd?
        var setupFailure: SandboxEnd?

        // Supervise: pass signals on to pid 1 (cell-init forwards them to the command) and read
        // the sandbox's reports until every holder of the report pipe is gone.
        var fds = [pollfd(fd: result.status_fd, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: relay.fd, events: Int16(POLLIN), revents: 0)]
        loop: while true {
            let n = poll(&fds, nfds_t(fds.count), -1)
            if n < 0 {
                if errno == EINTR { continue }
                break
            }
            if fds[1].revents & Int16(POLLIN) != 0 {
                while let signal = relay.next() {
                    if initPID > 0 { kill(initPID, signal) }
                }
            }
            if fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                var report = cell_report()
                let got = withUnsafeMutableBytes(of: &report) { read(result.status_fd, $0.baseAddress, $0.count) }
                if got < 0 && errno == EINTR { continue }
                if got <= 0 { break loop }
                guard got == MemoryLayout<cell_report>.size else { continue }
                switch cell_report_kind(rawValue: UInt32(report.kind)) {
                case CELL_REPORT_FAILED:
                    setupFailure = setupFailure ?? .setupFailed(SetupFailure.message(
                        step: report.step, errno: report.error, plan: plan, operation: Int(report.value)))
                case CELL_REPORT_WARNING:
                    notes.append(SetupFailure.warning(step: report.step, errno: report.error, plan: plan))
                case CELL_REPORT_EXEC_FAILED:
                    ending = .commandNotExecutable(errno: report.error)
                case CELL_REPORT_EXITED:
                    // After an exec failure this is the forked child's 126/127: keep the cause.
                    if ending == nil { ending = SandboxEnd.fromWaitStatus(report.value) }
                default:
                    break
                }
            }
        }

        var initStatus: Int32 = 0
        if initPID > 0 {
            while waitpid(initPID, &initStatus, 0) < 0 && errno == EINTR {}
        }
        if let setupFailure { return finish(setupFailure) }
        if let ending { return finish(ending) }
        if initPID <= 0 {
            return finish(.setupFailed("the sandbox setup ended without a report"))
        }
        // No report from cell-init: it was killed (SIGKILL from outside, or the OOM killer), and
        // the kernel killed the whole sandbox with it.
        return finish(SandboxEnd.fromWaitStatus(initStatus))
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
