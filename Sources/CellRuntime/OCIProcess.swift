import CellPolicy

/// A runtime-spec `process` object: config.json's, or the whole of the file `exec --process`
/// reads. Read strictly, as OCIConfig is.
public struct OCIProcess: Equatable, Sendable {
    public var args: [String]
    public var env: [String]
    public var cwd: String
    public var terminal: Bool
    /// consoleSize: the pty's starting size, when given.
    public var rows: UInt16?
    public var columns: UInt16?
    public var uid: UInt32
    public var gid: UInt32
    public var additionalGids: [UInt32]
    public var umask: UInt32?
    /// "bounding", "effective", "permitted", "inheritable", "ambient" → capability names.
    public var capabilities: [String: [String]]
    public var rlimits: [OCIConfig.Rlimit]
    public var noNewPrivileges: Bool
    /// Fields that ask for what cell-runtime does not do (named with the `process.` prefix).
    public var present: Set<String>

    /// The file `exec --process FILE` gives: a process object on its own.
    public static func parse(_ text: String, file: String) throws(RuntimeError) -> OCIProcess {
        let root: JSONValue
        do {
            root = try JSONParser.parse(text)
        } catch {
            throw RuntimeError("\(file):\(error.line):\(error.column): \(error.message)")
        }
        guard case .object = root else { throw RuntimeError("\(file): a process is a JSON object") }
        return try FieldReader(file: file).process(root, at: "")
    }
}

extension FieldReader {
    /// The process object `value`, its fields named with `prefix` ("process." in a config).
    func process(_ value: JSONValue, at prefix: String) throws(RuntimeError) -> OCIProcess {
        let args = try strings(value["args"], prefix + "args")
        guard !args.isEmpty else { throw bad(prefix + "args", "must name the program to run") }
        guard let cwd = try string(value["cwd"], prefix + "cwd") else { throw bad(prefix + "cwd", "is missing") }
        let user = try object(value["user"], prefix + "user")
        var capabilities: [String: [String]] = [:]
        if let caps = try object(value["capabilities"], prefix + "capabilities") {
            for set in ["bounding", "effective", "permitted", "inheritable", "ambient"] {
                capabilities[set] = try strings(caps[set], prefix + "capabilities.\(set)")
            }
        }
        var rlimits: [OCIConfig.Rlimit] = []
        for (i, item) in try array(value["rlimits"], prefix + "rlimits").enumerated() {
            let at = prefix + "rlimits[\(i)]"
            guard let type = try string(item["type"], at + ".type"), let soft = try u64(item["soft"], at + ".soft"),
                  let hard = try u64(item["hard"], at + ".hard") else { throw bad(at, "needs type, soft and hard") }
            rlimits.append(OCIConfig.Rlimit(type: type, soft: soft, hard: hard))
        }
        let console = try object(value["consoleSize"], prefix + "consoleSize")
        func size(_ key: String) throws(RuntimeError) -> UInt16? {
            guard let n = try u32(console?[key], prefix + "consoleSize.\(key)") else { return nil }
            return UInt16(clamping: n)
        }
        var present = Set<String>()
        for name in ["apparmorProfile", "selinuxLabel", "ioPriority", "scheduler", "execCPUAffinity"] where FieldReader.isSet(value[name]) {
            present.insert("process." + name)
        }
        return OCIProcess(
            args: args, env: try strings(value["env"], prefix + "env"), cwd: cwd,
            terminal: try bool(value["terminal"], prefix + "terminal"), rows: try size("height"), columns: try size("width"),
            uid: try u32(user?["uid"], prefix + "user.uid") ?? 0, gid: try u32(user?["gid"], prefix + "user.gid") ?? 0,
            additionalGids: try array(user?["additionalGids"], prefix + "user.additionalGids").enumerated().map { (i, v) throws(RuntimeError) in
                guard let g = try u32(v, prefix + "user.additionalGids[\(i)]") else { throw bad(prefix + "user.additionalGids[\(i)]", "is null") }
                return g
            },
            umask: try u32(user?["umask"], prefix + "user.umask"),
            capabilities: capabilities, rlimits: rlimits,
            noNewPrivileges: try bool(value["noNewPrivileges"], prefix + "noNewPrivileges"), present: present)
    }
}
