import CCellSpawn
import CellAudit
import CellPolicy
import Glibc

/// The parent of the sandbox for as long as it runs: passes signals on to pid 1, reads the
/// sandbox's reports, takes the seccomp listener pid 1 sends and has its notifications audited
/// and answered (CellAudit's ViolationAuditor), relays the command's pty (TerminalRelay), lets a
/// held command start, enforces the timeout, reaps pid 1 and maps the end to an exit status.
final class Supervisor {
    let plan: LaunchPlan
    let sandbox: SandboxProcess
    let decisions: PolicyDecisions
    let audit: AuditLog
    let relay: SignalRelay
    /// Called when pid 1 holds the command before its start (CELL_REC_HOLD), with the
    /// descriptors it handed out (CELL_REC_SEND_FD): prepares what must come first (the
    /// user-mode network, the proxy) and returns nil, or why it could not.
    let whenHeld: ([Int32]) -> String?
    /// With --net proxy: its events are read in the loop once it runs, and recorded as they come.
    private var proxy: EgressProxy?

    private(set) var notes: [String] = []
    private(set) var limitsHit: [String] = []
    private var listenerFD: Int32 = -1
    /// Descriptors pid 1 handed out ('S'), in the plan's order; given to `whenHeld`, then closed.
    private var handedOut: [Int32] = []
    private var handler: NotificationHandler?
    /// What answers the listener's notifications once pid 1 hands it over: the audit path, or
    /// `cell learn`'s CallLearner.
    let makeHandler: (_ listener: Int32) -> NotificationHandler
    private var terminal: TerminalRelay?
    /// cell-runtime exec's processes, once pid 1 takes them ('R').
    private var processes: ProcessService?
    /// The command's pty went to the engine's console socket (cell-runtime).
    private var handedTerminal = false
    private var timedOut = false
    private var ending: SandboxEnd?
    private var setupFailure: SandboxEnd?
    /// Set when the supervisor itself ended the sandbox (a kill rule, an audit write failure,
    /// the held command's preparation).
    private var killedBy: SandboxEnd?

    init(plan: LaunchPlan, sandbox: SandboxProcess, decisions: PolicyDecisions, audit: AuditLog, relay: SignalRelay,
         proxy: EgressProxy? = nil, makeHandler: ((Int32) -> NotificationHandler)? = nil,
         whenHeld: @escaping ([Int32]) -> String? = { _ in nil }) {
        self.makeHandler = makeHandler ?? { ViolationAuditor(listener: $0, decisions: decisions, log: audit) }
        self.proxy = proxy
        self.plan = plan
        self.sandbox = sandbox
        self.decisions = decisions
        self.audit = audit
        self.relay = relay
        self.whenHeld = whenHeld
    }

    deinit {
        if listenerFD >= 0 { close(listenerFD) }
        for fd in handedOut { close(fd) }
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
                   pollfd(fd: -1, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: -1, events: Int16(POLLIN), revents: 0)]
        loop: while true {
            // Entry 4: the proxy's events, once it runs. Entries 5-7: the terminal relay's
            // (stdin, the pty's master, stdout), when there is one.
            fds[4].fd = proxy?.events ?? -1
            fds.removeSubrange(5...)
            fds += terminal?.pollDescriptors ?? []
            let now = monotonicMilliseconds()
            // Then exec's: its socket, the requests arriving (those out of time refused first),
            // and each running process's connection.
            processes?.expire(now: now)
            let processBase = fds.count
            fds += (processes?.pollDescriptors ?? []).map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if let t = termAt, now >= t {
                termAt = nil
                timedOut = true
                limitsHit.append("timeout")
                try? audit.record("limit", keyField: "which", key: "timeout") {
                    [("which", .string("timeout")), ("value", .string(Durations.format(plan.limits.timeout ?? 0)))]
                }
                kill(sandbox.pid, SIGTERM)
                killAt = now + Int(plan.limits.killAfter)
            }
            if let k = killAt, now >= k {
                killAt = nil
                sandbox.kill()
            }
            let wait = [termAt, killAt, processes?.nextDeadline].compactMap { $0 }.min().map { Int32(max(0, $0 - now)) } ?? -1
            if poll(&fds, nfds_t(fds.count), wait) < 0 {
                if errno == EINTR { continue }
                break
            }
            if fds[3].revents != 0 {
                // POLLHUP: no process uses the filter any more.
                if fds[3].revents & Int16(POLLIN) != 0 { handleNotification() } else { fds[3].fd = -1 }
            }
            if fds[1].revents & Int16(POLLIN) != 0 {
                while let signal = relay.next() { passOn(signal) }
            }
            if fds[4].revents != 0, let proxy, !proxy.readEvents(into: audit) {
                // cell-proxy is gone (it exits only when the sandbox's listeners do): the
                // sandbox has no way out left, and nothing to record.
                self.proxy = nil
            }
            if let processes {
                for entry in fds[processBase...] where entry.revents != 0 { processes.handle(entry.fd) }
            }
            if let terminal, processBase == 8 {
                // False when the master is gone, which only the sandbox's end does: its report
                // (fds[0]) ends the loop.
                _ = terminal.handle(fds[5...7])
                if terminal.takeHangUp() { kill(sandbox.pid, SIGHUP) }
            }
            if fds[2].revents != 0 {
                if !readControl() { fds[2].fd = -1 }
                fds[3].fd = listenerFD
            }
            if fds[0].revents != 0 && !readReport() { break loop }
        }
        // cell-init has exited (its report pipe closed) or cannot be waited for any longer.
        processes?.finish()
        let initStatus = sandbox.reap()
        terminal?.finish()
        terminal = nil
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
            handler = makeHandler(fd)
        case UInt8(ascii: "T") where fd >= 0 && processes?.takeMaster(fd) == true:
            break // an exec's pty: its `exec` gets it with the answer
        case UInt8(ascii: "T") where fd >= 0 && terminal == nil && plan.terminal != nil && !handedTerminal:
            if let console = plan.container?.consoleSocket {
                // cell-runtime: the engine relays the container's terminal, not cell.
                handedTerminal = true
                let problem = ConsoleSocket.send(master: fd, to: console)
                close(fd)
                if let problem {
                    killedBy = .setupFailed(problem)
                    sandbox.kill()
                }
            } else {
                terminal = TerminalRelay(master: fd, plan: plan.terminal!)
            }
        case UInt8(ascii: "R") where fd < 0 && processes == nil && plan.container?.processSocket != nil:
            let service = ProcessService(socketPath: plan.container!.processSocket!, sandbox: sandbox, audit: audit)
            if let problem = service.open() { notes.append(problem) } else { processes = service }
        case UInt8(ascii: "S") where fd >= 0 && plan.network == .proxy && handedOut.count < 2:
            handedOut.append(fd)
        case UInt8(ascii: "H"):
            let given = handedOut
            handedOut = []
            defer { for fd in given { close(fd) } } // the proxy has its own copies now
            if let problem = whenHeld(given) {
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

    /// A signal cell received: the terminal's own (window size, stop, continue) for the relay,
    /// every other one for the sandbox's pid 1, which passes it on to the command.
    private func passOn(_ signal: Int32) {
        guard plan.relaysTerminal, TerminalRelay.signals.contains(signal) else {
            kill(sandbox.pid, signal)
            return
        }
        if let terminal {
            terminal.handle(signal: signal)
        } else if signal != SIGWINCH && signal != SIGCONT {
            kill(getpid(), SIGSTOP) // stopped before the pty exists: nothing to restore
        }
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
        try? audit.record("limit", keyField: "which", key: which) { [("which", .string(which))] }
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
        case CELL_REPORT_PROCESS_STARTED:
            processes?.started(pid: report.value)
        case CELL_REPORT_PROCESS_FAILED:
            processes?.failed(step: report.step, errno: report.error)
        case CELL_REPORT_PROCESS_EXITED:
            processes?.exited(pid: report.step, status: report.value)
        default:
            break
        }
        return true
    }
}

extension Supervisor {
    /// One notified call, through the audit path (CellAudit's ViolationAuditor, or CallLearner
    /// which hands it the refusals): the event is written before the call is answered; the
    /// supervisor only acts on the outcome.
    private func handleNotification() {
        guard let handler else { return }
        switch handler.handleOne() {
        case .answered:
            break
        case .killSandbox(let syscall):
            killedBy = killedBy ?? .killedByPolicy(syscall: syscall)
            sandbox.kill()
        case .auditFailed(let message):
            killedBy = .setupFailed("\(message); the sandbox was killed (cell does not run unaudited)")
            sandbox.kill()
        }
    }
}
