import CellCLI
import Glibc

Cell.beginEarly()
exit(Cell.main(Array(CommandLine.arguments.dropFirst())))
