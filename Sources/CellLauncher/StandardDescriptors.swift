import CCellSpawn
import Glibc

/// The caller's descriptors 0-2 are the only ones the sandbox inherits (the trampoline closes
/// every other), so each is checked first. Two kinds are refused, because through them the
/// command reaches the host's filesystem by a path relative to a descriptor, which no mount
/// of the view governs:
///   - a directory: `openat(0, "../../etc/hostname")` opens files beside it on the host;
///   - an O_PATH descriptor: it names a place on the host as well (any type: openat, fchdir,
///     reopening through /proc/self/fd).
/// A regular file given as input could still be reopened for writing through /proc/self/fd/0
/// (a magic link leads to the inode, past the view's read-only mounts): the Landlock ruleset,
/// which allows writing only beneath the writable binds, is what stops that (SECURITY.md).
enum StandardDescriptors {
    static let names = ["standard input", "standard output", "standard error"]

    /// Why descriptor 0, 1 or 2 must not reach the sandbox, or nil. `skipped`: replaced by
    /// /dev/null in the sandbox (the command has a pty of its own for them).
    static func problem(skipping skipped: Set<Int32>,
                        status: (Int32) -> (flags: Int32, mode: UInt32)? = descriptorStatus) -> String? {
        for fd in Int32(0)...2 where !skipped.contains(fd) {
            guard let (flags, mode) = status(fd) else { continue } // closed: pid 1 gets /dev/null
            let what: String
            if flags & Int32(O_PATH_) != 0 {
                what = "an O_PATH descriptor"
            } else if mode & UInt32(S_IFMT) == UInt32(S_IFDIR) {
                what = "a directory"
            } else {
                continue
            }
            return "\(names[Int(fd)]) is \(what): the sandbox could open host files beside it by relative path "
                + "(openat(\(fd), \"..\")); give a file, a pipe, a terminal or /dev/null"
        }
        return nil
    }

    /// O_PATH (010000000 on x86_64 and aarch64), which Swift's Glibc module does not export.
    static let O_PATH_ = 0o10000000

    static func descriptorStatus(_ fd: Int32) -> (flags: Int32, mode: UInt32)? {
        let flags = fcntl(fd, F_GETFL)
        var st = stat()
        guard flags >= 0, fstat(fd, &st) == 0 else { return nil }
        return (flags, UInt32(st.st_mode))
    }
}

/// Descriptors above 2 that cell's caller left open (a shell's `exec 7<file`, a CI runner's
/// pipes) are no business of anything cell starts: marked close-on-exec at start, so that a
/// helper such as slirp4netns does not hold them (the sandbox's trampoline closes every one
/// anyway).
public enum InheritedDescriptors {
    public static func closeOnExec() {
        _ = cell_cloexec_inherited()
    }
}
