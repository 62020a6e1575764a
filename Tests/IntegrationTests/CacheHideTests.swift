import Foundation
import Glibc
import Testing

/// `--hide` and `[filesystem] hide`: secrets in a bound tree are seen empty and cannot be
/// written; `--cache`: a directory kept between runs. Outcomes are read from the host side.
@Suite(.enabled(if: Sandbox.available, "cell cannot start a sandbox on this machine"))
struct CacheHideTests {
    /// A project of the test user's with secrets in it, a symlink leading out of it to a
    /// directory with a .env of its own, and an alias of its .env inside it.
    static func project() throws -> (dir: String, outside: String) {
        let dir = try Sandbox.writableHostDirectory(), outside = try Sandbox.writableHostDirectory()
        try FileManager.default.createDirectory(atPath: dir + "/web/secrets", withIntermediateDirectories: true)
        try "TOKEN=hunter2\n".write(toFile: dir + "/.env", atomically: false, encoding: .utf8)
        try "DB=prod\n".write(toFile: dir + "/web/.env.production", atomically: false, encoding: .utf8)
        try "key\n".write(toFile: dir + "/web/secrets/signing.key", atomically: false, encoding: .utf8)
        try "print(1)\n".write(toFile: dir + "/main.py", atomically: false, encoding: .utf8)
        try "OUTSIDE=1\n".write(toFile: outside + "/.env", atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: dir + "/elsewhere", withDestinationPath: outside)
        try FileManager.default.createSymbolicLink(atPath: dir + "/alias", withDestinationPath: ".env")
        if Sandbox.isRoot { _ = Sandbox.execute(["chown", "-R", "-h", "65534:65534", dir, outside]) }
        return (dir, outside)
    }

    static let hide = ["--hide", "**/.env", "--hide", "**/.env.*", "--hide", "web/secrets"]

    @Test("a hidden .env reads as empty and cannot be written, renamed or removed; without --hide it is readable")
    func hiddenSecret() throws {
        let (dir, outside) = try Self.project()
        defer { for d in [dir, outside] { try? FileManager.default.removeItem(atPath: d) } }
        // Without hide, the sandbox reads the secret: the test below could fail.
        let bare = Sandbox.run(["cat", ".env"], options: ["--bind", dir], cwd: dir)
        #expect(bare.status == 0 && bare.stdout == "TOKEN=hunter2\n", "\(bare.stderr)")
        let r = Sandbox.run(["sh", "-c", """
            printf '[%s]' "$(cat .env)" "$(cat alias)" "$(cat web/.env.production)" "$(ls -A web/secrets)"
            echo; echo stolen > .env && echo wrote; mv .env moved && echo moved; rm -f .env && echo removed
            chmod 666 .env && echo chmod; touch web/secrets/x && echo planted; cat main.py
            """], options: ["--bind", dir] + Self.hide, cwd: dir)
        #expect(r.stdout == "[][][][]\nprint(1)\n", "\(r.stdout) \(r.stderr)")
        #expect(try String(contentsOfFile: dir + "/.env", encoding: .utf8) == "TOKEN=hunter2\n")
        #expect(!FileManager.default.fileExists(atPath: dir + "/moved") && !FileManager.default.fileExists(atPath: dir + "/web/secrets/x"))
        // The ci profile hides .env through its overlay of the working directory, by default.
        let ci = Sandbox.run(["sh", "-c", "wc -c < .env; cat main.py"], options: ["--profile", "ci", "--net", "none"], cwd: dir)
        #expect(ci.status == 0 && ci.stdout == "0\nprint(1)\n", "\(ci.stderr)")
    }

    @Test("the hide walk never follows a symlink: nothing is covered outside the tree, a matching symlink is covered itself")
    func symlinksNotFollowed() throws {
        let (dir, outside) = try Self.project()
        defer { for d in [dir, outside] { try? FileManager.default.removeItem(atPath: d) } }
        try FileManager.default.createSymbolicLink(atPath: dir + "/web/.env", withDestinationPath: "/etc/hostname")
        if Sandbox.isRoot { _ = Sandbox.execute(["chown", "-h", "65534:65534", dir + "/web/.env"]) }
        let plan = Sandbox.run(["true"], options: ["--bind", dir, "--dry-run"] + Self.hide, cwd: dir)
        #expect(plan.status == 0, "\(plan.stderr)")
        // (Each cover follows each bind of the tree: the working directory's, then --bind's.)
        let hidden = Set(plan.stdout.split(separator: "\n").filter { $0.contains(" hide ") }.map { String($0.split(separator: " ", omittingEmptySubsequences: true)[3]) })
        #expect(hidden.sorted() == [dir + "/.env", dir + "/web/.env", dir + "/web/.env.production", dir + "/web/secrets"], "\(plan.stdout)")
        // Inside: the outside directory is not in the view (its .env untouched, nothing mounted
        // there), and the matching symlink reads empty instead of leading to /etc/hostname.
        let r = Sandbox.run(["sh", "-c", "wc -c < web/.env; test -L web/.env && echo link; cat elsewhere/.env 2>/dev/null || echo unreachable"],
                            options: ["--bind", dir] + Self.hide, cwd: dir)
        #expect(r.status == 0 && r.stdout == "0\nunreachable\n", "\(r.stdout) \(r.stderr)")
        #expect(try String(contentsOfFile: outside + "/.env", encoding: .utf8) == "OUTSIDE=1\n")
    }

    @Test("a .git file an earlier run planted, naming a hidden directory or the tree itself, un-hides nothing")
    func plantedGitFiles() throws {
        let (dir, outside) = try Self.project()
        defer { for d in [dir, outside] { try? FileManager.default.removeItem(atPath: d) } }
        let plant = Sandbox.run(["sh", "-c", "mkdir x y && echo 'gitdir: ..' > x/.git && echo 'gitdir: ../web/secrets' > y/.git"],
                                options: ["--bind", dir], cwd: dir)
        #expect(plant.status == 0, "\(plant.stderr)")
        let r = Sandbox.run(["sh", "-c", "cat .env web/secrets/signing.key 2>&1; ls -A web/secrets"], options: ["--bind", dir] + Self.hide, cwd: dir)
        #expect(r.status == 0 && !r.stdout.contains("hunter2") && !r.stdout.contains("key\n"), "\(r.stdout) \(r.stderr)")
    }

    @Test("a cache written in one run is read in the next, by the same project only; cell cache lists and clears it")
    func cacheKept() throws {
        let a = try Sandbox.writableHostDirectory(), b = try Sandbox.writableHostDirectory()
        defer { for d in [a, b] { try? FileManager.default.removeItem(atPath: d) } }
        let name = "it-\(UUID().uuidString.prefix(8).lowercased())"
        let cache = ["--cache", "\(name):~/.cache/\(name)"]
        // --dry-run names the cache's directory and creates nothing.
        let plan = Sandbox.run(["true"], options: cache + ["--dry-run"], cwd: a)
        #expect(plan.status == 0 && plan.stdout.contains("/\(name) -> \(Sandbox.caller.home)/.cache/\(name)"), "\(plan.stderr)")
        #expect(Sandbox.execute(["sh", "-c", "ls -d \(Sandbox.cacheHome)/cell/caches/*/\(name)"]).status != 0)
        let first = Sandbox.run(["sh", "-c", "ls -A ~/.cache/\(name); echo downloaded > ~/.cache/\(name)/wheel"], options: cache, cwd: a)
        #expect(first.status == 0 && first.stdout == "", "\(first.stderr)")
        // Kept on the host, in the caller's store, 0700.
        let found = Sandbox.execute(["sh", "-c", "ls -d \(Sandbox.cacheHome)/cell/caches/*/\(name) && stat -c %a \(Sandbox.cacheHome)/cell"]).stdout
        #expect(found.hasSuffix("/\(name)\n700\n"), "\(found)")
        let second = Sandbox.run(["cat", "\(Sandbox.caller.home)/.cache/\(name)/wheel"], options: cache, cwd: a)
        #expect(second.status == 0 && second.stdout == "downloaded\n", "\(second.stderr)")
        // Another project (another working directory) has a cache of that name of its own.
        let other = Sandbox.run(["sh", "-c", "ls -A ~/.cache/\(name)"], options: cache, cwd: b)
        #expect(other.status == 0 && other.stdout == "", "\(other.stdout) \(other.stderr)")
        // A job that locks its cache (chmod 000) does not lock the next run out of it.
        #expect(Sandbox.run(["chmod", "000", "\(Sandbox.caller.home)/.cache/\(name)"], options: cache, cwd: a).status == 0)
        let unlocked = Sandbox.run(["cat", "\(Sandbox.caller.home)/.cache/\(name)/wheel"], options: cache, cwd: a)
        #expect(unlocked.status == 0 && unlocked.stdout == "downloaded\n", "\(unlocked.stderr)")
        // Nor can a tree deeper than clear descends, made read-only down there, outlive clear.
        let deep = Sandbox.run(["sh", "-c", "cd ~/.cache/\(name) && d=. && for i in $(seq 40); do d=$d/d; done && mkdir -p $d "
                                + "&& p=. && for i in $(seq 33); do p=$p/d; done && chmod 0500 $p && chmod 0000 d"], options: cache, cwd: b)
        #expect(deep.status == 0, "\(deep.stderr)")
        let list = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "cache", "list"])
        #expect(list.status == 0 && list.stdout.components(separatedBy: "/\(name) ").count == 3, "\(list.stdout)")
        #expect(list.stdout.contains("project \(a), profile default"))
        let clear = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "cache", "clear", name])
        #expect(clear.status == 0 && clear.stdout.hasPrefix("removed 2 caches"), "\(clear.stdout) \(clear.stderr)")
        let again = Sandbox.run(["sh", "-c", "ls -A ~/.cache/\(name)"], options: cache, cwd: a)
        #expect(again.status == 0 && again.stdout == "", "\(again.stdout)")
        _ = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "cache", "clear", name])
    }

    @Test("a cache name with '/' or '..', and a hide pattern with '..', are refused with status 125", arguments: [
        ["--cache", "a/b:~/x"], ["--cache", "..:~/x"], ["--cache", "pip:~/../etc"], ["--hide", "../x"],
    ])
    func refused(options: [String]) {
        let r = Sandbox.run(["true"], options: options)
        #expect(r.status == 125, "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains(options[1]), "\(r.stderr)")
        let clear = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "cache", "clear", "../x"])
        #expect(clear.status == 125)
    }
}
