// swift-tools-version:6.0
//
// cell — a rootless sandbox for untrusted commands on Linux.
//
// cell deliberately depends on nothing but the Swift standard library, Glibc, libseccomp and
// libcap-ng: Foundation and swift-argument-parser (which imports FoundationEssentials) each add
// milliseconds of start-up, and start-up dominates a sandbox launch. The TOML parser is cell's
// own for the same reason (TOMLKit pulls in Foundation) and because toml++, inside TOMLKit,
// aborted the process on malformed profiles. See README.md, "Design".
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
    ],
    targets: [
        // The C around a launch: the trampoline between clone() and the execve() of cell-init
        // (async-signal-safe), the descriptors handed to it, seccomp notification calls, and
        // cell_plan.h, the plan's wire format shared with cell-init.
        .target(
            name: "CCellSpawn",
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
        // The audit logger: events as JSON Lines, rate limiting, the `cell audit` reader.
        .target(name: "CellAudit"),
        // Plan building, spawning and supervision of a sandbox.
        .target(
            name: "CellLauncher",
            dependencies: ["CCellSpawn", "CLibseccomp", "CLibcapng", "CellAudit"]
        ),
        // Named TOML security profiles: lookup, extends, merge, validation, built-ins.
        .target(
            name: "CellProfile",
            dependencies: ["CellLauncher", "CellAudit"]
        ),
        // Command-line parsing and dispatch (hand-written: see the note above).
        .target(
            name: "CellCLI",
            dependencies: ["CellLauncher", "CellProfile", "CellAudit", "CCellSpawn"]
        ),
        .executableTarget(
            name: "cell",
            dependencies: ["CellCLI"]
        ),
        // The profile loader's libFuzzer target (Scripts/fuzz), and its corpus replayer.
        .executableTarget(
            name: "cell-fuzz-profile",
            dependencies: ["CellProfile"]
        ),
        .testTarget(name: "CellCLITests", dependencies: ["CellCLI"]),
        .testTarget(name: "CellLauncherTests", dependencies: ["CellLauncher", "CellAudit"]),
        .testTarget(name: "CellProfileTests", dependencies: ["CellProfile", "CellLauncher"]),
        .testTarget(name: "CellAuditTests", dependencies: ["CellAudit", "CellLauncher"]),
        .testTarget(name: "IntegrationTests", dependencies: ["CellLauncher"]),
    ]
)
