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
