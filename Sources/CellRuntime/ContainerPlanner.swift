import CellLauncher
import CellPolicy
import Glibc

/// An OCI config becomes the same `LaunchPlan` `cell run` executes: the bundle's root instead of
/// cell's tmpfs root, the config's mounts, namespaces (new or joined), ids, capabilities,
/// rlimits, sysctls and seccomp filter — under the cell profile's seccomp policy, audited.
///
/// What cell-runtime cannot honour is refused here, with the field's name: never dropped
/// silently, never run with less isolation than the config asks for.
public struct ContainerPlanner {
    public var config: OCIConfig
    /// The bundle directory (absolute): a relative root.path is relative to it.
    public var bundle: String
    /// The cell profile's policy, the notifying (audited) filter.
    public var policy: SeccompPolicy
    public var profileName: String
    public var auditLogPath: String?
    /// Whether this process is root of its user namespace (an engine's, rootless) and so may
    /// write maps and keep setgroups allowed.
    public var runtimeIsRoot: Bool = geteuid() == 0
    /// Whether this process is the host's root (uid 0 of the initial user namespace: containerd,
    /// rootful podman). A container then needs a user namespace of its own: cell never runs one
    /// as the host's root, unless the config's own maps say so.
    public var runtimeIsHostRoot: Bool = geteuid() == 0 && IdentityMapping.inInitialUserNamespace()
    /// The host's file types, by path (lstat; nil when missing): tests give their own.
    public var fileType: (String) -> UInt32? = FilesystemView.hostFileType
    /// A host path with every symlink resolved, or nil: tests give their own.
    public var resolve: (String) -> String? = FilesystemView.hostRealPath

    public init(config: OCIConfig, bundle: String, policy: SeccompPolicy, profileName: String, auditLogPath: String?) {
        self.config = config
        self.bundle = bundle
        self.policy = policy
        self.profileName = profileName
        self.auditLogPath = auditLogPath
    }

    public func plan() throws(RuntimeError) -> LaunchPlan {
        try refuseUnsupported()
        try checkLimits()
        let spaces = try namespaces()
        let newUser = spaces.user
        guard let cwd = SandboxPath.normalize(config.cwd) else { throw RuntimeError("process.cwd must be an absolute path without '..': \(config.cwd)") }
        guard let rootPath = resolve(config.rootPath.hasPrefix("/") ? config.rootPath : bundle + "/" + config.rootPath),
              fileType(rootPath) == UInt32(S_IFDIR) else {
            throw RuntimeError("root.path \(config.rootPath) is not a directory (relative to the bundle \(bundle))")
        }
        if let hostname = config.hostname, !hostname.isEmpty, !spaces.own.contains(.uts) && !spaces.joined.contains(where: { $0.namespace == .uts }) {
            throw RuntimeError("hostname needs a uts namespace of the container's own (linux.namespaces)")
        }
        var plan = LaunchPlan(
            command: config.args, environment: config.env, namespaces: spaces.own,
            hostname: config.hostname ?? "", workingDirectory: cwd, workingDirectoryFallback: nil,
            identity: try identity(newUser: newUser), keptCapabilities: try capabilities(),
            seccomp: policy, mounts: try mounts(spaces: spaces, rootPath: rootPath),
            auditLogPath: auditLogPath, profileName: profileName)
        var container = ContainerPlan(root: .init(path: rootPath, readOnly: config.rootReadOnly), joined: spaces.joined,
                                      user: user(newUser: newUser), newUserNamespace: newUser)
        container.rlimits = try rlimits()
        container.sysctls = try sysctls(spaces: spaces)
        if let seccomp = config.seccomp {
            do {
                container.engineSeccomp = try DockerSeccompProfile.policy(from: seccomp, name: "the config's linux.seccomp",
                                                                         keptCapabilities: Capabilities.names(plan.keptCapabilities),
                                                                         kernel: kernelVersion())
            } catch {
                throw RuntimeError(error.message)
            }
        }
        if config.terminal {
            // A pty of the container's own, on its devpts (pid 1 opens /dev/pts/ptmx); the
            // monitor hands the master to the engine's console socket.
            guard plan.mounts.contains(where: { $0.kind == .devpts && $0.destination == "/dev/pts" }) else {
                throw RuntimeError("process.terminal needs a devpts mount at /dev/pts (mounts)")
            }
            plan.terminal = TerminalPlan(descriptors: [0, 1, 2], rows: max(config.process.rows ?? 24, 1),
                                         columns: max(config.process.columns ?? 80, 1))
        }
        plan.container = container
        return plan
    }

    // MARK: - refusals

    func refuseUnsupported() throws(RuntimeError) {
        let why: [String: String] = [
            "hooks": "OCI hooks are not supported: cell-runtime runs no program of the config's outside the container",
            "linux.devices": "linux.devices is not supported: a container gets the default devices only (null, zero, full, random, urandom, tty)",
            "linux.resources": "linux.resources is not supported yet: cell-runtime sets no cgroup limits (the config's rlimits apply)",
            "linux.intelRdt": "linux.intelRdt is not supported", "linux.personality": "linux.personality is not supported",
            "linux.timeOffsets": "linux.timeOffsets is not supported",
            "process.apparmorProfile": "process.apparmorProfile is not supported: cell-runtime applies no AppArmor profile (its walls: namespaces, seccomp, capabilities)",
            "process.selinuxLabel": "process.selinuxLabel is not supported: cell-runtime applies no SELinux label",
            "process.ioPriority": "process.ioPriority is not supported", "process.scheduler": "process.scheduler is not supported",
            "process.execCPUAffinity": "process.execCPUAffinity is not supported",
            "linux.seccomp.listenerPath": "linux.seccomp.listenerPath is refused: cell-runtime keeps the seccomp listener (its audit log)",
            "linux.seccomp.flags": "linux.seccomp.flags is not supported: cell-runtime loads filters with no flags",
        ]
        // resources that only restrict devices: a container here has no device but the
        // default ones (bound, never made: mknod needs the host's CAP_MKNOD).
        for field in config.present.sorted() where field != "linux.resources" || !resourcesOnlyDevices {
            throw RuntimeError(why[field] ?? "\(field) is not supported")
        }
    }

    /// What pid 1's plan format would refuse, refused here by name (pid 1's own refusal could
    /// only say which record).
    func checkLimits() throws(RuntimeError) {
        func plain(_ text: String, _ field: String) throws(RuntimeError) {
            guard !text.utf8.contains(0) else { throw RuntimeError("\(field) holds a NUL byte") }
        }
        for arg in config.args { try plain(arg, "process.args") }
        for entry in config.env {
            try plain(entry, "process.env")
            guard let eq = entry.firstIndex(of: "="), eq != entry.startIndex else { throw RuntimeError("process.env: '\(TerminalText.escaped(entry))' is not NAME=value") }
        }
        guard config.args.count + config.env.count + config.mounts.count + config.maskedPaths.count + config.readonlyPaths.count < 3_000 else {
            throw RuntimeError("the config asks for more than 3000 arguments, variables and mounts together")
        }
        if let hostname = config.hostname, hostname.utf8.count > 64 { throw RuntimeError("hostname is longer than 64 bytes") }
        guard config.additionalGids.count <= 64 else { throw RuntimeError("process.user.additionalGids: at most 64 groups") }
        if let mask = config.umask, mask > 0o777 { throw RuntimeError("process.user.umask must be 0 to 0777") }
        let paths = config.mounts.map { ($0.destination, "mounts") } + config.maskedPaths.map { ($0, "linux.maskedPaths") }
            + config.readonlyPaths.map { ($0, "linux.readonlyPaths") } + [(config.cwd, "process.cwd")]
        for (path, field) in paths {
            try plain(path, field)
            guard path.split(separator: "/").allSatisfy({ $0.utf8.count <= 255 }), path.utf8.count < 4096 else {
                throw RuntimeError("\(field): a path with a component longer than 255 bytes: \(TerminalText.escaped(String(path.prefix(80))))…")
            }
            if field != "process.cwd" && SandboxPath.normalize(path) == "/" { throw RuntimeError("\(field): / itself cannot be mounted over or masked") }
        }
    }

    var resourcesOnlyDevices: Bool { config.resourcesKeys.allSatisfy { $0 == "devices" } }

    // MARK: - namespaces and ids

    struct Spaces {
        var own: Set<Namespace> = []
        var joined: [ContainerPlan.Joined] = []
        var user = false
    }

    func namespaces() throws(RuntimeError) -> Spaces {
        var spaces = Spaces()
        var seen = Set<String>()
        for entry in config.namespaces {
            guard seen.insert(entry.type).inserted else { throw RuntimeError("linux.namespaces lists \(entry.type) twice") }
            let kind: Namespace?
            switch entry.type {
            case "pid": kind = .pid
            case "network": kind = .net
            case "ipc": kind = .ipc
            case "uts": kind = .uts
            case "mount": kind = .mount
            case "cgroup": kind = .cgroup
            case "time": kind = .time
            case "user":
                if entry.path != nil {
                    throw RuntimeError("joining a user namespace by path is not supported yet: run cell-runtime inside it instead (as rootless podman does)")
                }
                spaces.user = true
                continue
            default: throw RuntimeError("linux.namespaces: unknown type '\(entry.type)'")
            }
            guard let kind else { continue }
            if let path = entry.path {
                guard [.net, .ipc, .uts, .cgroup].contains(kind) else {
                    throw RuntimeError("joining a \(entry.type) namespace by path is not supported: the container's \(entry.type) namespace is its own")
                }
                guard path.hasPrefix("/") else { throw RuntimeError("linux.namespaces: the \(entry.type) path must be absolute: \(path)") }
                spaces.joined.append(ContainerPlan.Joined(namespace: kind, path: path))
            } else {
                spaces.own.insert(kind)
            }
        }
        // cell's pid 1 is the container's init, and the view is built in a mount namespace of
        // its own: neither can be the host's (or an engine's).
        guard spaces.own.contains(.pid) else { throw RuntimeError("cell-runtime needs a pid namespace of the container's own (linux.namespaces: {\"type\": \"pid\"}); --pid=host is not supported") }
        guard spaces.own.contains(.mount) else { throw RuntimeError("cell-runtime needs a mount namespace of the container's own (linux.namespaces: {\"type\": \"mount\"})") }
        if !spaces.user && runtimeIsHostRoot {
            throw RuntimeError("cell-runtime runs as the host's root here, and never makes the host's root a container's: give the container a user namespace (linux.namespaces {\"type\": \"user\"} with uidMappings and gidMappings; ctr run --uidmap 0:100000:65536 --gidmap 0:100000:65536; Kubernetes: hostUsers: false; podman: --userns=auto)")
        }
        if !spaces.user && !(config.uidMappings.isEmpty && config.gidMappings.isEmpty) {
            throw RuntimeError("linux.uidMappings and gidMappings need a user namespace (linux.namespaces: {\"type\": \"user\"})")
        }
        return spaces
    }

    func identity(newUser: Bool) throws(RuntimeError) -> IdentityMapping {
        var identity = IdentityMapping(outerUID: geteuid(), outerGID: getegid(), denySetgroups: false)
        guard newUser else { return identity }
        guard !config.uidMappings.isEmpty, !config.gidMappings.isEmpty else {
            throw RuntimeError("a new user namespace needs linux.uidMappings and linux.gidMappings")
        }
        func maps(_ list: [OCIConfig.IDMapping]) -> [IDRange] { list.map { IDRange(inside: $0.containerID, outside: $0.hostID, count: $0.size) } }
        func mapsZero(_ list: [OCIConfig.IDMapping]) -> Bool { list.contains { $0.containerID == 0 } }
        // pid 1 builds the container as root of the new namespace, as runc's init does.
        guard mapsZero(config.uidMappings), mapsZero(config.gidMappings) else {
            throw RuntimeError("the user namespace's maps must map container id 0 (uid and gid): cell-runtime sets the container up as its root")
        }
        identity.uidMap = maps(config.uidMappings)
        identity.gidMap = maps(config.gidMappings)
        // An unprivileged writer may map only its own ids, with setgroups denied; root of the
        // runtime's namespace (an engine's) may write the config's maps as they are, and the
        // kernel checks them against its own.
        identity.denySetgroups = !runtimeIsRoot
        return identity
    }

    func user(newUser: Bool) -> ContainerPlan.User? {
        let ids = ContainerPlan.User(uid: config.uid, gid: config.gid, groups: config.additionalGids)
        if newUser && !runtimeIsRoot && ids == ContainerPlan.User(uid: 0, gid: 0, groups: []) { return nil }
        return ids
    }

    /// The capabilities the process keeps: for root, the permitted set within the bounding set;
    /// for another uid, only the ambient set (as runc: a non-root process gets no capability
    /// from exec but its ambient ones).
    func capabilities() throws(RuntimeError) -> UInt64 {
        try ContainerPlanner.keptCapabilities(config.process)
    }

    static func keptCapabilities(_ process: OCIProcess) throws(RuntimeError) -> UInt64 {
        func set(_ name: String) throws(RuntimeError) -> UInt64 {
            do { return try Capabilities.set(process.capabilities[name] ?? []) } catch { throw RuntimeError("process.capabilities.\(name): \(error.message)") }
        }
        let bounding = try set("bounding"), permitted = try set("permitted")
        let ambient = try set("ambient"), inheritable = try set("inheritable")
        return process.uid == 0 ? bounding & permitted : bounding & permitted & inheritable & ambient
    }

    // MARK: - the view

    func mounts(spaces: Spaces, rootPath: String) throws(RuntimeError) -> [MountOperation] {
        var ops: [MountOperation] = []
        for (index, mount) in config.mounts.enumerated() {
            ops.append(try operation(mount, index: index, spaces: spaces))
        }
        let planned = Set(ops.map(\.destination))
        // The runtime spec's default devices, bound from the host (a user namespace cannot make
        // device nodes), and its /dev links.
        for name in ["null", "zero", "full", "random", "urandom", "tty"] where !planned.contains("/dev/" + name) {
            guard fileType("/dev/" + name) == UInt32(S_IFCHR) else { continue }
            var op = MountOperation.bind("/dev/" + name, readOnly: false)
            op.device = true
            op.expectedType = UInt32(S_IFCHR)
            ops.append(op)
        }
        var links = [("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"), ("/proc/self/fd/1", "/dev/stdout"),
                     ("/proc/self/fd/2", "/dev/stderr")]
        if ops.contains(where: { $0.kind == .devpts && $0.destination == "/dev/pts" }) { links.append(("pts/ptmx", "/dev/ptmx")) }
        for (target, link) in links where !planned.contains(link) { ops.append(.symlink(target, at: link)) }
        for path in config.maskedPaths {
            guard let dest = SandboxPath.normalize(path) else { throw RuntimeError("linux.maskedPaths: not an absolute path without '..': \(path)") }
            // The type as the host's kernel shows it (/proc and /sys) or as the root holds it;
            // pid 1 checks it again, and a different type ends the launch.
            let onHost = SandboxPath.isWithin(dest, "/proc") || SandboxPath.isWithin(dest, "/sys")
            guard let type = fileType(onHost ? dest : rootPath + dest) else { continue }
            switch type {
            case UInt32(S_IFDIR), UInt32(S_IFREG), UInt32(S_IFLNK):
                ops.append(MountOperation(kind: .hide, destination: dest, expectedType: type))
            default:
                var op = MountOperation.bind("/dev/null", dest, readOnly: true)
                op.device = true
                op.expectedType = UInt32(S_IFCHR)
                op.mustExist = true
                op.optional = true
                ops.append(op)
            }
        }
        for path in config.readonlyPaths {
            guard let dest = SandboxPath.normalize(path) else { throw RuntimeError("linux.readonlyPaths: not an absolute path without '..': \(path)") }
            ops.append(MountOperation(kind: .remountReadOnly, destination: dest, optional: true, mustExist: true))
        }
        return ops
    }

    static let mountTypes: Set<String> = ["tmpfs", "proc", "devpts", "mqueue", "sysfs", "cgroup", "cgroup2"]

    /// Options every mount here gets anyway (nosuid, nodev but on device binds), or that only
    /// choose what cell always does (private propagation, no id mapping asked).
    static let acceptedOptions: Set<String> = [
        "nosuid", "nodev", "bind", "rbind", "rw", "private", "rprivate", "slave", "rslave", "relatime", "norelatime",
        "strictatime", "nostrictatime", "noatime", "nodiratime", "newinstance", "exec", "suid", "dev", "sync", "async",
    ]

    func operation(_ mount: OCIConfig.Mount, index: Int, spaces: Spaces) throws(RuntimeError) -> MountOperation {
        let at = "mounts[\(index)] (\(mount.destination))"
        guard let dest = SandboxPath.normalize(mount.destination), dest != "/" else {
            throw RuntimeError("\(at): the destination must be an absolute path without '..', not /")
        }
        let isBind = mount.type == "bind" || mount.options.contains("bind") || mount.options.contains("rbind")
        guard isBind || ContainerPlanner.mountTypes.contains(mount.type) else {
            throw RuntimeError("\(at): mount type '\(mount.type)' is not supported (bind, tmpfs, proc, sysfs, devpts, mqueue, cgroup are)")
        }
        var readOnly = false, noexec = false
        var size: UInt64?, mode: UInt32?
        for option in mount.options {
            let (key, value) = option.firstIndex(of: "=").map { (String(option[..<$0]), String(option[option.index(after: $0)...])) } ?? (option, "")
            switch key {
            case "ro": readOnly = true
            case "noexec": noexec = true
            case "size" where mount.type == "tmpfs":
                guard let bytes = ByteSize.parse(value), bytes > 0 else { throw RuntimeError("\(at): bad size '\(value)'") }
                size = bytes
            case "mode" where mount.type == "tmpfs":
                guard let bits = UInt32(value, radix: 8), bits <= 0o7777 else { throw RuntimeError("\(at): bad mode '\(value)'") }
                mode = bits
            // devpts' own options: cell's devpts is always a new instance with ptmxmode=0666,
            // mode=0620 and a cap on its ptys (mounts.c); a gid option names the tty group.
            case _ where mount.type == "devpts" && ["ptmxmode", "mode", "gid", "max"].contains(key): break
            case _ where mount.type == "tmpfs" && ["uid", "gid", "nr_inodes"].contains(key): break
            case "shared", "rshared", "unbindable", "runbindable":
                throw RuntimeError("\(at): \(key) propagation is not supported: every mount of a cell container is private")
            default:
                if !(ContainerPlanner.acceptedOptions.contains(key) && value.isEmpty) {
                    throw RuntimeError("\(at): mount option '\(option)' is not supported")
                }
            }
        }
        var op: MountOperation
        if isBind {
            guard mount.source.hasPrefix("/"), let source = resolve(mount.source), let type = fileType(source) else {
                throw RuntimeError("\(at): the bind source \(mount.source) does not exist (or is not an absolute path)")
            }
            op = MountOperation.bind(source, dest, readOnly: readOnly)
            op.expectedType = type
            op.device = type == UInt32(S_IFCHR) || type == UInt32(S_IFBLK)
        } else {
            switch mount.type {
            case "tmpfs": op = MountOperation(kind: .tmpfs, destination: dest, readOnly: readOnly, size: size, mode: mode)
            case "proc": op = MountOperation(kind: .proc, destination: dest, readOnly: readOnly)
            case "devpts": op = MountOperation(kind: .devpts, destination: dest, readOnly: readOnly)
            case "mqueue":
                guard spaces.own.contains(.ipc) || spaces.joined.contains(where: { $0.namespace == .ipc }) else {
                    throw RuntimeError("\(at): an mqueue mount needs an ipc namespace of the container's (linux.namespaces)")
                }
                op = MountOperation(kind: .mqueue, destination: dest, readOnly: readOnly)
            case "sysfs":
                // A new sysfs shows the network namespace of its mounter, and only an owner of
                // that namespace may mount one; otherwise the host's /sys, read-only (as runc).
                if spaces.own.contains(.net) || !spaces.user {
                    op = MountOperation(kind: .sysfs, destination: dest, readOnly: readOnly)
                } else {
                    op = MountOperation.bind("/sys", dest, readOnly: true)
                    op.expectedType = UInt32(S_IFDIR)
                }
            case "cgroup", "cgroup2":
                // cell-runtime places a container in no cgroup of its own (linux.resources is
                // refused), and the host's hierarchy would show every other cgroup and its
                // processes: an empty, read-only directory stands in its place.
                op = MountOperation(kind: .tmpfs, destination: dest, readOnly: true, size: 4096, mode: 0o555)
            default:
                preconditionFailure("checked above: \(mount.type)")
            }
        }
        op.noexec = noexec
        return op
    }

    // MARK: - limits, sysctls

    static let rlimitNumbers: [String: UInt32] = [
        "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4, "RLIMIT_RSS": 5,
        "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
        "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
    ]

    func rlimits() throws(RuntimeError) -> [ContainerPlan.Rlimit] {
        var seen = Set<String>()
        return try config.rlimits.map { (limit) throws(RuntimeError) -> ContainerPlan.Rlimit in
            guard let number = ContainerPlanner.rlimitNumbers[limit.type] else { throw RuntimeError("process.rlimits: unknown type '\(limit.type)'") }
            guard seen.insert(limit.type).inserted else { throw RuntimeError("process.rlimits: \(limit.type) is given twice") }
            guard limit.soft <= limit.hard else { throw RuntimeError("process.rlimits: \(limit.type)'s soft limit is above its hard limit") }
            return ContainerPlan.Rlimit(resource: number, soft: limit.soft, hard: limit.hard)
        }
    }

    /// Only sysctls of a namespace the container has (made or joined): writing one of the
    /// host's, or of a namespace it shares with the host, is never the config's to do.
    func sysctls(spaces: Spaces) throws(RuntimeError) -> [ContainerPlan.Sysctl] {
        func has(_ ns: Namespace) -> Bool { spaces.own.contains(ns) || spaces.joined.contains { $0.namespace == ns } }
        let ipc: Set<String> = ["kernel.shmmax", "kernel.shmall", "kernel.shmmni", "kernel.shm_rmid_forced", "kernel.msgmax",
                                "kernel.msgmnb", "kernel.msgmni", "kernel.sem"]
        return try config.sysctl.map { (entry) throws(RuntimeError) -> ContainerPlan.Sysctl in
            let name = entry.name
            let valid = !name.isEmpty && name.utf8.count < 200 && !name.hasPrefix(".") && !name.hasSuffix(".") && !name.contains("..")
                && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || "_.-".unicodeScalars.contains($0) }
            guard valid else { throw RuntimeError("linux.sysctl: '\(name)' is not a sysctl name") }
            let namespace: Namespace?
            if name.hasPrefix("net.") { namespace = .net } else if ipc.contains(name) || name.hasPrefix("fs.mqueue.") { namespace = .ipc }
            else if name == "kernel.hostname" || name == "kernel.domainname" { namespace = .uts } else { namespace = nil }
            guard let namespace, has(namespace) else {
                throw RuntimeError("linux.sysctl: \(name) is not a sysctl of a namespace the container has of its own")
            }
            guard !entry.value.contains("\0") else { throw RuntimeError("linux.sysctl: \(name)'s value holds a NUL") }
            return ContainerPlan.Sysctl(name: name, value: entry.value)
        }
    }
}
