import Foundation
import Glibc
import Testing

/// A real project's CI job under `--profile ci`, end to end: more-itertools' own `make coverage`
/// (its test suite, 817 tests nobody here wrote, under coverage), from its release sdist, with
/// the packages the job installs served by a package index on the host's loopback
/// (Tests/Fixtures/package-index.py, PyPI's caching headers; Scripts/bootstrap downloaded the
/// files from PyPI). The sandbox reaches it at 10.0.2.2 through --allow-host-loopback.
@Suite(.enabled(if: Sandbox.available, "cell cannot start a sandbox on this machine"))
struct CIProjectTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let downloads = root + "/.build-e2e/pypi"
    /// The sdist Scripts/bootstrap downloaded (more-itertools, pinned there), and the directory it unpacks to.
    static let sdist = ((try? FileManager.default.contentsOfDirectory(atPath: downloads)) ?? [])
        .first { $0.hasPrefix("more-itertools-") && $0.hasSuffix(".tar.gz") } ?? "more-itertools (not downloaded)"
    static var unpacked: String { String(sdist.dropLast(".tar.gz".count)) }

    /// The project's CI steps (its Makefile's `requirements`, trimmed to what the tests need,
    /// then `coverage`), in a fresh virtual environment in the checkout.
    static let job = "python3 -m venv .venv && . .venv/bin/activate && pip install -q coverage==7.6.1 && pip install -q --editable . && make coverage"

    /// A checkout of the test user's: the sdist unpacked and committed to git, as CI checks out.
    static func checkout(in dir: String) throws -> String {
        let unpack = Sandbox.execute(Sandbox.dropPrivileges + ["sh", "-c", """
            cd \(dir) && tar xzf - && cd \(unpacked) && git init -q && git add -A && \
            git -c user.name=ci -c user.email=ci@localhost commit -qm import
            """], environment: ["HOME": dir, "PATH": "/usr/bin:/bin"], stdin: downloads + "/" + sdist)
        #expect(unpack.status == 0, "\(unpack.stderr)")
        return dir + "/" + unpacked
    }

    /// What the job concluded: unittest's count and verdict, coverage's total.
    static func results(_ r: Sandbox.Result) -> [String] {
        (r.stdout + r.stderr).split(separator: "\n").filter { $0.hasPrefix("Ran ") || $0.hasPrefix("OK") || $0.hasPrefix("FAILED") || $0.hasPrefix("TOTAL") }
            .map { String($0.hasPrefix("Ran ") ? $0.components(separatedBy: " in ")[0] : String($0)) }
    }

    /// Files of the index fetched whole (status 200) since the log was last emptied.
    static func downloadsLogged(_ log: String) -> [String] {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n")
            .filter { $0.hasPrefix("GET /files/") && $0.hasSuffix(" 200") }.map { String($0.split(separator: " ")[1].dropFirst(7)) }
    }

    @Test("more-itertools' CI under --profile ci: the bare run's results, the checkout untouched, a second run from the caches, the outputs in cell changes")
    func realProject() throws {
        try #require(FileManager.default.fileExists(atPath: Self.downloads + "/" + Self.sdist),
                     "\(Self.downloads) lacks the project's files: run Scripts/bootstrap")
        let dir = try Sandbox.writableHostDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = dir + "/index.log", portFile = dir + "/index.port"
        let index = Process()
        index.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        index.arguments = [Self.root + "/Tests/Fixtures/package-index.py", Self.downloads, log, portFile]
        index.standardOutput = FileHandle.nullDevice
        try index.run()
        defer {
            // SIGKILL: the test's threads may block SIGTERM, and a child inherits the mask.
            kill(index.processIdentifier, SIGKILL)
            index.waitUntilExit()
        }
        var port: Int?
        _ = eventually { port = (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { Int($0) }; return port != nil }
        let indexPort = try #require(port, "the package index did not start")

        // The bare run: the same job on the host, in a checkout of its own, without a cache.
        try FileManager.default.createDirectory(atPath: dir + "/bare", withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: dir + "/ci", withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: dir + "/changes", withIntermediateDirectories: false)
        if Sandbox.isRoot { _ = Sandbox.execute(["chown", "65534:65534", dir + "/bare", dir + "/ci", dir + "/changes"]) }
        let bareCheckout = try Self.checkout(in: dir + "/bare"), checkout = try Self.checkout(in: dir + "/ci")
        let bare = Sandbox.execute(Sandbox.dropPrivileges + ["sh", "-c", Self.job], cwd: bareCheckout, environment: [
            "HOME": dir + "/bare", "PATH": "/usr/bin:/bin", "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_INDEX_URL": "http://127.0.0.1:\(indexPort)/simple/",
        ], timeout: 600)
        let expected = Self.results(bare)
        #expect(bare.status == 0 && expected.count == 3 && expected.contains { $0.hasPrefix("Ran 8") }, "\(bare.stderr.suffix(2000))")

        let before = OverlayTests.snapshot(checkout)
        let pip = ["--env", "PIP_INDEX_URL=http://10.0.2.2:\(indexPort)/simple/", "--env", "PIP_TRUSTED_HOST=10.0.2.2",
                   "--env", "PIP_DISABLE_PIP_VERSION_CHECK=1"]
        try "".write(toFile: log, atomically: false, encoding: .utf8)
        var started = Date()
        let first = Sandbox.run(["sh", "-c", Self.job], options: ["--profile", "ci", "--allow-host-loopback", "--changes", dir + "/changes"] + pip,
                                cwd: checkout, timeout: 600)
        let firstTime = Date().timeIntervalSince(started)
        #expect(first.status == 0 && Self.results(first) == expected, "\(Self.results(first)) \(first.stderr.suffix(2000))")
        #expect(Self.downloadsLogged(log).sorted() == ["coverage-7.6.1-cp311-cp311-manylinux_2_5_x86_64.manylinux1_x86_64.manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                                                        "flit_core-3.9.0-py3-none-any.whl"])
        // The checkout is exactly as it was; what the job wrote is in the kept changes.
        #expect(OverlayTests.snapshot(checkout) == before)
        let changes = Sandbox.execute(Sandbox.dropPrivileges + [Sandbox.cell, "changes", dir + "/changes"])
        for output in ["A /.coverage", "A /more_itertools/__pycache__/more.cpython-311.pyc", "A /tests/__pycache__/", "A /.venv/bin/python3"] {
            #expect(changes.stdout.contains(output + "\n") || changes.stdout.contains(output + " "), "\(output) not in \(changes.stdout.prefix(2000))")
        }

        // A second run, from a fresh overlay: pip takes both packages from the cache.
        try "".write(toFile: log, atomically: false, encoding: .utf8)
        started = Date()
        let second = Sandbox.run(["sh", "-c", Self.job], options: ["--profile", "ci", "--allow-host-loopback"] + pip, cwd: checkout, timeout: 600)
        let secondTime = Date().timeIntervalSince(started)
        #expect(second.status == 0 && Self.results(second) == expected, "\(second.stderr.suffix(2000))")
        #expect(Self.downloadsLogged(log) == [], "downloaded again: \(Self.downloadsLogged(log))")
        #expect(OverlayTests.snapshot(checkout) == before)
        print("CIProjectTests: more-itertools make coverage: first run \(String(format: "%.1f", firstTime)) s (downloads), "
            + "second \(String(format: "%.1f", secondTime)) s (from the caches); results \(expected)")
    }
}
