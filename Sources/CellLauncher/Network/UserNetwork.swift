import CCellSpawn
import CellPolicy
import Glibc

/// User-mode networking: a helper program on the host (pasta, else slirp4netns) attached to
/// the sandbox's network namespace while its pid 1 waits (CELL_REC_HOLD), started and stopped
/// by the supervisor. Whichever the helper, the sandbox sees the same network: tap0 with
/// 10.0.2.100/24, the gateway 10.0.2.2 (the host's loopback only with --allow-host-loopback;
/// otherwise refused by slirp4netns, or unreachable by a route pid 1 adds under pasta), DNS at
/// 10.0.2.3, no IPv6, and nothing of it reachable from the host but the ports published on the
/// host's 127.0.0.1.
///
/// The helper is the one program outside the sandbox that parses what the sandbox sends, so it
/// is confined as far as it confines itself (Pasta.swift, Slirp4netns.swift), starts with none
/// of the caller's descriptors (cell marks them close-on-exec at its start) and only its own
/// 0-2, and dies with cell: PR_SET_PDEATHSIG, whatever way cell ends.
final class UserNetwork {
    /// The resolver the helper offers inside (its DNS forwarder), written to /etc/resolv.conf.
    static let resolverAddress = "10.0.2.3"
    /// The gateway, 10.0.2.2, as a number (CELL_REC_UNREACHABLE).
    static let gatewayAddress: UInt32 = 0x0a00_0202

    let helper: NetworkHelper
    var pid: pid_t = -1
    /// slirp4netns's --exit-fd: it exits when this, cell's end of the pipe, closes.
    var exitWriteFD: Int32 = -1

    init(helper: NetworkHelper) {
        self.helper = helper
    }

    /// The helper for `wanted` on this host, or why there is none.
    static func choose(_ wanted: NetworkHelper) throws(LaunchError) -> NetworkHelper {
        guard let helper = wanted.resolved(installed: { findExecutable($0.rawValue) != nil }, hasDefaultRoute: hasIPv4DefaultRoute()) else {
            throw .setup(wanted == .auto
                ? "user-mode networking needs pasta (apt-get install passt) or slirp4netns (apt-get install slirp4netns), and neither is installed"
                : "--net-helper \(wanted.rawValue): \(wanted.rawValue) is not installed (apt-get install \(wanted.package))")
        }
        return helper
    }

    /// Whether the host has an IPv4 default route (/proc/net/route: destination and mask 0):
    /// pasta refuses to start without one ("No external routable interface"), slirp4netns does not.
    static func hasIPv4DefaultRoute() -> Bool {
        (readSmallFile("/proc/net/route", limit: 1 << 20) ?? "").split(separator: "\n").dropFirst().contains { line in
            let f = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            return f.count > 7 && f[1] == "00000000" && f[7] == "00000000"
        }
    }

    /// Starts the helper for the network namespace of `sandboxPID` and waits until it is ready.
    /// `rootMapped`: the sandbox's user namespace maps uid and gid 0 (--as-root).
    func start(sandboxPID: pid_t, allowHostLoopback: Bool, publish: [PublishedPort], rootMapped: Bool) throws(LaunchError) {
        switch helper {
        case .pasta: try startPasta(sandboxPID: sandboxPID, allowHostLoopback: allowHostLoopback, publish: publish)
        case .slirp4netns, .auto:
            try startSlirp4netns(sandboxPID: sandboxPID, allowHostLoopback: allowHostLoopback, publish: publish, rootMapped: rootMapped)
        }
    }

    /// Stops the helper and reaps it: slirp4netns by closing its exit fd, pasta (which has no
    /// such thing) by SIGTERM; SIGKILL after a second either way.
    func stop() {
        if exitWriteFD >= 0 {
            close(exitWriteFD)
            exitWriteFD = -1
        }
        guard pid > 0 else { return }
        if helper == .pasta { kill(pid, SIGTERM) }
        var status: Int32 = 0
        for _ in 0..<200 {
            if waitpid(pid, &status, WNOHANG) != 0 { pid = -1; return }
            usleep(5000)
        }
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
        pid = -1
    }

    deinit { stop() }

    static func findExecutable(_ name: String) -> String? {
        for dir in ["/usr/bin", "/usr/local/bin", "/bin", "/usr/sbin", "/sbin"] where access("\(dir)/\(name)", X_OK) == 0 {
            return "\(dir)/\(name)"
        }
        return nil
    }

    /// Starts the helper (`cell_spawn_helper`: it dies with cell) with `fds` moved to the given
    /// numbers and its output to `log`.
    func spawn(_ arguments: [String], fds: [(Int32, Int32)], log: Int32) throws(LaunchError) {
        let argv = CStringArray(arguments)
        let envp = CStringArray(["PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
        let from = fds.map(\.0), to = fds.map(\.1)
        let child = argv.withPointers { a in envp.withPointers { e in
            cell_spawn_helper(arguments[0], a, e, from, to, Int32(fds.count), log)
        } }
        guard child > 0 else { throw .setup("cannot start \(arguments[0]): \(errorText(errno))") }
        pid = child
    }

    /// Waits (at most 10 s) until `fd` is readable, or the helper exits first; reads what is
    /// there. nil: it exited, or did not get ready in time.
    func waitReady(_ fd: Int32) -> [UInt8]? {
        let exited = cell_pidfd_open(pid)
        defer { if exited >= 0 { close(exited) } }
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: exited, events: Int16(POLLIN), revents: 0)]
        var n: Int32
        repeat { n = poll(&fds, nfds_t(exited >= 0 ? 2 : 1), 10_000) } while n < 0 && errno == EINTR
        guard n > 0, fds[0].revents & Int16(POLLIN) != 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 64)
        let got = read(fd, &buffer, buffer.count)
        return got > 0 ? Array(buffer[0..<got]) : nil
    }

    /// The last lines the helper wrote, without pasta's complaints that it has no syslog.
    static func readBack(_ fd: Int32) -> String {
        guard fd >= 0 else { return "" }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return "" }
        return String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n")
            .filter { !$0.hasPrefix("Failed to send") }.suffix(3).joined(separator: "; ")
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

