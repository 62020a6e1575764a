/*
 * helper.c — starting the user-mode network's helper (pasta, slirp4netns) as a child of cell
 * that cannot outlive it.
 *
 * pasta attached to a sandbox by pid never exits on its own, and slirp4netns only when told:
 * were cell killed with SIGKILL, either would stay, holding the sandbox's network namespace.
 * PR_SET_PDEATHSIG makes the kernel kill the helper when cell goes, whatever the way.
 * posix_spawn cannot set it, hence this fork. cell has threads, so the child makes only
 * async-signal-safe calls until execve.
 */
#include "cell_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

pid_t cell_spawn_helper(const char *path, char *const argv[], char *const envp[],
                        const int *from, const int *to, int count, int output) {
    /* Every signal blocked across the fork: nothing of cell's runs in the child. */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) {
        int saved_errno = errno;
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        errno = saved_errno;
        return pid;
    }

    /* Dies with cell. If cell is already gone, the signal would never come: stop here. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(127);

    /* 0 is /dev/null; 1 and 2 the log (or /dev/null); then the helper's own descriptors, each
     * first copied above them all so that no dup2 overwrites one not yet moved. */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0 || dup2(output >= 0 ? output : null, 1) < 0 || dup2(output >= 0 ? output : null, 2) < 0)
        _exit(127);
    int moved[8];
    if (count > 8)
        _exit(127);
    for (int i = 0; i < count; i++)
        if ((moved[i] = fcntl(from[i], F_DUPFD_CLOEXEC, 64)) < 0)
            _exit(127);
    for (int i = 0; i < count; i++)
        if (dup2(moved[i], to[i]) < 0) /* dup2 leaves the target without FD_CLOEXEC */
            _exit(127);

    /* Default dispositions and an empty mask: cell ignores and blocks signals the helper must
     * not (SIGPIPE, the ones it forwards to the sandbox). */
    struct sigaction dfl = {0};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < 65; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    execve(path, argv, envp);
    _exit(127);
}

int cell_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}
