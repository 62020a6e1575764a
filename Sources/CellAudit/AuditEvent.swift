import CellPolicy
import Glibc

/// One audit event, written as one JSON object on one line (JSON Lines). Schema version 1:
/// every line has `v`, `time` (RFC 3339, UTC, milliseconds), `sandbox` (an id) and `event`
/// (`start`, `syscall`, `limit`, `exit`, `error`); README.md documents each event's fields.
public struct AuditEvent: Sendable {
    public static let schemaVersion = 1

    public var time: String
    public var sandbox: String
    public var event: String
    /// The event's own fields, in order, as already-encoded JSON values.
    public var fields: [(String, String)]

    public init(sandbox: String, event: String, fields: [(String, JSONField)], time: String = AuditClock.now()) {
        self.time = time
        self.sandbox = sandbox
        self.event = event
        self.fields = fields.map { ($0.0, $0.1.encoded) }
    }

    public var line: String {
        var parts = ["\"v\":\(Self.schemaVersion)", "\"time\":\(JSONField.string(time).encoded)",
                     "\"sandbox\":\(JSONField.string(sandbox).encoded)", "\"event\":\(JSONField.string(event).encoded)"]
        for (key, value) in fields { parts.append("\(JSONField.string(key).encoded):\(value)") }
        return "{" + parts.joined(separator: ",") + "}\n"
    }
}

public enum AuditClock {
    /// Now, as RFC 3339 UTC with milliseconds: 2026-11-22T12:00:00.123Z
    public static func now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tm = Glibc.tm()
        gmtime_r(&t, &tm)
        func pad(_ n: Int32, _ width: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T"
            + "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }

    /// A random id for a sandbox (12 hex digits; the standard library's generator reads the
    /// kernel's getrandom).
    public static func sandboxID() -> String {
        var n = UInt64.random(in: 0..<(1 << 48))
        // Formatted by hand: String(_:radix:) is generic and its first use showed in a launch's
        // profile (~40 us of first-use work).
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var text = [UInt8](repeating: 0, count: 12)
        for i in (0..<12).reversed() {
            text[i] = digits[Int(n & 15)]
            n >>= 4
        }
        return String(decoding: text, as: UTF8.self)
    }
}
