import CCellSpawn
import CellPolicy
import Glibc

/// Turns a failed setup step (the supervisor's, the trampoline's or pid 1's report) into one
/// line that names what failed, why, and — where the cause is a host setting — how to fix it.
public enum SetupFailure {
    /// `detail`: the report's value (a mount's index among the plan's mounts, a record's index,
    /// an rlimit resource: cell_plan.h says which for each step).
    public static func message(step: Int32, errno code: Int32, plan: LaunchPlan, detail: Int = -1,
                               host: HostFacts = .current()) -> String {
        let line = describe(step: step, errno: code, plan: plan, detail: detail, host: host)
        return refusesNamespaces(step: step, errno: code) ? line + "; " + landlockHint : line
    }

    /// Said after every failure that means this host refuses what namespaces need.
    static let landlockHint = "to run without namespaces here: cell run --isolation landlock (weaker: SECURITY.md), or --isolation auto"

    /// A namespace the host would not give, or one it gave without the power to use it
    /// (AppArmor lets the clone succeed and refuses the first mount).
    static func refusesNamespaces(step: Int32, errno code: Int32) -> Bool {
        let steps: [cell_step] = [CELL_STEP_CLONE_USERNS, CELL_STEP_WRITE_SETGROUPS, CELL_STEP_WRITE_GID_MAP, CELL_STEP_WRITE_UID_MAP,
                                  CELL_STEP_NS_MOUNT, CELL_STEP_NS_PID, CELL_STEP_NS_NET, CELL_STEP_NS_IPC, CELL_STEP_NS_UTS,
                                  CELL_STEP_NS_CGROUP, CELL_STEP_MOUNT_PRIVATE, CELL_STEP_MOUNT_ROOT]
        return steps.contains { Int32($0.rawValue) == step } && [EPERM, EACCES, ENOSPC, EINVAL].contains(code)
    }

    static func describe(step: Int32, errno code: Int32, plan: LaunchPlan, detail: Int, host: HostFacts) -> String {
        let reason = errorText(code)
        let op = plan.mounts.indices.contains(detail) ? plan.mounts[detail] : nil
        switch cell_step(rawValue: UInt32(step)) {
        case CELL_STEP_MOUNT_SOURCE:
            guard let op else { break }
            var line = "cannot open \(op.source ?? "?") for '\(op.summary)': \(reason)"
            if code == ELOOP { line += " (a symlink in the path: cell never binds through symlinks; name the real path)" }
            if code == ENOENT { line += " (it does not exist on the host)" }
            return line
        case CELL_STEP_MOUNT_CHANGED:
            guard let op else { break }
            return "\(op.source ?? "?") changed while the sandbox was being built (it is no longer the \(op.expectedType.map(FileType.name) ?? "file") cell planned to bind for '\(op.summary)'); nothing was bound, try again"
        case CELL_STEP_MOUNT_TARGET:
            guard let op else { break }
            var line = "cannot create the mount point \(op.destination) for '\(op.summary)': \(reason)"
            if code == EROFS { line += " (it lies inside a read-only mount set up earlier: mount it first, or choose another path)" }
            if code == ELOOP { line += " (a symlink in the path inside the sandbox)" }
            return line
        case CELL_STEP_MOUNT_OP:
            guard let op else { break }
            if op.kind == .proc && code == EPERM {
                return "cannot mount a fresh /proc for the sandbox: \(reason) (the kernel refuses when the host's /proc has parts hidden by other mounts, as in some containers)"
            }
            return "cannot set up '\(op.summary)': \(reason)"
        case CELL_STEP_MOUNT_ROOT:
            return "cannot create the sandbox's root filesystem (a tmpfs over \(plan.rootBase), inside the sandbox only): \(reason)"
        case CELL_STEP_PIVOT_ROOT:
            return "cannot switch into the sandbox's root filesystem (pivot_root): \(reason)"
        case CELL_STEP_CGROUP:
            var line = "cannot move the sandbox into its cgroup "
                + (plan.limits.cgroup == .auto ? "(the delegated one cell found)" : "under \(plan.limits.cgroup.text)") + ": \(reason)"
            if code == EACCES || code == EPERM {
                line += " (cell must itself run inside the delegated cgroup, as under systemd user delegation: moving a process needs write access to the cgroup.procs of the common ancestor)"
            }
            return line
        case CELL_STEP_ROOT_READONLY:
            return "cannot make the sandbox's root read-only: \(reason)"
        case CELL_STEP_SECCOMP where code == EBUSY:
            return "cannot load the seccomp filter with its audit listener: another supervisor (an outer cell?) holds the one "
                + "listener a process tree may have (EBUSY)"
        default:
            break
        }
        switch cell_step(rawValue: UInt32(step)) {
        case CELL_STEP_CLONE_USERNS:
            return userNamespaceRefused(errno: code, host: host)
        case CELL_STEP_WRITE_SETGROUPS:
            return "cannot deny setgroups for the sandbox's user namespace: \(reason)"
        case CELL_STEP_WRITE_GID_MAP, CELL_STEP_WRITE_UID_MAP:
            let which = step == Int32(CELL_STEP_WRITE_GID_MAP.rawValue) ? "gid" : "uid"
            let id = which == "gid" ? plan.identity.outerGID : plan.identity.outerUID
            var line = "cannot write the sandbox's \(which)_map (0 -> host \(which) \(id)): \(reason)"
            if code == EPERM, let restricted = host.appArmorRestrictsUserNamespaces, restricted {
                line += " (AppArmor restricts unprivileged user namespaces: sysctl kernel.apparmor_restrict_unprivileged_userns=1)"
            }
            return line
        case CELL_STEP_NS_MOUNT: return namespaceRefused("mount", reason)
        case CELL_STEP_NS_UTS: return namespaceRefused("uts", reason)
        case CELL_STEP_NS_IPC: return namespaceRefused("ipc", reason)
        case CELL_STEP_NS_NET: return namespaceRefused("network", reason)
        case CELL_STEP_NS_CGROUP: return namespaceRefused("cgroup", reason)
        case CELL_STEP_NS_PID: return namespaceRefused("pid", reason)
        case CELL_STEP_NS_TIME: return namespaceRefused("time", reason)
        case CELL_STEP_PLAN, CELL_STEP_WAIT_FILTERS:
            return "the sandbox's pid 1 refused its plan (record \(detail)): \(reason) (cell and its cell-init helper must come from the same build)"
        case CELL_STEP_CHDIR:
            return "cannot enter the working directory \(plan.workingDirectory) inside the sandbox: \(reason)"
        case CELL_STEP_TERMINAL:
            return "cannot give the command a terminal of its own (a pty on the sandbox's /dev/pts): \(reason)"
                + " (a profile without the default filesystem needs a devpts at /dev/pts; or run with --no-tty)"
        case CELL_STEP_HOSTNAME:
            return "cannot set the sandbox's hostname to '\(plan.hostname)': \(reason)"
        case CELL_STEP_SUPERVISOR_GONE, CELL_STEP_WAIT_MAPS, CELL_STEP_HOLD:
            return "the sandbox setup lost its supervisor: \(reason)"
        default:
            return "cannot \(stepDescription(step)): \(reason)"
        }
    }

    /// A problem the sandbox setup worked around (sent as CELL_REPORT_WARNING).
    public static func warning(step: Int32, errno code: Int32, plan: LaunchPlan) -> String {
        if step == Int32(CELL_STEP_CHDIR.rawValue) {
            return "the working directory \(plan.workingDirectory) cannot be entered inside the sandbox (\(errorText(code))); starting in \(plan.workingDirectoryFallback ?? "/")"
        }
        return "\(stepDescription(step)): \(errorText(code))"
    }

    /// What each step does, as the object of "cannot ...".
    static func stepDescription(_ step: Int32) -> String {
        switch cell_step(rawValue: UInt32(step)) {
        case CELL_STEP_CGROUP: return "move the sandbox into its cgroup"
        case CELL_STEP_SETGROUPS: return "drop supplementary groups inside the sandbox"
        case CELL_STEP_SETRESGID: return "take the sandbox's gid inside it"
        case CELL_STEP_SETRESUID: return "take the sandbox's uid inside it"
        case CELL_STEP_INIT_CAPABILITIES: return "carry the setup's capabilities into cell-init (ambient capabilities)"
        case CELL_STEP_PDEATHSIG: return "tie the sandbox's life to cell's (PR_SET_PDEATHSIG)"
        case CELL_STEP_DESCRIPTORS: return "hand cell-init its descriptors and close every other one"
        case CELL_STEP_EXEC_INIT: return "execute cell-init as the sandbox's pid 1"
        case CELL_STEP_SETSID: return "start a new session for the sandbox"
        case CELL_STEP_DUMPABLE: return "make the sandbox's pid 1 not dumpable (PR_SET_DUMPABLE)"
        case CELL_STEP_USERNS_LIMIT: return "forbid nested user namespaces (user.max_user_namespaces)"
        case CELL_STEP_LANDLOCK: return "apply the Landlock ruleset (the second wall)"
        case CELL_STEP_IPC_LIMIT: return "bound SysV shared memory (kernel.shmmax, kernel.shmall)"
        case CELL_STEP_LOOPBACK: return "bring up the loopback interface in the sandbox's network namespace"
        case CELL_STEP_UNREACHABLE: return "make the user network's gateway unreachable in the sandbox's network namespace"
        case CELL_STEP_NET_SYSCTL: return "let the sandbox bind low ports (net.ipv4.ip_unprivileged_port_start)"
        case CELL_STEP_MOUNT_PRIVATE: return "make the sandbox's mounts private"
        case CELL_STEP_RLIMIT: return "set a resource limit"
        case CELL_STEP_CAP_BOUNDING: return "drop the capability bounding set"
        case CELL_STEP_CAP_AMBIENT: return "set the ambient capabilities"
        case CELL_STEP_SECUREBITS: return "lock the securebits"
        case CELL_STEP_CAPSET: return "drop capabilities"
        case CELL_STEP_NO_NEW_PRIVS: return "set no_new_privs"
        case CELL_STEP_SECCOMP: return "load the seccomp filter"
        case CELL_STEP_SECCOMP_LISTENER: return "pass the seccomp listener to cell"
        case CELL_STEP_START_COMMAND: return "start the command inside the sandbox (no process could be made)"
        default: return "set up the sandbox (step \(step))"
        }
    }

    static func namespaceRefused(_ name: String, _ reason: String) -> String {
        "cannot create a \(name) namespace inside the sandbox's user namespace: \(reason)"
    }

    /// Why the kernel refused the user namespace, from the sysctls that can forbid it.
    static func userNamespaceRefused(errno code: Int32, host: HostFacts) -> String {
        let reason = errorText(code)
        if host.unprivilegedUserNamespaceClone == 0 {
            return "unprivileged user namespaces are disabled: sysctl kernel.unprivileged_userns_clone=0 (enable with: sysctl -w kernel.unprivileged_userns_clone=1)"
        }
        if host.maxUserNamespaces == 0 {
            return "user namespaces are disabled: sysctl user.max_user_namespaces=0 (enable with: sysctl -w user.max_user_namespaces=15000)"
        }
        if code == ENOSPC {
            return "cannot create a user namespace: the limit is reached (sysctl user.max_user_namespaces=\(host.maxUserNamespaces.map(String.init) ?? "?"), or nesting is too deep)"
        }
        if code == EPERM, host.appArmorRestrictsUserNamespaces == true {
            return "unprivileged user namespaces are restricted by AppArmor: sysctl kernel.apparmor_restrict_unprivileged_userns=1 (allow cell with an AppArmor profile, or set it to 0)"
        }
        if code == EPERM || code == EINVAL {
            return "cannot create a user namespace: \(reason) (is cell running inside a container or under a seccomp policy that forbids it?)"
        }
        return "cannot create a user namespace: \(reason)"
    }
}

/// The host settings that decide whether unprivileged user namespaces work.
public struct HostFacts: Sendable {
    public var unprivilegedUserNamespaceClone: Int?
    public var maxUserNamespaces: Int?
    public var appArmorRestrictsUserNamespaces: Bool?

    public init(unprivilegedUserNamespaceClone: Int? = nil, maxUserNamespaces: Int? = nil, appArmorRestrictsUserNamespaces: Bool? = nil) {
        self.unprivilegedUserNamespaceClone = unprivilegedUserNamespaceClone
        self.maxUserNamespaces = maxUserNamespaces
        self.appArmorRestrictsUserNamespaces = appArmorRestrictsUserNamespaces
    }

    public static func current() -> HostFacts {
        HostFacts(
            unprivilegedUserNamespaceClone: readInteger("/proc/sys/kernel/unprivileged_userns_clone"),
            maxUserNamespaces: readInteger("/proc/sys/user/max_user_namespaces"),
            appArmorRestrictsUserNamespaces: readInteger("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").map { $0 != 0 }
        )
    }
}
