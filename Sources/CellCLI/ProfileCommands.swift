import CellLauncher
import CellPolicy
import CellProfile
import Glibc

/// `cell profile list | show | check`, and the loader `cell run` uses.
enum ProfileCommands {
    /// A loader for this caller: its variables and its profile directory.
    static func loader() -> ProfileLoader { ProfileLoader.forCaller() }

    static func list() -> Int32 {
        let entries = loader().listing()
        let width = max(8, entries.map(\.name.count).max() ?? 0)
        var text = ""
        for entry in entries {
            let origin = entry.origin == .builtIn ? "built-in" : entry.origin.description
            let name = entry.name.padding(to: width)
            text += "\(name)  \(origin.padding(to: 12))  \(entry.description)\(entry.shadowed ? " (shadowed)" : "")\n"
        }
        writeAll(1, text)
        return 0
    }

    static func show(_ name: String) -> Int32 {
        do {
            writeAll(1, ProfileWriter.toml(try loader().resolve(name)))
            return 0
        } catch {
            for diagnostic in error.diagnostics { reportLine("\(diagnostic)") }
            return SandboxEnd.setupFailureStatus
        }
    }

    /// Validates each file (and what it extends); prints every problem.
    static func check(_ files: [String]) -> Int32 {
        var failed = false
        let loader = loader()
        for file in files {
            // A bare name here means a file in the current directory: check reads files.
            let path = ProfileLoader.isPath(file) ? file : "./" + file
            do {
                _ = try loader.resolve(path)
                writeAll(1, TerminalText.escaped(file) + ": ok\n")
            } catch {
                failed = true
                for diagnostic in error.diagnostics { writeAll(2, TerminalText.escaped("\(diagnostic)") + "\n") }
            }
        }
        return failed ? SandboxEnd.setupFailureStatus : 0
    }
}

extension String {
    func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
