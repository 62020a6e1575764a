import CellPolicy
import Glibc

/// How much one sandbox may make cell record. The sandbox chooses what it does wrong, so every
/// cost it can cause cell is bounded: the memory of the tally (distinct keys), the lines and the
/// bytes of the log. Past a bound nothing is dropped: it is counted, and written as aggregated
/// events at the end.
public struct AuditBounds: Equatable, Sendable {
    /// Events written one by one for each key (a system call and action, a limit); the rest of
    /// that key is counted into one aggregated event.
    public var burst = 20
    /// Distinct keys tallied by name. Events of keys past it are counted together as `other`
    /// (an allow-list policy makes every unknown system call number a key of its own).
    public var keys = 1_000
    /// Events written one by one for the whole sandbox.
    public var events = 10_000
    /// Bytes of those events (a path argument alone can be 4 KiB, its hex twice that).
    public var bytes = 16 << 20

    public init(burst: Int = 20, keys: Int = 1_000, events: Int = 10_000, bytes: Int = 16 << 20) {
        self.burst = burst
        self.keys = keys
        self.events = events
        self.bytes = bytes
    }
}

/// Where audit events go: a JSON Lines file the sandbox cannot reach (opened by the supervisor
/// before the sandbox exists; its descriptor is closed in the sandbox), or nowhere but the
/// in-memory tally that becomes the one-line summary on stderr.
///
/// Every event is written with one write(2) before the supervisor acts on it (answers the call,
/// kills the sandbox), so a supervisor killed the next instant loses nothing. A write that fails
/// is reported to the caller, which kills the sandbox: cell fails closed.
///
/// What the sandbox causes goes through `record` (or `violation`) and is bounded by
/// `AuditBounds`; cell's own lifecycle events (`start`, `error`, `exit`: one each) through
/// `write`.
public final class AuditLog {
    public let sandbox: String
    public let path: String?
    public let bounds: AuditBounds
    private let file: ReportFile.Opened?

    /// System calls the policy did not allow, written or not.
    public private(set) var violations = 0

    /// One key's count. `other` entries (one per event and action) hold the keys past the bound.
    struct Tally {
        var event: String
        var keyField: String
        var key: String
        var action: String?
        var count = 0
        /// Counted but not written one by one, and the fields their aggregated event carries.
        var folded = 0
        var aggregate: [(String, JSONField)] = []
        var isOther = false
        static let other = "other"
    }

    /// In first-seen order; at most `bounds.keys` named entries plus the `other` ones.
    private(set) var tally: [Tally] = []
    private var index: [String: Int] = [:]
    private var named = 0
    private var written = (events: 0, bytes: 0)
    /// The bounds reached, in order ("keys", "events", "bytes").
    public private(set) var boundsReached: [String] = []

    /// The fields an aggregated event keeps: what identifies the key, never the details of one
    /// call (pid, arguments, paths).
    static let aggregateFields: Set<String> = ["syscall", "nr", "arch", "action", "errno", "which", "value",
                                               "protocol", "host", "port", "decision"]

    /// Opens (appends to, creating 0600) the audit file, or keeps events in memory only. The file
    /// is opened as every report file is (ReportFile): no symlink, no FIFO, yours.
    public init(path: String?, sandbox: String = AuditClock.sandboxID(), bounds: AuditBounds = AuditBounds()) throws(AuditError) {
        self.sandbox = sandbox
        self.path = path
        self.bounds = bounds
        if let path {
            do {
                file = try ReportFile.open(path, what: "the audit log", append: true)
            } catch {
                throw AuditError(message: error.message)
            }
        } else {
            file = nil
        }
        if let fd = file?.fd {
            var st = stat()
            var last: UInt8 = 0
            lineOpen = fstat(fd, &st) == 0 && st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) == 1 && last != UInt8(ascii: "\n")
        }
    }

    deinit { if let file { ReportFile.release(file) } }

    /// Writes one of cell's own events (one write call). Throws if the file cannot take it.
    public func write(_ event: String, _ fields: [(String, JSONField)]) throws(AuditError) {
        guard file != nil else { return }
        try append(AuditEvent(sandbox: sandbox, event: event, fields: fields).line)
    }

    /// The first write that failed, if one did.
    public private(set) var failure: String?
    /// The file does not end with a newline (a torn line of an earlier run, a full disk): the
    /// next event starts on a line of its own instead of being glued to it.
    private var lineOpen = false

    private func append(_ line: String) throws(AuditError) {
        guard let fd = file?.fd else { return }
        let bytes = Array(((lineOpen ? "\n" : "") + line).utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if n != bytes.count {
            lineOpen = n != 0 || lineOpen
            let reason = n < 0 ? errorText(errno) : "short write (\(n) of \(bytes.count) bytes: the disk is full?)"
            let message = "cannot write to the audit log \(path ?? ""): \(reason)"
            if failure == nil { failure = message }
            throw AuditError(message: message)
        }
        lineOpen = false
    }

    /// Records a violation: counted always, written within the bounds (see `record`). Calls
    /// denied with different errnos (two argument rules) are different keys, so that each
    /// aggregated event names the errno its calls got.
    public func violation(syscall: String, action: String, errno: String? = nil, fields: () -> [(String, JSONField)]) throws(AuditError) {
        violations += 1
        try record("syscall", keyField: "syscall", key: syscall, action: action, variant: errno, fields: fields)
    }

    /// A connection `--net proxy`'s proxy decided on (`"event":"net"`), keyed by host, port and
    /// decision; a refusal counts like a denied system call (the summary names it).
    public func connection(host: String, port: Int, decision: String, fields: () -> [(String, JSONField)]) throws(AuditError) {
        if decision == "refused" { violations += 1 }
        try record("net", keyField: "host", key: "\(host):\(port)", action: decision, fields: fields)
    }

    /// Records an event the sandbox caused. It is counted under its key; it is written, with
    /// the fields `fields` makes, only while its key is within the burst and the sandbox within
    /// its bounds. Otherwise `fields` is not even called (reading a caller's memory for a path
    /// costs) except once per key, for the aggregated event.
    public func record(_ event: String, keyField: String, key: String, action: String? = nil, variant: String? = nil,
                       fields makeFields: () -> [(String, JSONField)]) throws(AuditError) {
        let i = try entry(event, keyField: keyField, key: key, action: action, variant: variant)
        tally[i].count += 1
        guard file != nil else { return }
        if !tally[i].isOther && tally[i].count <= bounds.burst && boundsReached.allSatisfy({ $0 == "keys" }) {
            let line = AuditEvent(sandbox: sandbox, event: event, fields: makeFields()).line
            if written.events >= bounds.events {
                try reach("events", limit: bounds.events)
            } else if written.bytes + line.utf8.count > bounds.bytes {
                try reach("bytes", limit: bounds.bytes)
            } else {
                try append(line)
                written.events += 1
                written.bytes += line.utf8.count
                return
            }
        }
        if tally[i].folded == 0 {
            tally[i].aggregate = tally[i].isOther
                ? [(keyField, .string(Tally.other))] + (action.map { [("action", .string($0))] } ?? [])
                : makeFields().filter { Self.aggregateFields.contains($0.0) }
        }
        tally[i].folded += 1
    }

    /// The tally entry for a key: its own while there is room, else its event's `other`.
    private func entry(_ event: String, keyField: String, key: String, action: String?, variant: String?) throws(AuditError) -> Int {
        let id = event + "\u{0}" + key + "\u{0}" + (action ?? "") + "\u{0}" + (variant ?? "")
        if let i = index[id] { return i }
        var entry = Tally(event: event, keyField: keyField, key: key, action: action)
        if named >= bounds.keys {
            try reach("keys", limit: bounds.keys)
            let otherID = event + "\u{0}\u{0}other\u{0}" + (action ?? "")
            if let i = index[otherID] { return i }
            entry.key = Tally.other
            entry.isOther = true
            index[otherID] = tally.count
        } else {
            named += 1
            index[id] = tally.count
        }
        tally.append(entry)
        return tally.count - 1
    }

    /// Notes a bound the first time it is reached, with one `bound` event at that moment.
    private func reach(_ which: String, limit: Int) throws(AuditError) {
        guard !boundsReached.contains(which) else { return }
        boundsReached.append(which)
        try write("bound", [("which", .string(which)), ("limit", .int(limit))])
    }

    /// Writes the aggregated events for what was counted and not written (at most one per key).
    public func flushSuppressed() throws(AuditError) {
        for i in tally.indices where tally[i].folded > 0 {
            try write(tally[i].event, tally[i].aggregate + [("count", .int(tally[i].folded)), ("aggregated", .bool(true))])
            tally[i].folded = 0
        }
    }

    /// `3 system calls denied: mount ×2, keyctl ×1` (nil when nothing happened).
    public func summaryLine() -> String? {
        guard violations > 0 else { return nil }
        var parts: [String] = []
        let calls = tally.filter { $0.event == "syscall" }
        for action in ["denied", "logged", "killed"] {
            // One entry per name (a name denied with two errnos is two keys), in first-seen order.
            var entries: [(key: String, count: Int)] = []
            for call in calls where call.action == action {
                if let j = entries.firstIndex(where: { $0.key == call.key }) { entries[j].count += call.count } else { entries.append((call.key, call.count)) }
            }
            guard !entries.isEmpty else { continue }
            let total = entries.reduce(0) { $0 + $1.count }
            let list = entries.sorted { $0.count > $1.count }.prefix(6).map { "\($0.key) ×\($0.count)" }.joined(separator: ", ")
            let more = entries.count > 6 ? ", ..." : ""
            parts.append("\(total) system call\(total == 1 ? "" : "s") \(action): \(list)\(more)")
        }
        // Connections the proxy refused, by host:port, most refused first.
        var refused: [(key: String, count: Int)] = []
        for entry in tally where entry.event == "net" && entry.action == "refused" {
            if let j = refused.firstIndex(where: { $0.key == entry.key }) { refused[j].count += entry.count } else { refused.append((entry.key, entry.count)) }
        }
        if !refused.isEmpty {
            let total = refused.reduce(0) { $0 + $1.count }
            let list = refused.sorted { $0.count > $1.count }.prefix(6).map { "\($0.key) ×\($0.count)" }.joined(separator: ", ")
            parts.append("\(total) connection\(total == 1 ? "" : "s") refused: \(list)\(refused.count > 6 ? ", ..." : "")")
        }
        return parts.joined(separator: "; ")
    }

    /// What a reached bound means for the reader of the log or the summary.
    public var notes: [String] {
        boundsReached.map { which in
            switch which {
            case "keys":
                return "the sandbox caused more than \(bounds.keys) distinct audit events: the rest are counted together as \"other\""
            case "events":
                return "the audit log took its \(bounds.events) events for one sandbox: the rest are counted in aggregated events"
            default:
                return "the audit log took its \(bounds.bytes >> 20) MiB for one sandbox: the rest are counted in aggregated events"
            }
        }
    }
}

public struct AuditError: Error, Equatable, Sendable {
    public var message: String
    public init(message: String) { self.message = message }
}
