/// `[seccomp] only` (what `cell learn` writes): an allow-list laid over a policy, so that a
/// profile allows exactly the calls a program was seen making — and never a call, or an argument,
/// that the policy beneath denies.
///
/// The two are intersected here, into filters the kernel enforces together (it applies the
/// strictest verdict of all the filters a process has):
///   - the **policy filter** denies (EPERM, audited through the supervisor) every call the list
///     does not name; it allows a listed call wherever the policy beneath is *settled* for the
///     listed alternative — every condition the beneath policy has on that call reads only
///     argument bits the alternative pins (an `ioctl` request, a `socket` family, `clone` flags,
///     a `personality`) — and that policy allows it; a beneath verdict that denies a call
///     outright (clone3's ENOSYS, a kill rule) is kept as it is, so libc's fallbacks still work.
///   - a **restriction filter** (no notification: its refusals are errno answers the kernel gives
///     directly) carries the filter the beneath policy already keeps apart (an allow-list's
///     baseline), and its own conditional rules for each listed call whose alternative does
///     not settle them — `openat` with any arguments keeps "no setuid file".
///     Under a deny-by-default policy the beneath's conditional *allows* replace such an
///     alternative instead: they are the most the policy grants.
/// So every call the result allows is allowed by the policy beneath: by its own decision on the
/// pinned bits, or by its own rules in the second filter.
public enum SeccompNarrowing {
    /// The filters' rules: the policy filter's (its default refuses, audited) and the
    /// restriction filter's (default: allow; silent).
    public struct Filters: Equatable, Sendable {
        public var defaultAction: SeccompPolicy.Action
        public var policy: [ResolvedRule]
        public var restrictions: [ResolvedRule]
    }

    /// What an unlisted call gets: the beneath policy's own refusal when it refuses by default
    /// (a Docker profile's ENOSYS, which libc falls back from), else EPERM.
    public static func refusal(beneath defaultAction: SeccompPolicy.Action) -> SeccompPolicy.Action {
        isDenial(defaultAction) ? defaultAction : .errno(1)
    }

    /// Intersects `only` (allow rules: one per alternative; no conditions = any arguments) with
    /// the policy beneath: its default, its rules, and the rules it already keeps in a filter
    /// of their own (a deny-by-default policy's baseline).
    public static func narrow(only: [ResolvedRule], beneathDefault: SeccompPolicy.Action,
                              beneath: [ResolvedRule], beneathSeparate: [ResolvedRule]) -> Filters {
        let beneathBySyscall = Dictionary(grouping: beneath, by: \.number)
        let alternatives = Dictionary(grouping: only, by: \.number)
        var policy: [ResolvedRule] = []
        var restrictions: [ResolvedRule] = []
        let beneathAllows = !isDenial(beneathDefault)
        let unlisted = refusal(beneath: beneathDefault)

        // Listed calls, in the list's order.
        var seen = Set<Int32>()
        for rule in only where seen.insert(rule.number).inserted {
            let rules = beneathBySyscall[rule.number] ?? []
            var alts = alternatives[rule.number]!.map(\.conditions)
            if alts.contains(where: \.isEmpty) { alts = [[]] } // any arguments covers the rest
            func allow(_ conditions: [SeccompPolicy.Condition], _ action: SeccompPolicy.Action) {
                policy.append(ResolvedRule(syscall: rule.syscall, number: rule.number, action: action, conditions: conditions))
            }
            if rules.isEmpty {
                // The beneath policy's default decides every call of this number.
                if beneathAllows { alts.forEach { allow($0, beneathDefault) } }
                continue
            }
            if let single = rules.first, rules.count == 1, single.conditions.isEmpty {
                // One verdict for every call of this number.
                if isDenial(single.action) { policy.append(single) } else { alts.forEach { allow($0, single.action) } }
                continue
            }
            var needsRestrictions = false
            for alt in alts {
                if settles(alt, rules) {
                    let verdict = ResolvedRule.verdict(rules, default: beneathDefault, args: representative(alt))
                    if !isDenial(verdict) { allow(alt, verdict) }
                } else if beneathAllows {
                    allow(alt, .allow)
                    needsRestrictions = true
                } else {
                    // Deny by default beneath: its conditional allows are all it grants — those the
                    // alternative can meet, each with the alternative's conditions too where they
                    // compare other arguments (both must hold), else as it is (within the base).
                    for granted in rules where !isDenial(granted.action) && compatible(alt, granted.conditions) {
                        var both = granted
                        if Set(alt.map(\.index)).isDisjoint(with: granted.conditions.map(\.index)) { both.conditions = alt + granted.conditions }
                        if !policy.contains(both) { policy.append(both) }
                    }
                    needsRestrictions = true
                }
            }
            if needsRestrictions {
                restrictions += rules.filter { isDenial($0.action) }
            }
        }
        // Unlisted calls the beneath policy answers in a way of its own (another errno than
        // the default refusal, unaudited, or a kill): kept, so that libc's fallbacks and kill rules still hold.
        for rule in beneath where !seen.contains(rule.number) && rule.conditions.isEmpty && isDenial(rule.action)
            && (rule.action != unlisted || !rule.audited) {
            policy.append(rule)
        }
        // The base's own second filter goes along whole: its rules only ever refuse, and for an
        // unlisted call its answer (strict's clone3 → ENOSYS, which sends libc back to clone)
        // must stay the one the command gets.
        restrictions += beneathSeparate
        return Filters(defaultAction: unlisted, policy: policy, restrictions: restrictions)
    }

    public static func isDenial(_ action: SeccompPolicy.Action) -> Bool {
        switch action {
        case .allow, .log: return false
        case .errno, .kill: return true
        }
    }

    /// Whether every condition of `rules` reads only bits `alternative` fixes: an argument it
    /// pins whole (`==`), or bits inside a mask it pins (`&=` with a mask covering the rule's).
    /// Never for an alternative that compares an argument twice (the decoder refuses those; its
    /// representative would hold one of the two values only).
    public static func settles(_ alternative: [SeccompPolicy.Condition], _ rules: [ResolvedRule]) -> Bool {
        guard Set(alternative.map(\.index)).count == alternative.count else { return false }
        return rules.allSatisfy { rule in
            rule.conditions.allSatisfy { condition in
                alternative.contains { pin in
                    guard pin.index == condition.index else { return false }
                    switch pin.comparison {
                    case .equal: return true
                    case .maskedEqual: return condition.comparison == .maskedEqual && condition.mask & ~pin.mask == 0
                    default: return false
                    }
                }
            }
        }
    }

    /// Whether an argument could meet both `alternative` and `conditions`, as far as pins tell:
    /// false only when a pinned value contradicts one of them (`== V` against a pin V does not
    /// meet, masked comparisons that disagree on a bit both read); other comparisons may meet.
    static func compatible(_ alternative: [SeccompPolicy.Condition], _ conditions: [SeccompPolicy.Condition]) -> Bool {
        for pin in alternative {
            for c in conditions where c.index == pin.index {
                switch (pin.comparison, c.comparison) {
                case (.equal, .equal): if pin.value != c.value { return false }
                case (.maskedEqual, .equal): if c.value & pin.mask != pin.value { return false }
                case (.equal, .maskedEqual): if pin.value & c.mask != c.value { return false }
                case (.maskedEqual, .maskedEqual): if (pin.value ^ c.value) & pin.mask & c.mask != 0 { return false }
                default: break
                }
            }
        }
        return true
    }

    /// Arguments that satisfy the pins of `alternative` (other bits zero): where the beneath
    /// policy is settled, its verdict there is its verdict for the whole alternative.
    public static func representative(_ alternative: [SeccompPolicy.Condition]) -> [UInt64] {
        var args = [UInt64](repeating: 0, count: 6)
        for pin in alternative where pin.comparison == .equal || pin.comparison == .maskedEqual {
            args[pin.index] = pin.value
        }
        return args
    }
}
