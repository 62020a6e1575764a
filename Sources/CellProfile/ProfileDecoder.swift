import CellPolicy

/// A problem in a profile file, reported as `FILE:LINE:COLUMN: message`.
public struct ProfileDiagnostic: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    /// `FILE:LINE:COLUMN: message`, or `NAME: message` for a problem with no place in a file
    /// (a profile that cannot be found or read).
    public var description: String { line > 0 ? "\(file):\(line):\(column): \(message)" : "\(file): \(message)" }
}

/// The values `${...}` may name in paths. Nothing else expands.
public struct ProfileVariables: Equatable, Sendable {
    public var cwd: String
    public var home: String
    public var tmpdir: String
    public var uid: UInt32

    public init(cwd: String, home: String, tmpdir: String, uid: UInt32) {
        self.cwd = cwd
        self.home = home
        self.tmpdir = tmpdir
        self.uid = uid
    }

    public static let names = ["CWD", "HOME", "TMPDIR", "UID"]

    func value(_ name: String) -> String? {
        switch name {
        case "CWD": return cwd
        case "HOME": return home
        case "TMPDIR": return tmpdir
        case "UID": return String(uid)
        default: return nil
        }
    }

    /// `${NAME}` replaced; returns nil with the offending name if one is unknown or unclosed.
    func expand(_ text: String) -> Result<String, ExpansionError> {
        var out = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            out += rest[..<start.lowerBound]
            let after = rest[start.upperBound...]
            guard let close = after.firstIndex(of: "}") else { return .failure(.unclosed) }
            let name = String(after[..<close])
            guard let value = value(name) else { return .failure(.unknown(name)) }
            out += value
            rest = after[after.index(after: close)...]
        }
        return .success(out + rest)
    }

    enum ExpansionError: Error { case unknown(String), unclosed }
}

/// Decodes one profile file into a `ProfileLayer`, collecting every problem (not only the
/// first): unknown keys (with a did-you-mean), wrong types, unknown names, bad paths.
struct ProfileDecoder {
    let file: String
    let text: String
    let variables: ProfileVariables
    var diagnostics: [ProfileDiagnostic] = []
    /// Built on the first problem only: a valid profile (every launch) never needs it.
    private var locator: SourceLocator?

    init(file: String, text: String, variables: ProfileVariables) {
        self.file = file
        self.text = text
        self.variables = variables
    }

    mutating func report(_ path: [PathComponent], _ message: String, value: String? = nil) {
        if locator == nil { locator = SourceLocator(text) }
        let at = locator!.locate(path, value: value)
        diagnostics.append(ProfileDiagnostic(file: file, line: at.line, column: at.column, message: message))
    }

    static let topLevelKeys = ["description", "extends", "hostname", "cwd", "identity", "isolation", "outer_id", "namespaces", "network", "filesystem",
                               "environment", "capabilities", "seccomp", "audit", "limits", "terminal", "landlock"]
    /// Keys of features this version does not have: rejected, never ignored.
    static let notYet: [String: String] = [:]

    mutating func decode(_ document: [String: TOMLNode]) -> ProfileLayer {
        var layer = ProfileLayer()
        for key in document.keys.sorted() where !Self.topLevelKeys.contains(key) {
            if let feature = Self.notYet[key] {
                report([.key(key)], "'\(key)' is not supported by this version of cell: \(feature) not built yet")
            } else {
                unknownKey([], key, Self.topLevelKeys)
            }
        }
        layer.description = string(document, [], "description")
        layer.extends = string(document, [], "extends")
        if let name = string(document, [], "hostname") {
            if isValidHostname(name) { layer.hostname = name } else {
                report([.key("hostname")], "'\(name)' is not a valid hostname (letters, digits, '-' and '.', at most 64 characters)")
            }
        }
        if let cwd = path(document, [], "cwd") { layer.workingDirectory = cwd }
        if let text = string(document, [], "isolation") {
            if let isolation = Isolation(rawValue: text) { layer.isolation = isolation } else {
                report([.key("isolation")], "isolation must be \"namespaces\", \"landlock\" or \"auto\", not '\(text)'")
            }
        }
        if let text = string(document, [], "identity") {
            if let identity = SandboxIdentity(rawValue: text) { layer.identity = identity } else {
                report([.key("identity")], "identity must be \"caller\" (your own uid inside) or \"root\" (uid 0 inside), not '\(text)'")
            }
        }
        if let text = string(document, [], "outer_id") {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            if (1...2).contains(parts.count), let uid = UInt32(parts[0]), let gid = parts.count == 2 ? UInt32(parts[1]) : uid,
               uid != 0, gid != 0, uid != UInt32.max, gid != UInt32.max {
                layer.outerID = (uid, gid)
            } else {
                report([.key("outer_id")], "outer_id must be \"UID\" or \"UID:GID\" with unprivileged ids (not 0), not '\(text)'")
            }
        }

        if let table = table(document, [], "namespaces") {
            let keys = ["user", "mount", "pid", "net", "ipc", "uts", "cgroup", "time"]
            checkKeys(table, [.key("namespaces")], keys)
            for key in keys {
                guard let on = bool(table, [.key("namespaces")], key) else { continue }
                let at: [PathComponent] = [.key("namespaces"), .key(key)]
                switch key {
                case "user":
                    if !on { report(at, "the user namespace cannot be turned off: it is what makes cell rootless, and every other namespace is nested in it (for no namespace at all: isolation = \"landlock\")") }
                case "mount", "pid":
                    if !on { report(at, "the \(key) namespace cannot be turned off: the sandbox's filesystem view and /proc are built in it") }
                case "net":
                    report(at, "the network namespace follows [network] mode: use mode = \"none\" (private) or \"host\"")
                default:
                    if let ns = Namespace(rawValue: key) { layer.namespaces[ns] = on }
                }
            }
        }

        if let table = table(document, [], "terminal") {
            let base: [PathComponent] = [.key("terminal")]
            checkKeys(table, base, ["mode"])
            if let mode = string(table, base, "mode") {
                if let m = TerminalMode(rawValue: mode) { layer.terminal = m } else {
                    report(base + [.key("mode")], "unknown terminal mode '\(mode)' (auto, always, never)")
                }
            }
        }
        if let table = table(document, [], "landlock") {
            let base: [PathComponent] = [.key("landlock")]
            checkKeys(table, base, ["mode", "write"])
            if let mode = string(table, base, "mode") {
                if let m = LandlockMode(rawValue: mode) { layer.landlock = m } else {
                    report(base + [.key("mode")], "unknown landlock mode '\(mode)' (best-effort, required, off)")
                }
            }
            if let list = stringList(table, base, "write") {
                layer.landlockWrite = list.compactMap { expandPath($0, base + [.key("write")]) }
            }
        }
        if let table = table(document, [], "network") {
            let base: [PathComponent] = [.key("network")]
            checkKeys(table, base, ["mode", "helper", "publish", "publish_add", "publish_remove", "allow_host_loopback",
                                    "allow", "allow_add", "allow_remove", "allow_private_addresses"])
            if let mode = string(table, base, "mode") {
                if let m = NetworkMode(rawValue: mode) {
                    layer.network = m
                } else {
                    report(base + [.key("mode")], "unknown network mode '\(mode)' (none, host, user, proxy)")
                }
            }
            if let helper = string(table, base, "helper") {
                if let h = NetworkHelper(rawValue: helper) { layer.networkHelper = h } else {
                    report(base + [.key("helper")], "unknown network helper '\(helper)' (auto, pasta, slirp4netns)", value: helper)
                }
            }
            layer.publish.replace = ports(table, base, "publish")
            layer.publish.add = ports(table, base, "publish_add") ?? []
            layer.publish.remove = stringList(table, base, "publish_remove") ?? []
            layer.allowHostLoopback = bool(table, base, "allow_host_loopback")
            layer.allowNet.replace = egressRules(table, base, "allow")
            layer.allowNet.add = egressRules(table, base, "allow_add") ?? []
            layer.allowNet.remove = stringList(table, base, "allow_remove") ?? []
            layer.allowPrivateAddresses = bool(table, base, "allow_private_addresses")
        }

        if let table = table(document, [], "limits") {
            let base: [PathComponent] = [.key("limits")]
            checkKeys(table, base, ["memory", "cpu_time", "file_size", "open_files", "pids", "address_space", "timeout", "kill_after", "cgroup", "required"])
            layer.memory = size(table, base, "memory")
            layer.fileSize = size(table, base, "file_size")
            layer.addressSpace = size(table, base, "address_space")
            layer.cpuTime = duration(table, base, "cpu_time").map { ($0 + 999) / 1000 }
            layer.timeout = duration(table, base, "timeout")
            layer.killAfter = duration(table, base, "kill_after")
            layer.openFiles = count(table, base, "open_files")
            layer.processes = count(table, base, "pids")
            if let raw = string(table, base, "cgroup") {
                // "auto", "none", or a delegated directory (variables expanded, absolute).
                layer.cgroup = raw == "auto" || raw == "none" ? CgroupChoice(raw)
                    : expandPath(raw, base + [.key("cgroup")]).flatMap(CgroupChoice.init)
            }
            if let required = stringList(table, base, "required") {
                let known = ["memory", "pids", "timeout", "cpu_time", "file_size", "open_files", "address_space"]
                for name in required where !known.contains(name) {
                    report(base + [.key("required")], "'\(name)' is not a limit (\(known.joined(separator: ", ")))", value: name)
                }
                layer.required = required.filter { known.contains($0) }
            }
        }

        if let table = table(document, [], "filesystem") {
            let base: [PathComponent] = [.key("filesystem")]
            checkKeys(table, base, ["defaults", "cwd", "writable_git", "mounts", "mounts_add", "mounts_remove", "overlay_size", "changes",
                                    "caches", "caches_add", "caches_remove", "cache_scope", "hide", "hide_add", "hide_remove"])
            layer.overlaySize = size(table, base, "overlay_size")
            layer.changes = path(table, base, "changes")
            layer.filesystemDefaults = bool(table, base, "defaults")
            layer.writableGit = bool(table, base, "writable_git")
            if let mode = string(table, base, "cwd") {
                if let m = WorkingDirectoryMount(rawValue: mode) { layer.workingDirectoryMount = m } else {
                    report(base + [.key("cwd")], "filesystem.cwd must be \"ro\", \"rw\", \"overlay\" or \"none\", not '\(mode)'")
                }
            }
            layer.mounts.replace = mountList(table, base, "mounts")
            layer.mounts.add = mountList(table, base, "mounts_add") ?? []
            layer.mounts.remove = (stringList(table, base, "mounts_remove") ?? []).map { SandboxPath.normalize($0) ?? $0 }
            layer.caches.replace = parsedList(table, base, "caches", CacheMount.parse)
            layer.caches.add = parsedList(table, base, "caches_add", CacheMount.parse) ?? []
            layer.caches.remove = stringList(table, base, "caches_remove") ?? []
            if let scope = string(table, base, "cache_scope") {
                if let s = CacheScope(rawValue: scope) { layer.cacheScope = s } else {
                    report(base + [.key("cache_scope")], "filesystem.cache_scope must be \"project\", \"profile\" or \"user\", not '\(scope)'", value: scope)
                }
            }
            layer.hide.replace = parsedList(table, base, "hide", HidePattern.parse)
            layer.hide.add = parsedList(table, base, "hide_add", HidePattern.parse) ?? []
            layer.hide.remove = stringList(table, base, "hide_remove") ?? []
        }

        if let table = table(document, [], "environment") {
            let base: [PathComponent] = [.key("environment")]
            checkKeys(table, base, ["keep", "keep_add", "keep_remove", "set", "unset"])
            layer.keepEnvironment.replace = envPatterns(table, base, "keep")
            layer.keepEnvironment.add = envPatterns(table, base, "keep_add") ?? []
            layer.keepEnvironment.remove = stringList(table, base, "keep_remove") ?? []
            if let set = self.table(table, base, "set") {
                for name in set.keys.sorted() {
                    guard SandboxEnvironment.isValidName(name) else {
                        report(base + [.key("set"), .key(name)], "'\(name)' is not a valid environment variable name")
                        continue
                    }
                    if let value = string(set, base + [.key("set")], name) {
                        layer.setEnvironment.append(EnvironmentVariable(name: name, value: value))
                    }
                }
            }
            layer.unsetEnvironment = stringList(table, base, "unset") ?? []
        }

        if let table = table(document, [], "capabilities") {
            let base: [PathComponent] = [.key("capabilities")]
            checkKeys(table, base, ["keep", "keep_add", "keep_remove"])
            layer.capabilities.replace = capabilityList(table, base, "keep")
            layer.capabilities.add = capabilityList(table, base, "keep_add") ?? []
            layer.capabilities.remove = (stringList(table, base, "keep_remove") ?? []).map { $0.uppercased() }
        }

        if let table = table(document, [], "seccomp") {
            let base: [PathComponent] = [.key("seccomp")]
            checkKeys(table, base, ["policy", "json", "allow", "allow_add", "allow_remove", "deny", "deny_add",
                                    "deny_remove", "rules", "rules_add", "nested_namespaces", "only", "only_where"])
            if let policy = string(table, base, "policy") {
                if SeccompPolicy.isBuiltIn(policy) { layer.seccompPolicy = policy } else {
                    report(base + [.key("policy")], "unknown seccomp policy '\(policy)' (default, strict; or json = \"PATH\" for a Docker profile)")
                }
            }
            if let json = path(table, base, "json") {
                if table["policy"] != nil { report(base + [.key("json")], "seccomp.policy and seccomp.json both choose the policy: keep one") }
                layer.seccompJSON = json
            }
            layer.allowSyscalls.replace = syscallList(table, base, "allow", errnoAllowed: false)
            layer.allowSyscalls.add = syscallList(table, base, "allow_add", errnoAllowed: false) ?? []
            layer.allowSyscalls.remove = stringList(table, base, "allow_remove") ?? []
            layer.denySyscalls.replace = syscallList(table, base, "deny", errnoAllowed: true)
            layer.denySyscalls.add = syscallList(table, base, "deny_add", errnoAllowed: true) ?? []
            layer.denySyscalls.remove = stringList(table, base, "deny_remove") ?? []
            layer.seccompRules.replace = ruleList(table, base, "rules")
            layer.seccompRules.add = ruleList(table, base, "rules_add") ?? []
            layer.nestedNamespaces = bool(table, base, "nested_namespaces")
            layer.seccompOnly = syscallList(table, base, "only", errnoAllowed: false)
            if let argumentTable = self.table(table, base, "only_where") { layer.seccompOnlyWhere = alternatives(argumentTable, base + [.key("only_where")]) }
        }
        if let table = table(document, [], "audit") {
            checkKeys(table, [.key("audit")], ["log", "status_json"])
            layer.auditLog = path(table, [.key("audit")], "log")
            layer.statusJSON = path(table, [.key("audit")], "status_json")
        }
        return layer
    }

    // MARK: typed accessors (each reports a wrong type at the key)

    mutating func table(_ t: [String: TOMLNode], _ base: [PathComponent], _ key: String) -> [String: TOMLNode]? {
        guard let node = t[key] else { return nil }
        guard case .table(let members) = node else { return typeError(base + [.key(key)], "a table", node) }
        return members
    }

    mutating func string(_ t: [String: TOMLNode], _ base: [PathComponent], _ key: String) -> String? {
        guard let node = t[key] else { return nil }
        guard case .string(let s) = node else { return typeError(base + [.key(key)], "a string", node) }
        return s
    }

    mutating func bool(_ t: [String: TOMLNode], _ base: [PathComponent], _ key: String) -> Bool? {
        guard let node = t[key] else { return nil }
        guard case .bool(let b) = node else { return typeError(base + [.key(key)], "true or false", node) }
        return b
    }

    mutating func stringList(_ t: [String: TOMLNode], _ base: [PathComponent], _ key: String) -> [String]? {
        guard let node = t[key] else { return nil }
        guard case .array(let items) = node else { return typeError(base + [.key(key)], "an array of strings", node) }
        var out: [String] = []
        for (i, item) in items.enumerated() {
            guard case .string(let s) = item else {
                report(base + [.key(key), .index(i)], "\(key)[\(i)] must be a string, not \(item.typeName)")
                continue
            }
            out.append(s)
        }
        return out
    }

    mutating func path(_ t: [String: TOMLNode], _ base: [PathComponent], _ key: String) -> String? {
        guard let raw = string(t, base, key) else { return nil }
        return expandPath(raw, base + [.key(key)])
    }

    /// Variables expanded, then absolute and normalized, or a diagnostic.
    mutating func expandPath(_ raw: String, _ at: [PathComponent]) -> String? {
        switch variables.expand(raw) {
        case .failure(.unknown(let name)):
            report(at, "unknown variable ${\(name)} in '\(raw)' (only ${CWD}, ${HOME}, ${TMPDIR}, ${UID} expand)", value: raw)
            return nil
        case .failure(.unclosed):
            report(at, "unclosed '${' in '\(raw)'", value: raw)
            return nil
        case .success(let expanded):
            guard expanded.hasPrefix("/") else {
                report(at, "'\(raw)' must be an absolute path (or start with ${CWD}, ${HOME}, ${TMPDIR})", value: raw)
                return nil
            }
            guard let normal = SandboxPath.normalize(expanded) else {
                report(at, "'\(raw)' contains '..': name the path you mean", value: raw)
                return nil
            }
            return normal
        }
    }

    mutating func typeError<T>(_ at: [PathComponent], _ expected: String, _ node: TOMLNode) -> T? {
        let name = at.last.map(\.description) ?? "value"
        report(at, "'\(name)' must be \(expected), not \(node.typeName)")
        return nil
    }

    mutating func checkKeys(_ t: [String: TOMLNode], _ base: [PathComponent], _ allowed: [String]) {
        for key in t.keys.sorted() where !allowed.contains(key) {
            if base.isEmpty == false, base.count == 1, let feature = Self.notYet[key] {
                report(base + [.key(key)], "'\(key)' is not supported by this version of cell: \(feature) not built yet")
            } else {
                unknownKey(base, key, allowed)
            }
        }
    }

    /// `filesystem.mounts[0]`
    static func render(_ path: [PathComponent]) -> String {
        var out = ""
        for component in path {
            switch component {
            case .key(let k): out += out.isEmpty ? k : "." + k
            case .index(let i): out += "[\(i)]"
            }
        }
        return out
    }

    mutating func unknownKey(_ base: [PathComponent], _ key: String, _ allowed: [String]) {
        let table = base.isEmpty ? "at the top level" : "in [\(Self.render(base))]"
        var message = "unknown key '\(key)' \(table)"
        if let best = allowed.min(by: { levenshtein($0, key) < levenshtein($1, key) }), levenshtein(best, key) <= 2 {
            message += "; did you mean '\(best)'?"
        } else {
            message += " (known keys: \(allowed.joined(separator: ", ")))"
        }
        report(base + [.key(key)], message)
    }

    // MARK: limits

    mutating func size(_ t: [String: TOMLNode], _ base: [PathComponent], _ key: String) -> UInt64? {
        guard let text = string(t, base, key) else { return nil }
        guard let v = ByteSize.parse(text), v > 0 else {
            report(base + [.key(key)], "'\(text)' is not a size (e.g. 512m, 2g)")
            return nil
        }
        return v
    }

    mutating func duration(_ t: [String: TOMLNode], _ base: [PathComponent], _ key: String) -> UInt64? {
        guard let text = string(t, base, key) else { return nil }
        guard let v = Durations.parse(text) else {
            report(base + [.key(key)], "'\(text)' is not a duration (e.g. 30s, 5m, 1h)")
            return nil
        }
        return v
    }

    mutating func count(_ t: [String: TOMLNode], _ base: [PathComponent], _ key: String) -> UInt64? {
        guard let node = t[key] else { return nil }
        guard case .integer(let n) = node else { return typeError(base + [.key(key)], "a positive integer", node) }
        guard n > 0 else {
            report(base + [.key(key)], "'\(key)' must be a positive integer, not \(n)")
            return nil
        }
        return UInt64(n)
    }

    mutating func ports(_ t: [String: TOMLNode], _ base: [PathComponent], _ key: String) -> [PublishedPort]? {
        guard let list = stringList(t, base, key) else { return nil }
        return list.compactMap { text in
            guard let p = PublishedPort.parse(text) else {
                report(base + [.key(key)], "'\(text)' is not HOSTPORT:SANDBOXPORT (e.g. \"8080:80\")", value: text)
                return nil
            }
            return p
        }
    }

    // MARK: lists with meaning

    mutating func egressRules(_ t: [String: TOMLNode], _ base: [PathComponent], _ key: String) -> [EgressRule]? {
        guard let list = stringList(t, base, key) else { return nil }
        return list.compactMap { text in
            switch EgressRule.parse(text) {
            case .success(let rule): return rule
            case .failure(let error):
                report(base + [.key(key)], error.message, value: text)
                return nil
            }
        }
    }

    /// A list of strings, each parsed; a bad one is reported at its own position.
    mutating func parsedList<T>(_ t: [String: TOMLNode], _ base: [PathComponent], _ key: String,
                                _ parse: (String) -> Result<T, FilesystemOptionError>) -> [T]? {
        guard let list = stringList(t, base, key) else { return nil }
        return list.compactMap { text in
            switch parse(text) {
            case .success(let value): return value
            case .failure(let error):
                report(base + [.key(key)], error.message, value: text)
                return nil
            }
        }
    }

    mutating func envPatterns(_ t: [String: TOMLNode], _ base: [PathComponent], _ key: String) -> [String]? {
        guard let list = stringList(t, base, key) else { return nil }
        return list.filter { pattern in
            if SandboxEnvironment.isValidPattern(pattern) { return true }
            report(base + [.key(key)], "'\(pattern)' is not a variable name (a trailing '*' matches a prefix)", value: pattern)
            return false
        }
    }

    mutating func capabilityList(_ t: [String: TOMLNode], _ base: [PathComponent], _ key: String) -> [String]? {
        guard let list = stringList(t, base, key) else { return nil }
        return list.compactMap { name in
            guard let n = Capabilities.number(name) else {
                report(base + [.key(key)], "unknown capability '\(name)' (e.g. CAP_NET_BIND_SERVICE; see capabilities(7))", value: name)
                return nil
            }
            return Capabilities.name(n)
        }
    }

    mutating func checkSyscallName(_ name: String, _ at: [PathComponent]) -> Bool {
        if name.hasPrefix("@") {
            if SyscallGroups.all[name] != nil { return true }
            report(at, "unknown system call group '\(name)' (groups: \(SyscallGroups.all.keys.sorted().joined(separator: ", ")))", value: name)
            return false
        }
        if Syscalls.number(name) != nil { return true }
        var message = "unknown system call '\(name)'"
        let known = Set(SyscallGroups.all.values.joined())
        if let best = known.filter({ Syscalls.number($0) != nil }).min(by: { levenshtein($0, name) < levenshtein($1, name) }),
           levenshtein(best, name) <= 2 {
            message += "; did you mean '\(best)'?"
        }
        report(at, message, value: name)
        return false
    }

    mutating func syscallList(_ t: [String: TOMLNode], _ base: [PathComponent], _ key: String, errnoAllowed: Bool) -> [String]? {
        guard let list = stringList(t, base, key) else { return nil }
        return list.filter { entry in
            let parts = entry.split(separator: ":", maxSplits: 1).map(String.init)
            guard let name = parts.first, checkSyscallName(name, base + [.key(key)]) else { return false }
            if parts.count == 2 {
                guard errnoAllowed else {
                    report(base + [.key(key)], "'\(entry)': an errno only goes with deny", value: entry)
                    return false
                }
                guard ErrnoNames.number(parts[1]) != nil else {
                    report(base + [.key(key)], "'\(entry)': '\(parts[1])' is not an errno name or number (e.g. EPERM, EACCES)", value: entry)
                    return false
                }
            }
            return true
        }
    }

    /// `[seccomp.only_where]`: `name = ["argN OP VALUE && ...", ...]`, each string one
    /// alternative, its conditions all holding; at most one condition per argument (libseccomp
    /// compares an argument once in a rule).
    mutating func alternatives(_ t: [String: TOMLNode], _ base: [PathComponent]) -> [ArgumentAlternatives] {
        var out: [ArgumentAlternatives] = []
        for name in t.keys.sorted() {
            let at = base + [.key(name)]
            guard checkSyscallName(name, at), let list = stringList(t, base, name) else { continue }
            if list.isEmpty { report(at, "\(name) = []: no alternative would allow \(name) at all; remove \(name) from seccomp.only instead") }
            var valid: [String] = []
            for text in list {
                guard let conditions = ArgumentAlternatives.parse(text) else {
                    report(at, "cannot read '\(text)' (conditions joined by &&, e.g. \"arg1 & 0xffffffff == 0x5401\", \"arg0 == 1 && arg1 < 4\")", value: text)
                    continue
                }
                guard Set(conditions.map(\.index)).count == conditions.count else {
                    report(at, "'\(text)' compares an argument twice: one condition per argument in an alternative", value: text)
                    continue
                }
                valid.append(text)
            }
            out.append(ArgumentAlternatives(syscall: name, alternatives: valid))
        }
        return out
    }

    mutating func ruleList(_ t: [String: TOMLNode], _ base: [PathComponent], _ key: String) -> [SyscallRuleSpec]? {
        guard let node = t[key] else { return nil }
        guard case .array(let items) = node else { return typeError(base + [.key(key)], "an array of tables", node) }
        var rules: [SyscallRuleSpec] = []
        for (i, item) in items.enumerated() {
            let at = base + [.key(key), .index(i)]
            guard case .table(let rule) = item else {
                report(at, "\(key)[\(i)] must be a table like { syscalls = [\"ioctl\"], action = \"errno:EPERM\", args = [\"arg1 == 0x5412\"] }")
                continue
            }
            checkKeys(rule, at, ["syscalls", "action", "args"])
            guard let syscalls = stringList(rule, at, "syscalls"), !syscalls.isEmpty else {
                report(at, "\(key)[\(i)] needs syscalls = [\"name\", ...]")
                continue
            }
            var ok = syscalls.allSatisfy { checkSyscallName($0, at + [.key("syscalls")]) }
            let action = string(rule, at, "action") ?? ""
            if SyscallRuleSpec.parseAction(action) == nil {
                report(at + [.key("action")], "unknown action '\(action)' (allow, errno, errno:NAME, kill, log)")
                ok = false
            }
            let args = stringList(rule, at, "args") ?? []
            for arg in args where SyscallRuleSpec.parseCondition(arg) == nil {
                report(at + [.key("args")], "cannot read the condition '\(arg)' (e.g. \"arg1 == 0x5412\", \"arg0 & 0xff == 0x10\", \"arg2 < 4096\")", value: arg)
                ok = false
            }
            if ok { rules.append(SyscallRuleSpec(syscalls: syscalls, action: action, args: args)) }
        }
        return rules
    }

    mutating func mountList(_ t: [String: TOMLNode], _ base: [PathComponent], _ key: String) -> [ProfileMount]? {
        guard let node = t[key] else { return nil }
        guard case .array(let items) = node else { return typeError(base + [.key(key)], "an array of tables", node) }
        var mounts: [ProfileMount] = []
        for (i, item) in items.enumerated() {
            let at = base + [.key(key), .index(i)]
            guard case .table(let m) = item else {
                report(at, "\(key)[\(i)] must be a table like { type = \"ro-bind\", source = \"/usr/share\", dest = \"/usr/share\" }")
                continue
            }
            checkKeys(m, at, ["type", "source", "dest", "optional", "size", "mode"])
            guard let typeName = string(m, at, "type") else {
                report(at, "\(key)[\(i)] needs type = \"ro-bind\" | \"bind\" | \"overlay\" | \"tmpfs\" | \"dir\" | \"symlink\"")
                continue
            }
            guard let kind = ProfileMount.Kind(rawValue: typeName) else {
                report(at + [.key("type")], "unknown mount type '\(typeName)' (ro-bind, bind, overlay, tmpfs, dir, symlink)")
                continue
            }
            var source: String?
            switch kind {
            case .roBind, .bind, .overlay:
                source = path(m, at, "source")
                if m["source"] == nil { report(at, "a \(typeName) needs a source") }
            case .symlink:
                source = string(m, at, "source")
                if m["source"] == nil { report(at, "a symlink needs a source (the link's target)") }
            case .tmpfs, .dir:
                if m["source"] != nil { report(at + [.key("source")], "a \(typeName) has no source") }
            }
            let dest = m["dest"] == nil ? (kind == .roBind || kind == .bind || kind == .overlay ? source : nil) : path(m, at, "dest")
            guard let destination = dest else {
                if m["dest"] == nil { report(at, "\(key)[\(i)] needs dest = \"/absolute/path\"") }
                continue
            }
            if destination == "/" {
                report(at + [.key("dest")], "a mount cannot replace / (the sandbox's root is built by cell)")
                continue
            }
            var size: UInt64?
            if let text = string(m, at, "size") {
                if kind != .tmpfs { report(at + [.key("size")], "only a tmpfs has a size") }
                size = ByteSize.parse(text)
                if size == nil || size == 0 { report(at + [.key("size")], "'\(text)' is not a size (e.g. 64m, 1g)") }
            }
            var mode: UInt32?
            if let text = string(m, at, "mode") {
                mode = UInt32(text, radix: 8)
                if mode == nil || mode! > 0o7777 { report(at + [.key("mode")], "'\(text)' is not an octal mode (e.g. \"0755\")") }
            }
            let optional = bool(m, at, "optional") ?? false
            if kind == .bind || kind == .roBind || kind == .overlay, source == nil { continue }
            mounts.append(ProfileMount(kind: kind, source: source, destination: destination, optional: optional, size: size, mode: mode))
        }
        return mounts
    }

    func isValidHostname(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 64, !name.hasPrefix("-"), !name.hasPrefix(".") else { return false }
        return name.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || $0 == "-" || $0 == "." }
    }
}

extension String {
    func range(of needle: String) -> Range<String.Index>? {
        Substring(self).range(of: needle).map { $0.lowerBound..<$0.upperBound }
    }
}
