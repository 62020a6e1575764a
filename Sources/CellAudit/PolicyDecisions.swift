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

    /// The action for a call. Several matching rules: the most restrictive wins, as the kernel
    /// would decide between filters (kill, then errno, then log, then allow).
    public func decide(number: Int32, args: [UInt64]) -> SeccompPolicy.Action {
        let matching = (rules[number] ?? []).filter { $0.matches(args) }.map(\.action)
        guard !matching.isEmpty else { return defaultAction }
        return matching.min { Self.rank($0) < Self.rank($1) }!
    }

    static func rank(_ action: SeccompPolicy.Action) -> Int {
        switch action {
        case .kill: return 0
        case .errno: return 1
        case .log: return 2
        case .allow: return 3
        }
    }
}
