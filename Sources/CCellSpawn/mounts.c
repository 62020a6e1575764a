/*
 * mounts.c — the sandbox's filesystem view, built by its pid 1 in its own mount namespace.
 *
 * The order, and why:
 *   1. Take every bind source first, opened without following any symlink (openat2
 *      RESOLVE_NO_SYMLINKS): a symlink planted at a source cannot redirect the bind
 *      (CVE-2024-42472, runc CVE-2021-30465). A directory is taken as a detached clone of its
 *      mount tree (open_tree(OPEN_TREE_CLONE|AT_RECURSIVE)) at once, so that nothing mounted
 *      later (the new root over /tmp, say) can hide it or be cloned with it. A file keeps its
 *      O_PATH descriptor and is cloned when its operation runs: nothing can be mounted beneath
 *      a file, and so an operation skipped for a missing destination (the optional /proc masks)
 *      clones nothing — closing an unused clone costs the kernel an RCU grace period.
 *      Read-only and nosuid/nodev are set on the whole clone with mount_setattr(AT_RECURSIVE):
 *      this covers every submount, and only adds flags, so flags the outer mount locked are kept
 *      (a classic remount that drops them fails with EPERM).
 *   2. Create the new root: a fresh tmpfs, attached over an existing directory inside this
 *      private mount namespace. Mount points are only ever created inside it, never in a host
 *      directory another user could write (bubblewrap CVE-2019-12439).
 *   3. Run the operations in order, each destination resolved component by component below
 *      the new root without following symlinks, and attach with move_mount.
 *   4. pivot_root into the new root and detach the old one (MNT_DETACH), then make the root
 *      tmpfs itself read-only.
 *
 * Runs in a CLONE_VM child: raw syscalls and stack buffers only.
 */
#include "cell_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

static int sys_openat2(int dirfd, const char *path, int flags, mode_t mode, unsigned long long resolve) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)flags;
    how.mode = flags & O_CREAT ? mode : 0;
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

static int sys_open_tree(int dirfd, const char *path, unsigned int flags) {
    return (int)syscall(SYS_open_tree, dirfd, path, flags);
}

static int sys_move_mount(int from_fd, int to_fd) {
    return (int)syscall(SYS_move_mount, from_fd, "", to_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

static int sys_mount_setattr(int fd, const char *path, unsigned int at_flags, unsigned long long set) {
    struct mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = set;
    return (int)syscall(SYS_mount_setattr, fd, path, at_flags, &attr, sizeof attr);
}

static void close_keep_errno(int fd) {
    int saved = errno;
    if (fd >= 0)
        syscall(SYS_close, fd);
    errno = saved;
}

/* `v` in `base` (8 or 10), NUL-terminated, as fsconfig takes it; `out` holds 24 bytes. */
static const char *format_unsigned(char *out, unsigned long long v, unsigned int base) {
    char *p = out + 23;
    *p = '\0';
    do {
        *--p = (char)('0' + v % base);
        v /= base;
    } while (v > 0 && p > out);
    return p;
}

static mode_t mode_or(const struct cell_mount_op *op, mode_t fallback) {
    return op->mode >= 0 ? (mode_t)op->mode : fallback;
}

/* Strict resolution of one path component: no symlink, no "..", nothing outside `dirfd`. */
#define STRICT_RESOLVE (RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH | RESOLVE_NO_XDEV)

/*
 * Opens the directory at `path` (absolute) below `root`, one component at a time, creating the
 * missing ones when `create`. Never follows a symlink. Returns an O_PATH fd or -1.
 * `last` receives the final component's name when `stop_before_last` (the caller creates it).
 */
static int walk_beneath(int root, const char *path, int create, int stop_before_last, char *last, size_t last_size) {
    int dir = (int)syscall(SYS_dup, root);
    if (dir < 0)
        return -1;
    const char *p = path;
    char name[256];
    for (;;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        size_t len = 0;
        while (p[len] && p[len] != '/')
            len++;
        if (len >= sizeof name) {
            close_keep_errno(dir);
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(name, p, len);
        name[len] = 0;
        p += len;
        while (*p == '/')
            p++;
        if (stop_before_last && !*p) {
            if (len >= last_size) {
                close_keep_errno(dir);
                errno = ENAMETOOLONG;
                return -1;
            }
            memcpy(last, name, len + 1);
            return dir;
        }
        if (create && mkdirat(dir, name, 0755) != 0 && errno != EEXIST) {
            close_keep_errno(dir);
            return -1;
        }
        /* RESOLVE_NO_XDEV is left out here: crossing into a mount made by an earlier operation
         * (a bind of /usr, say) is expected. */
        int next = sys_openat2(dir, name, O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
                               RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH);
        close_keep_errno(dir);
        if (next < 0)
            return -1;
        dir = next;
    }
    if (stop_before_last) {
        close_keep_errno(dir);
        errno = EINVAL; /* "/" has no last component */
        return -1;
    }
    return dir;
}

/*
 * The directory the previous operation's destination was in, kept open for the next one: most
 * operations land in the same directory as the one before (/etc/..., /dev/...), and resolving it
 * again from the root costs four system calls per operation. It was resolved like any other
 * (below the root, no symlinks); it is dropped before anything is mounted on it or on one of
 * its ancestors, after which the fd would name a covered directory.
 */
struct parent_cache {
    int fd;       /* -1: empty */
    int valid;    /* 0: the path did not fit; the fd is only kept to be closed */
    char path[4096]; /* "" for the root itself */
};

static void cache_drop(struct parent_cache *c) {
    close_keep_errno(c->fd);
    c->fd = -1;
}

/* Drops the cached directory if `dest` is it or one of its ancestors. */
static void cache_forget_under(struct parent_cache *c, const char *dest) {
    if (c->fd < 0)
        return;
    size_t len = strlen(dest);
    while (len > 0 && dest[len - 1] == '/')
        len--;
    if (!c->valid || (strncmp(c->path, dest, len) == 0 && (c->path[len] == '\0' || c->path[len] == '/')))
        cache_drop(c);
}

/* The directory holding `dest` (absolute, normalized), with its last component copied to
 * `name`: from the cache, or resolved below `root` (creating missing directories when `create`)
 * and cached. The fd belongs to the cache: do not close it. */
static int cached_parent(struct parent_cache *c, int root, const char *dest, int create, char *name, size_t name_size) {
    const char *slash = strrchr(dest, '/');
    if (!slash || !slash[1]) {
        errno = EINVAL;
        return -1;
    }
    size_t parent_len = (size_t)(slash - dest);
    if (c->fd >= 0 && c->valid && strlen(c->path) == parent_len && strncmp(c->path, dest, parent_len) == 0) {
        size_t len = strlen(slash + 1);
        if (len >= name_size) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(name, slash + 1, len + 1);
        return c->fd;
    }
    int fd = walk_beneath(root, dest, create, 1, name, name_size);
    if (fd < 0)
        return -1;
    cache_drop(c);
    c->fd = fd;
    c->valid = parent_len < sizeof c->path;
    if (c->valid) {
        memcpy(c->path, dest, parent_len);
        c->path[parent_len] = '\0';
    }
    return fd;
}

/* The mount point for `dest`: a directory or an empty file (`is_dir`), created unless the
 * operation says it must already exist. Returns an fd usable with move_mount, or -1. */
static int mount_point(struct parent_cache *cache, int root, const char *dest, int is_dir, int create) {
    char name[256];
    int parent = cached_parent(cache, root, dest, create, name, sizeof name);
    if (parent < 0)
        return -1;
    /* Nothing may be mounted over the cached directory itself (see struct parent_cache). */
    cache_forget_under(cache, dest);
    if (is_dir) {
        if (create && mkdirat(parent, name, 0755) != 0 && errno != EEXIST)
            return -1;
        /* RESOLVE_NO_XDEV is left out, as in walk_beneath. */
        return sys_openat2(parent, name, O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
                           RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH);
    }
    int fd;
    if (create) {
        fd = sys_openat2(parent, name, O_CREAT | O_WRONLY | O_CLOEXEC, 0644,
                         RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH);
        if (fd < 0 && errno == EISDIR)
            errno = ENOTDIR;
        /* Opened for writing only to create it; an existing read-only file is fine as is. */
        if (fd < 0 && (errno == EROFS || errno == EACCES))
            fd = sys_openat2(parent, name, O_PATH | O_CLOEXEC, 0, RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH);
    } else {
        fd = sys_openat2(parent, name, O_PATH | O_CLOEXEC, 0, RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH);
    }
    return fd;
}

/* A new mount of filesystem `type` (fsopen/fsconfig/fsmount), detached; -1 on error. */
static int new_mount(const char *type, const struct cell_mount_op *op, unsigned int attrs) {
    int fs = (int)syscall(SYS_fsopen, type, FSOPEN_CLOEXEC);
    if (fs < 0)
        return -1;
    int rc = 0;
    char number[24];
    if (op && op->has_size && rc == 0)
        rc = (int)syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "size", format_unsigned(number, op->size, 10), 0);
    if (op && op->mode >= 0 && rc == 0)
        rc = (int)syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "mode", format_unsigned(number, (unsigned int)op->mode, 8), 0);
    if (op && op->kind == CELL_OP_DEVPTS && rc == 0) {
        rc = (int)syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, "newinstance", NULL, 0);
        if (rc == 0)
            rc = (int)syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "ptmxmode", "0666", 0);
        if (rc == 0)
            rc = (int)syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "mode", "0620", 0);
    }
    if (rc == 0)
        rc = (int)syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0);
    int mnt = rc == 0 ? (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, attrs) : -1;
    close_keep_errno(fs);
    return mnt;
}

static int write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = (ssize_t)syscall(SYS_write, fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* What an optional operation tolerates: a path that does not exist or cannot be reached. */
static int is_missing(int err) {
    return err == ENOENT || err == ENOTDIR || err == EACCES;
}

/* A detached clone of the mount tree at `fd` (a bind source), with the operation's flags set
 * on all of it; -1 on error. */
static int clone_source(int fd, const struct cell_mount_op *op) {
    int tree = sys_open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
    if (tree < 0)
        return -1;
    unsigned long long attrs = MOUNT_ATTR_NOSUID;
    if (!(op->flags & CELL_OPF_DEVICE))
        attrs |= MOUNT_ATTR_NODEV;
    if (op->flags & CELL_OPF_READONLY)
        attrs |= MOUNT_ATTR_RDONLY;
    if (op->flags & CELL_OPF_NOEXEC)
        attrs |= MOUNT_ATTR_NOEXEC;
    if (sys_mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, attrs) != 0) {
        close_keep_errno(tree);
        return -1;
    }
    return tree;
}

/* How step 1 found a host entry (CELL_OP_HOST_ENTRY) to be replicated. */
enum { HOST_BIND = 0, HOST_COPY = 1, HOST_LINK = 2 };
/* Host files up to this size are copied into the new root rather than bound: a copy costs a
 * fraction of a bind (open_tree, mount_setattr, move_mount), and a launch has a dozen. */
#define HOST_COPY_MAX (32 * 1024)

/* What step 1 took of a bind's source: a clone of a directory's mount tree, or a file's O_PATH
 * descriptor to clone once its destination is there; for a host entry, how it is replicated
 * (a file to copy is open for reading, a symlink is an O_PATH descriptor of the link). */
struct bind_source {
    int fd;      /* -1: none (not a bind, or an optional source that does not exist) */
    int is_tree; /* fd is the clone itself */
    int as;      /* HOST_*, for CELL_OP_HOST_ENTRY */
};

/* Step 1 for a host entry: what it is, looked at without following a symlink anywhere in its
 * path (one on the way leaves the entry out; the entry itself being one is recreated). A small
 * regular file is opened for reading (non-blocking: a FIFO cannot stall the launch), anything
 * else is taken as a bind source. 0 with t->fd -1 when there is nothing to replicate. */
static int take_host_entry(const struct cell_mount_op *op, struct bind_source *t) {
    const unsigned long long resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    int readable = 1;
    int fd = sys_openat2(AT_FDCWD, op->source, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0, resolve);
    if (fd < 0 && (errno == ELOOP || errno == EACCES || errno == ENXIO || errno == EPERM)) {
        readable = 0;
        fd = sys_openat2(AT_FDCWD, op->source, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0, resolve);
    }
    if (fd < 0)
        return is_missing(errno) || errno == ELOOP ? 0 : -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close_keep_errno(fd);
        return -1;
    }
    t->fd = fd;
    t->is_tree = 0;
    t->as = HOST_BIND;
    if (S_ISLNK(st.st_mode)) {
        t->as = HOST_LINK;
    } else if (S_ISREG(st.st_mode) && readable && st.st_size <= HOST_COPY_MAX) {
        t->as = HOST_COPY;
    } else if (S_ISDIR(st.st_mode)) {
        t->fd = clone_source(fd, op);
        t->is_tree = 1;
        close_keep_errno(fd);
        if (t->fd < 0)
            return -1;
    }
    return 0;
}

/* Attaches a bind source taken in step 1 at op->dest. */
static int attach_source(struct parent_cache *cache, int root, const struct cell_mount_op *op, struct bind_source *taken,
                         int create, int *step) {
    *step = CELL_STEP_MOUNT_TARGET;
    int target = mount_point(cache, root, op->dest, taken->is_tree, create);
    if (target < 0)
        return -1;
    int rc = -1;
    if (!taken->is_tree) {
        *step = CELL_STEP_MOUNT_SOURCE;
        int tree = clone_source(taken->fd, op);
        if (tree < 0)
            goto out;
        close_keep_errno(taken->fd);
        taken->fd = tree;
        taken->is_tree = 1;
    }
    *step = CELL_STEP_MOUNT_OP;
    rc = sys_move_mount(taken->fd, target);
out:
    close_keep_errno(target);
    return rc;
}

/* A copy of the open host file `from` (at most HOST_COPY_MAX bytes) as `name` in `parent`. */
static int copy_host_file(int parent, const char *name, int from) {
    int fd = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    size_t left = HOST_COPY_MAX;
    ssize_t n;
    while (left > 0 && (n = sendfile(fd, from, NULL, left)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            close_keep_errno(fd);
            return -1;
        }
        left -= (size_t)n;
    }
    close_keep_errno(fd);
    return 0;
}

/* Runs one operation below `root`; `taken` is what step 1 took for a bind. */
static int run_op(struct parent_cache *cache, int root, const struct cell_mount_op *op, struct bind_source *taken, int *step) {
    int create = !(op->flags & CELL_OPF_NO_CREATE);
    unsigned int attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if (op->flags & CELL_OPF_READONLY)
        attrs |= MOUNT_ATTR_RDONLY;
    if (op->flags & CELL_OPF_NOEXEC)
        attrs |= MOUNT_ATTR_NOEXEC;

    int source = -1, target = -1, rc = -1;
    switch (op->kind) {
    case CELL_OP_BIND:
        return attach_source(cache, root, op, taken, create, step);
    case CELL_OP_HOST_ENTRY: {
        if (taken->is_tree || taken->as == HOST_BIND)
            return attach_source(cache, root, op, taken, create, step);
        char name[256];
        *step = CELL_STEP_MOUNT_TARGET;
        int parent = cached_parent(cache, root, op->dest, 1, name, sizeof name);
        if (parent < 0)
            return -1;
        *step = CELL_STEP_MOUNT_OP;
        if (taken->as == HOST_COPY)
            return copy_host_file(parent, name, taken->fd);
        char link[PATH_MAX];
        ssize_t n = readlinkat(taken->fd, "", link, sizeof link - 1);
        if (n < 0)
            return -1;
        link[n] = '\0';
        return symlinkat(link, parent, name);
    }
    case CELL_OP_TMPFS:
    case CELL_OP_PROC:
    case CELL_OP_DEVPTS:
    case CELL_OP_MQUEUE: {
        static const char *const types[] = {
            [CELL_OP_TMPFS] = "tmpfs", [CELL_OP_PROC] = "proc", [CELL_OP_DEVPTS] = "devpts",
            [CELL_OP_MQUEUE] = "mqueue",
        };
        if (op->kind == CELL_OP_PROC || op->kind == CELL_OP_MQUEUE)
            attrs |= MOUNT_ATTR_NOEXEC;
        if (op->kind == CELL_OP_DEVPTS)
            attrs = (attrs & ~(unsigned int)MOUNT_ATTR_NODEV) | MOUNT_ATTR_NOEXEC;
        *step = CELL_STEP_MOUNT_TARGET;
        target = mount_point(cache, root, op->dest, 1, create);
        if (target < 0)
            return -1;
        *step = CELL_STEP_MOUNT_OP;
        source = new_mount(types[op->kind], op, attrs);
        if (source < 0)
            break;
        rc = sys_move_mount(source, target);
        break;
    }
    case CELL_OP_REMOUNT_RO: {
        cache_forget_under(cache, op->dest);
        *step = CELL_STEP_MOUNT_TARGET;
        target = walk_beneath(root, op->dest, 0, 0, NULL, 0);
        if (target < 0) {
            /* a file (e.g. /proc/sysrq-trigger): open it without following symlinks */
            char name[256];
            int parent = walk_beneath(root, op->dest, 0, 1, name, sizeof name);
            if (parent < 0)
                return -1;
            target = sys_openat2(parent, name, O_PATH | O_CLOEXEC, 0, RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH);
            close_keep_errno(parent);
            if (target < 0)
                return -1;
        }
        *step = CELL_STEP_MOUNT_OP;
        source = sys_open_tree(target, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
        if (source < 0)
            break;
        rc = sys_mount_setattr(source, "", AT_EMPTY_PATH | AT_RECURSIVE, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
        if (rc == 0)
            rc = sys_move_mount(source, target);
        break;
    }
    case CELL_OP_DIR: {
        /* The caller set umask 0, so the mode is exact. */
        char name[256];
        *step = CELL_STEP_MOUNT_TARGET;
        int parent = cached_parent(cache, root, op->dest, 1, name, sizeof name);
        if (parent < 0)
            return -1;
        *step = CELL_STEP_MOUNT_OP;
        rc = mkdirat(parent, name, mode_or(op, 0755));
        if (rc != 0 && errno == EEXIST)
            rc = 0;
        break;
    }
    case CELL_OP_SYMLINK:
    case CELL_OP_FILE: {
        char name[256];
        *step = CELL_STEP_MOUNT_TARGET;
        int parent = cached_parent(cache, root, op->dest, 1, name, sizeof name);
        if (parent < 0)
            return -1;
        *step = CELL_STEP_MOUNT_OP;
        if (op->kind == CELL_OP_SYMLINK) {
            rc = symlinkat(op->source, parent, name);
            break;
        }
        int fd = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
                        mode_or(op, 0644));
        if (fd < 0)
            break;
        rc = write_all(fd, op->source, op->source_len);
        close_keep_errno(fd);
        break;
    }
    default:
        *step = CELL_STEP_MOUNT_OP;
        errno = EINVAL;
        return -1;
    }
    close_keep_errno(source);
    close_keep_errno(target);
    return rc;
}

int cell_build_root(const struct cell_spawn_plan *plan, int *step, int *op_index) {
    struct bind_source taken[CELL_MAX_MOUNT_OPS];
    int count = plan->mount_count;
    *op_index = -1;
    if (count < 0 || count > CELL_MAX_MOUNT_OPS) {
        *step = CELL_STEP_MOUNT_OP;
        errno = E2BIG;
        return -1;
    }

    for (int i = 0; i < count; i++) {
        taken[i].fd = -1;
        taken[i].is_tree = 0;
        taken[i].as = HOST_BIND;
    }

    /* 1. Every bind source, before anything is mounted over it. */
    for (int i = 0; i < count; i++) {
        const struct cell_mount_op *op = &plan->mounts[i];
        if (op->kind == CELL_OP_HOST_ENTRY) {
            *step = CELL_STEP_MOUNT_SOURCE;
            *op_index = i;
            if (take_host_entry(op, &taken[i]) != 0)
                goto fail;
            continue;
        }
        if (op->kind != CELL_OP_BIND)
            continue;
        *step = CELL_STEP_MOUNT_SOURCE;
        *op_index = i;
        int fd = sys_openat2(AT_FDCWD, op->source, O_PATH | O_CLOEXEC, 0,
                             RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
        if (fd < 0) {
            if ((op->flags & CELL_OPF_OPTIONAL) && is_missing(errno))
                continue;
            goto fail;
        }
        struct stat st;
        if (fstat(fd, &st) != 0) {
            close_keep_errno(fd);
            goto fail;
        }
        if (!S_ISDIR(st.st_mode)) {
            taken[i].fd = fd;
            taken[i].is_tree = 0;
            continue;
        }
        taken[i].fd = clone_source(fd, op);
        taken[i].is_tree = 1;
        close_keep_errno(fd);
        if (taken[i].fd < 0)
            goto fail;
    }

    /* 2. The new root. */
    *step = CELL_STEP_MOUNT_ROOT;
    *op_index = -1;
    struct cell_mount_op root_op = {CELL_OP_TMPFS, 0, NULL, 0, "/", 1048576, 1, 0755};
    int root = new_mount("tmpfs", &root_op, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    if (root < 0)
        goto fail;
    if (syscall(SYS_move_mount, root, "", AT_FDCWD, plan->root_base, MOVE_MOUNT_F_EMPTY_PATH) != 0) {
        close_keep_errno(root);
        goto fail;
    }

    /* 3. The operations, in order. */
    struct parent_cache cache;
    cache.fd = -1;
    cache.valid = 0;
    for (int i = 0; i < count; i++) {
        const struct cell_mount_op *op = &plan->mounts[i];
        *op_index = i;
        if ((op->kind == CELL_OP_BIND || op->kind == CELL_OP_HOST_ENTRY) && taken[i].fd < 0)
            continue; /* an optional source that does not exist */
        int rc = run_op(&cache, root, op, &taken[i], step);
        /* Done with the source either way (a clone left unattached is dissolved on close). */
        close_keep_errno(taken[i].fd);
        taken[i].fd = -1;
        if (rc != 0) {
            if ((op->flags & CELL_OPF_OPTIONAL) && is_missing(errno))
                continue;
            cache_drop(&cache);
            close_keep_errno(root);
            goto fail;
        }
    }

    cache_drop(&cache);

    /* 4. Into the new root; the old one is detached, so no path leads back to the host. */
    *step = CELL_STEP_PIVOT_ROOT;
    *op_index = -1;
    if (fchdir(root) != 0 || syscall(SYS_pivot_root, ".", ".") != 0 || umount2(".", MNT_DETACH) != 0 ||
        chdir("/") != 0) {
        close_keep_errno(root);
        goto fail;
    }
    close_keep_errno(root);
    /* The root tmpfs only holds mount points and generated files: read-only from now on
     * (the mounts on it keep their own flags: /tmp and the home stay writable). */
    *step = CELL_STEP_ROOT_READONLY;
    if (sys_mount_setattr(AT_FDCWD, "/", 0, MOUNT_ATTR_RDONLY) != 0)
        goto fail;
    return 0;

fail:
    for (int i = 0; i < count; i++)
        close_keep_errno(taken[i].fd);
    return -1;
}
