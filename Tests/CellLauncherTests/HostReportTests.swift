import Glibc
import Testing
@testable import CellLauncher

/// `cell doctor`'s verdicts, from facts made up: every "no" carries its remedy.
struct HostReportTests {
    static let good = HostReport.Facts(
        namespacesRefused: nil, unprivilegedUserNamespaceClone: nil, maxUserNamespaces: 15000, appArmorRestrictsUserNamespaces: nil,
        underSeccompFilter: false, landlockABI: 7, userNotificationError: 0, cgroupMount: "/sys/fs/cgroup",
        cgroupParent: "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/run-1.scope", cgroupUnavailable: nil, tunAvailable: true,
        tools: ["slirp4netns": "/usr/bin/slirp4netns", "pasta": "/usr/bin/pasta", "newuidmap": "/usr/bin/newuidmap", "podman": "/usr/bin/podman"],
        cellPath: "/usr/local/bin/cell")

    @Test func aGoodHostSaysYesEverywhere() {
        let report = HostReport(Self.good)
        #expect(report.namespacesWork && report.landlockWorks)
        #expect(report.checks.allSatisfy { $0.ok && $0.remedy == nil }, "\(report.checks)")
        #expect(report.text().hasSuffix("cell run works here (namespaces).\n"))
    }

    @Test func eachRefusalNamesItsSettingAndRemedy() {
        var facts = Self.good
        facts.namespacesRefused = "creating a user namespace fails (No space left on device)"
        facts.maxUserNamespaces = 0
        var report = HostReport(facts)
        let userns = report.checks[0]
        #expect(!report.namespacesWork && !userns.ok && userns.detail.hasPrefix("user.max_user_namespaces is 0"))
        #expect(userns.remedy?.contains("sysctl -w user.max_user_namespaces=15000") == true && userns.remedy?.contains("--isolation landlock") == true)
        #expect(report.text().contains("cell run --isolation landlock can"))

        facts.maxUserNamespaces = 15000
        facts.appArmorRestrictsUserNamespaces = true
        report = HostReport(facts)
        #expect(report.checks[0].remedy?.contains("profile cell /usr/local/bin/cell flags=(unconfined) { userns, }") == true)

        facts.appArmorRestrictsUserNamespaces = false
        facts.underSeccompFilter = true
        #expect(HostReport(facts).checks[0].remedy?.contains("seccomp filter (a container?)") == true)
    }

    @Test func missingLandlockABIsAndToolsSayWhatTheyCost() {
        var facts = Self.good
        facts.landlockABI = 3
        facts.userNotificationError = EBUSY
        facts.cgroupParent = nil
        facts.cgroupUnavailable = "cell runs in the root of its cgroup namespace (/sys/fs/cgroup), which is not delegated to you"
        facts.tools["podman"] = nil
        let report = HostReport(facts)
        let landlock = report.checks.first { $0.name == "Landlock" }!
        #expect(landlock.ok && landlock.detail.contains("ABI 4 TCP rules") && landlock.detail.contains("ABI 6 scoping") && !landlock.detail.contains("ABI 3 "))
        #expect(report.checks.first { $0.name == "seccomp user notification" }?.remedy?.contains("outer cell") == true)
        let cgroup = report.checks.first { $0.name == "cgroup v2" }
        #expect(cgroup?.detail.hasSuffix("the root of its cgroup namespace (/sys/fs/cgroup), which is not delegated to you") == true)
        #expect(cgroup?.remedy?.contains("systemd-run --user --scope -p Delegate=yes cell run") == true)
        #expect(report.checks.first { $0.name == "podman" }?.remedy == "needed for running cell as an OCI runtime: apt-get install podman")
        facts.landlockABI = 0
        #expect(!HostReport(facts).landlockWorks)
    }

    @Test func jsonCarriesTheSameVerdicts() {
        var facts = Self.good
        facts.tunAvailable = false
        let json = HostReport(facts).json()
        #expect(json.hasPrefix("{\"v\":1,\"namespaces\":true,\"landlock\":true,\"checks\":[{\"name\":\"user namespaces\",\"ok\":true"))
        #expect(json.contains("{\"name\":\"/dev/net/tun\",\"ok\":false,\"detail\":\"missing or not openable\",\"remedy\":\"--net user needs it (modprobe tun)\"}"))
    }
}
