import Foundation
import Testing

/// Launches the real `cell` binary for integration tests. When the tests run as root (as CI
/// does), cell runs as uid/gid 65534 through setpriv, so every green run proves that cell works
/// without privileges.
enum Sandbox {
    static let unprivilegedID = "65534"

    /// Directory holding `cell` and `cell-init`, executable by the unprivileged uid
    /// (Scripts/test stages them and sets CELL_TEST_BIN).
    static let binDirectory: String = {
        if let dir = ProcessInfo.processInfo.environment["CELL_TEST_BIN"] { return dir }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug").path
    }()

    static var cell: String { binDirectory + "/cell" }

    static let isRoot = geteuid() == 0
    static let inCI = ProcessInfo.processInfo.environment["CI"] == "true"

    /// The prefix that drops root to the unprivileged test uid, with the caches of `--cache`
    /// and the ci profile kept in `cacheHome`, never in a real user's ~/.cache.
    static var dropPrivileges: [String] {
        ["env", "XDG_CACHE_HOME=\(cacheHome)"]
            + (isRoot ? ["setpriv", "--reuid=\(unprivilegedID)", "--regid=\(unprivilegedID)", "--clear-groups"] : [])
    }

    /// One cache home for the whole test run (cell makes its 0700 `cell` directory inside).
    static let cacheHome: String = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cell-it-cache-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        chmod(dir, 0o777)
        return dir
    }()

    /// Whether a sandbox can start here. In CI the tests always run (and fail loudly if it cannot).
    static let available: Bool = {
        if inCI { return true }
        let r = run(["true"])
        if r.status != 0 {
            print("IntegrationTests: cell cannot start a sandbox here, skipping: \(r.stderr)")
        }
        return r.status == 0
    }()

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// `cell run OPTIONS -- COMMAND`, as the unprivileged uid unless `asRoot`.
    static func run(_ command: [String], options: [String] = [], asRoot: Bool = false,
                    cwd: String = "/", environment: [String: String]? = nil, timeout: TimeInterval = 60) -> Result {
        // Root keeps its caches apart: a `cell` directory is its owner's alone.
        let argv = (asRoot ? ["env", "XDG_CACHE_HOME=\(cacheHome)/root"] : dropPrivileges) + [cell, "run"] + options + ["--"] + command
        return execute(argv, cwd: cwd, environment: environment, timeout: timeout)
    }

    /// Runs any argv to completion, capturing its output.
    /// `stdin`: a file (opened by the test process) to read standard input from.
    static func execute(_ argv: [String], cwd: String = "/", environment: [String: String]? = nil,
                        timeout: TimeInterval = 60, stdin: String? = nil) -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = argv
        process.currentDirectoryURL = URL(fileURLWithPath: cwd)
        if let environment { process.environment = environment }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = stdin.flatMap { FileHandle(forReadingAtPath: $0) } ?? FileHandle.nullDevice
        do { try process.run() } catch {
            return Result(status: -1, stdout: "", stderr: "cannot start \(argv): \(error)")
        }
        // Drain both pipes on their own threads, so a chatty command cannot fill one and block.
        let stdoutData = DataBox(), stderrData = DataBox()
        let group = DispatchGroup()
        for (pipe, box) in [(out, stdoutData), (err, stderrData)] {
            group.enter()
            DispatchQueue.global().async {
                box.set(pipe.fileHandleForReading.readDataToEndOfFile())
                group.leave()
            }
        }
        if group.wait(timeout: .now() + timeout) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        group.wait()
        let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        return Result(status: status,
                      stdout: String(decoding: stdoutData.get(), as: UTF8.self),
                      stderr: String(decoding: stderrData.get(), as: UTF8.self))
    }

    /// A directory on the host that the sandbox's user can write (mode 0777, removed by the caller).
    static func writableHostDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cell-it-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        chmod(dir, 0o777)
        return dir
    }

    /// The host uid the unprivileged test runs as (65534 under root, else ourselves).
    static var callerUID: uid_t { isRoot ? 65534 : geteuid() }
    static var callerGID: gid_t { isRoot ? 65534 : getegid() }

    /// The caller as the host's passwd names them: who the command is inside by default.
    static let caller: (name: String, home: String) = {
        guard let entry = getpwuid(callerUID) else { return (String(callerUID), "/") }
        return (String(cString: entry.pointee.pw_name), String(cString: entry.pointee.pw_dir))
    }()
}

/// A long-running sandbox whose output can be watched and which can be signalled.
final class RunningSandbox: @unchecked Sendable {
    let process = Process()
    private let out: OutputCollector
    private let err: OutputCollector

    /// `enterCgroup`: a cgroup directory the launching shell moves itself into (as root)
    /// before it drops privileges and executes cell.
    init(_ command: [String], options: [String] = [], enterCgroup: String? = nil) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let argv = Sandbox.dropPrivileges + [Sandbox.cell, "run"] + options + ["--"] + command
        if let cgroup = enterCgroup {
            process.arguments = ["sh", "-c", "echo $$ > \(cgroup)/cgroup.procs && exec \"$@\"", "sh"] + argv
        } else {
            process.arguments = argv
        }
        process.currentDirectoryURL = URL(fileURLWithPath: "/")
        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        out = OutputCollector(outPipe.fileHandleForReading)
        err = OutputCollector(errPipe.fileHandleForReading)
    }

    var stdout: String { out.text }
    var stderr: String { err.text }

    /// Waits until stdout contains `text`. Gives up at the end of stdout (everything cell and
    /// the sandbox wrote has been read by then), not when cell exits: its last output may still
    /// be in the pipe at that moment.
    func waitFor(_ text: String, timeout: TimeInterval = 20) -> Bool {
        var found = false
        eventually(timeout: timeout) {
            let ended = out.ended
            found = stdout.contains(text)
            return found || ended
        }
        return found
    }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits for cell to exit and returns its status (128+N for a signal), or nil on timeout.
    /// Then waits (up to 10 s) for the end of its output, so that `stdout` and `stderr` hold
    /// everything written before the exit; a sandbox process that outlives cell for a moment
    /// may keep the pipes open that long.
    func wait(timeout: TimeInterval = 20) -> Int32? {
        if !eventually(timeout: timeout, { !process.isRunning }) {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        eventually(timeout: 10) { out.ended && err.ended }
        return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    }
}

/// Reads a pipe to its end on a thread of its own, keeping what arrived so far.
final class OutputCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private var reachedEnd = false

    init(_ handle: FileHandle) {
        // The thread holds `handle`, so the descriptor stays open until the end is read.
        Thread.detachNewThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(handle.fileDescriptor, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                lock.lock()
                if n > 0 { data.append(contentsOf: buffer[..<n]) } else { reachedEnd = true }
                lock.unlock()
                if n <= 0 { return }
            }
        }
    }

    var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
    var ended: Bool { lock.lock(); defer { lock.unlock() }; return reachedEnd }
}

/// Polls `condition` (every 10 ms) until it holds or `timeout` seconds have passed; returns
/// whether it held. For state that a sandbox, or the kernel, reaches a moment after the event
/// a test can observe (a marker printed, cell exited): poll for the state itself, with a
/// deadline, rather than sleep for a fixed time.
@discardableResult
func eventually(timeout: TimeInterval = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
    while true {
        if try condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        usleep(10_000)
    }
}

/// The host processes still matching `marker` once the kernel has had up to `timeout` seconds
/// to end them (a sandbox's processes die shortly after cell does, not at the same instant).
func hostProcessesLeft(containing marker: String, timeout: TimeInterval = 10) -> [Int32] {
    var left: [Int32] = []
    eventually(timeout: timeout) {
        left = hostProcesses(containing: marker)
        return left.isEmpty
    }
    return left
}

/// Host processes whose command line contains `marker` (root sees every process).
func hostProcesses(containing marker: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        return String(decoding: data, as: UTF8.self).contains(marker)
    }
}

final class DataBox: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func set(_ value: Data) { lock.lock(); data = value; lock.unlock() }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return data }
}
