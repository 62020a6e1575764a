import CellLauncher
import CellPolicy

/// What the user asked for, parsed from the command line.
public enum CellCommand: Equatable {
    case run(RunOptions)
    case profileList
    case profileShow(String)
    case profileCheck([String])
    case auditSummary(String)
    /// `cell doctor [--json]`
    case doctor(json: Bool)
    case changes(String, apply: String?)
    /// `cell cache list`, `cell cache clear NAME|SCOPE/NAME|--all` (nil: all).
    case cacheList
    case cacheClear(String?)
    /// `cell learn [-o FILE] [--merge FILE] [RUN OPTIONS] -- COMMAND`
    case learn(LearnOptions)
    case help(topic: String?)
    case version
}

/// Options of `cell run`: the request for the Planner, and what only the command line decides.
public struct RunOptions: Equatable {
    public var request = RunRequest()
    /// -p/--profile: a name or a path; nil: "default".
    public var profile: String?
    public var dryRun = false
    /// With --dry-run: where to write the encoded plan.
    public var planOut: String?

    public init() {}
}

/// Options of `cell learn`: those of `cell run`, and where the profile goes.
public struct LearnOptions: Equatable {
    public var run = RunOptions()
    /// -o/--output; nil: standard output (or, with --merge, the merged file itself); "-" also
    /// standard output.
    public var output: String?
    /// --merge: a profile cell learn wrote, to fold this run into.
    public var merge: String?
}

/// A mistake on the command line: reported as `cell: MESSAGE` with exit status 125.
public struct UsageError: Error, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

/// The command-line parser. Hand-written on purpose: swift-argument-parser imports Foundation,
/// which costs milliseconds at every launch, and a sandbox's options are few and fixed.
/// Accepts `--name value` and `--name=value`; options stop at `--` or at the first word that is
/// not an option (the command), so the command's own options are never taken for cell's.
public enum ArgumentParser {
    public static func parse(_ arguments: [String]) throws(UsageError) -> CellCommand {
        guard let first = arguments.first else { return .help(topic: nil) }
        let rest = Array(arguments.dropFirst())
        switch first {
        case "run":
            return try parseRun(rest)
        case "profile":
            return try parseProfile(rest)
        case "learn":
            return try parseLearn(rest)
        case "audit":
            if rest.first == "-h" || rest.first == "--help" { return .help(topic: "audit") }
            guard rest.count == 2, rest[0] == "summary" else { throw UsageError("usage: cell audit summary PATH") }
            return .auditSummary(rest[1])
        case "changes":
            if rest.first == "-h" || rest.first == "--help" { return .help(topic: "changes") }
            switch rest.count {
            case 1: return .changes(rest[0], apply: nil)
            case 3 where rest[1] == "--apply": return .changes(rest[0], apply: rest[2])
            default: throw UsageError("usage: cell changes DIR [--apply TARGET] (DIR: a directory given to --changes)")
            }
        case "cache":
            switch rest {
            case ["list"]: return .cacheList
            case ["clear", "--all"]: return .cacheClear(nil)
            case let words where words.count == 2 && words[0] == "clear" && !words[1].hasPrefix("-"): return .cacheClear(words[1])
            case ["-h"], ["--help"]: return .help(topic: "cache")
            default: throw UsageError("usage: cell cache list | cell cache clear NAME|SCOPE/NAME|--all")
            }
        case "doctor":
            switch rest {
            case []: return .doctor(json: false)
            case ["--json"]: return .doctor(json: true)
            case ["-h"], ["--help"]: return .help(topic: "doctor")
            default: throw UsageError("usage: cell doctor [--json]")
            }
        case "help":
            if rest.count > 1 { throw UsageError("'cell help' takes at most one topic") }
            if let topic = rest.first, !Help.topics.contains(topic) {
                throw UsageError("no help on '\(topic)' (topics: \(Help.topics.joined(separator: ", ")))")
            }
            return .help(topic: rest.first)
        case "-h", "--help":
            return .help(topic: nil)
        case "--version", "version":
            if !rest.isEmpty { throw UsageError("'\(first)' takes no arguments") }
            return .version
        default:
            if first.hasPrefix("-") {
                throw UsageError("unknown option '\(first)' (see 'cell --help')")
            }
            throw UsageError("unknown command '\(first)' (commands: run, profile, audit, help, version; see 'cell --help')")
        }
    }

    static func parseProfile(_ arguments: [String]) throws(UsageError) -> CellCommand {
        guard let verb = arguments.first else {
            throw UsageError("'cell profile' needs a verb: list, show NAME, check FILE...")
        }
        let rest = Array(arguments.dropFirst())
        if rest.contains("-h") || rest.contains("--help") || verb == "-h" || verb == "--help" { return .help(topic: "profile") }
        switch verb {
        case "list":
            guard rest.isEmpty else { throw UsageError("'cell profile list' takes no arguments") }
            return .profileList
        case "show":
            guard rest.count == 1 else { throw UsageError("usage: cell profile show NAME|PATH") }
            return .profileShow(rest[0])
        case "check":
            guard !rest.isEmpty else { throw UsageError("usage: cell profile check FILE...") }
            return .profileCheck(rest)
        default:
            throw UsageError("unknown verb 'cell profile \(verb)' (list, show, check)")
        }
    }

    /// `cell learn` takes cell run's options besides its own, and the command after `--` only:
    /// its own options (-o) must never be taken from the command's words.
    static func parseLearn(_ arguments: [String]) throws(UsageError) -> CellCommand {
        if arguments.first == "-h" || arguments.first == "--help" { return .help(topic: "learn") }
        guard let separator = arguments.firstIndex(of: "--") else {
            throw UsageError("usage: cell learn [-o FILE] [--merge FILE] [RUN OPTIONS] -- COMMAND [ARG...] (the command follows --)")
        }
        var learn = LearnOptions()
        var passed: [String] = []
        var index = 0
        while index < separator {
            let word = arguments[index]
            var name = word, value: String?
            if word.hasPrefix("--"), let eq = word.firstIndex(of: "=") {
                name = String(word[..<eq])
                value = String(word[word.index(after: eq)...])
            }
            guard ["-o", "--output", "--merge"].contains(name) else {
                if word == "-h" || word == "--help" { return .help(topic: "learn") }
                passed.append(word)
                index += 1
                continue
            }
            if value == nil {
                index += 1
                guard index < separator else { throw UsageError("\(name) needs a file path") }
                value = arguments[index]
            }
            guard let value, !value.isEmpty else { throw UsageError("\(name) needs a file path") }
            if (name == "--merge" ? learn.merge : learn.output) != nil { throw UsageError("\(name) given twice") }
            if name == "--merge" { learn.merge = value } else { learn.output = value }
            index += 1
        }
        guard case .run(let options) = try parseRun(passed + Array(arguments[separator...])) else {
            return .help(topic: "learn")
        }
        if options.dryRun { throw UsageError("cell learn runs the command to see what it does: --dry-run goes with cell run") }
        // The learned profile extends a profile: a policy chosen on the command line would not
        // go with it, and the profile would be judged at its next run against another policy.
        let r = options.request
        if let option = r.seccompPolicy != nil ? "--seccomp" : r.seccompJSONPath != nil ? "--seccomp-json"
            : !r.allowedSyscalls.isEmpty ? "--allow-syscall" : !r.deniedSyscalls.isEmpty ? "--deny-syscall" : nil {
            throw UsageError("cell learn: \(option) would not go with the learned profile, which extends a profile: put it in one ([seccomp] policy, json, allow or deny) and learn under it with --profile")
        }
        learn.run = options
        return .learn(learn)
    }

    static func parseRun(_ arguments: [String]) throws(UsageError) -> CellCommand {
        var options = RunOptions()
        var index = 0
        while index < arguments.count {
            let word = arguments[index]
            if word == "--" {
                options.request.command = Array(arguments[(index + 1)...])
                break
            }
            guard word.hasPrefix("-"), word != "-" else {
                options.request.command = Array(arguments[index...])
                break
            }
            if word == "-h" || word == "--help" { return .help(topic: "run") }
            if word == "-p" {
                index += 1
                guard index < arguments.count else { throw UsageError("-p needs a value: NAME|PATH") }
                try apply(.profile, arguments[index], to: &options)
                index += 1
                continue
            }

            // --name=value or --name value
            var name = word
            var inlineValue: String?
            if word.hasPrefix("--"), let eq = word.firstIndex(of: "=") {
                name = String(word[..<eq])
                inlineValue = String(word[word.index(after: eq)...])
            }
            guard let option = RunOption(rawValue: name) else {
                throw UsageError("unknown option '\(name)' for 'cell run'\(suggestion(for: name)) (see 'cell run --help')")
            }
            var value: String?
            if option.takesValue {
                if let inlineValue {
                    value = inlineValue
                } else {
                    index += 1
                    guard index < arguments.count else { throw UsageError("\(name) needs a value: \(option.valueHint)") }
                    value = arguments[index]
                }
            } else if inlineValue != nil {
                throw UsageError("\(name) takes no value")
            }
            try apply(option, value ?? "", to: &options)
            index += 1
        }
        if options.request.command.isEmpty {
            throw UsageError("no command given: usage is 'cell run [OPTIONS] -- COMMAND [ARG...]'")
        }
        return .run(options)
    }

    static func apply(_ option: RunOption, _ value: String, to options: inout RunOptions) throws(UsageError) {
        switch option {
        case .hostname:
            guard isValidHostname(value) else {
                throw UsageError("--hostname '\(value)' is not a valid hostname (letters, digits, '-' and '.', at most 64 characters)")
            }
            options.request.hostname = value
        case .cwd:
            guard value.hasPrefix("/") else { throw UsageError("--cwd needs an absolute path, got '\(value)'") }
            options.request.workingDirectory = value
        case .env:
            guard let eq = value.firstIndex(of: "=") else {
                throw UsageError("--env needs NAME=VALUE, got '\(value)' (to keep a variable of yours, use --keep-env \(value))")
            }
            let name = String(value[..<eq])
            guard SandboxEnvironment.isValidName(name), !value.utf8.contains(0) else {
                throw UsageError("--env '\(value)': '\(name)' is not a valid variable name")
            }
            options.request.environment.append(EnvAssignment(name: name, value: String(value[value.index(after: eq)...])))
        case .keepEnv:
            guard SandboxEnvironment.isValidPattern(value) else {
                throw UsageError("--keep-env '\(value)' is not a variable name (a trailing '*' matches a prefix)")
            }
            options.request.keepEnvironment.append(value)
        case .statusJSON:
            guard !value.isEmpty else { throw UsageError("--status-json needs a file path") }
            options.request.statusJSONPath = value
        case .outerID:
            options.request.outerID = try parseOuterID(value)
        case .dryRun:
            options.dryRun = true
            options.request.createsCaches = false
        case .planOut:
            guard !value.isEmpty else { throw UsageError("--plan-out needs a file path") }
            options.planOut = value
        case .tty, .noTTY:
            let mode: TerminalMode = option == .tty ? .always : .never
            if let earlier = options.request.terminal, earlier != mode {
                throw UsageError("--tty and --no-tty contradict each other: give one")
            }
            options.request.terminal = mode
        case .asRoot, .asCaller:
            let inside: SandboxIdentity = option == .asRoot ? .root : .caller
            if let earlier = options.request.inside, earlier != inside {
                throw UsageError("--as-root and --as-caller contradict each other: give one")
            }
            options.request.inside = inside
        case .roBind, .bind:
            let readOnly = option == .roBind
            guard !value.isEmpty else { throw UsageError("\(option.rawValue) needs SRC[:DST]") }
            let parts = value.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let destination = parts.count == 2 ? parts[1] : nil
            if let destination {
                guard destination.hasPrefix("/") else {
                    throw UsageError("\(option.rawValue) '\(value)': the destination must be an absolute path inside the sandbox")
                }
                guard SandboxPath.normalize(destination) != nil else {
                    throw UsageError("\(option.rawValue) '\(value)': '..' is not allowed in the destination")
                }
            }
            guard !parts[0].isEmpty, !parts[0].split(separator: "/").contains("..") else {
                throw UsageError("\(option.rawValue) '\(value)': the source must be a path without '..'")
            }
            options.request.mounts.append(.bind(source: parts[0], destination: destination, readOnly: readOnly))
        case .overlay:
            let parts = value.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard !parts[0].isEmpty, !parts[0].split(separator: "/").contains(".."),
                  parts.count == 1 || (parts[1].hasPrefix("/") && SandboxPath.normalize(parts[1]) != nil) else {
                throw UsageError("--overlay '\(value)' needs SRC[:DST], DST absolute, neither with '..'")
            }
            options.request.mounts.append(.overlay(source: parts[0], destination: parts.count == 2 ? parts[1] : nil))
        case .overlaySize:
            guard let bytes = ByteSize.parse(value), bytes > 0 else { throw UsageError("--overlay-size '\(value)' is not a size (e.g. 512m, 2g)") }
            options.request.overlaySize = bytes
        case .changes:
            guard value.hasPrefix("/"), let dir = SandboxPath.normalize(value) else {
                throw UsageError("--changes '\(value)' needs an absolute path to an existing directory")
            }
            options.request.changes = dir
        case .cache:
            switch CacheMount.parse(value) {
            case .success(let cache): options.request.caches.append(cache)
            case .failure(let error): throw UsageError("--cache \(error.message)")
            }
        case .cacheScope:
            guard let scope = CacheScope(rawValue: value) else { throw UsageError("--cache-scope must be project, profile or user, not '\(value)'") }
            options.request.cacheScope = scope
        case .hide:
            switch HidePattern.parse(value) {
            case .success(let pattern): options.request.hide.append(pattern)
            case .failure(let error): throw UsageError("--hide: \(error.message)")
            }
        case .tmpfs:
            options.request.mounts.append(try parseTmpfs(value))
        case .profile:
            guard !value.isEmpty else { throw UsageError("--profile needs a name or a path") }
            options.profile = value
        case .net:
            switch value {
            case "none", "host", "user", "proxy": options.request.network = value
            default: throw UsageError("--net '\(value)' is not a network mode (none, host, user, proxy)")
            }
        case .allowNet:
            switch EgressRule.parse(value) {
            case .success(let rule): if !options.request.allowNet.contains(rule) { options.request.allowNet.append(rule) }
            case .failure(let error): throw UsageError("--allow-net \(error.message)")
            }
        case .allowPrivateAddresses:
            options.request.allowPrivateAddresses = true
        case .netHelper:
            guard let helper = NetworkHelper(rawValue: value) else {
                throw UsageError("--net-helper '\(value)' is not a user-mode network helper (auto, pasta, slirp4netns)")
            }
            options.request.networkHelper = helper
        case .isolation:
            guard let isolation = Isolation(rawValue: value) else {
                throw UsageError("--isolation '\(value)' is not an isolation mode (namespaces, landlock, auto)")
            }
            options.request.isolation = isolation
        case .timeout, .killAfter:
            guard let ms = Durations.parse(value) else {
                throw UsageError("\(option.rawValue) '\(value)' is not a duration (e.g. 30s, 5m, 1h, 500ms)")
            }
            if option == .timeout { options.request.timeout = ms } else { options.request.killAfter = ms }
        case .cpuTime:
            guard let ms = Durations.parse(value) else {
                throw UsageError("--cpu-time '\(value)' is not a duration (e.g. 60s, 10m)")
            }
            options.request.cpuTime = (ms + 999) / 1000
        case .memory, .fileSize:
            guard let bytes = ByteSize.parse(value), bytes > 0 else {
                throw UsageError("\(option.rawValue) '\(value)' is not a size (e.g. 512m, 2g)")
            }
            if option == .memory { options.request.memory = bytes } else { options.request.fileSize = bytes }
        case .openFiles, .pids:
            guard let n = UInt64(value), n > 0 else {
                throw UsageError("\(option.rawValue) '\(value)' is not a positive number")
            }
            if option == .openFiles { options.request.openFiles = n } else { options.request.processes = n }
        case .cgroup:
            guard let choice = CgroupChoice(value) else {
                throw UsageError("--cgroup '\(value)' is not auto, none or an absolute path to a cgroup v2 directory")
            }
            options.request.cgroup = choice
        case .publish:
            guard let port = PublishedPort.parse(value) else {
                throw UsageError("--publish '\(value)' needs HOSTPORT:SANDBOXPORT (e.g. 8080:80)")
            }
            options.request.publish.append(port)
        case .allowHostLoopback:
            options.request.allowHostLoopback = true
        case .auditLog:
            guard !value.isEmpty else { throw UsageError("--audit-log needs a file path") }
            options.request.auditLogPath = value
        case .capAdd:
            guard Capabilities.number(value) != nil else {
                throw UsageError("--cap-add '\(value)' is not a capability (e.g. CAP_NET_BIND_SERVICE; see capabilities(7))")
            }
            options.request.capabilitiesAdded.append(value)
        case .seccomp:
            guard SeccompPolicy.isBuiltIn(value) else {
                throw UsageError("--seccomp '\(value)' is not a policy (default, strict; or --seccomp-json PATH)")
            }
            options.request.seccompPolicy = value
        case .seccompJSON:
            guard !value.isEmpty else { throw UsageError("--seccomp-json needs a file path") }
            options.request.seccompJSONPath = value
        case .allowSyscall:
            guard isSyscallName(value) else { throw UsageError("--allow-syscall '\(value)' is not a system call or @group name") }
            options.request.allowedSyscalls.append(value)
        case .denySyscall:
            let parts = value.split(separator: ":", maxSplits: 1).map(String.init)
            guard let name = parts.first, isSyscallName(name) else {
                throw UsageError("--deny-syscall '\(value)' needs NAME or NAME:ERRNO (e.g. mount, ptrace:EPERM)")
            }
            var code: Int32 = 1
            if parts.count == 2 {
                guard let n = ErrnoNames.number(parts[1]) else {
                    throw UsageError("--deny-syscall '\(value)': '\(parts[1])' is not an errno name or number (e.g. EPERM, EACCES, 38)")
                }
                code = n
            }
            options.request.deniedSyscalls.append(DeniedSyscall(name: name, errno: code))
        }
    }

    static func isSyscallName(_ name: String) -> Bool {
        let body = name.hasPrefix("@") ? name.dropFirst() : Substring(name)
        return !body.isEmpty && body.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
    }

    /// `--tmpfs DST[:size=SIZE][,mode=OCTAL]`
    static func parseTmpfs(_ value: String) throws(UsageError) -> MountRequest {
        let parts = value.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard parts[0].hasPrefix("/"), let destination = SandboxPath.normalize(parts[0]), destination != "/" else {
            throw UsageError("--tmpfs '\(value)': needs an absolute path other than / (and without '..')")
        }
        var size: UInt64?
        var mode: UInt32?
        if parts.count == 2 {
            for setting in parts[1].split(separator: ",", omittingEmptySubsequences: false) {
                let kv = setting.split(separator: "=", maxSplits: 1).map(String.init)
                switch (kv.first, kv.count) {
                case ("size", 2):
                    guard let bytes = ByteSize.parse(kv[1]), bytes > 0 else {
                        throw UsageError("--tmpfs '\(value)': size '\(kv[1])' is not a size (e.g. 64m, 1g)")
                    }
                    size = bytes
                case ("mode", 2):
                    guard let m = UInt32(kv[1], radix: 8), m <= 0o7777 else {
                        throw UsageError("--tmpfs '\(value)': mode '\(kv[1])' is not an octal mode (e.g. 0755)")
                    }
                    mode = m
                default:
                    throw UsageError("--tmpfs '\(value)': unknown setting '\(setting)' (size=SIZE, mode=OCTAL)")
                }
            }
        }
        return .tmpfs(destination: destination, size: size, mode: mode)
    }

    static func parseOuterID(_ value: String) throws(UsageError) -> OuterID {
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2,
              let uid = UInt32(parts[0]), uid != UInt32.max,
              let gid = parts.count == 2 ? UInt32(parts[1]) : uid, gid != UInt32.max
        else {
            throw UsageError("--outer-id needs UID or UID:GID (numbers), got '\(value)'")
        }
        return OuterID(uid: uid, gid: gid)
    }

    static func isValidHostname(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 64, !name.hasPrefix("-"), !name.hasPrefix(".") else { return false }
        return name.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || $0 == "-" || $0 == "." }
    }

    static func suggestion(for name: String) -> String {
        let candidates = RunOption.allCases.map(\.rawValue) + ["--help"]
        guard let best = candidates.min(by: { levenshtein($0, name) < levenshtein($1, name) }),
              levenshtein(best, name) <= 2 else { return "" }
        return "; did you mean '\(best)'?"
    }
}

/// Every option of `cell run`, with its value's shape for messages and --help.
enum RunOption: String, CaseIterable {
    case hostname = "--hostname"
    case cwd = "--cwd"
    case env = "--env"
    case keepEnv = "--keep-env"
    case statusJSON = "--status-json"
    case outerID = "--outer-id"
    case dryRun = "--dry-run"
    case roBind = "--ro-bind"
    case bind = "--bind"
    case tmpfs = "--tmpfs"
    case capAdd = "--cap-add"
    case profile = "--profile"
    case auditLog = "--audit-log"
    case timeout = "--timeout"
    case killAfter = "--kill-after"
    case memory = "--memory"
    case cpuTime = "--cpu-time"
    case fileSize = "--file-size"
    case openFiles = "--open-files"
    case pids = "--pids"
    case cgroup = "--cgroup"
    case publish = "--publish"
    case allowHostLoopback = "--allow-host-loopback"
    case net = "--net"
    case netHelper = "--net-helper"
    case overlay = "--overlay"
    case overlaySize = "--overlay-size"
    case changes = "--changes"
    case cache = "--cache"
    case cacheScope = "--cache-scope"
    case hide = "--hide"
    case allowNet = "--allow-net"
    case allowPrivateAddresses = "--allow-private-addresses"
    case isolation = "--isolation"
    case seccomp = "--seccomp"
    case seccompJSON = "--seccomp-json"
    case allowSyscall = "--allow-syscall"
    case denySyscall = "--deny-syscall"
    case planOut = "--plan-out"
    case asRoot = "--as-root"
    case asCaller = "--as-caller"
    case tty = "--tty"
    case noTTY = "--no-tty"

    var takesValue: Bool { ![.dryRun, .allowHostLoopback, .allowPrivateAddresses, .asRoot, .asCaller, .tty, .noTTY].contains(self) }

    var valueHint: String {
        switch self {
        case .hostname: return "NAME"
        case .cwd: return "DIR"
        case .env: return "NAME=VALUE"
        case .keepEnv: return "NAME"
        case .statusJSON: return "PATH"
        case .outerID: return "UID[:GID]"
        case .dryRun: return ""
        case .roBind, .bind: return "SRC[:DST]"
        case .tmpfs: return "DST[:size=SIZE][,mode=OCTAL]"
        case .capAdd: return "CAP"
        case .profile: return "NAME|PATH"
        case .auditLog: return "PATH"
        case .timeout, .killAfter, .cpuTime: return "DURATION"
        case .memory, .fileSize: return "SIZE"
        case .openFiles, .pids: return "N"
        case .cgroup: return "auto|none|PATH"
        case .publish: return "HOSTPORT:SANDBOXPORT"
        case .allowHostLoopback: return ""
        case .net: return "none|host|user|proxy"
        case .allowNet: return "HOST[:PORT]"
        case .allowPrivateAddresses: return ""
        case .netHelper: return "auto|pasta|slirp4netns"
        case .overlay: return "SRC[:DST]"
        case .overlaySize: return "SIZE"
        case .changes: return "DIR"
        case .cache: return "NAME:DST"
        case .cacheScope: return "project|profile|user"
        case .hide: return "GLOB"
        case .isolation: return "namespaces|landlock|auto"
        case .seccomp: return "default|strict"
        case .seccompJSON: return "PATH"
        case .allowSyscall: return "NAME"
        case .denySyscall: return "NAME[:ERRNO]"
        case .asRoot, .asCaller, .tty, .noTTY: return ""
        case .planOut: return "PATH"
        }
    }
}

