/// Where a sandbox's cgroup comes from. A cgroup is what makes memory and process limits hold
/// for the sandbox as a whole (memory.max, pids.max) rather than per process (rlimits), which
/// shared memory and many small processes get around.
public enum CgroupChoice: Equatable, Sendable {
    /// No cgroup: rlimits only.
    case none
    /// A cgroup when one is delegated to the caller (cell's own cgroup or its parent, as a
    /// systemd scope with Delegate=yes gives), else rlimits only, without a word: `cell doctor`
    /// says whether this host has one and how to get one. The default profile's choice.
    case auto
    /// Below this delegated cgroup v2 directory, or refuse to run (`--cgroup PATH`).
    case below(String)

    /// As profiles and the command line write it: "auto", "none" or an absolute path.
    public init?(_ text: String) {
        switch text {
        case "auto": self = .auto
        case "none": self = .none
        default:
            guard text.hasPrefix("/") else { return nil }
            self = .below(text)
        }
    }

    public var text: String {
        switch self {
        case .none: return "none"
        case .auto: return "auto"
        case .below(let path): return path
        }
    }
}
