import CCellSpawn
import CellPolicy
import Glibc

/// The sandbox's pid 1, seen from the supervisor: cloned by the trampoline (CCellSpawn/spawn.c)
/// into a new user namespace (and pid namespace), given its id maps, then executing cell-init,
/// which reads the plan from `control` and reports on `reports`.
///
/// Every way out of `spawn` that throws has killed and reaped the child: nothing is left behind.
final class SandboxProcess {
    let pid: pid_t
    /// The supervisor's end of the control socket (cell_plan.h): the plan out; the seccomp
    /// listener and the hold notice in. Closing it tells pid 1 the supervisor is gone.
    let control: Int32
    /// Read end of the report pipe: `cell_report` records; end of file once cell-init is gone.
    let reports: Int32
    private var reaped = false
    private var waitStatus: Int32 = 0

    private init(pid: pid_t, control: Int32, reports: Int32) {
        self.pid = pid
        self.control = control
        self.reports = reports
    }

    /// Clones pid 1 and writes its maps. `cgroupProcs`: an open cgroup.procs to move it into
    /// first, or -1.
    static func spawn(_ plan: LaunchPlan, initHelper: String, cgroupProcs: Int32) throws(LaunchError) -> SandboxProcess {
        let initFD = cell_sealed_copy(initHelper, "cell-init")
        guard initFD >= 0 else { throw .setup("cannot load the helper \(initHelper): \(errorText(errno))") }
        defer { close(initFD) }
        var maps: [Int32] = [-1, -1], control: [Int32] = [-1, -1], reports: [Int32] = [-1, -1]
        guard cell_pipe_cloexec(&maps) == 0, cell_socketpair_cloexec(&control) == 0, cell_pipe_cloexec(&reports) == 0 else {
            let code = errno
            for fd in maps + control + reports where fd >= 0 { close(fd) }
            throw .setup("cannot create the sandbox's setup pipes: \(errorText(code))")
        }
        // With a pty for the command, the descriptors it replaces become /dev/null in pid 1:
        // the caller's terminal never enters the sandbox.
        let replaced = plan.terminal?.descriptors ?? []
        let null = replaced.isEmpty ? -1 : open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { if null >= 0 { close(null) } }
        if !replaced.isEmpty && null < 0 {
            for fd in maps + control + reports { close(fd) }
            throw .setup("cannot open /dev/null for the sandbox's side of the terminal: \(errorText(errno))")
        }
        func stdio(_ fd: Int32) -> Int32 { replaced.contains(fd) ? null : -1 }
        var trampoline = cell_trampoline(
            user_namespace: plan.ownsUserNamespace ? 1 : 0,
            pid_namespace: plan.isolation == .namespaces && plan.namespaces.contains(.pid) ? 1 : 0, maps_fd: maps[0],
            supervisor_maps_fd: maps[1], supervisor_control_fd: control[0], control_fd: control[1],
            report_fd: reports[1], init_fd: initFD, uid: plan.identity.innerUID, gid: plan.identity.innerGID,
            drop_groups: plan.identity.denySetgroups ? 0 : 1, stdio: (stdio(0), stdio(1), stdio(2)))
        let pid = cell_spawn(&trampoline)
        let cloneError = errno
        // The child's ends are the child's alone.
        close(maps[0])
        close(control[1])
        close(reports[1])
        guard pid > 0 else {
            close(maps[1])
            close(control[0])
            close(reports[0])
            throw .setup(SetupFailure.message(step: refusedStep(pidNamespace: trampoline.pid_namespace != 0),
                                              errno: cloneError, plan: plan))
        }
        let process = SandboxProcess(pid: pid, control: control[0], reports: reports[0])
        defer { close(maps[1]) }
        do {
            try process.prepare(plan, cgroupProcs: cgroupProcs)
        } catch {
            process.kill()
            throw error
        }
        // The maps are in: the trampoline may go on (end of file, on the throwing paths above,
        // stopped it instead).
        guard write(maps[1], "m", 1) == 1 else {
            let code = errno
            process.kill()
            throw .setup("cannot release the sandbox after writing its maps: \(errorText(code))")
        }
        return process
    }

    /// What must be done to the child before it may go on: its cgroup, then its maps.
    private func prepare(_ plan: LaunchPlan, cgroupProcs: Int32) throws(LaunchError) {
        // Into the sandbox's cgroup before it creates any process or namespace (its cgroup
        // namespace is then rooted there).
        if cgroupProcs >= 0 {
            let text = String(pid)
            if write(cgroupProcs, text, text.utf8.count) != text.utf8.count {
                throw .setup(SetupFailure.message(step: Int32(CELL_STEP_CGROUP.rawValue), errno: errno, plan: plan))
            }
        }
        // Without a user namespace of its own (--isolation landlock; cell-runtime in an
        // engine's) there is nothing to map.
        guard plan.ownsUserNamespace else { return }
        // setgroups is settled before gid_map: "deny" is what the kernel requires of an
        // unprivileged map writer (else the sandbox could drop a group that denies it access to
        // a file). A root-run cell leaves it allowed and the trampoline drops every group.
        let identity = plan.identity
        let files: [(String, String, cell_step)] = (identity.denySetgroups ? [("setgroups", "deny", CELL_STEP_WRITE_SETGROUPS)] : [])
            + [("gid_map", identity.gidMap.map(\.line).joined(), CELL_STEP_WRITE_GID_MAP),
               ("uid_map", identity.uidMap.map(\.line).joined(), CELL_STEP_WRITE_UID_MAP)]
        for (name, text, step) in files {
            if let code = writeProcFile("/proc/\(pid)/\(name)", text) {
                throw .setup(SetupFailure.message(step: Int32(step.rawValue), errno: code, plan: plan))
            }
        }
    }

    /// Which namespace the kernel refused when the clone failed.
    private static func refusedStep(pidNamespace: Bool) -> Int32 {
        if pidNamespace && cell_probe_user_namespace() == 0 { return Int32(CELL_STEP_NS_PID.rawValue) }
        return Int32(CELL_STEP_CLONE_USERNS.rawValue)
    }

    /// Sends plan bytes to pid 1. False if pid 1 is gone (its report says why).
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(control, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    /// Waits for pid 1 to end (once); its wait status.
    @discardableResult
    func reap() -> Int32 {
        if !reaped {
            while waitpid(pid, &waitStatus, 0) < 0 && errno == EINTR {}
            reaped = true
        }
        return waitStatus
    }

    /// Ends the sandbox: SIGKILL to pid 1 ends its pid namespace, and with it every process.
    func kill() {
        if !reaped {
            Glibc.kill(pid, SIGKILL)
            reap()
        }
    }

    deinit {
        kill()
        close(control)
        close(reports)
    }
}
