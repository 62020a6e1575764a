import CellAudit
import CellPolicy
import Testing
@testable import CellLauncher

struct SeccompPolicyTests {
    /// A fake resolver: a few names, one that exists on other architectures only (negative).
    static func numbers(_ name: String) -> Int32? {
        ["mount": 165, "ptrace": 101, "ioctl": 16, "getpid": 39, "clone": 56, "keyctl": 250, "add_key": 248,
         "request_key": 249, "personality": 135, "socket": 41][name] ?? (name == "stime" ? -10_001 : name.hasPrefix("syscall_") ? Syscalls.number(name) : nil)
    }

    @Test func builtInNamesLookupsAndChecksAgree() {
        // Three views of the same two policies (the list, the lookup, the cheap check): in step.
        for name in SeccompPolicy.builtInNames {
            #expect(SeccompPolicy.isBuiltIn(name) && SeccompPolicy.builtIn(name)?.name == name, "\(name)")
        }
        #expect(!SeccompPolicy.isBuiltIn("Default") && SeccompPolicy.builtIn("docker") == nil)
    }

    @Test func laterUnconditionalRuleReplacesEarlierOnes() throws {
        let p = SeccompPolicy(name: "t", defaultAction: .allow, rules: [
            .init(["mount", "ptrace"], .errno(1)),
            .init(["mount"], .errno(13)),
            .init(["ptrace"], .allow), // the default action: removes the deny
        ])
        let rules = try p.resolve(Self.numbers)
        #expect(rules == [ResolvedRule(syscall: "mount", number: 165, action: .errno(13), conditions: [])])
    }

    @Test func conditionalRulesAccumulate() throws {
        let c1 = SeccompPolicy.Condition(index: 1, .maskedEqual, 0x5412, mask: 0xffff_ffff)
        let c2 = SeccompPolicy.Condition(index: 1, .maskedEqual, 0x541C, mask: 0xffff_ffff)
        let p = SeccompPolicy(name: "t", defaultAction: .allow, rules: [
            .init(["ioctl"], .errno(1), conditions: [c1]), .init(["ioctl"], .errno(1), conditions: [c2]),
        ])
        #expect(try p.resolve(Self.numbers).map(\.conditions) == [[c1], [c2]])
    }

    @Test func conditionsAfterAnUnconditionalRuleAreAnError() {
        let p = SeccompPolicy(name: "t", defaultAction: .errno(1), rules: [
            .init(["ioctl"], .allow), .init(["ioctl"], .errno(13), conditions: [.init(index: 1, .equal, 1)]),
        ])
        #expect(throws: SeccompPolicyError.conflictingRules("ioctl")) { try p.resolve(Self.numbers) }
    }

    @Test func groupsExpandAndForeignSyscallsAreSkipped() throws {
        let p = SeccompPolicy(name: "t", defaultAction: .allow, rules: [.init(["@keyring", "stime"], .errno(1))])
        #expect(try p.resolve(Self.numbers).map(\.syscall) == ["add_key", "keyctl", "request_key"])
    }

    @Test func unknownNamesAreErrorsWithAHint() {
        let p = SeccompPolicy(name: "t", defaultAction: .allow, rules: [.init(["mout"], .errno(1))])
        #expect(throws: SeccompPolicyError.unknownSyscall("mout", suggestion: "mount")) { try p.resolve(Self.numbers) }
        let g = SeccompPolicy(name: "t", defaultAction: .allow, rules: [.init(["@nope"], .errno(1))])
        #expect(throws: SeccompPolicyError.unknownGroup("@nope")) { try g.resolve(Self.numbers) }
        let c = SeccompPolicy(name: "t", defaultAction: .allow, rules: [.init(["mount"], .errno(1), conditions: [.init(index: 6, .equal, 0)])])
        #expect(throws: SeccompPolicyError.self) { try c.resolve(Self.numbers) }
    }

    @Test func baselineFiltersNamespaceFlagsAndTerminalIoctls() {
        let b = SeccompPolicy.default.baseline()
        #expect(b.defaultAction == .allow)
        #expect(b.rules.contains(.init(["clone3"], .errno(38), audited: false)))
        #expect(b.rules.contains(.init(["setns"], .errno(1))))
        let ioctl = b.rules.filter { $0.names == ["ioctl"] }.flatMap(\.conditions)
        #expect(ioctl == [.init(index: 1, .maskedEqual, 0x5412, mask: 0xffff_ffff), .init(index: 1, .maskedEqual, 0x541C, mask: 0xffff_ffff)])
        let newuser = SeccompPolicy.Condition(index: 0, .maskedEqual, 0x1000_0000, mask: 0x1000_0000)
        #expect(b.rules.contains(.init(["clone"], .errno(1), conditions: [newuser])))
        #expect(b.rules.contains(.init(["unshare"], .errno(1), conditions: [newuser])))
        // A policy that allows nested namespaces keeps every rule but the namespace ones.
        var open = SeccompPolicy.default
        open.allowNestedNamespaces = true
        #expect(!open.baseline().rules.contains { ["clone", "unshare", "setns"].contains($0.names[0]) })
        #expect(open.baseline().rules.count == b.rules.count - 7 - 8 - 1)
    }

    @Test func defaultDeniesTheDangerousGroupsAndStrictIsAnAllowList() {
        #expect(SeccompPolicy.default.defaultAction == .allow)
        let denied = SyscallGroups.expand(SeccompPolicy.default.rules.flatMap(\.names)).syscalls
        for name in ["mount", "ptrace", "bpf", "keyctl", "io_uring_setup", "open_by_handle_at", "userfaultfd",
                     "perf_event_open", "kexec_load", "init_module", "process_vm_readv", "setns", "swapon",
                     "reboot", "acct", "settimeofday", "clock_settime", "adjtimex", "syslog", "uselib",
                     "quotactl", "lookup_dcookie", "iopl", "ioperm", "name_to_handle_at", "fsopen", "move_mount"] {
            #expect(denied.contains(name), "\(name)")
        }
        #expect(SeccompPolicy.strict.defaultAction == .errno(1))
        let allowed = SyscallGroups.expand(SeccompPolicy.strict.rules.filter { $0.action == .allow && $0.conditions.isEmpty }.flatMap(\.names)).syscalls
        #expect(allowed.contains("execveat") && allowed.contains("wait4") && allowed.contains("clone"))
        #expect(!allowed.contains("mount") && !allowed.contains("ptrace") && !allowed.contains("setns") && !allowed.contains("personality"))
    }

    @Test func adjustmentsComeLast() throws {
        let p = SeccompPolicy.default.adjusted(allow: ["ptrace"], deny: [("getpid", 13)])
        let rules = try p.resolve(Self.numbers)
        #expect(!rules.contains { $0.syscall == "ptrace" })
        #expect(rules.contains(ResolvedRule(syscall: "getpid", number: 39, action: .errno(13), conditions: [])))
    }

    @Test func errnoNames() {
        #expect(ErrnoNames.number("EACCES") == 13)
        #expect(ErrnoNames.number("eperm") == 1)
        #expect(ErrnoNames.number("38") == 38)
        #expect(ErrnoNames.number("EWHAT") == nil)
        #expect(ErrnoNames.number("0") == nil)
    }
}

struct DockerProfileTests {
    let profile = """
    {
      "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
      "architectures": ["SCMP_ARCH_X86_64"],
      "syscalls": [
        {"names": ["getpid", "mount"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
          {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22, "args": [
          {"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_PTRACE"]}},
        {"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["s390x"]}},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}
      ]
    }
    """

    @Test func semantics() throws {
        let p = try DockerSeccompProfile.policy(fromJSON: profile, name: "p.json", keptCapabilities: [], architecture: "x86_64")
        #expect(p.defaultAction == .errno(38))
        #expect(p.rules[0] == .init(["getpid", "mount"], .allow))
        // Two conditions on the same index: two alternative rules.
        #expect(p.rules[1].conditions == [.init(index: 0, .equal, 0)])
        #expect(p.rules[2].conditions == [.init(index: 0, .equal, 8)])
        // Conditions on different indexes: one rule, both must hold.
        #expect(p.rules[3] == .init(["socket"], .errno(22), conditions: [.init(index: 0, .equal, 16), .init(index: 2, .equal, 9)]))
        // ptrace needs CAP_SYS_PTRACE (not kept): skipped. keyctl applies (CAP_SYS_ADMIN not kept).
        #expect(!p.rules.contains { $0.names == ["ptrace"] })
        #expect(p.rules.contains(.init(["keyctl"], .errno(38))))
        #expect(!p.rules.contains { $0.names == ["ioctl"] })
        // MASKED_EQ: value is the mask, valueTwo the expected value.
        #expect(p.rules.last == .init(["clone"], .allow, conditions: [.init(index: 0, .maskedEqual, 0, mask: 2114060288)]))

        let withCaps = try DockerSeccompProfile.policy(fromJSON: profile, name: "p.json", keptCapabilities: ["CAP_SYS_PTRACE", "CAP_SYS_ADMIN"], architecture: "x86_64")
        #expect(withCaps.rules.contains(.init(["ptrace"], .allow)))
        #expect(!withCaps.rules.contains { $0.names == ["keyctl"] })
    }

    @Test("malformed profiles are errors naming the problem", arguments: [
        ("[]", "a seccomp profile is a JSON object"),
        ("{}", "'defaultAction' is missing"),
        (#"{"defaultAction": "SCMP_ACT_MAYBE"}"#, "unknown action 'SCMP_ACT_MAYBE'"),
        (#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}"#, "syscalls[0] has no 'names'"),
        (#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#, "must be 0 to 5"),
        (#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SORTA"}]}]}"#, "unknown argument operator"),
        (#"{"defaultAction": "#, "p.json:1:19: unexpected end of input"),
    ])
    func malformed(text: String, fragment: String) {
        do {
            _ = try DockerSeccompProfile.policy(fromJSON: text, name: "p.json", keptCapabilities: [])
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.message.contains(fragment), "\(error.message)")
        }
    }
}

struct JSONParserTests {
    @Test func values() throws {
        let v = try JSONParser.parse(#" {"a": [1, -2.5e3, true, false, null], "s": "x\"\\\u00e9\n", "big": 18446744073709551615} "#)
        #expect(v["a"] == .array([.number("1"), .number("-2.5e3"), .bool(true), .bool(false), .null]))
        #expect(v["s"]?.string == "x\"\\é\n")
        #expect(v["big"]?.uint64 == UInt64.max)
        #expect(try JSONParser.parse(#""\ud83d\ude00""#).string == "😀")
    }

    @Test("errors carry line and column", arguments: [
        ("{\n  \"a\": }", 2, 8), ("[1, 2", 1, 6), ("{\"a\" 1}", 1, 6), ("tru", 1, 1), ("\"abc", 1, 5), ("[1] x", 1, 5),
    ])
    func errors(text: String, line: Int, column: Int) {
        do {
            _ = try JSONParser.parse(text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.line == line && error.column == column, "\(text): \(error)")
        }
    }
}

struct CapabilityNameTests {
    @Test func names() throws {
        #expect(Capabilities.number("CAP_NET_BIND_SERVICE") == 10)
        #expect(Capabilities.number("net_bind_service") == 10)
        #expect(Capabilities.number("CAP_NOPE") == nil)
        #expect(Capabilities.name(21) == "CAP_SYS_ADMIN")
        #expect(try Capabilities.set(["CAP_CHOWN", "cap_kill"]) == (1 << 0) | (1 << 5))
        #expect(Capabilities.names((1 << 0) | (1 << 5)) == ["CAP_CHOWN", "CAP_KILL"])
        #expect(throws: LaunchError.self) { try Capabilities.set(["CAP_NOPE"]) }
    }
}

/// The compiled filters, and the policy check that lets the sandbox's pid 1 start.
struct CompiledFilterTests {
    @Test("an allow-by-default policy carries the baseline rules; an allow-list keeps them separate")
    func compiledFilters() throws {
        // Numbers as this architecture has them: the tests carry no architecture's values.
        let ioctl = try #require(Syscalls.number("ioctl"))
        let clone3 = try #require(Syscalls.number("clone3"))
        let mount = try #require(Syscalls.number("mount"))
        let def = try SeccompCompiler.compileFilters(.default)
        #expect(def.baseline == nil)
        #expect(def.decisions.decide(number: ioctl, args: [0, 0x5412]) == .errno(1)) // TIOCSTI, audited
        #expect(def.decisions.decide(number: clone3, args: []) == .errno(38))
        let strict = try SeccompCompiler.compileFilters(.strict)
        #expect(strict.baseline != nil)
        #expect(strict.decisions.decide(number: mount, args: []) == .errno(1))
    }

    @Test func aPolicyMustLetTheSandboxStart() {
        #expect(throws: LaunchError.self) { try SeccompCompiler.compileFilters(SeccompPolicy.default.adjusted(allow: [], deny: [("sendmsg", 1)])) }
    }
}
