/*
 * lockdown.c — what pid 1 gives up before the command exists: resources beyond the limits,
 * capabilities, the means to regain privileges on exec, and system calls (seccomp).
 *
 * setup.c calls these in that order, and each depends on the one before: the limits and the
 * bounding set need capabilities that the final capset removes; seccomp needs no_new_privs
 * once the capabilities are gone.
 */
#include "cell_init.h"

#include <errno.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* Soft and hard limits exactly as planned: a hard limit cannot be raised again without
 * CAP_SYS_RESOURCE, which the lock-down removes. RLIMIT_NPROC here counts per (user namespace,
 * uid): a fork-bomb guard for this sandbox alone. */
void set_rlimits(const struct plan *p) {
    for (size_t i = 0; i < p->rlimit_count; i++) {
        const struct plan_rlimit *r = &p->rlimits[i];
        struct rlimit lim = {(rlim_t)r->soft, (rlim_t)r->hard};
        if (prlimit(0, (int)r->resource, &lim, NULL) != 0)
            fail(CELL_STEP_RLIMIT, errno, (int)r->resource);
    }
}

static int capset_sets(uint64_t effective, uint64_t permitted, uint64_t inheritable) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {
        {(uint32_t)effective, (uint32_t)permitted, (uint32_t)inheritable},
        {(uint32_t)(effective >> 32), (uint32_t)(permitted >> 32), (uint32_t)(inheritable >> 32)},
    };
    return (int)syscall(SYS_capset, &header, data);
}

/*
 * Leaves exactly the kept capabilities (p->caps), for pid 1 and for everything it executes.
 * pid 1 arrives either as uid 0 of the user namespace (every capability) or as another uid
 * holding every capability through the ambient set; the same steps serve both, because after
 * step 3 nothing depends on the uid any more. The order is forced:
 *   1. the bounding set, one capability at a time (needs CAP_SETPCAP): what no exec can give;
 *   2. the ambient set cleared, then refilled with the kept capabilities only (they must be
 *      permitted and inheritable first): with NOROOT, ambient is the only way a capability
 *      survives execve, for uid 0 as for any other uid;
 *   3. securebits, all locked (needs CAP_SETPCAP): NOROOT (uid 0 gets nothing from exec),
 *      NO_SETUID_FIXUP (uid changes neither grant nor shed capabilities behind our back),
 *      KEEP_CAPS_LOCKED (off, for good), NO_CAP_AMBIENT_RAISE (ambient cannot be refilled:
 *      hence after step 2);
 *   4. capset to exactly the kept set, which removes CAP_SETPCAP unless it is kept.
 * The permitted set only ever shrinks here: a credential change that grew it would make the
 * kernel reset PR_SET_PDEATHSIG (the trampoline's tie to the supervisor) and dumpability.
 */
void drop_capabilities(const struct plan *p) {
    uint64_t keep = p->caps;

    /* Without a user namespace (--isolation landlock) an unprivileged pid 1 has no capability to
     * drop, and could not touch the bounding set or the securebits anyway (CAP_SETPCAP):
     * no_new_privs, next, keeps every exec from granting one. */
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct now[2];
    if (syscall(SYS_capget, &header, now) != 0)
        fail(CELL_STEP_CAPSET, errno, 0);
    if ((now[0].permitted | now[1].permitted | now[0].inheritable | now[1].inheritable) == 0 && keep == 0)
        return;

    /* Every capability this kernel knows: both calls fail with EINVAL past the last one. */
    int last_cap = -1;
    for (int cap = 0; cap < 64; cap++) {
        if (keep & (1ULL << cap)) {
            if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0)
                break;
        } else if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            if (errno == EINVAL)
                break;
            fail(CELL_STEP_CAP_BOUNDING, errno, cap);
        }
        last_cap = cap;
    }
    /* A kept capability this kernel does not have is a planner error, not something to skip. */
    if (last_cap < 63 && (keep >> (last_cap + 1)) != 0)
        fail(CELL_STEP_CAP_BOUNDING, EINVAL, last_cap + 1);

    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
        fail(CELL_STEP_CAP_AMBIENT, errno, 0);
    if (keep != 0) {
        /* CAP_SETPCAP stays effective until step 3 has used it. */
        uint64_t with_setpcap = keep | (1ULL << CAP_SETPCAP);
        if (capset_sets(with_setpcap, with_setpcap, keep) != 0)
            fail(CELL_STEP_CAPSET, errno, 0);
        for (int cap = 0; cap <= last_cap; cap++) {
            if ((keep & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0)
                fail(CELL_STEP_CAP_AMBIENT, errno, cap);
        }
    }

    /* Added to whatever the trampoline locked (a locked bit cannot be cleared: replacing the
     * value would fail with EPERM, and every securebit only ever restricts). */
    int current = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
    if (current < 0)
        fail(CELL_STEP_SECUREBITS, errno, 0);
    unsigned long bits = (unsigned long)current | SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                         SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
                         SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    bits &= ~(unsigned long)SECBIT_KEEP_CAPS; /* cleared by every execve anyway; locked off here */
    if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) != 0)
        fail(CELL_STEP_SECUREBITS, errno, 0);

    if (capset_sets(keep, keep, keep) != 0)
        fail(CELL_STEP_CAPSET, errno, 0);
}

/* Before seccomp: it is what lets a process without CAP_SYS_ADMIN load a filter, and it keeps
 * every later execve (setuid bits, file capabilities) from granting anything. */
void set_no_new_privs(void) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        fail(CELL_STEP_NO_NEW_PRIVS, errno, 0);
}

/*
 * The filters, in record order: each one applies to every call after it, this process'
 * included, so this is the last setup step that needs more than reading, writing and spawning.
 *
 * For the listener's filter: between loading it and handing the listener over, the only call
 * is sendmsg, which the supervisor's policy compiler guarantees is not a notified call —
 * nobody could answer it yet, and pid 1 would wait forever. From then on the supervisor holds
 * the listener and answers. If the hand-over fails, pid 1 closes its copy before reporting: a
 * filter whose listener is gone fails notified calls with ENOSYS instead of blocking them, so
 * the report's write cannot hang.
 */
void load_filters(const struct plan *p) {
    for (size_t i = 0; i < p->filter_count; i++) {
        const struct plan_filter *f = &p->filters[i];
        struct sock_fprog prog;
        memset(&prog, 0, sizeof prog);
        /* plan.c bounds the length to BPF_MAXINSNS instructions: it fits `len`. */
        prog.len = (unsigned short)(f->len / sizeof(struct sock_filter));
        prog.filter = (struct sock_filter *)(uintptr_t)f->bpf;
        unsigned int flags = f->listener ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0;
        long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
        if (fd < 0)
            fail(CELL_STEP_SECCOMP, errno, (int)i);
        if (!f->listener)
            continue;
        if (send_up('L', (int)fd) != 0) {
            int err = errno;
            close((int)fd);
            fail(CELL_STEP_SECCOMP_LISTENER, err, (int)i);
        }
        /* The supervisor has its own copy now; pid 1's would keep the listener alive. */
        close((int)fd);
    }
}
