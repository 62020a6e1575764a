import CCellSpawn
import CellPolicy
import Glibc

/// A cgroup v2 for one sandbox, created where `CgroupPlacement` says: below a delegated
/// directory the caller can write (`--cgroup PATH`, or the one `auto` found). The sandbox's
/// first process is moved in before it creates anything, so every process of the sandbox is
/// counted; the directory is removed when the sandbox is over.
///
/// memory.max (and memory.swap.max = 0) bound the sandbox's total memory: the profile's
/// `memory`, else half of the machine's, so that no sandbox can take the machine down with a
/// balloon that per-process rlimits and shared memory let through. pids.max bounds its
/// processes. OOM kills and refused forks are read back from memory.events and pids.events.
public final class SandboxCgroup {
    public let path: String
    private(set) var procsFD: Int32 = -1
    let limits: ResourceLimits
    let placement: CgroupPlacement
    /// Controllers cell enabled in the parent's subtree_control, to disable again when cell
    /// leaves a supervisor leaf (a cgroup that hands controllers down cannot take a process).
    private var enabled: [String] = []
    /// What `remove` takes away: only directories cell made.
    private var madeSandbox = false, madeLeaf = false
    /// Limits the user asked for whose controller the delegated cgroup lacks: those limits
    /// stay per-process rlimits (said in `notes`). Empty under `auto`, which `cell doctor`
    /// explains instead of a warning on every run.
    public private(set) var missing: [String] = []

    public var notes: [String] {
        missing.map { controller in
            controller == "memory"
                ? "the cgroup has no memory controller: no memory ceiling for the sandbox as a whole (memory.max); memory is limited per process only, where --memory is set (RLIMIT_DATA)"
                : "the cgroup has no pids controller: processes are limited by RLIMIT_NPROC (counted for this sandbox's user namespace)"
        }
    }

    /// memory.max: the profile's memory limit, else half of the machine's memory.
    static func memoryCeiling(_ limits: ResourceLimits) -> UInt64 {
        if let memory = limits.memory { return memory }
        var info = sysinfo()
        guard sysinfo(&info) == 0 else { return UInt64.max }
        return UInt64(info.totalram) * UInt64(info.mem_unit) / 2
    }

    /// Creates the sandbox's cgroup (and cell's own leaf where the placement has one) and
    /// writes the limits; throws a clear error, with nothing left behind, when the parent is
    /// not a writable cgroup v2 directory or lacks a controller a required limit needs.
    public init(_ placement: CgroupPlacement, limits: ResourceLimits) throws(LaunchError) {
        self.limits = limits
        self.placement = placement
        path = placement.sandbox
        let parent = placement.parent
        var fs = statfs()
        guard statfs(parent, &fs) == 0 else {
            throw .setup("--cgroup \(parent): \(errorText(errno))")
        }
        guard fs.f_type == 0x6367_7270 else { // CGROUP2_SUPER_MAGIC
            throw .setup("--cgroup \(parent) is not a cgroup v2 directory")
        }
        let available = (readSmallFile(parent + "/cgroup.controllers") ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        var wanted = ["memory"]
        if limits.processes != nil { wanted.append("pids") }
        if limits.cgroup != .auto { missing = wanted.filter { !available.contains($0) } }
        if !available.contains("memory") && limits.required.contains("memory") {
            throw .setup("the profile requires a sandbox-wide memory limit, but the cgroup \(parent) has no memory controller (it offers: \(available.isEmpty ? "none" : available.joined(separator: " ")))")
        }
        do {
            try build(available: available, wanted: wanted)
        } catch {
            remove()
            throw error
        }
    }

    private func build(available: [String], wanted: [String]) throws(LaunchError) {
        let parent = placement.parent
        Self.removeStale(in: parent)
        // Cell leaves the parent first when it runs there: a cgroup with processes of its own
        // cannot hand controllers down.
        if let leaf = placement.supervisor {
            guard mkdir(leaf, 0o755) == 0 else {
                throw .setup("cannot create cell's own cgroup \(leaf): \(errorText(errno))")
            }
            madeLeaf = true
            if let code = writeExisting(leaf + "/cgroup.procs", "0") {
                throw .setup("cannot move cell into \(leaf): \(errorText(code))")
            }
        }
        // Let the children of `parent` use the controllers.
        let handedDown = (readSmallFile(parent + "/cgroup.subtree_control") ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        let toEnable = wanted.filter { available.contains($0) && !handedDown.contains($0) }
        if !toEnable.isEmpty {
            if let code = writeExisting(parent + "/cgroup.subtree_control", toEnable.map { "+" + $0 }.joined(separator: " ")) {
                throw .setup("cannot enable \(toEnable.joined(separator: ", ")) in \(parent)/cgroup.subtree_control: \(errorText(code)) (a cgroup with processes of its own cannot delegate controllers)")
            }
            enabled = toEnable
        }
        guard mkdir(path, 0o755) == 0 else {
            throw .setup("cannot create the sandbox's cgroup \(path): \(errorText(errno))")
        }
        madeSandbox = true
        if available.contains("memory") {
            try write("memory.max", String(Self.memoryCeiling(limits)))
            try write("memory.swap.max", "0", optional: true)
        }
        if let pids = limits.processes, available.contains("pids") { try write("pids.max", String(pids)) }
        procsFD = open(path + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
        guard procsFD >= 0 else {
            throw .setup("cannot open \(path)/cgroup.procs: \(errorText(errno))")
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
        if counter(path + "/memory.events", "oom_kill") > 0 { hit.append("memory") }
        if limits.processes != nil, counter(path + "/pids.events", "max") > 0 { hit.append("pids") }
        return hit
    }

    private func counter(_ file: String, _ key: String) -> Int {
        for line in (readSmallFile(file) ?? "").split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 2, f[0] == key { return Int(f[1]) ?? 0 }
        }
        return 0
    }

    /// Removes the cgroup once it is empty (its processes may take a moment to be reaped);
    /// then, where cell moved itself into a leaf, puts the parent back as it was: controllers
    /// handed down no more, cell back in it, the leaf gone.
    public func remove() {
        if procsFD >= 0 { close(procsFD); procsFD = -1 }
        if madeSandbox {
            for _ in 0..<200 {
                if rmdir(path) == 0 || errno == ENOENT { break }
                usleep(5000)
            }
            madeSandbox = false
        }
        guard madeLeaf, let leaf = placement.supervisor else { return }
        madeLeaf = false
        // Another cell's sandbox may live beside ours (a second cell started alone in the same
        // delegated cgroup): its limits need the controllers, and the parent cannot take a
        // process back while it hands them down. Then the leaf stays, empty once cell exits,
        // for the next launch to remove.
        let others = Self.cellEntries(in: placement.parent).filter { name in
            let path = placement.parent + "/" + name
            return path != leaf && (readSmallFile(path + "/cgroup.events") ?? "").contains("populated 1")
        }
        guard others.isEmpty else { return }
        if !enabled.isEmpty {
            _ = writeExisting(placement.parent + "/cgroup.subtree_control", enabled.map { "-" + $0 }.joined(separator: " "))
            enabled = []
        }
        _ = writeExisting(placement.parent + "/cgroup.procs", "0")
        rmdir(leaf)
    }

    /// Puts a helper of this sandbox (the network's, the proxy) in its cgroup: what the sandbox
    /// makes it allocate counts against the sandbox's memory.max, not against nothing.
    public func adopt(_ pid: pid_t) {
        guard procsFD >= 0, pid > 0 else { return }
        let text = String(pid)
        _ = Glibc.write(procsFD, text, text.utf8.count)
    }

    /// The `cell-*` cgroups in `parent`.
    static func cellEntries(in parent: String) -> [String] {
        // cgroupfs holds only cgroups and its interface files, none of them named cell-*.
        directoryEntries(parent, followingSymlink: false).filter { $0.hasPrefix("cell-") }
    }

    /// Removes what a cell killed with SIGKILL left: its empty cgroups. Only those unchanged for a
    /// minute, so that another cell's, made a moment ago and not yet entered, stays; rmdir
    /// itself refuses one with a process or a child.
    static func removeStale(in parent: String) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        for name in cellEntries(in: parent) {
            var st = stat()
            let path = parent + "/" + name
            if stat(path, &st) == 0 && now.tv_sec - st.st_mtim.tv_sec > 60 { rmdir(path) }
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
