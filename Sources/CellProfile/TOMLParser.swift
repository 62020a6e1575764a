import CellPolicy

/// A TOML 1.0 parser over the text's UTF-8 bytes, written for cell's profiles.
///
/// Why cell has its own: the TOMLKit package wraps toml++ (C++), which aborted the whole process
/// on malformed input (failed assertions, also in release builds: the profile fuzzer found
/// several), and it imports Foundation, which made every launch slower. This parser is pure Swift
/// with no dependency, reports every problem as a `TOMLSyntaxError` at a line and column, and
/// bounds nesting so that no input can exhaust the stack. The fuzzer runs it in CI.
///
/// What it checks, from the specification: key syntax (bare, quoted, dotted), every string form
/// and escape, integers (decimal, hex, octal, binary; underscores; no leading zeros; 64-bit
/// range), floats (including inf and nan), booleans, dates and times (validated, then kept only
/// as their type name: cell uses none), arrays, inline tables (one line, no trailing comma,
/// closed once written), and the rules on defining keys and tables: no key twice, no table
/// twice, dotted keys never reopen a table defined elsewhere, `[[x]]` only for arrays of tables.
struct TOMLParser {
    /// Deeper nesting than this (tables, arrays, dotted key parts) is refused: every level is a
    /// recursive call, here and wherever the document is used.
    static let maximumNesting = 100

    private let bytes: [UInt8]
    private var i = 0
    private var line = 1
    private var lineStart = 0

    init(_ text: String) {
        bytes = Array(text.utf8)
    }

    // MARK: - The document

    /// A table while the document is read: its origin decides what may still be added to it.
    private final class Table {
        enum Origin {
            case header     // [x] or an element of [[x]]
            case implicit   // created as the parent of a header, [x.y] makes x; [x] may follow
            case dotted     // created by a dotted key, x.y = 1
            case inline     // { ... }: closed once written
        }
        var origin: Origin
        var members: [String: Entry] = [:]
        init(_ origin: Origin) { self.origin = origin }

        var node: TOMLNode {
            var table: [String: TOMLNode] = [:]
            for (key, entry) in members {
                switch entry {
                case .table(let t): table[key] = t.node
                case .tables(let ts): table[key] = .array(ts.map(\.node))
                case .value(let v): table[key] = v
                }
            }
            return .table(table)
        }
    }

    private enum Entry {
        case table(Table)
        case tables([Table])   // an array of tables, made by [[x]]
        case value(TOMLNode)   // everything else, static arrays and inline tables included
    }

    mutating func parse() throws(TOMLSyntaxError) -> [String: TOMLNode] {
        let root = Table(.header)
        var current = root
        var currentDepth = 0
        // A byte-order mark is not TOML, but editors write one: skip it.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3; lineStart = 3 }
        while true {
            skipWhitespace()
            guard let c = peek() else { break }
            if c == UInt8(ascii: "#") || c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r") {
                try endOfLine()
                continue
            }
            if c == UInt8(ascii: "[") {
                (current, currentDepth) = try header(root)
            } else {
                try keyValue(into: current, depth: currentDepth)
            }
            try endOfLine()
        }
        guard case .table(let members) = root.node else { return [:] }
        return members
    }

    /// `[a.b]` or `[[a.b]]`; returns the table the following keys go into, and its depth.
    private mutating func header(_ root: Table) throws(TOMLSyntaxError) -> (Table, Int) {
        let start = position()
        i += 1
        let isArray = peek() == UInt8(ascii: "[")
        if isArray { i += 1 }
        skipWhitespace()
        let keys = try key()
        skipWhitespace()
        try expect("]", "expected ']' to close the table header")
        if isArray { try expect("]", "expected ']]' to close the array-of-tables header") }
        let name = keys.joined(separator: ".")
        let depth = keys.count + (isArray ? 1 : 0)
        if depth > Self.maximumNesting { throw error("tables are nested too deeply", at: start) }

        var table = root
        for k in keys.dropLast() {
            switch table.members[k] {
            case nil:
                let child = Table(.implicit)
                table.members[k] = .table(child)
                table = child
            case .table(let child):
                table = child
            case .tables(let elements):
                table = elements[elements.count - 1]
            case .value:
                throw error("'\(k)' in [\(name)] already has a value; it cannot be a table", at: start)
            }
        }
        let last = keys[keys.count - 1]
        if isArray {
            let element = Table(.header)
            switch table.members[last] {
            case nil:
                table.members[last] = .tables([element])
            case .tables(let elements):
                table.members[last] = .tables(elements + [element])
            case .table, .value:
                throw error("[[\(name)]]: '\(name)' is already defined, and not as an array of tables", at: start)
            }
            return (element, depth)
        }
        switch table.members[last] {
        case nil:
            let child = Table(.header)
            table.members[last] = .table(child)
            return (child, depth)
        case .table(let child) where child.origin == .implicit:
            child.origin = .header
            return (child, depth)
        case .table(let child):
            throw error(child.origin == .dotted ? "table [\(name)] is already defined by dotted keys"
                                                : "table [\(name)] is defined twice", at: start)
        case .tables:
            throw error("[\(name)] is an array of tables: add elements with [[\(name)]]", at: start)
        case .value:
            throw error("'\(name)' already has a value; it cannot be a table", at: start)
        }
    }

    /// `a.b = value`, into `table` (the current section, or an inline table being read), which
    /// is `depth` levels down.
    private mutating func keyValue(into table: Table, depth: Int) throws(TOMLSyntaxError) {
        let start = position()
        let keys = try key()
        if depth + keys.count > Self.maximumNesting { throw error("keys are nested too deeply", at: start) }
        skipWhitespace()
        try expect("=", "expected '=' after the key '\(keys.joined(separator: "."))'")
        skipWhitespace()
        let value = try value(depth: depth + keys.count)
        var target = table
        for (index, k) in keys.dropLast().enumerated() {
            let path = keys[...index].joined(separator: ".")
            switch target.members[k] {
            case nil:
                let child = Table(.dotted)
                target.members[k] = .table(child)
                target = child
            case .table(let child) where child.origin == .dotted:
                target = child
            case .table:
                throw error("the table '\(path)' is defined elsewhere: dotted keys cannot add to it", at: start)
            case .tables:
                throw error("'\(path)' is an array of tables: dotted keys cannot add to it", at: start)
            case .value:
                throw error("'\(path)' already has a value; it cannot be a table", at: start)
            }
        }
        let last = keys[keys.count - 1]
        if target.members[last] != nil {
            throw error("duplicate key '\(keys.joined(separator: "."))'", at: start)
        }
        target.members[last] = .value(value)
    }

    // MARK: - Keys

    /// A key: bare or quoted parts joined by dots.
    private mutating func key() throws(TOMLSyntaxError) -> [String] {
        var parts: [String] = []
        while true {
            guard let c = peek() else { throw error("expected a key") }
            if c == UInt8(ascii: "\"") {
                if starts("\"\"\"") { throw error("a key cannot be a multi-line string") }
                parts.append(try basicString())
            } else if c == UInt8(ascii: "'") {
                if starts("'''") { throw error("a key cannot be a multi-line string") }
                parts.append(try literalString())
            } else if Self.isBareKey(c) {
                let from = i
                while let b = peek(), Self.isBareKey(b) { i += 1 }
                parts.append(String(decoding: bytes[from..<i], as: UTF8.self))
            } else {
                throw error("expected a key, found \(describe(c))")
            }
            skipWhitespace()
            guard peek() == UInt8(ascii: ".") else { return parts }
            i += 1
            skipWhitespace()
        }
    }

    private static func isBareKey(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39)
            || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
    }

    // MARK: - Values

    private mutating func value(depth: Int) throws(TOMLSyntaxError) -> TOMLNode {
        guard let c = peek() else { throw error("expected a value after '='") }
        switch c {
        case UInt8(ascii: "\""):
            return .string(starts("\"\"\"") ? try multiLineBasicString() : try basicString())
        case UInt8(ascii: "'"):
            return .string(starts("'''") ? try multiLineLiteralString() : try literalString())
        case UInt8(ascii: "["):
            return try array(depth: depth + 1)
        case UInt8(ascii: "{"):
            return try inlineTable(depth: depth + 1)
        case UInt8(ascii: "t") where starts("true"):
            i += 4
            return .bool(true)
        case UInt8(ascii: "f") where starts("false"):
            i += 5
            return .bool(false)
        default:
            if isDigit(at: i) && isDigit(at: i + 1) && (byte(at: i + 2) == UInt8(ascii: ":")
                || (isDigit(at: i + 2) && isDigit(at: i + 3) && byte(at: i + 4) == UInt8(ascii: "-"))) {
                return try dateOrTime()
            }
            if c == UInt8(ascii: "+") || c == UInt8(ascii: "-") || isDigit(at: i) || c == UInt8(ascii: "i") || c == UInt8(ascii: "n") {
                return try number()
            }
            throw error("expected a value, found \(describe(c))")
        }
    }

    private mutating func array(depth: Int) throws(TOMLSyntaxError) -> TOMLNode {
        if depth > Self.maximumNesting { throw error("arrays and inline tables are nested too deeply") }
        i += 1
        var items: [TOMLNode] = []
        while true {
            try skipBlank()
            guard let c = peek() else { throw error("unterminated array: expected ']'") }
            if c == UInt8(ascii: "]") { i += 1; return .array(items) }
            items.append(try value(depth: depth))
            try skipBlank()
            guard let next = peek() else { throw error("unterminated array: expected ']'") }
            if next == UInt8(ascii: ",") { i += 1; continue }
            if next == UInt8(ascii: "]") { i += 1; return .array(items) }
            throw error("expected ',' or ']' in an array, found \(describe(next))")
        }
    }

    private mutating func inlineTable(depth: Int) throws(TOMLSyntaxError) -> TOMLNode {
        if depth > Self.maximumNesting { throw error("arrays and inline tables are nested too deeply") }
        i += 1
        let table = Table(.inline)
        skipWhitespace()
        if peek() == UInt8(ascii: "}") { i += 1; return table.node }
        while true {
            skipWhitespace()
            try keyValue(into: table, depth: depth)
            skipWhitespace()
            guard let next = peek() else { throw error("unterminated inline table: expected '}'") }
            if next == UInt8(ascii: "}") { i += 1; return table.node }
            if next == UInt8(ascii: ",") {
                i += 1
                skipWhitespace()
                if peek() == UInt8(ascii: "}") { throw error("an inline table cannot end with a comma") }
                continue
            }
            if next == UInt8(ascii: "\n") || next == UInt8(ascii: "\r") {
                throw error("an inline table must stay on one line")
            }
            throw error("expected ',' or '}' in an inline table, found \(describe(next))")
        }
    }

    // MARK: - Strings

    // An unterminated string is reported where it starts: that is where the quote is missing.

    private mutating func basicString() throws(TOMLSyntaxError) -> String {
        let start = position()
        i += 1
        var out: [UInt8] = []
        while true {
            guard let c = peek() else { throw error("unterminated string: expected '\"'", at: start) }
            switch c {
            case UInt8(ascii: "\""):
                i += 1
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                try escape(into: &out)
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                throw error("unterminated string: a \"...\" string ends on its line (\"\"\" starts a multi-line one)", at: start)
            default:
                try checkTextByte(c)
                out.append(c)
                i += 1
            }
        }
    }

    private mutating func multiLineBasicString() throws(TOMLSyntaxError) -> String {
        let start = position()
        i += 3
        skipFirstNewline()
        var out: [UInt8] = []
        while true {
            guard let c = peek() else { throw error("unterminated string: expected '\"\"\"'", at: start) }
            if c == UInt8(ascii: "\"") && starts("\"\"\"") {
                try closeMultiLine(UInt8(ascii: "\""), into: &out)
                return String(decoding: out, as: UTF8.self)
            }
            if c == UInt8(ascii: "\\") {
                // A backslash at the end of a line joins it to the next non-blank text.
                var j = i + 1
                while byte(at: j) == UInt8(ascii: " ") || byte(at: j) == UInt8(ascii: "\t") { j += 1 }
                if byte(at: j) == UInt8(ascii: "\n") || (byte(at: j) == UInt8(ascii: "\r") && byte(at: j + 1) == UInt8(ascii: "\n")) {
                    i = j
                    while let b = peek(), b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\n") || b == UInt8(ascii: "\r") {
                        if b == UInt8(ascii: "\r") { guard byte(at: i + 1) == UInt8(ascii: "\n") else { throw error("a carriage return must be followed by a line feed") } }
                        if b == UInt8(ascii: "\n") { newline() } else { i += 1 }
                    }
                    continue
                }
                try escape(into: &out)
                continue
            }
            try multiLineByte(c, into: &out)
        }
    }

    private mutating func literalString() throws(TOMLSyntaxError) -> String {
        let start = position()
        i += 1
        let from = i
        while true {
            guard let c = peek() else { throw error("unterminated string: expected \"'\"", at: start) }
            if c == UInt8(ascii: "'") {
                defer { i += 1 }
                return String(decoding: bytes[from..<i], as: UTF8.self)
            }
            if c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r") {
                throw error("unterminated string: a '...' string ends on its line (''' starts a multi-line one)", at: start)
            }
            try checkTextByte(c)
            i += 1
        }
    }

    private mutating func multiLineLiteralString() throws(TOMLSyntaxError) -> String {
        let start = position()
        i += 3
        skipFirstNewline()
        var out: [UInt8] = []
        while true {
            guard let c = peek() else { throw error("unterminated string: expected \"'''\"", at: start) }
            if c == UInt8(ascii: "'") && starts("'''") {
                try closeMultiLine(UInt8(ascii: "'"), into: &out)
                return String(decoding: out, as: UTF8.self)
            }
            try multiLineByte(c, into: &out)
        }
    }

    /// At three or more quotes in a multi-line string, which closes it: up to two of them may
    /// belong to the text before the closing three.
    private mutating func closeMultiLine(_ quote: UInt8, into out: inout [UInt8]) throws(TOMLSyntaxError) {
        var count = 0
        while byte(at: i + count) == quote { count += 1 }
        if count > 5 { throw error("too many quotes: at most two may come right before the closing three") }
        out.append(contentsOf: repeatElement(quote, count: count - 3))
        i += count
    }

    private mutating func multiLineByte(_ c: UInt8, into out: inout [UInt8]) throws(TOMLSyntaxError) {
        if c == UInt8(ascii: "\n") {
            out.append(c)
            newline()
        } else if c == UInt8(ascii: "\r") {
            guard byte(at: i + 1) == UInt8(ascii: "\n") else { throw error("a carriage return must be followed by a line feed") }
            i += 1
        } else {
            try checkTextByte(c)
            out.append(c)
            i += 1
        }
    }

    private mutating func skipFirstNewline() {
        if peek() == UInt8(ascii: "\n") {
            newline()
        } else if peek() == UInt8(ascii: "\r") && byte(at: i + 1) == UInt8(ascii: "\n") {
            i += 1
            newline()
        }
    }

    private mutating func escape(into out: inout [UInt8]) throws(TOMLSyntaxError) {
        guard let e = byte(at: i + 1) else { throw error("unterminated string: expected '\"'") }
        let simple: UInt8?
        switch e {
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "t"): simple = 0x09
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "\""): simple = e
        case UInt8(ascii: "\\"): simple = e
        default: simple = nil
        }
        if let simple {
            out.append(simple)
            i += 2
            return
        }
        guard e == UInt8(ascii: "u") || e == UInt8(ascii: "U") else {
            i += 1
            throw error("invalid escape '\\\(describeRaw(e))' in a string (valid: \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX)")
        }
        let digits = e == UInt8(ascii: "u") ? 4 : 8
        var scalar: UInt32 = 0
        for k in 0..<digits {
            guard let h = byte(at: i + 2 + k), let v = Self.hexValue(h) else {
                throw error("\\\(e == UInt8(ascii: "u") ? "u" : "U") needs \(digits) hexadecimal digits")
            }
            scalar = scalar << 4 | UInt32(v)
        }
        guard let unicode = Unicode.Scalar(scalar) else {
            throw error("\\\(e == UInt8(ascii: "u") ? "u" : "U") escape is not a Unicode scalar value")
        }
        out.append(contentsOf: String(Character(unicode)).utf8)
        i += 2 + digits
    }

    /// Control characters other than tab are not allowed in strings or comments.
    private func checkTextByte(_ c: UInt8) throws(TOMLSyntaxError) {
        if (c < 0x20 && c != 0x09) || c == 0x7F {
            throw error("control character \(describe(c)) is not allowed here (escape it)")
        }
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }

    // MARK: - Numbers

    private mutating func number() throws(TOMLSyntaxError) -> TOMLNode {
        let start = position()
        let from = i
        while let c = peek(), Self.isNumberByte(c) { i += 1 }
        let token = Array(bytes[from..<i])
        let text = String(decoding: token, as: UTF8.self)
        func invalid() -> TOMLSyntaxError { error("'\(text)' is not a valid number", at: start) }

        var body = token[...]
        var negative = false
        if let sign = body.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
            negative = sign == UInt8(ascii: "-")
            body = body.dropFirst()
        }
        if body.elementsEqual("inf".utf8) { return .float(negative ? -.infinity : .infinity) }
        if body.elementsEqual("nan".utf8) { return .float(.nan) }

        // 0x, 0o, 0b: no sign, underscores only between digits.
        if token.count > 2 && token[0] == UInt8(ascii: "0"),
           let radix: Int = [UInt8(ascii: "x"): 16, UInt8(ascii: "o"): 8, UInt8(ascii: "b"): 2][token[1]] {
            let digits = token[2...]
            guard Self.validDigitGroups(digits, isDigit: { Self.digitValue($0, radix: radix) != nil }) else { throw invalid() }
            var value = 0
            for d in digits where d != UInt8(ascii: "_") {
                let (m, o1) = value.multipliedReportingOverflow(by: radix)
                let (s, o2) = m.addingReportingOverflow(Int(Self.digitValue(d, radix: radix)!))
                if o1 || o2 { throw error("'\(text)' does not fit in a 64-bit integer", at: start) }
                value = s
            }
            return .integer(value)
        }

        // Decimal integer or float: int part, then optional fraction and exponent.
        let isDecimal: (UInt8) -> Bool = { $0 >= 0x30 && $0 <= 0x39 }
        let dot = body.firstIndex(of: UInt8(ascii: "."))
        let exponent = body.firstIndex { $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
        let intEnd = dot ?? exponent ?? body.endIndex
        let intPart = body[body.startIndex..<intEnd]
        guard Self.validDigitGroups(intPart, isDigit: isDecimal) else { throw invalid() }
        // No leading zeros: 0, 7 and 1_000 are fine, 07 is not.
        if intPart.count > 1 && intPart.first == UInt8(ascii: "0") { throw invalid() }
        if dot == nil && exponent == nil {
            var value = 0
            for d in intPart where d != UInt8(ascii: "_") {
                let (m, o1) = value.multipliedReportingOverflow(by: 10)
                let (s, o2) = negative ? m.subtractingReportingOverflow(Int(d - 0x30)) : m.addingReportingOverflow(Int(d - 0x30))
                if o1 || o2 { throw error("'\(text)' does not fit in a 64-bit integer", at: start) }
                value = s
            }
            return .integer(value)
        }
        if let dot {
            if let exponent, exponent < dot { throw invalid() }
            let fraction = body[body.index(after: dot)..<(exponent ?? body.endIndex)]
            guard Self.validDigitGroups(fraction, isDigit: isDecimal) else { throw invalid() }
        }
        if let exponent {
            var digits = body[body.index(after: exponent)...]
            if let sign = digits.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { digits = digits.dropFirst() }
            guard Self.validDigitGroups(digits, isDigit: isDecimal) else { throw invalid() }
        }
        let plain = String(decoding: token.filter { $0 != UInt8(ascii: "_") }, as: UTF8.self)
        guard let value = Double(plain) else { throw invalid() }
        return .float(value)
    }

    private static func isNumberByte(_ c: UInt8) -> Bool {
        isBareKey(c) || c == UInt8(ascii: "+") || c == UInt8(ascii: ".")
    }

    /// Non-empty, digits only, each underscore between two digits.
    private static func validDigitGroups(_ digits: ArraySlice<UInt8>, isDigit: (UInt8) -> Bool) -> Bool {
        guard let first = digits.first, let last = digits.last, isDigit(first), isDigit(last) else { return false }
        var previousUnderscore = false
        for d in digits {
            if d == UInt8(ascii: "_") {
                if previousUnderscore { return false }
                previousUnderscore = true
            } else {
                guard isDigit(d) else { return false }
                previousUnderscore = false
            }
        }
        return true
    }

    private static func digitValue(_ c: UInt8, radix: Int) -> Int? {
        guard let v = hexValue(c), Int(v) < radix else { return nil }
        return Int(v)
    }

    // MARK: - Dates and times

    /// 1979-05-27, 1979-05-27T07:32:00(.999)(Z|+01:00) (T, t or a space), 07:32:00(.999).
    /// Validated, then kept as their kind only: no cell setting is a date.
    private mutating func dateOrTime() throws(TOMLSyntaxError) -> TOMLNode {
        let start = position()
        let from = i
        func invalid() -> TOMLSyntaxError {
            var end = from
            while let b = byte(at: end), b > 0x20, b != UInt8(ascii: ","), b != UInt8(ascii: "]"), b != UInt8(ascii: "}"), b != UInt8(ascii: "#") { end += 1 }
            return error("'\(String(decoding: bytes[from..<end], as: UTF8.self))' is not a valid date or time", at: start)
        }
        if byte(at: i + 2) == UInt8(ascii: ":") {
            guard time() else { throw invalid() }
            return .other("time")
        }
        guard let year = number(digits: 4), take("-"), let month = number(digits: 2), take("-"), let day = number(digits: 2),
              (1...12).contains(month), day >= 1, day <= Self.daysIn(month: month, year: year) else { throw invalid() }
        let separator = peek()
        let timeFollows = separator == UInt8(ascii: "T") || separator == UInt8(ascii: "t")
            || (separator == UInt8(ascii: " ") && isDigit(at: i + 1) && isDigit(at: i + 2) && byte(at: i + 3) == UInt8(ascii: ":"))
        guard timeFollows else { return .other("date") }
        i += 1
        guard time() else { throw invalid() }
        if take("Z") || take("z") { return .other("date-time") }
        if let sign = peek(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
            i += 1
            guard let h = number(digits: 2), take(":"), let m = number(digits: 2), h <= 23, m <= 59 else { throw invalid() }
        }
        if let b = peek(), Self.isNumberByte(b) || b == UInt8(ascii: ":") { throw invalid() }
        return .other("date-time")
    }

    /// HH:MM:SS with an optional fraction.
    private mutating func time() -> Bool {
        guard let h = number(digits: 2), take(":"), let m = number(digits: 2), take(":"), let s = number(digits: 2),
              h <= 23, m <= 59, s <= 60 else { return false }
        if take(".") {
            guard isDigit(at: i) else { return false }
            while isDigit(at: i) { i += 1 }
        }
        return true
    }

    private mutating func number(digits: Int) -> Int? {
        var value = 0
        for _ in 0..<digits {
            guard isDigit(at: i) else { return nil }
            value = value * 10 + Int(bytes[i] - 0x30)
            i += 1
        }
        return value
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // MARK: - Layout

    private mutating func skipWhitespace() {
        while let c = peek(), c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") { i += 1 }
    }

    /// Whitespace, newlines and comments (inside arrays).
    private mutating func skipBlank() throws(TOMLSyntaxError) {
        while let c = peek() {
            if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") {
                i += 1
            } else if c == UInt8(ascii: "\n") {
                newline()
            } else if c == UInt8(ascii: "\r") {
                guard byte(at: i + 1) == UInt8(ascii: "\n") else { throw error("a carriage return must be followed by a line feed") }
                i += 1
            } else if c == UInt8(ascii: "#") {
                try comment()
            } else {
                return
            }
        }
    }

    private mutating func comment() throws(TOMLSyntaxError) {
        i += 1
        while let c = peek(), c != UInt8(ascii: "\n") {
            if c == UInt8(ascii: "\r") && byte(at: i + 1) == UInt8(ascii: "\n") { return }
            try checkTextByte(c)
            i += 1
        }
    }

    /// After a statement: optional whitespace and comment, then a newline or the end.
    private mutating func endOfLine() throws(TOMLSyntaxError) {
        skipWhitespace()
        if peek() == UInt8(ascii: "#") { try comment() }
        guard let c = peek() else { return }
        if c == UInt8(ascii: "\n") {
            newline()
        } else if c == UInt8(ascii: "\r") && byte(at: i + 1) == UInt8(ascii: "\n") {
            i += 1
            newline()
        } else {
            throw error("expected the end of the line, found \(describe(c))")
        }
    }

    private mutating func newline() {
        i += 1
        line += 1
        lineStart = i
    }

    private mutating func expect(_ s: Unicode.Scalar, _ message: String) throws(TOMLSyntaxError) {
        guard take(s) else { throw error(message) }
    }

    private mutating func take(_ s: Unicode.Scalar) -> Bool {
        guard peek() == UInt8(ascii: s) else { return false }
        i += 1
        return true
    }

    private func peek() -> UInt8? { i < bytes.count ? bytes[i] : nil }
    private func byte(at index: Int) -> UInt8? { index < bytes.count ? bytes[index] : nil }
    private func isDigit(at index: Int) -> Bool { byte(at: index).map { $0 >= 0x30 && $0 <= 0x39 } ?? false }
    private func starts(_ s: String) -> Bool {
        let u = s.utf8
        return i + u.count <= bytes.count && bytes[i..<i + u.count].elementsEqual(u)
    }

    // MARK: - Errors

    private struct Position { var line: Int; var column: Int }

    /// Columns count characters (Unicode scalars), from 1.
    private func position() -> Position {
        let column = bytes[lineStart..<min(i, bytes.count)].reduce(1) { $0 + ($1 & 0xC0 == 0x80 ? 0 : 1) }
        return Position(line: line, column: column)
    }

    private func error(_ message: String, at position: Position? = nil) -> TOMLSyntaxError {
        let p = position ?? self.position()
        return TOMLSyntaxError(message: message, line: p.line, column: p.column)
    }

    private func describe(_ c: UInt8) -> String {
        if c == UInt8(ascii: "\n") { return "the end of the line" }
        if c >= 0x21 && c < 0x7F { return "'\(Character(Unicode.Scalar(c)))'" }
        if c >= 0x80 {
            // The whole character, decoded from here.
            var end = i + 1
            while end < bytes.count && bytes[end] & 0xC0 == 0x80 { end += 1 }
            return "'\(String(decoding: bytes[i..<end], as: UTF8.self))'"
        }
        let hex = String(c, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: 4 - hex.count) + hex
    }

    private func describeRaw(_ c: UInt8) -> String {
        c >= 0x21 && c < 0x7F ? String(Character(Unicode.Scalar(c))) : describe(c)
    }
}
