/*
 * namespaces.c — the namespaces pid 1 creates inside the sandbox's user namespace, the limit
 * on nested user namespaces, and the hostname.
 *
 * The trampoline's clone made the user namespace (and the pid namespace, CELL_NS_PID); every
 * other one is unshared here, after the id maps were written, so each is owned by the
 * sandbox's user namespace and by a mapped uid.
 */
#include "cell_init.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

void unshare_namespaces(const struct plan *p) {
    /* One call per namespace, so that a refusal names the namespace the kernel refused.
     * The mount namespace comes first: everything after it, down to pivot_root, changes only
     * this process' view. The cgroup namespace is rooted at the cgroup the supervisor put pid 1
     * in before releasing it. A time namespace applies to children only: the command. */
    static const struct {
        uint32_t bit;
        int flag;
        int step;
    } order[] = {
        {CELL_NS_MOUNT, CLONE_NEWNS, CELL_STEP_NS_MOUNT},
        {CELL_NS_UTS, CLONE_NEWUTS, CELL_STEP_NS_UTS},
        {CELL_NS_IPC, CLONE_NEWIPC, CELL_STEP_NS_IPC},
        {CELL_NS_NET, CLONE_NEWNET, CELL_STEP_NS_NET},
        {CELL_NS_CGROUP, CLONE_NEWCGROUP, CELL_STEP_NS_CGROUP},
        {CELL_NS_TIME, CLONE_NEWTIME, CELL_STEP_NS_TIME},
    };
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        if ((p->namespaces & order[i].bit) && unshare(order[i].flag) != 0)
            fail(order[i].step, errno, 0);
    }
}

/*
 * No nested user namespace (unless the plan says otherwise): seccomp cannot read clone3's
 * flags, which live in memory, but a user namespace whose user.max_user_namespaces is 0 refuses
 * every child user namespace, whatever call asks for it (ENOSPC). The sysctl is per user
 * namespace (the one of the writer): the host's value is untouched. Written through the host's
 * /proc while it is still in view, before the filesystem view replaces it.
 */
void limit_user_namespaces(const struct plan *p) {
    if (!p->has_userns_limit)
        return;
    char value[24];
    if (write_sysctl("/proc/sys/user/max_user_namespaces", format_unsigned(value, p->userns_limit, 10)) != 0)
        fail(CELL_STEP_USERNS_LIMIT, errno, 0);
}

/*
 * SysV shared memory is nobody's private memory, so no process's RLIMIT_DATA counts it: with a
 * memory limit, the sandbox's own IPC namespace holds at most that much of it in all (shmall,
 * in pages) and per segment (shmmax). Per IPC namespace, like the user namespace limit above;
 * writable by the sandbox's uid 0 only (ipc_permissions compares the uid), so the plan has this
 * record only when pid 1 is root inside.
 */
void limit_shared_memory(const struct plan *p) {
    if (!p->has_ipc_limit)
        return;
    char value[24];
    if (write_sysctl("/proc/sys/kernel/shmmax", format_unsigned(value, p->shmmax, 10)) != 0 ||
        write_sysctl("/proc/sys/kernel/shmall", format_unsigned(value, p->shmall, 10)) != 0)
        fail(CELL_STEP_IPC_LIMIT, errno, 0);
}

int write_sysctl(const char *path, const char *value) {
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    size_t len = strlen(value);
    ssize_t n;
    do {
        n = write(fd, value, len);
    } while (n < 0 && errno == EINTR);
    int saved = errno;
    close(fd);
    /* A sysctl takes its value from one write, whole: a short one is a failure. */
    if (n != (ssize_t)len) {
        errno = n < 0 ? saved : EIO;
        return -1;
    }
    return 0;
}

/* Only in the sandbox's own UTS namespace (plan.c refuses a HOSTNAME without one). */
void set_hostname(const struct plan *p) {
    if (p->hostname && sethostname(p->hostname, p->hostname_len) != 0)
        fail(CELL_STEP_HOSTNAME, errno, 0);
}
