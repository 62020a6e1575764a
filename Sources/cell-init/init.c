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

/* The forwarded signals: a process of the sandbox's starts with them at their default, never
 * with init's handlers. */
static sigset_t forwarded_set;

int spawn_process(pid_t *pid, char *const argv[], char *const envp[], const struct spawn_how *how) {
    /* Its own session and process group (a terminal it opens never becomes init's), nothing
     * blocked. posix_spawn rather than fork: nothing of init's memory is copied, and an exec
     * failure comes back as the return value. */
    posix_spawnattr_t attr;
    int err = posix_spawnattr_init(&attr);
    if (err != 0)
        return err;
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &forwarded_set);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID);
    posix_spawn_file_actions_t actions;
    if ((err = posix_spawn_file_actions_init(&actions)) != 0) {
        posix_spawnattr_destroy(&attr);
        return err;
    }
    /* A working directory of its own (a process cell-runtime's exec asks for) first: one that
     * is not there fails the spawn, as it fails runc's exec. */
    if (how->cwd)
        err = posix_spawn_file_actions_addchdir_np(&actions, how->cwd);
    /* With a pty (terminal.c): its terminal on the planned descriptors, opened by path after
     * the new session is made (posix_spawn runs setsid first) and without O_NOCTTY, which
     * makes it the process's controlling terminal, its process group the foreground one. */
    int first = -1;
    for (int fd = 0; fd < 3 && err == 0; fd++) {
        if (how->tty && (how->tty_std & (1u << fd))) {
            if (first < 0) {
                err = posix_spawn_file_actions_addopen(&actions, fd, how->tty, O_RDWR, 0);
                first = fd;
            } else {
                err = posix_spawn_file_actions_adddup2(&actions, first, fd);
            }
        } else if (how->stdio) {
            /* The descriptors the request brought (close-on-exec in pid 1: only these copies
             * reach the process). */
            err = posix_spawn_file_actions_adddup2(&actions, how->stdio[fd], fd);
        }
    }
    /* posix_spawnp looks PATH up with getenv: in the process's environment, not pid 1's. */
    char **own = environ;
    environ = (char **)envp;
    if (err == 0)
        err = posix_spawnp(pid, argv[0], &actions, &attr, argv, envp);
    environ = own;
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return err;
}

int run_init(const struct plan *p) {
    /* Handlers first, while every signal is still blocked (since the trampoline): a signal that
     * arrives meanwhile waits, and is forwarded once the command exists. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);
    sigemptyset(&forwarded_set);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) {
        if (sigaction(forwarded[i], &sa, NULL) != 0)
            fail(CELL_STEP_START_COMMAND, errno, forwarded[i]);
        sigaddset(&forwarded_set, forwarded[i]);
    }

    pid_t pid = -1;
    struct spawn_how how = {NULL, p->has_terminal ? p->terminal_path : NULL, p->terminal_std, NULL};
    int err = spawn_process(&pid, p->argv, p->envp, &how);
    /* No process could be made (the RLIMIT_NPROC guard, say): the launch's failure, not the
     * command's. */
    if (err == EAGAIN || err == ENOMEM)
        fail(CELL_STEP_START_COMMAND, err, 0);
    if (err != 0) {
        report(CELL_REPORT_EXEC_FAILED, CELL_STEP_EXEC_COMMAND, err, 0);
        return err == ENOENT ? 127 : 126; /* as a shell reports it */
    }

    /* Only now that the command exists can a signal be forwarded to it: unblock. */
    command_pid = pid;
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* cell-runtime's containers: other processes may be asked for from now on (process.c). */
    if (p->take_processes)
        begin_taking_processes();

    for (;;) {
        int status = 0;
        pid_t done = p->take_processes ? wait_or_take_request(&status) : waitpid(-1, &status, 0);
        if (done == pid) {
            /* The supervisor reads the command's own status here: pid 1's exit status cannot
             * carry "killed by signal N" (pid 1 cannot be killed from inside). */
            report(CELL_REPORT_EXITED, CELL_STEP_NONE, 0, status);
            return 0;
        }
        /* Any other pid was a process exec asked for (reported), or an orphan reparented to
         * pid 1: reaped, nothing more. */
        if (done > 0)
            process_ended(done, status);
        if (done < 0 && errno != EINTR)
            return CELL_EXIT_SETUP_FAILED; /* ECHILD: cannot happen while the command lives */
    }
}
