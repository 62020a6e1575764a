import CellAudit
import CellPolicy
import Glibc

/// Where cell-runtime says what went wrong: standard error, and the `--log` file engines read
/// the error back from — as runc writes it, one line per message, text
/// (`time="…" level=error msg="…"`) or, with `--log-format json`, a JSON object with `level`,
/// `msg` and `time` (conmon and containerd's shim parse these).
public final class RuntimeLog {
    public enum Format: String, Sendable { case text, json }

    let file: ReportFile.Opened?
    let format: Format

    /// Opens `path` for appending (never through a symlink: ReportFile), or logs to stderr only.
    public init(path: String?, format: Format) throws(RuntimeError) {
        self.format = format
        guard let path else {
            file = nil
            return
        }
        do {
            file = try ReportFile.open(path, what: "--log", append: true)
        } catch {
            throw RuntimeError(error.message)
        }
    }

    deinit { if let file { ReportFile.release(file) } }

    /// The descriptors the log writes through (the monitor keeps them).
    var descriptors: [Int32] { file.map { [$0.fd, $0.directory] } ?? [] }

    /// One line in the log, and the message on stderr.
    public func error(_ message: String) {
        write(level: "error", message)
        let line = "cell-runtime: " + TerminalText.escaped(message) + "\n"
        _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
    }

    public func warning(_ message: String) {
        write(level: "warning", message)
    }

    func write(level: String, _ message: String) {
        guard let file else { return }
        let line: String
        switch format {
        case .json:
            line = "{\"level\":\"\(level)\",\"msg\":\(JSONField.quote(message)),\"time\":\"\(AuditClock.now())\"}\n"
        case .text:
            line = "time=\"\(AuditClock.now())\" level=\(level) msg=\(JSONField.quote(message))\n"
        }
        _ = line.withCString { Glibc.write(file.fd, $0, strlen($0)) }
    }
}
