import Glibc
import CCellSpawn
import CellPolicy
import Testing
@testable import CellLauncher

struct SandboxEnvironmentTests {
    let caller: [(name: String, value: String)] = [
        ("PATH", "/home/u/bin:."), ("TERM", "xterm"), ("LANG", "de_DE.UTF-8"), ("AWS_SECRET", "s"),
        ("CI", "true"), ("CI_JOB_ID", "9"), ("GITHUB_SHA", "abc"),
    ]

    @Test func clearedByDefault() {
        let env = SandboxEnvironment.build(caller: caller, user: ("u", "/home/u"), keep: [], set: [])
        #expect(env == ["PATH=\(SandboxEnvironment.defaultPath)", "HOME=/home/u", "USER=u", "LOGNAME=u",
                        "TERM=xterm", "LANG=de_DE.UTF-8"])
    }

    @Test func keepAndSet() {
        let env = SandboxEnvironment.build(caller: caller, user: ("u", "/home/u"), keep: ["CI*", "NOT_SET", "GITHUB_SHA"],
                                           set: [("HOME", "/work"), ("X", "1")])
        #expect(env == ["PATH=\(SandboxEnvironment.defaultPath)", "HOME=/work", "USER=u", "LOGNAME=u", "TERM=xterm", "LANG=de_DE.UTF-8",
                        "CI=true", "CI_JOB_ID=9", "GITHUB_SHA=abc", "X=1"])
    }

    @Test func keepingPathIsExplicit() {
        let env = SandboxEnvironment.build(caller: caller, user: ("u", "/home/u"), keep: ["PATH"], set: [])
        #expect(env.first == "PATH=/home/u/bin:.")
    }

    @Test func patterns() {
        #expect(SandboxEnvironment.isValidPattern("CI_*"))
        #expect(SandboxEnvironment.isValidPattern("*"))
        #expect(!SandboxEnvironment.isValidPattern("A*B"))
        #expect(!SandboxEnvironment.isValidPattern("A=B"))
        #expect(!SandboxEnvironment.isValidPattern(""))
    }
}

struct IdentityMappingTests {
    @Test func unprivilegedCallerMapsItself() throws {
        let m = try IdentityMapping.forCaller(uid: 1000, gid: 100, requested: nil, inside: .root)
        #expect(m == IdentityMapping(outerUID: 1000, outerGID: 100, denySetgroups: true))
    }

    @Test func rootMapsToNobodyByDefault() throws {
        let m = try IdentityMapping.forCaller(uid: 0, gid: 0, requested: nil, inside: .root)
        #expect(m == IdentityMapping(outerUID: 65534, outerGID: 65534, denySetgroups: false))
        let custom = try IdentityMapping.forCaller(uid: 0, gid: 0, requested: (5000, 5001), inside: .root)
        #expect(custom.outerUID == 5000 && custom.outerGID == 5001)
    }

    @Test func rootNeverMapsToRoot() {
        #expect(throws: LaunchError.self) { try IdentityMapping.forCaller(uid: 0, gid: 0, requested: (0, 5), inside: .root) }
        #expect(throws: LaunchError.self) { try IdentityMapping.forCaller(uid: 0, gid: 0, requested: (5, 0), inside: .root) }
    }

    @Test func unprivilegedCannotChoose() {
        #expect(throws: LaunchError.self) { try IdentityMapping.forCaller(uid: 1000, gid: 100, requested: (2000, 2000), inside: .root) }
        #expect(throws: Never.self) { try IdentityMapping.forCaller(uid: 1000, gid: 100, requested: (1000, 100), inside: .root) }
    }

    @Test("only the identity map over every id is the initial user namespace")
    func initialUserNamespace() {
        #expect(IdentityMapping.inInitialUserNamespace(uidMap: "         0          0 4294967295\n"))
        #expect(IdentityMapping.inInitialUserNamespace(uidMap: "0\t0\t4294967295"))
        #expect(!IdentityMapping.inInitialUserNamespace(uidMap: "         0       1000          1\n"))
        #expect(!IdentityMapping.inInitialUserNamespace(uidMap: "0 0 4294967295\n1 1 1\n"))
        #expect(!IdentityMapping.inInitialUserNamespace(uidMap: ""))
        #expect(IdentityMapping.inInitialUserNamespace(uidMap: nil)) // cannot tell: the strictest case
    }
}

struct ExitStatusTests {
    @Test func waitStatuses() {
        #expect(SandboxEnd.fromWaitStatus(0) == .exited(0))
        #expect(SandboxEnd.fromWaitStatus(7 << 8) == .exited(7))
        #expect(SandboxEnd.fromWaitStatus(9) == .signaled(9))
        #expect(SandboxEnd.fromWaitStatus(15 | 0x80) == .signaled(15)) // core dumped
    }

    @Test func exitStatuses() {
        #expect(SandboxEnd.exited(3).exitStatus == 3)
        #expect(SandboxEnd.signaled(9).exitStatus == 137)
        #expect(SandboxEnd.setupFailed("x").exitStatus == 125)
        #expect(SandboxEnd.commandNotExecutable(errno: 2).exitStatus == 127)
        #expect(SandboxEnd.commandNotExecutable(errno: 13).exitStatus == 126)
        #expect(SandboxEnd.timedOut.exitStatus == 124)
    }
}

struct SetupFailureTests {
    let plan = LaunchPlan(command: ["true"], environment: [], workingDirectory: "/w",
                          identity: IdentityMapping(outerUID: 1000, outerGID: 1000, denySetgroups: true))

    func step(_ s: cell_step) -> Int32 { Int32(s.rawValue) }

    @Test func userNamespaceDiagnosis() {
        let debian = HostFacts(unprivilegedUserNamespaceClone: 0, maxUserNamespaces: 1000)
        #expect(SetupFailure.message(step: step(CELL_STEP_CLONE_USERNS), errno: 1, plan: plan, host: debian)
            .hasPrefix("unprivileged user namespaces are disabled: sysctl kernel.unprivileged_userns_clone=0"))
        let zero = HostFacts(maxUserNamespaces: 0)
        #expect(SetupFailure.message(step: step(CELL_STEP_CLONE_USERNS), errno: 28, plan: plan, host: zero)
            .hasPrefix("user namespaces are disabled: sysctl user.max_user_namespaces=0"))
        let ubuntu = HostFacts(maxUserNamespaces: 1000, appArmorRestrictsUserNamespaces: true)
        #expect(SetupFailure.message(step: step(CELL_STEP_CLONE_USERNS), errno: 1, plan: plan, host: ubuntu)
            .contains("kernel.apparmor_restrict_unprivileged_userns=1"))
        let full = HostFacts(maxUserNamespaces: 10)
        #expect(SetupFailure.message(step: step(CELL_STEP_CLONE_USERNS), errno: 28, plan: plan, host: full)
            .contains("limit is reached"))
    }

    @Test func namespaceRefusalNamesTheNamespace() {
        let m = SetupFailure.message(step: step(CELL_STEP_NS_NET), errno: 1, plan: plan, host: HostFacts())
        #expect(m == "cannot create a network namespace inside the sandbox's user namespace: Operation not permitted; "
                + "to run without namespaces here: cell run --isolation landlock (weaker: SECURITY.md), or --isolation auto")
        // A failure that is no refusal of namespaces does not point there.
        #expect(!SetupFailure.message(step: step(CELL_STEP_HOSTNAME), errno: 1, plan: plan, host: HostFacts()).contains("--isolation"))
    }

    @Test func everyStepHasADescription() {
        for raw in [3, 11, 12, 13, 14, 15, 17, 18, 31, 38, 39, 40, 41, 51, 52, 53, 54, 55, 56, 58, 59, 61, 63] {
            #expect(!SetupFailure.stepDescription(Int32(raw)).contains("step \(raw)"), "step \(raw)")
        }
    }

    @Test func workingDirectoryWarning() {
        let w = SetupFailure.warning(step: step(CELL_STEP_CHDIR), errno: 13, plan: plan)
        #expect(w == "the working directory /w cannot be entered inside the sandbox (Permission denied); starting in /")
    }
}

struct StatusReportTests {
    @Test func jsonEscaping() {
        #expect(JSONField.quote("a\"b\\c\n\u{1}") == "\"a\\\"b\\\\c\\n\\u0001\"")
        #expect(JSONField.quote("ünï") == "\"ünï\"")
    }

    @Test func document() {
        let plan = LaunchPlan(command: ["sh", "-c", "x"], environment: [], workingDirectory: "/",
                              identity: IdentityMapping(outerUID: 1, outerGID: 1, denySetgroups: true))
        let outcome = SandboxOutcome(end: .signaled(9), durationMilliseconds: 12, maxRSSKilobytes: 345, notes: [])
        #expect(StatusReport.json(plan: plan, outcome: outcome) ==
            #"{"v":1,"exit_code":137,"signal":9,"timed_out":false,"limits_hit":[],"duration_ms":12,"max_rss_kb":345,"namespaces":["user","mount","pid","net","ipc","uts","cgroup"],"command":["sh","-c","x"]}"# + "\n")
    }

    @Test func planDescriptionListsTheNamespacesInOrder() {
        let plan = LaunchPlan(command: ["echo", "it's"], environment: ["A=1"], workingDirectory: "/",
                              identity: IdentityMapping(outerUID: 1, outerGID: 1, denySetgroups: true))
        #expect(plan.setupRecords().first?.summary.hasPrefix("namespaces    mount pid net ipc uts cgroup") == true)
        #expect(plan.describe().contains("command:      echo 'it'\\''s'"))
    }
}

struct LimitsUnitTests {
    @Test func durations() {
        #expect(Durations.parse("30s") == 30_000)
        #expect(Durations.parse("1.5s") == 1500)
        #expect(Durations.parse("5m") == 300_000)
        #expect(Durations.parse("2h") == 7_200_000)
        #expect(Durations.parse("250ms") == 250)
        #expect(Durations.parse("10") == 10_000)
        #expect(Durations.parse("0s") == nil)
        #expect(Durations.parse("soon") == nil)
        #expect(Durations.parse("-1s") == nil)
        #expect(Durations.parse("") == nil)
        #expect(Durations.format(300_000) == "5m" && Durations.format(1500) == "1500ms" && Durations.format(2000) == "2s")
    }

    @Test func rlimitsAndRequirements() {
        let l = ResourceLimits(memory: 1 << 30, cpuTime: 60, fileSize: 1 << 20, openFiles: 256, processes: 100)
        #expect(l.rlimits.map(\.name) == ["core", "memory", "cpu_time", "file_size", "open_files", "pids"])
        #expect(l.rlimits.first?.value == 0)
        #expect(ResourceLimits().rlimits.map(\.name) == ["core"])
        var r = ResourceLimits(memory: 1 << 30)
        r.required = ["memory"]
        #expect(r.unmetRequirement()?.contains("needs a delegated cgroup v2") == true)
        r.cgroup = .below("/sys/fs/cgroup/user")
        #expect(r.unmetRequirement() == nil)
        r.cgroup = .auto // whether a delegated cgroup is found is known only at the launch
        #expect(r.unmetRequirement() == nil)
        r.required = ["timeout"]
        #expect(r.unmetRequirement()?.contains("sets none") == true)
    }

    @Test func publishedPorts() {
        #expect(PublishedPort.parse("8080:80") == PublishedPort(hostPort: 8080, sandboxPort: 80))
        #expect(PublishedPort.parse("80") == nil)
        #expect(PublishedPort.parse("0:80") == nil)
        #expect(PublishedPort.parse("70000:80") == nil)
        #expect(PublishedPort.parse("a:b") == nil)
    }

    @Test func userNetworkUsesSlirpsResolver() {
        let ops = FilesystemView.defaultOperations(workingDirectory: nil, network: .user, inspect: { $0 == "/etc/resolv.conf" ? .file : .missing })
        #expect(ops.contains(.file("/etc/resolv.conf", contents: "nameserver \(UserNetwork.resolverAddress)\n")))
        let none = FilesystemView.defaultOperations(workingDirectory: nil, inspect: { $0 == "/etc/resolv.conf" ? .file : .missing },
                                                    readSmallFile: { _ in Array("nameserver 127.0.0.53\n".utf8) })
        #expect(none.contains(.file("/etc/resolv.conf", contents: "nameserver 127.0.0.53\n")))
    }
}

struct StandardDescriptorTests {
    @Test func directoriesAndPathDescriptorsAreRefusedUnlessReplaced() {
        func status(_ kinds: [Int32: (Int32, UInt32)]) -> (Int32) -> (flags: Int32, mode: UInt32)? {
            { fd in kinds[fd].map { (flags: $0.0, mode: $0.1) } }
        }
        let file = (Int32(O_RDONLY), UInt32(S_IFREG) | 0o644), dir = (Int32(O_RDONLY), UInt32(S_IFDIR) | 0o755)
        let path = (Int32(StandardDescriptors.O_PATH_), UInt32(S_IFREG) | 0o644)
        #expect(StandardDescriptors.problem(skipping: [], status: status([0: file, 1: file, 2: file])) == nil)
        #expect(StandardDescriptors.problem(skipping: [], status: status([1: file])) == nil, "closed ones get /dev/null")
        #expect(StandardDescriptors.problem(skipping: [], status: status([0: dir]))?.hasPrefix("standard input is a directory") == true)
        #expect(StandardDescriptors.problem(skipping: [], status: status([2: path]))?.hasPrefix("standard error is an O_PATH descriptor") == true)
        #expect(StandardDescriptors.problem(skipping: [0], status: status([0: dir])) == nil, "replaced by the pty's /dev/null")
    }
}
