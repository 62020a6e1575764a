import Foundation
import Glibc
import Testing

/// cell-runtime under a real engine: Debian's rootless podman (through conmon) runs containers
/// with `--runtime cell-runtime`, as an ordinary user with subordinate ids (Scripts/test makes
/// `cell-oci` when it runs as root), and the same bundle goes through runc and cell-runtime by
/// hand. The root filesystem is a static busybox.
enum OCIEngine {
    static let user = ProcessInfo.processInfo.environment["CELL_TEST_OCI_USER"] ?? "cell-oci"
    static let account: (uid: uid_t, gid: gid_t, home: String)? = {
        guard let entry = getpwnam(user) else { return nil }
        return (entry.pointee.pw_uid, entry.pointee.pw_gid, String(cString: entry.pointee.pw_dir))
    }()
    static var runtime: String { Sandbox.binDirectory + "/cell-runtime" }

    /// podman, runc and busybox installed, the user there, and root to become it.
    static let available: Bool = {
        let tools = ["/usr/bin/podman", "/usr/bin/conmon", "/usr/sbin/runc", "/bin/busybox", "/usr/bin/newuidmap"]
        let ready = Sandbox.isRoot && account != nil && tools.allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }
        if !ready { print("RuntimeTests: need root, the user \(user) and \(tools.joined(separator: ", ")) (Scripts/test sets them up)") }
        // In CI they are always there: a missing one fails the run rather than skipping it.
        return ready || Sandbox.inCI
    }()

    /// Runs `argv` with its output in files (`output`.1, .2) rather than pipes, and waits for it
    /// with waitpid. Foundation's Process was seen never to notice `podman run -d`'s exit here
    /// (runc or cell-runtime alike: podman a zombie, waitUntilExit blocked for good).
    static func execute(_ argv: [String], output: String, timeout: TimeInterval) -> Sandbox.Result {
        var actions: posix_spawn_file_actions_t = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output + ".1", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, output + ".2", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { for arg in cArgs { free(arg) } }
        let spawned = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs, environ)
        guard spawned == 0 else { return Sandbox.Result(status: -1, stdout: "", stderr: "cannot start \(argv[0]): \(spawned)") }
        var status: Int32 = 0
        let deadline = Date().addingTimeInterval(timeout)
        while waitpid(pid, &status, WNOHANG) == 0 {
            if Date() > deadline { kill(pid, SIGKILL) }
            usleep(2_000)
        }
        func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Sandbox.Result(status: code, stdout: read(output + ".1"), stderr: read(output + ".2"))
    }

    /// A directory of the test user's, with a busybox root filesystem and a runtime directory.
    final class Home {
        let dir: String
        var rootfs: String { dir + "/rootfs" }
        var runtimeDir: String { dir + "/xdg" }
        var stateDir: String { runtimeDir + "/cell-runtime" }

        init() throws {
            let account = try #require(OCIEngine.account, "no user \(OCIEngine.user)")
            // Short: podman refuses a run root path of more than 50 characters.
            dir = "/tmp/coci-" + String(UUID().uuidString.prefix(8))
            let made = Sandbox.execute(["sh", "-c", """
                set -e; mkdir -m 700 \(dir) \(dir)/xdg; mkdir -p \(dir)/rootfs/bin \(dir)/rootfs/proc \(dir)/rootfs/dev \
                \(dir)/rootfs/sys \(dir)/rootfs/etc \(dir)/rootfs/tmp; cp /bin/busybox \(dir)/rootfs/bin/
                for a in sh echo cat ls sleep id true unshare mount swapoff touch grep tty; do ln -s busybox \(dir)/rootfs/bin/$a; done
                chown -R \(account.uid):\(account.gid) \(dir)
                """])
            #expect(made.status == 0, "\(made.stderr)")
        }

        /// `argv` as the test user, with a clean environment of its own.
        func asUser(_ argv: [String], timeout: TimeInterval = 120) -> Sandbox.Result {
            OCIEngine.execute(userCommand(argv), output: dir + "/.out", timeout: timeout)
        }

        func userCommand(_ argv: [String]) -> [String] {
            let account = OCIEngine.account!
            return ["/usr/bin/setpriv", "--reuid=\(account.uid)", "--regid=\(account.gid)", "--init-groups", "/usr/bin/env", "-i",
                    "HOME=\(account.home)", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "XDG_RUNTIME_DIR=\(runtimeDir)"] + argv
        }

        /// podman with cell-runtime, in the settings this host needs (its cgroups are a hybrid
        /// layout a plain user cannot write; no journald), with storage, run and temporary
        /// directories of this test's own: podman otherwise keeps them in the user's home and
        /// reuses the first run's for every later one.
        func podman(_ arguments: [String], runtime: String = OCIEngine.runtime) -> Sandbox.Result {
            asUser(podmanCommand(arguments, runtime: runtime))
        }

        func podmanCommand(_ arguments: [String], runtime: String = OCIEngine.runtime) -> [String] {
            ["podman", "--cgroup-manager=cgroupfs", "--events-backend=file", "--root", dir + "/storage", "--runroot", dir + "/run",
             "--tmpdir", dir + "/tmp", "--runtime", runtime] + arguments
        }

        /// `podman ARGUMENTS` on a terminal of its own, driven by Tests/Fixtures/pty-session.py:
        /// a shell's prompt awaited, `tty` and an echo typed, then `exit 5`.
        func podmanOnTerminal(_ arguments: [String]) throws -> (output: String, status: Int) {
            let driver = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("Fixtures/pty-session.py").path
            let r = Sandbox.execute(["python3", driver] + userCommand(podmanCommand(arguments)), timeout: 240)
            let document = try #require(try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stdout) \(r.stderr)")
            return (document["output"] as? String ?? "", document["status"] as? Int ?? -1)
        }

        func cellRuntime(_ arguments: [String]) -> Sandbox.Result {
            asUser([OCIEngine.runtime, "--root", stateDir] + arguments)
        }

        func stateEntries() -> [String] {
            (try? FileManager.default.contentsOfDirectory(atPath: stateDir)) ?? []
        }

        /// Ends rootless podman's pause process (it keeps the user namespace for later calls):
        /// started by this test's podman, found by the pid it wrote in this test's runtime directory.
        deinit {
            // Whatever a failed test left running: its containers (through podman), then the
            // pause process this test's podman started (its pid where podman wrote it).
            func pausePID() -> Int32? {
                let text = try? String(contentsOfFile: dir + "/tmp/pause.pid", encoding: .utf8)
                return text.flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }.flatMap { $0 > 1 ? $0 : nil }
            }
            let before = pausePID()
            if FileManager.default.fileExists(atPath: dir + "/storage") { _ = podman(["rm", "--all", "--force", "--time", "0"]) }
            for pid in Set([before, pausePID()].compactMap { $0 }) { kill(pid, SIGKILL) }
            try? FileManager.default.removeItem(atPath: dir)
        }
    }
}

@Suite(.enabled(if: Sandbox.available && OCIEngine.available, "rootless podman and runc are not set up here"), .serialized)
struct RuntimeTests {
    @Test("podman run --rm through cell-runtime: the output, the exit status, only lo, and nothing left in the state directory")
    func podmanRun() throws {
        let home = try OCIEngine.Home()
        let r = home.podman(["run", "--rm", "--network", "none", "--rootfs", home.rootfs,
                             "/bin/sh", "-c", "echo hi; ls /sys/class/net; cat /proc/1/cmdline; exit 3"])
        #expect(r.status == 3, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "hi")
        #expect(lines.dropFirst().first == "lo", "only lo inside: \(lines)")
        // The container's pid 1 is cell's init, not the command: it forwards signals and reaps.
        #expect(lines.last?.hasPrefix("cell-init") == true, "\(lines)")
        #expect(home.stateEntries() == [], "\(home.stateEntries())")
    }

    /// An image in podman's storage (imported from the busybox tree: nothing is pulled), as a CI
    /// job runs one: its layers' directory is the bundle's root, writable.
    @Test("an image from podman's storage: run from its layers, its root writable")
    func podmanImage() throws {
        let home = try OCIEngine.Home()
        let global = "--cgroup-manager=cgroupfs --events-backend=file --root \(home.dir)/storage --runroot \(home.dir)/run --tmpdir \(home.dir)/tmp"
        let imported = home.asUser(["sh", "-c", "cd \(home.rootfs) && tar -c . | podman \(global) import - localhost/cellbox"])
        #expect(imported.status == 0, "\(imported.stderr)")
        let r = home.podman(["run", "--rm", "--network", "none", "localhost/cellbox", "/bin/sh", "-c", "touch /new && echo written"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "written\n")
    }

    /// Rootless podman's own network: slirp4netns on a network namespace podman made, which the
    /// container joins by path (nothing is sent anywhere: the test only looks at the interfaces).
    @Test("podman's default network: the engine's namespace joined, its tap0 inside")
    func podmanNetworkJoined() throws {
        let home = try OCIEngine.Home()
        let r = home.podman(["run", "--rm", "--rootfs", home.rootfs, "/bin/sh", "-c", "ls /sys/class/net"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").sorted() == ["lo", "tap0"], "\(r.stdout)")
    }

    @Test("podman run -d, ps, stop, kill, rm: the container's status follows, and delete leaves nothing")
    func podmanDetached() throws {
        let home = try OCIEngine.Home()
        let started = home.podman(["run", "-d", "--network", "none", "--rootfs", home.rootfs, "/bin/sleep", "1000"])
        #expect(started.status == 0, "\(started.stderr)")
        let id = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let ps = home.podman(["ps", "--format", "{{.ID}} {{.Status}}"])
        #expect(ps.stdout.contains(String(id.prefix(12)) + " Up"), "\(ps.stdout) \(ps.stderr)")
        // cell-runtime's own view: running, its pid in a pid namespace of its own.
        let state = home.cellRuntime(["state", id])
        let document = try JSONSerialization.jsonObject(with: Data(state.stdout.utf8)) as? [String: Any]
        #expect(document?["status"] as? String == "running", "\(state.stdout) \(state.stderr)")
        let pid = document?["pid"] as? Int ?? 0
        #expect(pid > 0)
        let hostNamespace = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/pid")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/pid")) != hostNamespace)
        // ps: pid 1 and the command, as host pids (JSON, as containerd reads it), and a table.
        let listed = home.cellRuntime(["ps", "--format", "json", id])
        let pids = (try? JSONSerialization.jsonObject(with: Data(listed.stdout.utf8))) as? [Int] ?? []
        #expect(pids.count == 2 && pids.first == pid, "\(listed.stdout) \(listed.stderr)")
        let sleeper = try #require(pids.last)
        #expect((try? String(contentsOfFile: "/proc/\(sleeper)/cmdline", encoding: .utf8)) == "/bin/sleep\u{0}1000\u{0}")
        #expect(home.cellRuntime(["ps", id]).stdout.contains("\(sleeper)\t/bin/sleep 1000"))

        // podman stop: SIGTERM reaches the command (cell-init forwards it), which dies of it.
        let stop = home.podman(["stop", "-t", "10", id])
        #expect(stop.status == 0, "\(stop.stderr)")
        let stopped = home.podman(["ps", "-a", "--format", "{{.ID}} {{.Status}}"])
        #expect(stopped.stdout.contains(String(id.prefix(12)) + " Exited (143)"), "\(stopped.stdout)")

        let second = home.podman(["run", "-d", "--network", "none", "--rootfs", home.rootfs, "/bin/sleep", "1000"])
        let other = second.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(home.podman(["kill", other]).status == 0)
        #expect(eventually(timeout: 20) {
            home.podman(["ps", "-a", "--format", "{{.ID}} {{.Status}}"]).stdout.contains(String(other.prefix(12)) + " Exited (137)")
        })
        #expect(home.podman(["rm", id, other]).status == 0)
        #expect(home.stateEntries() == [], "\(home.stateEntries())")
    }

    /// exec's process is started by the container's pid 1, so it has the container's filters:
    /// the attack (a user namespace of its own) works in a process runc execs, and is refused
    /// and audited in one cell-runtime execs.
    @Test("podman exec: a second process in the running container, its output and status back, under the container's filters, audited")
    func podmanExec() throws {
        let home = try OCIEngine.Home()
        let attack = ["/bin/sh", "-c", "echo from-exec; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; unshare -U true; echo unshare=$?; exit 7"]
        let runc = "/usr/sbin/runc"
        let underRunc = home.podman(["run", "-d", "--network", "none", "--rootfs", home.rootfs, "/bin/sleep", "1000"], runtime: runc)
        let runcID = underRunc.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let runcExec = home.podman(["exec", runcID] + attack, runtime: runc)
        #expect(runcExec.stdout.contains("unshare=0"), "the attack must work without cell: \(runcExec.stdout) \(runcExec.stderr)")
        _ = home.podman(["rm", "--force", "--time", "0", runcID], runtime: runc)

        let name = "exec-\(UUID().uuidString).jsonl"
        let path = try #require(OCIEngine.account).home + "/.local/state/cell/audit/" + name
        defer { unlink(path) }
        let started = home.podman(["run", "-d", "--network", "none", "--annotation", "run.cell.audit-log=\(name)", "--rootfs", home.rootfs,
                                   "/bin/sleep", "1000"])
        #expect(started.status == 0, "\(started.stderr)")
        let id = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let exec = home.podman(["exec", id] + attack)
        #expect(exec.status == 7, "\(exec.stdout) \(exec.stderr)")
        #expect(exec.stdout.contains("from-exec"))
        #expect(exec.stdout.contains("NoNewPrivs:\t1") && exec.stdout.contains("Seccomp:\t2"), "\(exec.stdout)")
        #expect(exec.stdout.contains("unshare=1"), "\(exec.stdout)")

        // exec -d: the process stays, one of the container's (cell-runtime ps lists it).
        let detached = home.podman(["exec", "-d", id, "/bin/sleep", "777"])
        #expect(detached.status == 0, "\(detached.stderr)")
        #expect(eventually(timeout: 20) {
            let listed = home.cellRuntime(["ps", "--format", "json", id])
            let pids = (try? JSONSerialization.jsonObject(with: Data(listed.stdout.utf8))) as? [Int] ?? []
            return pids.count == 3 && pids.contains { (try? String(contentsOfFile: "/proc/\($0)/cmdline", encoding: .utf8)) == "/bin/sleep\u{0}777\u{0}" }
        })
        // A client that sends its request a byte a second holds nobody: the exec beside it
        // runs at once (a monitor waiting for the slow one would hold it 20 s), and the slow
        // one is told its time ran out.
        let socket = home.dir + "/" + (try #require(FileManager.default.enumerator(atPath: home.dir)?.compactMap { $0 as? String }
            .first { $0.hasSuffix(id + "/exec.sock") }))
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/slow-exec-client.py").path
        let both = home.asUser(["/usr/bin/python3", fixture, socket] + home.podmanCommand(["exec", id, "/bin/sh", "-c", "unshare -U true; echo beside"]))
        let outcome = try #require(try? JSONSerialization.jsonObject(with: Data(both.stdout.utf8)) as? [String: Any], "\(both.stdout) \(both.stderr)")
        #expect(outcome["out"] as? String == "beside\n", "\(outcome)")
        #expect((outcome["took"] as? Double ?? 99) < 15, "\(outcome)")
        #expect((outcome["told"] as? String)?.contains("did not arrive within 2 seconds") == true, "\(outcome)")
        // A program that is not there: podman's error names it, with exec's status.
        let missing = home.podman(["exec", id, "/bin/no-such-program"])
        #expect(missing.status != 0 && missing.stderr.contains("cannot run /bin/no-such-program in the container"), "\(missing.stderr)")
        #expect(home.podman(["rm", "--force", "--time", "0", id]).status == 0)

        // The audit log, written outside the container: each exec, its end, and its refusal.
        let log = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let events = log.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let execs = events.filter { $0["event"] as? String == "exec" }
        #expect(execs.map { ($0["command"] as? [String])?.first } == ["/bin/sh", "/bin/sleep", "/bin/sh"], "\(log)")
        let shell = try #require(execs.first?["sandbox_pid"] as? Int)
        #expect(events.contains { $0["event"] as? String == "exec_exit" && $0["sandbox_pid"] as? Int == shell && $0["status"] as? Int == 7 }, "\(log)")
        // (The container's own process only sleeps: the refusal is the exec'd shell's child's.)
        #expect(events.contains { $0["event"] as? String == "syscall" && $0["syscall"] as? String == "unshare" && $0["action"] as? String == "denied" },
                "\(log)")
        #expect(events.last?["event"] as? String == "exit")
    }

    /// The pid an engine follows for `exec --detach` is a waiter's: a signal to it reaches the
    /// process, and its death (SIGKILL) kills the process, as runc's pid-file process would.
    @Test("exec --detach: the waiter's pid file; its signals reach the process, its death ends it")
    func execLifeline() throws {
        let home = try OCIEngine.Home()
        let started = home.podman(["run", "-d", "--network", "none", "--rootfs", home.rootfs, "/bin/sleep", "1000"])
        let id = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let state = try JSONSerialization.jsonObject(with: Data(home.cellRuntime(["state", id]).stdout.utf8)) as? [String: Any]
        let bundle = try #require(state?["bundle"] as? String)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: bundle + "/config.json"))) as? [String: Any]
        func detached(_ seconds: Int) throws -> (waiter: pid_t, process: Int) {
            var process = try #require(config?["process"] as? [String: Any])
            process["args"] = ["/bin/sleep", "\(seconds)"]
            let file = home.dir + "/process-\(seconds).json"
            try JSONSerialization.data(withJSONObject: process).write(to: URL(fileURLWithPath: file))
            chmod(file, 0o644)
            let pidFile = home.dir + "/exec-\(seconds).pid"
            let exec = home.cellRuntime(["exec", "--detach", "--pid-file", pidFile, "--process", file, id])
            #expect(exec.status == 0, "\(exec.stderr)")
            let waiter = pid_t((try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { Int32($0) } ?? 0)
            var sleeper = 0
            _ = eventually(timeout: 20) {
                let listed = home.cellRuntime(["ps", "--format", "json", id])
                let pids = (try? JSONSerialization.jsonObject(with: Data(listed.stdout.utf8))) as? [Int] ?? []
                sleeper = pids.first { (try? String(contentsOfFile: "/proc/\($0)/cmdline", encoding: .utf8)) == "/bin/sleep\u{0}\(seconds)\u{0}" } ?? 0
                return sleeper > 0
            }
            #expect(waiter > 0 && sleeper > 0 && Int(waiter) != sleeper, "waiter \(waiter), process \(sleeper)")
            return (waiter, sleeper)
        }
        /// Ended: no such process, or a zombie nobody has reaped yet (whoever its parent is now).
        func gone(_ pid: Int) -> Bool {
            eventually(timeout: 20) {
                guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return true }
                return stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
            }
        }

        let first = try detached(778)
        kill(first.waiter, SIGTERM)
        #expect(gone(first.process), "SIGTERM to the waiter reaches the process")
        #expect(gone(Int(first.waiter)))
        let second = try detached(779)
        kill(second.waiter, SIGKILL)
        #expect(gone(second.process), "the waiter's death ends the process")
        #expect(home.podman(["rm", "--force", "--time", "0", id]).status == 0)
    }

    @Test("podman run -it and podman exec -it: a shell on the container's own pty, driven from a terminal")
    func terminals() throws {
        let home = try OCIEngine.Home()
        let run = try home.podmanOnTerminal(["run", "--rm", "-it", "--network", "none", "--rootfs", home.rootfs, "/bin/sh"])
        #expect(run.status == 5, "\(run.output)")
        #expect(run.output.contains("/dev/pts/0") && run.output.contains("marker-42"), "\(run.output)")

        let started = home.podman(["run", "-d", "--network", "none", "--rootfs", home.rootfs, "/bin/sleep", "1000"])
        let id = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let exec = try home.podmanOnTerminal(["exec", "-it", id, "/bin/sh"])
        #expect(exec.status == 5, "\(exec.output)")
        #expect(exec.output.contains("/dev/pts/") && exec.output.contains("marker-42"), "\(exec.output)")
        #expect(home.podman(["rm", "--force", "--time", "0", id]).status == 0)
        #expect(home.stateEntries() == [], "\(home.stateEntries())")
    }

    /// The attack: a container creates a user namespace of its own (the way into most kernel
    /// bugs a container can reach). Under runc with podman's own filter it can; under
    /// cell-runtime the default profile refuses it, and the audit log the annotation names says so.
    @Test("a call podman's filter allows and cell's profile refuses: works under runc, refused and audited under cell-runtime")
    func seccompDenialIsAudited() throws {
        let home = try OCIEngine.Home()
        let probe = ["/bin/sh", "-c", "unshare -U true; echo unshare=$?; swapoff /tmp; echo swapoff=$?"]
        let underRunc = home.podman(["run", "--rm", "--network", "none", "--rootfs", home.rootfs] + probe, runtime: "/usr/sbin/runc")
        #expect(underRunc.stdout.contains("unshare=0"), "the attack must work without cell: \(underRunc.stdout) \(underRunc.stderr)")

        // The log lands in the runtime user's audit directory (conmon passes the engine's HOME,
        // not the rest of its environment).
        let name = "job-\(UUID().uuidString).jsonl"
        let path = try #require(OCIEngine.account).home + "/.local/state/cell/audit/" + name
        defer { unlink(path) }
        let underCell = home.podman(["run", "--rm", "--network", "none", "--annotation", "run.cell.audit-log=\(name)",
                                     "--rootfs", home.rootfs] + probe)
        #expect(underCell.stdout.contains("unshare=1"), "\(underCell.stdout) \(underCell.stderr)")
        let log = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let events = log.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(events.first?["event"] as? String == "start")
        #expect(events.contains { $0["event"] as? String == "syscall" && $0["syscall"] as? String == "unshare" && $0["action"] as? String == "denied" },
                "\(log)")
        #expect(events.last?["event"] as? String == "exit")
        #expect(events.first?["container"] as? String != nil, "the start event names the engine's container")
        // swapoff is refused by podman's filter and by cell's profile alike: the refusal the
        // kernel applies is the profile's, so it is recorded (podman's would be silent).
        #expect(underCell.stdout.contains("swapoff=1"))
        #expect(events.contains { $0["event"] as? String == "syscall" && $0["syscall"] as? String == "swapoff" }, "\(log)")
    }

    @Test("the same bundle under runc and cell-runtime: created, running, stopped, gone")
    func stateTransitionsMatchRunc() throws {
        let home = try OCIEngine.Home()
        let account = try #require(OCIEngine.account)
        // runc's own rootless template, the user's id mapped to root inside, running sleep.
        let bundle = home.dir + "/bundle"
        let spec = home.asUser(["sh", "-c", "mkdir \(bundle) && cd \(bundle) && runc spec --rootless && cp -a ../rootfs rootfs"])
        #expect(spec.status == 0, "\(spec.stderr)")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: bundle + "/config.json"))) as! [String: Any]
        var process = config["process"] as! [String: Any]
        process["args"] = ["/bin/sleep", "1000"]
        process["terminal"] = false
        config["process"] = process
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: bundle + "/config.json"))
        chown(bundle + "/config.json", account.uid, account.gid)

        func transitions(_ runtime: String) -> [String] {
            let root = home.dir + "/state-" + URL(fileURLWithPath: runtime).lastPathComponent
            func call(_ arguments: [String]) -> Sandbox.Result { home.asUser([runtime, "--root", root] + arguments) }
            func status() -> String {
                let r = call(["state", "t1"])
                guard r.status == 0 else { return r.stderr.contains("does not exist") ? "gone" : "error: \(r.stderr)" }
                return ((try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any])?["status"] as? String ?? r.stdout
            }
            var seen: [String] = []
            let created = call(["create", "--bundle", bundle, "--pid-file", home.dir + "/pid", "t1"])
            if created.status != 0 { return ["create failed: \(created.stderr)"] }
            seen.append(status())
            _ = call(["start", "t1"])
            seen.append(status())
            _ = call(["kill", "t1", "KILL"])
            _ = eventually(timeout: 10) { status() == "stopped" }
            seen.append(status())
            _ = call(["delete", "t1"])
            seen.append(status())
            let left = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
            if !left.isEmpty { seen.append("left: \(left)") }
            return seen
        }
        let runc = transitions("/usr/sbin/runc")
        #expect(runc == ["created", "running", "stopped", "gone"])
        #expect(transitions(OCIEngine.runtime) == runc)
    }

    @Test("errors as engines read them: JSON lines with level and msg, the phrases they match, nothing left after a failed create")
    func errors() throws {
        let home = try OCIEngine.Home()
        let log = home.dir + "/runtime.log"
        let missing = home.asUser([OCIEngine.runtime, "--root", home.stateDir, "--log", log, "--log-format", "json", "state", "nosuch"])
        #expect(missing.status == 1)
        let line = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").last.map(String.init) ?? ""
        let entry = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        #expect(entry?["level"] as? String == "error")
        #expect((entry?["msg"] as? String)?.contains("does not exist") == true, "\(line)")

        // A config cell-runtime cannot honour: refused, named, and no container left behind.
        let bundle = home.dir + "/bad"
        let config = #"{"ociVersion": "1.0.2", "root": {"path": "\#(home.rootfs)"}, "process": {"args": ["/bin/true"], "cwd": "/"}, "#
            + #""hooks": {"prestart": [{"path": "/bin/true"}]}, "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}}"#
        _ = home.asUser(["mkdir", bundle])
        _ = home.asUser(["sh", "-c", "cat > \(bundle)/config.json <<'EOF'\n\(config)\nEOF"])
        let refused = home.cellRuntime(["create", "--bundle", bundle, "c1"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("OCI hooks are not supported"), "\(refused.stderr)")
        #expect(home.stateEntries() == [])
        let notRunning = home.cellRuntime(["kill", "c1"])
        #expect(notRunning.stderr.contains("does not exist"), "\(notRunning.stderr)")
        for unsupported in ["pause", "resume", "update"] {
            let r = home.cellRuntime([unsupported, "c1"])
            #expect(r.status == 1 && r.stderr.contains("not supported"), "\(unsupported): \(r.stderr)")
        }
        let noProcess = home.cellRuntime(["exec", "c1"])
        #expect(noProcess.status == 1 && noProcess.stderr.contains("exec needs --process FILE"), "\(noProcess.stderr)")
        let noContainer = home.cellRuntime(["exec", "--process", bundle + "/config.json", "c1"])
        #expect(noContainer.status == 1 && noContainer.stderr.contains("does not exist"), "\(noContainer.stderr)")
    }
}
