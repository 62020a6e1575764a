import CellRuntime
import Glibc

// A write to a closed pipe (an engine that stopped reading) is an error to report, not a reason
// to die of SIGPIPE; the container's pid 1 resets every disposition.
signal(SIGPIPE, SIG_IGN)
exit(RuntimeCommandLine.main(Array(CommandLine.arguments.dropFirst())))
