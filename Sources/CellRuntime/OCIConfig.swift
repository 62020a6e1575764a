import CellPolicy

/// A problem cell-runtime reports to the engine: one line, logged as the engines parse it
/// (RuntimeLog), exit status 1 as runc's.
public struct RuntimeError: Error, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

/// The parts of an OCI runtime-spec config.json (runtime-spec 1.0–1.2) that cell-runtime acts
/// on, read strictly: a field of the wrong type is an error naming it, and a field cell-runtime
/// cannot honour (hooks, devices, resources, a terminal) is refused by the planner rather than
/// ignored. Fields that only describe (annotations aside) are not read.
public struct OCIConfig: Sendable {
    public struct Mount: Equatable, Sendable {
        public var destination: String
        public var type: String
        public var source: String
        public var options: [String]
    }

    public struct NamespaceEntry: Equatable, Sendable {
        public var type: String
        public var path: String?
    }

    public struct IDMapping: Equatable, Sendable {
        public var containerID: UInt32
        public var hostID: UInt32
        public var size: UInt32
    }

    public struct Rlimit: Equatable, Sendable {
        public var type: String
        public var soft: UInt64
        public var hard: UInt64
    }

    public var ociVersion: String
    public var rootPath: String
    public var rootReadOnly: Bool
    /// The container's process (OCIProcess: `exec` reads the same object from its own file).
    public var process: OCIProcess
    public var args: [String] { process.args }
    public var env: [String] { process.env }
    public var cwd: String { process.cwd }
    public var terminal: Bool { process.terminal }
    public var uid: UInt32 { process.uid }
    public var gid: UInt32 { process.gid }
    public var additionalGids: [UInt32] { process.additionalGids }
    public var umask: UInt32? { process.umask }
    public var capabilities: [String: [String]] { process.capabilities }
    public var rlimits: [Rlimit] { process.rlimits }
    public var noNewPrivileges: Bool { process.noNewPrivileges }
    public var hostname: String?
    public var mounts: [Mount]
    public var namespaces: [NamespaceEntry]
    public var uidMappings: [IDMapping]
    public var gidMappings: [IDMapping]
    public var seccomp: JSONValue?
    public var maskedPaths: [String]
    public var readonlyPaths: [String]
    public var sysctl: [(name: String, value: String)]
    public var annotations: [(name: String, value: String)]
    /// What the config asks for that cell-runtime does not do, named for the refusal (the
    /// planner decides; parsing only records that the field is there and not empty).
    public var present: Set<String>
    /// The keys of linux.resources that ask for a limit (only "devices" is accepted: see
    /// ContainerPlanner).
    public var resourcesKeys: [String]

    public func annotation(_ name: String) -> String? {
        annotations.last { $0.name == name }?.value
    }

    /// Reads config.json's text; `file` names it in errors.
    public static func parse(_ text: String, file: String) throws(RuntimeError) -> OCIConfig {
        let root: JSONValue
        do {
            root = try JSONParser.parse(text)
        } catch {
            throw RuntimeError("\(file):\(error.line):\(error.column): \(error.message)")
        }
        var reader = FieldReader(file: file)
        return try reader.config(root)
    }
}

/// Typed access to a config's fields, each error naming the field's JSON path.
struct FieldReader {
    let file: String

    func bad(_ path: String, _ what: String) -> RuntimeError {
        RuntimeError("\(file): \(path) \(what)")
    }

    func object(_ value: JSONValue?, _ path: String) throws(RuntimeError) -> JSONValue? {
        guard let value, !value.isNull else { return nil }
        guard case .object = value else { throw bad(path, "must be an object") }
        return value
    }

    func string(_ value: JSONValue?, _ path: String) throws(RuntimeError) -> String? {
        guard let value, !value.isNull else { return nil }
        guard let s = value.string else { throw bad(path, "must be a string") }
        return s
    }

    func bool(_ value: JSONValue?, _ path: String) throws(RuntimeError) -> Bool {
        guard let value, !value.isNull else { return false }
        guard let b = value.bool else { throw bad(path, "must be true or false") }
        return b
    }

    func u32(_ value: JSONValue?, _ path: String) throws(RuntimeError) -> UInt32? {
        guard let value, !value.isNull else { return nil }
        guard let n = value.uint64, let v = UInt32(exactly: n) else { throw bad(path, "must be an integer from 0 to 4294967295") }
        return v
    }

    func u64(_ value: JSONValue?, _ path: String) throws(RuntimeError) -> UInt64? {
        guard let value, !value.isNull else { return nil }
        guard let n = value.uint64 else { throw bad(path, "must be a non-negative integer") }
        return n
    }

    func array(_ value: JSONValue?, _ path: String) throws(RuntimeError) -> [JSONValue] {
        guard let value, !value.isNull else { return [] }
        guard let a = value.array else { throw bad(path, "must be an array") }
        return a
    }

    func strings(_ value: JSONValue?, _ path: String) throws(RuntimeError) -> [String] {
        var out: [String] = []
        for (i, item) in try array(value, path).enumerated() {
            guard let s = item.string else { throw bad("\(path)[\(i)]", "must be a string") }
            out.append(s)
        }
        return out
    }

    func stringMap(_ value: JSONValue?, _ path: String) throws(RuntimeError) -> [(name: String, value: String)] {
        guard case .object(let members)? = try object(value, path) else { return [] }
        var out: [(name: String, value: String)] = []
        for (key, item) in members {
            guard let s = item.string else { throw bad("\(path).\(key)", "must be a string") }
            out.append((key, s))
        }
        return out
    }

    func mappings(_ value: JSONValue?, _ path: String) throws(RuntimeError) -> [OCIConfig.IDMapping] {
        var out: [OCIConfig.IDMapping] = []
        for (i, item) in try array(value, path).enumerated() {
            let at = "\(path)[\(i)]"
            guard let c = try u32(item["containerID"], at + ".containerID"), let h = try u32(item["hostID"], at + ".hostID"),
                  let s = try u32(item["size"], at + ".size"), s > 0 else {
                throw bad(at, "needs containerID, hostID and a size above 0")
            }
            out.append(OCIConfig.IDMapping(containerID: c, hostID: h, size: s))
        }
        return out
    }

    /// The keys of linux.resources that ask for a limit. `cpu` holding only `shares: 1024`, the
    /// kernel's default weight, asks for none: containerd writes it into every config.
    func resourcesKeys(_ value: JSONValue?) -> [String] {
        guard case .object(let members)? = value else { return [] }
        return members.filter { key, member in
            guard FieldReader.isSet(member) else { return false }
            if key == "cpu", case .object(let cpu) = member {
                let set = cpu.filter { FieldReader.isSet($0.1) }
                return !(set.count == 1 && set[0].0 == "shares" && set[0].1.uint64 == 1024)
            }
            return true
        }.map(\.0)
    }

    /// Whether `value` holds anything (a non-empty object or array, or any scalar but null).
    static func isSet(_ value: JSONValue?) -> Bool {
        switch value {
        case nil, .null?: return false
        case .object(let m)?: return !m.isEmpty
        case .array(let a)?: return !a.isEmpty
        default: return true
        }
    }

    mutating func config(_ root: JSONValue) throws(RuntimeError) -> OCIConfig {
        guard case .object = root else { throw RuntimeError("\(file): a config is a JSON object") }
        guard let version = try string(root["ociVersion"], "ociVersion") else { throw bad("ociVersion", "is missing") }
        guard let rootObject = try object(root["root"], "root"), let rootPath = try string(rootObject["path"], "root.path") else {
            throw bad("root.path", "is missing")
        }
        guard let processObject = try object(root["process"], "process") else { throw bad("process", "is missing") }
        let process = try self.process(processObject, at: "process.")
        var mounts: [OCIConfig.Mount] = []
        for (i, item) in try array(root["mounts"], "mounts").enumerated() {
            let at = "mounts[\(i)]"
            guard let destination = try string(item["destination"], at + ".destination") else { throw bad(at, "has no destination") }
            mounts.append(OCIConfig.Mount(destination: destination, type: try string(item["type"], at + ".type") ?? "",
                                          source: try string(item["source"], at + ".source") ?? "",
                                          options: try strings(item["options"], at + ".options")))
        }
        let linux = try object(root["linux"], "linux")
        var namespaces: [OCIConfig.NamespaceEntry] = []
        for (i, item) in try array(linux?["namespaces"], "linux.namespaces").enumerated() {
            guard let type = try string(item["type"], "linux.namespaces[\(i)].type") else { throw bad("linux.namespaces[\(i)]", "has no type") }
            let path = try string(item["path"], "linux.namespaces[\(i)].path")
            namespaces.append(OCIConfig.NamespaceEntry(type: type, path: path?.isEmpty == true ? nil : path))
        }
        var present = process.present
        let optional: [(String, JSONValue?)] = [
            ("hooks", root["hooks"]), ("linux.devices", linux?["devices"]), ("linux.resources", linux?["resources"]),
            ("linux.intelRdt", linux?["intelRdt"]), ("linux.personality", linux?["personality"]),
            ("linux.timeOffsets", linux?["timeOffsets"]),
            ("linux.seccomp.listenerPath", linux?["seccomp"]?["listenerPath"]),
            ("linux.seccomp.flags", linux?["seccomp"]?["flags"]),
        ]
        for (name, value) in optional where FieldReader.isSet(value) { present.insert(name) }
        return OCIConfig(
            ociVersion: version, rootPath: rootPath, rootReadOnly: try bool(rootObject["readonly"], "root.readonly"),
            process: process,
            hostname: try string(root["hostname"], "hostname"), mounts: mounts, namespaces: namespaces,
            uidMappings: try mappings(linux?["uidMappings"], "linux.uidMappings"),
            gidMappings: try mappings(linux?["gidMappings"], "linux.gidMappings"),
            seccomp: try object(linux?["seccomp"], "linux.seccomp"),
            maskedPaths: try strings(linux?["maskedPaths"], "linux.maskedPaths"),
            readonlyPaths: try strings(linux?["readonlyPaths"], "linux.readonlyPaths"),
            sysctl: try stringMap(linux?["sysctl"], "linux.sysctl"),
            annotations: try stringMap(root["annotations"], "annotations"), present: present,
            resourcesKeys: resourcesKeys(linux?["resources"]))
    }
}
