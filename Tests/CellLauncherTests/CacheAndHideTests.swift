import CellPolicy
import Foundation
import Glibc
import Testing
@testable import CellLauncher

/// Hide globs: what they match, and how the bound-tree walk covers it.
struct HidePatternTests {
    func matches(_ pattern: String, _ path: String) throws -> Bool {
        try HidePattern.parse(pattern).get().matches(Array(path.utf8))
    }

    @Test("** matches any depth, none included; * and ? stay within one name")
    func matching() throws {
        #expect(try matches("**/.env", "/.env"))
        #expect(try matches("**/.env", "/a/b/.env"))
        #expect(try !matches("**/.env", "/a/.envrc"))
        #expect(try matches("**/.env.*", "/web/.env.production"))
        #expect(try !matches("**/.env.*", "/web/.env"))
        #expect(try matches("**/*.pem", "/certs/.hidden.pem"))
        #expect(try matches("**/id_rsa*", "/home/.ssh/id_rsa.pub"))
        #expect(try matches(".git/config", "/.git/config"))
        #expect(try !matches(".git/config", "/vendor/lib/.git/config"))
        #expect(try matches("/.git/config", "/.git/config"))
        #expect(try matches("secrets/**", "/secrets/a/b"))
        #expect(try !matches("secrets/**", "/other/secrets/a"))
        #expect(try matches("a/**/z", "/a/z"))
        #expect(try matches("a/**/z", "/a/b/c/z"))
        #expect(try !matches("a/*/z", "/a/b/c/z"))
        #expect(try matches("file?.txt", "/file1.txt"))
        #expect(try !matches("file?.txt", "/file10.txt"))
        #expect(try matches("**/*", "/anything"))
        // Names are bytes: one that is not UTF-8 is matched as it is.
        #expect(try HidePattern.parse("**/*.key").get().matches(Array("/a/".utf8) + [0xff, 0xfe] + Array(".key".utf8)))
    }

    @Test("patterns that cannot mean a path below a tree's root are refused", arguments: [
        "", "a//b", "../x", "a/./b", "**", "**/**", "a**/b", "x/**y",
    ])
    func refused(pattern: String) {
        guard case .failure = HidePattern.parse(pattern) else {
            Issue.record("'\(pattern)' was accepted")
            return
        }
    }

    @Test("the walk covers matches, never follows a symlink, and does not look inside a hidden directory")
    func walk() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("hide-\(UUID().uuidString)").path
        let outside = root + ".outside"
        defer { try? FileManager.default.removeItem(atPath: root); try? FileManager.default.removeItem(atPath: outside) }
        for dir in ["app/config", "secrets/deep", ".git", "out"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(dir)", withIntermediateDirectories: true)
        }
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        for file in [".env", "app/config/.env", "app/main.py", "secrets/deep/key.pem", ".git/config", "\(outside)/.env"] {
            try "x".write(toFile: file.hasPrefix("/") ? file : "\(root)/\(file)", atomically: false, encoding: .utf8)
        }
        try FileManager.default.createSymbolicLink(atPath: "\(root)/out/elsewhere", withDestinationPath: outside)
        try FileManager.default.createSymbolicLink(atPath: "\(root)/app/.env.local", withDestinationPath: "/etc/hostname")
        let patterns = try ["**/.env", "**/.env.*", "secrets", ".git/config"].map { try HidePattern.parse($0).get() }
        let bind = BindGuardsTests.directoryBind(root, at: "/w", readOnly: true)
        let (ops, notes) = try BindGuards.apply([bind], writableGit: false, hide: patterns)
        #expect(notes.isEmpty)
        let hidden = ops.filter { $0.kind == .hide }.map { "\($0.destination) \(FileType.name($0.expectedType ?? 0))" }.sorted()
        #expect(hidden == [
            "/w/.env regular file", "/w/.git/config regular file", "/w/app/.env.local symlink",
            "/w/app/config/.env regular file", "/w/secrets directory",
        ])
        // Each cover follows the bind it covers, and must find its entry there.
        #expect(ops.first == bind)
        #expect(ops.filter { $0.kind == .hide }.allSatisfy { $0.mustExist && $0.source == nil })
    }
}

/// What an earlier hostile run can leave in a writable tree to undo the next run's hides.
struct HideAttackTests {
    static func tree() throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("hide-attack-\(UUID().uuidString)").path
        for dir in [".git/modules/lib", "x", "sep/gitdata", "sep/work"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(dir)", withIntermediateDirectories: true)
        }
        for file in [".env", ".git/config", ".git/modules/lib/config", "sep/gitdata/config", "sep/gitdata/.env"] {
            try "secret".write(toFile: "\(root)/\(file)", atomically: false, encoding: .utf8)
        }
        return root
    }

    @Test("a planted `.git` naming a directory above itself does not bind the tree again over its hides")
    func plantedGitdir() throws {
        let root = try Self.tree()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "gitdir: ..\n".write(toFile: "\(root)/x/.git", atomically: false, encoding: .utf8)
        let patterns = try ["**/.env", "**/config"].map { try HidePattern.parse($0).get() }
        let (ops, _) = try BindGuards.apply([BindGuardsTests.directoryBind(root, at: "/w", readOnly: false)], writableGit: false, hide: patterns)
        #expect(!ops.contains { $0.kind == .bind && $0.destination == "/w" && $0.readOnly }, "\(ops.map(\.summary))")
        // The last cover of /w/.env comes after the last bind that could hold it.
        let lastBind = try #require(ops.lastIndex { $0.kind == .bind && SandboxPath.isWithin("/w/.env", $0.destination) })
        #expect(ops.lastIndex { $0.kind == .hide && $0.destination == "/w/.env" }.map { $0 > lastBind } == true)
    }

    @Test("a separate git directory is bound read-only right after its tree's bind: every guard, and every later mount, on top")
    func separateGitdir() throws {
        let root = try Self.tree()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "gitdir: ../gitdata\n".write(toFile: "\(root)/sep/work/.git", atomically: false, encoding: .utf8)
        let patterns = try ["**/.env", "**/config", "sep/gitdata"].map { try HidePattern.parse($0).get() }
        let later = MountOperation.tmpfs("/w/sep/gitdata", size: 4096, mode: 0o700)
        let (ops, _) = try BindGuards.apply([BindGuardsTests.directoryBind(root, at: "/w", readOnly: false), later], writableGit: false, hide: patterns)
        let rebind = try #require(ops.firstIndex { $0.kind == .bind && $0.destination == "/w/sep/gitdata" })
        #expect(rebind == 1)
        // The hide of the directory itself (the review's finding: a gitdir naming a hidden
        // directory showed it whole), and the user's later tmpfs, both come after it.
        #expect(ops.firstIndex { $0.kind == .hide && $0.destination == "/w/sep/gitdata" }.map { $0 > rebind } == true)
        #expect(ops.last == later)
    }

    @Test("git directories are guarded wherever the .git naming them is: an overlay, a worktree's common directory, a path through a symlink, a bind of /")
    func gitDirectoriesFound() throws {
        let root = try Self.tree()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let fm = FileManager.default
        for dir in ["A", "B/repo.git/worktrees/wt", "B/bare.git/worktrees/w2", "C"] {
            try fm.createDirectory(atPath: "\(root)/\(dir)", withIntermediateDirectories: true)
        }
        try fm.createSymbolicLink(atPath: "\(root)/lnk", withDestinationPath: "\(root)/B")
        // An overlay's .git names a directory in a writable bind, through a symlink.
        try "gitdir: \(root)/lnk/repo.git\n".write(toFile: "\(root)/A/.git", atomically: false, encoding: .utf8)
        // A worktree of a bare repository: hooks and config are in the common directory.
        try "gitdir: \(root)/B/bare.git/worktrees/w2\n".write(toFile: "\(root)/C/.git", atomically: false, encoding: .utf8)
        try "../..\n".write(toFile: "\(root)/B/bare.git/worktrees/w2/commondir", atomically: false, encoding: .utf8)
        var overlay = BindGuardsTests.directoryBind("\(root)/A", at: "\(root)/A", readOnly: false)
        overlay.kind = .overlay
        let ops = [overlay, BindGuardsTests.directoryBind("\(root)/C", at: "\(root)/C", readOnly: true),
                   BindGuardsTests.directoryBind("\(root)/B", at: "/b", readOnly: false)]
        let (result, _) = try BindGuards.apply(ops, writableGit: false)
        let readOnly = result.filter { $0.kind == .bind && $0.readOnly }.map(\.destination)
        #expect(readOnly.contains("/b/repo.git") && readOnly.contains("/b/bare.git") && readOnly.contains("/b/bare.git/worktrees/w2"), "\(readOnly)")
        // With / bound elsewhere, the git directory appears below that place, not beside it.
        let whole = try BindGuards.apply([BindGuardsTests.directoryBind("/", at: "/mnt/r", readOnly: false)], writableGit: false, budget: 1)
        #expect(!whole.ops.contains { $0.destination.hasPrefix("/mnt/r") && !$0.destination.hasPrefix("/mnt/r/") && $0.destination != "/mnt/r" })
        #expect(BindGuards.inside(BindGuardsTests.directoryBind("/", at: "/mnt/r", readOnly: false), "/tmp/g") == "/mnt/r/tmp/g")
        #expect(BindGuards.inside(BindGuardsTests.directoryBind("/src", at: "/", readOnly: false), "/src/g") == "/g")
    }

    @Test("a .git symlink in a writable bind does not make the launch fail: the directory it names is what is guarded")
    func gitSymlink() throws {
        let root = try Self.tree()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createSymbolicLink(atPath: "\(root)/sep/work/.git", withDestinationPath: "../gitdata")
        let (ops, _) = try BindGuards.apply([BindGuardsTests.directoryBind(root, at: "/w", readOnly: false)], writableGit: false)
        #expect(!ops.contains { $0.destination == "/w/sep/work/.git" })
        #expect(ops.contains { $0.kind == .bind && $0.destination == "/w/sep/gitdata" && $0.readOnly })
    }

    @Test("hide looks below .git's top level (a submodule's config), and a tree too large to look through is refused")
    func depthAndSize() throws {
        let root = try Self.tree()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let patterns = try [".git/modules/**/config"].map { try HidePattern.parse($0).get() }
        let bind = BindGuardsTests.directoryBind(root, at: "/w", readOnly: true)
        let (ops, _) = try BindGuards.apply([bind], writableGit: false, hide: patterns)
        #expect(ops.filter { $0.kind == .hide }.map(\.destination) == ["/w/.git/modules/lib/config"])
        // Without hide patterns a walk cut short is a note; with them, the launch is refused.
        #expect(try BindGuards.apply([bind], writableGit: false, budget: 2).notes.count == 1)
        #expect(throws: LaunchError.self) { try BindGuards.apply([bind], writableGit: false, hide: patterns, budget: 2) }
    }

    @Test("many ** cannot make matching slow")
    func noBlowUp() throws {
        let pattern = try HidePattern.parse("**/a/**/a/**/a/**/a/**/a/**/a/**/a/**/c/b").get()
        let path = Array(String(repeating: "/a", count: 40).utf8) + Array("/b".utf8)
        let clock = ContinuousClock()
        let elapsed = clock.measure { #expect(!pattern.matches(path)) }
        #expect(elapsed < .milliseconds(100))
    }
}

/// Cache names and destinations, and the store that keeps them.
struct CacheStoreTests {
    @Test("NAME:DST: names are one plain directory name; DST is absolute or in the home inside")
    func parsing() throws {
        #expect(try CacheMount.parse("pip:~/.cache/pip").get() == CacheMount(name: "pip", destination: "~/.cache/pip"))
        #expect(try CacheMount.parse("go-build:/root/.cache/go-build").get().destination(home: "/home/u") == "/root/.cache/go-build")
        #expect(try CacheMount.parse("m2:~/.m2").get().destination(home: "/home/u") == "/home/u/.m2")
        for bad in ["pip", "a/b:~/x", "..:~/x", ".hidden:~/x", ":~/x", "pip:relative", "pip:~/../x", "pip:/a/../b", "p p:~/x"] {
            guard case .failure = CacheMount.parse(bad) else {
                Issue.record("'\(bad)' was accepted")
                continue
            }
        }
    }

    @Test("a scope is keyed by profile and project unless asked otherwise; the project is the checkout's top")
    func scopes() {
        let a = CacheStore.scopeName(.project, profile: "ci", project: "/src/a")
        #expect(a.hasPrefix("ci-") && a != CacheStore.scopeName(.project, profile: "ci", project: "/src/b"))
        #expect(a != CacheStore.scopeName(.project, profile: "other", project: "/src/a"))
        #expect(CacheStore.scopeName(.profile, profile: "ci", project: "/src/a") == CacheStore.scopeName(.profile, profile: "ci", project: "/src/b"))
        #expect(CacheStore.scopeName(.user, profile: "ci", project: "/x") == "user")
        #expect(CacheStore.scopeName(.project, profile: "./my profile.toml", project: "/x").hasPrefix("__my_profile_toml-"))
        #expect(CacheStore.project(around: "/src/a/pkg/sub", isOwnGit: { $0 == "/src/a/.git" }) == "/src/a")
        #expect(CacheStore.project(around: "/src/a/pkg", isOwnGit: { _ in false }) == "/src/a/pkg")
        #expect(CacheStore.project(around: "/", isOwnGit: { _ in false }) == "/")
    }

    @Test("prepare makes 0700 directories of the caller's, refuses a symlink in the layout, and clear removes read-only trees")
    func store() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("caches-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        let store = try CacheStore.forCaller(environment: ["XDG_CACHE_HOME": base])
        let pip = try store.prepare("pip", scope: "ci-1", about: "project /src/a, profile ci")
        #expect(pip == "\(base)/cell/caches/ci-1/pip")
        var st = stat()
        #expect(lstat(base + "/cell", &st) == 0 && st.st_mode & 0o777 == 0o700)
        #expect(readSmallFile("\(base)/cell/scopes/ci-1") == "project /src/a, profile ci\n")
        // A symlink planted for a cache (say, by a sandbox given the scope's sibling) is refused.
        try FileManager.default.createSymbolicLink(atPath: "\(base)/cell/caches/ci-1/npm", withDestinationPath: "/etc")
        #expect(throws: LaunchError.self) { try store.prepare("npm", scope: "ci-1", about: "x") }
        try FileManager.default.removeItem(atPath: "\(base)/cell/caches/ci-1/npm")
        // Go makes its module cache read-only; clearing must still remove it.
        try FileManager.default.createDirectory(atPath: "\(pip)/mod/pkg", withIntermediateDirectories: true)
        try "x".write(toFile: "\(pip)/mod/pkg/file", atomically: false, encoding: .utf8)
        chmod("\(pip)/mod/pkg", 0o555)
        chmod("\(pip)/mod", 0o555)
        _ = try store.prepare("npm", scope: "ci-2", about: "project /src/b, profile ci")
        #expect(store.list().map { "\($0.scope)/\($0.name)" } == ["ci-1/pip", "ci-2/npm"])
        #expect(try store.clear("pip").map(\.name) == ["pip"])
        #expect(FilesystemView.hostFileType(pip) == nil)
        #expect(FilesystemView.hostFileType("\(base)/cell/scopes/ci-1") == nil)
        // A job that locked its cache (chmod 000) does not lock every later run out.
        let locked = try store.prepare("locked", scope: "ci-3", about: "x")
        chmod(locked, 0)
        #expect(try store.prepare("locked", scope: "ci-3", about: "x") == locked)
        // Nor can nesting deeper than any stack make clear crash or leave it behind.
        chmod(locked, 0)
        var deep = locked
        for _ in 0..<300 { deep += "/d" }
        #expect(mkdir(locked, 0o700) != 0)
        chmod(locked, 0o700)
        try FileManager.default.createDirectory(atPath: String(deep.prefix(3000)), withIntermediateDirectories: true)
        // A directory made read-only below the depth where removal lifts directories up.
        chmod(String(deep.prefix(3000 - 3000 % 2 - 200)), 0o500)
        chmod(locked, 0)
        #expect(try store.clear("locked").count == 1)
        #expect(FilesystemView.hostFileType(locked) == nil)
        #expect(throws: LaunchError.self) { try store.clear("../x") }
        #expect(throws: LaunchError.self) { try store.clear("pip") }
        #expect(try store.clear(nil).count == 1)
    }
}
