import Glibc

/// Where the sandbox's pid 1 program lives: next to the cell (or cell-runtime) binary (a build directory), or in
/// ../libexec/cell/ (an installed tree).
public enum InitHelper {
    /// cell's version, shared by `cell` and `cell-runtime` (both print it, the audit log records it).
    public static let cellVersion = "0.1.0"

    public static func candidates() -> [String] {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return [] }
        let executable = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let directory = executable.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return [directory + "/cell-init", directory + "/../libexec/cell/cell-init"]
    }

    public static func locate() -> String? {
        candidates().first { access($0, X_OK) == 0 }
    }
}
