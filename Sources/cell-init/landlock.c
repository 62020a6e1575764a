/*
 * landlock.c — the second wall: a Landlock domain over pid 1 and everything it starts.
 *
 * The supervisor decided the ruleset (Sources/CellLauncher/LandlockRules.swift): which access
 * rights this kernel's ABI handles, and for each place in the view what is allowed beneath it.
 * Here pid 1 only opens each place (O_PATH, in the finished view), adds the rules and restricts
 * itself. A place the view does not have (an optional mount left out) is skipped: nothing is
 * allowed there, which is the safe side. So is one reached through a symlink: the view's mount
 * points never are (mounts.c), but a `[landlock] write` path lies in a tree the sandbox could
 * write, where an earlier run may have planted one — to another tree, or to a host file
 * through /proc/self/fd — and a rule must give rights to the place it names, nothing else.
 * (ENOTDIR: a file stands where the path wants a directory; the place is not there either.)
 *
 * With `required` 0 (best effort), a kernel without Landlock is a warning, not a failure: the
 * namespaces are the first wall and hold alone. Any other error fails the launch.
 */
#include "cell_init.h"
#include "view.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* struct landlock_ruleset_attr as of ABI 6; older kernels take a prefix of it (the supervisor
 * leaves the fields they do not know at 0, and passes the size they do know). */
struct ruleset_attr {
    __u64 handled_access_fs;
    __u64 handled_access_net;
    __u64 scoped;
};

/* What a rule beneath a non-directory may allow: the rights that act on a file. */
#define FILE_RIGHTS                                                                          \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE | \
     (1ULL << 14) /* TRUNCATE */ | (1ULL << 15) /* IOCTL_DEV */)

static void add_path_rule(int ruleset, const struct plan_landlock_rule *r, size_t index) {
    int fd = sys_openat2(AT_FDCWD, r->path, O_PATH | O_CLOEXEC, NO_LINKS);
    if (fd < 0) {
        if (errno == ENOENT || errno == ELOOP || errno == ENOTDIR)
            return;
        fail(CELL_STEP_LANDLOCK, errno, (int)index);
    }
    struct stat st;
    if (fstat(fd, &st) != 0)
        fail(CELL_STEP_LANDLOCK, errno, (int)index);
    struct landlock_path_beneath_attr attr = {
        .allowed_access = S_ISDIR(st.st_mode) ? r->access : r->access & FILE_RIGHTS,
        .parent_fd = fd,
    };
    if (attr.allowed_access != 0 &&
        syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &attr, 0) != 0)
        fail(CELL_STEP_LANDLOCK, errno, (int)index);
    close(fd);
}

/*
 * The command's descriptors 0-2 are inherited, not opened under the domain, so they work as
 * they are; but /dev/stdin and friends reopen them through /proc/self/fd, which leads to the
 * file itself — outside the view, under no rule. Each keeps by path what it was opened for:
 * reading for a readable one, writing (and truncating, as `> /dev/stderr` does) for a writable
 * one — so an input file is never reopened for writing. Pipes and sockets need no rule.
 */
static void add_standard_descriptor_rules(int ruleset, uint64_t handled) {
    for (int fd = 0; fd <= 2; fd++) {
        int flags = fcntl(fd, F_GETFL);
        struct stat st;
        if (flags < 0 || fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)))
            continue;
        int mode = flags & O_ACCMODE;
        uint64_t access = (mode != O_WRONLY ? LANDLOCK_ACCESS_FS_READ_FILE : 0) |
                          (mode != O_RDONLY ? LANDLOCK_ACCESS_FS_WRITE_FILE | (1ULL << 14) : 0);
        struct landlock_path_beneath_attr attr = {.allowed_access = access & handled, .parent_fd = fd};
        /* EBADFD: a descriptor of a kind Landlock takes no rule for (pseudo filesystems). */
        if (attr.allowed_access != 0 &&
            syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &attr, 0) != 0 && errno != EBADFD)
            fail(CELL_STEP_LANDLOCK, errno, -2 - fd);
    }
}

void apply_landlock(const struct plan *p) {
    if (!p->has_landlock)
        return;
    struct ruleset_attr attr = {p->landlock_fs, p->landlock_net, p->landlock_scoped};
    /* ABI 1-3 know handled_access_fs only, 4-5 handled_access_net too, 6 on scoped. */
    size_t size = p->landlock_abi >= 6 ? sizeof attr : p->landlock_abi >= 4 ? 2 * sizeof(__u64) : sizeof(__u64);
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (ruleset < 0) {
        if (!p->landlock_required && (errno == ENOSYS || errno == EOPNOTSUPP)) {
            warn_report(CELL_STEP_LANDLOCK, errno, -1);
            return;
        }
        fail(CELL_STEP_LANDLOCK, errno, -1);
    }
    /* With network rules handled and none added, no TCP port can be bound or reached. */
    for (size_t i = 0; i < p->landlock_rule_count; i++)
        add_path_rule(ruleset, &p->landlock_rules[i], i);
    add_standard_descriptor_rules(ruleset, p->landlock_fs);
    if (syscall(SYS_landlock_restrict_self, ruleset, 0) != 0)
        fail(CELL_STEP_LANDLOCK, errno, -1);
    close(ruleset);
}
