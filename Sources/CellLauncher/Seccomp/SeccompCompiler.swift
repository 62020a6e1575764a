import CCellSpawn
import CLibseccomp
import Glibc

/// A compiled seccomp filter: the BPF program the kernel loads (struct sock_filter[]).
public struct CompiledFilter: Sendable {
    public var bpf: [UInt8]
    public var instructionCount: Int { bpf.count / 8 }
}

/// Compiles `SeccompPolicy` values with libseccomp, in the supervisor, before clone: the
/// sandbox then makes a single seccomp() call on a ready program.
///
/// - native architecture only, and any other (i386 through `int 0x80`, x32 numbers) kills the
///   process (SCMP_FLTATR_ACT_BADARCH = KILL_PROCESS; libseccomp's default, KILL_THREAD, would
///   leave the rest of a multi-threaded process running);
/// - a binary-tree filter (SCMP_FLTATR_CTL_OPTIMIZE = 2), and plain allow/deny decisions
///   without argument checks, so the kernel's constant-action cache applies to them.
public enum SeccompCompiler {
    public static func compile(_ policy: SeccompPolicy) throws(LaunchError) -> CompiledFilter {
        let ctx = try context(for: policy)
        defer { seccomp_release(ctx) }
        return CompiledFilter(bpf: try export(ctx, seccomp_export_bpf, what: "BPF"))
    }

    /// libseccomp's readable rendering of the filter (pseudo filter code), for --dry-run.
    public static func pseudoCode(_ policy: SeccompPolicy) throws(LaunchError) -> String {
        let ctx = try context(for: policy)
        defer { seccomp_release(ctx) }
        return String(decoding: try export(ctx, seccomp_export_pfc, what: "PFC"), as: UTF8.self)
    }

    /// The syscall number on this architecture: nil when no architecture has the name,
    /// negative when only others do.
    public static func syscallNumber(_ name: String) -> Int32? {
        let n = seccomp_syscall_resolve_name(name)
        if n == cell_scmp_error() { return nil }
        return n
    }

    public static func syscallName(_ number: Int32) -> String? {
        guard let name = seccomp_syscall_resolve_num_arch(cell_scmp_arch_native(), number) else { return nil }
        defer { free(name) }
        return String(cString: name)
    }

    static func action(_ action: SeccompPolicy.Action) -> UInt32 {
        switch action {
        case .allow: return cell_scmp_act_allow()
        case .errno(let e): return cell_scmp_act_errno(UInt16(truncatingIfNeeded: e))
        case .kill: return cell_scmp_act_kill_process()
        case .log: return cell_scmp_act_log()
        }
    }

    static func comparison(_ c: SeccompPolicy.Condition) -> scmp_arg_cmp {
        let op: scmp_compare
        var datumA = c.value, datumB: UInt64 = 0
        switch c.comparison {
        case .equal: op = SCMP_CMP_EQ
        case .notEqual: op = SCMP_CMP_NE
        case .less: op = SCMP_CMP_LT
        case .lessOrEqual: op = SCMP_CMP_LE
        case .greater: op = SCMP_CMP_GT
        case .greaterOrEqual: op = SCMP_CMP_GE
        case .maskedEqual:
            op = SCMP_CMP_MASKED_EQ
            datumA = c.mask
            datumB = c.value
        }
        return scmp_arg_cmp(arg: UInt32(c.index), op: op, datum_a: datumA, datum_b: datumB)
    }

    private static func context(for policy: SeccompPolicy) throws(LaunchError) -> scmp_filter_ctx {
        let rules: [ResolvedRule]
        do {
            rules = try policy.resolve(syscallNumber)
        } catch {
            throw .invalid("seccomp policy '\(policy.name)': \(error.message)")
        }
        guard let ctx = seccomp_init(action(policy.defaultAction)) else {
            throw .setup("cannot create a seccomp filter (libseccomp: out of memory)")
        }
        var rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, cell_scmp_act_kill_process())
        if rc == 0 { rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2) }
        // no_new_privs is set by the sandbox setup itself, before the filter is loaded.
        if rc == 0 { rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) }
        if rc != 0 {
            seccomp_release(ctx)
            throw .setup("cannot configure the seccomp filter: \(errorText(-rc))")
        }
        for rule in rules {
            var args = rule.conditions.map(comparison)
            rc = args.withUnsafeMutableBufferPointer { buffer in
                seccomp_rule_add_array(ctx, action(rule.action), rule.number, UInt32(buffer.count), buffer.baseAddress)
            }
            if rc != 0 {
                seccomp_release(ctx)
                let conditions = rule.conditions.map(\.description).joined(separator: " && ")
                throw .invalid("seccomp policy '\(policy.name)': libseccomp refused the rule \(rule.syscall)\(conditions.isEmpty ? "" : " if " + conditions) -> \(rule.action): \(errorText(-rc))")
            }
        }
        return ctx
    }

    /// libseccomp 2.5 exports only to a file descriptor: export into a memfd and read it back.
    private static func export(_ ctx: scmp_filter_ctx, _ exporter: (scmp_filter_ctx?, Int32) -> Int32, what: String) throws(LaunchError) -> [UInt8] {
        let fd = cell_memfd("cell-seccomp")
        guard fd >= 0 else { throw .setup("cannot create a memfd for the seccomp filter: \(errorText(errno))") }
        defer { close(fd) }
        let rc = exporter(ctx, fd)
        guard rc == 0 else { throw .setup("cannot export the seccomp filter (\(what)): \(errorText(-rc))") }
        let size = lseek(fd, 0, SEEK_END)
        guard size >= 0 else { throw .setup("cannot read back the seccomp filter: \(errorText(errno))") }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n == size else { throw .setup("cannot read back the seccomp filter: short read") }
        return bytes
    }
}
