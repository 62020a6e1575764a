import CellLauncher
import CellPolicy
import CellProfile
@testable import CellRuntime
import Foundation
import Testing

/// The state directory, the annotations, the command line and the features document.
final class RuntimeStateTests {
    let root = NSTemporaryDirectory() + "cell-runtime-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

    deinit {
        try? FileManager.default.removeItem(atPath: root)
    }

    @Test func theStateDirectoryIsPrivate() throws {
        let store = try StateStore(root: root)
        var st = stat()
        #expect(lstat(root, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o700)
        chmod(root, 0o755)
        #expect(runtimeError { _ = try StateStore(root: root) }?.contains("is open to others") == true)
        chmod(root, 0o700)
        let link = root + "-link"
        symlink(root, link)
        defer { unlink(link) }
        #expect(runtimeError { _ = try StateStore(root: link) }?.contains("a symlink is refused") == true)
        _ = store
    }

    @Test func aRecordRoundTripsAndIsRemovedWhole() throws {
        let store = try StateStore(root: root)
        try store.create("c1")
        #expect(runtimeError { try store.create("c1") } == "container with id exists: c1")
        #expect(try store.read("c1") == nil, "created, not yet recorded")
        #expect(StateStore.status(nil) == .creating)
        let me = try #require(ProcessInfo.stat(getpid()))
        let record = ContainerRecord(id: "c1", bundle: "/b \"quoted\"", pid: getpid(), pidStart: me.start, monitor: getpid(),
                                     monitorStart: me.start, created: "2026-12-04T00:00:00.000Z", started: false,
                                     annotations: [("run.cell.profile", "strict"), ("k", "v\n")])
        try store.write(record)
        #expect(try store.read("c1") == record)
        #expect(StateStore.status(record) == .created)
        var started = record
        started.started = true
        #expect(StateStore.status(started) == .running)
        var reused = record
        reused.pidStart += 1
        #expect(StateStore.status(reused) == .stopped, "a pid the kernel reused is not the container's")
        // Recorded by the monitor before pid 1 exists: creating while the monitor lives.
        var early = record
        early.pid = 0
        early.pidStart = 0
        #expect(StateStore.status(early) == .creating)
        early.monitorStart += 1
        #expect(StateStore.status(early) == .stopped, "a monitor that is gone creates nothing")
        mkfifo(store.startFIFO("c1"), 0o600)
        try store.remove("c1")
        #expect(try FileManager.default.contentsOfDirectory(atPath: root) == [])
        #expect(runtimeError { _ = try store.read("c1") } == "container \"c1\" does not exist")
    }

    @Test func idsAndAnnotationNamesAreNeverPaths() throws {
        for id in ["", "..", ".hidden", "a/b", "a b", String(repeating: "x", count: 129), "x\n"] {
            #expect(!StateStore.isValidID(id), "\(id)")
        }
        #expect(StateStore.isValidID("45f515f8bc8f792f8b30577a68ecbd6a15086e23301cf254e97c02e43e4add4c"))
        func config(_ annotations: [String: String]) throws -> OCIConfig {
            let notes = annotations.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ",")
            return try OCIConfig.parse(#"{"ociVersion": "1.0.2", "root": {"path": "r"}, "process": {"args": ["sh"], "cwd": "/"}, "annotations": {"# + notes + "}}", file: "c")
        }
        for name in ["../../etc/passwd", "/tmp/log", "a/b"] {
            let message = runtimeError { _ = try CellAnnotations.auditLogPath(config([CellAnnotations.auditLog: name])) { "/audit" } }
            #expect(message?.contains("is not a file name") == true, "\(message ?? "accepted")")
        }
        #expect(try CellAnnotations.auditLogPath(config([CellAnnotations.auditLog: "job-1.jsonl"])) { "/audit" } == "/audit/job-1.jsonl")
        #expect(try CellAnnotations.auditLogPath(config([:])) { "/audit" } == nil)
        let loader = ProfileLoader(variables: ProfileVariables(cwd: "/", home: "/nonexistent", tmpdir: "/tmp", uid: 1000),
                                   userDirectory: nil, systemDirectory: nil)
        for name in ["/etc/cell/profiles/x.toml", "x.toml", "../strict", "./strict"] {
            let message = runtimeError { _ = try CellAnnotations.profile(config([CellAnnotations.profile: name]), loader: loader) }
            #expect(message?.contains("is not a profile name") == true, "\(message ?? "accepted")")
        }
        #expect(try CellAnnotations.profile(config([:]), loader: loader).name == "default")
        #expect(try CellAnnotations.profile(config([CellAnnotations.profile: "strict"]), loader: loader).name == "strict")
        #expect(AuditDirectory.path(stateHome: nil, home: "/home/u", realRoot: false) == "/home/u/.local/state/cell/audit")
        #expect(AuditDirectory.path(stateHome: "/s", home: "/home/u", realRoot: false) == "/s/cell/audit")
        #expect(AuditDirectory.path(stateHome: nil, home: nil, realRoot: true) == "/var/log/cell/audit")
    }

    @Test func theCommandLine() throws {
        #expect(try Signals.parse("9") == SIGKILL)
        #expect(try Signals.parse("TERM") == SIGTERM)
        #expect(try Signals.parse("sigusr1") == SIGUSR1)
        #expect(runtimeError { _ = try Signals.parse("NOPE") } == "unknown signal 'NOPE'")
        #expect(runtimeError { _ = try Signals.parse("0") } == "unknown signal '0'")
        var words = ["--bundle=/b", "--pid-file", "/p", "--no-new-keyring", "id1"][...]
        let create = try CommandOptions.parse("create", &words)
        #expect(create.values == ["--bundle": "/b", "--pid-file": "/p"])
        #expect(try create.id() == "id1")
        words = ["--no-pivot", "id1"][...]
        #expect(runtimeError { _ = try CommandOptions.parse("create", &words) } == "--no-pivot is not supported by cell-runtime")
        words = ["--all", "id1", "KILL"][...]
        let kill = try CommandOptions.parse("kill", &words)
        #expect(kill.flags == ["--all"])
        #expect(kill.positional == ["id1", "KILL"])
        words = ["--format", "json", "id1"][...]
        #expect(try CommandOptions.parse("ps", &words).values == ["--format": "json"])
        words = ["id1", "extra"][...]
        #expect(runtimeError { _ = try CommandOptions.parse("delete", &words) } == "delete: too many arguments: id1 extra")
        var globals = RuntimeCommandLine.Globals()
        words = ["--root", "/r", "--log=/l", "--log-format", "json", "--systemd-cgroup", "state", "x"][...]
        try RuntimeCommandLine.parseGlobals(&words, into: &globals)
        #expect(globals.root == "/r")
        #expect(globals.log == "/l")
        #expect(globals.logFormat == .json)
        #expect(Array(words) == ["state", "x"])
    }

    @Test func theFeaturesDocumentIsJSON() throws {
        let document = try JSONSerialization.jsonObject(with: Data(Features.document().utf8)) as! [String: Any]
        let linux = try #require(document["linux"] as? [String: Any])
        #expect(linux["namespaces"] as? [String] == ["pid", "network", "ipc", "uts", "mount", "cgroup", "time", "user"])
        #expect((linux["capabilities"] as? [String] ?? []).contains("CAP_SYS_ADMIN"))
        #expect(document["hooks"] as? [String] == [])
        #expect(((linux["seccomp"] as? [String: Any])?["enabled"]) as? Bool == true)
        #expect((document["annotations"] as? [String: Any])?[CellAnnotations.profile] != nil)
    }
}
