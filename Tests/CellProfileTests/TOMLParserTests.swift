import Testing
@testable import CellProfile

/// cell's own TOML parser. (Checked during development against the toml-test suite's TOML 1.0
/// cases as well: every valid document matched, every invalid one was refused.)
struct TOMLParserTests {
    func parse(_ text: String) throws(TOMLSyntaxError) -> TOMLNode {
        .table(try TOMLDocument.parse(text))
    }

    func failure(_ text: String) -> TOMLSyntaxError? {
        do {
            _ = try TOMLDocument.parse(text)
            return nil
        } catch {
            return error
        }
    }

    @Test func tablesKeysAndValues() throws {
        let doc = try parse("""
        # a profile
        name = "x" # trailing comment
        "quoted key" = 'lit\\eral'
        a.b.c = 1
        [t]
        list = [ 1, 0x1F, 0o17, 0b101, -3, +4, 1_000, ]
        floats = [1.5, -2e3, 6.02E+23, inf, -inf]
        flags = { on = true, off = false, nested.deep = "d" }
        multi = \"\"\"
        one \\
           two\"\"\"
        raw = '''
        C:\\path'''
        [[arr]]
        x = 1
        [[arr]]
        x = 2
        [t.sub]
        when = 1979-05-27T07:32:00Z
        """)
        guard case .table(let root) = doc, case .table(let t)? = root["t"] else { Issue.record("\(doc)"); return }
        #expect(root["name"] == .string("x"))
        #expect(root["quoted key"] == .string("lit\\eral"))
        #expect(root["a"] == .table(["b": .table(["c": .integer(1)])]))
        #expect(t["list"] == .array([.integer(1), .integer(31), .integer(15), .integer(5), .integer(-3), .integer(4), .integer(1000)]))
        #expect(t["floats"] == .array([.float(1.5), .float(-2000), .float(6.02e23), .float(.infinity), .float(-.infinity)]))
        #expect(t["flags"] == .table(["on": .bool(true), "off": .bool(false), "nested": .table(["deep": .string("d")])]))
        #expect(t["multi"] == .string("one two"))
        #expect(t["raw"] == .string("C:\\path"))
        #expect(t["sub"] == .table(["when": .other("date-time")]))
        #expect(root["arr"] == .array([.table(["x": .integer(1)]), .table(["x": .integer(2)])]))
    }

    @Test func escapesAndDates() throws {
        let doc = try parse(#"s = "tab\there \u00e9 \U0001F600 \"q\" \\""# + "\nd = 1979-05-27\nt = 07:32:00.5\nl = 1979-05-27 07:32:00\n")
        #expect(doc == .table(["s": .string("tab\there é 😀 \"q\" \\"), "d": .other("date"), "t": .other("time"), "l": .other("date-time")]))
    }

    @Test("every malformed document is an error at its line and column", arguments: [
        ("a = \"unterminated\n", 1, 5, "unterminated string"),
        ("a = \"\"\"\nno end\n", 1, 5, "unterminated string"),
        ("a = 1\na = 2\n", 2, 1, "duplicate key 'a'"),
        ("[t]\n[t]\n", 2, 1, "table [t] is defined twice"),
        ("a.b = 1\n[a.b]\n", 2, 1, "already has a value"),
        ("[a]\nb.c = 1\n[a.b]\n", 3, 1, "already defined by dotted keys"),
        ("[a.b.c]\n[a]\nb.d = 1\n", 3, 1, "dotted keys cannot add to it"),
        ("x = {a = 1}\nx.b = 2\n", 2, 1, "already has a value"),
        ("x = [1]\n[[x]]\n", 2, 1, "not as an array of tables"),
        ("[[x]]\n[x]\n", 2, 1, "is an array of tables"),
        ("a = 01\n", 1, 5, "'01' is not a valid number"),
        ("a = 1__0\n", 1, 5, "is not a valid number"),
        ("a = 9223372036854775808\n", 1, 5, "does not fit in a 64-bit integer"),
        ("a = 1.\n", 1, 5, "is not a valid number"),
        ("a = \"\\q\"\n", 1, 7, "invalid escape '\\q'"),
        ("a = \"\\uD800\"\n", 1, 6, "not a Unicode scalar value"),
        ("a = 1979-02-30\n", 1, 5, "not a valid date or time"),
        ("a = {b = 1,}\n", 1, 12, "cannot end with a comma"),
        ("a = {b = 1,\nc = 2}\n", 1, 12, "expected a key"),
        ("a = [1 2]\n", 1, 8, "expected ',' or ']'"),
        ("a = 1 b = 2\n", 1, 7, "expected the end of the line"),
        ("a = \"x\u{7}\"\n", 1, 7, "control character U+0007"),
        ("[,x]\n", 1, 2, "expected a key"),
        ("\u{FEFF}[#\n", 1, 2, "expected a key"),
        ("a = [1, }\n", 1, 9, "expected a value"),
        ("é = 1\n", 1, 1, "expected a key, found 'é'"),
        ("x = 'é\u{1}'\n", 1, 7, "control character U+0001"),
    ])
    func errors(text: String, line: Int, column: Int, message: String) {
        let e = failure(text)
        #expect(e?.line == line && e?.column == column, "\(text.debugDescription): \(String(describing: e))")
        #expect(e?.message.contains(message) == true, "\(text.debugDescription): \(String(describing: e))")
    }

    @Test("nesting is bounded: no input can exhaust the stack")
    func nesting() {
        let deep = "a = " + String(repeating: "[", count: 100_000) + "\n"
        #expect(failure(deep)?.message.contains("nested too deeply") == true)
        let inline = "a = " + String(repeating: "{b = ", count: 100_000) + "\n"
        #expect(failure(inline)?.message.contains("nested too deeply") == true)
        let dotted = Array(repeating: "k", count: 100_000).joined(separator: ".") + " = 1\n"
        #expect(failure(dotted)?.message.contains("nested too deeply") == true)
        let header = "[" + Array(repeating: "k", count: 100_000).joined(separator: ".") + "]\n"
        #expect(failure(header)?.message.contains("nested too deeply") == true)
        #expect(failure("a = " + String(repeating: "[", count: 50) + String(repeating: "]", count: 50) + "\n") == nil)
    }
}
