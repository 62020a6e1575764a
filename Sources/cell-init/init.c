/*
 * init.c — pid 1's life once the sandbox is set up: start the command, forward signals to it,
 * reap every process, report the command's end.
 *
 * The first process of a pid namespace is special: the kernel drops every signal it has no
 * handler for (even SIGTERM from outside), and every orphan in the namespace is reparented to
 * it. A command run as pid 1 would therefore ignore `kill -TERM` and leave zombies. This init
 * forwards the signals that stop or poke a program, reaps every zombie, and reports the
 * command's wait status when it ends; then it returns, and the kernel kills whatever is left in
 * the namespace.
 *
 * Everything here runs under the sandbox's seccomp filters: the supervisor's policy allows the
 * calls it makes (spawning, kill, wait4, write to the report pipe).
 */
#include "cell_init.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef POSIX_SPAWN_SETSID
#error "posix_spawn without POSIX_SPAWN_SETSID (glibc >= 2.26 and musl >= 1.1.24 have it)"
#endif

static volatile sig_atomic_t command_pid = 0;

/* Signals a user or the supervisor sends to stop or poke the sandbox. Not forwarded: the
 * synchronous ones (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) are about init itself,
 * SIGCHLD is init's own, and SIGPIPE could only come from init's own writes. */
static const int forwarded[] = {
    SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH, SIGCONT,
    SIGTSTP, SIGTTIN, SIGTTOU, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGPWR,
};

static void forward(int sig) {
    int saved = errno; /* the interrupted waitpid's */
    pid_t pid = command_pid;
    if (pid > 0)
        kill(pid, sig);
    errno = saved;
}

/* Starts the command; returns its pid, or ends pid 1 (a setup failure) or returns -1 with
 * *exec_error set (the command could not be executed). */
static pid_t start_command(const struct plan *p, const sigset_t *defaults, int *exec_error) {
    /* The command: its own session and process group (a terminal it opens never becomes
     * init's), the forwarded signals at their default (never init's handlers), nothing
     * blocked. posix_spawn rather than fork: nothing of init's memory is copied, and an exec
     * failure comes back as the return value. */
    posix_spawnattr_t attr;
    int err = posix_spawnattr_init(&attr);
    if (err != 0)
        fail(CELL_STEP_START_COMMAND, err, 0);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, defaults);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID);
    /* With a pty (terminal.c): its terminal on the planned descriptors, opened by path after
     * the new session is made (posix_spawn runs setsid first) and without O_NOCTTY, which
     * makes it the command's controlling terminal, its process group the foreground one. */
    posix_spawn_file_actions_t actions, *use_actions = NULL;
    if (p->has_terminal && p->terminal_std != 0) {
        if ((err = posix_spawn_file_actions_init(&actions)) != 0)
            fail(CELL_STEP_START_COMMAND, err, 0);
        use_actions = &actions;
        int first = -1;
        for (int fd = 0; fd < 3 && err == 0; fd++) {
            if (!(p->terminal_std & (1u << fd)))
                continue;
            if (first < 0) {
                err = posix_spawn_file_actions_addopen(&actions, fd, p->terminal_path, O_RDWR, 0);
                first = fd;
            } else {
                err = posix_spawn_file_actions_adddup2(&actions, first, fd);
            }
        }
        if (err != 0)
            fail(CELL_STEP_START_COMMAND, err, 0);
    }
    pid_t pid = -1;
    err = posix_spawnp(&pid, p->argv[0], use_actions, &attr, p->argv, p->envp);
    posix_spawnattr_destroy(&attr);
    if (use_actions)
        posix_spawn_file_actions_destroy(use_actions);
    /* No process could be made (the RLIMIT_NPROC guard, say): the launch's failure, not the
     * command's. */
    if (err == EAGAIN || err == ENOMEM)
        fail(CELL_STEP_START_COMMAND, err, 0);
    if (err != 0) {
        *exec_error = err;
        return -1;
    }
    return pid;
}

int run_init(const struct plan *p) {
    /* posix_spawnp looks PATH up with getenv: in the command's environment, not pid 1's own
     * (empty). */
    environ = p->envp;

    /* Handlers first, while every signal is still blocked (since the trampoline): a signal that
     * arrives meanwhile waits, and is forwarded once the command exists. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);
    sigset_t defaults;
    sigemptyset(&defaults);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) {
        if (sigaction(forwarded[i], &sa, NULL) != 0)
            fail(CELL_STEP_START_COMMAND, errno, forwarded[i]);
        sigaddset(&defaults, forwarded[i]);
    }

    int exec_error = 0;
    pid_t pid = start_command(p, &defaults, &exec_error);
    if (pid < 0) {
        report(CELL_REPORT_EXEC_FAILED, CELL_STEP_EXEC_COMMAND, exec_error, 0);
        return exec_error == ENOENT ? 127 : 126; /* as a shell reports it */
    }

    /* Only now that the command exists can a signal be forwarded to it: unblock. */
    command_pid = pid;
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    for (;;) {
        int status = 0;
        pid_t done = waitpid(-1, &status, 0);
        if (done == pid) {
            /* The supervisor reads the command's own status here: pid 1's exit status cannot
             * carry "killed by signal N" (pid 1 cannot be killed from inside). */
            report(CELL_REPORT_EXITED, CELL_STEP_NONE, 0, status);
            return 0;
        }
        /* Any other pid was an orphan reparented to pid 1: reaped, nothing more. */
        if (done < 0 && errno != EINTR)
            return CELL_EXIT_SETUP_FAILED; /* ECHILD: cannot happen while the command lives */
    }
}
