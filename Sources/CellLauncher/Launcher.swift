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

/// Executes a launch: prepares what must exist before the sandbox (audit log, cgroup, signal
/// relay), starts creating the sandbox, builds the rest of the `LaunchPlan` and compiles the
/// seccomp filters while the kernel creates the namespaces, then hands the sandbox to the
/// `Supervisor` until it ends.
public enum Launcher {
    /// Signals that `cell` passes on to the sandbox instead of dying of them.
    public static let forwardedSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2]

    /// Runs a sandbox from `basics`; `makePlan` builds the whole plan (with the same basics) and
    /// runs while the sandbox's namespaces are being created. Returns the plan (nil when it could
    /// not be built) and the outcome.
    ///
    /// `begun`: a sandbox whose creation began before the basics were known (see
    /// `SandboxStart`); it is taken over if it was begun for these basics, abandoned otherwise.
    /// `processEnds`: the caller exits right after, so the launch's objects are kept for the
    /// process' end instead of freed (see `keepUntilExit`). `initHelper` finds cell-init; it is
    /// asked only when a sandbox is begun here (one begun early found it already).
    public static func run(_ basics: LaunchBasics, building makePlan: () throws(LaunchError) -> LaunchPlan,
                           initHelper: () throws(LaunchError) -> String, version: String, begun: SandboxStart? = nil,
                           processEnds: Bool = false) -> (plan: LaunchPlan?, outcome: SandboxOutcome) {
        // What was begun for other basics is ended now; what matches but is not taken over
        // below (an early failure) is ended on the way out. Either has run nothing of the
        // caller's: pid 1 still waits for the rest of its plan.
        var matching: SandboxStart?
        if let begun {
            if begun.matches(basics) { matching = begun } else { begun.abandon() }
        }
        let begun = matching
        defer { begun?.abandon() }
        let started = monotonicMilliseconds()
        func finish(_ end: SandboxEnd, notes: [String] = [], summary: String? = nil, limitsHit: [String] = []) -> SandboxOutcome {
            var usage = rusage()
            getrusage(RUSAGE_CHILDREN.rawValue, &usage)
            return SandboxOutcome(end: end, durationMilliseconds: monotonicMilliseconds() - started,
                                  maxRSSKilobytes: Int(usage.ru_maxrss), notes: notes, auditSummary: summary, limitsHit: limitsHit)
        }

        // A sandbox begun for these basics gets the rest of its plan before anything else here:
        // its pid 1 waits for it to build the filesystem view, and what follows (audit log,
        // limits, signal relay, filters) need not come first. pid 1 runs nothing of the
        // caller's before it has the filters, which come after all of it, and every way out
        // ends it before that.
        let early = begun.map { begun in EarlyHandOver(spawn: begun.takeOver(), makePlan) }
        defer { early?.spawn.end() }

        // The audit log is opened here, by the supervisor. The sandbox never holds its descriptor:
        // pid 1's descriptor table is copied when it is cloned (possibly before this, when it
        // was begun early), and every descriptor above 2 in it is closed once its maps are in.
        let audit: AuditLog
        do {
            audit = try AuditLog(path: basics.auditLogPath)
        } catch {
            return (nil, finish(.setupFailed(error.message)))
        }
        func failed(_ message: String, _ plan: LaunchPlan? = nil) -> (plan: LaunchPlan?, outcome: SandboxOutcome) {
            try? audit.write("error", [("message", .string(message))])
            return (plan, finish(.setupFailed(message)))
        }

        // An unprivileged process can lower its rlimits, never raise them: refuse, do not shrink.
        if let above = basics.limits.aboveHardLimits().first {
            return failed(above)
        }
        if let unmet = basics.limits.unmetRequirement() {
            return failed(unmet)
        }
        var cgroup: SandboxCgroup?
        if let parent = basics.limits.cgroup {
            do {
                cgroup = try SandboxCgroup(parent: parent, id: audit.sandbox, limits: basics.limits)
            } catch {
                return failed(error.message)
            }
        }
        defer { cgroup?.remove() }

        // Block the forwarded signals before the sandbox runs anything and read them from a
        // signalfd: one that arrives while the sandbox is being built waits in the queue and is
        // passed on once pid 1 runs, instead of killing cell mid-way.
        guard let relay = SignalRelay(signals: forwardedSignals) else {
            return failed("cannot set up signal forwarding: \(errorText(errno))")
        }
        defer { relay.close() }

        let spawn: SpawnPlan
        if let early {
            spawn = early.spawn
        } else {
            do {
                spawn = try SandboxStart(basics, cgroupProcsFD: cgroup?.procsFD ?? -1, initHelper: initHelper()).takeOver()
            } catch {
                return failed(error.message)
            }
        }
        // From here on, every way out waits for the spawner, reaps pid 1 and ends the spawner.
        defer { spawn.end() }
        var result = cell_spawn_result()
        func abort(_ message: String, _ plan: LaunchPlan? = nil) -> (plan: LaunchPlan?, outcome: SandboxOutcome) {
            // pid 1 sees a hand-over pipe close without its byte and stops; it is reaped, and
            // the message says why.
            spawn.end()
            return failed(message, plan)
        }

        // While the kernel creates the namespaces (the network namespace alone takes longer than
        // this), the rest of the plan is built and handed over (above, for a sandbox begun early)...
        let plan: LaunchPlan
        do throws(LaunchError) {
            if let early {
                guard let built = early.plan else { throw early.error ?? .setup("the plan could not be built") }
                plan = built
            } else {
                plan = try makePlan()
                spawn.complete(with: plan)
            }
        } catch {
            return abort(error.message)
        }
        // ...then the filters are compiled, while pid 1 builds the filesystem view.
        let filters: FilterSet
        switch spawn.filters.compile(plan.seccomp) {
        case .success(let set): filters = set
        case .failure(let error): return abort(error.message, plan)
        }
        if spawn.wait(&result) != 0 {
            return failed(SetupFailure.message(step: result.failed_step, errno: result.error, plan: plan), plan)
        }

        // User-mode networking: attach slirp4netns while cell-init waits, then let it go.
        var network: UserNetwork?
        if plan.network == .user && result.init_pid > 0 {
            let userNetwork = UserNetwork()
            do {
                try userNetwork.start(sandboxPID: result.init_pid, allowHostLoopback: plan.allowHostLoopback, publish: plan.publish)
            } catch {
                reapAbandoned(result)
                return failed(error.message, plan)
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
        if processEnds { keepUntilExit(spawn, supervisor, audit, filters, plan) }
        return (plan, outcome)
    }

    /// Keeps `objects` alive until the process exits. For a process about to exit, freeing what
    /// a launch built (the plan, the filters' rule tables, the supervisor) only costs time:
    /// ~0.1 ms per launch here, measured — the same reason clang does not free at exit
    /// (-disable-free). The kernel reclaims it all at exit.
    public static func keepUntilExit(_ objects: Any...) {
        keptUntilExit.append(objects)
    }
}

nonisolated(unsafe) private var keptUntilExit: [Any] = []

/// The rest of the plan built and handed over to a sandbox begun early (or why it could not be
/// built). A struct rather than a tuple of a Result: generic metadata is instantiated at run
/// time, and that showed in a launch's profile (~30 us).
private struct EarlyHandOver {
    let spawn: SpawnPlan
    var plan: LaunchPlan?
    var error: LaunchError?

    init(spawn: SpawnPlan, _ makePlan: () throws(LaunchError) -> LaunchPlan) {
        self.spawn = spawn
        do {
            let plan = try makePlan()
            spawn.complete(with: plan)
            self.plan = plan
        } catch {
            self.error = error
        }
    }
}

/// The creation of a sandbox, begun: a sealed copy of cell-init, the first part of the spawn
/// plan, and the spawner thread with pid 1 creating the namespaces.
///
/// `cell run` begins one before it has read the profile, for the settings nearly every launch
/// has (the caller's own ids, every namespace, no cgroup), so that the kernel's share of the
/// work overlaps the profile loading and plan building; `Launcher.run` takes it over when the
/// launch's basics match, and abandons it otherwise — pid 1 has run nothing of the caller's by
/// then: it waits for the rest of its plan.
public final class SandboxStart {
    let identity: IdentityMapping
    let namespaces: Set<Namespace>
    let command: [String]
    private let spawn: SpawnPlan
    private var owned = true

    /// Begins creating a sandbox for `basics` (only its ids, namespaces and command matter here).
    public init(_ basics: LaunchBasics, cgroupProcsFD: Int32 = -1, initHelper: String) throws(LaunchError) {
        identity = basics.identity
        namespaces = basics.namespaces
        command = basics.command
        let argv = CStringArray(basics.command)
        var failure: Int32 = 0
        guard let begun = cell_begin(basics.identity.outerUID, basics.identity.outerGID, basics.identity.denySetgroups ? 1 : 0,
                                     Int32(basics.namespaces.reduce(0) { $0 | $1.cBit }), argv.pointers, initHelper,
                                     cgroupProcsFD, &failure) else {
            let code = errno
            switch Int(failure) {
            case Int(CELL_BEGIN_HELPER): throw .setup("cannot load the helper \(initHelper): \(errorText(code))")
            case Int(CELL_BEGIN_THREAD): throw .setup("cannot start creating the sandbox: \(errorText(code))")
            default: throw .setup("cannot create the sandbox's setup pipes: \(errorText(code))")
            }
        }
        spawn = SpawnPlan(begun)
    }

    /// What `cell run` began from its raw arguments before it parsed them (`cell_begin_early`),
    /// if anything: the settings it guessed are read back from the plan pid 1 was cloned with.
    public static func takeEarly() -> SandboxStart? {
        cell_take_early().map(SandboxStart.init(early:))
    }

    private init(early begun: UnsafeMutablePointer<cell_begun>) {
        let plan = begun.pointee.plan
        identity = IdentityMapping(outerUID: plan.outer_uid, outerGID: plan.outer_gid, denySetgroups: plan.deny_setgroups != 0)
        namespaces = Set(Namespace.allCases.filter { Int(plan.namespaces) & $0.cBit != 0 })
        var command: [String] = []
        var index = 0
        while let word = plan.argv[index] {
            command.append(String(cString: word))
            index += 1
        }
        self.command = command
        spawn = SpawnPlan(begun)
    }

    /// Whether this was begun for what `basics` needs from the start.
    public func matches(_ basics: LaunchBasics) -> Bool {
        basics.identity == identity && basics.namespaces == namespaces && basics.command == command
            && basics.limits.cgroup == nil
    }

    /// The spawn, from now on the caller's to complete, wait for and end.
    func takeOver() -> SpawnPlan {
        owned = false
        return spawn
    }

    /// Stops what was begun, unless it was taken over: pid 1 stops at the plan it waits for and
    /// is reaped.
    public func abandon() {
        guard owned else { return }
        owned = false
        spawn.end()
    }

    deinit {
        abandon()
    }
}

/// Ends a sandbox whose setup the supervisor gave up on: kills pid 1 (and so the whole pid
/// namespace), reaps it, and closes what cell_spawn handed over.
private func reapAbandoned(_ result: cell_spawn_result) {
    if result.init_pid > 0 {
        kill(result.init_pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(result.init_pid, &status, 0) < 0 && errno == EINTR {}
    }
    close(result.status_fd)
    close(result.lifeline_fd)
    if result.listener_fd >= 0 { close(result.listener_fd) }
}

/// A begun sandbox creation (`cell_begun`: the plan's first part, the hand-over pipes, the
/// spawner), and the plan's second part with every string and buffer it points to, kept alive
/// until the spawner has ended.
final class SpawnPlan {
    let c: UnsafeMutablePointer<cell_spawn_plan>
    let filters: FilterCompilation
    private let begun: UnsafeMutablePointer<cell_begun>
    private var spawner: OpaquePointer?
    private var waited = false
    private var envp: CStringArray?
    private var strings: CStringArray?
    private var ops = UnsafeMutableBufferPointer<cell_mount_op>(start: nil, count: 0)
    private var rlimits = UnsafeMutableBufferPointer<cell_rlimit>(start: nil, count: 0)

    /// Takes `begun` over (freed with this object).
    init(_ begun: UnsafeMutablePointer<cell_begun>) {
        self.begun = begun
        c = cell_begun_plan(begun)
        spawner = begun.pointee.spawner
        filters = FilterCompilation(begun)
    }

    /// The second part, then its byte for pid 1.
    func complete(with plan: LaunchPlan) {
        let fixed = [plan.hostname, plan.workingDirectory, plan.workingDirectoryFallback ?? "", plan.rootBase]
        let strings = CStringArray(fixed + plan.mounts.flatMap { op in
            [op.source ?? "", op.destination]
        })
        let s = strings.pointers
        let ops = plan.mounts.enumerated().map { index, op in
            let base = fixed.count + 2 * index
            return cell_mount_op(
                kind: op.cKind, flags: op.cFlags,
                source: op.source == nil ? nil : UnsafePointer(s[base]),
                source_len: op.source?.utf8.count ?? 0,
                dest: UnsafePointer(s[base + 1]),
                size: op.size ?? 0, has_size: op.size == nil ? 0 : 1,
                mode: op.mode.map { Int32(bitPattern: $0) } ?? -1)
        }
        let rlimits = plan.limits.rlimits.map { limit in
            cell_rlimit(resource: limit.resource, soft: limit.value,
                        hard: limit.resource == Int32(RLIMIT_CPU.rawValue) ? limit.value + 1 : limit.value)
        }
        let envp = CStringArray(plan.environment)
        self.strings = strings
        self.envp = envp
        self.ops = .allocate(capacity: max(ops.count, 1))
        _ = self.ops.initialize(from: ops)
        self.rlimits = .allocate(capacity: max(rlimits.count, 1))
        _ = self.rlimits.initialize(from: rlimits)
        c.pointee.hostname = UnsafePointer(s[0])
        c.pointee.hostname_len = plan.hostname.utf8.count
        c.pointee.cwd = UnsafePointer(s[1])
        c.pointee.cwd_fallback = plan.workingDirectoryFallback == nil ? nil : UnsafePointer(s[2])
        c.pointee.root_base = UnsafePointer(s[3])
        c.pointee.mount_count = Int32(ops.count)
        c.pointee.mounts = UnsafePointer(self.ops.baseAddress)
        c.pointee.rlimit_count = Int32(rlimits.count)
        c.pointee.rlimits = UnsafePointer(self.rlimits.baseAddress)
        c.pointee.keep_caps = plan.keptCapabilities
        c.pointee.max_user_namespaces = plan.seccomp.allowNestedNamespaces ? -1 : 0
        c.pointee.wait_for_go = plan.network == .user ? 1 : 0
        c.pointee.envp = UnsafePointer(envp.pointers)
        cell_begun_hand_over(begun, Int32(CELL_HAND_OVER_PLAN))
    }

    /// Waits until pid 1 has executed cell-init or failed (cell_spawn_wait).
    func wait(_ result: inout cell_spawn_result) -> Int32 {
        waited = true
        return cell_spawn_wait(spawner, &result)
    }

    /// Once pid 1 has been reaped (or never existed). A spawn nobody waited for is stopped and
    /// reaped first: pid 1 may still be reading this plan.
    func end() {
        guard let spawner else { return }
        if !waited {
            // Nothing more will come: pid 1 stops at the first pipe it still waits on.
            cell_begun_cancel(begun)
            var result = cell_spawn_result()
            if wait(&result) == 0 { reapAbandoned(result) }
        }
        cell_spawn_end(spawner)
        self.spawner = nil
    }

    deinit {
        end()
        ops.deallocate()
        rlimits.deallocate()
        cell_begun_free(begun)
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
    private let storage: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private let bytes: UnsafeMutablePointer<CChar>

    /// One block for all the strings and one for the pointers: a launch passes a few hundred
    /// strings (four per mount operation), and a strdup each showed in its profile.
    init(_ strings: [String]) {
        let total = strings.reduce(0) { $0 + $1.utf8.count + 1 }
        bytes = .allocate(capacity: max(total, 1))
        storage = .allocate(capacity: strings.count + 1)
        var offset = 0
        for (index, string) in strings.enumerated() {
            // A copy of the string's own NUL-terminated storage (the generated /etc files among
            // them are kilobytes: a copy per byte showed in a launch's profile).
            let length = string.utf8.count
            _ = string.withCString { memcpy(bytes + offset, $0, length + 1) }
            (storage + index).initialize(to: bytes + offset)
            offset += length + 1
        }
        (storage + strings.count).initialize(to: nil)
    }

    /// The NULL-terminated array, valid until deinit.
    var pointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        storage
    }

    func withPointers<R>(_ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        body(storage)
    }

    deinit {
        storage.deallocate()
        bytes.deallocate()
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
