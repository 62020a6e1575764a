import CellLauncher
import CellPolicy
import CellProfile
import Glibc

/// `cell learn`: one observed run of the command, under the profile it names, written as a
/// profile that extends that one and narrows it (LearnedProfile; `cell help learn`).
enum LearnCommand {
    static func learn(_ options: LearnOptions) -> Int32 {
        var run = options.run
        // The files are opened before the sandbox exists (ReportFile): whatever a sandbox left
        // at their paths (a symlink, a FIFO) cannot redirect what cell reads or writes.
        var merge: ReportFile.Opened?
        var output: ReportFile.Opened?
        var wrote = false
        defer {
            merge.map(ReportFile.release)
            if let output {
                // Nothing learned: the empty file -o made is not left behind as a "profile".
                var st = stat()
                if !wrote && fstat(output.fd, &st) == 0 && st.st_size == 0 { unlinkat(output.directory, output.name, 0) }
                ReportFile.release(output)
            }
        }
        do {
            if let path = options.merge { merge = try ReportFile.open(path, what: "--merge", append: false, readable: true, mustExist: true) }
            if let path = options.output, path != "-" { output = try ReportFile.open(path, what: "-o", append: false) }
        } catch {
            return Cell.fail(error.message)
        }
        // --merge: the earlier runs, and the profile they were learned under.
        var earlier: LearnedProfile?
        if let merge {
            do {
                earlier = try readEarlier(merge, named: run.profile)
            } catch {
                return error.status
            }
            run.profile = earlier?.base
        }
        let baseName = run.profile ?? "default"
        let profile: Profile
        do {
            profile = try ProfileCommands.loader().resolve(baseName)
        } catch {
            for diagnostic in error.diagnostics { reportLine("\(diagnostic)") }
            return SandboxEnd.setupFailureStatus
        }
        if profile.seccompOnly != nil {
            return Cell.fail("the profile '\(baseName)' is itself narrowed to a list of calls (seccomp.only): learn under the profile it extends, and fold the runs together with --merge")
        }
        let plan: LaunchPlan
        do {
            plan = try Planner.plan(run.request, profile: profile)
        } catch {
            return Cell.fail(error.message)
        }
        let (status, outcome) = Cell.execute(plan, learning: true, alsoReports: [("-o", output?.path), ("--merge", merge?.path)])
        guard let outcome else { return status }
        switch outcome.end {
        case .setupFailed, .commandNotExecutable: return status // reported; the command never ran
        default: break
        }
        guard let observed = outcome.observed else {
            reportLine("learn: the sandbox ended before its first system call could be seen; nothing was written")
            return SandboxEnd.setupFailureStatus
        }
        let learned = assemble(observed, earlier: earlier, base: baseSpec(baseName), plan: plan, profile: profile)
        let text = learned.render(always: LearnedArguments.core.map { ($0, []) } + SeccompCompiler.initCalls, version: Cell.version)
        // -o, else the --merge file itself, else (or with -o -) standard output.
        let destination = options.output == "-" ? nil : output ?? merge
        if let written = destination {
            if let code = ReportFile.replaceContents(written, Array(text.utf8)) {
                return Cell.fail(code == ESTALE
                    ? "\(written.path) was replaced while the sandbox ran (it is in a directory the sandbox can write?): the profile was not written there"
                    : "cannot write \(written.path): \(errorText(code))")
            }
            wrote = true
        } else {
            writeAll(1, text)
        }
        let seen = learned.observed
        reportLine("learn: \(seen.calls.count) calls seen, \(seen.denied.count) refused, \(seen.paths.count) paths, "
            + "\(seen.connections.count) addresses" + (destination.map { "; the profile is in \(TerminalText.escaped($0.path))" } ?? ""))
        if outcome.end.exitStatus != 0 {
            reportLine("learn: the command ended with status \(outcome.end.exitStatus): the profile holds what it did until then")
        }
        return status
    }

    /// A profile cell learn wrote, read from its opened file; refusing one learned under
    /// another profile than `--profile` names.
    static func readEarlier(_ file: ReportFile.Opened, named: String?) throws(Reported) -> LearnedProfile {
        guard let bytes = ReportFile.contents(file, limit: 4 << 20) else {
            throw Reported(status: Cell.fail("--merge \(file.path): cannot read it: \(errorText(errno))"))
        }
        let earlier: LearnedProfile
        do {
            earlier = try LearnedProfile.read(String(decoding: bytes, as: UTF8.self), file: file.path)
        } catch {
            for diagnostic in error.diagnostics { reportLine("\(diagnostic)") }
            throw Reported(status: SandboxEnd.setupFailureStatus)
        }
        if let named, baseSpec(named) != earlier.base {
            throw Reported(status: Cell.fail("--merge \(file.path) was learned under '\(earlier.base)', not '\(named)': learn it under the same profile (or leave out --profile)"))
        }
        if named == nil { reportLine("note: learning under '\(earlier.base)', the profile \(file.path) extends") }
        return earlier
    }

    /// A problem already reported on stderr, and the exit status it ends with.
    struct Reported: Error {
        var status: Int32
    }

    /// This run's record, folded into the earlier runs', with its write rules and notes.
    static func assemble(_ observed: ObservedRun, earlier: LearnedProfile?, base: String, plan: LaunchPlan, profile: Profile) -> LearnedProfile {
        let view = viewMounts(plan)
        var learned = LearnedProfile(base: base, runs: 1, observed: observed, write: nil)
        if Planner.mirrorsViewInLandlock(isolation: plan.isolation, landlock: profile.landlock, namespaces: plan.namespaces) {
            learned.write = LearnedProfile.writeRules(observed, view: view)
        }
        if let earlier {
            var all = earlier.observed
            all.merge(observed)
            all.command = observed.command // the header names the last run
            learned.observed = all
            learned.runs = earlier.runs + 1
            if let write = learned.write { learned.write = LearnedProfile.outermost(write + (earlier.write ?? [])) }
        }
        learned.writeNotes = LearnedProfile.unnarrowed(learned.write ?? [], view: view)
            + LearnedProfile.unrepresentable(learned.observed).prefix(20).map { "no rule can name \($0) (\"${\" or \"..\"): writes there are refused" }
        return learned
    }

    /// How the learned profile names its base: a profile's name as it is, a file by its
    /// absolute path (the learned profile may be read from elsewhere).
    static func baseSpec(_ nameOrPath: String) -> String {
        guard ProfileLoader.isPath(nameOrPath), !nameOrPath.hasPrefix("/"), let cwd = currentDirectory() else { return nameOrPath }
        return SandboxPath.normalize(nameOrPath, relativeTo: cwd) ?? nameOrPath
    }

    /// The view's mounts, for `[landlock] write` (LearnedProfile.ViewMount).
    static func viewMounts(_ plan: LaunchPlan) -> [LearnedProfile.ViewMount] {
        plan.mounts.compactMap { op in
            switch op.kind {
            case .dir, .symlink, .file: return nil // made in a mount, not mounts themselves
            case .tmpfs where !op.readOnly: return .init(destination: op.destination, kind: .fresh)
            case .bind where !op.readOnly && !op.device, .overlay: return .init(destination: op.destination, kind: .tree)
            default: return .init(destination: op.destination, kind: .noRule)
            }
        }
    }
}
