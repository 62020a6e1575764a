import CellAudit
import CellPolicy

/// The filters of one sandbox, ready to load, and the decisions behind the notified ones.
public struct FilterSet: Sendable {
    /// The baseline as a filter of its own (only with an allow-list policy), loaded first.
    public var baseline: CompiledFilter?
    /// The policy filter: the one with the notification listener.
    public var policy: CompiledFilter
    public var decisions: PolicyDecisions
    /// cell-runtime: the OCI config's own filter, loaded first, notifying nobody.
    public var engine: CompiledFilter?

    /// The filter part of pid 1's plan, in load order: the baseline first, then the policy,
    /// whose notifications (every audited violation) go to the supervisor.
    public var records: [PlanRecord] {
        [engine, baseline].compactMap { $0 }.map { PlanRecord.seccomp(listener: false, bpf: $0.bpf) }
            + [.seccomp(listener: true, bpf: policy.bpf), .endFilters]
    }
}
