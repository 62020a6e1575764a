import Foundation
import Testing

/// The escape suite: one small attack per known escape class. Each attack is first run
/// *without* cell — as the same unprivileged user, or as root of a plain user namespace for
/// attacks that need privilege — and must succeed there, so that "blocked" inside the sandbox
/// can never be vacuous. Then it runs under the `default` profile and must fail.
///
/// Attacks print one word: `ESCAPED` when they succeeded, `blocked:REASON` when not.
/// (Other escape classes are covered where their mechanism is tested: writes outside binds and
/// the caller's home in FilesystemTests; nested user namespaces, keyctl, bpf, perf_event_open,
/// userfaultfd, io_uring, open_by_handle_at and other-ABI calls in LockDownTests; a host
/// server on loopback in LimitsNetworkTests; die-with-parent in LauncherTests.)
@Suite(.enabled(if: Sandbox.available, "cell cannot start a sandbox on this machine"))
struct EscapeTests {
    /// The system's python, by path: the test runner's PATH may lead elsewhere (a pyenv shim
    /// under /root, say) that the unprivileged user cannot run.
    static let python = "/usr/bin/python3"

    /// Runs `script` (python3) outside (optionally as root of `unshare -Urm`) and inside cell.
    func attack(_ script: String, options: [String] = [], outsideInUserNamespace: Bool = false,
                cwd: String = "/") -> (outside: String, inside: String) {
        let outsideArgv = Sandbox.dropPrivileges + (outsideInUserNamespace ? ["unshare", "-Urmun", "--"] : []) + [Self.python, "-c", script]
        let outside = Sandbox.execute(outsideArgv, cwd: cwd)
        let inside = Sandbox.run(["python3", "-c", script], options: options, cwd: cwd)
        return (outside.stdout.trimmingCharacters(in: .whitespacesAndNewlines) + outside.stderr.suffix(200),
                inside.stdout.trimmingCharacters(in: .whitespacesAndNewlines) + inside.stderr.suffix(200))
    }

    func expectBlocked(_ result: (outside: String, inside: String), _ comment: Comment) {
        #expect(result.outside.hasPrefix("ESCAPED"), "the attack does not even work outside: \(result.outside) — \(comment)")
        #expect(result.inside.hasPrefix("blocked"), "escaped the sandbox: \(result.inside) — \(comment)")
    }

    @Test("host processes: not visible, not signalable")
    func hostProcesses() throws {
        // A process of the same user on the host.
        let victim = Process()
        victim.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        victim.arguments = Sandbox.dropPrivileges + ["sleep", "60"]
        try victim.run()
        // SIGKILL: the victim inherits the test thread's blocked signals, SIGTERM among them,
        // and would otherwise outlive the test (holding its output open) for its full minute.
        defer { kill(victim.processIdentifier, SIGKILL); victim.waitUntilExit() }
        // setpriv exec()s sleep: the victim's pid is the process's own. It is a victim of the
        // same user once sleep runs (setpriv has dropped to the test uid by then).
        let pid = victim.processIdentifier
        try #require(eventually { FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")?.starts(with: Data("sleep\0".utf8)) == true },
                     "the victim never ran sleep")
        let script = """
        import os
        try:
            os.kill(\(pid), 0)
            cmd = open('/proc/\(pid)/cmdline').read()
            print('ESCAPED' if 'sleep' in cmd else 'blocked:other-process')
        except ProcessLookupError:
            print('blocked:ESRCH')
        except (FileNotFoundError, PermissionError) as e:
            print('blocked:' + type(e).__name__)
        """
        expectBlocked(attack(script), "kill(2) and /proc of a host process")
    }

    @Test("ptrace: attaching to a process is refused")
    func ptrace() {
        let script = """
        import ctypes, os, signal, time
        libc = ctypes.CDLL(None, use_errno=True)
        hold, release = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(release); os.read(hold, 1); os._exit(0)  # alive until the parent is gone
        r = libc.ptrace(16, child, 0, 0)  # PTRACE_ATTACH
        os.kill(child, signal.SIGKILL)
        print('ESCAPED' if r == 0 else 'blocked:errno%d' % ctypes.get_errno())
        """
        expectBlocked(attack(script), "PTRACE_ATTACH")
    }

    @Test("TIOCSTI and TIOCLINUX: no keystrokes pushed into a real terminal")
    func terminalInjection() throws {
        // Runs the attack on a fresh pty that is the attacker's controlling terminal outside;
        // inside, cell is started on that terminal (its sandbox gets a new session).
        func onPTY(_ argv: [String]) -> String {
            let driver = """
            import os, pty, sys
            pid, fd = pty.fork()
            if pid == 0:
                os.execvp(sys.argv[1], sys.argv[1:])
            out = b''
            while True:
                try:
                    chunk = os.read(fd, 1024)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            os.waitpid(pid, 0)
            print(out.decode(errors='replace'))
            """
            return Sandbox.execute(Sandbox.dropPrivileges + [Self.python, "-c", driver] + argv).stdout
        }
        let script = """
        import fcntl, termios, ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        results = []
        for request in (0x5412, 0x1_0000_5412):  # TIOCSTI, and with a bit above 32
            c = ctypes.c_char(b'X')
            r = libc.ioctl(ctypes.c_int(1), ctypes.c_ulong(request), ctypes.byref(c))
            results.append(r == 0)
        sel = ctypes.c_char(b'\\x03')  # TIOCLINUX subcode 3: paste selection
        r = libc.ioctl(ctypes.c_int(1), ctypes.c_ulong(0x541C), ctypes.byref(sel))
        print('ESCAPED' if any(results) else 'blocked:errno%d' % ctypes.get_errno())
        """
        let outside = onPTY([Self.python, "-c", script])
        let inside = onPTY([Sandbox.cell, "run", "--", "python3", "-c", script])
        #expect(outside.contains("ESCAPED"), "TIOCSTI does not even work outside: \(outside)")
        #expect(inside.contains("blocked"), "injected through TIOCSTI inside: \(inside)")
    }

    @Test("mount, umount and remount-rw are refused")
    func mounts() {
        let script = """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        ok = []
        ok.append(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None) == 0)
        ok.append(libc.mount(None, b'/usr', None, 0x20 | 0x1000, None) == 0)      # MS_REMOUNT|MS_BIND, rw
        ok.append(libc.umount2(b'/proc', 2) == 0)                                   # MNT_DETACH
        print('ESCAPED' if any(ok) else 'blocked:errno%d' % ctypes.get_errno())
        """
        expectBlocked(attack(script, outsideInUserNamespace: true), "mount(2) family")
    }

    @Test("a nested user namespace cannot be created")
    func nestedUserNamespace() {
        let script = """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        r = libc.unshare(0x10000000)  # CLONE_NEWUSER
        print('ESCAPED' if r == 0 else 'blocked:errno%d' % ctypes.get_errno())
        """
        expectBlocked(attack(script), "unshare(CLONE_NEWUSER)")
    }

    @Test("a descriptor leaked from the caller (a host directory) does not reach the sandbox")
    func leakedDirectoryDescriptor() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        FileManager.default.createFile(atPath: "\(dir)/host-secret", contents: Data("s3cret".utf8))
        chmod("\(dir)/host-secret", 0o644)
        // The runc CVE-2024-21626 shape: fd 9 is a host directory, inherited without O_CLOEXEC.
        let script = """
        import os
        try:
            fd = os.open('host-secret', os.O_RDONLY, dir_fd=9)
            print('ESCAPED' if os.read(fd, 10) == b's3cret' else 'blocked:content')
        except OSError as e:
            print('blocked:errno%d' % e.errno)
        """
        let outside = Sandbox.execute(Sandbox.dropPrivileges + ["sh", "-c", "exec 9<\(dir); exec \(Self.python) -c \"$0\"", script])
        let inside = Sandbox.execute(Sandbox.dropPrivileges + ["sh", "-c", "exec 9<\(dir); exec \(Sandbox.cell) run -- python3 -c \"$0\"", script])
        #expect(outside.stdout.hasPrefix("ESCAPED"), "\(outside.stdout) \(outside.stderr)")
        #expect(inside.stdout.hasPrefix("blocked"), "\(inside.stdout) \(inside.stderr)")
    }

    @Test("/proc/sys and /sys cannot be written")
    func kernelTunables() {
        let script = """
        import os
        hits = []
        for path in ('/proc/sys/net/ipv4/ip_unprivileged_port_start', '/proc/sys/net/ipv4/ping_group_range',
                     '/proc/sys/kernel/hostname', '/sys/kernel/uevent_helper'):
            try:
                with open(path, 'w') as f:
                    f.write(open(path).read())
                hits.append(path)
            except OSError:
                pass
        print('ESCAPED' if hits else 'blocked')
        """
        expectBlocked(attack(script, outsideInUserNamespace: true), "/proc/sys writes")
    }

    @Test("sethostname inside does not change the host's name")
    func hostnameLeak() {
        let before = ProcessInfo.processInfo.hostName
        let script = """
        import socket
        try:
            socket.sethostname('pwned'); print('ESCAPED' if socket.gethostname() == 'pwned' else 'blocked:unchanged')
        except OSError as e:
            print('blocked:errno%d' % e.errno)
        """
        expectBlocked(attack(script, outsideInUserNamespace: true), "sethostname")
        #expect(ProcessInfo.processInfo.hostName == before)
    }

    @Test("the host's SysV IPC objects are not visible")
    func hostIPC() throws {
        let key = Int32.random(in: 100_000...999_999)
        let made = Sandbox.execute(Sandbox.dropPrivileges + [Self.python, "-c", """
            import ctypes
            libc = ctypes.CDLL(None)
            print(libc.shmget(\(key), 4096, 0o1666))
            """])
        let id = Int(made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        try #require(id >= 0, "cannot create a host segment: \(made.stderr)")
        defer { _ = Sandbox.execute(["ipcrm", "-m", String(id)]) }
        let script = """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        r = libc.shmget(\(key), 0, 0)
        print('ESCAPED' if r >= 0 else 'blocked:errno%d' % ctypes.get_errno())
        """
        expectBlocked(attack(script), "shmget of the host's segment")
    }

    @Test("a TCP server on the host's loopback is unreachable")
    func hostLoopback() throws {
        let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        defer { close(server) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(server, 8)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(server, $0, &length) } }
        let port = UInt16(bigEndian: address.sin_port)
        let script = """
        import socket
        try:
            socket.create_connection(('127.0.0.1', \(port)), timeout=3); print('ESCAPED')
        except OSError as e:
            print('blocked:' + type(e).__name__)
        """
        expectBlocked(attack(script), "connect to the host's 127.0.0.1")
    }

    @Test("kernel interfaces behind the default policy: keyctl, bpf, perf_event_open, userfaultfd, io_uring, open_by_handle_at")
    func kernelInterfaces() {
        #if arch(x86_64)
        // Outside: root of a plain user namespace. Each call counts as a success if the kernel
        // accepted it or failed it for any reason but EPERM (the filter's answer).
        for (name, call) in [
            ("keyctl", "libc.syscall(250, 0, -3, 0, 0, 0)"),                       // KEYCTL_GET_KEYRING_ID, session keyring
            ("userfaultfd", "libc.syscall(323, 1)"),                                // UFFD_USER_MODE_ONLY
            ("io_uring_setup", "libc.syscall(425, 4, ctypes.byref(params))"),
            ("perf_event_open", "libc.syscall(298, None, 0, -1, -1, 0)"),
            ("name_to_handle_at", "libc.syscall(303, -100, b'/', ctypes.byref(params), ctypes.byref(ctypes.c_int()), 0)"),
        ] {
            let script = """
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            params = (ctypes.c_char * 512)()
            ctypes.set_errno(0)
            r = \(call)
            e = ctypes.get_errno()
            print('ESCAPED' if r >= 0 or e != 1 else 'blocked:EPERM')
            """
            expectBlocked(attack(script, outsideInUserNamespace: true), "\(name)")
        }
        #endif
    }

    @Test("AF_VSOCK, which no namespace covers, and other families a sandbox never needs are refused")
    func socketFamilies() {
        // A vsock socket bound outside: the host's vsock ports are shared with any network
        // namespace (EADDRINUSE inside betrays a port the host holds; in a VM, the hypervisor).
        let script = """
        import socket, errno
        try:
            s = socket.socket(40, socket.SOCK_STREAM)  # AF_VSOCK
            print('ESCAPED')
        except OSError as e:
            print('blocked:' + errno.errorcode.get(e.errno, str(e.errno)))
        """
        let result = attack(script)
        expectBlocked(result, "AF_VSOCK")
        #expect(result.inside.hasPrefix("blocked:EAFNOSUPPORT"), "\(result.inside)")
        // The families a sandbox uses still work.
        let usual = Sandbox.run(["python3", "-c", "import socket\nfor f in (1, 2, 10, 16): socket.socket(f, socket.SOCK_DGRAM).close()\nprint('ok')"])
        #expect(usual.stdout == "ok\n", "\(usual.stderr)")
    }

    @Test("a setuid or setgid file of yours cannot be made in a writable bind, by chmod or by a creating open")
    func setuidFiles() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Each way a mode reaches the kernel: chmod, fchmod, a creating open with the bits, mknod.
        let script = """
        import os, shutil, stat, sys
        prefix = sys.argv[1]
        ways = {
            'chmod': lambda p: (shutil.copy('/usr/bin/id', p), os.chmod(p, 0o6755)),
            'fchmod': lambda p: os.fchmod(os.open(p, os.O_WRONLY | os.O_CREAT, 0o755), 0o4755),
            'open': lambda p: os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o4755)),
            'mknod': lambda p: os.mknod(p, 0o2755 | stat.S_IFREG),
        }
        escaped = []
        for name, make in ways.items():
            path = prefix + name
            try:
                make(path)
            except OSError:
                pass
            if os.path.exists(path) and os.stat(path).st_mode & 0o6000:
                escaped.append(name)
        print('ESCAPED:' + ','.join(escaped) if escaped else 'blocked')
        """
        let outside = Sandbox.execute(Sandbox.dropPrivileges + [Self.python, "-c", script, dir + "/outside-"])
        #expect(outside.stdout == "ESCAPED:chmod,fchmod,open,mknod\n", "the attack does not work outside: \(outside.stdout) \(outside.stderr)")
        let inside = Sandbox.run(["python3", "-c", script, dir + "/inside-"], options: ["--bind", dir])
        #expect(inside.stdout == "blocked\n", "\(inside.stdout) \(inside.stderr)")
        // From the host: no file the sandbox left has a setuid or setgid bit.
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) where name.hasPrefix("inside-") {
            var st = stat()
            #expect(lstat(dir + "/" + name, &st) == 0 && st.st_mode & 0o6000 == 0, "\(name) is \(String(st.st_mode, radix: 8))")
        }
        // The refusals are violations, in the summary.
        #expect(inside.stderr.contains("chmod") || inside.stderr.contains("fchmodat"), "\(inside.stderr)")
    }

    @Test("personality: a weakening flag beside bit 31 no longer slips through (ASLR stays on for what runs next)")
    func personalityFlags() {
        let script = """
        import ctypes, subprocess
        libc = ctypes.CDLL(None, use_errno=True)
        libc.personality.restype = ctypes.c_int
        r = libc.personality(ctypes.c_ulong(0x80000000 | 0x0040000))  # ADDR_NO_RANDOMIZE
        now = open('/proc/self/personality').read().strip()
        print('ESCAPED' if int(now, 16) & 0x0040000 else 'blocked:' + str(ctypes.get_errno()))
        """
        let result = attack(script)
        expectBlocked(result, "personality(0x80040000)")
        #expect(result.inside.hasPrefix("blocked:1"), "\(result.inside)")
        // The personalities programs select, and the query, still work.
        let allowed = Sandbox.run(["python3", "-c", "import ctypes\nlibc = ctypes.CDLL(None)\nprint([libc.personality(v) >= 0 for v in (0x8, 0x0, 0xffffffff)])"])
        #expect(allowed.stdout == "[True, True, True]\n", "\(allowed.stderr)")
    }

    @Test("calls newer than libseccomp: open_tree_attr is refused as a mount call, numbers past cell's knowledge are ENOSYS")
    func newerCalls() {
        let script = """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        out = []
        for nr in (467, 470):
            ctypes.set_errno(0)
            libc.syscall(nr, -100, b'/', 0, None, 0)
            out.append(str(ctypes.get_errno()))
        print(' '.join(out))
        """
        // Outside (root of a plain user namespace) open_tree_attr exists: not EPERM, not ENOSYS.
        let outside = Sandbox.execute(Sandbox.dropPrivileges + ["unshare", "-Urm", "--", Self.python, "-c", script])
        #expect(!outside.stdout.hasPrefix("1 ") && !outside.stdout.hasPrefix("38 "), "\(outside.stdout) \(outside.stderr)")
        let inside = Sandbox.run(["python3", "-c", script])
        #expect(inside.stdout == "1 38\n", "\(inside.stdout) \(inside.stderr)")
    }

    @Test("a directory or O_PATH descriptor as standard input is refused: no openat(0, \"..\") into the host")
    func standardDescriptors() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "host secret\n".write(toFile: "\(dir)/beside", atomically: true, encoding: .utf8)
        chmod("\(dir)/beside", 0o644)
        try FileManager.default.createDirectory(atPath: "\(dir)/sub", withIntermediateDirectories: false)
        chmod("\(dir)/sub", 0o755)
        // Python will not start with a directory on stdin: the shell moves it to 3 first.
        let script = "import os\ntry:\n    print('ESCAPED:' + open(os.open('../beside', os.O_RDONLY, dir_fd=3)).read().strip())\nexcept OSError as e:\n    print('blocked:', e)"
        let attack = "exec python3 -c \"$0\" 3<&0 </dev/null"
        let outside = Sandbox.execute(Sandbox.dropPrivileges + ["sh", "-c", "exec sh -c '\(attack)' \"$0\" < \(dir)/sub", script])
        #expect(outside.stdout == "ESCAPED:host secret\n", "the attack does not work outside: \(outside.stdout) \(outside.stderr)")
        let inside = Sandbox.execute(Sandbox.dropPrivileges + ["sh", "-c", "exec \(Sandbox.cell) run -- sh -c '\(attack)' \"$0\" < \(dir)/sub", script])
        #expect(inside.status == 125 && inside.stdout.isEmpty, "\(inside.stdout) \(inside.stderr)")
        #expect(inside.stderr.contains("cell: standard input is a directory"), "\(inside.stderr)")
        // An O_PATH descriptor (of a file) on standard output: refused the same way.
        let opath = "import os, sys\nfd = os.open(sys.argv[1], os.O_PATH)\nos.dup2(fd, 1)\nos.execv(sys.argv[2], [sys.argv[2], 'run', '--', 'true'])"
        let pathFD = Sandbox.execute(Sandbox.dropPrivileges + [Self.python, "-c", opath, "\(dir)/beside", Sandbox.cell])
        #expect(pathFD.status == 125 && pathFD.stderr.contains("cell: standard output is an O_PATH descriptor"), "\(pathFD.stderr)")
    }
}
