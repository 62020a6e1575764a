import CellPolicy
import Glibc

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
    /// Who the sandbox is inside, and the host ids that maps to.
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
    /// With `--net user`: pasta or slirp4netns (never `.auto`: the planner has chosen).
    public var networkHelper: NetworkHelper
    /// With `--net proxy`: what the proxy lets through.
    public var egress: EgressPolicy?
    /// The command's own pty, if it gets one.
    public var terminal: TerminalPlan?
    /// `.namespaces` or `.landlock` (never `.auto`: the planner has chosen).
    public var isolation: Isolation
    /// --isolation landlock: the private directory cell makes (0700) as TMPDIR and HOME, and
    /// removes at the end.
    public var privateDirectory: String?
    /// The second wall (LandlockRules), if this kernel has Landlock and the profile wants it;
    /// with --isolation landlock, the only wall of the filesystem.
    public var landlock: LandlockPlan?
    public var landlockMode: LandlockMode
    /// What planning found the user should know before the run (a walk of a bound directory
    /// cut short, say): printed as notes, and by --dry-run.
    public var notes: [String]
    /// What cell-runtime's plans add (nil for `cell run`): an engine's namespaces, the bundle's
    /// root, the config's user.
    public var container: ContainerPlan?

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
        allowHostLoopback: Bool = false,
        networkHelper: NetworkHelper = .slirp4netns,
        egress: EgressPolicy? = nil,
        terminal: TerminalPlan? = nil,
        isolation: Isolation = .namespaces,
        privateDirectory: String? = nil,
        landlock: LandlockPlan? = nil,
        landlockMode: LandlockMode = .off,
        notes: [String] = []
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
        self.networkHelper = networkHelper
        self.egress = egress
        self.terminal = terminal
        self.isolation = isolation
        self.privateDirectory = privateDirectory
        self.landlock = landlock
        self.landlockMode = landlockMode
        self.notes = notes
        self.container = nil
    }

    public static let defaultHostname = SandboxDefaults.hostname

    /// Namespaces as the user sees them, the user namespace first (an engine's are named
    /// "joined").
    public var namespaceNames: [String] {
        (ownsUserNamespace ? ["user"] : []) + Namespace.allCases.filter { namespaces.contains($0) }.map(\.rawValue)
            + (container?.joined ?? []).map { "\($0.namespace.rawValue) (joined)" }
    }

    /// Whether the clone makes the sandbox's user namespace: always for `cell run` with
    /// namespaces; for cell-runtime, when the config asks for one.
    public var ownsUserNamespace: Bool {
        isolation == .namespaces && (container?.newUserNamespace ?? true)
    }

    /// What the supervisor does around pid 1, for `--dry-run` (pid 1's own part is the records).
    public func describe() -> String {
        var lines: [String] = []
        lines.append("command:      \(command.map(TerminalText.shellWord).joined(separator: " "))")
        if isolation == .landlock {
            lines.append("isolation:    landlock: no namespace at all; the command sees the host's processes and network "
                + "namespace (SECURITY.md); private TMPDIR and HOME \(privateDirectory ?? "")")
        } else {
            lines.append("clone:        a user namespace\(namespaces.contains(.pid) ? " and, owned by it, a pid namespace" : "") (pid 1 nests the others in them)")
        }
        if isolation == .landlock {
            lines.append("identity:     your own ids, uid \(geteuid()) gid \(getegid()) (no user namespace)")
            lines.append("network:      " + (network == .host ? "host (the caller's network namespace)"
                : "none: the host's namespace, with every TCP bind and connect forbidden (Landlock) and every other inet socket refused (seccomp)"))
        } else {
            lines.append("identity:     \(identity.describe())")
        }
        switch isolation == .landlock ? nil : network {
        case nil: break
        case .some(.none): lines.append("network:      none (a private namespace with only lo)")
        case .some(.host): lines.append("network:      host (the caller's network namespace)")
        case .some(.proxy):
            let policy = egress ?? EgressPolicy(rules: [])
            lines.append("network:      proxy (only lo; HTTP proxy at 127.0.0.1:\(EgressProxyPorts.http), SOCKS5 at 127.0.0.1:\(EgressProxyPorts.socks); allowed: "
                + (policy.rules.isEmpty ? "nothing" : policy.rules.map(\.description).joined(separator: " "))
                + (policy.allowPrivateAddresses ? "; private addresses allowed" : "; never to private, loopback or link-local addresses") + ")")
        case .some(.user):
            lines.append("network:      user (\(networkHelper.rawValue); host loopback \(allowHostLoopback ? "reachable at 10.0.2.2" : "unreachable"))"
                + (publish.isEmpty ? "" : "; published: " + publish.map(\.description).joined(separator: ", ")))
        }
        if let terminal {
            lines.append("terminal:     a pty of its own (\(terminal.rows)x\(terminal.columns)) for "
                + terminal.descriptors.sorted().map { ["stdin", "stdout", "stderr"][Int($0)] }.joined(separator: ", ")
                + ", relayed by cell; your terminal stays outside")
        }
        lines.append("limits:       " + limits.describe().joined(separator: "; "))
        lines.append("landlock:     " + LandlockRules.describe(landlock, mode: landlockMode))
        let narrowed = seccomp.only.map { ", narrowed to a list of \(Set($0.flatMap(\.names)).count) calls (seccomp.only: any other refused, audited)" } ?? ""
        lines.append("seccomp:      policy '\(seccomp.name)' (default action \(seccomp.defaultAction))\(narrowed), compiled by libseccomp \(SeccompCompiler.libseccompVersion()) while pid 1 sets up")
        lines.append("audit:        \(auditLogPath.map { "JSON Lines to \($0)" } ?? "a summary on stderr")")
        for note in notes { lines.append("note:         \(note)") }
        return lines.joined(separator: "\n")
    }

    /// The setup part of what pid 1 executes, in the order it executes it (cell-init/setup.c);
    /// the filters follow separately (`FilterSet.records`), compiled while pid 1 sets up.
    public func setupRecords() -> [PlanRecord] {
        var records: [PlanRecord] = [.namespaces(namespaces)]
        records += (container?.joined ?? []).map { .joinNamespace($0.namespace, path: $0.path) }
        // (Without a user namespace of its own, the sandbox has no sysctl of its own to write:
        // the baseline filter's namespace rules stand alone. In an engine's user namespace the
        // sysctl would be the engine's, for every container it runs.)
        if ownsUserNamespace && !seccomp.allowNestedNamespaces { records.append(.userNamespaceLimit(0)) }
        records += (container?.sysctls ?? []).map { .sysctl(name: $0.name, value: $0.value) }
        // Only root of the sandbox may write its IPC namespace's sysctls (the kernel checks the
        // uid, not a capability): as the caller, SysV shared memory is bounded per process by
        // `addressSpace` only, once attached.
        if let memory = limits.memory, namespaces.contains(.ipc), identity.innerUID == 0 {
            let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
            records.append(.sharedMemoryLimit(bytes: memory, pages: max(1, memory / page)))
        }
        if namespaces.contains(.net) { records.append(.loopback) }
        // pasta would pass a connection to the gateway on to the host's network; slirp4netns
        // refuses it itself, and delivers published connections from that address.
        if namespaces.contains(.net) && network == .user && networkHelper == .pasta && !allowHostLoopback {
            records.append(.unreachable(UserNetwork.gatewayAddress))
        }
        if namespaces.contains(.net) && network == .proxy {
            records += [.handOutListener(port: EgressProxyPorts.http), .handOutListener(port: EgressProxyPorts.socks)]
        }
        if namespaces.contains(.mount) {
            // cell's own root (a tmpfs over rootBase), or an OCI bundle's.
            records.append(container.map { .rootTree(path: $0.root.path, readOnly: $0.root.readOnly) }
                ?? .root(base: rootBase, size: LaunchPlan.rootSize))
            records += mounts.map(PlanRecord.mount)
        }
        if namespaces.contains(.uts) { records.append(.hostname(hostname)) }
        records.append(.workingDirectory(workingDirectory, fallback: workingDirectoryFallback ?? ""))
        if let terminal {
            records.append(.terminal(rows: UInt32(terminal.rows), columns: UInt32(terminal.columns), descriptors: terminal.descriptorBits))
        }
        if let user = container?.user { records.append(.user(uid: user.uid, gid: user.gid, groups: user.groups)) }
        records += limits.rlimits.map { limit in
            // RLIMIT_CPU's hard limit is a second later (see ResourceLimits.rlimits).
            .rlimit(resource: UInt32(limit.resource), soft: limit.value,
                    hard: limit.resource == Int32(RLIMIT_CPU.rawValue) ? limit.value + 1 : limit.value)
        }
        records.append(.capabilities(keptCapabilities))
        records += (container?.rlimits ?? []).map { .rlimit(resource: $0.resource, soft: $0.soft, hard: $0.hard) }
        if let landlock {
            records.append(.landlock(abi: landlock.abi, required: landlock.required, fs: landlock.handledFS,
                                     net: landlock.handledNet, scoped: landlock.scoped))
            records += landlock.paths.map { .landlockPath(access: $0.access, path: $0.path) }
        }
        // With user-mode networking the command waits until the helper is attached.
        // cell-runtime's command waits for `cell-runtime start`.
        if network == .user || network == .proxy || container != nil { records.append(.hold) }
        // A container's exec: processes started by pid 1, after the command (process.c).
        if container != nil { records.append(.takeProcesses) }
        records += command.map(PlanRecord.argument) + environment.map(PlanRecord.environment)
        records.append(.endSetup)
        return records
    }

    /// The new root only holds mount points and small generated files.
    public static let rootSize: UInt64 = 1 << 20
}

extension LaunchPlan {
    /// Whether cell relays the command's pty itself (not when cell-runtime hands it to an engine).
    public var relaysTerminal: Bool { terminal != nil && container?.consoleSocket == nil }
}

/// The command's own terminal: a pty pid 1 makes on the sandbox's devpts. cell relays between
/// its own descriptors and the pty's master; the sandbox never holds a descriptor of the
/// caller's terminal.
public struct TerminalPlan: Equatable, Sendable {
    /// The command's descriptors (0-2) that are the pty's terminal; the others are cell's own,
    /// as they are (a redirected stdout stays the file).
    public var descriptors: Set<Int32>
    /// The size to start with (then it follows the caller's window).
    public var rows: UInt16
    public var columns: UInt16

    public init(descriptors: Set<Int32>, rows: UInt16, columns: UInt16) {
        self.descriptors = descriptors
        self.rows = rows
        self.columns = columns
    }

    var descriptorBits: UInt32 { descriptors.reduce(0) { $0 | 1 << UInt32($1) } }
}

/// One line of a uid_map or gid_map: `count` ids from `inside` map to ids from `outside`.
public struct IDRange: Equatable, Sendable {
    public var inside: UInt32
    public var outside: UInt32
    public var count: UInt32

    public init(inside: UInt32, outside: UInt32, count: UInt32 = 1) {
        self.inside = inside
        self.outside = outside
        self.count = count
    }

    var line: String { "\(inside) \(outside) \(count)\n" }
}

/// Who the sandbox's processes are inside, and how that maps to the host.
///
/// The sandbox runs as one id over a one-id map: uid 0 inside (`root`) or the caller's own
/// uid (`caller`), either way mapped to the caller's uid outside (or, when cell runs as real
/// root, to an unprivileged outer id). pid 1 builds the sandbox with every capability of the
/// new user namespace: as uid 0 it has them; as another uid it carries them through the
/// execve of cell-init in the ambient set (raised by the trampoline, spawn.c), and the
/// lock-down clears them before the command runs (SECURITY.md, "Identity").
public struct IdentityMapping: Equatable, Sendable {
    public var outerUID: UInt32
    public var outerGID: UInt32
    /// The ids inside.
    public var innerUID: UInt32
    public var innerGID: UInt32
    /// Unprivileged callers must deny setgroups (the kernel requires it of their maps); a root
    /// caller instead drops every supplementary group inside.
    public var denySetgroups: Bool
    /// The maps the supervisor writes; one line each unless set otherwise.
    public var uidMap: [IDRange]
    public var gidMap: [IDRange]

    public init(outerUID: UInt32, outerGID: UInt32, innerUID: UInt32 = 0, innerGID: UInt32 = 0, denySetgroups: Bool) {
        self.outerUID = outerUID
        self.outerGID = outerGID
        self.innerUID = innerUID
        self.innerGID = innerGID
        self.denySetgroups = denySetgroups
        uidMap = [IDRange(inside: innerUID, outside: outerUID)]
        gidMap = [IDRange(inside: innerGID, outside: outerGID)]
    }

    func describe() -> String {
        func ranges(_ map: [IDRange]) -> String {
            map.map { "\($0.inside)->\($0.outside)" + ($0.count == 1 ? "" : " (\($0.count) ids)") }.joined(separator: ", ")
        }
        return "uid \(innerUID), gid \(innerGID) inside; uid_map \(ranges(uidMap)), gid_map \(ranges(gidMap)); "
            + (denySetgroups ? "setgroups denied" : "supplementary groups dropped")
    }

    /// The unprivileged host id a root caller's sandbox runs as unless told otherwise.
    public static let defaultOuterIDForRoot: UInt32 = 65534

    /// The mapping for a caller with effective ids `uid`/`gid`. An unprivileged caller can only
    /// map its own ids. Real root (uid 0 of the initial user namespace) must never become the
    /// sandbox's root: a `0 0 1` map would let the sandbox write root-owned host files, so real
    /// root maps to `requested` or 65534. Root of another user namespace (cell run inside a
    /// container or `unshare -U`) is already unprivileged on the host and maps to itself.
    /// `inside`: uid 0, or the caller's own ids (for real root, these are 0 too).
    public static func forCaller(uid: UInt32, gid: UInt32, requested: (uid: UInt32, gid: UInt32)?, inside: SandboxIdentity,
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
        return inside == .caller
            ? IdentityMapping(outerUID: uid, outerGID: gid, innerUID: uid, innerGID: gid, denySetgroups: true)
            : IdentityMapping(outerUID: uid, outerGID: gid, denySetgroups: true)
    }

    /// Whether this process is in the initial user namespace: there, and only there, the uid map
    /// is the identity over the whole range.
    public static func inInitialUserNamespace() -> Bool {
        inInitialUserNamespaceOnce
    }

    private static let inInitialUserNamespaceOnce = inInitialUserNamespace(uidMap: readSmallFile("/proc/self/uid_map"))

    public static func inInitialUserNamespace(uidMap: String?) -> Bool {
        guard let uidMap else { return true } // cannot tell: assume the strictest case
        // On the bytes: a Character split of this short text showed in a launch's profile.
        let fields = uidMap.utf8.split(whereSeparator: { $0 == 0x20 || $0 == 0x0A || $0 == 0x09 })
        return fields.map { Array($0) } == [Array("0".utf8), Array("0".utf8), Array("4294967295".utf8)]
    }
}
