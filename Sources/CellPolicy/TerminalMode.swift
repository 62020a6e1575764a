/// Whether the command gets a terminal of its own (a pty on the sandbox's devpts, relayed by
/// cell) — `[terminal] mode` in profiles, `--tty` / `--no-tty` on the command line.
public enum TerminalMode: String, CaseIterable, Equatable, Sendable {
    /// When any of cell's stdin, stdout and stderr is a terminal: those go through the pty; a
    /// redirected one bypasses it. The sandbox never holds a descriptor of your terminal.
    case auto
    /// Always a pty, for stdin and stdout at least (with pipes around cell, too).
    case always
    /// Never: the command gets cell's descriptors as they are, a terminal included (it is in a
    /// session of its own, so it cannot inject input into yours, but it can change the
    /// terminal's modes).
    case never
}
