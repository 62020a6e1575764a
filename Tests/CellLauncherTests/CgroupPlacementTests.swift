import CellPolicy
import Glibc
import Testing
@testable import CellLauncher

/// Where `--cgroup auto` puts a sandbox's cgroup, over made-up cgroup trees: this CI host's
/// cgroup v2 hierarchy offers no memory or pids controller (they are bound to cgroup v1 in its
/// hybrid layout), so the trees a user meets (systemd's, an administrator's delegation) are
/// described here. The real mechanics (cell moving itself into a leaf, the sandbox moved into
/// a sibling, everything removed) are tested with `--cgroup PATH` in LimitsNetworkTests.
struct CgroupPlacementTests {
    struct Directory {
        var owner: uid_t = 1000
        var writable = true
        var marked = false
        var controllers = ["cpu", "memory", "pids"]
        var subtree: [String] = []
        var processes: [pid_t] = []
    }

    struct FakeTree: CgroupTree {
        var dirs: [String: Directory]
        func owner(_ path: String) -> uid_t? { dirs[path]?.owner }
        func writable(_ path: String) -> Bool {
            let dir = path.hasSuffix("/cgroup.procs") || path.hasSuffix("/cgroup.subtree_control")
                ? String(path[..<path.lastIndex(of: "/")!]) : path
            return dirs[dir]?.writable ?? false
        }
        func delegatedBySystemd(_ path: String) -> Bool { dirs[path]?.marked ?? false }
        func controllers(_ path: String) -> [String] { dirs[path]?.controllers ?? [] }
        func subtreeControl(_ path: String) -> [String] { dirs[path]?.subtree ?? [] }
        func processes(_ path: String) -> [pid_t] { dirs[path]?.processes ?? [] }
    }

    static let mount = "/sys/fs/cgroup"
    static let user = "/user.slice/user-1000.slice/user@1000.service"

    func find(_ own: String?, _ tree: FakeTree, choice: CgroupChoice = .auto, systemd: Bool = true,
              mount: String? = CgroupPlacementTests.mount) -> Result<CgroupPlacement, CgroupPlacement.Unavailable> {
        CgroupPlacement.find(choice, mount: mount, own: own, uid: 1000, pid: 42, systemd: systemd, id: "ID", tree: tree)
    }

    func reason(_ result: Result<CgroupPlacement, CgroupPlacement.Unavailable>) -> String {
        if case .failure(let why) = result { return why.reason }
        return "placed: \(result)"
    }

    @Test("systemd-run --user --scope -p Delegate=yes cell ...: cell moves into a leaf of the scope, the sandbox beside it")
    func delegatedScope() throws {
        let scope = Self.mount + Self.user + "/app.slice/run-r1.scope"
        let tree = FakeTree(dirs: [
            Self.mount + Self.user + "/app.slice": Directory(),           // the user's, but systemd's to manage
            scope: Directory(marked: true, processes: [42]),
        ])
        let placement = try find(Self.user + "/app.slice/run-r1.scope", tree).get()
        #expect(placement == CgroupPlacement(parent: scope, id: "ID", cellRunsInIt: true))
        #expect(placement.sandbox == scope + "/cell-ID" && placement.supervisor == scope + "/cell-ID-supervisor")
    }

    @Test("a delegated scope that also holds the shell cell was started from is not used: it could not hand controllers down")
    func delegatedScopeWithAShell() throws {
        let scope = Self.mount + Self.user + "/app.slice/run-r1.scope"
        let tree = FakeTree(dirs: [Self.mount + Self.user + "/app.slice": Directory(), scope: Directory(marked: true, processes: [7, 42])])
        #expect(reason(find(Self.user + "/app.slice/run-r1.scope", tree)).contains("holds 1 other process(es): start cell alone in it, or in a child of it"))
        // ... but a shell that moved itself into a child of the scope is: the sandbox is its sibling.
        var nested = tree
        nested.dirs[scope]?.processes = []
        nested.dirs[scope + "/shell"] = Directory(processes: [7, 42])
        #expect(try find(Self.user + "/app.slice/run-r1.scope/shell", nested).get()
                == CgroupPlacement(parent: scope, id: "ID", cellRunsInIt: false))
    }

    @Test("under systemd, cgroups that are merely the user's (app.slice, a terminal's scope) are left to systemd")
    func systemdsOwnCgroupsAreNotTaken() throws {
        let terminal = Self.user + "/app.slice/app-org.gnome.Terminal.slice/vte-spawn-1.scope"
        let tree = FakeTree(dirs: [
            Self.mount + Self.user + "/app.slice/app-org.gnome.Terminal.slice": Directory(),
            Self.mount + terminal: Directory(processes: [7, 42]),
        ])
        #expect(reason(find(terminal, tree)).contains("nor its parent is delegated to you (systemd marks delegated cgroups with user.delegate)"))
        // Without systemd, the same ownership is delegation (an administrator's chown).
        #expect(try find(terminal, tree, systemd: false).get().parent == Self.mount + Self.user + "/app.slice/app-org.gnome.Terminal.slice")
    }

    @Test("an administrator's delegation without systemd: a sibling of cell's cgroup")
    func administratorsDelegation() throws {
        let ci = Self.mount + "/ci"
        let tree = FakeTree(dirs: [ci: Directory(subtree: ["memory", "pids"]), ci + "/runner": Directory(processes: [7, 42])])
        let placement = try find("/ci/runner", tree, systemd: false).get()
        #expect(placement.parent == ci && placement.sandbox == ci + "/cell-ID" && placement.supervisor == nil)
    }

    @Test("nothing is taken that is not the caller's: another owner, read-only, the namespace's root, no hierarchy")
    func notTheCallers() {
        let session = Self.mount + "/user.slice/user-1000.slice/session-2.scope"
        let roots = FakeTree(dirs: [Self.mount + "/user.slice/user-1000.slice": Directory(owner: 0), session: Directory(owner: 0, processes: [42])])
        #expect(reason(find("/user.slice/user-1000.slice/session-2.scope", roots, systemd: false)).contains("nor its parent is yours to divide"))
        let readOnly = FakeTree(dirs: [Self.mount + "/ci": Directory(writable: false), Self.mount + "/ci/job": Directory(writable: false)])
        #expect(reason(find("/ci/job", readOnly, systemd: false)).contains("nor its parent"))
        // In a container (and on this CI host), cell runs in the root of its cgroup namespace.
        #expect(reason(find("/", FakeTree(dirs: [:]))).contains("cell runs in the root of its cgroup namespace (/sys/fs/cgroup)"))
        #expect(reason(find(nil, FakeTree(dirs: [:]), mount: nil)) == "no cgroup v2 hierarchy is mounted")
        // The hierarchy's root is never divided, even where writable (root's own machine).
        let top = FakeTree(dirs: [Self.mount: Directory(owner: 1000), Self.mount + "/job": Directory(owner: 0, processes: [42])])
        #expect(reason(find("/job", top, systemd: false)).contains("nor its parent"))
    }

    @Test("a delegated cgroup that cannot limit anything is not used, and says what it offers (this CI host: hugetlb)")
    func noUsefulController() {
        let tree = FakeTree(dirs: [Self.mount + "/ci": Directory(controllers: ["hugetlb"]), Self.mount + "/ci/job": Directory(processes: [42])])
        #expect(reason(find("/ci/job", tree, systemd: false))
                == "/sys/fs/cgroup/ci is delegated to you but offers neither the memory nor the pids controller (it offers: hugetlb)")
        // A parent with processes of its own cannot hand controllers down; one that already does is fine.
        var busy = FakeTree(dirs: [Self.mount + "/ci": Directory(processes: [7]), Self.mount + "/ci/job": Directory(processes: [42])])
        #expect(reason(find("/ci/job", busy, systemd: false)).contains("has processes of its own"))
        busy.dirs[Self.mount + "/ci"]?.subtree = ["memory", "pids"]
        #expect((try? find("/ci/job", busy, systemd: false).get()) != nil)
    }

    @Test("--cgroup PATH is taken as given: a leaf for cell only when cell runs in PATH itself; none means none")
    func explicit() throws {
        let empty = FakeTree(dirs: [:])
        #expect(try find("/ci/job", empty, choice: .below("/sys/fs/cgroup/ci")).get() == CgroupPlacement(parent: "/sys/fs/cgroup/ci", id: "ID", cellRunsInIt: false))
        #expect(try find("/ci", empty, choice: .below("/sys/fs/cgroup/ci")).get().supervisor == "/sys/fs/cgroup/ci/cell-ID-supervisor")
        #expect(reason(find("/ci/job", empty, choice: .none)) == "no cgroup was asked for")
    }

    @Test("memory.max: the profile's memory, else half the machine's")
    func memoryCeiling() throws {
        #expect(SandboxCgroup.memoryCeiling(ResourceLimits(memory: 1 << 30)) == 1 << 30)
        let meminfo = try #require(readSmallFile("/proc/meminfo"))
        let total = try #require(meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }.flatMap { UInt64($0.split(separator: " ")[1]) })
        #expect(SandboxCgroup.memoryCeiling(ResourceLimits()) == total * 1024 / 2)
    }
}
