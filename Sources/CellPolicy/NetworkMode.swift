/// How the sandbox reaches the network.
public enum NetworkMode: String, Equatable, Sendable, CaseIterable {
    /// A private network namespace with only `lo`.
    case none
    /// The caller's network namespace (reduces isolation: see SECURITY.md).
    case host
    /// A private network namespace with outbound access through a user-mode helper (pasta or
    /// slirp4netns) on the host.
    case user
    /// A private network namespace with only `lo`, and a filtering proxy outside reached through
    /// listeners on its 127.0.0.1: connections by host name, to the allow-list only.
    case proxy
}

/// Where `--net proxy`'s proxies listen inside the sandbox, and what the sandbox is told.
public enum EgressProxyPorts {
    public static let http: UInt16 = 3128
    public static let socks: UInt16 = 1080

    /// The variables that point programs at the proxies (both cases: curl reads http_proxy
    /// only in lower case, many others upper case only). socks5h: names resolve at the proxy.
    public static var environment: [(String, String)] {
        let http = "http://127.0.0.1:\(http)", socks = "socks5h://127.0.0.1:\(socks)"
        return [("HTTP_PROXY", http), ("HTTPS_PROXY", http), ("ALL_PROXY", socks), ("NO_PROXY", "localhost,127.0.0.1"),
                ("http_proxy", http), ("https_proxy", http), ("all_proxy", socks), ("no_proxy", "localhost,127.0.0.1")]
    }
}

/// The program that carries `--net user`'s traffic between the sandbox's network namespace and
/// the host's sockets. Both give the same addresses inside (10.0.2.100/24, gateway 10.0.2.2,
/// DNS 10.0.2.3), so a script written for one works on the other.
public enum NetworkHelper: String, Equatable, Sendable, CaseIterable {
    /// pasta where it is installed and the host has an IPv4 default route (pasta needs one to
    /// work at all), else slirp4netns.
    case auto
    /// pasta (Debian's passt): several times slirp4netns's throughput.
    case pasta
    case slirp4netns

    /// The helper `auto` stands for on a host with these facts, or nil when none is usable.
    public func resolved(installed: (NetworkHelper) -> Bool, hasDefaultRoute: Bool) -> NetworkHelper? {
        switch self {
        case .auto:
            if installed(.pasta) && hasDefaultRoute { return .pasta }
            return installed(.slirp4netns) ? .slirp4netns : installed(.pasta) ? .pasta : nil
        case .pasta, .slirp4netns:
            return installed(self) ? self : nil
        }
    }

    /// The Debian package that installs it.
    public var package: String { self == .pasta ? "passt" : "slirp4netns" }
}

/// A port published from the host's 127.0.0.1 into the sandbox (`--publish HOST:SANDBOX`).
public struct PublishedPort: Equatable, Sendable, CustomStringConvertible {
    public var hostPort: UInt16
    public var sandboxPort: UInt16

    public init(hostPort: UInt16, sandboxPort: UInt16) {
        self.hostPort = hostPort
        self.sandboxPort = sandboxPort
    }

    public static func parse(_ text: String) -> PublishedPort? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let h = UInt16(parts[0]), let s = UInt16(parts[1]), h > 0, s > 0 else { return nil }
        return PublishedPort(hostPort: h, sandboxPort: s)
    }

    public var description: String { "127.0.0.1:\(hostPort) -> \(sandboxPort)" }
}
