import Foundation
import Testing

/// The launcher, end to end: real sandboxes, launched as an unprivileged uid.
@Suite(.enabled(if: Sandbox.available, "cell cannot start a sandbox on this machine"))
struct LauncherTests {
    @Test("you are yourself inside by default: uid, gid, name and home; --as-root is uid 0 and /root; files belong to you either way")
    func callerInsideByDefault() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = "id -u; id -g; id -un; echo \"$HOME $USER $LOGNAME\"; test -d \"$HOME\" -a -w \"$HOME\" && echo home-ok; touch \(dir)/made-by-$(id -u)"
        let r = Sandbox.run(["sh", "-c", script], options: ["--bind", dir])
        #expect(r.status == 0, "\(r.stderr)")
        let (name, home) = Sandbox.caller
        #expect(r.stdout == "\(Sandbox.callerUID)\n\(Sandbox.callerGID)\n\(name)\n\(home) \(name) \(name)\nhome-ok\n", "\(r.stderr)")
        let root = Sandbox.run(["sh", "-c", script], options: ["--bind", dir, "--as-root"])
        #expect(root.stdout == "0\n0\nroot\n/root root root\nhome-ok\n", "\(root.stderr)")
        for made in ["made-by-\(Sandbox.callerUID)", "made-by-0"] {
            let owner = try FileManager.default.attributesOfItem(atPath: "\(dir)/\(made)")[.ownerAccountID] as? NSNumber
            #expect(owner?.uint32Value == Sandbox.callerUID, "\(made)")
        }
    }

    @Test("real root launching cell is mapped to an unprivileged host uid, never to root",
          .enabled(if: Sandbox.isRoot))
    func rootCallerIsMappedAway() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = Sandbox.run(["sh", "-c", "id -u; cat /proc/self/uid_map; touch \(dir)/by-root"], options: ["--bind", dir], asRoot: true)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("0\n"))
        #expect(r.stdout.split(separator: "\n").dropFirst().first?.split(separator: " ").map(String.init) == ["0", "65534", "1"])
        let attrs = try FileManager.default.attributesOfItem(atPath: "\(dir)/by-root")
        #expect((attrs[.ownerAccountID] as? NSNumber)?.uint32Value == 65534)

        let custom = Sandbox.run(["sh", "-c", "touch \(dir)/by-custom"], options: ["--outer-id", "4242:4243", "--bind", dir], asRoot: true)
        #expect(custom.status == 0, "\(custom.stderr)")
        let customAttrs = try FileManager.default.attributesOfItem(atPath: "\(dir)/by-custom")
        #expect((customAttrs[.ownerAccountID] as? NSNumber)?.uint32Value == 4242)
        #expect((customAttrs[.groupOwnerAccountID] as? NSNumber)?.uint32Value == 4243)

        let zero = Sandbox.run(["true"], options: ["--outer-id", "0"], asRoot: true)
        #expect(zero.status == 125)
        #expect(zero.stderr.contains("host's root"))

        // A profile's outer_id: cell begins the sandbox with the default outer id before it
        // reads the profile, and must start over with the profile's.
        try "extends = \"default\"\nouter_id = \"4343:4344\"\n".write(toFile: "\(dir)/outer.toml", atomically: true, encoding: .utf8)
        let fromProfile = Sandbox.run(["sh", "-c", "touch \(dir)/by-profile"], options: ["--profile", "\(dir)/outer.toml", "--bind", dir], asRoot: true)
        #expect(fromProfile.status == 0, "\(fromProfile.stderr)")
        let profileAttrs = try FileManager.default.attributesOfItem(atPath: "\(dir)/by-profile")
        #expect((profileAttrs[.ownerAccountID] as? NSNumber)?.uint32Value == 4343)
        #expect((profileAttrs[.groupOwnerAccountID] as? NSNumber)?.uint32Value == 4344)
    }

    @Test("an unprivileged caller cannot choose another outer id")
    func outerIDNeedsRoot() {
        let r = Sandbox.run(["true"], options: ["--outer-id", "1234"])
        if Sandbox.isRoot || geteuid() != 1234 {
            #expect(r.status == 125)
            #expect(r.stderr.contains("--outer-id needs real root"))
        }
    }

    @Test("every namespace differs from the host's: user, pid, mnt, net, ipc, uts, cgroup")
    func namespacesAreNew() throws {
        let names = ["user", "pid", "mnt", "net", "ipc", "uts", "cgroup"]
        let r = Sandbox.run(["sh", "-c", names.map { "readlink /proc/self/ns/\($0)" }.joined(separator: "; ")])
        #expect(r.status == 0, "\(r.stderr)")
        let inside = r.stdout.split(separator: "\n").map(String.init)
        #expect(inside.count == names.count)
        for (name, link) in zip(names, inside) {
            let host = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/\(name)")
            #expect(link.hasPrefix("\(name):["), "\(name): \(link)")
            #expect(link != host, "the \(name) namespace is the host's")
        }
    }

    @Test("the command is pid 2 under cell-init as pid 1, and sees no host process")
    func pidNamespace() {
        let r = Sandbox.run(["sh", "-c", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "2")
        #expect(lines.dropFirst().first?.hasPrefix("cell-init") == true)
        // Only the sandbox's own processes: init, sh, and the pipeline's ls/grep/sort/tr.
        let pids = lines.last?.split(separator: " ").compactMap { Int($0) } ?? []
        #expect(pids.first == 1)
        #expect(pids.count <= 6, "pids visible: \(pids)")
        #expect(pids.allSatisfy { $0 < 20 }, "pids visible: \(pids)")
    }

    @Test("the network namespace has only lo, and it is up")
    func onlyLoopback() {
        let script = """
        import socket, fcntl, struct
        print(sorted(n for _, n in socket.if_nameindex()))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        flags = struct.unpack('16sH', fcntl.ioctl(s, 0x8913, struct.pack('16sH', b'lo', 0)))[1]
        print('up' if flags & 1 else 'down')
        srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1)
        c = socket.create_connection(srv.getsockname(), timeout=5); print('connected')
        """
        let r = Sandbox.run(["python3", "-c", script])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "['lo']\nup\nconnected\n")
    }

    @Test("the network namespace belongs to the sandbox's user namespace")
    func networkNamespaceOwner() {
        // It is made by a child of pid 1 and joined later: it must still be owned by the
        // sandbox's user namespace (NS_GET_USERNS), not by the host's.
        let script = """
        import os, fcntl
        owner = fcntl.ioctl(os.open('/proc/self/ns/net', os.O_RDONLY), 0xb701)
        print(os.fstat(owner).st_ino == os.stat('/proc/self/ns/user').st_ino)
        """
        let r = Sandbox.run(["python3", "-c", script])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "True\n")
    }

    @Test("hostname: 'cell' by default, --hostname sets it, the host's is untouched")
    func hostname() {
        let before = ProcessInfo.processInfo.hostName
        #expect(Sandbox.run(["hostname"]).stdout == "cell\n")
        let r = Sandbox.run(["hostname"], options: ["--hostname", "box-1.test"])
        #expect(r.stdout == "box-1.test\n", "\(r.stderr)")
        // Root of the namespace has no CAP_SYS_ADMIN left to change it from inside.
        let change = Sandbox.run(["sh", "-c", "hostname changed 2>/dev/null; hostname"])
        #expect(change.stdout == "cell\n")
        #expect(ProcessInfo.processInfo.hostName == before)
        let bad = Sandbox.run(["true"], options: ["--hostname", "bad/name"])
        #expect(bad.status == 125)
    }

    @Test("exit statuses: the command's own, 128+N for a signal", arguments: [
        ("exit 0", Int32(0)), ("exit 7", 7), ("kill -9 $$", 137), ("kill -TERM $$", 143),
    ])
    func exitStatus(script: String, expected: Int32) {
        let r = Sandbox.run(["sh", "-c", script])
        #expect(r.status == expected, "\(script): \(r.stderr)")
    }

    @Test("python's os._exit(7) is cell's exit status")
    func pythonExit() {
        #expect(Sandbox.run(["python3", "-c", "import os; os._exit(7)"]).status == 7)
    }

    @Test("127 for a command that is not found, 126 for one that cannot be executed, each with a message")
    func commandNotRunnable() throws {
        let missing = Sandbox.run(["no-such-command-xyz"])
        #expect(missing.status == 127)
        #expect(missing.stderr.contains("no-such-command-xyz: command not found"))
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        FileManager.default.createFile(atPath: "\(dir)/data", contents: Data("x".utf8), attributes: [.posixPermissions: 0o644])
        let notExecutable = Sandbox.run(["\(dir)/data"], options: ["--ro-bind", dir])
        #expect(notExecutable.status == 126)
        #expect(notExecutable.stderr.contains("\(dir)/data: cannot execute: Permission denied"))
    }

    @Test("SIGTERM sent to cell reaches the command")
    func signalForwarding() throws {
        let trapped = try RunningSandbox(["sh", "-c", "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done"])
        #expect(trapped.waitFor("ready"))
        trapped.signal(SIGTERM)
        #expect(trapped.wait() == 42)
        #expect(trapped.stdout.contains("got-term"))

        // A command without a handler dies of the signal, and cell reports 128+15. "ready"
        // comes from the shell before it executes sleep: the signal is sent once sleep runs.
        let plainMarker = "\(Int.random(in: 100_000...999_999)).5"
        let plain = try RunningSandbox(["sh", "-c", "echo ready; exec sleep \(plainMarker)"])
        #expect(plain.waitFor("ready"))
        #expect(eventually { hostProcesses(containing: "sleep\0\(plainMarker)").count == 1 }, "sleep never ran: \(plain.stderr)")
        plain.signal(SIGTERM)
        #expect(plain.wait() == 143)

        let interruptedMarker = "\(Int.random(in: 100_000...999_999)).25"
        let interrupted = try RunningSandbox(["sh", "-c", "echo ready; exec sleep \(interruptedMarker)"])
        #expect(interrupted.waitFor("ready"))
        #expect(eventually { hostProcesses(containing: "sleep\0\(interruptedMarker)").count == 1 }, "sleep never ran: \(interrupted.stderr)")
        interrupted.signal(SIGINT)
        #expect(interrupted.wait() == 130)
    }

    @Test("killing cell with SIGKILL leaves no sandboxed process alive")
    func dieWithSupervisor() throws {
        let marker = "\(Int.random(in: 100_000...999_999)).5"
        let sandbox = try RunningSandbox(["sh", "-c", "sleep \(marker) & sleep \(marker) & echo ready; wait"])
        #expect(sandbox.waitFor("ready"))
        // "ready" can come before the backgrounded shells have executed sleep: wait until both have.
        #expect(eventually { hostProcesses(containing: "sleep\0\(marker)").count == 2 },
                "running: \(hostProcesses(containing: "sleep\0\(marker)"))")
        sandbox.signal(SIGKILL)
        _ = sandbox.wait()
        let left = hostProcessesLeft(containing: "sleep\0\(marker)")
        #expect(left.isEmpty, "still alive: \(left)")
    }

    @Test("killing cell at any moment of the start-up leaves nothing behind")
    func killDuringStartUp() {
        // SIGKILL at random moments of 200 launches, most of them before the sandbox runs: the
        // clone's child (a fork of cell until it executes cell-init) must die with cell too.
        let marker = "\(Int.random(in: 100_000...999_999)).25"
        let drop = Sandbox.dropPrivileges.map { "'\($0)'" }.joined(separator: ", ")
        let script = """
        import os, random, signal, subprocess, time
        for _ in range(200):
            p = subprocess.Popen([\(drop.isEmpty ? "" : drop + ", ")'\(Sandbox.cell)', 'run', '--', 'sleep', '\(marker)'],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(random.uniform(0, 0.02))
            p.send_signal(signal.SIGKILL)
            p.wait()
        """
        let r = Sandbox.execute(["python3", "-c", script], timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        let left = hostProcessesLeft(containing: marker)
        #expect(left.isEmpty, "still alive: \(left)")
        for pid in left { kill(pid, SIGKILL) }
    }

    @Test("a policy that denies what pid 1 needs to run the command is refused before anything starts",
          arguments: ["close", "write", "wait4", "rt_sigaction"])
    func policyDeniesWhatInitNeeds(call: String) {
        let r = Sandbox.run(["echo", "ran"], options: ["--deny-syscall", call])
        #expect(r.status == 125)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr == "cell: seccomp policy 'default' does not allow \(call), which the sandbox's pid 1 needs to start and supervise the command (allow it: --allow-syscall \(call))\n")
    }

    @Test("no descriptor above 2 leaks in, even one opened without O_CLOEXEC")
    func noLeakedDescriptors() {
        let r = Sandbox.execute(Sandbox.dropPrivileges + ["sh", "-c",
            "exec 7</ 8>/dev/null; exec \(Sandbox.cell) run -- python3 -c 'import os; print(sorted(int(f) for f in os.listdir(\"/proc/self/fd\")))'"])
        #expect(r.status == 0, "\(r.stderr)")
        // 0, 1, 2 and the directory listdir itself opened.
        #expect(r.stdout == "[0, 1, 2, 3]\n")
        // Nor with a policy that denies close_range: pid 1's own descriptors are close-on-exec
        // from its first step, before any filter is loaded.
        let denied = Sandbox.run(["python3", "-c", "import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd')))"],
                                 options: ["--deny-syscall", "close_range"])
        #expect(denied.status == 0, "\(denied.stderr)")
        #expect(denied.stdout == "[0, 1, 2, 3]\n")
    }

    @Test("descriptors 0-2 left closed by the caller are /dev/null inside, never one of cell's pipes")
    func closedStandardDescriptors() {
        let r = Sandbox.execute(Sandbox.dropPrivileges + ["sh", "-c",
            "exec \(Sandbox.cell) run -- sh -c 'readlink /proc/self/fd/0 >&2' <&-"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr == "/dev/null\n")
    }

    @Test("the command leads its own session, with no capability and no_new_privs")
    func sessionAndLockDown() {
        let r = Sandbox.run(["python3", "-c", """
        import os
        print(os.getsid(0) == os.getpid())
        s = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)
        print(' '.join(s[k].strip() for k in ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs']))
        """])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "True\n" + Array(repeating: "0000000000000000", count: 5).joined(separator: " ") + " 1\n")
    }

    @Test("the environment is cleared but for PATH, HOME, USER, LOGNAME, TERM, LANG, --env and --keep-env")
    func environment() {
        let env = ["PATH": "/usr/bin:/bin", "TERM": "xterm", "SECRET_TOKEN": "hunter2", "CI_JOB": "7", "CI_NODE": "n1", "LANG": "C.UTF-8"]
        let r = Sandbox.run(["env"], options: ["--env", "FOO=bar=baz", "--keep-env", "CI_*", "--env", "TERM=dumb"], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = Set(r.stdout.split(separator: "\n").map(String.init))
        #expect(lines == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=\(Sandbox.caller.home)",
                          "USER=\(Sandbox.caller.name)", "LOGNAME=\(Sandbox.caller.name)", "TERM=dumb", "LANG=C.UTF-8", "CI_JOB=7", "CI_NODE=n1", "FOO=bar=baz"])
    }

    @Test("two sandboxes started together see neither each other's processes, IPC nor hostname")
    func sandboxesAreIsolatedFromEachOther() throws {
        let marker = "\(Int.random(in: 100_000...999_999)).25"
        // A segment size of its own: tests run in parallel, and EscapeTests makes a 4096-byte
        // segment on the host (as may anything else on the machine).
        let size = Int.random(in: 10_000...99_999)
        let first = try RunningSandbox(["sh", "-c", "ipcmk -M \(size) >/dev/null && ipcs -m | grep -c '^0x'; echo ready; exec sleep \(marker)"],
                                       options: ["--hostname", "first"])
        #expect(first.waitFor("ready"))
        #expect(first.stdout.hasPrefix("1\n"), "\(first.stderr)")
        let second = Sandbox.run(["sh", "-c", "hostname; ipcs -m | grep -c '^0x'; cat /proc/[0-9]*/comm | grep -c '^sleep$'"],
                                 options: ["--hostname", "second"])
        #expect(second.stdout == "second\n0\n0\n", "\(second.stderr)")
        // Nor does the host see the first sandbox's shared memory segment.
        let hostIPC = Sandbox.execute(["ipcs", "-m"])
        #expect(!hostIPC.stdout.contains(" \(size) "), "\(hostIPC.stdout)")
        first.signal(SIGTERM)
        #expect(first.wait() == 143)
    }

    @Test("--status-json writes the end-of-run report")
    func statusJSON() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = Sandbox.run(["sh", "-c", "exit 3"], options: ["--status-json", "\(dir)/status.json"])
        #expect(r.status == 3)
        let data = try #require(FileManager.default.contents(atPath: "\(dir)/status.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(json["v"] as? Int == 1)
        #expect(json["exit_code"] as? Int == 3)
        #expect(json["signal"] is NSNull)
        #expect((json["duration_ms"] as? Int ?? -1) >= 0)
        #expect((json["max_rss_kb"] as? Int ?? 0) > 0)
        #expect(json["namespaces"] as? [String] == ["user", "mount", "pid", "net", "ipc", "uts", "cgroup"])
    }

    @Test("when the host forbids user namespaces, cell says which setting and runs nothing")
    func userNamespacesDisabled() throws {
        // max_user_namespaces is per user namespace: 0 inside an outer `unshare -U` forbids
        // nesting there without touching the host's setting.
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = Sandbox.execute(Sandbox.dropPrivileges + ["unshare", "-Ur", "sh", "-c",
            "echo 0 > /proc/sys/user/max_user_namespaces && exec \(Sandbox.cell) run --bind \(dir) -- touch \(dir)/ran"])
        #expect(r.status == 125)
        #expect(r.stderr == "cell: user namespaces are disabled: sysctl user.max_user_namespaces=0 (enable with: sysctl -w user.max_user_namespaces=15000); "
                + "to run without namespaces here: cell run --isolation landlock (weaker: SECURITY.md), or --isolation auto\n")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/ran"))
    }

    @Test("bad flags are one-line errors with status 125")
    func usageErrors() {
        for options in [["--no-such-flag"], ["--env", "NOEQUALS"], ["--cwd", "relative"], ["--outer-id", "x"]] {
            let r = Sandbox.run(["true"], options: options)
            #expect(r.status == 125, "\(options)")
            #expect(r.stderr.hasPrefix("cell: ") && r.stderr.filter { $0 == "\n" }.count == 1, "\(options): \(r.stderr)")
        }
        let none = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "run"])
        #expect(none.status == 125)
    }

    @Test("a usage error: one line, 125, nothing started or left")
    func usageError() {
        let marker = "\(Int.random(in: 100_000...999_999)).5"
        for options in [["--env", "NOEQUALS"], ["--no-such-flag"], ["--timeout", "soon"]] {
            let r = Sandbox.run(["sleep", marker], options: options)
            #expect(r.status == 125, "\(options)")
            #expect(r.stderr.hasPrefix("cell: ") && r.stderr.filter { $0 == "\n" }.count == 1, "\(options): \(r.stderr)")
            #expect(hostProcesses(containing: "sleep\0\(marker)").isEmpty, "\(options)")
        }
    }

    @Test("without a usable cell-init: one line naming where it was looked for, 125, nothing stays")
    func missingHelper() throws {
        let dir = NSTemporaryDirectory() + "cell-no-init-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: Sandbox.cell, toPath: dir + "/cell")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir)
        let marker = "\(Int.random(in: 100_000...999_999)).75"
        for unreadable in [false, true] {
            if unreadable {
                try FileManager.default.copyItem(atPath: Sandbox.binDirectory + "/cell-init", toPath: dir + "/cell-init")
                try FileManager.default.setAttributes([.posixPermissions: 0o100], ofItemAtPath: dir + "/cell-init")
            }
            let r = Sandbox.execute(Sandbox.dropPrivileges + [dir + "/cell", "run", "--", "sleep", marker])
            #expect(r.status == 125)
            #expect(r.stderr.hasPrefix("cell: ") && r.stderr.contains("cell-init") && r.stderr.filter { $0 == "\n" }.count == 1, "\(r.stderr)")
            #expect(hostProcesses(containing: "sleep\0\(marker)").isEmpty)
        }
    }

    @Test("a problem found in the plan, or in the filters compiled while pid 1 sets up: one line, 125, nothing runs or stays")
    func planErrorDuringCreation() throws {
        // The filters are compiled while pid 1 builds the sandbox: when they cannot be, pid 1
        // (which waits for them and has run nothing of the caller's) is ended and reaped.
        let marker = "\(Int.random(in: 100_000...999_999)).25"
        let r = Sandbox.run(["sleep", marker], options: ["--seccomp-json", "/nonexistent/seccomp.json"])
        #expect(r.status == 125)
        #expect(r.stderr == "cell: cannot read the seccomp profile /nonexistent/seccomp.json: No such file or directory\n")
        #expect(hostProcesses(containing: "sleep\0\(marker)").isEmpty)
        let bad = Sandbox.run(["sleep", marker], options: ["--deny-syscall", "sendmsg"])
        #expect(bad.status == 125)
        #expect(bad.stderr.hasPrefix("cell: seccomp policy 'default' does not allow sendmsg") && bad.stderr.filter { $0 == "\n" }.count == 1, "\(bad.stderr)")
        #expect(hostProcesses(containing: "sleep\0\(marker)").isEmpty)
    }

    @Test("the command may use every CPU the caller may")
    func cpuAffinity() {
        let r = Sandbox.run(["grep", "Cpus_allowed_list", "/proc/self/status"])
        let host = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list") }.map(String.init)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == (host ?? "") + "\n")
    }

    @Test("the working directory is the caller's; one the sandbox cannot enter falls back to / with a note")
    func workingDirectory() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(Sandbox.run(["pwd"], cwd: dir).stdout == "\(dir)\n")
        #expect(Sandbox.run(["pwd"], options: ["--cwd", "/usr"]).stdout == "/usr\n")
        if Sandbox.isRoot {
            // cell run by root maps the sandbox to 65534, which cannot enter a 0700 root directory.
            let closed = dir + "/closed"
            mkdir(closed, 0o700)
            let r = Sandbox.run(["pwd"], asRoot: true, cwd: closed)
            #expect(r.status == 0)
            #expect(r.stdout == "/\n", "\(r.stderr)")
            #expect(r.stderr.contains("cell: note: the working directory \(closed) cannot be entered"))
        }
        let explicit = Sandbox.run(["pwd"], options: ["--cwd", "/nonexistent-dir"])
        #expect(explicit.status == 125)
        #expect(explicit.stderr.contains("cannot enter the working directory /nonexistent-dir"))
    }
}
