/// A glob of `[filesystem] hide` / `--hide`: which files of a visible tree the sandbox sees
/// empty. Anchored at the root of each tree the user binds (the working directory, --bind,
/// --ro-bind, --overlay, profile mounts): `.git/config` is that file at the top only,
/// `**/.env` a `.env` at any depth. Components are matched one by one: `*` is any run of
/// characters within one name (a leading '.' included: `*.pem` matches `.tls.pem`), `?` one
/// character, `**` (a whole component) any number of components, none included. Names are
/// bytes, matched as they are.
public struct HidePattern: Equatable, Sendable, CustomStringConvertible {
    public let text: String
    private let components: [[UInt8]]

    private static let star = UInt8(ascii: "*"), question = UInt8(ascii: "?"), slash = UInt8(ascii: "/")
    private static let anyDepth: [UInt8] = [star, star]

    /// The pattern, or why it cannot be one.
    public static func parse(_ text: String) -> Result<HidePattern, FilesystemOptionError> {
        let body = text.hasPrefix("/") ? String(text.dropFirst()) : text
        let parts = body.split(separator: "/", omittingEmptySubsequences: false)
        if body.isEmpty || parts.contains(where: \.isEmpty) {
            return .failure(.init("hide pattern '\(text)' has an empty component"))
        }
        if parts.contains(where: { $0 == "." || $0 == ".." }) {
            return .failure(.init("hide pattern '\(text)' has a '.' or '..' component: patterns name paths inside a tree, from its root"))
        }
        if parts.contains(where: { $0.contains("**") && $0 != "**" }) {
            return .failure(.init("hide pattern '\(text)': '**' must be a whole component (**/NAME, DIR/**)"))
        }
        if parts.allSatisfy({ $0 == "**" }) {
            return .failure(.init("hide pattern '\(text)' would hide the whole tree: bind less instead"))
        }
        return .success(HidePattern(text: text, components: parts.map { Array($0.utf8) }))
    }

    private init(text: String, components: [[UInt8]]) {
        self.text = text
        self.components = components
    }

    public var description: String { text }

    /// Whether `path` (below a tree's root, "/a/b", as bytes) matches.
    public func matches(_ path: [UInt8]) -> Bool {
        // Most patterns end in a literal-ish name (`**/.env`): the last name decides most
        // entries of a large tree, before the path is split at all.
        guard let lastPattern = components.last else { return false }
        let lastStart = path.lastIndex(of: Self.slash).map { $0 + 1 } ?? path.startIndex
        if lastPattern != Self.anyDepth && !Self.matchName(lastPattern[...], path[lastStart...]) { return false }
        return Self.match(components[...], path.split(separator: Self.slash, omittingEmptySubsequences: true)[...])
    }

    /// Components against names, `**` taking any number of names: a table of which suffixes
    /// match which (time pattern x names, never exponential in the number of `**`).
    private static func match(_ pattern: ArraySlice<[UInt8]>, _ names: ArraySlice<ArraySlice<UInt8>>) -> Bool {
        let p = Array(pattern), n = Array(names)
        // next[j]: whether p[i+1...] matches n[j...]; row[j]: whether p[i...] does.
        var next = [Bool](repeating: false, count: n.count + 1)
        next[n.count] = true
        for i in stride(from: p.count - 1, through: 0, by: -1) {
            var row = [Bool](repeating: false, count: n.count + 1)
            for j in stride(from: n.count, through: 0, by: -1) {
                if p[i] == anyDepth {
                    row[j] = next[j] || (j < n.count && row[j + 1])
                } else {
                    row[j] = j < n.count && next[j + 1] && matchName(p[i][...], n[j])
                }
            }
            next = row
        }
        return next[0]
    }

    /// One name against one component with `*` and `?` (iterative, backtracking to the last `*`).
    static func matchName(_ pattern: ArraySlice<UInt8>, _ name: ArraySlice<UInt8>) -> Bool {
        var p = pattern.startIndex, n = name.startIndex
        var starP: Int?, starN = name.startIndex
        while n < name.endIndex {
            if p < pattern.endIndex && (pattern[p] == question || pattern[p] == name[n]) && pattern[p] != star {
                p += 1
                n += 1
            } else if p < pattern.endIndex && pattern[p] == star {
                starP = p
                starN = n
                p += 1
            } else if let s = starP {
                p = s + 1
                starN += 1
                n = starN
            } else {
                return false
            }
        }
        while p < pattern.endIndex && pattern[p] == star { p += 1 }
        return p == pattern.endIndex
    }
}
