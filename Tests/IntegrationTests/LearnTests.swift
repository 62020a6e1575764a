import Foundation
import Testing

/// `cell learn`: real programs learned as the unprivileged uid, their profiles loaded and run
/// again, and what the profiles refuse proven from the host side.
@Suite(.enabled(if: Sandbox.available, "cell cannot start a sandbox on this machine"))
struct LearnTests {
    /// A project directory (bound read-write in the runs) and a directory for the profiles,
    /// apart from it: a file the sandbox can write is no place for its own profile.
    struct Project {
        let root: String
        let profiles: String
        /// Not in /tmp: the sandbox's fresh /tmp, written whole, would hold it (LearnedProfile.unnarrowed).
        init(files: [String: String] = [:]) throws {
            root = "/var/tmp/cell-learn-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: false)
            chmod(root, 0o777)
            profiles = try Sandbox.writableHostDirectory()
            for (name, text) in files {
                let path = root + "/" + name
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try text.write(toFile: path, atomically: false, encoding: .utf8)
            }
            try FileManager.default.createDirectory(atPath: root + "/out", withIntermediateDirectories: true)
            chmod(root + "/out", 0o777)
        }
        func remove() {
            try? FileManager.default.removeItem(atPath: root)
            try? FileManager.default.removeItem(atPath: profiles)
        }
        var bind: [String] { ["--bind", root] }
        func learn(_ command: [String], to profile: String, options: [String] = []) -> Sandbox.Result {
            Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "learn", "-o", profiles + "/" + profile] + options + ["--"] + command, cwd: root)
        }
        /// A run under `profile` with an audit log; its violations, from the log's exit event.
        func run(_ command: [String], profile: String, options: [String] = []) -> (Sandbox.Result, violations: Int?) {
            let log = profiles + "/audit-\(UUID().uuidString).jsonl"
            let r = Sandbox.run(command, options: ["--profile", profile, "--audit-log", log] + options, cwd: root)
            let exit = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").last { $0.contains("\"event\":\"exit\"") }
            let count = exit.flatMap { line -> Int? in
                guard let at = line.range(of: "\"violations\":") else { return nil }
                return Int(line[at.upperBound...].prefix { $0.isNumber })
            }
            return (r, count)
        }
        func auditLines(_ command: [String], profile: String, options: [String] = []) -> [String] {
            let log = profiles + "/audit-\(UUID().uuidString).jsonl"
            _ = Sandbox.run(command, options: ["--profile", profile, "--audit-log", log] + options, cwd: root)
            return ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }
    }

    /// A static program (its start needs only what any glibc program's does) that makes two
    /// calls the learned programs never made: socket(AF_INET) and ptrace. Under the base both
    /// return as the base says; under a learned profile both must be refused and audited.
    static func probe(in project: Project) throws -> String {
        let source = project.profiles + "/probe.c"
        try """
        #include <stdio.h>
        #include <errno.h>
        #include <sys/ptrace.h>
        #include <sys/socket.h>
        int main(void) {
            int s = socket(AF_INET, SOCK_STREAM, 0);
            printf("socket %d %d\\n", s >= 0, s < 0 ? errno : 0);
            long p = ptrace(PTRACE_TRACEME, 0, 0, 0);
            printf("ptrace %ld\\n", p);
            return 0;
        }
        """.write(toFile: source, atomically: false, encoding: .utf8)
        let binary = project.profiles + "/probe"
        let built = Sandbox.execute(["cc", "-static", "-O1", "-o", binary, source])
        #expect(built.status == 0, "\(built.stderr)")
        chmod(binary, 0o755)
        return binary
    }

    /// The learned profile loads, and refuses (and audits) what the program never did, which
    /// its base allows: the probe's socket(AF_INET) succeeds under the base, not under it.
    func checkNarrower(_ profile: String, project: Project, options: [String] = []) throws {
        let check = Sandbox.execute([Sandbox.cell, "profile", "check", profile])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        let probe = try Self.probe(in: project)
        let base = Sandbox.run([probe], options: ["--ro-bind", project.profiles] + options, cwd: project.root)
        #expect(base.stdout.hasPrefix("socket 1 0\n"), "\(base.stdout)\(base.stderr)")
        let lines = project.auditLines([probe], profile: profile, options: ["--ro-bind", project.profiles] + options)
        for call in ["socket", "ptrace"] {
            #expect(lines.contains { $0.contains("\"syscall\":\"\(call)\"") && $0.contains("\"action\":\"denied\"") }, "\(call): \(lines)")
        }
    }

    static let script = """
    import subprocess, sys
    data = open('input.txt').read()
    with open('out/result.txt', 'w') as f:
        f.write(data.upper())
    print(subprocess.run(['wc', '-c', 'input.txt'], capture_output=True, text=True).stdout.split()[0])
    """

    @Test("a Python script: the learned profile loads, re-runs cleanly five times, and refuses what the script never did")
    func pythonScript() throws {
        let project = try Project(files: ["input.txt": "hello learn\n", "job.py": Self.script])
        defer { project.remove() }
        let learned = project.learn(["python3", "job.py"], to: "job.toml", options: project.bind)
        #expect(learned.status == 0 && learned.stdout == "12\n", "\(learned.stderr)")
        let profile = project.profiles + "/job.toml"
        let text = try String(contentsOfFile: profile, encoding: .utf8)
        #expect(text.contains("extends = \"default\"") && text.contains("\"openat\"") && text.contains("\"execve\""))
        #expect(text.contains("write = [\"\(project.root)/out\"]"), "\(text)")
        let check = Sandbox.execute([Sandbox.cell, "profile", "check", profile])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")

        for _ in 0..<5 {
            let (r, violations) = project.run(["python3", "job.py"], profile: profile, options: project.bind)
            #expect(r.status == 0 && r.stdout == "12\n" && violations == 0, "\(r.stderr)")
        }
        #expect(try String(contentsOfFile: project.root + "/out/result.txt", encoding: .utf8) == "HELLO LEARN\n")

        // socket(AF_INET): the base allows it, the learned profile refuses it and audits it.
        let inet = "import socket\ntry:\n    socket.socket(socket.AF_INET); print('made')\nexcept PermissionError:\n    print('refused')"
        #expect(Sandbox.run(["python3", "-c", inet], options: project.bind, cwd: project.root).stdout == "made\n")
        let lines = project.auditLines(["python3", "-c", inet], profile: profile, options: project.bind)
        #expect(lines.contains { $0.contains("\"syscall\":\"socket\"") && $0.contains("\"action\":\"denied\"") }, "\(lines)")
        // ptrace: never made; refused and audited.
        let ptrace = "import ctypes\nprint(ctypes.CDLL(None, use_errno=True).ptrace(0, 0, 0, 0), ctypes.get_errno())"
        let traced = project.auditLines(["python3", "-c", ptrace], profile: profile, options: project.bind)
        #expect(traced.contains { $0.contains("\"syscall\":\"ptrace\"") && $0.contains("\"action\":\"denied\"") })

        // A write where the script never wrote: the base (with the same bind) lets it through;
        // the learned profile's Landlock rules do not, and the host never sees the file.
        let stray = "open('stray.txt', 'w').write('x')"
        #expect(Sandbox.run(["python3", "-c", stray], options: project.bind, cwd: project.root).status == 0)
        #expect(FileManager.default.fileExists(atPath: project.root + "/stray.txt"))
        try FileManager.default.removeItem(atPath: project.root + "/stray.txt")
        let refused = project.run(["python3", "-c", stray], profile: profile, options: project.bind).0
        #expect(refused.status != 0 && refused.stderr.contains("PermissionError"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: project.root + "/stray.txt"))
    }

    @Test("a shell pipeline re-runs cleanly under its learned profile")
    func shellPipeline() throws {
        let project = try Project(files: ["words.txt": "pear\napple\nfig\nplum\n"])
        defer { project.remove() }
        let pipeline = ["sh", "-c", "cat words.txt | tr a-z A-Z | sort | head -n 3"]
        let learned = project.learn(pipeline, to: "pipe.toml")
        #expect(learned.status == 0 && learned.stdout == "APPLE\nFIG\nPEAR\n", "\(learned.stderr)")
        let profile = project.profiles + "/pipe.toml"
        try checkNarrower(profile, project: project)
        for _ in 0..<5 {
            let (r, violations) = project.run(pipeline, profile: profile)
            #expect(r.status == 0 && r.stdout == "APPLE\nFIG\nPEAR\n" && violations == 0, "\(r.stderr)")
        }
        // Nothing was written: no write rule, so not even the fresh /tmp is writable.
        #expect(try String(contentsOfFile: profile, encoding: .utf8).contains("write = []"))
        let (tmp, _) = project.run(["sh", "-c", "echo x > /tmp/x"], profile: profile)
        #expect(tmp.status != 0)
    }

    @Test("a C compile re-runs cleanly under its learned profile")
    func cCompile() throws {
        let project = try Project(files: ["hello.c": "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n"])
        defer { project.remove() }
        let compile = ["cc", "-O1", "-o", "out/hello", "hello.c"]
        let learned = project.learn(compile, to: "cc.toml", options: project.bind)
        #expect(learned.status == 0, "\(learned.stderr)")
        let profile = project.profiles + "/cc.toml"
        try checkNarrower(profile, project: project, options: project.bind)
        for _ in 0..<5 {
            try? FileManager.default.removeItem(atPath: project.root + "/out/hello")
            let (r, violations) = project.run(compile, profile: profile, options: project.bind)
            #expect(r.status == 0 && violations == 0, "\(r.stderr)")
            #expect(FileManager.default.isExecutableFile(atPath: project.root + "/out/hello"))
        }
        let text = try String(contentsOfFile: profile, encoding: .utf8)
        #expect(text.contains("write = [\"/tmp\", \"\(project.root)/out\"]") && !text.contains("# Note:"), "\(text)")
    }

    @Test("a write rule never follows a symlink an earlier run planted (here to the command's stdin)")
    func writeRuleThroughASymlink() throws {
        let project = try Project(files: ["input.txt": "original\n"])
        defer { project.remove() }
        // Without a sandbox, writing /proc/self/fd/0 rewrites the file stdin is.
        let bare = Sandbox.execute(["sh", "-c", "echo bare > /proc/self/fd/0"], stdin: project.root + "/input.txt")
        #expect(bare.status == 0 && (try? String(contentsOfFile: project.root + "/input.txt", encoding: .utf8)) == "bare\n")
        try "original\n".write(toFile: project.root + "/input.txt", atomically: false, encoding: .utf8)
        chown(project.root + "/input.txt", Sandbox.callerUID, Sandbox.callerGID) // the sandbox's user could write it
        // A profile whose write rule is a symlink a sandbox left in the bound tree.
        try FileManager.default.createSymbolicLink(atPath: project.root + "/out/in", withDestinationPath: "/proc/self/fd/0")
        let profile = project.profiles + "/planted.toml"
        try "extends = \"default\"\n[landlock]\nwrite = [\"\(project.root)/out/in\"]\n".write(toFile: profile, atomically: false, encoding: .utf8)
        let r = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "run", "--profile", profile, "--bind", project.root, "--",
                                                          "sh", "-c", "echo PWNED > /proc/self/fd/0"], stdin: project.root + "/input.txt")
        #expect(r.status != 0, "\(r.stderr)")
        #expect(try String(contentsOfFile: project.root + "/input.txt", encoding: .utf8) == "original\n")
    }

    @Test("a project inside the fresh /tmp is said to be written unnarrowed")
    func projectBeneathTmp() throws {
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "learn", "--bind", dir, "--", "sh", "-c", "echo x > /tmp/a; echo y > \(dir)/b"])
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout.contains("write = [\"/tmp\"]") && out.stdout.contains("# Note: /tmp holds \(dir), mounted beneath it"), "\(out.stdout)")
    }

    static let personality = """
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    print('query', libc.personality(0xffffffff) >= 0)
    print('no-aslr', libc.personality(0x0040000), ctypes.get_errno())
    print('keyctl', libc.syscall(250, 0, 0, 0, 0, 0), ctypes.get_errno())
    """

    @Test("what the base refuses stays refused: a call, and a call with some arguments (a personality flag)")
    func neverMoreThanTheBase() throws {
        let project = try Project(files: ["p.py": Self.personality])
        defer { project.remove() }
        let expected = "query True\nno-aslr -1 1\nkeyctl -1 1\n"
        let learned = project.learn(["python3", "p.py"], to: "p.toml")
        #expect(learned.stdout == expected, "\(learned.stderr)")
        let profile = project.profiles + "/p.toml"
        let text = try String(contentsOfFile: profile, encoding: .utf8)
        #expect(text.contains("#   refused: personality(0x40000 PER_LINUX|ADDR_NO_RANDOMIZE) (1)") && text.contains("#   refused: keyctl (1)"), "\(text)")
        #expect(!text.contains("\"keyctl\"") && text.contains("personality = ["))
        // Under the learned profile: the query still works, the flag and keyctl are refused and audited.
        let lines = project.auditLines(["python3", "p.py"], profile: profile)
        #expect(lines.filter { $0.contains("\"action\":\"denied\"") }.count == 2, "\(lines)")
        #expect(Sandbox.run(["python3", "p.py"], options: ["--profile", profile], cwd: project.root).stdout == expected)
    }

    @Test("--merge folds a second run in, under the profile the first was learned under")
    func merge() throws {
        let project = try Project(files: [:])
        defer { project.remove() }
        let profile = project.profiles + "/m.toml"
        #expect(project.learn(["sh", "-c", "echo one"], to: "m.toml", options: ["--profile", "strict"]).status == 0)
        let uname = ["python3", "-c", "import os; print(os.uname().sysname)"]
        // Not learned yet: python under the first run's profile is refused at its first new call.
        #expect(project.run(uname, profile: profile).violations ?? 0 > 0)
        let second = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "learn", "--merge", profile, "--"] + uname, cwd: project.root)
        #expect(second.status == 0 && second.stdout == "Linux\n", "\(second.stderr)")
        let text = try String(contentsOfFile: profile, encoding: .utf8)
        #expect(text.contains("extends = \"strict\"") && text.contains("#   runs: 2"))
        for command in [["sh", "-c", "echo one"], uname] {
            let (r, violations) = project.run(command, profile: profile)
            #expect(r.status == 0 && violations == 0, "\(command): \(r.stderr)")
        }
        // Another base for the merge, and a learned profile as a base: refused, with the reason.
        let wrongBase = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "learn", "--merge", profile, "--profile", "default", "--", "true"])
        #expect(wrongBase.status == 125 && wrongBase.stderr.contains("was learned under 'strict'"), "\(wrongBase.stderr)")
        let learnedBase = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "learn", "--profile", profile, "--", "true"])
        #expect(learnedBase.status == 125 && learnedBase.stderr.contains("is itself narrowed"), "\(learnedBase.stderr)")
        let noSeparator = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "learn", "true"])
        #expect(noSeparator.status == 125 && noSeparator.stderr.contains("the command follows --"))
    }
}
