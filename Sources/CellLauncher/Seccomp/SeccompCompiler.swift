import CCellSpawn
import CLibseccomp
import CellAudit
import CellPolicy
import Glibc

/// A compiled seccomp filter: the BPF program the kernel loads (struct sock_filter[]).
public struct CompiledFilter: Sendable {
    public var bpf: [UInt8]
    /// libseccomp's pseudo filter code, for --dry-run.
    public var pseudoCode: String
    public var instructionCount: Int { bpf.count / 8 }
}

/// Compiles `SeccompPolicy` values with libseccomp, in the supervisor, before clone: the
/// sandbox then makes a single seccomp() call on a ready program.
///
/// - native architecture only, and any other (i386 through `int 0x80`, x32 numbers) kills the
///   process (SCMP_FLTATR_ACT_BADARCH = KILL_PROCESS; libseccomp's default, KILL_THREAD, would
///   leave the rest of a multi-threaded process running);
/// - a binary-tree filter (SCMP_FLTATR_CTL_OPTIMIZE = 2), and plain allow/deny decisions
///   without argument checks, so the kernel's constant-action cache applies to them.
public enum SeccompCompiler {
    /// The calls the sandbox's pid 1 makes under its own filters (cell-init: lockdown.c hands
    /// the listener over; setup.c may hold; init.c starts the command with posix_spawn, forwards
    /// signals, reaps and reports), with the arguments a rule may look at. Each must be plainly
    /// allowed: sendmsg runs before anyone holds the listener (a notified call could not be
    /// answered), and a refused one leaves pid 1 unable to start, wait for or report on the
    /// command — a denied close hangs posix_spawn, a denied write loses the command's status.
    public static let initCalls: [(name: String, args: [UInt64])] = [
        // sendmsg (descriptors up) and send (the hold's 'H'), with MSG_NOSIGNAL as flags.
        ("sendmsg", [0, 0, 0x4000]), ("sendto", [0, 0, 0, 0x4000]), ("read", []), ("write", []), ("close", []), ("pipe2", []), ("fcntl", []),
        ("rt_sigaction", []), ("rt_sigprocmask", []), ("setsid", []), ("wait4", []), ("kill", []),
        ("exit", []), ("exit_group", []),
        // posix_spawn (musl and glibc): clone(CLONE_VM | CLONE_VFORK | SIGCHLD), then execve.
        ("clone", [0x100 | 0x4000 | 17]), ("execve", []),
    ]

    /// What a container's pid 1 adds, taking cell-runtime exec's requests once the command runs
    /// (cell-init/process.c): it waits in ppoll for a request or a child's end, and receives a
    /// request's descriptors with recvmsg. Refusing either would leave the container unable to
    /// reap or to take any request.
    public static let processCalls: [(name: String, args: [UInt64])] = [("ppoll", []), ("recvmsg", [])]

    /// Compiles the sandbox's filters.
    ///
    /// With `audit` (the normal case) every violation — a rule that denies, logs or kills, and
    /// the default action of an allow-list — becomes SECCOMP_RET_USER_NOTIF, answered by the
    /// supervisor after it has written the audit event. Plain allows stay plain (kernel-cached).
    ///
    /// With an allow-by-default policy the baseline rules join the policy filter, so baseline
    /// violations are audited too (except for a call the policy logs outright, whose baseline
    /// rules need the separate filter); the kernel gives ERRNO precedence over USER_NOTIF, so a
    /// separate baseline filter would answer them silently. With an allow-list the baseline
    /// must stay a filter of its own (libseccomp cannot express "allow ioctl except TIOCSTI"
    /// under a deny default), reduced to the calls the policy allows: those it denies are
    /// notified by the policy filter instead.
    ///
    /// Compiled at every launch, by the libseccomp cell runs with, for the architecture it runs
    /// on: no compiled filter is kept anywhere a sandbox could reach or a stale build could
    /// leave behind. The supervisor compiles while pid 1 builds the sandbox (Launcher).
    /// `takingProcesses`: pid 1 also takes exec's requests (`processCalls`).
    public static func compileFilters(_ policy: SeccompPolicy, audit: Bool = true, pseudoCode: Bool = false,
                                      takingProcesses: Bool = false) throws(LaunchError) -> FilterSet {
        let rules = try filterRules(policy)
        let decisions = PolicyDecisions(policyName: policy.name, defaultAction: rules.defaultAction, rules: rules.policy)
        if audit { try checkInitCalls(policy.name, rules, decisions, calls: initCalls + (takingProcesses ? processCalls : [])) }
        let policyFilter = try build(name: policy.name, defaultAction: rules.defaultAction, rules: rules.policy, notify: audit, pseudoCode: pseudoCode)
        let separateFilter = rules.separate.isEmpty ? nil
            : try build(name: "baseline", defaultAction: .allow, rules: rules.separate, notify: false, pseudoCode: pseudoCode)
        return FilterSet(baseline: separateFilter, policy: policyFilter, decisions: decisions)
    }

    /// `cell learn`: the sandbox's filters when every call outside `LearnedArguments.core` is to
    /// be seen. The policy filter notifies the supervisor of them all, which decides each with
    /// `policy`'s own rules (the decisions returned) and lets it continue where they allow it;
    /// the separate filter, if `policy` has one, is loaded as it is. The core calls the policy
    /// allows outright stay plain allows, and so does pid 1's hand-over of the listener (a
    /// sendmsg with MSG_NOSIGNAL): nobody could answer it yet.
    public static func learningFilters(_ policy: SeccompPolicy) throws(LaunchError) -> FilterSet {
        let rules = try filterRules(policy)
        let decisions = PolicyDecisions(policyName: policy.name, defaultAction: rules.defaultAction, rules: rules.policy)
        try checkInitCalls(policy.name, rules, decisions)
        var plain: [ResolvedRule] = []
        func allowedAsItIs(_ nr: Int32, _ conditions: [SeccompPolicy.Condition]) -> Bool {
            let own = decisions.rules[nr] ?? []
            let settled = own.isEmpty || SeccompNarrowing.settles(conditions, own)
            return settled && decisions.decide(number: nr, args: SeccompNarrowing.representative(conditions)) == .allow
        }
        for name in LearnedArguments.core {
            guard let nr = Syscalls.number(name), nr >= 0, allowedAsItIs(nr, []) else { continue }
            plain.append(ResolvedRule(syscall: name, number: nr, action: .allow, conditions: []))
        }
        let handOver = [SeccompPolicy.Condition(index: 2, .equal, 0x4000)] // MSG_NOSIGNAL
        if let nr = Syscalls.number("sendmsg"), nr >= 0, allowedAsItIs(nr, handOver) {
            plain.append(ResolvedRule(syscall: "sendmsg", number: nr, action: .allow, conditions: handOver))
        }
        // Default: notified (an audited errno compiles to SECCOMP_RET_USER_NOTIF).
        let learning = try build(name: "learning", defaultAction: .errno(1), rules: plain, notify: true, pseudoCode: false)
        let separate = rules.separate.isEmpty ? nil
            : try build(name: "baseline", defaultAction: .allow, rules: rules.separate, notify: false, pseudoCode: false)
        return FilterSet(baseline: separate, policy: learning, decisions: decisions)
    }

    /// Every call pid 1 makes under the filters must be plainly allowed by them.
    static func checkInitCalls(_ name: String, _ rules: FilterRules, _ decisions: PolicyDecisions,
                               calls: [(name: String, args: [UInt64])] = initCalls) throws(LaunchError) {
        if let call = firstRefusedInitCall(rules, decisions, calls: calls) {
            throw .invalid("seccomp policy '\(name)' does not allow \(call), which the sandbox's pid 1 needs to start and supervise the command (allow it: --allow-syscall \(call))")
        }
    }

    /// cell-runtime: an OCI config's own filter (linux.seccomp), compiled without baseline or
    /// notification, to be loaded beside the profile's. The kernel runs both and keeps the
    /// stricter answer, so this filter can only take away — but an errno of its would also win
    /// over the profile's notification, and the profile's refusal would go unaudited. So for
    /// every call `audited` (the profile's decisions) refuses whatever its arguments, this
    /// filter steps aside (an allow) unless it would kill: the call is still refused, by the
    /// profile, and recorded. pid 1's own calls must pass the filter.
    public static func engineFilter(_ policy: SeccompPolicy, deferringTo audited: PolicyDecisions) throws(LaunchError) -> CompiledFilter {
        let rules = try engineRules(policy, deferringTo: audited)
        let decisions = PolicyDecisions(policyName: policy.name, defaultAction: policy.defaultAction, rules: rules)
        if let call = firstRefusedInitCall(FilterRules(defaultAction: policy.defaultAction, policy: rules, separate: []), decisions,
                                           calls: initCalls + processCalls) {
            throw .invalid("the config's linux.seccomp does not allow \(call), which the container's pid 1 (cell-init) needs to start and supervise the process")
        }
        return try build(name: policy.name, defaultAction: policy.defaultAction, rules: rules, notify: false, pseudoCode: false)
    }

    /// The engine filter's rules: `policy`'s, less those of the calls `audited` refuses
    /// outright (and the engine would not kill for), which are allowed through to it.
    public static func engineRules(_ policy: SeccompPolicy, deferringTo audited: PolicyDecisions) throws(LaunchError) -> [ResolvedRule] {
        var rules = try resolve(policy)
        let refusedOutright = (0...Syscalls.highestKnown).filter { nr in
            guard Syscalls.name(nr) != nil else { return false }
            let own = audited.rules[nr] ?? []
            return own.isEmpty ? SeccompNarrowing.isDenial(audited.defaultAction)
                : own.contains { $0.conditions.isEmpty && SeccompNarrowing.isDenial($0.action) }
        }
        for nr in refusedOutright {
            let engine = rules.filter { $0.number == nr }
            let engineKills = engine.contains { $0.action == .kill } || (engine.isEmpty && policy.defaultAction == .kill)
            guard !engineKills, !engine.isEmpty || policy.defaultAction != .allow, let name = Syscalls.name(nr) else { continue }
            rules.removeAll { $0.number == nr }
            rules.append(ResolvedRule(syscall: name, number: nr, action: .allow, conditions: []))
        }
        return rules
    }

    /// The first of `initCalls` the rules do not plainly allow, if any.
    static func firstRefusedInitCall(_ rules: FilterRules, _ decisions: PolicyDecisions,
                                     calls: [(name: String, args: [UInt64])] = initCalls) -> String? {
        for call in calls {
            guard let nr = Syscalls.number(call.name), nr >= 0 else { continue }
            // With the arguments pid 1 passes where they are known (clone's flags, against
            // the baseline's namespace rules); elsewhere no rule but allow may exist at all.
            // Both filters count: a narrowed policy keeps some of its base's rules in the separate one.
            let args = call.args + Array(repeating: 0, count: 6 - call.args.count)
            let conditional = call.args.isEmpty && (rules.policy + rules.separate).contains { $0.number == nr && $0.action != .allow }
            let separate = ResolvedRule.verdict(rules.separate.filter { $0.number == nr }, default: .allow, args: args)
            if conditional || decisions.decide(number: nr, args: args) != .allow || separate != .allow {
                return call.name
            }
        }
        return nil
    }

    /// The rules of a sandbox's filters: the policy filter's (with its default action) and
    /// those that need a filter of their own, loaded before it, that notifies nobody.
    struct FilterRules {
        var defaultAction: SeccompPolicy.Action
        var policy: [ResolvedRule]
        var separate: [ResolvedRule]
    }

    /// With an allow-by-default policy the baseline's rules join the policy filter's; with an
    /// allow-list they keep a filter of their own, reduced to the calls the policy allows. With
    /// `only`, that result is narrowed (SeccompNarrowing).
    static func filterRules(_ policy: SeccompPolicy) throws(LaunchError) -> FilterRules {
        let policyRules = try resolve(policy)
        let baselineRules = try resolve(policy.baseline())
        var beneath: FilterRules
        if policy.defaultAction == .allow {
            // A call the policy refuses outright needs no baseline rule. One it lets through
            // outright with a rule (an unconditional `log`; a plain allow is no rule here) keeps
            // them in a filter of their own: libseccomp cannot say "log, but refuse these
            // arguments" in one filter, and the baseline must hold (its refusals there silent).
            let refused = Set(policyRules.filter { $0.conditions.isEmpty && SeccompNarrowing.isDenial($0.action) }.map(\.syscall))
            let letThrough = Set(policyRules.filter { $0.conditions.isEmpty && !SeccompNarrowing.isDenial($0.action) }.map(\.syscall))
            beneath = FilterRules(defaultAction: .allow,
                                  policy: policyRules + baselineRules.filter { !refused.contains($0.syscall) && !letThrough.contains($0.syscall) },
                                  separate: baselineRules.filter { letThrough.contains($0.syscall) })
        } else {
            // The calls an allow-list lets through, logged or not, keep the baseline's rules.
            let allowed = Set(policyRules.filter { !SeccompNarrowing.isDenial($0.action) }.map(\.syscall))
            beneath = FilterRules(defaultAction: policy.defaultAction, policy: policyRules, separate: baselineRules.filter { allowed.contains($0.syscall) })
        }
        guard let only = policy.only else { return beneath }
        // Resolved against a refusing default, so that every allow of the list stays a rule.
        let list = try resolve(SeccompPolicy(name: policy.name + " (only)", defaultAction: .errno(1), rules: only))
        let narrowed = SeccompNarrowing.narrow(only: list, beneathDefault: beneath.defaultAction,
                                               beneath: beneath.policy, beneathSeparate: beneath.separate)
        return FilterRules(defaultAction: narrowed.defaultAction, policy: narrowed.policy, separate: narrowed.restrictions)
    }

    /// The AUDIT_ARCH_* token of the architecture cell runs on.
    public static func nativeArchitecture() -> UInt32 {
        seccomp_arch_native()
    }

    /// "major.minor.micro" of the libseccomp cell is linked with.
    public static func libseccompVersion() -> String {
        guard let v = seccomp_version() else { return "" }
        return "\(v.pointee.major).\(v.pointee.minor).\(v.pointee.micro)"
    }

    /// libseccomp's readable rendering of filters compiled with `pseudoCode: true`, for --dry-run.
    public static func pseudoCode(_ set: FilterSet) -> String {
        var text = ""
        if let baseline = set.baseline {
            text += "# filter 1: rules of their own (an allow-list's baseline; the base's rules a narrowed list keeps): answered by the kernel, not audited\n" + baseline.pseudoCode
        }
        text += "# filter \(set.baseline == nil ? 1 : 2): policy '\(set.decisions.policyName)' (USER_NOTIF = answered by cell's supervisor, audited)\n"
        return text + set.policy.pseudoCode
    }

    static func resolve(_ policy: SeccompPolicy) throws(LaunchError) -> [ResolvedRule] {
        do {
            return try policy.resolve(Syscalls.number)
        } catch {
            throw .invalid("seccomp policy '\(policy.name)': \(error.message)")
        }
    }

    static func build(name: String, defaultAction: SeccompPolicy.Action, rules: [ResolvedRule], notify: Bool, pseudoCode: Bool) throws(LaunchError) -> CompiledFilter {
        func compiled(_ action: SeccompPolicy.Action, audited: Bool) -> UInt32 {
            if notify && audited && action != .allow { return cell_scmp_act_notify() }
            return self.action(action)
        }
        let defaultCompiled = compiled(defaultAction, audited: true)
        guard let ctx = seccomp_init(defaultCompiled) else {
            throw .setup("cannot create a seccomp filter (libseccomp: out of memory)")
        }
        defer { seccomp_release(ctx) }
        var rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, cell_scmp_act_kill_process())
        if rc == 0 { rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2) }
        // no_new_privs is set by the sandbox setup itself, before the filter is loaded.
        if rc == 0 { rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) }
        if rc != 0 { throw .setup("cannot configure the seccomp filter: \(errorText(-rc))") }
        for rule in rules {
            let act = compiled(rule.action, audited: rule.audited)
            if act == defaultCompiled { continue } // the default already does it (libseccomp refuses the rule)
            var args = rule.conditions.map(comparison)
            rc = args.withUnsafeMutableBufferPointer { buffer in
                seccomp_rule_add_array(ctx, act, rule.number, UInt32(buffer.count), buffer.baseAddress)
            }
            if rc != 0 {
                let conditions = rule.conditions.map(\.description).joined(separator: " && ")
                throw .invalid("seccomp policy '\(name)': libseccomp refused the rule \(rule.syscall)\(conditions.isEmpty ? "" : " if " + conditions) -> \(rule.action): \(errorText(-rc))")
            }
        }
        let bpf = try export(ctx, seccomp_export_bpf, what: "BPF")
        // The pseudo code costs as much as the filter: only for --dry-run.
        let pfc = pseudoCode ? String(decoding: try export(ctx, seccomp_export_pfc, what: "PFC"), as: UTF8.self) : ""
        return CompiledFilter(bpf: bpf, pseudoCode: pfc)
    }

    /// The syscall number on this architecture: nil when no architecture has the name,
    /// negative when only others do.
    static func action(_ action: SeccompPolicy.Action) -> UInt32 {
        switch action {
        case .allow: return cell_scmp_act_allow()
        case .errno(let e): return cell_scmp_act_errno(UInt16(truncatingIfNeeded: e))
        case .kill: return cell_scmp_act_kill_process()
        case .log: return cell_scmp_act_log()
        }
    }

    static func comparison(_ c: SeccompPolicy.Condition) -> scmp_arg_cmp {
        let op: scmp_compare
        var datumA = c.value, datumB: UInt64 = 0
        switch c.comparison {
        case .equal: op = SCMP_CMP_EQ
        case .notEqual: op = SCMP_CMP_NE
        case .less: op = SCMP_CMP_LT
        case .lessOrEqual: op = SCMP_CMP_LE
        case .greater: op = SCMP_CMP_GT
        case .greaterOrEqual: op = SCMP_CMP_GE
        case .maskedEqual:
            op = SCMP_CMP_MASKED_EQ
            datumA = c.mask
            datumB = c.value
        }
        return scmp_arg_cmp(arg: UInt32(c.index), op: op, datum_a: datumA, datum_b: datumB)
    }

    /// libseccomp 2.5 exports only to a file descriptor: export into a memfd and read it back.
    private static func export(_ ctx: scmp_filter_ctx, _ exporter: (scmp_filter_ctx?, Int32) -> Int32, what: String) throws(LaunchError) -> [UInt8] {
        let fd = cell_memfd("cell-seccomp")
        guard fd >= 0 else { throw .setup("cannot create a memfd for the seccomp filter: \(errorText(errno))") }
        defer { close(fd) }
        let rc = exporter(ctx, fd)
        guard rc == 0 else { throw .setup("cannot export the seccomp filter (\(what)): \(errorText(-rc))") }
        let size = lseek(fd, 0, SEEK_END)
        guard size >= 0 else { throw .setup("cannot read back the seccomp filter: \(errorText(errno))") }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n == size else { throw .setup("cannot read back the seccomp filter: short read") }
        return bytes
    }
}
