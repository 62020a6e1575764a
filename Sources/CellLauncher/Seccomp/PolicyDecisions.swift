/// What a policy decides for one call, evaluated in the supervisor when the filter notifies it
/// (SECCOMP_RET_USER_NOTIF). The filter only says "ask the supervisor"; the supervisor applies
/// the same rules to the call's number and arguments. It never *allows* on the strength of what
/// it reads from the caller's memory (paths): those are recorded only — reading them is a race
/// the caller can win (TOCTOU), so decisions rest on the register arguments alone.
public struct PolicyDecisions: Sendable {
    public var defaultAction: SeccompPolicy.Action
    public var policyName: String
    private let table: RuleTable

    /// The rules by syscall number.
    public var rules: [Int32: [ResolvedRule]] { table.rules }

    public init(policyName: String, defaultAction: SeccompPolicy.Action, rules: [ResolvedRule]) {
        self.policyName = policyName
        self.defaultAction = defaultAction
        table = RuleTable(Dictionary(grouping: rules, by: \.number))
    }

    /// The decisions of `policy`, whose filters were compiled when cell was built
    /// (`EmbeddedFilters`): its rules are resolved the first time a call is notified, which a
    /// launch without a violation never does. Should that resolution fail (it cannot for a
    /// policy the embedded filters were compiled from: a test compiles them), every notified
    /// call is denied.
    init(resolvingLater policy: SeccompPolicy) {
        policyName = policy.name
        defaultAction = policy.defaultAction
        table = RuleTable {
            guard let merged = try? SeccompCompiler.mergedRules(policy) else { return nil }
            return Dictionary(grouping: merged.policy, by: \.number)
        }
    }

    /// The action for a call. Several matching rules: the most restrictive wins, as the kernel
    /// would decide between filters (kill, then errno, then log, then allow).
    public func decide(number: Int32, args: [UInt64]) -> SeccompPolicy.Action {
        guard let rules = table.resolved else { return .errno(EPERM_) }
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

/// The filters of one sandbox, ready to load, and the decisions behind the notified ones.
public struct FilterSet: Sendable {
    /// The baseline as a filter of its own (only with an allow-list policy), loaded first.
    public var baseline: CompiledFilter?
    /// The policy filter: the one with the notification listener.
    public var policy: CompiledFilter
    public var decisions: PolicyDecisions
    /// Whether the policy plainly allows what starting the command takes
    /// (`SeccompCompiler.commandStartCalls`), so that pid 1 may start it before cell-init runs.
    public var allowsCommandStart: Bool
}

/// The rules of a `PolicyDecisions`, given or resolved once on first use. Only the supervisor's
/// thread reads them (it answers the notifications).
private final class RuleTable: @unchecked Sendable {
    private var table: [Int32: [ResolvedRule]]??
    private let resolve: () -> [Int32: [ResolvedRule]]?

    init(_ rules: [Int32: [ResolvedRule]]) {
        table = .some(rules)
        resolve = { rules }
    }

    init(resolving: @escaping () -> [Int32: [ResolvedRule]]?) {
        table = nil
        resolve = resolving
    }

    /// Nil when they could not be resolved.
    var resolved: [Int32: [ResolvedRule]]? {
        if let table { return table }
        let rules = resolve()
        table = .some(rules)
        return rules
    }

    var rules: [Int32: [ResolvedRule]] { resolved ?? [:] }
}
