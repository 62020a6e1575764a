import CCellSpawn
import CellPolicy
import Glibc

/// pasta (Debian's passt), the preferred helper: it maps the sandbox's connections onto host
/// sockets instead of running a TCP/IP stack of its own, at several times slirp4netns's speed.
///
/// Its defaults suit a desktop user, not a sandbox, and each is turned off:
/// - `-t/-u auto` would open on the host every port the sandbox binds: `-t none -u none`, and
///   each --publish as `-t 127.0.0.1/HOST:SANDBOX` (the host's loopback only);
/// - `-T/-U auto` would let the sandbox's own 127.0.0.1 reach the host's loopback listeners:
///   `-T none -U none`;
/// - the gateway address leads to the host's loopback: `--no-map-gw` unless
///   `--allow-host-loopback` (and pid 1's route makes it unreachable: no packet leaves);
/// - the host's own addresses and IPv6 would be copied in: `-a/-n/-g` give slirp4netns's
///   10.0.2.0/24, `--ipv4-only` as slirp4netns;
/// - DHCP, NDP, DHCPv6 and router advertisements are not needed with `--config-net`: off, so
///   less of pasta is reachable from the sandbox.
/// pasta confines itself after it has attached: a user and mount namespace of its own with an
/// empty root, no capabilities, no_new_privs, its own seccomp filter. It runs in the foreground
/// (`-f`), as cell's child; attached by pid it never exits on its own, so cell ends it, and
/// PR_SET_PDEATHSIG ends it if cell is killed. It reports readiness by writing its pid to `-P`,
/// here its own stdout, a pipe to cell.
extension UserNetwork {
    func startPasta(sandboxPID: pid_t, allowHostLoopback: Bool, publish: [PublishedPort]) throws(LaunchError) {
        guard let binary = Self.findExecutable("pasta") else {
            throw .setup("user-mode networking through pasta, which is not installed (apt-get install passt)")
        }
        // Readiness: pasta writes its pid to --pid once attached and configured. Given
        // /dev/stdout, that is its descriptor 1 reopened, here a pipe to cell: no file to make or
        // to leave behind, and the pipe's end of file if pasta dies first.
        var ready: [Int32] = [-1, -1]
        guard cell_pipe_cloexec(&ready) == 0 else { throw .setup("cannot create a pipe for pasta: \(errorText(errno))") }
        defer { close(ready[0]); if ready[1] >= 0 { close(ready[1]) } }

        var arguments = [binary, "--foreground", "--quiet", "--ipv4-only", "--config-net", "--ns-ifname", "tap0",
                         "--address", "10.0.2.100", "--netmask", "24", "--gateway", "10.0.2.2",
                         "--dns-forward", Self.resolverAddress, "--mtu", "65520",
                         "--no-dhcp", "--no-ndp", "--no-dhcpv6", "--no-ra",
                         "--udp-ports", "none", "--tcp-ns", "none", "--udp-ns", "none"]
        if publish.isEmpty {
            arguments += ["--tcp-ports", "none"]
        } else {
            for port in publish { arguments += ["--tcp-ports", "127.0.0.1/\(port.hostPort):\(port.sandboxPort)"] }
        }
        if !allowHostLoopback { arguments.append("--no-map-gw") }
        arguments += ["--pid", "/dev/stdout", String(sandboxPID)]

        let log = cell_memfd("cell-helper-log")
        defer { if log >= 0 { close(log) } }
        try spawn(arguments, fds: [(ready[1], 1)], log: log)
        close(ready[1])
        ready[1] = -1
        guard waitReady(ready[0]) != nil else {
            let message = Self.readBack(log)
            stop()
            let hint = message.contains("Failed to bind") ? " (is a published host port in use, or below 1024, which needs privilege?)"
                : message.contains("External interface") ? " (pasta needs a host interface with an IPv4 default route: --net-helper slirp4netns works without one)" : ""
            throw .setup("pasta did not set up the sandbox's network\(message.isEmpty ? "" : ": " + message)\(hint)")
        }
    }
}
