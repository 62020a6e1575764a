import Foundation
import Testing

/// --isolation landlock: the sandbox without namespaces, for hosts that refuse them. Each
/// refusal is simulated as it happens in the field; each attack is first shown to work without
/// the sandbox and its outcome read from the host side.
@Suite(.enabled(if: Sandbox.available, "cell cannot start a sandbox on this machine"))
struct LandlockIsolationTests {
    /// Tests/Fixtures/refuse-userns.c, compiled where the test user can run it.
    static let refuser: String = {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/refuse-userns.c").path
        let dir = try! Sandbox.writableHostDirectory()
        let binary = dir + "/refuse-userns"
        let built = Sandbox.execute(["cc", "-Wall", "-Wextra", "-Werror", "-o", binary, source])
        precondition(built.status == 0, "cannot build the refusal fixture: \(built.stderr)")
        chmod(dir, 0o755)
        chmod(binary, 0o755)
        return binary
    }()

    /// `cell ARGS` as the test user on a host that refuses user namespaces in the way `how` names.
    static func refused(_ how: String, _ arguments: [String]) -> Sandbox.Result {
        switch how {
        case "sysctl": // user.max_user_namespaces=0 (in an outer namespace of the test's own)
            return Sandbox.execute(Sandbox.dropPrivileges + ["unshare", "-Ur", "sh", "-c",
                "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$0\" \"$@\"", Sandbox.cell] + arguments)
        default: // docker: a seccomp filter refusing CLONE_NEWUSER; apparmor: the namespace, but no mount in it
            return Sandbox.execute(Sandbox.dropPrivileges + [refuser, how, Sandbox.cell] + arguments)
        }
    }

    @Test("a host that refuses user namespaces: the failure names the cause and the flag; landlock and auto run the command",
          arguments: ["sysctl", "docker", "apparmor"])
    func refusals(how: String) {
        let plain = Self.refused(how, ["run", "--", "true"])
        #expect(plain.status == 125, "\(how): \(plain.stderr)")
        #expect(plain.stderr.contains("cell run --isolation landlock"), "\(how): \(plain.stderr)")
        let landlock = Self.refused(how, ["run", "--isolation", "landlock", "--", "echo", "ran"])
        #expect(landlock.status == 0 && landlock.stdout == "ran\n", "\(how): \(landlock.stderr)")
        let auto = Self.refused(how, ["run", "--isolation", "auto", "--", "echo", "ran"])
        #expect(auto.status == 0 && auto.stdout == "ran\n", "\(how): \(auto.stderr)")
        #expect(auto.stderr.contains("--isolation auto runs the command with Landlock alone"), "\(how): \(auto.stderr)")
    }

    /// The host side of every attack, in one process (root, the test's): a TCP, a UDP, a
    /// pathname and an abstract unix listener on loopback, a victim process of the test user,
    /// a file the view does not show. It runs the command given, then reports what reached it.
    static let witness = #"""
    import os, socket, subprocess, sys, time
    d = sys.argv[1]
    tcp = socket.socket(); tcp.bind(('127.0.0.1', 0)); tcp.listen(8); tcp.setblocking(False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(('127.0.0.1', 0)); udp.setblocking(False)
    if os.path.exists(d + '/agent.sock'): os.unlink(d + '/agent.sock')
    unix = socket.socket(socket.AF_UNIX); unix.bind(d + '/agent.sock'); unix.listen(8); unix.setblocking(False)
    os.chmod(d + '/agent.sock', 0o777)
    abstract = socket.socket(socket.AF_UNIX); abstract.bind('\0cell-test-' + str(os.getpid())); abstract.listen(8); abstract.setblocking(False)
    if os.path.exists(d + '/log.sock'): os.unlink(d + '/log.sock')
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); dgram.bind(d + '/log.sock'); dgram.setblocking(False)
    os.chmod(d + '/log.sock', 0o777)
    # A terminal of the test user's (another of their sessions), with a secret typed into it.
    master, slave = os.openpty()
    if os.getuid() == 0: os.chown(os.ttyname(slave), 65534, -1)
    os.write(master, b'typed-secret\n')
    victim = subprocess.Popen(sys.argv[2].split() + ['sleep', '30'])
    time.sleep(0.3)
    env = dict(os.environ, TCP=str(tcp.getsockname()[1]), UDP=str(udp.getsockname()[1]), SOCK=d + '/agent.sock',
               ABSTRACT='cell-test-' + str(os.getpid()), VICTIM=str(victim.pid), DIR=d, LOG=d + '/log.sock', PTY=os.ttyname(slave))
    run = subprocess.run(sys.argv[3:], env=env, cwd=d + '/work', capture_output=True, text=True)
    time.sleep(0.3)
    got = []
    for name, s in (('tcp', tcp), ('unix', unix), ('abstract', abstract)):
        while True:
            try: s.accept()[0].close(); got.append(name)
            except BlockingIOError: break
    try: udp.recv(64); got.append('udp')
    except BlockingIOError: pass
    try: dgram.recv(64); got.append('dgram')
    except BlockingIOError: pass
    if victim.poll() is not None: got.append('signal')
    else: victim.kill()
    if os.path.exists(d + '/work/written'): got.append('write')
    print('host saw: ' + ' '.join(sorted(set(got))))
    print('command said: ' + run.stdout.strip())
    print(run.stderr.strip(), file=sys.stderr)
    """#

    /// The attacks, from the command's side: each prints its name when it worked.
    static let attacks = #"""
    import os, socket, signal
    out = []
    def attempt(name, f):
        try: f(); out.append(name)
        except OSError: pass
    attempt('write', lambda: open('written', 'w').write('x'))
    attempt('read', lambda: open(os.environ['DIR'] + '/secret/data').read())
    attempt('tcp', lambda: socket.create_connection(('127.0.0.1', int(os.environ['TCP'])), timeout=2))
    attempt('mptcp', lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262).connect(('127.0.0.1', int(os.environ['TCP']))))
    attempt('fastopen', lambda: socket.socket().sendto(b'x', 0x20000000, ('127.0.0.1', int(os.environ['TCP']))))
    attempt('udp', lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', int(os.environ['UDP']))))
    attempt('unix', lambda: socket.socket(socket.AF_UNIX).connect(os.environ['SOCK']))
    attempt('abstract', lambda: socket.socket(socket.AF_UNIX).connect('\0' + os.environ['ABSTRACT']))
    attempt('signal', lambda: os.kill(int(os.environ['VICTIM']), signal.SIGKILL))
    def dgram():
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        a.sendto(b'x', os.environ['LOG'])
    attempt('dgram', dgram)
    def tty():
        fd = os.open(os.environ['PTY'], os.O_RDWR | os.O_NOCTTY)
        os.read(fd, 64)
    attempt('tty', tty)
    def listen():
        s = socket.socket(); s.listen(1)
    attempt('listen', listen)
    attempt('sockdiag', lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4))
    print(' '.join(out))
    """#

    @Test("without namespaces the command still cannot write outside its writable paths, read what the view hides, reach the host's loopback by TCP, MPTCP, fast open or UDP, listen, reach a host unix socket (stream, datagram, abstract), read another terminal of yours, or signal a host process")
    func attacksFromInside() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for sub in ["work", "secret"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(sub)", withIntermediateDirectories: false)
            chmod("\(dir)/\(sub)", 0o777)
        }
        try "secret\n".write(toFile: "\(dir)/secret/data", atomically: true, encoding: .utf8)
        chmod("\(dir)/secret/data", 0o644)
        // The victim runs as the test user, as the command does.
        let victimAs = Sandbox.dropPrivileges.isEmpty ? "env" : Sandbox.dropPrivileges.joined(separator: " ")
        func witness(_ command: [String]) -> Sandbox.Result {
            Sandbox.execute(["/usr/bin/python3", "-c", Self.witness, dir, victimAs] + Sandbox.dropPrivileges + command)
        }
        // Outside, as the same user: every attack works.
        let outside = witness(["/usr/bin/python3", "-c", Self.attacks])
        #expect(outside.stdout.contains("host saw: abstract dgram signal tcp udp unix write"), "\(outside.stdout) \(outside.stderr)")
        #expect(outside.stdout.contains("command said: write read tcp mptcp fastopen udp unix abstract signal dgram tty listen sockdiag"),
                "\(outside.stdout) \(outside.stderr)")
        try? FileManager.default.removeItem(atPath: "\(dir)/work/written")
        // Inside, without namespaces: none does.
        let keep = ["TCP", "UDP", "SOCK", "ABSTRACT", "VICTIM", "DIR", "LOG", "PTY"].flatMap { ["--keep-env", $0] }
        let inside = witness([Sandbox.cell, "run", "--isolation", "landlock"] + keep + ["--", "python3", "-c", Self.attacks])
        #expect(inside.stdout == "host saw: \ncommand said: \n", "\(inside.stdout) \(inside.stderr)")
    }

    @Test("what needs a mount is refused, naming it; --dry-run shows the Landlock rules and no mount")
    func refusedWithoutMounts() throws {
        let tmpfs = Sandbox.run(["true"], options: ["--isolation", "landlock", "--tmpfs", "/scratch"])
        #expect(tmpfs.status == 125 && tmpfs.stderr.contains("--isolation landlock cannot give 'tmpfs /scratch"), "\(tmpfs.stderr)")
        let elsewhere = Sandbox.run(["true"], options: ["--isolation", "landlock", "--ro-bind", "/usr/share:/data"])
        #expect(elsewhere.status == 125 && elsewhere.stderr.contains("needs a mount namespace"), "\(elsewhere.stderr)")
        let root = Sandbox.run(["true"], options: ["--isolation", "landlock", "--as-root"])
        #expect(root.status == 125 && root.stderr.contains("--as-root"), "\(root.stderr)")
        let dryRun = Sandbox.run(["true"], options: ["--isolation", "landlock", "--dry-run"])
        #expect(dryRun.stdout.contains("isolation:    landlock") && dryRun.stdout.contains("landlock-path /usr:")
                && !dryRun.stdout.contains(" mount "), "\(dryRun.stdout)")
        // Started from /tmp, the view binds no working directory (it gives an empty /tmp): nor
        // does landlock mode open the host's /tmp.
        let fromTmp = Sandbox.run(["true"], options: ["--isolation", "landlock", "--dry-run"], cwd: "/tmp")
        #expect(fromTmp.status == 0 && !fromTmp.stdout.contains("landlock-path /tmp:"), "\(fromTmp.stdout)")
    }

    @Test("cell doctor: 0 and every check named here; 1 with max_user_namespaces = 0, naming it and --isolation landlock; --json agrees")
    func doctor() throws {
        let here = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "doctor"])
        #expect(here.status == 0, "\(here.stdout) \(here.stderr)")
        for name in ["user namespaces", "Landlock", "seccomp user notification", "cgroup v2", "/dev/net/tun", "slirp4netns", "pasta"] {
            #expect(here.stdout.contains(" \(name): "), "\(name): \(here.stdout)")
        }
        #expect(here.stdout.contains("yes  user namespaces:") && here.stdout.hasSuffix("cell run works here (namespaces).\n"))
        let refused = Self.refused("sysctl", ["doctor"])
        #expect(refused.status == 1, "\(refused.stdout) \(refused.stderr)")
        #expect(refused.stdout.contains("no   user namespaces: user.max_user_namespaces is 0") && refused.stdout.contains("cell run --isolation landlock"),
                "\(refused.stdout)")
        let json = Self.refused("sysctl", ["doctor", "--json"])
        #expect(json.status == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["namespaces"] as? Bool == false && object["landlock"] as? Bool == true)
        let checks = try #require(object["checks"] as? [[String: Any]])
        #expect(checks.first?["name"] as? String == "user namespaces" && checks.first?["ok"] as? Bool == false)
        #expect(Sandbox.execute([Sandbox.cell, "doctor", "--jsn"]).status == 125)
    }

    @Test("cell outlives signals it does not forward and ends every descendant; its private directory goes, whatever was left in it")
    func descendantsAndPrivateDirectory() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let marker = "cell-test-\(UUID().uuidString.prefix(8))"
        let script = "echo $TMPDIR > \(dir)/tmpdir; mkdir $TMPDIR/locked; touch $TMPDIR/locked/f; chmod 0 $TMPDIR/locked; "
            + "touch \"$TMPDIR/$(printf 'bad\\377')\"; setsid sh -c 'exec -a \(marker) sleep 300' & sleep 3"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = Sandbox.dropPrivileges + [Sandbox.cell, "run", "--isolation", "landlock", "--bind", dir, "--", "sh", "-c", script]
        try process.run()
        Thread.sleep(forTimeInterval: 1)
        kill(process.processIdentifier, SIGALRM) // setpriv exec()s cell: the pid is cell's
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0, "cell died of the signal")
        let survivors = Sandbox.execute(["pgrep", "-f", marker]).stdout.split(separator: "\n").compactMap { pid_t($0) }
        for pid in survivors { kill(pid, SIGKILL) } // this test's own, should any be left
        #expect(survivors.isEmpty, "a descendant outlived the sandbox: \(survivors)")
        let tmpdir = try String(contentsOfFile: "\(dir)/tmpdir", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(tmpdir.hasPrefix("/tmp/cell-") && !FileManager.default.fileExists(atPath: tmpdir), "\(tmpdir) is left behind")
    }
}
