import CCellSpawn
import CellPolicy
import Glibc

/// --isolation landlock has no pid namespace whose end takes every process with it, so the
/// supervisor takes that role: it is the subreaper (orphaned descendants of the command become
/// its children, however they detached: double fork, setsid), and when the sandbox's first
/// process has ended it kills and reaps every child it has left — repeatedly, since each one
/// killed hands its own children up. A SIGKILLed cell cannot do this: SECURITY.md says so.
enum Descendants {
    static func adopt() throws(LaunchError) {
        if cell_become_subreaper() != 0 { throw .setup("cannot become the sandbox's subreaper: \(errorText(errno))") }
    }

    /// Kills every child of this process until none is left (--isolation landlock has no
    /// user-mode network helper of cell's among them).
    static func killAll() {
        while true {
            let children = current()
            if children.isEmpty { return }
            for pid in children { kill(pid, SIGKILL) }
            for pid in children {
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            }
        }
    }

    /// This process's children, from each thread's /proc children list.
    static func current() -> Set<pid_t> {
        var pids: Set<pid_t> = []
        guard let dir = opendir("/proc/self/task") else { return pids }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = String(decoding: direntName(entry), as: UTF8.self)
            guard let tid = Int(name), let text = readSmallFile("/proc/self/task/\(tid)/children", limit: 1 << 20) else { continue }
            for word in text.split(whereSeparator: { $0 == " " || $0 == "\n" }) { if let pid = pid_t(word) { pids.insert(pid) } }
        }
        return pids
    }
}
