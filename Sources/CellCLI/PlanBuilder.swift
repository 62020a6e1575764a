import CCellSpawn
import CellLauncher
import CellProfile
import Glibc

/// Turns `cell run` options and a profile into the `LaunchPlan`: everything is decided here,
/// once, before the sandbox exists.
enum PlanBuilder {
    /// The whole plan. Precedence: command-line options, then the profile, then cell's base
    /// defaults (which the profile has already filled in). Lists from the command line are
    /// added after the profile's.
    static func plan(for options: RunOptions, profile: Profile) throws(LaunchError) -> LaunchPlan {
        let identity = try IdentityMapping.forCaller(
            uid: geteuid(), gid: getegid(),
            // A profile's outer_id applies when cell runs as root (the only case it means anything);
            // --outer-id from anyone else is an error.
            requested: options.outerID.map { ($0.uid, $0.gid) } ?? (geteuid() == 0 ? profile.outerID : nil),
            inside: options.inside ?? .root,
            inInitialUserNamespace: IdentityMapping.inInitialUserNamespace())
        var namespaces = profile.namespaces
        let network = options.network.flatMap(NetworkMode.init(rawValue:)) ?? profile.network
        if network == .host { namespaces.remove(.net) } else { namespaces.insert(.net) }
        if !(profile.publish + options.publish).isEmpty && network != .user {
            throw .invalid("--publish needs user-mode networking (--net user): with --net \(network.rawValue) there is nothing to forward to")
        }
        var limits = profile.limits
        if let v = options.timeout { limits.timeout = v }
        if let v = options.killAfter { limits.killAfter = v }
        if let v = options.memory { limits.memory = v }
        if let v = options.cpuTime { limits.cpuTime = v }
        if let v = options.fileSize { limits.fileSize = v }
        if let v = options.openFiles { limits.openFiles = v }
        if let v = options.processes { limits.processes = v }
        if let v = options.cgroup { limits.cgroup = v }
        let environment = SandboxEnvironment.build(
            caller: SandboxEnvironment.callerEnvironment(),
            keep: profile.keepEnvironment + options.keepEnvironment,
            set: profile.setEnvironment.map { ($0.name, $0.value) } + options.environment.map { ($0.name, $0.value) })
        // Working directory: --cwd, else the profile's, else the caller's, falling back to /
        // (with a note) when the sandbox cannot enter it. An explicit one has no fallback.
        let callerDirectory = currentDirectory()
        let explicitDirectory = options.workingDirectory ?? profile.workingDirectory
        // A profile that hides the working directory starts in / (no note: that is its point).
        let hidden = explicitDirectory == nil && profile.workingDirectoryMount == .none
        let cwd = explicitDirectory ?? (hidden ? "/" : callerDirectory ?? "/")
        guard let rootBase = FilesystemView.rootBase() else {
            throw .setup("no directory to build the sandbox's root over (looked for /tmp, /mnt, /run, /var/tmp)")
        }
        let publish = profile.publish + options.publish
        // The caller's working directory is bound only when it is the one the sandbox starts in.
        let boundDirectory = explicitDirectory == nil && profile.workingDirectoryMount != .none ? callerDirectory : nil
        var mounts = profile.filesystemDefaults
            ? FilesystemView.defaultOperations(workingDirectory: boundDirectory,
                                               workingDirectoryWritable: profile.workingDirectoryMount == .readWrite,
                                               ipcNamespace: namespaces.contains(.ipc), network: network)
            : []
        mounts += profile.mounts.map(\.operation)
        for request in options.mounts {
            switch request {
            case .bind(let source, let destination, let readOnly):
                guard let absolute = SandboxPath.normalize(source, relativeTo: callerDirectory) else {
                    throw .invalid("cannot resolve the bind source '\(source)' (relative to an unknown working directory)")
                }
                mounts.append(.bind(absolute, destination.flatMap { SandboxPath.normalize($0) } ?? absolute, readOnly: readOnly))
            case .tmpfs(let destination, let size, let mode):
                mounts.append(.tmpfs(destination, size: size ?? FilesystemView.tmpSize, mode: mode ?? 0o755))
            }
        }
        let kept = try Capabilities.set(profile.capabilities + options.capabilitiesAdded)
        // The policy's base: --seccomp / --seccomp-json, else the profile's.
        if options.seccompPolicy != nil && options.seccompJSONPath != nil {
            throw .invalid("--seccomp and --seccomp-json both choose the policy: give one")
        }
        var base = SeccompPolicy.builtIn(options.seccompPolicy ?? profile.seccompPolicy) ?? .default
        if let path = options.seccompJSONPath ?? (options.seccompPolicy == nil ? profile.seccompJSON : nil) {
            guard let text = readSmallFile(path, limit: 4 << 20) else {
                throw .invalid("cannot read the seccomp profile \(path): \(errorText(errno))")
            }
            base = try DockerSeccompProfile.policy(fromJSON: text, name: path, keptCapabilities: Capabilities.names(kept),
                                                   kernel: kernelVersion())
        }
        let seccomp = profile.seccomp(base: base).adjusted(
            allow: options.allowedSyscalls, deny: options.deniedSyscalls.map { ($0.name, $0.errno) })
        mounts = try FilesystemView.settle(mounts)
        return LaunchPlan(
            command: options.command,
            environment: environment,
            namespaces: namespaces,
            hostname: options.hostname ?? profile.hostname,
            workingDirectory: cwd,
            workingDirectoryFallback: explicitDirectory == nil ? "/" : nil,
            identity: identity,
            keptCapabilities: kept,
            statusJSONPath: options.statusJSONPath ?? profile.statusJSON,
            seccomp: seccomp,
            mounts: mounts,
            rootBase: rootBase,
            auditLogPath: options.auditLogPath ?? profile.auditLog,
            profileName: profile.name,
            limits: limits,
            network: network,
            publish: publish,
            allowHostLoopback: options.allowHostLoopback || profile.allowHostLoopback)
    }
}

/// The running kernel's (major, minor), for Docker profiles' minKernel.
func kernelVersion() -> (Int, Int) {
    var name = utsname()
    uname(&name)
    let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
    return parts.count == 2 ? (parts[0], parts[1]) : (0, 0)
}
