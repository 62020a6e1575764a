/*
 * hide.c — a hide operation of the sandbox's view (CELL_OP_HIDE): what a `hide` glob matched in
 * a tree the user bound (a .env, a key, .git/config) is covered, so the sandbox sees it empty.
 * Run by mounts.c in record order, after the bind or overlay that shows the tree.
 */
#include "view.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EMPTY_ATTRS (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)

/* A detached, read-only mount of one empty regular file (mode 0444) in a tiny tmpfs of its own:
 * nothing of the host's, nothing the sandbox can write. -1 with errno on failure. */
static int empty_file(void) {
    int fs = new_tmpfs(4096, 0555, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    if (fs < 0)
        return -1;
    int file = openat(fs, "empty", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0444);
    int tree = -1;
    if (file >= 0) {
        close(file);
        tree = (int)syscall(SYS_open_tree, fs, "empty", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    }
    if (tree >= 0 && set_attrs(tree, EMPTY_ATTRS) != 0) {
        int err = errno;
        close(tree);
        errno = err;
        tree = -1;
    }
    int err = errno;
    close(fs); /* the clone keeps the tmpfs alive */
    errno = err;
    return tree;
}

/*
 * The entry at m->dest must exist and be what the planner saw (m->expect). The last component
 * is opened itself, never followed (O_NOFOLLOW): a matched symlink is covered where it is (a
 * mount can sit on a symlink when attached by descriptor), not wherever it points. A directory
 * gets an empty read-only tmpfs, anything else an empty read-only file. An entry gone since the
 * planner looked has nothing left to hide; one whose type changed ends the launch.
 */
void hide_entry(int root, const struct plan_mount *m, int index) {
    char name[NAME_MAX + 1];
    int parent = open_parent(root, m->dest, 0, name);
    int target = parent < 0 ? -1 : sys_openat2(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC, BENEATH);
    int err = errno;
    if (parent >= 0)
        close(parent);
    if (target < 0) {
        if (err == ENOENT)
            return;
        fail(CELL_STEP_MOUNT_TARGET, err, index);
    }
    struct stat st;
    if (fstat(target, &st) != 0)
        fail(CELL_STEP_MOUNT_TARGET, errno, index);
    if ((uint32_t)(st.st_mode & S_IFMT) != m->expect)
        fail(CELL_STEP_MOUNT_CHANGED, ESTALE, index);
    int cover = m->expect == S_IFDIR ? new_tmpfs(4096, 0555, EMPTY_ATTRS) : empty_file();
    if (cover < 0 || attach(cover, target) != 0)
        fail(CELL_STEP_MOUNT_OP, errno, index);
    close(cover);
    close(target);
}
