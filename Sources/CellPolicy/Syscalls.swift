import CLibseccomp
import Glibc

/// System call names and numbers of the architecture cell runs on, as libseccomp knows them:
/// the profile loader checks names with them, the compiler resolves rules, the audit logger
/// names notified calls.
public enum Syscalls {
    public static func number(_ name: String) -> Int32? {
        let n = seccomp_syscall_resolve_name(name)
        if n == cell_scmp_error() { return nil }
        return n
    }

    public static func name(_ number: Int32) -> String? {
        guard let name = seccomp_syscall_resolve_num_arch(cell_scmp_arch_native(), number) else { return nil }
        defer { free(name) }
        return String(cString: name)
    }
}
