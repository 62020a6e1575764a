/*
 * overlay.c — an overlay operation of the sandbox's view (CELL_OP_OVERLAY), run by mounts.c in
 * record order among the others.
 */
#include "view.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * A copy-on-write view of a host directory (CELL_OP_OVERLAY): overlayfs, made inside the
 * sandbox's user namespace (`userxattr`: its own metadata in user.overlay.* xattrs), every
 * layer given as a descriptor, never as a path the kernel would resolve again:
 *   - lower: the clone of the host tree taken in step 1 (never through a symlink), made
 *     read-only: overlayfs never writes there, and now nothing can;
 *   - upper and work: directories in a fresh tmpfs of the plan's size (the sandbox's writes
 *     fill it, not the host's disk: ENOSPC at the size), or in the host directory given by
 *     --changes (opened in step 1, never through a symlink), which keeps them after the run.
 * The host tree is never modified. Copying up a file whose owner or group the sandbox does not
 * map fails (EOVERFLOW): the planner refuses such trees before anything starts.
 */
void mount_overlay(int root, const struct plan_mount *m, int lower, int changes, int create, int index) {
    int target = mount_point(root, m->dest, 1, create);
    if (target < 0)
        fail(CELL_STEP_MOUNT_OP, errno, index);
    if (set_attrs(lower, MOUNT_ATTR_RDONLY) != 0)
        fail(CELL_STEP_MOUNT_SOURCE, errno, index);
    /* The tmpfs bounds inodes too (one per 4 KiB of its size): empty files would not count
     * against the size, and each costs the kernel memory. */
    char size_text[24], inodes_text[24];
    const struct fs_option tmpfs_options[] = {
        {"size", format_unsigned(size_text, m->size, 10)},
        {"nr_inodes", format_unsigned(inodes_text, m->size / 4096 > 1024 ? m->size / 4096 : 1024, 10)},
        {"mode", "0755"},
    };
    int base = changes >= 0 ? changes : new_mount("tmpfs", tmpfs_options, 3, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    if (base < 0)
        fail(CELL_STEP_MOUNT_OP, errno, index);
    int layer[2]; /* upper, work */
    static const char *const names[2] = {"upper", "work"};
    for (int i = 0; i < 2; i++) {
        if (mkdirat(base, names[i], 0755) != 0 && errno != EEXIST)
            fail(CELL_STEP_MOUNT_OP, errno, index);
        if ((layer[i] = sys_openat2(base, names[i], O_PATH | O_DIRECTORY | O_CLOEXEC, BENEATH)) < 0)
            fail(CELL_STEP_MOUNT_OP, errno, index);
    }
    int fs = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
    if (fs < 0 || syscall(SYS_fsconfig, fs, FSCONFIG_SET_FD, "lowerdir+", NULL, lower) != 0 ||
        syscall(SYS_fsconfig, fs, FSCONFIG_SET_FD, "upperdir", NULL, layer[0]) != 0 ||
        syscall(SYS_fsconfig, fs, FSCONFIG_SET_FD, "workdir", NULL, layer[1]) != 0 ||
        syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) != 0 ||
        syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) != 0)
        fail(CELL_STEP_MOUNT_OP, errno, index);
    int mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, (unsigned int)op_attrs(m) | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    if (mnt < 0)
        fail(CELL_STEP_MOUNT_OP, errno, index);
    /* overlayfs falls back to read-only when it cannot use its work directory (a mount on it,
     * say): a sandbox that expected to write must not start on a read-only tree. */
    struct statvfs vfs;
    if (!(m->flags & CELL_OPF_READONLY) && (fstatvfs(mnt, &vfs) != 0 || (vfs.f_flag & ST_RDONLY)))
        fail(CELL_STEP_MOUNT_OP, EROFS, index);
    if (attach(mnt, target) != 0)
        fail(CELL_STEP_MOUNT_OP, errno, index);
    close(mnt);
    close(fs);
    close(layer[0]);
    close(layer[1]);
    if (base != changes)
        close(base);
    close(target);
}

