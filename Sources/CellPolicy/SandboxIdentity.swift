/// Who the command is inside: the caller (their own uid and gid, name and home — the default:
/// tools behave inside as they do outside) or root of the sandbox's user namespace (for tools
/// that want uid 0). Either way the sandbox maps only the caller's one outer id, and every
/// capability is dropped before the command runs.
public enum SandboxIdentity: String, CaseIterable, Equatable, Sendable {
    case caller
    case root
}
