import CellAudit
import CellPolicy

/// The `--status-json` document: one JSON object written when the sandbox is over, like
/// bubblewrap's --json-status-fd. Its schema is versioned ("v") and documented in README.md.
public enum StatusReport {
    public static func json(plan: LaunchPlan, outcome: SandboxOutcome) -> String {
        var fields: [(String, String)] = [("v", "1")]
        fields.append(("exit_code", String(outcome.end.exitStatus)))
        if case .signaled(let signal) = outcome.end {
            fields.append(("signal", String(signal)))
        } else {
            fields.append(("signal", "null"))
        }
        if case .setupFailed(let message) = outcome.end {
            fields.append(("error", JSONField.quote(message)))
        }
        if case .commandNotExecutable = outcome.end {
            fields.append(("error", JSONField.quote(outcome.end.exitStatus == 127 ? "command not found" : "command not executable")))
        }
        fields.append(("timed_out", outcome.end == .timedOut ? "true" : "false"))
        fields.append(("limits_hit", "[" + outcome.limitsHit.map(JSONField.quote).joined(separator: ",") + "]"))
        fields.append(("duration_ms", String(outcome.durationMilliseconds)))
        fields.append(("max_rss_kb", String(outcome.maxRSSKilobytes)))
        fields.append(("namespaces", "[" + plan.namespaceNames.map(JSONField.quote).joined(separator: ",") + "]"))
        fields.append(("command", "[" + plan.command.map(JSONField.quote).joined(separator: ",") + "]"))
        return "{" + fields.map { "\(JSONField.quote($0.0)):\($0.1)" }.joined(separator: ",") + "}\n"
    }
}
