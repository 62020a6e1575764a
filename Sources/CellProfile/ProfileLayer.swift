import CellPolicy

/// What one profile file says, before `extends` is followed: every setting optional, lists
/// either replaced (`keep = [...]`) or edited (`keep_add`, `keep_remove`).
struct ProfileLayer {
    var description: String?
    var extends: String?
    var hostname: String?
    var workingDirectory: String?
    var namespaces: [Namespace: Bool] = [:]
    var network: NetworkMode?
    var filesystemDefaults: Bool?
    var workingDirectoryMount: WorkingDirectoryMount?
    var writableGit: Bool?
    var overlaySize: UInt64?
    var changes: String?
    var caches = ListEdit<CacheMount>()
    var cacheScope: CacheScope?
    var hide = ListEdit<HidePattern>()
    var mounts = ListEdit<ProfileMount>()
    var keepEnvironment = ListEdit<String>()
    var setEnvironment: [EnvironmentVariable] = []
    var unsetEnvironment: [String] = []
    var capabilities = ListEdit<String>()
    var seccompPolicy: String?
    var seccompJSON: String?
    var allowSyscalls = ListEdit<String>()
    var denySyscalls = ListEdit<String>()
    var seccompRules = ListEdit<SyscallRuleSpec>()
    var nestedNamespaces: Bool?
    var seccompOnly: [String]?
    var seccompOnlyWhere: [ArgumentAlternatives] = []
    var landlockWrite: [String]?
    var auditLog: String?
    var memory: UInt64?
    var cpuTime: UInt64?
    var fileSize: UInt64?
    var addressSpace: UInt64?
    var openFiles: UInt64?
    var processes: UInt64?
    var timeout: UInt64?
    var killAfter: UInt64?
    var cgroup: CgroupChoice?
    var required: [String]?
    var publish = ListEdit<PublishedPort>()
    var allowHostLoopback: Bool?
    var networkHelper: NetworkHelper?
    var allowNet = ListEdit<EgressRule>()
    var allowPrivateAddresses: Bool?
    var statusJSON: String?
    var outerID: (uid: UInt32, gid: UInt32)?
    var identity: SandboxIdentity?
    var terminal: TerminalMode?
    var landlock: LandlockMode?
    var isolation: Isolation?

    /// Applies this layer on top of `profile` (the parent's resolution, or cell's base).
    func apply(to profile: Profile) -> Profile {
        var p = profile
        if let v = description { p.description = v }
        if let v = hostname { p.hostname = v }
        if let v = workingDirectory { p.workingDirectory = v }
        for (ns, on) in namespaces {
            if on { p.namespaces.insert(ns) } else { p.namespaces.remove(ns) }
        }
        if let v = network {
            p.network = v
            if v == .host { p.namespaces.remove(.net) } else { p.namespaces.insert(.net) }
        }
        if let v = filesystemDefaults { p.filesystemDefaults = v }
        if let v = workingDirectoryMount { p.workingDirectoryMount = v }
        if let v = writableGit { p.writableGit = v }
        if let v = overlaySize { p.overlaySize = v }
        if let v = changes { p.changes = v }
        p.caches = caches.apply(to: p.caches) { $0.name }
        if let v = cacheScope { p.cacheScope = v }
        p.hide = hide.apply(to: p.hide) { $0.text }
        p.mounts = mounts.apply(to: p.mounts) { $0.destination }
        p.keepEnvironment = keepEnvironment.apply(to: p.keepEnvironment) { $0 }
        for variable in setEnvironment {
            p.setEnvironment.removeAll { $0.name == variable.name }
            p.setEnvironment.append(variable)
        }
        p.setEnvironment.removeAll { unsetEnvironment.contains($0.name) }
        p.capabilities = capabilities.apply(to: p.capabilities) { $0.uppercased() }
        if let v = seccompPolicy {
            p.seccompPolicy = v
            p.seccompJSON = nil
        }
        if let v = seccompJSON { p.seccompJSON = v }
        p.allowSyscalls = allowSyscalls.apply(to: p.allowSyscalls) { $0 }
        p.denySyscalls = denySyscalls.apply(to: p.denySyscalls) { $0.split(separator: ":").first.map(String.init) ?? $0 }
        p.seccompRules = seccompRules.apply(to: p.seccompRules) { $0.syscalls.joined(separator: ",") }
        if let v = nestedNamespaces { p.nestedNamespaces = v }
        if let v = seccompOnly { p.seccompOnly = v }
        // only_where: each call's alternatives replace the inherited ones for that call.
        for entry in seccompOnlyWhere {
            p.seccompOnlyWhere.removeAll { $0.syscall == entry.syscall }
            p.seccompOnlyWhere.append(entry)
        }
        p.seccompOnlyWhere.sort { $0.syscall < $1.syscall } // as the file's table reads back
        if let v = landlockWrite { p.landlockWrite = v }
        if let v = auditLog { p.auditLog = v }
        if let v = memory { p.limits.memory = v }
        if let v = cpuTime { p.limits.cpuTime = v }
        if let v = fileSize { p.limits.fileSize = v }
        if let v = addressSpace { p.limits.addressSpace = v }
        if let v = openFiles { p.limits.openFiles = v }
        if let v = processes { p.limits.processes = v }
        if let v = timeout { p.limits.timeout = v }
        if let v = killAfter { p.limits.killAfter = v }
        if let v = cgroup { p.limits.cgroup = v }
        if let v = required { p.limits.required = v }
        p.publish = publish.apply(to: p.publish) { "\($0.hostPort):\($0.sandboxPort)" }
        if let v = allowHostLoopback { p.allowHostLoopback = v }
        if let v = networkHelper { p.networkHelper = v }
        p.egress.rules = allowNet.apply(to: p.egress.rules) { $0.description }
        if let v = allowPrivateAddresses { p.egress.allowPrivateAddresses = v }
        if let v = statusJSON { p.statusJSON = v }
        if let v = outerID { p.outerID = v }
        if let v = identity { p.identity = v }
        if let v = terminal { p.terminal = v }
        if let v = landlock { p.landlock = v }
        if let v = isolation { p.isolation = v }
        return p
    }
}

/// How a child profile changes an inherited list: `key` replaces it; `key_add` appends to it;
/// `key_remove` drops entries (matched by name, or for mounts by destination).
struct ListEdit<Element: Equatable> {
    var replace: [Element]?
    var add: [Element] = []
    var remove: [String] = []

    func apply(to inherited: [Element], identity: (Element) -> String) -> [Element] {
        var list = replace ?? inherited
        list.removeAll { remove.contains(identity($0)) }
        for element in add where !list.contains(element) { list.append(element) }
        return list
    }
}
