import CCellSpawn
import CellPolicy
import Glibc

/// What a bound directory holds that a read-only bind does not stop, found before the sandbox
/// exists and covered in the plan (so `--dry-run` shows each one):
///
///   - **sockets and FIFOs**: connecting to a socket and writing to a FIFO are not writes to the
///     filesystem, so a read-only bind leaves them open — a channel to an ssh ControlMaster, a
///     Docker daemon, an agent, whatever listens on the host. Each is masked with /dev/null
///     bound read-only over it (connect() then fails with ECONNREFUSED; a write goes nowhere).
///   - **`.git` in a writable bind**: git on the host runs what a repository's config and hooks
///     say (core.fsmonitor, core.hooksPath, hooks/*, filters, core.sshCommand), so a sandbox that
///     can write `.git` can run code outside. Each `.git` (a directory, or the file a worktree or
///     submodule has) is bound read-only over itself, unless the profile says `writable_git`.
///
/// The walk covers the directories the user chose (the working directory, `--bind`,
/// `--ro-bind`, profile mounts), not the system directories of the default view. It never
/// follows a symlink, and it is bounded: past `entryBudget` entries it stops and says so (a
/// socket further down stays reachable). Its cost is the kernel's, per directory (about 10 us
/// each on ext4 here: a checkout of 900 directories adds 9 ms to a launch). What appears after the walk — a socket made while the
/// sandbox runs, a `.git` created by the command — is not covered (SECURITY.md).
public enum BindGuards {
    public static let entryBudget = 20_000
    static let depthLimit = 64

    /// Host paths of the default view's system directories: the root's, never walked.
    static let systemPaths = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/dev", "/proc"]

    /// `ops` with each walked bind followed by its guards, and a note for every walk cut short.
    public static func apply(_ ops: [MountOperation], writableGit: Bool,
                             budget: Int = entryBudget) -> (ops: [MountOperation], notes: [String]) {
        var result: [MountOperation] = []
        var notes: [String] = []
        var remaining = budget
        // A directory bound twice (the working directory, then --bind of it) is walked once; its
        // guards follow each bind, since the later bind covers the earlier's.
        var walked: [String: (entries: [Entry], incomplete: Bool)] = [:]
        for op in ops {
            result.append(op)
            guard op.kind == .bind, !op.device, op.expectedType == UInt32(S_IFDIR), let source = op.source,
                  !systemPaths.contains(where: { SandboxPath.isWithin(source, $0) }) else { continue }
            let found = walked[source] ?? walk(source, budget: &remaining)
            walked[source] = found
            for entry in found.entries {
                let inside = op.destination == "/" ? entry.relative : op.destination + entry.relative
                switch entry.kind {
                case .git where !op.readOnly && !writableGit:
                    var git = MountOperation.bind(source + entry.relative, inside, readOnly: true)
                    git.expectedType = entry.type
                    result.append(git)
                case .channel:
                    result.append(mask(inside))
                case .git:
                    break
                }
            }
            if found.incomplete {
                notes.append("stopped looking for sockets, FIFOs and .git under \(source) after \(budget) entries in all: "
                    + "those further down are not masked; bind a narrower directory")
            }
        }
        return (result, notes)
    }

    /// /dev/null, read-only, over a socket or FIFO; skipped if a later mount has hidden it.
    static func mask(_ destination: String) -> MountOperation {
        var op = MountOperation.bind("/dev/null", destination, readOnly: true, optional: true)
        op.mustExist = true
        op.device = true
        op.expectedType = UInt32(S_IFCHR)
        return op
    }

    struct Entry: Equatable {
        enum Kind: Equatable { case channel, git }
        var kind: Kind
        /// The path below the walked directory, starting with "/".
        var relative: String
        var type: UInt32
    }

    /// Every socket, FIFO and `.git` below `root`, breadth first — so that a budget cut short
    /// still covers the shallow places host services put their sockets (~/.ssh, ~/.gnupg, a
    /// project's top) — and parents before children. Each directory is opened beneath the
    /// root's descriptor without following any symlink (one swapped in meanwhile included).
    /// Inside a `.git` only its top level is looked at: git's fsmonitor daemon puts its socket
    /// there; below lie git's own objects, refs and logs.
    static func walk(_ root: String, budget: inout Int) -> (entries: [Entry], incomplete: Bool) {
        let rootFD = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard rootFD >= 0 else { return ([], false) }
        defer { close(rootFD) }
        var entries: [Entry] = []
        var queue: [(relative: String, depth: Int, descend: Bool)] = [("", 0, true)]
        var next = 0
        while next < queue.count {
            let (relative, depth, descend) = queue[next]
            next += 1
            let fd = relative.isEmpty ? dup(rootFD) : cell_open_directory_beneath(rootFD, String(relative.dropFirst()))
            guard fd >= 0, let dir = fdopendir(fd) else {
                if fd >= 0 { close(fd) }
                continue // gone, or not readable: the sandbox, as the same user, cannot list it either
            }
            defer { closedir(dir) }
            while let item = readdir(dir) {
                let name = withUnsafeBytes(of: item.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name == "." || name == ".." { continue }
                guard budget > 0 else { return (entries, true) }
                budget -= 1
                var type = Int32(item.pointee.d_type)
                if type == Int32(DT_UNKNOWN) { // filesystems without d_type
                    var st = stat()
                    type = fstatat(dirfd(dir), name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? Int32(st.st_mode & S_IFMT) >> 12 : 0
                }
                let path = relative + "/" + name
                switch type {
                case Int32(DT_SOCK), Int32(DT_FIFO):
                    entries.append(Entry(kind: .channel, relative: path, type: UInt32(type) << 12))
                case Int32(DT_DIR):
                    if name == ".git" { entries.append(Entry(kind: .git, relative: path, type: UInt32(S_IFDIR))) }
                    guard descend else { continue }
                    guard depth + 1 < depthLimit else { return (entries, true) }
                    queue.append((path, depth + 1, name != ".git"))
                case Int32(DT_REG):
                    if name == ".git" { entries.append(Entry(kind: .git, relative: path, type: UInt32(S_IFREG))) }
                default:
                    break
                }
            }
        }
        return (entries, false)
    }
}
