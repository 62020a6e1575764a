import Foundation
import Testing

/// The command's own terminal: cell started on a real pty (the test's), the command on a pty of
/// the sandbox's own, cell relaying between them.
@Suite(.enabled(if: Sandbox.available, "cell cannot start a sandbox on this machine"))
struct TerminalTests {
    /// Starts `cell run OPTIONS -- COMMAND` as the session leader of a fresh pty (its
    /// controlling terminal, cell in the foreground), then plays `steps`:
    ///   {"wait": TEXT}      until TEXT has appeared in the output since the last wait
    ///   {"send": TEXT}      type TEXT
    ///   {"resize": [R, C]}  change the window size
    ///   {"holders": true}   record which processes other than cell hold the terminal
    /// and prints JSON: the output, cell's exit status, whether the terminal's modes are
    /// exactly as before, and the holders.
    static let driver = #"""
    import fcntl, json, os, select, struct, subprocess, sys, termios, time
    spec = json.loads(sys.argv[1])
    master, slave = os.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack('HHHH', spec['rows'], spec['cols'], 0, 0))
    path = os.ttyname(slave)
    if spec.get('owner') is not None:  # a login terminal belongs to its user: so does this one
        os.fchown(slave, spec['owner'], -1)
    before = termios.tcgetattr(master)
    def session():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    started = time.time()
    stdout = subprocess.PIPE if spec.get('stdout_pipe') else slave
    cell = subprocess.Popen(spec['argv'], stdin=slave, stdout=stdout, stderr=slave if spec.get('stderr_tty', True) else subprocess.PIPE,
                            preexec_fn=session)
    if spec.get('stdout_pipe'):
        cell.stdout.read(1); cell.stdout.close()  # like `| head -c1`
    os.close(slave)
    out, seen, holders = b'', 0, None
    deadline = time.time() + spec.get('timeout', 30)
    steps = list(spec['steps'])
    def pump(wait):
        global out
        r, _, _ = select.select([master], [], [], wait)
        if r:
            try:
                data = os.read(master, 65536)
            except OSError:
                return False
            out += data
            return bool(data)
        return True
    while time.time() < deadline:
        if steps:
            step = steps[0]
            if 'wait' in step:
                at = out.find(step['wait'].encode(), seen)
                if at >= 0:
                    seen = at + len(step['wait']); steps.pop(0); continue
            else:
                steps.pop(0)
                if 'send' in step: os.write(master, step['send'].encode())
                if 'resize' in step:
                    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack('HHHH', step['resize'][0], step['resize'][1], 0, 0))
                if 'holders' in step:
                    holders = []
                    # The same file, not the same name: the sandbox's own pty is /dev/pts/0 too.
                    ours = (os.stat(path).st_dev, os.stat(path).st_ino)
                    for pid in filter(str.isdigit, os.listdir('/proc')):
                        if int(pid) in (cell.pid, os.getpid()): continue
                        try:
                            for fd in os.listdir(f'/proc/{pid}/fd'):
                                st = os.stat(f'/proc/{pid}/fd/{fd}')
                                if (st.st_dev, st.st_ino) == ours:
                                    holders.append(open(f'/proc/{pid}/cmdline', 'rb').read().replace(b'\0', b' ').decode(errors='replace').strip())
                        except OSError:
                            continue
                continue
        if not spec.get('read', True):  # a terminal nobody reads: its buffer fills up
            if cell.poll() is not None: break
            time.sleep(0.05); continue
        if not pump(0.05) and cell.poll() is not None:
            break
    drain_until = time.time() + 2
    while time.time() < drain_until and pump(0.2):  # what is left, not waiting for ever
        pass
    try:
        status = cell.wait(timeout=max(1, deadline - time.time()))
    except subprocess.TimeoutExpired:
        # What every process of the sandbox was doing, for the report.
        diag = subprocess.run(['ps', '-e', '--forest', '-o', 'pid,pgid,tpgid,stat,wchan:24,cmd'], capture_output=True, text=True).stdout
        steps.append({'diag': diag})
        cell.kill(); status = None
    err = cell.stderr.read().decode(errors='replace') if cell.stderr else ''
    print(json.dumps({'out': out.decode(errors='replace'), 'status': status, 'seconds': time.time() - started, 'modes_same': termios.tcgetattr(master) == before,
                      'holders': holders, 'left': steps, 'stderr': err}))
    """#

    struct Outcome: Decodable {
        var out: String
        var status: Int? // nil: cell did not exit ("hung")
        var seconds: Double
        var modes_same: Bool
        var holders: [String]?
        var left: [[String: String]]?
        var stderr: String
    }

    static func onTerminal(_ command: [String], options: [String] = [], steps: [[String: Any]] = [], rows: Int = 30, cols: Int = 100,
                           stderrIsTerminal: Bool = true, stdoutPipe: Bool = false, reading: Bool = true, timeout: Int = 30) throws -> Outcome {
        let argv = Sandbox.dropPrivileges + [Sandbox.cell, "run"] + options + ["--"] + command
        let spec: [String: Any] = ["argv": argv, "steps": steps, "rows": rows, "cols": cols, "stderr_tty": stderrIsTerminal,
                                   "stdout_pipe": stdoutPipe, "read": reading, "timeout": timeout,
                                   "owner": Sandbox.isRoot ? Int(Sandbox.callerUID) : NSNull()]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: spec), as: UTF8.self)
        let r = Sandbox.execute(["python3", "-c", driver, json], timeout: TimeInterval(timeout + 15))
        guard let outcome = try? JSONDecoder().decode(Outcome.self, from: Data(r.stdout.utf8)) else {
            Issue.record("the terminal driver failed: \(r.stdout) \(r.stderr)")
            return Outcome(out: "", status: nil, seconds: 0, modes_same: false, holders: nil, left: nil, stderr: "")
        }
        return outcome
    }

    @Test("at a terminal the command has one of its own: tty, size, exit status; the sandbox never holds yours")
    func ownTerminal() throws {
        let r = try Self.onTerminal(["sh", "-c", "tty; stty size; readlink /proc/self/fd/0; echo ready; read x; exit 5"],
                                    steps: [["wait": "ready"], ["holders": true], ["send": "\r"]])
        #expect(r.status == 5, "\(r.out)")
        let lines = r.out.split(separator: "\r\n").map(String.init)
        #expect(lines.prefix(3) == ["/dev/pts/0", "30 100", "/dev/pts/0"], "\(r.out)")
        // Host side: no process but cell itself has a descriptor of the test's terminal. The check
        // sees one when there is one: with --no-tty the command holds the terminal itself.
        #expect(r.holders == [], "sandbox processes hold the caller's terminal: \(String(describing: r.holders))")
        let handedOver = try Self.onTerminal(["sh", "-c", "echo ready; read x"], options: ["--no-tty"],
                                             steps: [["wait": "ready"], ["holders": true], ["send": "\r"]])
        #expect(handedOver.holders?.contains("sh -c echo ready; read x") == true, "\(handedOver)")
    }

    @Test("the window size follows a resize of the caller's terminal")
    func resize() throws {
        let r = try Self.onTerminal(["sh", "-c", "stty size; echo ready; read x; stty size"],
                                    steps: [["wait": "ready"], ["resize": [42, 120]], ["send": "\r"]])
        #expect(r.status == 0)
        #expect(r.out.contains("30 100\r\n") && r.out.contains("42 120\r\n"), "\(r.out)")
    }

    @Test("job control in a shell: Ctrl-C ends the foreground job, not the shell; Ctrl-Z and fg")
    func jobControl() throws {
        // Each job says when it runs (its output differs from the typed line, which the
        // terminal echoes): a key sent before the job has the terminal would reach bash instead.
        let first = "sh -c 'echo run\"\"ning; exec sleep 30'\r"
        // One process (no shell loop with children): it prints when it runs and when continued.
        // os.write, not print, in the handler: a SIGCONT arriving inside print's own write
        // would make print re-enter itself (RuntimeError: reentrant call).
        let second = "python3 -c \"import os, signal, time; signal.signal(signal.SIGCONT, lambda *a: os.write(1, b're' b'sumed\\\\n')); "
            + "os.write(1, b'run' b'ning\\\\n'); time.sleep(60)\"\r"
        let r = try Self.onTerminal(["bash", "--norc", "--noprofile", "-i"], steps: [
            ["wait": "$ "], ["send": first], ["wait": "running"], ["send": "\u{03}"],
            ["wait": "$ "], ["send": "echo alive-$?\r"], ["wait": "alive-130"],
            ["wait": "$ "], ["send": second], ["wait": "running"], ["send": "\u{1a}"], ["wait": "Stopped"],
            ["wait": "$ "], ["send": "fg\r"], ["wait": "resumed"], ["send": "\u{03}"],
            ["wait": "$ "], ["send": "exit 7\r"],
        ])
        #expect(r.left == [], "stuck at \(String(describing: r.left?.first)): \(r.out)")
        #expect(r.status == 7, "\(r.out)")
        #expect(!r.out.contains("no job control"), "\(r.out)")
    }

    @Test("the caller's terminal modes are exactly as before: after a raw-mode program, and after kill -9 of the command")
    func modesRestored() throws {
        let raw = try Self.onTerminal(["python3", "-c", "import tty, sys; tty.setraw(0); print('raw', flush=True)"])
        #expect(raw.status == 0 && raw.out.contains("raw") && raw.modes_same, "\(raw)")
        let killed = try Self.onTerminal(["python3", "-c", "import tty, os; tty.setraw(0); os.kill(os.getpid(), 9)"])
        #expect(killed.status == 137 && killed.modes_same, "\(killed)")
    }

    @Test("a command that stops its terminal's output cannot leave cell hanging")
    func stoppedOutput() throws {
        let r = try Self.onTerminal(["python3", "-c", "import termios, sys; print('before', flush=True); termios.tcflow(1, termios.TCOOFF); sys.exit(3)"],
                                    timeout: 20)
        #expect(r.status == 3, "\(r)")
        #expect(r.out.contains("before") && r.modes_same, "\(r)")
    }

    @Test("a redirected stream bypasses the pty; --no-tty hands the descriptors over as they are")
    func redirectedAndNoTTY() throws {
        let probe = "[ -t 0 ] && echo in-tty; [ -t 1 ] && echo out-tty; [ -t 2 ] || echo err-not-tty >&2; exit 0"
        let r = try Self.onTerminal(["sh", "-c", probe], stderrIsTerminal: false)
        #expect(r.out.contains("in-tty") && r.out.contains("out-tty") && r.stderr == "err-not-tty\n", "\(r)")
        // --no-tty: no pty; the command is in a session without a controlling terminal.
        let plain = try Self.onTerminal(["sh", "-c", "[ -t 0 ] && echo in-tty; echo ctty=$(ps -o tty= -p $$); exit 4"], options: ["--no-tty"])
        #expect(plain.status == 4 && plain.out.contains("in-tty") && plain.out.contains("ctty=?"), "\(plain)")
        let pty = try Self.onTerminal(["sh", "-c", "echo ctty=$(ps -o tty= -p $$)"])
        #expect(pty.out.contains("ctty=pts/0"), "\(pty)")
        // --tty without any terminal around cell: the command still gets one.
        let forced = Sandbox.run(["sh", "-c", "tty"], options: ["--tty"])
        #expect(forced.status == 0 && forced.stdout.hasPrefix("/dev/pts/0"), "\(forced.stdout) \(forced.stderr)")
    }

    @Test("a terminal nobody reads, or a closed pipe on stdout, cannot stall cell: the timeout holds, the command is hung up")
    func outputThatCannotBeWritten() throws {
        // A flood into a terminal whose reader is gone: cell's writes would block; its timeout
        // must still end the sandbox on time.
        let flood = try Self.onTerminal(["sh", "-c", "exec yes AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
                                        options: ["--timeout", "1", "--kill-after", "1"], reading: false, timeout: 20)
        #expect(flood.status == 124 && flood.seconds < 6 && flood.modes_same, "\(flood.status ?? -1) after \(flood.seconds) s")
        // --tty with stdout a pipe its reader closed (`cell run --tty -- yes | head -c1`): the
        // command is hung up (129), cell does not die of SIGPIPE, and the modes come back.
        let piped = try Self.onTerminal(["yes"], options: ["--tty"], stdoutPipe: true, timeout: 20)
        #expect(piped.status == 129 && piped.modes_same, "\(piped)")
    }

    @Test("one sandbox cannot take every pty of the host: its devpts holds at most 64")
    func ptyLimit() {
        let script = "import os\nn = 0\ntry:\n    while True: os.open('/dev/ptmx', os.O_RDWR | os.O_NOCTTY); n += 1\nexcept OSError as e:\n    print(n, e.strerror)"
        let r = Sandbox.run(["python3", "-c", script], options: ["--no-tty", "--open-files", "1024"])
        #expect(r.stdout == "64 No space left on device\n", "\(r.stdout) \(r.stderr)")
    }

    @Test("--no-tty: a command that stops the terminal's output cannot hold cell's last messages")
    func lastMessagesNeverBlock() throws {
        // Without a pty the command holds the terminal itself: it stops the output (TCOOFF) and
        // exits after a denied call, so cell has a summary line to write to a stopped terminal.
        let script = "unshare -U true 2>/dev/null; python3 -c 'import termios; termios.tcflow(2, termios.TCOOFF)'; exit 3"
        let r = try Self.onTerminal(["sh", "-c", script], options: ["--no-tty"], timeout: 25)
        #expect(r.status == 3 && r.seconds < 10, "\(r.status ?? -1) after \(r.seconds) s")
    }
}
