import CellPolicy
import Glibc

/// Where a profile came from, in lookup order.
public enum ProfileOrigin: Equatable, Sendable, CustomStringConvertible {
    case file(String)
    case user(String)
    case system(String)
    case builtIn

    public var description: String {
        switch self {
        case .file(let p): return "file \(p)"
        case .user(let p): return "user (\(p))"
        case .system(let p): return "/etc (\(p))"
        case .builtIn: return "built-in"
        }
    }

    var level: Int {
        switch self {
        case .file: return 0
        case .user: return 1
        case .system: return 2
        case .builtIn: return 3
        }
    }

    var displayPath: String {
        switch self {
        case .file(let p), .user(let p), .system(let p): return p
        case .builtIn: return ""
        }
    }
}

public struct ProfileListing: Equatable, Sendable {
    public var name: String
    public var origin: ProfileOrigin
    public var description: String
    /// Shadowed by a profile of the same name found earlier in the lookup order.
    public var shadowed: Bool
}

/// Finds, reads, follows `extends` and resolves profiles.
///
/// Lookup of a name: `$XDG_CONFIG_HOME/cell/profiles/NAME.toml` (default `~/.config`), then
/// `/etc/cell/profiles/NAME.toml`, then the built-in profiles compiled into cell. Never the
/// current directory: a profile planted there must not be picked up by a bare name. A word
/// containing `/` or ending in `.toml` is read as a file path.
///
/// `extends = "NAME"` follows the same lookup, except that a profile extending its own name
/// continues the lookup *after* itself: a user's `default.toml` with `extends = "default"`
/// adjusts the built-in default instead of looping.
public struct ProfileLoader {
    public var variables: ProfileVariables
    public var userDirectory: String?
    public var systemDirectory: String?
    public var builtIns: [String: String]
    public var readFile: (String) -> String?
    public var listDirectory: (String) -> [String]

    public init(variables: ProfileVariables, userDirectory: String?, systemDirectory: String? = "/etc/cell/profiles",
                builtIns: [String: String] = BuiltinProfiles.all,
                readFile: @escaping (String) -> String? = { readSmallFile($0) },
                listDirectory: @escaping (String) -> [String] = { directoryEntries($0) }) {
        self.variables = variables
        self.userDirectory = userDirectory
        self.systemDirectory = systemDirectory
        self.builtIns = builtIns
        self.readFile = readFile
        self.listDirectory = listDirectory
    }

    public static func isPath(_ word: String) -> Bool {
        word.contains("/") || word.hasSuffix(".toml")
    }

    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && !name.hasPrefix(".") && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
    }

    struct Source {
        var name: String
        var origin: ProfileOrigin
        var text: String
        var file: String { origin == .builtIn ? "<built-in \(name)>" : origin.displayPath }
    }

    /// The profile text for a name, starting the search at `fromLevel`.
    func find(_ name: String, fromLevel: Int = 1) -> Source? {
        if fromLevel <= 1, let dir = userDirectory, let text = readFile("\(dir)/\(name).toml") {
            return Source(name: name, origin: .user("\(dir)/\(name).toml"), text: text)
        }
        if fromLevel <= 2, let dir = systemDirectory, let text = readFile("\(dir)/\(name).toml") {
            return Source(name: name, origin: .system("\(dir)/\(name).toml"), text: text)
        }
        if fromLevel <= 3, let text = builtIns[name] {
            return Source(name: name, origin: .builtIn, text: text)
        }
        return nil
    }

    func source(for nameOrPath: String) throws(ProfileDiagnosticList) -> Source {
        if Self.isPath(nameOrPath) {
            guard let text = readFile(nameOrPath) else {
                throw ProfileDiagnosticList([ProfileDiagnostic(file: nameOrPath, line: 0, column: 0, message: "cannot read the profile file")])
            }
            let base = nameOrPath.split(separator: "/").last.map(String.init) ?? nameOrPath
            return Source(name: base.hasSuffix(".toml") ? String(base.dropLast(5)) : base, origin: .file(nameOrPath), text: text)
        }
        guard Self.isValidName(nameOrPath) else {
            throw ProfileDiagnosticList([ProfileDiagnostic(file: nameOrPath, line: 0, column: 0,
                message: "'\(nameOrPath)' is not a profile name (letters, digits, '-', '_', '.'); a path needs a '/' or the .toml ending")])
        }
        guard let found = find(nameOrPath) else {
            let known = listing().filter { !$0.shadowed }.map(\.name)
            var message = "no profile named '\(nameOrPath)' (looked in \(searchPlaces().joined(separator: ", ")))"
            if let best = known.min(by: { levenshtein($0, nameOrPath) < levenshtein($1, nameOrPath) }), levenshtein(best, nameOrPath) <= 2 {
                message += "; did you mean '\(best)'?"
            } else {
                message += "; profiles: \(known.joined(separator: ", "))"
            }
            throw ProfileDiagnosticList([ProfileDiagnostic(file: nameOrPath, line: 0, column: 0, message: message)])
        }
        return found
    }

    func searchPlaces() -> [String] {
        [userDirectory, systemDirectory].compactMap { $0 } + ["the built-in profiles"]
    }

    /// Resolves a profile by name or path. Throws every problem found, in every file of the
    /// `extends` chain.
    public func resolve(_ nameOrPath: String) throws(ProfileDiagnosticList) -> Profile {
        let top = try source(for: nameOrPath)
        var chain: [(Source, ProfileLayer)] = []
        var diagnostics: [ProfileDiagnostic] = []
        var seen: [String] = []
        var current: Source? = top
        while let source = current {
            let identity = source.origin == .builtIn ? "builtin:\(source.name)" : source.origin.displayPath
            if seen.contains(identity) {
                let names = (chain.map { $0.0.name } + [source.name]).joined(separator: " -> ")
                diagnostics.append(ProfileDiagnostic(file: chain.last?.0.file ?? source.file, line: 1, column: 1, message: "extends cycle: \(names)"))
                break
            }
            seen.append(identity)
            let document: [String: TOMLNode]
            do {
                // cell's own profiles come parsed at build time: a default launch parses no TOML.
                if source.origin == .builtIn, case .table(let members)? = BuiltinProfiles.parsed[source.name],
                   builtIns[source.name] == BuiltinProfiles.all[source.name] {
                    document = members
                } else {
                    document = try TOMLDocument.parse(source.text)
                }
            } catch {
                diagnostics.append(ProfileDiagnostic(file: source.file, line: error.line, column: error.column, message: error.message))
                break
            }
            var decoder = ProfileDecoder(file: source.file, text: source.text, variables: variables)
            let layer = decoder.decode(document)
            diagnostics += decoder.diagnostics
            chain.append((source, layer))
            guard let parent = layer.extends else { break }
            let at = SourceLocator(source.text).locate([.key("extends")])
            if Self.isPath(parent) {
                // Relative to the extending file's directory.
                var path = parent
                if !parent.hasPrefix("/"), case let dir = source.origin.displayPath, let slash = dir.lastIndex(of: "/") {
                    path = String(dir[..<slash]) + "/" + parent
                }
                guard let text = readFile(path) else {
                    diagnostics.append(ProfileDiagnostic(file: source.file, line: at.line, column: at.column, message: "extends '\(parent)': cannot read \(path)"))
                    break
                }
                current = Source(name: parent, origin: .file(path), text: text)
            } else {
                let level = parent == source.name ? source.origin.level + 1 : 1
                guard let found = find(parent, fromLevel: level) else {
                    var message = "extends '\(parent)': no such profile"
                    if parent == source.name { message += " after this one in the lookup order" }
                    diagnostics.append(ProfileDiagnostic(file: source.file, line: at.line, column: at.column, message: message))
                    break
                }
                current = found
            }
        }
        if !diagnostics.isEmpty {
            // In file order within each file, files in the order the chain met them.
            let files = diagnostics.map(\.file).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
            throw ProfileDiagnosticList(files.flatMap { file in
                diagnostics.filter { $0.file == file }.sorted { ($0.line, $0.column) < ($1.line, $1.column) }
            })
        }

        var profile = Profile.base(name: top.name)
        for (_, layer) in chain.reversed() { profile = layer.apply(to: profile) }
        profile.name = top.name
        return profile
    }

    /// Every profile cell can find, in lookup order (shadowed ones marked).
    public func listing() -> [ProfileListing] {
        var seen = Set<String>()
        var result: [ProfileListing] = []
        func add(_ name: String, _ origin: ProfileOrigin, _ text: String?) {
            let description = text.flatMap { try? TOMLDocument.parse($0) }.flatMap { doc -> String? in
                if case .string(let d)? = doc["description"] { return d }
                return nil
            } ?? (text == nil ? "(unreadable)" : "")
            result.append(ProfileListing(name: name, origin: origin, description: description, shadowed: seen.contains(name)))
            seen.insert(name)
        }
        for (dir, make) in [(userDirectory, ProfileOrigin.user), (systemDirectory, ProfileOrigin.system)] {
            guard let dir else { continue }
            for entry in listDirectory(dir).sorted() where entry.hasSuffix(".toml") {
                let name = String(entry.dropLast(5))
                guard Self.isValidName(name) else { continue }
                add(name, make("\(dir)/\(entry)"), readFile("\(dir)/\(entry)"))
            }
        }
        for name in builtIns.keys.sorted() { add(name, .builtIn, builtIns[name]) }
        return result
    }
}

/// Every diagnostic of a failed load.
public struct ProfileDiagnosticList: Error, Equatable, Sendable {
    public var diagnostics: [ProfileDiagnostic]
    public init(_ diagnostics: [ProfileDiagnostic]) { self.diagnostics = diagnostics }
}

extension ProfileLoader {
    /// A loader for this process's caller: its variables ($HOME, $XDG_CONFIG_HOME, $TMPDIR, the
    /// working directory, the uid) and its profile directory. `cell run` and cell-runtime use it.
    public static func forCaller() -> ProfileLoader {
        // Three variables, read with getenv (the first of duplicates, as a table of the whole
        // environment would keep; building that table showed in a launch's profile).
        func absolute(_ name: String) -> String? {
            guard let value = getenv(name) else { return nil }
            let text = String(cString: value)
            return text.hasPrefix("/") ? text : nil
        }
        let home = absolute("HOME") ?? "/"
        let configHome = absolute("XDG_CONFIG_HOME") ?? home + "/.config"
        let variables = ProfileVariables(
            cwd: currentDirectory() ?? "/",
            home: home,
            tmpdir: absolute("TMPDIR") ?? "/tmp",
            uid: getuid())
        return ProfileLoader(variables: variables, userDirectory: configHome + "/cell/profiles")
    }
}
