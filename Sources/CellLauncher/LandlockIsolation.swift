import CCellSpawn
import CellAudit
import CellPolicy
import Glibc

/// `--isolation landlock`: the sandbox without any namespace, for hosts that refuse
/// unprivileged user namespaces. The planner makes the ordinary plan first; this turns it into
/// one that needs no namespace — or refuses, naming what cannot be had without one:
///
///   - the filesystem: Landlock rules for the paths the view would show at the same place —
///     read and execute on the system directories, the selected /etc entries and /proc (the
///     host's: its processes are visible), the devices usable (not the host's ptys: the
///     command's terminal is its descriptors 0-2), the working directory and same-path binds
///     as the profile says, and a private directory
///     cell makes (0700) as TMPDIR and HOME. A bind to another path, a tmpfs or any mount of
///     the profile's is refused; a writable tree holding a .git too, unless `writable_git`
///     (no read-only bind can cover it);
///   - the network: with "none", Landlock's TCP rules with no port allowed (ABI 4), and the
///     baseline filter refuses what they do not cover (SeccompPolicy.landlockIsolationRules);
///     "host" shares the host's; "user" needs a namespace;
///   - the rest as in every sandbox: seccomp and its audit, rlimits but the process limit,
///     no_new_privs, a cleared environment, a new session; the supervisor is the subreaper
///     and kills every descendant when the command ends.
enum LandlockIsolation {
    struct Inputs {
        var userMounts: [MountOperation]
        var workingDirectory: String?
        var workingDirectoryWritable: Bool
        var writableGit: Bool
        var identity: SandboxIdentity
        var terminal: TerminalMode
        var filesystemDefaults: Bool
    }

    static func adapt(_ plan: LaunchPlan, _ inputs: Inputs, abi: UInt32 = LandlockRules.kernelABI()) throws(LaunchError) -> LaunchPlan {
        func refuse(_ what: String) -> LaunchError {
            .invalid("--isolation landlock cannot give \(what): that needs a mount namespace (use namespaces where this host allows them)")
        }
        guard abi > 0 else {
            throw .invalid("--isolation landlock needs Landlock, which this kernel does not have (CONFIG_SECURITY_LANDLOCK, and 'landlock' in the lsm= boot parameter)")
        }
        if inputs.identity == .root { throw refuse("--as-root (uid 0 inside)") }
        if plan.network == .user { throw .invalid("--isolation landlock cannot give --net user: user-mode networking needs a network namespace") }
        if plan.network == .proxy {
            throw .invalid("--isolation landlock cannot give --net proxy: the proxy must be the only route out, which needs a network namespace of the sandbox's own")
        }
        if plan.network == .none && abi < 4 {
            throw .invalid("--isolation landlock with --net none needs Landlock ABI 4 to forbid TCP; this kernel has ABI \(abi) (--net host accepts the host's network)")
        }
        if inputs.terminal == .always { throw refuse("--tty (a pty of the command's own)") }

        let all = LandlockRules.handledFS(abi: abi)
        let read = LandlockRules.readFile | LandlockRules.readDir | LandlockRules.execute
        let device = (LandlockRules.readFile | LandlockRules.writeFile | LandlockRules.truncate | LandlockRules.ioctlDev) & all
        var rules: [LandlockPlan.PathRule] = []
        func allow(_ access: UInt64, _ path: String) { rules.append(.init(access: access & all, path: path)) }
        if inputs.filesystemDefaults {
            for path in ["/usr"] + FilesystemView.systemDirectories + FilesystemView.etcEntries.map({ "/etc/" + $0 })
                + ["/etc/passwd", "/etc/group"] where FilesystemView.hostFileType(path) != nil {
                allow(read, path)
            }
            allow(read, "/proc")
            // Not /dev/pts nor /dev/ptmx: they are the host's, and a rule there would open every
            // pty of yours (your other terminals' keystrokes). The command's own terminal, if
            // any, comes as its descriptors 0-2, which pid 1 gives rules of their own.
            for name in FilesystemView.devices where name != "tty" { allow(device, "/dev/" + name) }
        }
        var writable: [String] = []
        if let cwd = inputs.workingDirectory {
            allow(inputs.workingDirectoryWritable ? all : read, cwd)
            if inputs.workingDirectoryWritable { writable.append(cwd) }
        }
        for op in inputs.userMounts {
            guard op.kind == .bind, let source = op.source, source == op.destination else { throw refuse("'\(op.summary)'") }
            allow(op.readOnly ? read : all, source)
            if !op.readOnly { writable.append(source) }
        }
        if !inputs.writableGit {
            for tree in writable where FilesystemView.hostFileType(tree) == UInt32(S_IFDIR) {
                let found = BindGuards.walk(tree, budget: BindGuards.directoryBudget)
                if let git = found.entries.first(where: { if case .git = $0.kind { return true }; return false }) {
                    throw .invalid("--isolation landlock cannot keep \(tree)\(String(decoding: git.relative, as: UTF8.self)) read-only inside the writable \(tree) "
                        + "(Landlock rules only add): set [filesystem] writable_git = true to accept that the sandbox can change it")
                }
            }
        }
        let privateDirectory = "/tmp/cell-" + AuditClock.sandboxID()
        allow(all, privateDirectory)

        var adapted = plan
        adapted.isolation = .landlock
        adapted.namespaces = []
        adapted.mounts = []
        adapted.terminal = nil
        adapted.privateDirectory = privateDirectory
        adapted.environment = plan.environment.filter { !$0.hasPrefix("HOME=") && !$0.hasPrefix("TMPDIR=") }
            + ["HOME=\(privateDirectory)", "TMPDIR=\(privateDirectory)"]
        adapted.seccomp.withoutNamespaces = plan.network
        adapted.seccomp.underLandlock = true
        // RLIMIT_NPROC counts per (user namespace, uid): without a namespace of its own it would
        // count every process of yours on the host, and fail the sandbox's forks whenever you
        // run that many elsewhere. Not applied (SECURITY.md; a cgroup bounds processes).
        adapted.limits.processes = nil
        adapted.landlockMode = .required
        adapted.landlock = LandlockPlan(
            abi: abi, required: true, handledFS: all,
            handledNet: plan.network == .none ? LandlockRules.bindTCP | LandlockRules.connectTCP : 0,
            scoped: abi >= 6 ? LandlockRules.scopeAbstractUnixSocket | LandlockRules.scopeSignal : 0, paths: rules)
        if abi < 6 {
            adapted.notes.append("Landlock ABI \(abi) cannot scope abstract unix sockets and signals (ABI 6): the command can reach "
                + "your abstract sockets (X11, D-Bus) and signal your processes")
        }
        return adapted
    }

    /// Whether this host lets cell build a namespace sandbox: nil, or why not.
    static func namespacesRefused(uid: uid_t = geteuid(), gid: gid_t = getegid()) -> String? {
        let result = cell_probe_namespaces("0 \(uid) 1\n", "0 \(gid) 1\n")
        guard result != 0 else { return nil }
        let code = result & 0x3f, step = result - code
        let reason = errorText(code)
        switch step {
        case Int32(CELL_PROBE_CLONE): return "creating a user namespace fails (\(reason))"
        case Int32(CELL_PROBE_MAPS): return "a new user namespace cannot be mapped (\(reason))"
        case Int32(CELL_PROBE_MOUNT_NS): return "a user namespace cannot hold a mount namespace (\(reason))"
        default: return "a user namespace is made but cannot mount (\(reason)): an AppArmor or SELinux restriction denies its capabilities"
        }
    }
}
