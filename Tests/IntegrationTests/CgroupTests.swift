import Foundation
import Glibc
import Testing

/// A cgroup below this host's cgroup v2 root, delegated to the test user as systemd delegates
/// one (the directory, its cgroup.procs and cgroup.subtree_control are the user's), with an
/// optional child for the launching shell. Root makes it; cell, as the test user, uses it.
struct DelegatedCgroup {
    static let root = "/sys/fs/cgroup/unified"
    static var available: Bool { Sandbox.isRoot && FileManager.default.fileExists(atPath: root + "/cgroup.procs") }

    let path: String
    let child: String?

    init(withChild: Bool) throws {
        path = Self.root + "/cell-test-\(Int.random(in: 100_000...999_999))"
        try #require(mkdir(path, 0o755) == 0, "cannot create \(path): \(String(cString: strerror(errno)))")
        child = withChild ? path + "/launcher" : nil
        var owned = [path, path + "/cgroup.procs", path + "/cgroup.subtree_control"]
        if let child {
            mkdir(child, 0o755)
            owned += [child, child + "/cgroup.procs"]
        }
        for file in owned { chown(file, 65534, 65534) }
    }

    /// The cgroups cell made in it (cell-ID, cell-ID-supervisor).
    func made() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasPrefix("cell-") }.sorted()
    }

    func remove() {
        if let child { rmdir(child) }
        rmdir(path)
    }

    /// A shell command that enters `cgroup` as root, then runs cell as the test user.
    static func cell(in cgroup: String, _ arguments: String) -> [String] {
        ["sh", "-c", "echo $$ > \(cgroup)/cgroup.procs && exec \(Sandbox.dropPrivileges.joined(separator: " ")) \(Sandbox.cell) \(arguments)"]
    }
}

/// The sandbox's own cgroup, for real, on this host's cgroup v2 hierarchy. It offers no memory
/// or pids controller here (they are bound to cgroup v1 in the hybrid layout), so these tests
/// prove the placement, the moves and the clean-up; which cgroup `auto` would take on other
/// trees (systemd's, an administrator's) is CgroupPlacementTests', over made-up trees.
@Suite(.enabled(if: Sandbox.available, "cell cannot start a sandbox on this machine"))
struct CgroupTests {
    /// The sleeping sandbox's processes as the host sees them are all in `cgroup`.
    func expectSleeperIn(_ cgroup: String, marker: String) {
        var sleeper: [Int32] = []
        #expect(eventually { sleeper = hostProcesses(containing: "sleep\0\(marker)"); return !sleeper.isEmpty })
        let procs = (try? String(contentsOfFile: cgroup + "/cgroup.procs", encoding: .utf8)) ?? ""
        #expect(!sleeper.isEmpty && sleeper.allSatisfy { procs.split(separator: "\n").contains(Substring(String($0))) }, "\(procs) vs \(sleeper)")
    }

    @Test("--cgroup PATH, cell in a child of PATH: the sandbox runs in a sibling cgroup, removed afterwards", .enabled(if: DelegatedCgroup.available))
    func sibling() throws {
        let delegated = try DelegatedCgroup(withChild: true)
        defer { delegated.remove() }
        let marker = "\(Int.random(in: 100_000...999_999)).5"
        let sandbox = try RunningSandbox(["sh", "-c", "grep '^0::' /proc/self/cgroup; echo ready; exec sleep \(marker)"],
                                         options: ["--cgroup", delegated.path], enterCgroup: delegated.child)
        #expect(sandbox.waitFor("ready"), "\(sandbox.stderr)")
        #expect(sandbox.stdout.hasPrefix("0::/\n"), "the sandbox's cgroup namespace is rooted at its cgroup: \(sandbox.stdout)")
        #expect(delegated.made().count == 1)
        expectSleeperIn(delegated.path + "/" + (delegated.made().first ?? ""), marker: marker)
        sandbox.signal(SIGTERM)
        _ = sandbox.wait()
        #expect(delegated.made().isEmpty, "left behind: \(delegated.made())")
        // A limit the user set whose controller the delegated cgroup lacks falls back to its
        // rlimit, said on stderr.
        let controllers = (try? String(contentsOfFile: delegated.path + "/cgroup.controllers", encoding: .utf8)) ?? ""
        if !controllers.contains("memory") {
            let memory = Sandbox.execute(DelegatedCgroup.cell(in: delegated.child!, "run --cgroup \(delegated.path) --memory 64m -- true"))
            #expect(memory.status == 0)
            #expect(memory.stderr.contains("has no memory controller"), "\(memory.stderr)")
        }
    }

    @Test("--cgroup PATH with cell alone in PATH (as under systemd-run --scope -p Delegate=yes): cell moves into a leaf, the sandbox beside it, all removed afterwards",
          .enabled(if: DelegatedCgroup.available))
    func cellRunsInIt() throws {
        // cgroup v2 lets a cgroup that hands controllers down hold no process, so cell leaves
        // it for a leaf of its own before it makes the sandbox's.
        let scope = try DelegatedCgroup(withChild: false)
        defer { scope.remove() }
        let marker = "\(Int.random(in: 100_000...999_999)).5"
        let sandbox = try RunningSandbox(["sh", "-c", "echo ready; exec sleep \(marker)"], options: ["--cgroup", scope.path], enterCgroup: scope.path)
        #expect(sandbox.waitFor("ready"), "\(sandbox.stderr)")
        let cells = scope.made()
        #expect(cells.count == 2 && cells[1] == cells[0] + "-supervisor", "\(cells)")
        let cellsCgroup = (try? String(contentsOfFile: "/proc/\(sandbox.process.processIdentifier)/cgroup", encoding: .utf8)) ?? ""
        #expect(cells.count == 2 && cellsCgroup.hasSuffix("/\(scope.path.split(separator: "/").last!)/\(cells[1])\n"), "cell itself: \(cellsCgroup)")
        expectSleeperIn(scope.path + "/" + (cells.first ?? ""), marker: marker)
        sandbox.signal(SIGTERM)
        _ = sandbox.wait()
        #expect(scope.made().isEmpty, "left behind: \(scope.made())")
    }

    @Test("what a SIGKILLed cell left (empty cell-* cgroups a minute old) is removed by the next launch; a fresh one is not",
          .enabled(if: DelegatedCgroup.available))
    func staleCgroupsRemoved() throws {
        let delegated = try DelegatedCgroup(withChild: true)
        defer {
            for name in delegated.made() { rmdir(delegated.path + "/" + name) }
            delegated.remove()
        }
        for name in ["cell-dead", "cell-dead-supervisor", "cell-fresh"] {
            try #require(mkdir(delegated.path + "/" + name, 0o755) == 0)
        }
        // Two minutes old, as a SIGKILLed cell's would be by now.
        for name in ["cell-dead", "cell-dead-supervisor"] {
            var times = [timespec(tv_sec: time(nil) - 120, tv_nsec: 0), timespec(tv_sec: time(nil) - 120, tv_nsec: 0)]
            try #require(utimensat(AT_FDCWD, delegated.path + "/" + name, &times, 0) == 0)
        }
        let run = Sandbox.execute(DelegatedCgroup.cell(in: delegated.child!, "run --cgroup \(delegated.path) -- true"))
        #expect(run.status == 0, "\(run.stderr)")
        #expect(delegated.made() == ["cell-fresh"], "\(delegated.made())")
    }

    @Test("--cgroup auto (the default) in a delegated cgroup that cannot limit anything (this host: hugetlb only) makes none and says nothing; cell doctor says why",
          .enabled(if: DelegatedCgroup.available))
    func autoWithoutControllers() throws {
        let delegated = try DelegatedCgroup(withChild: true)
        defer { delegated.remove() }
        let controllers = (try? String(contentsOfFile: delegated.path + "/cgroup.controllers", encoding: .utf8)) ?? ""
        try #require(!controllers.contains("memory") && !controllers.contains("pids"), "this test is for a host whose cgroup v2 lacks them: \(controllers)")
        let run = Sandbox.execute(DelegatedCgroup.cell(in: delegated.child!, "run -- echo ran"))
        #expect(run.status == 0 && run.stdout == "ran\n" && run.stderr.isEmpty, "\(run.stderr)")
        #expect(delegated.made().isEmpty)
        let doctor = Sandbox.execute(DelegatedCgroup.cell(in: delegated.child!, "doctor"))
        #expect(doctor.stdout.contains("\(delegated.path) is delegated to you but offers neither the memory nor the pids controller"), "\(doctor.stdout)")
    }
}
