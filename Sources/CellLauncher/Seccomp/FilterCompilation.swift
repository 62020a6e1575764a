import CCellSpawn
import Glibc

/// Compiles the sandbox's seccomp filters on a thread of its own, while the main thread creates
/// the namespaces and pid 1 builds the filesystem view: a launch no longer waits for libseccomp
/// (~0.4 ms here) before the kernel's share of the work can start. The filters are needed only
/// at the very end of the setup, so pid 1 waits for them there, on `readyFD`.
///
/// Why a thread and not the main thread after clone: the sandbox's setup processes share the
/// memory *and the thread pointer* of the thread that cloned them, so that thread must stay in
/// a blocking wait while they run (its errno is theirs). This thread has its own.
///
/// The hand-over: the thread copies the programs into memory that lives as long as this object,
/// fills `shared`, then writes one byte to the pipe; pid 1 reads the byte before it reads
/// `shared`. On failure nothing is written and the pipe is closed: pid 1 sees EOF and stops, and
/// `finish()` gives the compiler's error, which is what the user is told.
final class FilterCompilation: @unchecked Sendable {
    /// The pipe's read end, for pid 1 (close-on-exec).
    let readyFD: Int32
    private var writeFD: Int32
    /// What pid 1 loads; valid once the byte is on the pipe, until this object is gone.
    let shared: UnsafeMutablePointer<cell_filters>
    private let policy: SeccompPolicy
    private var outcome: Result<FilterSet, LaunchError>?
    private var programs: [UnsafeMutableRawBufferPointer] = []
    private var thread: pthread_t?

    /// Starts compiling `policy`; nil when not even the pipe could be made.
    init?(_ policy: SeccompPolicy) {
        var fds: [Int32] = [-1, -1]
        guard cell_pipe_cloexec(&fds) == 0 else { return nil }
        readyFD = fds[0]
        writeFD = fds[1]
        self.policy = policy
        shared = .allocate(capacity: 1)
        shared.initialize(to: cell_filters())

        // The thread starts with every signal blocked: a signal for cell (SIGTERM from the
        // user, say) must reach the main thread's signalfd, never kill cell through this one.
        var all = sigset_t(), saved = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_SETMASK, &all, &saved)
        var handle = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&handle, nil, { context in
            let work = Unmanaged<FilterCompilation>.fromOpaque(context!).takeRetainedValue()
            work.compile()
            return nil
        }, context)
        pthread_sigmask(SIG_SETMASK, &saved, nil)
        if rc == 0 {
            thread = handle
        } else {
            // No thread: compile here, before the sandbox exists (slower, same result).
            Unmanaged<FilterCompilation>.fromOpaque(context).release()
            compile()
        }
    }

    private func compile() {
        do {
            let set = try SeccompCompiler.compileFilters(policy)
            let baseline = keep(set.baseline?.bpf ?? [])
            let policy = keep(set.policy.bpf)
            shared.pointee = cell_filters(
                baseline: UnsafePointer(baseline.baseAddress?.assumingMemoryBound(to: UInt8.self)), baseline_len: baseline.count,
                policy: UnsafePointer(policy.baseAddress?.assumingMemoryBound(to: UInt8.self)), policy_len: policy.count)
            outcome = .success(set)
            writeAll(writeFD, "f")
        } catch {
            outcome = .failure(error)
        }
        close(writeFD)
        writeFD = -1
    }

    /// A copy of `bytes` that stays put (an array's storage may move) until deinit.
    private func keep(_ bytes: [UInt8]) -> UnsafeMutableRawBufferPointer {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
        bytes.withUnsafeBytes { copy.copyMemory(from: $0) }
        programs.append(copy)
        return UnsafeMutableRawBufferPointer(rebasing: copy[0..<bytes.count])
    }

    /// Waits for the compilation and returns its result. Call once the sandbox's pid 1 has
    /// executed cell-init or failed (cell_spawn has returned); `shared` must stay valid until then.
    func finish() -> Result<FilterSet, LaunchError> {
        if let thread {
            pthread_join(thread, nil)
            self.thread = nil
        }
        return outcome ?? .failure(.setup("the seccomp filters were not compiled"))
    }

    deinit {
        if let thread { pthread_join(thread, nil) }
        close(readyFD)
        for program in programs { program.deallocate() }
        shared.deallocate()
    }
}
