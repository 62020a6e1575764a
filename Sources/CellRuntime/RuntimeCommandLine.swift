import CellLauncher
import CellPolicy
import Glibc

/// cell-runtime's command line: the runc-shaped subset engines call (podman through conmon,
/// containerd's shim), global options first, then the command. Exit status 0, or 1 with the
/// error in the log and on stderr, as runc.
public enum RuntimeCommandLine {
    public static let help = """
    cell-runtime — an OCI runtime that runs containers as cell sandboxes

    usage: cell-runtime [GLOBAL OPTIONS] COMMAND [OPTIONS] ID

    Engines call it (podman --runtime PATH, a containerd runtime entry); by hand:
      cell-runtime create --bundle DIR --pid-file FILE ID   build the container, its process held
      cell-runtime start ID                                 let the process run
      cell-runtime state ID                                 the runtime-spec state (JSON)
      cell-runtime kill [--all] ID [SIGNAL]                 signal it (default TERM; a number or a name)
      cell-runtime delete [--force] ID                      remove it (--force: a running one too)
      cell-runtime exec --process FILE [--pid-file FILE] [--detach] [--tty]
                        [--console-socket SOCK] ID          a second process in a running container
      cell-runtime ps [--format table|json] ID              the container's processes (host pids)
      cell-runtime features                                 what this runtime supports (JSON)
      cell-runtime --version

    create options:
      -b, --bundle DIR          the bundle (config.json and the root filesystem); default: .
      --pid-file FILE           where the monitor's pid is written (the process engines reap)
      --console-socket SOCK     where the pty's master goes (SCM_RIGHTS), when process.terminal
                                is true; the engine relays the terminal
      --preserve-fds N          only 0 for now
      --no-pivot, OCI hooks, pause, resume, update: not supported (a clear error)

    exec options:
      -p, --process FILE        the process (a runtime-spec process object); it runs with the
                                container's user, capabilities, rlimits and filters, and a
                                process.json that asks for others is refused
      --pid-file FILE           where the pid engines follow is written: exec's own, or with
                                --detach the child that waits for the process and exits with
                                its status
      -d, --detach              return once the process runs
      -t, --tty                 a pty of its own (as process.terminal); needs --console-socket
      --console-socket SOCK     where the pty's master goes

    global options:
      --root DIR                state directory (default $XDG_RUNTIME_DIR/cell-runtime;
                                /run/cell-runtime for root)
      --log FILE                also write errors there (engines read them back)
      --log-format text|json    the log's format (json: {"level","msg","time"} lines)
      --systemd-cgroup          accepted, as engines pass it: cell-runtime makes no cgroup
                                through systemd (linux.resources is refused)
      --debug                   accepted; changes nothing

    The container runs under a cell profile's seccomp policy, audited: annotation
    run.cell.profile=NAME (a profile name, never a path; default "default"), and
    run.cell.audit-log=FILE (a file name inside $XDG_STATE_HOME/cell/audit). The config's own
    linux.seccomp filter applies too. Who supervises what, and which of cell's rules yield
    inside an engine's namespaces: docs/oci-runtime.md.

    """

    struct Globals {
        var root: String?
        var log: String?
        var logFormat = RuntimeLog.Format.text
    }

    /// Runs `arguments` (without argv[0]); the process's exit status.
    public static func main(_ arguments: [String]) -> Int32 {
        var globals = Globals()
        var rest = arguments[...]
        var log: RuntimeLog
        do throws(RuntimeError) {
            try parseGlobals(&rest, into: &globals)
            log = try RuntimeLog(path: globals.log, format: globals.logFormat)
        } catch {
            _ = try? RuntimeLog(path: nil, format: .text).error(error.message)
            return 1
        }
        do throws(RuntimeError) {
            return try run(&rest, globals: globals, log: log)
        } catch {
            log.error(error.message)
            return 1
        }
    }

    static func parseGlobals(_ rest: inout ArraySlice<String>, into globals: inout Globals) throws(RuntimeError) {
        while let word = rest.first, word.hasPrefix("-") {
            rest.removeFirst()
            let (name, inline) = split(word)
            func value() throws(RuntimeError) -> String {
                if let inline { return inline }
                guard let next = rest.popFirst() else { throw RuntimeError("\(name) needs a value") }
                return next
            }
            switch name {
            case "--root": globals.root = try value()
            case "--log": globals.log = try value()
            case "--log-format":
                let format = try value()
                guard let parsed = RuntimeLog.Format(rawValue: format) else { throw RuntimeError("--log-format must be text or json, not '\(format)'") }
                globals.logFormat = parsed
            case "--systemd-cgroup", "--debug": break
            case "-v", "--version": rest = ["--version"]; return
            case "-h", "--help": rest = ["help"]; return
            default: throw RuntimeError("unknown global option \(name) (cell-runtime --help)")
            }
        }
    }

    static func split(_ word: String) -> (String, String?) {
        guard let eq = word.firstIndex(of: "=") else { return (word, nil) }
        return (String(word[..<eq]), String(word[word.index(after: eq)...]))
    }

    static func run(_ rest: inout ArraySlice<String>, globals: Globals, log: RuntimeLog) throws(RuntimeError) -> Int32 {
        guard let command = rest.popFirst() else { throw RuntimeError("no command given (cell-runtime --help)") }
        switch command {
        case "help":
            writeOut(help)
            return 0
        case "--version":
            writeOut("cell-runtime version \(InitHelper.cellVersion)\nspec: \(Lifecycle.ociVersion)\n")
            return 0
        case "features":
            guard rest.isEmpty else { throw RuntimeError("features takes no arguments") }
            writeOut(Features.document())
            return 0
        case "create", "start", "state", "kill", "delete", "ps", "exec":
            break
        case "run", "pause", "resume", "update", "checkpoint", "restore", "events", "spec", "list":
            throw RuntimeError("\(command) is not supported by cell-runtime (create, start, state, kill, delete, exec, ps, features are)")
        default:
            throw RuntimeError("unknown command '\(TerminalText.escaped(command))' (cell-runtime --help)")
        }
        let defaultRoot = StateStore.defaultRoot(environment: environment("XDG_RUNTIME_DIR"),
                                                 realRoot: geteuid() == 0 && IdentityMapping.inInitialUserNamespace())
        let root: String
        if let given = globals.root { root = given } else { root = try defaultRoot.get() }
        let lifecycle = Lifecycle(store: try StateStore(root: root), log: log)
        let options = try CommandOptions.parse(command, &rest)
        switch command {
        case "create":
            var create = Lifecycle.CreateOptions(bundle: options.values["--bundle"] ?? ".")
            create.pidFile = options.values["--pid-file"]
            create.consoleSocket = options.values["--console-socket"]
            if let fds = options.values["--preserve-fds"] {
                guard let n = Int(fds), n >= 0 else { throw RuntimeError("--preserve-fds must be a number, not '\(fds)'") }
                create.preserveFDs = n
            }
            try lifecycle.create(id: try options.id(), create)
        case "exec":
            guard let process = options.values["--process"] else {
                throw RuntimeError("exec needs --process FILE (a runtime-spec process object, as engines pass it)")
            }
            var exec = Lifecycle.ExecOptions(processFile: process)
            exec.pidFile = options.values["--pid-file"]
            exec.consoleSocket = options.values["--console-socket"]
            exec.detach = options.flags.contains("--detach")
            exec.tty = options.flags.contains("--tty")
            return try lifecycle.exec(id: try options.id(), exec)
        case "start":
            try lifecycle.start(id: try options.id())
        case "state":
            writeOut(try lifecycle.state(id: try options.id()))
        case "ps":
            let format = options.values["--format"] ?? "table"
            guard format == "table" || format == "json" else { throw RuntimeError("--format must be table or json, not '\(format)'") }
            let processes = try lifecycle.processes(id: try options.id())
            writeOut(format == "json" ? "[" + processes.map { String($0.pid) }.joined(separator: ",") + "]\n"
                     : "PID\tCMD\n" + processes.map { "\($0.pid)\t\(TerminalText.escaped($0.command))\n" }.joined())
        case "kill":
            let id = try options.id()
            let signal = try options.positional.count > 1 ? Signals.parse(options.positional[1]) : SIGTERM
            try lifecycle.kill(id: id, signal: signal, all: options.flags.contains("--all"))
        default:
            try lifecycle.delete(id: try options.id(), force: options.flags.contains("--force"))
        }
        return 0
    }

    static func writeOut(_ text: String) {
        _ = text.withCString { write(1, $0, strlen($0)) }
    }
}

/// One command's options and positional arguments.
struct CommandOptions {
    var values: [String: String] = [:]
    var flags: Set<String> = []
    var positional: [String] = []

    /// Per command: options that take a value, and flags.
    static let valued: [String: Set<String>] = ["create": ["--bundle", "--pid-file", "--console-socket", "--preserve-fds"], "ps": ["--format"],
                                                "exec": ["--process", "--pid-file", "--console-socket"]]
    static let flagNames: [String: Set<String>] = ["create": ["--no-new-keyring"], "kill": ["--all"], "delete": ["--force"],
                                                   "exec": ["--detach", "--tty"]]
    static let refused: Set<String> = ["--no-pivot", "--notify-socket"]
    static let maxPositional = ["kill": 2]

    static func parse(_ command: String, _ rest: inout ArraySlice<String>) throws(RuntimeError) -> CommandOptions {
        var options = CommandOptions()
        while let word = rest.popFirst() {
            guard word.hasPrefix("-"), word != "-" else {
                options.positional.append(word)
                continue
            }
            var (name, inline) = RuntimeCommandLine.split(word)
            if name == "-b" { name = "--bundle" }
            if name == "-a" { name = "--all" }
            if name == "-f" { name = "--force" }
            if command == "exec" {
                let short = ["-p": "--process", "-d": "--detach", "-t": "--tty"]
                name = short[name] ?? name
            }
            if refused.contains(name) { throw RuntimeError("\(name) is not supported by cell-runtime") }
            if valued[command]?.contains(name) == true {
                guard let value = inline ?? rest.popFirst() else { throw RuntimeError("\(name) needs a value") }
                options.values[name] = value
            } else if flagNames[command]?.contains(name) == true, inline == nil {
                options.flags.insert(name)
            } else {
                throw RuntimeError("\(command): unknown option \(name)")
            }
        }
        guard options.positional.count <= (maxPositional[command] ?? 1) else {
            throw RuntimeError("\(command): too many arguments: \(options.positional.joined(separator: " "))")
        }
        return options
    }

    func id() throws(RuntimeError) -> String {
        guard let id = positional.first else { throw RuntimeError("no container id given") }
        return id
    }
}

/// Signal names and numbers as `kill` takes them: 15, TERM, SIGTERM.
enum Signals {
    static let names: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "ILL": SIGILL, "TRAP": SIGTRAP, "ABRT": SIGABRT, "BUS": SIGBUS,
        "FPE": SIGFPE, "KILL": SIGKILL, "USR1": SIGUSR1, "SEGV": SIGSEGV, "USR2": SIGUSR2, "PIPE": SIGPIPE, "ALRM": SIGALRM,
        "TERM": SIGTERM, "STKFLT": SIGSTKFLT, "CHLD": SIGCHLD, "CONT": SIGCONT, "STOP": SIGSTOP, "TSTP": SIGTSTP,
        "TTIN": SIGTTIN, "TTOU": SIGTTOU, "URG": SIGURG, "XCPU": SIGXCPU, "XFSZ": SIGXFSZ, "VTALRM": SIGVTALRM,
        "PROF": SIGPROF, "WINCH": SIGWINCH, "IO": SIGIO, "PWR": SIGPWR, "SYS": SIGSYS,
    ]

    static func parse(_ text: String) throws(RuntimeError) -> Int32 {
        if let n = Int32(text), n > 0, n < 65 { return n }
        let upper = text.uppercased()
        let bare = upper.hasPrefix("SIG") ? String(upper.dropFirst(3)) : upper
        guard let signal = names[bare] else { throw RuntimeError("unknown signal '\(TerminalText.escaped(text))'") }
        return signal
    }
}
