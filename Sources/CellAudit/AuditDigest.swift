import CellPolicy

/// The readable digest of an audit log (`cell audit summary`): per sandbox, the command, the
/// profile, how long it ran and how it ended, and its violations grouped by system call with
/// counts and the first paths seen.
public struct AuditDigest {
    public struct Sandbox {
        public var id: String
        public var started: String?
        public var command: [String] = []
        public var profile: String?
        public var policy: String?
        public var ended: String?
        public var durationMilliseconds: Int?
        public var errors: [String] = []
        /// The audit bounds the sandbox reached (`keys 1000`, `events 10000`).
        public var bounds: [String] = []
        /// (syscall, action) → count and up to three distinct paths, in first-seen order.
        public var violations: [(syscall: String, action: String, count: Int, paths: [String])] = []
    }

    public private(set) var sandboxes: [Sandbox] = []
    /// `LINE: problem` for lines that are not valid events (reported, then skipped).
    public private(set) var problems: [String] = []

    public init(text: String) {
        var index: [String: Int] = [:]
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            let value: JSONValue
            do {
                value = try JSONParser.parse(String(line))
            } catch {
                problems.append("\(number + 1): not a JSON object (\(error.message))")
                continue
            }
            guard let id = value["sandbox"]?.string, let event = value["event"]?.string else {
                problems.append("\(number + 1): an event needs 'sandbox' and 'event'")
                continue
            }
            if value["v"]?.int != AuditEvent.schemaVersion {
                problems.append("\(number + 1): schema version \(value["v"]?.int.map(String.init) ?? "missing") (this cell reads \(AuditEvent.schemaVersion))")
                continue
            }
            if index[id] == nil {
                index[id] = sandboxes.count
                sandboxes.append(Sandbox(id: id))
            }
            let i = index[id]!
            switch event {
            case "start":
                sandboxes[i].started = value["time"]?.string
                sandboxes[i].command = value["command"]?.array?.compactMap(\.string) ?? []
                sandboxes[i].profile = value["profile"]?.string
                sandboxes[i].policy = value["policy"]?.string
            case "syscall":
                let name = value["syscall"]?.string ?? "?"
                let action = value["action"]?.string ?? "?"
                let count = value["count"]?.int ?? 1
                let path = value["path"]?.string
                if let j = sandboxes[i].violations.firstIndex(where: { $0.syscall == name && $0.action == action }) {
                    sandboxes[i].violations[j].count += count
                    if let path, sandboxes[i].violations[j].paths.count < 3, !sandboxes[i].violations[j].paths.contains(path) {
                        sandboxes[i].violations[j].paths.append(path)
                    }
                } else {
                    sandboxes[i].violations.append((name, action, count, path.map { [$0] } ?? []))
                }
            case "exit":
                let status = value["status"]?.int.map(String.init) ?? "?"
                let signal = value["signal"]?.int
                sandboxes[i].ended = signal.map { "exit \(status) (signal \($0))" } ?? "exit \(status)"
                sandboxes[i].durationMilliseconds = value["duration_ms"]?.int
            case "error":
                sandboxes[i].errors.append(value["message"]?.string ?? "?")
            case "bound":
                sandboxes[i].bounds.append("\(value["which"]?.string ?? "?") \(value["limit"]?.int.map(String.init) ?? "?")")
            default:
                break
            }
        }
    }

    /// Every value comes from the log, whose paths and commands the sandbox chose: each is
    /// escaped (TerminalText), so none can forge a line or hide one on a terminal.
    public func render() -> String {
        func e(_ text: String) -> String { TerminalText.escaped(text) }
        var out = ""
        for s in sandboxes {
            out += "sandbox \(e(s.id))"
            if let started = s.started { out += "  started \(e(started))" }
            out += "\n"
            if !s.command.isEmpty { out += "  command:  \(s.command.map(Self.quoted).joined(separator: " "))\n" }
            if let profile = s.profile { out += "  profile:  \(e(profile))\(s.policy.map { " (seccomp: \(e($0)))" } ?? "")\n" }
            if let ended = s.ended {
                out += "  ended:    \(e(ended))\(s.durationMilliseconds.map { " after \(Self.duration($0))" } ?? "")\n"
            } else {
                out += "  ended:    (no exit event: still running, or the supervisor was killed)\n"
            }
            for error in s.errors { out += "  error:    \(e(error))\n" }
            for bound in s.bounds { out += "  bound:    \(e(bound)) reached: the rest is counted in aggregated events\n" }
            let total = s.violations.reduce(0) { $0 + $1.count }
            out += "  violations: \(total)\n"
            for v in s.violations.sorted(by: { $0.count > $1.count }) {
                out += "    \(e(v.syscall)) \(e(v.action)) ×\(v.count)"
                if !v.paths.isEmpty { out += "  \(v.paths.map { e(Self.shortened($0)) }.joined(separator: ", "))" }
                out += "\n"
            }
        }
        return out
    }

    /// A path cut to 100 characters (the log has it whole): a digest line stays a line, and a
    /// path padded to wrap cannot pass its tail off as a line of its own.
    static func shortened(_ path: String) -> String {
        path.count <= 100 ? path : String(path.prefix(99)) + "…"
    }

    /// A word as a shell would need it, on one line.
    static func quoted(_ word: String) -> String {
        let plain = !word.isEmpty && word.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }
        if plain { return word }
        var out = "'"
        for c in word {
            if c == "'" { out += "'\\''" } else { out += TerminalText.escaped(String(c)) }
        }
        return out + "'"
    }

    static func duration(_ ms: Int) -> String {
        ms < 1000 ? "\(ms) ms" : ms < 60_000 ? "\(ms / 1000).\(ms % 1000 / 100) s" : "\(ms / 60_000) min \(ms % 60_000 / 1000) s"
    }
}
