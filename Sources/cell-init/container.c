/*
 * container.c — what an OCI runtime's plan (cell-runtime) adds to a sandbox: namespaces an
 * engine made and hands in by path, a root that is the bundle's own directory rather than a
 * new tmpfs, and the ids the config's process runs as.
 *
 * `cell run` uses none of these: it makes every namespace itself, builds its root from
 * read-only binds on a tmpfs, and runs the command with the ids of the sandbox's setup.
 */
#include "view.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * The engine's namespaces (a network namespace that podman's pasta or slirp4netns serves,
 * say), entered before pid 1 unshares the others (setup.c). The path is the engine's: opened
 * as given (a /proc/PID/ns/net magic link included), and setns checks that the descriptor is a
 * namespace of the planned type, so a path that leads to anything else fails.
 */
void join_namespaces(const struct plan *p) {
    static const struct {
        uint32_t bit;
        int flag;
    } types[] = {{CELL_NS_NET, CLONE_NEWNET}, {CELL_NS_IPC, CLONE_NEWIPC}, {CELL_NS_UTS, CLONE_NEWUTS},
                 {CELL_NS_CGROUP, CLONE_NEWCGROUP}};
    for (size_t i = 0; i < p->join_count; i++) {
        int flag = 0;
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
            if (types[t].bit == p->joins[i].bit)
                flag = types[t].flag;
        int fd = open(p->joins[i].path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, flag) != 0)
            fail(CELL_STEP_JOIN_NAMESPACE, errno, (int)p->joins[i].bit);
        close(fd);
    }
}

/*
 * The root as a detached clone of the bundle's root filesystem and every mount below it,
 * attached over that same directory in pid 1's private mount namespace (the host's stays as it
 * was). The path is reached without a symlink (the planner resolved the engine's path first).
 * nosuid and nodev on all of it: a device node or a setuid file in an image gives nothing
 * (the container's /dev is the plan's own tmpfs and device binds). Mount points for the
 * config's mounts are made inside it, as runc and crun do: the rootfs is the container's.
 */
int take_root_tree(const struct plan *p) {
    int dir = sys_openat2(AT_FDCWD, p->root_tree, O_PATH | O_DIRECTORY | O_CLOEXEC, NO_LINKS);
    if (dir < 0)
        fail(CELL_STEP_MOUNT_ROOT, errno, 0);
    int tree = (int)syscall(SYS_open_tree, dir, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
    if (tree < 0 || set_attrs(tree, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV) != 0 || attach(tree, dir) != 0)
        fail(CELL_STEP_MOUNT_ROOT, errno, 0);
    close(dir);
    return tree;
}

/*
 * The config's user: supplementary groups, gid, then uid — the order in which each change is
 * still allowed (setgroups and setresgid need CAP_SETGID, which leaving uid 0 would clear).
 * KEEP_CAPS keeps the permitted set across the uid change, and the effective set is raised
 * again from it, so that the lock-down after this (drop_capabilities) still has CAP_SETPCAP
 * to shrink the bounding set and lock the securebits. A change of ids clears
 * PR_SET_PDEATHSIG: it is armed again, and the supervisor's presence checked as the
 * trampoline does.
 */
void set_user(const struct plan *p) {
    if (!p->has_user)
        return;
    gid_t groups[CELL_MAX_GROUPS];
    for (size_t i = 0; i < p->user_group_count; i++)
        groups[i] = (gid_t)p->user_groups[i];
    if (syscall(SYS_setgroups, p->user_group_count, groups) != 0 ||
        syscall(SYS_setresgid, p->user_gid, p->user_gid, p->user_gid) != 0 ||
        prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_setresuid, p->user_uid, p->user_uid, p->user_uid) != 0 ||
        prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0)
        fail(CELL_STEP_SET_USER, errno, 0);
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0)
        fail(CELL_STEP_SET_USER, errno, 0);
    for (int i = 0; i < 2; i++)
        data[i].effective = data[i].permitted;
    if (syscall(SYS_capset, &header, data) != 0)
        fail(CELL_STEP_SET_USER, errno, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        fail(CELL_STEP_SET_USER, errno, 0);
    struct pollfd control = {CELL_FD_CONTROL, POLLRDHUP, 0};
    if (poll(&control, 1, 0) < 0 || (control.revents & (POLLHUP | POLLRDHUP | POLLERR)))
        fail(CELL_STEP_SET_USER, EPIPE, 0);
}

/*
 * The config's sysctls, in the namespaces just made or joined (the planner allows only those
 * of a namespace the container has: net.*, the IPC ones), through the host's /proc while it is
 * still in view: /proc/sys shows the writer's own namespaces.
 */
void set_sysctls(const struct plan *p) {
    for (size_t i = 0; i < p->sysctl_count; i++) {
        char path[PATH_MAX] = "/proc/sys/";
        size_t at = strlen(path), len = strlen(p->sysctls[i].name);
        if (at + len >= sizeof path)
            fail(CELL_STEP_SYSCTL, ENAMETOOLONG, (int)i);
        for (size_t k = 0; k <= len; k++)
            path[at + k] = p->sysctls[i].name[k] == '.' ? '/' : p->sysctls[i].name[k];
        if (write_sysctl(path, p->sysctls[i].value) != 0)
            fail(CELL_STEP_SYSCTL, errno, (int)i);
    }
}
