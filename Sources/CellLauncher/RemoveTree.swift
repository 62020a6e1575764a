import CellPolicy
import Glibc

/// Removes the directory tree at `path` without following any symlink in it: a directory whose
/// contents a sandbox made (slirp4netns's socket directory, --isolation landlock's private
/// directory), once every process of the sandbox is gone. Names stay bytes (a name that is not
/// UTF-8 is removed like any other), and a directory the sandbox made unreadable (chmod 0) or
/// read-only is made the owner's again before it is emptied: nothing it left may outlive it.
func removeTree(_ path: String) {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else { return }
    removeContents(fd)
    rmdir(path)
}

private func removeContents(_ fd: Int32) {
    // Entries go only from a directory one can write: a tree made read-only (chmod 0555, as Go's
    // module cache makes its own) is made writable, since it is going anyway.
    fchmod(fd, 0o700)
    guard let dir = fdopendir(fd) else {
        close(fd)
        return
    }
    defer { closedir(dir) }
    var directories: [[CChar]] = []
    while let entry = readdir(dir) {
        let name = direntName(entry).map { CChar(bitPattern: $0) } + [0]
        if name == [0x2e, 0] || name == [0x2e, 0x2e, 0] { continue }
        if unlinkat(dirfd(dir), name, 0) != 0 && errno == EISDIR { directories.append(name) }
    }
    for name in directories {
        var child = openat(dirfd(dir), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if child < 0 && errno == EACCES && fchmodat(dirfd(dir), name, 0o700, 0) == 0 {
            child = openat(dirfd(dir), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        }
        if child >= 0 { removeContents(child) }
        unlinkat(dirfd(dir), name, AT_REMOVEDIR)
    }
}
