import CellPolicy
import Foundation
import Glibc
import Testing
@testable import CellLauncher

/// The walk of bound directories: what it finds, what it never follows, where it stops.
struct BindGuardsTests {
    /// A tree with a socket, a FIFO, a .git directory (with a socket inside, as git's fsmonitor
    /// daemon makes), a worktree's .git file, and a symlink to a directory with a socket (in
    /// `root.outside`, a sibling the walk must not reach).
    static func makeTree() throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("guards-\(UUID().uuidString)").path
        for dir in ["a/b", ".git", "wt", "../" + URL(fileURLWithPath: root).lastPathComponent + ".outside"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(dir)", withIntermediateDirectories: true)
        }
        mkfifo("\(root)/a/fifo", 0o600)
        for path in ["\(root)/a/b/agent.sock", "\(root)/.git/fsmonitor.ipc", "\(root).outside/hidden.sock"] {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
            }
            let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
            #expect(bound == 0, "\(path): \(errno)")
            close(fd)
        }
        try "gitdir: /elsewhere\n".write(toFile: "\(root)/wt/.git", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: "\(root)/a/link", withDestinationPath: "\(root).outside")
        return root
    }

    static func directoryBind(_ source: String, at destination: String, readOnly: Bool) -> MountOperation {
        var op = MountOperation.bind(source, destination, readOnly: readOnly)
        op.expectedType = UInt32(S_IFDIR)
        op.guarded = true
        return op
    }

    @Test("sockets and FIFOs are masked, .git is read-only in a writable bind; symlinks are not followed")
    func guards() throws {
        let root = try Self.makeTree()
        defer { try? FileManager.default.removeItem(atPath: root); try? FileManager.default.removeItem(atPath: root + ".outside") }
        let (ops, notes) = try BindGuards.apply([Self.directoryBind(root, at: "/work", readOnly: false)], writableGit: false)
        #expect(notes.isEmpty)
        let summary = ops.dropFirst().map { "\($0.source ?? "") -> \($0.destination) \($0.readOnly ? "ro" : "rw")" }.sorted()
        #expect(summary == [
            "/dev/null -> /work/.git/fsmonitor.ipc ro", "/dev/null -> /work/a/b/agent.sock ro", "/dev/null -> /work/a/fifo ro",
            "\(root)/.git -> /work/.git ro", "\(root)/wt/.git -> /work/wt/.git ro",
        ])
        // The .git bind comes before the mask of the socket inside it (which would be hidden).
        let gitIndex = try #require(ops.firstIndex { $0.destination == "/work/.git" })
        let ipcIndex = try #require(ops.firstIndex { $0.destination == "/work/.git/fsmonitor.ipc" })
        #expect(gitIndex < ipcIndex)
        #expect(ops.first { $0.destination == "/work/wt/.git" }?.expectedType == UInt32(S_IFREG))
        #expect(ops.filter { $0.source == "/dev/null" }.allSatisfy { $0.device && $0.mustExist && $0.optional })
    }

    @Test("a read-only bind, or writable_git, leaves .git alone; the sockets are masked all the same")
    func gitLeftAlone() throws {
        let root = try Self.makeTree()
        defer { try? FileManager.default.removeItem(atPath: root); try? FileManager.default.removeItem(atPath: root + ".outside") }
        for (readOnly, writableGit) in [(true, false), (false, true)] {
            let ops = try BindGuards.apply([Self.directoryBind(root, at: root, readOnly: readOnly)], writableGit: writableGit).ops
            #expect(!ops.contains { $0.destination.hasSuffix("/.git") })
            #expect(ops.filter { $0.source == "/dev/null" }.count == 3)
        }
    }

    @Test("system directories are not walked; a walk past the budget stops and says so")
    func boundsAndScope() throws {
        let root = try Self.makeTree()
        defer { try? FileManager.default.removeItem(atPath: root); try? FileManager.default.removeItem(atPath: root + ".outside") }
        #expect(try BindGuards.apply([Self.directoryBind("/usr", at: "/usr", readOnly: true)], writableGit: false).ops.count == 1)
        let (ops, notes) = try BindGuards.apply([Self.directoryBind(root, at: root, readOnly: true)], writableGit: false, budget: 3)
        _ = ops
        #expect(notes.count == 1 && notes[0].contains("stopped looking for sockets, FIFOs and git directories under \(root) after 3 directories"), "\(notes)")
    }

    @Test("a git directory a .git file or symlink names is read-only too; an unlistable directory is hidden; a name that is not UTF-8 refuses")
    func harderCases() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("guards-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        for dir in ["gitdata", "linked", "wt", "locked"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(dir)", withIntermediateDirectories: true)
        }
        try "gitdir: ../gitdata\n".write(toFile: "\(root)/wt/.git", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: "\(root)/repo", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(root)/repo/.git", withDestinationPath: "../linked")
        chmod("\(root)/locked", 0o111)
        defer { chmod("\(root)/locked", 0o755) }
        let ops = try BindGuards.apply([Self.directoryBind(root, at: "/w", readOnly: false)], writableGit: false).ops
        let readOnly = Set(ops.filter { $0.readOnly && $0.kind == .bind }.map(\.destination))
        #expect(readOnly.isSuperset(of: ["/w/gitdata", "/w/linked", "/w/wt/.git"]), "\(readOnly)")
        if geteuid() != 0 { // root lists anything: the unlistable case needs an ordinary user
            #expect(ops.contains { $0.kind == .tmpfs && $0.destination == "/w/locked" && $0.readOnly })
        }
        // A socket whose name is not UTF-8 cannot be named in the plan: refused, not skipped.
        let odd = root + "/odd"
        try FileManager.default.createDirectory(atPath: odd, withIntermediateDirectories: false)
        let fd = open(odd, O_RDONLY | O_DIRECTORY)
        #expect(mkfifoat(fd, "n\u{FF}fifo".replacingOccurrences(of: "\u{FF}", with: "x"), 0o600) == 0)
        let badName: [CChar] = Array("n".utf8CString.dropLast()) + [CChar(bitPattern: 0xff), 0]
        #expect(mkfifoat(fd, badName, 0o600) == 0)
        close(fd)
        #expect(throws: LaunchError.self) { try BindGuards.apply([Self.directoryBind(root, at: "/w", readOnly: true)], writableGit: false) }
    }
}
