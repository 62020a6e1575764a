import CellPolicy
import Testing
@testable import CellLauncher

struct FilesystemViewTests {
    static func mergedUsr(_ path: String) -> HostEntry {
        switch path {
        case "/bin", "/sbin", "/lib", "/lib64": return .symlink(target: "usr" + path)
        case "/etc/localtime": return .symlink(target: "/usr/share/zoneinfo/UTC")
        case "/etc/ssl": return .directory
        case "/etc/hosts", "/etc/ld.so.cache": return .file
        case "/etc/services": return .other
        default: return .missing
        }
    }

    static func splitUsr(_ path: String) -> HostEntry {
        ["/bin", "/sbin", "/lib"].contains(path) ? .directory : .missing
    }

    @Test func mergedUsrBecomesSymlinks() {
        let ops = FilesystemView.defaultOperations(workingDirectory: nil, inspect: Self.mergedUsr)
        #expect(ops.first == .bind("/usr", readOnly: true))
        #expect(ops.contains(.symlink("usr/bin", at: "/bin")))
        #expect(ops.contains(.symlink("usr/lib64", at: "/lib64")))
        #expect(!ops.contains { $0.destination == "/lib32" })
    }

    @Test func splitUsrIsBoundReadOnly() {
        let ops = FilesystemView.defaultOperations(workingDirectory: nil, inspect: Self.splitUsr)
        #expect(ops.contains(.bind("/bin", readOnly: true)))
        #expect(ops.contains(.bind("/lib", readOnly: true)))
    }

    @Test func etcIsASelectionDecidedByThePlanner() {
        // A small file is copied into the plan, a larger (unreadable here) one bound read-only,
        // a symlink recreated, a directory bound read-only; a missing entry and a device, FIFO
        // or socket are left out. Then the generated files.
        let ops = FilesystemView.defaultOperations(workingDirectory: nil, inspect: Self.mergedUsr,
                                                   readSmallFile: { $0 == "/etc/hosts" ? Array("127.0.0.1 localhost\n".utf8) : nil })
        let etc = ops.filter { $0.destination.hasPrefix("/etc/") }
        #expect(etc == [.bind("/etc/ld.so.cache", readOnly: true), .file("/etc/hosts", contents: "127.0.0.1 localhost\n"),
                        .bind("/etc/ssl", readOnly: true), .symlink("/usr/share/zoneinfo/UTC", at: "/etc/localtime")]
                + etc.suffix(3))
        #expect(etc.suffix(3).map(\.destination) == ["/etc/passwd", "/etc/group", "/etc/mtab"])
        let passwd = ops.first { $0.destination == "/etc/passwd" }
        #expect(passwd?.kind == .file && String(decoding: passwd?.contents ?? [], as: UTF8.self).hasPrefix("root:x:0:0:"))
        #expect(!ops.contains { $0.source == "/etc" || $0.source == "/etc/shadow" })
    }

    @Test func orderPutsProcDevTmpBeforeTheWorkingDirectory() {
        let ops = FilesystemView.defaultOperations(workingDirectory: "/home/u/project", inspect: Self.mergedUsr)
        let kinds = ops.map(\.destination)
        let proc = kinds.firstIndex(of: "/proc")!, dev = kinds.firstIndex(of: "/dev")!
        let tmp = kinds.firstIndex(of: "/tmp")!, cwd = kinds.firstIndex(of: "/home/u/project")!
        #expect(proc < dev && dev < tmp && tmp < cwd && cwd == ops.count - 1)
        #expect(ops.last == .bind("/home/u/project", readOnly: true, optional: true))
        // Masks never create anything: they apply only where the kernel has the file.
        #expect(ops.filter { $0.destination.hasPrefix("/proc/") }.allSatisfy { $0.mustExist && $0.optional })
        // Devices are the only binds without nodev.
        #expect(ops.filter(\.device).allSatisfy { $0.source == "/dev/null" || $0.destination.hasPrefix("/dev/") })
        // Every tmpfs has a size: tmpfs is RAM.
        #expect(ops.filter { $0.kind == .tmpfs }.allSatisfy { $0.size != nil })
    }

    @Test("the working directory is not bound when it is /, already visible, or a fresh tmpfs", arguments: ["/", "/usr/share", "/tmp", "/root"])
    func workingDirectoryNotBound(cwd: String) {
        let ops = FilesystemView.defaultOperations(workingDirectory: cwd, inspect: Self.mergedUsr)
        #expect(!ops.contains { $0.kind == .bind && $0.source == cwd && $0.source != "/usr" })
        #expect(!ops.contains { $0.kind == .bind && $0.source == "/" })
    }

    @Test func workingDirectoryUnderTmpIsBoundOverTheTmpfs() {
        let ops = FilesystemView.defaultOperations(workingDirectory: "/tmp/build", inspect: Self.mergedUsr)
        #expect(ops.last == .bind("/tmp/build", readOnly: true, optional: true))
    }

    @Test func noMqueueWithoutAnIPCNamespace() {
        #expect(!FilesystemView.defaultOperations(workingDirectory: nil, ipcNamespace: false, inspect: Self.mergedUsr)
            .contains { $0.kind == .mqueue })
    }

    @Test func rootBase() {
        #expect(FilesystemView.rootBase(inspect: { $0 == "/tmp" ? .directory : .missing }) == "/tmp")
        #expect(FilesystemView.rootBase(inspect: { $0 == "/run" ? .directory : .missing }) == "/run")
        #expect(FilesystemView.rootBase(inspect: { _ in .missing }) == nil)
    }
}

struct SandboxPathTests {
    @Test func normalize() {
        #expect(SandboxPath.normalize("/a//b/./c/") == "/a/b/c")
        #expect(SandboxPath.normalize("/") == "/")
        #expect(SandboxPath.normalize("rel/x", relativeTo: "/home/u") == "/home/u/rel/x")
        #expect(SandboxPath.normalize("./x", relativeTo: "/w") == "/w/x")
        #expect(SandboxPath.normalize("rel") == nil)
        #expect(SandboxPath.normalize("/a/../b") == nil)
        #expect(SandboxPath.normalize("..", relativeTo: "/w") == nil)
    }

    @Test func within() {
        #expect(SandboxPath.isWithin("/usr/share", "/usr"))
        #expect(SandboxPath.isWithin("/usr", "/usr"))
        #expect(!SandboxPath.isWithin("/usrlocal", "/usr"))
        #expect(SandboxPath.isWithin("/anything", "/"))
    }
}

struct ByteSizeTests {
    @Test func parse() {
        #expect(ByteSize.parse("512") == 512)
        #expect(ByteSize.parse("64k") == 64 << 10)
        #expect(ByteSize.parse("256M") == 256 << 20)
        #expect(ByteSize.parse("2g") == 2 << 30)
        #expect(ByteSize.parse("1GiB") == 1 << 30)
        #expect(ByteSize.parse("1mb") == 1 << 20)
        #expect(ByteSize.parse("") == nil)
        #expect(ByteSize.parse("m") == nil)
        #expect(ByteSize.parse("1.5g") == nil)
        #expect(ByteSize.parse("-1") == nil)
        #expect(ByteSize.parse("99999999999999999999") == nil)
        #expect(ByteSize.parse("18014398509481984k") == nil) // overflows
    }

    @Test func format() {
        #expect(ByteSize.format(256 << 20) == "256m")
        #expect(ByteSize.format(4096) == "4k")
        #expect(ByteSize.format(1000) == "1000")
    }
}
