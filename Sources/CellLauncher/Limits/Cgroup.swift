import CCellSpawn
import CellPolicy
import Glibc

/// A cgroup v2 for one sandbox, created below a delegated directory the caller can write
/// (`--cgroup PATH`: systemd user delegation, or a directory an administrator handed over).
/// The sandbox's first process is moved in before it creates anything, so every process of
/// the sandbox is counted; the directory is removed when the sandbox is over.
///
/// memory.max (and memory.swap.max = 0) bound the sandbox's total memory; pids.max its
/// processes. OOM kills and refused forks are read back from memory.events and pids.events.
public final class SandboxCgroup {
    public let path: String
    private(set) var procsFD: Int32 = -1
    let limits: ResourceLimits
    /// Controllers a limit would use that the delegated cgroup does not offer: those limits
    /// stay per-process rlimits (said in `notes`).
    public private(set) var missing: [String] = []

    public var notes: [String] {
        missing.map { controller in
            controller == "memory"
                ? "the cgroup has no memory controller: memory is limited per process only (RLIMIT_DATA), not for the sandbox as a whole"
                : "the cgroup has no pids controller: processes are limited by RLIMIT_NPROC (counted for this sandbox's user namespace)"
        }
    }

    /// Controllers a limit needs.
    static func controllers(for limits: ResourceLimits) -> [String] {
        var needed: [String] = []
        if limits.memory != nil { needed.append("memory") }
        if limits.processes != nil { needed.append("pids") }
        return needed
    }

    /// Creates `parent/cell-ID` and writes the limits; throws a clear error when the parent is
    /// not a writable cgroup v2 directory or lacks a controller a limit needs.
    public init(parent: String, id: String, limits: ResourceLimits) throws(LaunchError) {
        self.limits = limits
        var fs = statfs()
        guard statfs(parent, &fs) == 0 else {
            throw .setup("--cgroup \(parent): \(errorText(errno))")
        }
        guard fs.f_type == 0x6367_7270 else { // CGROUP2_SUPER_MAGIC
            throw .setup("--cgroup \(parent) is not a cgroup v2 directory")
        }
        let available = (readSmallFile(parent + "/cgroup.controllers") ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        let wanted = Self.controllers(for: limits)
        missing = wanted.filter { !available.contains($0) }
        if missing.contains("memory") && limits.required.contains("memory") {
            throw .setup("the profile requires a sandbox-wide memory limit, but --cgroup \(parent) has no memory controller (it offers: \(available.isEmpty ? "none" : available.joined(separator: " ")))")
        }
        // Let the children of `parent` use the controllers (allowed once it has no processes).
        let usable = wanted.filter { available.contains($0) }
        if !usable.isEmpty {
            let enabled = (readSmallFile(parent + "/cgroup.subtree_control") ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
            let toEnable = usable.filter { !enabled.contains($0) }
            if !toEnable.isEmpty, let code = writeExisting(parent + "/cgroup.subtree_control", toEnable.map { "+" + $0 }.joined(separator: " ")) {
                throw .setup("cannot enable \(toEnable.joined(separator: ", ")) in \(parent)/cgroup.subtree_control: \(errorText(code)) (a cgroup with processes of its own cannot delegate controllers)")
            }
        }
        path = parent + "/cell-" + id
        guard mkdir(path, 0o755) == 0 else {
            throw .setup("cannot create the sandbox's cgroup \(path): \(errorText(errno))")
        }
        do {
            if let memory = limits.memory, !missing.contains("memory") {
                try write("memory.max", String(memory))
                try write("memory.swap.max", "0", optional: true)
            }
            if let pids = limits.processes, !missing.contains("pids") { try write("pids.max", String(pids)) }
        } catch {
            rmdir(path)
            throw error
        }
        procsFD = open(path + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
        guard procsFD >= 0 else {
            let code = errno
            rmdir(path)
            throw .setup("cannot open \(path)/cgroup.procs: \(errorText(code))")
        }
    }

    private func write(_ file: String, _ value: String, optional: Bool = false) throws(LaunchError) {
        if let code = writeExisting(path + "/" + file, value), !(optional && code == ENOENT) {
            throw .setup("cannot set \(path)/\(file) to \(value): \(errorText(code))")
        }
    }

    /// Limits the kernel enforced, from memory.events and pids.events.
    public func limitsHit() -> [String] {
        var hit: [String] = []
        if limits.memory != nil, !missing.contains("memory"), counter(path + "/memory.events", "oom_kill") > 0 { hit.append("memory") }
        if limits.processes != nil, !missing.contains("pids"), counter(path + "/pids.events", "max") > 0 { hit.append("pids") }
        return hit
    }

    private func counter(_ file: String, _ key: String) -> Int {
        for line in (readSmallFile(file) ?? "").split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 2, f[0] == key { return Int(f[1]) ?? 0 }
        }
        return 0
    }

    /// Removes the cgroup once it is empty (its processes may take a moment to be reaped).
    public func remove() {
        if procsFD >= 0 { close(procsFD); procsFD = -1 }
        for _ in 0..<200 {
            if rmdir(path) == 0 || errno == ENOENT { return }
            usleep(5000)
        }
    }
}

/// Writes `text` to an existing file (cgroup and proc files); returns the errno on failure.
func writeExisting(_ path: String, _ text: String) -> Int32? {
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return errno }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    return n == bytes.count ? nil : (n < 0 ? errno : EIO)
}
