/*
 * cell-init — the sandbox's pid 1.
 *
 * The first process of a pid namespace is special: the kernel drops every signal it has no
 * handler for (even SIGTERM from outside), and every orphan in the namespace is reparented to it.
 * A command run as pid 1 would therefore ignore `kill -TERM` and leave zombies. cell-init is the
 * small init that stands in between: it forwards signals to the command, reaps every zombie, and
 * reports the command's wait status to the supervisor when the command ends — then exits, and
 * the kernel kills whatever is left in the namespace.
 *
 * It is a static program (no loader or library needs to be visible inside the sandbox), executed
 * from a sealed memfd by the sandbox setup (spawn.c) after the lock-down: it runs with no
 * capabilities, no_new_privs and the sandbox's seccomp filter, like the command. It is a normal
 * single-threaded process, so libc is fine here.
 *
 * Usage (by spawn.c only): cell-init STATUS_FD[,GO_FD|:PID] -- COMMAND [ARG...]
 * With GO_FD, the command starts only once the supervisor has written one byte there (it does
 * so when the sandbox's network is up); end of file means the supervisor is gone. With PID, the
 * command was already started by the setup (pid PID, our child): cell-init only forwards
 * signals to it and reaps.
 * Signals are all blocked on entry; they are unblocked once the forwarding handlers are in place.
 */
#define _GNU_SOURCE
#include "../CCellSpawn/include/cell_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Defined here rather than taken from <linux/close_range.h>: cell-init is built against musl
 * when it is available (a 30 KB binary instead of 750 KB; copying it into the sealed memfd and
 * executing it is part of every launch), and musl ships no kernel headers. */
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef SYS_close_range
#define SYS_close_range 436 /* the same number on every architecture */
#endif

static volatile sig_atomic_t command_pid = 0;

/* Signals a user or the supervisor sends to stop or poke the sandbox. The synchronous ones
 * (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) are about init itself, SIGCHLD is ours,
 * and SIGPIPE would only ever come from init's own report pipe. */
static const int forwarded[] = {
    SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH, SIGCONT, SIGTSTP,
    SIGTTIN, SIGTTOU, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGPWR,
};

static void forward(int sig) {
    pid_t pid = command_pid;
    if (pid > 0)
        kill(pid, sig);
}

static void report(int fd, int kind, int step, int error, int value) {
    struct cell_report r = {kind, step, error, value};
    ssize_t n;
    do {
        n = write(fd, &r, sizeof r);
    } while (n < 0 && errno == EINTR);
}

static int parse_fd(const char *s, char **rest) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || v < 3 || v > 1 << 20)
        return -1;
    *rest = end;
    return (int)v;
}

/* The pid of a command the setup already started: 2 or more (pid 1 is ourselves). */
static pid_t parse_pid(const char *s, char **rest) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || end == s || v < 2 || v > 1 << 22)
        return -1;
    *rest = end;
    return (pid_t)v;
}

int main(int argc, char **argv) {
    if (argc < 4 || strcmp(argv[2], "--") != 0)
        return CELL_EXIT_SETUP_FAILED;
    char *rest = NULL;
    int status_fd = parse_fd(argv[1], &rest);
    int go_fd = -1;
    pid_t started = -1;
    if (status_fd >= 0 && *rest == ',')
        go_fd = parse_fd(rest + 1, &rest);
    else if (status_fd >= 0 && *rest == ':' && (started = parse_pid(rest + 1, &rest)) < 0)
        return CELL_EXIT_SETUP_FAILED;
    if (status_fd < 0 || *rest != 0)
        return CELL_EXIT_SETUP_FAILED;
    char **command = argv + 3;

    /* Not dumpable: the command runs as the same uid, and must not be able to ptrace init or
     * open its /proc/1/mem or /proc/1/exe. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaction(forwarded[i], &sa, NULL);

    if (go_fd >= 0) {
        char go;
        ssize_t n;
        do {
            n = read(go_fd, &go, 1);
        } while (n < 0 && errno == EINTR);
        if (n != 1) {
            report(status_fd, CELL_REPORT_FAILED, CELL_STEP_WAIT_GO, n < 0 ? errno : EPIPE, 0);
            return CELL_EXIT_SETUP_FAILED;
        }
        close(go_fd);
    }

    /* The command inherits no descriptor above 2: the report pipe (and anything else) is
     * close-on-exec from here on; cell-init keeps using it. */
    if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) != 0 && fcntl(status_fd, F_SETFD, FD_CLOEXEC) != 0) {
        /* A policy that denies both would hand the command the report pipe: it could forge
         * cell's reports. The command does not start. */
        report(status_fd, CELL_REPORT_FAILED, CELL_STEP_INIT_ARGS, errno, 0);
        return CELL_EXIT_SETUP_FAILED;
    }

    sigset_t none;
    sigemptyset(&none);
    pid_t pid = started;
    if (pid < 0) {
        /* The command: default dispositions for the forwarded signals (and, as posix_spawn does
         * for every handled signal, never our handlers), nothing blocked, its own session and
         * process group (so a TTY it opens never becomes init's), the sandbox's environment, PATH
         * looked up in it. posix_spawn rather than
         * fork: the child shares our memory until it executes, so nothing is copied (measured:
         * ~40 us less per launch), and an exec failure comes back as the return value. */
        posix_spawnattr_t attr;
        posix_spawnattr_init(&attr);
        sigset_t defaults;
        sigemptyset(&defaults);
        for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
            sigaddset(&defaults, forwarded[i]);
        posix_spawnattr_setsigdefault(&attr, &defaults);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID);
        int err = posix_spawnp(&pid, command[0], NULL, &attr, command, environ);
        posix_spawnattr_destroy(&attr);
        if (err == EAGAIN || err == ENOMEM) {
            /* No process could be made (the --pids limit, say): a setup failure, not the command's. */
            report(status_fd, CELL_REPORT_FAILED, CELL_STEP_FORK_COMMAND, err, 0);
            return CELL_EXIT_SETUP_FAILED;
        }
        if (err != 0) {
            report(status_fd, CELL_REPORT_EXEC_FAILED, CELL_STEP_EXEC_COMMAND, err, 0);
            return err == ENOENT ? 127 : 126;
        }
    }
    /* Only now that the command exists can a signal be forwarded to it: unblock. */
    command_pid = pid;
    sigprocmask(SIG_SETMASK, &none, NULL);

    for (;;) {
        int status = 0;
        pid_t done = waitpid(-1, &status, 0);
        if (done == pid) {
            /* The supervisor reads the command's own status from here: init's exit status
             * cannot carry "killed by signal N" (pid 1 cannot kill itself). */
            report(status_fd, CELL_REPORT_EXITED, 0, 0, status);
            return 0;
        }
        if (done < 0 && errno != EINTR)
            return CELL_EXIT_SETUP_FAILED; /* ECHILD: cannot happen while the command lives */
    }
}
