import Glibc

/// The sandbox's environment. It starts empty — the caller's variables routinely carry tokens and
/// paths that the command has no business seeing — and gets only:
///   1. a fixed, safe `PATH`, and `HOME`, `USER` and `LOGNAME` of the user inside;
///   2. `TERM` and `LANG` from the caller, so output and text look the same as outside;
///   3. variables named by `--keep-env NAME` (a trailing `*` keeps every name with that prefix);
///   4. `--env NAME=VALUE`, which wins over all of the above.
public enum SandboxEnvironment {
    public static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    public static let passedThrough = ["TERM", "LANG"]

    public static func build(
        caller: [(name: String, value: String)],
        user: (name: String, home: String),
        keep: [String],
        set: [(name: String, value: String)]
    ) -> [String] {
        var names: [String] = []
        var values: [String: String] = [:]
        func put(_ name: String, _ value: String) {
            if values[name] == nil { names.append(name) }
            values[name] = value
        }
        put("PATH", defaultPath)
        put("HOME", user.home)
        put("USER", user.name)
        put("LOGNAME", user.name)
        for (name, value) in caller where passedThrough.contains(name) { put(name, value) }
        for pattern in keep {
            for (name, value) in caller where matches(name, pattern) { put(name, value) }
        }
        for (name, value) in set { put(name, value) }
        return names.map { "\($0)=\(values[$0]!)" }
    }

    static func matches(_ name: String, _ pattern: String) -> Bool {
        if pattern.hasSuffix("*") { return name.hasPrefix(pattern.dropLast()) }
        return name == pattern
    }

    /// A valid variable name: non-empty, no `=`, no NUL (execve would cut it short).
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && !name.contains("=") && !name.utf8.contains(0)
    }

    /// A `--keep-env` pattern: a valid name, optionally ending in `*` (`*` alone keeps everything).
    public static func isValidPattern(_ pattern: String) -> Bool {
        if pattern == "*" { return true }
        let stem = pattern.hasSuffix("*") ? String(pattern.dropLast()) : pattern
        return isValidName(stem) && !stem.contains("*")
    }

    /// The caller's environment, from `environ`, read once (the profile loader and the plan
    /// both need it).
    public static func callerEnvironment() -> [(name: String, value: String)] {
        callerEnvironmentOnce
    }

    private static let callerEnvironmentOnce: [(name: String, value: String)] = readEnviron()

    private static func readEnviron() -> [(name: String, value: String)] {
        var result: [(name: String, value: String)] = []
        var cursor = environ
        // Split at the first '=' on the bytes: a Character search would run grapheme breaking
        // over every variable, which showed in a launch's profile.
        while let entry = cursor.pointee {
            if let eq = strchr(entry, 0x3D) {
                let name = UnsafeRawBufferPointer(start: entry, count: entry.distance(to: eq))
                result.append((String(decoding: name, as: UTF8.self), String(cString: eq + 1)))
            }
            cursor += 1
        }
        return result
    }
}
