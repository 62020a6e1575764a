/*
 * process.c — the processes cell-runtime's `exec` asks for in a running container
 * (CELL_REC_TAKE_PROCESSES; the protocol is in cell_plan.h).
 *
 * pid 1 starts them, rather than a process that enters the container from outside (runc's and
 * crun's way), because pid 1 already is everything the command is: in its namespaces and root,
 * with its ids, its capabilities, no_new_privs, its rlimits, its Landlock domain and its seccomp
 * filters, which notify the same supervisor and so the same audit log. A child inherits all of
 * it through the spawn. A process entering from outside would have to apply each layer again,
 * in the same order, and a layer it missed would be a way out; here there is none to apply. A
 * request says only what the process is: its arguments, environment and working directory, and
 * its descriptors or its pty.
 *
 * pid 1 runs under the filters here: it uses no memory it did not have (a request is read into
 * a static buffer), and only calls the supervisor's policy check guarantees it (recvmsg and
 * ppoll besides the command's; SeccompCompiler.processCalls). A pty's open and ioctls are not
 * guaranteed: a policy that refuses them fails that request, not pid 1.
 */
#include "cell_init.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Processes started and not yet reaped, with the number of the request that asked for each:
 * only these may be signalled on request, and only their ends are reported. */
#define MAX_PROCESSES 64
static struct {
    pid_t pid; /* 0: a free slot */
    uint32_t request;
} started[MAX_PROCESSES];
/* The requests taken so far ('X'), counted as the supervisor counts those it sends. */
static uint32_t requests;

/* One request's records, and the pointers into them. Static: pid 1 makes no allocation under
 * its filters. A request larger than the buffer is refused. */
#define REQUEST_BYTES (1u << 20)
#define REQUEST_ENTRIES 4096
static char request_bytes[REQUEST_BYTES];
static char *request_argv[REQUEST_ENTRIES + 1], *request_envp[REQUEST_ENTRIES + 1];

/* The signal mask ppoll waits with: the forwarded signals and SIGCHLD delivered; SIGCHLD is
 * blocked everywhere else, so a child that ends between waitpid and ppoll still wakes it. */
static sigset_t waiting_mask;

static void child_ended(int sig) {
    (void)sig; /* only to interrupt ppoll */
}

void begin_taking_processes(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = child_ended;
    sigfillset(&sa.sa_mask);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &chld, &waiting_mask) != 0 || sigaction(SIGCHLD, &sa, NULL) != 0)
        fail(CELL_STEP_PROCESS, errno, 0);
    sigdelset(&waiting_mask, SIGCHLD);
    /* 'R': the supervisor may send requests from now on (never before: cell_plan.h). */
    ssize_t n;
    do
        n = send(CELL_FD_CONTROL, "R", 1, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        fail(CELL_STEP_PROCESS, n < 0 ? errno : EIO, 0);
}

/* Exactly `len` bytes off the control socket; end of file or an error ends pid 1 (the
 * supervisor is gone, or the stream is out of step: nothing after it could be trusted). */
static void read_exact(void *buf, size_t len) {
    char *at = buf;
    while (len > 0) {
        ssize_t n = read(CELL_FD_CONTROL, at, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail(CELL_STEP_PROCESS, n == 0 ? EPIPE : errno, 0);
        at += n;
        len -= (size_t)n;
    }
}

/* The request's records, up to END_PROCESS, into request_bytes; their total length, or 0 when
 * they do not fit (the rest is read and dropped, so the stream stays in step). */
static size_t read_records(void) {
    size_t used = 0;
    int overflow = 0;
    for (;;) {
        unsigned char header[8];
        read_exact(header, sizeof header);
        uint32_t type = plan_le32(header), len = plan_le32(header + 4);
        if (len > CELL_PLAN_MAX_RECORD)
            fail(CELL_STEP_PROCESS, E2BIG, 0);
        if (!overflow && used + sizeof header + len <= REQUEST_BYTES) {
            memcpy(request_bytes + used, header, sizeof header);
            read_exact(request_bytes + used + sizeof header, len);
            used += sizeof header + len;
        } else {
            overflow = 1;
            char sink[512];
            for (uint32_t left = len; left > 0;) {
                uint32_t part = left < sizeof sink ? left : (uint32_t)sizeof sink;
                read_exact(sink, part);
                left -= part;
            }
        }
        if (type == CELL_REC_END_PROCESS)
            return overflow ? 0 : used;
    }
}

static void refuse(int step, int error) {
    report(CELL_REPORT_PROCESS_FAILED, step, error, 0);
}

/* 'X': a process to start, with the descriptors that came with the byte. */
static void start_process(const int *fds, int nfds) {
    size_t len = read_records();
    struct process_request r = {0, 0, NULL, request_argv, request_envp};
    int slot = -1;
    requests++;
    for (int i = 0; i < MAX_PROCESSES && slot < 0; i++)
        if (started[i].pid == 0)
            slot = i;
    /* Three descriptors for 0-2, or none with a pty: anything else is not a request cell made. */
    if (len == 0 || decode_process_request(request_bytes, len, &r, REQUEST_ENTRIES) != 0 ||
        nfds != (r.rows ? 0 : 3)) {
        refuse(CELL_STEP_PROCESS, EINVAL);
        return;
    }
    if (slot < 0) {
        refuse(CELL_STEP_PROCESS, EAGAIN);
        return;
    }
    struct spawn_how how = {r.cwd, NULL, 0, r.rows ? NULL : fds};
    char tty[32];
    if (r.rows) {
        int master = make_pty(r.rows, r.cols, tty);
        if (master < 0) {
            refuse(CELL_STEP_PROCESS, errno);
            return;
        }
        int sent = send_up('T', master);
        int err = errno;
        close(master);
        if (sent != 0)
            fail(CELL_STEP_PROCESS, err, 0); /* the supervisor is gone */
        how.tty = tty;
        how.tty_std = 7;
    }
    pid_t pid = -1;
    int err = spawn_process(&pid, r.argv, r.envp, &how);
    if (err != 0) {
        refuse(CELL_STEP_EXEC_COMMAND, err);
        return;
    }
    started[slot].pid = pid;
    started[slot].request = requests;
    report(CELL_REPORT_PROCESS_STARTED, CELL_STEP_NONE, 0, pid);
}

/* 'K': a signal for the process of a request, if this pid 1 started it and has not reaped it:
 * its pid is then still that process's. */
static void signal_process(void) {
    unsigned char record[16];
    read_exact(record, sizeof record);
    if (plan_le32(record) != CELL_REC_SIGNAL_PROCESS || plan_le32(record + 4) != 8)
        fail(CELL_STEP_PROCESS, EINVAL, 0);
    uint32_t request = plan_le32(record + 8), sig = plan_le32(record + 12);
    for (int i = 0; i < MAX_PROCESSES; i++)
        if (started[i].pid > 0 && started[i].request == request && sig >= 1 && sig < NSIG)
            kill(started[i].pid, (int)sig);
}

/* One request off the control socket: the byte (with any descriptors), then its records. */
static void take_request(void) {
    char byte;
    struct iovec iov = {&byte, 1};
    union {
        char buf[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ssize_t n;
    do
        n = recvmsg(CELL_FD_CONTROL, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        fail(CELL_STEP_PROCESS, n == 0 ? EPIPE : errno, 0); /* the supervisor is gone */
    int fds[3] = {-1, -1, -1}, nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (nfds < 3)
                fds[nfds] = fd;
            else
                close(fd);
            nfds++;
        }
    }
    if (msg.msg_flags & MSG_CTRUNC)
        nfds = -1; /* more than three: refused below */
    if (byte == 'X')
        start_process(fds, nfds);
    else if (byte == 'K' && nfds == 0)
        signal_process();
    else
        fail(CELL_STEP_PROCESS, EINVAL, 0); /* not a request cell makes: out of step */
    /* pid 1 keeps none of them: the process has its own copies. */
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

pid_t wait_or_take_request(int *status) {
    for (;;) {
        pid_t done = waitpid(-1, status, WNOHANG);
        if (done != 0)
            return done;
        struct pollfd control = {CELL_FD_CONTROL, POLLIN, 0};
        int n = ppoll(&control, 1, NULL, &waiting_mask);
        if (n < 0 && errno != EINTR)
            return -1;
        if (n > 0)
            take_request(); /* end of file too: it ends pid 1 */
    }
}

void process_ended(pid_t pid, int status) {
    for (int i = 0; i < MAX_PROCESSES; i++) {
        if (started[i].pid == pid) {
            started[i].pid = 0;
            report(CELL_REPORT_PROCESS_EXITED, (int)pid, 0, status);
        }
    }
}
