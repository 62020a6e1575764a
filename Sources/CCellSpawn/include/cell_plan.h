/*
 * cell_plan.h — the contract between cell (Swift) and the sandbox's pid 1 (cell-init, C):
 * the launch plan's binary encoding, the steps pid 1 can fail at, and the reports it sends back.
 *
 * The supervisor decides everything; pid 1 only executes. The plan is a stream of records on
 * cell-init's descriptor CELL_FD_CONTROL (a stream socket whose other end is the supervisor's):
 *
 *   PLAN (magic, version)  ...setup records...  END_SETUP
 *   ...filter records (compiled by the supervisor while pid 1 sets up)...  END_FILTERS
 *   START                  (only when the setup held the command: CELL_REC_HOLD)
 *
 * Record:  u32 type, u32 length (of the payload), payload.
 * Payload: the record's fields in the order listed below, with no padding:
 *          u32 and u64 little-endian; a string (`str`) or byte blob (`blob`) is a u32 length,
 *          that many bytes, and one NUL byte not counted in the length (so C can use it in
 *          place; a blob may itself contain NULs and is used with its length).
 * A record longer than its fields, shorter, or of an unknown type is an error: pid 1 refuses
 * the whole plan (CELL_STEP_PLAN, the record's index as the report's value). The encoding is
 * stable: new record types get new numbers; a changed layout bumps CELL_PLAN_VERSION.
 *
 * Up the same socket, pid 1 sends one byte carrying a descriptor (SCM_RIGHTS) for each thing
 * the plan asks it to make: 'T' the master of the command's pty (CELL_REC_TERMINAL) and 'S'
 * each CELL_REC_SEND_FD's descriptor, during the setup; 'L' the seccomp listener, after loading
 * the filters; 'H' (no descriptor) when it
 * holds the command. End of file on the socket, for pid 1, means the supervisor is gone.
 *
 * With CELL_REC_TAKE_PROCESSES, pid 1 sends 'R' (no descriptor) once the command runs, and
 * from then on takes requests down the same socket, one at a time, each a byte read with
 * recvmsg: 'X' carrying the process's stdin, stdout and stderr (SCM_RIGHTS; none with a pty),
 * then PROCESS, ARG..., ENV..., END_PROCESS; or 'K', then one SIGNAL_PROCESS. Until 'R' the
 * supervisor sends nothing after START: the plan's reader, which reads ahead, never sees a
 * request (and its read() would drop the descriptors). For a process with a pty pid 1 sends
 * 'T' with its master before the report that it started.
 *
 * Reports (struct cell_report, 16 bytes, written whole) go up CELL_FD_REPORT, a pipe whose
 * only writers are the trampoline and cell-init: end of file there means the sandbox is over.
 */
#ifndef CELL_PLAN_H
#define CELL_PLAN_H

#include <stdint.h>

/* cell-init's descriptors when the trampoline executes it (every other one above 2 is closed). */
enum {
    CELL_FD_CONTROL = 3, /* the plan in, the seccomp listener out; EOF: the supervisor is gone */
    CELL_FD_REPORT = 4,  /* struct cell_report records out */
};

#define CELL_PLAN_MAGIC 0x4c4c4543u /* "CELL" as little-endian bytes */
#define CELL_PLAN_VERSION 1u
#define CELL_PLAN_MAX_RECORD (1u << 20)   /* bytes of one record's payload */
#define CELL_PLAN_MAX_RECORDS 4096u        /* records in one plan */
#define CELL_PLAN_NONE_U32 0xffffffffu     /* "not set" for an optional u32 field */
#define CELL_PLAN_NONE_U64 0xffffffffffffffffull

/* Record types. Append only; never renumber. "reserved" types are part of the format for the
 * features that will use them; this cell-init refuses them (CELL_STEP_PLAN) until they land. */
enum cell_record_type {
    CELL_REC_PLAN = 1,          /* u32 magic, u32 version: always the first record */
    CELL_REC_NAMESPACES = 2,    /* u32 CELL_NS_* bits: namespaces pid 1 unshares inside the user ns */
    CELL_REC_JOIN_NAMESPACE = 3, /* u32 CELL_NS_* bit (net, ipc, uts or cgroup), str path: an
                                  * engine's namespace, joined (setns) instead of unshared */
    CELL_REC_USERNS_LIMIT = 4,  /* u32 value for the sandbox's own user.max_user_namespaces */
    CELL_REC_LOOPBACK = 5,      /* (none): bring lo up and open low ports in the private net ns */
    CELL_REC_ROOT = 6,          /* u64 size, str base: the new tmpfs root, built over `base` */
    CELL_REC_MOUNT = 7,         /* u32 kind (CELL_OP_*), u32 flags (CELL_OPF_*), u32 expect
                                 * (a bind source's S_IFMT type, else 0), u32 mode (or NONE),
                                 * u64 size (or NONE), str source, str dest */
    CELL_REC_OVERLAY = 8,       /* u32 flags (CELL_OPF_*), u64 size (of the upper layer's tmpfs;
                                 * NONE with a changes directory), str lower (a host directory),
                                 * str changes (a host directory for the upper layer, or ""), str
                                 * dest: a copy-on-write view of `lower` at `dest` (CELL_OP_OVERLAY
                                 * among the MOUNT operations, in record order) */
    CELL_REC_HOSTNAME = 9,      /* str name */
    CELL_REC_CWD = 10,          /* str dir, str fallback ("" = none: failing to enter dir fails) */
    CELL_REC_RLIMIT = 11,       /* u32 resource, u64 soft, u64 hard */
    CELL_REC_CAPS = 12,         /* u64 kept capabilities (bit N = capability N) */
    CELL_REC_LANDLOCK = 13,     /* u32 abi, u32 required, u64 handled fs, u64 handled net, u64
                                 * scoped: a Landlock ruleset, applied after the last mount, with
                                 * the LANDLOCK_PATH rules after it */
    CELL_REC_HOLD = 14,         /* (none): wait for START before the command is executed */
    CELL_REC_SEND_FD = 15,      /* u32 kind (CELL_SEND_*), u32 port: a descriptor made inside,
                                 * handed out to the supervisor ('S'); at most 4 */
    CELL_REC_ARG = 16,          /* str: the command's next argument (argv[0] first) */
    CELL_REC_ENV = 17,          /* str: one NAME=value of the command's environment */
    CELL_REC_END_SETUP = 18,    /* (none): the setup part is complete */
    CELL_REC_SECCOMP = 19,      /* u32 listener (1: load with NEW_LISTENER and send it up), blob
                                 * BPF (struct sock_filter[]); filters load in record order */
    CELL_REC_END_FILTERS = 20,  /* (none): every filter has been sent */
    CELL_REC_START = 21,        /* (none): the go-ahead a HOLD waits for */
    CELL_REC_TERMINAL = 22,     /* u32 rows, u32 cols, u32 std (bit N: the command's descriptor N
                                 * is the terminal; at most 7): a pty on the sandbox's own devpts,
                                 * its master sent up ('T'), its terminal the command's
                                 * controlling terminal */
    CELL_REC_IPC_LIMIT = 23,    /* u64 shmmax (bytes), u64 shmall (pages): the sandbox's own IPC
                                 * namespace's kernel.shmmax and kernel.shmall */
    CELL_REC_LANDLOCK_PATH = 24, /* u64 access, str path: a path-beneath rule (after LANDLOCK) */
    CELL_REC_LANDLOCK_PORT = 25, /* reserved: u64 access, u64 port, a TCP port rule (after
                                  * LANDLOCK), for a sandbox that may bind or reach some ports */
    CELL_REC_UNREACHABLE = 26,  /* u32 IPv4 address as a number (10.0.2.2 = 0x0a000202): a route in the private
                                 * net ns that makes this one address unreachable (the user
                                 * network's gateway, when it must not lead to the host) */
    CELL_REC_ROOT_TREE = 27,    /* u32 flags (CELL_OPF_READONLY only), str path: instead of ROOT,
                                 * the root is a clone of the host directory `path` (an OCI
                                 * bundle's rootfs), nosuid and nodev, mount points made in it */
    CELL_REC_USER = 28,         /* u32 uid, u32 gid, u32 count, count x u32 groups: the ids the
                                 * command runs as, taken after the view, before the lock-down */
    CELL_REC_SYSCTL = 29,       /* str name (a.b.c), str value: written to /proc/sys/a/b/c after
                                 * the namespaces (the planner allows only namespaced ones) */
    CELL_REC_TAKE_PROCESSES = 30, /* (none; with HOLD): once the command runs, pid 1 starts the
                                 * processes the supervisor asks for (cell-runtime exec) */

    /* Requests, not plan records: what the supervisor sends after pid 1's 'R' (see above). */
    CELL_REC_PROCESS = 31,      /* u32 rows, u32 cols (0, 0: no pty), str cwd: a process to start,
                                 * then its ARG records (at least one) and ENV records */
    CELL_REC_END_PROCESS = 32,  /* (none): the process's request is complete */
    CELL_REC_SIGNAL_PROCESS = 33, /* u32 process, u32 signal: for the process of the request with
                                 * that number (the first X is 1; each counts, started or not),
                                 * if pid 1 has not reaped it (else ignored). A number rather
                                 * than a pid: a reaped process's pid may be another's by now */
};

/* What a CELL_REC_SEND_FD asks pid 1 to make and hand out. */
enum {
    /* A TCP socket listening on 127.0.0.1:port of the sandbox's own network namespace: the
     * proxy outside accepts the sandbox's connections on it (--net proxy). */
    CELL_SEND_TCP_LISTENER = 1,
};

/* Namespaces nested inside the sandbox's user namespace (CELL_REC_NAMESPACES). The user and
 * pid namespaces are created by the trampoline's clone (CELL_NS_PID says whether it asked for
 * a pid namespace); pid 1 unshares the others, one call each, so a refusal names the one. */
enum {
    CELL_NS_MOUNT = 1 << 0,
    CELL_NS_PID = 1 << 1,
    CELL_NS_NET = 1 << 2,
    CELL_NS_IPC = 1 << 3,
    CELL_NS_UTS = 1 << 4,
    CELL_NS_CGROUP = 1 << 5,
    CELL_NS_TIME = 1 << 6,
};

/* Filesystem operations (CELL_REC_MOUNT), run in record order below the new root. `dest` is
 * an absolute, normalized path inside the sandbox. */
enum cell_mount_kind {
    CELL_OP_BIND = 1,       /* bind host `source`, never through a symlink, of type `expect` */
    CELL_OP_TMPFS = 2,      /* a new tmpfs with `size` and `mode` */
    CELL_OP_PROC = 3,       /* a procfs of the sandbox's pid namespace */
    CELL_OP_DEVPTS = 4,     /* a private devpts instance (newinstance, ptmxmode=0666) */
    CELL_OP_MQUEUE = 5,     /* the ipc namespace's POSIX message queues */
    CELL_OP_DIR = 6,        /* a directory with `mode` */
    CELL_OP_SYMLINK = 7,    /* a symlink to `source` */
    CELL_OP_FILE = 8,       /* a file holding `source` (a blob), with `mode` */
    CELL_OP_REMOUNT_RO = 9, /* make the mount tree at `dest` read-only */
    CELL_OP_OVERLAY = 10,   /* (CELL_REC_OVERLAY) an overlayfs over a clone of `source` */
    CELL_OP_HIDE = 11,      /* an empty read-only file (or directory) over the existing entry
                             * at `dest`, which must be of type `expect` (S_IFREG, S_IFLNK: a
                             * file; S_IFDIR: a directory) */
    CELL_OP_SYSFS = 12,     /* a sysfs of the sandbox's own network namespace */
};

enum {
    CELL_OPF_READONLY = 1 << 0,  /* read-only, recursively (every submount too) */
    CELL_OPF_OPTIONAL = 1 << 1,  /* skip when the destination cannot be reached (a /proc mask
                                  * this kernel lacks); sources are settled by the planner */
    CELL_OPF_NO_CREATE = 1 << 2, /* the destination must exist already: nothing is created */
    CELL_OPF_NOEXEC = 1 << 3,
    CELL_OPF_DEVICE = 1 << 4,    /* a bind of a device node: the only binds without nodev */
};

/* Every step that can fail. The report's `value` is the detail named in the comment. */
enum cell_step {
    CELL_STEP_NONE = 0,
    /* the supervisor, around clone */
    CELL_STEP_CLONE_USERNS = 1,   /* the kernel refused the user namespace */
    CELL_STEP_NS_PID = 2,         /* ... or the pid namespace of the same clone */
    CELL_STEP_CGROUP = 3,         /* moving pid 1 into the sandbox's cgroup */
    CELL_STEP_WRITE_SETGROUPS = 4,
    CELL_STEP_WRITE_GID_MAP = 5,
    CELL_STEP_WRITE_UID_MAP = 6,
    /* the trampoline (spawn.c), inside the new user namespace */
    CELL_STEP_WAIT_MAPS = 10,
    CELL_STEP_SETGROUPS = 11,
    CELL_STEP_SETRESGID = 12,
    CELL_STEP_SETRESUID = 13,
    CELL_STEP_INIT_CAPABILITIES = 14, /* capabilities for a setup that is not uid 0 (ambient) */
    CELL_STEP_PDEATHSIG = 15,
    CELL_STEP_SUPERVISOR_GONE = 16,
    CELL_STEP_DESCRIPTORS = 17,
    CELL_STEP_EXEC_INIT = 18,
    /* pid 1 (cell-init), in the order of setup.c (its first step, becoming pid 1, reports
     * DESCRIPTORS, DUMPABLE and SETSID before the plan is read) */
    CELL_STEP_PLAN = 30,          /* reading or decoding the plan: value = record index */
    CELL_STEP_SETSID = 31,
    CELL_STEP_NS_MOUNT = 32,
    CELL_STEP_NS_UTS = 33,
    CELL_STEP_NS_IPC = 34,
    CELL_STEP_NS_NET = 35,
    CELL_STEP_NS_CGROUP = 36,
    CELL_STEP_NS_TIME = 37,
    CELL_STEP_USERNS_LIMIT = 38,
    CELL_STEP_LOOPBACK = 39,
    CELL_STEP_NET_SYSCTL = 40,
    CELL_STEP_MOUNT_PRIVATE = 41,
    CELL_STEP_MOUNT_SOURCE = 42,  /* opening a bind source: value = mount index */
    CELL_STEP_MOUNT_CHANGED = 43, /* a bind source is not what the planner saw: value = mount index */
    CELL_STEP_MOUNT_ROOT = 44,
    CELL_STEP_MOUNT_TARGET = 45,  /* value = mount index */
    CELL_STEP_MOUNT_OP = 46,      /* value = mount index */
    CELL_STEP_PIVOT_ROOT = 47,
    CELL_STEP_ROOT_READONLY = 48,
    CELL_STEP_HOSTNAME = 49,
    CELL_STEP_CHDIR = 50,         /* also a WARNING when the fallback was used */
    CELL_STEP_RLIMIT = 51,        /* value = the resource */
    CELL_STEP_CAP_BOUNDING = 52,
    CELL_STEP_CAP_AMBIENT = 53,
    CELL_STEP_SECUREBITS = 54,
    CELL_STEP_CAPSET = 55,
    CELL_STEP_NO_NEW_PRIVS = 56,
    CELL_STEP_WAIT_FILTERS = 57,  /* reading the filter part: value = record index */
    CELL_STEP_SECCOMP = 58,       /* value = filter index */
    CELL_STEP_SECCOMP_LISTENER = 59,
    CELL_STEP_HOLD = 60,          /* waiting for START */
    CELL_STEP_START_COMMAND = 61, /* no process could be made for the command */
    CELL_STEP_EXEC_COMMAND = 62,  /* with CELL_REPORT_EXEC_FAILED */
    CELL_STEP_DUMPABLE = 63,      /* pid 1 making itself not dumpable (runs before 30) */
    CELL_STEP_TERMINAL = 64,      /* the command's pty: opening, unlocking, sizing, sending it */
    CELL_STEP_IPC_LIMIT = 65,     /* kernel.shmmax or kernel.shmall of the sandbox's IPC namespace */
    CELL_STEP_LANDLOCK = 66,      /* the ruleset: value = rule index, -1 the ruleset itself, -2-N
                                   * the rule for descriptor N;
                                   * a WARNING when best-effort found no Landlock */
    CELL_STEP_UNREACHABLE = 67,   /* the route that makes the gateway unreachable (netlink) */
    CELL_STEP_SEND_FD = 68,       /* a handed-out descriptor: value = its port */
    CELL_STEP_JOIN_NAMESPACE = 69, /* opening or entering a joined namespace: value = its CELL_NS_* bit */
    CELL_STEP_SET_USER = 70,      /* taking the command's ids (CELL_REC_USER) */
    CELL_STEP_SYSCTL = 71,        /* writing a CELL_REC_SYSCTL: value = its index among them */
    CELL_STEP_PROCESS = 72,       /* taking a request (CELL_REC_TAKE_PROCESSES): reading it, or, with
                                   * CELL_REPORT_PROCESS_FAILED, a request it refused (EINVAL) or
                                   * its pty (the errno) */
};

enum cell_report_kind {
    CELL_REPORT_FAILED = 1,      /* setup failed at `step` with errno `error`; detail in `value` */
    CELL_REPORT_WARNING = 2,     /* setup went on after a problem at `step` */
    CELL_REPORT_EXEC_FAILED = 3, /* the command could not be executed: `error` is execve's errno */
    CELL_REPORT_EXITED = 4,      /* the command ended: `value` is its raw wait status */
    /* The answer to each PROCESS request, in the order they came: */
    CELL_REPORT_PROCESS_STARTED = 5, /* `value` is its pid (in the sandbox's pid namespace) */
    CELL_REPORT_PROCESS_FAILED = 6,  /* not started: `step` (CELL_STEP_EXEC_COMMAND: posix_spawn's
                                      * error, an exec's included), `error` its errno */
    CELL_REPORT_PROCESS_EXITED = 7,  /* a started process ended: `step` is its pid, `value` its raw
                                      * wait status */
};

struct cell_report {
    int32_t kind;
    int32_t step;
    int32_t error;
    int32_t value;
};

/* The exit status of a setup process that failed (after its CELL_REPORT_FAILED). */
#define CELL_EXIT_SETUP_FAILED 125

#endif
