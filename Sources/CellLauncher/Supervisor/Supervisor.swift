import CCellSpawn
import CellAudit
import Glibc

/// The parent of the sandbox for as long as it runs: passes signals on to pid 1, reads the
/// sandbox's reports, takes the seccomp listener pid 1 sends and answers its notifications
/// (writing each audit event *before* it answers), lets a held command start, enforces the
/// timeout, reaps pid 1 and maps the end to an exit status.
final class Supervisor {
    let plan: LaunchPlan
    let sandbox: SandboxProcess
    let decisions: PolicyDecisions
    let audit: AuditLog
    let relay: SignalRelay
    /// Called when pid 1 holds the command before its start (CELL_REC_HOLD): prepares what
    /// must come first (the user-mode network) and returns nil, or why it could not.
    let whenHeld: () -> String?

    private(set) var notes: [String] = []
    private(set) var limitsHit: [String] = []
    private var listenerFD: Int32 = -1
    private var timedOut = false
    private var ending: SandboxEnd?
    private var setupFailure: SandboxEnd?
    /// Set when the supervisor itself ended the sandbox (a kill rule, an audit write failure,
    /// the held command's preparation).
    private var killedBy: SandboxEnd?

    init(plan: LaunchPlan, sandbox: SandboxProcess, decisions: PolicyDecisions, audit: AuditLog, relay: SignalRelay,
         whenHeld: @escaping () -> String? = { nil }) {
        self.plan = plan
        self.sandbox = sandbox
        self.decisions = decisions
        self.audit = audit
        self.relay = relay
        self.whenHeld = whenHeld
    }

    deinit {
        if listenerFD >= 0 { close(listenerFD) }
    }

    func run() -> SandboxEnd {
        // The wall-clock timeout: SIGTERM (passed on to the command by cell-init), then SIGKILL
        // to pid 1 — and so to the whole pid namespace — after the grace period.
        let start = monotonicMilliseconds()
        var termAt = plan.limits.timeout.map { start + Int($0) }
        var killAt: Int?
        var fds = [pollfd(fd: sandbox.reports, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: relay.fd, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: sandbox.control, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: -1, events: Int16(POLLIN), revents: 0)]
        loop: while true {
            let now = monotonicMilliseconds()
            if let t = termAt, now >= t {
                termAt = nil
                timedOut = true
                limitsHit.append("timeout")
                try? audit.write("limit", [("which", .string("timeout")), ("value", .string(Durations.format(plan.limits.timeout ?? 0)))])
                kill(sandbox.pid, SIGTERM)
                killAt = now + Int(plan.limits.killAfter)
            }
            if let k = killAt, now >= k {
                killAt = nil
                sandbox.kill()
            }
            let wait = [termAt, killAt].compactMap { $0 }.min().map { Int32(max(0, $0 - now)) } ?? -1
            if poll(&fds, nfds_t(fds.count), wait) < 0 {
                if errno == EINTR { continue }
                break
            }
            if fds[3].revents != 0 {
                // POLLHUP: no process uses the filter any more.
                if fds[3].revents & Int16(POLLIN) != 0 { handleNotification() } else { fds[3].fd = -1 }
            }
            if fds[1].revents & Int16(POLLIN) != 0 {
                while let signal = relay.next() { kill(sandbox.pid, signal) }
            }
            if fds[2].revents != 0 {
                if !readControl() { fds[2].fd = -1 }
                fds[3].fd = listenerFD
            }
            if fds[0].revents != 0 && !readReport() { break loop }
        }
        // cell-init has exited (its report pipe closed) or cannot be waited for any longer.
        let initStatus = sandbox.reap()
        if let killedBy { return killedBy }
        if let setupFailure { return setupFailure }
        if timedOut { return .timedOut }
        if let ending {
            recordSignalLimit(ending)
            return ending
        }
        // No report from cell-init. Killed (SIGKILL from outside, or the OOM killer): the kernel
        // killed the whole sandbox with it, and that signal is the end. Exited: it could not
        // tell how the command ended, and cell must not guess a status.
        let end = SandboxEnd.fromWaitStatus(initStatus)
        if case .exited(let status) = end {
            return .setupFailed("the sandbox's pid 1 exited (status \(status)) without reporting how the command ended")
        }
        return end
    }

    /// One message from pid 1 on the control socket (cell_plan.h): 'L' brings the seccomp
    /// listener, 'H' says the command is held until `start`. False at end of file.
    private func readControl() -> Bool {
        var fd: Int32 = -1
        let byte = cell_receive_byte(sandbox.control, &fd)
        if byte < 0 { return false }
        switch UInt8(byte) {
        case UInt8(ascii: "L") where fd >= 0 && listenerFD < 0:
            listenerFD = fd
        case UInt8(ascii: "H"):
            if let problem = whenHeld() {
                killedBy = .setupFailed(problem)
                sandbox.kill()
            } else if !sandbox.send(PlanEncoding.encode([.start])) {
                // pid 1 is gone; its report says why.
            }
        default:
            // Nothing else is ever sent: a sandbox that could write here is not trusted.
            if fd >= 0 { close(fd) }
            killedBy = .setupFailed("the sandbox's pid 1 sent an unexpected message; the sandbox was killed")
            sandbox.kill()
        }
        return true
    }

    /// The rlimits that end a process with a signal of their own say so.
    private func recordSignalLimit(_ end: SandboxEnd) {
        guard case .signaled(let signal) = end else { return }
        let which: String
        switch signal {
        case SIGXCPU: which = "cpu_time"
        case SIGXFSZ: which = "file_size"
        default: return
        }
        limitsHit.append(which)
        try? audit.write("limit", [("which", .string(which))])
    }

    /// Reads one report; false at end of file (every sandbox process is gone).
    private func readReport() -> Bool {
        var report = cell_report()
        let got = withUnsafeMutableBytes(of: &report) { read(sandbox.reports, $0.baseAddress, $0.count) }
        if got < 0 && errno == EINTR { return true }
        if got <= 0 { return false }
        guard got == MemoryLayout<cell_report>.size else { return true }
        switch cell_report_kind(rawValue: UInt32(report.kind)) {
        case CELL_REPORT_FAILED:
            setupFailure = setupFailure ?? .setupFailed(SetupFailure.message(
                step: report.step, errno: report.error, plan: plan, detail: Int(report.value)))
        case CELL_REPORT_WARNING:
            notes.append(SetupFailure.warning(step: report.step, errno: report.error, plan: plan))
        case CELL_REPORT_EXEC_FAILED:
            ending = .commandNotExecutable(errno: report.error)
        case CELL_REPORT_EXITED:
            // After an exec failure this is the forked child's 126/127: keep the cause.
            if ending == nil { ending = SandboxEnd.fromWaitStatus(report.value) }
        default:
            break
        }
        return true
    }

    /// One notified call: decide from the registers, record, then answer.
    private func handleNotification() {
        var n = cell_notification()
        guard cell_notify_receive(listenerFD, &n) == 0 else { return } // ENOENT: the caller died meanwhile
        let args = withUnsafeBytes(of: n.args) { Array($0.bindMemory(to: UInt64.self)) }
        let action = decisions.decide(number: n.nr, args: args)
        let name = SeccompCompiler.syscallName(n.nr) ?? "syscall_\(n.nr)"
        let word: String
        var errnoValue: Int32 = 1
        switch action {
        case .errno(let e): word = "denied"; errnoValue = e
        case .log: word = "logged"
        case .kill: word = "killed"
        case .allow: word = "denied" // the filter and the rules disagree: fail closed
        }

        do {
            try audit.violation(syscall: name, action: word) {
                var fields: [(String, JSONField)] = [
                    ("pid", .int(Int(n.pid))), ("sandbox_pid", sandboxPID(of: pid_t(n.pid)).map { .int($0) } ?? .null),
                    ("syscall", .string(name)), ("nr", .int(Int(n.nr))), ("arch", .string(archName(n.arch))),
                    ("args", .strings(args.map { "0x" + String($0, radix: 16) })),
                ]
                let paths = PathArguments.indexes(name).compactMap { readPath(pid: pid_t(n.pid), address: args[$0]) }
                // The caller may have died or changed since: only trust what was read if the
                // notification is still pending. (Paths are recorded, never used to decide.)
                if !paths.isEmpty && cell_notify_id_valid(listenerFD, n.id) != 0 {
                    fields.append(("path", .string(paths[0])))
                    if paths.count > 1 { fields.append(("paths", .strings(paths))) }
                }
                fields.append(("action", .string(word)))
                if word == "denied" { fields.append(("errno", .string(ErrnoNames.name(errnoValue) ?? String(errnoValue)))) }
                return fields
            }
        } catch {
            // Fail closed: an event that cannot be recorded ends the sandbox. The call is left
            // unanswered, so its caller cannot go on before the kernel kills it with pid 1.
            killedBy = .setupFailed("\(error.message); the sandbox was killed (cell does not run unaudited)")
            sandbox.kill()
            return
        }

        switch action {
        case .log:
            _ = cell_notify_respond(listenerFD, n.id, 0, 1)
        case .kill:
            // No answer: the caller stays blocked in its call until the whole sandbox is killed
            // with pid 1. (Killing the caller first would let its parent run on meanwhile.)
            killedBy = killedBy ?? .killedByPolicy(syscall: name)
            sandbox.kill()
        case .errno, .allow:
            _ = cell_notify_respond(listenerFD, n.id, errnoValue, 0)
        }
    }

    private func readPath(pid: pid_t, address: UInt64) -> String? {
        guard address != 0 else { return nil }
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = cell_read_string(pid, address, &buffer, buffer.count)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[0..<Int(n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The pid as the sandbox sees it (the last NSpid field of /proc/PID/status).
    private func sandboxPID(of pid: pid_t) -> Int? {
        guard let status = readSmallFile("/proc/\(pid)/status", limit: 8192) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("NSpid:") {
            return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last.flatMap { Int($0) }
        }
        return nil
    }

    private func archName(_ arch: UInt32) -> String {
        switch arch {
        case 0xC000_003E: return "x86_64"
        case 0xC000_00B7: return "aarch64"
        case 0x4000_0003: return "x86"
        default: return "0x" + String(arch, radix: 16)
        }
    }
}
