import CellPolicy
import Glibc

/// Where cell keeps the caches it gives sandboxes (`--cache NAME:DST`), in one layout:
///
///     $XDG_CACHE_HOME/cell/              (default ~/.cache/cell) 0700, cell's own
///       caches/SCOPE/NAME/               0700: the only directories a sandbox is ever given
///       scopes/SCOPE                     what SCOPE is for (project, profile): cell's own
///
/// A sandbox is given a NAME directory and nothing above it, so what cell itself records
/// stays out of every sandbox's reach. SCOPE keys the cache (`CacheScope`): by default the
/// profile and the project, `ci-1f0c…` (the profile name, then a hash of both), so one
/// project's job cannot leave a poisoned download for another's.
///
/// Every directory below the cache home is created 0700, opened without following a
/// symlink and checked to be the caller's: a `cell` directory another user planted (in a
/// shared XDG_CACHE_HOME) or a symlink swapped in for a cache is refused, never used.
public struct CacheStore {
    /// `$XDG_CACHE_HOME/cell`, symlinks in the cache home resolved (the user's own choice; pid 1
    /// binds only paths without one).
    public let root: String

    public init(root: String) {
        self.root = root
    }

    /// The store of the caller: `$XDG_CACHE_HOME/cell` (absolute), else `$HOME/.cache/cell`,
    /// else the passwd home's. The cache home itself is created (0700) when missing.
    /// `environment`: the caller's (nil: cell's own). `create`: false (--dry-run) creates nothing.
    public static func forCaller(environment: [String: String]? = nil, create: Bool = true) throws(LaunchError) -> CacheStore {
        let environment = environment ?? Dictionary(SandboxEnvironment.callerEnvironment().map { ($0.name, $0.value) },
                                                    uniquingKeysWith: { first, _ in first })
        let base: String
        if let xdg = environment["XDG_CACHE_HOME"], xdg.hasPrefix("/") {
            base = xdg
        } else if let home = environment["HOME"], home.hasPrefix("/") {
            base = home + "/.cache"
        } else if let entry = getpwuid(geteuid()) {
            base = String(cString: entry.pointee.pw_dir) + "/.cache"
        } else {
            throw .invalid("caches: no cache home (set XDG_CACHE_HOME or HOME)")
        }
        if !create && FilesystemView.hostFileType(base) == nil { return CacheStore(root: base + "/cell") }
        if mkdir(base, 0o700) != 0 && errno != EEXIST {
            throw .invalid("caches: cannot create the cache home \(base): \(errorText(errno)) (set XDG_CACHE_HOME to a directory of yours)")
        }
        guard let real = FilesystemView.hostRealPath(base) else {
            throw .invalid("caches: cannot resolve the cache home \(base): \(errorText(errno))")
        }
        return CacheStore(root: (real == "/" ? "" : real) + "/cell")
    }

    /// The scope directory's name: readable (the profile's name) and unique (a hash of what it
    /// is keyed by). `project`: the project's host path.
    public static func scopeName(_ scope: CacheScope, profile: String, project: String) -> String {
        let label = String(String(decoding: profile.utf8.map { isPlain($0) ? $0 : UInt8(ascii: "_") }, as: UTF8.self).prefix(40))
        switch scope {
        case .user: return "user"
        case .profile: return "profile-\(label)-\(hash(profile))"
        case .project: return "\(label)-\(hash(profile + "\0" + project))"
        }
    }

    /// The project a run belongs to: the nearest directory at or above `directory` holding a
    /// `.git` of the caller's (the checkout's top), else `directory` itself. Another user's
    /// `.git` (a /tmp/.git, say) never joins the caller's projects into one scope.
    public static func project(around directory: String, isOwnGit: (String) -> Bool = ownEntry) -> String {
        var candidate = directory
        while true {
            if isOwnGit((candidate == "/" ? "" : candidate) + "/.git") { return candidate }
            guard candidate != "/", let slash = candidate.lastIndex(of: "/") else { return directory }
            candidate = slash == candidate.startIndex ? "/" : String(candidate[..<slash])
        }
    }

    /// Whether `path` exists (not followed) and is the caller's.
    public static func ownEntry(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && st.st_uid == geteuid()
    }

    /// The host directory of cache `name` in `scope`, created when missing, with a record of
    /// what the scope is for. Returns its path, for a read-write bind.
    /// `create`: false (--dry-run) only names it.
    public func prepare(_ name: String, scope: String, about: String, create: Bool = true) throws(LaunchError) -> String {
        if let problem = CacheMount.nameProblem(name) { throw .invalid("cache '\(name)': \(problem)") }
        if !create { return "\(root)/caches/\(scope)/\(name)" }
        let top = try openOwnDirectory(AT_FDCWD, root, create: true)
        defer { close(top) }
        let scopes = try openOwnDirectory(top, "scopes", create: true)
        defer { close(scopes) }
        record(about, as: scope, in: scopes)
        let caches = try openOwnDirectory(top, "caches", create: true)
        defer { close(caches) }
        let scoped = try openOwnDirectory(caches, scope, create: true)
        defer { close(scoped) }
        close(try openOwnDirectory(scoped, name, create: true))
        return "\(root)/caches/\(scope)/\(name)"
    }

    /// One cache as `cell cache list` shows it.
    public struct Entry: Equatable, Sendable {
        public var scope: String
        public var name: String
        public var bytes: UInt64
        /// What the scope is for, as recorded (empty if the record is gone).
        public var about: String
    }

    /// Every cache, by scope and name.
    public func list() -> [Entry] {
        var entries: [Entry] = []
        for scope in directoryEntries(root + "/caches", followingSymlink: false).sorted() {
            let record = "\(root)/scopes/\(scope)"
            let about = (FilesystemView.hostFileType(record) == UInt32(S_IFREG) ? readSmallFile(record, limit: 4096) : nil)?.split(separator: "\n").first.map(String.init) ?? ""
            for name in directoryEntries("\(root)/caches/\(scope)", followingSymlink: false).sorted() {
                entries.append(Entry(scope: scope, name: name, bytes: diskUsage("\(root)/caches/\(scope)/\(name)"), about: about))
            }
        }
        return entries
    }

    /// Removes caches: `NAME` in every scope, `SCOPE/NAME` in one, or `nil` all of them.
    /// Returns what was removed. Never follows a symlink (removeTree).
    public func clear(_ selector: String?) throws(LaunchError) -> [Entry] {
        let parts = selector.map { $0.split(separator: "/", omittingEmptySubsequences: false).map(String.init) } ?? []
        if let selector {
            guard parts.count <= 2, parts.allSatisfy({ CacheMount.nameProblem($0) == nil || $0 == "user" }) else {
                throw .invalid("cell cache clear '\(TerminalText.escaped(selector))': give NAME or SCOPE/NAME as `cell cache list` shows them")
            }
        }
        let chosen = list().filter { entry in
            parts.isEmpty || (parts.count == 1 ? entry.name == parts[0] : entry.scope == parts[0] && entry.name == parts[1])
        }
        if chosen.isEmpty, let selector { throw .invalid("cell cache clear: no cache '\(TerminalText.escaped(selector))' (see `cell cache list`)") }
        for entry in chosen {
            let path = "\(root)/caches/\(entry.scope)/\(entry.name)"
            removeTree(path)
            if FilesystemView.hostFileType(path) != nil {
                throw .invalid("cell cache clear: could not remove all of \(TerminalText.escaped(path)); remove it by hand")
            }
            // A scope left without caches goes too, with its record.
            if directoryEntries("\(root)/caches/\(entry.scope)", followingSymlink: false).isEmpty {
                rmdir("\(root)/caches/\(entry.scope)")
                unlink("\(root)/scopes/\(entry.scope)")
            }
        }
        return chosen
    }

    // MARK: -

    /// `name` in `parent`: a directory of the caller's, 0700 (created so when missing), as an
    /// O_PATH descriptor: opened whatever its mode, so that a cache a job left `chmod 000` is
    /// given back its owner's access (u+rwx) instead of failing every later run.
    private func openOwnDirectory(_ parent: Int32, _ name: String, create: Bool) throws(LaunchError) -> Int32 {
        if create && mkdirat(parent, name, 0o700) != 0 && errno != EEXIST {
            throw .invalid("caches: cannot create \(describe(parent, name)): \(errorText(errno))")
        }
        let fd = openat(parent, name, Int32(StandardDescriptors.O_PATH_) | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            throw .invalid("caches: cannot open \(describe(parent, name)): \(errno == ELOOP || errno == ENOTDIR ? "not a directory (a symlink?)" : errorText(errno))")
        }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_uid == geteuid() else {
            close(fd)
            throw .invalid("caches: \(describe(parent, name)) is not yours (uid \(st.st_uid)): cell will not keep caches there")
        }
        // cell's own root is the caller's alone; below it, the owner keeps full access. The
        // descriptor is the directory itself (O_NOFOLLOW, checked above): chmod through it.
        let wanted = parent == AT_FDCWD ? UInt32(0o700) : UInt32(st.st_mode & 0o7777) | 0o700
        if UInt32(st.st_mode & 0o7777) != wanted && chmod("/proc/self/fd/\(fd)", mode_t(wanted)) != 0 {
            close(fd)
            throw .invalid("caches: cannot give \(describe(parent, name)) back its owner's access: \(errorText(errno))")
        }
        return fd
    }

    private func describe(_ parent: Int32, _ name: String) -> String {
        parent == AT_FDCWD ? name : "\(name) in \(root)"
    }

    /// Writes the scope's record unless it already says the same.
    private func record(_ about: String, as scope: String, in scopes: Int32) {
        let text = about + "\n"
        let current = openat(scopes, scope, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if current >= 0 {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = read(current, &buffer, buffer.count)
            close(current)
            if n == text.utf8.count && Array(buffer[0..<n]) == Array(text.utf8) { return }
        }
        let fd = openat(scopes, scope, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        _ = text.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress!, text.utf8.count) }
        close(fd)
    }

    private static func isPlain(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || byte == 0x2d || byte == 0x5f
    }

    /// 64-bit FNV-1a, hex: stable across runs and builds (Swift's Hasher is seeded per process).
    static func hash(_ text: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            h ^= UInt64(byte)
            h = h &* 0x100_0000_01b3
        }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// Bytes allocated under `path`, never following a symlink (a cache's size for `cell cache list`).
func diskUsage(_ path: String) -> UInt64 {
    var st = stat()
    guard lstat(path, &st) == 0 else { return 0 }
    var total = UInt64(st.st_blocks) * 512
    guard st.st_mode & S_IFMT == S_IFDIR else { return total }
    for name in directoryEntries(path, followingSymlink: false) { total += diskUsage(path + "/" + name) }
    return total
}
