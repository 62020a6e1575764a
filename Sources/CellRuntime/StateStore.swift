import CellAudit
import CellPolicy
import Glibc

/// What cell-runtime keeps about one container, in `ROOT/ID/state.json`.
public struct ContainerRecord: Equatable, Sendable {
    public var id: String
    public var bundle: String
    /// The container's first process: the sandbox's pid 1 (cell-init), in every namespace of
    /// the container. `state` reports it; `kill` signals it.
    public var pid: Int32
    /// Its start time (/proc/PID/stat, field 22): a pid the kernel has reused since is not it.
    public var pidStart: UInt64
    /// The monitor (the supervisor after `create`): the pid in `--pid-file`.
    public var monitor: Int32
    public var monitorStart: UInt64
    public var created: String
    /// `start` went through: the command runs (or ran).
    public var started: Bool
    public var annotations: [(name: String, value: String)]

    public static func == (a: ContainerRecord, b: ContainerRecord) -> Bool {
        a.id == b.id && a.bundle == b.bundle && a.pid == b.pid && a.pidStart == b.pidStart && a.monitor == b.monitor
            && a.monitorStart == b.monitorStart && a.created == b.created && a.started == b.started
            && a.annotations.map(\.name) == b.annotations.map(\.name) && a.annotations.map(\.value) == b.annotations.map(\.value)
    }

    var json: String {
        let notes = annotations.map { "\(JSONField.quote($0.name)):\(JSONField.quote($0.value))" }.joined(separator: ",")
        return "{\"id\":\(JSONField.quote(id)),\"bundle\":\(JSONField.quote(bundle)),\"pid\":\(pid),\"pid_start\":\(pidStart),"
            + "\"monitor\":\(monitor),\"monitor_start\":\(monitorStart),\"created\":\(JSONField.quote(created)),"
            + "\"started\":\(started),\"annotations\":{\(notes)}}\n"
    }

    init(id: String, bundle: String, pid: Int32, pidStart: UInt64, monitor: Int32, monitorStart: UInt64, created: String,
         started: Bool, annotations: [(name: String, value: String)]) {
        self.id = id
        self.bundle = bundle
        self.pid = pid
        self.pidStart = pidStart
        self.monitor = monitor
        self.monitorStart = monitorStart
        self.created = created
        self.started = started
        self.annotations = annotations
    }

    init?(json text: String) {
        guard let root = try? JSONParser.parse(text), let id = root["id"]?.string, let bundle = root["bundle"]?.string,
              let pid = root["pid"]?.int, let pidStart = root["pid_start"]?.uint64, let monitor = root["monitor"]?.int,
              let monitorStart = root["monitor_start"]?.uint64, let created = root["created"]?.string,
              let started = root["started"]?.bool, case .object(let notes)? = root["annotations"] else { return nil }
        self.init(id: id, bundle: bundle, pid: Int32(pid), pidStart: pidStart, monitor: Int32(monitor), monitorStart: monitorStart,
                  created: created, started: started, annotations: notes.compactMap { key, value in value.string.map { (key, $0) } })
    }
}

/// A container's status, as the runtime spec names them.
public enum ContainerStatus: String, Sendable {
    case creating, created, running, stopped
}

/// cell-runtime's state directory: `ROOT/ID/` per container, holding `state.json` and the
/// `start` FIFO. ROOT is `--root`, else `$XDG_RUNTIME_DIR/cell-runtime` (inside an engine's
/// user namespace too), else `/run/cell-runtime` for real root. Created 0700 and checked (owner,
/// mode, no symlink) before use: it says which process is a container's, and `start` runs a
/// container through it. Never reachable from a container (nothing of it is ever bound in).
public struct StateStore {
    public let root: String

    /// The root when `--root` is not given, or why there is none.
    public static func defaultRoot(environment xdgRuntimeDir: String?, realRoot: Bool) -> Result<String, RuntimeError> {
        if let dir = xdgRuntimeDir, dir.hasPrefix("/") { return .success(dir + "/cell-runtime") }
        if realRoot { return .success("/run/cell-runtime") }
        return .failure(RuntimeError("no state directory: set XDG_RUNTIME_DIR or give --root DIR"))
    }

    /// Opens (making it if needed) the root directory, and checks it.
    public init(root: String) throws(RuntimeError) {
        guard let path = SandboxPath.normalize(root, relativeTo: currentDirectory()) else {
            throw RuntimeError("--root \(root): give a path without '..'")
        }
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw RuntimeError("cannot make the state directory \(path): \(errorText(errno))")
        }
        var st = stat()
        guard lstat(path, &st) == 0 else { throw RuntimeError("cannot use the state directory \(path): \(errorText(errno))") }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw RuntimeError("the state directory \(path) is not a directory (a symlink is refused)") }
        guard st.st_uid == geteuid() else { throw RuntimeError("the state directory \(path) belongs to uid \(st.st_uid), not to you") }
        guard st.st_mode & 0o077 == 0 else {
            throw RuntimeError("the state directory \(path) is open to others (mode \(String(st.st_mode & 0o7777, radix: 8))): chmod 700 it")
        }
        self.root = path
    }

    /// A container id as engines make them (64 hex digits for podman), never a path.
    public static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 128 && !id.hasPrefix(".")
            && id.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "_.-".unicodeScalars.contains($0) }
    }

    public func directory(_ id: String) -> String { root + "/" + id }
    public func startFIFO(_ id: String) -> String { directory(id) + "/start" }
    /// Where `exec` connects to the container's monitor (ProcessService), once it runs.
    public func processSocket(_ id: String) -> String { directory(id) + "/exec.sock" }

    func checkedID(_ id: String) throws(RuntimeError) -> String {
        guard StateStore.isValidID(id) else { throw RuntimeError("invalid container id '\(TerminalText.escaped(id))': letters, digits, '_', '.', '-' only") }
        return id
    }

    /// The container's directory, made anew: an id in use is an error.
    public func create(_ id: String) throws(RuntimeError) {
        let dir = directory(try checkedID(id))
        guard mkdir(dir, 0o700) == 0 else {
            throw RuntimeError(errno == EEXIST ? "container with id exists: \(id)" : "cannot make \(dir): \(errorText(errno))")
        }
    }

    public func exists(_ id: String) -> Bool {
        guard StateStore.isValidID(id) else { return false }
        var st = stat()
        return lstat(directory(id), &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
    }

    /// Writes the record whole: a new file renamed over the old one.
    public func write(_ record: ContainerRecord) throws(RuntimeError) {
        let dir = directory(try checkedID(record.id))
        let temporary = dir + "/state.json.new"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0, fchmod(fd, 0o600) == 0 else { throw RuntimeError("cannot write \(temporary): \(errorText(errno))") }
        let text = record.json
        let written = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        close(fd)
        guard written == text.utf8.count, rename(temporary, dir + "/state.json") == 0 else {
            throw RuntimeError("cannot write \(dir)/state.json: \(errorText(errno))")
        }
    }

    /// The record, or nil while `create` has not written it yet. Throws when there is no such
    /// container (in the words engines match: "does not exist").
    public func read(_ id: String) throws(RuntimeError) -> ContainerRecord? {
        guard exists(id) else { throw RuntimeError("container \"\(TerminalText.escaped(id))\" does not exist") }
        guard let text = readSmallFile(directory(id) + "/state.json") else { return nil }
        guard let record = ContainerRecord(json: text) else { throw RuntimeError("the state of container \(id) is damaged: delete it with --force") }
        return record
    }

    /// Removes the container's directory and what cell-runtime put in it.
    public func remove(_ id: String) throws(RuntimeError) {
        let dir = directory(try checkedID(id))
        for name in ["state.json", "state.json.new", "start"] { unlink(dir + "/" + name) }
        guard rmdir(dir) == 0 || errno == ENOENT else { throw RuntimeError("cannot remove \(dir): \(errorText(errno))") }
    }

    /// The status of a recorded container: its pid 1 alive (the same process: same start time,
    /// not a zombie) and started, or not.
    public static func status(_ record: ContainerRecord?) -> ContainerStatus {
        guard let record else { return .creating }
        // Recorded by the monitor before pid 1 exists: creating while the monitor lives.
        if record.pid == 0 { return ProcessInfo.isAlive(record.monitor, start: record.monitorStart) ? .creating : .stopped }
        guard ProcessInfo.isAlive(record.pid, start: record.pidStart) else { return .stopped }
        return record.started ? .running : .created
    }
}

/// What /proc says of a process.
public enum ProcessInfo {
    /// Its start time (clock ticks after boot) and state letter, from /proc/PID/stat.
    public static func stat(_ pid: Int32) -> (start: UInt64, state: Character)? {
        guard pid > 0, let text = readSmallFile("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        // After the command name (which may hold spaces and parentheses): field 3, the state,
        // onwards; the start time is field 22.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let start = UInt64(fields[19]), let state = fields[0].first else { return nil }
        return (start, state)
    }

    public static func isAlive(_ pid: Int32, start: UInt64) -> Bool {
        guard let info = stat(pid) else { return false }
        return info.start == start && info.state != "Z" && info.state != "X"
    }
}
