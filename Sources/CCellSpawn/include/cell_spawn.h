/*
 * cell_spawn.h — the C the supervisor needs around a launch: the trampoline that clones the
 * sandbox's first process and executes cell-init (spawn.c), the descriptors handed to it
 * (descriptors.c). What crosses into the sandbox is described in cell_plan.h. (The audit
 * path's seccomp notification calls are in CSeccompNotify.)
 */
#ifndef CELL_SPAWN_H
#define CELL_SPAWN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cell_plan.h"

/* ---- the trampoline (spawn.c) ---- */

struct cell_trampoline {
    /* 1: the clone creates the sandbox's user namespace (and the child takes `uid`/`gid` in it
     * once the maps are written); 0: the child keeps the caller's ids and user namespace
     * (--isolation landlock: no capability; cell-runtime in an engine's user namespace: the
     * engine's root). */
    int user_namespace;
    /* 1: the clone also creates the sandbox's pid namespace (it can only be given at clone;
     * the user namespace, created first, owns it; without one, the caller's user namespace
     * does: cell-runtime inside an engine's namespace). */
    int pid_namespace;
    /* Read end of a pipe: one byte once the supervisor has written the id maps; EOF: it gave up. */
    int maps_fd;
    /* The supervisor's own ends of that pipe and of the control socket: the child's copies are
     * closed first thing, or the child would keep them open and never see the supervisor go. */
    int supervisor_maps_fd;
    int supervisor_control_fd;
    /* The child's end of the control socket (cell_plan.h), and the report pipe's write end. */
    int control_fd;
    int report_fd;
    /* A sealed, execute-only memfd holding cell-init (cell_sealed_copy). */
    int init_fd;
    /* The ids the setup runs as inside (after the maps); not 0: capabilities go ambient. */
    uint32_t uid;
    uint32_t gid;
    /* 1: drop every supplementary group (only possible when setgroups is allowed: a root caller). */
    int drop_groups;
    /* What descriptors 0-2 become in the child (-1: the caller's, as they are): /dev/null in
     * place of the caller's terminal when the command gets a pty of its own. */
    int stdio[3];
};

/* Clones the sandbox's pid 1 and runs the trampoline in it. Returns its pid, or -1 with errno
 * (the clone was refused). Call from the thread that stays for the whole sandbox (the main
 * thread): PR_SET_PDEATHSIG follows the thread that created the child. */
pid_t cell_spawn(const struct cell_trampoline *t);

/* (helper.c) Starts the user-mode network's helper: `path` with `argv` and `envp`, descriptor 0
 * /dev/null, 1 and 2 `output` (or /dev/null), descriptor from[i] as to[i] (at most 8), every
 * signal at its default, and PR_SET_PDEATHSIG SIGKILL: it dies when cell does. Like cell_spawn,
 * call from the main thread. Returns its pid, or -1 with errno. */
pid_t cell_spawn_helper(const char *path, char *const argv[], char *const envp[],
                        const int *from, const int *to, int count, int output);

/* (helper.c) A pidfd for `pid` (readable once it exits), or -1 with errno. */
int cell_pidfd_open(pid_t pid);

/* (probe.c) Whether the kernel lets this process create a user namespace alone (a child that exits at
 * once): 0, or -1 with errno. Tells a refused user namespace from a refused pid namespace. */
int cell_probe_user_namespace(void);

/* (probe.c) Whether a user namespace works the way cell needs it: made, mapped (`uid_map`,
 * `gid_map`: the caller's own id, "0 UID 1\n"), holding a mount namespace in which a mount
 * succeeds — Ubuntu's AppArmor restriction lets the clone succeed and denies the rest. 0, or
 * the step that failed plus its errno (below 64). */
enum { CELL_PROBE_MAPS = 64, CELL_PROBE_MOUNT_NS = 128, CELL_PROBE_MOUNT = 192, CELL_PROBE_CLONE = 256 };
int cell_probe_namespaces(const char *uid_map, const char *gid_map);

/* (probe.c) Whether a seccomp filter with a user-notification listener (cell's audit) can be
 * loaded here: 0, or the errno. */
int cell_probe_user_notification(void);

/* ---- descriptors (descriptors.c) ---- */

/* A copy of the file at `path` in a new memfd named `name`, sealed against every change and
 * execute-only, so that the sandbox's pid 1 executes a copy no process can write (the runc
 * CVE-2019-5736 class) or read (a process executing an unreadable file is not dumpable).
 * Returns the fd (close-on-exec) or -1 with errno set. */
int cell_sealed_copy(const char *path, const char *name);
/* A new, empty, close-on-exec memfd (libseccomp exports its filters to descriptors; helpers'
 * messages are captured in one). */
int cell_memfd(const char *name);
/* pipe2(fds, O_CLOEXEC) and a close-on-exec SOCK_STREAM socketpair, which Swift's Glibc
 * module does not export. */
int cell_pipe_cloexec(int fds[2]);
int cell_socketpair_cloexec(int fds[2]);
/* Receives one byte from the stream socket `sock` (blocking), with the descriptor it carries,
 * if any, in *fd (close-on-exec; -1 if none). Returns the byte (0-255), -1 at end of file, or
 * -2 with errno on error. */
int cell_receive_byte(int sock, int *fd);

/* unix_sockets.c (cell-runtime): a listening stream socket bound at `path` (close-on-exec,
 * non-blocking), and a connection to one; a path longer than sun_path is reached through its
 * directory. -1 with errno. */
int cell_unix_listen(const char *path);
int cell_unix_connect(const char *path);
/* The most descriptors one message carries: a process's stdin, stdout and stderr. */
#define CELL_MAX_PASSED 3
/* Sends `len` bytes in one message with `count` descriptors (SCM_RIGHTS); 0, or -1 with errno. */
int cell_send_with_descriptors(int sock, const void *bytes, size_t len, const int *fds, int count);
/* Receives one byte (blocking) with the descriptors it carries (close-on-exec, at most
 * CELL_MAX_PASSED, *count of them). Returns the byte, -1 at end of file, or -2 with errno. */
int cell_receive_with_descriptors(int sock, int fds[CELL_MAX_PASSED], int *count);
/* A connection accepted on `listener`, close-on-exec and non-blocking; -1 with errno. */
int cell_unix_accept(int listener);
/* The pid of the process that connected `sock` (SO_PEERCRED), or -1. */
pid_t cell_peer_pid(int sock);
/* 1 when `fd` is a directory or an O_PATH descriptor (or cannot be looked at), else 0. */
int cell_is_directory_or_path(int fd);
/* isatty(fd): 1 when `fd` is a terminal. */
int cell_is_terminal(int fd);

/* The directory at `path` below the directory `root`, opened read-only, without following any
 * symlink and without leaving `root` (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): for
 * walking a bound directory. -1 with errno if it cannot be. */
int cell_open_directory_beneath(int root, const char *path);

/* The Landlock ABI this kernel offers (1, 2, ...), or 0 when it has none (not built in, or
 * disabled at boot). */
int cell_landlock_abi(void);

/* prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants become this process's children
 * (--isolation landlock, where no pid namespace ends them). 0, or -1 with errno. */
int cell_become_subreaper(void);

/* close_range(3, ~0, CLOSE_RANGE_CLOEXEC): every descriptor cell inherited above 2 is closed in
 * whatever cell starts (the trampoline closes them anyway; slirp4netns would keep them). 0, or
 * -1 with errno. */
int cell_cloexec_inherited(void);

#endif
