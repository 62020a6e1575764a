import Foundation
import Testing

/// Limits and networking, end to end, as an unprivileged uid. Network tests use only the
/// host's loopback and addresses inside the sandbox's own namespace.
@Suite(.enabled(if: Sandbox.available, "cell cannot start a sandbox on this machine"))
struct LimitsNetworkTests {
    static func json(_ path: String) throws -> [String: Any] {
        let data = try #require(FileManager.default.contents(atPath: path))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    @Test("--timeout: 124, a limit event, no survivor; a command that ignores SIGTERM is killed after --kill-after")
    func timeout() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let marker = "\(Int.random(in: 100_000...999_999)).75"
        let started = Date()
        let r = Sandbox.run(["sh", "-c", "sleep \(marker) & sleep \(marker)"],
                            options: ["--timeout", "1s", "--status-json", "\(dir)/s.json", "--audit-log", "\(dir)/a.jsonl"])
        #expect(r.status == 124)
        #expect(Date().timeIntervalSince(started) < 8)
        let left = hostProcessesLeft(containing: "sleep\0\(marker)")
        #expect(left.isEmpty, "still alive: \(left)")
        let status = try Self.json("\(dir)/s.json")
        #expect(status["timed_out"] as? Bool == true)
        #expect(status["limits_hit"] as? [String] == ["timeout"])
        let audit = try String(contentsOfFile: "\(dir)/a.jsonl", encoding: .utf8)
        #expect(audit.contains(#""event":"limit","which":"timeout","value":"1s""#))

        let stubborn = Date()
        let ignoring = Sandbox.run(["sh", "-c", "trap '' TERM; sleep 30"], options: ["--timeout", "500ms", "--kill-after", "500ms"])
        #expect(ignoring.status == 124)
        #expect(Date().timeIntervalSince(stubborn) < 8)
    }

    @Test("--memory stops a balloon (RLIMIT_DATA) while a small allocation works")
    func memory() {
        let balloon = "b = bytearray(256 * 1024 * 1024); print('allocated')"
        let limited = Sandbox.run(["python3", "-c", balloon], options: ["--memory", "64m"])
        #expect(limited.status == 1)
        #expect(limited.stderr.contains("MemoryError"))
        #expect(Sandbox.run(["python3", "-c", "b = bytearray(8 * 1024 * 1024); print('allocated')"], options: ["--memory", "64m"]).stdout == "allocated\n")
        #expect(Sandbox.run(["python3", "-c", balloon]).stdout == "allocated\n")
    }

    @Test("--pids bounds a fork bomb inside the sandbox, counted for the sandbox alone")
    func forkBomb() {
        let bomb = """
        import os
        n = 0
        # Each child lives until the parent is gone (the end of the pipe), however long the
        # forking takes.
        r, w = os.pipe()
        try:
            while n < 2000:
                if os.fork() == 0:
                    os.close(w); os.read(r, 1); os._exit(0)
                n += 1
        except OSError as e:
            print(n, e.errno)
        """
        let r = Sandbox.run(["python3", "-c", bomb], options: ["--pids", "40"])
        let fields = r.stdout.split(separator: " ").map { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1 }
        #expect(fields.count == 2, "\(r.stdout) \(r.stderr)")
        #expect(fields.first.map { $0 > 20 && $0 < 40 } == true, "forked \(fields)")
        #expect(fields.last == 11) // EAGAIN

        // With room for cell-init alone, the command itself cannot be started: a setup failure
        // that says so, not a command that "failed".
        let none = Sandbox.run(["true"], options: ["--pids", "1"])
        #expect(none.status == 125)
        #expect(none.stderr == "cell: cannot start the command inside the sandbox (no process could be made): Resource temporarily unavailable\n")
    }

    @Test("--file-size: writes beyond it fail with EFBIG; by default the writer dies of SIGXFSZ")
    func fileSize() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let efbig = Sandbox.run(["python3", "-c", """
            import signal, errno
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            try:
                open('/tmp/big', 'wb').write(b'x' * (2 * 1024 * 1024))
            except OSError as e:
                print(errno.errorcode[e.errno])
            """], options: ["--file-size", "1m"])
        #expect(efbig.stdout == "EFBIG\n", "\(efbig.stderr)")
        let killed = Sandbox.run(["dd", "if=/dev/zero", "of=/tmp/big", "bs=1M", "count=2"], options: ["--file-size", "1m", "--status-json", "\(dir)/s.json"])
        #expect(killed.status == 128 + 25)
        #expect(try Self.json("\(dir)/s.json")["limits_hit"] as? [String] == ["file_size"])
    }

    @Test("--cpu-time ends a busy loop with SIGXCPU")
    func cpuTime() {
        let r = Sandbox.run(["python3", "-c", "while True: pass"], options: ["--cpu-time", "1s", "--timeout", "20s"])
        #expect(r.status == 128 + 24)
    }

    @Test("limits above the caller's hard limit, and unmet requirements, are refused")
    func refusedLimits() throws {
        let above = Sandbox.run(["true"], options: ["--open-files", "999999999"])
        #expect(above.status == 125)
        #expect(above.stderr.contains("above your hard limit"))
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "extends = \"default\"\n[limits]\nmemory = \"1g\"\nrequired = [\"memory\"]\n".write(toFile: "\(dir)/p.toml", atomically: true, encoding: .utf8)
        chmod("\(dir)/p.toml", 0o644)
        let required = Sandbox.run(["true"], options: ["-p", "\(dir)/p.toml"])
        #expect(required.status == 125)
        // The default profile's `cgroup = "auto"` finds none on this host (a sandbox-wide memory
        // limit needs one): refused with the reason.
        #expect(required.stderr.contains("requires a sandbox-wide memory limit, but no delegated cgroup v2 was found"), "\(required.stderr)")
    }

    @Test("strict's limits are in force")
    func strictLimits() {
        let r = Sandbox.run(["sh", "-c", "ulimit -n; ulimit -f; ulimit -c; ulimit -v"], options: ["-p", "strict"])
        #expect(r.stdout == "256\n131072\n0\n4194304\n", "\(r.stderr)")
    }

    @Test("shared memory, which RLIMIT_DATA does not count, is bounded: MAP_SHARED by RLIMIT_AS, SysV segments by shmall as root inside")
    func sharedMemory() {
        // 5 GiB of MAP_SHARED|MAP_ANONYMOUS and two SysV segments of 600 MiB each, under strict's 1g.
        let script = """
        import ctypes, mmap
        try:
            mmap.mmap(-1, 5 << 30, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS); print('mapped')
        except OSError:
            print('refused')
        libc = ctypes.CDLL(None)
        print(sum(libc.shmget(0, 600 << 20, 0o1600) >= 0 for _ in range(2)))
        """
        let outside = Sandbox.execute(Sandbox.dropPrivileges + ["unshare", "-Uri", "/usr/bin/python3", "-c", script])
        #expect(outside.stdout == "mapped\n2\n", "the balloon does not even work outside: \(outside.stdout) \(outside.stderr)")
        let asCaller = Sandbox.run(["python3", "-c", script], options: ["-p", "strict"])
        #expect(asCaller.stdout.hasPrefix("refused\n"), "\(asCaller.stdout) \(asCaller.stderr)")
        let asRoot = Sandbox.run(["python3", "-c", script], options: ["-p", "strict", "--as-root"])
        #expect(asRoot.stdout == "refused\n1\n", "\(asRoot.stdout) \(asRoot.stderr)")
    }

    @Test("two sandboxes listen on port 80 at once, without capabilities")
    func twoServersOnPort80() throws {
        // Each server holds port 80 until the test has seen both listen (a file appears in a
        // directory bound into both), so that the two hold it at the same time.
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = """
            import os, socket, time
            s = socket.socket(); s.bind(('127.0.0.1', 80)); s.listen(1); print('listening', flush=True)
            deadline = time.monotonic() + 30
            while not os.path.exists('/sync/both-listening'):
                if time.monotonic() > deadline: raise SystemExit('never told that both listen')
                time.sleep(0.01)
            """
        let first = try RunningSandbox(["python3", "-c", server], options: ["--ro-bind", "\(dir):/sync"])
        let second = try RunningSandbox(["python3", "-c", server], options: ["--ro-bind", "\(dir):/sync"])
        #expect(first.waitFor("listening"), "\(first.stderr)")
        #expect(second.waitFor("listening"), "\(second.stderr)")
        FileManager.default.createFile(atPath: "\(dir)/both-listening", contents: nil)
        #expect(first.wait() == 0 && second.wait() == 0, "\(first.stderr) \(second.stderr)")
    }

    /// A TCP server on the host's 127.0.0.1, for the duration of `body`.
    static func withHostServer(_ body: (UInt16) throws -> Void) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(fd, 16)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        try body(UInt16(bigEndian: address.sin_port))
    }

    /// Python that connects to the sandbox's default gateway (or 127.0.0.1) on `port`.
    static func connect(port: UInt16, viaGateway: Bool) -> String {
        """
        import socket, subprocess
        route = subprocess.run(['ip', 'route'], capture_output=True, text=True).stdout.split()
        host = route[route.index('via') + 1] if \(viaGateway ? "True" : "False") and 'via' in route else '127.0.0.1'
        try:
            socket.create_connection((host, \(port)), timeout=3); print('reached')
        except OSError as e:
            print('unreachable')
        """
    }

    @Test("--net none: only lo, and the host's loopback server is unreachable")
    func noneIsolates() throws {
        try Self.withHostServer { port in
            let r = Sandbox.run(["python3", "-c", Self.connect(port: port, viaGateway: false)])
            #expect(r.stdout == "unreachable\n", "\(r.stderr)")
            #expect(Sandbox.run(["python3", "-c", "import socket; print(sorted(n for _, n in socket.if_nameindex()))"]).stdout == "['lo']\n")
        }
    }

    /// The command line of the helper carrying the traffic of the sandbox whose pid 1 is `pid`.
    static func helperMarker(_ helper: String, sandbox pid: Int) -> String {
        helper == "pasta" ? "/dev/stdout\0\(pid)\0" : "/proc/\(pid)/ns/user"
    }

    static let helpers = ["pasta", "slirp4netns"]

    @Test("--net user: the same network on either helper: 10.0.2.100/24 on tap0, DNS at 10.0.2.3, the host's loopback at 10.0.2.2 only with --allow-host-loopback",
          arguments: helpers)
    func userNetwork(helper: String) throws {
        try Self.withHostServer { port in
            // Without the option, 10.0.2.2 is refused by slirp4netns, and unreachable by a route
            // under pasta (no packet leaves: the test checks the route before it connects); the
            // sandbox's own 127.0.0.1 is its own.
            let guarded = helper == "pasta" ? "ip route | grep -qx 'unreachable 10.0.2.2 ' && " : ""
            let blocked = Sandbox.run(["sh", "-c", guarded + "python3 -c \"$1\"", "sh", Self.connect(port: port, viaGateway: true)],
                                      options: ["--net", "user", "--net-helper", helper])
            #expect(blocked.stdout == "unreachable\n", "\(blocked.stderr)")
            let own = Sandbox.run(["python3", "-c", Self.connect(port: port, viaGateway: false)], options: ["--net", "user", "--net-helper", helper])
            #expect(own.stdout == "unreachable\n", "\(own.stderr)")
            let allowed = Sandbox.run(["python3", "-c", Self.connect(port: port, viaGateway: true)],
                                      options: ["--net", "user", "--net-helper", helper, "--allow-host-loopback"])
            #expect(allowed.stdout == "reached\n", "\(allowed.stderr)")
        }
        let shape = Sandbox.run(["sh", "-c", "cat /etc/resolv.conf; ip -o -4 addr show tap0 | awk '{print $4}'; ip route | grep default; ip -o -6 addr show scope global | wc -l"],
                                options: ["--net", "user", "--net-helper", helper])
        #expect(shape.stdout == "nameserver 10.0.2.3\n10.0.2.100/24\ndefault via 10.0.2.2 dev tap0 \n0\n", "\(shape.stderr)")
    }

    @Test("--publish forwards the host's 127.0.0.1:PORT to a server inside; nothing else the sandbox binds is reachable from the host",
          arguments: helpers)
    func publish(helper: String) throws {
        let hostPort = UInt16.random(in: 20_000...30_000), unpublished = UInt16.random(in: 30_001...40_000)
        let server = """
            import socket
            quiet = socket.socket(); quiet.bind(('0.0.0.0', \(unpublished))); quiet.listen(1)
            s = socket.socket(); s.bind(('0.0.0.0', 80)); s.listen(1); print('listening', flush=True)
            c, _ = s.accept(); c.sendall(b'hello from inside'); c.close()
            """
        let sandbox = try RunningSandbox(["python3", "-c", server], options: ["--net", "user", "--net-helper", helper, "--publish", "\(hostPort):80", "--timeout", "20s"])
        #expect(sandbox.waitFor("listening"), "\(sandbox.stderr)")
        let client = Sandbox.execute(["python3", "-c", """
            import socket
            for port in (\(unpublished), 80):
                try: socket.create_connection(('127.0.0.1', port), timeout=2); print('reached', port)
                except OSError: pass
            print(socket.create_connection(('127.0.0.1', \(hostPort)), timeout=5).recv(100).decode())
            """])
        #expect(client.stdout == "hello from inside\n", "\(client.stderr)")
        #expect(sandbox.wait() == 0)
    }

    @Test("--publish without --net user is refused; a published port already in use on the host is a clear error", arguments: helpers)
    func publishMisuse(helper: String) throws {
        let misuse = Sandbox.run(["true"], options: ["--publish", "8080:80"])
        #expect(misuse.status == 125)
        #expect(misuse.stderr.contains("--publish needs user-mode networking"))
        try Self.withHostServer { port in
            let taken = Sandbox.run(["true"], options: ["--net", "user", "--net-helper", helper, "--publish", "\(port):80"])
            #expect(taken.status == 125 && taken.stderr.contains("in use"), "\(taken.stderr)")
        }
    }

    @Test("the helper never outlives its sandbox, even when cell is killed", arguments: helpers)
    func helperStopsWithTheSandbox(helper: String) throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = "\(dir)/a.jsonl"
        _ = Sandbox.run(["true"], options: ["--net", "user", "--net-helper", helper, "--audit-log", log])
        let sandbox = try RunningSandbox(["sh", "-c", "echo ready; sleep 30"], options: ["--net", "user", "--net-helper", helper, "--audit-log", log])
        #expect(sandbox.waitFor("ready"))
        let text = try String(contentsOfFile: log, encoding: .utf8)
        let pids = text.split(separator: "\n").compactMap { line -> Int? in
            guard line.contains(#""event":"start""#), let r = line.range(of: #""host_pid":"#) else { return nil }
            return Int(line[r.upperBound...].prefix { $0.isNumber })
        }
        try #require(pids.count == 2)
        // The second helper runs: the marker finds it (so that its absence later means something).
        #expect(!hostProcesses(containing: Self.helperMarker(helper, sandbox: pids[1])).isEmpty, "no \(helper) found for the running sandbox")
        sandbox.signal(SIGKILL)
        _ = sandbox.wait()
        for pid in pids {
            // slirp4netns ends when its exit pipe closes, pasta by PR_SET_PDEATHSIG: a moment later.
            let left = hostProcessesLeft(containing: Self.helperMarker(helper, sandbox: pid))
            #expect(left.isEmpty, "\(helper) for \(pid) is still running: \(left)")
        }
    }

    @Test("the helper is confined: its own seccomp filter, no_new_privs, its own mount namespace (slirp4netns: as root inside), none of the caller's descriptors",
          arguments: helpers)
    func helperIsConfined(helper: String) throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for identity in ["--as-caller", "--as-root"] {
            // The caller leaves descriptor 7 open on a file; cell must not pass it to the helper.
            // The command starts once the helper said it is ready, confinement included: the
            // helper is looked at only then.
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = Sandbox.dropPrivileges + ["sh", "-c",
                "exec 7</etc/hostname; exec \(Sandbox.cell) run --net user --net-helper \(helper) \(identity) --bind \(dir) -- sh -c 'touch \(dir)/started\(identity); sleep 3'"]
            try process.run()
            defer { process.waitUntilExit() }
            try #require(eventually(timeout: 10) { FileManager.default.fileExists(atPath: "\(dir)/started\(identity)") }, "\(identity): the command never started")
            let cell = process.processIdentifier // sh and setpriv exec(): the pid is cell's
            var found: pid_t?
            _ = eventually(timeout: 5) {
                let children = (try? String(contentsOfFile: "/proc/\(cell)/task/\(cell)/children", encoding: .utf8))?.split(separator: " ") ?? []
                found = children.compactMap { pid_t($0) }.first {
                    FileManager.default.contents(atPath: "/proc/\($0)/cmdline")?.starts(with: Data("/usr/bin/\(helper)\0".utf8)) == true
                }
                return found != nil
            }
            let pid = try #require(found, "\(identity): no \(helper) under cell")
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            #expect(status.contains("Seccomp:\t2"), "\(identity): \(helper) runs without its filter")
            let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")
            let targets = fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)") }
            #expect(!targets.isEmpty && !targets.contains("/etc/hostname"), "\(identity): the caller's descriptor reached \(helper): \(targets)")
            if helper == "pasta" || identity == "--as-root" {
                #expect(status.contains("NoNewPrivs:\t1"), "\(identity): \(helper) without no_new_privs")
                let own = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(cell)/ns/mnt")
                let its = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/mnt")
                #expect(own != its, "\(helper) shares cell's mount namespace: its own sandbox is off")
            }
        }
    }
}
