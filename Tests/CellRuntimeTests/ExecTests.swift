import CellLauncher
import CellPolicy
@testable import CellRuntime
import Foundation
import Glibc
import Testing

/// `cell-runtime exec`'s checks: a process.json may only say what the process is; what it asks
/// beyond the container's own settings is refused by name. And the request itself, as the
/// monitor reads it back.
struct ExecTests {
    func container() throws -> OCIConfig {
        try OCIConfig.parse(try ContainerPlannerTests().podmanConfig(), file: "config.json")
    }

    /// The container's own process, as a process.json, with `edit` applied.
    func process(_ edit: (inout [String: Any]) -> Void = { _ in }) throws -> OCIProcess {
        let config = try JSONSerialization.jsonObject(with: Data(try ContainerPlannerTests().podmanConfig().utf8)) as! [String: Any]
        var object = config["process"] as! [String: Any]
        edit(&object)
        let text = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        return try OCIProcess.parse(text, file: "process.json")
    }

    func refusal(_ edit: (inout [String: Any]) -> Void) throws -> String? {
        let process = try process(edit), container = try container()
        do throws(RuntimeError) {
            try Lifecycle.checkExec(process, against: container)
            return nil
        } catch {
            return error.message
        }
    }

    @Test func theContainersOwnSettingsPass() throws {
        try Lifecycle.checkExec(try process(), against: try container())
        // What a process is may differ: its arguments, environment, directory, terminal.
        #expect(try refusal {
            $0["args"] = ["/bin/ls", "-l"]
            $0["env"] = ["A=1"]
            $0["cwd"] = "/tmp"
            $0["terminal"] = true
        } == nil)
    }

    @Test func whatExecRefuses() throws {
        #expect(try refusal { $0["user"] = ["uid": 1000, "gid": 1000] }?.contains("runs processes as the container's user (uid 0, gid 0)") == true)
        #expect(try refusal {
            var caps = $0["capabilities"] as! [String: Any]
            caps["bounding"] = (caps["bounding"] as! [String]) + ["CAP_SYS_ADMIN"]
            caps["permitted"] = (caps["permitted"] as! [String]) + ["CAP_SYS_ADMIN"]
            $0["capabilities"] = caps
        }?.contains("the process asks for") == true)
        #expect(try refusal { $0["capabilities"] = [String: Any]() }?.contains("the process asks for none") == true)
        #expect(try refusal { $0["rlimits"] = [["type": "RLIMIT_NOFILE", "soft": 10, "hard": 10]] }?.contains("rlimits") == true)
        #expect(try refusal { $0["user"] = ["uid": 0, "gid": 0, "umask": 0o077] }?.contains("umask (22); the process asks for 77") == true)
        #expect(try refusal { $0["apparmorProfile"] = "unconfined" } == "process.apparmorProfile is not supported: an exec'd process gets the container's own security settings")
        #expect(throws: RuntimeError.self) { try process { $0["args"] = [String]() } }
    }

    @Test func aRequestRoundTripsThroughItsRecords() throws {
        let request = try ProcessRequest(arguments: ["/bin/sh", "-c", "echo hi"], environment: ["PATH=/bin"], workingDirectory: "/work",
                                         terminal: .init(rows: 30, columns: 90))
        let bytes = PlanEncoding.encode(request.records)
        #expect(try ProcessRequest(records: PlanEncoding.decode(bytes, headed: false)) == request)
        #expect(request.records.first == .process(rows: 30, columns: 90, workingDirectory: "/work"))
        #expect(request.records.last == .endProcess)
    }

    @Test func malformedRequestsAreRefused() throws {
        #expect(throws: LaunchError.self) { try ProcessRequest(arguments: [], environment: [], workingDirectory: "/", terminal: nil) }
        #expect(throws: LaunchError.self) { try ProcessRequest(arguments: ["ls"], environment: [], workingDirectory: "work", terminal: nil) }
        #expect(throws: LaunchError.self) { try ProcessRequest(arguments: ["ls"], environment: [], workingDirectory: "/a/../b", terminal: nil) }
        #expect(throws: LaunchError.self) { try ProcessRequest(arguments: ["ls"], environment: ["=x"], workingDirectory: "/", terminal: nil) }
        #expect(throws: LaunchError.self) { try ProcessRequest(arguments: ["l\0s"], environment: [], workingDirectory: "/", terminal: nil) }
        // Records out of order, or not a request's.
        #expect(throws: LaunchError.self) { try ProcessRequest(records: [.argument("ls"), .process(rows: 0, columns: 0, workingDirectory: "/"), .endProcess]) }
        #expect(throws: LaunchError.self) { try ProcessRequest(records: [.process(rows: 0, columns: 0, workingDirectory: "/"), .argument("ls")]) }
        #expect(throws: LaunchError.self) {
            try ProcessRequest(records: [.process(rows: 0, columns: 0, workingDirectory: "/"), .environment("A=1"), .argument("ls"), .endProcess])
        }
        #expect(throws: LaunchError.self) { try ProcessRequest(records: [.process(rows: 5, columns: 0, workingDirectory: "/"), .argument("ls"), .endProcess]) }
        #expect(throws: LaunchError.self) { try ProcessRequest(records: [.process(rows: 0, columns: 0, workingDirectory: "/"), .hold, .argument("ls"), .endProcess]) }
    }
}
