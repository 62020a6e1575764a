import CCellSpawn
import CellAudit
import Glibc

/// The parent of the sandbox for as long as it runs: passes signals on to pid 1, reads the
/// sandbox's reports, answers the seccomp notifications (writing each audit event *before* it
/// answers), reaps pid 1 and maps the end to an exit status.
final class Supervisor {
    let plan: LaunchPlan
    let initPID: pid_t
    let statusFD: Int32
    let lifelineFD: Int32
    var listenerFD: Int32
    let decisions: PolicyDecisions
    let audit: AuditLog
    let relay: SignalRelay

    private(set) var notes: [String] = []
    private(set) var limitsHit: [String] = []
    private var timedOut = false
    private var ending: SandboxEnd?
    private var setupFailure: SandboxEnd?
    /// Set when the supervisor itself ended the sandbox (a kill rule, an audit write failure).
    private var killedBy: SandboxEnd?

    init(plan: LaunchPlan, spawned: cell_spawn_result, decisions: PolicyDecisions, audit: AuditLog, relay: SignalRelay) {
        self.plan = plan
        self.initPID = spawned.init_pid
        self.statusFD = spawned.status_fd
        self.lifelineFD = spawned.lifeline_fd
        self.listenerFD = spawned.listener_fd
        self.decisions = decisions
        self.audit = audit
        self.relay = relay
    }

    deinit {
        close(statusFD)
        close(lifelineFD)
        if listenerFD >= 0 { close(listenerFD) }
    }

    func run() -> SandboxEnd {
        // The wall-clock timeout: SIGTERM (passed on to the command by cell-init), then SIGKILL
        // to pid 1 — and so to the whole pid namespace — after the grace period.
        let start = monotonicMilliseconds()
        var termAt = plan.limits.timeout.map { start + Int($0) }
        var killAt: Int?
        var fds = [pollfd(fd: statusFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: relay.fd, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: listenerFD, events: Int16(POLLIN), revents: 0)]
        // Once pid 1 has said how the command ended (or that the setup failed) it exits at once,
        // and the sandbox is gone a fraction of a millisecond later. For up to `endGrace` ms the
        // supervisor then polls for that instead of sleeping until end of file and then until
        // pid 1 can be reaped: each of those two waits ended in the wake-up of an idle CPU, which
        // costs as much here (measured: ~80 us each). Past the grace it sleeps as before.
        let endGrace = 2
        var pollingUntil: Int?
        var pollingOver = false
        var initStatus: Int32 = 0
        var reaped = false
        loop: while true {
            let now = monotonicMilliseconds()
            if let t = termAt, now >= t {
                termAt = nil
                timedOut = true
                limitsHit.append("timeout")
                try? audit.write("limit", [("which", .string("timeout")), ("value", .string(Durations.format(plan.limits.timeout ?? 0)))])
                if initPID > 0 { kill(initPID, SIGTERM) }
                killAt = now + Int(plan.limits.killAfter)
            }
            if let k = killAt, now >= k {
                killAt = nil
                killSandbox()
            }
            var wait = [termAt, killAt].compactMap { $0 }.min().map { Int32(max(0, $0 - now)) } ?? -1
            if let until = pollingUntil {
                if now < until {
                    wait = 0
                } else {
                    pollingUntil = nil
                    pollingOver = true
                }
            }
            let n = poll(&fds, nfds_t(fds.count), wait)
            if n < 0 {
                if errno == EINTR { continue }
                break
            }
            if fds[2].fd >= 0 && fds[2].revents != 0 {
                // POLLHUP: no process uses the filter any more.
                if fds[2].revents & Int16(POLLIN) != 0 { handleNotification() } else { fds[2].fd = -1 }
            }
            if fds[1].revents & Int16(POLLIN) != 0 {
                while let signal = relay.next() {
                    if initPID > 0 { kill(initPID, signal) }
                }
            }
            if fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                if !readReport() { break loop }
            }
            if pollingUntil != nil && initPID > 0 {
                if waitpid(initPID, &initStatus, WNOHANG) == initPID {
                    // pid 1 and every descriptor it held are gone: the reports it wrote are
                    // all in the pipe, and end of file follows them.
                    reaped = true
                    while readReport() {}
                    break loop
                }
                sched_yield()
            } else if !pollingOver && (ending != nil || setupFailure != nil) {
                pollingUntil = now + endGrace
            }
        }

        if initPID > 0 && !reaped {
            while waitpid(initPID, &initStatus, 0) < 0 && errno == EINTR {}
        }
        if let killedBy { return killedBy }
        if let setupFailure { return setupFailure }
        if timedOut { return .timedOut }
        if let ending {
            recordSignalLimit(ending)
            return ending
        }
        if initPID <= 0 { return .setupFailed("the sandbox setup ended without a report") }
        // No report from cell-init: it was killed (SIGKILL from outside, or the OOM killer), and
        // the kernel killed the whole sandbox with it.
        return SandboxEnd.fromWaitStatus(initStatus)
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
        let got = withUnsafeMutableBytes(of: &report) { read(statusFD, $0.baseAddress, $0.count) }
        if got < 0 && errno == EINTR { return true }
        if got <= 0 { return false }
        guard got == MemoryLayout<cell_report>.size else { return true }
        switch cell_report_kind(rawValue: UInt32(report.kind)) {
        case CELL_REPORT_FAILED:
            setupFailure = setupFailure ?? .setupFailed(SetupFailure.message(
                step: report.step, errno: report.error, plan: plan, operation: Int(report.value)))
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
            killSandbox()
            return
        }

        switch action {
        case .log:
            _ = cell_notify_respond(listenerFD, n.id, 0, 1)
        case .kill:
            // No answer: the caller stays blocked in its call until the whole sandbox is killed
            // with pid 1. (Killing the caller first would let its parent run on meanwhile.)
            killedBy = killedBy ?? .killedByPolicy(syscall: name)
            killSandbox()
        case .errno, .allow:
            _ = cell_notify_respond(listenerFD, n.id, errnoValue, 0)
        }
    }

    private func killSandbox() {
        // SIGKILL to pid 1 ends its pid namespace: the kernel kills every process in it.
        if initPID > 0 { kill(initPID, SIGKILL) }
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
