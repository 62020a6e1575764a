/// Defaults shared by the profile loader (a profile's unset values) and the launcher.
public enum SandboxDefaults {
    public static let hostname = "cell"
    /// The size of a tmpfs whose size nobody gave (/tmp, --tmpfs DST).
    public static let tmpSize: UInt64 = 256 << 20
}
