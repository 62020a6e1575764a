/*
 * plan.c — decoding the launch plan (format: cell_plan.h).
 *
 * The supervisor decides everything and pid 1 only executes, so this file is where pid 1
 * makes sure that what it executes is exactly what the format allows: every record is checked
 * whole (exact length, NUL-terminated strings, known values only) before anything in it is
 * used, and any doubt refuses the whole plan. A refusal is fail() with the record's index
 * (counted from 0, the PLAN record, across all parts), so the supervisor can name the record.
 *
 * plan_decode() is pure (its arguments in, `struct plan` out) so that tests can feed it
 * records directly; the readers in plan_read.c only frame records off the control socket.
 */
#include "cell_init.h"

#include <errno.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/utsname.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where each record type may appear. Types are small: `seen` has a bit for each. */
struct record_rule {
    uint8_t known;
    uint8_t reserved; /* part of the format, refused (ENOTSUP) until this pid 1 implements it */
    uint8_t once;     /* at most one per plan */
    uint8_t part;     /* enum plan_part */
};

static const struct record_rule rules[] = {
    [CELL_REC_PLAN] = {1, 0, 1, PART_HEADER},
    [CELL_REC_NAMESPACES] = {1, 0, 1, PART_SETUP},
    [CELL_REC_JOIN_NAMESPACE] = {1, 0, 0, PART_SETUP},
    [CELL_REC_USERNS_LIMIT] = {1, 0, 1, PART_SETUP},
    [CELL_REC_LOOPBACK] = {1, 0, 1, PART_SETUP},
    [CELL_REC_ROOT] = {1, 0, 1, PART_SETUP},
    [CELL_REC_MOUNT] = {1, 0, 0, PART_SETUP},
    [CELL_REC_OVERLAY] = {1, 0, 0, PART_SETUP},
    [CELL_REC_HOSTNAME] = {1, 0, 1, PART_SETUP},
    [CELL_REC_CWD] = {1, 0, 1, PART_SETUP},
    [CELL_REC_RLIMIT] = {1, 0, 0, PART_SETUP},
    [CELL_REC_CAPS] = {1, 0, 1, PART_SETUP},
    [CELL_REC_LANDLOCK] = {1, 0, 1, PART_SETUP},
    [CELL_REC_HOLD] = {1, 0, 1, PART_SETUP},
    [CELL_REC_SEND_FD] = {1, 0, 0, PART_SETUP},
    [CELL_REC_ARG] = {1, 0, 0, PART_SETUP},
    [CELL_REC_ENV] = {1, 0, 0, PART_SETUP},
    [CELL_REC_END_SETUP] = {1, 0, 1, PART_SETUP},
    [CELL_REC_SECCOMP] = {1, 0, 0, PART_FILTERS},
    [CELL_REC_END_FILTERS] = {1, 0, 1, PART_FILTERS},
    [CELL_REC_START] = {1, 0, 1, PART_HOLD},
    [CELL_REC_TERMINAL] = {1, 0, 1, PART_SETUP},
    [CELL_REC_IPC_LIMIT] = {1, 0, 1, PART_SETUP},
    [CELL_REC_LANDLOCK_PATH] = {1, 0, 0, PART_SETUP},
    [CELL_REC_LANDLOCK_PORT] = {1, 1, 0, PART_SETUP},
    [CELL_REC_UNREACHABLE] = {1, 0, 1, PART_SETUP},
    [CELL_REC_ROOT_TREE] = {1, 0, 1, PART_SETUP},
    [CELL_REC_USER] = {1, 0, 1, PART_SETUP},
    [CELL_REC_SYSCTL] = {1, 0, 0, PART_SETUP},
    [CELL_REC_TAKE_PROCESSES] = {1, 0, 1, PART_SETUP},
};
_Static_assert(sizeof rules / sizeof rules[0] <= 32, "struct plan's `seen` has 32 bits");

#define ALL_NAMESPACES \
    (CELL_NS_MOUNT | CELL_NS_PID | CELL_NS_NET | CELL_NS_IPC | CELL_NS_UTS | CELL_NS_CGROUP | CELL_NS_TIME)
#define ALL_MOUNT_FLAGS \
    (CELL_OPF_READONLY | CELL_OPF_OPTIONAL | CELL_OPF_NO_CREATE | CELL_OPF_NOEXEC | CELL_OPF_DEVICE)
/* The kernel's limit (musl's HOST_NAME_MAX says 255). */
#define HOSTNAME_MAX __NEW_UTS_LEN

/* The step a refusal is reported at: the filter part has its own (cell_plan.h). */
__attribute__((noreturn)) void plan_refuse(const struct plan *p, int error, uint32_t index) {
    fail(p->part == PART_FILTERS ? CELL_STEP_WAIT_FILTERS : CELL_STEP_PLAN, error, (int)index);
}


/* "/a/b": absolute, normalized, and not "/" itself; no empty, "." or ".." component (so no
 * "//" and no trailing "/"); each component a valid file name. mounts.c relies on this. */
static int is_normalized_dest(const char *s, size_t len) {
    if (len < 2 || len >= PATH_MAX || s[0] != '/')
        return 0;
    for (const char *at = s; *at;) {
        const char *name = ++at; /* past the '/' */
        while (*at && *at != '/')
            at++;
        size_t n = (size_t)(at - name);
        if (n == 0 || n > NAME_MAX || (n == 1 && name[0] == '.') || (n == 2 && name[0] == '.' && name[1] == '.'))
            return 0;
    }
    return 1;
}

/* The S_IFMT types a bind source may be announced as. Never a symlink: nothing is ever bound
 * through one, nor is one bound itself. */
static int is_bindable_type(uint32_t t) {
    return t == S_IFDIR || t == S_IFREG || t == S_IFCHR || t == S_IFBLK || t == S_IFIFO || t == S_IFSOCK;
}

static void decode_mount(struct plan *p, struct cursor *c, uint32_t index) {
    struct plan_mount m;
    memset(&m, 0, sizeof m);
    m.kind = take_u32(c);
    m.flags = take_u32(c);
    m.expect = take_u32(c);
    m.mode = take_u32(c);
    m.size = take_u64(c);
    m.source = take_blob(c, &m.source_len);
    size_t dest_len;
    m.dest = take_str(c, &dest_len);
    finish(p, c, index);

    /* Every field means something for some kinds only; elsewhere it must be empty, so that a
     * planner's mistake is refused rather than silently ignored. */
    int is_bind = m.kind == CELL_OP_BIND;
    int is_hide = m.kind == CELL_OP_HIDE;
    int takes_mode = m.kind == CELL_OP_TMPFS || m.kind == CELL_OP_DIR || m.kind == CELL_OP_FILE;
    int takes_source = is_bind || m.kind == CELL_OP_SYMLINK || m.kind == CELL_OP_FILE;
    int ok = ((m.kind >= CELL_OP_BIND && m.kind <= CELL_OP_REMOUNT_RO) || is_hide || m.kind == CELL_OP_SYSFS) &&
             (m.flags & ~(uint32_t)ALL_MOUNT_FLAGS) == 0 &&
             (is_bind || !(m.flags & CELL_OPF_DEVICE)) &&
             (is_bind ? (m.expect == 0 || is_bindable_type(m.expect))
              : is_hide ? (m.expect == S_IFDIR || m.expect == S_IFREG || m.expect == S_IFLNK)
              : m.expect == 0) &&
             (m.mode == CELL_PLAN_NONE_U32 || (takes_mode && m.mode <= 07777)) &&
             /* size=0 is "no limit" to tmpfs: never what a planner means */
             (m.size == CELL_PLAN_NONE_U64 || (m.kind == CELL_OP_TMPFS && m.size > 0)) &&
             is_normalized_dest(m.dest, dest_len);
    /* Only a FILE's contents may hold a NUL: every other source is used as a C string. */
    if (ok && m.kind != CELL_OP_FILE)
        ok = memchr(m.source, '\0', m.source_len) == NULL;
    if (ok && is_bind)
        ok = is_absolute(m.source);
    else if (ok && m.kind == CELL_OP_SYMLINK)
        ok = m.source_len > 0;
    else if (ok && !takes_source)
        ok = m.source_len == 0;
    if (!ok)
        plan_refuse(p, EINVAL, index);
    p->mounts = append(p, p->mounts, &p->mount_count, sizeof m, 0, index);
    p->mounts[p->mount_count - 1] = m;
}

static void decode_filter(struct plan *p, struct cursor *c, uint32_t index) {
    struct plan_filter f;
    f.listener = take_u32(c);
    f.bpf = (const unsigned char *)take_blob(c, &f.len);
    finish(p, c, index);
    if (f.len > BPF_MAXINSNS * sizeof(struct sock_filter))
        plan_refuse(p, E2BIG, index);
    if (f.len == 0 || f.len % sizeof(struct sock_filter) != 0 || f.listener > 1)
        plan_refuse(p, EINVAL, index);
    /* The kernel gives a process one listener at most (EBUSY), and the protocol carries one. */
    for (size_t i = 0; f.listener && i < p->filter_count; i++) {
        if (p->filters[i].listener)
            plan_refuse(p, EINVAL, index);
    }
    p->filters = append(p, p->filters, &p->filter_count, sizeof f, 0, index);
    p->filters[p->filter_count - 1] = f;
}

/* The end of the setup part: what needs several records together. */
static void check_setup(const struct plan *p, uint32_t index) {
    int ok = p->argc >= 1 &&
             /* each of these acts on a namespace of the sandbox's own, never on the host's */
             (!p->has_root || (p->namespaces & CELL_NS_MOUNT)) &&
             (!p->loopback || (p->namespaces & CELL_NS_NET)) &&
             (!p->has_unreachable || (p->namespaces & CELL_NS_NET)) &&
             (!p->listener_count || (p->namespaces & CELL_NS_NET)) &&
             (!p->hostname || (p->namespaces & CELL_NS_UTS)) &&
             (!p->has_ipc_limit || (p->namespaces & CELL_NS_IPC)) &&
             /* requests may come only once the plan's reader is done with the socket */
             (!p->take_processes || p->hold);
    /* A namespace is joined or made, never both. */
    for (size_t i = 0; ok && i < p->join_count; i++)
        ok = !(p->namespaces & p->joins[i].bit);
    if (!ok)
        plan_refuse(p, EINVAL, index);
}


void plan_init(struct plan *p) {
    memset(p, 0, sizeof *p);
    /* A new plan starts with nothing read ahead. */
    plan_read_reset();
    p->part = PART_HEADER;
    p->root_size = CELL_PLAN_NONE_U64;
}

void plan_decode(struct plan *p, uint32_t type, char *payload, uint32_t len, uint32_t index) {
    if (index >= CELL_PLAN_MAX_RECORDS || len > CELL_PLAN_MAX_RECORD)
        plan_refuse(p, E2BIG, index);
    const struct record_rule *rule = type < sizeof rules / sizeof rules[0] ? &rules[type] : NULL;
    if (!rule || !rule->known)
        plan_refuse(p, EINVAL, index);
    if (rule->reserved)
        plan_refuse(p, ENOTSUP, index);
    /* In its own part only: this also makes PLAN the first record and the only one. */
    if (rule->part != p->part)
        plan_refuse(p, EINVAL, index);
    if (rule->once && (p->seen & (1u << type)))
        plan_refuse(p, EINVAL, index);
    p->seen |= 1u << type;

    struct cursor c = {payload, len, 0};
    size_t n;
    switch (type) {
    case CELL_REC_PLAN: {
        uint32_t magic = take_u32(&c), version = take_u32(&c);
        finish(p, &c, index);
        if (magic != CELL_PLAN_MAGIC)
            plan_refuse(p, EINVAL, index);
        if (version != CELL_PLAN_VERSION)
            plan_refuse(p, ENOTSUP, index); /* another cell's plan: not garbage, but not ours */
        p->part = PART_SETUP;
        break;
    }
    case CELL_REC_NAMESPACES:
        p->namespaces = take_u32(&c);
        finish(p, &c, index);
        if (p->namespaces & ~(uint32_t)ALL_NAMESPACES)
            plan_refuse(p, EINVAL, index);
        p->has_namespaces = 1;
        break;
    case CELL_REC_USERNS_LIMIT:
        p->userns_limit = take_u32(&c);
        finish(p, &c, index);
        if (p->userns_limit > INT_MAX) /* the sysctl is an int */
            plan_refuse(p, EINVAL, index);
        p->has_userns_limit = 1;
        break;
    case CELL_REC_IPC_LIMIT:
        p->shmmax = take_u64(&c);
        p->shmall = take_u64(&c);
        finish(p, &c, index);
        p->has_ipc_limit = 1;
        break;
    case CELL_REC_LOOPBACK:
        finish(p, &c, index);
        p->loopback = 1;
        break;
    case CELL_REC_SEND_FD: {
        uint32_t kind = take_u32(&c), port = take_u32(&c);
        finish(p, &c, index);
        if (kind != CELL_SEND_TCP_LISTENER || port == 0 || port > 65535 || p->listener_count >= CELL_MAX_LISTENERS)
            plan_refuse(p, EINVAL, index);
        p->listeners[p->listener_count++] = (uint16_t)port;
        break;
    }
    case CELL_REC_UNREACHABLE:
        p->unreachable = take_u32(&c);
        finish(p, &c, index);
        p->has_unreachable = 1;
        break;
    case CELL_REC_ROOT:
        p->root_size = take_u64(&c);
        p->root_base = take_str(&c, &n);
        finish(p, &c, index);
        if (!is_absolute(p->root_base) || p->root_size == 0 || p->has_root) /* size=0: no limit, as above */
            plan_refuse(p, EINVAL, index);
        p->has_root = 1;
        break;
    case CELL_REC_ROOT_TREE:
    case CELL_REC_JOIN_NAMESPACE:
    case CELL_REC_USER:
    case CELL_REC_SYSCTL:
        decode_container_record(p, type, &c, index); /* plan_container.c */
        break;
    case CELL_REC_MOUNT:
        if (!p->has_root) /* operations run below the new root: it must be planned first */
            plan_refuse(p, EINVAL, index);
        decode_mount(p, &c, index);
        break;
    case CELL_REC_OVERLAY: {
        if (!p->has_root)
            plan_refuse(p, EINVAL, index);
        struct plan_mount m;
        memset(&m, 0, sizeof m);
        m.kind = CELL_OP_OVERLAY;
        m.flags = take_u32(&c);
        m.size = take_u64(&c);
        m.mode = CELL_PLAN_NONE_U32;
        m.expect = S_IFDIR;
        m.source = take_str(&c, &m.source_len);
        m.upper = take_str(&c, &n);
        m.dest = take_str(&c, &n);
        finish(p, &c, index);
        /* Absolute host directories; a tmpfs upper layer with a size, a changes directory
         * without; only the read-only and noexec flags mean something here. */
        if (!is_absolute(m.source) || !is_absolute(m.dest) || (m.upper[0] && !is_absolute(m.upper)) ||
            (m.upper[0] != 0) != (m.size == CELL_PLAN_NONE_U64) || m.size == 0 ||
            (m.flags & ~(uint32_t)(CELL_OPF_READONLY | CELL_OPF_NOEXEC)) != 0)
            plan_refuse(p, EINVAL, index);
        if (!m.upper[0])
            m.upper = NULL;
        p->mounts = append(p, p->mounts, &p->mount_count, sizeof m, 0, index);
        p->mounts[p->mount_count - 1] = m;
        break;
    }
    case CELL_REC_HOSTNAME:
        p->hostname = take_str(&c, &p->hostname_len);
        finish(p, &c, index);
        if (p->hostname_len > HOSTNAME_MAX)
            plan_refuse(p, EINVAL, index);
        break;
    case CELL_REC_CWD:
        p->cwd = take_str(&c, &n);
        p->cwd_fallback = take_str(&c, &n);
        finish(p, &c, index);
        if (!is_absolute(p->cwd) || (n > 0 && !is_absolute(p->cwd_fallback)))
            plan_refuse(p, EINVAL, index);
        if (n == 0)
            p->cwd_fallback = NULL;
        break;
    case CELL_REC_RLIMIT: {
        struct plan_rlimit r;
        r.resource = take_u32(&c);
        r.soft = take_u64(&c);
        r.hard = take_u64(&c);
        finish(p, &c, index);
        /* RLIM_INFINITY is all ones on every 64-bit ABI: the plain comparison holds. */
        if (r.resource >= RLIMIT_NLIMITS || r.soft > r.hard)
            plan_refuse(p, EINVAL, index);
        p->rlimits = append(p, p->rlimits, &p->rlimit_count, sizeof r, 0, index);
        p->rlimits[p->rlimit_count - 1] = r;
        break;
    }
    case CELL_REC_LANDLOCK:
        p->landlock_abi = take_u32(&c);
        p->landlock_required = take_u32(&c);
        p->landlock_fs = take_u64(&c);
        p->landlock_net = take_u64(&c);
        p->landlock_scoped = take_u64(&c);
        finish(p, &c, index);
        if (p->landlock_abi == 0 || p->landlock_required > 1 || (p->landlock_fs | p->landlock_net | p->landlock_scoped) == 0)
            plan_refuse(p, EINVAL, index);
        p->has_landlock = 1;
        break;
    case CELL_REC_LANDLOCK_PATH: {
        struct plan_landlock_rule r = {take_u64(&c), NULL};
        r.path = take_str(&c, &n);
        finish(p, &c, index);
        /* A rule grants only what its ruleset handles, and follows it. */
        if (!p->has_landlock || r.access == 0 || (r.access & ~p->landlock_fs) || !is_absolute(r.path))
            plan_refuse(p, EINVAL, index);
        p->landlock_rules = append(p, p->landlock_rules, &p->landlock_rule_count, sizeof r, 0, index);
        p->landlock_rules[p->landlock_rule_count - 1] = r;
        break;
    }
    case CELL_REC_CAPS:
        p->caps = take_u64(&c);
        finish(p, &c, index);
        p->has_caps = 1;
        break;
    case CELL_REC_HOLD:
        finish(p, &c, index);
        p->hold = 1;
        break;
    case CELL_REC_TAKE_PROCESSES:
        finish(p, &c, index);
        p->take_processes = 1;
        break;
    case CELL_REC_TERMINAL:
        p->terminal_rows = take_u32(&c);
        p->terminal_cols = take_u32(&c);
        p->terminal_std = take_u32(&c);
        finish(p, &c, index);
        if (p->terminal_rows > 0xffff || p->terminal_cols > 0xffff || p->terminal_std > 7)
            plan_refuse(p, EINVAL, index);
        p->has_terminal = 1;
        break;
    case CELL_REC_ARG: {
        char *arg = take_str(&c, &n);
        finish(p, &c, index);
        append_string(p, &p->argv, &p->argc, arg, index);
        break;
    }
    case CELL_REC_ENV: {
        char *var = take_str(&c, &n);
        finish(p, &c, index);
        const char *eq = strchr(var, '=');
        if (!eq || eq == var) /* NAME=value, with a name */
            plan_refuse(p, EINVAL, index);
        append_string(p, &p->envp, &p->envc, var, index);
        break;
    }
    case CELL_REC_END_SETUP:
        finish(p, &c, index);
        check_setup(p, index);
        p->part = PART_FILTERS;
        break;
    case CELL_REC_SECCOMP:
        decode_filter(p, &c, index);
        break;
    case CELL_REC_END_FILTERS:
        finish(p, &c, index);
        p->part = p->hold ? PART_HOLD : PART_DONE;
        break;
    case CELL_REC_START:
        finish(p, &c, index);
        p->part = PART_DONE;
        break;
    default: /* a type in the table without a case here: refuse rather than ignore */
        plan_refuse(p, EINVAL, index);
    }
    p->records = index + 1;
}
