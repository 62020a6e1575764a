import CellPolicy

/// The profile `cell learn` writes: TOML that loads as it is, `extends` the profile the runs were
/// learned under, and narrows it to what they did —
///   - `[seccomp] only` and `[seccomp.only_where]`: the calls seen (and the always-allowed core),
///     with the argument values seen where a value says what a call does (SeccompNarrowing
///     intersects them with the base: never more than it allows);
///   - `[landlock] write`: the directories written beneath (a fresh tmpfs whole);
///   - as comments, the record: calls the base refused (and still refuses), addresses the
///     command connected to, and paths it looked for that the sandbox does not show but the
///     host has, as `mounts_add` lines to review — read from the command's memory, so a record
///     and never a grant.
/// `--merge` reads such a file back (`read`) and folds a new run into it.
public struct LearnedProfile: Equatable, Sendable {
    /// The profile the runs were learned under (`extends`).
    public var base: String
    public var runs: Int
    public var observed: ObservedRun
    /// `[landlock] write`; nil: not written (the base has no Landlock domain to narrow).
    public var write: [String]?
    /// Said beside the write rules (`unnarrowed`).
    public var writeNotes: [String] = []

    public init(base: String, runs: Int, observed: ObservedRun, write: [String]?) {
        self.base = base
        self.runs = runs
        self.observed = observed
        self.write = write
    }

    /// A mount of the view, as far as writing goes: a fresh tmpfs (written anywhere, it holds
    /// nothing of the host's), a host tree, or one whose writes get no rule — read-only (a
    /// write there failed), a device, /proc, devpts, mqueue (Landlock's rules for those stay as
    /// the view has them).
    public struct ViewMount: Equatable, Sendable {
        public enum Kind: Equatable, Sendable { case fresh, tree, noRule }
        public var destination: String
        public var kind: Kind
        public init(destination: String, kind: Kind) {
            self.destination = destination
            self.kind = kind
        }
    }

    /// The Landlock write rules for what `observed` wrote: for a path in a fresh tmpfs, the
    /// tmpfs; in a host tree, the file itself when only its contents changed, else its
    /// directory — lifted above directories the run made itself, which a re-run will not find
    /// before it makes them again. Beneath-rules covered by another are dropped.
    /// `view`: the mounts in the plan's order (a later one at the same place covers the earlier).
    public static func writeRules(_ observed: ObservedRun, view: [ViewMount]) -> [String] {
        var rules: [String] = []
        for (path, record) in observed.paths where record.uses.contains(where: \.writes) && representable(path) {
            // The innermost mount holding the path, the last at its place.
            guard let mount = view.enumerated().filter({ SandboxPath.isWithin(path, $0.element.destination) })
                .max(by: { ($0.element.destination.count, $0.offset) < ($1.element.destination.count, $1.offset) })?.element else { continue }
            switch mount.kind {
            case .noRule: continue
            case .fresh:
                rules.append(mount.destination)
                continue
            case .tree:
                break
            }
            if record.uses.allSatisfy({ $0 == .write || !$0.writes }) {
                rules.append(path)
                continue
            }
            var directory = parent(path)
            while directory.count > mount.destination.count,
                  observed.paths[directory]?.uses.contains(.create) == true {
                directory = parent(directory)
            }
            rules.append(directory.count < mount.destination.count ? mount.destination : directory)
        }
        return outermost(rules)
    }

    /// Whether a path can stand in a profile as itself: the loader expands `${NAME}` and
    /// refuses `..`, and a ".." after a symlink is not the lexical parent anyway.
    public static func representable(_ path: String) -> Bool {
        !path.contains("${") && !path.split(separator: "/").contains("..")
    }

    /// Written paths no rule could name (`representable`): a re-run is refused there.
    public static func unrepresentable(_ observed: ObservedRun) -> [String] {
        observed.paths.filter { $0.value.uses.contains(where: \.writes) && !representable($0.key) }.keys.sorted()
    }

    /// Writable host trees a rule does not narrow: a Landlock rule reaches beneath every mount
    /// under its path, so a fresh /tmp written whole covers a project bound at /tmp/project.
    public static func unnarrowed(_ write: [String], view: [ViewMount]) -> [String] {
        view.filter { $0.kind == .tree }.compactMap { tree in
            guard let rule = write.first(where: { $0 != tree.destination && SandboxPath.isWithin(tree.destination, $0) }) else { return nil }
            return "\(rule) holds \(tree.destination), mounted beneath it: a Landlock rule reaches beneath mounts, so writes there are not narrowed"
        }
    }

    /// Sorted, without paths beneath another of the list.
    public static func outermost(_ paths: [String]) -> [String] {
        var kept: [String] = []
        for path in Set(paths).sorted() where !kept.contains(where: { SandboxPath.isWithin(path, $0) }) {
            kept.append(path)
        }
        return kept
    }

    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    /// Paths worth suggesting: looked for, absent from the view, on the host; not written by the
    /// run (it made them itself), and not in the kernel's own trees (the sandbox has its own).
    public var suggestions: [String] {
        observed.paths.filter { path, record in
            record.missingButOnHost && !record.uses.contains(where: \.writes) && Self.representable(path)
                && !ObservedRun.inKernelTree(path)
        }.keys.sorted()
    }

    /// The profile's text. `always`: the calls every learned profile allows (the core, and
    /// what the sandbox's pid 1 makes, with pid 1's pinned values), whether seen or not.
    public func render(always: [(name: String, args: [UInt64])], version: String) -> String {
        var record = observed
        var alwaysAllowed = ObservedRun()
        // Not a call the base refused and never allowed: listing it would change nothing (the
        // base still refuses it), but would read as if it were allowed.
        let refusedOnly = Set(observed.denied.keys.map { String($0.prefix { $0 != "(" }) }).subtracting(observed.calls.keys)
        for call in always where !refusedOnly.contains(call.name) { alwaysAllowed.allowed(call.name, args: call.args) }
        record.merge(alwaysAllowed)
        let calls = record.calls
        let quote = Self.quote
        var out: [String] = []
        out.append("# Learned by `cell learn` (cell \(version)) from \(runs) run\(runs == 1 ? "" : "s"); the last:")
        out.append("#   " + TerminalText.escaped(observed.command.map(TerminalText.shellWord).joined(separator: " ")))
        out.append("# It extends \(quote(base)) and narrows it to what the runs did: the system calls below,")
        out.append("# never more than \(quote(base)) allows" + (write == nil ? " (writes are not narrowed: no Landlock domain to narrow)." : ", and writes only beneath [landlock] write."))
        out.append("# Review it, then: cell run --profile THIS-FILE -- COMMAND (anything else is refused and")
        out.append("# audited). To fold in another run: cell learn --merge THIS-FILE -- COMMAND")
        out.append("#   runs: \(runs)")
        for (key, count) in observed.denied.sorted(by: { $0.key < $1.key }) {
            out.append("#   refused: \(TerminalText.escaped(key)) (\(count))")
        }
        for (address, count) in observed.connections.sorted(by: { $0.key < $1.key }) {
            out.append("#   connected: \(TerminalText.escaped(address)) (\(count))")
        }
        for (kind, count) in observed.dropped.sorted(by: { $0.key < $1.key }) {
            out.append("#   not recorded, past the bound: \(count) \(kind)")
        }
        out.append("extends = \(quote(base))")
        out.append("description = \(quote("learned: " + observed.command.prefix(8).joined(separator: " ")))")
        out.append("")
        out.append("[seccomp]")
        out.append("# Only these calls, where \(quote(base)) allows them; any other is refused (EPERM) and audited.")
        out.append("only = [")
        var line = "   "
        for name in calls.keys.sorted() {
            let word = " " + quote(name) + ","
            if line.count + word.count > 100 {
                out.append(line)
                line = "   "
            }
            line += word
        }
        if line.count > 3 { out.append(line) }
        out.append("]")
        let pinned = calls.filter { !$0.value.anyArguments && LearnedArguments.pins[$0.key] != nil }
        if !pinned.isEmpty {
            out.append("")
            out.append("[seccomp.only_where]")
            out.append("# The argument values the runs used, where a value says what the call does.")
            for name in pinned.keys.sorted() {
                let pin = LearnedArguments.pins[name]!
                out.append("\(name) = [")
                for value in pinned[name]!.values.sorted() {
                    out.append("    \(quote(pin.condition(value).description)), # \(pin.describe(value))")
                }
                out.append("]")
            }
        }
        if let write {
            out.append("")
            out.append("[landlock]")
            out.append("# Writes only beneath these, within what the view makes writable.")
            for note in writeNotes { out.append("# Note: " + TerminalText.escaped(note)) }
            out.append("write = [" + write.map(quote).joined(separator: ", ") + "]")
        }
        let suggestions = suggestions
        if !suggestions.isEmpty {
            out.append("")
            out.append("# Paths the runs looked for that the sandbox does not show, but this host has. A record,")
            out.append("# never a grant: to give the command one, review it and uncomment it with the lines around it.")
            out.append("# (These are paths this host has: keep this file out of the trees you give a sandbox.)")
            out.append("# [filesystem]")
            out.append("# mounts_add = [")
            for path in suggestions {
                out.append("#     { type = \"ro-bind\", source = \(quote(path)), dest = \(quote(path)) },")
            }
            out.append("# ]")
        }
        return out.joined(separator: "\n") + "\n"
    }

    /// A TOML string a person can review as it reads: JSON's escapes, and \uXXXX for what a
    /// terminal or editor would not show as it is (bidirectional controls, line separators).
    static func quote(_ text: String) -> String {
        var out = ""
        for scalar in ProfileWriter.quote(text).unicodeScalars {
            if scalar.value >= 0x7f && TerminalText.isControl(scalar) {
                let hex = String(scalar.value, radix: 16, uppercase: true)
                out += scalar.value <= 0xffff ? "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                                              : "\\U" + String(repeating: "0", count: 8 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }


    /// Reads a profile `render` wrote, for `--merge`: what it allows and records. Refuses what
    /// cell learn would not have written (an only_where alternative that pins no value), rather
    /// than merge into a widened or narrowed list by guess.
    public static func read(_ text: String, file: String) throws(ProfileDiagnosticList) -> LearnedProfile {
        func refuse(_ message: String) -> ProfileDiagnosticList {
            ProfileDiagnosticList( [ProfileDiagnostic(file: file, line: 1, column: 1, message: message)])
        }
        let document: [String: TOMLNode]
        do {
            document = try TOMLDocument.parse(text)
        } catch {
            throw ProfileDiagnosticList( [ProfileDiagnostic(file: file, line: error.line, column: error.column, message: error.message)])
        }
        guard case .string(let base)? = document["extends"], case .table(let seccomp)? = document["seccomp"],
              case .array(let only)? = seccomp["only"], text.hasPrefix("# Learned by `cell learn`") else {
            throw refuse("not a profile cell learn wrote (it starts with \"# Learned by `cell learn`\", extends a profile and has [seccomp] only)")
        }
        var observed = ObservedRun()
        var runs = 1
        for item in only {
            guard case .string(let name) = item else { throw refuse("[seccomp] only holds something other than names: merge by hand") }
            observed.calls[name] = ObservedRun.Call(anyArguments: true)
        }
        if case .table(let whereTable)? = seccomp["only_where"] {
            for (name, node) in whereTable {
                func notWritten(_ what: String) -> ProfileDiagnosticList {
                    refuse("[seccomp.only_where] \(name): \(what) is not what cell learn writes: merge by hand")
                }
                guard let pin = LearnedArguments.pins[name], observed.calls[name] != nil,
                      case .array(let items) = node, !items.isEmpty else { throw notWritten("this entry") }
                var values = Set<UInt64>()
                for item in items {
                    guard case .string(let alternative) = item, let conditions = ArgumentAlternatives.parse(alternative),
                          conditions.count == 1, pin.condition(conditions[0].value) == conditions[0] else {
                        throw notWritten("'\(item)'")
                    }
                    values.insert(conditions[0].value)
                }
                observed.calls[name] = ObservedRun.Call(values: values)
            }
        }
        var write: [String]?
        if case .table(let landlock)? = document["landlock"], case .array(let items)? = landlock["write"] {
            write = items.compactMap { if case .string(let s) = $0 { return s } else { return nil } }
        }
        // The record, from the comments render writes.
        func counted(_ rest: Substring) -> (String, Int)? {
            guard rest.hasSuffix(")"), let open = rest.lastIndex(of: "("), open > rest.startIndex,
                  let count = Int(rest[rest.index(after: open)...].dropLast()) else { return nil }
            return (String(rest[..<rest.index(before: open)]), count)
        }
        for line in text.split(separator: "\n") {
            if line.hasPrefix("#   runs: "), let n = Int(line.dropFirst(10)), (1..<1_000_000).contains(n) { runs = n }
            if line.hasPrefix("#   refused: "), let (key, n) = counted(line.dropFirst(13)) { observed.denied[key] = n }
            if line.hasPrefix("#   connected: "), let (key, n) = counted(line.dropFirst(15)) { observed.connections[key] = n }
            if line.hasPrefix("#   not recorded, past the bound: ") {
                let words = line.dropFirst(34).split(separator: " ", maxSplits: 1)
                if words.count == 2, let n = Int(words[0]) { observed.dropped[String(words[1])] = n }
            }
            if line.hasPrefix("#     { type = \"ro-bind\", source = "),
               case .table(let mount)? = try? TOMLDocument.parse("m = " + line.dropFirst(6).dropLast())["m"],
               case .string(let path)? = mount["source"] {
                observed.paths[path] = ObservedRun.Path(uses: [.lookup], missingButOnHost: true)
            }
        }
        return LearnedProfile(base: base, runs: runs, observed: observed, write: write)
    }
}
