import CellPolicy

/// A fully resolved security profile: what a run gets before command-line overrides. Every
/// field is concrete (extends followed, defaults filled, variables expanded), so `cell profile
/// show` can print it as TOML that loads back to an equal value.
public struct Profile: Equatable, Sendable {
    public static func == (a: Profile, b: Profile) -> Bool {
        a.name == b.name && a.description == b.description && a.hostname == b.hostname
            && a.workingDirectory == b.workingDirectory && a.namespaces == b.namespaces && a.network == b.network
            && a.filesystemDefaults == b.filesystemDefaults && a.workingDirectoryMount == b.workingDirectoryMount && a.writableGit == b.writableGit
            && a.overlaySize == b.overlaySize && a.changes == b.changes
            && a.caches == b.caches && a.cacheScope == b.cacheScope && a.hide == b.hide
            && a.mounts == b.mounts && a.keepEnvironment == b.keepEnvironment && a.setEnvironment == b.setEnvironment
            && a.capabilities == b.capabilities && a.seccompPolicy == b.seccompPolicy && a.seccompJSON == b.seccompJSON
            && a.allowSyscalls == b.allowSyscalls && a.denySyscalls == b.denySyscalls && a.seccompRules == b.seccompRules
            && a.nestedNamespaces == b.nestedNamespaces && a.auditLog == b.auditLog && a.limits == b.limits
            && a.publish == b.publish && a.allowHostLoopback == b.allowHostLoopback && a.networkHelper == b.networkHelper && a.egress == b.egress && a.statusJSON == b.statusJSON
            && a.outerID?.uid == b.outerID?.uid && a.outerID?.gid == b.outerID?.gid && a.identity == b.identity && a.terminal == b.terminal
            && a.landlock == b.landlock && a.isolation == b.isolation
            && a.seccompOnly == b.seccompOnly && a.seccompOnlyWhere == b.seccompOnlyWhere && a.landlockWrite == b.landlockWrite
    }

    public var name: String
    public var description: String
    public var hostname: String
    /// Working directory inside; nil: the caller's.
    public var workingDirectory: String?
    /// Namespaces nested in the user namespace (the user namespace itself cannot be turned off).
    public var namespaces: Set<Namespace>
    public var network: NetworkMode
    /// Start from the built-in filesystem view (system directories, /etc selection, /proc, /dev,
    /// /tmp, home); false: only `mounts` (plus /proc and /dev are then up to the profile).
    public var filesystemDefaults: Bool
    public var workingDirectoryMount: WorkingDirectoryMount
    /// A `.git` in a writable bind stays writable (false: it is bound read-only over itself, so
    /// the sandbox cannot plant hooks or config that git on the host would run).
    public var writableGit: Bool
    /// The size of an overlay's upper layer (a tmpfs): what the sandbox can write through it.
    public var overlaySize: UInt64 = Profile.defaultOverlaySize
    /// A host directory for the overlay's upper layer, kept after the run (`cell changes`).
    public var changes: String?
    public static let defaultOverlaySize: UInt64 = 1 << 30
    /// Persistent caches bound read-write (`[filesystem] caches`, CacheStore), and which runs
    /// share them (`cache_scope`).
    public var caches: [CacheMount] = []
    public var cacheScope: CacheScope = .project
    /// What the sandbox sees empty in the trees the user binds (`[filesystem] hide`).
    public var hide: [HidePattern] = []
    public var mounts: [ProfileMount]
    public var keepEnvironment: [String]
    public var setEnvironment: [EnvironmentVariable]
    public var capabilities: [String]
    public var seccompPolicy: String
    public var seccompJSON: String?
    public var allowSyscalls: [String]
    /// `NAME` or `NAME:ERRNO`.
    public var denySyscalls: [String]
    public var seccompRules: [SyscallRuleSpec]
    public var nestedNamespaces: Bool
    /// `[seccomp] only`: the calls allowed at all, within the policy (SeccompNarrowing); nil:
    /// no such list. `only_where`: the arguments some of them are allowed with.
    public var seccompOnly: [String]? = nil
    public var seccompOnlyWhere: [ArgumentAlternatives] = []
    /// `[landlock] write`: writes only beneath these, within what the view makes writable;
    /// nil: wherever the view is writable.
    public var landlockWrite: [String]? = nil
    /// The audit log file (JSON Lines); nil: a summary on stderr.
    public var auditLog: String?
    public var limits: ResourceLimits
    public var publish: [PublishedPort]
    public var allowHostLoopback: Bool
    /// The program that carries `--net user`'s traffic (`[network] helper`).
    public var networkHelper: NetworkHelper = .auto
    /// `[network] allow` and `allow_private_addresses`: what `mode = "proxy"` lets through.
    public var egress = EgressPolicy(rules: [])
    /// Where to write the end-of-run JSON report (`--status-json`).
    public var statusJSON: String?
    /// When cell runs as root: the host ids the sandbox's root maps to (`--outer-id`).
    public var outerID: (uid: UInt32, gid: UInt32)?
    /// Who the command is inside: the caller (default) or root of the sandbox's namespace.
    public var identity: SandboxIdentity
    /// Whether the command gets a pty of its own (`[terminal] mode`).
    public var terminal: TerminalMode
    /// Whether the view is mirrored by a Landlock domain (`[landlock] mode`).
    public var landlock: LandlockMode
    /// Namespaces, or Landlock alone for hosts that refuse them (`isolation`).
    public var isolation: Isolation

    /// cell's own defaults: what a profile without `extends` starts from (and what the
    /// built-in `default` profile spells out).
    public static func base(name: String) -> Profile {
        Profile(name: name, description: "", hostname: SandboxDefaults.hostname, workingDirectory: nil,
                namespaces: Namespace.allNested, network: .none, filesystemDefaults: true,
                workingDirectoryMount: .readOnly, writableGit: false, mounts: [], keepEnvironment: [], setEnvironment: [],
                capabilities: [], seccompPolicy: "default", seccompJSON: nil, allowSyscalls: [],
                denySyscalls: [], seccompRules: [], nestedNamespaces: false, auditLog: nil,
                limits: ResourceLimits(processes: 4096, cgroup: .auto), publish: [], allowHostLoopback: false,
                statusJSON: nil, outerID: nil, identity: .caller, terminal: .auto,
                landlock: .bestEffort, isolation: .namespaces)
    }
}

public enum WorkingDirectoryMount: String, Equatable, Sendable, CaseIterable {
    case readOnly = "ro"
    case readWrite = "rw"
    /// Writable through a copy-on-write overlay: the host's directory is never modified.
    case overlay
    case none
}

public struct EnvironmentVariable: Equatable, Sendable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// A mount of a profile, in the profile's vocabulary.
public struct ProfileMount: Equatable, Sendable {
    public enum Kind: String, Equatable, Sendable, CaseIterable {
        case roBind = "ro-bind", bind, tmpfs, dir, symlink
        /// A host directory writable copy-on-write (`overlay_size`, `changes` apply).
        case overlay
    }

    public var kind: Kind
    /// bind: the host path; symlink: the link's target.
    public var source: String?
    public var destination: String
    public var optional: Bool
    public var size: UInt64?
    public var mode: UInt32?

    public init(kind: Kind, source: String? = nil, destination: String, optional: Bool = false, size: UInt64? = nil, mode: UInt32? = nil) {
        self.kind = kind
        self.source = source
        self.destination = destination
        self.optional = optional
        self.size = size
        self.mode = mode
    }

    public var operation: MountOperation {
        switch kind {
        case .roBind, .bind:
            return .bind(source ?? destination, destination, readOnly: kind == .roBind, optional: optional)
        case .overlay:
            // The size is the profile's overlay_size, filled in by the planner.
            return MountOperation(kind: .overlay, source: source ?? destination, destination: destination, optional: optional)
        case .tmpfs:
            return .tmpfs(destination, size: size ?? SandboxDefaults.tmpSize, mode: mode ?? 0o755)
        case .dir:
            return .dir(destination, mode: mode ?? 0o755)
        case .symlink:
            return .symlink(source ?? "", at: destination)
        }
    }
}

/// `[seccomp.only_where]`: the argument alternatives one call of `only` is allowed with, each
/// conditions joined by `&&`.
public struct ArgumentAlternatives: Equatable, Sendable {
    public var syscall: String
    public var alternatives: [String]

    public init(syscall: String, alternatives: [String]) {
        self.syscall = syscall
        self.alternatives = alternatives
    }

    /// "arg0 == 1 && arg1 & 0xf == 1" as conditions; nil if any part does not read.
    public static func parse(_ text: String) -> [SeccompPolicy.Condition]? {
        var conditions: [SeccompPolicy.Condition] = []
        for part in text.split(separator: "&&", omittingEmptySubsequences: false) {
            guard let condition = SyscallRuleSpec.parseCondition(String(part)) else { return nil }
            conditions.append(condition)
        }
        return conditions
    }
}

/// A seccomp rule as a profile writes it: syscalls, an action word, argument conditions.
public struct SyscallRuleSpec: Equatable, Sendable {
    public var syscalls: [String]
    /// `allow`, `kill`, `log`, `errno` (EPERM) or `errno:NAME|NUMBER`.
    public var action: String
    /// `arg1 == 5`, `arg0 & 0xff == 0x10`, `arg2 < 4096`...
    public var args: [String]

    public init(syscalls: [String], action: String, args: [String] = []) {
        self.syscalls = syscalls
        self.action = action
        self.args = args
    }

    public static func parseAction(_ text: String) -> SeccompPolicy.Action? {
        switch text {
        case "allow": return .allow
        case "kill": return .kill
        case "log": return .log
        case "errno", "deny": return .errno(1)
        default:
            for prefix in ["errno:", "deny:"] where text.hasPrefix(prefix) {
                return ErrnoNames.number(String(text.dropFirst(prefix.count))).map { .errno($0) }
            }
            return nil
        }
    }

    /// `argN OP VALUE` or `argN & MASK == VALUE`; numbers in decimal or 0x hex.
    public static func parseCondition(_ text: String) -> SeccompPolicy.Condition? {
        let words = text.split(separator: " ").map(String.init)
        func number(_ s: String) -> UInt64? {
            s.hasPrefix("0x") ? UInt64(s.dropFirst(2), radix: 16) : UInt64(s)
        }
        func index(_ s: String) -> Int? {
            guard s.hasPrefix("arg"), let n = Int(s.dropFirst(3)), (0...5).contains(n) else { return nil }
            return n
        }
        if words.count == 5, words[1] == "&", words[3] == "==", let i = index(words[0]),
           let mask = number(words[2]), let value = number(words[4]) {
            return .init(index: i, .maskedEqual, value, mask: mask)
        }
        guard words.count == 3, let i = index(words[0]), let value = number(words[2]),
              let op = SeccompPolicy.Comparison(rawValue: words[1]), op != .maskedEqual else { return nil }
        return .init(index: i, op, value)
    }
}
