import CellLauncher
import Glibc

/// Turns `cell run` options (and, later, a profile) into a `LaunchPlan`.
enum PlanBuilder {
    static func plan(for options: RunOptions) throws(LaunchError) -> LaunchPlan {
        let identity = try IdentityMapping.forCaller(
            uid: geteuid(), gid: getegid(),
            requested: options.outerID.map { ($0.uid, $0.gid) })
        let environment = SandboxEnvironment.build(
            caller: SandboxEnvironment.callerEnvironment(),
            keep: options.keepEnvironment,
            set: options.environment.map { ($0.name, $0.value) })
        // Default working directory: the caller's, falling back to / (with a note) when the
        // sandbox cannot enter it. An explicit --cwd has no fallback: it must work or fail.
        let cwd = options.workingDirectory ?? currentDirectory() ?? "/"
        return LaunchPlan(
            command: options.command,
            environment: environment,
            hostname: options.hostname ?? LaunchPlan.defaultHostname,
            workingDirectory: cwd,
            workingDirectoryFallback: options.workingDirectory == nil ? "/" : nil,
            identity: identity,
            statusJSONPath: options.statusJSONPath)
    }
}
