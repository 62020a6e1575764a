import CellLauncher
import CellPolicy
import Glibc

/// `cell cache list` and `cell cache clear`: the caches CacheStore keeps for `--cache`.
enum CacheCommands {
    /// `cell cache list`
    static func list() -> Int32 {
        do {
            let store = try CacheStore.forCaller()
            let entries = store.list()
            guard !entries.isEmpty else {
                writeAll(1, "no caches in \(TerminalText.escaped(store.root))/caches\n")
                return 0
            }
            writeAll(1, table(entries) + "\(entries.count) caches in \(TerminalText.escaped(store.root))/caches\n")
            return 0
        } catch {
            return Cell.fail(error.message)
        }
    }

    /// `cell cache clear NAME|SCOPE/NAME` (nil: `--all`)
    static func clear(_ selector: String?) -> Int32 {
        do {
            let removed = try CacheStore.forCaller().clear(selector)
            let bytes = removed.reduce(UInt64(0)) { $0 + $1.bytes }
            writeAll(1, "removed \(removed.count) caches (\(humanSize(bytes)))\n")
            return 0
        } catch {
            return Cell.fail(error.message)
        }
    }

    /// SCOPE/NAME, its size, and what the scope is for; names as the sandbox made them, escaped.
    static func table(_ entries: [CacheStore.Entry]) -> String {
        let names = entries.map { TerminalText.escaped("\($0.scope)/\($0.name)") }
        let sizes = entries.map { humanSize($0.bytes) }
        let nameWidth = max(4, names.map(\.count).max() ?? 0), sizeWidth = max(4, sizes.map(\.count).max() ?? 0)
        func pad(_ s: String, _ width: Int) -> String { s + String(repeating: " ", count: max(0, width - s.count)) }
        var out = pad("NAME", nameWidth) + "  " + pad("SIZE", sizeWidth) + "  FOR\n"
        for (i, entry) in entries.enumerated() {
            out += pad(names[i], nameWidth) + "  " + pad(sizes[i], sizeWidth) + "  " + TerminalText.escaped(entry.about) + "\n"
        }
        return out
    }

    static func humanSize(_ bytes: UInt64) -> String {
        for (suffix, shift) in [("G", 30), ("M", 20), ("K", 10)] where bytes >= UInt64(1) << UInt64(shift) {
            let value = Double(bytes) / Double(UInt64(1) << UInt64(shift))
            return (value < 10 ? String(Double(Int(value * 10)) / 10) : String(Int(value))) + suffix
        }
        return "\(bytes)B"
    }
}
