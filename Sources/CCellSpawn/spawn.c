/*
 * spawn.c — everything between clone() and the execve() of cell-init.
 *
 * Process shape (host pids on the left):
 *
 *   supervisor (cell, Swift): its main thread builds the rest of the plan meanwhile
 *     spawner thread    creates pid 1, writes its maps, waits until it has executed cell-init,
 *     │                 then stays until the sandbox is over (pid 1's PR_SET_PDEATHSIG follows it)
 *     └─ pid 1          clone(CLONE_VM | CLONE_NEWUSER | CLONE_NEWPID): the first process of a
 *        │              new user namespace and of a new pid namespace inside it. It waits for
 *        │              its maps, takes uid/gid 0, starts the maker, unshares the other
 *        │              namespaces one by one, waits for the rest of the plan (a byte on a
 *        │              pipe), builds the filesystem view, sets the hostname, joins the
 *        │              maker's network namespace, drops capabilities, sets no_new_privs,
 *        │              waits for the filters (another byte), loads seccomp, starts the
 *        │              command (vfork, when the policy plainly allows it; else cell-init
 *        │              starts it) and executes cell-init from a sealed memfd.
 *        └─ maker       clone(CLONE_VM | CLONE_FILES), meanwhile: unshares the network
 *                       namespace, brings lo up, exits (see make_network).
 *
 * One clone, not two: the pid namespace must be given at clone (unshare(CLONE_NEWPID) applies
 * only to later children), and the kernel creates a clone's user namespace before any other
 * namespace of the same call, so the pid namespace is owned by the new user namespace exactly
 * as if it had been made from inside it. Every other namespace is unshared from inside, after
 * the maps, one call each, so a refusal names the namespace. (The earlier shape — a
 * user-namespace child that cloned pid 1 — paid for a process creation and a wake-up twice.)
 *
 * pid 1 shares the supervisor's memory (CLONE_VM) until it executes cell-init or exits, so the
 * launch costs the same whatever the supervisor's size (a fork would copy its page tables). The
 * price is strict: code here runs on a private stack, in a process whose other threads may hold
 * locks, so it makes only async-signal-safe calls — no malloc, no stdio, no locale — and it
 * changes credentials with raw syscalls (glibc's setresuid() would signal the supervisor's other
 * threads to change theirs too). Every failure is reported as (step, errno) on the status pipe.
 */
#include "cell_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/sockios.h>
#include <linux/securebits.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/futex.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

/* pid 1 gets its own stack; a guard page below it turns an overflow into a crash of pid 1
 * instead of silent corruption of the supervisor's memory. */
#define CHILD_STACK_SIZE (256 * 1024)
/* The command's launcher (see start_command) runs on a stack of its own, below pid 1's. */
#define LAUNCHER_STACK_SIZE (64 * 1024)

struct spawn_ctx {
    const struct cell_spawn_plan *plan;
    int status_w;  /* report pipe, write end (kept through cell-init's execve) */
    int sync_r;    /* lifeline pipe, read end: one byte = "maps written", EOF = supervisor gone */
    int sync_w;    /* lifeline pipe, write end: the supervisor's; pid 1 closes its copy */
    int listener_w; /* socketpair end that carries the seccomp listener fd to the supervisor */
    int keep[CELL_MAX_KEEP_FDS + 8];
    int keep_count;
    char **init_argv;
    const char *status_arg;    /* cell-init's first argument: STATUS_FD */
    const char *status_go_arg; /* or STATUS_FD,GO_FD when it must wait for the network */
    char *status_running_arg;  /* or STATUS_FD:PID when pid 1 started the command (32 bytes) */
    void *launcher_stack_top;
    const cpu_set_t *cpus; /* the process' CPUs (see cell_spawn_steer), or NULL */
};

/* ---------------------------------------------------------------- helpers (async-signal-safe) */

/* Raw read/write/poll: glibc's wrappers are cancellation points that update the calling thread's
 * control block, which a CLONE_VM child shares with the supervisor thread that cloned it. */
static ssize_t raw_read(int fd, void *buf, size_t len) {
    return (ssize_t)syscall(SYS_read, fd, buf, len);
}
static ssize_t raw_write(int fd, const void *buf, size_t len) {
    return (ssize_t)syscall(SYS_write, fd, buf, len);
}
static void raw_close(int fd) {
    (void)syscall(SYS_close, fd);
}

/* Waits for one byte (a go-ahead); returns 1, 0 at EOF, or -1 with errno set. */
static ssize_t read_byte(int fd) {
    char byte;
    ssize_t n;
    do {
        n = raw_read(fd, &byte, 1);
    } while (n < 0 && errno == EINTR);
    return n;
}

static void report(int fd, int kind, int step, int error, int value) {
    struct cell_report r = {kind, step, error, value};
    ssize_t n;
    do {
        n = raw_write(fd, &r, sizeof r);
    } while (n < 0 && errno == EINTR);
}

__attribute__((noreturn)) static void fail(const struct spawn_ctx *ctx, int step, int error) {
    report(ctx->status_w, CELL_REPORT_FAILED, step, error, 0);
    _exit(CELL_EXIT_SETUP_FAILED);
}

/* Handlers installed by the supervisor must never run in a child that shares its memory, and the
 * command must start with default dispositions (an ignored SIGPIPE would survive execve). All
 * signals are blocked across clone, so nothing can be delivered before this runs. */
static void reset_signal_dispositions(void) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        (void)sigaction(sig, &dfl, NULL); /* fails harmlessly for glibc's reserved signals */
    }
}

/* Close every descriptor above 2 except ctx->keep (sorted ascending). Done first thing in
 * pid 1, once its maps are written: a descriptor the caller leaked (an open directory, say) would otherwise let the
 * sandbox reach the host through /proc/self/fd (the CVE-2024-21626 class). */
static void close_unkept_fds(const struct spawn_ctx *ctx) {
    unsigned int next = 3;
    for (int i = 0; i < ctx->keep_count; i++) {
        unsigned int k = (unsigned int)ctx->keep[i];
        if (k < next)
            continue;
        if (k > next)
            (void)syscall(SYS_close_range, next, k - 1, 0);
        next = k + 1;
    }
    (void)syscall(SYS_close_range, next, ~0U, 0);
}

/* Raw syscalls throughout: this runs in the CLONE_VM children as well as in the supervisor. */
static int write_file(const char *path, const char *data, size_t len) {
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n;
    do {
        n = raw_write(fd, data, len);
    } while (n < 0 && errno == EINTR);
    int saved = errno;
    raw_close(fd);
    if (n != (ssize_t)len) {
        errno = n < 0 ? saved : EIO;
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- the network namespace maker */

/*
 * The network namespace is by far the slowest to create (~0.6 ms here: the kernel registers a
 * loopback device and every per-namespace sysctl table), and nothing before the lock-down needs
 * it. So pid 1 has it made beside itself: the maker, a child sharing pid 1's memory and
 * descriptor table, unshares it, brings lo up, opens the low ports and leaves a socket of the
 * namespace in the shared table, while pid 1 creates the other namespaces and builds the
 * filesystem view; pid 1 then reaps the maker and joins the namespace through that socket
 * (join_network) before it drops its capabilities. Nothing of the caller's runs before the join.
 *
 * The maker runs at the same time as pid 1 and shares its thread pointer, hence errno: every
 * call it makes is raw (net_syscall returns -errno and never touches errno), and pid 1 reads
 * what the maker wrote only after reaping it (the wait orders the maker's writes before pid 1's
 * reads). Where net_syscall has no raw form, pid 1 makes the namespace itself, in line.
 */
#if defined(__x86_64__)
#define CELL_NET_MAKER 1
static long net_syscall(long number, long a, long b, long c) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "0"(number), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return ret;
}
#else
#define CELL_NET_MAKER 0
static long net_syscall(long number, long a, long b, long c) {
    long ret = syscall(number, a, b, c);
    return ret < 0 ? -errno : ret;
}
#endif

struct net_made {
    int socket; /* a socket of the new namespace, or -1 */
    int step;   /* the step that failed, or CELL_STEP_NONE */
    int error;
};

static int net_failed(struct net_made *made, int step, long ret) {
    made->step = step;
    made->error = (int)-ret;
    return 1;
}

/* Makes the network namespace (for the calling process) and what it needs before anything runs
 * in it. Returns 0, or 1 with the failed step and its error in *made. */
static int make_network(struct net_made *made) {
    long ret = net_syscall(SYS_unshare, CLONE_NEWNET, 0, 0);
    if (ret < 0)
        return net_failed(made, CELL_STEP_NS_NET, ret);
    long sock = net_syscall(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return net_failed(made, CELL_STEP_LOOPBACK, sock);
    made->socket = (int)sock;
    /* lo comes down in a new namespace: up, so that the sandbox can talk to itself. */
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    if ((ret = net_syscall(SYS_ioctl, sock, SIOCGIFFLAGS, (long)&ifr)) < 0)
        return net_failed(made, CELL_STEP_LOOPBACK, ret);
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if ((ret = net_syscall(SYS_ioctl, sock, SIOCSIFFLAGS, (long)&ifr)) < 0)
        return net_failed(made, CELL_STEP_LOOPBACK, ret);
    /* Servers may bind low ports in their own network namespace without a capability (as
     * Docker does): two sandboxes can both listen on port 80. Per namespace (the host's /proc,
     * which shows the writer's network namespace). */
    long fd = net_syscall(SYS_openat, AT_FDCWD, (long)"/proc/sys/net/ipv4/ip_unprivileged_port_start", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return net_failed(made, CELL_STEP_NET_SYSCTL, fd);
    ret = net_syscall(SYS_write, fd, (long)"0", 1);
    (void)net_syscall(SYS_close, fd, 0, 0);
    if (ret != 1)
        return net_failed(made, CELL_STEP_NET_SYSCTL, ret < 0 ? ret : -EIO);
    return 0;
}

#if CELL_NET_MAKER
static int net_maker_main(void *arg) {
    return make_network(arg);
}
#endif

/* pid 1: reaps the maker, joins the namespace it made (setns through its socket), and gives the
 * maker's pid back (ns_last_pid, opened earlier while the host's /proc/sys was in view), so
 * that the command is pid 2 as it would be without the maker. */
static void join_network(const struct spawn_ctx *ctx, pid_t maker, struct net_made *made, int last_pid_fd) {
    int status = 0;
    long r;
    do
        r = syscall(SYS_wait4, maker, &status, __WCLONE, NULL);
    while (r < 0 && errno == EINTR);
    if (r != maker)
        fail(ctx, CELL_STEP_NET_JOIN, r < 0 ? errno : ECHILD);
    if (made->step != CELL_STEP_NONE)
        fail(ctx, made->step, made->error);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || made->socket < 0)
        fail(ctx, CELL_STEP_NET_JOIN, EIO);
    int ns = ioctl(made->socket, SIOCGSKNS);
    if (ns < 0 || setns(ns, CLONE_NEWNET) != 0)
        fail(ctx, CELL_STEP_NET_JOIN, errno);
    raw_close(ns);
    raw_close(made->socket);
    if (last_pid_fd >= 0) {
        (void)raw_write(last_pid_fd, "1", 1);
        raw_close(last_pid_fd);
    }
}

/* ------------------------------------------------------------------------ capability lock-down */

static int capset_sets(uint64_t effective, uint64_t permitted, uint64_t inheritable) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {
        {(uint32_t)effective, (uint32_t)permitted, (uint32_t)inheritable},
        {(uint32_t)(effective >> 32), (uint32_t)(permitted >> 32), (uint32_t)(inheritable >> 32)},
    };
    return (int)syscall(SYS_capset, &header, data);
}

/*
 * Root inside the user namespace holds every capability of that namespace, and would get its
 * bounding set back as capabilities on every execve. The order matters:
 *   1. drop the bounding set and lock the securebits first: both need CAP_SETPCAP, which the
 *      final capset removes;
 *   2. securebits NOROOT + NO_SETUID_FIXUP (locked) stop uid 0 from regaining capabilities on
 *      execve or through setuid transitions; NO_CAP_AMBIENT_RAISE (locked) stops the ambient set
 *      from being refilled later — so kept capabilities are raised into it before that bit;
 *   3. capset leaves exactly the kept set in effective/permitted/inheritable.
 * no_new_privs comes after, and is what lets an unprivileged process load a seccomp filter.
 */
static void drop_capabilities(const struct spawn_ctx *ctx) {
    const struct cell_spawn_plan *plan = ctx->plan;
    uint64_t keep = plan->keep_caps;

    /* Every capability this kernel knows: both calls fail with EINVAL past the last one (one
     * call per capability, not a read before each drop: ~40 system calls fewer). */
    int last_cap = -1;
    for (int cap = 0; cap < 64; cap++) {
        if (keep & (1ULL << cap)) {
            if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0)
                break;
        } else if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            if (errno == EINVAL)
                break;
            fail(ctx, CELL_STEP_CAP_BOUNDING, errno);
        }
        last_cap = cap;
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
        fail(ctx, CELL_STEP_CAP_AMBIENT, errno);

    if (keep != 0) {
        /* Kept capabilities survive execve as uid 0 under NOROOT only through the ambient set,
         * which needs them permitted and inheritable first. CAP_SETPCAP stays until step 2. */
        uint64_t with_setpcap = keep | (1ULL << CAP_SETPCAP);
        if (capset_sets(with_setpcap, with_setpcap, keep) != 0)
            fail(ctx, CELL_STEP_CAPSET, errno);
        for (int cap = 0; cap <= last_cap; cap++) {
            if ((keep & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0)
                fail(ctx, CELL_STEP_CAP_AMBIENT, errno);
        }
    }

    unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                         SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                         SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) != 0)
        fail(ctx, CELL_STEP_SECUREBITS, errno);

    if (capset_sets(keep, keep, keep) != 0)
        fail(ctx, CELL_STEP_CAPSET, errno);
}

/* A one-byte message with room for one descriptor (SCM_RIGHTS), for the seccomp listener's trip
 * from pid 1 to the supervisor. Stack memory and memset only: pid 1 uses it too. */
struct fd_message {
    char byte;
    struct iovec iov;
    struct msghdr msg;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
};

static void fd_message_init(struct fd_message *m) {
    memset(m, 0, sizeof *m);
    m->byte = 'L';
    m->iov.iov_base = &m->byte;
    m->iov.iov_len = 1;
    m->msg.msg_iov = &m->iov;
    m->msg.msg_iovlen = 1;
    m->msg.msg_control = m->control.buf;
    m->msg.msg_controllen = sizeof m->control.buf;
}

/* Loads one filter; with `listen`, asks for a user-notification listener and passes it to the
 * supervisor over the socketpair (SCM_RIGHTS), then closes this process' copy. Only sendmsg
 * and close run between this load and the execveat of cell-init: the policy compiler makes
 * sure neither can be a notified call (nobody could answer yet: the sandbox would hang). */
static void load_filter(const struct spawn_ctx *ctx, const uint8_t *bpf, size_t len, int which, int listen) {
    if (len == 0)
        return;
    struct sock_fprog prog = {(unsigned short)(len / sizeof(struct sock_filter)), (struct sock_filter *)bpf};
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, listen ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0, &prog);
    if (fd < 0) {
        report(ctx->status_w, CELL_REPORT_FAILED, CELL_STEP_SECCOMP, errno, which);
        _exit(CELL_EXIT_SETUP_FAILED);
    }
    if (!listen)
        return;
    int listener = (int)fd;
    struct fd_message m;
    fd_message_init(&m);
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&m.msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &listener, sizeof(int));
    if (syscall(SYS_sendmsg, ctx->listener_w, &m.msg, MSG_NOSIGNAL) != 1) {
        report(ctx->status_w, CELL_REPORT_FAILED, CELL_STEP_SECCOMP_LISTENER, errno, which);
        _exit(CELL_EXIT_SETUP_FAILED);
    }
    raw_close(listener);
}

/* ------------------------------------------------------------------------ the command's launcher */

/* Writes `v` (>= 0) in decimal at `out` (room for 20 bytes); returns the length. */
static int format_decimal(char *out, long v) {
    char digits[24];
    int len = 0;
    do {
        digits[len++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0 && len < 20);
    for (int i = 0; i < len; i++)
        out[i] = digits[len - 1 - i];
    return len;
}

/* The value of NAME= in `envp`, or NULL. */
static const char *env_value(char *const *envp, const char *name, size_t name_len) {
    for (; envp && *envp; envp++) {
        if (strncmp(*envp, name, name_len) == 0 && (*envp)[name_len] == '=')
            return *envp + name_len + 1;
    }
    return NULL;
}

/*
 * The command, started by pid 1 with clone(CLONE_VM | CLONE_VFORK) after the lock-down and the
 * filters, just before pid 1 executes cell-init: it then starts while cell-init's own exec runs
 * instead of after it. pid 1 is suspended meanwhile (vfork), so this child may use its memory
 * and thread pointer. It does what posix_spawnp did in cell-init: a session of its own, no
 * descriptor above 2, nothing blocked (every disposition is already the default: pid 1 reset
 * them and installs none), PATH looked up in the sandbox's environment as execvp does. A
 * failure is reported as cell-init reported it, and the exit status is 127 or 126.
 */
static int start_command(void *arg) {
    const struct spawn_ctx *ctx = arg;
    const struct cell_spawn_plan *plan = ctx->plan;
    char *const *argv = plan->argv;
    if (setsid() < 0) {
        report(ctx->status_w, CELL_REPORT_FAILED, CELL_STEP_FORK_COMMAND, errno, 0);
        _exit(CELL_EXIT_SETUP_FAILED);
    }
    /* No descriptor above 2 for the command (the report pipe among them): without close_range
     * (the policy allows it, so only a kernel without it) the command does not start. */
    if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        report(ctx->status_w, CELL_REPORT_FAILED, CELL_STEP_FORK_COMMAND, errno, 0);
        _exit(CELL_EXIT_SETUP_FAILED);
    }
    sigset_t none;
    sigemptyset(&none);
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(uint64_t));

    int err = ENOENT;
    const char *name = argv[0];
    if (!*name) {
        /* "" names no file: not found, as for execvp. */
    } else if (strchr(name, '/')) {
        syscall(SYS_execve, name, argv, plan->envp);
        err = errno;
    } else {
        const char *path = env_value(plan->envp, "PATH", 4);
        if (!path)
            path = "/bin:/usr/bin";
        size_t name_len = strlen(name);
        char file[4096];
        int saw_eacces = 0;
        for (const char *p = path;; p++) {
            const char *start = p;
            while (*p && *p != ':')
                p++;
            size_t dir_len = (size_t)(p - start);
            if (dir_len + 1 + name_len + 1 <= sizeof file) {
                /* An empty entry is the working directory, as for execvp. */
                memcpy(file, dir_len ? start : ".", dir_len ? dir_len : 1);
                size_t at = dir_len ? dir_len : 1;
                file[at] = '/';
                memcpy(file + at + 1, name, name_len + 1);
                syscall(SYS_execve, file, argv, plan->envp);
                err = errno;
                if (err == EACCES) {
                    saw_eacces = 1;
                } else if (err != ENOENT && err != ENOTDIR && err != ESTALE && err != ENODEV && err != ETIMEDOUT) {
                    break;
                }
            }
            if (!*p) {
                if (saw_eacces && (err == ENOENT || err == ENOTDIR || err == ESTALE || err == ENODEV || err == ETIMEDOUT))
                    err = EACCES;
                break;
            }
        }
    }
    report(ctx->status_w, CELL_REPORT_EXEC_FAILED, CELL_STEP_EXEC_COMMAND, err, 0);
    _exit(err == ENOENT ? 127 : 126);
}

/* ------------------------------------------------------------------------------- sandbox pid 1 */

static int pid1_main(void *arg) {
    const struct spawn_ctx *ctx = arg;
    const struct cell_spawn_plan *plan = ctx->plan;

    /* Our copy of the lifeline's write end goes first, or the read below could never see EOF. */
    raw_close(ctx->sync_w);

    /* Nothing happens inside the new user namespace until the supervisor has written our
     * uid/gid maps: until then we are the overflow uid, and files we created or namespaces we
     * made would belong to an unmapped id. EOF means the supervisor failed or died.
     * This wait comes before anything that can set errno: the supervisor, writing the maps
     * meanwhile, shares our errno (same thread pointer) and reads it when a write fails. */
    ssize_t n = read_byte(ctx->sync_r);
    if (n != 1)
        fail(ctx, CELL_STEP_WAIT_MAPS, n < 0 ? errno : EPIPE);

    reset_signal_dispositions();
    close_unkept_fds(ctx);

    /* Become uid/gid 0 of the namespace. When real root launched us, this is what moves the
     * process off host uid 0 onto the unprivileged outer id; drop root's supplementary groups
     * first (allowed only because the map was written by a privileged supervisor). */
    if (!plan->deny_setgroups && syscall(SYS_setgroups, 0, NULL) != 0)
        fail(ctx, CELL_STEP_SETGROUPS, errno);
    if (syscall(SYS_setresgid, 0, 0, 0) != 0)
        fail(ctx, CELL_STEP_SETRESGID, errno);
    if (syscall(SYS_setresuid, 0, 0, 0) != 0)
        fail(ctx, CELL_STEP_SETRESUID, errno);

    /* The other namespaces are created now, from inside the user namespace and after the maps,
     * so each is owned by it and by a mapped root. The network namespace first, by the maker
     * beside us (see make_network), or in line. The maker is started before anything else here,
     * so it stays in the host's mount namespace, where it only reads /proc/sys. */
    struct net_made net = {-1, CELL_STEP_NONE, 0};
    pid_t maker = 0;
    if (plan->namespaces & CELL_NS_NET) {
#if CELL_NET_MAKER
        /* On the command launcher's stack: the launcher starts only after the maker is reaped.
         * No exit signal: pid 1 waits for it with __WCLONE. */
        maker = clone(net_maker_main, ctx->launcher_stack_top, CLONE_VM | CLONE_FILES, &net);
        if (maker < 0)
            fail(ctx, CELL_STEP_NET_MAKER, errno);
#else
        if (make_network(&net) != 0)
            fail(ctx, net.step, net.error);
        raw_close(net.socket);
#endif
    }
    /* One unshare per namespace, so a refusal names the namespace the kernel refused. The cgroup
     * namespace comes after the supervisor moved us into the sandbox's cgroup (before the maps),
     * so it is rooted there. A new time namespace applies to our children and, from the
     * execveat below, to cell-init itself. */
    static const struct {
        int bit, flag, step;
    } nested[] = {
        {CELL_NS_MOUNT, CLONE_NEWNS, CELL_STEP_NS_MOUNT},
        {CELL_NS_UTS, CLONE_NEWUTS, CELL_STEP_NS_UTS},
        {CELL_NS_IPC, CLONE_NEWIPC, CELL_STEP_NS_IPC},
        {CELL_NS_CGROUP, CLONE_NEWCGROUP, CELL_STEP_NS_CGROUP},
        {CELL_NS_TIME, CLONE_NEWTIME, CELL_STEP_NS_TIME},
    };
    for (size_t i = 0; i < sizeof nested / sizeof nested[0]; i++) {
        if ((plan->namespaces & nested[i].bit) && unshare(nested[i].flag) != 0)
            fail(ctx, nested[i].step, errno);
    }

    /* What needs only the new namespaces, not the rest of the plan, is done before waiting for
     * it: the supervisor is usually still building it, and a wait that ends at once saves the
     * wake-up of an idle CPU. None of it runs anything of the caller's. The maker took the pid
     * namespace's first free pid: ns_last_pid gives it back once the maker is reaped, through
     * this descriptor opened while the host's /proc/sys is in view (if it cannot be opened, the
     * command is pid 3: cosmetic, not a reason to refuse the launch). Only in a pid namespace
     * of our own: the host's counter is never touched. */
    int last_pid_fd = maker > 0 && (plan->namespaces & CELL_NS_PID)
        ? (int)syscall(SYS_openat, AT_FDCWD, "/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC) : -1;
    /* Before any mount: make every mount private, so nothing done inside propagates back to
     * the host (or to other sandboxes sharing a peer group). */
    if ((plan->namespaces & CELL_NS_MOUNT) && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        fail(ctx, CELL_STEP_MOUNT_PRIVATE, errno);

    /* The rest of the plan (filesystem view, limits, lock-down) was built by the supervisor
     * while the namespaces above were being created; its byte says it is in place. Nothing
     * below reads the plan's second part before this. End of file means it never will be, or
     * that the supervisor (the pipe's only writer) is gone: either way pid 1 stops here, so it
     * cannot outlive the supervisor before PR_SET_PDEATHSIG is armed below. */
    n = read_byte(plan->plan_ready_fd);
    if (n != 1)
        fail(ctx, CELL_STEP_WAIT_PLAN, n < 0 ? errno : EPIPE);
    raw_close(plan->plan_ready_fd);
    /* The supervisor may have steered us onto its own CPU for this wake-up (cell_spawn_steer):
     * every CPU of the process again, for the rest of the setup and for the command. */
    if (ctx->cpus && sched_setaffinity(0, sizeof *ctx->cpus, ctx->cpus) != 0)
        fail(ctx, CELL_STEP_AFFINITY, errno);

    /* Die with the supervisor. PR_SET_PDEATHSIG only covers a parent that dies after it is set,
     * so check the lifeline afterwards: if the supervisor is already gone, its write end is
     * closed and poll reports POLLHUP. (getppid() cannot tell: it is 0 in a new pid namespace.) */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        fail(ctx, CELL_STEP_PDEATHSIG, errno);
    struct pollfd lifeline = {ctx->sync_r, POLLIN, 0};
    if (syscall(SYS_poll, &lifeline, 1, 0) < 0 || (lifeline.revents & (POLLHUP | POLLERR)))
        fail(ctx, CELL_STEP_SUPERVISOR_GONE, EPIPE);

    /* A new session without a controlling terminal: the command cannot push keystrokes into the
     * caller's terminal with TIOCSTI (CVE-2017-5226) nor receive its job-control signals. */
    if (setsid() < 0)
        fail(ctx, CELL_STEP_SETSID, errno);

    /* No nested user namespace, ever (unless the policy allows them): seccomp cannot read
     * clone3's flags, but a user namespace whose max_user_namespaces is 0 refuses every child
     * namespace whatever the call. The setting is per user namespace: the host's is untouched.
     * Written now, while /proc/sys is still writable. */
    if (plan->max_user_namespaces >= 0) {
        char value[24];
        int len = format_decimal(value, plan->max_user_namespaces);
        if (write_file("/proc/sys/user/max_user_namespaces", value, (size_t)len) != 0)
            fail(ctx, CELL_STEP_USERNS_LIMIT, errno);
    }

    if (plan->namespaces & CELL_NS_MOUNT) {
        /* The filesystem view (mounts.c), with umask 0 so that the modes it is given are exact;
         * the caller's umask is back before the command runs. */
        int step = CELL_STEP_NONE, op = -1;
        mode_t saved_umask = umask(0);
        if (cell_build_root(plan, &step, &op) != 0) {
            report(ctx->status_w, CELL_REPORT_FAILED, step, errno, op);
            _exit(CELL_EXIT_SETUP_FAILED);
        }
        umask(saved_umask);
    }

    if ((plan->namespaces & CELL_NS_UTS) && plan->hostname &&
        sethostname(plan->hostname, plan->hostname_len) != 0)
        fail(ctx, CELL_STEP_HOSTNAME, errno);

    if (plan->cwd && chdir(plan->cwd) != 0) {
        int err = errno;
        if (!plan->cwd_fallback || chdir(plan->cwd_fallback) != 0)
            fail(ctx, CELL_STEP_CHDIR, err);
        report(ctx->status_w, CELL_REPORT_WARNING, CELL_STEP_CHDIR, err, 0);
    }

    /* Limits: after the filesystem view (which needs many descriptors at once), before the
     * lock-down; the hard limits are set too, so no process can raise them back. */
    for (int i = 0; i < plan->rlimit_count; i++) {
        struct rlimit64 lim = {plan->rlimits[i].soft, plan->rlimits[i].hard};
        if (syscall(SYS_prlimit64, 0, plan->rlimits[i].resource, &lim, NULL) != 0) {
            report(ctx->status_w, CELL_REPORT_FAILED, CELL_STEP_RLIMIT, errno, plan->rlimits[i].resource);
            _exit(CELL_EXIT_SETUP_FAILED);
        }
    }

    /* Into the network namespace the maker made: it needs CAP_SYS_ADMIN, and nothing of the
     * caller's has run yet. */
    if (maker > 0)
        join_network(ctx, maker, &net, last_pid_fd);

    /* Lock-down comes last, once nothing left needs privilege. */
    drop_capabilities(ctx);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        fail(ctx, CELL_STEP_NO_NEW_PRIVS, errno);

    /* The report pipe was created close-on-exec so that no other process of the supervisor could
     * inherit it; cell-init needs it, so clear the flag in this process only. */
    if (fcntl(ctx->status_w, F_SETFD, 0) != 0)
        fail(ctx, CELL_STEP_STATUS_FD, errno);
    /* Likewise the lifeline, when cell-init must wait on it for the supervisor's go (and then
     * it is told so: wait_for_go is part of the plan's second half). */
    if (plan->wait_for_go && fcntl(ctx->sync_r, F_SETFD, 0) != 0)
        fail(ctx, CELL_STEP_STATUS_FD, errno);
    ctx->init_argv[1] = (char *)(plan->wait_for_go ? ctx->status_go_arg : ctx->status_arg);

    /* The filters were compiled by the supervisor while everything above ran; their byte says
     * they are in place (the pipe orders its writes before our reads of them). */
    n = read_byte(plan->filters_ready_fd);
    if (n != 1)
        fail(ctx, CELL_STEP_WAIT_FILTERS, n < 0 ? errno : EPIPE);
    raw_close(plan->filters_ready_fd);
    const struct cell_filters *filters = plan->filters;
    int command_first = filters->command_before_init && !plan->wait_for_go;

    /* When the command starts before cell-init (below), it runs while this process still shares
     * the supervisor's memory: not dumpable from now on, so that no process of the sandbox can
     * ptrace it or open its /proc/1/mem (dumpability belongs to the memory: the supervisor is
     * not dumpable either from here on). cell-init is not dumpable from its exec on: its
     * sealed copy is execute-only (cell_sealed_copy). */
    if (command_first && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        fail(ctx, CELL_STEP_DUMPABLE, errno);

    /* seccomp last: after no_new_privs (which lets a process without capabilities load a
     * filter) and after every other setup call, so the only calls made under the filter before
     * the command's own are the execveat of cell-init and, when the policy plainly allows them,
     * the command's start (clone, setsid, close_range, rt_sigprocmask, execve). */
    load_filter(ctx, filters->baseline, filters->baseline_len, 0, 0);
    load_filter(ctx, filters->policy, filters->policy_len, 1, plan->seccomp_listener);

    if (command_first) {
        /* The command, started now: vfork semantics, so this process resumes once it has
         * executed (or failed to), and then executes cell-init while the command runs. */
        _Static_assert(CELL_COMMAND_CLONE_FLAGS == (CLONE_VM | CLONE_VFORK | SIGCHLD), "the launcher's clone flags");
        long pid = clone(start_command, ctx->launcher_stack_top, CELL_COMMAND_CLONE_FLAGS, (void *)ctx);
        if (pid < 0)
            fail(ctx, CELL_STEP_FORK_COMMAND, errno);
        char *arg = ctx->status_running_arg;
        int len = format_decimal(arg, ctx->status_w);
        arg[len++] = ':';
        len += format_decimal(arg + len, pid);
        arg[len] = '\0';
        ctx->init_argv[1] = arg;
    }

    /* Execute cell-init from the sealed memfd: /proc/1/exe is then a copy nobody can write, never
     * a host file (the runc CVE-2019-5736 class). All signals are still blocked: cell-init
     * installs its forwarding handlers before it unblocks them. */
    syscall(SYS_execveat, plan->init_fd, "", ctx->init_argv, plan->envp, AT_EMPTY_PATH);
    fail(ctx, CELL_STEP_EXEC_INIT, errno);
}

/* ---------------------------------------------------------------------------------- supervisor */

static void sort_fds(int *fds, int count) {
    for (int i = 1; i < count; i++) {
        int v = fds[i], j = i - 1;
        while (j >= 0 && fds[j] > v) {
            fds[j + 1] = fds[j];
            j--;
        }
        fds[j + 1] = v;
    }
}

static int write_id_maps(pid_t pid, const struct cell_spawn_plan *plan, int *step) {
    char path[64], line[64];
    int len;

    /* setgroups must be settled before gid_map is written; "deny" is what the kernel requires
     * of an unprivileged map writer (otherwise the sandbox could drop a group that denies it
     * access to a file: a negative ACL bypass). */
    if (plan->deny_setgroups) {
        *step = CELL_STEP_WRITE_SETGROUPS;
        snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
        if (write_file(path, "deny", 4) != 0)
            return -1;
    }
    *step = CELL_STEP_WRITE_GID_MAP;
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
    len = snprintf(line, sizeof line, "0 %u 1\n", plan->outer_gid);
    if (write_file(path, line, (size_t)len) != 0)
        return -1;
    *step = CELL_STEP_WRITE_UID_MAP;
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
    len = snprintf(line, sizeof line, "0 %u 1\n", plan->outer_uid);
    if (write_file(path, line, (size_t)len) != 0)
        return -1;
    return 0;
}

/* The fd passed with SCM_RIGHTS on `sock`, or -1 (non-blocking: it is there or never comes). */
static int receive_fd(int sock) {
    struct fd_message m;
    fd_message_init(&m);
    if (recvmsg(sock, &m.msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) != 1)
        return -1;
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&m.msg);
    if (!cmsg || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
    return fd;
}

static pid_t wait_exited(pid_t pid, int *status) {
    pid_t r;
    do {
        r = waitpid(pid, status, 0);
    } while (r < 0 && errno == EINTR);
    return r;
}

/* A failure in the supervisor's part, with pid 1 still waiting for its maps: record the step
 * and errno, kill and reap it (no process is left behind), restore the mask. */
static void abandon_child(struct cell_spawn_result *result, int step, int error, pid_t child, const sigset_t *saved) {
    result->failed_step = step;
    result->error = error;
    kill(child, SIGKILL);
    wait_exited(child, NULL);
    pthread_sigmask(SIG_SETMASK, saved, NULL);
}

static int exit_at_once(void *arg) {
    (void)arg;
    _exit(0);
}

/* The clone of pid 1 creates two namespaces; when it fails, tell which one the kernel refused by
 * creating a user namespace alone (a child that exits at once, on the same stack: CLONE_VFORK
 * keeps us suspended until it has). */
static int refused_clone_step(void *stack_top) {
    pid_t probe = clone(exit_at_once, stack_top, CLONE_VM | CLONE_VFORK | CLONE_NEWUSER | SIGCHLD, NULL);
    if (probe < 0)
        return CELL_STEP_CLONE_USERNS;
    wait_exited(probe, NULL);
    return CELL_STEP_NS_PID;
}

/* The spawner: the thread that creates pid 1 (see cell_spawn_start). */
struct cell_spawner {
    pthread_t thread;
    cpu_set_t cpus; /* the process' CPUs, restored before clone so that pid 1 may use them all */
    int pinned;
    pid_t child; /* pid 1, once cloned (atomic: read by the caller's thread) */
    const struct cell_spawn_plan *plan;
    /* Written by the spawner before pid 1 may execute cell-init (or before the fence closes, on
     * failure); read by the caller once the fence has closed. */
    struct cell_spawn_result result;
    int rc;
    int listener_r; /* the socketpair end pid 1 sends the seccomp listener to, or -1 */
    /* pid 1 holds the write end (close-on-exec) until it has executed cell-init or died, and
     * nothing else does once the spawner has closed its own: both the spawner and the caller
     * wait for end of file on the read end. */
    int fence[2];
    int end[2]; /* the spawner exits when the write end is closed (cell_spawn_end) */
    /* 0 until the caller has completed the plan's first part (cell_spawn_release): 1, or -1 to
     * give up. A futex word. */
    int released;
};

/* Until the caller releases the plan's first part. The caller is expected within microseconds
 * (it copies cell-init while this thread starts and sets up): a short busy wait saves the
 * wake-up of an idle CPU; past it, the thread sleeps on the futex. */
static int wait_for_release(struct cell_spawner *s) {
    int v;
    for (int spin = 0; spin < 4000; spin++) {
        if ((v = __atomic_load_n(&s->released, __ATOMIC_ACQUIRE)) != 0)
            return v;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ volatile("yield");
#endif
    }
    while ((v = __atomic_load_n(&s->released, __ATOMIC_ACQUIRE)) == 0)
        syscall(SYS_futex, &s->released, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    return v;
}

/* Runs on the spawner thread. Returns once pid 1 has executed cell-init or failed, with
 * s->result and s->rc set (before pid 1 is released, or before the fence closes on failure). */
static void cell_spawn(struct cell_spawner *s) {
    const struct cell_spawn_plan *plan = s->plan;
    struct cell_spawn_result *result = &s->result;
    int *fence = s->fence;
    result->init_pid = -1;
    result->status_fd = -1;
    result->lifeline_fd = -1;
    result->listener_fd = -1;
    result->failed_step = CELL_STEP_NONE;
    result->error = 0;
    s->rc = -1;
    s->listener_r = -1;

    /* status: reports; sync: the maps' go-ahead, then the lifeline; listener: the seccomp fd. */
    int status[2] = {-1, -1}, sync[2] = {-1, -1}, listener[2] = {-1, -1};
    char *stack = NULL;
    size_t stack_size = 0;
    char **init_argv = NULL;
    if (plan->keep_fds_count < 0 || plan->keep_fds_count > CELL_MAX_KEEP_FDS) {
        result->failed_step = CELL_STEP_PIPE;
        result->error = EINVAL;
        goto fail;
    }
    if (pipe2(status, O_CLOEXEC) != 0 || pipe2(sync, O_CLOEXEC) != 0) {
        result->failed_step = CELL_STEP_PIPE;
        result->error = errno;
        goto fail;
    }
    if (plan->seccomp_listener && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, listener) != 0) {
        result->failed_step = CELL_STEP_SOCKETPAIR;
        result->error = errno;
        goto fail;
    }

    /* The launcher's stack, then pid 1's, each with a guard page at its low end. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    stack_size = page + LAUNCHER_STACK_SIZE + page + CHILD_STACK_SIZE;
    stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        stack = NULL;
        result->failed_step = CELL_STEP_STACK;
        result->error = errno;
        goto fail;
    }
    mprotect(stack, page, PROT_NONE);
    mprotect(stack + page + LAUNCHER_STACK_SIZE, page, PROT_NONE);
    void *launcher_stack_top = stack + page + LAUNCHER_STACK_SIZE;
    void *stack_top = stack + stack_size; /* the stack grows down from the end of the mapping */

    /* Everything above was this thread's own; from here on it reads the plan's first part. */
    if (wait_for_release(s) < 0) {
        result->failed_step = CELL_STEP_NONE;
        result->error = ECANCELED;
        goto fail;
    }

    /* cell-init STATUS_FD[,GO_FD] -- COMMAND [ARG...]: built here, where malloc is fine; pid 1
     * picks the first argument (wait_for_go is in the plan's second part). */
    size_t argc = 0;
    while (plan->argv[argc])
        argc++;
    char status_arg[32], status_go_arg[32], status_running_arg[32];
    snprintf(status_arg, sizeof status_arg, "%d", status[1]);
    snprintf(status_go_arg, sizeof status_go_arg, "%d,%d", status[1], sync[0]);
    init_argv = calloc(argc + 4, sizeof(char *));
    if (!init_argv) {
        result->failed_step = CELL_STEP_STACK;
        result->error = ENOMEM;
        goto fail;
    }
    init_argv[0] = "cell-init";
    init_argv[1] = status_arg;
    init_argv[2] = "--";
    for (size_t i = 0; i < argc; i++)
        init_argv[3 + i] = plan->argv[i];

    struct spawn_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.plan = plan;
    ctx.status_w = status[1];
    ctx.sync_r = sync[0];
    ctx.sync_w = sync[1];
    ctx.listener_w = listener[1];
    ctx.init_argv = init_argv;
    ctx.status_arg = status_arg;
    ctx.status_go_arg = status_go_arg;
    ctx.status_running_arg = status_running_arg;
    ctx.launcher_stack_top = launcher_stack_top;
    ctx.cpus = s->pinned ? &s->cpus : NULL;
    ctx.keep[ctx.keep_count++] = status[1];
    ctx.keep[ctx.keep_count++] = sync[0];
    ctx.keep[ctx.keep_count++] = fence[1];
    ctx.keep[ctx.keep_count++] = plan->init_fd;
    ctx.keep[ctx.keep_count++] = plan->plan_ready_fd;
    ctx.keep[ctx.keep_count++] = plan->filters_ready_fd;
    if (listener[1] >= 0)
        ctx.keep[ctx.keep_count++] = listener[1];
    for (int i = 0; i < plan->keep_fds_count; i++)
        ctx.keep[ctx.keep_count++] = plan->keep_fds[i];
    sort_fds(ctx.keep, ctx.keep_count);

    /* Block every signal across clone: a handler of the supervisor must never run in a child
     * that shares its memory. pid 1 resets dispositions before anything else. */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);

    /* The user namespace first: the kernel creates it before the pid namespace of the same call,
     * which it then owns. The maps must be written before anything else happens in it, and only
     * a process outside it can map to an id other than its own. */
    int flags = CLONE_VM | CLONE_NEWUSER | SIGCHLD;
    if (plan->namespaces & CELL_NS_PID)
        flags |= CLONE_NEWPID;
    pid_t child = clone(pid1_main, stack_top, flags, &ctx);
    int clone_errno = errno;
    if (child > 0)
        __atomic_store_n(&s->child, child, __ATOMIC_RELEASE);

    if (child < 0) {
        result->failed_step = (flags & CLONE_NEWPID) ? refused_clone_step(stack_top) : CELL_STEP_CLONE_USERNS;
        result->error = clone_errno;
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        goto fail;
    }
    /* Ours to keep: the read ends of the reports and of the listener, the lifeline's write end;
     * the fence's write end is pid 1's alone from now on. */
    close(status[1]);
    status[1] = -1;
    close(sync[0]);
    sync[0] = -1;
    close(fence[1]);
    fence[1] = -1;
    if (listener[1] >= 0) {
        close(listener[1]);
        listener[1] = -1;
    }

    int step = CELL_STEP_NONE;
    /* Into the sandbox's cgroup while it still waits, before it creates any process or
     * namespace (its cgroup namespace is then rooted at this cgroup). */
    if (plan->cgroup_procs_fd >= 0) {
        char pid_text[16];
        int len = snprintf(pid_text, sizeof pid_text, "%d", (int)child);
        if (write(plan->cgroup_procs_fd, pid_text, (size_t)len) != len) {
            abandon_child(result, CELL_STEP_CGROUP, errno, child, &saved);
            goto fail;
        }
    }
    if (write_id_maps(child, plan, &step) != 0) {
        abandon_child(result, step, errno, child, &saved);
        goto fail;
    }

    /* The result, before pid 1 may go on: the caller reads it once the fence has closed. */
    result->init_pid = child;
    result->status_fd = status[0];
    result->lifeline_fd = sync[1];
    s->listener_r = listener[0];
    s->rc = 0;
    if (write(sync[1], "m", 1) != 1) {
        s->rc = -1;
        s->listener_r = -1;
        result->init_pid = -1;
        result->status_fd = result->lifeline_fd = -1;
        abandon_child(result, CELL_STEP_RELEASE_CHILD, errno, child, &saved);
        goto fail;
    }
    status[0] = sync[1] = listener[0] = -1; /* the caller's now */

    /* Until pid 1 has executed cell-init or died, it runs on our stack with our thread pointer
     * (so our errno is its errno): wait for the fence to close with a raw read, and touch
     * nothing else. Signals stay blocked, so the read cannot be interrupted. */
    (void)read_byte(fence[0]);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    munmap(stack, stack_size);
    free(init_argv);
    return;

fail:
    /* The fence closes last: the caller then finds the result in place. */
    if (stack)
        munmap(stack, stack_size);
    free(init_argv);
    for (int i = 0; i < 2; i++) {
        if (status[i] >= 0)
            close(status[i]);
        if (sync[i] >= 0)
            close(sync[i]);
        if (listener[i] >= 0)
            close(listener[i]);
    }
    if (fence[1] >= 0) {
        close(fence[1]);
        fence[1] = -1;
    }
}

/* ------------------------------------------------------------------------ the spawner thread */

static void *spawner_main(void *arg) {
    struct cell_spawner *s = arg;
    if (s->pinned)
        (void)sched_setaffinity(0, sizeof s->cpus, &s->cpus);
    cell_spawn(s);
    /* Stay alive as pid 1's parent thread until the sandbox is over; then clean up after
     * ourselves (cell_spawn_end does not wait for us: nothing is left to wait for). */
    (void)read_byte(s->end[0]);
    close(s->end[0]);
    close(s->fence[0]);
    free(s);
    return NULL;
}

/*
 * Called by the supervisor just before it hands pid 1 the rest of its plan. pid 1 sleeps until
 * then, and its own CPU is usually busy with the network namespace's maker, deep in the kernel
 * (not preemptible here): woken there, pid 1 waited ~0.2 ms for it. Its affinity is narrowed to
 * the CPU this thread runs on, which goes idle right after; pid 1 widens it back to the
 * process' CPUs as soon as it is awake, before anything else. Best effort: nothing depends on it.
 */
void cell_spawn_steer(struct cell_spawner *s) {
    pid_t child = __atomic_load_n(&s->child, __ATOMIC_ACQUIRE);
    int cpu = sched_getcpu();
    if (!s->pinned || child <= 0 || cpu < 0 || !CPU_ISSET(cpu, &s->cpus))
        return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    (void)sched_setaffinity(child, sizeof one, &one);
}

struct cell_spawner *cell_spawn_start(const struct cell_spawn_plan *plan) {
    struct cell_spawner *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->plan = plan;
    s->fence[0] = s->fence[1] = s->end[0] = s->end[1] = -1;
    if (pipe2(s->fence, O_CLOEXEC) != 0 || pipe2(s->end, O_CLOEXEC) != 0)
        goto fail;
    sigset_t all, saved;
    sigfillset(&all);
    /* Start the thread on another CPU than this one, which goes on building the plan: left to
     * the scheduler, a new thread is queued behind its creator on the same CPU, and the sandbox
     * creation would wait for the plan instead of overlapping it (measured: ~0.3 ms). */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    /* The thread needs little stack (pid 1 gets its own); a small one is quicker to set up. */
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int here = sched_getcpu();
    if (here >= 0 && sched_getaffinity(0, sizeof s->cpus, &s->cpus) == 0 && CPU_COUNT(&s->cpus) > 1) {
        cpu_set_t others = s->cpus;
        CPU_CLR(here, &others);
        if (CPU_COUNT(&others) > 0 && pthread_attr_setaffinity_np(&attr, sizeof others, &others) == 0)
            s->pinned = 1;
    }
    /* The thread starts with every signal blocked, and so does pid 1 (it inherits the mask):
     * a signal for cell must reach the main thread's signalfd, and a handler of the supervisor
     * must never run on pid 1's stack. */
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    int rc = pthread_create(&s->thread, &attr, spawner_main, s);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        errno = rc;
        goto fail;
    }
    return s;
fail:;
    int err = errno;
    for (int i = 0; i < 2; i++) {
        if (s->fence[i] >= 0)
            close(s->fence[i]);
        if (s->end[i] >= 0)
            close(s->end[i]);
    }
    free(s);
    errno = err;
    return NULL;
}

void cell_spawn_release(struct cell_spawner *s, int complete) {
    __atomic_store_n(&s->released, complete ? 1 : -1, __ATOMIC_RELEASE);
    syscall(SYS_futex, &s->released, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

int cell_spawn_wait(struct cell_spawner *s, struct cell_spawn_result *result) {
    /* The fence closes when pid 1 has executed cell-init or died (or, on a failure before that,
     * when the spawner gives up); one wake-up, ours, rather than the spawner's and then ours. */
    (void)read_byte(s->fence[0]);
    *result = s->result;
    /* pid 1 sent the listener before it executed cell-init; if it failed earlier there is
     * none, and its report says why. */
    if (s->listener_r >= 0) {
        result->listener_fd = receive_fd(s->listener_r);
        close(s->listener_r);
        s->listener_r = -1;
    }
    return s->rc;
}

void cell_spawn_end(struct cell_spawner *s) {
    /* Detached, not joined: joining meant waking the thread on the other CPU and waiting for
     * it (~0.1 ms at the end of every launch). After the close, `s` is the thread's to free. */
    pthread_t thread = s->thread;
    pthread_detach(thread);
    close(s->end[1]);
}

/* ------------------------------------------------------------------------ the cell-init memfd */

int cell_sealed_copy(const char *path, const char *name) {
    int src = open(path, O_RDONLY | O_CLOEXEC);
    if (src < 0)
        return -1;
    struct stat st;
    if (fstat(src, &st) != 0) {
        int e = errno;
        close(src);
        errno = e;
        return -1;
    }
    /* MFD_EXEC states the intent on kernels that restrict executable memfds (vm.memfd_noexec);
     * older kernels reject the flag, and there every memfd is executable. */
    int fd = (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (fd < 0 && errno == EINVAL)
        fd = (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        int e = errno;
        close(src);
        errno = e;
        return -1;
    }
    off_t left = st.st_size;
    while (left > 0) {
        ssize_t n = sendfile(fd, src, NULL, (size_t)left);
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            close(src);
            close(fd);
            errno = e;
            return -1;
        }
        left -= n;
    }
    close(src);
    /* Execute-only: a process that executes a file it may not read is not dumpable from its
     * exec on, so nothing in the sandbox can ptrace cell-init even before its own prctl. */
    if (fchmod(fd, 0111) != 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int cell_memfd(const char *name) {
    return (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC);
}

int cell_memfd_for_log(void) {
    return (int)syscall(SYS_memfd_create, "cell-helper-log", MFD_CLOEXEC);
}

int cell_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}
