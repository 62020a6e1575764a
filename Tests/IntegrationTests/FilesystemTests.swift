import Foundation
import Testing

/// The filesystem view: the sandbox sees only what it is granted.
@Suite(.enabled(if: Sandbox.available, "cell cannot start a sandbox on this machine"))
struct FilesystemTests {
    /// Python that tries to create `path` and prints the errno name (or "ok").
    static func tryWrite(_ paths: [String]) -> String {
        """
        import errno, os
        for p in [\(paths.map { "'\($0)'" }.joined(separator: ", "))]:
            try:
                os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)); print(p, 'ok')
            except OSError as e:
                print(p, errno.errorcode[e.errno])
        """
    }

    @Test("/etc holds the host's selection as the host has it: small files copied, symlinks recreated, the rest bound")
    func etcIsTheHostsSelection() throws {
        // pid 1 looks at each host entry itself (mounts.c): compare with the host's own.
        let common = """
        import os, hashlib
        def digest(p): return hashlib.sha256(open(p, 'rb').read()).hexdigest()
        for p in ['/etc/nsswitch.conf', '/etc/ld.so.cache']:
            print(p, digest(p) if os.path.exists(p) else 'missing')
        print('/etc/localtime', os.readlink('/etc/localtime') if os.path.islink('/etc/localtime') else 'not a link')
        """
        let insideOnly = """
        print('/etc/shadow', os.path.exists('/etc/shadow'))
        print('mounted', sorted(l.split()[1] for l in open('/proc/self/mounts') if l.split()[1] in ('/etc/hosts', '/etc/ld.so.cache')))
        """
        let r = Sandbox.run(["python3", "-c", common + "\n" + insideOnly])
        #expect(r.status == 0, "\(r.stderr)")
        let host = Sandbox.execute(["python3", "-c", common])
        #expect(host.status == 0 && !host.stdout.isEmpty)
        // The same contents and links as the host (what exists there exists here)...
        #expect(r.stdout.hasPrefix(host.stdout), "inside:\n\(r.stdout)\nhost:\n\(host.stdout)")
        #expect(r.stdout.contains("/etc/shadow False"))
        // ...and /etc/hosts is the host's, plus a line that makes the sandbox's hostname resolve.
        let hosts = try String(contentsOfFile: "/etc/hosts", encoding: .utf8)
        let resolved = Sandbox.run(["sh", "-c", "cat /etc/hosts; getent hosts \"$(hostname)\""], options: ["--hostname", "build-7"])
        #expect(resolved.stdout == hosts + (hosts.hasSuffix("\n") ? "" : "\n") + "127.0.1.1\tbuild-7\n127.0.1.1       build-7\n",
                "\(resolved.stdout)")
        // ...a small file as a copy (no mount), the 34 KB loader cache (over 32 KiB) as a bind.
        var st = stat()
        if stat("/etc/ld.so.cache", &st) == 0 && st.st_size > 32 * 1024 {
            #expect(r.stdout.hasSuffix("mounted ['/etc/ld.so.cache']\n"), "\(r.stdout)")
        }
    }

    @Test("a secret in the caller's home, and the rest of the host, is invisible")
    func hostIsInvisible() throws {
        let home = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: home) }
        FileManager.default.createFile(atPath: "\(home)/secret", contents: Data("hunter2".utf8))
        chmod("\(home)/secret", 0o644)
        // Readable outside, by the same user.
        #expect(Sandbox.execute(Sandbox.dropPrivileges + ["cat", "\(home)/secret"]).stdout == "hunter2")
        // Inside: an empty home of your own, nobody else's home, no /sys, no /run.
        let script = "cat \(home)/secret; ls -A \"$HOME\" | wc -l; ls /home 2>/dev/null | grep -vxc \"$(basename \"$HOME\")\"; "
            + "test -e /sys || echo no-sys; test -e /run || echo no-run"
        let r = Sandbox.run(["sh", "-c", script], environment: ["HOME": home])
        #expect(r.stdout == "0\n0\nno-sys\nno-run\n", "\(r.stdout)")
        #expect(r.stderr.contains("No such file or directory"))
    }

    @Test("/usr, /etc, / and the working directory are read-only (EROFS); /tmp and home are writable")
    func readOnlyEverywhereButTmp() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let home = Sandbox.caller.home
        let r = Sandbox.run(["python3", "-c", Self.tryWrite(["/usr/x", "/etc/x", "/x", "\(dir)/x", "/tmp/x", "\(home)/x", "/dev/shm/x"]) + "\nprint(os.getcwd())"], cwd: dir)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == """
        /usr/x EROFS
        /etc/x EROFS
        /x EROFS
        \(dir)/x EROFS
        /tmp/x ok
        \(home)/x ok
        /dev/shm/x ok
        \(dir)

        """)
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/x"))
    }

    @Test("tar xf of an archive whose members belong to other users works as yourself, as it does outside")
    func tarWithForeignOwners() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Members owned by uid 1000 / gid 100 and by root, as release tarballs often are.
        let make = """
        import io, tarfile
        with tarfile.open('\(dir)/a.tar', 'w') as t:
            for name, uid in [('pkg/README', 1000), ('pkg/bin/tool', 0)]:
                info = tarfile.TarInfo(name); info.uid, info.gid, info.size = uid, 100, 3
                t.addfile(info, io.BytesIO(b'hi\\n'))
        """
        #expect(Sandbox.execute(["python3", "-c", make]).status == 0)
        chmod("\(dir)/a.tar", 0o644)
        let extract = ["sh", "-c", "cd /tmp && tar xf /in/a.tar && cat pkg/README && stat -c %u pkg/README"]
        let outside = Sandbox.execute(Sandbox.dropPrivileges + ["sh", "-c", "cd \(dir) && tar xf a.tar && stat -c %u pkg/README"])
        #expect(outside.stdout == "\(Sandbox.callerUID)\n", "\(outside.stderr)")
        let r = Sandbox.run(extract, options: ["--ro-bind", "\(dir):/in"])
        #expect(r.status == 0 && r.stdout == "hi\n\(Sandbox.callerUID)\n", "\(r.stderr)")
        // As root inside, tar tries to give the files their owners, and 1000 is not mapped: the
        // "Known differences inside" the README lists (bubblewrap keeps your uid, like the default).
        let root = Sandbox.run(extract, options: ["--ro-bind", "\(dir):/in", "--as-root"])
        #expect(root.status == 2 && root.stderr.contains("Cannot change ownership"), "\(root.stderr)")
    }

    @Test("--bind makes a host directory writable; the file shows on the host with the caller's uid")
    func bindReadWrite() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = Sandbox.run(["sh", "-c", "echo data > /work/out && ls -n /work/out | cut -d' ' -f3"], options: ["--bind", "\(dir):/work"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "\(Sandbox.callerUID)\n")
        #expect(FileManager.default.contents(atPath: "\(dir)/out") == Data("data\n".utf8))
        let owner = try FileManager.default.attributesOfItem(atPath: "\(dir)/out")[.ownerAccountID] as? NSNumber
        #expect(owner?.uint32Value == Sandbox.callerUID)
        // --ro-bind of the same directory cannot be written.
        let ro = Sandbox.run(["python3", "-c", Self.tryWrite(["/work/out2"])], options: ["--ro-bind", "\(dir):/work"])
        #expect(ro.stdout == "/work/out2 EROFS\n")
    }

    @Test("a symlink planted at a bind source does not redirect the bind")
    func symlinkAtSourceIsRefused() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/data", withDestinationPath: "/etc")
        for source in ["\(dir)/data", "\(dir)/data/passwd"] {
            let r = Sandbox.run(["cat", "/x/shadow"], options: ["--bind", "\(source):/x"])
            #expect(r.status == 125)
            #expect(r.stderr.hasPrefix("cell: cannot bind \(source): the path goes through a symlink"), "\(r.stderr)")
            #expect(r.stdout.isEmpty)
        }
    }

    @Test("a symlink planted at a bind destination inside a bound directory does not redirect the mount")
    func symlinkAtDestinationIsRefused() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/escape", withDestinationPath: "/etc")
        let r = Sandbox.run(["true"], options: ["--bind", "\(dir):/work", "--tmpfs", "/work/escape/sub"])
        #expect(r.status == 125)
        #expect(r.stderr.contains("cannot create the mount point /work/escape/sub"), "\(r.stderr)")
        #expect(r.stderr.contains("symbolic links") || r.stderr.contains("symlink"), "\(r.stderr)")
    }

    @Test("a submount under a --ro-bind path is read-only too")
    func submountsAreReadOnly() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        mkdir("\(dir)/sub", 0o777)
        // A submount the unprivileged user owns: a tmpfs inside an outer user+mount namespace.
        let r = Sandbox.execute(Sandbox.dropPrivileges + ["unshare", "-Urm", "sh", "-c", """
            mount -t tmpfs outer \(dir)/sub && touch \(dir)/sub/writable-outside && \
            exec \(Sandbox.cell) run --ro-bind \(dir):/data -- python3 -c "\(Self.tryWrite(["/data/sub/x", "/data/x"]).replacingOccurrences(of: "\"", with: "\\\""))"
            """])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "/data/sub/x EROFS\n/data/x EROFS\n")
    }

    @Test("/dev has exactly the expected entries, and they work")
    func devEntries() {
        let r = Sandbox.run(["sh", "-c", "ls -A /dev | tr '\\n' ' '; echo; head -c 4 /dev/zero | wc -c; head -c 8 /dev/urandom | wc -c; echo x > /dev/null && echo null-ok; python3 -c 'import os,pty; m,s=os.openpty(); print(os.ttyname(s))'"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero ")
        #expect(Array(lines.dropFirst()) == ["4", "8", "null-ok", "/dev/pts/0"])
    }

    @Test("/proc: writing /proc/sys fails, sensitive files are masked or absent")
    func procIsHardened() {
        let r = Sandbox.run(["sh", "-c", """
            echo other > /proc/sys/kernel/hostname 2>/dev/null && echo hostname-written
            echo b > /proc/sysrq-trigger 2>/dev/null && echo sysrq-written
            for f in kcore keys timer_list; do test -e /proc/$f && printf '%s:%s ' $f $(wc -c < /proc/$f); done; echo
            hostname
            """])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stdout.contains("written"))
        // Present ones read as empty (bound to /dev/null); absent ones stay absent.
        for entry in r.stdout.split(separator: "\n").first?.split(separator: " ") ?? [] {
            #expect(entry.hasSuffix(":0"), "\(entry)")
        }
        #expect(r.stdout.hasSuffix("cell\n"))
        // Not just a permission check: the mount itself is read-only.
        let ro = Sandbox.run(["python3", "-c", Self.tryWrite(["/proc/sys/kernel/hostname"]) + """

            for line in open('/proc/self/mountinfo'):
                fields = line.split()
                if fields[4] == '/proc/sys': print(fields[5].split(',')[0])
            """])
        #expect(ro.stdout == "/proc/sys/kernel/hostname EACCES\nro\n" || ro.stdout == "/proc/sys/kernel/hostname EROFS\nro\n", "\(ro.stdout)")
    }

    @Test("nothing is left on the host after a sandbox: no mount, no directory")
    func nothingLeftBehind() throws {
        let mountsBefore = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = Sandbox.run(["sh", "-c", "touch /tmp/inside; ls /tmp"], options: ["--bind", dir, "--tmpfs", "\(dir)/t"], cwd: dir)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) == mountsBefore)
        // The mount point for --tmpfs was made inside the sandbox's view, on the bound directory:
        // that is the only trace, and it is the user's own directory.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["t"])
        #expect(!FileManager.default.fileExists(atPath: "/tmp/inside"))
    }

    @Test("--dry-run prints every record pid 1 would execute, in order, and runs nothing")
    func dryRun() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = Sandbox.run(["touch", "\(dir)/ran"], options: ["--dry-run", "--bind", "\(dir):/out", "--tmpfs", "/scratch:size=8m,mode=0700"], cwd: dir)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        func index(_ fragment: String) -> Int? { lines.firstIndex { $0.contains(fragment) } }
        let usr = try #require(index("mount         ro-bind /usr -> /usr (ro, source is a directory)"))
        let proc = try #require(index("mount         proc /proc"))
        let tmp = try #require(index("tmpfs /tmp (size=256m, mode=1777)"))
        let cwd = try #require(index("ro-bind \(dir) -> \(dir)"))
        let bind = try #require(index("bind \(dir) -> /out"))
        let scratch = try #require(index("tmpfs /scratch (size=8m, mode=700)"))
        #expect(usr < proc && proc < tmp && tmp < cwd && cwd < bind && bind < scratch)
        // /etc as decided: small files copied (with their size), directories bound, symlinks kept.
        // The host's /etc/hosts, plus the line naming the sandbox's hostname (a copy, no mount).
        let hosts = try String(contentsOfFile: "/etc/hosts", encoding: .utf8)
        let hostsSize = hosts.utf8.count + (hosts.hasSuffix("\n") ? 0 : 1) + "127.0.1.1\tcell\n".utf8.count
        #expect(index("file /etc/hosts (\(hostsSize) bytes, mode=644)") != nil, "\(r.stdout)")
        #expect(index("ro-bind /etc/ssl -> /etc/ssl (ro, source is a directory)") != nil)
        if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/etc/localtime") {
            #expect(index("symlink /etc/localtime -> \(target)") != nil)
        }
        // The command, then the filters: the policy's with its listener, then the end.
        let arg = try #require(index("arg           touch"))
        let filter = try #require(index("BPF instructions, notifications to cell's supervisor (audited)"))
        #expect(usr < arg && arg < filter && lines.contains { $0.hasSuffix("end-filters") })
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/ran"))
    }

    @Test("everyday tools work in the default view: a pipeline, python3 with ssl, the loader cache")
    func everydayWorkload() {
        let r = Sandbox.run(["sh", "-c", "ls /usr/bin | grep -c . >/dev/null && echo pipeline-ok; python3 -c 'import ssl, json, sqlite3; print(\"python-ok\")'; getent passwd root | cut -d: -f1,6"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "pipeline-ok\npython-ok\nroot:/root\n")
    }

    @Test("bad mount flags are refused with 125 and a clear line")
    func badMountFlags() {
        for (options, fragment) in [
            (["--bind", "/nonexistent-src"], "cannot bind /nonexistent-src: it does not exist on the host"),
            (["--tmpfs", "relative"], "--tmpfs 'relative'"),
            (["--tmpfs", "/x:size=lots"], "is not a size"),
            (["--ro-bind", "/usr:relative"], "must be an absolute path"),
            (["--ro-bind", "/usr/../etc"], "without '..'"),
            (["--tmpfs", "/usr/new"], "cannot create the mount point /usr/new"),
        ] {
            let r = Sandbox.run(["true"], options: options)
            #expect(r.status == 125, "\(options)")
            #expect(r.stderr.hasPrefix("cell: ") && r.stderr.contains(fragment) && r.stderr.filter { $0 == "\n" }.count == 1, "\(options): \(r.stderr)")
        }
    }
}
