import CellLauncher
import CellPolicy
import Glibc
import Testing
@testable import CellCLI

struct ArgumentParserTests {
    func run(_ args: String...) throws -> RunOptions {
        guard case .run(let options) = try ArgumentParser.parse(["run"] + args) else {
            Issue.record("not a run command")
            return RunOptions()
        }
        return options
    }

    func error(_ args: [String]) -> String? {
        do {
            _ = try ArgumentParser.parse(args)
            return nil
        } catch {
            return error.message
        }
    }

    @Test func learnTakesRunOptionsItsOwnAndTheCommandAfterDoubleDashOnly() throws {
        guard case .learn(let o) = try ArgumentParser.parse(["learn", "-o", "p.toml", "--profile", "ci", "--merge=m.toml",
                                                             "--bind", "/w", "--", "make", "-o", "x"]) else {
            Issue.record("not a learn command")
            return
        }
        #expect(o.output == "p.toml" && o.merge == "m.toml" && o.run.profile == "ci")
        #expect(o.run.request.command == ["make", "-o", "x"]) // the command's own -o stays its own
        #expect(error(["learn", "make"])?.contains("the command follows --") == true)
        #expect(error(["learn", "-o", "--", "true"])?.contains("-o needs a file path") == true)
        #expect(error(["learn", "--dry-run", "--", "true"])?.contains("--dry-run goes with cell run") == true)
        #expect(try ArgumentParser.parse(["learn", "--help"]) == .help(topic: "learn"))
        for option in [["--seccomp", "strict"], ["--seccomp-json", "/p.json"], ["--allow-syscall", "ptrace"], ["--deny-syscall", "mprotect"]] {
            #expect(error(["learn"] + option + ["--", "true"])?.contains("\(option[0]) would not go with the learned profile") == true)
        }
    }

    @Test func commandAfterDoubleDash() throws {
        let o = try run("--hostname", "h", "--", "ls", "--hostname", "-l")
        #expect(o.request.command == ["ls", "--hostname", "-l"])
        #expect(o.request.hostname == "h")
    }

    @Test func commandStartsAtFirstNonOption() throws {
        let o = try run("--env=A=1", "python3", "-c", "print(1)")
        #expect(o.request.command == ["python3", "-c", "print(1)"])
        #expect(o.request.environment == [EnvAssignment(name: "A", value: "1")])
    }

    @Test func inlineAndSeparateValues() throws {
        let o = try run("--cwd=/usr", "--keep-env", "CI_*", "--keep-env=HOME", "--status-json", "/tmp/s.json", "--dry-run", "--", "true")
        #expect(o.request.workingDirectory == "/usr")
        #expect(o.request.keepEnvironment == ["CI_*", "HOME"])
        #expect(o.request.statusJSONPath == "/tmp/s.json")
        #expect(o.dryRun)
    }

    @Test func envValueMayContainEquals() throws {
        #expect(try run("--env", "URL=a=b", "x").request.environment == [EnvAssignment(name: "URL", value: "a=b")])
        #expect(try run("--env", "EMPTY=", "x").request.environment == [EnvAssignment(name: "EMPTY", value: "")])
    }

    @Test func outerID() throws {
        #expect(try run("--outer-id", "1000", "x").request.outerID == OuterID(uid: 1000, gid: 1000))
        #expect(try run("--outer-id", "1000:2000", "x").request.outerID == OuterID(uid: 1000, gid: 2000))
    }

    @Test("bad input is a one-line message", arguments: [
        (["run"], "no command given"),
        (["run", "--"], "no command given"),
        (["run", "--hostname"], "--hostname needs a value"),
        (["run", "--env", "NOVALUE", "x"], "--env needs NAME=VALUE"),
        (["run", "--env", "=v", "x"], "is not a valid variable name"),
        (["run", "--keep-env", "A=B", "x"], "is not a variable name"),
        (["run", "--keep-env", "A*B", "x"], "is not a variable name"),
        (["run", "--cwd", "rel", "x"], "absolute path"),
        (["run", "--outer-id", "-1", "x"], "--outer-id needs UID"),
        (["run", "--outer-id", "1:2:3", "x"], "--outer-id needs UID"),
        (["run", "--outer-id", "4294967295", "x"], "--outer-id needs UID"),
        (["run", "--hostname", "a b", "x"], "not a valid hostname"),
        (["run", "--hostname", String(repeating: "a", count: 65), "x"], "not a valid hostname"),
        (["run", "--dry-run=yes", "x"], "takes no value"),
        (["run", "--hostnme", "x", "y"], "did you mean '--hostname'"),
        (["run", "--frobnicate", "x"], "unknown option '--frobnicate'"),
        (["frob"], "unknown command 'frob'"),
        (["--frob"], "unknown option '--frob'"),
        (["help", "nothing"], "no help on 'nothing'"),
        (["version", "x"], "takes no arguments"),
    ])
    func errors(args: [String], fragment: String) {
        let message = error(args)
        #expect(message?.contains(fragment) == true, "\(args): \(message ?? "accepted")")
        #expect(message?.contains("\n") == false)
    }

    @Test func helpAndVersion() throws {
        #expect(try ArgumentParser.parse([]) == .help(topic: nil))
        #expect(try ArgumentParser.parse(["--help"]) == .help(topic: nil))
        #expect(try ArgumentParser.parse(["help", "run"]) == .help(topic: "run"))
        #expect(try ArgumentParser.parse(["run", "--help"]) == .help(topic: "run"))
        #expect(try ArgumentParser.parse(["--version"]) == .version)
    }

    @Test func hostnames() {
        #expect(ArgumentParser.isValidHostname("cell"))
        #expect(ArgumentParser.isValidHostname("a-b.c9"))
        #expect(!ArgumentParser.isValidHostname(""))
        #expect(!ArgumentParser.isValidHostname("-a"))
        #expect(!ArgumentParser.isValidHostname("a/b"))
        #expect(!ArgumentParser.isValidHostname("é"))
    }

    @Test func editDistances() {
        #expect(levenshtein("--hostname", "--hostnme") == 1)
        #expect(levenshtein("", "abc") == 3)
        #expect(levenshtein("same", "same") == 0)
    }
}

struct MountFlagTests {
    func options(_ args: String...) throws -> RunOptions {
        guard case .run(let o) = try ArgumentParser.parse(["run"] + args + ["--", "true"]) else { return RunOptions() }
        return o
    }

    @Test func bindsKeepTheirOrder() throws {
        let o = try options("--ro-bind", "/usr/src", "--bind", "out:/work/out", "--tmpfs", "/scratch:size=8m,mode=0700", "--ro-bind=/a:/b")
        #expect(o.request.mounts == [
            .bind(source: "/usr/src", destination: nil, readOnly: true),
            .bind(source: "out", destination: "/work/out", readOnly: false),
            .tmpfs(destination: "/scratch", size: 8 << 20, mode: 0o700),
            .bind(source: "/a", destination: "/b", readOnly: true),
        ])
    }

    @Test("bad mounts", arguments: [
        (["--bind", ""], "needs SRC[:DST]"),
        (["--bind", "/a:b"], "must be an absolute path"),
        (["--bind", "/a:/b/../c"], "'..' is not allowed"),
        (["--ro-bind", "../x"], "without '..'"),
        (["--tmpfs", "/"], "other than /"),
        (["--tmpfs", "x"], "absolute path"),
        (["--tmpfs", "/x:size=0"], "is not a size"),
        (["--tmpfs", "/x:mode=999"], "is not an octal mode"),
        (["--tmpfs", "/x:color=red"], "unknown setting"),
    ])
    func badMounts(args: [String], fragment: String) {
        do {
            _ = try ArgumentParser.parse(["run"] + args + ["--", "true"])
            Issue.record("accepted \(args)")
        } catch {
            #expect(error.message.contains(fragment), "\(args): \(error.message)")
        }
    }
}

struct LimitFlagTests {
    @Test func limitsAndNetwork() throws {
        guard case .run(let o) = try ArgumentParser.parse(["run", "--timeout", "5m", "--kill-after", "1s", "--memory", "512m",
                                                          "--cpu-time", "1500ms", "--file-size", "1g", "--open-files", "64", "--pids", "10",
                                                          "--net", "user", "--publish", "8080:80", "--allow-host-loopback",
                                                          "--cgroup", "/sys/fs/cgroup/x", "--", "true"]) else {
            Issue.record("not run")
            return
        }
        #expect(o.request.timeout == 300_000 && o.request.killAfter == 1000 && o.request.memory == 512 << 20 && o.request.cpuTime == 2)
        #expect(o.request.fileSize == 1 << 30 && o.request.openFiles == 64 && o.request.processes == 10)
        #expect(o.request.network == "user" && o.request.publish == [PublishedPort(hostPort: 8080, sandboxPort: 80)] && o.request.allowHostLoopback)
        #expect(o.request.cgroup == .below("/sys/fs/cgroup/x"))
        guard case .run(let h) = try ArgumentParser.parse(["run", "--net", "user", "--net-helper", "slirp4netns", "--", "true"]) else { return }
        #expect(h.request.networkHelper == .slirp4netns)
        for (word, choice) in [("auto", CgroupChoice.auto), ("none", .none)] {
            guard case .run(let w) = try ArgumentParser.parse(["run", "--cgroup", word, "--", "true"]) else { return }
            #expect(w.request.cgroup == choice)
        }
    }

    @Test("bad limits", arguments: [
        (["--timeout", "soon"], "is not a duration"), (["--memory", "lots"], "is not a size"),
        (["--pids", "0"], "is not a positive number"), (["--open-files", "-3"], "is not a positive number"),
        (["--publish", "80"], "needs HOSTPORT:SANDBOXPORT"), (["--cgroup", "rel"], "is not auto, none or an absolute path"),
        (["--net", "bridge"], "is not a network mode"), (["--allow-host-loopback=yes"], "takes no value"),
        (["--net-helper", "socat"], "is not a user-mode network helper (auto, pasta, slirp4netns)"),
    ])
    func bad(args: [String], fragment: String) {
        do {
            _ = try ArgumentParser.parse(["run"] + args + ["--", "true"])
            Issue.record("accepted \(args)")
        } catch {
            #expect(error.message.contains(fragment), "\(error.message)")
        }
    }

    @Test("--as-root and --as-caller choose who the sandbox is inside; both at once is an error")
    func identityFlags() throws {
        guard case .run(let caller) = try ArgumentParser.parse(["run", "--as-caller", "--", "id"]),
              case .run(let root) = try ArgumentParser.parse(["run", "--as-root", "id"]),
              case .run(let neither) = try ArgumentParser.parse(["run", "id"]) else {
            Issue.record("not a run command")
            return
        }
        #expect(caller.request.inside == .caller && root.request.inside == .root && neither.request.inside == nil)
        #expect(throws: UsageError.self) { try ArgumentParser.parse(["run", "--as-root", "--as-caller", "id"]) }
    }
}
