/*
 * begin.c — a sandbox's creation, begun: what must exist before pid 1 is cloned, and the
 * spawner thread that clones it (spawn.c).
 *
 * `cell run` begins as early as it can, because the kernel's share of a launch (namespaces,
 * above all the network namespace) can then overlap the supervisor's (reading the profile,
 * building the plan, compiling the filters). The earliest is here, from the raw arguments,
 * before the Swift side has parsed anything: cell_begin_early guesses the few settings pid 1
 * is cloned with — the caller's own ids, every namespace but time, the command — the way
 * nearly every launch has them. It is a guess and nothing more: pid 1 runs nothing but the
 * creation of its namespaces until its plan arrives, and the supervisor compares the guess
 * with what it parsed and resolved before it hands anything over; a launch that needs other
 * settings abandons what was begun (pid 1 sees its plan pipe close and exits) and begins again.
 *
 * Normal C: this runs in the supervisor before the spawner thread exists.
 */
#include "cell_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------- where cell-init is */

int cell_init_helper_candidate(int index, char *buf, size_t size) {
    static const char *const relative[] = {"/cell-init", "/../libexec/cell/cell-init"};
    if (index < 0 || index >= (int)(sizeof relative / sizeof relative[0]) || size == 0)
        return -1;
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n <= 0)
        return -1;
    while (n > 0 && buf[n - 1] != '/')
        n--;
    if (n > 1)
        n--; /* the directory, without its trailing slash ("/" stays "/") */
    size_t tail = strlen(relative[index]);
    if ((size_t)n + tail + 1 > size)
        return -1;
    memcpy(buf + n, relative[index], tail + 1);
    return 0;
}

static int locate_init_helper(char *buf, size_t size) {
    for (int i = 0; cell_init_helper_candidate(i, buf, size) == 0; i++) {
        if (access(buf, X_OK) == 0)
            return 0;
    }
    return -1;
}

/* ---------------------------------------------------------------------------------- the begun */

/* One block: the pointer array, then the strings. */
static char **copy_argv(char *const *argv) {
    size_t count = 0, bytes = 0;
    for (; argv[count]; count++)
        bytes += strlen(argv[count]) + 1;
    char **copy = malloc((count + 1) * sizeof(char *) + bytes);
    if (!copy)
        return NULL;
    char *text = (char *)(copy + count + 1);
    for (size_t i = 0; i < count; i++) {
        size_t len = strlen(argv[i]) + 1;
        memcpy(text, argv[i], len);
        copy[i] = text;
        text += len;
    }
    copy[count] = NULL;
    return copy;
}

static void close_if_open(int *fd) {
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

struct cell_begun *cell_begin(uint32_t outer_uid, uint32_t outer_gid, int deny_setgroups, int namespaces,
                              char *const *argv, const char *init_helper, int cgroup_procs_fd, int *failure) {
    struct cell_begun *b = calloc(1, sizeof *b);
    if (!b) {
        *failure = CELL_BEGIN_PIPES;
        return NULL;
    }
    int plan_ready[2] = {-1, -1}, filters_ready[2] = {-1, -1};
    b->plan.init_fd = -1;
    /* The spawner thread first: while it starts on the other CPU and sets up its own part, this
     * thread finds and copies cell-init and completes the plan's first part, then releases it
     * (measured: the thread's start alone is ~50 us of an otherwise idle wait). Only these two
     * fields are read before the release. */
    b->plan.seccomp_listener = 1;
    b->plan.keep_fds_count = 0;
    b->spawner = cell_spawn_start(&b->plan);
    if (!b->spawner) {
        *failure = CELL_BEGIN_THREAD;
        goto fail;
    }
    char located[PATH_MAX];
    if (!init_helper) {
        if (locate_init_helper(located, sizeof located) != 0) {
            errno = ENOENT;
            *failure = CELL_BEGIN_HELPER;
            goto fail;
        }
        init_helper = located;
    }
    b->plan.init_fd = cell_sealed_copy(init_helper, "cell-init");
    if (b->plan.init_fd < 0) {
        *failure = CELL_BEGIN_HELPER;
        goto fail;
    }
    b->argv = copy_argv(argv);
    if (!b->argv || pipe2(plan_ready, O_CLOEXEC) != 0 || pipe2(filters_ready, O_CLOEXEC) != 0) {
        if (!b->argv)
            errno = ENOMEM;
        *failure = CELL_BEGIN_PIPES;
        goto fail;
    }
    b->plan.outer_uid = outer_uid;
    b->plan.outer_gid = outer_gid;
    b->plan.deny_setgroups = deny_setgroups;
    b->plan.namespaces = namespaces;
    b->plan.cgroup_procs_fd = cgroup_procs_fd;
    b->plan.argv = b->argv;
    b->plan.plan_ready_fd = plan_ready[0];
    b->plan_ready_w = plan_ready[1];
    b->plan.filters_ready_fd = filters_ready[0];
    b->filters_ready_w = filters_ready[1];
    b->plan.filters = &b->filters;
    cell_spawn_release(b->spawner, 1);
    return b;
fail:;
    int err = errno;
    if (b->spawner) {
        /* It gives up without reading the plan; wait for it to say so, then let it go. */
        struct cell_spawn_result ignored;
        cell_spawn_release(b->spawner, 0);
        (void)cell_spawn_wait(b->spawner, &ignored);
        cell_spawn_end(b->spawner);
    }
    for (int i = 0; i < 2; i++) {
        close_if_open(&plan_ready[i]);
        close_if_open(&filters_ready[i]);
    }
    if (b->plan.init_fd >= 0)
        close(b->plan.init_fd);
    free(b->argv);
    free(b);
    errno = err;
    return NULL;
}

struct cell_spawn_plan *cell_begun_plan(struct cell_begun *b) {
    return &b->plan;
}

void cell_begun_hand_over(struct cell_begun *b, int which) {
    int *fd = which == CELL_HAND_OVER_PLAN ? &b->plan_ready_w : &b->filters_ready_w;
    if (*fd >= 0 && which == CELL_HAND_OVER_PLAN && b->spawner)
        cell_spawn_steer(b->spawner);
    if (*fd >= 0) {
        ssize_t n;
        do
            n = write(*fd, "r", 1);
        while (n < 0 && errno == EINTR);
    }
    close_if_open(fd);
}

void cell_begun_cancel(struct cell_begun *b) {
    close_if_open(&b->plan_ready_w);
    close_if_open(&b->filters_ready_w);
}

void cell_begun_free(struct cell_begun *b) {
    cell_begun_cancel(b);
    close_if_open(&b->plan.plan_ready_fd);
    close_if_open(&b->plan.filters_ready_fd);
    close_if_open(&b->plan.init_fd);
    free(b->argv);
    free(b);
}

/* ------------------------------------------------------------------------- the early guess */

/*
 * The grammar of `cell run [OPTIONS] [--] COMMAND...` as the Swift parser reads it (only as far
 * as finding the command takes): options stop at "--" or at the first word that does not start
 * with '-' (or is "-"); "--name=value" carries its value; --dry-run and --allow-host-loopback
 * take none; every other option takes the next word. A mistake here only costs a launch its
 * head start: the supervisor compares the guess with its own parse.
 */
int cell_early_guess(int argc, char *const *argv, int *namespaces) {
    if (argc < 3 || strcmp(argv[1], "run") != 0)
        return -1;
    *namespaces = CELL_NS_MOUNT | CELL_NS_PID | CELL_NS_NET | CELL_NS_IPC | CELL_NS_UTS | CELL_NS_CGROUP;
    for (int i = 2; i < argc; i++) {
        const char *word = argv[i];
        if (strcmp(word, "--") == 0)
            return i + 1 < argc ? i + 1 : -1;
        if (word[0] != '-' || word[1] == '\0')
            return i;
        /* Settings the guess cannot know or must not act on: no head start. */
        if (strcmp(word, "-h") == 0 || strcmp(word, "--help") == 0 || strcmp(word, "--dry-run") == 0 ||
            strncmp(word, "--outer-id", 10) == 0 || strncmp(word, "--cgroup", 8) == 0)
            return -1;
        if (strcmp(word, "--allow-host-loopback") == 0)
            continue;
        const char *value = strchr(word, '=');
        size_t name_len = value && word[1] == '-' ? (size_t)(value - word) : strlen(word);
        if (value && word[1] == '-')
            value++;
        else if (++i < argc)
            value = argv[i];
        else
            return -1;
        if (name_len == 5 && strncmp(word, "--net", 5) == 0 && strcmp(value, "host") == 0)
            *namespaces &= ~CELL_NS_NET;
    }
    return -1;
}

static struct cell_begun *early;

void cell_begin_early(int argc, char **argv) {
    int namespaces = 0;
    int command = cell_early_guess(argc, argv, &namespaces);
    /* Root's outer id depends on the profile and on where cell runs: left to the supervisor. */
    uid_t uid = geteuid();
    if (command < 0 || uid == 0)
        return;
    int failure = 0;
    early = cell_begin(uid, getegid(), 1, namespaces, argv + command, NULL, -1, &failure);
}

struct cell_begun *cell_take_early(void) {
    struct cell_begun *b = early;
    early = NULL;
    return b;
}
