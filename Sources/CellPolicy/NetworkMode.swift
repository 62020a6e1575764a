/// How the sandbox reaches the network.
public enum NetworkMode: String, Equatable, Sendable, CaseIterable {
    /// A private network namespace with only `lo`.
    case none
    /// The caller's network namespace (reduces isolation: see SECURITY.md).
    case host
    /// A private network namespace with outbound access through slirp4netns (user-mode NAT).
    case user
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
