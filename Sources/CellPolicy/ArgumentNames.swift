/// Names for the argument values a learned profile pins (`LearnedArguments.pins`), so that a
/// person reviewing it reads `TCGETS` beside 0x5401. Only for comments: an unknown value is
/// written as its number alone. Linux generic values (x86-64 and aarch64 agree on these).
public enum ArgumentNames {
    static let ioctls: [UInt64: String] = [
        0x5401: "TCGETS", 0x5402: "TCSETS", 0x5403: "TCSETSW", 0x5404: "TCSETSF", 0x540B: "TCFLSH",
        0x540E: "TIOCSCTTY", 0x540F: "TIOCGPGRP", 0x5410: "TIOCSPGRP", 0x5412: "TIOCSTI",
        0x5413: "TIOCGWINSZ", 0x5414: "TIOCSWINSZ", 0x541B: "FIONREAD", 0x541C: "TIOCLINUX",
        0x5421: "FIONBIO", 0x5450: "FIONCLEX", 0x5451: "FIOCLEX", 0x5452: "FIOASYNC",
        0x5441: "TIOCGPTPEER", 0x8004_5430: "TIOCGPTN", 0x4004_5431: "TIOCSPTLCK",
        0x8008_6601: "FS_IOC_GETFLAGS", 0x4008_6602: "FS_IOC_SETFLAGS",
        0x4004_9409: "FICLONE", 0x4020_940D: "FICLONERANGE", 0xC020_660B: "FS_IOC_FIEMAP",
    ]

    public static func ioctl(_ value: UInt64) -> String? { ioctls[value] }

    static let families: [UInt64: String] = [
        0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET",
        38: "AF_ALG", 40: "AF_VSOCK",
    ]

    public static func family(_ value: UInt64) -> String? { families[value] }

    static let cloneBits: [(UInt64, String)] = [
        (0x100, "CLONE_VM"), (0x200, "CLONE_FS"), (0x400, "CLONE_FILES"), (0x800, "CLONE_SIGHAND"),
        (0x1000, "CLONE_PIDFD"), (0x2000, "CLONE_PTRACE"), (0x4000, "CLONE_VFORK"), (0x8000, "CLONE_PARENT"),
        (0x1_0000, "CLONE_THREAD"), (0x2_0000, "CLONE_NEWNS"), (0x4_0000, "CLONE_SYSVSEM"),
        (0x8_0000, "CLONE_SETTLS"), (0x10_0000, "CLONE_PARENT_SETTID"), (0x20_0000, "CLONE_CHILD_CLEARTID"),
        (0x80_0000, "CLONE_UNTRACED"), (0x100_0000, "CLONE_CHILD_SETTID"), (0x200_0000, "CLONE_NEWCGROUP"),
        (0x400_0000, "CLONE_NEWUTS"), (0x800_0000, "CLONE_NEWIPC"), (0x1000_0000, "CLONE_NEWUSER"),
        (0x2000_0000, "CLONE_NEWPID"), (0x4000_0000, "CLONE_NEWNET"), (0x8000_0000, "CLONE_IO"),
    ]

    /// "CLONE_VM|CLONE_VFORK|SIGCHLD": the flag bits, and the exit signal in the low byte.
    public static func cloneFlags(_ value: UInt64) -> String? {
        var words = cloneBits.filter { value & $0.0 != 0 }.map(\.1)
        let unnamed = value & ~cloneBits.reduce(0xff) { $0 | $1.0 }
        if unnamed != 0 { words.append("0x" + String(unnamed, radix: 16)) }
        switch value & 0xff {
        case 0: break
        case 17: words.append("SIGCHLD")
        case let signal: words.append("signal \(signal)")
        }
        return words.isEmpty ? nil : words.joined(separator: "|")
    }

    static let prctls: [UInt64: String] = [
        1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG", 3: "PR_GET_DUMPABLE", 4: "PR_SET_DUMPABLE",
        8: "PR_SET_KEEPCAPS", 15: "PR_SET_NAME", 16: "PR_GET_NAME", 22: "PR_SET_SECCOMP", 23: "PR_CAPBSET_READ",
        36: "PR_SET_CHILD_SUBREAPER", 37: "PR_GET_CHILD_SUBREAPER", 38: "PR_SET_NO_NEW_PRIVS",
        39: "PR_GET_NO_NEW_PRIVS", 47: "PR_CAP_AMBIENT", 0x5356_4d41: "PR_SET_VMA",
    ]

    public static func prctl(_ value: UInt64) -> String? { prctls[value] }

    static let personalities: [(UInt64, String)] = [
        (0x002_0000, "UNAME26"), (0x004_0000, "ADDR_NO_RANDOMIZE"), (0x008_0000, "FDPIC_FUNCPTRS"),
        (0x010_0000, "MMAP_PAGE_ZERO"), (0x020_0000, "ADDR_COMPAT_LAYOUT"), (0x040_0000, "READ_IMPLIES_EXEC"),
        (0x080_0000, "ADDR_LIMIT_32BIT"), (0x100_0000, "SHORT_INODE"), (0x200_0000, "WHOLE_SECONDS"),
        (0x400_0000, "STICKY_TIMEOUTS"), (0x800_0000, "ADDR_LIMIT_3GB"),
    ]

    /// "PER_LINUX", "ADDR_NO_RANDOMIZE", "query"...
    public static func personality(_ value: UInt64) -> String? {
        if value == 0xffff_ffff { return "query" }
        var words = personalities.filter { value & $0.0 != 0 }.map(\.1)
        switch value & 0xff {
        case 0: words.insert("PER_LINUX", at: 0)
        case 8: words.insert("PER_LINUX32", at: 0)
        case let persona: words.insert("persona 0x" + String(persona, radix: 16), at: 0)
        }
        let unnamed = value & ~personalities.reduce(0xff) { $0 | $1.0 }
        if unnamed != 0 { words.append("0x" + String(unnamed, radix: 16)) }
        return words.joined(separator: "|")
    }
}
