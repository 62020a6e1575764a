import CellPolicy
import Foundation
import Testing
@testable import CellProfile

let variables = ProfileVariables(cwd: "/work/project", home: "/home/u", tmpdir: "/tmp", uid: 1000)

/// A loader over an in-memory file system: user, /etc and built-in levels.
func loader(files: [String: String], builtIns: [String: String] = BuiltinProfiles.all) -> ProfileLoader {
    ProfileLoader(variables: variables, userDirectory: "/home/u/.config/cell/profiles", systemDirectory: "/etc/cell/profiles",
                  builtIns: builtIns, readFile: { files[$0] },
                  listDirectory: { dir in files.keys.filter { $0.hasPrefix(dir + "/") }.map { String($0.dropFirst(dir.count + 1)) } })
}

func resolve(_ text: String, files: [String: String] = [:]) throws(ProfileDiagnosticList) -> Profile {
    try loader(files: files.merging(["/p/test.toml": text]) { a, _ in a }).resolve("/p/test.toml")
}

func diagnostics(_ text: String) -> [String] {
    do {
        _ = try resolve(text)
        return []
    } catch {
        return error.diagnostics.map(\.description)
    }
}

struct BuiltinProfilesTests {
    @Test("every built-in profile loads", arguments: ["default", "strict", "ci", "network", "ci-registries"])
    func loads(name: String) throws {
        let p = try loader(files: [:]).resolve(name)
        #expect(p.name == name)
        #expect(!p.description.isEmpty)
        #expect(p.namespaces.isSuperset(of: [.mount, .pid, .net, .ipc, .uts, .cgroup]))
    }

    @Test("show round-trips: the printed TOML loads back to an equal profile", arguments: ["default", "strict", "ci", "network", "ci-registries"])
    func roundTrip(name: String) throws {
        let p = try loader(files: [:]).resolve(name)
        var back = try resolve(ProfileWriter.toml(p))
        back.name = p.name
        #expect(back == p)
    }

    @Test func defaultSpellsOutTheBase() throws {
        var p = try loader(files: [:]).resolve("default")
        p.description = ""
        #expect(p == Profile.base(name: "default"))
    }

    @Test("[limits] cgroup: auto by default, none, or a delegated directory")
    func cgroupChoice() throws {
        #expect(try loader(files: [:]).resolve("default").limits.cgroup == .auto)
        #expect(try resolve("[limits]\ncgroup = \"none\"\n").limits.cgroup == .none)
        #expect(try resolve("[limits]\ncgroup = \"/sys/fs/cgroup/ci\"\n").limits.cgroup == .below("/sys/fs/cgroup/ci"))
        #expect(diagnostics("[limits]\ncgroup = \"ci\"\n").first?.contains("'ci' must be an absolute path") == true)
    }

    @Test func strictAndCI() throws {
        let strict = try loader(files: [:]).resolve("strict")
        #expect(strict.seccompPolicy == "strict" && strict.workingDirectoryMount == .none)
        let ci = try loader(files: [:]).resolve("ci")
        #expect(ci.workingDirectoryMount == .overlay)
        #expect(ci.keepEnvironment.contains("GITHUB_SHA") && ci.keepEnvironment.contains("CI") && !ci.keepEnvironment.contains { $0.hasSuffix("*") })
    }

    @Test("the pre-parsed built-in profiles are what the TOML parser makes of their text", arguments: ["default", "strict", "ci", "network", "ci-registries"])
    func preParsedMatchesTheParser(name: String) throws {
        let text = try #require(BuiltinProfiles.all[name])
        #expect(BuiltinProfiles.parsed[name] == .table(try TOMLDocument.parse(text)))
    }

    @Test("the embedded profiles are exactly Profiles/*.toml (run Scripts/embed-profiles after editing)")
    func embeddedMatchesFiles() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Profiles")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".toml") }
        #expect(Set(files.map { String($0.dropLast(5)) }) == Set(BuiltinProfiles.all.keys))
        for file in files {
            let text = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
            let expected = text.hasSuffix("\n") ? String(text.dropLast()) : text
            #expect(BuiltinProfiles.all[String(file.dropLast(5))] == expected, "\(file)")
        }
    }
}

struct ExtendsAndMergeTests {
    @Test func chainsApplyFromTheRootDown() throws {
        let files = [
            "/home/u/.config/cell/profiles/base.toml": """
            extends = "ci"
            hostname = "base"
            [capabilities]
            keep = ["CAP_CHOWN"]
            """,
            "/etc/cell/profiles/middle.toml": """
            extends = "base"
            [capabilities]
            keep_add = ["CAP_KILL"]
            [environment]
            keep_remove = ["CI_*"]
            set = { A = "1" }
            """,
        ]
        let p = try resolve("extends = \"middle\"\n[capabilities]\nkeep_remove = [\"CAP_CHOWN\"]\n[environment]\nset = { A = \"2\", B = \"3\" }\n", files: files)
        #expect(p.hostname == "base")
        #expect(p.workingDirectoryMount == .overlay) // from ci
        #expect(p.capabilities == ["CAP_KILL"])
        #expect(p.keepEnvironment.contains("CI") && !p.keepEnvironment.contains("CI_*"))
        #expect(p.setEnvironment == [EnvironmentVariable(name: "A", value: "2"), EnvironmentVariable(name: "B", value: "3")])
    }

    @Test func listsAreReplacedUnlessAddedTo() throws {
        let files = ["/p/parent.toml": "[seccomp]\ndeny = [\"ptrace\", \"kcmp\"]\nallow = [\"bpf\"]\n"]
        let replaced = try resolve("extends = \"parent.toml\"\n[seccomp]\ndeny = [\"mount\"]\n", files: files)
        #expect(replaced.denySyscalls == ["mount"])
        #expect(replaced.allowSyscalls == ["bpf"])
        let added = try resolve("extends = \"parent.toml\"\n[seccomp]\ndeny_add = [\"mount:EACCES\"]\ndeny_remove = [\"kcmp\"]\n", files: files)
        #expect(added.denySyscalls == ["ptrace", "mount:EACCES"])
    }

    @Test func mountsMergeByDestination() throws {
        let files = ["/p/parent.toml": """
            [filesystem]
            mounts = [ { type = "tmpfs", dest = "/a" }, { type = "ro-bind", source = "${HOME}/data", dest = "/data" } ]
            """]
        let p = try resolve("extends = \"/p/parent.toml\"\n[filesystem]\nmounts_remove = [\"/a\"]\nmounts_add = [ { type = \"dir\", dest = \"/b\", mode = \"0700\" } ]\n", files: files)
        #expect(p.mounts == [ProfileMount(kind: .roBind, source: "/home/u/data", destination: "/data"),
                             ProfileMount(kind: .dir, destination: "/b", mode: 0o700)])
    }

    @Test func cyclesAreNamed() {
        let files = ["/home/u/.config/cell/profiles/a.toml": "extends = \"b\"\n",
                     "/home/u/.config/cell/profiles/b.toml": "extends = \"a\"\n"]
        do {
            _ = try loader(files: files).resolve("a")
            Issue.record("a cycle was accepted")
        } catch {
            #expect(error.diagnostics.map(\.message) == ["extends cycle: a -> b -> a"])
        }
    }

    @Test func extendingYourOwnNameContinuesTheLookup() throws {
        let files = ["/home/u/.config/cell/profiles/default.toml": "extends = \"default\"\nhostname = \"mine\"\n"]
        let p = try loader(files: files).resolve("default")
        #expect(p.hostname == "mine")
        #expect(p.seccompPolicy == "default")
    }

    @Test func lookupOrderAndShadowing() throws {
        let files = ["/home/u/.config/cell/profiles/strict.toml": "description = \"user strict\"\n",
                     "/etc/cell/profiles/strict.toml": "description = \"etc strict\"\n",
                     "/etc/cell/profiles/team.toml": "description = \"team\"\n"]
        let l = loader(files: files)
        #expect(try l.resolve("strict").description == "user strict")
        #expect(try l.resolve("team").description == "team")
        let listing = l.listing()
        #expect(listing.filter { $0.name == "strict" }.map(\.shadowed) == [false, true, true])
        #expect(listing.first { $0.name == "team" }?.origin == .system("/etc/cell/profiles/team.toml"))
    }

    @Test func bareNamesNeverComeFromTheCurrentDirectory() {
        // "./strict.toml" is read only when named as a path.
        #expect(ProfileLoader.isPath("strict") == false)
        #expect(ProfileLoader.isPath("./strict.toml") && ProfileLoader.isPath("x.toml") && ProfileLoader.isPath("a/b"))
        #expect(!ProfileLoader.isValidName(".hidden"))
    }

    @Test func variablesExpandInPathsOnly() throws {
        let p = try resolve("""
            cwd = "${CWD}/src"
            [[filesystem.mounts]]
            type = "bind"
            source = "${HOME}/cache-${UID}"
            dest = "${TMPDIR}/cache"
            [environment]
            set = { LITERAL = "${HOME}" }
            """)
        #expect(p.workingDirectory == "/work/project/src")
        #expect(p.mounts == [ProfileMount(kind: .bind, source: "/home/u/cache-1000", destination: "/tmp/cache")])
        #expect(p.setEnvironment == [EnvironmentVariable(name: "LITERAL", value: "${HOME}")])
    }

    @Test("[network] helper: auto by default, pasta or slirp4netns, anything else a diagnostic at its value")
    func networkHelper() throws {
        #expect(try resolve("").networkHelper == .auto)
        #expect(try resolve("[network]\nmode = \"user\"\nhelper = \"slirp4netns\"\n").networkHelper == .slirp4netns)
        #expect(diagnostics("[network]\nhelper = \"socat\"\n") == ["/p/test.toml:2:10: unknown network helper 'socat' (auto, pasta, slirp4netns)"])
    }

    @Test("[network] allow and allow_private_addresses: proxy mode's allow-list, each bad entry a diagnostic at its value")
    func egressAllowList() throws {
        let p = try resolve("[network]\nmode = \"proxy\"\nallow = [\"pypi.org\", \"*.pythonhosted.org:443\"]\nallow_private_addresses = true\n")
        #expect(p.network == .proxy && p.egress.rules.map(\.description) == ["pypi.org", "*.pythonhosted.org:443"] && p.egress.allowPrivateAddresses)
        #expect(diagnostics("[network]\nallow = [\"pypi.org\", \"bad name\"]\n").first?.hasPrefix("/p/test.toml:2:22: 'bad name': not a host name") == true)
        let extended = try resolve("extends = \"ci-registries\"\n[network]\nallow_add = [\"example.org\"]\nallow_remove = [\"pypi.org\"]\n")
        #expect(extended.egress.rules.contains(EgressRule(host: "example.org")) && !extended.egress.rules.contains(EgressRule(host: "pypi.org")))
    }

    @Test func networkHostDropsTheNetworkNamespace() throws {
        let p = try resolve("[network]\nmode = \"host\"\n")
        #expect(p.network == .host && !p.namespaces.contains(.net))
    }

    @Test func seccompRulesBecomePolicyRules() throws {
        let p = try resolve("""
            [seccomp]
            policy = "strict"
            rules = [ { syscalls = ["ioctl"], action = "errno:EACCES", args = ["arg1 & 0xffffffff == 0x5413"] } ]
            allow = ["kcmp"]
            """)
        let policy = p.seccomp(base: .strict)
        #expect(policy.rules.contains(.init(["ioctl"], .errno(13), conditions: [.init(index: 1, .maskedEqual, 0x5413, mask: 0xffff_ffff)])))
        #expect(policy.rules.last == .init(["kcmp"], .allow))
    }
}

struct MalformedProfileTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/profiles/malformed")

    static var cases: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasSuffix(".toml") }.sorted()
    }

    @Test func theCorpusIsLarge() {
        #expect(Self.cases.count >= 40)
    }

    @Test("each malformed profile gives its exact FILE:LINE:COLUMN diagnostic", arguments: cases)
    func diagnostic(file: String) throws {
        let path = Self.directory.appendingPathComponent(file).path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let expected = try #require(text.split(separator: "\n").first?.split(separator: "# expect: ", maxSplits: 1).last.map(String.init))
        let l = ProfileLoader(variables: variables, userDirectory: nil, systemDirectory: nil, readFile: { $0 == path ? text : nil })
        do {
            _ = try l.resolve(path)
            Issue.record("\(file) was accepted")
        } catch {
            let lines = error.diagnostics.map(\.description)
            #expect(lines.contains { $0.hasPrefix("\(path):\(expected)") }, "\(file): \(lines)")
        }
    }

    @Test func everyProblemIsReportedNotOnlyTheFirst() {
        let d = diagnostics("hostnme = 1\n[namespaces]\nuser = false\n[seccomp]\ndeny = [\"mout\"]\n")
        #expect(d.count == 3)
        #expect(d.map { $0.split(separator: ":")[1] } == ["1", "3", "5"])
    }
}

struct SourceLocatorTests {
    @Test func findsKeysTablesAndArrayTables() {
        let text = """
        a = 1
        [t]
          b.c = 2
        [[arr]]
        x = 1
        [[arr]]
        "quoted.key" = 2
        list = ["one", "two"]
        """
        let l = SourceLocator(text)
        #expect(l.locate([.key("a")]) == (1, 1))
        #expect(l.locate([.key("t"), .key("b"), .key("c")]) == (3, 3))
        #expect(l.locate([.key("arr"), .index(1), .key("quoted.key")]) == (7, 1))
        #expect(l.locate([.key("arr"), .index(1), .key("list")], value: "two") == (8, 16))
        #expect(l.locate([.key("arr"), .index(0), .key("missing")]) == (4, 1))
    }
}

struct FuzzRegressionTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/profiles")

    @Test("the fuzz property holds for the built-in and malformed profiles, past crashes and seeds")
    func corpus() throws {
        let files = try ["malformed", "fuzz-regressions", "seeds"].flatMap { dir in
            try FileManager.default.contentsOfDirectory(atPath: Self.fixtures.appendingPathComponent(dir).path).map { dir + "/" + $0 }
        }
        #expect(files.count > 60)
        for file in files {
            let data = try Data(contentsOf: Self.fixtures.appendingPathComponent(file))
            #expect(throws: Never.self, "\(file)") { try ProfileFuzzing.check(String(decoding: data, as: UTF8.self)) }
        }
        for (name, text) in BuiltinProfiles.all {
            #expect(throws: Never.self, "\(name)") { try ProfileFuzzing.check(text) }
        }
    }
}
