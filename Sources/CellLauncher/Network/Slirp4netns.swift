import CCellSpawn
import CellPolicy
import Glibc

/// slirp4netns, the fallback helper (where pasta is missing, or the host has no default route):
/// - `--exit-fd`: it exits when cell's end of a pipe closes;
/// - `--ready-fd`: cell releases the command only once the interface is configured;
/// - `--disable-host-loopback` unless `--allow-host-loopback`: the gateway does not lead to the
///   host's 127.0.0.1;
/// - published ports go through its API socket, in a private directory that is removed as
///   soon as they are set up.
extension UserNetwork {
    func startSlirp4netns(sandboxPID: pid_t, allowHostLoopback: Bool, publish: [PublishedPort], rootMapped: Bool) throws(LaunchError) {
        guard let binary = Self.findExecutable("slirp4netns") else {
            throw .setup("user-mode networking through slirp4netns, which is not installed (apt-get install slirp4netns)")
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
        try spawn(arguments, fds: [(ready[1], 3), (exit[0], 4)], log: log)
        close(ready[1])
        ready[1] = -1

        guard waitReady(ready[0]) != nil else {
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
                throw .setup("cannot publish \(port): \(reply.isEmpty ? "no answer from slirp4netns" : reply) (is host port \(port.hostPort) in use\(port.hostPort < 1024 ? ", or privileged (below 1024)" : "")?)")
            }
        }
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
