import CCellSpawn
import CellAudit
import CellLauncher
import Glibc
import TOMLKit

/// A parsed TOML document as plain Swift values (TOMLKit does the parsing), plus a locator that
/// finds where a key or value stands in the text, so every diagnostic can name FILE:LINE:COLUMN.
public indirect enum TOMLNode: Equatable, Sendable {
    case table([String: TOMLNode])
    case array([TOMLNode])
    case string(String)
    case integer(Int)
    case float(Double)
    case bool(Bool)
    /// Dates and times: cell uses none, so only their type name is kept, for messages.
    case other(String)

    public var typeName: String {
        switch self {
        case .table: return "a table"
        case .array: return "an array"
        case .string: return "a string"
        case .integer: return "an integer"
        case .float: return "a float"
        case .bool: return "a boolean"
        case .other(let name): return "a \(name)"
        }
    }

    static func from(_ value: TOMLValueConvertible) -> TOMLNode {
        switch value.type {
        case .table:
            var members: [String: TOMLNode] = [:]
            if let table = value.table {
                for key in table.keys { if let v = table[key] { members[key] = from(v) } }
            }
            return .table(members)
        case .array:
            return .array(value.array.map { Array($0).map { from($0) } } ?? [])
        case .string: return .string(value.string ?? "")
        case .int: return .integer(value.int ?? 0)
        case .double: return .float(value.double ?? 0)
        case .bool: return .bool(value.bool ?? false)
        case .date: return .other("date")
        case .time: return .other("time")
        case .dateTime: return .other("date-time")
        }
    }
}

public struct TOMLSyntaxError: Error, Equatable, Sendable {
    public var message: String
    public var line: Int
    public var column: Int
}

public enum TOMLDocument {
    public static func parse(_ text: String) throws(TOMLSyntaxError) -> [String: TOMLNode] {
        if let problem = tableHeaderProblem(text) { throw problem }
        do {
            let table = try TOMLTable(string: text)
            guard case .table(let members) = TOMLNode.from(table) else { return [:] }
            return members
        } catch let error as TOMLParseError {
            return try fail(TOMLSyntaxError(message: error.description, line: error.source.begin.line, column: error.source.begin.column))
        } catch {
            return try fail(TOMLSyntaxError(message: "\(error)", line: 1, column: 1))
        }
    }

    private static func fail(_ e: TOMLSyntaxError) throws(TOMLSyntaxError) -> [String: TOMLNode] { throw e }

    /// Parses text that did not come with cell (a user's or an administrator's profile) in a
    /// forked child. The toml++ parser inside TOMLKit asserts on some malformed inputs and
    /// aborts the whole process (the fuzzer found several; they are upstream bugs): in a child,
    /// such an input becomes a diagnostic instead of a crash of cell. The child sends the
    /// document back as tagged JSON, which the parent reads with its own JSON reader.
    public static func parseIsolated(_ text: String) throws(TOMLSyntaxError) -> [String: TOMLNode] {
        var fds: [Int32] = [-1, -1]
        guard cell_pipe_cloexec(&fds) == 0 else { return try parse(text) }
        let pid = fork()
        if pid == 0 {
            close(fds[0])
            // Quiet: an abort in toml++ would print an assertion and a backtrace.
            let null = open("/dev/null", O_WRONLY)
            if null >= 0 { dup2(null, 2) }
            let message: String
            do {
                message = "{\"ok\":" + encode(.table(try parse(text))) + "}"
            } catch {
                message = "{\"error\":\(JSONField.quote(error.message)),\"line\":\(error.line),\"column\":\(error.column)}"
            }
            writeAll(fds[1], message)
            _exit(0)
        }
        close(fds[1])
        if pid < 0 {
            close(fds[0])
            return try parse(text)
        }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        close(fds[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0, let reply = try? JSONParser.parse(String(decoding: bytes, as: UTF8.self)) else {
            throw TOMLSyntaxError(message: "the TOML parser (toml++, inside TOMLKit) gave up on this file; check its syntax, brackets and quotes", line: 1, column: 1)
        }
        if let message = reply["error"]?.string {
            throw TOMLSyntaxError(message: message, line: reply["line"]?.int ?? 1, column: reply["column"]?.int ?? 1)
        }
        guard let ok = reply["ok"], case .table(let members)? = decode(ok) else {
            throw TOMLSyntaxError(message: "the TOML parser's answer could not be read", line: 1, column: 1)
        }
        return members
    }

    /// Tagged JSON: {"t":{...}} table, {"a":[...]} array, {"s":""}, {"i":"1"}, {"f":"1.5"},
    /// {"b":true}, {"o":"date"}.
    static func encode(_ node: TOMLNode) -> String {
        switch node {
        case .table(let m):
            return "{\"t\":{" + m.keys.sorted().map { JSONField.quote($0) + ":" + encode(m[$0]!) }.joined(separator: ",") + "}}"
        case .array(let a): return "{\"a\":[" + a.map(encode).joined(separator: ",") + "]}"
        case .string(let s): return "{\"s\":" + JSONField.quote(s) + "}"
        case .integer(let i): return "{\"i\":\"\(i)\"}"
        case .float(let f): return "{\"f\":\"\(f)\"}"
        case .bool(let b): return "{\"b\":\(b)}"
        case .other(let o): return "{\"o\":" + JSONField.quote(o) + "}"
        }
    }

    static func decode(_ value: JSONValue) -> TOMLNode? {
        if case .object(let members)? = value["t"] {
            var table: [String: TOMLNode] = [:]
            for (key, v) in members {
                guard let node = decode(v) else { return nil }
                table[key] = node
            }
            return .table(table)
        }
        if let items = value["a"]?.array {
            var nodes: [TOMLNode] = []
            for item in items {
                guard let node = decode(item) else { return nil }
                nodes.append(node)
            }
            return .array(nodes)
        }
        if let s = value["s"]?.string { return .string(s) }
        if let i = value["i"]?.string.flatMap({ Int($0) }) { return .integer(i) }
        if let f = value["f"]?.string.flatMap({ Double($0) }) { return .float(f) }
        if let b = value["b"]?.bool { return .bool(b) }
        if let o = value["o"]?.string { return .other(o) }
        return nil
    }

    /// The toml++ parser inside TOMLKit aborts the process (a failed assertion) on a table
    /// header whose first key does not start with a key character, such as `[,x]` — found by
    /// the profile fuzzer. Such a header is reported here, as a syntax error, before TOMLKit
    /// sees the text. A small scanner follows strings and multi-line values so that only real
    /// headers (lines at statement level starting with `[`) are checked.
    static func tableHeaderProblem(_ text: String) -> TOMLSyntaxError? {
        var chars = Array(text.unicodeScalars)
        // toml++ skips a byte-order mark: so does this scan (found by the fuzzer: BOM + "[#").
        if chars.first == "\u{FEFF}" { chars.removeFirst() }
        var i = 0, line = 1, column = 1
        var depth = 0                  // [ ] and { } inside a value
        var atStatementStart = true    // nothing but whitespace yet on this line, at depth 0
        func advance() {
            if chars[i] == "\n" { line += 1; column = 1 } else { column += 1 }
            i += 1
        }
        func starts(_ s: String) -> Bool {
            let u = Array(s.unicodeScalars)
            return i + u.count <= chars.count && Array(chars[i..<i + u.count]) == u
        }
        func isKeyStart(_ c: Unicode.Scalar) -> Bool {
            c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "_" || c == "-" || c == "\"" || c == "'")
        }
        while i < chars.count {
            let c = chars[i]
            if c == "\n" {
                advance()
                if depth == 0 { atStatementStart = true }
                continue
            }
            if c != "\n" && c.properties.isWhitespace { advance(); continue }
            if c == "#" {
                while i < chars.count && chars[i] != "\n" { advance() }
                continue
            }
            if atStatementStart && depth == 0 && c == "[" {
                atStatementStart = false
                advance()
                if i < chars.count && chars[i] == "[" { advance() }
                while i < chars.count && chars[i] != "\n" && chars[i].properties.isWhitespace { advance() }
                if i < chars.count && !isKeyStart(chars[i]) {
                    return TOMLSyntaxError(message: "Error while parsing table header: expected a key, saw '\(chars[i].escaped(asASCII: true))'",
                                           line: line, column: column)
                }
                // The rest of the header: up to the end of the line.
                while i < chars.count && chars[i] != "\n" { advance() }
                continue
            }
            atStatementStart = false
            if starts("\"\"\"") || starts("'''") {
                let quote = starts("\"\"\"") ? "\"\"\"" : "'''"
                for _ in 0..<3 { advance() }
                while i < chars.count && !starts(quote) {
                    if quote == "\"\"\"" && chars[i] == "\\" { advance() }
                    if i < chars.count { advance() }
                }
                for _ in 0..<3 where i < chars.count { advance() }
                continue
            }
            if c == "\"" || c == "'" {
                advance()
                while i < chars.count && chars[i] != c && chars[i] != "\n" {
                    if c == "\"" && chars[i] == "\\" { advance() }
                    if i < chars.count { advance() }
                }
                if i < chars.count && chars[i] == c { advance() }
                continue
            }
            if c == "[" || c == "{" { depth += 1 }
            if (c == "]" || c == "}") && depth > 0 { depth -= 1 }
            advance()
        }
        return nil
    }
}

/// One step of a path into a document: a key, or an index into an array.
public enum PathComponent: Equatable, Sendable, CustomStringConvertible {
    case key(String)
    case index(Int)

    public var description: String {
        switch self {
        case .key(let k): return k
        case .index(let i): return "[\(i)]"
        }
    }
}

/// Finds where a key stands in TOML text, line by line: it follows `[table]` and
/// `[[array.of.tables]]` headers and `key = value` lines (dotted and quoted keys included).
/// It is a locator for diagnostics, not a parser: TOMLKit has already validated the syntax.
public struct SourceLocator {
    struct Entry {
        var path: [PathComponent]
        var line: Int
        var column: Int
    }

    private var entries: [Entry] = []
    private let lines: [Substring]

    public init(_ text: String) {
        lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        var table: [PathComponent] = []
        var arrayCounts: [String: Int] = [:]
        for (number, raw) in lines.enumerated() {
            let indent = raw.prefix { $0 == " " || $0 == "\t" }.count
            let line = raw.dropFirst(indent)
            if line.hasPrefix("#") || line.isEmpty { continue }
            if line.hasPrefix("[[") {
                let keys = Self.keys(line.dropFirst(2).prefix { $0 != "]" })
                let name = keys.joined(separator: ".")
                let index = arrayCounts[name, default: 0]
                arrayCounts[name] = index + 1
                table = keys.map(PathComponent.key) + [.index(index)]
                entries.append(Entry(path: table, line: number + 1, column: indent + 1))
            } else if line.hasPrefix("[") {
                table = Self.keys(line.dropFirst().prefix { $0 != "]" }).map(PathComponent.key)
                entries.append(Entry(path: table, line: number + 1, column: indent + 1))
            } else if let eq = Self.assignment(line) {
                let keys = Self.keys(line[..<eq])
                entries.append(Entry(path: table + keys.map(PathComponent.key), line: number + 1, column: indent + 1))
            }
        }
    }

    /// The position of `path`, or of its longest prefix that stands in the text; with `value`,
    /// of that quoted string after the key (an element of an inline array, say).
    public func locate(_ path: [PathComponent], value: String? = nil) -> (line: Int, column: Int) {
        var length = path.count
        while length > 0 {
            let prefix = Array(path.prefix(length))
            if let entry = entries.first(where: { $0.path == prefix }) {
                if let value, let found = find("\"\(value)\"", from: entry.line) ?? find("'\(value)'", from: entry.line) {
                    return found
                }
                return (entry.line, entry.column)
            }
            length -= 1
        }
        return (1, 1)
    }

    private func find(_ needle: String, from line: Int) -> (line: Int, column: Int)? {
        for number in (line - 1)..<min(lines.count, line + 200) {
            if let range = lines[number].range(of: needle) {
                return (number + 1, lines[number].distance(from: lines[number].startIndex, to: range.lowerBound) + 1)
            }
        }
        return nil
    }

    /// The index of the `=` of a `key = value` line (outside quotes), if it is one.
    static func assignment(_ line: Substring) -> Substring.Index? {
        var quote: Character?
        for i in line.indices {
            let c = line[i]
            if let q = quote {
                if c == q { quote = nil }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == "=" {
                return i
            } else if c == "#" {
                return nil
            }
        }
        return nil
    }

    /// `a.b."c.d"` → ["a", "b", "c.d"]
    static func keys(_ text: Substring) -> [String] {
        var keys: [String] = []
        var current = ""
        var quote: Character?
        for c in text {
            if let q = quote {
                if c == q { quote = nil } else { current.append(c) }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == "." {
                keys.append(current.trimmingSpaces())
                current = ""
            } else {
                current.append(c)
            }
        }
        keys.append(current.trimmingSpaces())
        return keys
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}

extension Substring {
    func range(of needle: String) -> Range<Substring.Index>? {
        guard !needle.isEmpty, needle.count <= count else { return nil }
        var start = startIndex
        while start < endIndex {
            if self[start...].hasPrefix(needle) { return start..<index(start, offsetBy: needle.count) }
            start = index(after: start)
        }
        return nil
    }
}
