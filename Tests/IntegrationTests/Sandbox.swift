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

    /// The prefix that drops root to the unprivileged test uid.
    static var dropPrivileges: [String] {
        isRoot ? ["setpriv", "--reuid=\(unprivilegedID)", "--regid=\(unprivilegedID)", "--clear-groups"] : []
    }

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
        let argv = (asRoot ? [] : dropPrivileges) + [cell, "run"] + options + ["--"] + command
        return execute(argv, cwd: cwd, environment: environment, timeout: timeout)
    }

    /// Runs any argv to completion, capturing its output.
    static func execute(_ argv: [String], cwd: String = "/", environment: [String: String]? = nil,
                        timeout: TimeInterval = 60) -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = argv
        process.currentDirectoryURL = URL(fileURLWithPath: cwd)
        if let environment { process.environment = environment }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
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
    private let out = Pipe()
    private let err = Pipe()
    private let lock = NSLock()
    private var collected = Data()
    private var collectedErr = Data()

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
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        out.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self else { return }
            self.lock.lock(); self.collected.append(data); self.lock.unlock()
        }
        err.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self else { return }
            self.lock.lock(); self.collectedErr.append(data); self.lock.unlock()
        }
        try process.run()
    }

    var stdout: String { lock.lock(); defer { lock.unlock() }; return String(decoding: collected, as: UTF8.self) }
    var stderr: String { lock.lock(); defer { lock.unlock() }; return String(decoding: collectedErr, as: UTF8.self) }

    /// Waits until stdout contains `text`.
    func waitFor(_ text: String, timeout: TimeInterval = 20) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if stdout.contains(text) { return true }
            if !process.isRunning { return stdout.contains(text) }
            usleep(20_000)
        }
        return false
    }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits for cell to exit and returns its status (128+N for a signal), or nil on timeout.
    func wait(timeout: TimeInterval = 20) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        out.fileHandleForReading.readabilityHandler = nil
        err.fileHandleForReading.readabilityHandler = nil
        return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    }
}

/// Host processes whose command line contains `marker` (root sees every process).
/// The processes still matching `marker` once the kernel has had up to two seconds to end
/// them (a sandbox's processes die shortly after cell does, not at the same instant).
func hostProcessesLeft(containing marker: String) -> [Int32] {
    var left = hostProcesses(containing: marker)
    for _ in 0..<100 where !left.isEmpty {
        usleep(20_000)
        left = hostProcesses(containing: marker)
    }
    return left
}

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
