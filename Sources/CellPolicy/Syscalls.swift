import CLibseccomp
import Glibc

/// System call names and numbers of the architecture cell runs on, as libseccomp knows them:
/// the profile loader checks names with them, the compiler resolves rules, the audit logger
/// names notified calls.
///
/// The linked libseccomp may be older than the kernel (Debian 12's knows up to 456,
/// futex_requeue), so the calls added since are named here too: from 424 on, every architecture
/// cell supports (x86_64, aarch64) numbers new calls alike. A number above all of them is
/// `syscall_N`, in rules and in the audit log.
public enum Syscalls {
    /// Calls newer than some libseccomp still in use, by their common number.
    static let newer: [(name: String, number: Int32)] = [
        ("statmount", 457), ("listmount", 458), ("lsm_get_self_attr", 459), ("lsm_set_self_attr", 460),
        ("lsm_list_modules", 461), ("mseal", 462), ("setxattrat", 463), ("getxattrat", 464),
        ("listxattrat", 465), ("removexattrat", 466), ("open_tree_attr", 467), ("file_getattr", 468),
        ("file_setattr", 469),
    ]

    /// The highest number cell can name: calls above it are newer than this build of cell.
    public static let highestKnown: Int32 = newer.map(\.number).max()!

    /// Numbers the kernel may assign to calls cell does not know yet (it has fewer than 512 on
    /// both architectures); the default policy answers them ENOSYS.
    public static let unknownRange: ClosedRange<Int32> = (highestKnown + 1)...511

    public static func number(_ name: String) -> Int32? {
        let n = seccomp_syscall_resolve_name(name)
        if n != cell_scmp_error() { return n }
        if let entry = newer.first(where: { $0.name == name }) { return entry.number }
        if name.hasPrefix("syscall_"), let n = Int32(name.dropFirst(8)), unknownRange.contains(n) { return n }
        return nil
    }

    public static func name(_ number: Int32) -> String? {
        if let name = seccomp_syscall_resolve_num_arch(cell_scmp_arch_native(), number) {
            defer { free(name) }
            return String(cString: name)
        }
        return newer.first { $0.number == number }?.name
    }
}
