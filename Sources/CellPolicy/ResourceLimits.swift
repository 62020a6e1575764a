import Glibc

/// The ceilings of one sandbox. Without a delegated cgroup (as on hosts with a hybrid cgroup
/// layout, where a user cannot create cgroups), each is enforced by an rlimit set in the
/// sandbox's pid 1 before the lock-down, and inherited by every process:
///
/// | limit        | rlimit        | what it bounds |
/// | ---          | ---           | --- |
/// | `memory`     | RLIMIT_DATA   | each process's private writable memory (heap, anonymous mappings) |
/// | `cpuTime`    | RLIMIT_CPU    | each process's CPU seconds (SIGXCPU, then SIGKILL) |
/// | `fileSize`   | RLIMIT_FSIZE  | the size of any file a process writes (EFBIG) |
/// | `openFiles`  | RLIMIT_NOFILE | descriptors per process |
/// | `processes`  | RLIMIT_NPROC  | processes of the sandbox: the kernel counts them per (user namespace, uid), so the count is the sandbox's own, not the caller's |
/// | `addressSpace` | RLIMIT_AS   | each process's whole address space, shared mappings included |
///
/// `memory` is RLIMIT_DATA rather than RLIMIT_AS: AS counts address space that is only
/// reserved (language runtimes reserve gigabytes they never touch) and would break ordinary
/// programs, while DATA counts what a balloon actually grows. DATA does not count shared
/// memory (memfd, MAP_SHARED|MAP_ANONYMOUS): `addressSpace`, set well above `memory`, bounds
/// that per process, and with `memory` the sandbox's own kernel.shmall bounds SysV segments.
/// All are per process, not a total for the sandbox: that needs a cgroup (`--cgroup`). Core
/// dumps are always off (RLIMIT_CORE 0).
public struct ResourceLimits: Equatable, Sendable {
    public var memory: UInt64?
    public var cpuTime: UInt64?
    public var fileSize: UInt64?
    public var openFiles: UInt64?
    public var processes: UInt64?
    public var addressSpace: UInt64?
    /// Wall clock, milliseconds: SIGTERM to the sandbox, then SIGKILL after `killAfter`.
    public var timeout: UInt64?
    public var killAfter: UInt64
    /// Where the sandbox's cgroup comes from (sandbox-wide memory and process limits).
    public var cgroup: CgroupChoice = .none
    /// Limits that must hold for the sandbox as a whole: cell refuses to start when only a
    /// per-process fallback is possible. ("memory" needs a cgroup; the others are sandbox-wide
    /// or per-file by nature.)
    public var required: [String] = []

    public static let defaultKillAfter: UInt64 = 2000

    public init(memory: UInt64? = nil, cpuTime: UInt64? = nil, fileSize: UInt64? = nil, openFiles: UInt64? = nil,
                processes: UInt64? = nil, timeout: UInt64? = nil, killAfter: UInt64 = ResourceLimits.defaultKillAfter,
                cgroup: CgroupChoice = .none) {
        self.cgroup = cgroup
        self.memory = memory
        self.cpuTime = cpuTime
        self.fileSize = fileSize
        self.openFiles = openFiles
        self.processes = processes
        self.timeout = timeout
        self.killAfter = killAfter
    }

    /// Names as profiles and messages use them.
    public static let names = ["memory", "cpu_time", "file_size", "open_files", "pids", "address_space", "timeout"]

    /// The rlimits to set (resource, soft value), RLIMIT_CORE 0 always. The hard value equals
    /// the soft one, except for RLIMIT_CPU, whose hard limit is one second later: at the soft
    /// limit the kernel sends SIGXCPU, at the hard one SIGKILL, and equal values would skip
    /// the SIGXCPU that tells what happened.
    public var rlimits: [(resource: Int32, value: UInt64, name: String)] {
        var list: [(Int32, UInt64, String)] = [(Int32(RLIMIT_CORE.rawValue), 0, "core")]
        if let v = memory { list.append((Int32(RLIMIT_DATA.rawValue), v, "memory")) }
        if let v = cpuTime { list.append((Int32(RLIMIT_CPU.rawValue), v, "cpu_time")) }
        if let v = fileSize { list.append((Int32(RLIMIT_FSIZE.rawValue), v, "file_size")) }
        if let v = openFiles { list.append((Int32(RLIMIT_NOFILE.rawValue), v, "open_files")) }
        if let v = processes { list.append((6 /* RLIMIT_NPROC: Glibc does not export it to Swift */, v, "pids")) }
        if let v = addressSpace { list.append((Int32(RLIMIT_AS.rawValue), v, "address_space")) }
        return list
    }

    /// The kernel's name of an rlimit resource, for --dry-run.
    public static func rlimitName(_ resource: UInt32) -> String {
        switch resource {
        case RLIMIT_CORE.rawValue: return "RLIMIT_CORE"
        case RLIMIT_DATA.rawValue: return "RLIMIT_DATA"
        case RLIMIT_CPU.rawValue: return "RLIMIT_CPU"
        case RLIMIT_FSIZE.rawValue: return "RLIMIT_FSIZE"
        case RLIMIT_NOFILE.rawValue: return "RLIMIT_NOFILE"
        case 6: return "RLIMIT_NPROC"
        case RLIMIT_AS.rawValue: return "RLIMIT_AS"
        default: return "resource \(resource)"
        }
    }

    /// Each limit that asks for more than the caller's own hard limit: an unprivileged process
    /// can lower its rlimits but never raise them, so cell refuses rather than run with less.
    public func aboveHardLimits() -> [String] {
        rlimits.compactMap { resource, value, name in
            var current = rlimit()
            guard getrlimit(__rlimit_resource_t(UInt32(resource)), &current) == 0 else { return nil }
            let hard = UInt64(current.rlim_max)
            return hard != UInt64.max && value > hard // RLIM_INFINITY is all ones
                ? "--\(name.replacingUnderscores()) \(value) is above your hard limit \(hard) (ulimit -H)" : nil
        }
    }

    /// Why a required limit cannot be honoured, or nil.
    public func unmetRequirement() -> String? {
        for name in required {
            switch name {
            case "memory":
                if memory == nil { return "the profile requires a memory limit but sets none ([limits] memory)" }
                // With a cgroup (given, or found by auto), the launch checks its memory controller.
                if cgroup == .none {
                    return "the profile requires a sandbox-wide memory limit, which needs a delegated cgroup v2 (--cgroup auto or PATH, [limits] cgroup); without one cell could only limit each process (RLIMIT_DATA)"
                }
            case "pids":
                if processes == nil { return "the profile requires a process limit but sets none ([limits] pids)" }
            case "timeout":
                if timeout == nil { return "the profile requires a timeout but sets none ([limits] timeout)" }
            case "cpu_time":
                if cpuTime == nil { return "the profile requires a CPU-time limit but sets none ([limits] cpu_time)" }
            case "file_size":
                if fileSize == nil { return "the profile requires a file-size limit but sets none ([limits] file_size)" }
            case "open_files":
                if openFiles == nil { return "the profile requires an open-files limit but sets none ([limits] open_files)" }
            case "address_space":
                if addressSpace == nil { return "the profile requires an address-space limit but sets none ([limits] address_space)" }
            default:
                return "unknown required limit '\(name)'"
            }
        }
        return nil
    }

    /// Lines for --dry-run.
    public func describe() -> [String] {
        var lines: [String] = []
        if let v = memory { lines.append("memory \(ByteSize.format(v)) per process (RLIMIT_DATA)") }
        if let v = cpuTime { lines.append("cpu time \(v) s per process (RLIMIT_CPU)") }
        if let v = fileSize { lines.append("file size \(ByteSize.format(v)) (RLIMIT_FSIZE)") }
        if let v = openFiles { lines.append("open files \(v) per process (RLIMIT_NOFILE)") }
        if let v = addressSpace { lines.append("address space \(ByteSize.format(v)) per process (RLIMIT_AS)") }
        if let v = processes { lines.append("processes \(v) in the sandbox (RLIMIT_NPROC, counted per user namespace)") }
        if cgroup != .none {
            let ceilings = "memory.max \(memory.map(ByteSize.format) ?? "half the machine's memory")"
                + (processes.map { ", pids.max \($0)" } ?? "")
            lines.append((cgroup == .auto ? "a cgroup of its own where one is delegated to you" : "a cgroup of its own under \(cgroup.text)")
                + " (\(ceilings), each where the cgroup offers its controller)")
        }
        if let v = timeout { lines.append("timeout \(Durations.format(v)), then SIGKILL after \(Durations.format(killAfter))") }
        lines.append("core dumps off")
        return lines
    }
}

extension String {
    func replacingUnderscores() -> String { String(map { $0 == "_" ? "-" : $0 }) }
}

/// Durations as users write them: 250ms, 30s, 1.5s, 5m, 2h, or plain seconds.
public enum Durations {
    public static func parse(_ text: String) -> UInt64? {
        let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            // "5ms" must not be read as "5m" + "s": the longest suffix is tried first.
            if suffix == "s" && number.hasSuffix("m") { continue }
            return value(String(number), scale)
        }
        return value(text, 1000)
    }

    private static func value(_ number: String, _ scale: Double) -> UInt64? {
        guard !number.isEmpty, number.allSatisfy({ $0.isNumber || $0 == "." }), let v = Double(number), v > 0 else { return nil }
        let ms = v * scale
        guard ms >= 1, ms < 1e15 else { return nil }
        return UInt64(ms.rounded())
    }

    public static func format(_ ms: UInt64) -> String {
        if ms % 3_600_000 == 0 { return "\(ms / 3_600_000)h" }
        if ms % 60_000 == 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }
}
