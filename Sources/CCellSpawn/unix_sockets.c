/*
 * unix_sockets.c — cell-runtime's unix sockets: the one `exec` connects to in a container's
 * state directory, an engine's console socket, and descriptors passed over them (SCM_RIGHTS).
 * Ordinary supervisor code: libc is fine here.
 *
 * A socket's path may be longer than sun_path's 108 bytes (an engine's state directories, a
 * 64-digit container id): it is reached through its directory, opened first, as
 * /proc/self/fd/N/NAME, which the kernel resolves like any path.
 */
#include "cell_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* The address of `path`, through its directory when it is too long; *dir is that directory's
 * descriptor (the caller closes it) or -1. -1 with errno if the path cannot be reached. */
static int address_of(const char *path, struct sockaddr_un *addr, int *dir) {
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    *dir = -1;
    size_t len = strlen(path);
    if (len < sizeof addr->sun_path) {
        memcpy(addr->sun_path, path, len + 1);
        return 0;
    }
    const char *slash = strrchr(path, '/');
    if (!slash || strlen(slash + 1) + 32 >= sizeof addr->sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char parent[4096];
    size_t parent_len = (size_t)(slash - path);
    if (parent_len >= sizeof parent) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(parent, path, parent_len);
    parent[parent_len == 0 ? 1 : parent_len] = '\0';
    if (parent_len == 0)
        parent[0] = '/';
    *dir = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (*dir < 0)
        return -1;
    char digits[16];
    int n = 0;
    for (int v = *dir; n == 0 || v > 0; v /= 10)
        digits[n++] = (char)('0' + v % 10);
    char *at = addr->sun_path;
    memcpy(at, "/proc/self/fd/", 14);
    at += 14;
    while (n > 0)
        *at++ = digits[--n];
    *at++ = '/';
    memcpy(at, slash + 1, strlen(slash + 1) + 1);
    return 0;
}

/* The socket `fd` once `ok`, else -1 with the failing call's errno; closes the directory
 * address_of opened, and `fd` on failure. */
static int settle(int fd, int ok, int dir) {
    int err = errno;
    if (dir >= 0)
        close(dir);
    if (ok)
        return fd;
    if (fd >= 0)
        close(fd);
    errno = err;
    return -1;
}

int cell_unix_listen(const char *path) {
    struct sockaddr_un addr;
    int dir;
    if (address_of(path, &addr, &dir) != 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(fd, 16) == 0;
    return settle(fd, ok, dir);
}

int cell_unix_connect(const char *path) {
    struct sockaddr_un addr;
    int dir;
    if (address_of(path, &addr, &dir) != 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ok = fd >= 0;
    while (ok && connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        if (errno != EINTR)
            ok = 0;
    }
    return settle(fd, ok, dir);
}

int cell_send_with_descriptors(int sock, const void *bytes, size_t len, const int *fds, int count) {
    if (count < 0 || count > CELL_MAX_PASSED) {
        errno = EINVAL;
        return -1;
    }
    struct iovec iov = {(void *)bytes, len};
    union {
        char buf[CMSG_SPACE(CELL_MAX_PASSED * sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (count > 0) {
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE((size_t)count * sizeof(int));
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN((size_t)count * sizeof(int));
        memcpy(CMSG_DATA(cmsg), fds, (size_t)count * sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n >= 0 && (size_t)n != len) {
        errno = EIO;
        return -1;
    }
    return n < 0 ? -1 : 0;
}

int cell_receive_with_descriptors(int sock, int fds[CELL_MAX_PASSED], int *count) {
    char byte;
    struct iovec iov = {&byte, 1};
    union {
        char buf[CMSG_SPACE(CELL_MAX_PASSED * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    *count = 0;
    ssize_t n;
    do
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -2;
    if (n == 0)
        return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (*count < CELL_MAX_PASSED)
                fds[(*count)++] = fd;
            else
                close(fd);
        }
    }
    /* More than the room for: none of them is used (the sender is not cell). */
    if (msg.msg_flags & MSG_CTRUNC) {
        for (int i = 0; i < *count; i++)
            close(fds[i]);
        *count = 0;
        errno = EPROTO;
        return -2;
    }
    return (unsigned char)byte;
}

int cell_unix_accept(int listener) {
    return accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
}

pid_t cell_peer_pid(int sock) {
    struct ucred peer;
    socklen_t len = sizeof peer;
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0)
        return -1;
    return peer.pid;
}

int cell_is_directory_or_path(int fd) {
    struct stat st;
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 || (flags & O_PATH) || fstat(fd, &st) != 0 || S_ISDIR(st.st_mode);
}

int cell_is_terminal(int fd) {
    return isatty(fd);
}
