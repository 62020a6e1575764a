/*
 * relay.c — a connection's bytes, carried by the kernel: splice() from one socket into a pipe
 * and from the pipe into the other, so no byte is copied through the proxy's memory. Blocking
 * sockets, one thread per connection (cell-proxy), poll() for whichever side has data.
 */
#include "cell_proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

/* Moves what is readable on `from` (at most the pipe's size) to `to` through `pipe`. Returns
 * the bytes moved, 0 at end of file, or -errno. */
static long long move_once(int from, int to, const int pipe[2]) {
    ssize_t n = splice(from, NULL, pipe[1], NULL, 1 << 20, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0)
        return errno == EAGAIN ? 1LL << 62 : -errno; /* nothing after all: not an end */
    for (ssize_t left = n; left > 0;) {
        ssize_t m = splice(pipe[0], NULL, to, NULL, (size_t)left, SPLICE_F_MOVE);
        if (m < 0 && errno == EINTR)
            continue;
        if (m <= 0)
            return m < 0 ? -errno : -EPIPE;
        left -= m;
    }
    return n;
}

int cell_relay(int client, int upstream, uint64_t *out, uint64_t *in) {
    int up[2], down[2];
    if (pipe2(up, O_CLOEXEC) != 0)
        return -errno;
    if (pipe2(down, O_CLOEXEC) != 0) {
        int e = errno;
        close(up[0]);
        close(up[1]);
        return -e;
    }
    fcntl(up[1], F_SETPIPE_SZ, 1 << 20);
    fcntl(down[1], F_SETPIPE_SZ, 1 << 20);
    struct pollfd fds[2] = {{.fd = client, .events = POLLIN}, {.fd = upstream, .events = POLLIN}};
    int result = 0;
    while ((fds[0].fd >= 0 || fds[1].fd >= 0) && result == 0) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            result = -errno;
            break;
        }
        for (int i = 0; i < 2 && result == 0; i++) {
            if (fds[i].fd < 0 || fds[i].revents == 0)
                continue;
            int from = i == 0 ? client : upstream, to = i == 0 ? upstream : client;
            long long n = move_once(from, to, i == 0 ? up : down);
            if (n == 1LL << 62)
                continue;
            if (n < 0) {
                result = (int)n;
            } else if (n == 0) {
                fds[i].fd = -1; /* this direction is over: say so to the other side */
                shutdown(to, SHUT_WR);
            } else {
                *(i == 0 ? out : in) += (uint64_t)n;
            }
        }
    }
    close(up[0]);
    close(up[1]);
    close(down[0]);
    close(down[1]);
    return result;
}
