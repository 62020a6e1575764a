import Foundation
import Testing

/// Profiles, end to end, as an unprivileged uid.
@Suite(.enabled(if: Sandbox.available, "cell cannot start a sandbox on this machine"))
struct ProfileIntegrationTests {
    @Test("each built-in profile runs a command", arguments: ["default", "strict", "ci", "network"])
    func builtInRuns(profile: String) {
        let r = Sandbox.run(["sh", "-c", "echo ok"], options: ["--profile", profile])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "ok\n")
        #expect(r.stderr.isEmpty, "\(r.stderr)")
    }

    @Test("a profile that turns a namespace on or off gets exactly its own namespaces",
          arguments: [("[namespaces]\ntime = true\n", "time"), ("[network]\nmode = \"host\"\n", "net"), ("[namespaces]\nuts = false\n", "uts")])
    func namespacesOfTheProfile(body: String, namespace: String) throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ("extends = \"default\"\n" + body).write(toFile: "\(dir)/p.toml", atomically: true, encoding: .utf8)
        chmod("\(dir)/p.toml", 0o644)
        let host = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/\(namespace)")
        let r = Sandbox.run(["readlink", "/proc/self/ns/\(namespace)"], options: ["--profile", "\(dir)/p.toml"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.isEmpty, "\(r.stderr)")
        let inside = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        if namespace == "time" {
            #expect(inside != host, "the time namespace was not created")
        } else {
            #expect(inside == host, "the \(namespace) namespace should be the host's")
        }
    }

    @Test("ci: the working directory is writable through an overlay; cwd = rw writes it; default: read-only; strict: not there")
    func workingDirectoryModes() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ci = Sandbox.run(["sh", "-c", "pwd; echo built > out.txt; cat out.txt"], options: ["-p", "ci"], cwd: dir)
        #expect(ci.status == 0, "\(ci.stderr)")
        #expect(ci.stdout == "\(dir)\nbuilt\n")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/out.txt"), "the overlay wrote through to the checkout")
        try "extends = \"ci\"\n[filesystem]\ncwd = \"rw\"\n".write(toFile: "\(dir)/rw.toml", atomically: true, encoding: .utf8)
        chmod("\(dir)/rw.toml", 0o644)
        let rw = Sandbox.run(["sh", "-c", "echo built > out.txt"], options: ["-p", "\(dir)/rw.toml"], cwd: dir)
        #expect(rw.status == 0, "\(rw.stderr)")
        #expect(FileManager.default.contents(atPath: "\(dir)/out.txt") == Data("built\n".utf8))
        let owner = try FileManager.default.attributesOfItem(atPath: "\(dir)/out.txt")[.ownerAccountID] as? NSNumber
        #expect(owner?.uint32Value == Sandbox.callerUID)

        let def = Sandbox.run(["sh", "-c", "echo x > out2.txt"], options: ["-p", "default"], cwd: dir)
        #expect(def.status != 0)
        #expect(def.stderr.contains("Read-only file system"))

        let strict = Sandbox.run(["sh", "-c", "pwd; test -e \(dir) && echo visible || echo invisible"], options: ["-p", "strict"], cwd: dir)
        #expect(strict.stdout == "/\ninvisible\n", "\(strict.stderr)")
        #expect(strict.stderr.isEmpty)
    }

    @Test("ci keeps the CI systems' non-secret variables, never their tokens; default keeps none")
    func ciEnvironment() {
        let secrets = ["CI_JOB_TOKEN", "CI_REGISTRY_PASSWORD", "CI_JOB_JWT_V2", "CI_REPOSITORY_URL", "GITHUB_TOKEN",
                       "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_RUNTIME_TOKEN", "BUILDKITE_AGENT_ACCESS_TOKEN", "SYSTEM_ACCESSTOKEN"]
        var env = ["PATH": "/usr/bin:/bin", "CI": "true", "GITHUB_SHA": "abc", "CI_COMMIT_SHA": "def", "CI_JOB_ID": "7", "SECRET": "s"]
        for name in secrets { env[name] = "leaked-\(name)" }
        let ci = Sandbox.run(["env"], options: ["-p", "ci", "--net", "none"], environment: env)
        let lines = Set(ci.stdout.split(separator: "\n").map(String.init))
        #expect(lines.isSuperset(of: ["CI=true", "GITHUB_SHA=abc", "CI_COMMIT_SHA=def", "CI_JOB_ID=7"]), "\(ci.stdout) \(ci.stderr)")
        #expect(!ci.stdout.contains("leaked-") && !lines.contains("SECRET=s"), "\(ci.stdout)")
        let def = Sandbox.run(["env"], environment: env)
        #expect(!def.stdout.contains("CI=true"))
    }

    @Test("a user profile in $XDG_CONFIG_HOME is found by name, extends a built-in, and the command line overrides it")
    func userProfile() throws {
        let config = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: config) }
        try FileManager.default.createDirectory(atPath: "\(config)/cell/profiles", withIntermediateDirectories: true)
        try """
        description = "mine"
        extends = "default"
        hostname = "from-profile"
        [environment]
        set = { GREETING = "hello" }
        [[filesystem.mounts]]
        type = "tmpfs"
        dest = "/scratch"
        size = "8m"
        """.write(toFile: "\(config)/cell/profiles/mine.toml", atomically: true, encoding: .utf8)
        chmod("\(config)/cell/profiles/mine.toml", 0o644)
        chmod("\(config)/cell", 0o755)
        chmod("\(config)/cell/profiles", 0o755)
        let env = ["PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": config, "HOME": "/nonexistent"]
        let r = Sandbox.run(["sh", "-c", "hostname; echo $GREETING; touch /scratch/x && echo scratch-ok"], options: ["-p", "mine"], environment: env)
        #expect(r.stdout == "from-profile\nhello\nscratch-ok\n", "\(r.stderr)")
        let overridden = Sandbox.run(["hostname"], options: ["-p", "mine", "--hostname", "from-cli"], environment: env)
        #expect(overridden.stdout == "from-cli\n")
        let list = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "profile", "list"], environment: env)
        #expect(list.stdout.contains("mine"))
        #expect(list.stdout.contains("built-in"))
    }

    @Test("a bad profile stops the run with every problem as FILE:LINE:COLUMN and status 125")
    func badProfile() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/bad.toml"
        try "hostnme = \"x\"\n[seccomp]\ndeny = [\"mout\"]\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o644)
        let r = Sandbox.run(["touch", "\(dir)/ran"], options: ["--profile", path, "--bind", dir])
        #expect(r.status == 125)
        #expect(r.stderr == """
            cell: \(path):1:1: unknown key 'hostnme' at the top level; did you mean 'hostname'?
            cell: \(path):3:9: unknown system call 'mout'; did you mean 'mount'?

            """)
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/ran"))

        let check = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "profile", "check", path])
        #expect(check.status == 125)
        #expect(check.stderr.split(separator: "\n").count == 2)
        let good = "\(dir)/good.toml"
        try "extends = \"strict\"\n".write(toFile: good, atomically: true, encoding: .utf8)
        chmod(good, 0o644)
        let ok = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "profile", "check", good])
        #expect(ok.status == 0 && ok.stdout == "\(good): ok\n")
    }

    @Test("cell profile show prints TOML that cell profile check accepts")
    func showThenCheck() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let show = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "profile", "show", "ci"])
        #expect(show.status == 0)
        #expect(show.stdout.contains("cwd = \"overlay\""))
        try show.stdout.write(toFile: "\(dir)/shown.toml", atomically: true, encoding: .utf8)
        chmod("\(dir)/shown.toml", 0o644)
        #expect(Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "profile", "check", "\(dir)/shown.toml"]).status == 0)
    }

    @Test("--net host shares the host's network namespace; the default has only lo")
    func networkModes() throws {
        let host = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
        #expect(Sandbox.run(["readlink", "/proc/self/ns/net"], options: ["--net", "host"]).stdout == host + "\n")
        #expect(Sandbox.run(["readlink", "/proc/self/ns/net"]).stdout != host + "\n")
        let bad = Sandbox.run(["true"], options: ["--net", "bridge"])
        #expect(bad.status == 125)
        #expect(bad.stderr.contains("not a network mode"))
    }
}

/// Inputs on which the toml++ parser (inside TOMLKit, which cell used before it had its own
/// parser) aborted the process, found by the fuzzer: through the cell binary, each one must be a
/// diagnostic with a place and status 125 — never a crash.
@Suite(.enabled(if: Sandbox.available, "cell cannot start a sandbox on this machine"))
struct FuzzRegressionIntegrationTests {
    @Test("past fuzzer crashes are diagnostics, not crashes")
    func pastCrashes() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/profiles/fuzz-regressions")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        #expect(files.count >= 3)
        for file in files {
            let r = Sandbox.execute([Sandbox.cell, "profile", "check", dir.appendingPathComponent(file).path])
            #expect(r.status == 125, "\(file): \(r.status) \(r.stderr)")
            #expect(!r.stderr.contains("Assertion") && !r.stderr.contains("crashed"), "\(file): \(r.stderr)")
            #expect(r.stderr.contains(":1:") || r.stderr.contains(":2:") || r.stderr.contains(":3:"), "\(file): \(r.stderr)")
        }
    }
}
