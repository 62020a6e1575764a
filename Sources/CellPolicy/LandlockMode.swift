/// Whether a namespace sandbox also gets a Landlock domain mirroring its view, the second wall
/// (`[landlock] mode` in profiles).
public enum LandlockMode: String, CaseIterable, Equatable, Sendable {
    /// When the kernel has Landlock (the namespaces hold alone where it does not; `--dry-run`
    /// and the audit log's `start` event say which ABI was used, or none).
    case bestEffort = "best-effort"
    /// Refuse to start (exit 125) on a kernel without Landlock.
    case required
    /// No Landlock domain.
    case off
}
