
/// Imports a Docker/OCI seccomp profile (the JSON format of moby's profiles/seccomp/default.json
/// and of containers-common's seccomp.json) as a `SeccompPolicy`, with the same semantics:
///
/// - `defaultAction` and `defaultErrnoRet`; each entry of `syscalls` has `names`, `action`,
///   optional `errnoRet` and `args` (`index`, `value`, `valueTwo`, `op`);
/// - several `args` on the *same* index become separate rules (alternatives), as moby does; on
///   different indexes they must all hold;
/// - an entry applies only if its `includes` hold (every listed capability is kept, this
///   architecture is listed, the kernel is at least `minKernel`) and its `excludes` do not (no
///   listed capability is kept, this architecture is not listed);
/// - `architectures`/`archMap` are accepted and ignored: cell's filters are native-only, and
///   every other architecture is killed.
/// Unknown actions or operators are errors; unknown syscall names are errors only when the file
/// names them in an entry that applies (moby skips names the running libseccomp does not know;
/// so does cell, for names libseccomp knows on other architectures only).
public enum DockerSeccompProfile {
    public static let architectureNames = ["x86_64": ["SCMP_ARCH_X86_64", "amd64", "x86_64"],
                                           "aarch64": ["SCMP_ARCH_AARCH64", "arm64", "aarch64"]]

    public static func policy(fromJSON text: String, name: String, keptCapabilities: [String],
                              architecture: String = currentArchitecture,
                              kernel: (Int, Int) = (6, 0)) throws(LaunchError) -> SeccompPolicy {
        let root: JSONValue
        do {
            root = try JSONParser.parse(text)
        } catch {
            throw .invalid("\(name):\(error.line):\(error.column): \(error.message)")
        }
        return try policy(from: root, name: name, keptCapabilities: keptCapabilities, architecture: architecture, kernel: kernel)
    }

    /// The same, from the parsed document (an OCI config's linux.seccomp, which has this shape
    /// less the includes and excludes).
    public static func policy(from root: JSONValue, name: String, keptCapabilities: [String],
                              architecture: String = currentArchitecture,
                              kernel: (Int, Int) = (6, 0)) throws(LaunchError) -> SeccompPolicy {
        func bad(_ message: String) -> LaunchError { .invalid("\(name): \(message)") }
        guard case .object = root else { throw bad("a seccomp profile is a JSON object") }
        guard let defaultName = root["defaultAction"]?.string else { throw bad("'defaultAction' is missing") }
        func errno(_ value: JSONValue?, _ place: String) throws(LaunchError) -> Int32? {
            guard let value, !value.isNull else { return nil }
            guard let n = value.int.flatMap({ Int32(exactly: $0) }), n >= 0 else { throw bad("\(place) must be an errno number") }
            return n
        }
        let defaultErrno = try errno(root["defaultErrnoRet"], "defaultErrnoRet")
        let defaultAction = try action(defaultName, errnoRet: defaultErrno, where: "defaultAction", bad)

        let archAliases = Set(architectureNames[architecture] ?? [architecture])
        let caps = Set(keptCapabilities.map { $0.uppercased() })
        var rules: [SeccompPolicy.Rule] = []
        for (position, entry) in (root["syscalls"]?.array ?? []).enumerated() {
            let place = "syscalls[\(position)]"
            guard case .object = entry else { throw bad("\(place) is not an object") }
            var names = entry["names"]?.array?.compactMap(\.string) ?? []
            if let single = entry["name"]?.string { names.append(single) }
            guard !names.isEmpty else { throw bad("\(place) has no 'names'") }
            guard let actionName = entry["action"]?.string else { throw bad("\(place) has no 'action'") }
            let ruleAction = try action(actionName, errnoRet: try errno(entry["errnoRet"], place + ".errnoRet") ?? defaultErrno, where: place, bad)

            if let includes = entry["includes"] {
                let needCaps = includes["caps"]?.array?.compactMap(\.string) ?? []
                if !needCaps.allSatisfy({ caps.contains($0.uppercased()) }) { continue }
                if let arches = includes["arches"]?.array?.compactMap(\.string), !arches.isEmpty,
                   archAliases.isDisjoint(with: arches) { continue }
                if let minKernel = includes["minKernel"]?.string, !kernelAtLeast(minKernel, kernel) { continue }
            }
            if let excludes = entry["excludes"] {
                let excludedCaps = excludes["caps"]?.array?.compactMap(\.string) ?? []
                if excludedCaps.contains(where: { caps.contains($0.uppercased()) }) { continue }
                if let arches = excludes["arches"]?.array?.compactMap(\.string), !archAliases.isDisjoint(with: arches) { continue }
            }

            var byIndex: [Int: [SeccompPolicy.Condition]] = [:]
            for arg in entry["args"]?.array ?? [] {
                guard let index = arg["index"]?.int, (0...5).contains(index) else { throw bad("\(place): an argument 'index' must be 0 to 5") }
                guard let value = arg["value"]?.uint64 else { throw bad("\(place): an argument 'value' must be a non-negative integer") }
                let valueTwo = arg["valueTwo"]?.uint64 ?? 0
                guard let op = arg["op"]?.string else { throw bad("\(place): an argument has no 'op'") }
                let condition: SeccompPolicy.Condition
                switch op {
                case "SCMP_CMP_EQ": condition = .init(index: index, .equal, value)
                case "SCMP_CMP_NE": condition = .init(index: index, .notEqual, value)
                case "SCMP_CMP_LT": condition = .init(index: index, .less, value)
                case "SCMP_CMP_LE": condition = .init(index: index, .lessOrEqual, value)
                case "SCMP_CMP_GT": condition = .init(index: index, .greater, value)
                case "SCMP_CMP_GE": condition = .init(index: index, .greaterOrEqual, value)
                case "SCMP_CMP_MASKED_EQ": condition = .init(index: index, .maskedEqual, valueTwo, mask: value)
                default: throw bad("\(place): unknown argument operator '\(op)'")
                }
                byIndex[index, default: []].append(condition)
            }
            // One condition per index per rule: duplicates on an index are alternatives, whose
            // combinations are rules — bounded, so that a small file cannot ask for millions.
            let combinations = byIndex.values.reduce(1) { product, alternatives in
                let (next, overflow) = product.multipliedReportingOverflow(by: alternatives.count)
                return overflow ? Int.max : next
            }
            guard combinations <= maxAlternatives, rules.count + combinations <= maxRules else {
                throw bad("\(place): its argument alternatives make \(combinations) rules (at most \(maxAlternatives) a call, \(maxRules) in all)")
            }
            var combos: [[SeccompPolicy.Condition]] = [[]]
            for index in byIndex.keys.sorted() {
                combos = combos.flatMap { partial in byIndex[index]!.map { partial + [$0] } }
            }
            for conditions in combos {
                rules.append(SeccompPolicy.Rule(names, ruleAction, conditions: conditions))
            }
        }
        return SeccompPolicy(name: name, defaultAction: defaultAction, rules: rules)
    }

    /// Bounds on the rules a profile's argument alternatives multiply into.
    static let maxAlternatives = 256
    static let maxRules = 20_000

    static func action(_ name: String, errnoRet: Int32?, where place: String, _ bad: (String) -> LaunchError) throws(LaunchError) -> SeccompPolicy.Action {
        switch name {
        case "SCMP_ACT_ALLOW": return .allow
        case "SCMP_ACT_ERRNO": return .errno(errnoRet ?? EPERM_)
        case "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP": return .kill
        case "SCMP_ACT_LOG": return .log
        case "SCMP_ACT_TRACE": return .errno(errnoRet ?? ENOSYS_) // no tracer: the kernel answers ENOSYS
        default: throw bad("\(place): unknown action '\(name)'")
        }
    }

    static func kernelAtLeast(_ text: String, _ kernel: (Int, Int)) -> Bool {
        let parts = text.split(separator: ".").compactMap { Int($0) }
        guard parts.count >= 2 else { return true }
        return (kernel.0, kernel.1) >= (parts[0], parts[1])
    }

    #if arch(x86_64)
    public static let currentArchitecture = "x86_64"
    #elseif arch(arm64)
    public static let currentArchitecture = "aarch64"
    #else
    public static let currentArchitecture = "unknown"
    #endif
}
