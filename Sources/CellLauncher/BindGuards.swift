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
///     A directory cell cannot list but the sandbox could enter (mode 0111) is covered whole by
///     an empty read-only tmpfs: what is inside cannot be known, so nothing of it is reachable.
///   - **git directories in a writable bind**: git on the host runs what a repository's config
///     and hooks say (core.fsmonitor, core.hooksPath, hooks/*, filters, core.sshCommand), so a
///     sandbox that can write them can run code outside. Each `.git` (a directory, a worktree's
///     or submodule's `.git` file) in a writable bind is bound read-only over itself, and so is
///     every git directory a `.git` file or symlink in any bound tree names (with a worktree's
///     common directory, by real path) where a writable bind holds it, unless the profile says
///     `writable_git`.
///   - **what the `hide` globs match** (`HidePattern`: secrets such as `.env`, keys,
///     `.git/config`): a file or symlink is covered by an empty read-only file, a directory by
///     an empty read-only tmpfs (whose insides are then not walked).
///
/// The walk covers the directories the user chose (the working directory, `--bind`,
/// `--ro-bind`, profile mounts: `MountOperation.guarded`), not the system directories of the
/// default view. It never follows a symlink, keeps names as bytes (one that is not UTF-8 where
/// a guard is needed refuses the launch: the plan could not name it), and is bounded per bind:
/// past `directoryBudget` directories it stops and says so (further down, sockets stay
/// reachable and nested repositories writable); with hide globs, past `hideDirectoryBudget`
/// it refuses the launch. Each directory it reaches is listed whole, so
/// padding a directory with files cannot hide its own `.git`. Its cost is the kernel's,
/// per directory (about 10 us each on ext4 here: a checkout of 900 directories adds 9 ms).
/// What appears after the walk — a socket made while the sandbox runs, a `.git` created by the
/// command, an entry renamed during the launch by another sandbox sharing the tree — is not
/// covered (SECURITY.md).
public enum BindGuards {
    public static let directoryBudget = 4_000
    /// With hide patterns the walk must see everything: a larger budget (about 1 s of
    /// directories here: 19 us each, Scripts/bench), and a tree larger still is refused.
    public static let hideDirectoryBudget = 50_000
    static let depthLimit = 64

    /// `ops` with each walked bind followed by its guards, and a note for every walk cut short.
    /// `skipping`: host directories not to look into (an overlay's --changes directory inside a
    /// bound tree: overlayfs works in it, and a guard mounted there would break it).
    ///
    /// Two passes: every tree is walked first, since a `.git` file in one bind may name a git
    /// directory in another; then each bind is followed by the git directories it holds (read-
    /// only binds of the host's directory, outer ones first) and only then by its guards, so that
    /// no guard is ever under a bind made after it, and nothing the user mounts later (a tmpfs, a
    /// cache) is covered by one.
    public static func apply(_ ops: [MountOperation], writableGit: Bool, hide: [HidePattern] = [], skipping: [String] = [],
                             budget: Int? = nil) throws(LaunchError) -> (ops: [MountOperation], notes: [String]) {
        let budget = budget ?? (hide.isEmpty ? directoryBudget : hideDirectoryBudget)
        var notes: [String] = []
        // A directory bound twice (the working directory, then --bind of it) is walked once; its
        // guards follow each bind, since the later bind covers the earlier's.
        var walked: [String: Walk] = [:]
        var walks: [Int: Walk] = [:]
        var gitTargets: Set<String> = []
        for (index, op) in ops.enumerated() {
            guard op.guarded, op.kind == .bind || op.kind == .overlay, !op.device, op.expectedType == UInt32(S_IFDIR),
                  let source = op.source else { continue }
            // An overlay copies a file up, with its owner, on its first write: the sandbox maps only
            // the caller's uid and gid, so another owner or group there would fail (EOVERFLOW) in
            // the middle of a build. Found before anything starts, and named.
            let owners = op.kind == .overlay ? (uid: geteuid(), gid: getegid()) : nil
            let skip = Set(skipping.filter { SandboxPath.isWithin($0, source) && $0 != source }.map { Array($0.dropFirst(source == "/" ? 0 : source.count).utf8) })
            let found: Walk
            if let earlier = walked[source], owners == nil {
                found = earlier
            } else {
                found = walk(source, budget: budget, owners: owners, hide: hide, skip: skip)
                walked[source] = found
                // A secret left visible because the tree was large is what hide exists to prevent
                // (a hostile commit adding 50 000 directories would otherwise unhide .git/config).
                if found.incomplete && !hide.isEmpty {
                    throw .invalid("cannot look through all of \(source) for the files to hide: it has more than \(budget) directories"
                        + (found.tooDeep ? " or \(depthLimit) levels" : "") + "; bind a narrower directory, or run without hide patterns "
                        + "([filesystem] hide = [] in a profile extending this one)")
                }
                if found.incomplete {
                    notes.append("stopped looking for sockets, FIFOs" + (owners == nil ? " and git directories" : ", git directories and files of other owners")
                        + " under \(source) after \(budget) directories"
                        + (found.tooDeep ? " or \(depthLimit) levels" : "") + ": further down, sockets are not masked, nested repositories "
                        + "stay writable; bind a narrower directory")
                }
            }
            walks[index] = found
            for entry in found.entries {
                // The git directory a `.git` file or symlink names (--separate-git-dir, worktrees),
                // found in any tree (an overlay's too: what it names may lie in a writable bind).
                guard case .git(let named?) = entry.kind, !writableGit,
                      let relative = String(validating: entry.relative, as: UTF8.self) else { continue }
                let gitPath = source == "/" ? relative : source + relative
                let gitParent = String(gitPath.dropLast(5)) // the directory holding the `.git`
                for target in gitDirectories(named) where !SandboxPath.isWithin(gitParent, target) {
                    gitTargets.insert(target)
                }
            }
        }

        var result: [MountOperation] = []
        for (index, op) in ops.enumerated() {
            result.append(op)
            guard let found = walks[index], let source = op.source else { continue }
            // The git directories this writable bind holds, read-only, outer ones first.
            if op.kind == .bind && !op.readOnly {
                for target in gitTargets.filter({ SandboxPath.isWithin($0, source) }).sorted(by: { $0.count < $1.count }) {
                    var git = MountOperation.bind(target, inside(op, target), readOnly: true)
                    git.expectedType = UInt32(S_IFDIR)
                    result.append(git)
                    if target == source {
                        notes.append("\(target) is bound read-only although it was asked for writable: a .git file in a bound tree names it "
                            + "as its git directory (git on the host would run what it holds); remove that .git file if it is not yours")
                    }
                }
            }
            for entry in found.entries {
                guard let relative = String(validating: entry.relative, as: UTF8.self) else {
                    throw .invalid("\(source) holds \(entry.kind.noun) at \(TerminalText.escaped(String(decoding: entry.relative, as: UTF8.self))), "
                        + "whose name is not UTF-8: cell cannot name it in the plan to cover it; rename it, or bind a narrower directory")
                }
                let inside = Self.inside(op, source == "/" ? relative : source + relative)
                switch entry.kind {
                case .channel:
                    result.append(mask(inside))
                case .unlistable:
                    result.append(coverUnlistable(inside))
                case .hidden:
                    result.append(.hide(inside, type: entry.type))
                case .foreign(let uid, let gid):
                    throw .invalid("cannot overlay \(source): \(TerminalText.escaped(source + relative)) belongs to uid \(uid), gid \(gid), which the "
                        + "sandbox does not map (it maps only yours), so writing it would fail; give it to yourself (chown), or bind the tree instead")
                case .git where op.kind == .overlay:
                    break // its writes go to the overlay's upper layer, never to the host's git
                case .git where !op.readOnly && !writableGit && entry.type != UInt32(S_IFLNK):
                    // (A `.git` symlink cannot be written through; the directory it names is bound above.)
                    var git = MountOperation.bind(source + relative, inside, readOnly: true)
                    git.expectedType = entry.type
                    result.append(git)
                case .git:
                    break
                }
            }
        }
        return (result, notes)
    }

    /// Where the host path `path`, below the bind `op`'s source, appears inside.
    static func inside(_ op: MountOperation, _ path: String) -> String {
        let source = op.source ?? "/"
        let relative = source == "/" ? path : String(path.dropFirst(source.count))
        return op.destination == "/" ? (relative.isEmpty ? "/" : relative) : op.destination + relative
    }

    /// The git directories a `.git` file or symlink's target means to git: the directory itself
    /// and, for a worktree's, the common directory its `commondir` file names (where git reads
    /// hooks and config) — each as its real path, when it is a directory.
    static func gitDirectories(_ named: String) -> [String] {
        guard let real = FilesystemView.hostRealPath(named), FilesystemView.hostFileType(real) == UInt32(S_IFDIR) else { return [] }
        var found = [real]
        if FilesystemView.hostFileType(real + "/commondir") == UInt32(S_IFREG),
           let line = readSmallFile(real + "/commondir", limit: 4096)?.split(separator: "\n").first {
            let common = line.hasPrefix("/") ? String(line) : real + "/" + line
            if let commonReal = FilesystemView.hostRealPath(common), FilesystemView.hostFileType(commonReal) == UInt32(S_IFDIR) {
                found.append(commonReal)
            }
        }
        return found
    }

    /// /dev/null, read-only, over a socket or FIFO; skipped if a later mount has hidden it.
    static func mask(_ destination: String) -> MountOperation {
        var op = MountOperation.bind("/dev/null", destination, readOnly: true, optional: true)
        op.mustExist = true
        op.device = true
        op.expectedType = UInt32(S_IFCHR)
        return op
    }

    /// An empty read-only tmpfs over a directory cell could not list.
    static func coverUnlistable(_ destination: String) -> MountOperation {
        var op = MountOperation.tmpfs(destination, size: 4096, mode: 0o555, readOnly: true)
        op.mustExist = true
        op.optional = true
        return op
    }

    struct Entry: Equatable {
        enum Kind: Equatable {
            case channel
            /// A directory that cannot be listed.
            case unlistable
            /// A `.git`; for a file or symlink, the host path of the git directory it names.
            case git(target: String?)
            /// (Overlays) an entry whose owner or group is not the caller's.
            case foreign(uid: uid_t, gid: gid_t)
            /// A file, symlink or directory a hide pattern matches.
            case hidden

            var noun: String {
                switch self {
                case .channel: return "a socket or FIFO"
                case .unlistable: return "a directory it cannot list"
                case .git: return "a .git"
                case .foreign: return "a file of another owner"
                case .hidden: return "a file to hide"
                }
            }
        }
        var kind: Kind
        /// The path below the walked directory, starting with "/", as the bytes it has.
        var relative: [UInt8]
        var type: UInt32
    }

    struct Walk: Equatable {
        var entries: [Entry] = []
        var incomplete = false
        var tooDeep = false
    }

    /// Every socket, FIFO, unlistable directory, `.git` and hidden entry below `root`, breadth first — so
    /// that a budget cut short still covers the shallow places host services put their
    /// sockets (~/.ssh, ~/.gnupg, a project's top) — and parents before children. Each
    /// directory is opened beneath the root's descriptor without following any symlink (one
    /// swapped in meanwhile included). Inside a `.git` only its top level is looked at: git's
    /// fsmonitor daemon puts its socket there; below lie git's own objects, refs and logs.
    static func walk(_ root: String, budget: Int, owners: (uid: uid_t, gid: gid_t)? = nil, hide: [HidePattern] = [],
                     skip: Set<[UInt8]> = []) -> Walk {
        var result = Walk()
        let rootFD = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard rootFD >= 0 else { return result }
        defer { close(rootFD) }
        var queue: [(relative: [UInt8], depth: Int, descend: Bool)] = [([], 0, true)]
        var next = 0
        while next < queue.count {
            guard next < budget else {
                result.incomplete = true
                return result
            }
            let (relative, depth, descend) = queue[next]
            next += 1
            let fd = relative.isEmpty ? dup(rootFD) : openBeneath(rootFD, relative.dropFirst())
            guard fd >= 0, let dir = fdopendir(fd) else {
                if fd >= 0 { close(fd) }
                // Not listable, yet perhaps enterable: the sandbox (the same user) could reach a
                // socket inside by name.
                if errno == EACCES { result.entries.append(Entry(kind: .unlistable, relative: relative, type: UInt32(S_IFDIR))) }
                continue
            }
            defer { closedir(dir) }
            while let item = readdir(dir) {
                let name = direntName(item)
                if name == [0x2e] || name == [0x2e, 0x2e] { continue }
                var type = Int32(item.pointee.d_type)
                if type == Int32(DT_UNKNOWN) { // filesystems without d_type
                    var st = stat()
                    let found = (name + [0]).withUnsafeBufferPointer { bytes in
                        bytes.withMemoryRebound(to: CChar.self) { fstatat(dirfd(dir), $0.baseAddress!, &st, AT_SYMLINK_NOFOLLOW) }
                    }
                    type = found == 0 ? Int32(st.st_mode & S_IFMT) >> 12 : 0
                }
                let path = relative + [0x2f] + name
                if skip.contains(path) { continue }
                let isGit = name == Array(".git".utf8)
                if let owners {
                    var st = stat()
                    let found = (name + [0]).withUnsafeBufferPointer { bytes in
                        bytes.withMemoryRebound(to: CChar.self) { fstatat(dirfd(dir), $0.baseAddress!, &st, AT_SYMLINK_NOFOLLOW) }
                    }
                    if found == 0 && (st.st_uid != owners.uid || st.st_gid != owners.gid) {
                        result.entries.append(Entry(kind: .foreign(uid: st.st_uid, gid: st.st_gid), relative: path, type: st.st_mode & S_IFMT))
                        return result
                    }
                }
                // What a hide pattern matches is covered whole: a directory's insides are not
                // looked at (nothing of them is visible), a symlink is never followed.
                if !hide.isEmpty, type == Int32(DT_REG) || type == Int32(DT_DIR) || type == Int32(DT_LNK),
                   hide.contains(where: { $0.matches(path) }) {
                    result.entries.append(Entry(kind: .hidden, relative: path, type: UInt32(type) << 12))
                    continue
                }
                switch type {
                case Int32(DT_SOCK), Int32(DT_FIFO):
                    result.entries.append(Entry(kind: .channel, relative: path, type: UInt32(type) << 12))
                case Int32(DT_DIR):
                    if isGit { result.entries.append(Entry(kind: .git(target: nil), relative: path, type: UInt32(S_IFDIR))) }
                    guard descend else { continue }
                    guard depth + 1 < depthLimit else {
                        result.incomplete = true
                        result.tooDeep = true
                        continue
                    }
                    // Inside a .git only its top level, unless hide patterns may name what lies
                    // deeper (a submodule's config under .git/modules): then all of it.
                    queue.append((path, depth + 1, !isGit || !hide.isEmpty))
                case Int32(DT_REG) where isGit:
                    result.entries.append(Entry(kind: .git(target: gitFileTarget(root: root, relative: relative, dir: dirfd(dir))),
                                                relative: path, type: UInt32(S_IFREG)))
                case Int32(DT_LNK) where isGit:
                    result.entries.append(Entry(kind: .git(target: gitLinkTarget(root: root, relative: relative, dir: dirfd(dir))),
                                                relative: path, type: UInt32(S_IFLNK)))
                default:
                    break
                }
            }
        }
        return result
    }

    private static func openBeneath(_ root: Int32, _ relative: ArraySlice<UInt8>) -> Int32 {
        (Array(relative) + [0]).withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { cell_open_directory_beneath(root, $0.baseAddress!) }
        }
    }

    /// The git directory a `.git` file names (`gitdir: PATH`, relative to the file's directory).
    static func gitFileTarget(root: String, relative: [UInt8], dir: Int32) -> String? {
        let fd = openat(dir, ".git", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = read(fd, &buffer, buffer.count)
        guard n > 0, let text = String(validating: buffer[0..<n], as: UTF8.self),
              let line = text.split(separator: "\n").first, line.hasPrefix("gitdir:") else { return nil }
        return resolve(String(line.dropFirst(7)).trimmingSpaces(), root: root, relative: relative)
    }

    /// The directory a `.git` symlink points to.
    static func gitLinkTarget(root: String, relative: [UInt8], dir: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlinkat(dir, ".git", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return resolve(String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self), root: root, relative: relative)
    }

    /// `path` as git reads it (absolute, or relative to the `.git`'s directory), "." and ".."
    /// resolved by name; the caller checks that no symlink lies on the result.
    private static func resolve(_ path: String, root: String, relative: [UInt8]) -> String? {
        guard let base = String(validating: relative, as: UTF8.self), !path.isEmpty else { return nil }
        var parts: [Substring] = []
        for part in ((path.hasPrefix("/") ? "" : root + base + "/") + path).split(separator: "/") {
            if part == "." { continue }
            if part == ".." { _ = parts.popLast(); continue }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }
}

extension String {
    func trimmingSpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed())
    }
}
