import CellPolicy

/// What a policy decides for one call, evaluated in the supervisor when the filter notifies it
/// (SECCOMP_RET_USER_NOTIF). The filter only says "ask the supervisor"; the supervisor applies
/// the same rules to the call's number and arguments. It never *allows* on the strength of what
/// it reads from the caller's memory (paths): those are recorded only — reading them is a race
/// the caller can win (TOCTOU), so decisions rest on the register arguments alone.
public struct PolicyDecisions: Sendable {
    public var defaultAction: SeccompPolicy.Action
    public var policyName: String
    /// The rules by syscall number.
    public let rules: [Int32: [ResolvedRule]]

    public init(policyName: String, defaultAction: SeccompPolicy.Action, rules: [ResolvedRule]) {
        self.policyName = policyName
        self.defaultAction = defaultAction
        self.rules = Dictionary(grouping: rules, by: \.number)
    }

    /// Whether a call the policy refuses is a violation to record: not when only unaudited rules
    /// refuse it (clone3's ENOSYS, which steers libc to clone, is no misbehaviour).
    public func isAudited(number: Int32, args: [UInt64]) -> Bool {
        let matching = (rules[number] ?? []).filter { $0.matches(args) && $0.action != .allow }
        return matching.isEmpty || matching.contains(where: \.audited)
    }

    /// The action for a call (`ResolvedRule.verdict`: several matching rules, the most
    /// restrictive wins).
    public func decide(number: Int32, args: [UInt64]) -> SeccompPolicy.Action {
        ResolvedRule.verdict(rules[number] ?? [], default: defaultAction, args: args)
    }
}
