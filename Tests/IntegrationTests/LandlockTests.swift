import Foundation
import Testing

/// The second wall: a Landlock domain that mirrors the view, under every namespace sandbox on
/// a kernel that has Landlock. Each test weakens or walks around the first wall on purpose and
/// proves from the host side that the second one holds.
@Suite(.enabled(if: Sandbox.available, "cell cannot start a sandbox on this machine"))
struct LandlockTests {
    /// A profile that weakens the first wall: root inside, CAP_SYS_ADMIN kept, @mount allowed.
    static func weakened(landlock mode: String, in dir: String) throws -> String {
        let path = "\(dir)/weak-\(mode).toml"
        try """
            extends = "default"
            identity = "root"
            [capabilities]
            keep = ["CAP_SYS_ADMIN"]
            [seccomp]
            allow = ["@mount"]
            [landlock]
            mode = "\(mode)"
            """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o644)
        return path
    }

    @Test("with @mount allowed and CAP_SYS_ADMIN kept, the command still cannot remount its read-only view writable, nor mount")
    func secondWallHolds() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // remount, and mount_setattr (clearing MOUNT_ATTR_RDONLY), which Landlock has no hook for.
        let setattr = "import ctypes\nlibc = ctypes.CDLL(None)\nattr = (ctypes.c_uint64 * 4)(0, 1, 0, 0)\n"
            + "print('setattr' if libc.syscall(442, -100, b'\(dir)', 0, attr, 32) == 0 else 'refused')"
        let attack = "mount -o remount,rw,bind \(dir) && echo remounted; echo x > \(dir)/escaped; mount -t tmpfs none \(dir) && echo mounted; "
            + "python3 -c \"$0\" && echo y > \(dir)/escaped-setattr"
        // The first wall alone, weakened: the remount works and the write lands on the host.
        let first = Sandbox.run(["sh", "-c", attack, setattr], options: ["-p", try Self.weakened(landlock: "off", in: dir)], cwd: dir)
        #expect(first.stdout.hasPrefix("remounted\n") && first.stdout.contains("setattr\n"), "the weakened first wall held anyway: \(first.stdout) \(first.stderr)")
        #expect(FileManager.default.fileExists(atPath: "\(dir)/escaped"), "the attack does not work without the second wall")
        try FileManager.default.removeItem(atPath: "\(dir)/escaped")
        try? FileManager.default.removeItem(atPath: "\(dir)/escaped-setattr")
        // With the second wall: no mount of any kind, no write outside the writable paths.
        let both = Sandbox.run(["sh", "-c", attack, setattr], options: ["-p", try Self.weakened(landlock: "required", in: dir)], cwd: dir)
        #expect(!both.stdout.contains("remounted") && !both.stdout.contains("mounted") && both.stdout.contains("refused"), "\(both.stdout) \(both.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/escaped") && !FileManager.default.fileExists(atPath: "\(dir)/escaped-setattr"),
                "the sandbox wrote into its read-only working directory")
        // What the view makes writable stays writable.
        let usual = Sandbox.run(["sh", "-c", "echo a > /tmp/a && cat /tmp/a && echo b > $HOME/b && cat $HOME/b && echo c > /dev/null"])
        #expect(usual.stdout == "a\nb\n", "\(usual.stdout) \(usual.stderr)")
    }

    @Test("an input file is not reopened for writing through /proc/self/fd/0; /dev/stdin still reads it")
    func inputStaysReadOnly() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = "\(dir)/input"
        let script = "cat /dev/stdin; echo overwritten > /proc/self/fd/0 && echo wrote"
        // Outside, as the same user (the file is theirs): the reopen for writing works.
        _ = Sandbox.execute(Sandbox.dropPrivileges + ["sh", "-c", "echo original > \(input)"])
        let outside = Sandbox.execute(Sandbox.dropPrivileges + ["sh", "-c", "exec sh -c '\(script)' < \(input)"])
        #expect(outside.stdout == "original\nwrote\n", "the attack does not work outside: \(outside.stdout) \(outside.stderr)")
        _ = Sandbox.execute(Sandbox.dropPrivileges + ["sh", "-c", "echo original > \(input)"])
        let inside = Sandbox.execute(Sandbox.dropPrivileges + ["sh", "-c", "exec \(Sandbox.cell) run -- sh -c '\(script)' < \(input)"])
        #expect(inside.stdout == "original\n", "\(inside.stdout) \(inside.stderr)")
        #expect(try String(contentsOfFile: input, encoding: .utf8) == "original\n", "the sandbox rewrote its input file")
        // A file given as stderr is written through /dev/stderr as before.
        let errors = Sandbox.execute(Sandbox.dropPrivileges + ["sh", "-c", "exec \(Sandbox.cell) run -- sh -c 'echo to-stderr > /dev/stderr' 2> \(dir)/errors"])
        #expect(errors.status == 0 && (try? String(contentsOfFile: "\(dir)/errors", encoding: .utf8)) == "to-stderr\n", "\(errors.stderr)")
    }

    @Test("--dry-run and the audit log's start event name the Landlock ABI in use; mode = \"off\" has none")
    func abiIsShown() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let dryRun = Sandbox.run(["true"], options: ["--dry-run"])
        #expect(dryRun.stdout.contains("landlock:     ABI "), "\(dryRun.stdout)")
        let log = "\(dir)/a.jsonl"
        #expect(Sandbox.run(["true"], options: ["--audit-log", log]).status == 0)
        let start = try #require(try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").first)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(start.utf8)) as? [String: Any])
        #expect((object["landlock"] as? Int ?? 0) >= 1 && object["isolation"] as? String == "namespaces", "\(start)")
        let off = Sandbox.run(["true"], options: ["--dry-run", "-p", try Self.weakened(landlock: "off", in: dir)])
        #expect(off.stdout.contains("landlock:     off (profile)") && !off.stdout.contains("landlock-path"), "\(off.stdout)")
    }
}
