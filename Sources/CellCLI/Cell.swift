import CellLauncher
import CellPolicy
import CellProfile
import Glibc

/// The `cell` program: parse, dispatch, report. Returns the process exit status.
public enum Cell {
    public static let version = InitHelper.cellVersion

    public static func main(_ arguments: [String]) -> Int32 {
        // A descriptor 0, 1 or 2 that the caller left closed would be taken by the next one cell
        // opens — a pipe to the sandbox's pid 1, say — and handed to the command as its stdio.
        for fd: Int32 in 0...2 where fcntl(fd, F_GETFD) < 0 {
            _ = open("/dev/null", O_RDWR)
        }
        // A closed pipe on cell's output is an error to handle (EPIPE: the command's output is
        // dropped, cell still reports its status and restores the terminal), never a death by
        // SIGPIPE halfway. Its children reset every disposition (cell-init, slirp4netns).
        InheritedDescriptors.closeOnExec()
        signal(SIGPIPE, SIG_IGN)
        // Every other signal whose default kills a process, and that cell neither forwards nor
        // uses, is ignored: a sandbox without a pid namespace (--isolation landlock) needs cell
        // alive at the end to end its descendants, and `kill -ALRM` must not cut that short.
        for sig in [SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGSTKFLT] + Array(Int32(34)...Int32(64)) { // and SIGRTMIN...SIGRTMAX
            signal(sig, SIG_IGN)
        }
        let command: CellCommand
        do {
            command = try ArgumentParser.parse(arguments)
        } catch {
            return fail(error.message)
        }
        switch command {
        case .help(let topic):
            let text = topic == "run" ? Help.run : topic == "profile" ? Help.profile : topic == "audit" ? Help.audit
                : topic == "doctor" ? Help.doctor : topic == "changes" ? Help.changes : topic == "cache" ? Help.cache : topic == "learn" ? Help.learn : Help.overview
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
        case .changes(let dir, let target):
            do {
                guard let target else {
                    let changes = try OverlayChanges.list(dir)
                    writeAll(1, changes.map { $0.line + "\n" }.joined())
                    return 0
                }
                let applied = try OverlayChanges.apply(dir, to: target)
                for line in applied.skipped { reportLine("note: not applied: " + TerminalText.escaped(line)) }
                writeAll(1, "\(applied.written) written, \(applied.deleted) deleted in \(TerminalText.escaped(target))\n")
                return 0
            } catch {
                return fail(error.message)
            }
        case .cacheList:
            return CacheCommands.list()
        case .cacheClear(let selector):
            return CacheCommands.clear(selector)
        case .doctor(let json):
            let report = HostReport(HostProbe.gather())
            writeAll(1, json ? report.json() : report.text())
            return report.namespacesWork ? 0 : 1
        case .version:
            writeAll(1, "cell \(version)\n")
            return 0
        case .run(let options):
            return run(options)
        case .learn(let options):
            return LearnCommand.learn(options)
        }
    }

    static func run(_ options: RunOptions) -> Int32 {
        let profile: Profile
        do {
            profile = try ProfileCommands.loader().resolve(options.profile ?? "default")
        } catch {
            for diagnostic in error.diagnostics { reportLine("\(diagnostic)") }
            return SandboxEnd.setupFailureStatus
        }
        let plan: LaunchPlan
        do {
            plan = try Planner.plan(options.request, profile: profile)
        } catch {
            return fail(error.message)
        }
        if options.planOut != nil && !options.dryRun { return fail("--plan-out goes with --dry-run") }
        if options.dryRun { return dryRun(plan, planOut: options.planOut) }
        return execute(plan).status
    }

    /// Runs a planned sandbox and reports its end as `cell run` does; `learning`: as `cell learn`
    /// (the outcome then holds what the command was seen doing). nil outcome: it never ran.
    /// `alsoReports`: more files of cell's own (option, path) to note when the sandbox can write them.
    static func execute(_ plan: LaunchPlan, learning: Bool = false, alsoReports: [(String, String?)] = []) -> (status: Int32, outcome: SandboxOutcome?) {
        guard let helper = InitHelper.locate() else {
            return failed("cannot find the helper cell-init (looked in \(InitHelper.candidates().joined(separator: ", "))); build it with Scripts/build")
        }
        // The status report's file is opened now, before the sandbox exists (ReportFile): what the
        // sandbox leaves at that path cannot redirect the report or hold cell.
        var statusFile: ReportFile.Opened?
        if let path = plan.statusJSONPath {
            do {
                statusFile = try ReportFile.open(path, what: "--status-json", append: false)
            } catch {
                return failed(error.message)
            }
        }
        defer { statusFile.map(ReportFile.release) }
        for note in plan.notes + writableReportNotes(plan, also: alsoReports) { reportLine("note: \(note)") }
        let outcome = Launcher.run(plan, initHelper: helper, version: version, learning: learning)
        for note in outcome.notes { reportLine("note: \(note)") }
        switch outcome.end {
        case .setupFailed(let message):
            reportLine(message)
        case .commandNotExecutable(let code):
            let name = plan.command[0]
            reportLine(code == ENOENT
                ? "\(name): command not found in the sandbox (PATH=\(pathInside(plan)))"
                : "\(name): cannot execute: \(errorText(code))")
        case .killedByPolicy(let syscall):
            reportLine("the sandbox was killed: \(syscall) matches a kill rule of the seccomp policy (profile '\(plan.profileName)')")
        default:
            break
        }
        if let summary = outcome.auditSummary {
            reportLine("\(summary) (record them all with --audit-log PATH)")
        }
        if let statusFile, let code = ReportFile.replaceContents(statusFile, Array(StatusReport.json(plan: plan, outcome: outcome).utf8)) {
            reportLine(code == ESTALE
                ? "--status-json \(statusFile.path) was replaced while the sandbox ran (it is in a directory the sandbox can write?): the report is not there"
                : "cannot write --status-json \(statusFile.path): \(errorText(code))")
        }
        return (outcome.end.exitStatus, outcome)
    }

    static func failed(_ message: String) -> (status: Int32, outcome: SandboxOutcome?) {
        (fail(message), nil)
    }

    /// `--dry-run`: what the supervisor does, then the records pid 1 would execute — decoded
    /// back from the very bytes a launch sends it — then the filters as libseccomp compiled them.
    static func dryRun(_ plan: LaunchPlan, planOut: String?) -> Int32 {
        let filters: FilterSet
        let records: [PlanRecord]
        do {
            filters = try SeccompCompiler.compileFilters(plan.seccomp, pseudoCode: true)
            let bytes = PlanEncoding.header + PlanEncoding.encode(plan.setupRecords() + filters.records)
            records = try PlanEncoding.decode(bytes)
            if let planOut {
                let file = try ReportFile.open(planOut, what: "--plan-out", append: false)
                defer { ReportFile.release(file) }
                if let code = ReportFile.replaceContents(file, bytes) {
                    return fail("cannot write --plan-out \(planOut): \(errorText(code))")
                }
            }
        } catch let error as LaunchError {
            return fail(error.message)
        } catch {
            return fail("the plan does not read back: \(error)")
        }
        var text = plan.describe().split(separator: "\n").map { TerminalText.escaped(String($0)) }.joined(separator: "\n")
            + "\n\npid 1 (cell-init) executes, in this order:\n"
        for (index, record) in records.enumerated() {
            text += String(repeating: " ", count: max(0, 3 - String(index + 1).count)) + "\(index + 1). \(TerminalText.escaped(record.summary))\n"
        }
        text += "\nseccomp filters (libseccomp pseudo-code):\n" + SeccompCompiler.pseudoCode(filters)
        writeAll(1, text)
        return 0
    }

    /// A report file the sandbox can reach through a writable bind: it may replace it while it
    /// runs (the report then goes to the file cell opened, which is no longer at the path).
    static func writableReportNotes(_ plan: LaunchPlan, also extra: [(String, String?)] = []) -> [String] {
        // Writable directories only: a device bound writable (/dev/full) holds no files.
        let writable = plan.mounts.filter { $0.kind == .bind && !$0.readOnly && $0.expectedType == UInt32(S_IFDIR) }.compactMap(\.source)
        return ([("--audit-log", plan.auditLogPath), ("--status-json", plan.statusJSONPath)] + extra).compactMap { option, path in
            guard let path, let absolute = SandboxPath.normalize(path, relativeTo: currentDirectory()),
                  let source = writable.first(where: { SandboxPath.isWithin(absolute, $0) }) else { return nil }
            return "\(option) \(path) is inside \(source), which the sandbox can write: it can replace the file while it runs"
        }
    }

    static func pathInside(_ plan: LaunchPlan) -> String {
        plan.environment.first { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? ""
    }

    static func fail(_ message: String) -> Int32 {
        reportLine(message)
        return SandboxEnd.setupFailureStatus
    }
}
