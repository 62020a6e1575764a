import CellPolicy

/// A parsed TOML document as plain Swift values (TOMLParser does the parsing), plus a locator
/// that finds where a key or value stands in the text, so every diagnostic can name
/// FILE:LINE:COLUMN.
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
}

public struct TOMLSyntaxError: Error, Equatable, Sendable {
    public var message: String
    public var line: Int
    public var column: Int
}

public enum TOMLDocument {
    /// The document's top-level table, or the first syntax error.
    public static func parse(_ text: String) throws(TOMLSyntaxError) -> [String: TOMLNode] {
        var parser = TOMLParser(text)
        return try parser.parse()
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
/// It is a locator for diagnostics, not a parser: TOMLParser has already validated the syntax.
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
