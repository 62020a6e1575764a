import CellCLI
import Glibc

exit(Cell.main(Array(CommandLine.arguments.dropFirst())))
