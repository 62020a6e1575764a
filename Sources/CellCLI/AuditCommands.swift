import CellAudit
import CellLauncher
import CellPolicy
import Glibc

/// `cell audit summary PATH`.
enum AuditCommands {
    static func summary(_ path: String) -> Int32 {
        guard let text = readSmallFile(path, limit: 256 << 20) else {
            reportLine("cannot read the audit log \(path): \(errorText(errno))")
            return SandboxEnd.setupFailureStatus
        }
        let digest = AuditDigest(text: text)
        for problem in digest.problems { reportLine("\(path):\(problem)") }
        writeAll(1, digest.render())
        return digest.problems.isEmpty ? 0 : SandboxEnd.setupFailureStatus
    }
}
