import CellPolicy
import Glibc

/// What a host path is, as far as building the view is concerned.
public enum HostEntry: Equatable, Sendable {
    case missing
    case directory
    case file
    case symlink(target: String)
    /// A device, FIFO or socket.
    case other
}

/// The filesystem view `cell run` gives by default, as an ordered list of operations:
///
///   - read-only `/usr`, and `/bin`, `/sbin`, `/lib*` as the host has them (merged-usr symlinks
///     are recreated as symlinks, real directories bound read-only);
///   - a new `/etc` holding only what programs need: the loader cache, name-service and TLS
///     configuration, time zone — copies of small files, the same symlinks, binds of the
///     directories and larger files, all read-only — and a `passwd`/`group` naming the
///     sandbox's user, root and nobody;
///   - a fresh `/proc` of the sandbox's pid namespace with `/proc/sys`, `sysrq-trigger`, `irq`
///     and `bus` read-only and `kcore`, `keys`, `timer_list` (and friends) masked;
///   - a minimal `/dev`: null, zero, full, random, urandom, tty, a private devpts, `/dev/shm`;
///   - empty tmpfs `/tmp` and home (the user's home path: `SandboxUser`);
///   - the caller's working directory, read-only (or read-write, or not at all, as the profile
///     says), at the same path;
///   - then the user's own `--ro-bind`, `--bind` and `--tmpfs`, in order (they may cover the above).
/// Nothing else of the host is visible: not the user's home, not `/sys`, not `/run`.
public enum FilesystemView {
    public static let tmpSize = SandboxDefaults.tmpSize
    public static let homeSize: UInt64 = 64 << 20
    public static let shmSize: UInt64 = 64 << 20
    public static let devSize: UInt64 = 64 << 10

    static let systemDirectories = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]

    /// The parts of /etc that programs need; missing ones are skipped.
    static let etcEntries = [
        "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "nsswitch.conf", "host.conf", "hosts", "resolv.conf",
        "gai.conf", "services", "protocols", "ssl", "ca-certificates", "ca-certificates.conf", "pki",
        "crypto-policies", "alternatives", "localtime", "timezone", "os-release", "debian_version",
        "mime.types", "inputrc", "bash.bashrc", "profile", "python3", "gitconfig",
    ]

    static let devices = ["null", "zero", "full", "random", "urandom", "tty"]
    static let loopbackHosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"

    public static func defaultOperations(
        workingDirectory: String?,
        workingDirectoryWritable: Bool = false,
        user: SandboxUser = .root,
        hostname: String = SandboxDefaults.hostname,
        ipcNamespace: Bool = true,
        network: NetworkMode = .none,
        inspect: (String) -> HostEntry = inspectHost,
        readSmallFile: (String) -> [UInt8]? = readSmallHostFile
    ) -> [MountOperation] {
        var ops: [MountOperation] = [.bind("/usr", readOnly: true)]
        for dir in systemDirectories {
            switch inspect(dir) {
            case .symlink(let target): ops.append(.symlink(target, at: dir))
            case .directory: ops.append(.bind(dir, readOnly: true))
            case .file, .missing, .other: break
            }
        }

        ops.append(.dir("/etc"))
        for name in etcEntries {
            let path = "/etc/" + name
            // With user-mode networking the resolver is slirp4netns's forwarder, not the host's.
            if name == "resolv.conf" && network == .user {
                ops.append(.file(path, contents: "nameserver \(UserNetwork.resolverAddress)\n"))
                continue
            }
            // With the proxy there is no DNS inside: the proxy resolves the names it is given.
            // A resolver on the sandbox's own lo, where nothing listens, fails at once.
            if name == "resolv.conf" && network == .proxy {
                ops.append(.file(path, contents: """
                    # cell --net proxy: no DNS inside. Names resolve through the proxy: programs that
                    # honour HTTP_PROXY, HTTPS_PROXY or ALL_PROXY (socks5h) give it the name.
                    nameserver 127.0.0.1

                    """))
                continue
            }
            // The sandbox's own hostname resolves, as the host's does on the host: programs look
            // their name up (gethostbyname(gethostname())) and fail or skip work when it does not.
            // A host file that cannot be copied (a symlink, too large) gives way to the
            // loopback names alone, never to a file without them.
            if name == "hosts" {
                let host = (inspect(path) == .file ? readSmallFile(path) : nil) ?? Array(loopbackHosts.utf8)
                ops.append(.file(path, bytes: hostsFile(host, hostname: hostname)))
                continue
            }
            // Decided here, once, and shown by --dry-run: a small file is copied into the plan
            // (a copy costs pid 1 a fraction of a bind, and a launch has a dozen), a symlink is
            // recreated, a directory or larger file bound read-only. Devices, FIFOs and sockets
            // are left out: read-only mounts do not stop writes to them.
            switch inspect(path) {
            case .symlink(let target): ops.append(.symlink(target, at: path))
            case .directory: ops.append(.bind(path, readOnly: true))
            case .file: ops.append(readSmallFile(path).map { .file(path, bytes: $0) } ?? .bind(path, readOnly: true))
            case .missing, .other: break
            }
        }
        ops.append(.file("/etc/passwd", contents: user.passwdFile))
        ops.append(.file("/etc/group", contents: user.groupFile))
        ops.append(.symlink("../proc/self/mounts", at: "/etc/mtab"))

        ops.append(MountOperation(kind: .proc, destination: "/proc"))
        for path in ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"] {
            ops.append(MountOperation(kind: .remountReadOnly, destination: path, optional: true, mustExist: true))
        }
        for path in ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/latency_stats", "/proc/sched_debug"] {
            var mask = MountOperation.bind("/dev/null", path, readOnly: true, optional: true)
            mask.mustExist = true
            mask.device = true
            ops.append(mask)
        }
        for path in ["/proc/acpi", "/proc/scsi"] {
            var mask = MountOperation.tmpfs(path, size: 4096, mode: 0o555, readOnly: true)
            mask.mustExist = true
            mask.optional = true
            ops.append(mask)
        }

        var dev = MountOperation.tmpfs("/dev", size: devSize, mode: 0o755)
        dev.noexec = true
        ops.append(dev)
        for name in devices {
            var device = MountOperation.bind("/dev/" + name, readOnly: false)
            device.device = true
            device.optional = name == "tty" // a host without a /dev/tty still gets a sandbox
            ops.append(device)
        }
        ops.append(MountOperation(kind: .devpts, destination: "/dev/pts"))
        ops.append(.symlink("pts/ptmx", at: "/dev/ptmx"))
        var shm = MountOperation.tmpfs("/dev/shm", size: shmSize, mode: 0o1777)
        shm.noexec = true
        ops.append(shm)
        if ipcNamespace {
            ops.append(MountOperation(kind: .mqueue, destination: "/dev/mqueue"))
        }
        ops.append(.symlink("/proc/self/fd", at: "/dev/fd"))
        for (index, name) in ["stdin", "stdout", "stderr"].enumerated() {
            ops.append(.symlink("/proc/self/fd/\(index)", at: "/dev/" + name))
        }

        ops.append(.tmpfs("/tmp", size: tmpSize, mode: 0o1777))
        // A fresh, empty home at the user's home path, unless the view already has that path: a
        // system account's home (/usr/sbin, /dev, /tmp/x, "/") must not hide part of the view.
        if user.home != "/" && !ops.contains(where: { SandboxPath.isWithin(user.home, $0.destination) }) {
            ops.append(.tmpfs(user.home, size: homeSize, mode: 0o700))
        }

        // The working directory, read-only, unless it is "/" (that would be the whole host),
        // already visible at its own path through a bind above (/usr/src, say), or /tmp (the
        // sandbox starts in the empty one). Inside the home, or the home itself, it is bound on
        // top of the fresh home: the directory the user ran from is never hidden.
        if let cwd = workingDirectory, cwd != "/", cwd != "/tmp",
           !ops.contains(where: { $0.kind == .bind && $0.source == $0.destination && SandboxPath.isWithin(cwd, $0.destination) }) {
            ops.append(.bind(cwd, readOnly: !workingDirectoryWritable, optional: true))
        }
        return ops
    }

    /// The host's /etc/hosts with a line naming the sandbox's hostname on 127.0.1.1 (loopback,
    /// as Debian names a host without a fixed address), unless the file names it already.
    static func hostsFile(_ host: [UInt8], hostname: String) -> [UInt8] {
        let text = String(decoding: host, as: UTF8.self)
        let named = text.split(separator: "\n").contains { line in
            let fields = line.prefix { $0 != "#" }.split(whereSeparator: { $0 == " " || $0 == "\t" })
            return fields.dropFirst().contains { $0 == hostname }
        }
        if named { return host }
        let separator = host.isEmpty || host.last == UInt8(ascii: "\n") ? "" : "\n"
        return host + Array("\(separator)127.0.1.1\t\(hostname)\n".utf8)
    }

    /// lstat-based inspection of the host.
    public static func inspectHost(_ path: String) -> HostEntry {
        var st = stat()
        guard lstat(path, &st) == 0 else { return .missing }
        switch st.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFLNK:
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(path, &buffer, buffer.count - 1)
            guard n > 0 else { return .missing }
            return .symlink(target: String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self))
        case S_IFREG: return .file
        default: return .other
        }
    }

    /// Host files up to this size are copied into the plan rather than bound.
    public static let copyLimit = 32 << 10

    /// The contents of the regular file at `path` if it has at most `copyLimit` bytes and can
    /// be read; nil otherwise (it is then bound). Never follows a symlink at `path` itself, and
    /// never blocks on a FIFO put there in the meantime.
    public static func readSmallHostFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_size <= copyLimit else { return nil }
        var bytes = [UInt8](repeating: 0, count: copyLimit + 1)
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return nil }
            if n == 0 { break }
            count += n
        }
        // It grew past the limit since fstat: bind it instead.
        return count <= copyLimit ? Array(bytes[0..<count]) : nil
    }

    /// Settles every bind against the host as it is now, so that the plan says exactly what
    /// pid 1 will bind: each source's type is recorded (pid 1 binds only a source of that type,
    /// reached without a symlink, and fails if it changed in between); an optional bind whose
    /// source does not exist is left out; a missing source, or one reached through a symlink,
    /// is refused here with a message that names it; so is anything mounted over / itself.
    public static func settle(_ ops: [MountOperation], fileType: (String) -> UInt32? = hostFileType,
                              realPath: (String) -> String? = hostRealPath) throws(LaunchError) -> [MountOperation] {
        var settled: [MountOperation] = []
        for var op in ops {
            if op.destination == "/" {
                throw .invalid("cannot put '\(op.summary)' at / inside the sandbox: the root is cell's own tmpfs; choose a directory below it")
            }
            guard op.kind == .bind || op.kind == .overlay, let source = op.source else {
                settled.append(op)
                continue
            }
            let verb = op.kind == .overlay ? "overlay" : "bind"
            guard let type = fileType(source) else {
                if op.optional { continue }
                throw .invalid("cannot \(verb) \(source): it does not exist on the host")
            }
            if op.kind == .overlay && type != UInt32(S_IFDIR) {
                throw .invalid("cannot overlay \(source): an overlay is of a directory, and this is a \(FileType.name(type))")
            }
            if type == UInt32(S_IFLNK) || realPath(source).map({ $0 != source }) ?? false {
                if op.optional { continue }
                let real = realPath(source).map { " (it leads to \($0))" } ?? ""
                throw .invalid("cannot \(verb) \(source): the path goes through a symlink\(real); cell never \(verb)s through symlinks: name the real path")
            }
            op.expectedType = type
            settled.append(op)
        }
        return settled
    }

    /// --changes DIR: an existing directory of the caller's, reached without a symlink, outside
    /// the tree it keeps the changes of (overlayfs refuses an upper layer inside its lower one).
    public static func checkChangesDirectory(_ dir: String, lower: String) throws(LaunchError) {
        var st = stat()
        guard lstat(dir, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
            throw .invalid("--changes \(dir): not an existing directory (create it first; cell keeps the overlay's upper layer there)")
        }
        guard hostRealPath(dir) == dir else { throw .invalid("--changes \(dir): the path goes through a symlink; name the real path") }
        guard st.st_uid == geteuid() else { throw .invalid("--changes \(dir): not your directory") }
        if SandboxPath.isWithin(dir, lower) || SandboxPath.isWithin(lower, dir) {
            throw .invalid("--changes \(dir): inside the tree it would keep the changes of (\(lower)), or around it; choose a directory elsewhere")
        }
        // Empty, or what an earlier run over the same tree left (the changes then continue):
        // anything else in it would be the sandbox's to read and overwrite, and overlayfs
        // clears its work directory.
        let entries = directoryEntries(dir, followingSymlink: false)
        if !entries.isEmpty {
            let earlier = readSmallFile(dir + "/" + OverlayChanges.lowerFile).map { String($0.prefix { $0 != "\n" }) }
            guard Set(entries).isSubset(of: [OverlayChanges.lowerFile, "upper", "work"]), earlier == lower else {
                throw .invalid("--changes \(dir): not empty, and not the changes of an earlier run over \(lower); give an empty directory")
            }
        }
    }

    /// The S_IFMT bits of the host path, not following a final symlink; nil if it cannot be seen.
    public static func hostFileType(_ path: String) -> UInt32? {
        var st = stat()
        return lstat(path, &st) == 0 ? UInt32(st.st_mode & S_IFMT) : nil
    }

    /// The host path with every symlink resolved, or nil.
    public static func hostRealPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The host directory the new root is attached over while it is being built (inside the
    /// sandbox's own mount namespace only; nothing on the host changes).
    public static func rootBase(inspect: (String) -> HostEntry = inspectHost) -> String? {
        ["/tmp", "/mnt", "/run", "/var/tmp"].first { inspect($0) == .directory }
    }
}
