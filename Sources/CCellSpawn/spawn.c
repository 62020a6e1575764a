/*
 * spawn.c — the trampoline: everything between clone() and the execve() of cell-init.
 *
 * The supervisor (cell, a multi-threaded Swift process) clones the sandbox's first process
 * with fork semantics — its own copy of memory, never CLONE_VM — into a new user namespace and,
 * in the same call, a pid namespace: the kernel creates the user namespace first, so the pid
 * namespace is owned by it, and the child is that namespace's pid 1. The child then only:
 *
 *   1. closes its copies of the supervisor's ends of the pipes and arms PR_SET_PDEATHSIG, then
 *      waits for the supervisor to write its uid/gid maps (a byte on `maps_fd`; end of file:
 *      the supervisor gave up or died) — until then it is the overflow id, and only a process
 *      outside may map an id other than its own (a root-run cell maps --outer-id);
 *   2. takes its ids inside (groups dropped first where setgroups is allowed);
 *   3. when those ids are not 0, raises every capability into the ambient set: a non-root
 *      program keeps capabilities across execve only through it, and cell-init needs them to
 *      build the sandbox (its lock-down clears the ambient set before the command runs);
 *   4. arms PR_SET_PDEATHSIG again after the last credential change (a change of ids clears
 *      it), then checks that the supervisor is still there (it may have died meanwhile);
 *   5. puts its descriptors in place (cell_plan.h: CELL_FD_CONTROL, CELL_FD_REPORT; /dev/null
 *      where the caller's terminal was when the command gets a pty of its own), closes
 *      every other one — nothing the caller leaked may reach the sandbox (CVE-2024-21626) —
 *      and executes cell-init from its sealed memfd: never a path in a directory someone could
 *      write (the CVE-2019-5736 class).
 *
 * The child of a multi-threaded process may only make async-signal-safe calls: no malloc, no
 * stdio, raw syscalls for credentials (glibc's setresuid would ask the parent's other threads,
 * absent here, to change theirs). A failure is reported as (step, errno); the child exits 125.
 */
#include "cell_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

__attribute__((noreturn)) static void child_fail(int report_fd, int step, int error) {
    struct cell_report r = {CELL_REPORT_FAILED, step, error, 0};
    (void)!write(report_fd, &r, sizeof r);
    _exit(CELL_EXIT_SETUP_FAILED);
}

/* Every capability the namespace gave us, carried through execve as ambient capabilities. */
static int raise_ambient(void) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0)
        return -1;
    /* A capability can be ambient only if it is permitted and inheritable. */
    for (int i = 0; i < 2; i++)
        data[i].inheritable = data[i].permitted;
    if (syscall(SYS_capset, &header, data) != 0)
        return -1;
    for (int cap = 0; cap < 64; cap++)
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0)
            return errno == EINVAL ? 0 : -1; /* EINVAL: past the kernel's last capability */
    return 0;
}

static int trampoline(const struct cell_trampoline *t) {
    int report = t->report_fd;
    /* The fork copied the supervisor's ends: with them open here, the supervisor's death would
     * never show as end of file on `maps_fd` or as a hang-up of the control socket. */
    close(t->supervisor_maps_fd);
    close(t->supervisor_control_fd);
    /* The supervisor's death kills this process from now on (it was forked from the main
     * thread, which lives as long as the supervisor). */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        child_fail(report, CELL_STEP_PDEATHSIG, errno);
    char byte;
    ssize_t n;
    do
        n = read(t->maps_fd, &byte, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        child_fail(report, CELL_STEP_WAIT_MAPS, n < 0 ? errno : EPIPE);
    close(t->maps_fd);
    /* Without a user namespace there are no maps and no ids to take: the caller's stay. */
    if (t->user_namespace) {
        if (t->drop_groups && syscall(SYS_setgroups, 0, NULL) != 0)
            child_fail(report, CELL_STEP_SETGROUPS, errno);
        if (syscall(SYS_setresgid, t->gid, t->gid, t->gid) != 0)
            child_fail(report, CELL_STEP_SETRESGID, errno);
        /* Leaving uid 0 would clear the permitted set; KEEP_CAPS keeps it for raise_ambient. */
        if (t->uid != 0 && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0)
            child_fail(report, CELL_STEP_SETRESUID, errno);
        if (syscall(SYS_setresuid, t->uid, t->uid, t->uid) != 0)
            child_fail(report, CELL_STEP_SETRESUID, errno);
        if (t->uid != 0 && raise_ambient() != 0)
            child_fail(report, CELL_STEP_INIT_CAPABILITIES, errno);
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        child_fail(report, CELL_STEP_PDEATHSIG, errno);
    /* getppid() cannot tell (it is 0 in a new pid namespace); the supervisor's end of the
     * control socket can: it is closed once the supervisor is gone. */
    struct pollfd control = {t->control_fd, POLLRDHUP, 0};
    if (poll(&control, 1, 0) < 0 || (control.revents & (POLLHUP | POLLRDHUP | POLLERR)))
        child_fail(report, CELL_STEP_SUPERVISOR_GONE, EPIPE);

    /* The caller's terminal never enters the sandbox when the command gets a pty (0-2 are never
     * the descriptors below: the supervisor keeps its own 0-2 open). */
    for (int fd = 0; fd < 3; fd++)
        if (t->stdio[fd] >= 0 && dup3(t->stdio[fd], fd, 0) < 0)
            child_fail(report, CELL_STEP_DESCRIPTORS, errno);
    /* Above 5 first, so that moving one cannot overwrite another; then into place. */
    int control_fd = fcntl(t->control_fd, F_DUPFD_CLOEXEC, 10);
    int report_fd = fcntl(report, F_DUPFD_CLOEXEC, 10);
    int init_fd = fcntl(t->init_fd, F_DUPFD_CLOEXEC, 10);
    if (control_fd < 0 || report_fd < 0 || init_fd < 0)
        child_fail(report, CELL_STEP_DESCRIPTORS, errno);
    report = report_fd;
    if (dup3(control_fd, CELL_FD_CONTROL, 0) < 0 || dup3(report_fd, CELL_FD_REPORT, 0) < 0 ||
        dup3(init_fd, CELL_FD_REPORT + 1, O_CLOEXEC) < 0)
        child_fail(report, CELL_STEP_DESCRIPTORS, errno);
    report = CELL_FD_REPORT;
    /* Everything else closed; without close_range (kernel < 5.9) the sandbox does not start. */
    if (syscall(SYS_close_range, CELL_FD_REPORT + 2, ~0U, 0) != 0)
        child_fail(report, CELL_STEP_DESCRIPTORS, errno);

    /* No arguments, no environment: everything cell-init needs comes as the plan. */
    char *const argv[] = {"cell-init", NULL};
    char *const envp[] = {NULL};
    syscall(SYS_execveat, CELL_FD_REPORT + 1, "", argv, envp, AT_EMPTY_PATH);
    child_fail(report, CELL_STEP_EXEC_INIT, errno);
}

pid_t cell_spawn(const struct cell_trampoline *t) {
    /* Every signal blocked across clone: no handler of the supervisor may run in the child,
     * and cell-init starts with all of them blocked until its own handlers are in place. */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    /* Fork semantics (no stack given, no CLONE_VM): the child runs on its copy of this one. */
    /* The user namespace, when there is one, is created first and owns the pid namespace. A pid
     * namespace without a new user namespace is cell-runtime's inside an engine's user
     * namespace, where the caller already has CAP_SYS_ADMIN. */
    unsigned long flags = (t->user_namespace ? CLONE_NEWUSER : 0) | (t->pid_namespace ? CLONE_NEWPID : 0) | SIGCHLD;
    long pid = syscall(SYS_clone, flags, 0, 0, 0, 0);
    if (pid == 0)
        trampoline(t);
    int error = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    errno = error;
    return (pid_t)pid;
}
