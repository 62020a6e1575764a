import CellPolicy
import CellProfile
import Glibc

/// --env NAME=VALUE
public struct EnvAssignment: Equatable, Sendable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// --deny-syscall NAME[:ERRNO]
public struct DeniedSyscall: Equatable, Sendable {
    public var name: String
    public var errno: Int32

    public init(name: String, errno: Int32) {
        self.name = name
        self.errno = errno
    }
}

/// A mount asked for on the command line.
public enum MountRequest: Equatable, Sendable {
    case bind(source: String, destination: String?, readOnly: Bool)
    case tmpfs(destination: String, size: UInt64?, mode: UInt32?)
    /// --overlay: a copy-on-write view of a host directory.
    case overlay(source: String, destination: String?)
}

/// --outer-id UID:GID (root only): the host ids the sandbox maps to.
public struct OuterID: Equatable, Sendable {
    public var uid: UInt32
    public var gid: UInt32

    public init(uid: UInt32, gid: UInt32) {
        self.uid = uid
        self.gid = gid
    }
}

/// What the command line asks of one `cell run`, over the profile: the Planner's input beside
/// the `Profile`. nil and empty mean "as the profile says".
public struct RunRequest: Equatable, Sendable {
    public var command: [String] = []
    public var hostname: String?
    public var workingDirectory: String?
    public var environment: [EnvAssignment] = []
    public var keepEnvironment: [String] = []
    public var statusJSONPath: String?
    public var outerID: OuterID?
    /// --ro-bind, --bind and --tmpfs, in command-line order (relative sources still relative).
    public var mounts: [MountRequest] = []
    public var capabilitiesAdded: [String] = []
    public var seccompPolicy: String?
    public var seccompJSONPath: String?
    public var allowedSyscalls: [String] = []
    public var deniedSyscalls: [DeniedSyscall] = []
    public var network: String?
    public var auditLogPath: String?
    public var timeout: UInt64?
    public var killAfter: UInt64?
    public var memory: UInt64?
    public var cpuTime: UInt64?
    public var fileSize: UInt64?
    public var openFiles: UInt64?
    public var processes: UInt64?
    public var cgroup: CgroupChoice?
    public var publish: [PublishedPort] = []
    public var allowHostLoopback = false
    /// --net-helper; nil: as the profile says (`[network] helper`, default auto).
    public var networkHelper: NetworkHelper?
    /// --allow-net (each implies --net proxy), added to the profile's `[network] allow`.
    public var allowNet: [EgressRule] = []
    public var allowPrivateAddresses = false
    /// --overlay-size, --changes (the profile's `overlay_size`, `changes` otherwise).
    public var overlaySize: UInt64?
    public var changes: String?
    /// --cache NAME:DST (a name the profile has too is replaced), --cache-scope, --hide GLOB.
    public var caches: [CacheMount] = []
    public var cacheScope: CacheScope?
    public var hide: [HidePattern] = []
    /// false (--dry-run): the plan names the cache directories without creating them.
    public var createsCaches = true
    /// --as-root / --as-caller; nil: as the profile says (`identity`, default caller).
    public var inside: SandboxIdentity?
    /// --tty (always) / --no-tty (never); nil: as the profile says (`[terminal] mode`, default auto).
    public var terminal: TerminalMode?
    /// --isolation; nil: as the profile says (`isolation`, default namespaces).
    public var isolation: Isolation?

    public init() {}
}

/// Turns a `Profile` and a `RunRequest` into the `LaunchPlan`: everything is decided here, once,
/// before the sandbox exists.
public enum Planner {
    /// Whether a plan's Landlock domain mirrors its view (LandlockRules), where the kernel has
    /// Landlock: a namespace sandbox with a mount namespace whose profile does not turn it off.
    public static func mirrorsViewInLandlock(isolation: Isolation, landlock: LandlockMode, namespaces: Set<Namespace>) -> Bool {
        isolation == .namespaces && landlock != .off && namespaces.contains(.mount)
    }

    /// The whole plan. Precedence: command-line options, then the profile, then cell's base
    /// defaults (which the profile has already filled in). Lists from the command line are
    /// added after the profile's.
    public static func plan(_ request: RunRequest, profile: Profile) throws(LaunchError) -> LaunchPlan {
        let identity = try IdentityMapping.forCaller(
            uid: geteuid(), gid: getegid(),
            // A profile's outer_id applies when cell runs as root (the only case it means anything);
            // --outer-id from anyone else is an error.
            requested: request.outerID.map { ($0.uid, $0.gid) } ?? (geteuid() == 0 ? profile.outerID : nil),
            inside: request.inside ?? profile.identity,
            inInitialUserNamespace: IdentityMapping.inInitialUserNamespace())
        let callerEnvironment = SandboxEnvironment.callerEnvironment()
        let user = SandboxUser.inside(request.inside ?? profile.identity, uid: identity.innerUID, gid: identity.innerGID,
                                      passwd: identity.innerUID == 0 ? nil : readSmallFile("/etc/passwd", limit: 4 << 20),
                                      group: identity.innerUID == 0 ? nil : readSmallFile("/etc/group", limit: 4 << 20),
                                      environment: callerEnvironment)
        var namespaces = profile.namespaces
        let named = request.network.flatMap(NetworkMode.init(rawValue:))
        var network = named ?? profile.network
        if !request.allowNet.isEmpty {
            // --allow-net means the proxy; with another network it would be silently meaningless.
            if let named, named != .proxy {
                throw .invalid("--allow-net filters --net proxy's connections: it cannot be combined with --net \(named.rawValue)")
            }
            network = .proxy
        }
        // Options that mean something only with user-mode networking are refused without it,
        // as --publish is: a script that asked for them would otherwise run without.
        if network != .user, let option = request.allowHostLoopback ? "--allow-host-loopback" : request.networkHelper != nil ? "--net-helper" : nil {
            throw .invalid("\(option) applies to user-mode networking (--net user), not to --net \(network.rawValue)")
        }
        if request.allowPrivateAddresses && network != .proxy {
            throw .invalid("--allow-private-addresses applies to --net proxy (or --allow-net), not to --net \(network.rawValue)")
        }
        if network == .host { namespaces.remove(.net) } else { namespaces.insert(.net) }
        if !(profile.publish + request.publish).isEmpty && network != .user {
            throw .invalid("--publish needs user-mode networking (--net user): with --net \(network.rawValue) there is nothing to forward to")
        }
        var limits = profile.limits
        if let v = request.timeout { limits.timeout = v }
        if let v = request.killAfter { limits.killAfter = v }
        if let v = request.memory { limits.memory = v }
        if let v = request.cpuTime { limits.cpuTime = v }
        if let v = request.fileSize { limits.fileSize = v }
        if let v = request.openFiles { limits.openFiles = v }
        if let v = request.processes { limits.processes = v }
        if let v = request.cgroup { limits.cgroup = v }
        let environment = SandboxEnvironment.build(
            caller: callerEnvironment,
            user: (user.name, user.home),
            keep: profile.keepEnvironment + request.keepEnvironment,
            // With the proxy, the variables that point programs at it come first: a profile or
            // --env may still override them.
            set: (network == .proxy ? EgressProxyPorts.environment : [])
                + profile.setEnvironment.map { ($0.name, $0.value) } + request.environment.map { ($0.name, $0.value) })
        // Working directory: --cwd, else the profile's, else the caller's, falling back to /
        // (with a note) when the sandbox cannot enter it. An explicit one has no fallback.
        let callerDirectory = currentDirectory()
        let explicitDirectory = request.workingDirectory ?? profile.workingDirectory
        // A profile that hides the working directory starts in / (no note: that is its point).
        let hidden = explicitDirectory == nil && profile.workingDirectoryMount == .none
        let cwd = explicitDirectory ?? (hidden ? "/" : callerDirectory ?? "/")
        guard let rootBase = FilesystemView.rootBase() else {
            throw .setup("no directory to build the sandbox's root over (looked for /tmp, /mnt, /run, /var/tmp)")
        }
        let publish = profile.publish + request.publish
        // The caller's working directory is bound only when it is the one the sandbox starts in.
        let boundDirectory = explicitDirectory == nil && profile.workingDirectoryMount != .none ? callerDirectory : nil
        var mounts = profile.filesystemDefaults
            ? FilesystemView.defaultOperations(workingDirectory: boundDirectory,
                                               workingDirectoryWritable: profile.workingDirectoryMount != .readOnly, user: user,
                                               hostname: request.hostname ?? profile.hostname,
                                               ipcNamespace: namespaces.contains(.ipc), network: network)
            : []
        // The working directory's bind (the default view's last, when there is one) and every
        // mount the user chose are walked by BindGuards.
        var workingDirectoryBound = false
        let overlaySize = request.overlaySize ?? profile.overlaySize
        let changes = request.changes ?? profile.changes
        if let cwd = boundDirectory, let last = mounts.indices.last, mounts[last].kind == .bind, mounts[last].source == cwd {
            mounts[last].guarded = true
            workingDirectoryBound = true
            if profile.workingDirectoryMount == .overlay {
                mounts[last].kind = .overlay
                mounts[last].size = overlaySize
                mounts[last].changes = changes
            }
        }
        let defaultCount = mounts.count
        mounts += profile.mounts.map(\.operation)
        for mount in request.mounts {
            switch mount {
            case .bind(let source, let destination, let readOnly):
                guard let absolute = SandboxPath.normalize(source, relativeTo: callerDirectory) else {
                    throw .invalid("cannot resolve the bind source '\(source)' (relative to an unknown working directory)")
                }
                mounts.append(.bind(absolute, destination.flatMap { SandboxPath.normalize($0) } ?? absolute, readOnly: readOnly))
            case .tmpfs(let destination, let size, let mode):
                mounts.append(.tmpfs(destination, size: size ?? FilesystemView.tmpSize, mode: mode ?? 0o755))
            case .overlay(let source, let destination):
                guard let absolute = SandboxPath.normalize(source, relativeTo: callerDirectory) else {
                    throw .invalid("cannot resolve the overlay source '\(source)' (relative to an unknown working directory)")
                }
                mounts.append(MountOperation(kind: .overlay, source: absolute,
                                             destination: destination.flatMap { SandboxPath.normalize($0) } ?? absolute, size: overlaySize))
            }
        }
        // The changes of one overlay can be kept: which one must be clear.
        let overlays = mounts.indices.filter { mounts[$0].kind == .overlay }
        for index in overlays where mounts[index].size == nil { mounts[index].size = overlaySize }
        if let changes {
            if request.overlaySize != nil {
                throw .invalid("--overlay-size bounds a tmpfs upper layer; with --changes the layer is on \(changes)'s disk, "
                    + "with no limit but that disk's: give one or the other")
            }
            guard overlays.count == 1 else {
                throw .invalid("--changes keeps the changes of one overlay, and this sandbox has \(overlays.count) "
                    + "(--overlay, or [filesystem] cwd = \"overlay\")")
            }
            try FilesystemView.checkChangesDirectory(changes, lower: mounts[overlays[0]].source ?? "")
            mounts[overlays[0]].changes = changes
        }
        let kept = try Capabilities.set(profile.capabilities + request.capabilitiesAdded)
        // The policy's base: --seccomp / --seccomp-json, else the profile's.
        if request.seccompPolicy != nil && request.seccompJSONPath != nil {
            throw .invalid("--seccomp and --seccomp-json both choose the policy: give one")
        }
        let seccomp = try Planner.seccompPolicy(profile, policy: request.seccompPolicy, json: request.seccompJSONPath, kept: kept).adjusted(
            allow: request.allowedSyscalls, deny: request.deniedSyscalls.map { ($0.name, $0.errno) })
        for index in mounts.indices.dropFirst(defaultCount) { mounts[index].guarded = true }
        let userMounts = Array(mounts[defaultCount...])
        mounts = try FilesystemView.settle(mounts)
        // Namespaces, or none at all (LandlockIsolation); `auto` asks this host. Decided before
        // the view's guards and second wall, which a plan without namespaces has no use for.
        var isolation = request.isolation ?? profile.isolation
        var isolationNote: String?
        if isolation == .auto {
            if let refused = LandlockIsolation.namespacesRefused() {
                isolation = .landlock
                isolationNote = "this host refuses user namespaces (\(refused)): --isolation auto runs the command with Landlock alone, without namespaces (SECURITY.md)"
            } else {
                isolation = .namespaces
            }
        }
        var caches = profile.caches
        for cache in request.caches {
            caches.removeAll { $0.name == cache.name }
            caches.append(cache)
        }
        let hide = profile.hide + request.hide.filter { !profile.hide.contains($0) }
        if isolation == .landlock, let what = !caches.isEmpty ? "a cache (--cache, [filesystem] caches as in the ci profile)"
            : !hide.isEmpty ? "hidden files (--hide, [filesystem] hide as in the ci profile)" : nil {
            throw .invalid("--isolation landlock cannot give \(what): it takes mounts; clear the list in your profile (caches = [], hide = [])")
        }
        // Caches last: each is the caller's own directory, kept between runs, over whatever
        // the view has at its destination (the home's tmpfs, usually).
        let cacheOps = try cacheMounts(caches, scope: request.cacheScope ?? profile.cacheScope, profile: profile.name, home: user.home,
                                       workingDirectory: callerDirectory, create: request.createsCaches)
        mounts += request.createsCaches ? try FilesystemView.settle(cacheOps) : cacheOps
        // Sockets, FIFOs, .git and what hide matches in the directories the user bound (BindGuards: why).
        let guarded = isolation == .namespaces
            ? try BindGuards.apply(mounts, writableGit: profile.writableGit, hide: hide, skipping: changes.map { [$0] } ?? [])
            : (ops: mounts, notes: [])
        // The second wall mirrors the view (LandlockRules), when the kernel has Landlock.
        var landlock: LandlockPlan?
        var landlockNote: String?
        let mirrorsView = Self.mirrorsViewInLandlock(isolation: isolation, landlock: profile.landlock, namespaces: namespaces)
        if mirrorsView {
            let abi = LandlockRules.kernelABI()
            if abi == 0 && profile.landlock == .required {
                throw .invalid("the profile requires Landlock ([landlock] mode = \"required\"), but this kernel has none "
                    + "(built without CONFIG_SECURITY_LANDLOCK, or 'landlock' missing from the lsm= boot parameter)")
            }
            landlock = LandlockRules.mirroring(guarded.ops, abi: abi, required: profile.landlock == .required, writeOnly: profile.landlockWrite)
        }
        if profile.landlockWrite != nil && landlock == nil {
            guard mirrorsView else {
                throw .invalid("[landlock] write narrows the Landlock domain of a namespace sandbox: it needs isolation = \"namespaces\", a mount namespace and [landlock] mode \"best-effort\" or \"required\"")
            }
            landlockNote = "[landlock] write is not enforced: this kernel has no Landlock (mode \"best-effort\"; \"required\" refuses to run instead)"
        }
        var seccompPolicy = seccomp
        seccompPolicy.underLandlock = landlock != nil
        let plan = LaunchPlan(
            command: request.command,
            environment: environment,
            namespaces: namespaces,
            hostname: request.hostname ?? profile.hostname,
            workingDirectory: cwd,
            workingDirectoryFallback: explicitDirectory == nil ? "/" : nil,
            identity: identity,
            keptCapabilities: kept,
            statusJSONPath: request.statusJSONPath ?? profile.statusJSON,
            seccomp: seccompPolicy,
            mounts: guarded.ops,
            rootBase: rootBase,
            auditLogPath: request.auditLogPath ?? profile.auditLog,
            profileName: profile.name,
            limits: limits,
            network: network,
            publish: publish,
            allowHostLoopback: request.allowHostLoopback || profile.allowHostLoopback,
            networkHelper: network == .user ? try UserNetwork.choose(request.networkHelper ?? profile.networkHelper) : .slirp4netns,
            egress: network == .proxy ? EgressPolicy(rules: profile.egress.rules + request.allowNet.filter { !profile.egress.rules.contains($0) },
                                                     allowPrivateAddresses: profile.egress.allowPrivateAddresses || request.allowPrivateAddresses) : nil,
            terminal: terminal(request.terminal ?? profile.terminal, isTerminal: { isatty($0) == 1 }, windowSize: windowSize),
            landlock: landlock,
            landlockMode: profile.landlock,
            notes: guarded.notes + [isolationNote, landlockNote].compactMap { $0 })
        guard isolation == .landlock else { return plan }
        if plan.mounts.contains(where: { $0.kind == .overlay }) {
            throw .invalid("--isolation landlock cannot give an overlay (--overlay, or [filesystem] cwd = \"overlay\" as in the ci profile): "
                + "it is a mount; use cwd = \"rw\" or \"ro\" there")
        }
        return try LandlockIsolation.adapt(plan, LandlockIsolation.Inputs(
            // The working directory where the view binds it (not /, nor /tmp: the view's own).
            userMounts: try FilesystemView.settle(userMounts), workingDirectory: workingDirectoryBound ? boundDirectory : nil,
            workingDirectoryWritable: profile.workingDirectoryMount == .readWrite, writableGit: profile.writableGit,
            identity: request.inside ?? profile.identity, terminal: request.terminal ?? profile.terminal,
            filesystemDefaults: profile.filesystemDefaults))
    }
}

extension Planner {
    /// The read-write binds of `caches`, their directories prepared in the caller's CacheStore.
    /// Not walked by BindGuards: only sandboxes write there, and hide globs are for the trees
    /// the user bound.
    static func cacheMounts(_ caches: [CacheMount], scope: CacheScope, profile: String, home: String,
                            workingDirectory: String?, create: Bool) throws(LaunchError) -> [MountOperation] {
        guard !caches.isEmpty else { return [] }
        let store = try CacheStore.forCaller(create: create)
        let project = CacheStore.project(around: workingDirectory.flatMap(FilesystemView.hostRealPath) ?? "/")
        let scopeName = CacheStore.scopeName(scope, profile: profile, project: project)
        let about: String
        switch scope {
        case .project: about = "project \(project), profile \(profile)"
        case .profile: about = "profile \(profile), every project"
        case .user: about = "every project and profile"
        }
        var ops: [MountOperation] = []
        for cache in caches {
            guard let destination = cache.destination(home: home) else {
                throw .invalid("cache '\(cache)': its destination is not a path inside the sandbox")
            }
            var bind = MountOperation.bind(try store.prepare(cache.name, scope: scopeName, about: about, create: create), destination, readOnly: false)
            bind.expectedType = UInt32(S_IFDIR)
            ops.append(bind)
        }
        return ops
    }

    /// Which of the command's descriptors get a pty of its own: with `auto`, those of cell's
    /// stdin, stdout and stderr that are a terminal (a redirected one bypasses the pty, as with
    /// `podman run -t`), so the sandbox never holds a descriptor of the caller's terminal; with
    /// `always`, stdin and stdout at least. The size is the caller's window's (24x80 without).
    static func terminal(_ mode: TerminalMode, isTerminal: (Int32) -> Bool,
                         windowSize: (Int32) -> (rows: UInt16, columns: UInt16)?) -> TerminalPlan? {
        let terminals = Set((Int32(0)...2).filter(isTerminal))
        let descriptors: Set<Int32>
        switch mode {
        case .never: return nil
        case .auto:
            guard !terminals.isEmpty else { return nil }
            descriptors = terminals
        case .always: descriptors = terminals.union([0, 1])
        }
        let size = terminals.sorted().lazy.compactMap(windowSize).first ?? (24, 80)
        return TerminalPlan(descriptors: descriptors, rows: size.rows, columns: size.columns)
    }
}

/// The window size of the terminal `fd` is, if it is one and knows its size.
func windowSize(_ fd: Int32) -> (rows: UInt16, columns: UInt16)? {
    var size = winsize()
    guard ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0, size.ws_col > 0 else { return nil }
    return (size.ws_row, size.ws_col)
}

/// The running kernel's (major, minor), for Docker profiles' minKernel.
public func kernelVersion() -> (Int, Int) {
    var name = utsname()
    uname(&name)
    let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
    return parts.count == 2 ? (parts[0], parts[1]) : (0, 0)
}

extension Planner {
    /// The profile's system-call policy: its base (`policy` or a Docker-format `json` file, which
    /// override the profile's own), with the profile's rules and `only` list on it. `kept`: the
    /// capabilities the sandbox keeps (a Docker profile's rules depend on them). cell-runtime
    /// uses it for a container's profile as `cell run` does.
    public static func seccompPolicy(_ profile: Profile, policy: String? = nil, json: String? = nil, kept: UInt64) throws(LaunchError) -> SeccompPolicy {
        var base = SeccompPolicy.builtIn(policy ?? profile.seccompPolicy) ?? .default
        if let path = json ?? (policy == nil ? profile.seccompJSON : nil) {
            guard let text = readSmallFile(path, limit: 4 << 20) else {
                throw .invalid("cannot read the seccomp profile \(path): \(errorText(errno))")
            }
            base = try DockerSeccompProfile.policy(fromJSON: text, name: path, keptCapabilities: Capabilities.names(kept),
                                                   kernel: kernelVersion())
        }
        if let only = profile.seccompOnly, let stray = profile.seccompOnlyWhere.first(where: { !only.contains($0.syscall) }) {
            throw .invalid("[seccomp.only_where] gives arguments for \(stray.syscall), which seccomp.only does not list: add it to only, or remove its line")
        }
        return profile.seccomp(base: base)
    }
}
