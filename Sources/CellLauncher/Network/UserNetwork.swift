import CCellSpawn
import CellPolicy
import Glibc

/// User-mode networking through slirp4netns, attached to the sandbox's network namespace while
/// the sandbox's pid 1 waits, started and stopped by the supervisor:
/// - `--exit-fd`: slirp4netns exits when cell's end of a pipe closes — when cell exits for any
///   reason, SIGKILL included — so it never outlives the sandbox;
/// - `--ready-fd`: cell releases the command only once the interface is configured;
/// - `--disable-host-loopback` unless `--allow-host-loopback`: the sandbox cannot reach services
///   on the host's 127.0.0.1 through the gateway address;
/// - published ports go through slirp4netns's API socket, in a private directory that is
///   removed as soon as they are set up.
final class UserNetwork {
    /// The resolver slirp4netns offers inside (its DNS forwarder), written to /etc/resolv.conf.
    static let resolverAddress = "10.0.2.3"

    private(set) var pid: pid_t = -1
    private var exitWriteFD: Int32 = -1

    /// Starts slirp4netns for the network namespace of `sandboxPID` and waits until it is ready.
    /// `rootMapped`: the sandbox's user namespace maps uid and gid 0 (--as-root).
    func start(sandboxPID: pid_t, allowHostLoopback: Bool, publish: [PublishedPort], rootMapped: Bool) throws(LaunchError) {
        guard let binary = Self.findExecutable("slirp4netns") else {
            throw .setup("user-mode networking needs slirp4netns, which is not installed (apt-get install slirp4netns)")
        }
        var ready: [Int32] = [-1, -1], exit: [Int32] = [-1, -1]
        guard cell_pipe_cloexec(&ready) == 0, cell_pipe_cloexec(&exit) == 0 else {
            throw .setup("cannot create pipes for slirp4netns: \(errorText(errno))")
        }
        defer { close(ready[0]); close(ready[1]); close(exit[0]) }
        exitWriteFD = exit[1]

        var socketDirectory: String?
        defer { if let dir = socketDirectory { removeTree(dir) } }
        // Confined as far as slirp4netns confines itself, since its stack is reachable from the
        // sandbox: --enable-seccomp (its own filter) always; --enable-sandbox (its own mount
        // namespace with an empty root, capabilities dropped) only where the sandbox's namespace
        // maps root, because it calls setegid(0) there (as the caller, it fails to start).
        var arguments = [binary, "--configure", "--mtu=65520", "--ready-fd=3", "--exit-fd=4",
                         "--userns-path=/proc/\(sandboxPID)/ns/user", "--enable-seccomp"]
        if rootMapped { arguments.append("--enable-sandbox") }
        if !allowHostLoopback { arguments.append("--disable-host-loopback") }
        if !publish.isEmpty {
            var template = Array("/tmp/cell-net-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw .setup("cannot create a directory for slirp4netns's socket: \(errorText(errno))") }
            socketDirectory = String(cString: made)
            arguments.append("--api-socket=\(socketDirectory!)/api.sock")
        }
        arguments += [String(sandboxPID), "tap0"]

        // Its messages go to a memfd, read only if it fails (a pipe could fill and block it).
        let log = cell_memfd("cell-helper-log")
        defer { if log >= 0 { close(log) } }
        pid = try Self.spawn(arguments, fds: [(ready[1], 3), (exit[0], 4)], output: log)

        // Wait (at most 10 s) for the ready byte.
        var pfd = pollfd(fd: ready[0], events: Int16(POLLIN), revents: 0)
        let n = poll(&pfd, 1, 10_000)
        var byte: UInt8 = 0
        if n <= 0 || read(ready[0], &byte, 1) != 1 {
            let message = Self.readBack(log)
            stop()
            var hint = ""
            if message.contains("/dev/net/tun") {
                var st = stat()
                if stat("/dev/net/tun", &st) == 0 && st.st_mode & 0o006 != 0o006 {
                    hint = " (/dev/net/tun is mode \(String(st.st_mode & 0o777, radix: 8)); most systems make it 0666 so that users can create tap devices in their own namespaces: sudo chmod 0666 /dev/net/tun)"
                }
            }
            throw .setup("slirp4netns did not set up the sandbox's network\(message.isEmpty ? "" : ": " + message)\(hint)")
        }
        for port in publish {
            guard let dir = socketDirectory else { break }
            let request = #"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"127.0.0.1","host_port":\#(port.hostPort),"guest_port":\#(port.sandboxPort)}}"#
            let reply = Self.apiCall(socket: "\(dir)/api.sock", request: request)
            if !reply.contains("\"return\"") || reply.contains("\"error\"") {
                stop()
                throw .setup("cannot publish \(port): \(reply.isEmpty ? "no answer from slirp4netns" : reply) (is host port \(port.hostPort) in use?)")
            }
        }
    }

    /// Stops slirp4netns (closing its exit fd) and reaps it.
    func stop() {
        if exitWriteFD >= 0 {
            close(exitWriteFD)
            exitWriteFD = -1
        }
        if pid > 0 {
            var status: Int32 = 0
            // It exits within milliseconds of the exit fd closing; do not wait forever.
            for _ in 0..<200 {
                if waitpid(pid, &status, WNOHANG) != 0 { pid = -1; return }
                usleep(5000)
            }
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
            pid = -1
        }
    }

    deinit { stop() }

    static func findExecutable(_ name: String) -> String? {
        for dir in ["/usr/bin", "/usr/local/bin", "/bin", "/usr/sbin", "/sbin"] where access("\(dir)/\(name)", X_OK) == 0 {
            return "\(dir)/\(name)"
        }
        return nil
    }

    /// posix_spawn with `fds` moved to the given numbers and output to `output` (or /dev/null).
    static func spawn(_ arguments: [String], fds: [(Int32, Int32)], output: Int32) throws(LaunchError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if output >= 0 {
            posix_spawn_file_actions_adddup2(&actions, output, 1)
            posix_spawn_file_actions_adddup2(&actions, output, 2)
        }
        for (from, to) in fds { posix_spawn_file_actions_adddup2(&actions, from, to) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Default signal dispositions and an empty mask (cell blocks the ones it forwards).
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = CStringArray(arguments)
        let envp = CStringArray(["PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
        var pid: pid_t = 0
        let rc = argv.withPointers { a in envp.withPointers { e in posix_spawn(&pid, arguments[0], &actions, &attributes, a, e) } }
        guard rc == 0 else { throw .setup("cannot start \(arguments[0]): \(errorText(rc))") }
        return pid
    }

    static func readBack(_ fd: Int32) -> String {
        guard fd >= 0 else { return "" }
        var buffer = [UInt8](repeating: 0, count: 2048)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return "" }
        return String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n").suffix(3).joined(separator: "; ")
    }

    /// One request on slirp4netns's API socket; the reply, or "" on failure.
    static func apiCall(socket path: String, request: String) -> String {
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return "" }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { return "" }
        writeAll(fd, request)
        shutdown(fd, Int32(SHUT_WR))
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            reply += buffer[0..<n]
        }
        return String(decoding: reply, as: UTF8.self)
    }
}

/// NUL-terminated C strings with a NULL-terminated pointer array, freed with the value.
final class CStringArray {
    private let storage: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private let bytes: UnsafeMutablePointer<CChar>

    init(_ strings: [String]) {
        let total = strings.reduce(0) { $0 + $1.utf8.count + 1 }
        bytes = .allocate(capacity: max(total, 1))
        storage = .allocate(capacity: strings.count + 1)
        var offset = 0
        for (index, string) in strings.enumerated() {
            let length = string.utf8.count
            _ = string.withCString { memcpy(bytes + offset, $0, length + 1) }
            (storage + index).initialize(to: bytes + offset)
            offset += length + 1
        }
        (storage + strings.count).initialize(to: nil)
    }

    /// The NULL-terminated array, valid until deinit.
    var pointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        storage
    }

    func withPointers<R>(_ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        body(storage)
    }

    deinit {
        storage.deallocate()
        bytes.deallocate()
    }
}

