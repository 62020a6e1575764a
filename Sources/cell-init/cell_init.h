/*
 * cell_init.h — cell-init's internal declarations: the decoded plan and each file's entry
 * points. The wire format itself is cell_plan.h, shared with the supervisor.
 *
 * cell-init is the sandbox's pid 1: a static, single-threaded program executed by the
 * trampoline with every signal blocked, an empty environment and descriptors 0-4 only (see
 * cell_plan.h). setup.c lists the layers in the order they are applied.
 */
#ifndef CELL_INIT_H
#define CELL_INIT_H

#include "../CCellSpawn/include/cell_plan.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The parts of the plan, in the order they arrive (cell_plan.h). */
enum plan_part {
    PART_HEADER,  /* before the PLAN record */
    PART_SETUP,   /* until END_SETUP */
    PART_FILTERS, /* until END_FILTERS */
    PART_HOLD,    /* until START (only with a HOLD record) */
    PART_DONE,
};

struct plan_mount {
    uint32_t kind;    /* CELL_OP_* */
    uint32_t flags;   /* CELL_OPF_* */
    uint32_t expect;  /* S_IFMT type of a bind source, or 0 */
    uint32_t mode;    /* or CELL_PLAN_NONE_U32 */
    uint64_t size;    /* or CELL_PLAN_NONE_U64 */
    const char *source; /* a path, a link target, or a FILE's contents (a blob) */
    size_t source_len;
    const char *dest;   /* absolute and normalized (checked by plan.c) */
    const char *upper;  /* CELL_OP_OVERLAY: the host directory for the upper layer, or NULL (a tmpfs) */
};

/* A Landlock rule: a path beneath which `access` is allowed. */
struct plan_landlock_rule {
    uint64_t access;
    const char *path;
};

struct plan_rlimit {
    uint32_t resource;
    uint64_t soft, hard;
};

struct plan_filter {
    uint32_t listener;         /* 1: load with NEW_LISTENER, send the listener up */
    const unsigned char *bpf;  /* struct sock_filter[] */
    size_t len;                /* bytes: a non-zero multiple of 8 */
};

/*
 * The decoded plan. Strings point into the records' payloads, which are never freed; a `str`
 * is NUL-terminated in place (the format guarantees the byte after it).
 */
#define CELL_MAX_LISTENERS 4
#define CELL_MAX_JOINS 4     /* net, ipc, uts, cgroup: each joined at most once */
#define CELL_MAX_GROUPS 64   /* CELL_REC_USER's supplementary groups */

/* A sysctl of the sandbox's own namespaces (CELL_REC_SYSCTL). */
struct plan_sysctl {
    const char *name; /* a.b.c */
    const char *value;
};

/* A namespace joined by path (CELL_REC_JOIN_NAMESPACE). */
struct plan_join {
    uint32_t bit; /* CELL_NS_* */
    const char *path;
};

struct plan {
    enum plan_part part;
    uint32_t records; /* records decoded so far: the next record's index */
    uint32_t seen;    /* bit N: a record of type N was decoded (for the at-most-once types) */

    uint32_t namespaces; /* CELL_NS_* */
    int has_namespaces;
    int has_userns_limit;
    uint32_t userns_limit;
    int has_ipc_limit;
    uint64_t shmmax, shmall;
    int loopback;
    int has_unreachable;
    uint16_t listeners[CELL_MAX_LISTENERS]; /* CELL_REC_SEND_FD: ports of 127.0.0.1 listeners */
    uint32_t listener_count;
    uint32_t unreachable; /* IPv4 as a number (host byte order) */
    int has_root;
    uint64_t root_size; /* or CELL_PLAN_NONE_U64 */
    const char *root_base;
    const char *root_tree; /* CELL_REC_ROOT_TREE: the root is this host directory (else NULL) */
    uint32_t root_flags;   /* CELL_OPF_READONLY: the root tree read-only */
    struct plan_join joins[CELL_MAX_JOINS]; /* CELL_REC_JOIN_NAMESPACE */
    size_t join_count;
    struct plan_sysctl *sysctls; /* CELL_REC_SYSCTL */
    size_t sysctl_count;
    int has_user; /* CELL_REC_USER */
    uint32_t user_uid, user_gid;
    uint32_t *user_groups;
    size_t user_group_count;
    struct plan_mount *mounts;
    size_t mount_count;
    const char *hostname; /* NULL: leave it */
    size_t hostname_len;
    const char *cwd;          /* NULL: stay where the trampoline left us */
    const char *cwd_fallback; /* NULL: none (failing to enter cwd fails the launch) */
    struct plan_rlimit *rlimits;
    size_t rlimit_count;
    int has_landlock;
    uint32_t landlock_abi, landlock_required;
    uint64_t landlock_fs, landlock_net, landlock_scoped;
    struct plan_landlock_rule *landlock_rules;
    size_t landlock_rule_count;
    int has_caps;
    uint64_t caps; /* kept capabilities; 0 without a CAPS record */
    int hold;
    int take_processes; /* CELL_REC_TAKE_PROCESSES */
    int has_terminal;
    uint32_t terminal_rows, terminal_cols, terminal_std; /* CELL_REC_TERMINAL */
    char terminal_path[32];                               /* the pty's terminal, once made */
    char **argv; /* NULL-terminated, at least one entry */
    size_t argc;
    char **envp; /* NULL-terminated */
    size_t envc;

    struct plan_filter *filters;
    size_t filter_count;
};

/* `v` in `base` (8 or 10) as text, the way sysctls and fsconfig take numbers; `out` holds 24
 * bytes (a u64 in octal is 22 digits). Not snprintf: printf would double pid 1's size, and
 * pid 1 is copied into a memfd at every launch. */
static inline const char *format_unsigned(char out[24], unsigned long long v, unsigned base) {
    char *p = out + 23;
    *p = '\0';
    do {
        *--p = (char)('0' + v % base);
        v /= base;
    } while (v > 0);
    return p;
}

/* ---- report.c: the only writers of CELL_FD_REPORT */
void report(int kind, int step, int error, int value);
void warn_report(int step, int error, int value);
/* A CELL_REPORT_FAILED, then _exit(CELL_EXIT_SETUP_FAILED). */
__attribute__((noreturn)) void fail(int step, int error, int value);
/* One byte up CELL_FD_CONTROL carrying `fd` (SCM_RIGHTS); 0, or -1 with errno. */
int send_up(char byte, int fd);

/*
 * A bounds-checked reader of a record's fields. A field that does not fit sets `bad` and makes
 * every later take a no-op, so a record's fields are taken in one straight sequence and checked
 * once, by finish(), before any of them is used.
 */
struct cursor {
    char *at;
    size_t left;
    int bad;
};

/* ---- plan_fields.c: taking a record's fields (a field that does not fit marks the cursor bad,
 * and finish() refuses the record) and growing the plan's arrays */
uint32_t take_u32(struct cursor *c);
uint64_t take_u64(struct cursor *c);
char *take_blob(struct cursor *c, size_t *len);
char *take_str(struct cursor *c, size_t *len);
void finish(const struct plan *p, const struct cursor *c, uint32_t index);
void *append(const struct plan *p, void *array, size_t *count, size_t size, size_t extra, uint32_t index);
void append_string(const struct plan *p, char ***array, size_t *count, char *s, uint32_t index);
int is_absolute(const char *s);

/* ---- plan_container.c: ROOT_TREE, JOIN_NAMESPACE, USER, SYSCTL */
void decode_container_record(struct plan *p, uint32_t type, struct cursor *c, uint32_t index);

/* ---- plan.c */
void plan_init(struct plan *p);
/* Decodes one record into `p`; any refusal is fail() with the record's index. Pure: reads
 * nothing but its arguments; keeps pointers into `payload`. */
void plan_decode(struct plan *p, uint32_t type, char *payload, uint32_t len, uint32_t index);
/* A refusal of the record at `index`: fail() at the step of the part being read. */
__attribute__((noreturn)) void plan_refuse(const struct plan *p, int error, uint32_t index);
static inline uint32_t plan_le32(const unsigned char *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* ---- plan_read.c */
void plan_read_reset(void);                      /* forget any buffered bytes (tests) */
void plan_read_setup(struct plan *p, int fd);   /* until END_SETUP */
void plan_read_filters(struct plan *p, int fd); /* until END_FILTERS */
void plan_hold(struct plan *p, int fd);         /* 'H' up, then until START */

/* ---- landlock.c */
void apply_landlock(const struct plan *p);

/* ---- namespaces.c */
void unshare_namespaces(const struct plan *p);
void limit_user_namespaces(const struct plan *p);
void limit_shared_memory(const struct plan *p);
void set_hostname(const struct plan *p);
/* Writes `value` to the /proc/sys file `path` in one write; 0, or -1 with errno. */
int write_sysctl(const char *path, const char *value);

/* ---- network.c */
void set_up_loopback(void);
void make_unreachable(uint32_t address);
void hand_out_listeners(const struct plan *p);

/* ---- mounts.c */
void build_view(const struct plan *p);

/* ---- container.c: what an OCI runtime's plan adds (joined namespaces, a bundle's root, the
 * command's ids) */
void join_namespaces(const struct plan *p);
int take_root_tree(const struct plan *p);
void set_user(const struct plan *p);
void set_sysctls(const struct plan *p);

/* ---- lockdown.c */
void set_rlimits(const struct plan *p);
void drop_capabilities(const struct plan *p);
void set_no_new_privs(void);
void load_filters(const struct plan *p);

/* ---- terminal.c: the command's pty (CELL_REC_TERMINAL), and exec's */
void open_terminal(struct plan *p);
/* A pty of `rows` x `cols` on the sandbox's devpts: its master (close-on-exec), its terminal's
 * path in `path`; or -1 with errno. */
int make_pty(uint32_t rows, uint32_t cols, char path[32]);

/* ---- init.c: starts the command, forwards signals, reaps; returns pid 1's exit status. */
int run_init(const struct plan *p);
/* How a process of the sandbox's is started (the command, or one exec asked for). */
struct spawn_how {
    const char *cwd;   /* NULL: pid 1's own */
    const char *tty;   /* a pty's terminal for the descriptors in tty_std, or NULL */
    unsigned tty_std;  /* bit N: descriptor N is the pty */
    const int *stdio;  /* three descriptors for 0-2 (where not the pty), or NULL: pid 1's own */
};
/* posix_spawnp's error: 0 with *pid set, or the errno (an exec failure's included). */
int spawn_process(pid_t *pid, char *const argv[], char *const envp[], const struct spawn_how *how);

/* ---- process.c: the processes cell-runtime's exec asks for (CELL_REC_TAKE_PROCESSES) */
void begin_taking_processes(void);
/* The next child reaped (its pid, and its wait status in *status), or -1 with errno; takes the
 * supervisor's requests meanwhile. */
pid_t wait_or_take_request(int *status);
/* A reaped child that was one of exec's: reported (CELL_REPORT_PROCESS_EXITED). */
void process_ended(pid_t pid, int status);
/* Decodes a request's records (in `bytes`, `len` long) into argv and envp (NULL-terminated,
 * at most `max` entries each), pointing into `bytes`; 0, or -1 when anything in it is wrong.
 * Pure: plan_test feeds it requests directly. */
struct process_request {
    uint32_t rows, cols; /* 0, 0: no pty */
    const char *cwd;
    char **argv, **envp;
};
int decode_process_request(char *bytes, size_t len, struct process_request *r, size_t max);

#endif
