import CCellSpawn
import Glibc

/// The sandbox's seccomp filters, compiled by the supervisor while the sandbox's pid 1 builds
/// the filesystem view: the filters are needed only at the very end of pid 1's setup, so a
/// launch does not wait for libseccomp (~0.4 ms here) before the kernel's share of the work.
///
/// The hand-over: `compile` copies the programs into memory that lives as long as this object,
/// fills `shared`, then signals `handOff`; pid 1 reads its byte before it reads `shared`. On
/// failure nothing is signalled and the pipe is closed: pid 1 sees EOF and stops, and the
/// compiler's error is what the user is told.
final class FilterCompilation {
    let handOff: HandOff
    /// What pid 1 loads; valid once the byte is on the pipe, until this object is gone.
    let shared: UnsafeMutablePointer<cell_filters>
    private var programs: [UnsafeMutableRawBufferPointer] = []

    /// Nil when the pipe could not be made.
    init?() {
        guard let handOff = HandOff() else { return nil }
        self.handOff = handOff
        shared = .allocate(capacity: 1)
        shared.initialize(to: cell_filters())
    }

    /// Compiles `policy` and hands the programs to pid 1.
    func compile(_ policy: SeccompPolicy) -> Result<FilterSet, LaunchError> {
        do {
            let set = try SeccompCompiler.compileFilters(policy)
            let baseline = keep(set.baseline?.bpf ?? [])
            let policy = keep(set.policy.bpf)
            shared.pointee = cell_filters(
                baseline: UnsafePointer(baseline.baseAddress?.assumingMemoryBound(to: UInt8.self)), baseline_len: baseline.count,
                policy: UnsafePointer(policy.baseAddress?.assumingMemoryBound(to: UInt8.self)), policy_len: policy.count)
            handOff.signal()
            return .success(set)
        } catch {
            handOff.cancel()
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
        shared.deallocate()
    }
}
