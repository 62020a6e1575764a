import CellPolicy

/// Which arguments of a system call are paths (or names) worth recording in the audit log.
/// Read from the caller's memory for the record only: never used to decide anything.
enum PathArguments {
    static let table: [String: [Int]] = [
        "open": [0], "openat": [1], "openat2": [1], "creat": [0], "open_by_handle_at": [],
        "mount": [0, 1], "umount2": [0], "pivot_root": [0, 1], "chroot": [0], "fsopen": [0], "fspick": [1],
        "open_tree": [1], "move_mount": [1, 3], "mount_setattr": [1],
        "mkdir": [0], "mkdirat": [1], "rmdir": [0], "unlink": [0], "unlinkat": [1], "rename": [0, 1],
        "renameat": [1, 3], "renameat2": [1, 3], "link": [0, 1], "linkat": [1, 3], "symlink": [0, 1],
        "symlinkat": [0, 2], "chmod": [0], "fchmodat": [1], "fchmodat2": [1], "chown": [0], "lchown": [0],
        "fchownat": [1], "execve": [0], "execveat": [1], "access": [0], "faccessat": [1], "faccessat2": [1],
        "stat": [0], "lstat": [0], "newfstatat": [1], "statx": [1], "readlink": [0], "readlinkat": [1],
        "truncate": [0], "utimensat": [1], "mknod": [0], "mknodat": [1], "swapon": [0], "swapoff": [0],
        "acct": [0], "name_to_handle_at": [1], "quotactl": [1], "uselib": [0], "setxattr": [0],
        "lsetxattr": [0], "getxattr": [0], "lgetxattr": [0], "removexattr": [0], "lremovexattr": [0],
        "listxattr": [0], "llistxattr": [0], "add_key": [0, 1], "request_key": [0, 1], "sethostname": [],
    ]

    static func indexes(_ syscall: String) -> [Int] { table[syscall] ?? [] }
}
