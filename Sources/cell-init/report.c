/*
 * report.c — the reports up CELL_FD_REPORT (struct cell_report, cell_plan.h).
 *
 * Descriptors pid 1 makes for the supervisor go up CELL_FD_CONTROL instead (send_up).
 *
 * A report is 16 bytes, less than PIPE_BUF, so one write() puts it in the pipe whole or not at
 * all: the supervisor never reads half a report. When the write fails the supervisor is gone,
 * and there is nobody left to tell.
 */
#include "cell_init.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

void report(int kind, int step, int error, int value) {
    struct cell_report r = {kind, step, error, value};
    ssize_t n;
    do {
        n = write(CELL_FD_REPORT, &r, sizeof r);
    } while (n < 0 && errno == EINTR);
}

void warn_report(int step, int error, int value) {
    report(CELL_REPORT_WARNING, step, error, value);
}

void fail(int step, int error, int value) {
    report(CELL_REPORT_FAILED, step, error, value);
    /* _exit, not exit: nothing registered with atexit or buffered in stdio is ours to run. */
    _exit(CELL_EXIT_SETUP_FAILED);
}

/* Sends one byte up the control socket, carrying `fd` (SCM_RIGHTS): 'L' the seccomp listener,
 * 'T' the pty's master (cell_plan.h). Returns 0, or -1 with errno. */
int send_up(char byte, int fd) {
    struct iovec iov = {&byte, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
    ssize_t n;
    do {
        /* MSG_NOSIGNAL: a supervisor gone is an error here, not a SIGPIPE left pending. */
        n = sendmsg(CELL_FD_CONTROL, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n != 1 && n >= 0)
        errno = EIO;
    return n == 1 ? 0 : -1;
}
