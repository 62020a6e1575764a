import CCellSpawn
import CellLauncher
import CellProfile
import Glibc

/// The `cell` program: parse, dispatch, report. Returns the process exit status.
public enum Cell {
    public static let version = "0.1.0"

    /// Begins a sandbox for `cell run`'s likely settings straight from the process' arguments,
    /// before anything is parsed (see begin.c): the first thing the program does.
    public static func beginEarly() {
        cell_begin_early(CommandLine.argc, CommandLine.unsafeArgv)
    }

    public static func main(_ arguments: [String]) -> Int32 {
        // What beginEarly began and no launch took over (a usage error, a dry run, another
        // command) is ended before cell exits: pid 1 is reaped, nothing is left behind.
        defer { SandboxStart.takeEarly()?.abandon() }
        let command: CellCommand
        do {
            command = try ArgumentParser.parse(arguments)
        } catch {
            return fail(error.message)
        }
        switch command {
        case .help(let topic):
            let text = topic == "run" ? Help.run : topic == "profile" ? Help.profile : topic == "audit" ? Help.audit : Help.overview
            writeAll(1, text + "\n")
            return 0
        case .profileList:
            return ProfileCommands.list()
        case .profileShow(let name):
            return ProfileCommands.show(name)
        case .profileCheck(let files):
            return ProfileCommands.check(files)
        case .auditSummary(let path):
            return AuditCommands.summary(path)
        case .version:
            writeAll(1, "cell \(version)\n")
            return 0
        case .run(let options):
            return run(options)
        }
    }

    static func run(_ options: RunOptions) -> Int32 {
        // The sandbox's creation began before the arguments were parsed (beginEarly), or begins
        // now, for the basics nearly every launch has, so that the kernel creates the namespaces
        // while the profile is read and the plan is built. If the launch turns out to need other
        // basics, what was begun is abandoned: pid 1 has run nothing by then (it waits for the
        // rest of its plan), and the launch starts over.
        // cell-init is looked for only when a sandbox is begun here: an early begin found it.
        func locateHelper() throws(LaunchError) -> String {
            guard let path = InitHelper.locate() else {
                throw .setup("cannot find the helper cell-init (looked in \(InitHelper.candidates().joined(separator: ", "))); build it with Scripts/build")
            }
            return path
        }
        var begun = options.dryRun ? nil : SandboxStart.takeEarly()
        if begun == nil, !options.dryRun, let likely = PlanBuilder.likelyBasics(for: options), let helper = try? locateHelper() {
            begun = try? SandboxStart(likely, initHelper: helper)
        }
        let profile: Profile
        do {
            profile = try ProfileCommands.loader().resolve(options.profile ?? "default")
        } catch {
            begun?.abandon()
            for diagnostic in error.diagnostics { writeAll(2, "cell: \(diagnostic)\n") }
            return SandboxEnd.setupFailureStatus
        }
        let basics: LaunchBasics
        do {
            basics = try PlanBuilder.basics(for: options, profile: profile)
        } catch {
            begun?.abandon()
            return fail(error.message)
        }
        if options.dryRun {
            var text: String
            do {
                let plan = try PlanBuilder.plan(for: options, profile: profile, basics: basics)
                text = plan.describe() + "\n"
                text += "\nseccomp filters (libseccomp pseudo-code):\n"
                text += try SeccompCompiler.pseudoCode(plan.seccomp)
            } catch {
                return fail(error.message)
            }
            writeAll(1, text)
            return 0
        }

        // The rest of the plan is built while the kernel creates the sandbox's namespaces.
        let (built, outcome) = Launcher.run(basics, building: { () throws(LaunchError) -> LaunchPlan in
            try PlanBuilder.plan(for: options, profile: profile, basics: basics)
        }, initHelper: locateHelper, version: version, begun: begun, processEnds: true)
        begun = nil
        Launcher.keepUntilExit(profile, options)
        guard let plan = built else {
            if case .setupFailed(let message) = outcome.end { writeAll(2, "cell: \(message)\n") }
            return outcome.end.exitStatus
        }

        for note in outcome.notes { writeAll(2, "cell: note: \(note)\n") }
        switch outcome.end {
        case .setupFailed(let message):
            writeAll(2, "cell: \(message)\n")
        case .commandNotExecutable(let code):
            let name = plan.command[0]
            writeAll(2, code == ENOENT
                ? "cell: \(name): command not found in the sandbox (PATH=\(pathInside(plan)))\n"
                : "cell: \(name): cannot execute: \(errorText(code))\n")
        case .killedByPolicy(let syscall):
            writeAll(2, "cell: the sandbox was killed: \(syscall) matches a kill rule of the seccomp policy (profile '\(plan.profileName)')\n")
        default:
            break
        }
        if let summary = outcome.auditSummary {
            writeAll(2, "cell: \(summary) (record them all with --audit-log PATH)\n")
        }
        if let path = plan.statusJSONPath,
           let code = writeWholeFile(path, StatusReport.json(plan: plan, outcome: outcome)) {
            writeAll(2, "cell: cannot write --status-json \(path): \(errorText(code))\n")
        }
        return outcome.end.exitStatus
    }

    static func pathInside(_ plan: LaunchPlan) -> String {
        plan.environment.first { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? ""
    }

    static func fail(_ message: String) -> Int32 {
        writeAll(2, "cell: \(message)\n")
        return SandboxEnd.setupFailureStatus
    }
}

/// Where the sandbox's pid 1 helper lives: next to the cell binary (a build directory), or in
/// ../libexec/cell/ (an installed tree). The list is begin.c's, which looks there too.
enum InitHelper {
    static func candidates() -> [String] {
        var paths: [String] = []
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        while cell_init_helper_candidate(Int32(paths.count), &buffer, buffer.count) == 0 {
            paths.append(buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        }
        return paths
    }

    static func locate() -> String? {
        candidates().first { access($0, X_OK) == 0 }
    }
}
