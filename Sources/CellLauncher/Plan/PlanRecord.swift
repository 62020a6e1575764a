import CCellSpawn
import CellPolicy

/// One record of the plan the sandbox's pid 1 executes (the wire format is cell_plan.h).
///
/// The planner turns a `LaunchPlan` into these records once, after parsing and resolving
/// everything; `PlanEncoding` writes them to pid 1, and `cell run --dry-run` prints the same
/// records decoded back from the same bytes, so what it shows is exactly what runs. pid 1
/// executes them in the order of its table of contents (cell-init/setup.c), which is the order
/// `LaunchPlan.setupRecords` lists them in.
public enum PlanRecord: Equatable, Sendable {
    /// Namespaces nested in the sandbox's user namespace (pid 1 unshares all but pid).
    case namespaces(Set<Namespace>)
    /// The sandbox's own user.max_user_namespaces (0: no nested user namespace, whatever the call).
    case userNamespaceLimit(UInt32)
    /// The sandbox's own kernel.shmmax (bytes) and kernel.shmall (pages): SysV shared memory,
    /// which no rlimit counts, within the memory limit.
    case sharedMemoryLimit(bytes: UInt64, pages: UInt64)
    /// lo up, and low ports open to unprivileged servers, in the private network namespace.
    case loopback
    /// An IPv4 address (as a number) made unreachable in the private network namespace: the
    /// user network's gateway, when it must not lead to the host's loopback.
    case unreachable(UInt32)
    /// A TCP listener on the sandbox's 127.0.0.1:port, handed out to the supervisor (--net proxy).
    case handOutListener(port: UInt16)
    /// The new tmpfs root, attached over `base` (inside the sandbox's mount namespace) while built.
    case root(base: String, size: UInt64)
    /// cell-runtime: the root is host directory `path` (an OCI bundle's rootfs), cloned with
    /// every mount below it, nosuid and nodev; read-only after the operations if `readOnly`.
    case rootTree(path: String, readOnly: Bool)
    /// cell-runtime: a namespace an engine made, entered by path instead of unshared.
    case joinNamespace(Namespace, path: String)
    /// cell-runtime: the ids the command runs as (the config's process.user).
    case user(uid: UInt32, gid: UInt32, groups: [UInt32])
    /// cell-runtime: a sysctl of the container's own namespaces (`net.ipv4.ping_group_range`).
    case sysctl(name: String, value: String)
    case mount(MountOperation)
    case hostname(String)
    /// An empty fallback: failing to enter the directory fails the launch.
    case workingDirectory(String, fallback: String)
    case rlimit(resource: UInt32, soft: UInt64, hard: UInt64)
    /// Capabilities kept through the lock-down (bit N = capability N).
    case capabilities(UInt64)
    /// The Landlock ruleset (LandlockRules), then its path rules.
    case landlock(abi: UInt32, required: Bool, fs: UInt64, net: UInt64, scoped: UInt64)
    case landlockPath(access: UInt64, path: String)
    /// The command's own pty: its size, and which of the command's descriptors 0-2 (bits) it is.
    case terminal(rows: UInt32, columns: UInt32, descriptors: UInt32)
    /// pid 1 waits, with the command not yet started, until the supervisor sends `start`.
    case hold
    case argument(String)
    case environment(String)
    case endSetup
    /// A compiled filter (struct sock_filter[]); `listener`: its notifications go to the supervisor.
    case seccomp(listener: Bool, bpf: [UInt8])
    case endFilters
    case start
    /// cell-runtime: once the command runs, pid 1 starts the processes the supervisor asks for.
    case takeProcesses
    /// A request, not a plan record (cell-runtime exec): a process to start in the running
    /// sandbox, with a pty of `rows` x `columns` (0 x 0: none), then its `argument` and
    /// `environment` records and `endProcess`.
    case process(rows: UInt32, columns: UInt32, workingDirectory: String)
    case endProcess
    /// A request: a signal for the process of request number `process` (1 for the first), if
    /// pid 1 started it and has not reaped it.
    case signalProcess(process: UInt32, signal: UInt32)

    /// One line for `--dry-run`.
    public var summary: String {
        switch self {
        case .namespaces(let set):
            return "namespaces    " + Namespace.allCases.filter { set.contains($0) }.map(\.rawValue).joined(separator: " ")
                + " (inside the user namespace; pid comes with the clone, pid 1 unshares the rest)"
        case .userNamespaceLimit(let n): return "userns-limit  user.max_user_namespaces=\(n) inside"
        case .sharedMemoryLimit(let bytes, let pages):
            return "ipc-limit     kernel.shmmax=\(bytes) kernel.shmall=\(pages) inside (SysV shared memory within the memory limit)"
        case .loopback: return "loopback      lo up; net.ipv4.ip_unprivileged_port_start=0"
        case .handOutListener(let port): return "hand-out     a TCP listener on 127.0.0.1:\(port) inside, to the proxy outside"
        case .unreachable(let address):
            return "unreachable   \(address >> 24).\(address >> 16 & 0xff).\(address >> 8 & 0xff).\(address & 0xff) (a route: no packet to it leaves the sandbox)"
        case .root(let base, let size): return "root          a new tmpfs (size=\(ByteSize.format(size))), built over \(base), then pivot_root into it"
        case .rootTree(let path, let readOnly):
            return "root          \(path) with its mounts (nosuid, nodev\(readOnly ? ", read-only" : "")), then pivot_root into it"
        case .joinNamespace(let namespace, let path): return "join          the \(namespace.rawValue) namespace at \(path)"
        case .user(let uid, let gid, let groups):
            return "user          uid \(uid), gid \(gid)" + (groups.isEmpty ? ", no supplementary groups" : ", groups " + groups.map(String.init).joined(separator: " "))
        case .sysctl(let name, let value): return "sysctl        \(name) = \(TerminalText.shellWord(value))"
        case .mount(let op): return "mount         \(op.summary)"
        case .hostname(let name): return "hostname      \(name)"
        case .workingDirectory(let dir, let fallback):
            return "cwd           \(dir)" + (fallback.isEmpty ? "" : " (else \(fallback), with a note)")
        case .rlimit(let resource, let soft, let hard):
            return "rlimit        \(ResourceLimits.rlimitName(resource)) soft=\(soft) hard=\(hard)"
        case .capabilities(let kept):
            return "capabilities  keep: \(kept == 0 ? "none" : Capabilities.names(kept).joined(separator: " ")); bounding set dropped, securebits locked; then no_new_privs"
        case .landlock(let abi, let required, let fs, let net, let scoped):
            return "landlock      ABI \(abi)\(required ? ", required" : ", best effort"): handled fs=0x\(String(fs, radix: 16)) net=0x\(String(net, radix: 16)) scoped=0x\(String(scoped, radix: 16))"
        case .landlockPath(let access, let path): return "landlock-path \(path): 0x\(String(access, radix: 16))"
        case .terminal(let rows, let columns, let bits):
            let names = ["stdin", "stdout", "stderr"].enumerated().filter { bits & (1 << UInt32($0.offset)) != 0 }.map(\.element)
            return "terminal      a pty on the sandbox's devpts, \(rows)x\(columns), master to the supervisor; the command's "
                + (names.isEmpty ? "controlling terminal only" : names.joined(separator: ", ") + " and controlling terminal")
        case .hold: return "hold          the command waits for the supervisor's start (the network comes first)"
        case .argument(let word): return "arg           \(TerminalText.shellWord(word))"
        case .environment(let entry): return "env           \(entry)"
        case .endSetup: return "end-setup"
        case .seccomp(let listener, let bpf):
            return "seccomp       \(bpf.count / 8) BPF instructions\(listener ? ", notifications to cell's supervisor (audited)" : "")"
        case .endFilters: return "end-filters"
        case .start: return "start"
        case .takeProcesses: return "processes     once the command runs, pid 1 starts those cell-runtime exec asks for (with the command's ids, lock-down and filters)"
        case .process(let rows, let columns, let dir):
            return "process       in \(dir)" + (rows == 0 ? "" : ", a pty of its own (\(rows)x\(columns))")
        case .endProcess: return "end-process"
        case .signalProcess(let process, let signal): return "signal        \(signal) to the process of request \(process)"
        }
    }
}
