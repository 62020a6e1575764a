import Foundation
import Glibc
import Testing

/// Copy-on-write views of host trees (`--overlay`, `[filesystem] cwd = "overlay"`, the ci
/// profile's default): the sandbox writes, the host tree stays byte for byte as it was.
@Suite(.enabled(if: Sandbox.available, "cell cannot start a sandbox on this machine"))
struct OverlayTests {
    /// A checkout of the test user's: files, a subdirectory, a symlink leading out of it.
    static func checkout() throws -> String {
        let dir = try Sandbox.writableHostDirectory()
        try FileManager.default.createDirectory(atPath: dir + "/src/sub", withIntermediateDirectories: true)
        try "original\n".write(toFile: dir + "/src/a.txt", atomically: false, encoding: .utf8)
        try "b\n".write(toFile: dir + "/src/sub/b.txt", atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: dir + "/src/out", withDestinationPath: "/etc/shadow")
        if Sandbox.isRoot { _ = Sandbox.execute(["chown", "-R", "-h", "65534:65534", dir]) }
        return dir
    }

    /// Every entry below `dir` with its type, mode, owner, size and content (or link target).
    static func snapshot(_ dir: String) -> String {
        Sandbox.execute(["sh", "-c", "cd \(dir) && find . -printf '%p %y %m %u %g %s %l\\n' | sort && find . -type f -exec sha256sum {} + | sort"]).stdout
    }

    @Test("writes, deletes, renames and new directories through the overlay leave the host tree byte-identical")
    func hostUntouched() throws {
        let dir = try Self.checkout()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let before = Self.snapshot(dir + "/src")
        let r = Sandbox.run(["sh", "-c", "echo changed > a.txt && rm sub/b.txt && echo new > c.txt && mv c.txt d.txt && mkdir -p e/f && echo g > e/f/g && mv sub sub2 && chmod 600 a.txt && cat a.txt d.txt"],
                            options: ["--overlay", dir + "/src", "--cwd", dir + "/src"])
        #expect(r.status == 0 && r.stdout == "changed\nnew\n", "\(r.stderr)")
        #expect(Self.snapshot(dir + "/src") == before)
    }

    @Test("--changes DIR keeps exactly what the sandbox changed, and cell changes lists it")
    func changesKept() throws {
        let dir = try Self.checkout()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/changes", withIntermediateDirectories: false)
        if Sandbox.isRoot { chown(dir + "/changes", 65534, 65534) }
        let r = Sandbox.run(["sh", "-c", "echo changed > a.txt && rm sub/b.txt && mkdir new && echo x > new/y"],
                            options: ["--overlay", dir + "/src:/work", "--cwd", "/work", "--changes", dir + "/changes"])
        #expect(r.status == 0, "\(r.stderr)")
        let listed = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "changes", dir + "/changes"])
        #expect(listed.status == 0 && listed.stdout == "M /a.txt\nA /new/\nA /new/y\nD /sub/b.txt\n", "\(listed.stdout) \(listed.stderr)")
        #expect((try? String(contentsOfFile: dir + "/changes/upper/a.txt", encoding: .utf8)) == "changed\n")
        #expect((try? String(contentsOfFile: dir + "/src/a.txt", encoding: .utf8)) == "original\n")
    }

    @Test("cell changes --apply writes the changes into a target, never through a symlink, never into .git")
    func applyChanges() throws {
        let dir = try Self.checkout()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for sub in ["changes", "victim", "src/.git/hooks"] { try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true) }
        // In the tree, a symlink to a directory outside it: the sandbox replaces it with a
        // directory of its own and writes into that; applying must not write into the victim.
        try FileManager.default.createSymbolicLink(atPath: dir + "/src/escape", withDestinationPath: dir + "/victim")
        if Sandbox.isRoot { _ = Sandbox.execute(["chown", "-R", "-h", "65534:65534", dir]) }
        let r = Sandbox.run(["sh", "-c", "echo changed > a.txt && rm sub/b.txt && mkdir new && echo y > new/y && echo hook > .git/hooks/pre-commit "
                             + "&& rm escape && mkdir escape && echo evil > escape/evil"],
                            options: ["--overlay", dir + "/src", "--cwd", dir + "/src", "--changes", dir + "/changes"])
        #expect(r.status == 0, "\(r.stderr)")
        let applied = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "changes", dir + "/changes", "--apply", dir + "/src"])
        #expect(applied.status == 0, "\(applied.stderr)")
        #expect(applied.stderr.contains("/.git/hooks/pre-commit: under .git, never applied"), "\(applied.stderr)")
        #expect((try? String(contentsOfFile: dir + "/src/a.txt", encoding: .utf8)) == "changed\n")
        #expect((try? String(contentsOfFile: dir + "/src/new/y", encoding: .utf8)) == "y\n")
        #expect(!FileManager.default.fileExists(atPath: dir + "/src/sub/b.txt"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/src/.git/hooks/pre-commit"))
        #expect((try? FileManager.default.contentsOfDirectory(atPath: dir + "/victim")) == [], "written through the symlink")
        #expect((try? String(contentsOfFile: dir + "/src/escape/evil", encoding: .utf8)) == "evil\n")
    }

    @Test("a profile's mounts may hold overlays: { type = \"overlay\", source, dest }, overlay_size applies")
    func profileOverlay() throws {
        let dir = try Self.checkout()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "[filesystem]\noverlay_size = \"1m\"\nmounts = [{ type = \"overlay\", source = \"\(dir)/src\", dest = \"/work\" }]\n"
            .write(toFile: dir + "/p.toml", atomically: true, encoding: .utf8)
        chmod(dir + "/p.toml", 0o644)
        let r = Sandbox.run(["sh", "-c", "echo new > /work/a.txt && cat /work/a.txt && head -c 3000000 /dev/zero > /work/big; echo $?"],
                            options: ["-p", dir + "/p.toml"])
        #expect(r.stdout == "new\n1\n", "\(r.stdout) \(r.stderr)")
        #expect((try? String(contentsOfFile: dir + "/src/a.txt", encoding: .utf8)) == "original\n")
    }

    @Test("--apply leaves out what the host would run or lose: git's hooksPath and .husky, a nested repository's deletion, symlinks out; sparse files stay sparse; odd names are listed")
    func applyLeavesOut() throws {
        let dir = try Self.checkout()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for sub in ["changes", "src/.git", "src/nested/.git"] { try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true) }
        try "[core]\n\thooksPath = .githooks\n".write(toFile: dir + "/src/.git/config", atomically: false, encoding: .utf8)
        try "keep\n".write(toFile: dir + "/src/nested/.git/HEAD", atomically: false, encoding: .utf8)
        if Sandbox.isRoot { _ = Sandbox.execute(["chown", "-R", "-h", "65534:65534", dir]) }
        let script = "mkdir .githooks .husky && echo x > .githooks/pre-commit && echo x > .husky/pre-commit && rm -r nested "
            + "&& ln -s /etc/shadow shadow && ln -s ../../x up && ln -s sub/b.txt fine && truncate -s 1G sparse && echo odd > \"$(printf 'odd\\377')\""
        let r = Sandbox.run(["sh", "-c", script], options: ["--overlay", dir + "/src", "--cwd", dir + "/src", "--changes", dir + "/changes"])
        #expect(r.status == 0, "\(r.stderr)")
        let listed = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "changes", dir + "/changes"]).stdout
        #expect(listed.contains("A /odd\\xff (a name that is not UTF-8: never applied)") && listed.contains("A /shadow -> /etc/shadow"), "\(listed)")
        let applied = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "changes", dir + "/changes", "--apply", dir + "/src"])
        #expect(applied.status == 0, "\(applied.stderr)")
        for gone in ["/.githooks/pre-commit", "/.husky/pre-commit", "/shadow", "/up"] {
            #expect(!FileManager.default.fileExists(atPath: dir + "/src" + gone), "\(gone) was applied")
        }
        #expect(applied.stderr.contains("/nested/: holds a .git") || applied.stderr.contains("/nested: holds a .git"), "\(applied.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/src/nested/.git/HEAD"))
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/src/fine")) == "sub/b.txt")
        var st = stat()
        #expect(stat(dir + "/src/sparse", &st) == 0 && st.st_size == 1 << 30 && st.st_blocks < 64, "blocks: \(st.st_blocks)")
    }

    @Test("--changes takes an empty directory, or an earlier run's over the same tree (the changes continue), and no --overlay-size")
    func changesReuse() throws {
        let dir = try Self.checkout()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Inside the working directory, as a user would put it: the guards must not touch it.
        try FileManager.default.createDirectory(atPath: dir + "/src/.changes", withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: dir + "/other", withIntermediateDirectories: false)
        try "mine\n".write(toFile: dir + "/other/notes", atomically: false, encoding: .utf8)
        if Sandbox.isRoot { _ = Sandbox.execute(["chown", "-R", "-h", "65534:65534", dir]) }
        let options = ["--overlay", dir + "/src/sub:/w", "--changes", dir + "/src/.changes"]
        let first = Sandbox.run(["sh", "-c", "echo 1 > /w/n"], options: options, cwd: dir + "/src")
        let second = Sandbox.run(["sh", "-c", "cat /w/n && echo 2 > /w/m"], options: options, cwd: dir + "/src")
        #expect(first.status == 0 && second.status == 0 && second.stdout == "1\n", "\(first.stderr) \(second.stderr)")
        let full = Sandbox.run(["true"], options: ["--overlay", dir + "/src/sub:/w", "--changes", dir + "/other"])
        #expect(full.status == 125 && full.stderr.contains("not empty, and not the changes of an earlier run"), "\(full.stderr)")
        #expect((try? String(contentsOfFile: dir + "/other/notes", encoding: .utf8)) == "mine\n")
        let sized = Sandbox.run(["true"], options: options + ["--overlay-size", "5m"])
        #expect(sized.status == 125 && sized.stderr.contains("give one or the other"), "\(sized.stderr)")
    }

    @Test("a symlink in the tree that points outside reaches nothing of the host")
    func symlinkOut() throws {
        let dir = try Self.checkout()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = Sandbox.run(["sh", "-c", "cat out 2>&1; echo replaced > out; cat out"], options: ["--overlay", dir + "/src", "--cwd", dir + "/src"])
        #expect(r.stdout.hasPrefix("cat: out: No such file or directory\n"), "\(r.stdout) \(r.stderr)")
        // Writing through it created /etc/shadow in the sandbox's view? No: /etc is read-only there.
        #expect(!r.stdout.contains("replaced") && !FileManager.default.fileExists(atPath: dir + "/src/replaced"))
    }

    @Test("the upper layer's tmpfs bounds what the sandbox writes: ENOSPC at --overlay-size, not a full host disk")
    func sizeLimit() throws {
        let dir = try Self.checkout()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = Sandbox.run(["sh", "-c", "head -c 3000000 /dev/zero > big; echo $?"], options: ["--overlay", dir + "/src", "--cwd", dir + "/src", "--overlay-size", "1m"])
        #expect(r.stdout == "1\n" && r.stderr.contains("No space left on device"), "\(r.stdout) \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/src/big"))
    }

    @Test("the ci profile builds in an overlay of the working directory: the checkout is left as it was")
    func ciProfile() throws {
        let dir = try Self.checkout()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let before = Self.snapshot(dir + "/src")
        let r = Sandbox.run(["sh", "-c", "mkdir build && echo o > build/out.o && rm a.txt && ls"], options: ["-p", "ci", "--net", "none"], cwd: dir + "/src")
        #expect(r.status == 0 && r.stdout == "build\nout\nsub\n", "\(r.stdout) \(r.stderr)")
        #expect(Self.snapshot(dir + "/src") == before)
    }

    @Test("a tree holding a file of another owner is refused before anything starts, naming the file", .enabled(if: Sandbox.isRoot))
    func foreignOwner() throws {
        let dir = try Self.checkout()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "root's\n".write(toFile: dir + "/src/sub/roots.txt", atomically: false, encoding: .utf8) // root creates it
        let r = Sandbox.run(["true"], options: ["--overlay", dir + "/src"])
        #expect(r.status == 125 && r.stderr.contains("\(dir)/src/sub/roots.txt belongs to uid 0, gid 0, which the sandbox does not map"), "\(r.stderr)")
    }

    @Test("overlay misuse is refused with 125", arguments: [
        (["--overlay", "/etc/hostname"], "an overlay is of a directory"),
        (["--overlay", "/usr", "--isolation", "landlock"], "--isolation landlock cannot give an overlay"),
        (["--overlay-size", "lots"], "is not a size"),
        (["--overlay", "rel/../x"], "needs SRC[:DST]"),
    ])
    func misuse(options: [String], message: String) {
        let r = Sandbox.run(["true"], options: options)
        #expect(r.status == 125 && r.stderr.contains(message), "\(r.stderr)")
    }

    @Test("--changes needs one overlay, an existing directory of yours, outside the tree")
    func changesMisuse() throws {
        let dir = try Self.checkout()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (options, message) in [
            (["--changes", dir], "keeps the changes of one overlay, and this sandbox has 0"),
            (["--overlay", dir + "/src", "--overlay", dir + "/src:/b", "--changes", "/tmp"], "this sandbox has 2"),
            (["--overlay", dir + "/src", "--changes", dir + "/src/sub"], "inside the tree"),
            (["--overlay", dir + "/src", "--changes", dir + "/missing"], "not an existing directory"),
        ] {
            let r = Sandbox.run(["true"], options: options)
            #expect(r.status == 125 && r.stderr.contains(message), "\(options): \(r.stderr)")
        }
    }
}
