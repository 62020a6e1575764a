import CellPolicy
import CellProfile
import Glibc

/// cell's additions to an OCI config, carried in annotations — which a pod's author writes, so
/// neither may name a path: `run.cell.profile` is a profile *name*, looked up where `cell run`
/// looks (the runtime user's profile directory, /etc/cell/profiles, the built-ins), and
/// `run.cell.audit-log` a file *name*, inside the runtime user's audit directory
/// (`AuditDirectory`).
public enum CellAnnotations {
    public static let profile = "run.cell.profile"
    public static let auditLog = "run.cell.audit-log"

    /// The profile the annotation names (or `default`), resolved.
    public static func profile(_ config: OCIConfig, loader: ProfileLoader) throws(RuntimeError) -> Profile {
        let name = config.annotation(profile) ?? "default"
        guard ProfileLoader.isValidName(name), !ProfileLoader.isPath(name) else {
            throw RuntimeError("annotation \(profile): '\(TerminalText.escaped(name))' is not a profile name (a name, never a path: letters, digits, '-', '_', '.')")
        }
        do {
            return try loader.resolve(name)
        } catch {
            throw RuntimeError("annotation \(profile): " + error.diagnostics.map(\.description).joined(separator: "; "))
        }
    }

    /// The audit log's path, if the annotation asks for one: its file name inside `directory`.
    public static func auditLogPath(_ config: OCIConfig, directory: () throws(RuntimeError) -> String) throws(RuntimeError) -> String? {
        guard let name = config.annotation(auditLog) else { return nil }
        guard StateStore.isValidID(name) else {
            throw RuntimeError("annotation \(auditLog): '\(TerminalText.escaped(name))' is not a file name (a name, never a path: letters, digits, '_', '.', '-')")
        }
        return try directory() + "/" + name
    }
}

/// Where containers' audit logs go: `$XDG_STATE_HOME/cell/audit`, else
/// `$HOME/.local/state/cell/audit`; for real root, `/var/log/cell/audit`. Made 0700 when missing.
public enum AuditDirectory {
    public static func path(stateHome: String?, home: String?, realRoot: Bool) -> String? {
        if realRoot { return "/var/log/cell/audit" }
        if let stateHome, stateHome.hasPrefix("/") { return stateHome + "/cell/audit" }
        if let home, home.hasPrefix("/"), home != "/" { return home + "/.local/state/cell/audit" }
        return nil
    }

    /// The directory, made (each missing component 0700) if needed.
    public static func make(_ path: String) throws(RuntimeError) -> String {
        var built = ""
        for part in path.split(separator: "/") {
            built += "/" + part
            if mkdir(built, 0o700) != 0 && errno != EEXIST {
                throw RuntimeError("cannot make the audit directory \(built): \(errorText(errno))")
            }
        }
        return path
    }
}
