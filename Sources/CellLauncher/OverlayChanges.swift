import CCellSpawn
import CellPolicy
import Glibc

/// What a sandbox changed through an overlay whose upper layer was kept (`--changes DIR`),
/// read back from DIR (`cell changes DIR`): DIR/upper holds what was written, in overlayfs's
/// own form — a whiteout (a character device 0/0) for a deleted entry, the `user.overlay.opaque`
/// mark on a directory that replaced one — and DIR/lower names the tree it was laid over, so
/// that a written file is told apart as added or changed.
public enum OverlayChanges {
    public enum Kind: String, Sendable {
        case added = "A", changed = "M", deleted = "D", replaced = "R"
    }

    public struct Change: Equatable, Sendable {
        public var kind: Kind
        /// Below the tree, starting with "/"; a directory ends with "/".
        public var path: String
    }

    /// The file in DIR that names the lower tree (written by cell when the sandbox starts).
    public static let lowerFile = "lower"

    /// Every change under DIR/upper, in path order. Never follows a symlink in DIR.
    public static func list(_ dir: String) throws(LaunchError) -> [Change] {
        let upper = open(dir + "/upper", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard upper >= 0 else { throw .invalid("\(dir) holds no overlay's changes (no upper/ in it: was it given to --changes?)") }
        defer { close(upper) }
        let lowerPath = readSmallFile(dir + "/" + lowerFile).map { String($0.prefix { $0 != "\n" }) }
        let lower = lowerPath.map { open($0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) } ?? -1
        defer { if lower >= 0 { close(lower) } }
        var changes: [Change] = []
        walk(upper, lower: lower, prefix: "", into: &changes)
        return changes.sorted { $0.path < $1.path }
    }

    private static func walk(_ dirFD: Int32, lower: Int32, prefix: String, into changes: inout [Change]) {
        let fd = dup(dirFD)
        guard fd >= 0, let dir = fdopendir(fd) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            let path = prefix + "/" + name
            var st = stat()
            guard fstatat(dirfd(dir), name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            var inLower = stat()
            let existed = lower >= 0 && fstatat(lower, name, &inLower, AT_SYMLINK_NOFOLLOW) == 0
            switch st.st_mode & S_IFMT {
            case S_IFCHR where st.st_rdev == 0:
                changes.append(Change(kind: .deleted, path: path))
            case S_IFDIR:
                let opaque = isOpaque(dirfd(dir), name)
                if existed && !opaque && inLower.st_mode & S_IFMT == S_IFDIR {
                    // The same directory with changes inside: look inside both.
                    let sub = openat(dirfd(dir), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    let lowerSub = openat(lower, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    if sub >= 0 { walk(sub, lower: lowerSub, prefix: path, into: &changes); close(sub) }
                    if lowerSub >= 0 { close(lowerSub) }
                } else {
                    changes.append(Change(kind: existed ? .replaced : .added, path: path + "/"))
                    let sub = openat(dirfd(dir), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    if sub >= 0 { walk(sub, lower: -1, prefix: path, into: &changes); close(sub) }
                }
            default:
                changes.append(Change(kind: existed ? .changed : .added, path: path))
            }
        }
    }

    /// overlayfs's mark on a directory that hides the lower one of the same name (userxattr).
    private static func isOpaque(_ dir: Int32, _ name: String) -> Bool {
        let fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var value = [UInt8](repeating: 0, count: 4)
        return fgetxattr(fd, "user.overlay.opaque", &value, value.count) > 0 && value[0] == UInt8(ascii: "y")
    }

    /// Names the lower tree in DIR before the sandbox starts (DIR is the caller's, checked by
    /// the planner; the file is written without following a symlink).
    static func recordLower(_ lower: String, in dir: String) throws(LaunchError) {
        let fd = open(dir + "/" + lowerFile, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .setup("cannot write \(dir)/\(lowerFile): \(errorText(errno))") }
        defer { close(fd) }
        writeAll(fd, lower + "\n")
    }
}

/// `cell changes DIR --apply TARGET`: the kept changes written into TARGET (the checkout, say),
/// on request only. Everything in TARGET is reached beneath it without following a symlink
/// (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so a symlink the sandbox left in its
/// changes, or one already in TARGET, can never lead a write elsewhere; setuid and setgid bits
/// are dropped; nothing under a `.git` is touched (the sandbox must not plant hooks or config
/// that the host's git would run); devices, FIFOs and sockets are not copied.
extension OverlayChanges {
    public struct Applied: Equatable, Sendable {
        public var written = 0, deleted = 0
        /// What was left out, and why (one line each).
        public var skipped: [String] = []
    }

    public static func apply(_ dir: String, to target: String) throws(LaunchError) -> Applied {
        let changes = try list(dir)
        let upper = open(dir + "/upper", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        let root = open(target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        defer { if upper >= 0 { close(upper) }; if root >= 0 { close(root) } }
        guard upper >= 0, root >= 0 else { throw .invalid("--apply \(target): not a directory cell can open (without a symlink)") }
        var result = Applied()
        for change in changes {
            let path = change.path.hasSuffix("/") ? String(change.path.dropLast()) : change.path
            let relative = String(path.dropFirst())
            if relative.split(separator: "/").contains(".git") {
                result.skipped.append("\(change.path): under .git, never applied")
                continue
            }
            let parent = relative.contains("/") ? String(relative[..<relative.lastIndex(of: "/")!]) : "."
            let name = relative.split(separator: "/").last.map(String.init) ?? relative
            let parentFD = parent == "." ? dup(root) : cell_open_directory_beneath(root, parent)
            guard parentFD >= 0 else {
                result.skipped.append("\(change.path): its directory cannot be reached in \(target) without a symlink")
                continue
            }
            defer { close(parentFD) }
            switch change.kind {
            case .deleted, .replaced:
                if removeBelow(parentFD, name) { result.deleted += 1 }
                if change.kind == .replaced, mkdirat(parentFD, name, 0o755) == 0 { result.written += 1 }
            case .added where change.path.hasSuffix("/"):
                if mkdirat(parentFD, name, 0o755) == 0 || errno == EEXIST { result.written += 1 }
            case .added, .changed:
                if let problem = copyFile(from: upper, relative, to: parentFD, name) {
                    result.skipped.append("\(change.path): \(problem)")
                } else {
                    result.written += 1
                }
            }
        }
        return result
    }

    /// One file (or symlink) from the upper layer into `dir`/`name`, replacing what is there.
    private static func copyFile(from upper: Int32, _ relative: String, to dir: Int32, _ name: String) -> String? {
        var st = stat()
        guard fstatat(upper, relative, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return errorText(errno) }
        switch st.st_mode & S_IFMT {
        case S_IFLNK:
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlinkat(upper, relative, &buffer, buffer.count - 1)
            guard n >= 0 else { return errorText(errno) }
            _ = removeBelow(dir, name)
            return symlinkat(String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self), dir, name) == 0 ? nil : errorText(errno)
        case S_IFREG:
            let source = openat(upper, relative, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            guard source >= 0 else { return errorText(errno) }
            defer { close(source) }
            let temporary = ".cell-apply-\(getpid())-" + name.prefix(100)
            // Written beside the target and renamed over it: never through what is there.
            let out = openat(dir, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard out >= 0 else { return errorText(errno) }
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            copying: while true {
                let n = read(source, &buffer, buffer.count)
                if n <= 0 { break }
                var at = 0
                while at < n {
                    let m = buffer[at..<n].withUnsafeBytes { write(out, $0.baseAddress, $0.count) }
                    if m <= 0 { break copying }
                    at += m
                }
            }
            fchmod(out, st.st_mode & 0o777) // no setuid, setgid or sticky bit
            close(out)
            _ = removeBelow(dir, name)
            return renameat(dir, temporary, dir, name) == 0 ? nil : errorText(errno)
        default:
            return "a device, FIFO or socket: not copied"
        }
    }

    /// Removes `name` in `dir` and, for a directory, all it holds, never following a symlink.
    @discardableResult
    private static func removeBelow(_ dir: Int32, _ name: String) -> Bool {
        if unlinkat(dir, name, 0) == 0 { return true }
        guard errno == EISDIR || errno == EPERM else { return false }
        let sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard sub >= 0, let listing = fdopendir(sub) else { return false }
        var names: [String] = []
        while let entry = readdir(listing) {
            let n = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if n != "." && n != ".." { names.append(n) }
        }
        for n in names { removeBelow(dirfd(listing), n) }
        closedir(listing)
        return unlinkat(dir, name, AT_REMOVEDIR) == 0
    }
}
