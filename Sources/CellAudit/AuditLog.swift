import CellPolicy
import Glibc

/// Where audit events go: a JSON Lines file the sandbox cannot reach (opened by the supervisor
/// before the sandbox exists; its descriptor is closed in the sandbox), or nowhere but the
/// in-memory tally that becomes the one-line summary on stderr.
///
/// Every event is written with one write(2) before the supervisor acts on it (answers the call,
/// kills the sandbox), so a supervisor killed the next instant loses nothing. A write that fails
/// is reported to the caller, which kills the sandbox: cell fails closed.
///
/// Identical violations are rate-limited, never dropped: the first `burst` events for a
/// (syscall, action) pair are written one by one; after that they are counted, and one
/// aggregated `syscall` event with `count` is written at the end.
public final class AuditLog {
    public let sandbox: String
    private let fd: Int32?
    public let path: String?
    public let burst: Int

    public private(set) var violations = 0
    /// (syscall, action) → number of events, in first-seen order.
    public private(set) var tally: [(key: String, action: String, count: Int)] = []
    private var index: [String: Int] = [:]
    private var suppressed: [String: (fields: [(String, JSONField)], count: Int)] = [:]
    private var suppressedOrder: [String] = []

    /// Opens (appends to, creating 0600) the audit file, or keeps events in memory only. The file
    /// is opened as every report file is (ReportFile): no symlink, no FIFO, yours.
    public init(path: String?, sandbox: String = AuditClock.sandboxID(), burst: Int = 20) throws(AuditError) {
        self.sandbox = sandbox
        self.path = path
        self.burst = burst
        if let path {
            do {
                file = try ReportFile.open(path, what: "the audit log", append: true)
            } catch {
                throw AuditError(message: error.message)
            }
        } else {
            file = nil
        }
        fd = file?.fd
    }

    private let file: ReportFile.Opened?

    deinit { if let file { ReportFile.release(file) } }

    /// Writes one event (one write call). Throws if the file cannot take it.
    public func write(_ event: String, _ fields: [(String, JSONField)]) throws(AuditError) {
        guard let fd else { return }
        let line = AuditEvent(sandbox: sandbox, event: event, fields: fields).line
        let bytes = Array(line.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if n != bytes.count {
            let reason = n < 0 ? String(cString: strerror(errno)) : "short write"
            throw AuditError(message: "cannot write to the audit log \(path ?? ""): \(reason)")
        }
    }

    /// Records a violation: counted always; written unless its (syscall, action) pair has used up
    /// its burst, in which case it is folded into the aggregated event written by `finish`.
    public func violation(syscall: String, action: String, fields makeFields: () -> [(String, JSONField)]) throws(AuditError) {
        violations += 1
        let key = syscall + "\u{0}" + action
        if let i = index[key] {
            tally[i].count += 1
        } else {
            index[key] = tally.count
            tally.append((syscall, action, 1))
        }
        let seen = tally[index[key]!].count
        if seen <= burst {
            try write("syscall", makeFields())
        } else {
            // Past the burst the details (pid, arguments, paths) are not even read: the count is.
            if suppressed[key] == nil {
                suppressedOrder.append(key)
                suppressed[key] = (makeFields().filter { ["syscall", "nr", "arch", "action", "errno"].contains($0.0) }, 0)
            }
            suppressed[key]!.count += 1
        }
    }

    /// Writes the aggregated events for what the rate limit folded.
    public func flushSuppressed() throws(AuditError) {
        for key in suppressedOrder {
            guard let entry = suppressed[key] else { continue }
            try write("syscall", entry.fields + [("count", .int(entry.count)), ("aggregated", .bool(true))])
        }
        suppressed.removeAll()
        suppressedOrder.removeAll()
    }

    /// `3 system calls denied: mount ×2, keyctl ×1` (nil when nothing happened).
    public func summaryLine() -> String? {
        guard violations > 0 else { return nil }
        var parts: [String] = []
        for action in ["denied", "logged", "killed"] {
            let entries = tally.filter { $0.action == action }
            guard !entries.isEmpty else { continue }
            let total = entries.reduce(0) { $0 + $1.count }
            let list = entries.sorted { $0.count > $1.count }.prefix(6).map { "\($0.key) ×\($0.count)" }.joined(separator: ", ")
            let more = entries.count > 6 ? ", ..." : ""
            parts.append("\(total) system call\(total == 1 ? "" : "s") \(action): \(list)\(more)")
        }
        return parts.joined(separator: "; ")
    }
}

public struct AuditError: Error, Equatable, Sendable {
    public var message: String
    public init(message: String) { self.message = message }
}
