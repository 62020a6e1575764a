import CSeccompNotify
import CellPolicy
import Glibc

/// What the supervisor hands the seccomp listener to: the audit path (ViolationAuditor), or
/// `cell learn`'s (CallLearner). The supervisor polls the listener and calls `handleOne()`
/// when it is readable.
public protocol NotificationHandler: AnyObject {
    func handleOne() -> ViolationAuditor.Outcome
}

/// The audit path, in order: a call the filter notified (SECCOMP_RET_USER_NOTIF) → the decision
/// the policy makes on its registers (`PolicyDecisions`) → the event → the log, written *before*
/// the call is answered → the answer. The supervisor owns the listener descriptor's lifetime
/// and polls it; it calls `handleOne()` when the listener is readable and acts on the outcome.
public final class ViolationAuditor: NotificationHandler {
    /// What the supervisor must do after one notification.
    public enum Outcome: Equatable, Sendable {
        /// Answered (denied with an errno, or let through as logged), or the caller was gone.
        case answered
        /// The policy kills: the call is left unanswered, so its caller stays blocked in it
        /// until the supervisor kills the whole sandbox with pid 1. (Killing only the caller
        /// would let its parent run on meanwhile.)
        case killSandbox(syscall: String)
        /// The event could not be recorded. Fail closed: the call is left unanswered and the
        /// sandbox must be killed, because cell does not run unaudited.
        case auditFailed(String)
    }

    let listener: Int32
    let decisions: PolicyDecisions
    let log: AuditLog

    /// `listener` stays the caller's to close.
    public init(listener: Int32, decisions: PolicyDecisions, log: AuditLog) {
        self.listener = listener
        self.decisions = decisions
        self.log = log
    }

    /// Receives, decides, records and answers one notified call.
    public func handleOne() -> Outcome {
        var n = cell_notification()
        guard cell_notify_receive(listener, &n) == 0 else { return .answered } // ENOENT: the caller died meanwhile
        let args = Self.arguments(n)
        return handle(n, args: args, action: decisions.decide(number: n.nr, args: args))
    }

    static func arguments(_ n: cell_notification) -> [UInt64] {
        withUnsafeBytes(of: n.args) { Array($0.bindMemory(to: UInt64.self)) }
    }

    /// Records the call as a violation (`action`: the policy's verdict), then answers it.
    func handle(_ n: cell_notification, args: [UInt64], action: SeccompPolicy.Action) -> Outcome {
        let name = Syscalls.name(n.nr) ?? "syscall_\(n.nr)"
        let word: String
        var errnoValue: Int32 = 1
        switch action {
        case .errno(let e): word = "denied"; errnoValue = e
        case .log: word = "logged"
        case .kill: word = "killed"
        case .allow: word = "denied" // the filter and the rules disagree: fail closed
        }

        do {
            try log.violation(syscall: name, action: word, errno: word == "denied" ? ErrnoNames.name(errnoValue) ?? String(errnoValue) : nil) {
                var fields: [(String, JSONField)] = [
                    ("pid", .int(Int(n.pid))), ("sandbox_pid", Self.sandboxPID(of: pid_t(n.pid)).map { .int($0) } ?? .null),
                    ("syscall", .string(name)), ("nr", .int(Int(n.nr))), ("arch", .string(Self.archName(n.arch))),
                    ("args", .strings(args.map { "0x" + String($0, radix: 16) })),
                ]
                let paths = PathArguments.indexes(name).map { Self.readPath(pid: pid_t(n.pid), address: args[$0]) }
                // The caller may have died or changed since: only trust what was read if the
                // notification is still pending. (Paths are recorded, never used to decide.)
                if !paths.isEmpty && cell_notify_id_valid(listener, n.id) != 0 {
                    fields += Self.pathFields(paths)
                }
                fields.append(("action", .string(word)))
                if word == "denied" { fields.append(("errno", .string(ErrnoNames.name(errnoValue) ?? String(errnoValue)))) }
                return fields
            }
        } catch {
            return .auditFailed(error.message)
        }

        switch action {
        case .log:
            _ = cell_notify_respond(listener, n.id, 0, 1)
        case .kill:
            return .killSandbox(syscall: name)
        case .errno, .allow:
            _ = cell_notify_respond(listener, n.id, errnoValue, 0)
        }
        return .answered
    }

    /// A path argument as read from the caller's memory: its bytes, and whether the string did
    /// not end where cell could read it (past PATH_MAX, 4,096 bytes, or into unreadable memory).
    /// nil: unreadable (a null or bad pointer, the caller gone).
    struct PathRead: Equatable {
        var bytes: [UInt8]
        var truncated: Bool
    }

    static func readPath(pid: pid_t, address: UInt64) -> PathRead? {
        guard address != 0 else { return nil }
        // PATH_MAX bytes and one more: a path of 4,095 bytes and its NUL is read whole.
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        var terminated: Int32 = 0
        let n = cell_read_string(pid, address, &buffer, buffer.count, &terminated)
        guard n >= 0 else { return nil }
        return PathRead(bytes: buffer[0..<Int(n)].map { UInt8(bitPattern: $0) }, truncated: terminated == 0)
    }

    /// The event's path fields, each argument in its place: `path` (the first, or null when it
    /// could not be read), `paths` (all of them, when several), `path_truncated` (one stopped at
    /// the limit), `paths_hex` (the raw bytes, when one is not UTF-8: `path` then holds a lossy
    /// copy with U+FFFD).
    static func pathFields(_ reads: [PathRead?]) -> [(String, JSONField)] {
        func text(_ read: PathRead?) -> String? { read.map { String(decoding: $0.bytes, as: UTF8.self) } }
        func list(_ items: [String?]) -> JSONField { .raw("[" + items.map { $0.map(JSONField.quote) ?? "null" }.joined(separator: ",") + "]") }
        var fields: [(String, JSONField)] = [("path", text(reads[0]).map(JSONField.string) ?? .null)]
        if reads.count > 1 { fields.append(("paths", list(reads.map(text)))) }
        if reads.contains(where: { $0?.truncated == true }) { fields.append(("path_truncated", .bool(true))) }
        let invalid = reads.map { read in read.flatMap { String(validating: $0.bytes, as: UTF8.self) == nil ? $0.bytes : nil } }
        if invalid.contains(where: { $0 != nil }) {
            let hex = invalid.map { bytes in bytes?.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
            fields.append(("paths_hex", list(hex)))
        }
        return fields
    }

    /// The pid as the sandbox sees it (the last NSpid field of /proc/PID/status).
    static func sandboxPID(of pid: pid_t) -> Int? {
        guard let status = readSmallFile("/proc/\(pid)/status", limit: 8192) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("NSpid:") {
            return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last.flatMap { Int($0) }
        }
        return nil
    }

    static func archName(_ arch: UInt32) -> String {
        switch arch {
        case 0xC000_003E: return "x86_64"
        case 0xC000_00B7: return "aarch64"
        case 0x4000_0003: return "x86"
        default: return "0x" + String(arch, radix: 16)
        }
    }
}
