import Glibc

/// The files cell writes for you about a sandbox — `--audit-log`, `--status-json`,
/// `--plan-out` — opened before the sandbox exists, so nothing it leaves behind (a symlink, a
/// FIFO, a directory swapped for a symlink) can redirect them or make cell hang:
///
/// - the parent directory is reached one component at a time without following a symlink,
///   except one that sits in a directory only root can change (a symlinked /home, say): a
///   symlink anywhere a sandbox could have written is refused;
/// - that directory must be yours or root's;
/// - the file itself is opened beneath it without following a symlink, non-blocking (a FIFO
///   cannot hold cell), and must be a regular file you own.
///
/// cell then writes through the descriptor: what happens at the path later changes nothing.
public enum ReportFile {
    /// O_PATH (a descriptor that only names a place), which Swift's Glibc module does not export;
    /// 010000000 on every architecture cell builds for (x86_64, aarch64).
    static let openPath: Int32 = 0o10000000

    /// An open report file and where it lives.
    public struct Opened: Sendable {
        public let fd: Int32
        public let directory: Int32
        public let name: String
        public let path: String
    }

    /// Opens (creating, mode 0600) `path` for `what` ("the audit log", "--status-json").
    /// `readable`: to be read first as well (`cell learn --merge`: the profile it rewrites).
    /// `mustExist`: never create it (`--merge`: a profile to read).
    public static func open(_ path: String, what: String, append: Bool, readable: Bool = false, mustExist: Bool = false) throws(LaunchError) -> Opened {
        func refuse(_ reason: String) -> LaunchError { .invalid("cannot use \(path) as \(what): \(reason)") }
        guard let absolute = SandboxPath.normalize(path, relativeTo: currentDirectory()), absolute != "/" else {
            throw refuse("give a file path without '..'")
        }
        let parts = absolute.split(separator: "/").map(String.init)
        let directory = try openDirectory(parts.dropLast(), refuse)
        var st = stat()
        guard fstat(directory, &st) == 0, st.st_uid == geteuid() || st.st_uid == 0 else {
            Glibc.close(directory)
            throw refuse("its directory belongs to another user (uid \(st.st_uid)), who could swap the file")
        }
        let name = parts.last!
        // Appending (the audit log): readable too, so the log can see whether its last line ended.
        let flags = (append || readable ? O_RDWR : O_WRONLY) | (mustExist ? 0 : O_CREAT) | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (append ? O_APPEND : 0)
        let fd = openat(directory, name, flags, 0o600)
        guard fd >= 0 else {
            let code = errno
            Glibc.close(directory)
            throw refuse(code == ENOENT && mustExist ? "there is no such file"
                         : code == ELOOP ? "it is a symlink (cell never writes through one)"
                         : code == ENXIO ? "it is a FIFO or socket, not a regular file" : errorText(code))
        }
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_uid == geteuid() else {
            Glibc.close(fd)
            Glibc.close(directory)
            throw refuse(st.st_mode & S_IFMT != S_IFREG ? "it is not a regular file" : "it belongs to another user (uid \(st.st_uid))")
        }
        return Opened(fd: fd, directory: directory, name: name, path: absolute)
    }

    /// The directory of `parts` from /, one component at a time: a symlink is followed only
    /// when the directory holding it is root's and writable by nobody else.
    static func openDirectory(_ parts: ArraySlice<String>, _ refuse: (String) -> LaunchError) throws(LaunchError) -> Int32 {
        var fd = Glibc.open("/", openPath | O_DIRECTORY | O_CLOEXEC)
        var walked = ""
        for part in parts {
            walked += "/" + part
            var link = stat(), here = stat()
            guard fstatat(fd, part, &link, AT_SYMLINK_NOFOLLOW) == 0 else {
                let code = errno
                Glibc.close(fd)
                throw refuse("\(walked): \(errorText(code))")
            }
            let isLink = link.st_mode & S_IFMT == S_IFLNK
            if isLink && !(fstat(fd, &here) == 0 && here.st_uid == 0 && here.st_mode & 0o022 == 0) {
                Glibc.close(fd)
                throw refuse("\(walked) is a symlink in a directory others can write (it may have been planted there); give the real path")
            }
            let next = openat(fd, part, openPath | O_DIRECTORY | O_CLOEXEC | (isLink ? 0 : O_NOFOLLOW))
            let code = errno
            Glibc.close(fd)
            guard next >= 0 else { throw refuse("\(walked): \(errorText(code))") }
            fd = next
        }
        return fd
    }

    /// Replaces the whole content of an opened report with `contents`; the errno on failure.
    /// Also an error: the path no longer names this file (something replaced it meanwhile), so
    /// the report is not where the user will look.
    public static func replaceContents(_ file: Opened, _ contents: [UInt8]) -> Int32? {
        guard ftruncate(file.fd, 0) == 0 else { return errno }
        var offset = 0
        while offset < contents.count {
            let n = contents.withUnsafeBytes { pwrite(file.fd, $0.baseAddress! + offset, $0.count - offset, off_t(offset)) }
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            offset += n
        }
        var written = stat(), named = stat()
        guard fstat(file.fd, &written) == 0, fstatat(file.directory, file.name, &named, AT_SYMLINK_NOFOLLOW) == 0,
              written.st_dev == named.st_dev, written.st_ino == named.st_ino else { return ESTALE }
        return nil
    }

    /// The whole content of an opened file, if it holds at most `limit` bytes.
    public static func contents(_ file: Opened, limit: Int) -> [UInt8]? {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while bytes.count <= limit {
            let n = buffer.withUnsafeMutableBytes { pread(file.fd, $0.baseAddress, $0.count, off_t(bytes.count)) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { return bytes }
            bytes += buffer[0..<n]
        }
        errno = EFBIG
        return nil
    }

    public static func release(_ file: Opened) {
        Glibc.close(file.fd)
        Glibc.close(file.directory)
    }
}
