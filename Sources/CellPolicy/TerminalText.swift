/// Text from elsewhere — a log, a profile, a path the sandbox chose — made safe to print on a
/// terminal: every C0 control (newline and tab included), DEL and C1 control becomes a visible
/// escape, so a string can neither move the cursor, set a title, hide the text after it
/// (ESC[8m) nor forge a line of its own; so does every invisible format character (bidi
/// overrides such as U+202E, zero-width spaces, line and paragraph separators), which could
/// reorder or hide what is printed. Everything else prints as it is.
public enum TerminalText {
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case "\u{1b}": out += "\\e"
            case _ where isControl(scalar):
                let hex = String(scalar.value, radix: 16)
                out += scalar.value < 0x100 ? "\\x" + (hex.count < 2 ? "0" : "") + hex : "\\u{\(hex)}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A word as a POSIX shell reads it back: as it is when plain, else in single quotes.
    public static func shellWord(_ word: String) -> String {
        let plain = !word.isEmpty && word.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }
        if plain { return word }
        return "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }

    public static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value) { return true }
        guard scalar.value >= 0xa0 else { return false }
        switch scalar.properties.generalCategory {
        case .format, .lineSeparator, .paragraphSeparator: return true
        default: return false
        }
    }
}

/// One line on stderr, `cell: MESSAGE`, with everything in it that came from elsewhere escaped
/// (a message names paths, commands and keys the user or the sandbox chose). Given up after a
/// second without progress: a stderr that cannot take it must not keep cell from exiting.
public func reportLine(_ message: String) {
    writeAll(2, "cell: " + TerminalText.escaped(message) + "\n", patience: 1000)
}
