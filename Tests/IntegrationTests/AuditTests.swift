import Foundation
import Testing

/// The audit logger: violations recorded through seccomp user notification, as JSON Lines.
@Suite(.enabled(if: Sandbox.available, "cell cannot start a sandbox on this machine"))
struct AuditTests {
    static func events(_ path: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return try text.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    /// A directory the sandbox cannot see, for the log (the test user may write it).
    static func logDirectory() throws -> String { try Sandbox.writableHostDirectory() }

    static func profile(_ text: String, in dir: String) throws -> String {
        let path = "\(dir)/profile.toml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o644)
        return path
    }

    @Test("mount, keyctl and ptrace inside give exactly three events with names, pids, args and paths")
    func threeViolations() throws {
        let dir = try Self.logDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = "\(dir)/audit.jsonl"
        let r = Sandbox.run(["python3", "-c", """
            import ctypes, os
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mount(b"/src", b"/mnt", b"tmpfs", 0, None)
            libc.syscall(250, 0, 0, 0, 0, 0)
            libc.ptrace(16, 1, 0, 0)
            print(os.getpid())
            """], options: ["--audit-log", log])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.isEmpty, "with --audit-log there is no stderr summary: \(r.stderr)")
        let events = try Self.events(log)
        #expect(events.map { $0["event"] as? String } == ["start", "syscall", "syscall", "syscall", "exit"])
        let calls = events.filter { $0["event"] as? String == "syscall" }
        #expect(calls.map { $0["syscall"] as? String } == ["mount", "keyctl", "ptrace"])
        #expect(calls.map { $0["nr"] as? Int } == [165, 250, 101])
        let sandboxPID = Int(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        for call in calls {
            #expect(call["v"] as? Int == 1)
            #expect(call["action"] as? String == "denied")
            #expect(call["errno"] as? String == "EPERM")
            #expect(call["arch"] as? String == "x86_64")
            #expect(call["sandbox_pid"] as? Int == sandboxPID)
            #expect((call["pid"] as? Int ?? 0) > 1 && call["pid"] as? Int != sandboxPID, "the host pid differs from the sandbox's")
            #expect((call["args"] as? [String])?.count == 6)
            #expect((call["time"] as? String)?.hasSuffix("Z") == true)
            #expect(call["sandbox"] as? String == events[0]["sandbox"] as? String)
        }
        #expect(calls[0]["path"] as? String == "/src")
        #expect(calls[0]["paths"] as? [String] == ["/src", "/mnt"])
        #expect((calls[2]["args"] as? [String])?.prefix(2) == ["0x10", "0x1"])
        let start = events[0], exit = events[4]
        #expect(start["profile"] as? String == "default")
        #expect(start["command"] as? [String] == ["python3", "-c"] + [(start["command"] as? [String] ?? [])[2]])
        #expect(exit["status"] as? Int == 0)
        #expect(exit["violations"] as? Int == 3)
    }

    @Test("without --audit-log, a one-line summary goes to stderr")
    func stderrSummary() {
        let r = Sandbox.run(["sh", "-c", "unshare -U true 2>/dev/null; unshare -U true 2>/dev/null; python3 -c 'import os; os.chroot(\"/\")' 2>/dev/null; true"])
        #expect(r.status == 0)
        #expect(r.stderr == "cell: 3 system calls denied: unshare ×2, chroot ×1 (record them all with --audit-log PATH)\n")
    }

    @Test("a denied call that takes a path records the path")
    func pathIsRecorded() throws {
        let dir = try Self.logDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = Sandbox.run(["sh", "-c", "mkdir /tmp/secret-plans 2>/dev/null || echo refused"],
                            options: ["--audit-log", "\(dir)/a.jsonl", "--deny-syscall", "mkdirat:EACCES", "--deny-syscall", "mkdir:EACCES"])
        #expect(r.stdout == "refused\n")
        let call = try #require(try Self.events("\(dir)/a.jsonl").first { $0["event"] as? String == "syscall" })
        #expect(call["path"] as? String == "/tmp/secret-plans")
        #expect(call["errno"] as? String == "EACCES")
    }

    @Test("the log action lets the call succeed and records it; the kill action ends the sandbox with 159")
    func logAndKill() throws {
        let dir = try Self.logDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let profile = try Self.profile("""
            extends = "default"
            [seccomp]
            rules = [
              { syscalls = ["mkdir", "mkdirat"], action = "log" },
              { syscalls = ["sethostname"], action = "kill" },
            ]
            """, in: dir)
        let log = "\(dir)/a.jsonl"
        let r = Sandbox.run(["sh", "-c", "mkdir /tmp/made && test -d /tmp/made && echo made; hostname changed; echo not-reached"],
                            options: ["--profile", profile, "--audit-log", log])
        #expect(r.stdout == "made\n")
        #expect(r.status == 159)
        #expect(r.stderr.contains("cell: the sandbox was killed: sethostname matches a kill rule"))
        let calls = try Self.events(log).filter { $0["event"] as? String == "syscall" }
        #expect(calls.map { $0["action"] as? String } == ["logged", "killed"])
        #expect(calls.first?["path"] as? String == "/tmp/made")
        #expect(try Self.events(log).last?["status"] as? Int == 159)
    }

    @Test("100,000 denied calls finish in seconds, rate-limited but counted")
    func burst() throws {
        let dir = try Self.logDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = "\(dir)/a.jsonl"
        let started = Date()
        let r = Sandbox.run(["python3", "-c", "import ctypes\nlibc = ctypes.CDLL(None)\nfor i in range(100000): libc.syscall(250, 0, 0, 0, 0, 0)\nprint('done')"],
                            options: ["--audit-log", log], timeout: 120)
        let elapsed = Date().timeIntervalSince(started)
        #expect(r.status == 0 && r.stdout == "done\n", "\(r.stderr)")
        #expect(elapsed < 30, "took \(elapsed) s")
        let events = try Self.events(log)
        let counted = events.filter { $0["event"] as? String == "syscall" }.reduce(0) { $0 + (($1["count"] as? Int) ?? 1) }
        #expect(counted == 100_000)
        #expect(events.count < 100, "the log holds \(events.count) lines")
        #expect(events.last?["violations"] as? Int == 100_000)
    }

    @Test("100,000 distinct unknown system calls and 20,000 repeated ones stay within the log's bounds, all counted")
    func boundedUnderAllowList() throws {
        let dir = try Self.logDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = "\(dir)/a.jsonl"
        // Under an allow-list every unknown number is a key of its own: before the bounds this
        // grew cell past 60 MB and the log to tens of MB.
        let r = Sandbox.run(["python3", "-c", """
            import ctypes
            libc = ctypes.CDLL(None)
            for nr in range(1000, 101000): libc.syscall(nr, 0, 0, 0, 0, 0)
            for _ in range(20):
                for nr in range(1000, 2000): libc.syscall(nr, 0, 0, 0, 0, 0)
            print('done')
            """], options: ["--profile", "strict", "--audit-log", log], timeout: 120)
        #expect(r.status == 0 && r.stdout == "done\n", "\(r.stderr)")
        #expect(r.stderr.contains("note: the sandbox caused more than 1000 distinct audit events"), "\(r.stderr)")
        #expect(r.stderr.contains("note: the audit log took its 10000 events for one sandbox"), "\(r.stderr)")
        let size = try #require(try FileManager.default.attributesOfItem(atPath: log)[.size] as? NSNumber).intValue
        #expect(size < 4 << 20, "the log holds \(size) bytes")
        let events = try Self.events(log)
        #expect(events.count < 11_100, "the log holds \(events.count) lines")
        #expect(events.filter { $0["event"] as? String == "bound" }.map { $0["which"] as? String } == ["keys", "events"])
        let calls = events.filter { $0["event"] as? String == "syscall" }
        #expect(calls.reduce(0) { $0 + (($1["count"] as? Int) ?? 1) } == 120_000)
        #expect(calls.first { $0["syscall"] as? String == "other" }?["count"] as? Int == 99_000)
        #expect(events.last?["violations"] as? Int == 120_000)
    }

    @Test("a full disk at the end of a run is said on stderr with the counts, and the next run starts on a line of its own",
          .enabled(if: Sandbox.isRoot, "mounting the small filesystem needs root (CI runs as root)"))
    func fullDiskAtTheEnd() throws {
        let dir = try Self.logDirectory()
        defer { _ = Sandbox.execute(["umount", dir]); try? FileManager.default.removeItem(atPath: dir) }
        #expect(Sandbox.execute(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0777", "tmpfs", dir]).status == 0)
        try FileManager.default.createDirectory(atPath: "\(dir)/data", withIntermediateDirectories: false)
        chmod("\(dir)/data", 0o777)
        let log = "\(dir)/a.jsonl"
        // 30 distinct denied calls past their burst, then the disk filled through the bind.
        let r = Sandbox.run(["python3", "-c", """
            import ctypes
            libc = ctypes.CDLL(None)
            for _ in range(25):
                for nr in range(1000, 1030): libc.syscall(nr, 0, 0, 0, 0, 0)
            try:
                with open('\(dir)/data/fill', 'wb') as f:
                    while True: f.write(b'x' * 4096); f.flush()
            except OSError:
                pass
            """], options: ["--profile", "strict", "--audit-log", log, "--bind", "\(dir)/data"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("cannot write to the audit log \(log)"), "\(r.stderr)")
        #expect(r.stderr.contains("the log lacks this run's end: 750 system calls denied"), "\(r.stderr)")
        // Room again: the next run's first event is a line of its own, whole.
        try FileManager.default.removeItem(atPath: "\(dir)/data/fill")
        let next = Sandbox.run(["true"], options: ["--audit-log", log])
        #expect(next.status == 0, "\(next.stderr)")
        let text = try String(contentsOfFile: log, encoding: .utf8)
        let start = text.split(separator: "\n").last { $0.contains("\"event\":\"start\"") }
        #expect(start?.hasPrefix("{\"v\":1") == true && start?.contains("\"command\":[\"true\"]") == true, "\(start ?? "none")")
    }

    @Test("a path of 4,095 bytes is recorded whole; a longer one is marked truncated")
    func pathLengths() throws {
        let dir = try Self.logDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = "\(dir)/a.jsonl"
        let r = Sandbox.run(["python3", "-c", """
            import ctypes
            libc = ctypes.CDLL(None)
            for n in (4095, 5000): libc.chroot(b'/' + b'a' * (n - 1))
            """], options: ["--audit-log", log])
        #expect(r.status == 0, "\(r.stderr)")
        let calls = try Self.events(log).filter { $0["event"] as? String == "syscall" }
        #expect(calls.map { ($0["path"] as? String)?.utf8.count ?? -1 } == [4095, 4096])
        #expect(calls.map { $0["path_truncated"] as? Bool ?? false } == [false, true])
    }

    @Test("the audit log is not reachable from inside: not on a path, not as a descriptor")
    func logIsUnreachable() throws {
        let dir = try Self.logDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = "\(dir)/a.jsonl"
        let r = Sandbox.run(["sh", "-c", "test -e \(log) && echo visible; ls -l /proc/self/fd/ /proc/1/fd/ 2>/dev/null | grep -c jsonl"],
                            options: ["--audit-log", log])
        #expect(r.stdout == "0\n", "\(r.stdout) \(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: log))
    }

    @Test("an audit log that cannot be written kills the sandbox: cell never runs unaudited", .enabled(if: Sandbox.isRoot))
    func writeFailureKills() throws {
        let dir = try Self.logDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A full filesystem under the log (a one-page tmpfs, filled): the log opens, and its
        // first event fails with ENOSPC. (The log must be a regular file: /dev/full is refused.)
        let full = "\(dir)/full"
        #expect(Sandbox.execute(["sh", "-c", "mkdir \(full) && mount -t tmpfs -o size=4k,mode=0777 cell-test \(full) && echo x > \(full)/filler"]).status == 0)
        defer { _ = Sandbox.execute(["umount", full]) }
        let r = Sandbox.run(["sh", "-c", "unshare -U true 2>/dev/null; touch \(dir)/survived"],
                            options: ["--audit-log", "\(full)/audit.jsonl", "--bind", dir])
        #expect(r.status == 125)
        #expect(r.stderr.contains("cannot write to the audit log \(full)/audit.jsonl"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/survived"))
    }

    @Test("when cell dies, a notified call never succeeds: the sandbox dies with it")
    func supervisorDeath() throws {
        let dir = try Self.logDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let marker = "\(Int.random(in: 100_000...999_999))"
        let sandbox = try RunningSandbox(["python3", "-c", """
            import ctypes, sys
            libc = ctypes.CDLL(None, use_errno=True)
            print('ready', flush=True)
            out = open('\(dir)/results', 'a')
            while True:
                r = libc.syscall(250, 0, 0, 0, 0, 0)
                out.write('%d %d\\n' % (r, ctypes.get_errno())); out.flush()
            # \(marker)
            """], options: ["--bind", dir])
        #expect(sandbox.waitFor("ready"))
        // Kill cell once the loop has made notified calls (a first result is written).
        #expect(eventually { (FileManager.default.contents(atPath: "\(dir)/results") ?? Data()).contains(UInt8(ascii: "\n")) })
        sandbox.signal(SIGKILL)
        _ = sandbox.wait()
        // The results are complete once the sandbox's python is gone.
        let left = hostProcessesLeft(containing: marker)
        #expect(left.isEmpty, "still alive: \(left)")
        let results = try String(contentsOfFile: "\(dir)/results", encoding: .utf8).split(separator: "\n")
        #expect(!results.isEmpty)
        #expect(results.allSatisfy { $0 == "-1 1" || $0 == "-1 38" }, "\(Set(results))")
    }

    @Test("cell audit summary digests a log")
    func summaryCommand() throws {
        let dir = try Self.logDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = "\(dir)/a.jsonl"
        _ = Sandbox.run(["sh", "-c", "mkdir /tmp/a; mkdir /tmp/b; unshare -U true"],
                        options: ["--audit-log", log, "--deny-syscall", "mkdir", "--deny-syscall", "mkdirat"])
        _ = Sandbox.run(["true"], options: ["--audit-log", log, "-p", "strict"])
        let r = Sandbox.execute([Sandbox.cell, "audit", "summary", log])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.filter { $0.hasPrefix("sandbox ") }.count == 2)
        #expect(lines.contains("  command:  sh -c 'mkdir /tmp/a; mkdir /tmp/b; unshare -U true'"))
        #expect(lines.contains("  profile:  strict (seccomp: strict)"))
        #expect(lines.contains { $0.hasPrefix("  ended:    exit 1 after ") })
        #expect(lines.contains { $0.hasPrefix("    mkdir") && $0.contains("denied ×2") && $0.contains("/tmp/a, /tmp/b") })
        #expect(lines.contains("    unshare denied ×1"))
        #expect(lines.contains("  violations: 0"))
    }

    @Test("a path the sandbox chose cannot drive the terminal: cell audit summary and the log escape every control")
    func terminalEscapesInPaths() throws {
        let dir = try Self.logDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = "\(dir)/a.jsonl"
        // The attack: a title, then "conceal" (ESC[8m) to hide the rest, then a forged line
        // and a C1 CSI (U+009B) — in the path of a denied call, which the log records.
        let script = #"""
        import os
        try:
            os.chroot('/x\x1b]0;pwned\x07\x1b[8m\nsandbox forged\n  violations: 0\x9b2J')
        except OSError:
            pass
        """#
        _ = Sandbox.run(["python3", "-c", script], options: ["--audit-log", log])
        let raw = try String(contentsOfFile: log, encoding: .utf8)
        // The path is in the log (the attack reached cell), as JSON escapes only.
        #expect(raw.contains("\\u001b]0;pwned\\u0007") && raw.contains("\\u009b2J"), "\(raw)")
        #expect(!raw.unicodeScalars.contains { $0.value == 0x1b || $0.value == 0x07 || $0.value == 0x9b })
        let r = Sandbox.execute([Sandbox.cell, "audit", "summary", log])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stdout.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" || (0x7f...0x9f).contains($0.value) }, "\(r.stdout)")
        #expect(r.stdout.contains("chroot denied ×1  /x\\e]0;pwned\\x07\\e[8m\\nsandbox forged\\n  violations: 0\\x9b2J"), "\(r.stdout)")
        #expect(r.stdout.split(separator: "\n").filter { $0.hasPrefix("sandbox ") }.count == 1)
    }
}
