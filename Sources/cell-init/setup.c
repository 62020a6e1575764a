/*
 * setup.c — cell-init, the sandbox's pid 1: the layers of the sandbox, in the order they are
 * applied. main() is the table of contents; each layer lives in its own file.
 *
 * The trampoline executed this program from a sealed memfd, inside the sandbox's new user
 * (and pid) namespace, with its id maps written, its credentials set (uid 0, or the caller's
 * uid with every capability in the ambient set), PR_SET_PDEATHSIG armed, every signal blocked,
 * an empty environment, and descriptors 0-2 (the caller's stdio), CELL_FD_CONTROL and
 * CELL_FD_REPORT only. Nothing of the caller's runs until run_init(), after the lock-down.
 *
 * Every failure is reported (report.c) and ends pid 1 with CELL_EXIT_SETUP_FAILED; when pid 1
 * ends, the kernel kills whatever else is in its pid namespace.
 */
#include "cell_init.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int is_open_as(int fd, mode_t type) {
    struct stat st;
    return fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == type;
}

/* Takes over from the trampoline: nothing pid 1 inherited may reach the command. */
static void become_pid1(void) {
    /* The trampoline's contract, checked: without the report pipe nobody can be told anything,
     * so only the exit status says it (cell-init run by hand ends here). */
    if (!is_open_as(CELL_FD_REPORT, S_IFIFO))
        _exit(CELL_EXIT_SETUP_FAILED);
    if (!is_open_as(CELL_FD_CONTROL, S_IFSOCK))
        fail(CELL_STEP_DESCRIPTORS, ENOTSOCK, CELL_FD_CONTROL);

    /* Ignored signals stay ignored across execve, and the command would inherit them; an
     * ignored SIGCHLD would even make the kernel reap the command before init could read its
     * status. The libc refuses sigaction (EINVAL) for the few signals it keeps for itself:
     * those are reset with the system call, whose struct sigaction differs between
     * architectures, but all zeros is SIG_DFL, no flags and an empty mask on every one. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    static const union {
        char bytes[64];
        void *align;
    } kernel_dfl;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, &dfl, NULL) != 0)
            (void)syscall(SYS_rt_sigaction, sig, &kernel_dfl, NULL, (size_t)(NSIG - 1) / 8);
    }

    /* Not dumpable: the command runs with the same uid, and must not ptrace pid 1 nor open its
     * /proc/1/mem, /proc/1/fd (the control socket, the report pipe) or /proc/1/exe. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        fail(CELL_STEP_DUMPABLE, errno, 0);

    /* The control socket and the report pipe are pid 1's alone: with them the command could
     * read the plan's rest, forge reports, or pose as pid 1 to the supervisor. */
    if (fcntl(CELL_FD_CONTROL, F_SETFD, FD_CLOEXEC) != 0 || fcntl(CELL_FD_REPORT, F_SETFD, FD_CLOEXEC) != 0)
        fail(CELL_STEP_DESCRIPTORS, errno, 0);
    /* The trampoline closed everything else; closed again, in case it ever does not (a host
     * directory left open is a way out of any filesystem view: CVE-2024-21626). */
    if (syscall(SYS_close_range, CELL_FD_REPORT + 1, ~0U, 0) != 0)
        fail(CELL_STEP_DESCRIPTORS, errno, 0);

    /* A session of its own, without a controlling terminal: the caller's terminal cannot be
     * reached through TIOCSTI (CVE-2017-5226) and its job-control signals do not arrive. */
    if (setsid() < 0)
        fail(CELL_STEP_SETSID, errno, 0);
}

/* The planned working directory, or its fallback with a warning (the caller's directory, say,
 * when it is not visible in the sandbox). */
static void enter_working_directory(const struct plan *p) {
    if (!p->cwd || chdir(p->cwd) == 0)
        return;
    int err = errno;
    if (!p->cwd_fallback)
        fail(CELL_STEP_CHDIR, err, 0);
    warn_report(CELL_STEP_CHDIR, err, 0);
    if (chdir(p->cwd_fallback) != 0)
        fail(CELL_STEP_CHDIR, errno, 0);
}

int main(void) {
    struct plan plan;
    plan_init(&plan);

    /* 1. Before anything else, so nothing below runs with the caller's terminal, signal
     *    dispositions or stray descriptors. */
    become_pid1();

    /* 2. The setup part of the plan: everything up to the lock-down. The supervisor compiles
     *    the filters meanwhile; they come later (13). */
    plan_read_setup(&plan, CELL_FD_CONTROL);

    /* 3. The namespaces, before anything that depends on them (mounts, lo, hostname): an
     *    engine's, joined by path while its path is in view (container.c), then our own. */
    join_namespaces(&plan);
    unshare_namespaces(&plan);

    /* 4. No nested user namespaces, and SysV shared memory within the memory limit: through the
     *    host's /proc, still in view and writable (the view in 6 replaces it). */
    limit_user_namespaces(&plan);
    limit_shared_memory(&plan);
    /*    An OCI config's sysctls likewise (container.c): after 3, so that /proc/sys shows the
     *    container's namespaces and not the engine's. */
    set_sysctls(&plan);

    /* 5. lo up and low ports open, in the new network namespace (3), through the host's /proc
     *    likewise; and, for user-mode networking without the host's loopback, its gateway
     *    made unreachable before the helper attaches (16); for --net proxy, the listeners the
     *    proxy outside accepts on, handed out while lo is the only interface. */
    if (plan.loopback)
        set_up_loopback();
    if (plan.has_unreachable)
        make_unreachable(plan.unreachable);
    hand_out_listeners(&plan);

    /* 6. The filesystem view: while pid 1 still has every capability, and while the host's
     *    /proc is visible (a new procfs may be mounted only then). After it, no host path. */
    if (plan.has_root)
        build_view(&plan);

    /* 7. The hostname, in the new UTS namespace (3). */
    set_hostname(&plan);

    /* 8. The working directory, inside the view (6). */
    enter_working_directory(&plan);

    /* 9. The command's pty, on the view's own devpts (6); its master goes to the supervisor.
     *    Before the filters (15): opening ptmx and its ioctls are not among the calls the
     *    supervisor's policy check guarantees pid 1 (SeccompCompiler.initCalls). */
    if (plan.has_terminal)
        open_terminal(&plan);

    /* 9b. The config's user (cell-runtime), while pid 1 still has the capabilities to change
     *     ids; the lock-down below then acts on that user's capabilities. */
    set_user(&plan);

    /* 10. Limits: after the view (which needs many descriptors at once), before the lock-down
     *     (raising a hard limit needs CAP_SYS_RESOURCE). Hard limits make them final. */
    set_rlimits(&plan);

    /* 11. Capabilities: once nothing left needs privilege. */
    drop_capabilities(&plan);

    /* 12. no_new_privs: before seccomp, which needs it without CAP_SYS_ADMIN (11), and so that
     *     no execve from here on (setuid, file capabilities) grants anything. */
    set_no_new_privs();

    /* 13. Landlock, the second wall: rules that mirror the view (read where it is read-only,
     *     write where it is writable), so that a sandbox that got past the first (a mount
     *     allowed by a weakened profile, a kernel bug in the mount code) still cannot write
     *     elsewhere. After the last mount (6), which a Landlock domain forbids, after
     *     no_new_privs (12), which landlock_restrict_self needs without CAP_SYS_ADMIN, and
     *     before seccomp (15), which may deny the landlock_* calls. */
    apply_landlock(&plan);

    /* 14. The filters, compiled by the supervisor while 3-13 ran. */
    plan_read_filters(&plan, CELL_FD_CONTROL);

    /* 15. seccomp last of all the layers: pid 1 itself runs under the filters from here on,
     *     so the calls it still makes (sendmsg and close of the listener, the hold's send and
     *     read, sigaction, the command's spawn, kill, wait4, the reports' write) are few, and
     *     the supervisor's policy must allow them. */
    load_filters(&plan);

    /* 16. Held: the supervisor finishes its side (network attached to the sandbox, say) before
     *     the command may run. */
    if (plan.hold)
        plan_hold(&plan, CELL_FD_CONTROL);

    /* 17. The command, and pid 1's life as its init. */
    return run_init(&plan);
}
