/// Everything a launch needs, as plain data: built by the CLI (and later the profile loader),
/// printed by `--dry-run`, and executed by `Launcher`. Nothing here touches the system.
public struct LaunchPlan: Equatable, Sendable {
    /// The command and its arguments; `command[0]` is looked up in the sandbox's `PATH`.
    public var command: [String]
    /// The sandbox's whole environment, as `NAME=value` strings (see `SandboxEnvironment`).
    public var environment: [String]
    /// Namespaces nested inside the user namespace (which is always created, first).
    public var namespaces: Set<Namespace>
    /// The sandbox's hostname (needs the uts namespace).
    public var hostname: String
    /// Working directory inside, and where to start instead if it cannot be entered.
    public var workingDirectory: String
    public var workingDirectoryFallback: String?
    /// Host ids that uid 0 and gid 0 inside map to.
    public var identity: IdentityMapping
    /// Capabilities kept through the lock-down (none by default).
    public var keptCapabilities: UInt64
    /// Where to write the end-of-run JSON report, if anywhere.
    public var statusJSONPath: String?
    /// The system-call policy (the baseline filter comes with it).
    public var seccomp: SeccompPolicy
    /// The filesystem view, in order (see `FilesystemView`).
    public var mounts: [MountOperation]
    /// The host directory the new root is attached over while it is built.
    public var rootBase: String
    /// Where audit events go (JSON Lines), if anywhere; without it, a summary on stderr.
    public var auditLogPath: String?
    /// The profile the plan came from, for the audit log.
    public var profileName: String
    public var limits: ResourceLimits
    public var network: NetworkMode
    public var publish: [PublishedPort]
    public var allowHostLoopback: Bool

    public init(
        command: [String],
        environment: [String],
        namespaces: Set<Namespace> = Namespace.allNested,
        hostname: String = LaunchPlan.defaultHostname,
        workingDirectory: String,
        workingDirectoryFallback: String? = "/",
        identity: IdentityMapping,
        keptCapabilities: UInt64 = 0,
        statusJSONPath: String? = nil,
        seccomp: SeccompPolicy = .default,
        mounts: [MountOperation] = [],
        rootBase: String = "/tmp",
        auditLogPath: String? = nil,
        profileName: String = "default",
        limits: ResourceLimits = ResourceLimits(),
        network: NetworkMode = .none,
        publish: [PublishedPort] = [],
        allowHostLoopback: Bool = false
    ) {
        self.command = command
        self.environment = environment
        self.namespaces = namespaces
        self.hostname = hostname
        self.workingDirectory = workingDirectory
        self.workingDirectoryFallback = workingDirectoryFallback
        self.identity = identity
        self.keptCapabilities = keptCapabilities
        self.statusJSONPath = statusJSONPath
        self.seccomp = seccomp
        self.mounts = mounts
        self.rootBase = rootBase
        self.auditLogPath = auditLogPath
        self.profileName = profileName
        self.limits = limits
        self.network = network
        self.publish = publish
        self.allowHostLoopback = allowHostLoopback
    }

    public static let defaultHostname = "cell"

    /// Namespaces as the user sees them, the user namespace first.
    public var namespaceNames: [String] {
        ["user"] + Namespace.allCases.filter { namespaces.contains($0) }.map(\.rawValue)
    }

    /// A readable rendering of the plan, in the order the launcher carries it out.
    public func describe() -> String {
        var lines: [String] = []
        lines.append("command:      \(command.map(shellQuoted).joined(separator: " "))")
        lines.append("namespaces:   \(namespaceNames.joined(separator: " ")) (user first, the others nested in it)")
        lines.append("identity:     uid 0 -> host uid \(identity.outerUID), gid 0 -> host gid \(identity.outerGID)"
            + (identity.denySetgroups ? ", setgroups denied" : ", supplementary groups dropped"))
        lines.append("hostname:     \(namespaces.contains(.uts) ? hostname : "(the host's)")")
        switch network {
        case .none: lines.append("network:      none (a private namespace with only lo)")
        case .host: lines.append("network:      host (the caller's network namespace)")
        case .user:
            lines.append("network:      user (slirp4netns; host loopback \(allowHostLoopback ? "reachable" : "unreachable"))"
                + (publish.isEmpty ? "" : "; published: " + publish.map(\.description).joined(separator: ", ")))
        }
        lines.append("limits:       " + limits.describe().joined(separator: "; "))
        lines.append("working dir:  \(workingDirectory)"
            + (workingDirectoryFallback.map { " (else \($0))" } ?? ""))
        lines.append("capabilities: \(keptCapabilities == 0 ? "none" : Capabilities.names(keptCapabilities).joined(separator: " ")) (securebits locked)")
        lines.append("no_new_privs: yes")
        lines.append("nested namespaces: \(seccomp.allowNestedNamespaces ? "allowed" : "refused (max_user_namespaces=0, clone/unshare flags filtered)")")
        lines.append("seccomp:      policy '\(seccomp.name)' (default action \(seccomp.defaultAction)) with the baseline rules (below)")
        lines.append("audit:        \(auditLogPath.map { "JSON Lines to \($0)" } ?? "a summary on stderr")")
        lines.append("filesystem:   a new tmpfs root, then in order:")
        for (index, op) in mounts.enumerated() { lines.append("  \(index + 1). \(op.summary)") }
        lines.append("  then pivot_root into it; / itself read-only")
        lines.append("environment:")
        for entry in environment { lines.append("  \(entry)") }
        return lines.joined(separator: "\n")
    }
}

/// What is settled before the sandbox's first process exists: the command, who the sandbox is,
/// its namespaces and network mode, and what the supervisor prepares first (limits and cgroup,
/// the audit log). The rest of a `LaunchPlan` is built while the kernel creates the namespaces.
public struct LaunchBasics: Equatable, Sendable {
    public var command: [String]
    public var identity: IdentityMapping
    public var namespaces: Set<Namespace>
    public var network: NetworkMode
    public var limits: ResourceLimits
    public var auditLogPath: String?

    public init(command: [String], identity: IdentityMapping, namespaces: Set<Namespace>, network: NetworkMode,
                limits: ResourceLimits, auditLogPath: String?) {
        self.command = command
        self.identity = identity
        self.namespaces = namespaces
        self.network = network
        self.limits = limits
        self.auditLogPath = auditLogPath
    }
}

/// The namespaces cell can nest inside the sandbox's user namespace.
public enum Namespace: String, CaseIterable, Sendable {
    case mount, pid, net, ipc, uts, cgroup, time

    /// Everything but the time namespace, which is off by default (few programs need it).
    public static let allNested: Set<Namespace> = [.mount, .pid, .net, .ipc, .uts, .cgroup]
}

/// How the sandbox's root maps to the host.
public struct IdentityMapping: Equatable, Sendable {
    public var outerUID: UInt32
    public var outerGID: UInt32
    /// Unprivileged callers must deny setgroups (the kernel requires it of their maps); a root
    /// caller instead drops every supplementary group inside.
    public var denySetgroups: Bool

    public init(outerUID: UInt32, outerGID: UInt32, denySetgroups: Bool) {
        self.outerUID = outerUID
        self.outerGID = outerGID
        self.denySetgroups = denySetgroups
    }

    /// The unprivileged host id a root caller's sandbox runs as unless told otherwise.
    public static let defaultOuterIDForRoot: UInt32 = 65534

    /// The mapping for a caller with effective ids `uid`/`gid`. An unprivileged caller can only
    /// map its own ids. Real root (uid 0 of the initial user namespace) must never become the
    /// sandbox's root: a `0 0 1` map would let the sandbox write root-owned host files, so real
    /// root maps to `requested` or 65534. Root of another user namespace (cell run inside a
    /// container or `unshare -U`) is already unprivileged on the host and maps to itself.
    public static func forCaller(uid: UInt32, gid: UInt32, requested: (uid: UInt32, gid: UInt32)?,
                                 inInitialUserNamespace: @autoclosure () -> Bool = true) throws(LaunchError) -> IdentityMapping {
        // Asked only of root (reading the uid map costs a launch ~30 us).
        if uid == 0 && inInitialUserNamespace() {
            let outer = requested ?? (defaultOuterIDForRoot, defaultOuterIDForRoot)
            if outer.uid == 0 || outer.gid == 0 {
                throw .invalid("--outer-id 0 would make the sandbox's root the host's root; pick an unprivileged id such as 65534")
            }
            return IdentityMapping(outerUID: outer.uid, outerGID: outer.gid, denySetgroups: false)
        }
        if let requested, requested.uid != uid || requested.gid != gid {
            throw .invalid("--outer-id needs real root: otherwise the sandbox can only map to the caller's own ids (\(uid):\(gid))")
        }
        // setgroups is denied: the kernel requires it of an unprivileged map writer, and root of
        // a nested namespace may itself run with setgroups denied (`unshare -Ur` does that).
        return IdentityMapping(outerUID: uid, outerGID: gid, denySetgroups: true)
    }

    /// Whether this process is in the initial user namespace: there, and only there, the uid map
    /// is the identity over the whole range.
    public static func inInitialUserNamespace() -> Bool {
        inInitialUserNamespaceOnce
    }

    /// Read once: `cell run` asks twice (its guess before the profile, then the real basics).
    private static let inInitialUserNamespaceOnce = inInitialUserNamespace(uidMap: readSmallFile("/proc/self/uid_map"))

    public static func inInitialUserNamespace(uidMap: String?) -> Bool {
        guard let uidMap else { return true } // cannot tell: assume the strictest case
        // On the bytes: a Character split of this short text showed in a launch's profile.
        let fields = uidMap.utf8.split(whereSeparator: { $0 == 0x20 || $0 == 0x0A || $0 == 0x09 })
        return fields.map { Array($0) } == [Array("0".utf8), Array("0".utf8), Array("4294967295".utf8)]
    }
}

func shellQuoted(_ word: String) -> String {
    let safe = word.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }
    if safe && !word.isEmpty { return word }
    return "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
}
