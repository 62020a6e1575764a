import Glibc

/// Removes the directory tree at `path` without following any symlink in it: a directory whose
/// contents a sandbox made (slirp4netns's socket directory, --isolation landlock's private
/// directory), once every process of the sandbox is gone.
func removeTree(_ path: String) {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else { return }
    removeContents(fd)
    rmdir(path)
}

private func removeContents(_ fd: Int32) {
    guard let dir = fdopendir(fd) else {
        close(fd)
        return
    }
    defer { closedir(dir) }
    var directories: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name == "." || name == ".." { continue }
        if unlinkat(dirfd(dir), name, 0) != 0 && errno == EISDIR { directories.append(name) }
    }
    for name in directories {
        let child = openat(dirfd(dir), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if child >= 0 { removeContents(child) }
        unlinkat(dirfd(dir), name, AT_REMOVEDIR)
    }
}
