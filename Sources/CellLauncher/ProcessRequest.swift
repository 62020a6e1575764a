import CellPolicy

/// A process `cell-runtime exec` asks for in a running container: what it is (its arguments,
/// environment, working directory, and whether it gets a pty of its own). Everything else — its
/// namespaces, root, ids, capabilities, no_new_privs, Landlock domain and seccomp filters — is
/// the container's, inherited from pid 1, which starts it (cell-init/process.c).
///
/// It travels as plan records (`records`): from `exec` to the container's monitor, which checks
/// it again (`init(records:)`) and passes the same records to pid 1.
public struct ProcessRequest: Equatable, Sendable {
    public var arguments: [String]
    public var environment: [String]
    public var workingDirectory: String
    /// A pty's size, or nil: the process gets the descriptors that come with the request.
    public var terminal: TerminalSize?

    public struct TerminalSize: Equatable, Sendable {
        public var rows: UInt16
        public var columns: UInt16
        public init(rows: UInt16, columns: UInt16) {
            self.rows = max(rows, 1)
            self.columns = max(columns, 1)
        }
    }

    /// The most arguments and variables together, and bytes in all: pid 1 reads a request into a
    /// fixed buffer (process.c: 4096 entries each, 1 MiB).
    public static let maxEntries = 4096
    public static let maxBytes = 1 << 20

    public init(arguments: [String], environment: [String], workingDirectory: String, terminal: TerminalSize?) throws(LaunchError) {
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.terminal = terminal
        try check()
    }

    /// What pid 1 would refuse, refused here with a reason.
    func check() throws(LaunchError) {
        guard !arguments.isEmpty else { throw .invalid("the process has no arguments: name the program to run") }
        guard SandboxPath.normalize(workingDirectory) == workingDirectory || workingDirectory == "/" else {
            throw .invalid("the process's working directory must be an absolute path without '..': \(TerminalText.escaped(workingDirectory))")
        }
        for text in arguments + environment + [workingDirectory] where text.utf8.contains(0) {
            throw .invalid("the process's arguments, environment and working directory cannot hold a NUL byte")
        }
        for entry in environment {
            guard let eq = entry.firstIndex(of: "="), eq != entry.startIndex else {
                throw .invalid("the process's environment: '\(TerminalText.escaped(entry))' is not NAME=value")
            }
        }
        guard arguments.count <= ProcessRequest.maxEntries, environment.count <= ProcessRequest.maxEntries,
              PlanEncoding.encode(records).count <= ProcessRequest.maxBytes else {
            throw .invalid("the process's arguments and environment are too large (at most 4096 of each, 1 MiB in all)")
        }
    }

    public var records: [PlanRecord] {
        [.process(rows: UInt32(terminal?.rows ?? 0), columns: UInt32(terminal?.columns ?? 0), workingDirectory: workingDirectory)]
            + arguments.map(PlanRecord.argument) + environment.map(PlanRecord.environment) + [.endProcess]
    }

    /// A request as it arrived: PROCESS, ARG..., ENV..., END_PROCESS, checked as pid 1 checks it.
    public init(records: [PlanRecord]) throws(LaunchError) {
        guard case .process(let rows, let columns, let dir)? = records.first, records.last == .endProcess, records.count >= 3,
              rows <= UInt16.max, columns <= UInt16.max, (rows == 0) == (columns == 0) else {
            throw .invalid("a malformed process request")
        }
        var arguments: [String] = [], environment: [String] = []
        for record in records.dropFirst().dropLast() {
            switch record {
            case .argument(let word) where environment.isEmpty: arguments.append(word)
            case .environment(let entry): environment.append(entry)
            default: throw .invalid("a malformed process request")
            }
        }
        try self.init(arguments: arguments, environment: environment, workingDirectory: dir,
                      terminal: rows == 0 ? nil : TerminalSize(rows: UInt16(rows), columns: UInt16(columns)))
    }
}
