import CSeccompNotify
import CellPolicy
import Glibc

/// `cell learn`'s side of the seccomp listener. Every call outside the always-allowed core is
/// notified (SeccompCompiler.learningFilters); each is decided with the profile's own rules, on
/// its register arguments as the filter would:
///   - allowed: recorded (the call, its pinned argument, its paths, its address) and continued
///     (SECCOMP_USER_NOTIF_FLAG_CONTINUE: the kernel runs it as it is);
///   - refused: recorded as refused, and handed to the audit path (ViolationAuditor), which
///     writes the violation and answers with the errno, or has the sandbox killed — exactly as
///     under `cell run`. Refusals of unaudited rules (clone3's ENOSYS) are answered silently.
/// What is read from the caller's memory (paths, addresses) is recorded, never used to decide:
/// the caller can change it after the read, and a learned profile grants no path.
public final class CallLearner: NotificationHandler {
    let listener: Int32
    let decisions: PolicyDecisions
    let auditor: ViolationAuditor
    /// What was seen so far (`finish()`: all of it, once the sandbox is over).
    public private(set) var run: ObservedRun
    /// The sandbox's root (its pid 1's /proc/PID/root, O_PATH), for "missing in the view".
    private var root: Int32 = -1

    /// `sandboxPID`: the host pid of the sandbox's pid 1, whose root is the view's (it lives
    /// as long as the sandbox, so its pid is never another process's meanwhile).
    public init(listener: Int32, decisions: PolicyDecisions, log: AuditLog, run: ObservedRun, sandboxPID: pid_t) {
        self.listener = listener
        self.decisions = decisions
        self.auditor = ViolationAuditor(listener: listener, decisions: decisions, log: log)
        self.run = run
        root = cell_open_root(sandboxPID)
    }

    deinit {
        if root >= 0 { close(root) }
    }

    public func handleOne() -> ViolationAuditor.Outcome {
        var n = cell_notification()
        guard cell_notify_receive(listener, &n) == 0 else { return .answered }
        let args = ViolationAuditor.arguments(n)
        let action = decisions.decide(number: n.nr, args: args)
        let known = Syscalls.name(n.nr)
        let name = known ?? "syscall_\(n.nr)"
        switch action {
        case .allow where known == nil:
            // A number no name stands for (past the table, negative) cannot be listed in a
            // profile: the learned one refuses it. Counted, so the file says so.
            run.dropped["calls without a name", default: 0] += 1
            _ = cell_notify_respond(listener, n.id, 0, 1)
            return .answered
        case .allow:
            observe(name, pid: pid_t(n.pid), id: n.id, args: args)
            _ = cell_notify_respond(listener, n.id, 0, 1)
            return .answered
        case .log:
            observe(name, pid: pid_t(n.pid), id: n.id, args: args)
            return auditor.handle(n, args: args, action: action)
        case .errno(let code) where !decisions.isAudited(number: n.nr, args: args):
            _ = cell_notify_respond(listener, n.id, code, 0)
            return .answered
        case .errno, .kill:
            run.refused(name, args: args)
            return auditor.handle(n, args: args, action: action)
        }
    }

    /// Records an allowed call: the call itself, then what its arguments name.
    private func observe(_ name: String, pid: pid_t, id: UInt64, args: [UInt64]) {
        run.allowed(name, args: args)
        if let address = LearnedPaths.socketAddress[name] {
            recordAddress(pid: pid, id: id, at: args[address.pointer], length: args[address.length])
        }
        for use in LearnedPaths.uses(name, args: args) {
            // Read from the caller's memory and its /proc entries, then trusted only if the call is
            // still pending (else the pid may be another process's by now).
            guard let read = ViolationAuditor.readPath(pid: pid, address: args[use.path]), !read.truncated,
                  let text = String(validating: read.bytes, as: UTF8.self), !text.isEmpty,
                  let path = absolute(text, pid: pid, directory: use.directory.map { args[$0] }),
                  cell_notify_id_valid(listener, id) != 0 else { continue }
            let missing = !run.knows(path) && use.use != .create && missingInView(path)
            run.used(path, use.use, missingInView: missing)
        }
    }

    /// `path` made absolute against the caller's working directory or the directory descriptor
    /// given, as the sandbox names them; nil when that cannot be told.
    private func absolute(_ path: String, pid: pid_t, directory: UInt64?) -> String? {
        if path.hasPrefix("/") { return LearnedPaths.normalize(path) }
        let base: String?
        if let directory, Int32(truncatingIfNeeded: directory) != AT_FDCWD {
            base = readLink("/proc/\(pid)/fd/\(Int32(truncatingIfNeeded: directory))")
        } else {
            base = readLink("/proc/\(pid)/cwd")
        }
        // Not a directory's path ("pipe:[...]", or nothing): the path cannot be told.
        guard let base, base.hasPrefix("/") else { return nil }
        return LearnedPaths.normalize(base + "/" + path)
    }

    /// Whether `path` is absent from the sandbox's view (an O_PATH lookup inside its root).
    private func missingInView(_ path: String) -> Bool {
        root >= 0 && cell_exists_in_root(root, path) == 0
    }

    /// The record, once the sandbox is over: of the paths missing in its view, which the host
    /// has (lstat, no automount of the last component). Not while it runs: the time a host
    /// lookup takes, before the call is answered, would tell the sandbox what the host has.
    public func finish() -> ObservedRun {
        for (path, record) in run.paths where record.missingInView && !record.missingButOnHost && !ObservedRun.inKernelTree(path)
            && cell_exists_on_host(path) == 1 {
            run.paths[path]!.missingButOnHost = true
        }
        return run
    }

    private func recordAddress(pid: pid_t, id: UInt64, at pointer: UInt64, length: UInt64) {
        guard pointer != 0, length >= 2 else { return }
        var bytes = [UInt8](repeating: 0, count: Int(min(length, UInt64(MemoryLayout<sockaddr_un>.size))))
        let n = bytes.withUnsafeMutableBytes { cell_read_memory(pid, pointer, $0.baseAddress, $0.count) }
        guard n >= 2, cell_notify_id_valid(listener, id) != 0,
              let address = LearnedPaths.describeAddress(Array(bytes[0..<n])) else { return }
        run.connected(address)
    }

    private func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(validating: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Which arguments of a call name paths, and what the call does with them, for `cell learn`.
enum LearnedPaths {
    struct Use: Equatable {
        /// The argument holding the path, and the directory descriptor it is relative to.
        var path: Int
        var directory: Int?
        var use: ObservedRun.PathUse
    }

    static let fixed: [String: [Use]] = {
        func at(_ d: Int?, _ p: Int, _ u: ObservedRun.PathUse) -> Use { Use(path: p, directory: d, use: u) }
        return [
            "execve": [at(nil, 0, .execute)], "execveat": [at(0, 1, .execute)],
            "stat": [at(nil, 0, .lookup)], "lstat": [at(nil, 0, .lookup)], "newfstatat": [at(0, 1, .lookup)],
            "statx": [at(0, 1, .lookup)], "access": [at(nil, 0, .lookup)], "faccessat": [at(0, 1, .lookup)],
            "faccessat2": [at(0, 1, .lookup)], "readlink": [at(nil, 0, .lookup)], "readlinkat": [at(0, 1, .lookup)],
            "getxattr": [at(nil, 0, .lookup)], "lgetxattr": [at(nil, 0, .lookup)], "listxattr": [at(nil, 0, .lookup)],
            "llistxattr": [at(nil, 0, .lookup)], "chdir": [at(nil, 0, .lookup)], "inotify_add_watch": [at(nil, 1, .lookup)],
            "statfs": [at(nil, 0, .lookup)],
            "mkdir": [at(nil, 0, .create)], "mkdirat": [at(0, 1, .create)], "mknod": [at(nil, 0, .create)],
            "mknodat": [at(0, 1, .create)], "symlink": [at(nil, 1, .create)], "symlinkat": [at(1, 2, .create)],
            "link": [at(nil, 0, .lookup), at(nil, 1, .create)], "linkat": [at(0, 1, .lookup), at(2, 3, .create)],
            "rename": [at(nil, 0, .remove), at(nil, 1, .create)], "renameat": [at(0, 1, .remove), at(2, 3, .create)],
            "renameat2": [at(0, 1, .remove), at(2, 3, .create)],
            "unlink": [at(nil, 0, .remove)], "unlinkat": [at(0, 1, .remove)], "rmdir": [at(nil, 0, .remove)],
            "truncate": [at(nil, 0, .write)], "chmod": [at(nil, 0, .write)], "fchmodat": [at(0, 1, .write)],
            "fchmodat2": [at(0, 1, .write)], "chown": [at(nil, 0, .write)], "lchown": [at(nil, 0, .write)],
            "fchownat": [at(0, 1, .write)], "utimensat": [at(0, 1, .write)], "setxattr": [at(nil, 0, .write)],
            "lsetxattr": [at(nil, 0, .write)], "removexattr": [at(nil, 0, .write)], "lremovexattr": [at(nil, 0, .write)],
            "creat": [at(nil, 0, .create)],
        ]
    }()

    /// The paths a call names and what it does with each; open's depend on its flags.
    static func uses(_ name: String, args: [UInt64]) -> [Use] {
        switch name {
        case "open": return [Use(path: 0, directory: nil, use: openUse(args[1]))]
        case "openat": return [Use(path: 1, directory: 0, use: openUse(args[2]))]
        default: return fixed[name] ?? []
        }
    }

    /// O_CREAT or O_TMPFILE: create; O_WRONLY, O_RDWR or O_TRUNC: write; else read.
    static func openUse(_ flags: UInt64) -> ObservedRun.PathUse {
        let f = Int32(truncatingIfNeeded: flags)
        let tmpfile: Int32 = 0o20000000 // __O_TMPFILE, which Swift's Glibc does not export
        if f & O_CREAT != 0 || f & tmpfile != 0 { return .create }
        if f & O_ACCMODE != O_RDONLY || f & O_TRUNC != 0 { return .write }
        return .read
    }

    /// connect(fd, addr, len) and sendto(fd, buf, len, flags, addr, addrlen): where the address is.
    static let socketAddress: [String: (pointer: Int, length: Int)] = ["connect": (1, 2), "sendto": (4, 5)]

    /// "inet 127.0.0.1:80", "inet6 [::1]:53", "unix /run/x.sock", "unix @name"; nil for other families.
    static func describeAddress(_ bytes: [UInt8]) -> String? {
        let family = Int(bytes[0]) | Int(bytes[1]) << 8
        func port() -> Int { Int(bytes[2]) << 8 | Int(bytes[3]) }
        switch family {
        case 2 where bytes.count >= 8:
            return "inet \(bytes[4]).\(bytes[5]).\(bytes[6]).\(bytes[7]):\(port())"
        case 10 where bytes.count >= 24:
            let groups = stride(from: 8, to: 24, by: 2).map { String(Int(bytes[$0]) << 8 | Int(bytes[$0 + 1]), radix: 16) }
            return "inet6 [\(groups.joined(separator: ":"))]:\(port())"
        case 1 where bytes.count > 2:
            let name = bytes[2...]
            if name.first == 0 {
                return "unix @" + String(decoding: name.dropFirst().prefix { $0 != 0 }, as: UTF8.self)
            }
            return "unix " + String(decoding: name.prefix { $0 != 0 }, as: UTF8.self)
        default:
            return nil
        }
    }

    /// Lexically: no empty or "." components. ".." is kept (a symlink may stand before it).
    static func normalize(_ path: String) -> String {
        let parts = path.split(separator: "/").filter { $0 != "." }
        return "/" + parts.joined(separator: "/")
    }
}
