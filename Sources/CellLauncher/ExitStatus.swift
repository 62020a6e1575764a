import CellPolicy

/// How a sandbox ended, and the exit status `cell run` returns for it. The statuses follow
/// timeout(1), env(1) and docker/podman: the command's own status; 128+N when it died of signal
/// N; 124 when the wall-clock timeout fired; 125 when the sandbox could not be set up; 126 when
/// the command was found but could not be executed; 127 when it was not found.
public enum SandboxEnd: Equatable, Sendable {
    case exited(Int32)
    case signaled(Int32)
    case setupFailed(String)
    case commandNotExecutable(errno: Int32)
    case timedOut
    /// A `kill` rule of the seccomp policy matched: the supervisor killed the sandbox.
    case killedByPolicy(syscall: String)

    public static let setupFailureStatus: Int32 = 125

    public var exitStatus: Int32 {
        switch self {
        case .exited(let code): return code
        case .signaled(let signal): return 128 + signal
        case .setupFailed: return SandboxEnd.setupFailureStatus
        case .commandNotExecutable(let code): return code == ENOENT_ ? 127 : 126
        case .timedOut: return 124
        case .killedByPolicy: return 128 + 31 // as if by SIGSYS, like the kernel's own kill action
        }
    }

    /// Decodes a raw wait status (WIFEXITED/WEXITSTATUS/WIFSIGNALED/WTERMSIG, which Swift does
    /// not import as functions).
    public static func fromWaitStatus(_ status: Int32) -> SandboxEnd {
        let low = status & 0x7f
        if low == 0 { return .exited((status >> 8) & 0xff) }
        if low != 0x7f { return .signaled(low) }
        return .exited(SandboxEnd.setupFailureStatus) // stopped: not a final status
    }
}

/// ENOENT without importing Glibc into this pure file.
let ENOENT_: Int32 = 2
