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
#include <sys/mount.h>
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
