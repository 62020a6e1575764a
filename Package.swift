// swift-tools-version:6.0
//
// cell — a rootless sandbox for untrusted commands on Linux.
//
// cell deliberately depends on nothing but the Swift standard library, Glibc, libseccomp and
// libcap-ng: Foundation and swift-argument-parser (which imports FoundationEssentials) each add
// milliseconds of start-up, and start-up dominates a sandbox launch. The TOML parser is cell's
// own for the same reason (TOMLKit pulls in Foundation) and because toml++, inside TOMLKit,
// aborted the process on malformed profiles. The module graph: docs/architecture.md.
//
// The sandbox's pid 1, `cell-init` (Sources/cell-init), is a small static C program that is
// *not* a SwiftPM target: SwiftPM links every executable against the Swift runtime, and pid 1
// must be a self-contained static binary that executes the plan (cell_plan.h) inside whatever
// the sandbox becomes. Scripts/build compiles it next to the `cell` binary.
import PackageDescription

let package = Package(
    name: "cell",
    products: [
        .executable(name: "cell", targets: ["cell"]),
        .executable(name: "cell-proxy", targets: ["cell-proxy"]),
        .executable(name: "cell-runtime", targets: ["cell-runtime"]),
    ],
    targets: [
        // Shared vocabulary, below the three parts: system call and capability name tables,
        // the seccomp policy model, limits, mounts, namespaces, the network mode, JSON.
        .target(
            name: "CellPolicy",
            dependencies: ["CellEgress", "CLibseccomp", "CLibcapng"]
        ),
        // The egress allow-list (host patterns, ports, which addresses are not public): pure
        // Swift, shared by the profile loader and the proxy, which links nothing else of cell's.
        .target(name: "CellEgress"),
        // The profile loader: named TOML security profiles, lookup, extends, merge, validation,
        // built-ins. Produces a Profile; knows nothing of how it is launched.
        .target(
            name: "CellProfile",
            dependencies: ["CellPolicy"]
        ),
        // The audit logger: the notification → decision → event → log path, rate limiting,
        // the `cell audit` reader.
        .target(
            name: "CellAudit",
            dependencies: ["CellPolicy", "CSeccompNotify"]
        ),
        // The launcher: the Planner (Profile + command line → LaunchPlan), the plan's encoding,
        // spawning, supervision, the user-mode network and cgroup limits.
        .target(
            name: "CellLauncher",
            dependencies: ["CellPolicy", "CellProfile", "CellAudit", "CCellSpawn", "CLibseccomp"]
        ),
        // Command-line parsing, help and dispatch (hand-written: see the note above). No C.
        .target(
            name: "CellCLI",
            dependencies: ["CellLauncher", "CellProfile", "CellAudit", "CellPolicy"]
        ),
        // The pre-exec C of a launch: the trampoline between clone() and the execve() of
        // cell-init (async-signal-safe), the descriptors handed to it, and cell_plan.h, the
        // plan's wire format shared with cell-init.
        .target(
            name: "CCellSpawn",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        // The audit path's seccomp user-notification calls (receive, read a path, answer).
        .target(
            name: "CSeccompNotify",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        // System libraries: the seccomp filter compiler and capability names.
        .systemLibrary(
            name: "CLibseccomp",
            pkgConfig: "libseccomp",
            providers: [.apt(["libseccomp-dev"])]
        ),
        .systemLibrary(
            name: "CLibcapng",
            pkgConfig: "libcap-ng",
            providers: [.apt(["libcap-ng-dev"])]
        ),
        .executableTarget(
            name: "cell",
            dependencies: ["CellCLI"]
        ),
        // The OCI runtime engines call (podman --runtime, containerd): config.json → the
        // launcher's plan, the runtime's state directory, the monitor that supervises a
        // container after `create` returns. docs/oci-runtime.md.
        .target(
            name: "CellRuntime",
            dependencies: ["CellLauncher", "CellProfile", "CellPolicy", "CellAudit", "CCellSpawn"]
        ),
        .executableTarget(
            name: "cell-runtime",
            dependencies: ["CellRuntime"]
        ),
        // --net proxy's filtering proxy: a helper of its own, dynamically linked against the C
        // library so that names resolve through the system's resolver (NSS), which a static cell
        // cannot; it keeps the proxy's code out of every other launch.
        .executableTarget(
            name: "cell-proxy",
            dependencies: ["CellEgress", "CCellProxy"]
        ),
        // cell-proxy's C: its own Landlock wall, and the splice() relay of a connection's bytes.
        .target(
            name: "CCellProxy",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        // The profile loader's libFuzzer target (Scripts/fuzz), and its corpus replayer.
        .executableTarget(
            name: "cell-fuzz-profile",
            dependencies: ["CellProfile"]
        ),
        .testTarget(name: "CellCLITests", dependencies: ["CellCLI", "CellLauncher", "CellPolicy"]),
        .testTarget(name: "CellLauncherTests", dependencies: ["CellLauncher", "CellPolicy", "CellAudit", "CCellSpawn"]),
        .testTarget(name: "CellProfileTests", dependencies: ["CellProfile", "CellPolicy", "CellEgress"]),
        .testTarget(name: "CellAuditTests", dependencies: ["CellAudit", "CellPolicy"]),
        .testTarget(name: "CellRuntimeTests", dependencies: ["CellRuntime", "CellLauncher", "CellPolicy", "CellProfile"]),
        .testTarget(name: "IntegrationTests"),
    ]
)
