/*
 * view.h — what mounts.c shares with overlay.c and hide.c: resolving below the new root, and making and
 * attaching detached mounts (the definitions, and why each is so, are in mounts.c).
 */
#ifndef CELL_VIEW_H
#define CELL_VIEW_H

#include "cell_init.h"

#include <limits.h>
#include <linux/openat2.h>

/* Below the new root only; never through a symlink or a magic link (/proc/self/fd/...). Mount
 * points are crossed on purpose: a destination may lie inside an earlier operation's mount. */
#define BENEATH (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
/* A host path: absolute, but still never through a symlink. */
#define NO_LINKS (RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

int sys_openat2(int dirfd, const char *path, int flags, unsigned long long resolve);
int set_attrs(int tree, unsigned long long attrs);
int attach(int tree, int target);
unsigned long long op_attrs(const struct plan_mount *m);
int mount_point(int root, const char *dest, int is_dir, int create);
int open_parent(int root, const char *dest, int create, char name[NAME_MAX + 1]);
int new_tmpfs(uint64_t size, uint32_t mode, unsigned int attrs);

/* A new, detached mount of filesystem `type`: options are key=value, or flags (value NULL). */
struct fs_option {
    const char *key;
    const char *value;
};
int new_mount(const char *type, const struct fs_option *options, size_t count, unsigned int attrs);

/* overlay.c: the copy-on-write view of a host directory at m->dest (CELL_OP_OVERLAY). */
void mount_overlay(int root, const struct plan_mount *m, int lower, int changes, int create, int index);

/* hide.c: an empty read-only file or directory over the entry at m->dest (CELL_OP_HIDE). */
void hide_entry(int root, const struct plan_mount *m, int index);

#endif
