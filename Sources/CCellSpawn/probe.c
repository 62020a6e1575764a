/*
 * probe.c — can this process create a user namespace, and use it? Asked before a launch fails
 * (to tell the user which host setting refuses it) and by --isolation auto (to choose).
 */
#include "cell_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int cell_probe_user_namespace(void) {
    long pid = syscall(SYS_clone, (unsigned long)CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        _exit(0);
    if (pid < 0)
        return -1;
    while (waitpid((pid_t)pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return 0;
}

/* The child's side: raw calls only (the parent may be multi-threaded). Exits with the errno
 * of the first step that failed, offset by the step (so both come back in one status). */
static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static void probe_child(const char *uid_map, const char *gid_map) {
    if (write_file("/proc/self/setgroups", "deny") != 0 || write_file("/proc/self/uid_map", uid_map) != 0 ||
        write_file("/proc/self/gid_map", gid_map) != 0)
        _exit(CELL_PROBE_MAPS + (errno & 0x3f));
    if (unshare(CLONE_NEWNS) != 0)
        _exit(CELL_PROBE_MOUNT_NS + (errno & 0x3f));
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 || mount("tmpfs", "/", "tmpfs", 0, "size=4k") != 0)
        _exit(CELL_PROBE_MOUNT + (errno & 0x3f));
    _exit(0);
}

int cell_probe_namespaces(const char *uid_map, const char *gid_map) {
    long pid = syscall(SYS_clone, (unsigned long)CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        probe_child(uid_map, gid_map);
    if (pid < 0)
        return CELL_PROBE_CLONE + (errno & 0x3f);
    int status = 0;
    while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : CELL_PROBE_MOUNT;
}

/* Whether a seccomp filter with a user-notification listener can be loaded here (a child loads
 * one that allows everything): 0, or the errno (EBUSY: another listener holds this process
 * tree; EINVAL/ENOSYS: the kernel lacks it; EACCES: no no_new_privs). */
int cell_probe_user_notification(void) {
    long pid = syscall(SYS_clone, (unsigned long)SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
        struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
        struct sock_fprog prog = {1, &allow};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
            _exit(errno & 0xff);
        long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
        _exit(fd < 0 ? (errno & 0xff) : 0);
    }
    if (pid < 0)
        return errno;
    int status = 0;
    while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : EINVAL;
}
