/*
 * plan_test.c — pid 1's plan decoder (Sources/cell-init/plan.c): what it accepts, and that it
 * refuses every malformed plan with the right step, errno and record index.
 *
 *   cc -D_GNU_SOURCE -Wall -Wextra -Werror -ISources/CCellSpawn/include -o /tmp/plan_test \
 *       Tests/cell-init/plan_test.c Sources/cell-init/plan.c Sources/cell-init/plan_fields.c \
 *       Sources/cell-init/plan_container.c Sources/cell-init/plan_read.c && /tmp/plan_test
 *
 * plan.c reports a refusal through fail(), which in cell-init never returns; this test's
 * fail() records the report and jumps back, so a refusal can be looked at.
 */
#include "../../Sources/cell-init/cell_init.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static jmp_buf refused;
static struct {
    int step, error, value;
} last;

void fail(int step, int error, int value) {
    last.step = step;
    last.error = error;
    last.value = value;
    longjmp(refused, 1);
}

static int passed, failed;

#define CHECK(cond) check((cond), #cond, __LINE__)
static void check(int ok, const char *what, int line) {
    if (ok) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "plan_test.c:%d: FAILED: %s\n", line, what);
    }
}

/* ---------------------------------------------------------------- building plans */

struct record {
    uint32_t type;
    uint32_t len;
    unsigned char bytes[40000]; /* room for a filter past BPF_MAXINSNS */
};
static struct record records[64];
static size_t record_count;

static void reset(void) {
    record_count = 0;
}

static struct record *rec(uint32_t type) {
    struct record *r = &records[record_count++];
    r->type = type;
    r->len = 0;
    return r;
}

static void u32(struct record *r, uint32_t v) {
    for (int i = 0; i < 4; i++)
        r->bytes[r->len++] = (unsigned char)(v >> (8 * i));
}

static void u64(struct record *r, uint64_t v) {
    u32(r, (uint32_t)v);
    u32(r, (uint32_t)(v >> 32));
}

static void blob(struct record *r, const void *data, size_t len) {
    u32(r, (uint32_t)len);
    memcpy(r->bytes + r->len, data, len);
    r->len += (uint32_t)len;
    r->bytes[r->len++] = 0;
}

static void str(struct record *r, const char *s) {
    blob(r, s, strlen(s));
}

static void header(void) {
    struct record *r = rec(CELL_REC_PLAN);
    u32(r, CELL_PLAN_MAGIC);
    u32(r, CELL_PLAN_VERSION);
}

static void namespaces(uint32_t bits) {
    u32(rec(CELL_REC_NAMESPACES), bits);
}

static void root(void) {
    struct record *r = rec(CELL_REC_ROOT);
    u64(r, 1 << 20);
    str(r, "/tmp");
}

static void mount_op(uint32_t kind, uint32_t flags, uint32_t expect, uint32_t mode, uint64_t size, const void *source,
                     size_t source_len, const char *dest) {
    struct record *r = rec(CELL_REC_MOUNT);
    u32(r, kind);
    u32(r, flags);
    u32(r, expect);
    u32(r, mode);
    u64(r, size);
    blob(r, source, source_len);
    str(r, dest);
}

static void bind_to(const char *dest) {
    mount_op(CELL_OP_BIND, CELL_OPF_READONLY, S_IFDIR, CELL_PLAN_NONE_U32, CELL_PLAN_NONE_U64, "/usr", 4, dest);
}

static void string_record(uint32_t type, const char *s) {
    str(rec(type), s);
}

static void empty(uint32_t type) {
    rec(type);
}

static void seccomp(uint32_t listener, size_t len) {
    static const unsigned char insns[4097 * 8]; /* zeros: plan.c does not look inside */
    struct record *r = rec(CELL_REC_SECCOMP);
    u32(r, listener);
    blob(r, insns, len);
}

/* PLAN, namespaces, a root, one argument, END_SETUP: the smallest plan with a filter part. */
static void setup_part(void) {
    header();
    namespaces(CELL_NS_MOUNT | CELL_NS_PID);
    root();
    string_record(CELL_REC_ARG, "/bin/true");
    empty(CELL_REC_END_SETUP);
}

/* ---------------------------------------------------------------- decoding */

static struct plan plan;

/* 1 when every record was accepted; 0 when one was refused (see `last`). Each payload is a
 * copy of exactly its length, as read_record allocates it. */
static int decode(void) {
    plan_init(&plan);
    memset(&last, 0, sizeof last);
    if (setjmp(refused))
        return 0;
    for (size_t i = 0; i < record_count; i++) {
        char *payload = records[i].len ? malloc(records[i].len) : NULL;
        if (records[i].len)
            memcpy(payload, records[i].bytes, records[i].len);
        plan_decode(&plan, records[i].type, payload, records[i].len, (uint32_t)i);
    }
    return 1;
}

static void expect_refused(const char *name, int step, int error, int index) {
    int accepted = decode();
    if (!accepted && last.step == step && last.error == error && last.value == index) {
        passed++;
        return;
    }
    failed++;
    if (accepted)
        fprintf(stderr, "FAILED: %s: accepted; want step %d errno %d index %d\n", name, step, error, index);
    else
        fprintf(stderr, "FAILED: %s: step %d errno %d index %d; want step %d errno %d index %d\n", name, last.step,
                last.error, last.value, step, error, index);
}

static void test_minimal_plan(void) {
    static const char contents[] = {'a', '\0', 'b'};
    reset();
    header();
    namespaces(CELL_NS_MOUNT | CELL_NS_PID | CELL_NS_NET | CELL_NS_UTS);
    root();
    bind_to("/usr");
    mount_op(CELL_OP_FILE, 0, 0, 0640, CELL_PLAN_NONE_U64, contents, sizeof contents, "/etc/hosts");
    string_record(CELL_REC_HOSTNAME, "cell");
    {
        struct record *r = rec(CELL_REC_CWD);
        str(r, "/work");
        str(r, "");
    }
    {
        struct record *r = rec(CELL_REC_RLIMIT);
        u32(r, RLIMIT_NOFILE);
        u64(r, 1024);
        u64(r, 4096);
    }
    u64(rec(CELL_REC_CAPS), 1ull << 10);
    string_record(CELL_REC_ARG, "/bin/sh");
    string_record(CELL_REC_ARG, "-c");
    string_record(CELL_REC_ARG, "");
    string_record(CELL_REC_ENV, "PATH=/bin");
    string_record(CELL_REC_ENV, "EMPTY=");
    empty(CELL_REC_END_SETUP);
    seccomp(0, 16);
    seccomp(1, 8);
    empty(CELL_REC_END_FILTERS);

    CHECK(decode());
    CHECK(plan.part == PART_DONE);
    CHECK(plan.records == record_count);
    CHECK(plan.namespaces == (CELL_NS_MOUNT | CELL_NS_PID | CELL_NS_NET | CELL_NS_UTS));
    CHECK(plan.has_root && plan.root_size == 1 << 20 && strcmp(plan.root_base, "/tmp") == 0);
    CHECK(plan.mount_count == 2);
    const struct plan_mount *b = &plan.mounts[0];
    CHECK(b->kind == CELL_OP_BIND && b->flags == CELL_OPF_READONLY && b->expect == S_IFDIR);
    CHECK(b->mode == CELL_PLAN_NONE_U32 && b->size == CELL_PLAN_NONE_U64);
    CHECK(strcmp(b->source, "/usr") == 0 && strcmp(b->dest, "/usr") == 0);
    const struct plan_mount *f = &plan.mounts[1];
    CHECK(f->kind == CELL_OP_FILE && f->mode == 0640 && f->source_len == 3);
    CHECK(memcmp(f->source, contents, 3) == 0 && strcmp(f->dest, "/etc/hosts") == 0);
    CHECK(plan.hostname && strcmp(plan.hostname, "cell") == 0 && plan.hostname_len == 4);
    CHECK(strcmp(plan.cwd, "/work") == 0 && plan.cwd_fallback == NULL);
    CHECK(plan.rlimit_count == 1 && plan.rlimits[0].resource == RLIMIT_NOFILE);
    CHECK(plan.rlimits[0].soft == 1024 && plan.rlimits[0].hard == 4096);
    CHECK(plan.has_caps && plan.caps == 1ull << 10);
    CHECK(plan.argc == 3 && strcmp(plan.argv[0], "/bin/sh") == 0 && strcmp(plan.argv[1], "-c") == 0);
    CHECK(strcmp(plan.argv[2], "") == 0 && plan.argv[3] == NULL);
    CHECK(plan.envc == 2 && strcmp(plan.envp[0], "PATH=/bin") == 0 && strcmp(plan.envp[1], "EMPTY=") == 0);
    CHECK(plan.envp[2] == NULL);
    CHECK(plan.filter_count == 2 && plan.filters[0].len == 16 && !plan.filters[0].listener);
    CHECK(plan.filters[1].len == 8 && plan.filters[1].listener);
    CHECK(!plan.hold && !plan.loopback && !plan.has_userns_limit);
}

static void test_optional_records(void) {
    reset();
    header();
    namespaces(CELL_NS_NET | CELL_NS_IPC);
    u32(rec(CELL_REC_USERNS_LIMIT), 0);
    {
        struct record *r = rec(CELL_REC_IPC_LIMIT);
        u64(r, 1 << 20);
        u64(r, 256);
    }
    empty(CELL_REC_LOOPBACK);
    u32(rec(CELL_REC_UNREACHABLE), 0x0a000202);
    for (uint32_t port = 3128; port <= 3129; port++) {
        struct record *r = rec(CELL_REC_SEND_FD);
        u32(r, CELL_SEND_TCP_LISTENER);
        u32(r, port);
    }
    empty(CELL_REC_HOLD);
    {
        struct record *r = rec(CELL_REC_TERMINAL);
        u32(r, 30);
        u32(r, 100);
        u32(r, 5);
    }
    {
        struct record *r = rec(CELL_REC_CWD);
        str(r, "/home/u");
        str(r, "/");
    }
    string_record(CELL_REC_ARG, "true");
    empty(CELL_REC_END_SETUP);
    empty(CELL_REC_END_FILTERS);
    CHECK(decode());
    CHECK(plan.part == PART_HOLD && plan.hold && plan.loopback);
    CHECK(plan.has_unreachable && plan.unreachable == 0x0a000202);
    CHECK(plan.listener_count == 2 && plan.listeners[0] == 3128 && plan.listeners[1] == 3129);
    CHECK(plan.has_userns_limit && plan.userns_limit == 0);
    CHECK(plan.has_ipc_limit && plan.shmmax == 1 << 20 && plan.shmall == 256);
    CHECK(plan.has_terminal && plan.terminal_rows == 30 && plan.terminal_cols == 100 && plan.terminal_std == 5);
    CHECK(plan.cwd_fallback && strcmp(plan.cwd_fallback, "/") == 0);
    CHECK(plan.envp == NULL && plan.envc == 0);
    CHECK(plan.filter_count == 0 && !plan.has_caps && plan.caps == 0);
    empty(CELL_REC_START);
    CHECK(decode() && plan.part == PART_DONE);
}

/* ---------------------------------------------------------------- refusals */

static void plan_record(uint32_t magic, uint32_t version) {
    struct record *r = rec(CELL_REC_PLAN);
    u32(r, magic);
    u32(r, version);
}

static void test_header_refusals(void) {
    reset();
    plan_record(CELL_PLAN_MAGIC ^ 1, CELL_PLAN_VERSION);
    expect_refused("wrong magic", CELL_STEP_PLAN, EINVAL, 0);

    reset();
    plan_record(CELL_PLAN_MAGIC, CELL_PLAN_VERSION + 1);
    expect_refused("wrong version", CELL_STEP_PLAN, ENOTSUP, 0);

    reset();
    string_record(CELL_REC_ARG, "/bin/true");
    expect_refused("first record not PLAN", CELL_STEP_PLAN, EINVAL, 0);

    reset();
    header();
    header();
    expect_refused("a second PLAN", CELL_STEP_PLAN, EINVAL, 1);
}

static void test_type_refusals(void) {
    static const uint32_t unknown[] = {0, 22, 32, 99, 0xffffffffu};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        reset();
        header();
        empty(unknown[i]);
        expect_refused("unknown type", CELL_STEP_PLAN, EINVAL, 1);
    }
    static const uint32_t reserved[] = {CELL_REC_LANDLOCK_PORT};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        reset();
        header();
        namespaces(CELL_NS_MOUNT);
        empty(reserved[i]);
        expect_refused("reserved type", CELL_STEP_PLAN, ENOTSUP, 2);
    }
}

static void test_length_refusals(void) {
    reset();
    header();
    records[0].len--;
    expect_refused("PLAN one byte short", CELL_STEP_PLAN, EINVAL, 0);

    reset();
    header();
    namespaces(CELL_NS_MOUNT);
    records[1].len--;
    expect_refused("u32 one byte short", CELL_STEP_PLAN, EINVAL, 1);

    reset();
    header();
    namespaces(CELL_NS_MOUNT);
    records[1].bytes[records[1].len++] = 0;
    expect_refused("u32 one byte long", CELL_STEP_PLAN, EINVAL, 1);

    reset();
    header();
    empty(CELL_REC_LOOPBACK);
    records[1].bytes[records[1].len++] = 0;
    expect_refused("empty record one byte long", CELL_STEP_PLAN, EINVAL, 1);

    reset();
    header();
    namespaces(CELL_NS_MOUNT);
    root();
    bind_to("/usr");
    records[3].len--; /* the dest's NUL is missing */
    expect_refused("MOUNT one byte short", CELL_STEP_PLAN, EINVAL, 3);

    reset();
    header();
    namespaces(CELL_NS_MOUNT);
    root();
    bind_to("/usr");
    records[3].bytes[records[3].len++] = 0;
    expect_refused("MOUNT one byte long", CELL_STEP_PLAN, EINVAL, 3);

    reset();
    header();
    string_record(CELL_REC_ARG, "abc");
    records[1].bytes[records[1].len - 1] = 'x'; /* the length is right, the NUL is not there */
    expect_refused("a string without its NUL", CELL_STEP_PLAN, EINVAL, 1);

    reset();
    header();
    {
        struct record *r = rec(CELL_REC_ARG);
        u32(r, 0xffffffffu); /* a length past the payload's end */
        r->bytes[r->len++] = 0;
    }
    expect_refused("a string longer than its record", CELL_STEP_PLAN, EINVAL, 1);

    reset();
    header();
    {
        struct record *r = rec(CELL_REC_ARG);
        blob(r, "a\0b", 3);
    }
    expect_refused("a str with an embedded NUL", CELL_STEP_PLAN, EINVAL, 1);

    reset();
    header();
    namespaces(CELL_NS_MOUNT);
    root();
    mount_op(CELL_OP_SYMLINK, 0, 0, CELL_PLAN_NONE_U32, CELL_PLAN_NONE_U64, "/a\0b", 4, "/x");
    expect_refused("a symlink target with an embedded NUL", CELL_STEP_PLAN, EINVAL, 3);
}

static void expect_dest_refused(const char *dest) {
    reset();
    header();
    namespaces(CELL_NS_MOUNT);
    root();
    bind_to(dest);
    expect_refused(dest, CELL_STEP_PLAN, EINVAL, 3);
}

static void overlay(uint32_t flags, uint64_t size, const char *lower, const char *changes, const char *dest) {
    struct record *r = rec(CELL_REC_OVERLAY);
    u32(r, flags);
    u64(r, size);
    str(r, lower);
    str(r, changes);
    str(r, dest);
}

/* An overlay is a mount operation among the others, in record order: a tmpfs upper layer has
 * a size, a kept one (changes) has none; host paths are absolute. */
static void test_overlay(void) {
    reset();
    header();
    namespaces(CELL_NS_MOUNT);
    root();
    overlay(0, 1 << 30, "/home/u/src", "", "/home/u/src");
    overlay(0, CELL_PLAN_NONE_U64, "/home/u/src", "/home/u/changes", "/work");
    string_record(CELL_REC_ARG, "true");
    empty(CELL_REC_END_SETUP);
    CHECK(decode() && plan.mount_count == 2);
    CHECK(plan.mounts[0].kind == CELL_OP_OVERLAY && plan.mounts[0].size == 1 << 30 && plan.mounts[0].upper == NULL);
    CHECK(strcmp(plan.mounts[1].upper, "/home/u/changes") == 0 && strcmp(plan.mounts[1].dest, "/work") == 0);
    static const struct {
        uint32_t flags;
        uint64_t size;
        const char *lower, *changes, *dest;
    } bad[] = {
        {0, CELL_PLAN_NONE_U64, "/src", "", "/src"},       /* a tmpfs upper layer without a size */
        {0, 1 << 20, "/src", "/changes", "/src"},          /* a kept one with a size */
        {0, 1 << 20, "src", "", "/src"},                   /* a relative lower */
        {0, CELL_PLAN_NONE_U64, "/src", "changes", "/src"}, /* a relative changes directory */
        {CELL_OPF_DEVICE, 1 << 20, "/src", "", "/src"},    /* a flag that means nothing here */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        reset();
        header();
        namespaces(CELL_NS_MOUNT);
        root();
        overlay(bad[i].flags, bad[i].size, bad[i].lower, bad[i].changes, bad[i].dest);
        expect_refused("a bad overlay", CELL_STEP_PLAN, EINVAL, 3);
    }
}

/* A hide covers an existing file, symlink or directory: it names the type it expects and
 * carries nothing else (no source, mode or size). */
static void test_hide(void) {
    reset();
    header();
    namespaces(CELL_NS_MOUNT);
    root();
    mount_op(CELL_OP_HIDE, CELL_OPF_NO_CREATE, S_IFREG, CELL_PLAN_NONE_U32, CELL_PLAN_NONE_U64, "", 0, "/w/.env");
    mount_op(CELL_OP_HIDE, CELL_OPF_NO_CREATE, S_IFDIR, CELL_PLAN_NONE_U32, CELL_PLAN_NONE_U64, "", 0, "/w/secrets");
    string_record(CELL_REC_ARG, "true");
    empty(CELL_REC_END_SETUP);
    CHECK(decode() && plan.mount_count == 2);
    CHECK(plan.mounts[0].kind == CELL_OP_HIDE && plan.mounts[0].expect == S_IFREG && plan.mounts[1].expect == S_IFDIR);
    static const struct {
        uint32_t expect, mode;
        uint64_t size;
        const char *source;
    } bad[] = {
        {0, CELL_PLAN_NONE_U32, CELL_PLAN_NONE_U64, ""},           /* no type */
        {S_IFCHR, CELL_PLAN_NONE_U32, CELL_PLAN_NONE_U64, ""},     /* a device: masked, not hidden */
        {S_IFREG, 0644, CELL_PLAN_NONE_U64, ""},                   /* a mode */
        {S_IFDIR, CELL_PLAN_NONE_U32, 4096, ""},                   /* a size */
        {S_IFREG, CELL_PLAN_NONE_U32, CELL_PLAN_NONE_U64, "/etc"}, /* a source */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        reset();
        header();
        namespaces(CELL_NS_MOUNT);
        root();
        mount_op(CELL_OP_HIDE, CELL_OPF_NO_CREATE, bad[i].expect, bad[i].mode, bad[i].size, bad[i].source,
                 strlen(bad[i].source), "/w/.env");
        expect_refused("a bad hide", CELL_STEP_PLAN, EINVAL, 3);
    }
}

static void test_mount_refusals(void) {
    static const char *const bad_dests[] = {"etc/x", "", "/", "/etc/../x", "/..", "/a/..", "//x", "/a//b",
                                            "/a/", "/./a", "/a/.", "/a/./b"};
    for (size_t i = 0; i < sizeof bad_dests / sizeof bad_dests[0]; i++)
        expect_dest_refused(bad_dests[i]);
    /* A component longer than NAME_MAX. */
    char name[300] = "/";
    memset(name + 1, 'a', 256);
    name[257] = '\0';
    expect_dest_refused(name);
    /* Names that only look like "." or "..". */
    reset();
    header();
    namespaces(CELL_NS_MOUNT);
    root();
    bind_to("/...");
    bind_to("/a/.b/..c");
    string_record(CELL_REC_ARG, "x");
    empty(CELL_REC_END_SETUP);
    CHECK(decode());

    reset();
    header();
    namespaces(CELL_NS_MOUNT);
    bind_to("/usr");
    expect_refused("MOUNT before ROOT", CELL_STEP_PLAN, EINVAL, 2);

    struct {
        const char *name;
        uint32_t kind, flags, expect, mode;
        uint64_t size;
        const char *source;
    } bad[] = {
        {"kind 0", 0, 0, 0, CELL_PLAN_NONE_U32, CELL_PLAN_NONE_U64, ""},
        {"kind 10", 10, 0, 0, CELL_PLAN_NONE_U32, CELL_PLAN_NONE_U64, ""},
        {"unknown flag", CELL_OP_TMPFS, 1 << 5, 0, CELL_PLAN_NONE_U32, CELL_PLAN_NONE_U64, ""},
        {"device tmpfs", CELL_OP_TMPFS, CELL_OPF_DEVICE, 0, CELL_PLAN_NONE_U32, CELL_PLAN_NONE_U64, ""},
        {"expect on a tmpfs", CELL_OP_TMPFS, 0, S_IFDIR, CELL_PLAN_NONE_U32, CELL_PLAN_NONE_U64, ""},
        {"bind of a symlink", CELL_OP_BIND, 0, S_IFLNK, CELL_PLAN_NONE_U32, CELL_PLAN_NONE_U64, "/usr"},
        {"bind of an unknown type", CELL_OP_BIND, 0, 0170000, CELL_PLAN_NONE_U32, CELL_PLAN_NONE_U64, "/usr"},
        {"relative bind source", CELL_OP_BIND, 0, S_IFDIR, CELL_PLAN_NONE_U32, CELL_PLAN_NONE_U64, "usr"},
        {"mode on a bind", CELL_OP_BIND, 0, S_IFDIR, 0755, CELL_PLAN_NONE_U64, "/usr"},
        {"mode past 07777", CELL_OP_DIR, 0, 0, 010000, CELL_PLAN_NONE_U64, ""},
        {"size on a dir", CELL_OP_DIR, 0, 0, 0755, 4096, ""},
        {"a tmpfs of size 0", CELL_OP_TMPFS, 0, 0, 01777, 0, ""},
        {"source of a tmpfs", CELL_OP_TMPFS, 0, 0, CELL_PLAN_NONE_U32, CELL_PLAN_NONE_U64, "tmpfs"},
        {"empty symlink", CELL_OP_SYMLINK, 0, 0, CELL_PLAN_NONE_U32, CELL_PLAN_NONE_U64, ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        reset();
        header();
        namespaces(CELL_NS_MOUNT);
        root();
        mount_op(bad[i].kind, bad[i].flags, bad[i].expect, bad[i].mode, bad[i].size, bad[i].source,
                 strlen(bad[i].source), "/x");
        expect_refused(bad[i].name, CELL_STEP_PLAN, EINVAL, 3);
    }
}

static void landlock_header(uint64_t fs) {
    struct record *r = rec(CELL_REC_LANDLOCK);
    u32(r, 7);
    u32(r, 0);
    u64(r, fs);
    u64(r, 0);
    u64(r, fs ? 3 : 0);
}

static void landlock_path(uint64_t access, const char *path) {
    struct record *r = rec(CELL_REC_LANDLOCK_PATH);
    u64(r, access);
    str(r, path);
}

static void test_landlock(void) {
    reset();
    header();
    namespaces(CELL_NS_MOUNT);
    landlock_header(0xffff);
    landlock_path(0xd, "/");
    landlock_path(0xffff, "/tmp");
    string_record(CELL_REC_ARG, "x");
    empty(CELL_REC_END_SETUP);
    CHECK(decode());
    CHECK(plan.has_landlock && plan.landlock_abi == 7 && plan.landlock_fs == 0xffff && plan.landlock_scoped == 3);
    CHECK(plan.landlock_rule_count == 2 && strcmp(plan.landlock_rules[1].path, "/tmp") == 0);

    /* A rule before its ruleset, a right the ruleset does not handle, a relative path. */
    reset();
    header();
    landlock_path(0xd, "/");
    expect_refused("a landlock rule without a ruleset", CELL_STEP_PLAN, EINVAL, 1);
    reset();
    header();
    landlock_header(0xff);
    landlock_path(0x100, "/");
    expect_refused("a landlock right not handled", CELL_STEP_PLAN, EINVAL, 2);
    reset();
    header();
    landlock_header(0xffff);
    landlock_path(0x1, "tmp");
    expect_refused("a relative landlock path", CELL_STEP_PLAN, EINVAL, 2);
    reset();
    header();
    landlock_header(0);
    expect_refused("a ruleset that handles nothing", CELL_STEP_PLAN, EINVAL, 1);
}

static void test_setup_refusals(void) {
    reset();
    header();
    namespaces(CELL_NS_UTS);
    string_record(CELL_REC_HOSTNAME, "a");
    string_record(CELL_REC_HOSTNAME, "b");
    expect_refused("two HOSTNAME records", CELL_STEP_PLAN, EINVAL, 3);

    reset();
    header();
    namespaces(CELL_NS_MOUNT);
    namespaces(CELL_NS_MOUNT);
    expect_refused("two NAMESPACES records", CELL_STEP_PLAN, EINVAL, 2);

    reset();
    header();
    namespaces(1u << 7);
    expect_refused("an unknown namespace", CELL_STEP_PLAN, EINVAL, 1);

    reset();
    header();
    namespaces(CELL_NS_UTS);
    string_record(CELL_REC_HOSTNAME, "a-name-longer-than-the-kernel-allows-for-a-hostname-which-is-64-b");
    expect_refused("a hostname past 64 bytes", CELL_STEP_PLAN, EINVAL, 2);

    reset();
    header();
    seccomp(0, 8);
    expect_refused("SECCOMP in the setup part", CELL_STEP_PLAN, EINVAL, 1);

    /* A pty for descriptors past 2, or a size a winsize cannot hold. */
    static const uint32_t bad_terminals[][3] = {{24, 80, 8}, {0x10000, 80, 1}, {24, 0x10000, 1}};
    for (size_t i = 0; i < sizeof bad_terminals / sizeof bad_terminals[0]; i++) {
        reset();
        header();
        struct record *r = rec(CELL_REC_TERMINAL);
        for (int f = 0; f < 3; f++)
            u32(r, bad_terminals[i][f]);
        expect_refused("a TERMINAL record out of range", CELL_STEP_PLAN, EINVAL, 1);
    }

    reset();
    header();
    empty(CELL_REC_START);
    expect_refused("START in the setup part", CELL_STEP_PLAN, EINVAL, 1);

    reset();
    header();
    empty(CELL_REC_END_SETUP);
    expect_refused("no ARG", CELL_STEP_PLAN, EINVAL, 1);

    reset();
    header();
    string_record(CELL_REC_ENV, "NOEQUALS");
    expect_refused("ENV without =", CELL_STEP_PLAN, EINVAL, 1);

    reset();
    header();
    string_record(CELL_REC_ENV, "=value");
    expect_refused("ENV without a name", CELL_STEP_PLAN, EINVAL, 1);

    reset();
    header();
    {
        struct record *r = rec(CELL_REC_RLIMIT);
        u32(r, RLIMIT_NOFILE);
        u64(r, 10);
        u64(r, 5);
    }
    expect_refused("soft limit above hard", CELL_STEP_PLAN, EINVAL, 1);

    reset();
    header();
    {
        struct record *r = rec(CELL_REC_RLIMIT);
        u32(r, 1000);
        u64(r, 1);
        u64(r, 1);
    }
    expect_refused("unknown rlimit", CELL_STEP_PLAN, EINVAL, 1);

    reset();
    header();
    {
        struct record *r = rec(CELL_REC_CWD);
        str(r, "work");
        str(r, "");
    }
    expect_refused("relative cwd", CELL_STEP_PLAN, EINVAL, 1);

    /* What acts on a namespace needs that namespace to be the sandbox's own. */
    static const uint32_t needs_namespace[] = {CELL_REC_ROOT, CELL_REC_LOOPBACK, CELL_REC_HOSTNAME, CELL_REC_IPC_LIMIT,
                                               CELL_REC_UNREACHABLE, CELL_REC_SEND_FD};
    for (size_t i = 0; i < 6; i++) {
        reset();
        header();
        namespaces(CELL_NS_PID);
        if (needs_namespace[i] == CELL_REC_ROOT)
            root();
        else if (needs_namespace[i] == CELL_REC_HOSTNAME)
            string_record(CELL_REC_HOSTNAME, "cell");
        else if (needs_namespace[i] == CELL_REC_IPC_LIMIT) {
            struct record *r = rec(CELL_REC_IPC_LIMIT);
            u64(r, 4096);
            u64(r, 1);
        } else if (needs_namespace[i] == CELL_REC_UNREACHABLE)
            u32(rec(CELL_REC_UNREACHABLE), 0x0a000202);
        else if (needs_namespace[i] == CELL_REC_SEND_FD) {
            struct record *r = rec(CELL_REC_SEND_FD);
            u32(r, CELL_SEND_TCP_LISTENER);
            u32(r, 3128);
        }
        else
            empty(CELL_REC_LOOPBACK);
        string_record(CELL_REC_ARG, "x");
        empty(CELL_REC_END_SETUP);
        expect_refused("a record without its namespace", CELL_STEP_PLAN, EINVAL, 4);
    }

    /* A handed-out descriptor: a known kind, a port, at most four. */
    static const uint32_t bad_send[][2] = {{2, 3128}, {CELL_SEND_TCP_LISTENER, 0}, {CELL_SEND_TCP_LISTENER, 65536}};
    for (size_t i = 0; i < 3; i++) {
        reset();
        header();
        namespaces(CELL_NS_NET);
        struct record *r = rec(CELL_REC_SEND_FD);
        u32(r, bad_send[i][0]);
        u32(r, bad_send[i][1]);
        expect_refused("a bad SEND_FD", CELL_STEP_PLAN, EINVAL, 2);
    }
    reset();
    header();
    namespaces(CELL_NS_NET);
    for (uint32_t i = 0; i < 5; i++) {
        struct record *r = rec(CELL_REC_SEND_FD);
        u32(r, CELL_SEND_TCP_LISTENER);
        u32(r, 1000 + i);
    }
    expect_refused("a fifth SEND_FD", CELL_STEP_PLAN, EINVAL, 6);

    reset();
    header();
    for (uint32_t i = 1; i < 10; i++)
        string_record(CELL_REC_ARG, "x");
    /* Decoded as if it were record 4096: past CELL_PLAN_MAX_RECORDS. */
    plan_init(&plan);
    if (!setjmp(refused)) {
        for (uint32_t i = 0; i < 9; i++)
            plan_decode(&plan, records[i].type, (char *)records[i].bytes, records[i].len, i);
        plan_decode(&plan, records[9].type, (char *)records[9].bytes, records[9].len, CELL_PLAN_MAX_RECORDS);
        last.step = 0;
    }
    CHECK(last.step == CELL_STEP_PLAN && last.error == E2BIG && last.value == (int)CELL_PLAN_MAX_RECORDS);
}

static void test_filter_refusals(void) {
    reset();
    setup_part();
    seccomp(0, 12);
    expect_refused("a filter of 12 bytes", CELL_STEP_WAIT_FILTERS, EINVAL, 5);

    reset();
    setup_part();
    seccomp(0, 0);
    expect_refused("an empty filter", CELL_STEP_WAIT_FILTERS, EINVAL, 5);

    reset();
    setup_part();
    seccomp(0, 4097 * 8);
    expect_refused("a filter of 4097 instructions", CELL_STEP_WAIT_FILTERS, E2BIG, 5);

    reset();
    setup_part();
    seccomp(2, 8);
    expect_refused("a listener flag of 2", CELL_STEP_WAIT_FILTERS, EINVAL, 5);

    reset();
    setup_part();
    seccomp(1, 8);
    seccomp(1, 8);
    expect_refused("two listeners", CELL_STEP_WAIT_FILTERS, EINVAL, 6);

    reset();
    setup_part();
    string_record(CELL_REC_ARG, "late");
    expect_refused("ARG in the filter part", CELL_STEP_WAIT_FILTERS, EINVAL, 5);

    reset();
    setup_part();
    empty(CELL_REC_END_FILTERS);
    empty(CELL_REC_START);
    expect_refused("START without HOLD", CELL_STEP_PLAN, EINVAL, 6);
}

/* ---------------------------------------------------------------- reading from a socket */

/* The records as the supervisor sends them: header (type, length), then the payload. */
static size_t encode(unsigned char *out, size_t from, size_t to) {
    size_t n = 0;
    for (size_t i = from; i < to; i++) {
        for (int b = 0; b < 4; b++)
            out[n++] = (unsigned char)(records[i].type >> (8 * b));
        for (int b = 0; b < 4; b++)
            out[n++] = (unsigned char)(records[i].len >> (8 * b));
        memcpy(out + n, records[i].bytes, records[i].len);
        n += records[i].len;
    }
    return n;
}

static unsigned char stream[1 << 17];

/* A socketpair holding records [from, to) and then end of file (unless `keep_open`). */
static int feed(int sv[2], size_t from, size_t to, int keep_open) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    size_t n = encode(stream, from, to);
    if (write(sv[1], stream, n) != (ssize_t)n)
        return -1;
    if (!keep_open)
        shutdown(sv[1], SHUT_WR);
    return 0;
}

/* Reads the plan fed on `sv` through `parts` (1: the setup, 2: and the filters, 3: and the
 * hold) and checks that reading stopped with (step, error, value); closes the socketpair. */
static void expect_read_refused(int sv[2], int parts, int step, int error, int value, int line) {
    plan_init(&plan);
    if (!setjmp(refused)) {
        plan_read_setup(&plan, sv[0]);
        if (parts > 1)
            plan_read_filters(&plan, sv[0]);
        if (parts > 2)
            plan_hold(&plan, sv[0]);
        last.step = 0;
    }
    check(last.step == step && last.error == error && last.value == value, "reading stops with the expected report", line);
    close(sv[0]);
    close(sv[1]);
}

static void test_reading(void) {
    int sv[2];

    reset();
    setup_part();
    seccomp(0, 8);
    empty(CELL_REC_END_FILTERS);
    CHECK(feed(sv, 0, record_count, 0) == 0);
    plan_init(&plan);
    memset(&last, 0, sizeof last);
    if (!setjmp(refused)) {
        plan_read_setup(&plan, sv[0]);
        CHECK(plan.part == PART_FILTERS && plan.records == 5);
        plan_read_filters(&plan, sv[0]);
    }
    CHECK(last.step == 0 && plan.part == PART_DONE && plan.filter_count == 1);
    close(sv[0]);
    close(sv[1]);

    /* End of file before END_SETUP: the supervisor is gone. */
    CHECK(feed(sv, 0, 3, 0) == 0);
    expect_read_refused(sv, 1, CELL_STEP_PLAN, EPIPE, 3, __LINE__);

    /* ...and in the middle of a record. */
    CHECK(feed(sv, 0, 3, 1) == 0);
    CHECK(write(sv[1], "\x10\0\0\0\x20\0\0\0abc", 11) == 11);
    shutdown(sv[1], SHUT_WR);
    expect_read_refused(sv, 1, CELL_STEP_PLAN, EPIPE, 3, __LINE__);

    /* A record longer than CELL_PLAN_MAX_RECORD is refused before anything is allocated. */
    CHECK(feed(sv, 0, 1, 1) == 0);
    CHECK(write(sv[1], "\x10\0\0\0\x01\0\x10\0", 8) == 8);
    shutdown(sv[1], SHUT_WR);
    expect_read_refused(sv, 1, CELL_STEP_PLAN, E2BIG, 1, __LINE__);

    /* End of file in the filter part. */
    CHECK(feed(sv, 0, 6, 0) == 0);
    expect_read_refused(sv, 2, CELL_STEP_WAIT_FILTERS, EPIPE, 6, __LINE__);
}

static void test_hold(void) {
    int sv[2];
    char byte = 0;

    /* HOLD: 'H' goes up, START comes down. */
    reset();
    header();
    empty(CELL_REC_HOLD);
    string_record(CELL_REC_ARG, "x");
    empty(CELL_REC_END_SETUP);
    empty(CELL_REC_END_FILTERS);
    empty(CELL_REC_START);
    CHECK(feed(sv, 0, record_count, 0) == 0);
    plan_init(&plan);
    memset(&last, 0, sizeof last);
    if (!setjmp(refused)) {
        plan_read_setup(&plan, sv[0]);
        plan_read_filters(&plan, sv[0]);
        CHECK(plan.part == PART_HOLD);
        plan_hold(&plan, sv[0]);
    }
    CHECK(last.step == 0 && plan.part == PART_DONE);
    CHECK(read(sv[1], &byte, 1) == 1 && byte == 'H');
    close(sv[0]);
    close(sv[1]);

    /* End of file instead of START: the launch was abandoned. */
    CHECK(feed(sv, 0, record_count - 1, 0) == 0);
    expect_read_refused(sv, 3, CELL_STEP_HOLD, EPIPE, 0, __LINE__);

    /* Anything but START. */
    records[record_count - 1].type = CELL_REC_ARG;
    str(&records[record_count - 1], "late");
    CHECK(feed(sv, 0, record_count, 0) == 0);
    expect_read_refused(sv, 3, CELL_STEP_PLAN, EINVAL, (int)record_count - 1, __LINE__);
}

static void join(uint32_t bit, const char *path) {
    struct record *r = rec(CELL_REC_JOIN_NAMESPACE);
    u32(r, bit);
    str(r, path);
}

static void root_tree(uint32_t flags, const char *path) {
    struct record *r = rec(CELL_REC_ROOT_TREE);
    u32(r, flags);
    str(r, path);
}

static void sysctl(const char *name, const char *value) {
    struct record *r = rec(CELL_REC_SYSCTL);
    str(r, name);
    str(r, value);
}

/* cell-runtime's records: an engine's namespaces, a bundle's root, the config's ids, sysctls. */
static void test_container(void) {
    reset();
    header();
    namespaces(CELL_NS_MOUNT | CELL_NS_PID | CELL_NS_IPC);
    join(CELL_NS_NET, "/run/user/1000/netns/cni-1");
    join(CELL_NS_UTS, "/proc/42/ns/uts");
    sysctl("net.ipv4.ping_group_range", "0 0");
    root_tree(CELL_OPF_READONLY, "/var/lib/bundle/rootfs");
    mount_op(CELL_OP_SYSFS, CELL_OPF_READONLY, 0, CELL_PLAN_NONE_U32, CELL_PLAN_NONE_U64, "", 0, "/sys");
    {
        struct record *r = rec(CELL_REC_USER);
        u32(r, 1000);
        u32(r, 100);
        u32(r, 2);
        u32(r, 10);
        u32(r, 20);
    }
    string_record(CELL_REC_ARG, "/bin/sh");
    empty(CELL_REC_END_SETUP);
    CHECK(decode());
    CHECK(plan.join_count == 2 && plan.joins[0].bit == CELL_NS_NET && strcmp(plan.joins[0].path, "/run/user/1000/netns/cni-1") == 0);
    CHECK(plan.joins[1].bit == CELL_NS_UTS && strcmp(plan.joins[1].path, "/proc/42/ns/uts") == 0);
    CHECK(plan.sysctl_count == 1 && strcmp(plan.sysctls[0].name, "net.ipv4.ping_group_range") == 0 && strcmp(plan.sysctls[0].value, "0 0") == 0);
    CHECK(plan.has_root && plan.root_tree && strcmp(plan.root_tree, "/var/lib/bundle/rootfs") == 0 && plan.root_flags == CELL_OPF_READONLY);
    CHECK(plan.mount_count == 1 && plan.mounts[0].kind == CELL_OP_SYSFS);
    CHECK(plan.has_user && plan.user_uid == 1000 && plan.user_gid == 100 && plan.user_group_count == 2);
    CHECK(plan.user_groups[0] == 10 && plan.user_groups[1] == 20);

    /* A namespace joined and made: which one would the container be in? */
    reset();
    header();
    namespaces(CELL_NS_MOUNT | CELL_NS_NET);
    join(CELL_NS_NET, "/run/netns/x");
    string_record(CELL_REC_ARG, "/bin/sh");
    empty(CELL_REC_END_SETUP);
    expect_refused("a namespace joined and made", CELL_STEP_PLAN, EINVAL, 4);

    /* Only net, ipc, uts and cgroup may be joined; each once; by an absolute path. */
    static const uint32_t not_joinable[] = {CELL_NS_MOUNT, CELL_NS_PID, CELL_NS_TIME, 1u << 9, 0};
    for (size_t i = 0; i < sizeof not_joinable / sizeof not_joinable[0]; i++) {
        reset();
        header();
        join(not_joinable[i], "/proc/1/ns/x");
        expect_refused("a namespace that cannot be joined", CELL_STEP_PLAN, EINVAL, 1);
    }
    reset();
    header();
    join(CELL_NS_NET, "/a");
    join(CELL_NS_NET, "/b");
    expect_refused("a namespace joined twice", CELL_STEP_PLAN, EINVAL, 2);
    reset();
    header();
    join(CELL_NS_IPC, "proc/1/ns/ipc");
    expect_refused("a relative namespace path", CELL_STEP_PLAN, EINVAL, 1);

    /* One root: a tree or a tmpfs. */
    reset();
    header();
    namespaces(CELL_NS_MOUNT);
    root();
    root_tree(0, "/rootfs");
    expect_refused("two roots", CELL_STEP_PLAN, EINVAL, 3);
    reset();
    header();
    namespaces(CELL_NS_MOUNT);
    root_tree(CELL_OPF_NOEXEC, "/rootfs");
    expect_refused("a root flag other than read-only", CELL_STEP_PLAN, EINVAL, 2);
    reset();
    header();
    root_tree(0, "rootfs");
    expect_refused("a relative root", CELL_STEP_PLAN, EINVAL, 1);

    /* sysctl names that could leave /proc/sys. */
    static const char *const bad_names[] = {"", "../../etc/x", "net/ipv4/x", ".net", "net.", "net..x", "Net.x"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        reset();
        header();
        sysctl(bad_names[i], "1");
        expect_refused("a bad sysctl name", CELL_STEP_PLAN, EINVAL, 1);
    }

    /* Groups beyond the limit, and a count the record does not hold. */
    reset();
    header();
    {
        struct record *r = rec(CELL_REC_USER);
        u32(r, 0);
        u32(r, 0);
        u32(r, CELL_MAX_GROUPS + 1);
    }
    expect_refused("too many groups", CELL_STEP_PLAN, E2BIG, 1);
    reset();
    header();
    {
        struct record *r = rec(CELL_REC_USER);
        u32(r, 0);
        u32(r, 0);
        u32(r, 3);
        u32(r, 1);
    }
    expect_refused("groups cut short", CELL_STEP_PLAN, EINVAL, 1);
}

/* ---------------------------------------------------------------- exec's requests */

/* The records built so far, as one request's bytes; decoded by decode_process_request. */
static char request[64 * 1024];
static char *argv_out[5], *envp_out[5];
static struct process_request decoded;

static int decode_request(void) {
    size_t len = 0;
    for (size_t i = 0; i < record_count; i++) {
        for (int k = 0; k < 4; k++) {
            request[len + (size_t)k] = (char)(records[i].type >> (8 * k));
            request[len + 4 + (size_t)k] = (char)(records[i].len >> (8 * k));
        }
        memcpy(request + len + 8, records[i].bytes, records[i].len);
        len += 8 + records[i].len;
    }
    memset(&decoded, 0, sizeof decoded);
    decoded.argv = argv_out;
    decoded.envp = envp_out;
    return decode_process_request(request, len, &decoded, 4) == 0;
}

static void process_record(uint32_t rows, uint32_t cols, const char *cwd) {
    struct record *r = rec(CELL_REC_PROCESS);
    u32(r, rows);
    u32(r, cols);
    str(r, cwd);
}

static void test_process_requests(void) {
    /* TAKE_PROCESSES is a setup record, and only with HOLD (requests follow START). */
    reset();
    header();
    namespaces(CELL_NS_MOUNT | CELL_NS_PID);
    string_record(CELL_REC_ARG, "/bin/sh");
    empty(CELL_REC_TAKE_PROCESSES);
    empty(CELL_REC_END_SETUP);
    expect_refused("processes without a hold", CELL_STEP_PLAN, EINVAL, 4);
    reset();
    header();
    namespaces(CELL_NS_MOUNT | CELL_NS_PID);
    string_record(CELL_REC_ARG, "/bin/sh");
    empty(CELL_REC_HOLD);
    empty(CELL_REC_TAKE_PROCESSES);
    empty(CELL_REC_END_SETUP);
    CHECK(decode() && plan.take_processes && plan.hold);

    /* A request: PROCESS, ARG..., ENV..., END_PROCESS. */
    reset();
    process_record(0, 0, "/work");
    string_record(CELL_REC_ARG, "ls");
    string_record(CELL_REC_ARG, "-l");
    string_record(CELL_REC_ENV, "PATH=/bin");
    empty(CELL_REC_END_PROCESS);
    CHECK(decode_request());
    CHECK(decoded.rows == 0 && strcmp(decoded.cwd, "/work") == 0);
    CHECK(strcmp(decoded.argv[0], "ls") == 0 && strcmp(decoded.argv[1], "-l") == 0 && decoded.argv[2] == NULL);
    CHECK(strcmp(decoded.envp[0], "PATH=/bin") == 0 && decoded.envp[1] == NULL);
    reset();
    process_record(24, 80, "/");
    string_record(CELL_REC_ARG, "sh");
    empty(CELL_REC_END_PROCESS);
    CHECK(decode_request() && decoded.rows == 24 && decoded.cols == 80 && decoded.envp[0] == NULL);

    /* Refused: no argument, a relative cwd, half a size, a stray record, END_PROCESS early or
     * missing, too many arguments, a bad variable, a field cut short. */
    reset();
    process_record(0, 0, "/");
    empty(CELL_REC_END_PROCESS);
    CHECK(!decode_request());
    reset();
    process_record(0, 0, "work");
    string_record(CELL_REC_ARG, "ls");
    empty(CELL_REC_END_PROCESS);
    CHECK(!decode_request());
    reset();
    process_record(24, 0, "/");
    string_record(CELL_REC_ARG, "ls");
    empty(CELL_REC_END_PROCESS);
    CHECK(!decode_request());
    reset();
    process_record(0, 0, "/");
    string_record(CELL_REC_ARG, "ls");
    string_record(CELL_REC_HOSTNAME, "x");
    empty(CELL_REC_END_PROCESS);
    CHECK(!decode_request());
    reset();
    process_record(0, 0, "/");
    empty(CELL_REC_END_PROCESS);
    string_record(CELL_REC_ARG, "ls");
    CHECK(!decode_request());
    reset();
    process_record(0, 0, "/");
    string_record(CELL_REC_ARG, "ls");
    CHECK(!decode_request());
    reset();
    process_record(0, 0, "/");
    for (int i = 0; i < 5; i++)
        string_record(CELL_REC_ARG, "x");
    empty(CELL_REC_END_PROCESS);
    CHECK(!decode_request());
    reset();
    process_record(0, 0, "/");
    string_record(CELL_REC_ARG, "ls");
    string_record(CELL_REC_ENV, "=x");
    empty(CELL_REC_END_PROCESS);
    CHECK(!decode_request());
    reset();
    u32(rec(CELL_REC_PROCESS), 0);
    string_record(CELL_REC_ARG, "ls");
    empty(CELL_REC_END_PROCESS);
    CHECK(!decode_request());
}

int main(void) {
    test_container();
    test_minimal_plan();
    test_optional_records();
    test_header_refusals();
    test_type_refusals();
    test_length_refusals();
    test_mount_refusals();
    test_overlay();
    test_hide();
    test_landlock();
    test_setup_refusals();
    test_filter_refusals();
    test_reading();
    test_hold();
    test_process_requests();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
