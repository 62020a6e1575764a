import Glibc

/// Small file helpers on plain syscalls (Foundation stays off the launch path).

/// The whole content of a small file (e.g. under /proc/sys), or nil if it cannot be read.
/// O_NONBLOCK: a FIFO planted where a file was expected gives nil instead of blocking cell.
public func readSmallFile(_ path: String, limit: Int = 1 << 20) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    if fd < 0 { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while bytes.count < limit {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return nil
        }
        if n == 0 { break }
        bytes.append(contentsOf: buffer[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// A file holding one integer (sysctls), or nil if absent or not a number.
public func readInteger(_ path: String) -> Int? {
    guard let text = readSmallFile(path) else { return nil }
    return Int(text.trimmingWhitespace())
}

/// Writes `text` to an existing file in one write (a /proc file such as uid_map takes its
/// whole content in one call); the errno on failure, nil on success.
public func writeProcFile(_ path: String, _ text: String) -> Int32? {
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    if fd < 0 { return errno }
    defer { close(fd) }
    let count = text.utf8.count
    let n = write(fd, text, count)
    return n == count ? nil : (n < 0 ? errno : EIO)
}

/// Writes a whole string to a descriptor, ignoring failures. With `patience` (milliseconds),
/// waits at most that long for the descriptor to take more, then gives up: cell's own last
/// messages must never hold its exit (a terminal whose output was stopped, a pipe nobody reads).
public func writeAll(_ fd: Int32, _ text: String, patience: Int32? = nil) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        if let patience {
            var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            if poll(&entry, 1, patience) <= 0 || entry.revents & Int16(POLLOUT) == 0 { return }
        }
        let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        offset += n
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s = s.dropFirst() }
        while let c = s.last, c.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}

/// The caller's working directory, or nil if it cannot be named (deleted, too long).
public func currentDirectory() -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    guard getcwd(&buffer, buffer.count) != nil else { return nil }
    let length = buffer.firstIndex(of: 0) ?? buffer.count
    return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// strerror, as a String.
public func errorText(_ code: Int32) -> String {
    String(cString: strerror(code))
}

/// A directory entry's name, read where it lies. `d_name` is declared as 256 bytes, but the
/// kernel's record holds only the name and its NUL: copying the whole field (as
/// `withUnsafeBytes(of: entry.pointee.d_name)` does) can read past the end of readdir's buffer,
/// and did — a SIGSEGV at a page boundary, seen once in CI.
public func direntName(_ entry: UnsafeMutablePointer<dirent>) -> [UInt8] {
    let offset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
    let start = UnsafeRawPointer(entry).advanced(by: offset).assumingMemoryBound(to: CChar.self)
    return Array(UnsafeRawBufferPointer(start: start, count: strlen(start)))
}

/// The names in a directory, "." and ".." left out (nothing if it cannot be read).
/// `followingSymlink: false` refuses a symlink in place of the directory itself.
public func directoryEntries(_ path: String, followingSymlink: Bool = true) -> [String] {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (followingSymlink ? 0 : O_NOFOLLOW))
    guard fd >= 0, let dir = fdopendir(fd) else {
        if fd >= 0 { close(fd) }
        return []
    }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = String(decoding: direntName(entry), as: UTF8.self)
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}
