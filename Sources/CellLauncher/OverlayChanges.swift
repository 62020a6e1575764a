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
        /// Below the tree, starting with "/", as the bytes it has; a directory ends with "/".
        public var raw: [UInt8]
        /// A symlink's target (as the sandbox wrote it).
        public var linkTarget: String?
        /// A file with an execute bit.
        public var executable = false

        /// The path, UTF-8 (nil when a name in it is not: such a change is listed, escaped, and
        /// never applied).
        public var path: String? { String(validating: raw, as: UTF8.self) }

        /// One line of `cell changes`: what a reviewer needs to see, terminal-safe.
        public var line: String {
            var text = "\(kind.rawValue) " + (path.map(TerminalText.escaped) ?? Self.escapedBytes(raw))
            if let linkTarget { text += " -> " + TerminalText.escaped(linkTarget) }
            if executable { text += " (executable)" }
            if path == nil { text += " (a name that is not UTF-8: never applied)" }
            return text
        }

        static func escapedBytes(_ bytes: [UInt8]) -> String {
            bytes.map { $0 >= 0x20 && $0 < 0x7f && $0 != 0x5c ? String(UnicodeScalar($0)) : "\\x" + String($0, radix: 16) }.joined()
        }
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
        walk(upper, lower: lower, prefix: [], into: &changes)
        return changes.sorted { $0.raw.lexicographicallyPrecedes($1.raw) }
    }

    private static func walk(_ dirFD: Int32, lower: Int32, prefix: [UInt8], into changes: inout [Change]) {
        let fd = dup(dirFD)
        guard fd >= 0, let dir = fdopendir(fd) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = direntName(entry)
            if name == [0x2e] || name == [0x2e, 0x2e] { continue }
            let path = prefix + [0x2f] + name
            var st = stat(), inLower = stat()
            let cName = name.map { CChar(bitPattern: $0) } + [0]
            guard fstatat(dirfd(dir), cName, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            let existed = lower >= 0 && fstatat(lower, cName, &inLower, AT_SYMLINK_NOFOLLOW) == 0
            switch st.st_mode & S_IFMT {
            case S_IFCHR where st.st_rdev == 0:
                changes.append(Change(kind: .deleted, raw: path))
            case S_IFDIR:
                let sub = openat(dirfd(dir), cName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                defer { if sub >= 0 { close(sub) } }
                let opaque = sub >= 0 && isOpaque(sub)
                if existed && !opaque && inLower.st_mode & S_IFMT == S_IFDIR {
                    // The same directory with changes inside: look inside both.
                    let lowerSub = openat(lower, cName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    if sub >= 0 { walk(sub, lower: lowerSub, prefix: path, into: &changes) }
                    if lowerSub >= 0 { close(lowerSub) }
                } else {
                    changes.append(Change(kind: existed ? .replaced : .added, raw: path + [0x2f]))
                    if sub >= 0 { walk(sub, lower: -1, prefix: path, into: &changes) }
                }
            case S_IFLNK:
                var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = readlinkat(dirfd(dir), cName, &buffer, buffer.count - 1)
                let target = n >= 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
                changes.append(Change(kind: existed ? .changed : .added, raw: path, linkTarget: target))
            default:
                changes.append(Change(kind: existed ? .changed : .added, raw: path, executable: st.st_mode & 0o111 != 0))
            }
        }
    }

    /// overlayfs's mark on a directory that hides the lower one of the same name (userxattr).
    private static func isOpaque(_ fd: Int32) -> Bool {
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
/// changes, or one already in TARGET, can never lead a write elsewhere. Left out, each named:
/// anything under a `.git`, and git's other hook directories (core.hooksPath of TARGET's git,
/// .husky): the host's git would run what a sandbox planted there; a deletion of a tree that
/// holds a `.git` (a nested repository); a symlink leading out of TARGET (absolute, or with
/// ".."); devices, FIFOs and sockets; names that are not UTF-8. setuid, setgid and sticky bits
/// are dropped, and holes in sparse files are kept (a 1 TB sparse file stays 4 KB).
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
        let hookDirectories = [".husky"] + (gitHooksPath(root).map { [$0] } ?? [])
        var result = Applied()
        for change in changes {
            guard let shown = change.path else {
                result.skipped.append(change.line)
                continue
            }
            let path = shown.hasSuffix("/") ? String(shown.dropLast()) : shown
            let relative = String(path.dropFirst())
            let components = relative.split(separator: "/").map(String.init)
            if components.contains(".git") {
                result.skipped.append("\(shown): under .git, never applied")
                continue
            }
            if let hooks = hookDirectories.first(where: { relative == $0 || relative.hasPrefix($0 + "/") }) {
                result.skipped.append("\(shown): in \(hooks), where git finds hooks to run: never applied")
                continue
            }
            let parent = components.count > 1 ? components.dropLast().joined(separator: "/") : "."
            let name = components.last ?? relative
            let parentFD = parent == "." ? dup(root) : cell_open_directory_beneath(root, parent)
            guard parentFD >= 0 else {
                result.skipped.append("\(shown): its directory cannot be reached in \(target) without a symlink")
                continue
            }
            defer { close(parentFD) }
            switch change.kind {
            case .deleted, .replaced:
                if holdsGit(parentFD, name) {
                    result.skipped.append("\(shown): holds a .git (a repository of its own): not removed")
                    continue
                }
                if removeBelow(parentFD, name) { result.deleted += 1 }
                if change.kind == .replaced, mkdirat(parentFD, name, 0o755) == 0 { result.written += 1 }
            case .added where shown.hasSuffix("/"):
                if mkdirat(parentFD, name, 0o755) == 0 || errno == EEXIST { result.written += 1 }
            case .added, .changed:
                if let link = change.linkTarget, link.hasPrefix("/") || link.split(separator: "/").contains("..") {
                    result.skipped.append("\(shown) -> \(link): a symlink leading out of \(target): not made")
                } else if let problem = copyEntry(from: upper, relative, to: parentFD, name) {
                    result.skipped.append("\(shown): \(problem)")
                } else {
                    result.written += 1
                }
            }
        }
        return result
    }

    /// core.hooksPath of the git repository whose work tree TARGET is, relative to TARGET.
    static func gitHooksPath(_ root: Int32) -> String? {
        let fd = openat(root, ".git/config", O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 64 << 10)
        let n = read(fd, &bytes, bytes.count)
        guard n > 0 else { return nil }
        var section = ""
        for raw in String(decoding: bytes[0..<n], as: UTF8.self).split(separator: "\n") {
            let line = String(raw).trimmingCharacters(" \t\r")
            if line.hasPrefix("[") { section = line.lowercased(); continue }
            let parts = line.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(" \t") }
            if section.hasPrefix("[core") && parts.count == 2 && parts[0].lowercased() == "hookspath" {
                let value = parts[1].hasPrefix("./") ? String(parts[1].dropFirst(2)) : parts[1]
                return value.hasSuffix("/") ? String(value.dropLast()) : value
            }
        }
        return nil
    }

    /// One file or symlink from the upper layer into `dir`/`name`, replacing what is there.
    private static func copyEntry(from upper: Int32, _ relative: String, to dir: Int32, _ name: String) -> String? {
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
            let copied = copySparse(source, out, size: Int(st.st_size))
            fchmod(out, st.st_mode & 0o777) // no setuid, setgid or sticky bit
            close(out)
            guard copied else {
                unlinkat(dir, temporary, 0)
                return "cannot copy it: \(errorText(errno))"
            }
            _ = removeBelow(dir, name)
            return renameat(dir, temporary, dir, name) == 0 ? nil : errorText(errno)
        default:
            return "a device, FIFO or socket: not copied"
        }
    }

    /// The data of `source` into `out`, hole for hole (SEEK_DATA/SEEK_HOLE): only what the
    /// sandbox wrote takes space, however large the file says it is.
    private static func copySparse(_ source: Int32, _ out: Int32, size: Int) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var offset = 0
        while offset < size {
            let data = lseek(source, off_t(offset), 3 /* SEEK_DATA: not exported to Swift */)
            if data < 0 { break } // no more data: the rest is a hole
            let hole = lseek(source, data, 4 /* SEEK_HOLE */)
            var at = Int(data)
            let end = hole < 0 ? size : Int(hole)
            while at < end {
                let n = pread(source, &buffer, min(buffer.count, end - at), off_t(at))
                if n <= 0 { return n == 0 }
                var written = 0
                while written < n {
                    let m = buffer[written..<n].withUnsafeBytes { pwrite(out, $0.baseAddress, $0.count, off_t(at + written)) }
                    if m <= 0 { return false }
                    written += m
                }
                at += n
            }
            offset = end
        }
        return ftruncate(out, off_t(size)) == 0
    }

    /// Whether `name` in `dir` is, or holds, a `.git` (never following a symlink).
    private static func holdsGit(_ dir: Int32, _ name: String) -> Bool {
        if name == ".git" { return true }
        let sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard sub >= 0, let listing = fdopendir(sub) else { return false }
        defer { closedir(listing) }
        while let entry = readdir(listing) {
            let n = String(decoding: direntName(entry), as: UTF8.self)
            if n == "." || n == ".." { continue }
            if n == ".git" || (entry.pointee.d_type == UInt8(DT_DIR) && holdsGit(dirfd(listing), n)) { return true }
        }
        return false
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
            let n = String(decoding: direntName(entry), as: UTF8.self)
            if n != "." && n != ".." { names.append(n) }
        }
        for n in names { removeBelow(dirfd(listing), n) }
        closedir(listing)
        return unlinkat(dir, name, AT_REMOVEDIR) == 0
    }
}

extension String {
    fileprivate func trimmingCharacters(_ set: String) -> String {
        String(drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}
