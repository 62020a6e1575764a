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
        #expect(etc == [.bind("/etc/ld.so.cache", readOnly: true), .file("/etc/hosts", contents: "127.0.0.1 localhost\n127.0.1.1\tcell\n"),
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

    @Test("the working directory is not bound when it is /, already visible, or /tmp", arguments: ["/", "/usr/share", "/tmp"])
    func workingDirectoryNotBound(cwd: String) {
        let ops = FilesystemView.defaultOperations(workingDirectory: cwd, inspect: Self.mergedUsr)
        #expect(!ops.contains { $0.kind == .bind && $0.source == cwd && $0.source != "/usr" })
        #expect(!ops.contains { $0.kind == .bind && $0.source == "/" })
    }

    @Test("the working directory in the home, or the home itself, is bound on top of the fresh home",
          arguments: ["/home/u", "/home/u/src/project"])
    func workingDirectoryInHomeIsNeverHidden(cwd: String) {
        let user = SandboxUser(name: "u", uid: 1000, gid: 100, groupName: "users", home: "/home/u", shell: "/bin/bash")
        let ops = FilesystemView.defaultOperations(workingDirectory: cwd, user: user, inspect: Self.mergedUsr)
        let home = ops.firstIndex { $0.kind == .tmpfs && $0.destination == "/home/u" }
        let bound = ops.firstIndex { $0 == .bind(cwd, readOnly: true, optional: true) }
        #expect(home != nil && bound != nil && home! < bound!)
        let passwd = ops.first { $0.destination == "/etc/passwd" }.map { String(decoding: $0.contents, as: UTF8.self) }
        #expect(passwd?.contains("\nu:x:1000:100:u:/home/u:/bin/bash\n") == true)
    }

    @Test("the sandbox's hostname resolves: /etc/hosts names it on 127.0.1.1 unless it already does")
    func hostnameResolves() {
        let host = Array("127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\n".utf8)
        #expect(String(decoding: FilesystemView.hostsFile(host, hostname: "cell"), as: UTF8.self)
            == "127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\n127.0.1.1\tcell\n")
        #expect(FilesystemView.hostsFile(Array("127.0.1.5 cell # fixed\n".utf8), hostname: "cell") == Array("127.0.1.5 cell # fixed\n".utf8))
        // A name only in a comment does not count; a file without a final newline gets one.
        #expect(String(decoding: FilesystemView.hostsFile(Array("# cell\n127.0.0.1 localhost".utf8), hostname: "cell"), as: UTF8.self)
            == "# cell\n127.0.0.1 localhost\n127.0.1.1\tcell\n")
        let ops = FilesystemView.defaultOperations(workingDirectory: nil, hostname: "build-7", inspect: { $0 == "/etc/hosts" ? .file : .missing },
                                                   readSmallFile: { _ in Array("127.0.0.1 localhost\n".utf8) })
        #expect(ops.first { $0.destination == "/etc/hosts" }?.contents == Array("127.0.0.1 localhost\n127.0.1.1\tbuild-7\n".utf8))
        // A host /etc/hosts that is a symlink (or too large to copy): the loopback names, then ours.
        let linked = FilesystemView.defaultOperations(workingDirectory: nil, hostname: "c",
                                                      inspect: { $0 == "/etc/hosts" ? .symlink(target: "/run/hosts") : .missing })
        #expect(linked.first { $0.destination == "/etc/hosts" }?.contents == Array((FilesystemView.loopbackHosts + "127.0.1.1\tc\n").utf8))
    }

    @Test("a home the view already has (a system account's) gets no tmpfs over it", arguments: ["/", "/usr/sbin", "/dev", "/tmp/u", "/proc"])
    func homeInsideTheViewIsNotCovered(home: String) {
        let user = SandboxUser(name: "u", uid: 1000, gid: 100, groupName: "users", home: home, shell: "/bin/sh")
        #expect(!FilesystemView.defaultOperations(workingDirectory: nil, user: user, inspect: Self.mergedUsr)
            .contains { $0.kind == .tmpfs && $0.destination == home && $0.size == FilesystemView.homeSize && $0.mode == 0o700 })
        let elsewhere = SandboxUser(name: "w", uid: 33, gid: 33, groupName: "w", home: "/var/www", shell: "/bin/sh")
        #expect(FilesystemView.defaultOperations(workingDirectory: nil, user: elsewhere, inspect: Self.mergedUsr)
            .contains { $0.kind == .tmpfs && $0.destination == "/var/www" })
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

/// The user inside: named from the host's own passwd and group files.
struct SandboxUserTests {
    static let passwd = """
    root:x:0:0:root:/root:/bin/bash
    daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
    alice:x:1000:1000:Alice,,,:/home/alice:/bin/zsh
    broken:x:1001
    nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin

    """
    static let group = "root:x:0:\nalice:x:1000:\nusers:x:100:alice\nnogroup:x:65534:\n"

    @Test func callerIsNamedAsOnTheHost() {
        let u = SandboxUser.inside(.caller, uid: 1000, gid: 100, passwd: Self.passwd, group: Self.group, environment: [])
        #expect(u == SandboxUser(name: "alice", uid: 1000, gid: 100, groupName: "users", home: "/home/alice", shell: "/bin/zsh"))
        #expect(u.passwdFile == "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:100:alice:/home/alice:/bin/zsh\n"
            + "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
        #expect(u.groupFile == "root:x:0:\nusers:x:100:\nnogroup:x:65534:\n")
    }

    @Test func unknownUidFallsBackToUserAndHome() {
        let env = [(name: "USER", value: "ci"), (name: "HOME", value: "/builds/ci/")]
        let u = SandboxUser.inside(.caller, uid: 4242, gid: 4242, passwd: Self.passwd, group: Self.group, environment: env)
        #expect(u.name == "ci" && u.home == "/builds/ci" && u.groupName == "4242")
        // A $USER that would break passwd's format is not used: the number is.
        let bad = SandboxUser.inside(.caller, uid: 4242, gid: 4242, passwd: nil, group: nil,
                                     environment: [(name: "USER", value: "x:0:0"), (name: "HOME", value: "relative")])
        #expect(bad.name == "4242" && bad.home == "/")
    }

    @Test func nobodyAndRoot() {
        let nobody = SandboxUser.inside(.caller, uid: 65534, gid: 65534, passwd: Self.passwd, group: Self.group, environment: [])
        #expect(nobody.name == "nobody" && nobody.home == "/nonexistent")
        #expect(nobody.passwdFile.split(separator: "\n").count == 2)
        #expect(SandboxUser.inside(.root, uid: 1000, gid: 100, passwd: Self.passwd, group: Self.group, environment: []) == .root)
        #expect(SandboxUser.inside(.caller, uid: 0, gid: 0, passwd: Self.passwd, group: Self.group, environment: []) == .root)
    }
}
