import Glibc

/// One step of the sandbox's filesystem view. pid 1 runs them in order below a fresh tmpfs
/// root, then pivots into it (see Sources/cell-init/mounts.c for the mechanics and why).
public struct MountOperation: Equatable, Sendable {
    public enum Kind: String, CaseIterable, Sendable {
        case bind, tmpfs, proc, devpts, mqueue, dir, symlink, file
        case remountReadOnly = "remount-ro"
        /// A copy-on-write view of host directory `source`: writes go to an upper layer (a tmpfs
        /// of `size`, or `changes`), never to the host.
        case overlay
        /// What a `hide` glob matched: an empty read-only file (for a file or symlink) or
        /// directory over the existing entry at `destination`, of type `expectedType`.
        case hide
        /// A sysfs of the sandbox's own network namespace (cell-runtime: an OCI config's).
        case sysfs
    }

    public var kind: Kind
    /// bind: the host path; symlink: the link's target.
    public var source: String?
    /// file: its contents.
    public var contents: [UInt8] = []
    /// Absolute, normalized path inside the sandbox.
    public var destination: String
    public var readOnly = false
    /// Planning: a bind whose source does not exist is left out (`FilesystemView.settle`).
    /// pid 1: skipped when its destination cannot be reached (a /proc file this kernel lacks).
    public var optional = false
    /// The destination must exist already (masking a /proc file): nothing is created.
    public var mustExist = false
    /// Planning: a bind the user chose (the working directory, --bind, --ro-bind, profile
    /// mounts), whose tree BindGuards walks; the default view's system binds are not.
    public var guarded = false
    public var noexec = false
    /// A bind of a device node (/dev/null...): the only binds without nodev.
    public var device = false
    /// tmpfs size in bytes (nil: the kernel's default, half of RAM; avoid).
    public var size: UInt64?
    /// tmpfs, dir and file mode.
    public var mode: UInt32?
    /// overlay: the host directory that holds the upper layer (--changes), kept after the run;
    /// nil: a tmpfs of `size`.
    public var changes: String?
    /// bind: the type (S_IFMT bits) the planner saw at the source. pid 1 binds only a source
    /// of that type, reached without a symlink, and fails if it changed in between.
    public var expectedType: UInt32?

    public init(kind: Kind, source: String? = nil, contents: [UInt8] = [], destination: String, readOnly: Bool = false,
                optional: Bool = false, mustExist: Bool = false, noexec: Bool = false, device: Bool = false,
                size: UInt64? = nil, mode: UInt32? = nil, expectedType: UInt32? = nil) {
        self.kind = kind
        self.source = source
        self.contents = contents
        self.destination = destination
        self.readOnly = readOnly
        self.optional = optional
        self.mustExist = mustExist
        self.noexec = noexec
        self.device = device
        self.size = size
        self.mode = mode
        self.expectedType = expectedType
    }

    public static func bind(_ source: String, _ destination: String? = nil, readOnly: Bool, optional: Bool = false) -> MountOperation {
        MountOperation(kind: .bind, source: source, destination: destination ?? source, readOnly: readOnly, optional: optional)
    }

    public static func tmpfs(_ destination: String, size: UInt64, mode: UInt32, readOnly: Bool = false) -> MountOperation {
        MountOperation(kind: .tmpfs, destination: destination, readOnly: readOnly, size: size, mode: mode)
    }

    public static func symlink(_ target: String, at destination: String) -> MountOperation {
        MountOperation(kind: .symlink, source: target, destination: destination)
    }

    public static func file(_ destination: String, contents: String, mode: UInt32 = 0o644) -> MountOperation {
        file(destination, bytes: Array(contents.utf8), mode: mode)
    }

    public static func file(_ destination: String, bytes: [UInt8], mode: UInt32 = 0o644) -> MountOperation {
        MountOperation(kind: .file, contents: bytes, destination: destination, mode: mode)
    }

    public static func dir(_ destination: String, mode: UInt32 = 0o755) -> MountOperation {
        MountOperation(kind: .dir, destination: destination, mode: mode)
    }

    /// An empty read-only cover for the entry of `type` at `destination` (a hide glob matched it).
    public static func hide(_ destination: String, type: UInt32) -> MountOperation {
        MountOperation(kind: .hide, destination: destination, mustExist: true, expectedType: type)
    }

    /// One line for `--dry-run`.
    public var summary: String {
        var flags: [String] = []
        if readOnly { flags.append("ro") }
        if let size { flags.append("size=\(ByteSize.format(size))") }
        if let mode { flags.append("mode=\(String(mode, radix: 8))") }
        if noexec { flags.append("noexec") }
        if device { flags.append("dev") }
        if optional { flags.append("optional") }
        if mustExist { flags.append("existing") }
        if let expectedType { flags.append("source is a \(FileType.name(expectedType))") }
        let suffix = flags.isEmpty ? "" : " (\(flags.joined(separator: ", ")))"
        switch kind {
        case .bind: return "\(readOnly ? "ro-bind" : "bind") \(source ?? "") -> \(destination)\(suffix)"
        case .symlink: return "symlink \(destination) -> \(source ?? "")"
        case .file: return "file \(destination) (\(contents.count) bytes\(mode.map { ", mode=\(String($0, radix: 8))" } ?? ""))"
        case .hide:
            return "hide \(destination) (seen as an empty, read-only \(expectedType == UInt32(S_IFDIR) ? "directory" : "file"): "
                + "a \(FileType.name(expectedType ?? 0)) a hide pattern matches)"
        case .overlay:
            return "overlay \(source ?? "") -> \(destination) (copy-on-write; changes "
                + (changes.map { "kept in \($0), no size limit but its disk's" } ?? "in a tmpfs of \(ByteSize.format(size ?? 0)), discarded") + ")"
        default: return "\(kind.rawValue) \(destination)\(suffix)"
        }
    }
}

/// File types as lstat reports them (the S_IFMT bits), named for --dry-run and messages.
public enum FileType {
    public static func name(_ type: UInt32) -> String {
        switch type {
        case UInt32(S_IFDIR): return "directory"
        case UInt32(S_IFREG): return "regular file"
        case UInt32(S_IFCHR): return "character device"
        case UInt32(S_IFBLK): return "block device"
        case UInt32(S_IFIFO): return "FIFO"
        case UInt32(S_IFSOCK): return "socket"
        case UInt32(S_IFLNK): return "symlink"
        default: return "file of type 0o" + String(type, radix: 8)
        }
    }
}

/// Paths inside the sandbox: absolute and normalized, never with `..`.
public enum SandboxPath {
    /// `path` made absolute against `base` (if relative), with `//` and `.` removed.
    /// Returns nil when it has a `..` component: cell never guesses what that should mean.
    public static func normalize(_ path: String, relativeTo base: String? = nil) -> String? {
        let full: String
        if path.hasPrefix("/") {
            full = path
        } else if let base {
            full = base + "/" + path
        } else {
            return nil
        }
        var parts: [Substring] = []
        for part in full.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { return nil }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Whether `path` is `ancestor` or lies below it.
    public static func isWithin(_ path: String, _ ancestor: String) -> Bool {
        ancestor == "/" || path == ancestor || path.hasPrefix(ancestor + "/")
    }
}

/// Sizes as users write them: 512, 64k, 256m, 2g (powers of 1024).
public enum ByteSize {
    public static func parse(_ text: String) -> UInt64? {
        let lower = text.lowercased()
        var digits = Substring(lower)
        var multiplier: UInt64 = 1
        for (suffix, value) in [("k", UInt64(1) << 10), ("m", UInt64(1) << 20), ("g", UInt64(1) << 30), ("t", UInt64(1) << 40)] {
            if lower.hasSuffix(suffix) || lower.hasSuffix(suffix + "b") || lower.hasSuffix(suffix + "ib") {
                multiplier = value
                digits = Substring(lower.prefix { $0.isNumber })
                let rest = lower.dropFirst(digits.count)
                guard [suffix, suffix + "b", suffix + "ib"].contains(String(rest)) else { return nil }
                break
            }
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isNumber }), let n = UInt64(digits) else { return nil }
        let (product, overflow) = n.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }

    public static func format(_ bytes: UInt64) -> String {
        for (suffix, shift) in [("g", 30), ("m", 20), ("k", 10)] where bytes >= (UInt64(1) << shift) && bytes % (UInt64(1) << shift) == 0 {
            return "\(bytes >> UInt64(shift))\(suffix)"
        }
        return String(bytes)
    }
}
