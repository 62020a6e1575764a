/*
 * mounts.c — the sandbox's filesystem view, built by pid 1 in its own mount namespace from the
 * plan's ROOT and MOUNT records.
 *
 * The order, and why:
 *   0. Every mount private (MS_REC|MS_PRIVATE on "/"): nothing done here propagates back to
 *      the host, nor to another sandbox sharing a peer group.
 *   1. Take every bind source first, opened without following any symlink (openat2
 *      RESOLVE_NO_SYMLINKS, O_NOFOLLOW): a symlink planted at a source cannot redirect the bind
 *      (CVE-2024-42472, runc CVE-2021-30465). Its type must be the one the planner saw
 *      (`expect`): pid 1 must not bind something else that appeared in between. A directory
 *      is taken at once as a detached clone of its mount tree (open_tree(OPEN_TREE_CLONE |
 *      AT_RECURSIVE)), so nothing mounted later (the new root over /tmp, say) can hide it or
 *      be cloned with it. Any other source keeps its O_PATH descriptor and is cloned when its
 *      operation runs: nothing can be mounted beneath a non-directory, and an operation skipped
 *      for a missing destination (the optional /proc masks) then clones nothing — closing an
 *      unused clone costs the kernel an RCU grace period.
 *      Read-only, nosuid, nodev, noexec are set on the whole clone with mount_setattr
 *      (AT_RECURSIVE): this covers every submount, and it only adds flags, so the flags the
 *      outer mount locked are kept (a classic remount that drops them fails with EPERM).
 *   2. Create the new root: a fresh tmpfs, attached over an existing directory (ROOT's base)
 *      of this private namespace. Mount points are created below it, never in a host
 *      directory another user could write (bubblewrap CVE-2019-12439) — except where the
 *      planner puts a destination inside a writable bind (see CELL_OPF_NO_CREATE).
 *   3. Run the operations in record order, each destination resolved one component at a time
 *      below the new root (RESOLVE_BENEATH), never through a symlink, and attach with
 *      move_mount. Every destination is resolved afresh from the root: a directory kept open
 *      across operations would go stale once something is mounted over it or its parents.
 *   4. pivot_root into the new root and detach the old one (MNT_DETACH): no path leads back
 *      to the host. Then the root tmpfs itself is made read-only.
 *
 * Any failure ends pid 1 (fail()), so nothing here cleans up after an error: the kernel
 * closes the descriptors and dissolves the detached clones with the process.
 */
#include "cell_init.h"
#include "view.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>


int sys_openat2(int dirfd, const char *path, int flags, unsigned long long resolve) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)flags;
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

static int clone_tree_at(int fd) {
    return (int)syscall(SYS_open_tree, fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
}

int set_attrs(int tree, unsigned long long attrs) {
    struct mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = attrs;
    return (int)syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr);
}

/* Attaches the detached mount `tree` on the object `target` refers to. */
int attach(int tree, int target) {
    return (int)syscall(SYS_move_mount, tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

/* What an operation's own flags ask of its mount. */
unsigned long long op_attrs(const struct plan_mount *m) {
    unsigned long long attrs = 0;
    if (m->flags & CELL_OPF_READONLY)
        attrs |= MOUNT_ATTR_RDONLY;
    if (m->flags & CELL_OPF_NOEXEC)
        attrs |= MOUNT_ATTR_NOEXEC;
    return attrs;
}

/* A detached clone of the mount tree at `fd` (a bind source) with the operation's flags on all
 * of it. Always nosuid; nodev unless it is a device bind (take_source checked that it is one). */
static int clone_source(int fd, const struct plan_mount *m) {
    int tree = clone_tree_at(fd);
    if (tree < 0)
        return -1;
    unsigned long long attrs = op_attrs(m) | MOUNT_ATTR_NOSUID;
    if (!(m->flags & CELL_OPF_DEVICE))
        attrs |= MOUNT_ATTR_NODEV;
    if (set_attrs(tree, attrs) != 0) {
        int err = errno;
        close(tree);
        errno = err;
        return -1;
    }
    return tree;
}

/* ---------------------------------------------------------------- step 1: the bind sources */

/* The source of bind operation `index`, checked against what the planner saw. Returns a clone
 * of a directory's tree (*is_tree = 1), or an O_PATH descriptor of anything else. */
static int take_source(const struct plan_mount *m, int index, int *is_tree) {
    /* O_NOFOLLOW with O_PATH opens a final symlink itself (rather than failing with ELOOP), so
     * that one planted in place of the source is reported as a change below. */
    int fd = sys_openat2(AT_FDCWD, m->source, O_PATH | O_NOFOLLOW | O_CLOEXEC, NO_LINKS);
    if (fd < 0)
        fail(CELL_STEP_MOUNT_SOURCE, errno, index);
    struct stat st;
    if (fstat(fd, &st) != 0)
        fail(CELL_STEP_MOUNT_SOURCE, errno, index);
    uint32_t type = (uint32_t)(st.st_mode & S_IFMT);
    if (m->expect != 0 && type != m->expect)
        fail(CELL_STEP_MOUNT_CHANGED, ESTALE, index);
    /* Without an announced type still never a symlink (plan.c never accepts one as `expect`). */
    if (type == S_IFLNK)
        fail(CELL_STEP_MOUNT_SOURCE, ELOOP, index);
    /* The one bind without nodev must be a device node: never a tree full of them. */
    if ((m->flags & CELL_OPF_DEVICE) && type != S_IFCHR && type != S_IFBLK)
        fail(CELL_STEP_MOUNT_CHANGED, ESTALE, index);
    *is_tree = type == S_IFDIR;
    if (!*is_tree)
        return fd;
    int tree = clone_source(fd, m);
    if (tree < 0)
        fail(CELL_STEP_MOUNT_SOURCE, errno, index);
    close(fd);
    return tree;
}

/* ---------------------------------------------------------------- resolving destinations */

/* The directory `name` in `dir`, created (0755) when missing and `create`; O_PATH, or -1. */
static int open_dir(int dir, const char *name, int create) {
    int fd = sys_openat2(dir, name, O_PATH | O_DIRECTORY | O_CLOEXEC, BENEATH);
    if (fd < 0 && errno == ENOENT && create) {
        if (mkdirat(dir, name, 0755) != 0 && errno != EEXIST)
            return -1;
        fd = sys_openat2(dir, name, O_PATH | O_DIRECTORY | O_CLOEXEC, BENEATH);
    }
    return fd;
}

/*
 * The directory holding `dest` below `root`, with the last component copied to `name`: in one
 * call when it exists (openat2 resolves the whole path under the same rules, beneath the root
 * and without a symlink), else one component at a time, creating the missing ones when
 * `create`. plan.c guarantees `dest` is "/a/b/c": no empty, "." or ".." component, each at
 * most NAME_MAX bytes.
 */
int open_parent(int root, const char *dest, int create, char name[NAME_MAX + 1]) {
    const char *last = strrchr(dest, '/');
    size_t parent_len = (size_t)(last - dest);
    char parent[PATH_MAX];
    if (parent_len > 0 && parent_len < sizeof parent) {
        memcpy(parent, dest + 1, parent_len - 1);
        parent[parent_len - 1] = '\0';
        int dir = sys_openat2(root, parent, O_PATH | O_DIRECTORY | O_CLOEXEC, BENEATH);
        if (dir >= 0 || errno != ENOENT || !create) {
            if (dir >= 0)
                strcpy(name, last + 1);
            return dir;
        }
    }
    int dir = fcntl(root, F_DUPFD_CLOEXEC, 0);
    if (dir < 0)
        return -1;
    for (const char *at = dest + 1;;) {
        const char *slash = strchr(at, '/');
        size_t len = slash ? (size_t)(slash - at) : strlen(at);
        memcpy(name, at, len);
        name[len] = '\0';
        if (!slash)
            return dir;
        int next = open_dir(dir, name, create);
        int err = errno;
        close(dir);
        if (next < 0) {
            errno = err;
            return -1;
        }
        dir = next;
        at = slash + 1;
    }
}

/* The mount point for `dest`: a directory, or an empty regular file for anything else bound.
 * Created unless it must exist already. An O_PATH descriptor, or -1. */
int mount_point(int root, const char *dest, int is_dir, int create) {
    char name[NAME_MAX + 1];
    int parent = open_parent(root, dest, create, name);
    if (parent < 0)
        return -1;
    int fd;
    if (is_dir) {
        fd = open_dir(parent, name, create);
    } else {
        fd = sys_openat2(parent, name, O_PATH | O_CLOEXEC, BENEATH);
        /* mknodat, not open(O_CREAT): nothing is opened for real, so an entry that appears
         * meanwhile (a FIFO, a device) is never opened, only refused or used as a mount point. */
        if (fd < 0 && errno == ENOENT && create) {
            if (mknodat(parent, name, S_IFREG | 0644, 0) == 0 || errno == EEXIST)
                fd = sys_openat2(parent, name, O_PATH | O_CLOEXEC, BENEATH);
        }
    }
    int err = errno;
    close(parent);
    errno = err;
    return fd;
}

/* A destination that cannot be reached: an optional operation is skipped (a /proc file this
 * kernel lacks); anything else ends the launch. Only these errors: a symlink on the way (ELOOP)
 * or a read-only parent (EROFS) is never something to skip. */
static void unreachable(const struct plan_mount *m, int index) {
    int err = errno;
    if ((m->flags & CELL_OPF_OPTIONAL) && (err == ENOENT || err == ENOTDIR || err == EACCES))
        return;
    fail(CELL_STEP_MOUNT_TARGET, err, index);
}

/* ---------------------------------------------------------------- the operations */

/* (struct fs_option: view.h) */
int new_mount(const char *type, const struct fs_option *options, size_t count, unsigned int attrs) {
    int fs = (int)syscall(SYS_fsopen, type, FSOPEN_CLOEXEC);
    if (fs < 0)
        return -1;
    long rc = 0;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        const struct fs_option *o = &options[i];
        rc = o->value ? syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, o->key, o->value, 0)
                      : syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, o->key, NULL, 0);
    }
    if (rc == 0)
        rc = syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0);
    int mnt = rc == 0 ? (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, attrs) : -1;
    int err = errno;
    close(fs);
    errno = err;
    return mnt;
}

/* A tmpfs with an optional size (bytes) and mode, as fsconfig takes them: text. */
int new_tmpfs(uint64_t size, uint32_t mode, unsigned int attrs) {
    char size_text[24], mode_text[24];
    struct fs_option options[2];
    size_t count = 0;
    if (size != CELL_PLAN_NONE_U64)
        options[count++] = (struct fs_option){"size", format_unsigned(size_text, size, 10)};
    if (mode != CELL_PLAN_NONE_U32)
        options[count++] = (struct fs_option){"mode", format_unsigned(mode_text, mode, 8)};
    return new_mount("tmpfs", options, count, attrs);
}

static void bind_source(int root, const struct plan_mount *m, int source, int is_tree, int create, int index) {
    int target = mount_point(root, m->dest, is_tree, create);
    if (target < 0) {
        unreachable(m, index);
        return;
    }
    int tree = is_tree ? source : clone_source(source, m);
    if (tree < 0)
        fail(CELL_STEP_MOUNT_SOURCE, errno, index);
    if (attach(tree, target) != 0)
        fail(CELL_STEP_MOUNT_OP, errno, index);
    if (tree != source)
        close(tree);
    close(target);
}

/* tmpfs, proc, devpts, mqueue: all nosuid; nodev except devpts (its nodes are the ptys). */
static void mount_new(int root, const struct plan_mount *m, int create, int index) {
    int target = mount_point(root, m->dest, 1, create);
    if (target < 0) {
        unreachable(m, index);
        return;
    }
    unsigned int attrs = (unsigned int)op_attrs(m) | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    int mnt;
    if (m->kind == CELL_OP_TMPFS) {
        mnt = new_tmpfs(m->size, m->mode, attrs);
    } else if (m->kind == CELL_OP_PROC) {
        /* The procfs of pid 1's pid namespace. The kernel allows it only while a full procfs
         * is visible in this mount namespace: the host's /proc, until pivot_root. */
        mnt = new_mount("proc", NULL, 0, attrs | MOUNT_ATTR_NOEXEC);
    } else if (m->kind == CELL_OP_MQUEUE) {
        mnt = new_mount("mqueue", NULL, 0, attrs | MOUNT_ATTR_NOEXEC);
    } else if (m->kind == CELL_OP_SYSFS) {
        /* Allowed only in a network namespace of the sandbox's own user namespace. */
        mnt = new_mount("sysfs", NULL, 0, attrs | MOUNT_ATTR_NOEXEC);
    } else {
        /* A private instance: the host's ptys are not in it. */
        /* max: every devpts instance but the host's draws on one pool (kernel.pty.max less
         * kernel.pty.reserve, 3072 by default); without a cap one sandbox could take all of it,
         * and every other sandbox's terminal, podman's, a new ssh login's with it. */
        static const struct fs_option devpts[] = {
            {"newinstance", NULL}, {"ptmxmode", "0666"}, {"mode", "0620"}, {"max", "64"}};
        mnt = new_mount("devpts", devpts, 4, (attrs & ~(unsigned int)MOUNT_ATTR_NODEV) | MOUNT_ATTR_NOEXEC);
    }
    if (mnt < 0 || attach(mnt, target) != 0)
        fail(CELL_STEP_MOUNT_OP, errno, index);
    close(mnt);
    close(target);
}

/* The mount tree at `dest` read-only: a read-only clone of it attached on top of it (a clone,
 * so that a directory inside a mount, /proc/sys say, is covered without the rest of it).
 * Nothing is created; a file (/proc/sysrq-trigger) works as well as a directory. nodev is not
 * added: the only mounts without it are the ones planned so (devices, devpts). */
static void remount_readonly(int root, const struct plan_mount *m, int index) {
    char name[NAME_MAX + 1];
    int parent = open_parent(root, m->dest, 0, name);
    if (parent < 0) {
        unreachable(m, index);
        return;
    }
    int target = sys_openat2(parent, name, O_PATH | O_CLOEXEC, BENEATH);
    int err = errno;
    close(parent);
    if (target < 0) {
        errno = err;
        unreachable(m, index);
        return;
    }
    int tree = clone_tree_at(target);
    if (tree < 0 || set_attrs(tree, op_attrs(m) | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID) != 0 ||
        attach(tree, target) != 0)
        fail(CELL_STEP_MOUNT_OP, errno, index);
    close(tree);
    close(target);
}

static int write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A directory, symlink or file of the plan's own. Modes are exact: build_view set umask 0. */
static void make_entry(int root, const struct plan_mount *m, int create, int index) {
    char name[NAME_MAX + 1];
    int parent = open_parent(root, m->dest, create, name);
    if (parent < 0) {
        unreachable(m, index);
        return;
    }
    int rc;
    if (m->kind == CELL_OP_DIR) {
        rc = mkdirat(parent, name, m->mode != CELL_PLAN_NONE_U32 ? m->mode : 0755);
        /* One that exists already is kept as it is (its mode too), if it is a directory. */
        struct stat st;
        if (rc != 0 && errno == EEXIST && fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
            rc = 0;
    } else if (m->kind == CELL_OP_SYMLINK) {
        rc = symlinkat(m->source, parent, name);
    } else {
        /* O_EXCL: a new file, never an existing one (nor anything a symlink points to). */
        int fd = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
                        m->mode != CELL_PLAN_NONE_U32 ? m->mode : 0644);
        rc = fd < 0 ? -1 : write_all(fd, m->source, m->source_len);
        if (fd >= 0)
            close(fd);
    }
    if (rc != 0)
        fail(CELL_STEP_MOUNT_OP, errno, index);
    close(parent);
}

/* ---------------------------------------------------------------- the whole view */

/* The new root, attached over `base` (ROOT): a tmpfs holding only mount points and the plan's
 * files, nosuid and nodev. Returns its descriptor (the mount's root directory). */
static int make_root(const struct plan *p) {
    if (p->root_tree)
        return take_root_tree(p); /* container.c: an OCI bundle's root */
    int base = sys_openat2(AT_FDCWD, p->root_base, O_PATH | O_DIRECTORY | O_CLOEXEC, NO_LINKS);
    if (base < 0)
        fail(CELL_STEP_MOUNT_ROOT, errno, 0);
    int root = new_tmpfs(p->root_size, 0755, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    if (root < 0 || attach(root, base) != 0)
        fail(CELL_STEP_MOUNT_ROOT, errno, 0);
    close(base);
    return root;
}

void build_view(const struct plan *p) {
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        fail(CELL_STEP_MOUNT_PRIVATE, errno, 0);
    /* Modes given by the plan are exact; the caller's umask is back before the command runs. */
    mode_t saved_umask = umask(0);

    /* 1. Every bind source, before anything is mounted over it. */
    int *sources = calloc(p->mount_count + 1, sizeof *sources);
    int *changes = calloc(p->mount_count + 1, sizeof *changes);
    char *is_tree = calloc(p->mount_count + 1, 1);
    if (!sources || !changes || !is_tree)
        fail(CELL_STEP_MOUNT_SOURCE, ENOMEM, 0);
    for (size_t i = 0; i < p->mount_count; i++) {
        const struct plan_mount *m = &p->mounts[i];
        int tree = 0;
        sources[i] = m->kind == CELL_OP_BIND || m->kind == CELL_OP_OVERLAY ? take_source(m, (int)i, &tree) : -1;
        is_tree[i] = (char)tree;
        /* An overlay's changes directory: taken now too, never through a symlink. */
        changes[i] = m->upper ? sys_openat2(AT_FDCWD, m->upper, O_PATH | O_DIRECTORY | O_CLOEXEC, NO_LINKS) : -1;
        if (m->upper && changes[i] < 0)
            fail(CELL_STEP_MOUNT_SOURCE, errno, (int)i);
    }

    /* 2. The new root. */
    int root = make_root(p);

    /* 3. The operations, in order. */
    for (size_t i = 0; i < p->mount_count; i++) {
        const struct plan_mount *m = &p->mounts[i];
        int create = !(m->flags & CELL_OPF_NO_CREATE);
        int index = (int)i;
        switch (m->kind) {
        case CELL_OP_BIND:
            bind_source(root, m, sources[i], is_tree[i], create, index);
            break;
        case CELL_OP_TMPFS:
        case CELL_OP_PROC:
        case CELL_OP_DEVPTS:
        case CELL_OP_MQUEUE:
        case CELL_OP_SYSFS:
            mount_new(root, m, create, index);
            break;
        case CELL_OP_REMOUNT_RO:
            remount_readonly(root, m, index);
            break;
        case CELL_OP_OVERLAY:
            mount_overlay(root, m, sources[i], changes[i], create, index);
            break;
        case CELL_OP_DIR:
        case CELL_OP_SYMLINK:
        case CELL_OP_FILE:
            make_entry(root, m, create, index);
            break;
        case CELL_OP_HIDE:
            hide_entry(root, m, index);
            break;
        default: /* plan.c accepts none other */
            fail(CELL_STEP_MOUNT_OP, EINVAL, index);
        }
        /* Done with the source either way: attached, or (skipped) dissolved on close. */
        if (sources[i] >= 0)
            close(sources[i]);
        if (changes[i] >= 0)
            close(changes[i]);
    }
    free(sources);
    free(changes);
    free(is_tree);

    /* 4. Into the new root. pivot_root(".", ".") stacks the old root on the new one; detaching
     * it leaves no path back to the host (the host's /proc included). */
    if (fchdir(root) != 0 || syscall(SYS_pivot_root, ".", ".") != 0 || umount2(".", MNT_DETACH) != 0 ||
        chdir("/") != 0)
        fail(CELL_STEP_PIVOT_ROOT, errno, 0);
    close(root);
    /* The root tmpfs holds only mount points and the plan's files: read-only from now on. Not
     * recursive: the mounts on it keep their own flags (/tmp and the home stay writable). A
     * bundle's root (container.c) is read-only only when its config says so. */
    if (p->root_tree && !(p->root_flags & CELL_OPF_READONLY)) {
        umask(saved_umask);
        return;
    }
    struct mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = MOUNT_ATTR_RDONLY;
    if (syscall(SYS_mount_setattr, AT_FDCWD, "/", 0, &attr, sizeof attr) != 0)
        fail(CELL_STEP_ROOT_READONLY, errno, 0);

    umask(saved_umask);
}
