import CCellSpawn
import Glibc

/// The sandbox's seccomp filters, compiled by the supervisor while the sandbox's pid 1 builds
/// the filesystem view: the filters are needed only at the very end of pid 1's setup, so a
/// launch does not wait for libseccomp (~0.4 ms here) before the kernel's share of the work.
///
/// The hand-over: `compile` copies the programs into memory that lives as long as this object,
/// fills the begun launch's `filters`, then hands them over (one byte on a pipe); pid 1 reads
/// the byte before it reads them. On failure nothing is handed over and the pipe is closed:
/// pid 1 sees EOF and stops, and the compiler's error is what the user is told.
final class FilterCompilation {
    private let begun: UnsafeMutablePointer<cell_begun>
    private var programs: [UnsafeMutableRawBufferPointer] = []

    init(_ begun: UnsafeMutablePointer<cell_begun>) {
        self.begun = begun
    }

    /// Compiles `policy` and hands the programs to pid 1.
    func compile(_ policy: SeccompPolicy) -> Result<FilterSet, LaunchError> {
        do {
            let set = try SeccompCompiler.compileFilters(policy)
            let baseline = keep(set.baseline?.bpf ?? [])
            let policy = keep(set.policy.bpf)
            begun.pointee.filters = cell_filters(
                baseline: UnsafePointer(baseline.baseAddress?.assumingMemoryBound(to: UInt8.self)), baseline_len: baseline.count,
                policy: UnsafePointer(policy.baseAddress?.assumingMemoryBound(to: UInt8.self)), policy_len: policy.count,
                command_before_init: set.allowsCommandStart ? 1 : 0)
            cell_begun_hand_over(begun, Int32(CELL_HAND_OVER_FILTERS))
            return .success(set)
        } catch {
            cell_begun_cancel(begun)
            return .failure(error)
        }
    }

    /// A copy of `bytes` that stays put (an array's storage may move) until deinit.
    private func keep(_ bytes: [UInt8]) -> UnsafeMutableRawBufferPointer {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
        bytes.withUnsafeBytes { copy.copyMemory(from: $0) }
        programs.append(copy)
        return UnsafeMutableRawBufferPointer(rebasing: copy[0..<bytes.count])
    }

    deinit {
        for program in programs { program.deallocate() }
    }
}
