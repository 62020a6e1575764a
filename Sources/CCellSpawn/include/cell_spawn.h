/*
 * cell_spawn.h — the boundary between the Swift launcher and the C code that runs between
 * clone() and execve().
 *
 * The Swift side computes everything (argv, envp, ids, flags, paths) into a `cell_spawn_plan`
 * before calling `cell_spawn`. The C side only executes that plan with async-signal-safe calls
 * and reports the first failing step (and errno) over a pipe, as `cell_report` records. The same
 * records are written by `cell-init`, the sandbox's pid 1, which includes this header.
 */
#ifndef CELL_SPAWN_H
#define CELL_SPAWN_H

#include <stdint.h>
#include <sys/types.h>

/* Namespaces nested inside the sandbox's user namespace (bits of cell_spawn_plan.namespaces).
 * The user namespace itself is not optional and has no bit: it is always created, first. */
enum {
    CELL_NS_MOUNT = 1 << 0,
    CELL_NS_PID = 1 << 1,
    CELL_NS_NET = 1 << 2,
    CELL_NS_IPC = 1 << 3,
    CELL_NS_UTS = 1 << 4,
    CELL_NS_CGROUP = 1 << 5,
    CELL_NS_TIME = 1 << 6,
};

/* Every step that can fail, in the order they run. The Swift side turns a step and an errno
 * into a one-line message (CellLauncher/SetupFailure.swift). Append only: never renumber. */
enum cell_step {
    CELL_STEP_NONE = 0,
    /* in the supervisor, before and around clone */
    CELL_STEP_PIPE = 1,
    CELL_STEP_STACK = 2,
    CELL_STEP_CLONE_USERNS = 3,
    CELL_STEP_WRITE_SETGROUPS = 4,
    CELL_STEP_WRITE_GID_MAP = 5,
    CELL_STEP_WRITE_UID_MAP = 6,
    CELL_STEP_RELEASE_CHILD = 7,
    CELL_STEP_WAIT_CHILD = 8,     /* unused since pid 1 is the first clone */
    /* in the child, inside the new user namespace */
    CELL_STEP_WAIT_MAPS = 10,
    CELL_STEP_SETGROUPS = 11,
    CELL_STEP_SETRESGID = 12,
    CELL_STEP_SETRESUID = 13,
    CELL_STEP_NS_MOUNT = 14,
    CELL_STEP_NS_UTS = 15,
    CELL_STEP_NS_IPC = 16,
    CELL_STEP_NS_NET = 17,
    CELL_STEP_NS_CGROUP = 18,
    CELL_STEP_NS_PID = 19,
    CELL_STEP_NS_TIME = 20,
    CELL_STEP_CLONE_INIT = 21,    /* unused since pid 1 is the first clone */
    /* in the sandbox's pid 1, before it becomes cell-init */
    CELL_STEP_PDEATHSIG = 30,
    CELL_STEP_SUPERVISOR_GONE = 31,
    CELL_STEP_SETSID = 32,
    CELL_STEP_MOUNT_PRIVATE = 33,
    CELL_STEP_MOUNT_PROC = 34, /* unused since the filesystem view: see CELL_STEP_MOUNT_OP */
    CELL_STEP_LOOPBACK = 35,
    CELL_STEP_HOSTNAME = 36,
    CELL_STEP_CHDIR = 37,
    CELL_STEP_CAP_BOUNDING = 38,
    CELL_STEP_SECUREBITS = 39,
    CELL_STEP_CAPSET = 40,
    CELL_STEP_CAP_AMBIENT = 41,
    CELL_STEP_NO_NEW_PRIVS = 42,
    CELL_STEP_STATUS_FD = 43,
    CELL_STEP_EXEC_INIT = 44,
    /* the filesystem view (report value = index of the mount operation, or -1) */
    CELL_STEP_MOUNT_SOURCE = 45,   /* opening a bind source */
    CELL_STEP_MOUNT_ROOT = 46,     /* the new root tmpfs */
    CELL_STEP_MOUNT_TARGET = 47,   /* creating or opening a mount point */
    CELL_STEP_MOUNT_OP = 48,       /* mounting, binding, writing or linking */
    CELL_STEP_PIVOT_ROOT = 49,
    CELL_STEP_ROOT_READONLY = 53,
    CELL_STEP_USERNS_LIMIT = 54,   /* writing max_user_namespaces inside the sandbox */
    CELL_STEP_SECCOMP = 55,        /* loading a seccomp filter (report value = which: 0 baseline, 1 policy) */
    CELL_STEP_SECCOMP_LISTENER = 56, /* passing the policy filter's notification fd to the supervisor */
    CELL_STEP_SOCKETPAIR = 57,
    CELL_STEP_RLIMIT = 58,          /* setting an rlimit (report value = the resource) */
    CELL_STEP_NET_SYSCTL = 59,      /* net.ipv4.ip_unprivileged_port_start inside */
    CELL_STEP_WAIT_GO = 60,         /* cell-init waiting for the supervisor's go (the network) */
    CELL_STEP_CGROUP = 61,          /* moving the sandbox into its cgroup */
    CELL_STEP_WAIT_FILTERS = 62,    /* pid 1 waiting for the seccomp filters (compiled meanwhile) */
    CELL_STEP_WAIT_PLAN = 63,       /* pid 1 waiting for the rest of the plan (built meanwhile) */
    CELL_STEP_DUMPABLE = 64,        /* pid 1 making itself not dumpable before the command starts */
    CELL_STEP_NET_MAKER = 65,       /* pid 1 starting the child that makes the network namespace */
    CELL_STEP_NET_JOIN = 66,        /* pid 1 joining the network namespace its child made */
    CELL_STEP_AFFINITY = 67,        /* pid 1 taking back every CPU of the process after the plan */
    /* in cell-init */
    CELL_STEP_INIT_ARGS = 50,
    CELL_STEP_FORK_COMMAND = 51,
    CELL_STEP_EXEC_COMMAND = 52,
};

enum cell_report_kind {
    /* Setup failed at `step` with `error` (an errno); the sandbox is being torn down. */
    CELL_REPORT_FAILED = 1,
    /* Setup went on after a non-fatal problem at `step` (e.g. the working directory). */
    CELL_REPORT_WARNING = 2,
    /* The command could not be executed: `error` is execve's errno. */
    CELL_REPORT_EXEC_FAILED = 3,
    /* The command ended: `value` is its raw wait status. */
    CELL_REPORT_EXITED = 4,
};

/* 16 bytes, well under PIPE_BUF: every record is written and read whole. */
struct cell_report {
    int32_t kind;
    int32_t step;
    int32_t error;
    int32_t value;
};

/* The exit status of a setup process that failed (after it wrote a CELL_REPORT_FAILED). */
#define CELL_EXIT_SETUP_FAILED 125

#define CELL_MAX_KEEP_FDS 16
#define CELL_MAX_RLIMITS 8

struct cell_rlimit {
    int resource;
    uint64_t soft;
    uint64_t hard;
};
#define CELL_MAX_MOUNT_OPS 256

/* One step of the filesystem view, run in order below the new root (like bubblewrap's setup
 * operations). `dest` is an absolute, normalized path inside the sandbox. */
enum cell_mount_kind {
    CELL_OP_BIND = 1,       /* bind the host path `source` (never through a symlink) */
    CELL_OP_TMPFS = 2,      /* a new tmpfs, with `size` (when has_size) and `mode` (when >= 0) */
    CELL_OP_PROC = 3,       /* a procfs of the sandbox's pid namespace */
    CELL_OP_DEVPTS = 4,     /* a private devpts instance (newinstance, ptmxmode=0666) */
    CELL_OP_MQUEUE = 5,     /* the ipc namespace's POSIX message queues */
    CELL_OP_DIR = 6,        /* a directory, with `mode` */
    CELL_OP_SYMLINK = 7,    /* a symlink to `source` */
    CELL_OP_FILE = 8,       /* a file holding `source` (`source_len` bytes), with `mode` */
    CELL_OP_REMOUNT_RO = 9, /* make the mount tree at `dest` read-only (a read-only bind onto itself) */
    CELL_OP_HOST_ENTRY = 10, /* the host's `source` as it is: a small regular file copied, a symlink
                              * recreated, anything else bound; nothing if it does not exist */
};

enum {
    CELL_OPF_READONLY = 1 << 0, /* read-only, recursively (every submount too) */
    CELL_OPF_OPTIONAL = 1 << 1, /* skip the operation if its source or destination is missing */
    CELL_OPF_NO_CREATE = 1 << 2, /* the destination must exist already (masking /proc files) */
    CELL_OPF_NOEXEC = 1 << 3,
    CELL_OPF_DEVICE = 1 << 4,   /* a bind of a device node: no nodev on it */
};

struct cell_mount_op {
    int kind;
    int flags;
    const char *source;
    size_t source_len;
    const char *dest;
    unsigned long long size; /* tmpfs size in bytes, when has_size */
    int has_size;
    int mode; /* permission bits of a tmpfs root, file or directory; -1: the default */
};

/* Compiled seccomp filters (BPF, struct sock_filter[]), loaded baseline first; len 0: none. */
/* The flags pid 1 clones the command's launcher with: CLONE_VM | CLONE_VFORK | SIGCHLD (spawn.c
 * checks the value; the supervisor checks that the policy allows a clone with them). */
enum { CELL_COMMAND_CLONE_FLAGS = 0x00000100 | 0x00004000 | 17 };

struct cell_filters {
    const uint8_t *baseline;
    size_t baseline_len;
    const uint8_t *policy;
    size_t policy_len;
    /* 1: the policy plainly allows what starting the command takes (clone, setsid, close_range,
     * rt_sigprocmask, execve, write, exit_group), so pid 1 may start it before it executes
     * cell-init, before the supervisor holds the listener: none of those calls can wait for an
     * answer. 0: cell-init starts it, as when it must wait for the network. */
    int command_before_init;
};

/*
 * The plan comes in two parts. The first is complete when cell_spawn_start is called: what
 * creating the processes and namespaces needs. The second is filled in by the caller while the
 * namespaces are being created; pid 1 reads it only after one byte has arrived on
 * `plan_ready_fd` (the pipe orders the caller's writes before pid 1's reads).
 */
struct cell_spawn_plan {
    /* ---------------------------------------------------------- complete from the start */
    /* Host ids that uid 0 and gid 0 inside the sandbox map to (single-id maps). */
    uint32_t outer_uid;
    uint32_t outer_gid;
    /* 1: write "deny" to setgroups (required for an unprivileged map writer).
     * 0: leave setgroups allowed and have the child drop every supplementary group (root only). */
    int deny_setgroups;
    /* CELL_NS_* bits. */
    int namespaces;
    /* An open cgroup.procs of the sandbox's cgroup, or -1: the supervisor writes the first
     * child's pid there before releasing it, so every sandbox process is in the cgroup. */
    int cgroup_procs_fd;
    /* 1: load the policy filter with SECCOMP_FILTER_FLAG_NEW_LISTENER and pass the listener to
     * the supervisor (result.listener_fd): its SECCOMP_RET_USER_NOTIF rules are the audit path. */
    int seccomp_listener;
    /* A sealed memfd holding the cell-init binary, executed as the sandbox's pid 1. */
    int init_fd;
    /* The command, NULL-terminated. */
    char *const *argv;
    /* Extra descriptors (≥ 3) that survive into the sandbox setup; every other one above 2 is
     * closed in the child before anything runs in the new namespaces. */
    const int *keep_fds;
    int keep_fds_count;
    /* One byte: the second part below is in place; EOF: it never will be (the caller failed to
     * build it) and the setup stops. Close-on-exec. */
    int plan_ready_fd;
    /* One byte: `filters` are in place (they are compiled last, while pid 1 builds the
     * filesystem view); EOF: they never will be. Close-on-exec. */
    int filters_ready_fd;

    /* ------------------------------------------------- after a byte on plan_ready_fd */
    /* The filesystem view (needs CELL_NS_MOUNT): a new tmpfs root, temporarily attached over
     * `root_base` (an existing host directory, hidden only inside the sandbox's mount
     * namespace), filled by `mounts` in order, then made the root with pivot_root. */
    const struct cell_mount_op *mounts;
    int mount_count;
    const char *root_base;
    /* NULL: leave the hostname alone. */
    const char *hostname;
    size_t hostname_len;
    /* Working directory inside; NULL: stay where the caller is. */
    const char *cwd;
    /* Fallback when `cwd` cannot be entered (a CELL_REPORT_WARNING is sent); NULL: fail. */
    const char *cwd_fallback;
    /* -1: leave it; otherwise the value written to the sandbox's own
     * /proc/sys/user/max_user_namespaces (0: no nested user namespace can ever be created). */
    int max_user_namespaces;
    /* rlimits set in pid 1 after the filesystem view, before the lock-down. */
    const struct cell_rlimit *rlimits;
    int rlimit_count;
    /* 1: cell-init waits for one byte on the lifeline before it starts the command (the
     * supervisor sends it once the sandbox's network is up). */
    int wait_for_go;
    /* Capabilities kept (bit N = capability N); every other one is dropped from every set. */
    uint64_t keep_caps;
    /* The command's environment, NULL-terminated. */
    char *const *envp;

    /* ---------------------------------------------- after a byte on filters_ready_fd */
    /* Seccomp filters, loaded last. */
    const struct cell_filters *filters;
};

struct cell_spawn_result {
    /* Host pid of the sandbox's pid 1 (a child of the caller), or -1 if it was never created. */
    pid_t init_pid;
    /* Read end of the report pipe: cell_report records until every sandbox process is gone. */
    int status_fd;
    /* Write end of the lifeline pipe. Keep it open while the sandbox runs; the sandbox's pid 1
     * checks it once PR_SET_PDEATHSIG is armed, to close the race with the caller's death. */
    int lifeline_fd;
    /* The seccomp user-notification listener of the sandbox's policy filter, or -1. */
    int listener_fd;
    /* When cell_spawn returns -1: the step that failed in the caller, and its errno. */
    int failed_step;
    int error;
};

/*
 * Builds the filesystem view in the calling process (the sandbox's pid 1, in its own mount
 * namespace) and pivots into it. Returns 0, or -1 with errno set, *step set to the failing
 * CELL_STEP_MOUNT_* and *op_index to the failing operation (or -1). Async-signal-safe.
 */
int cell_build_root(const struct cell_spawn_plan *plan, int *step, int *op_index);

/*
 * Creating the sandbox, in three calls, so that the caller can go on building the plan's second
 * part while the kernel creates the namespaces (on 2 cores, the two overlap).
 *
 * cell_spawn_start: starts a thread that clones the sandbox's pid 1 into a new user and pid
 * namespace, writes its maps and waits until pid 1 has executed cell-init or failed. `plan` must
 * stay valid, unchanged except for its second part, until cell_spawn_end. Returns NULL with errno
 * set when the thread cannot be started. The thread sets up what is its own (pipes, pid 1's
 * stack) and then waits for cell_spawn_release before it reads more of the plan than
 * `keep_fds_count` and `seccomp_listener`: the caller completes the first part meanwhile.
 *
 * cell_spawn_release: the first part is complete (`complete` 1), or will not be (0: the thread
 * gives up; cell_spawn_wait then returns -1 and cell_spawn_end lets it go).
 *
 * cell_spawn_wait: waits for that thread's result. Returns 0 once pid 1 has executed cell-init or
 * failed (failures inside the sandbox arrive as records on result->status_fd); -1 if the
 * supervisor's own part failed (result->failed_step, result->error).
 *
 * cell_spawn_end: lets the thread end (it frees itself; `spawner` is gone after this call).
 * Call it once pid 1 has been reaped: pid 1's PR_SET_PDEATHSIG follows the thread that created
 * it, so that thread lives as long as the sandbox (and its errno and stack are pid 1's while
 * pid 1 sets up).
 */
struct cell_spawner;
struct cell_spawner *cell_spawn_start(const struct cell_spawn_plan *plan);
/* Before the plan's hand-over: pid 1 is woken on the calling thread's CPU (see spawn.c). */
void cell_spawn_steer(struct cell_spawner *s);
void cell_spawn_release(struct cell_spawner *spawner, int complete);
int cell_spawn_wait(struct cell_spawner *spawner, struct cell_spawn_result *result);
void cell_spawn_end(struct cell_spawner *spawner);

/*
 * A sandbox's creation, begun (begin.c): the sealed copy of cell-init, the plan's first part,
 * the two hand-over pipes (their write ends are the supervisor's), room for the filters, and
 * the spawner thread, started. The supervisor then fills the plan's second part and calls
 * cell_begun_hand_over(CELL_HAND_OVER_PLAN), compiles the filters into `filters` and calls
 * cell_begun_hand_over(CELL_HAND_OVER_FILTERS); cell_begun_cancel closes what was not handed
 * over (pid 1 stops at the pipe it waits on). Waiting and ending go through `spawner`
 * (cell_spawn_wait, cell_spawn_end); cell_begun_free comes after cell_spawn_end.
 */
struct cell_begun {
    struct cell_spawn_plan plan;
    struct cell_filters filters;
    int plan_ready_w;
    int filters_ready_w;
    char **argv; /* the plan's command: a copy, owned */
    struct cell_spawner *spawner;
};

enum {
    CELL_BEGIN_HELPER = 1, /* cell-init could not be copied (errno) */
    CELL_BEGIN_PIPES = 2,  /* a pipe or memory (errno) */
    CELL_BEGIN_THREAD = 3, /* the spawner thread could not be started (errno) */
};
enum { CELL_HAND_OVER_PLAN = 1, CELL_HAND_OVER_FILTERS = 2 };

/* NULL with errno and *failure (CELL_BEGIN_*) set when it cannot begin. `init_helper` NULL:
 * the first of cell_init_helper_candidate's paths that is executable. */
struct cell_begun *cell_begin(uint32_t outer_uid, uint32_t outer_gid, int deny_setgroups, int namespaces,
                              char *const *argv, const char *init_helper, int cgroup_procs_fd, int *failure);
struct cell_spawn_plan *cell_begun_plan(struct cell_begun *begun);
void cell_begun_hand_over(struct cell_begun *begun, int which);
void cell_begun_cancel(struct cell_begun *begun);
void cell_begun_free(struct cell_begun *begun);

/*
 * `cell run`'s early begin, from the raw arguments, before anything is parsed (see begin.c):
 * cell_begin_early begins a sandbox for its guess of the launch (the caller's ids, every
 * namespace but time unless --net host, the command), or nothing; cell_take_early hands what
 * was begun to the supervisor once (NULL: nothing). cell_early_guess is the guess alone: the
 * index of the command in argv, or -1 for no guess, and the CELL_NS_* bits.
 */
void cell_begin_early(int argc, char **argv);
struct cell_begun *cell_take_early(void);
int cell_early_guess(int argc, char *const *argv, int *namespaces);

/* Where cell-init may be: candidate `index` (0: next to the running executable, 1: in
 * ../libexec/cell/ from it) into `buf`. Returns 0, or -1 past the last candidate or on error. */
int cell_init_helper_candidate(int index, char *buf, size_t size);

/*
 * Copies the file at `path` into a new memfd named `name`, sealed against every change, so that
 * the sandbox's pid 1 executes a copy no process can write (the runc CVE-2019-5736 class).
 * Returns the fd (close-on-exec) or -1 with errno set.
 */
int cell_sealed_copy(const char *path, const char *name);

/* A new, empty, close-on-exec memfd (libseccomp exports its filters to file descriptors). */
int cell_memfd(const char *name);
/* A memfd to capture a helper's messages (slirp4netns), read back only on failure. */
int cell_memfd_for_log(void);
/* pipe2(fds, O_CLOEXEC), which Swift's Glibc module does not export. */
int cell_pipe_cloexec(int fds[2]);

/* ---- seccomp user notification, for the supervisor (normal C: malloc is fine here) ---- */

struct cell_notification {
    uint64_t id;
    uint32_t pid;   /* host pid of the calling thread */
    int32_t nr;
    uint32_t arch;  /* AUDIT_ARCH_* */
    uint64_t instruction_pointer;
    uint64_t args[6];
};

/* Receives one notification (blocking). Returns 0, or -1 with errno (ENOENT: the caller died
 * before it could be received; EINTR). */
int cell_notify_receive(int listener, struct cell_notification *out);
/* Answers: error > 0 fails the call with that errno; continue_call lets it run as it is. */
int cell_notify_respond(int listener, uint64_t id, int error, int continue_call);
/* Whether the notification is still pending (the caller has not died or been interrupted):
 * check after reading the caller's memory, before trusting what was read. */
int cell_notify_id_valid(int listener, uint64_t id);
/* Reads a NUL-terminated string of at most size-1 bytes from `pid`'s memory at `address`.
 * Returns its length, or -1 with errno. */
long cell_read_string(pid_t pid, uint64_t address, char *buffer, size_t size);

#endif
