/// A system-call policy in cell's vocabulary: names and `@groups`, a per-rule action, and
/// argument conditions — never raw BPF. `SeccompCompiler` turns it into a filter.
///
/// Every sandbox gets two stacked filters (the kernel applies the strictest verdict of all):
///   - the **baseline**, the same for every policy: no new namespaces through clone/unshare
///     (their flags are checked), clone3 → ENOSYS (its flags live in memory where seccomp cannot
///     see them, so libc falls back to clone), no TIOCSTI/TIOCLINUX ioctl, compared on the
///     low 32 bits of the request as the kernel does (CVE-2019-10063), sockets of the four
///     families a sandbox uses only, and no setuid or setgid file made (`setuidFileRules`);
///   - the **policy**: `default` (allow all but a deny-list), `strict` (an allow-list), or an
///     imported Docker/OCI profile, plus the user's adjustments.
/// Keeping the baseline separate means no policy can switch it off by accident (an allow-list
/// that allows `ioctl` outright, say).
public struct SeccompPolicy: Equatable, Sendable {
    public enum Action: Equatable, Sendable, CustomStringConvertible {
        case allow
        case errno(Int32)
        /// Kill the whole sandboxed process (not just the thread).
        case kill
        /// Allow, and log through the kernel's audit log.
        case log

        public var description: String {
            switch self {
            case .allow: return "allow"
            case .errno(let e): return "errno(\(ErrnoNames.name(e) ?? String(e)))"
            case .kill: return "kill"
            case .log: return "log"
            }
        }
    }

    public enum Comparison: String, Equatable, Sendable, CaseIterable {
        case equal = "==", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">",
             greaterOrEqual = ">=", maskedEqual = "&="
    }

    /// `arg<index> <op> value`; for `&=`, `(arg & mask) == value`.
    public struct Condition: Equatable, Sendable, CustomStringConvertible {
        public var index: Int
        public var comparison: Comparison
        public var value: UInt64
        public var mask: UInt64

        public init(index: Int, _ comparison: Comparison, _ value: UInt64, mask: UInt64 = 0) {
            self.index = index
            self.comparison = comparison
            self.value = value
            self.mask = mask
        }

        public var description: String {
            comparison == .maskedEqual
                ? "arg\(index) & 0x\(String(mask, radix: 16)) == 0x\(String(value, radix: 16))"
                : "arg\(index) \(comparison.rawValue) 0x\(String(value, radix: 16))"
        }
    }

    public struct Rule: Equatable, Sendable {
        /// Syscall names and `@group` names.
        public var names: [String]
        public var action: Action
        /// All must hold (AND). Rules for the same syscall are alternatives (OR).
        public var conditions: [Condition]
        /// Denials are violations, sent to the audit log through the supervisor. A rule that
        /// only steers libc (clone3 → ENOSYS) is not audited.
        public var audited: Bool

        public init(_ names: [String], _ action: Action, conditions: [Condition] = [], audited: Bool = true) {
            self.names = names
            self.action = action
            self.conditions = conditions
            self.audited = audited
        }
    }

    /// What the policy is called in messages and --dry-run.
    public var name: String
    public var defaultAction: Action
    public var rules: [Rule]
    /// Whether the sandbox may create namespaces of its own (off: the baseline filter forbids
    /// it, and the sandbox's user namespace allows no nested user namespace at all).
    public var allowNestedNamespaces: Bool
    /// --isolation landlock, and its network mode: what Landlock cannot restrict on this kernel
    /// is refused here instead (`landlockIsolationRules`). nil: a namespace sandbox.
    public var withoutNamespaces: NetworkMode? = nil
    /// A Landlock domain is applied: the mount calls it has no hook for are refused here, so
    /// that "no mount at all" holds even for a profile that allows @mount.
    public var underLandlock = false
    /// `[seccomp] only`: an allow-list over this policy (allow rules, one per alternative),
    /// intersected with it by `SeccompNarrowing`: nil, none.
    public var only: [Rule]? = nil

    public init(name: String, defaultAction: Action, rules: [Rule], allowNestedNamespaces: Bool = false) {
        self.name = name
        self.defaultAction = defaultAction
        self.rules = rules
        self.allowNestedNamespaces = allowNestedNamespaces
    }

    /// `default`: allow everything but what containers never need, denied with EPERM; calls
    /// newer than cell get ENOSYS.
    public static let `default` = SeccompPolicy(
        name: "default", defaultAction: .allow,
        rules: [Rule(SyscallGroups.deniedByDefault, .errno(EPERM_))] + personalityRules + unknownCalls)

    /// `strict`: deny (EPERM) everything but an allow-list of ordinary process, file, memory,
    /// signal, timer, IPC and socket calls; calls newer than cell get ENOSYS.
    public static let strict = SeccompPolicy(
        name: "strict", defaultAction: .errno(EPERM_),
        rules: [Rule(SyscallGroups.allowedByStrict, .allow)] + harmlessPersonalities + unknownCalls)

    /// Numbers above every call cell knows: a newer kernel's calls, whose arguments nobody here
    /// has judged. ENOSYS, as an older kernel answers, so libc and programs fall back to the
    /// calls they replace; not audited (probing for a new call is no violation).
    static let unknownCalls = [Rule(Syscalls.unknownRange.map { "syscall_\($0)" }, .errno(ENOSYS_), audited: false)]

    /// The built-in policies' names.
    public static let builtInNames = ["default", "strict"]

    /// Whether `name` is a built-in policy's (a comparison, not the list: its first use showed in
    /// a launch's profile).
    public static func isBuiltIn(_ name: String) -> Bool {
        name == "default" || name == "strict"
    }

    /// A built-in policy by name. A function, not a table: each policy is built on its first use,
    /// so a launch builds only its own (building both showed in a launch's profile).
    public static func builtIn(_ name: String) -> SeccompPolicy? {
        switch name {
        case "default": return .default
        case "strict": return .strict
        default: return nil
        }
    }

    /// personality() may select only what Docker allows: PER_LINUX (0), PER_LINUX32 (8),
    /// UNAME26 (0x20000), both (0x20008), and the query (0xffffffff). Everything else — the flags
    /// that weaken a process (no ASLR, pages mapped at 0, read-implies-exec), alone or beside
    /// other bits — is refused.
    ///
    /// The kernel reads the low 32 bits only (callers pass -1 sign-extended to query), and so
    /// do these rules. The policy allows by default, so the refusal is a set of deny rules,
    /// each a single masked comparison (libseccomp compares an argument once per rule):
    ///   - for each bit b other than 3 and 17: bit b set and the next bit (cyclically) clear;
    ///   - for b = 3 and 17: bits b-1 and b set, bit b+1 clear.
    /// These cover every refused 32-bit value: it has a set bit outside {3, 17} and (being no
    /// query) a clear bit, so the run of set bits holding that outside bit ends at a top bit t
    /// below a clear one; if t is 3 or 17 the run goes on below t, so bit t-1 is set. And none
    /// matches an allowed value: each needs a bit outside {3, 17} set and some bit clear.
    static let personalityRules: [Rule] = {
        func deny(_ set: [Int], clear: Int) -> Rule {
            let setBits = set.reduce(UInt64(0)) { $0 | 1 << UInt64($1) }
            return Rule(["personality"], .errno(EPERM_),
                        conditions: [Condition(index: 0, .maskedEqual, setBits, mask: setBits | 1 << UInt64(clear))])
        }
        return (0..<32).map { bit in
            bit == 3 || bit == 17 ? deny([bit - 1, bit], clear: bit + 1) : deny([bit], clear: (bit + 1) % 32)
        }
    }()

    /// The allow-list's version: the plain, 32-bit and UNAME26 personalities and the query, as
    /// Docker allows them.
    static let harmlessPersonalities: [Rule] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff].map { value in
        Rule(["personality"], .allow, conditions: [Condition(index: 0, .maskedEqual, UInt64(value), mask: 0xffff_ffff)])
    }

    /// The namespace flags of clone/unshare (CLONE_NEWTIME is left to unshare: in clone's
    /// first argument 0x80 is part of the exit signal).
    static let namespaceFlags: [UInt64] = [
        0x0002_0000, // CLONE_NEWNS
        0x0200_0000, // CLONE_NEWCGROUP
        0x0400_0000, // CLONE_NEWUTS
        0x0800_0000, // CLONE_NEWIPC
        0x1000_0000, // CLONE_NEWUSER
        0x2000_0000, // CLONE_NEWPID
        0x4000_0000, // CLONE_NEWNET
    ]
    static let cloneNewTime: UInt64 = 0x80

    /// socket() and socketpair() for AF_UNIX (1), AF_INET (2), AF_INET6 (10) and AF_NETLINK
    /// (16) only. The others are never needed in a sandbox and are reach or attack surface
    /// outside it: AF_VSOCK is not namespaced at all (a VM's hypervisor services, the host's
    /// ports), and a family's module is loaded on the first socket() that asks for it (AF_ALG,
    /// AF_TIPC, AF_RDS, AF_KCM... each with its CVEs). EAFNOSUPPORT, as a kernel without the
    /// family answers. Every value above 16 is refused outright — including those whose low
    /// 32 bits (all the kernel reads) would name an allowed family — then the gaps below it.
    static let socketFamilyRules: [Rule] = ["socket", "socketpair"].flatMap { call in
        [Rule([call], .errno(EAFNOSUPPORT_), conditions: [Condition(index: 0, .greater, 16)])]
            + [0, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15].map { family in
                Rule([call], .errno(EAFNOSUPPORT_), conditions: [Condition(index: 0, .equal, UInt64(family))])
            }
    }

    /// No file of the caller's uid may become setuid or setgid: one made in a writable bind
    /// stays on the host, where anyone who runs it gets the caller's ids. Refused wherever a
    /// mode is given — chmod, fchmod, fchmodat, fchmodat2; open, openat and creat that create
    /// (O_CREAT or O_TMPFILE); mknod and mknodat of a regular file (type 0 or S_IFREG) — and
    /// openat2, whose mode lives in memory seccomp cannot read, is ENOSYS so libc falls back
    /// to openat. The kernel reads modes and flags as 32 bits: masks below 32 bits see them
    /// as it does.
    static let setuidFileRules: [Rule] = {
        let setuid: UInt64 = 0o4000, setgid: UInt64 = 0o2000, regular: UInt64 = 0o100000, typeMask: UInt64 = 0o170000
        let creating: [UInt64] = [0o100, 0o20000000] // O_CREAT, __O_TMPFILE
        func bit(_ index: Int, _ value: UInt64) -> Condition { Condition(index: index, .maskedEqual, value, mask: value) }
        var rules: [Rule] = []
        for special in [setuid, setgid] {
            for (call, mode) in [("chmod", 1), ("fchmod", 1), ("fchmodat", 2), ("fchmodat2", 2), ("creat", 1)] {
                rules.append(Rule([call], .errno(EPERM_), conditions: [bit(mode, special)]))
            }
            for (call, flags) in [("open", 1), ("openat", 2)] {
                for flag in creating {
                    rules.append(Rule([call], .errno(EPERM_), conditions: [bit(flags, flag), bit(flags + 1, special)]))
                }
            }
            for (call, mode) in [("mknod", 1), ("mknodat", 2)] {
                for type in [0, regular] {
                    rules.append(Rule([call], .errno(EPERM_),
                                      conditions: [Condition(index: mode, .maskedEqual, type | special, mask: typeMask | special)]))
                }
            }
        }
        return rules + [Rule(["openat2"], .errno(ENOSYS_), audited: false)]
    }()

    /// Without namespaces the sandbox shares the host's filesystem and network namespace, and
    /// Landlock (ABI 7 here) cannot restrict connecting to a pathname unix socket — the systemd
    /// user bus, ssh-agent, a Docker socket — so socket(AF_UNIX) is refused (socketpair, which
    /// names nothing, stays). With network "none", Landlock's TCP rules forbid every bind and
    /// connect, but they cover only TCP: every other inet socket (UDP, raw, SCTP, MPTCP) is
    /// refused, and TCP fast open (data sent with the SYN, past the connect hook).
    static func landlockIsolationRules(_ network: NetworkMode) -> [Rule] {
        var rules = [
            Rule(["socket"], .errno(EPERM_), conditions: [Condition(index: 0, .equal, 1)]),
            // A datagram socketpair can still sendto() any pathname address (/dev/log, journald,
            // sd_notify), descriptors included: only stream and seqpacket pairs, connected to
            // each other and nothing else, stay.
            Rule(["socketpair"], .errno(EPERM_), conditions: [Condition(index: 0, .equal, 1), Condition(index: 1, .maskedEqual, 2, mask: 0xf)]),
            // NETLINK_SOCK_DIAG lists every socket of the host, the unix paths to aim at among them.
            Rule(["socket"], .errno(EPERM_), conditions: [Condition(index: 0, .equal, 16), Condition(index: 2, .maskedEqual, 4, mask: 0xffff_ffff)]),
        ]
        guard network == .none else { return rules }
        // listen() on a socket never bound picks a port itself, past Landlock's bind rule: a
        // server the host's network could reach.
        rules.append(Rule(["listen"], .errno(EPERM_)))
        for family: UInt64 in [2, 10] {
            let inet = Condition(index: 0, .equal, family)
            for type: UInt64 in [0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] { // all but SOCK_STREAM (1)
                rules.append(Rule(["socket"], .errno(EPERM_), conditions: [inet, Condition(index: 1, .maskedEqual, type, mask: 0xf)]))
            }
            rules.append(Rule(["socket"], .errno(EPERM_), conditions: [inet, Condition(index: 2, .greater, 6)])) // MPTCP, SCTP...
            for proto: UInt64 in 1...5 { rules.append(Rule(["socket"], .errno(EPERM_), conditions: [inet, Condition(index: 2, .equal, proto)])) }
        }
        let fastOpen: UInt64 = 0x2000_0000 // MSG_FASTOPEN
        for (call, flags) in [("sendto", 3), ("sendmsg", 2), ("sendmmsg", 3)] {
            rules.append(Rule([call], .errno(EPERM_), conditions: [Condition(index: flags, .maskedEqual, fastOpen, mask: fastOpen)]))
        }
        // setsockopt(IPPROTO_TCP, TCP_FASTOPEN_CONNECT): fast open on an ordinary connect.
        rules.append(Rule(["setsockopt"], .errno(EPERM_), conditions: [Condition(index: 1, .maskedEqual, 6, mask: 0xffff_ffff),
                                                                        Condition(index: 2, .maskedEqual, 30, mask: 0xffff_ffff)]))
        return rules
    }

    /// Landlock forbids mount, umount, remount, move_mount and pivot_root in a domain, but has no
    /// hook for mount_setattr (clearing a read-only flag) nor for open_tree's clone (a detached
    /// copy of a mount to attach elsewhere): both would undo the view's read-only mounts.
    static let mountCallsLandlockMisses: [Rule] = [
        Rule(["mount_setattr"], .errno(EPERM_)),
        Rule(["open_tree"], .errno(EPERM_), conditions: [Condition(index: 2, .maskedEqual, 1, mask: 1)]), // OPEN_TREE_CLONE
    ]

    /// The baseline filter every sandbox gets (see the type's documentation).
    public func baseline() -> SeccompPolicy {
        let tiocsti: UInt64 = 0x5412, tioclinux: UInt64 = 0x541C
        var rules: [Rule] = [
            Rule(["ioctl"], .errno(EPERM_), conditions: [Condition(index: 1, .maskedEqual, tiocsti, mask: 0xffff_ffff)]),
            Rule(["ioctl"], .errno(EPERM_), conditions: [Condition(index: 1, .maskedEqual, tioclinux, mask: 0xffff_ffff)]),
            Rule(["clone3"], .errno(ENOSYS_), audited: false),
        ] + Self.socketFamilyRules + Self.setuidFileRules + (withoutNamespaces.map(Self.landlockIsolationRules) ?? [])
            + (underLandlock ? Self.mountCallsLandlockMisses : [])
        if !allowNestedNamespaces {
            for flag in Self.namespaceFlags {
                rules.append(Rule(["clone"], .errno(EPERM_), conditions: [Condition(index: 0, .maskedEqual, flag, mask: flag)]))
            }
            for flag in Self.namespaceFlags + [Self.cloneNewTime] {
                rules.append(Rule(["unshare"], .errno(EPERM_), conditions: [Condition(index: 0, .maskedEqual, flag, mask: flag)]))
            }
            rules.append(Rule(["setns"], .errno(EPERM_)))
        }
        var baseline = SeccompPolicy(name: "baseline", defaultAction: .allow, rules: rules, allowNestedNamespaces: allowNestedNamespaces)
        baseline.withoutNamespaces = withoutNamespaces
        baseline.underLandlock = underLandlock
        return baseline
    }

    /// This policy with the user's adjustments applied last (so they win): `--allow-syscall`
    /// (also added to `only`, when there is one) and `--deny-syscall NAME[:ERRNO]`.
    public func adjusted(allow: [String], deny: [(name: String, errno: Int32)]) -> SeccompPolicy {
        var copy = self
        for name in allow {
            copy.rules.append(Rule([name], .allow))
            // Named on the command line: the allow-list of a learned profile takes it too.
            copy.only?.append(Rule([name], .allow))
        }
        for (name, code) in deny { copy.rules.append(Rule([name], .errno(code))) }
        return copy
    }
}

/// errno numbers used by the built-in policies (Linux, every architecture cell supports).
let EPERM_: Int32 = 1
let ENOSYS_: Int32 = 38
let EAFNOSUPPORT_: Int32 = 97

/// A syscall's rules after groups are expanded and later rules have overridden earlier ones.
public struct ResolvedRule: Equatable, Sendable {
    public var syscall: String
    public var number: Int32
    public var action: SeccompPolicy.Action
    public var conditions: [SeccompPolicy.Condition]
    public var audited: Bool = true

    public init(syscall: String, number: Int32, action: SeccompPolicy.Action, conditions: [SeccompPolicy.Condition], audited: Bool = true) {
        self.syscall = syscall
        self.number = number
        self.action = action
        self.conditions = conditions
        self.audited = audited
    }

    /// Whether the call's arguments satisfy every condition (unsigned 64-bit comparisons, as
    /// the filter makes them).
    public func matches(_ args: [UInt64]) -> Bool {
        conditions.allSatisfy { c in
            let a = c.index < args.count ? args[c.index] : 0
            switch c.comparison {
            case .equal: return a == c.value
            case .notEqual: return a != c.value
            case .less: return a < c.value
            case .lessOrEqual: return a <= c.value
            case .greater: return a > c.value
            case .greaterOrEqual: return a >= c.value
            case .maskedEqual: return a & c.mask == c.value
            }
        }
    }
}

extension ResolvedRule {
    /// The verdict `rules` (one syscall's) give a call with `args`: the most restrictive of the
    /// matching rules, as the kernel decides between filters (kill, then errno, then log, then
    /// allow); `defaultAction` when none matches.
    public static func verdict(_ rules: [ResolvedRule], default defaultAction: SeccompPolicy.Action, args: [UInt64]) -> SeccompPolicy.Action {
        let matching = rules.filter { $0.matches(args) }.map(\.action)
        return matching.min { rank($0) < rank($1) } ?? defaultAction
    }

    public static func rank(_ action: SeccompPolicy.Action) -> Int {
        switch action {
        case .kill: return 0
        case .errno: return 1
        case .log: return 2
        case .allow: return 3
        }
    }
}

public enum SeccompPolicyError: Error, Equatable, Sendable {
    case unknownSyscall(String, suggestion: String?)
    case unknownGroup(String)
    case conflictingRules(String)
    case badCondition(String)

    public var message: String {
        switch self {
        case .unknownSyscall(let name, let suggestion):
            return "unknown system call '\(name)'" + (suggestion.map { "; did you mean '\($0)'?" } ?? "")
        case .unknownGroup(let name):
            return "unknown system call group '\(name)' (groups: \(SyscallGroups.all.keys.sorted().joined(separator: ", ")))"
        case .conflictingRules(let name):
            return "a rule with conditions for '\(name)' follows one without: a syscall's rules either all have conditions or are replaced by the last unconditional one"
        case .badCondition(let text):
            return text
        }
    }
}

extension SeccompPolicy {
    /// Expands groups and applies the override rule: a later rule *without* conditions replaces
    /// every earlier rule for that syscall; rules with conditions add alternatives; a rule whose
    /// action is the default action only removes the earlier ones (libseccomp refuses it, and it
    /// means "do the default"). `resolve` maps a name to its number on this architecture: nil
    /// for a name nobody knows (an error), a negative number for one that exists only on other
    /// architectures (skipped), as libseccomp does.
    public func resolve(_ resolveName: (String) -> Int32?) throws(SeccompPolicyError) -> [ResolvedRule] {
        var order: [String] = []
        var bySyscall: [String: [ResolvedRule]] = [:]

        for rule in rules {
            for condition in rule.conditions where !(0...5).contains(condition.index) {
                throw .badCondition("argument index \(condition.index) out of range (arg0 to arg5)")
            }
            let (syscalls, unknownGroups) = SyscallGroups.expand(rule.names)
            if let group = unknownGroups.first { throw .unknownGroup(group) }
            let explicit = Set(rule.names.filter { !$0.hasPrefix("@") })
            for name in syscalls {
                guard let number = resolveName(name) else {
                    // Group members may be unknown to an older libseccomp: skip those, but a name
                    // the user wrote must exist. (Every name here is explicit or from a group.)
                    if explicit.contains(name) {
                        throw .unknownSyscall(name, suggestion: nearest(name, resolveName))
                    }
                    continue
                }
                if number < 0 { continue }
                if bySyscall[name] == nil { order.append(name) }
                var existing = bySyscall[name] ?? []
                if rule.conditions.isEmpty {
                    existing = rule.action == defaultAction ? [] :
                        [ResolvedRule(syscall: name, number: number, action: rule.action, conditions: [], audited: rule.audited)]
                } else {
                    if existing.contains(where: { $0.conditions.isEmpty }) { throw .conflictingRules(name) }
                    if rule.action != defaultAction {
                        existing.append(ResolvedRule(syscall: name, number: number, action: rule.action, conditions: rule.conditions, audited: rule.audited))
                    }
                }
                bySyscall[name] = existing
            }
        }
        return order.flatMap { bySyscall[$0] ?? [] }
    }

    private func nearest(_ name: String, _ resolveName: (String) -> Int32?) -> String? {
        var best: (String, Int)?
        for members in SyscallGroups.all.values {
            for candidate in members where resolveName(candidate) != nil {
                let d = levenshtein(candidate, name)
                if d <= 2 && (best == nil || d < best!.1) { best = (candidate, d) }
            }
        }
        return best?.0
    }
}

/// Levenshtein distance, for did-you-mean hints.
public func levenshtein(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}

/// errno names and numbers (Linux generic values), for policies and messages.
public enum ErrnoNames {
    static let table: [(String, Int32)] = [
        ("EPERM", 1), ("ENOENT", 2), ("ESRCH", 3), ("EINTR", 4), ("EIO", 5), ("ENXIO", 6), ("E2BIG", 7),
        ("ENOEXEC", 8), ("EBADF", 9), ("ECHILD", 10), ("EAGAIN", 11), ("ENOMEM", 12), ("EACCES", 13),
        ("EFAULT", 14), ("EBUSY", 16), ("EEXIST", 17), ("EXDEV", 18), ("ENODEV", 19), ("ENOTDIR", 20),
        ("EISDIR", 21), ("EINVAL", 22), ("ENFILE", 23), ("EMFILE", 24), ("ENOTTY", 25), ("ETXTBSY", 26),
        ("EFBIG", 27), ("ENOSPC", 28), ("ESPIPE", 29), ("EROFS", 30), ("EMLINK", 31), ("EPIPE", 32),
        ("ERANGE", 34), ("ENOSYS", 38), ("ENOTSUP", 95), ("EOPNOTSUPP", 95), ("EAFNOSUPPORT", 97),
        ("EADDRINUSE", 98), ("ECONNREFUSED", 111), ("ENETUNREACH", 101),
    ]

    public static func number(_ name: String) -> Int32? {
        if let n = Int32(name), n > 0, n < 4096 { return n }
        return table.first { $0.0 == name.uppercased() }?.1
    }

    public static func name(_ number: Int32) -> String? {
        table.first { $0.1 == number }?.0
    }
}
