import CCellSpawn
import CellPolicy

/// How mount operations are written in pid 1's plan (cell_plan.h: CELL_OP_*, CELL_OPF_*).
extension MountOperation.Kind {
        /// The CELL_OP_* value of the plan's encoding (cell_plan.h).
        var cValue: UInt32 {
            switch self {
            case .bind: return CELL_OP_BIND.rawValue
            case .tmpfs: return CELL_OP_TMPFS.rawValue
            case .proc: return CELL_OP_PROC.rawValue
            case .devpts: return CELL_OP_DEVPTS.rawValue
            case .mqueue: return CELL_OP_MQUEUE.rawValue
            case .dir: return CELL_OP_DIR.rawValue
            case .symlink: return CELL_OP_SYMLINK.rawValue
            case .file: return CELL_OP_FILE.rawValue
            case .remountReadOnly: return CELL_OP_REMOUNT_RO.rawValue
            case .overlay: return CELL_OP_OVERLAY.rawValue
            case .hide: return CELL_OP_HIDE.rawValue
            case .sysfs: return CELL_OP_SYSFS.rawValue
            }
        }

        init?(cValue: UInt32) {
            guard let kind = Self.allCases.first(where: { $0.cValue == cValue }) else { return nil }
            self = kind
        }
}

extension MountOperation {
    var cFlags: UInt32 {
        var flags: UInt32 = 0
        if readOnly { flags |= UInt32(CELL_OPF_READONLY) }
        if optional { flags |= UInt32(CELL_OPF_OPTIONAL) }
        if mustExist { flags |= UInt32(CELL_OPF_NO_CREATE) }
        if noexec { flags |= UInt32(CELL_OPF_NOEXEC) }
        if device { flags |= UInt32(CELL_OPF_DEVICE) }
        return flags
    }
}
