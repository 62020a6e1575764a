import CellLauncher
import CellPolicy
@testable import CellRuntime
import Foundation
import Testing

/// config.json → LaunchPlan, on the config rootless podman 4.3 wrote on this machine for
/// `podman run --rm --network none --rootfs DIR /bin/sh -c ...` (Tests/Fixtures/oci), and on
/// variations of it that cell-runtime must refuse.
struct ContainerPlannerTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/oci/podman-rootless-config.json")

    func podmanConfig() throws -> String {
        try String(contentsOf: Self.fixture, encoding: .utf8)
    }

    /// The config with `edit` applied to its JSON object.
    func edited(_ edit: (inout [String: Any]) -> Void) throws -> OCIConfig {
        var object = try JSONSerialization.jsonObject(with: Data(try podmanConfig().utf8)) as! [String: Any]
        edit(&object)
        let text = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        return try OCIConfig.parse(text, file: "config.json")
    }

    /// A planner that sees every host path as existing: directories, but for the files podman
    /// binds and the device nodes.
    /// (As rootless podman runs it: root of the engine's user namespace, not the host's.)
    func planner(_ config: OCIConfig, runtimeIsRoot: Bool = true, hostRoot: Bool = false) -> ContainerPlanner {
        var planner = ContainerPlanner(config: config, bundle: "/bundle", policy: .default, profileName: "default", auditLogPath: nil)
        planner.runtimeIsRoot = runtimeIsRoot
        planner.runtimeIsHostRoot = hostRoot
        planner.resolve = { $0 }
        planner.fileType = { path in
            if path.hasPrefix("/dev/") { return UInt32(S_IFCHR) }
            if ["hostname", "hosts", ".containerenv", "kcore", "keys", "timer_list", "sched_debug", "latency_stats", "timer_stats"]
                .contains(where: { path.hasSuffix("/" + $0) }) { return UInt32(S_IFREG) }
            return UInt32(S_IFDIR)
        }
        return planner
    }

    func refusal(_ config: OCIConfig, runtimeIsRoot: Bool = true) -> String? {
        do {
            _ = try planner(config, runtimeIsRoot: runtimeIsRoot).plan()
            return nil
        } catch {
            return error.message
        }
    }

    @Test func podmanConfigParses() throws {
        let config = try OCIConfig.parse(try podmanConfig(), file: "config.json")
        #expect(config.args == ["/bin/sh", "-c", "echo hi; ip link; exit 3"])
        #expect(config.rootPath == "/tmp/oci/rootfs")
        #expect(config.namespaces.map(\.type) == ["pid", "network", "ipc", "uts", "mount"])
        #expect(config.mounts.count == 10)
        #expect(config.capabilities["bounding"]?.count == 11)
        #expect(config.umask == 18)
        #expect(config.seccomp != nil)
        #expect(config.annotation("io.container.manager") == "libpod")
        #expect(config.present.isEmpty, "\(config.present)")
    }

    @Test func podmanConfigBecomesAPlan() throws {
        let plan = try planner(try OCIConfig.parse(try podmanConfig(), file: "config.json")).plan()
        #expect(plan.namespaces == [.pid, .net, .ipc, .uts, .mount])
        let container = try #require(plan.container)
        #expect(!(container.newUserNamespace), "podman's user namespace is the runtime's own")
        #expect(!(plan.ownsUserNamespace))
        #expect(container.root == ContainerPlan.Root(path: "/tmp/oci/rootfs", readOnly: false))
        #expect(container.user == ContainerPlan.User(uid: 0, gid: 0, groups: []))
        #expect(container.sysctls == [ContainerPlan.Sysctl(name: "net.ipv4.ping_group_range", value: "0 0")])
        #expect(container.rlimits == [ContainerPlan.Rlimit(resource: 7, soft: 20000, hard: 20000),
                                           ContainerPlan.Rlimit(resource: 6, soft: 32768, hard: 32768)])
        #expect(Capabilities.names(plan.keptCapabilities).sorted() == ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_NET_BIND_SERVICE",
                        "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT"])
        let engine = try #require(container.engineSeccomp)
        #expect(engine.defaultAction == .errno(38), "podman's defaultErrnoRet (ENOSYS)")

        func op(_ dest: String) -> MountOperation? { plan.mounts.first { $0.destination == dest } }
        #expect(op("/proc")?.kind == .proc)
        #expect(op("/dev")?.kind == .tmpfs)
        #expect(op("/dev")?.size == 65536 * 1024)
        #expect(op("/dev")?.mode == 0o755)
        #expect(op("/sys")?.kind == .sysfs)
        #expect(op("/sys")?.readOnly == true)
        #expect(op("/dev/pts")?.kind == .devpts)
        #expect(op("/dev/mqueue")?.kind == .mqueue)
        #expect(op("/etc/hosts")?.kind == .bind)
        #expect(op("/etc/hosts")?.expectedType == UInt32(S_IFREG))
        #expect(op("/etc/hosts")?.readOnly == false)
        #expect(op("/sys/fs/cgroup")?.kind == .tmpfs, "not the host's cgroups: an empty stand-in")
        #expect(op("/sys/fs/cgroup")?.readOnly == true)
        #expect(op("/dev/null")?.device == true)
        #expect(op("/dev/ptmx")?.source == "pts/ptmx")
        #expect(op("/proc/kcore")?.kind == .hide)
        #expect(op("/proc/acpi")?.kind == .hide)
        #expect(op("/proc/acpi")?.expectedType == UInt32(S_IFDIR))
        #expect(op("/proc/sys")?.kind == .remountReadOnly)
        // The config's mounts come first, in their order; the masks after every mount.
        #expect(plan.mounts.prefix(3).map(\.destination) == ["/proc", "/dev", "/sys"])
        #expect(plan.mounts.firstIndex { $0.destination == "/sys/fs/cgroup" }! < plan.mounts.firstIndex { $0.destination == "/proc/kcore" }!)

        let records = plan.setupRecords()
        #expect(records.first == .namespaces([.pid, .net, .ipc, .uts, .mount]))
        #expect(!(records.contains(.userNamespaceLimit(0))), "the engine's user namespace's sysctl is not the container's to set")
        #expect(records.contains(.rootTree(path: "/tmp/oci/rootfs", readOnly: false)))
        #expect(!(records.contains { if case .root = $0 { return true }; return false }))
        #expect(records.contains(.hold), "the process waits for start")
        #expect(records.contains(.loopback))
        #expect(records.contains(.hostname("5d0a2d371e5d")))
        #expect(records.contains(.user(uid: 0, gid: 0, groups: [])))
        // Every record survives the wire format.
        #expect(try PlanEncoding.decode(PlanEncoding.header + PlanEncoding.encode(records)) == records)
    }

    @Test func joinedNamespacesAndANewUserNamespace() throws {
        let config = try edited { object in
            var linux = object["linux"] as! [String: Any]
            linux["namespaces"] = [["type": "pid"], ["type": "mount"], ["type": "network", "path": "/run/user/1001/netns/netns-1"],
                                   ["type": "user"], ["type": "ipc", "path": "/proc/7/ns/ipc"]]
            linux["uidMappings"] = [["containerID": 0, "hostID": 1001, "size": 1]]
            linux["gidMappings"] = [["containerID": 0, "hostID": 1001, "size": 1]]
            linux["sysctl"] = nil
            object["linux"] = linux
            object["hostname"] = nil
        }
        let plan = try planner(config, runtimeIsRoot: false).plan()
        #expect(plan.namespaces == [.pid, .mount])
        #expect(plan.container?.joined == [ContainerPlan.Joined(namespace: .net, path: "/run/user/1001/netns/netns-1"),
                                                ContainerPlan.Joined(namespace: .ipc, path: "/proc/7/ns/ipc")])
        #expect(plan.ownsUserNamespace)
        #expect(plan.identity.uidMap == [IDRange(inside: 0, outside: 1001)])
        #expect(plan.identity.denySetgroups, "an unprivileged map writer must deny setgroups")
        #expect(plan.container?.user == nil, "root of the new namespace already: no ids to take")
        #expect(plan.mounts.first { $0.destination == "/sys" }?.kind == .bind, "a sysfs needs the network namespace's owner")
        let records = plan.setupRecords()
        #expect(records.contains(.joinNamespace(.net, path: "/run/user/1001/netns/netns-1")))
        #expect(!(records.contains(.loopback)), "an engine's network is the engine's")
        // The uts namespace is the runtime's here: no hostname of the container's.
        var named = config
        named.hostname = "c1"
        #expect(refusal(named) == "hostname needs a uts namespace of the container's own (linux.namespaces)")
    }

    /// process.terminal: a pty of the container's own, of the config's consoleSize, for all of
    /// stdin, stdout and stderr; pid 1 makes it on the config's devpts.
    @Test func aTerminalIsAPtyOnTheContainersDevpts() throws {
        let config = try edited {
            var process = $0["process"] as! [String: Any]
            process["terminal"] = true
            process["consoleSize"] = ["height": 40, "width": 100]
            $0["process"] = process
        }
        let plan = try planner(config).plan()
        #expect(plan.terminal == TerminalPlan(descriptors: [0, 1, 2], rows: 40, columns: 100))
        #expect(plan.setupRecords().contains(.terminal(rows: 40, columns: 100, descriptors: 7)))
        #expect(plan.setupRecords().contains(.takeProcesses))
    }

    /// `cell-runtime features` lists only what the planner takes: each namespace, mount option
    /// and seccomp action and operator it names is accepted, and what it leaves out is refused.
    @Test func theFeaturesDocumentMatchesThePlanner() throws {
        let document = try JSONSerialization.jsonObject(with: Data(Features.document().utf8)) as! [String: Any]
        let linux = try #require(document["linux"] as? [String: Any])
        func plans(_ edit: @escaping (inout [String: Any]) -> Void) throws -> Bool { refusal(try edited(edit)) == nil }
        for namespace in try #require(linux["namespaces"] as? [String]) {
            #expect(try plans {
                var section = $0["linux"] as! [String: Any]
                var list = (section["namespaces"] as! [[String: Any]]).filter { $0["type"] as? String != namespace }
                list.append(["type": namespace])
                section["namespaces"] = list
                if namespace == "user" {
                    section["uidMappings"] = [["containerID": 0, "hostID": 1000, "size": 1]]
                    section["gidMappings"] = [["containerID": 0, "hostID": 1000, "size": 1]]
                }
                $0["linux"] = section
            }, "namespace \(namespace)")
        }
        func bind(_ options: [String]) -> (inout [String: Any]) -> Void {
            { $0["mounts"] = ($0["mounts"] as! [[String: Any]]) + [["destination": "/x", "type": "bind", "source": "/srv", "options": ["rbind"] + options]] }
        }
        for option in try #require(document["mountOptions"] as? [String]) {
            let value = ["size": "size=1m", "mode": "mode=755"][option] ?? option
            let mount: (inout [String: Any]) -> Void = ["size", "mode"].contains(option)
                ? { $0["mounts"] = ($0["mounts"] as! [[String: Any]]) + [["destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": [value]]] }
                : bind([value])
            #expect(try plans(mount), "mount option \(option)")
        }
        #expect(try !plans(bind(["idmap"])))
        let seccomp = try #require(linux["seccomp"] as? [String: Any])
        func filter(action: String, op: String) -> Bool {
            let text = """
                {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["swapon"], "action": "\(action)",
                 "args": [{"index": 0, "value": 1, "valueTwo": 1, "op": "\(op)"}]}]}
                """
            return (try? DockerSeccompProfile.policy(fromJSON: text, name: "test", keptCapabilities: [])) != nil
        }
        for action in try #require(seccomp["actions"] as? [String]) { #expect(filter(action: action, op: "SCMP_CMP_EQ"), "\(action)") }
        for op in try #require(seccomp["operators"] as? [String]) { #expect(filter(action: "SCMP_ACT_ERRNO", op: op), "\(op)") }
        #expect(!filter(action: "SCMP_ACT_NOTIFY", op: "SCMP_CMP_EQ"))
        #expect(document["hooks"] as? [String] == [])
        #expect((linux["cgroup"] as? [String: Bool])?.values.contains(true) == false, "linux.resources is refused")
    }

    /// Run by the host's root (containerd, rootful podman), cell-runtime gives a container a
    /// user namespace or refuses it: the config's maps decide which ids, host root included
    /// only when they map it.
    @Test func theHostsRootNeedsAUserNamespace() throws {
        let shared = try OCIConfig.parse(try podmanConfig(), file: "config.json")
        #expect(throws: RuntimeError.self) { try planner(shared, hostRoot: true).plan() }
        let mapped = try edited {
            var linux = $0["linux"] as! [String: Any]
            linux["namespaces"] = (linux["namespaces"] as! [[String: Any]]) + [["type": "user"]]
            linux["uidMappings"] = [["containerID": 0, "hostID": 100000, "size": 65536]]
            linux["gidMappings"] = [["containerID": 0, "hostID": 100000, "size": 65536]]
            $0["linux"] = linux
        }
        let plan = try planner(mapped, hostRoot: true).plan()
        #expect(plan.identity.uidMap == [IDRange(inside: 0, outside: 100000, count: 65536)])
        #expect(plan.container?.newUserNamespace == true)
    }

    /// containerd writes cpu.shares 1024 (the kernel's default weight) and a device list into
    /// every config: neither asks for a limit cell-runtime would have to refuse.
    @Test func containerdsDefaultResourcesAskNothing() throws {
        func resources(_ value: [String: Any]) throws -> String? {
            refusal(try edited {
                var linux = $0["linux"] as! [String: Any]
                linux["resources"] = value
                $0["linux"] = linux
            })
        }
        let devices: [[String: Any]] = [["allow": false, "access": "rwm"]]
        #expect(try resources(["devices": devices, "cpu": ["shares": 1024]]) == nil)
        #expect(try resources(["devices": devices, "cpu": ["shares": 512]])?.contains("linux.resources is not supported") == true)
        #expect(try resources(["cpu": ["shares": 1024, "quota": 50000]])?.contains("linux.resources is not supported") == true)
    }

    @Test func whatCellRuntimeRefuses() throws {
        func refused(_ expected: String, sourceLocation: SourceLocation = #_sourceLocation, _ edit: (inout [String: Any]) -> Void) throws {
            let message: String?
            do {
                message = refusal(try edited(edit))
            } catch let error as RuntimeError {
                message = error.message
            }
            #expect(message?.contains(expected) == true, "\(message ?? "accepted"): want \(expected)")
        }
        func linux(_ edit: @escaping (inout [String: Any]) -> Void) -> (inout [String: Any]) -> Void {
            { object in
                var section = object["linux"] as! [String: Any]
                edit(&section)
                object["linux"] = section
            }
        }
        func process(_ edit: @escaping (inout [String: Any]) -> Void) -> (inout [String: Any]) -> Void {
            { object in
                var section = object["process"] as! [String: Any]
                edit(&section)
                object["process"] = section
            }
        }
        try refused("OCI hooks are not supported") { $0["hooks"] = ["prestart": [["path": "/bin/true"]]] }
        try refused("process.terminal needs a devpts mount at /dev/pts") {
            process { $0["terminal"] = true }(&$0)
            $0["mounts"] = ($0["mounts"] as! [[String: Any]]).filter { $0["type"] as? String != "devpts" }
        }
        try refused("linux.resources is not supported") { linux { $0["resources"] = ["memory": ["limit": 1 << 20]] }(&$0) }
        try refused("linux.devices is not supported") { linux { $0["devices"] = [["path": "/dev/sda", "type": "b", "major": 8, "minor": 0]] }(&$0) }
        try refused("listenerPath is refused") { linux { $0["seccomp"] = ["defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock"] }(&$0) }
        try refused("needs a pid namespace of the container's own") { linux { $0["namespaces"] = [["type": "mount"]] }(&$0) }
        try refused("joining a pid namespace by path is not supported") {
            linux { $0["namespaces"] = [["type": "mount"], ["type": "pid", "path": "/proc/1/ns/pid"]] }(&$0)
        }
        try refused("joining a user namespace by path is not supported") {
            linux { $0["namespaces"] = [["type": "mount"], ["type": "pid"], ["type": "user", "path": "/proc/1/ns/user"]] }(&$0)
        }
        try refused("must map container id 0") {
            $0["hostname"] = nil
            linux {
                $0["namespaces"] = [["type": "mount"], ["type": "pid"], ["type": "user"]]
                $0["uidMappings"] = [["containerID": 1, "hostID": 1001, "size": 1]]
                $0["gidMappings"] = [["containerID": 0, "hostID": 1001, "size": 1]]
            }(&$0)
        }
        try refused("kernel.panic is not a sysctl of a namespace") { linux { $0["sysctl"] = ["kernel.panic": "1"] }(&$0) }
        try refused("not a sysctl name") { linux { $0["sysctl"] = ["net/../../x": "1"] }(&$0) }
        try refused("mount type 'overlay' is not supported") {
            $0["mounts"] = [["destination": "/x", "type": "overlay", "source": "overlay", "options": ["lowerdir=/a"]]]
        }
        try refused("rshared propagation is not supported") {
            $0["mounts"] = [["destination": "/x", "type": "bind", "source": "/srv", "options": ["rbind", "rshared"]]]
        }
        try refused("mount option 'idmap' is not supported") {
            $0["mounts"] = [["destination": "/x", "type": "bind", "source": "/srv", "options": ["rbind", "idmap"]]]
        }
        // An option of another mount type is not accepted on this one.
        try refused("mount option 'ptmxmode=0666' is not supported") {
            $0["mounts"] = [["destination": "/x", "type": "bind", "source": "/srv", "options": ["rbind", "ptmxmode=0666"]]]
        }
        try refused("mount option 'gid=5' is not supported") {
            $0["mounts"] = [["destination": "/x", "type": "proc", "source": "proc", "options": ["gid=5"]]]
        }
        try refused("the destination must be an absolute path without '..'") {
            $0["mounts"] = [["destination": "/x/../../etc", "type": "tmpfs", "source": "tmpfs"]]
        }
        try refused("process.cwd must be an absolute path") { process { $0["cwd"] = "work" }(&$0) }
        // What pid 1's plan format would refuse is refused here, by name.
        try refused("process.user.umask must be 0 to 0777") { process { $0["user"] = ["uid": 0, "gid": 0, "umask": 4_294_967_295] }(&$0) }
        try refused("process.env holds a NUL byte") { process { $0["env"] = ["A=b\u{0}c"] }(&$0) }
        try refused("is not NAME=value") { process { $0["env"] = ["=x"] }(&$0) }
        try refused("hostname is longer than 64 bytes") { $0["hostname"] = String(repeating: "h", count: 65) }
        try refused("at most 64 groups") { process { $0["user"] = ["uid": 0, "gid": 0, "additionalGids": Array(0..<65)] }(&$0) }
        try refused("a component longer than 255 bytes") {
            $0["mounts"] = [["destination": "/" + String(repeating: "d", count: 256), "type": "tmpfs", "source": "tmpfs"]]
        }
        try refused("linux.readonlyPaths: / itself") { linux { $0["readonlyPaths"] = ["/"] }(&$0) }
        // A config's filter may not multiply its argument alternatives into millions of rules,
        // nor give an errno no errno can be.
        try refused("argument alternatives make 2985984 rules") {
            linux {
                $0["seccomp"] = ["defaultAction": "SCMP_ACT_ALLOW", "syscalls": [["names": ["read"], "action": "SCMP_ACT_ERRNO",
                    "args": (0..<6).flatMap { i in (0..<12).map { ["index": i, "value": $0, "op": "SCMP_CMP_EQ"] } }]]]
            }(&$0)
        }
        try refused("defaultErrnoRet must be an errno number") {
            linux { $0["seccomp"] = ["defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 4_294_967_296] }(&$0)
        }
        try refused("process.capabilities.bounding: unknown capability") { process { $0["capabilities"] = ["bounding": ["CAP_NOPE"]] }(&$0) }
        try refused("process.rlimits: unknown type") { process { $0["rlimits"] = [["type": "RLIMIT_NOPE", "soft": 1, "hard": 1]] }(&$0) }
    }

    /// The config's filter steps aside for the calls the profile refuses outright, so that the
    /// profile's refusal — audited — is the one the kernel applies (an errno of the config's
    /// would win over the profile's notification). Calls the profile allows keep the config's
    /// rules.
    @Test func theConfigsFilterDefersToTheAuditedOne() throws {
        let plan = try planner(try OCIConfig.parse(try podmanConfig(), file: "config.json")).plan()
        let engine = try #require(plan.container?.engineSeccomp)
        let audited = try SeccompCompiler.compileFilters(.default).decisions
        let rules = try SeccompCompiler.engineRules(engine, deferringTo: audited)
        func actions(_ name: String) -> [SeccompPolicy.Action] { rules.filter { $0.syscall == name }.map(\.action) }
        // Refused by both (podman: errno 1; cell's default: @swap, @mount, @privileged-misc).
        #expect(actions("swapoff") == [.allow])
        #expect(actions("bpf") == [.allow], "podman refuses it by default; cell refuses it outright")
        #expect(actions("setns") == [.allow], "podman allows it; cell's baseline refuses it: allowed through either way")
        // Allowed by cell's policy: the config's rules stand, its refusals its own.
        let personality = rules.filter { $0.syscall == "personality" }
        #expect(!(personality.isEmpty))
        #expect(personality.allSatisfy { $0.action == .allow && $0.conditions.count == 1 }, "podman's personality(N) rules are kept")
        #expect(engine.defaultAction == .errno(38))
        // And the filter still lets pid 1 do its work.
        _ = try SeccompCompiler.engineFilter(engine, deferringTo: audited)
    }

    @Test func fieldsOfTheWrongTypeAreNamed() {
        #expect(runtimeError { _ = try OCIConfig.parse(#"{"ociVersion": "1.0.2", "root": {"path": "r"}, "process": {"args": "sh", "cwd": "/"}}"#, file: "c.json") }
                == "c.json: process.args must be an array")
        #expect(runtimeError { _ = try OCIConfig.parse(#"{"ociVersion": "1.0.2", "root": {"path": "r"}, "process": {"args": ["sh"], "cwd": "/", "user": {"uid": -1}}}"#, file: "c.json") }
                == "c.json: process.user.uid must be an integer from 0 to 4294967295")
        #expect(runtimeError { _ = try OCIConfig.parse("{\"ociVersion\": ", file: "c.json") }?.hasPrefix("c.json:1:") == true)
    }

    /// A non-root process keeps only its ambient capabilities, as under runc; root its permitted
    /// ones, within the bounding set.
    @Test func capabilitiesFollowTheUser() throws {
        let user = try edited { object in
            var process = object["process"] as! [String: Any]
            process["user"] = ["uid": 1000, "gid": 1000, "additionalGids": [10]]
            object["process"] = process
        }
        let plan = try planner(user).plan()
        #expect(plan.keptCapabilities == 0)
        #expect(plan.container?.user == ContainerPlan.User(uid: 1000, gid: 1000, groups: [10]))
    }
}

/// The message of the RuntimeError `body` throws, or nil when it throws none.
func runtimeError(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch let error as RuntimeError {
        return error.message
    } catch {
        return "\(error)"
    }
}
