/// How a sandbox is isolated (`isolation` in profiles, `--isolation`).
public enum Isolation: String, CaseIterable, Equatable, Sendable {
    /// A user namespace with every other namespace nested in it, a view built from mounts, and
    /// Landlock beneath as the second wall. The default.
    case namespaces
    /// No namespace at all, for hosts that refuse unprivileged user namespaces: Landlock rules
    /// for the paths the profile shows, Landlock TCP rules, seccomp, rlimits, no_new_privs.
    /// Weaker: SECURITY.md says exactly what it does not isolate.
    case landlock
    /// Namespaces when this host allows them, else landlock — said on stderr and in the log.
    case auto
}
