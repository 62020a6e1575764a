import CellAudit
import CellPolicy
import CellProfile
import Testing
@testable import CellLauncher

/// `[seccomp] only` over a policy (SeccompNarrowing, through the compiler's filter rules):
/// a learned profile never allows what its base refuses, argument by argument.
struct LearnedPolicyTests {
    /// The verdict of a sandbox's filters together, as the kernel takes it: a kill or errno of
    /// either filter before a notification (the policy filter's audited refusals), and between
    /// two plain errno answers the filter loaded last (the policy filter).
    static func verdict(_ rules: SeccompCompiler.FilterRules, _ nr: Int32, _ args: [UInt64]) -> SeccompPolicy.Action {
        let own = rules.policy.filter { $0.number == nr }
        let policy = ResolvedRule.verdict(own, default: rules.defaultAction, args: args)
        let separate = ResolvedRule.verdict(rules.separate.filter { $0.number == nr }, default: .allow, args: args)
        let plain = own.contains { $0.matches(args) && !$0.audited && $0.action == policy }
        switch (policy, separate) {
        case (.kill, _) where plain, (.errno, _) where plain: return policy
        case (_, .kill), (_, .errno): return separate
        default: return policy
        }
    }

    static func allows(_ action: SeccompPolicy.Action) -> Bool { action == .allow || action == .log }

    /// Argument values that matter to the rules: the pins and the baseline's values, with bits
    /// above 32 set and not, and noise.
    static func samples() -> [[UInt64]] {
        let interesting: [UInt64] = [0, 1, 2, 10, 16, 17, 40, 0x5401, 0x5412, 0x541C, 0x1_0000_5412, 0x1_0000_0002, 0x4111,
                                     0x1200011, 0x1000_0000, 0x2_0000, 0x40000, 0xffff_ffff, 0xffff_ffff_ffff_ffff, 0o4000 | 0o644,
                                     0o100 | 0o1, 0o20000000, 0x2000_0000, 0x20008, 8]
        var generator = SystemRandomNumberGenerator()
        var out: [[UInt64]] = []
        for a in interesting {
            for b in interesting.shuffled(using: &generator).prefix(6) {
                out.append([a, b, b, a, 0, 0])
                out.append([b, a, a, b, UInt64.random(in: 0...UInt64.max, using: &generator), 0])
            }
        }
        return out
    }

    static let learnedOnly: [SeccompPolicy.Rule] = [
        .init(["read", "write", "openat", "chmod", "fchmodat", "execve", "ptrace", "unshare", "mount", "clone3", "setns"], .allow),
        .init(["ioctl"], .allow, conditions: [.init(index: 1, .maskedEqual, 0x5401, mask: 0xffff_ffff)]),
        .init(["ioctl"], .allow, conditions: [.init(index: 1, .maskedEqual, 0x5412, mask: 0xffff_ffff)]), // TIOCSTI, seen refused
        .init(["socket"], .allow, conditions: [.init(index: 0, .equal, 1)]),
        .init(["socket"], .allow, conditions: [.init(index: 0, .equal, 40)]), // AF_VSOCK: the baseline refuses it
        .init(["clone"], .allow, conditions: [.init(index: 0, .equal, 0x1200011)]),
        .init(["clone"], .allow, conditions: [.init(index: 0, .equal, 0x1000_0011)]), // CLONE_NEWUSER
        .init(["personality"], .allow, conditions: [.init(index: 0, .maskedEqual, 0xffff_ffff, mask: 0xffff_ffff)]),
        .init(["personality"], .allow, conditions: [.init(index: 0, .maskedEqual, 0x40000, mask: 0xffff_ffff)]),
        .init(["prctl"], .allow, conditions: [.init(index: 0, .equal, 15), .init(index: 1, .less, 4096)]), // not a pin
    ]

    @Test("a learned list never allows a call or an argument its base refuses", arguments: ["default", "strict"])
    func neverMoreThanTheBase(base: String) throws {
        var policy = SeccompPolicy.builtIn(base)!
        let beneath = try SeccompCompiler.filterRules(policy)
        policy.only = Self.learnedOnly
        let narrowed = try SeccompCompiler.filterRules(policy)
        var checked = 0
        for name in ["read", "openat", "chmod", "fchmodat", "ioctl", "socket", "clone", "personality", "prctl", "ptrace",
                     "unshare", "mount", "setns", "clone3", "keyctl", "getpid"] {
            let nr = Syscalls.number(name)!
            for args in Self.samples() where Self.allows(Self.verdict(narrowed, nr, args)) {
                #expect(Self.allows(Self.verdict(beneath, nr, args)), "\(base): \(name) \(args.map { String($0, radix: 16) })")
                checked += 1
            }
        }
        #expect(checked > 100) // the lists do allow things: the property was exercised
    }

    @Test func unlistedCallsAreRefusedAndAuditedButTheBaseSteeringStays() throws {
        var policy = SeccompPolicy.default
        policy.only = [.init(["read", "write"], .allow)]
        let rules = try SeccompCompiler.filterRules(policy)
        #expect(rules.defaultAction == .errno(1))
        #expect(Self.verdict(rules, Syscalls.number("getpid")!, [0, 0, 0, 0, 0, 0]) == .errno(1))
        // clone3 stays ENOSYS (libc falls back to clone), unaudited, as the base has it.
        let clone3 = rules.policy.first { $0.syscall == "clone3" }
        #expect(clone3?.action == .errno(38) && clone3?.audited == false)
        #expect(Self.allows(Self.verdict(rules, Syscalls.number("read")!, [0, 0, 0, 0, 0, 0])))
    }

    @Test func settledAlternativesNeedNoSecondFilterUnsettledOnesKeepTheBaseRules() throws {
        var policy = SeccompPolicy.default
        policy.only = [.init(["ioctl"], .allow, conditions: [.init(index: 1, .maskedEqual, 0x5401, mask: 0xffff_ffff)]),
                       .init(["openat"], .allow)]
        let rules = try SeccompCompiler.filterRules(policy)
        // ioctl(TCGETS) settles the baseline's TIOCSTI/TIOCLINUX rules: no restriction needed.
        #expect(!rules.separate.contains { $0.syscall == "ioctl" })
        // openat with any arguments does not settle "no setuid file": that rule goes along.
        #expect(rules.separate.contains { $0.syscall == "openat" && $0.action == .errno(1) })
        let openat = Syscalls.number("openat")!
        #expect(Self.verdict(rules, openat, [0, 0, 0o100, 0o4755, 0, 0]) == .errno(1))
        #expect(Self.allows(Self.verdict(rules, openat, [0, 0, 0o100, 0o644, 0, 0])))
    }

    @Test func underStrictClone3StaysENOSYSSoLibcFallsBackToClone() throws {
        var policy = SeccompPolicy.strict
        policy.only = [.init(["read", "write", "clone"], .allow)]
        let rules = try SeccompCompiler.filterRules(policy)
        #expect(Self.verdict(rules, Syscalls.number("clone3")!, [0, 0, 0, 0, 0, 0]) == .errno(38))
    }

    @Test("a call a policy logs outright keeps the baseline's refusals", arguments: ["default", "strict"])
    func loggedCallsKeepTheBaseline(base: String) throws {
        var policy = SeccompPolicy.builtIn(base)!
        policy.rules.append(.init(["ioctl", "socket", "fchmodat"], .log))
        let rules = try SeccompCompiler.filterRules(policy)
        #expect(Self.verdict(rules, Syscalls.number("ioctl")!, [0, 0x5412, 0, 0, 0, 0]) == .errno(1)) // TIOCSTI
        #expect(Self.verdict(rules, Syscalls.number("socket")!, [40, 1, 0, 0, 0, 0]) == .errno(97)) // AF_VSOCK
        #expect(Self.verdict(rules, Syscalls.number("fchmodat")!, [0, 0, 0o4755, 0, 0, 0]) == .errno(1)) // setuid
        #expect(Self.verdict(rules, Syscalls.number("ioctl")!, [0, 0x5401, 0, 0, 0, 0]) == .log)
    }

    @Test func underADenyDefaultBaseOnlyTheAllowsALearnedValueCanMeetAreKept() throws {
        // A Docker-like allow-list: personality allowed for three values compared whole, ENOSYS
        // by default; the learned pin (masked, as cell learn writes it) settles none of them.
        var policy = SeccompPolicy(name: "json", defaultAction: .errno(38), rules: [.init(["read", "write", "clone"], .allow)]
            + [0, 8, 0xffff_ffff].map { .init(["personality"], .allow, conditions: [.init(index: 0, .equal, $0)]) })
        policy.only = [.init(["read"], .allow),
                       .init(["personality"], .allow, conditions: [.init(index: 0, .maskedEqual, 0xffff_ffff, mask: 0xffff_ffff)])]
        let rules = try SeccompCompiler.filterRules(policy)
        let personality = Syscalls.number("personality")!
        #expect(Self.allows(Self.verdict(rules, personality, [0xffff_ffff, 0, 0, 0, 0, 0])))
        #expect(!Self.allows(Self.verdict(rules, personality, [8, 0, 0, 0, 0, 0]))) // allowed by the base, never learned
        // An unlisted call gets the base's own refusal (ENOSYS, which libc falls back from).
        #expect(Self.verdict(rules, Syscalls.number("getpid")!, [0, 0, 0, 0, 0, 0]) == .errno(38))
    }

    @Test func commandLineAllowsWidenTheListAndDeniesNarrowIt() throws {
        var policy = SeccompPolicy.default
        policy.only = [.init(["read"], .allow)]
        let adjusted = policy.adjusted(allow: ["getpid"], deny: [("read", 13)])
        let rules = try SeccompCompiler.filterRules(adjusted)
        #expect(Self.allows(Self.verdict(rules, Syscalls.number("getpid")!, [0, 0, 0, 0, 0, 0])))
        #expect(Self.verdict(rules, Syscalls.number("read")!, [0, 0, 0, 0, 0, 0]) == .errno(13))
    }

    @Test func aLearnedPolicyWithoutPidOnesCallsIsRefusedAtCompileTime() {
        var policy = SeccompPolicy.default
        policy.only = [.init(["read", "write"], .allow)]
        #expect(throws: LaunchError.self) { try SeccompCompiler.compileFilters(policy) }
        // Nor one whose base refuses pid 1's write for some arguments: the narrowing moves that
        // rule to the separate filter, and the check looks there too.
        var conditional = SeccompPolicy.default
        conditional.rules.append(.init(["write"], .errno(1), conditions: [.init(index: 0, .equal, 1)]))
        conditional.only = SeccompCompiler.initCalls.map { .init([$0.name], .allow) }
        #expect(throws: LaunchError.self) { try SeccompCompiler.compileFilters(conditional) }
    }

    @Test func learningNotifiesAllButTheCoreAndDecidesWithTheBase() throws {
        let set = try SeccompCompiler.learningFilters(.default)
        #expect(set.decisions.defaultAction == .allow) // the base's own decisions
        #expect(set.decisions.decide(number: Syscalls.number("ptrace")!, args: [0, 0, 0, 0, 0, 0]) == .errno(1))
        // clone3's ENOSYS is answered, but is no violation to record.
        #expect(!set.decisions.isAudited(number: Syscalls.number("clone3")!, args: [0, 0, 0, 0, 0, 0]))
        #expect(set.decisions.isAudited(number: Syscalls.number("ptrace")!, args: [0, 0, 0, 0, 0, 0]))
    }
}

struct LearnedProfileTests {
    static func observed() -> ObservedRun {
        var run = ObservedRun(command: ["sh", "-c", "echo 'a b' > out"])
        run.allowed("ioctl", args: [1, 0x1_0000_5401, 0, 0, 0, 0])
        run.allowed("openat", args: [0, 0, 0, 0, 0, 0])
        run.allowed("clone", args: [0x1200011, 0, 0, 0, 0, 0])
        run.refused("personality", args: [0x40000, 0, 0, 0, 0, 0])
        run.refused("ptrace", args: [0, 0, 0, 0, 0, 0])
        run.connected("inet 127.0.0.1:8080")
        run.used("/work/p/out", .create)
        run.used("/work/p/build", .create)
        run.used("/work/p/build/a.o", .create)
        run.used("/work/p/existing.txt", .write)
        run.used("/tmp/cc123.s", .create)
        run.used("/dev/null", .write)
        run.used("/etc/gitconfig", .lookup, missingInView: true)
        run.paths["/etc/gitconfig"]!.missingButOnHost = true
        run.used("/proc/self/status", .read, missingInView: true)
        run.paths["/proc/self/status"]!.missingButOnHost = true
        run.used("/home/u/made", .create, missingInView: true)
        run.paths["/home/u/made"]!.missingButOnHost = true
        return run
    }

    @Test func writeRulesLiftAboveWhatTheRunMadeAndTakeAFreshTmpfsWhole() {
        let rules = LearnedProfile.writeRules(Self.observed(), view: [
            .init(destination: "/", kind: .noRule), .init(destination: "/work/p", kind: .tree), .init(destination: "/tmp", kind: .fresh),
            .init(destination: "/dev", kind: .fresh), .init(destination: "/dev/null", kind: .noRule),
            .init(destination: "/home/u", kind: .fresh), .init(destination: "/home/u", kind: .noRule), // remounted read-only
        ])
        #expect(rules == ["/tmp", "/work/p"]) // build/ was made by the run: its parent; existing.txt beneath /work/p
        var onlyContents = ObservedRun()
        onlyContents.used("/work/p/existing.txt", .write)
        #expect(LearnedProfile.writeRules(onlyContents, view: [.init(destination: "/work/p", kind: .tree)]) == ["/work/p/existing.txt"])
        // A write that failed on a read-only bind inside a writable home is no rule for the home.
        var refused = ObservedRun()
        refused.used("/home/u/proj/x", .create)
        #expect(LearnedProfile.writeRules(refused, view: [.init(destination: "/home/u", kind: .fresh),
                                                          .init(destination: "/home/u/proj", kind: .noRule)]).isEmpty)
    }

    @Test func theProfileLoadsNarrowsAndReadsBackForMerge() throws {
        let learned = LearnedProfile(base: "default", runs: 1, observed: Self.observed(), write: ["/tmp", "/work/p"])
        let text = learned.render(always: SeccompCompiler.initCalls, version: "test")
        // Loads as a profile extending default.
        let profile = try ProfileLoader(variables: ProfileVariables(cwd: "/", home: "/home/u", tmpdir: "/tmp", uid: 1000),
                                        userDirectory: nil, systemDirectory: nil,
                                        readFile: { $0 == "/p/learned.toml" ? text : nil }).resolve("/p/learned.toml")
        #expect(profile.seccompOnly?.contains("openat") == true && profile.seccompOnly?.contains("ptrace") == false)
        #expect(profile.seccompOnlyWhere.first { $0.syscall == "ioctl" }?.alternatives == ["arg1 & 0xffffffff == 0x5401"])
        #expect(profile.seccompOnlyWhere.first { $0.syscall == "clone" }?.alternatives.contains("arg0 == 0x4111") == true) // pid 1's
        #expect(profile.landlockWrite == ["/tmp", "/work/p"])
        // The record is comments; the suggestion is a mount line to review, never a mount.
        #expect(text.contains("#   refused: personality(0x40000 PER_LINUX|ADDR_NO_RANDOMIZE) (1)"))
        #expect(text.contains("#     { type = \"ro-bind\", source = \"/etc/gitconfig\", dest = \"/etc/gitconfig\" },"))
        #expect(!text.contains("/proc/self/status") && !text.contains("\"/home/u/made\""))
        #expect(profile.mounts.isEmpty)
        // `cell profile show` of it loads back to the same profile (the fuzzer's property).
        try ProfileFuzzing.check(text)
        try ProfileFuzzing.check(text.replacingOccurrences(of: "[seccomp.only_where]", with: "[seccomp.only_where]\nzz_none = []\nsocket = [\"arg0 == 1\"]"))
        // --merge reads it back: the same calls, values, record.
        let back = try LearnedProfile.read(text, file: "learned.toml")
        #expect(back.base == "default" && back.runs == 1 && back.write == ["/tmp", "/work/p"])
        #expect(back.observed.calls["ioctl"] == ObservedRun.Call(values: [0x5401]))
        #expect(back.observed.denied == ["personality(0x40000 PER_LINUX|ADDR_NO_RANDOMIZE)": 1, "ptrace": 1])
        #expect(back.observed.connections == ["inet 127.0.0.1:8080": 1])
        #expect(back.suggestions == ["/etc/gitconfig"])
    }

    @Test func pathsAProfileCannotNameGetNoRuleAndAReviewerSeesEveryCharacter() {
        var run = ObservedRun()
        run.used("/w/${HOME}/x", .create)
        run.used("/w/a/../b", .create)
        run.used("/w/ok\u{202E}txt.exe", .write)
        #expect(LearnedProfile.writeRules(run, view: [.init(destination: "/w", kind: .tree)]) == ["/w/ok\u{202E}txt.exe"])
        #expect(LearnedProfile.unrepresentable(run) == ["/w/${HOME}/x", "/w/a/../b"])
        let text = LearnedProfile(base: "default", runs: 1, observed: run, write: ["/w/ok\u{202E}txt.exe"]).render(always: [], version: "t")
        #expect(text.contains("write = [\"/w/ok\\u202Etxt.exe\"]") && !text.unicodeScalars.contains("\u{202E}"))
    }

    @Test func aCoreCallTheBaseRefusedIsNotListed() {
        var run = ObservedRun()
        run.refused("mprotect", args: [0, 0, 7, 0, 0, 0])
        run.refused("personality", args: [0x40000, 0, 0, 0, 0, 0])
        run.allowed("personality", args: [0xffff_ffff, 0, 0, 0, 0, 0])
        let text = LearnedProfile(base: "b", runs: 1, observed: run, write: nil)
            .render(always: [("mprotect", []), ("read", []), ("personality", [])], version: "t")
        #expect(!text.contains("\"mprotect\",") && text.contains("\"read\"") && text.contains("\"personality\""))
    }

    @Test func mergeRefusesWhatCellLearnDoesNotWrite() {
        let text = """
        # Learned by `cell learn` (cell test) from 1 run; the first:
        extends = "default"
        [seccomp]
        only = ["ioctl"]
        [seccomp.only_where]
        ioctl = ["arg1 < 0x9000"]
        """
        #expect(throws: ProfileDiagnosticList.self) { try LearnedProfile.read(text, file: "x.toml") }
        #expect(throws: ProfileDiagnosticList.self) { try LearnedProfile.read("extends = \"default\"\n", file: "y.toml") }
    }

    @Test func pathsAreBoundedInNumberAndBytes() {
        var run = ObservedRun()
        run.bounds.paths = 3
        for i in 0..<5 { run.used("/p\(i)", .read) }
        run.used("/p0", .write) // a known path is still recorded
        #expect(run.paths.count == 3 && run.dropped["paths"] == 2 && run.paths["/p0"]?.uses == [.read, .write])
        var long = ObservedRun()
        let path = "/" + String(repeating: "x", count: 4000)
        for i in 0..<2000 { long.used(path + "\(10_000 + i)", .lookup) } // 4,006 bytes each
        #expect(long.paths.count == (4 << 20) / 4006 && long.dropped["paths"] == 2000 - long.paths.count)
    }

    @Test func pinnedValuesPastTheBoundBecomeAnyArguments() {
        var run = ObservedRun()
        for request in 0..<UInt64(run.bounds.values + 1) { run.allowed("ioctl", args: [0, request, 0, 0, 0, 0]) }
        #expect(run.calls["ioctl"] == ObservedRun.Call(anyArguments: true))
    }
}
