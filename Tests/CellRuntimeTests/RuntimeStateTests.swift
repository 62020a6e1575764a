import CellLauncher
import CellPolicy
import CellProfile
@testable import CellRuntime
import Foundation
import XCTest

/// The state directory, the annotations, the command line and the features document.
final class RuntimeStateTests: XCTestCase {
    var root = ""

    override func setUp() {
        root = NSTemporaryDirectory() + "cell-runtime-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: root)
    }

    func testTheStateDirectoryIsPrivate() throws {
        let store = try StateStore(root: root)
        var st = stat()
        XCTAssertEqual(lstat(root, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700)
        chmod(root, 0o755)
        XCTAssertThrowsError(try StateStore(root: root)) {
            XCTAssertTrue(($0 as! RuntimeError).message.contains("is open to others"))
        }
        chmod(root, 0o700)
        let link = root + "-link"
        symlink(root, link)
        defer { unlink(link) }
        XCTAssertThrowsError(try StateStore(root: link)) {
            XCTAssertTrue(($0 as! RuntimeError).message.contains("a symlink is refused"))
        }
        _ = store
    }

    func testARecordRoundTripsAndIsRemovedWhole() throws {
        let store = try StateStore(root: root)
        try store.create("c1")
        XCTAssertThrowsError(try store.create("c1")) { XCTAssertEqual(($0 as! RuntimeError).message, "container with id exists: c1") }
        XCTAssertNil(try store.read("c1"), "created, not yet recorded")
        XCTAssertEqual(StateStore.status(nil), .creating)
        let me = try XCTUnwrap(ProcessInfo.stat(getpid()))
        let record = ContainerRecord(id: "c1", bundle: "/b \"quoted\"", pid: getpid(), pidStart: me.start, monitor: getpid(),
                                     monitorStart: me.start, created: "2026-12-04T00:00:00.000Z", started: false,
                                     annotations: [("run.cell.profile", "strict"), ("k", "v\n")])
        try store.write(record)
        XCTAssertEqual(try store.read("c1"), record)
        XCTAssertEqual(StateStore.status(record), .created)
        var started = record
        started.started = true
        XCTAssertEqual(StateStore.status(started), .running)
        var reused = record
        reused.pidStart += 1
        XCTAssertEqual(StateStore.status(reused), .stopped, "a pid the kernel reused is not the container's")
        // Recorded by the monitor before pid 1 exists: creating while the monitor lives.
        var early = record
        early.pid = 0
        early.pidStart = 0
        XCTAssertEqual(StateStore.status(early), .creating)
        early.monitorStart += 1
        XCTAssertEqual(StateStore.status(early), .stopped, "a monitor that is gone creates nothing")
        mkfifo(store.startFIFO("c1"), 0o600)
        try store.remove("c1")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root), [])
        XCTAssertThrowsError(try store.read("c1")) { XCTAssertEqual(($0 as! RuntimeError).message, "container \"c1\" does not exist") }
    }

    func testIDsAndAnnotationNamesAreNeverPaths() throws {
        for id in ["", "..", ".hidden", "a/b", "a b", String(repeating: "x", count: 129), "x\n"] {
            XCTAssertFalse(StateStore.isValidID(id), id)
        }
        XCTAssertTrue(StateStore.isValidID("45f515f8bc8f792f8b30577a68ecbd6a15086e23301cf254e97c02e43e4add4c"))
        func config(_ annotations: [String: String]) throws -> OCIConfig {
            let notes = annotations.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ",")
            return try OCIConfig.parse(#"{"ociVersion": "1.0.2", "root": {"path": "r"}, "process": {"args": ["sh"], "cwd": "/"}, "annotations": {"# + notes + "}}", file: "c")
        }
        for name in ["../../etc/passwd", "/tmp/log", "a/b"] {
            XCTAssertThrowsError(try CellAnnotations.auditLogPath(config([CellAnnotations.auditLog: name])) { "/audit" }) {
                XCTAssertTrue(($0 as! RuntimeError).message.contains("is not a file name"), "\($0)")
            }
        }
        XCTAssertEqual(try CellAnnotations.auditLogPath(config([CellAnnotations.auditLog: "job-1.jsonl"])) { "/audit" }, "/audit/job-1.jsonl")
        XCTAssertNil(try CellAnnotations.auditLogPath(config([:])) { "/audit" })
        let loader = ProfileLoader(variables: ProfileVariables(cwd: "/", home: "/nonexistent", tmpdir: "/tmp", uid: 1000),
                                   userDirectory: nil, systemDirectory: nil)
        for name in ["/etc/cell/profiles/x.toml", "x.toml", "../strict", "./strict"] {
            XCTAssertThrowsError(try CellAnnotations.profile(config([CellAnnotations.profile: name]), loader: loader)) {
                XCTAssertTrue(($0 as! RuntimeError).message.contains("is not a profile name"), "\($0)")
            }
        }
        XCTAssertEqual(try CellAnnotations.profile(config([:]), loader: loader).name, "default")
        XCTAssertEqual(try CellAnnotations.profile(config([CellAnnotations.profile: "strict"]), loader: loader).name, "strict")
        XCTAssertEqual(AuditDirectory.path(stateHome: nil, home: "/home/u", realRoot: false), "/home/u/.local/state/cell/audit")
        XCTAssertEqual(AuditDirectory.path(stateHome: "/s", home: "/home/u", realRoot: false), "/s/cell/audit")
        XCTAssertEqual(AuditDirectory.path(stateHome: nil, home: nil, realRoot: true), "/var/log/cell/audit")
    }

    func testTheCommandLine() throws {
        XCTAssertEqual(try Signals.parse("9"), SIGKILL)
        XCTAssertEqual(try Signals.parse("TERM"), SIGTERM)
        XCTAssertEqual(try Signals.parse("sigusr1"), SIGUSR1)
        XCTAssertThrowsError(try Signals.parse("NOPE"))
        XCTAssertThrowsError(try Signals.parse("0"))
        var words = ["--bundle=/b", "--pid-file", "/p", "--no-new-keyring", "id1"][...]
        let create = try CommandOptions.parse("create", &words)
        XCTAssertEqual(create.values, ["--bundle": "/b", "--pid-file": "/p"])
        XCTAssertEqual(try create.id(), "id1")
        words = ["--no-pivot", "id1"][...]
        XCTAssertThrowsError(try CommandOptions.parse("create", &words)) {
            XCTAssertEqual(($0 as! RuntimeError).message, "--no-pivot is not supported by cell-runtime")
        }
        words = ["--all", "id1", "KILL"][...]
        let kill = try CommandOptions.parse("kill", &words)
        XCTAssertEqual(kill.flags, ["--all"])
        XCTAssertEqual(kill.positional, ["id1", "KILL"])
        words = ["id1", "extra"][...]
        XCTAssertThrowsError(try CommandOptions.parse("delete", &words))
        var globals = RuntimeCommandLine.Globals()
        words = ["--root", "/r", "--log=/l", "--log-format", "json", "--systemd-cgroup", "state", "x"][...]
        try RuntimeCommandLine.parseGlobals(&words, into: &globals)
        XCTAssertEqual(globals.root, "/r")
        XCTAssertEqual(globals.log, "/l")
        XCTAssertEqual(globals.logFormat, .json)
        XCTAssertEqual(Array(words), ["state", "x"])
    }

    func testTheFeaturesDocumentIsJSON() throws {
        let document = try JSONSerialization.jsonObject(with: Data(Features.document().utf8)) as! [String: Any]
        let linux = try XCTUnwrap(document["linux"] as? [String: Any])
        XCTAssertEqual(linux["namespaces"] as? [String], ["pid", "network", "ipc", "uts", "mount", "cgroup", "time", "user"])
        XCTAssertTrue((linux["capabilities"] as? [String] ?? []).contains("CAP_SYS_ADMIN"))
        XCTAssertEqual(document["hooks"] as? [String], [])
        XCTAssertEqual(((linux["seccomp"] as? [String: Any])?["enabled"]) as? Bool, true)
        XCTAssertNotNil((document["annotations"] as? [String: Any])?[CellAnnotations.profile])
    }
}
