/*
 * plan_read.c — framing the plan's records off the control socket, for plan_decode() (plan.c).
 */
#include "cell_init.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* What arrived on the control socket and is not decoded yet: the plan comes in large writes,
 * and reading it a record header at a time cost two system calls per record. */
static struct {
    unsigned char bytes[64 * 1024];
    size_t start, end;
} incoming;

void plan_read_reset(void) {
    incoming.start = incoming.end = 0;
}

/* Exactly `len` bytes; 0, or -1 with errno (EPIPE: end of file, the supervisor is gone). */
static int read_full(int fd, void *buf, size_t len) {
    unsigned char *at = buf;
    while (len > 0) {
        if (incoming.start == incoming.end) {
            ssize_t n = read(fd, incoming.bytes, sizeof incoming.bytes);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                if (n == 0)
                    errno = EPIPE;
                return -1;
            }
            incoming.start = 0;
            incoming.end = (size_t)n;
        }
        size_t take = incoming.end - incoming.start;
        if (take > len)
            take = len;
        memcpy(at, incoming.bytes + incoming.start, take);
        incoming.start += take;
        at += take;
        len -= take;
    }
    return 0;
}

/*
 * Reads one record and decodes it. A failed read (end of file included) is reported at
 * (read_step, read_value); anything wrong with the record itself by plan_decode.
 * read(), not recvmsg(): descriptors someone passes on the socket are discarded by the kernel,
 * never installed in pid 1.
 */
static void read_record(struct plan *p, int fd, int read_step, int read_value) {
    uint32_t index = p->records;
    unsigned char header[8];
    if (read_full(fd, header, sizeof header) != 0)
        fail(read_step, errno, read_value);
    uint32_t type = plan_le32(header), len = plan_le32(header + 4);
    /* Checked before the allocation it sizes. */
    if (len > CELL_PLAN_MAX_RECORD)
        plan_refuse(p, E2BIG, index);
    char *payload = NULL;
    if (len > 0) {
        payload = malloc(len);
        if (!payload)
            plan_refuse(p, ENOMEM, index);
        if (read_full(fd, payload, len) != 0)
            fail(read_step, errno, read_value);
    }
    /* The payload is never freed: the plan keeps pointers into it for pid 1's whole life. */
    plan_decode(p, type, payload, len, index);
}

void plan_read_setup(struct plan *p, int fd) {
    while (p->part == PART_HEADER || p->part == PART_SETUP)
        read_record(p, fd, CELL_STEP_PLAN, (int)p->records);
}

void plan_read_filters(struct plan *p, int fd) {
    while (p->part == PART_FILTERS)
        read_record(p, fd, CELL_STEP_WAIT_FILTERS, (int)p->records);
}

/* Tells the supervisor that everything up to the command's start is done ('H'), then waits for
 * its go-ahead. Only START may come; end of file means the launch was abandoned. */
void plan_hold(struct plan *p, int fd) {
    ssize_t n;
    do {
        /* MSG_NOSIGNAL: a supervisor gone is reported, not a SIGPIPE left pending. */
        n = send(fd, "H", 1, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
        fail(CELL_STEP_HOLD, n < 0 ? errno : EIO, 0);
    while (p->part == PART_HOLD)
        read_record(p, fd, CELL_STEP_HOLD, 0);
}
