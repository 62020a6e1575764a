import CCellSpawn
import CellPolicy
import Glibc
import Testing
@testable import CellLauncher

/// The plan pid 1 executes: its records, their order, and their wire format (cell_plan.h).
struct PlanEncodingTests {
    static let everyRecord: [PlanRecord] = {
        var bind = MountOperation.bind("/usr", readOnly: true)
        bind.expectedType = UInt32(S_IFDIR)
        var mask = MountOperation.bind("/dev/null", "/proc/kcore", readOnly: true, optional: true)
        mask.mustExist = true
        mask.device = true
        mask.expectedType = UInt32(S_IFCHR)
        var dev = MountOperation.tmpfs("/dev", size: 65536, mode: 0o755)
        dev.noexec = true
        return [
            .namespaces([.mount, .pid, .net, .time]), .userNamespaceLimit(0), .sharedMemoryLimit(bytes: 1 << 30, pages: 1 << 18),
            .loopback, .root(base: "/tmp", size: 1 << 20),
            .mount(bind), .mount(mask), .mount(dev), .mount(.symlink("usr/bin", at: "/bin")),
            .mount(.file("/etc/hosts", bytes: [0x61, 0, 0x62, 0x0a], mode: 0o600)),
            .mount(MountOperation(kind: .proc, destination: "/proc")),
            .mount(MountOperation(kind: .remountReadOnly, destination: "/proc/sys", optional: true, mustExist: true)),
            .hostname("cell"), .workingDirectory("/home/u", fallback: "/"), .workingDirectory("/w", fallback: ""),
            .terminal(rows: 30, columns: 100, descriptors: 0b101),
            .rlimit(resource: 4, soft: 0, hard: 0), .rlimit(resource: 0, soft: 60, hard: 61), .capabilities(1 << 10), .hold,
            .argument("sh"), .argument(""), .argument("it's ünïcode"), .environment("PATH=/usr/bin"), .endSetup,
            .seccomp(listener: false, bpf: [6, 0, 0, 0, 0, 0, 0xff, 0x7f]), .seccomp(listener: true, bpf: Array(repeating: 1, count: 16)),
            .endFilters, .start, .takeProcesses,
            .process(rows: 0, columns: 0, workingDirectory: "/work"), .process(rows: 24, columns: 80, workingDirectory: "/"),
            .endProcess, .signalProcess(process: 7, signal: 15),
        ]
    }()

    @Test("every record reads back as it was written")
    func roundTrip() throws {
        let bytes = PlanEncoding.header + PlanEncoding.encode(Self.everyRecord)
        #expect(try PlanEncoding.decode(bytes) == Self.everyRecord)
    }

    /// What an exec'd process's descriptors may be: never a directory or an O_PATH descriptor,
    /// through which the process could leave the container's root.
    @Test func execStdioIsNeverADirectory() throws {
        let directory = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC), path = open("/dev/null", 0o10000000 | O_CLOEXEC) // O_PATH, which Glibc's module does not export
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { for fd in [directory, path, null] { close(fd) } }
        #expect(ProcessService.stdioProblem([null, null, null], terminal: false) == nil)
        #expect(ProcessService.stdioProblem([], terminal: true) == nil)
        #expect(ProcessService.stdioProblem([null, directory, null], terminal: false) != nil)
        #expect(ProcessService.stdioProblem([null, null, path], terminal: false) != nil)
        #expect(ProcessService.stdioProblem([null], terminal: false) != nil)
        #expect(ProcessService.stdioProblem([null, null, null], terminal: true) != nil)
        // A terminal (a pty's master is one too): the caller's would be the container's.
        let terminal = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
        defer { close(terminal) }
        #expect(terminal >= 0)
        #expect(ProcessService.stdioProblem([null, terminal, null], terminal: false)?.contains("cannot be a terminal") == true)
    }

    /// A request is read as it arrives: partial until END_PROCESS, nothing after it, no record
    /// larger than a request may be; and its text reaches pid 1 as it came, or not at all.
    @Test func execRequestsArriveWholeAndAsTheyCame() throws {
        let request = try ProcessRequest(arguments: ["ls"], environment: ["A=1"], workingDirectory: "/", terminal: nil)
        let bytes = PlanEncoding.encode(request.records)
        #expect(ProcessService.completeness(bytes) == .whole)
        #expect(ProcessService.completeness(Array(bytes.dropLast(3))) == .partial)
        #expect(ProcessService.completeness([]) == .partial)
        #expect(ProcessService.completeness(bytes + [0]) != .whole)
        #expect(ProcessService.completeness([1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]) != .partial)
        #expect(try ProcessService.request(from: bytes) == request)
        // An argument of bytes that are not UTF-8 (as a hostile client would send it).
        var raw: [UInt8] = []
        func record(_ type: UInt32, _ payload: [UInt8]) {
            for v in [type, UInt32(payload.count)] { withUnsafeBytes(of: v.littleEndian) { raw += $0 } }
            raw += payload
        }
        func string(_ bytes: [UInt8]) -> [UInt8] { withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { Array($0) } + bytes + [0] }
        record(CELL_REC_PROCESS.rawValue, [0, 0, 0, 0, 0, 0, 0, 0] + string(Array("/".utf8)))
        record(CELL_REC_ARG.rawValue, string([0xff, 0xfe]))
        record(CELL_REC_END_PROCESS.rawValue, [])
        #expect(ProcessService.completeness(raw) == .whole)
        #expect(throws: LaunchError.self) { try ProcessService.request(from: raw) }
    }

    @Test("the layout is cell_plan.h's: u32 type, u32 length, little-endian fields, strings with a NUL")
    func wireFormat() {
        #expect(PlanEncoding.encode([.hostname("ab")]) == [9, 0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0, 0x61, 0x62, 0])
        #expect(PlanEncoding.encode([.rlimit(resource: 7, soft: 0x0102, hard: 1 << 40)])
            == [11, 0, 0, 0, 20, 0, 0, 0, 7, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0])
        #expect(PlanEncoding.header == [1, 0, 0, 0, 8, 0, 0, 0] + [0x43, 0x45, 0x4c, 0x4c] + [1, 0, 0, 0])
        #expect(PlanEncoding.encode([.endSetup]) == [18, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test("a plan without its header, cut short, padded or of a reserved type does not read back")
    func malformed() {
        let good = PlanEncoding.header + PlanEncoding.encode([.hostname("ab")])
        #expect(throws: PlanEncoding.DecodingError.self) { try PlanEncoding.decode(PlanEncoding.encode([.hostname("ab")])) }
        #expect(throws: PlanEncoding.DecodingError.self) { try PlanEncoding.decode(Array(good.dropLast())) }
        var padded = good
        padded[12] += 1 // the record's length: one byte more than its fields
        padded.append(0)
        #expect(throws: PlanEncoding.DecodingError.self) { try PlanEncoding.decode(padded) }
        let reserved = PlanEncoding.header + [UInt8(CELL_REC_LANDLOCK.rawValue), 0, 0, 0, 0, 0, 0, 0]
        #expect(throws: PlanEncoding.DecodingError.self) { try PlanEncoding.decode(reserved) }
    }
}

struct SetupRecordTests {
    func plan(_ change: (inout LaunchPlan) -> Void = { _ in }) -> LaunchPlan {
        var plan = LaunchPlan(command: ["make", "test"], environment: ["PATH=/usr/bin"], workingDirectory: "/src",
                              identity: IdentityMapping(outerUID: 1000, outerGID: 1000, denySetgroups: true),
                              mounts: [.bind("/usr", readOnly: true), .tmpfs("/tmp", size: 1 << 20, mode: 0o1777)],
                              limits: ResourceLimits(cpuTime: 60))
        change(&plan)
        return plan
    }

    @Test("the records come in pid 1's order: namespaces, nesting limit, lo, root and mounts, hostname, cwd, limits, capabilities, command")
    func order() {
        let records = plan().setupRecords()
        #expect(records == [
            .namespaces(Namespace.allNested), .userNamespaceLimit(0), .loopback, .root(base: "/tmp", size: LaunchPlan.rootSize),
            .mount(.bind("/usr", readOnly: true)), .mount(.tmpfs("/tmp", size: 1 << 20, mode: 0o1777)),
            .hostname("cell"), .workingDirectory("/src", fallback: "/"),
            .rlimit(resource: UInt32(RLIMIT_CORE.rawValue), soft: 0, hard: 0),
            // RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL a second later.
            .rlimit(resource: UInt32(RLIMIT_CPU.rawValue), soft: 60, hard: 61),
            .capabilities(0), .argument("make"), .argument("test"), .environment("PATH=/usr/bin"), .endSetup,
        ])
    }

    @Test("a pty is planned for the descriptors that are a terminal (auto), stdin and stdout at least (always), or none")
    func terminalDecision() {
        func plan(_ mode: TerminalMode, _ terminals: Set<Int32>) -> TerminalPlan? {
            Planner.terminal(mode, isTerminal: { terminals.contains($0) }, windowSize: { $0 == 1 ? (40, 120) : nil })
        }
        #expect(plan(.auto, [0, 1, 2]) == TerminalPlan(descriptors: [0, 1, 2], rows: 40, columns: 120))
        // stdout redirected: it bypasses the pty, and the size comes from another terminal (24x80 here).
        #expect(plan(.auto, [0, 2]) == TerminalPlan(descriptors: [0, 2], rows: 24, columns: 80))
        #expect(plan(.auto, []) == nil)
        #expect(plan(.always, []) == TerminalPlan(descriptors: [0, 1], rows: 24, columns: 80))
        #expect(plan(.never, [0, 1, 2]) == nil)
        // In pid 1's order: after the working directory, before the limits.
        let records = self.plan { $0.terminal = TerminalPlan(descriptors: [0, 1], rows: 40, columns: 120) }.setupRecords()
        let cwd = records.firstIndex { if case .workingDirectory = $0 { return true } else { return false } }
        #expect(cwd.map { records[$0 + 1] } == .terminal(rows: 40, columns: 120, descriptors: 0b11))
    }

    @Test("no mount namespace: no root and no mounts; no uts: no hostname; host network: no lo; user network: held")
    func optionalParts() {
        let records = plan { $0.namespaces = [.pid, .ipc]; $0.network = .user }.setupRecords()
        #expect(!records.contains { if case .root = $0 { return true }; if case .mount = $0 { return true }; return false })
        #expect(!records.contains(.hostname("cell")) && !records.contains(.loopback))
        #expect(records.contains(.hold))
        var allowed = plan()
        allowed.seccomp.allowNestedNamespaces = true
        #expect(!allowed.setupRecords().contains(.userNamespaceLimit(0)))
    }

    @Test("under pasta without --allow-host-loopback, the gateway is made unreachable, after lo; never under slirp4netns, which refuses it itself")
    func unreachableGateway() {
        let pasta = plan { $0.network = .user; $0.networkHelper = .pasta }.setupRecords()
        let lo = pasta.firstIndex(of: .loopback)
        #expect(lo.map { pasta[$0 + 1] } == .unreachable(0x0a00_0202))
        #expect(PlanRecord.unreachable(0x0a00_0202).summary.hasPrefix("unreachable   10.0.2.2 "))
        #expect(!plan { $0.network = .user; $0.networkHelper = .pasta; $0.allowHostLoopback = true }.setupRecords().contains(.unreachable(0x0a00_0202)))
        #expect(!plan { $0.network = .user; $0.networkHelper = .slirp4netns }.setupRecords().contains(.unreachable(0x0a00_0202)))
        #expect(!plan { $0.networkHelper = .pasta }.setupRecords().contains(.unreachable(0x0a00_0202)), "no user network")
    }

    @Test("auto is pasta where installed and the host has a default route, else slirp4netns; a named helper must be installed")
    func helperChoice() {
        func choose(_ wanted: NetworkHelper, _ installed: Set<NetworkHelper>, route: Bool = true) -> NetworkHelper? {
            wanted.resolved(installed: { installed.contains($0) }, hasDefaultRoute: route)
        }
        #expect(choose(.auto, [.pasta, .slirp4netns]) == .pasta)
        #expect(choose(.auto, [.pasta, .slirp4netns], route: false) == .slirp4netns, "pasta refuses to start without a default route")
        #expect(choose(.auto, [.slirp4netns]) == .slirp4netns)
        #expect(choose(.auto, [.pasta], route: false) == .pasta, "its own error then says why")
        #expect(choose(.auto, []) == nil)
        #expect(choose(.slirp4netns, [.pasta, .slirp4netns]) == .slirp4netns)
        #expect(choose(.pasta, [.slirp4netns]) == nil)
    }

    @Test("SysV shared memory is bounded by the memory limit only where it can be: an IPC namespace, root inside")
    func sharedMemoryLimit() {
        func limited(_ change: (inout LaunchPlan) -> Void) -> Bool {
            plan(change).setupRecords().contains { if case .sharedMemoryLimit = $0 { return true }; return false }
        }
        #expect(!limited { _ in }, "no memory limit")
        #expect(limited { $0.limits.memory = 1 << 30; $0.identity.innerUID = 0 })
        #expect(!limited { $0.limits.memory = 1 << 30; $0.identity.innerUID = 1000 }, "the kernel lets only uid 0 write it")
        #expect(!limited { $0.limits.memory = 1 << 30; $0.identity.innerUID = 0; $0.namespaces.remove(.ipc) })
    }
}

struct SettleTests {
    static func host(_ path: String) -> UInt32? {
        switch path {
        case "/usr", "/real": return UInt32(S_IFDIR)
        case "/dev/null": return UInt32(S_IFCHR)
        case "/link": return UInt32(S_IFLNK)
        case "/real/via-link/file": return UInt32(S_IFREG)
        default: return nil
        }
    }

    static func real(_ path: String) -> String? {
        path == "/real/via-link/file" ? "/elsewhere/file" : (host(path) == nil ? nil : path)
    }

    @Test("each bind records the type of its source; other operations are left as they are")
    func recordsTypes() throws {
        let ops = try FilesystemView.settle([.bind("/usr", readOnly: true), .bind("/dev/null", "/proc/kcore", readOnly: true),
                                             .tmpfs("/tmp", size: 1, mode: 0o700)], fileType: Self.host, realPath: Self.real)
        #expect(ops.map(\.expectedType) == [UInt32(S_IFDIR), UInt32(S_IFCHR), nil])
    }

    @Test("nothing may be mounted over the sandbox's root itself")
    func notOverTheRoot() {
        #expect(throws: LaunchError.self) {
            try FilesystemView.settle([.bind("/usr", "/", readOnly: false)], fileType: Self.host, realPath: Self.real)
        }
    }

    @Test("a missing optional source is left out; a missing required one is refused")
    func missing() throws {
        let ops = try FilesystemView.settle([.bind("/gone", readOnly: true, optional: true)], fileType: Self.host, realPath: Self.real)
        #expect(ops.isEmpty)
        #expect(throws: LaunchError.invalid("cannot bind /gone: it does not exist on the host")) {
            try FilesystemView.settle([.bind("/gone", readOnly: true)], fileType: Self.host, realPath: Self.real)
        }
    }

    @Test("a source that is a symlink, or is reached through one, is refused", arguments: ["/link", "/real/via-link/file"])
    func symlinks(source: String) {
        do {
            _ = try FilesystemView.settle([.bind(source, readOnly: false)], fileType: Self.host, realPath: Self.real)
            Issue.record("\(source) was accepted")
        } catch {
            #expect(error.message.hasPrefix("cannot bind \(source): the path goes through a symlink"))
        }
    }
}

struct IdentityTests {
    @Test("inside as the caller: the caller's ids on both sides of a one-id map")
    func caller() throws {
        let m = try IdentityMapping.forCaller(uid: 1000, gid: 100, requested: nil, inside: .caller)
        #expect(m.innerUID == 1000 && m.innerGID == 100)
        #expect(m.uidMap == [IDRange(inside: 1000, outside: 1000)] && m.gidMap == [IDRange(inside: 100, outside: 100)])
        #expect(m.uidMap.map(\.line) == ["1000 1000 1\n"])
    }

    @Test("inside as root: uid 0 maps to the caller; a root caller maps to the unprivileged outer id either way")
    func root() throws {
        let m = try IdentityMapping.forCaller(uid: 1000, gid: 100, requested: nil, inside: .root)
        #expect(m.uidMap.map(\.line) == ["0 1000 1\n"] && m.innerUID == 0)
        let r = try IdentityMapping.forCaller(uid: 0, gid: 0, requested: nil, inside: .caller)
        #expect(r.uidMap.map(\.line) == ["0 65534 1\n"] && !r.denySetgroups)
    }
}
