import CCellSpawn
import CellPolicy
import Glibc

/// An engine's console socket (`--console-socket`, runc's protocol, which conmon and
/// containerd's shim read): one message carrying the pty's master (SCM_RIGHTS), with a name as
/// its bytes. The engine relays the terminal from there; cell keeps no copy.
public enum ConsoleSocket {
    /// Connects to `path` and sends `master`; nil, or why it could not.
    public static func send(master: Int32, to path: String) -> String? {
        let socket = cell_unix_connect(path)
        guard socket >= 0 else { return "cannot connect to the console socket \(path): \(errorText(errno))" }
        defer { close(socket) }
        let name = Array("/dev/ptmx".utf8)
        guard cell_send_with_descriptors(socket, name, name.count, [master], 1) == 0 else {
            return "cannot send the terminal to the console socket \(path): \(errorText(errno))"
        }
        return nil
    }
}
