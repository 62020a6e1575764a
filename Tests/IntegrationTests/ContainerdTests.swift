import Foundation
import Glibc
import Testing

/// cell-runtime under containerd, run as the host's root as a fleet runs it: a containerd of the
/// test's own (its socket, root and state in a temporary directory), `ctr` as its client, the
/// runc shim (containerd-shim-runc-v2) calling cell-runtime as its runc binary. The bundle is
/// `ctr oci spec`'s default, with a user namespace added: run by the host's root, cell-runtime
/// refuses a container without one (runc runs it as the host's root), and with one it maps only
/// what the config's maps say.
enum Containerd {
    static let tools = ["/usr/bin/containerd", "/usr/bin/ctr", "/usr/bin/containerd-shim-runc-v2", "/usr/sbin/runc", "/bin/busybox"]
    static let available: Bool = {
        let ready = Sandbox.isRoot && tools.allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }
        if !ready { print("ContainerdTests: need root and \(tools.joined(separator: ", ")) (Scripts/bootstrap installs them)") }
        // In CI (as root) they are always there: a missing one fails the run rather than skipping it.
        return ready || Sandbox.inCI
    }()
}

@Suite(.enabled(if: Sandbox.available && Containerd.available, "containerd needs root and Scripts/bootstrap's packages"), .serialized)
final class ContainerdTests {
    /// Ids the container's root is mapped to: a range no user of this host has.
    static let hostBase = 3_000_000
    let dir = "/tmp/cctd-" + String(UUID().uuidString.prefix(8))
    /// containerd namespace: the shim keeps runc's (cell-runtime's) state in /run/containerd/runc/NAMESPACE.
    let namespace = "cell-test-" + String(UUID().uuidString.prefix(8)).lowercased()
    var daemon: pid_t = 0

    init() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let config = """
            version = 2
            root = "\(dir)/root"
            state = "\(dir)/state"
            disabled_plugins = ["io.containerd.grpc.v1.cri"]
            [grpc]
              address = "\(dir)/containerd.sock"
            [ttrpc]
              address = "\(dir)/containerd.sock.ttrpc"
            """
        try config.write(toFile: dir + "/config.toml", atomically: true, encoding: .utf8)
        daemon = try Self.spawn(["/usr/bin/containerd", "--config", dir + "/config.toml"], output: dir + "/containerd.log")
        #expect(eventually(timeout: 30) { FileManager.default.fileExists(atPath: self.dir + "/containerd.sock") }, "containerd did not start")
        // The container's root filesystem, owned by the ids its root maps to.
        let made = Sandbox.execute(["sh", "-c", """
            set -e; mkdir -p \(dir)/rootfs/bin \(dir)/rootfs/proc \(dir)/rootfs/dev \(dir)/rootfs/sys \(dir)/rootfs/tmp \(dir)/rootfs/run
            cp /bin/busybox \(dir)/rootfs/bin/; for a in sh echo cat grep id sleep unshare; do ln -s busybox \(dir)/rootfs/bin/$a; done
            chown -R \(Self.hostBase):\(Self.hostBase) \(dir)/rootfs
            """])
        #expect(made.status == 0, "\(made.stderr)")
    }

    deinit {
        // Whatever a failed test left: its tasks and containers (their shims end with them), then
        // the containerd this test started, by its pid.
        for id in (try? FileManager.default.contentsOfDirectory(atPath: "/run/containerd/runc/\(namespace)")) ?? [] {
            _ = ctr(["task", "kill", "--signal", "KILL", id])
            _ = ctr(["task", "delete", "--force", id])
            _ = ctr(["container", "delete", id])
        }
        if daemon > 0 {
            kill(daemon, SIGKILL)
            var status: Int32 = 0
            waitpid(daemon, &status, 0)
        }
        try? FileManager.default.removeItem(atPath: "/run/containerd/runc/\(namespace)")
        try? FileManager.default.removeItem(atPath: dir)
    }

    static func spawn(_ argv: [String], output: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var pid: pid_t = 0
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { for arg in cArgs { free(arg) } }
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, cArgs, environ)
        try #require(spawned == 0, "cannot start \(argv[0]): \(spawned)")
        return pid
    }

    func ctr(_ arguments: [String], timeout: TimeInterval = 120) -> Sandbox.Result {
        OCIEngine.execute(["/usr/bin/ctr", "--address", dir + "/containerd.sock", "--namespace", namespace] + arguments,
                          output: dir + "/.ctr", timeout: timeout)
    }

    /// `ctr oci spec`, with `args` as the process, this test's root filesystem, and a user
    /// namespace mapping the container's ids 0-65535 to hostBase... unless `userNamespace` is false.
    func bundleSpec(_ args: [String], userNamespace: Bool = true, annotations: [String: String] = [:]) throws -> String {
        let spec = ctr(["oci", "spec"])
        var object = try #require(try JSONSerialization.jsonObject(with: Data(spec.stdout.utf8)) as? [String: Any], "\(spec.stderr)")
        var process = object["process"] as! [String: Any]
        process["args"] = args
        process["terminal"] = false
        object["process"] = process
        object["root"] = ["path": dir + "/rootfs", "readonly": false]
        object["annotations"] = annotations
        if userNamespace {
            var linux = object["linux"] as! [String: Any]
            linux["namespaces"] = (linux["namespaces"] as! [[String: Any]]) + [["type": "user"]]
            linux["uidMappings"] = [["containerID": 0, "hostID": Self.hostBase, "size": 65536]]
            linux["gidMappings"] = [["containerID": 0, "hostID": Self.hostBase, "size": 65536]]
            object["linux"] = linux
        }
        let path = dir + "/spec-\(UUID().uuidString.prefix(8)).json"
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("ctr run: as the host's root, a container needs a user namespace (runc would run it as the host's root); with one, it runs mapped")
    func ctrRun() throws {
        let probe = ["/bin/sh", "-c", "cat /proc/self/uid_map; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; unshare -U true; echo unshare=$?; exit 3"]
        // Without cell: runc runs the config as it is, the container's root the host's own.
        let underRunc = ctr(["run", "--rm", "--config", try bundleSpec(probe, userNamespace: false), "runc-\(UUID().uuidString.prefix(8))"])
        #expect(underRunc.stdout.contains("0          0 4294967295"), "the container's root is the host's under runc: \(underRunc.stdout) \(underRunc.stderr)")

        let refused = ctr(["run", "--rm", "--config", try bundleSpec(probe, userNamespace: false), "--runc-binary", OCIEngine.runtime, "refused"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("never makes the host's root a container's"), "\(refused.stderr)")

        let name = "ctr-\(UUID().uuidString).jsonl"
        defer { unlink("/var/log/cell/audit/" + name) }
        let run = ctr(["run", "--rm", "--config", try bundleSpec(probe, annotations: ["run.cell.audit-log": name]), "--runc-binary", OCIEngine.runtime, "mapped"])
        #expect(run.status == 3, "\(run.stdout) \(run.stderr)")
        #expect(run.stdout.contains("0    \(Self.hostBase)      65536"), "\(run.stdout)")
        #expect(run.stdout.contains("NoNewPrivs:\t1") && run.stdout.contains("Seccomp:\t2") && run.stdout.contains("unshare=1"), "\(run.stdout)")
        let log = (try? String(contentsOfFile: "/var/log/cell/audit/" + name, encoding: .utf8)) ?? ""
        #expect(log.contains("\"event\":\"start\"") && log.contains("\"syscall\":\"unshare\""), "\(log)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: "/run/containerd/runc/\(namespace)")) ?? []) == [])
    }

    @Test("ctr task exec, ps, kill and delete: through containerd's shim, as runc's")
    func ctrTask() throws {
        let id = "task-\(UUID().uuidString.prefix(8))".lowercased()
        let started = ctr(["run", "-d", "--config", try bundleSpec(["/bin/sleep", "1000"]), "--runc-binary", OCIEngine.runtime, id])
        #expect(started.status == 0, "\(started.stderr)")
        let exec = ctr(["task", "exec", "--exec-id", "e1", id, "/bin/sh", "-c", "echo from-exec; grep '^Seccomp:' /proc/self/status; exit 4"])
        #expect(exec.status == 4 && exec.stdout.contains("from-exec") && exec.stdout.contains("Seccomp:\t2"), "\(exec.stdout) \(exec.stderr)")
        let ps = ctr(["task", "ps", id])
        #expect(ps.stdout.split(separator: "\n").count == 3, "pid 1 and the sleep under a header: \(ps.stdout) \(ps.stderr)")
        #expect(ctr(["task", "kill", id]).status == 0)
        #expect(eventually(timeout: 20) { self.ctr(["task", "ls"]).stdout.contains("STOPPED") })
        #expect(ctr(["task", "delete", id]).status == 0)
        #expect(ctr(["container", "delete", id]).status == 0)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: "/run/containerd/runc/\(namespace)")) ?? []) == [])
    }
}
