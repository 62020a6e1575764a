/// A persistent cache given to a sandbox (`--cache NAME:DST`, `[filesystem] caches`): a
/// directory of the caller's, kept by cell between runs (CacheStore), bound read-write at DST,
/// so that the second run of a job reuses what the first downloaded.
public struct CacheMount: Equatable, Sendable, CustomStringConvertible {
    /// What the cache is called in `cell cache list`: letters, digits, '.', '_', '-'.
    public var name: String
    /// Where it appears inside: an absolute path, or `~` / `~/...` for the home inside.
    public var destination: String

    public init(name: String, destination: String) {
        self.name = name
        self.destination = destination
    }

    public var description: String { "\(name):\(destination)" }

    /// `NAME:DST`, or why not (one line, naming the problem).
    public static func parse(_ text: String) -> Result<CacheMount, FilesystemOptionError> {
        guard let colon = text.firstIndex(of: ":") else {
            return .failure(.init("'\(text)' is not NAME:DST (e.g. \"pip:~/.cache/pip\")"))
        }
        let name = String(text[..<colon]), destination = String(text[text.index(after: colon)...])
        if let problem = nameProblem(name) { return .failure(.init("cache '\(text)': \(problem)")) }
        guard destination == "~" || destination.hasPrefix("~/") || destination.hasPrefix("/"),
              SandboxPath.normalize(destination.hasPrefix("~") ? "/" + destination.dropFirst() : destination) != nil else {
            return .failure(.init("cache '\(text)': its destination must be absolute or start with ~/ (the home inside), without '..'"))
        }
        return .success(CacheMount(name: name, destination: destination))
    }

    /// Why `name` cannot name a cache, or nil. A name becomes one directory under cell's cache
    /// root: never a path ('/'), never a way up ('..'), never hidden or empty.
    public static func nameProblem(_ name: String) -> String? {
        if name.isEmpty { return "the name is empty" }
        if name.utf8.count > 64 { return "the name is longer than 64 characters" }
        guard name.utf8.allSatisfy({ isNameByte($0) }), name.first != "." else {
            return "the name '\(TerminalText.escaped(name))' may hold only letters, digits, '.', '_' and '-' (no '/', not starting with '.')"
        }
        return nil
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
            || byte == 0x2e || byte == 0x5f || byte == 0x2d
    }

    /// The destination inside, `~` replaced by the sandbox user's home; normalized.
    public func destination(home: String) -> String? {
        if destination == "~" { return SandboxPath.normalize(home) }
        if destination.hasPrefix("~/") { return SandboxPath.normalize(home + destination.dropFirst()) }
        return SandboxPath.normalize(destination)
    }
}

/// A `--cache` or `--hide` value that cannot be used, and why (one line).
public struct FilesystemOptionError: Error, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

/// Which runs share a cache of a given name (`[filesystem] cache_scope`, `--cache-scope`). A
/// cache carries state from one job to the next — a wheel built from an sdist, a poisoned
/// module — so by default only the runs of one project under one profile share it.
public enum CacheScope: String, Equatable, Sendable, CaseIterable {
    /// The project (the git top level around the working directory, else the directory) and
    /// the profile: the default.
    case project
    /// Every project run under the same profile.
    case profile
    /// Every run of this user.
    case user
}
