import CellPolicy
import Glibc

/// Removes the directory tree at `path` without following any symlink in it: a directory whose
/// contents a sandbox made (slirp4netns's socket directory, --isolation landlock's private
/// directory, a cache for `cell cache clear`). Names stay bytes (a name that is not UTF-8 is
/// removed like any other), and a directory the sandbox made unreadable (chmod 0) or read-only
/// is made the owner's again before it is emptied: nothing it left may outlive it.
///
/// Depth is the sandbox's choice too (30 000 nested directories take a job a minute to make):
/// the descent stops at `maximumDepth`, and what lies deeper is moved up beside the top's
/// entries (renameat within the tree, never through `..`) and removed in the next pass. Stack
/// and open descriptors stay bounded, whatever the shape.
func removeTree(_ path: String) {
    if chmodOwnDirectory(AT_FDCWD, Array(path.utf8CString)) != 0 { return }
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else { return }
    var remover = TreeRemover(top: fd)
    // Each pass removes everything within reach and lifts the rest; it ends when nothing was lifted.
    // (A fresh open of "." for each pass: a dup would share the finished pass's read position.)
    while remover.removeContents(openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), depth: 0) {}
    close(fd)
    rmdir(path)
}

private let maximumDepth = 32

/// Gives a directory (reached without following a symlink) its owner's rwx back: entries go only
/// from a directory one can write and list, and Go makes its module cache 0555.
private func chmodOwnDirectory(_ parent: Int32, _ name: [CChar]) -> Int32 {
    let fd = openat(parent, name, Int32(StandardDescriptors.O_PATH_) | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else { return -1 }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { return -1 }
    if st.st_mode & 0o700 == 0o700 { return 0 }
    return chmod("/proc/self/fd/\(fd)", st.st_mode & 0o7777 | 0o700)
}

private struct TreeRemover {
    /// The top of the tree, where directories too deep to descend into are moved.
    let top: Int32
    var lifted = 0

    /// Empties the directory `fd` (closed here); returns whether anything was moved up to the top.
    mutating func removeContents(_ fd: Int32, depth: Int) -> Bool {
        guard fd >= 0, let dir = fdopendir(fd) else {
            if fd >= 0 { close(fd) }
            return false
        }
        defer { closedir(dir) }
        var directories: [[CChar]] = []
        while let entry = readdir(dir) {
            let name = direntName(entry).map { CChar(bitPattern: $0) } + [0]
            if name == [0x2e, 0] || name == [0x2e, 0x2e, 0] { continue }
            if unlinkat(dirfd(dir), name, 0) != 0 && errno == EISDIR { directories.append(name) }
        }
        var movedUp = false
        for name in directories {
            if depth >= maximumDepth {
                // Too deep to descend: up beside the top's entries, for the next pass. (Moving a
                // directory to another parent rewrites its "..": it must be writable.)
                _ = chmodOwnDirectory(dirfd(dir), name)
                while true {
                    lifted += 1
                    let destination = Array(".cell-removing-\(lifted)".utf8CString)
                    if renameat(dirfd(dir), name, top, destination) == 0 { movedUp = true; break }
                    if errno != EEXIST && errno != ENOTEMPTY { break }
                }
                continue
            }
            _ = chmodOwnDirectory(dirfd(dir), name)
            let fd = openat(dirfd(dir), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if fd >= 0 && removeContents(fd, depth: depth + 1) { movedUp = true }
            unlinkat(dirfd(dir), name, AT_REMOVEDIR)
        }
        return movedUp
    }
}
