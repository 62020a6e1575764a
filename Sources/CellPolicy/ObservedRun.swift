/// What `cell learn` saw a command do: the system calls it made (with the argument values that
/// say what a call does, where there is one), the calls its profile refused, the paths it used,
/// the connections it attempted. Plain data, filled by the supervisor (CellAudit's CallLearner)
/// and written as a profile by CellProfile's LearnedProfile.
///
/// Bounded like the audit log: a command chooses how much it does, so distinct paths,
/// connections, refusals and argument values are capped; what is past a cap is counted.
public struct ObservedRun: Equatable, Sendable {
    /// A call the profile allowed: the values of its pinned argument (`LearnedArguments.pins`),
    /// or any arguments (not pinned, or more values than `Bounds.values`).
    public struct Call: Equatable, Sendable {
        public var values: Set<UInt64> = []
        public var anyArguments = false
        public init(values: Set<UInt64> = [], anyArguments: Bool = false) {
            self.values = values
            self.anyArguments = anyArguments
        }
    }

    /// How the command used a path.
    public enum PathUse: String, CaseIterable, Sendable {
        case lookup, read, execute, write, create, remove
        /// A use that changes the filesystem (a Landlock write right).
        public var writes: Bool { self == .write || self == .create || self == .remove }
    }

    public struct Path: Equatable, Sendable {
        public var uses: Set<PathUse> = []
        /// Looked for in the sandbox's view and not there (checked while it ran).
        public var missingInView = false
        /// ...but present on the host (checked once the sandbox is over: a check while it runs
        /// would take a time the sandbox could measure, and so learn what the host has).
        public var missingButOnHost = false
        public init(uses: Set<PathUse> = [], missingInView: Bool = false, missingButOnHost: Bool = false) {
            self.uses = uses
            self.missingInView = missingInView
            self.missingButOnHost = missingButOnHost
        }
    }

    public struct Bounds: Equatable, Sendable {
        public var values = 64
        public var paths = 20_000
        /// Of all the paths together (one may be 4 KiB).
        public var pathBytes = 4 << 20
        public var connections = 1_000
        public var denials = 1_000
        public init() {}
    }

    public var command: [String] = []
    public var calls: [String: Call] = [:]
    /// Refused by the profile, as "name" or "name(value)" for a pinned call: how often.
    public var denied: [String: Int] = [:]
    public var paths: [String: Path] = [:]
    /// "inet 127.0.0.1:80", "inet6 [::1]:53", "unix /run/x.sock", "unix @abstract": how often.
    public var connections: [String: Int] = [:]
    /// What went past a bound, by kind ("paths", "connections", "denials").
    public var dropped: [String: Int] = [:]
    public var bounds = Bounds()
    private var pathBytes = 0

    public init(command: [String] = []) {
        self.command = command
    }

    /// A call the profile let through.
    public mutating func allowed(_ name: String, args: [UInt64]) {
        var call = calls[name] ?? Call()
        if let pin = LearnedArguments.pins[name] {
            if !call.anyArguments {
                call.values.insert(pin.value(args))
                if call.values.count > bounds.values {
                    call.values = []
                    call.anyArguments = true
                }
            }
        } else {
            call.anyArguments = true
        }
        calls[name] = call
    }

    /// A call the profile refused.
    public mutating func refused(_ name: String, args: [UInt64]) {
        let key = LearnedArguments.pins[name].map { "\(name)(\($0.describe($0.value(args))))" } ?? name
        if denied[key] == nil && denied.count >= bounds.denials {
            dropped["denials", default: 0] += 1
            return
        }
        denied[key, default: 0] += 1
    }

    /// Whether `path` is recorded already (the supervisor then skips its existence checks).
    public func knows(_ path: String) -> Bool { paths[path] != nil }

    public mutating func used(_ path: String, _ use: PathUse, missingInView: Bool = false) {
        if paths[path] == nil {
            guard paths.count < bounds.paths && pathBytes + path.utf8.count <= bounds.pathBytes else {
                dropped["paths", default: 0] += 1
                return
            }
            pathBytes += path.utf8.count
        }
        paths[path, default: Path()].uses.insert(use)
        if missingInView { paths[path]!.missingInView = true }
    }

    public mutating func connected(_ address: String) {
        if connections[address] == nil && connections.count >= bounds.connections {
            dropped["connections", default: 0] += 1
            return
        }
        connections[address, default: 0] += 1
    }

    /// Folds `other` (another run of the same command) into this record, within the bounds.
    public mutating func merge(_ other: ObservedRun) {
        for (name, call) in other.calls {
            var mine = calls[name] ?? Call()
            mine.anyArguments = mine.anyArguments || call.anyArguments
            mine.values = mine.anyArguments ? [] : mine.values.union(call.values)
            if mine.values.count > bounds.values { (mine.values, mine.anyArguments) = ([], true) }
            calls[name] = mine
        }
        for (key, count) in other.denied {
            if denied[key] == nil && denied.count >= bounds.denials { dropped["denials", default: 0] += count } else { denied[key, default: 0] += count }
        }
        for (path, record) in other.paths {
            for use in record.uses { used(path, use, missingInView: record.missingInView) }
            if record.missingButOnHost && paths[path] != nil { paths[path]!.missingButOnHost = true }
        }
        for (address, count) in other.connections {
            if connections[address] == nil && connections.count >= bounds.connections {
                dropped["connections", default: 0] += count
            } else {
                connections[address, default: 0] += count
            }
        }
        for (kind, count) in other.dropped { dropped[kind, default: 0] += count }
    }

    /// /proc, /sys and /dev: the sandbox has its own; what the host has there says nothing
    /// about what the sandbox lacks.
    public static func inKernelTree(_ path: String) -> Bool {
        ["/proc", "/sys", "/dev"].contains { path == $0 || path.hasPrefix($0 + "/") }
    }
}

/// How `cell learn` generalizes what it sees into rules.
public enum LearnedArguments {
    /// The argument whose value says what a call does, and how the kernel reads it: whole
    /// (`mask` nil: clone's flags, socket's family — compared whole, as the baseline does) or
    /// its low 32 bits (an `int` or `unsigned int` parameter: the ioctl request, a prctl option,
    /// a personality).
    public struct Pin: Sendable {
        public var index: Int
        public var mask: UInt64?
        public var names: @Sendable (UInt64) -> String?

        public func value(_ args: [UInt64]) -> UInt64 {
            let raw = index < args.count ? args[index] : 0
            return mask.map { raw & $0 } ?? raw
        }

        /// The condition a learned profile writes for one value.
        public func condition(_ value: UInt64) -> SeccompPolicy.Condition {
            mask.map { SeccompPolicy.Condition(index: index, .maskedEqual, value, mask: $0) }
                ?? SeccompPolicy.Condition(index: index, .equal, value)
        }

        /// "0x5401 TCGETS", for comments and refusal records.
        public func describe(_ value: UInt64) -> String {
            "0x" + String(value, radix: 16) + (names(value).map { " " + $0 } ?? "")
        }
    }

    public static let pins: [String: Pin] = [
        "ioctl": Pin(index: 1, mask: 0xffff_ffff, names: ArgumentNames.ioctl),
        "socket": Pin(index: 0, mask: nil, names: ArgumentNames.family),
        "socketpair": Pin(index: 0, mask: nil, names: ArgumentNames.family),
        "clone": Pin(index: 0, mask: nil, names: ArgumentNames.cloneFlags),
        "unshare": Pin(index: 0, mask: nil, names: ArgumentNames.cloneFlags),
        "prctl": Pin(index: 0, mask: 0xffff_ffff, names: ArgumentNames.prctl),
        "personality": Pin(index: 0, mask: 0xffff_ffff, names: ArgumentNames.personality),
    ]

    /// The calls every learned profile allows, and that learning never stops for: those that
    /// act only on the calling process itself (memory, its own signals and threads, time, exit)
    /// or on a descriptor it already holds — which another, learned call gave it. Some appear
    /// only sometimes (futex under contention, restart_syscall after a stop, sched_yield,
    /// rt_sigreturn after a handler), so a re-run would trip on them; the rest are the hottest
    /// calls of any program, and stopping for them would make learning slow for nothing.
    public static let core: [String] = [
        // memory
        "brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
        // threads and their synchronization, the process's own signals
        "futex", "futex_waitv", "set_robust_list", "rseq", "set_tid_address", "sched_yield", "membarrier",
        "rt_sigreturn", "rt_sigprocmask", "rt_sigaction", "sigaltstack", "rt_sigsuspend", "rt_sigpending",
        "rt_sigtimedwait", "restart_syscall", "pause",
        // time, identity of the process, exit
        "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
        "getpid", "gettid", "getrandom", "exit", "exit_group",
        // descriptors already held
        "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
        "pwritev2", "lseek", "close", "fstat", "dup", "dup2", "dup3", "fcntl", "getdents64",
        "poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2",
    ]
}
