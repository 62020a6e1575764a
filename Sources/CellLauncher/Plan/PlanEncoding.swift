import CCellSpawn
import CellPolicy

/// The plan's binary encoding (cell_plan.h): records of `u32 type, u32 length, payload`, the
/// payload's fields little-endian, strings and blobs as `u32 length, bytes, NUL`.
///
/// `encode` is what the supervisor sends to pid 1; `decode` reads the same bytes back, for
/// `--dry-run` (which prints what pid 1 would execute) and for tests. It checks what pid 1's
/// decoder (cell-init/plan.c) checks about the framing, not every semantic rule.
public enum PlanEncoding {
    /// The `PLAN` record that opens every plan.
    public static var header: [UInt8] {
        var writer = Writer()
        writer.record(CELL_REC_PLAN) { $0.u32(CELL_PLAN_MAGIC); $0.u32(CELL_PLAN_VERSION) }
        return writer.bytes
    }

    /// The records, encoded (without the header).
    public static func encode(_ records: [PlanRecord]) -> [UInt8] {
        var writer = Writer()
        for record in records { writer.write(record) }
        return writer.bytes
    }

    public struct DecodingError: Error, Equatable {
        public var message: String
    }

    /// Every record of `bytes`, which must start with the header (unless `headed` is false: a
    /// request's records, as ProcessService reads them).
    public static func decode(_ bytes: [UInt8], headed: Bool = true) throws(DecodingError) -> [PlanRecord] {
        var reader = Reader(bytes: bytes)
        var records: [PlanRecord] = []
        var first = headed
        while !reader.atEnd {
            let (type, payload) = try reader.record()
            var fields = Reader(bytes: payload)
            if first {
                guard type == CELL_REC_PLAN.rawValue, try fields.u32() == CELL_PLAN_MAGIC, try fields.u32() == CELL_PLAN_VERSION
                else { throw DecodingError(message: "not a cell plan of version \(CELL_PLAN_VERSION)") }
                try fields.end()
                first = false
                continue
            }
            records.append(try fields.decode(type: type))
            try fields.end()
        }
        return records
    }

    struct Writer {
        var bytes: [UInt8] = []

        mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        mutating func blob(_ b: [UInt8]) { u32(UInt32(b.count)); bytes += b; bytes.append(0) }
        mutating func string(_ s: String) { blob(Array(s.utf8)) }

        /// A record: its header, then the payload `body` writes, with the length filled in.
        mutating func record(_ type: cell_record_type, _ body: (inout Writer) -> Void = { _ in }) {
            u32(type.rawValue)
            let lengthAt = bytes.count
            u32(0)
            body(&self)
            let length = UInt32(bytes.count - lengthAt - 4).littleEndian
            withUnsafeBytes(of: length) { bytes.replaceSubrange(lengthAt..<lengthAt + 4, with: $0) }
        }

        mutating func write(_ record: PlanRecord) {
            switch record {
            case .namespaces(let set):
                self.record(CELL_REC_NAMESPACES) { $0.u32(UInt32(set.reduce(0) { $0 | $1.cBit })) }
            case .userNamespaceLimit(let n): self.record(CELL_REC_USERNS_LIMIT) { $0.u32(n) }
            case .sharedMemoryLimit(let bytes, let pages): self.record(CELL_REC_IPC_LIMIT) { $0.u64(bytes); $0.u64(pages) }
            case .loopback: self.record(CELL_REC_LOOPBACK)
            case .unreachable(let address): self.record(CELL_REC_UNREACHABLE) { $0.u32(address) }
            case .handOutListener(let port): self.record(CELL_REC_SEND_FD) { $0.u32(UInt32(CELL_SEND_TCP_LISTENER)); $0.u32(UInt32(port)) }
            case .root(let base, let size): self.record(CELL_REC_ROOT) { $0.u64(size); $0.string(base) }
            case .rootTree(let path, let readOnly):
                self.record(CELL_REC_ROOT_TREE) { $0.u32(readOnly ? UInt32(CELL_OPF_READONLY) : 0); $0.string(path) }
            case .joinNamespace(let namespace, let path):
                self.record(CELL_REC_JOIN_NAMESPACE) { $0.u32(UInt32(namespace.cBit)); $0.string(path) }
            case .sysctl(let name, let value): self.record(CELL_REC_SYSCTL) { $0.string(name); $0.string(value) }
            case .user(let uid, let gid, let groups):
                self.record(CELL_REC_USER) { w in
                    w.u32(uid); w.u32(gid); w.u32(UInt32(groups.count))
                    for group in groups { w.u32(group) }
                }
            case .mount(let op) where op.kind == .overlay:
                self.record(CELL_REC_OVERLAY) {
                    // An overlay is never optional once planned (settle left out a missing one).
                    $0.u32(op.cFlags & UInt32(CELL_OPF_READONLY | CELL_OPF_NOEXEC))
                    $0.u64(op.changes == nil ? op.size ?? CELL_PLAN_NONE_U64 : CELL_PLAN_NONE_U64)
                    $0.string(op.source ?? "")
                    $0.string(op.changes ?? "")
                    $0.string(op.destination)
                }
            case .mount(let op):
                self.record(CELL_REC_MOUNT) {
                    $0.u32(op.kind.cValue)
                    $0.u32(op.cFlags)
                    $0.u32(op.expectedType ?? 0)
                    $0.u32(op.mode ?? CELL_PLAN_NONE_U32)
                    $0.u64(op.size ?? CELL_PLAN_NONE_U64)
                    $0.blob(op.kind == .file ? op.contents : Array((op.source ?? "").utf8))
                    $0.string(op.destination)
                }
            case .hostname(let name): self.record(CELL_REC_HOSTNAME) { $0.string(name) }
            case .workingDirectory(let dir, let fallback): self.record(CELL_REC_CWD) { $0.string(dir); $0.string(fallback) }
            case .rlimit(let resource, let soft, let hard):
                self.record(CELL_REC_RLIMIT) { $0.u32(resource); $0.u64(soft); $0.u64(hard) }
            case .capabilities(let kept): self.record(CELL_REC_CAPS) { $0.u64(kept) }
            case .terminal(let rows, let columns, let bits):
                self.record(CELL_REC_TERMINAL) { $0.u32(rows); $0.u32(columns); $0.u32(bits) }
            case .landlock(let abi, let required, let fs, let net, let scoped):
                self.record(CELL_REC_LANDLOCK) { $0.u32(abi); $0.u32(required ? 1 : 0); $0.u64(fs); $0.u64(net); $0.u64(scoped) }
            case .landlockPath(let access, let path): self.record(CELL_REC_LANDLOCK_PATH) { $0.u64(access); $0.string(path) }
            case .hold: self.record(CELL_REC_HOLD)
            case .argument(let word): self.record(CELL_REC_ARG) { $0.string(word) }
            case .environment(let entry): self.record(CELL_REC_ENV) { $0.string(entry) }
            case .endSetup: self.record(CELL_REC_END_SETUP)
            case .seccomp(let listener, let bpf): self.record(CELL_REC_SECCOMP) { $0.u32(listener ? 1 : 0); $0.blob(bpf) }
            case .endFilters: self.record(CELL_REC_END_FILTERS)
            case .start: self.record(CELL_REC_START)
            case .takeProcesses: self.record(CELL_REC_TAKE_PROCESSES)
            case .process(let rows, let columns, let dir): self.record(CELL_REC_PROCESS) { $0.u32(rows); $0.u32(columns); $0.string(dir) }
            case .endProcess: self.record(CELL_REC_END_PROCESS)
            case .signalProcess(let process, let signal): self.record(CELL_REC_SIGNAL_PROCESS) { $0.u32(process); $0.u32(signal) }
            }
        }
    }

    struct Reader {
        let bytes: [UInt8]
        var offset = 0

        var atEnd: Bool { offset == bytes.count }

        mutating func take(_ count: Int) throws(DecodingError) -> ArraySlice<UInt8> {
            guard count >= 0, bytes.count - offset >= count else { throw DecodingError(message: "a record is cut short") }
            defer { offset += count }
            return bytes[offset..<offset + count]
        }

        mutating func u32() throws(DecodingError) -> UInt32 {
            try take(4).reversed().reduce(0) { $0 << 8 | UInt32($1) }
        }

        mutating func u64() throws(DecodingError) -> UInt64 {
            try take(8).reversed().reduce(0) { $0 << 8 | UInt64($1) }
        }

        mutating func blob() throws(DecodingError) -> [UInt8] {
            let data = Array(try take(Int(try u32())))
            guard try take(1).first == 0 else { throw DecodingError(message: "a string without its NUL") }
            return data
        }

        mutating func string() throws(DecodingError) -> String {
            String(decoding: try blob(), as: UTF8.self)
        }

        mutating func record() throws(DecodingError) -> (UInt32, [UInt8]) {
            let type = try u32()
            let length = try u32()
            guard length <= CELL_PLAN_MAX_RECORD else { throw DecodingError(message: "a record of \(length) bytes") }
            return (type, Array(try take(Int(length))))
        }

        mutating func end() throws(DecodingError) {
            guard atEnd else { throw DecodingError(message: "a record longer than its fields") }
        }

        mutating func decode(type: UInt32) throws(DecodingError) -> PlanRecord {
            switch cell_record_type(rawValue: type) {
            case CELL_REC_NAMESPACES:
                let bits = Int(try u32())
                return .namespaces(Set(Namespace.allCases.filter { bits & $0.cBit != 0 }))
            case CELL_REC_USERNS_LIMIT: return .userNamespaceLimit(try u32())
            case CELL_REC_IPC_LIMIT: return .sharedMemoryLimit(bytes: try u64(), pages: try u64())
            case CELL_REC_LOOPBACK: return .loopback
            case CELL_REC_UNREACHABLE: return .unreachable(try u32())
            case CELL_REC_SEND_FD:
                guard try u32() == UInt32(CELL_SEND_TCP_LISTENER), let port = UInt16(exactly: try u32()) else {
                    throw DecodingError(message: "an unknown hand-out")
                }
                return .handOutListener(port: port)
            case CELL_REC_ROOT:
                let size = try u64()
                return .root(base: try string(), size: size)
            case CELL_REC_ROOT_TREE:
                let flags = try u32()
                return .rootTree(path: try string(), readOnly: flags & UInt32(CELL_OPF_READONLY) != 0)
            case CELL_REC_JOIN_NAMESPACE:
                let bit = Int(try u32())
                guard let namespace = Namespace.allCases.first(where: { $0.cBit == bit }) else { throw DecodingError(message: "an unknown namespace") }
                return .joinNamespace(namespace, path: try string())
            case CELL_REC_SYSCTL:
                let name = try string()
                return .sysctl(name: name, value: try string())
            case CELL_REC_USER:
                let uid = try u32(), gid = try u32(), count = try u32()
                guard count <= 64 else { throw DecodingError(message: "too many groups") }
                var groups: [UInt32] = []
                for _ in 0..<count { groups.append(try u32()) }
                return .user(uid: uid, gid: gid, groups: groups)
            case CELL_REC_OVERLAY:
                let flags = try u32(), size = try u64()
                let lower = try string(), changes = try string()
                var op = MountOperation(kind: .overlay, source: lower, destination: try string())
                op.readOnly = flags & UInt32(CELL_OPF_READONLY) != 0
                op.noexec = flags & UInt32(CELL_OPF_NOEXEC) != 0
                op.size = size == CELL_PLAN_NONE_U64 ? nil : size
                op.changes = changes.isEmpty ? nil : changes
                return .mount(op)
            case CELL_REC_MOUNT:
                guard let kind = MountOperation.Kind(cValue: try u32()) else { throw DecodingError(message: "an unknown mount kind") }
                let flags = try u32(), expected = try u32(), mode = try u32(), size = try u64()
                let source = try blob()
                var op = MountOperation(kind: kind, destination: try string())
                if kind == .file { op.contents = source } else if kind == .bind || kind == .symlink { op.source = String(decoding: source, as: UTF8.self) }
                op.readOnly = flags & UInt32(CELL_OPF_READONLY) != 0
                op.optional = flags & UInt32(CELL_OPF_OPTIONAL) != 0
                op.mustExist = flags & UInt32(CELL_OPF_NO_CREATE) != 0
                op.noexec = flags & UInt32(CELL_OPF_NOEXEC) != 0
                op.device = flags & UInt32(CELL_OPF_DEVICE) != 0
                op.expectedType = expected == 0 ? nil : expected
                op.mode = mode == CELL_PLAN_NONE_U32 ? nil : mode
                op.size = size == CELL_PLAN_NONE_U64 ? nil : size
                return .mount(op)
            case CELL_REC_HOSTNAME: return .hostname(try string())
            case CELL_REC_CWD:
                let dir = try string()
                return .workingDirectory(dir, fallback: try string())
            case CELL_REC_RLIMIT:
                let resource = try u32(), soft = try u64()
                return .rlimit(resource: resource, soft: soft, hard: try u64())
            case CELL_REC_CAPS: return .capabilities(try u64())
            case CELL_REC_TERMINAL:
                let rows = try u32(), columns = try u32()
                return .terminal(rows: rows, columns: columns, descriptors: try u32())
            case CELL_REC_LANDLOCK:
                let abi = try u32(), required = try u32() == 1, fs = try u64(), net = try u64()
                return .landlock(abi: abi, required: required, fs: fs, net: net, scoped: try u64())
            case CELL_REC_LANDLOCK_PATH:
                let access = try u64()
                return .landlockPath(access: access, path: try string())
            case CELL_REC_HOLD: return .hold
            case CELL_REC_ARG: return .argument(try string())
            case CELL_REC_ENV: return .environment(try string())
            case CELL_REC_END_SETUP: return .endSetup
            case CELL_REC_SECCOMP:
                let listener = try u32() != 0
                return .seccomp(listener: listener, bpf: try blob())
            case CELL_REC_END_FILTERS: return .endFilters
            case CELL_REC_START: return .start
            case CELL_REC_TAKE_PROCESSES: return .takeProcesses
            case CELL_REC_PROCESS:
                let rows = try u32(), columns = try u32()
                return .process(rows: rows, columns: columns, workingDirectory: try string())
            case CELL_REC_END_PROCESS: return .endProcess
            case CELL_REC_SIGNAL_PROCESS:
                let process = try u32()
                return .signalProcess(process: process, signal: try u32())
            default: throw DecodingError(message: "a record of unknown or reserved type \(type)")
            }
        }
    }
}
