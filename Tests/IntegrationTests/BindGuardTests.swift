import Foundation
import Glibc
import Testing

/// What a bound directory holds that a read-only bind does not stop: sockets and FIFOs (channels
/// to host services) and, in a writable bind, `.git` (code that git on the host runs). Each
/// attack is first shown to work without the sandbox, then checked from the host side.
@Suite(.enabled(if: Sandbox.available, "cell cannot start a sandbox on this machine"))
struct BindGuardTests {
    /// A listening unix socket at `path` (anyone may connect), non-blocking.
    static func listen(at path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(bound == 0 && Glibc.listen(fd, 8) == 0 && chmod(path, 0o777) == 0)
        return fd
    }

    /// Whether a connection is waiting on the listener (accepting it).
    static func accepted(_ listener: Int32) -> Bool {
        let fd = accept(listener, nil, nil)
        if fd >= 0 { close(fd) }
        return fd >= 0
    }

    /// Bytes waiting in a FIFO opened non-blocking for reading.
    static func drain(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = read(fd, &buffer, buffer.count)
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
    }

    @Test("a host socket and FIFO in the read-only working directory are no channel: masked, shown by --dry-run")
    func socketsAndFIFOs() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let listener = try Self.listen(at: "\(dir)/agent.sock")
        defer { close(listener) }
        #expect(mkfifo("\(dir)/fifo", 0o666) == 0 && chmod("\(dir)/fifo", 0o666) == 0)
        let reader = open("\(dir)/fifo", O_RDONLY | O_NONBLOCK)
        defer { close(reader) }
        let script = """
        import socket, sys
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect('\(dir)/agent.sock'); print('connected')
        except OSError as e:
            print('refused', e.errno)
        try:
            with open('\(dir)/fifo', 'w') as f: f.write('written')
        except OSError as e:
            print('fifo', e.errno)
        """
        // Outside, as the same user: both channels work.
        let outside = Sandbox.execute(Sandbox.dropPrivileges + ["/usr/bin/python3", "-c", script], cwd: dir)
        #expect(outside.stdout == "connected\n" && Self.accepted(listener) && Self.drain(reader) == "written",
                "the attack does not work outside: \(outside.stdout) \(outside.stderr)")
        // Inside, the working directory bound read-only: nothing reaches the host.
        let inside = Sandbox.run(["python3", "-c", script], cwd: dir)
        #expect(inside.stdout.hasPrefix("refused 111"), "\(inside.stdout) \(inside.stderr)")
        #expect(!Self.accepted(listener), "the host's socket accepted a connection from the sandbox")
        #expect(Self.drain(reader) == "", "the host's FIFO received the sandbox's write")
        let dryRun = Sandbox.run(["true"], options: ["--dry-run"], cwd: dir)
        #expect(dryRun.stdout.contains("ro-bind /dev/null -> \(dir)/agent.sock") && dryRun.stdout.contains("ro-bind /dev/null -> \(dir)/fifo"),
                "\(dryRun.stdout)")
    }

    @Test("a .git in a writable bind stays read-only: no core.fsmonitor or hook for git on the host to run; writable_git opts out")
    func gitInAWritableBind() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let repo = "\(dir)/repo", marker = "\(dir)/PWNED"
        let user = Sandbox.dropPrivileges + ["env", "HOME=\(dir)", "git", "-C", repo]
        #expect(Sandbox.execute(Sandbox.dropPrivileges + ["git", "init", "-q", repo]).status == 0)
        let plant = "git config core.fsmonitor 'touch \(marker); false'"
        // Outside: the planted config runs at the next `git status` on the host.
        #expect(Sandbox.execute(Sandbox.dropPrivileges + ["sh", "-c", plant], cwd: repo).status == 0)
        _ = Sandbox.execute(user + ["status"])
        #expect(FileManager.default.fileExists(atPath: marker), "the attack does not work outside")
        try FileManager.default.removeItem(atPath: marker)
        #expect(Sandbox.execute(user + ["config", "--unset", "core.fsmonitor"]).status == 0)

        // Inside, the repository bound writable (as the ci profile binds a checkout).
        let inside = Sandbox.run(["sh", "-c", plant + "; echo config=$?; echo 'touch \(marker)' > .git/hooks/pre-commit; echo hook=$?; echo built > out; echo build=$?"],
                                 options: ["--bind", repo], cwd: repo)
        #expect(inside.stdout == "config=255\nhook=2\nbuild=0\n", "\(inside.stdout) \(inside.stderr)")
        _ = Sandbox.execute(user + ["status"])
        #expect(!FileManager.default.fileExists(atPath: marker), "git on the host ran what the sandbox planted")
        #expect(Sandbox.execute(user + ["config", "core.fsmonitor"]).status == 1, "core.fsmonitor is set")
        #expect(FileManager.default.fileExists(atPath: "\(repo)/out"), "the rest of the checkout stays writable")

        // A profile that says writable_git = true gets what it asked for.
        let profile = "\(dir)/profile.toml"
        try "extends = \"default\"\n[filesystem]\nwritable_git = true\n".write(toFile: profile, atomically: true, encoding: .utf8)
        chmod(profile, 0o644)
        let opted = Sandbox.run(["git", "config", "user.name", "inside"], options: ["--profile", profile, "--bind", repo], cwd: repo)
        #expect(opted.status == 0, "\(opted.stderr)")
        #expect(Sandbox.execute(user + ["config", "user.name"]).stdout == "inside\n")
    }

    /// Plants core.fsmonitor in `repo` (git -C repo config) from inside, with `options`, then runs
    /// git status there on the host; true when the planted command ran on the host.
    func plantAndCheck(repo: String, marker: String, options: [String]) -> (ran: Bool, inside: String) {
        let plant = "git config core.fsmonitor 'touch \(marker); false'; echo config=$?"
        let inside = Sandbox.run(["sh", "-c", plant], options: options, cwd: repo)
        _ = Sandbox.execute(Sandbox.dropPrivileges + ["env", "HOME=/tmp", "git", "-C", repo, "status"])
        return (FileManager.default.fileExists(atPath: marker), inside.stdout + inside.stderr)
    }

    @Test("git directories stay read-only where they hide: under a system-looking path, behind --separate-git-dir, past padding")
    func gitWhereItHides() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let marker = "\(dir)/PWNED"
        // A checkout under /dev/shm (a system path's prefix): walked all the same.
        let shm = "/dev/shm/cell-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: shm, withIntermediateDirectories: false)
        chmod(shm, 0o777)
        defer { try? FileManager.default.removeItem(atPath: shm) }
        #expect(Sandbox.execute(Sandbox.dropPrivileges + ["git", "init", "-q", "\(shm)/repo"]).status == 0)
        var r = plantAndCheck(repo: "\(shm)/repo", marker: marker, options: ["--bind", "\(shm)/repo"])
        #expect(!r.ran && r.inside.contains("config=255"), "\(r.inside)")
        // --separate-git-dir: the .git file is a pointer; the git directory beside it is the target.
        #expect(Sandbox.execute(Sandbox.dropPrivileges + ["git", "init", "-q", "--separate-git-dir=\(dir)/sep/gitdata", "\(dir)/sep/work"]).status == 0)
        r = plantAndCheck(repo: "\(dir)/sep/work", marker: marker, options: ["--bind", "\(dir)/sep"])
        #expect(!r.ran && r.inside.contains("config=255"), "\(r.inside)")
        // A previous run padded the checkout with more entries than any budget: its .git is still found.
        #expect(Sandbox.execute(Sandbox.dropPrivileges + ["git", "init", "-q", "\(dir)/padded"]).status == 0)
        #expect(Sandbox.execute(Sandbox.dropPrivileges + ["sh", "-c", "cd \(dir)/padded && seq 25000 | xargs touch"]).status == 0)
        r = plantAndCheck(repo: "\(dir)/padded", marker: marker, options: ["--bind", "\(dir)/padded"])
        #expect(!r.ran && r.inside.contains("config=255"), "\(r.inside)")
        // Without the guard (writable_git), the same plant does run on the host: the check is real.
        let profile = "\(dir)/wg.toml"
        try "extends = \"default\"\n[filesystem]\nwritable_git = true\n".write(toFile: profile, atomically: true, encoding: .utf8)
        chmod(profile, 0o644)
        r = plantAndCheck(repo: "\(dir)/padded", marker: marker, options: ["--bind", "\(dir)/padded", "-p", profile])
        #expect(r.ran, "with writable_git the plant should work: \(r.inside)")
    }

    @Test("a socket in a directory cell cannot list (mode 0111) is unreachable: the directory is hidden")
    func unlistableDirectory() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { chmod("\(dir)/hid", 0o755); try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: "\(dir)/hid", withIntermediateDirectories: false)
        let listener = try Self.listen(at: "\(dir)/hid/agent.sock")
        defer { close(listener) }
        chmod("\(dir)/hid", 0o111)
        let script = "import socket\ntry:\n    socket.socket(socket.AF_UNIX).connect('\(dir)/hid/agent.sock'); print('connected')\nexcept OSError as e:\n    print('refused', e.errno)"
        let outside = Sandbox.execute(Sandbox.dropPrivileges + ["/usr/bin/python3", "-c", script], cwd: dir)
        #expect(outside.stdout == "connected\n" && Self.accepted(listener), "the attack does not work outside: \(outside.stdout) \(outside.stderr)")
        let inside = Sandbox.run(["python3", "-c", script], cwd: dir)
        #expect(inside.stdout.hasPrefix("refused"), "\(inside.stdout) \(inside.stderr)")
        #expect(!Self.accepted(listener), "the host's socket accepted a connection from the sandbox")
    }
}
