import CCellSpawn
import CellPolicy
import Glibc

/// What `cell doctor` reports: whether this host can run each mode, and for every "no" what
/// to do about it. The facts are gathered once (`HostProbe.gather`, which probes for real: a
/// throw-away namespace with a mount in it, a filter with a listener); the verdicts are a pure
/// function of them, so each is unit-tested with facts made up.
public struct HostReport: Equatable, Sendable {
    public struct Check: Equatable, Sendable {
        public var name: String
        public var ok: Bool
        public var detail: String
        /// What to do when not ok (nil when nothing can be done, or nothing needs to be).
        public var remedy: String?
    }

    /// What was found on the host.
    public struct Facts: Equatable, Sendable {
        /// nil: a user namespace, mapped, with a mount in it, works; else why not.
        public var namespacesRefused: String?
        public var unprivilegedUserNamespaceClone: Int?
        public var maxUserNamespaces: Int?
        public var appArmorRestrictsUserNamespaces: Bool?
        /// This process already runs under a seccomp filter (a container, a sandbox).
        public var underSeccompFilter: Bool
        public var landlockABI: UInt32
        /// 0, or the errno a filter with a listener got.
        public var userNotificationError: Int32
        /// cgroup v2: where it is mounted, and the delegated cgroup `--cgroup auto` (the default
        /// profile's) would make sandboxes' cgroups in, or why there is none.
        public var cgroupMount: String?
        public var cgroupParent: String?
        public var cgroupUnavailable: String?
        public var tunAvailable: Bool
        /// Helper programs found in PATH, by name.
        public var tools: [String: String]
        /// cell's own path, for the AppArmor profile it would need.
        public var cellPath: String
    }

    public var checks: [Check]
    /// The default profile (namespaces) can run here: `cell doctor`'s exit status is 0.
    public var namespacesWork: Bool
    public var landlockWorks: Bool

    public init(_ facts: Facts) {
        var checks: [Check] = []
        namespacesWork = facts.namespacesRefused == nil
        landlockWorks = facts.landlockABI >= 1

        if let refused = facts.namespacesRefused {
            var remedy: [String] = []
            if facts.unprivilegedUserNamespaceClone == 0 { remedy.append("sysctl -w kernel.unprivileged_userns_clone=1") }
            if facts.maxUserNamespaces == 0 { remedy.append("sysctl -w user.max_user_namespaces=15000") }
            if facts.appArmorRestrictsUserNamespaces == true {
                remedy.append("AppArmor restricts unprivileged user namespaces: allow cell with /etc/apparmor.d/cell containing "
                    + "'abi <abi/4.0>, include <tunables/global> profile cell \(facts.cellPath) flags=(unconfined) { userns, }' "
                    + "and apparmor_parser -r /etc/apparmor.d/cell (or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0)")
            }
            if facts.underSeccompFilter && remedy.isEmpty {
                remedy.append("cell runs under a seccomp filter (a container?) that refuses namespaces: run the container with a "
                    + "profile that allows them (podman/docker --security-opt seccomp=unconfined, or add clone/unshare/mount)")
            }
            remedy.append("or run without namespaces: cell run --isolation landlock (weaker: SECURITY.md)")
            let setting = facts.maxUserNamespaces == 0 ? "user.max_user_namespaces is 0: "
                : facts.unprivilegedUserNamespaceClone == 0 ? "kernel.unprivileged_userns_clone is 0: "
                : facts.appArmorRestrictsUserNamespaces == true ? "kernel.apparmor_restrict_unprivileged_userns is 1: " : ""
            checks.append(Check(name: "user namespaces", ok: false, detail: setting + refused, remedy: remedy.joined(separator: "; ")))
        } else {
            checks.append(Check(name: "user namespaces", ok: true,
                                detail: "made, mapped, and a mount works in them (max_user_namespaces \(facts.maxUserNamespaces.map(String.init) ?? "?"))",
                                remedy: nil))
        }

        let abi = facts.landlockABI
        let missing = [(2, "REFER: files cannot be moved between directories under Landlock's write rules"),
                       (3, "TRUNCATE: truncation is not governed"),
                       (4, "TCP rules: --isolation landlock needs --net host"),
                       (5, "IOCTL_DEV: device ioctls are not governed"),
                       (6, "scoping: abstract unix sockets and signals are not confined")]
            .filter { abi < $0.0 }.map { "ABI \($0.0) \($0.1)" }
        checks.append(Check(
            name: "Landlock", ok: abi >= 1,
            detail: abi == 0 ? "not available" : "ABI \(abi)" + (missing.isEmpty ? "" : "; missing: " + missing.joined(separator: "; ")),
            remedy: abi == 0 ? "a kernel with CONFIG_SECURITY_LANDLOCK and 'landlock' in the lsm= boot parameter (the second wall and --isolation landlock need it)" : nil))

        let notify = facts.userNotificationError
        checks.append(Check(
            name: "seccomp user notification", ok: notify == 0,
            detail: notify == 0 ? "a filter with a listener loads: violations are audited"
                : "a filter with a listener does not load: \(errorText(notify))",
            remedy: notify == 0 ? nil : notify == EBUSY
                ? "another supervisor (an outer cell?) holds this process tree's listener: run cell outside it"
                : "a kernel of 5.0 or later with seccomp user notification"))

        if let mount = facts.cgroupMount {
            checks.append(Check(
                name: "cgroup v2", ok: facts.cgroupParent != nil,
                detail: "mounted at \(mount); " + (facts.cgroupParent.map {
                    "each sandbox gets a cgroup of its own under \($0): memory.max (half the machine's memory, or the profile's) and pids.max for all its processes together"
                } ?? (facts.cgroupUnavailable ?? "no delegated cgroup")),
                remedy: facts.cgroupParent != nil ? nil
                    : "limits stay per process (rlimits); for sandbox-wide memory and process limits run cell in a cgroup delegated to you: "
                    + "systemd-run --user --scope -p Delegate=yes cell run ..., or a cgroup an administrator chowned to you, with cell in a child of it"))
        } else {
            checks.append(Check(name: "cgroup v2", ok: false, detail: "no cgroup2 filesystem mounted",
                                remedy: "limits stay per process (rlimits); a unified cgroup v2 hierarchy gives sandbox-wide ones"))
        }

        checks.append(Check(name: "/dev/net/tun", ok: facts.tunAvailable,
                            detail: facts.tunAvailable ? "usable" : "missing or not openable",
                            remedy: facts.tunAvailable ? nil : "--net user needs it (modprobe tun)"))
        for (tool, purpose, package) in [("pasta", "--net user at several times slirp4netns's speed (the default helper where installed)", "passt"),
                                         ("slirp4netns", "--net user where pasta is missing or the host has no default route", "slirp4netns"),
                                         ("newuidmap", "the OCI runtime's id ranges", "uidmap"), ("podman", "running cell as an OCI runtime", "podman")] {
            let path = facts.tools[tool]
            checks.append(Check(name: tool, ok: path != nil, detail: path ?? "not found in PATH",
                                remedy: path == nil ? "needed for \(purpose): apt-get install \(package)" : nil))
        }
        self.checks = checks
    }

    /// One line per check, then the verdict.
    public func text() -> String {
        var out = ""
        for check in checks {
            out += "\(check.ok ? "yes" : "no ")  \(check.name): \(TerminalText.escaped(check.detail))\n"
            if let remedy = check.remedy { out += "     -> \(TerminalText.escaped(remedy))\n" }
        }
        out += namespacesWork ? "\ncell run works here (namespaces).\n"
            : landlockWorks ? "\nthe default profile cannot run here; cell run --isolation landlock can (weaker: SECURITY.md).\n"
            : "\nno sandbox mode can run here.\n"
        return out
    }

    public func json() -> String {
        func field(_ s: String?) -> String { s.map(JSONField.quote) ?? "null" }
        let items = checks.map {
            "{\"name\":\(field($0.name)),\"ok\":\($0.ok),\"detail\":\(field($0.detail)),\"remedy\":\(field($0.remedy))}"
        }
        return "{\"v\":1,\"namespaces\":\(namespacesWork),\"landlock\":\(landlockWorks),\"checks\":[" + items.joined(separator: ",") + "]}\n"
    }
}

/// Gathers `HostReport.Facts` from this host.
public enum HostProbe {
    public static func gather() -> HostReport.Facts {
        let host = HostFacts.current()
        let status = readSmallFile("/proc/self/status", limit: 16 << 10) ?? ""
        let seccomp = status.split(separator: "\n").first { $0.hasPrefix("Seccomp:") }.flatMap { Int($0.split(separator: "\t").last ?? "") } ?? 0
        let (mount, _) = HostCgroupTree.locate()
        let cgroup = HostCgroupTree.find(.auto, id: "ID")
        let tun = open("/dev/net/tun", O_RDWR | O_CLOEXEC)
        if tun >= 0 { close(tun) }
        var tools: [String: String] = [:]
        for name in ["slirp4netns", "pasta", "newuidmap", "podman"] { tools[name] = findInPath(name) }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return HostReport.Facts(
            namespacesRefused: LandlockIsolation.namespacesRefused(),
            unprivilegedUserNamespaceClone: host.unprivilegedUserNamespaceClone, maxUserNamespaces: host.maxUserNamespaces,
            appArmorRestrictsUserNamespaces: host.appArmorRestrictsUserNamespaces, underSeccompFilter: seccomp == 2,
            landlockABI: LandlockRules.kernelABI(), userNotificationError: cell_probe_user_notification(),
            cgroupMount: mount, cgroupParent: try? cgroup.get().parent,
            cgroupUnavailable: { if case .failure(let why) = cgroup { return why.reason } else { return nil } }(), tunAvailable: tun >= 0, tools: tools,
            cellPath: n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "/usr/local/bin/cell")
    }

    static func findInPath(_ name: String) -> String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for dir in (path + ":/usr/sbin:/sbin").split(separator: ":") where access("\(dir)/\(name)", X_OK) == 0 {
            return "\(dir)/\(name)"
        }
        return nil
    }
}
