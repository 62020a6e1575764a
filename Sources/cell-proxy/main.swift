// cell-proxy — the filtering proxy of `cell run --net proxy`.
//
// cell starts it (CellLauncher/Network/EgressProxy.swift) with two listening sockets that the
// sandbox's pid 1 made on the sandbox's own 127.0.0.1 and handed out (CELL_REC_SEND_FD): an
// HTTP proxy (plain requests and CONNECT) on descriptor 3, a SOCKS5 proxy on 4. The sandbox has
// no other way out: its network namespace holds only lo. For every connection a client makes,
// the proxy takes the host name it asked for, checks it against the allow-list, resolves it
// through the system's resolver, refuses addresses of this machine and its networks unless
// allowed, connects to exactly the address it checked (no second resolution, so no DNS
// rebinding), and carries the bytes. Each decision is one JSON line on descriptor 5, which cell
// turns into a `net` audit event. It never outlives cell (PR_SET_PDEATHSIG, set by cell).
//
// Arguments: --allow RULE (repeatable, EgressRule syntax), --allow-private-addresses,
// --hosts FILE (names resolved from this file first: tests point names at loopback servers).
import CCellProxy
import CellEgress
import Glibc

struct Configuration: Sendable {
    var policy = EgressPolicy(rules: [])
    var hosts: [String: [IPAddress]] = [:]
}

func parseArguments(_ arguments: [String]) -> Configuration? {
    var configuration = Configuration()
    var i = 1
    while i < arguments.count {
        switch arguments[i] {
        case "--allow" where i + 1 < arguments.count:
            guard case .success(let rule) = EgressRule.parse(arguments[i + 1]) else { return nil }
            configuration.policy.rules.append(rule)
            i += 1
        case "--allow-private-addresses":
            configuration.policy.allowPrivateAddresses = true
        case "--hosts" where i + 1 < arguments.count:
            guard let text = readFile(arguments[i + 1]) else { return nil }
            configuration.hosts = HostsFile.parse(text)
            i += 1
        default:
            return nil
        }
        i += 1
    }
    return configuration
}

signal(SIGPIPE, SIG_IGN)
// SIGTERM is how cell says the sandbox is over: blocked in every thread (they inherit this
// mask) and taken by the main thread with sigwait, which then lets the open connections end.
var terminate = sigset_t()
sigemptyset(&terminate)
sigaddset(&terminate, SIGTERM)
pthread_sigmask(SIG_BLOCK, &terminate, nil)

/// This machine's own addresses (its interfaces', in the host's network namespace, where the
/// proxy runs): a listed name resolving to one of them is refused like a private one.
func localAddresses() -> Set<IPAddress> {
    var list: UnsafeMutablePointer<ifaddrs>?
    guard getifaddrs(&list) == 0 else { return [] }
    defer { freeifaddrs(list) }
    var out = Set<IPAddress>()
    var entry = list
    while let e = entry {
        if let sa = e.pointee.ifa_addr {
            if Int32(sa.pointee.sa_family) == AF_INET {
                let a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                out.insert(IPAddress(bytes: withUnsafeBytes(of: a) { Array($0) })!)
            } else if Int32(sa.pointee.sa_family) == AF_INET6 {
                let a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                out.insert(IPAddress(bytes: withUnsafeBytes(of: a) { Array($0) })!)
            }
        }
        entry = e.pointee.ifa_next
    }
    return out
}
guard var parsed = parseArguments(CommandLine.arguments) else {
    let message = "cell-proxy: bad arguments (it is started by cell run --net proxy)\n"
    _ = write(2, message, message.utf8.count)
    exit(2)
}
// The proxy's own wall before the first byte from the sandbox: what the
// system's resolver reads (its configuration, NSS modules, systemd-resolved's files), TCP
// connections only to the allow-list's ports and DNS's, no bind, no signal out.
// (CCellProxy/confine.c.)
let readable = ["/etc", "/usr/lib", "/usr/lib64", "/lib", "/lib64", "/run/systemd/resolve", "/var/run/nscd"]
    + (CommandLine.arguments.firstIndex(of: "--hosts").map { [CommandLine.arguments[$0 + 1]] } ?? [])
let ports = Array(Set(parsed.policy.rules.flatMap(\.ports) + [53])).sorted()
let confined = readable.withCStrings { paths in cell_confine_proxy(paths, Int32(readable.count), ports, Int32(ports.count)) }
guard confined == 0 else {
    let message = "cell-proxy: cannot confine itself: \(String(cString: strerror(-confined)))\n"
    _ = write(2, message, message.utf8.count)
    exit(2)
}
parsed.policy.localAddresses = localAddresses()
let configuration = parsed
let events = EventChannel(fd: 5)
let limiter = ConnectionLimiter(maximum: 512)
let openSockets = OpenSockets()
for (fd, kind) in [(Int32(3), ClientProtocol.http), (Int32(4), ClientProtocol.socks5)] {
    startThread {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE { usleep(1000); continue }
                return // the listener was shut down (SIGTERM, below): the main thread ends the proxy
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            guard limiter.enter() else {
                events.send(Decision(protocol: kind, host: "", port: 0, refusedBecause: "more than \(limiter.maximum) connections at once"))
                close(client)
                continue
            }
            let started = startThread {
                Connection(client: client, protocol: kind, configuration: configuration, events: events).run()
                limiter.leave()
            }
            if !started {
                close(client)
                limiter.leave()
            }
        }
    }
}
events.ready()
// The sandbox is over: no new connection (the listeners close), and every open one is shut,
// since no client is left to wait for its answer; each relay ends and sends its event. Then
// the pipe's end of file tells cell that every event is in.
var signalNumber: Int32 = 0
while sigwait(&terminate, &signalNumber) != 0 {}
shutdown(3, Int32(SHUT_RDWR))
shutdown(4, Int32(SHUT_RDWR))
openSockets.shutdownAll()
let deadline = monotonicMilliseconds() + 2000
while limiter.active > 0 && monotonicMilliseconds() < deadline { usleep(1000) }
exit(0)
