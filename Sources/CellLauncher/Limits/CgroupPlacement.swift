import CCellSpawn
import CellPolicy
import Glibc

/// What the placement needs to know about cgroup directories: read from cgroupfs on the host
/// (`HostCgroupTree`), from a fake tree in the unit tests.
public protocol CgroupTree {
    /// The owner of a directory, nil when it does not exist.
    func owner(_ path: String) -> uid_t?
    /// Whether this process may write the file or create in the directory.
    func writable(_ path: String) -> Bool
    /// systemd's mark on a cgroup it delegated (Delegate=yes): the `user.delegate` xattr.
    func delegatedBySystemd(_ path: String) -> Bool
    /// cgroup.controllers: the controllers this cgroup may hand to its children.
    func controllers(_ path: String) -> [String]
    /// cgroup.subtree_control: the controllers it does hand down.
    func subtreeControl(_ path: String) -> [String]
    /// cgroup.procs: the processes in this cgroup itself (not in its children).
    func processes(_ path: String) -> [pid_t]
}

/// Where one sandbox's cgroup goes. cgroup v2 allows processes only in leaves once a cgroup
/// hands controllers down ("no internal processes"), so the sandbox's cgroup is always a
/// sibling of the one cell runs in, under a cgroup delegated to the caller: cell's parent when
/// that is delegated, else cell's own cgroup, after cell has moved itself into a leaf of its
/// own there (as under `systemd-run --user --scope -p Delegate=yes cell run ...`).
public struct CgroupPlacement: Equatable, Sendable {
    /// The delegated cgroup both leaves are in; its subtree_control gets memory and pids.
    public var parent: String
    /// The sandbox's cgroup.
    public var sandbox: String
    /// When cell runs in `parent` itself: the leaf it moves into first.
    public var supervisor: String?

    /// The choice made for `choice`, or why there is none. An explicit directory (`--cgroup
    /// PATH`) is taken as given: the kernel's permission checks and SandboxCgroup's messages
    /// judge it. `auto` takes a cgroup only where it is clearly the caller's to divide.
    public static func find(_ choice: CgroupChoice, mount: String?, own: String?, uid: uid_t, pid: pid_t,
                            systemd: Bool, id: String, tree: CgroupTree) -> Result<CgroupPlacement, Unavailable> {
        let ownPath = mount.flatMap { mount in own.map { $0 == "/" ? mount : mount + $0 } }
        switch choice {
        case .none:
            return .failure(Unavailable("no cgroup was asked for"))
        case .below(let parent):
            return .success(CgroupPlacement(parent: parent, id: id, cellRunsInIt: ownPath == parent))
        case .auto:
            guard let mount, let own, let ownPath else { return .failure(Unavailable("no cgroup v2 hierarchy is mounted")) }
            guard own != "/" else {
                return .failure(Unavailable("cell runs in the root of its cgroup namespace (\(mount)), which is not delegated to you"))
            }
            let parentPath = String(ownPath[..<(ownPath.lastIndex(of: "/") ?? ownPath.startIndex)])
            // Sibling of cell's cgroup, under its parent: cell stays where it is.
            if parentPath != mount && delegated(parentPath, uid: uid, systemd: systemd, tree: tree) {
                return usable(CgroupPlacement(parent: parentPath, id: id, cellRunsInIt: false), tree: tree)
            }
            // Cell's own cgroup, when it is delegated and cell is alone in it: a systemd scope
            // with Delegate=yes started for this command. With another process in it (the
            // shell of a delegated scope), cell could not hand the controllers down.
            if delegated(ownPath, uid: uid, systemd: systemd, tree: tree) {
                let others = tree.processes(ownPath).filter { $0 != pid }
                guard others.isEmpty else {
                    return .failure(Unavailable("your cgroup \(ownPath) is delegated to you but holds \(others.count) other process(es): start cell alone in it, or in a child of it"))
                }
                return usable(CgroupPlacement(parent: ownPath, id: id, cellRunsInIt: true), tree: tree)
            }
            return .failure(Unavailable(systemd
                ? "neither your cgroup \(ownPath) nor its parent is delegated to you (systemd marks delegated cgroups with user.delegate)"
                : "neither your cgroup \(ownPath) nor its parent is yours to divide"))
        }
    }

    init(parent: String, id: String, cellRunsInIt: Bool) {
        self.parent = parent
        sandbox = parent + "/cell-" + id
        supervisor = cellRunsInIt ? parent + "/cell-" + id + "-supervisor" : nil
    }

    /// Delegated to the caller, as the kernel's documentation defines it (the directory, its
    /// cgroup.procs and cgroup.subtree_control are the caller's to write); under systemd also
    /// marked by it as delegated, since a cgroup of systemd's own that merely belongs to the
    /// user (app.slice, a terminal's scope) is systemd's to manage, not cell's.
    static func delegated(_ path: String, uid: uid_t, systemd: Bool, tree: CgroupTree) -> Bool {
        tree.owner(path) == uid && tree.writable(path) && tree.writable(path + "/cgroup.procs")
            && tree.writable(path + "/cgroup.subtree_control") && (!systemd || tree.delegatedBySystemd(path))
    }

    /// The placement when its parent can give the sandbox a memory or a process ceiling.
    static func usable(_ placement: CgroupPlacement, tree: CgroupTree) -> Result<CgroupPlacement, Unavailable> {
        let offered = tree.controllers(placement.parent).filter { $0 == "memory" || $0 == "pids" }
        guard !offered.isEmpty else {
            let all = tree.controllers(placement.parent)
            return .failure(Unavailable("\(placement.parent) is delegated to you but offers neither the memory nor the pids controller (it offers: \(all.isEmpty ? "none" : all.joined(separator: " ")))"))
        }
        // Handing a controller down needs a parent without processes of its own (cell's, if
        // it runs there, leave for the supervisor leaf first).
        let handedDown = tree.subtreeControl(placement.parent)
        let others = placement.supervisor == nil ? tree.processes(placement.parent) : []
        if !offered.allSatisfy(handedDown.contains) && !others.isEmpty {
            return .failure(Unavailable("\(placement.parent) is delegated to you but has processes of its own, so it cannot hand memory and pids to a child"))
        }
        return .success(placement)
    }

    public struct Unavailable: Error, Equatable {
        public var reason: String
        init(_ reason: String) { self.reason = reason }
    }
}

/// cgroupfs as it is.
public struct HostCgroupTree: CgroupTree {
    public init() {}

    public func owner(_ path: String) -> uid_t? {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_uid : nil
    }

    public func writable(_ path: String) -> Bool { faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) == 0 }

    public func delegatedBySystemd(_ path: String) -> Bool {
        var value = [UInt8](repeating: 0, count: 8)
        let n = getxattr(path, "user.delegate", &value, value.count)
        return n == 1 && value[0] == UInt8(ascii: "1")
    }

    public func controllers(_ path: String) -> [String] { words(path + "/cgroup.controllers") }
    public func subtreeControl(_ path: String) -> [String] { words(path + "/cgroup.subtree_control") }
    public func processes(_ path: String) -> [pid_t] { words(path + "/cgroup.procs").compactMap { pid_t($0) } }

    private func words(_ file: String) -> [String] {
        (readSmallFile(file, limit: 4 << 20) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
    }

    /// The cgroup2 mount point and this process's cgroup in it ("/a/b", from /proc/self/cgroup).
    public static func locate() -> (mount: String?, own: String?) {
        var mount: String?
        for line in (readSmallFile("/proc/self/mounts", limit: 1 << 20) ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 2 && fields[2] == "cgroup2" {
                mount = String(fields[1])
                break
            }
        }
        let own = (readSmallFile("/proc/self/cgroup", limit: 64 << 10) ?? "").split(separator: "\n")
            .first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) }
        return (mount, own)
    }

    /// Whether systemd manages this host's cgroups (sd_booted's test).
    public static var systemd: Bool { access("/run/systemd/system", F_OK) == 0 }

    /// The placement for this process.
    public static func find(_ choice: CgroupChoice, id: String) -> Result<CgroupPlacement, CgroupPlacement.Unavailable> {
        let (mount, own) = locate()
        return CgroupPlacement.find(choice, mount: mount, own: own, uid: geteuid(), pid: getpid(),
                                    systemd: systemd, id: id, tree: HostCgroupTree())
    }
}
