import CellPolicy
import Foundation
import Testing
@testable import CellAudit

struct AuditLogTests {
    func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString).jsonl").path
    }

    @Test func eventsAreOneJSONObjectPerLine() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try AuditLog(path: path, sandbox: "abc123")
        try log.write("start", [("command", .strings(["echo", "a\"b\n"])), ("n", .int(3)), ("x", .null)])
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasSuffix("\n") && text.filter { $0 == "\n" }.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["v"] as? Int == 1 && object["sandbox"] as? String == "abc123" && object["event"] as? String == "start")
        #expect(object["command"] as? [String] == ["echo", "a\"b\n"])
        #expect(object["x"] is NSNull)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
    }

    @Test func rateLimitCountsWhatItDoesNotWrite() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try AuditLog(path: path, sandbox: "s", bounds: AuditBounds(burst: 3))
        var detailed = 0
        for _ in 0..<10 {
            try log.violation(syscall: "keyctl", action: "denied") {
                detailed += 1
                return [("syscall", .string("keyctl")), ("action", .string("denied")), ("pid", .int(7))]
            }
        }
        try log.violation(syscall: "mount", action: "denied") { [("syscall", .string("mount"))] }
        try log.flushSuppressed()
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3 + 1 + 1)
        #expect(lines.last?.contains("\"count\":7") == true && lines.last?.contains("\"aggregated\":true") == true)
        #expect(lines.last?.contains("pid") == false)
        #expect(log.violations == 11)
        #expect(detailed == 4) // the burst, then once for the aggregate's fields
        #expect(log.summaryLine() == "11 system calls denied: keyctl ×10, mount ×1")
    }

    /// What one line of the log at `path` says, as an object.
    func objects(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    @Test func distinctKeysPastTheBoundAreCountedAsOther() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try AuditLog(path: path, sandbox: "s", bounds: AuditBounds(burst: 2, keys: 3))
        var detailed = 0
        for nr in 0..<1000 {
            try log.violation(syscall: "syscall_\(nr)", action: "denied") {
                detailed += 1
                return [("syscall", .string("syscall_\(nr)")), ("nr", .int(nr)), ("action", .string("denied"))]
            }
        }
        try log.flushSuppressed()
        #expect(log.tally.count == 4, "three named keys and one other: memory does not grow with the keys")
        #expect(detailed == 3, "the fields of keys past the bound are never made")
        let events = try objects(path)
        #expect(events.map { $0["event"] as? String } == ["syscall", "syscall", "syscall", "bound", "syscall"])
        #expect(events[3]["which"] as? String == "keys" && events[3]["limit"] as? Int == 3)
        let other = events[4]
        #expect(other["syscall"] as? String == "other" && other["count"] as? Int == 997 && other["aggregated"] as? Bool == true)
        #expect(other["action"] as? String == "denied" && other["nr"] == nil)
        let counted = events.filter { $0["event"] as? String == "syscall" }.reduce(0) { $0 + (($1["count"] as? Int) ?? 1) }
        #expect(counted == 1000 && log.violations == 1000)
        #expect(log.summaryLine() == "1000 system calls denied: other ×997, syscall_0 ×1, syscall_1 ×1, syscall_2 ×1")
        #expect(log.notes == ["the sandbox caused more than 3 distinct audit events: the rest are counted together as \"other\""])
    }

    @Test func eventsPastTheSandboxBoundAreAggregated() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try AuditLog(path: path, sandbox: "s", bounds: AuditBounds(burst: 100, events: 5))
        for _ in 0..<50 {
            for name in ["mount", "keyctl"] {
                try log.violation(syscall: name, action: "denied") { [("syscall", .string(name)), ("pid", .int(9))] }
            }
        }
        try log.record("limit", keyField: "which", key: "timeout") { [("which", .string("timeout"))] }
        try log.flushSuppressed()
        let events = try objects(path)
        #expect(events.count == 5 + 1 + 3, "five events, the bound, and one aggregate per key")
        #expect(events[5]["event"] as? String == "bound" && events[5]["which"] as? String == "events")
        #expect(events.suffix(3).map { $0["count"] as? Int } == [47, 48, 1])
        #expect(events.last?["event"] as? String == "limit" && events.last?["which"] as? String == "timeout")
        #expect(events.suffix(3).allSatisfy { $0["pid"] == nil && $0["aggregated"] as? Bool == true })
        #expect(log.notes.count == 1 && log.notes[0].contains("5 events"))
    }

    @Test func bytesPastTheSandboxBoundAreAggregated() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try AuditLog(path: path, sandbox: "s", bounds: AuditBounds(burst: 1000, bytes: 10_000))
        let long = String(repeating: "a", count: 4000)
        for _ in 0..<100 {
            try log.violation(syscall: "openat", action: "denied") { [("syscall", .string("openat")), ("path", .string(long))] }
        }
        try log.flushSuppressed()
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber).intValue
        #expect(size < 10_000 + 500, "the log holds \(size) bytes")
        let events = try objects(path)
        #expect(events.map { $0["event"] as? String } == ["syscall", "syscall", "bound", "syscall"])
        #expect(events.last?["count"] as? Int == 98 && events.last?["path"] == nil)
    }

    @Test func withoutALogNothingIsMadeButTheCount() throws {
        let log = try AuditLog(path: nil, bounds: AuditBounds(keys: 2))
        var made = 0
        for nr in 0..<100 { try log.violation(syscall: "syscall_\(nr)", action: "logged") { made += 1; return [] } }
        #expect(made == 0 && log.violations == 100 && log.tally.count == 3)
        #expect(log.summaryLine() == "100 system calls logged: other ×98, syscall_0 ×1, syscall_1 ×1")
    }

    @Test func aggregatesKeepEachErrnoApart() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try AuditLog(path: path, sandbox: "s", bounds: AuditBounds(burst: 1))
        for (errno, times) in [("EACCES", 3), ("EPERM", 5)] {
            for _ in 0..<times {
                try log.violation(syscall: "getpriority", action: "denied", errno: errno) {
                    [("syscall", .string("getpriority")), ("action", .string("denied")), ("errno", .string(errno))]
                }
            }
        }
        try log.flushSuppressed()
        let aggregated = try objects(path).filter { $0["aggregated"] as? Bool == true }
        #expect(aggregated.map { "\($0["errno"] ?? "-") \($0["count"] ?? "-")" } == ["EACCES 2", "EPERM 4"])
        #expect(log.summaryLine() == "8 system calls denied: getpriority ×8")
    }

    @Test func aTornLastLineIsEnded() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("{\"v\":1,\"torn".utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o600)
        let log = try AuditLog(path: path, sandbox: "s")
        try log.write("start", [])
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2 && lines[1].hasPrefix("{\"v\":1") && lines[1].contains("\"event\":\"start\""))
    }

    @Test func summaryLineGroupsActions() throws {
        let log = try AuditLog(path: nil)
        try log.violation(syscall: "mkdir", action: "logged") { [] }
        try log.violation(syscall: "ptrace", action: "denied") { [] }
        #expect(log.summaryLine() == "1 system call denied: ptrace ×1; 1 system call logged: mkdir ×1")
        #expect(try AuditLog(path: nil).summaryLine() == nil)
    }

    @Test func unwritableLogIsAnError() {
        #expect(throws: AuditError.self) { try AuditLog(path: "/nonexistent-dir/audit.jsonl") }
        #expect(throws: AuditError.self) {
            let log = try AuditLog(path: "/dev/full")
            try log.write("start", [])
        }
    }

    @Test func clock() {
        let now = AuditClock.now()
        #expect(now.count == 24 && now.hasSuffix("Z") && now.dropFirst(10).hasPrefix("T"))
        let ids = (0..<8).map { _ in AuditClock.sandboxID() }
        #expect(ids.allSatisfy { $0.count == 12 && $0.allSatisfy { "0123456789abcdef".contains($0) } }, "\(ids)")
        #expect(Set(ids).count == ids.count, "\(ids)")
    }
}

struct AuditDigestTests {
    @Test func digest() {
        let sample = """
        {"v":1,"time":"2026-01-01T00:00:00.000Z","sandbox":"s1","event":"start","profile":"ci","command":["make","test"],"policy":"default"}
        {"v":1,"time":"2026-01-01T00:00:00.100Z","sandbox":"s1","event":"syscall","syscall":"mount","action":"denied","path":"/a"}
        {"v":1,"time":"2026-01-01T00:00:00.200Z","sandbox":"s1","event":"syscall","syscall":"mount","action":"denied","path":"/b"}
        {"v":1,"time":"2026-01-01T00:00:00.300Z","sandbox":"s1","event":"syscall","syscall":"keyctl","action":"denied","count":500,"aggregated":true}
        {"v":1,"time":"2026-01-01T00:00:00.400Z","sandbox":"s1","event":"bound","which":"events","limit":10000}
        {"v":1,"time":"2026-01-01T00:00:00.500Z","sandbox":"s1","event":"syscall","syscall":"chroot","action":"denied","path":"/\(String(repeating: "x", count: 150))"}
        {"v":1,"time":"2026-01-01T00:00:01.500Z","sandbox":"s1","event":"exit","status":2,"signal":null,"duration_ms":1500}
        not json
        {"v":2,"sandbox":"s2","event":"start"}
        """
        let d = AuditDigest(text: sample)
        #expect(d.problems.count == 2)
        #expect(d.render() == """
            sandbox s1  started 2026-01-01T00:00:00.000Z
              command:  make test
              profile:  ci (seccomp: default)
              ended:    exit 2 after 1.5 s
              bound:    events 10000 reached: the rest is counted in aggregated events
              violations: 503
                keyctl denied ×500
                mount denied ×2  /a, /b
                chroot denied ×1  /\(String(repeating: "x", count: 98))…

            """)
    }
}

struct PolicyDecisionTests {
    @Test func mostRestrictiveMatchingRuleWins() {
        let rules = [
            ResolvedRule(syscall: "ioctl", number: 16, action: .errno(1), conditions: [.init(index: 1, .maskedEqual, 0x5412, mask: 0xffff_ffff)]),
            ResolvedRule(syscall: "ioctl", number: 16, action: .log, conditions: [.init(index: 1, .greater, 0x5000)]),
            ResolvedRule(syscall: "mount", number: 165, action: .kill, conditions: []),
        ]
        let d = PolicyDecisions(policyName: "t", defaultAction: .allow, rules: rules)
        #expect(d.decide(number: 16, args: [0, 0x1_0000_5412]) == .errno(1))
        #expect(d.decide(number: 16, args: [0, 0x5413]) == .log)
        #expect(d.decide(number: 16, args: [0, 0x10]) == .allow)
        #expect(d.decide(number: 165, args: []) == .kill)
        #expect(PolicyDecisions(policyName: "s", defaultAction: .errno(1), rules: []).decide(number: 1, args: []) == .errno(1))
    }
}

/// Strings from logs, profiles and the sandbox, printed on a terminal.
struct TerminalTextTests {
    @Test("every C0 control, DEL and C1 control becomes visible; the rest is left alone")
    func escapes() {
        #expect(TerminalText.escaped("plain /path ünï ✓") == "plain /path ünï ✓")
        #expect(TerminalText.escaped("a\u{1b}[8mb\nc\td\r\u{07}\u{7f}\u{9b}\u{85}") == "a\\e[8mb\\nc\\td\\r\\x07\\x7f\\x9b\\x85")
        // Invisible format characters that reorder or hide text are escaped as well.
        #expect(TerminalText.escaped("a\u{202E}b\u{200B}c\u{2028}d\u{FEFF}") == "a\\u{202e}b\\u{200b}c\\u{2028}d\\u{feff}")
        // The log's own JSON escapes C1 too, so `cat` of a log cannot drive the terminal.
        #expect(JSONField.quote("\u{9b}2J\u{1b}") == "\"\\u009b2J\\u001b\"")
    }
}

/// The path fields of a syscall event: each argument in its place, nothing silently altered.
struct PathFieldTests {
    func render(_ fields: [(String, JSONField)]) -> String { fields.map { "\($0.0)=\($0.1.encoded)" }.joined(separator: " ") }

    @Test("an unreadable first argument is null, the second stays second; truncation and raw bytes are recorded")
    func pathFields() {
        let second = ViolationAuditor.PathRead(bytes: Array("/mnt".utf8), truncated: false)
        #expect(render(ViolationAuditor.pathFields([nil, second])) == #"path=null paths=[null,"/mnt"]"#)
        let long = ViolationAuditor.PathRead(bytes: Array(repeating: 0x61, count: 4095), truncated: true)
        #expect(render(ViolationAuditor.pathFields([long])).hasSuffix(" path_truncated=true"))
        let latin1 = ViolationAuditor.PathRead(bytes: [0x2f, 0x63, 0x61, 0x66, 0xe9], truncated: false)
        #expect(render(ViolationAuditor.pathFields([latin1])) == "path=\"/caf\u{FFFD}\" paths_hex=[\"2f636166e9\"]")
    }
}
