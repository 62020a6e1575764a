import CCellSpawn
import CellLauncher
import Glibc

/// Turns `cell run` options (and, later, a profile) into a `LaunchPlan`.
enum PlanBuilder {
    static func plan(for options: RunOptions) throws(LaunchError) -> LaunchPlan {
        let identity = try IdentityMapping.forCaller(
            uid: geteuid(), gid: getegid(),
            requested: options.outerID.map { ($0.uid, $0.gid) },
            inInitialUserNamespace: IdentityMapping.inInitialUserNamespace())
        let environment = SandboxEnvironment.build(
            caller: SandboxEnvironment.callerEnvironment(),
            keep: options.keepEnvironment,
            set: options.environment.map { ($0.name, $0.value) })
        // Default working directory: the caller's, falling back to / (with a note) when the
        // sandbox cannot enter it. An explicit --cwd has no fallback: it must work or fail.
        let callerDirectory = currentDirectory()
        let cwd = options.workingDirectory ?? callerDirectory ?? "/"
        guard let rootBase = FilesystemView.rootBase() else {
            throw .setup("no directory to build the sandbox's root over (looked for /tmp, /mnt, /run, /var/tmp)")
        }
        var mounts = FilesystemView.defaultOperations(
            workingDirectory: options.workingDirectory == nil ? callerDirectory : nil)
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
        let kept = try Capabilities.set(options.capabilitiesAdded)
        var seccomp = SeccompPolicy.builtIn[options.seccompPolicy ?? "default"] ?? .default
        if let path = options.seccompJSONPath {
            if options.seccompPolicy != nil {
                throw .invalid("--seccomp and --seccomp-json both choose the policy: give one")
            }
            guard let text = readSmallFile(path, limit: 4 << 20) else {
                throw .invalid("cannot read --seccomp-json \(path): \(errorText(errno))")
            }
            seccomp = try DockerSeccompProfile.policy(fromJSON: text, name: path, keptCapabilities: Capabilities.names(kept),
                                                      kernel: kernelVersion())
        }
        seccomp = seccomp.adjusted(allow: options.allowedSyscalls,
                                   deny: options.deniedSyscalls.map { ($0.name, $0.errno) })
        if mounts.count > Int(CELL_MAX_MOUNT_OPS) {
            throw .invalid("too many mounts (\(mounts.count); at most \(CELL_MAX_MOUNT_OPS))")
        }
        return LaunchPlan(
            command: options.command,
            environment: environment,
            hostname: options.hostname ?? LaunchPlan.defaultHostname,
            workingDirectory: cwd,
            workingDirectoryFallback: options.workingDirectory == nil ? "/" : nil,
            identity: identity,
            keptCapabilities: kept,
            statusJSONPath: options.statusJSONPath,
            seccomp: seccomp,
            mounts: mounts,
            rootBase: rootBase)
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
