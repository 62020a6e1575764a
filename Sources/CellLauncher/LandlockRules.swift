import CCellSpawn
import CellPolicy

/// A Landlock ruleset as the plan carries it to pid 1 (cell-init/landlock.c applies it).
public struct LandlockPlan: Equatable, Sendable {
    public struct PathRule: Equatable, Sendable {
        public var access: UInt64
        /// Inside the sandbox's view.
        public var path: String
    }

    /// The ABI the rights below belong to (the kernel's, probed at planning).
    public var abi: UInt32
    /// Fail the launch (rather than warn) if pid 1 finds no Landlock after all.
    public var required: Bool
    public var handledFS: UInt64
    public var handledNet: UInt64
    public var scoped: UInt64
    public var paths: [PathRule]
    /// `[landlock] write` narrowed the writable mounts.
    public var writeNarrowed = false
}

/// The second wall of a namespace sandbox: a Landlock domain that mirrors the filesystem view.
/// Reading and executing are allowed beneath the new root (the view decides what is there);
/// writing — and making, removing, linking across (REFER), truncating — only beneath what the
/// view mounts writable; the devices, the sandbox's devpts and /proc are usable as the view
/// allows; abstract unix sockets and signals are scoped to the sandbox (ABI 6). Should the
/// first wall fail — a mount let through by a weakened profile, a bug in the mount code — the
/// sandbox still cannot write elsewhere, nor mount anything (a Landlock domain forbids it).
///
/// Rules attach to inodes, and a path's access is what the rules on it and its ancestors
/// allow: a host file reached around the view (reopening an inherited descriptor through
/// /proc/self/fd) has none of the view's ancestors, so nothing is allowed there — pid 1 adds
/// back, on its own descriptors 0-2, what each was opened for, so /dev/stdin and /dev/stderr
/// keep working and an input file is not reopened for writing.
public enum LandlockRules {
    // Access rights (linux/landlock.h), by the ABI that introduced them.
    static let execute: UInt64 = 1 << 0, writeFile: UInt64 = 1 << 1, readFile: UInt64 = 1 << 2, readDir: UInt64 = 1 << 3
    static let abi1: UInt64 = (1 << 13) - 1 // execute ... make_sym
    static let refer: UInt64 = 1 << 13, truncate: UInt64 = 1 << 14, ioctlDev: UInt64 = 1 << 15
    static let bindTCP: UInt64 = 1 << 0, connectTCP: UInt64 = 1 << 1
    static let scopeAbstractUnixSocket: UInt64 = 1 << 0, scopeSignal: UInt64 = 1 << 1

    /// Every filesystem right the ABI knows.
    static func handledFS(abi: UInt32) -> UInt64 {
        abi1 | (abi >= 2 ? refer : 0) | (abi >= 3 ? truncate : 0) | (abi >= 5 ? ioctlDev : 0)
    }

    /// The kernel's Landlock ABI (0: none).
    public static func kernelABI() -> UInt32 { UInt32(max(0, cell_landlock_abi())) }

    /// The ruleset mirroring `mounts` on a kernel of `abi` (nil: 0, no Landlock). With
    /// `writeOnly` (`[landlock] write`), the writable mounts are writable only beneath those
    /// paths of theirs; a path in no writable mount is given nothing (the view decides first).
    public static func mirroring(_ mounts: [MountOperation], abi: UInt32, required: Bool, writeOnly: [String]? = nil) -> LandlockPlan? {
        guard abi > 0 else { return nil }
        let all = handledFS(abi: abi)
        let read = readFile | readDir | execute
        let device = (readFile | writeFile | truncate | ioctlDev) & all
        var paths = [LandlockPlan.PathRule(access: read, path: "/")]
        for op in mounts {
            let access: UInt64
            switch op.kind {
            case .bind where op.device: access = op.readOnly ? 0 : device
            case .bind, .tmpfs, .overlay: access = op.readOnly ? 0 : all
            case .devpts: access = device | readDir
            case .proc: access = (read | writeFile | truncate) & all
            case .mqueue, .dir, .file, .symlink, .remountReadOnly, .hide, .sysfs: access = 0
            }
            guard access != 0 else { continue }
            if let writeOnly, access == all {
                // A rule gives its rights beneath its path: each listed path inside this mount.
                for path in writeOnly where SandboxPath.isWithin(path, op.destination) {
                    paths.append(LandlockPlan.PathRule(access: all, path: path))
                }
            } else {
                paths.append(LandlockPlan.PathRule(access: access, path: op.destination))
            }
        }
        return LandlockPlan(abi: abi, required: required, handledFS: all, handledNet: 0,
                            scoped: abi >= 6 ? scopeAbstractUnixSocket | scopeSignal : 0, paths: paths, writeNarrowed: writeOnly != nil)
    }

    /// One line for --dry-run and the notes.
    static func describe(_ plan: LandlockPlan?, mode: LandlockMode) -> String {
        guard let plan else {
            return mode == .off ? "off (profile)" : "none: this kernel has no Landlock (best effort: the namespaces hold alone)"
        }
        let scoped = plan.scoped == 0 ? "abstract unix sockets and signals not scoped (ABI 6 needed)" : "abstract unix sockets and signals scoped"
        return "ABI \(plan.abi)\(plan.required ? " (required)" : ""): the view mirrored in \(plan.paths.count) path rules, "
            + (plan.writeNarrowed ? "writes only beneath [landlock] write; " : "writes only where it is writable; ") + scoped
    }
}
