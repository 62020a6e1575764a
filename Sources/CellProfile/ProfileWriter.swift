import CellPolicy

/// Renders a resolved `Profile` as TOML (`cell profile show`). Everything is explicit and no
/// `extends` remains, so the text loads back to an equal profile.
public enum ProfileWriter {
    public static func toml(_ p: Profile) -> String {
        var out: [String] = []
        out.append("# The profile '\(TerminalText.escaped(p.name))', resolved: extends followed, defaults filled in, variables expanded.")
        out.append("description = \(quote(p.description))")
        out.append("hostname = \(quote(p.hostname))")
        if let cwd = p.workingDirectory { out.append("cwd = \(quote(cwd))") }
        out.append("identity = \(quote(p.identity.rawValue))")
        out.append("isolation = \(quote(p.isolation.rawValue))")
        if let id = p.outerID { out.append("outer_id = \(quote("\(id.uid):\(id.gid)"))") }
        out.append("")
        out.append("[namespaces]")
        for ns in [Namespace.ipc, .uts, .cgroup, .time] {
            out.append("\(ns.rawValue) = \(p.namespaces.contains(ns))")
        }
        out.append("")
        out.append("[terminal]")
        out.append("mode = \(quote(p.terminal.rawValue))")
        out.append("")
        out.append("[landlock]")
        out.append("mode = \(quote(p.landlock.rawValue))")
        if let write = p.landlockWrite { out.append("write = \(list(write))") }
        out.append("")
        out.append("[network]")
        out.append("mode = \(quote(p.network.rawValue))")
        out.append("helper = \(quote(p.networkHelper.rawValue))")
        out.append("allow = \(list(p.egress.rules.map(\.description)))")
        out.append("allow_private_addresses = \(p.egress.allowPrivateAddresses)")
        out.append("publish = \(list(p.publish.map { "\($0.hostPort):\($0.sandboxPort)" }))")
        out.append("allow_host_loopback = \(p.allowHostLoopback)")
        out.append("")
        out.append("[limits]")
        let l = p.limits
        if let v = l.memory { out.append("memory = \(quote(ByteSize.format(v)))") }
        if let v = l.cpuTime { out.append("cpu_time = \(quote("\(v)s"))") }
        if let v = l.fileSize { out.append("file_size = \(quote(ByteSize.format(v)))") }
        if let v = l.addressSpace { out.append("address_space = \(quote(ByteSize.format(v)))") }
        if let v = l.openFiles { out.append("open_files = \(v)") }
        if let v = l.processes { out.append("pids = \(v)") }
        if let v = l.timeout { out.append("timeout = \(quote(Durations.format(v)))") }
        out.append("kill_after = \(quote(Durations.format(l.killAfter)))")
        out.append("cgroup = \(quote(l.cgroup.text))")
        out.append("required = \(list(l.required))")
        out.append("")
        out.append("[filesystem]")
        out.append("defaults = \(p.filesystemDefaults)")
        out.append("cwd = \(quote(p.workingDirectoryMount.rawValue))")
        out.append("writable_git = \(p.writableGit)")
        out.append("overlay_size = \(quote(ByteSize.format(p.overlaySize)))")
        if let v = p.changes { out.append("changes = \(quote(v))") }
        out.append("caches = \(list(p.caches.map(\.description)))")
        out.append("cache_scope = \(quote(p.cacheScope.rawValue))")
        out.append("hide = \(list(p.hide.map(\.text)))")
        if p.mounts.isEmpty {
            out.append("mounts = []")
        } else {
            out.append("mounts = [")
            for m in p.mounts {
                var fields = ["type = \(quote(m.kind.rawValue))"]
                if let s = m.source { fields.append("source = \(quote(s))") }
                fields.append("dest = \(quote(m.destination))")
                if m.optional { fields.append("optional = true") }
                if let size = m.size { fields.append("size = \(quote(ByteSize.format(size)))") }
                if let mode = m.mode { fields.append("mode = \(quote("0" + String(mode, radix: 8)))") }
                out.append("    { \(fields.joined(separator: ", ")) },")
            }
            out.append("]")
        }
        out.append("")
        out.append("[environment]")
        out.append("keep = \(list(p.keepEnvironment))")
        if !p.setEnvironment.isEmpty {
            out.append("set = { \(p.setEnvironment.map { "\(quote($0.name)) = \(quote($0.value))" }.joined(separator: ", ")) }")
        }
        out.append("")
        out.append("[capabilities]")
        out.append("keep = \(list(p.capabilities))")
        out.append("")
        out.append("[seccomp]")
        if let json = p.seccompJSON {
            out.append("json = \(quote(json))")
        } else {
            out.append("policy = \(quote(p.seccompPolicy))")
        }
        out.append("allow = \(list(p.allowSyscalls))")
        out.append("deny = \(list(p.denySyscalls))")
        if p.seccompRules.isEmpty {
            out.append("rules = []")
        } else {
            out.append("rules = [")
            for r in p.seccompRules {
                out.append("    { syscalls = \(list(r.syscalls)), action = \(quote(r.action)), args = \(list(r.args)) },")
            }
            out.append("]")
        }
        out.append("nested_namespaces = \(p.nestedNamespaces)")
        if let only = p.seccompOnly { out.append("only = \(list(only))") }
        if !p.seccompOnlyWhere.isEmpty {
            out.append("")
            out.append("[seccomp.only_where]")
            for entry in p.seccompOnlyWhere { out.append("\(entry.syscall) = \(list(entry.alternatives))") }
        }
        if p.auditLog != nil || p.statusJSON != nil {
            out.append("")
            out.append("[audit]")
            if let log = p.auditLog { out.append("log = \(quote(log))") }
            if let status = p.statusJSON { out.append("status_json = \(quote(status))") }
        }
        return out.joined(separator: "\n") + "\n"
    }

    static func list(_ items: [String]) -> String {
        "[" + items.map(quote).joined(separator: ", ") + "]"
    }

    /// A TOML basic string: its escapes (\", \\, \n, \t, \r, \uXXXX) are JSON's.
    static func quote(_ s: String) -> String {
        JSONField.quote(s)
    }
}

extension Profile {
    /// The profile's seccomp policy (before command-line adjustments), as a `SeccompPolicy`.
    /// `base` is the imported Docker policy when `seccompJSON` is set.
    public func seccomp(base: SeccompPolicy) -> SeccompPolicy {
        var policy = base
        for spec in seccompRules {
            guard let action = SyscallRuleSpec.parseAction(spec.action) else { continue }
            policy.rules.append(.init(spec.syscalls, action, conditions: spec.args.compactMap(SyscallRuleSpec.parseCondition)))
        }
        policy = policy.adjusted(allow: allowSyscalls, deny: denySyscalls.map { entry in
            let parts = entry.split(separator: ":", maxSplits: 1).map(String.init)
            return (parts[0], parts.count == 2 ? (ErrnoNames.number(parts[1]) ?? 1) : 1)
        })
        policy.allowNestedNamespaces = nestedNamespaces
        if let only = seccompOnly {
            // A call with only_where entries is allowed with those arguments alone.
            let restricted = Set(seccompOnlyWhere.map(\.syscall))
            policy.only = only.filter { !restricted.contains($0) }.map { SeccompPolicy.Rule([$0], .allow) }
            for entry in seccompOnlyWhere where only.contains(entry.syscall) {
                // The decoder refused what does not read; were one here, it would allow nothing.
                for text in entry.alternatives {
                    guard let conditions = ArgumentAlternatives.parse(text) else { continue }
                    policy.only!.append(.init([entry.syscall], .allow, conditions: conditions))
                }
            }
        }
        return policy
    }
}
