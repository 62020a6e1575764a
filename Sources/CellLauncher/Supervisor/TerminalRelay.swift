import CCellSpawn
import CellPolicy
import Glibc

/// The caller's side of the command's pty: bytes from cell's stdin to the pty's master, and from
/// the master to cell's stdout (or stderr), the window size, and the caller's terminal modes.
///
/// - Raw mode (no echo, no line editing, no signals from keys: Ctrl-C is a byte the pty's line
///   discipline turns into SIGINT for the job in its foreground) is set only while cell is in
///   its terminal's foreground process group: a background cell must not stop on SIGTTOU, nor
///   read keys meant for the shell. It is restored at the end, on SIGTSTP before cell stops,
///   and re-entered on SIGCONT.
/// - Both directions go through a buffer, and every write is non-blocking: a command that does
///   not read its input, stops the pty's output, or floods a slow terminal can fill a buffer,
///   never block cell (its timeout, signals and audit answers go on). cell's own descriptors
///   are shared with the caller's shell and stay blocking: a terminal or pipe on the output is
///   written through a file description of cell's own, opened non-blocking.
/// - cell holds a terminal side of its own (TIOCGPTPEER) until the sandbox ends: without one,
///   the master reads EIO before the command has opened its side, and again whenever it has
///   closed it for a moment. After the end cell closes it and reads the master until EIO
///   (every terminal side closed), so the command's last output is not lost.
final class TerminalRelay {
    /// Signals the supervisor must pass here instead of to the sandbox.
    static let signals: [Int32] = [SIGWINCH, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU]

    let master: Int32
    private var peer: Int32
    /// Where keys come from (-1: stdin bypasses the pty), and where output goes (-1: nowhere,
    /// when stdout and stderr both bypass it).
    let input: Int32
    private var output: Int32
    /// `output` is a non-blocking description cell opened for itself (closed at the end).
    private var ownOutput = false
    /// The terminal whose modes and window size count (stdin if it is one, else stdout's).
    private let terminal: Int32
    private var saved: termios?
    private var raw = false
    private var toMaster: [UInt8] = []
    private var toOutput: [UInt8] = []
    private var inputEnded = false

    init(master: Int32, plan: TerminalPlan) {
        self.master = master
        _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
        peer = ioctl(master, cell_tiocgptpeer, O_RDWR | O_NOCTTY | O_CLOEXEC)
        input = plan.descriptors.contains(0) ? 0 : -1
        output = Self.nonBlocking(plan.descriptors.contains(1) ? 1 : plan.descriptors.contains(2) ? 2 : -1)
        ownOutput = output > 2
        terminal = [0, 1, 2].first { plan.descriptors.contains($0) && isatty($0) == 1 } ?? -1
        if input >= 0 && isatty(input) == 1 {
            var modes = termios()
            if tcgetattr(input, &modes) == 0 { saved = modes }
        }
        resize()
        enterRawIfForeground()
    }

    deinit {
        restore()
        if peer >= 0 { close(peer) }
        if ownOutput { close(output) }
        close(master)
    }

    /// A non-blocking description of the terminal or pipe `fd` is (a new open of it, so the
    /// caller's shell keeps its blocking one); `fd` itself for anything else (a regular file
    /// does not block, reopening it would write from its start, and reopening some other
    /// device may do something of its own).
    static func nonBlocking(_ fd: Int32) -> Int32 {
        var st = stat()
        guard fd >= 0, fstat(fd, &st) == 0, isatty(fd) == 1 || st.st_mode & S_IFMT == S_IFIFO else { return fd }
        let own = open("/proc/self/fd/\(fd)", O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        return own >= 0 ? own : fd
    }

    /// The poll entries: input, master, output (fd -1 when not wanted now).
    var pollDescriptors: [pollfd] {
        let reading = input >= 0 && !inputEnded && toMaster.isEmpty && (saved == nil || raw)
        return [pollfd(fd: reading ? input : -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: master, events: Int16(toOutput.isEmpty ? POLLIN : 0) | Int16(toMaster.isEmpty ? 0 : POLLOUT), revents: 0),
                pollfd(fd: toOutput.isEmpty || output < 0 ? -1 : output, events: Int16(POLLOUT), revents: 0)]
    }

    /// Moves what the poll said is ready; false once the master is gone (the sandbox's end).
    func handle(_ entries: ArraySlice<pollfd>) -> Bool {
        let (inEntry, masterEntry, outEntry) = (entries[entries.startIndex], entries[entries.startIndex + 1], entries[entries.startIndex + 2])
        if inEntry.revents != 0 { readInput() }
        if masterEntry.revents & Int16(POLLOUT) != 0 { flush(&toMaster, to: master) }
        if outEntry.revents != 0 { flush(&toOutput, to: output) }
        if masterEntry.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
            return readMaster()
        }
        return true
    }

    /// A signal meant for the terminal side.
    func handle(signal: Int32) {
        switch signal {
        case SIGWINCH: resize()
        case SIGCONT: enterRawIfForeground()
        case SIGTSTP, SIGTTIN, SIGTTOU:
            // Stopped from outside (kill -TSTP): the caller's shell gets its terminal back as it
            // was; SIGCONT brings raw mode back.
            restore()
            kill(getpid(), SIGSTOP)
        default: break
        }
    }

    /// After the sandbox's end: the command's last output, until EIO (no terminal side open
    /// any more) or until nothing more comes for a moment — a terminal side passed out of the
    /// sandbox (over a socket) must not keep cell, and the caller's terminal in raw mode,
    /// waiting — then the caller's modes back.
    func finish() {
        if peer >= 0 { close(peer) }
        peer = -1
        let deadline = monotonicMilliseconds() + 2000
        while monotonicMilliseconds() < deadline {
            var entries = [pollfd(fd: master, events: Int16(toOutput.isEmpty ? POLLIN : 0), revents: 0),
                           pollfd(fd: toOutput.isEmpty || output < 0 ? -1 : output, events: Int16(POLLOUT), revents: 0)]
            if poll(&entries, 2, 100) <= 0 { break } // quiet for 100 ms: done
            if entries[1].revents != 0 { flush(&toOutput, to: output) }
            if entries[0].revents != 0 && !readMaster() { break } // EIO: every side closed
        }
        if output >= 0 && !toOutput.isEmpty { flush(&toOutput, to: output) }
        restore()
    }

    private func readInput() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = read(input, &buffer, buffer.count)
        if n > 0 {
            toMaster += buffer[0..<n]
            flush(&toMaster, to: master)
        } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
            // stdin is over (a pipe with --tty): the command reads end of file, as from a
            // terminal where the user typed the EOF character at the start of a line.
            inputEnded = true
            toMaster.append(4) // ^D, the pty's VEOF
            flush(&toMaster, to: master)
        }
    }

    /// False at EIO or end of file: every terminal side is closed.
    private func readMaster() -> Bool {
        guard toOutput.isEmpty else { return true }
        var buffer = [UInt8](repeating: 0, count: 16384)
        let n = read(master, &buffer, buffer.count)
        if n > 0 {
            if output >= 0 && !outputGone { toOutput += buffer[0..<n] }
            return true
        }
        return n < 0 && (errno == EINTR || errno == EAGAIN)
    }

    /// Set when the output failed (a closed pipe: EPIPE, cell ignores SIGPIPE): the command's
    /// output is read and dropped from then on, so the command never blocks on it.
    private var outputGone = false {
        didSet { if outputGone && !oldValue { hangUpPending = true } }
    }
    private var hangUpPending = false

    /// True once, when the output has gone: the supervisor hangs the command up (SIGHUP, as a
    /// terminal that went away would), instead of letting it write into nowhere for ever.
    func takeHangUp() -> Bool {
        defer { hangUpPending = false }
        return hangUpPending
    }

    private func flush(_ buffer: inout [UInt8], to fd: Int32) {
        guard !buffer.isEmpty else { return }
        let n = buffer.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n > 0 {
            buffer.removeFirst(n)
        } else if n < 0 && errno != EAGAIN && errno != EINTR {
            buffer.removeAll()
            if fd == output { outputGone = true }
        }
    }

    private func resize() {
        var size = winsize()
        guard terminal >= 0, ioctl(terminal, UInt(TIOCGWINSZ), &size) == 0 else { return }
        // The kernel sends SIGWINCH to the pty's foreground job.
        _ = ioctl(master, UInt(TIOCSWINSZ), &size)
    }

    private func enterRawIfForeground() {
        guard var modes = saved, !raw, tcgetpgrp(input) == getpgrp() else { return }
        cfmakeraw(&modes)
        if tcsetattr(input, TCSANOW, &modes) == 0 { raw = true }
    }

    private func restore() {
        guard raw, var modes = saved else { return }
        // TCSANOW, not TCSADRAIN: a terminal nobody reads never drains, and cell must not wait
        // for it (what is queued already went through the pty's own output processing).
        if tcsetattr(input, TCSANOW, &modes) == 0 { raw = false }
    }
}
