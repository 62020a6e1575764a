import Foundation
import Testing

/// --status-json and --audit-log: files cell writes for you, which a sandbox may have prepared
/// a trap for (a symlink, a FIFO, a directory swapped for a symlink) in a directory it can write.
@Suite(.enabled(if: Sandbox.available, "cell cannot start a sandbox on this machine"))
struct ReportFileTests {
    /// A directory the unprivileged user can write, with a file of theirs to protect.
    static func trapDirectory() throws -> (dir: String, victim: String) {
        let dir = try Sandbox.writableHostDirectory()
        let victim = "\(dir)/victim"
        #expect(Sandbox.execute(Sandbox.dropPrivileges + ["sh", "-c", "echo precious > \(victim)"]).status == 0)
        return (dir, victim)
    }

    @Test("a symlink a previous sandbox left at the report's path is refused, and the file it points to is untouched")
    func symlinkLeftBehind() throws {
        let (dir, victim) = try Self.trapDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A sandbox with the directory writable plants the link...
        let plant = Sandbox.run(["ln", "-s", victim, "\(dir)/status.json"], options: ["--bind", dir])
        #expect(plant.status == 0, "\(plant.stderr)")
        // ...which a plain write through the path would follow (the attack works)...
        let naive = Sandbox.execute(Sandbox.dropPrivileges + ["sh", "-c", "cat \(dir)/status.json"])
        #expect(naive.stdout == "precious\n")
        // ...and cell refuses it, before anything runs, for both reports.
        for option in ["--status-json", "--audit-log"] {
            let r = Sandbox.run(["sh", "-c", "echo ran"], options: [option, "\(dir)/status.json"])
            #expect(r.status == 125 && r.stdout.isEmpty && r.stderr.contains("it is a symlink"), "\(option): \(r.stderr)")
        }
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious\n")
    }

    @Test("a FIFO at the report's path cannot hold cell: it is refused at once")
    func fifoAtThePath() throws {
        let (dir, _) = try Self.trapDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(Sandbox.run(["mkfifo", "\(dir)/status.json"], options: ["--bind", dir]).status == 0)
        let started = Date()
        let r = Sandbox.run(["true"], options: ["--status-json", "\(dir)/status.json"], timeout: 20)
        #expect(r.status == 125 && r.stderr.contains("not a regular file"), "\(r.stderr)")
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test("a directory on the path swapped for a symlink is refused: the log never lands where the link points")
    func directorySwappedForSymlink() throws {
        let (dir, _) = try Self.trapDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(Sandbox.execute(Sandbox.dropPrivileges + ["mkdir", "\(dir)/logs", "\(dir)/elsewhere"]).status == 0)
        let swap = Sandbox.run(["sh", "-c", "rmdir \(dir)/logs && ln -s \(dir)/elsewhere \(dir)/logs"], options: ["--bind", dir])
        #expect(swap.status == 0, "\(swap.stderr)")
        let r = Sandbox.run(["true"], options: ["--audit-log", "\(dir)/logs/audit.jsonl"])
        #expect(r.status == 125 && r.stderr.contains("is a symlink in a directory others can write"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/elsewhere/audit.jsonl"))
    }

    @Test("the report is written through the file opened before the sandbox ran; replaced meanwhile, cell says so")
    func replacedDuringTheRun() throws {
        let (dir, victim) = try Self.trapDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let status = "\(dir)/status.json"
        let r = Sandbox.run(["sh", "-c", "rm \(status) && ln -s \(victim) \(status)"], options: ["--bind", dir, "--status-json", status])
        #expect(r.status == 0)
        #expect(r.stderr.contains("note: --status-json \(status) is inside \(dir), which the sandbox can write"), "\(r.stderr)")
        #expect(r.stderr.contains("was replaced while the sandbox ran"), "\(r.stderr)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious\n")
    }
}
