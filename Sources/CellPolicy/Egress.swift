// The egress allow-list lives in CellEgress, a module of its own so that cell-proxy can link it
// without the rest of cell; every part that sees CellPolicy sees it too.
@_exported import CellEgress
