import CellLauncher
import CellPolicy

/// `cell-runtime features`: the runtime-spec features document, listing only what cell-runtime
/// really does (a test checks it against what the tests exercise).
public enum Features {
    public static func document() -> String {
        let mountOptions = (ContainerPlanner.acceptedOptions.union(["ro", "noexec", "size", "mode"])).sorted()
        // Every capability libcap-ng names (an unnamed number comes back as CAP_<n>).
        let capabilities = (0..<64).map(Capabilities.name).filter { !$0.dropFirst(4).allSatisfy(\.isNumber) }
        let document: [(String, JSONField)] = [
            ("ociVersionMin", .string("1.0.0")), ("ociVersionMax", .string("1.2.0")),
            ("hooks", .strings([])),
            ("mountOptions", .strings(mountOptions)),
            ("linux", .raw(object([
                ("namespaces", .strings(["pid", "network", "ipc", "uts", "mount", "cgroup", "time", "user"])),
                ("capabilities", .strings(capabilities)),
                ("cgroup", .raw(object([("v1", .bool(false)), ("v2", .bool(false)), ("systemd", .bool(false)),
                                        ("systemdUser", .bool(false)), ("rdma", .bool(false))]))),
                ("seccomp", .raw(object([
                    ("enabled", .bool(true)),
                    ("actions", .strings(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                                          "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"])),
                    ("operators", .strings(["SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_GT",
                                            "SCMP_CMP_GE", "SCMP_CMP_MASKED_EQ"])),
                    ("archs", .strings(DockerSeccompProfile.architectureNames[DockerSeccompProfile.currentArchitecture].map { [$0[0]] } ?? [])),
                    ("knownFlags", .strings([])), ("supportedFlags", .strings([])),
                ]))),
                ("apparmor", .raw(object([("enabled", .bool(false))]))),
                ("selinux", .raw(object([("enabled", .bool(false))]))),
                ("intelRdt", .raw(object([("enabled", .bool(false))]))),
                ("mountExtensions", .raw(object([("idmap", .raw(object([("enabled", .bool(false))])))]))),
            ]))),
            ("annotations", .raw(object([
                ("io.github.cell.runtime.version", .string(InitHelper.cellVersion)),
                (CellAnnotations.profile, .string("a profile name from the runtime user's lookup directories or the built-ins (default: default)")),
                (CellAnnotations.auditLog, .string("a file name inside the runtime user's audit directory")),
            ]))),
        ]
        return object(document) + "\n"
    }

    static func object(_ fields: [(String, JSONField)]) -> String {
        "{" + fields.map { "\(JSONField.quote($0.0)):\($0.1.encoded)" }.joined(separator: ",") + "}"
    }
}
