/*
 * descriptors.c — descriptors the supervisor makes for a launch: the sealed copy of cell-init,
 * memfds, close-on-exec pipes and sockets, and the one descriptor pid 1 sends back (the seccomp
 * listener). Ordinary supervisor code: libc is fine here.
 */
#include "cell_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

static int fail_closing(int a, int b) {
    int e = errno;
    if (a >= 0)
        close(a);
    if (b >= 0)
        close(b);
    errno = e;
    return -1;
}

int cell_sealed_copy(const char *path, const char *name) {
    int src = open(path, O_RDONLY | O_CLOEXEC);
    if (src < 0)
        return -1;
    struct stat st;
    if (fstat(src, &st) != 0)
        return fail_closing(src, -1);
    /* MFD_EXEC states the intent on kernels that restrict executable memfds (vm.memfd_noexec);
     * older kernels reject the flag, and there every memfd is executable. */
    int fd = (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (fd < 0 && errno == EINVAL)
        fd = (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return fail_closing(src, -1);
    for (off_t left = st.st_size; left > 0;) {
        ssize_t n = sendfile(fd, src, NULL, (size_t)left);
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return fail_closing(src, fd);
        }
        left -= n;
    }
    close(src);
    if (fchmod(fd, 0111) != 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0)
        return fail_closing(fd, -1);
    return fd;
}

int cell_memfd(const char *name) {
    return (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC);
}

int cell_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int cell_socketpair_cloexec(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
}

int cell_receive_byte(int sock, int *fd) {
    int fds[CELL_MAX_PASSED], count = 0;
    int byte = cell_receive_with_descriptors(sock, fds, &count);
    *fd = count > 0 ? fds[0] : -1;
    /* More than one: not a message pid 1 sends; the first stands for them all. */
    for (int i = 1; i < count; i++)
        close(fds[i]);
    return byte;
}

int cell_open_directory_beneath(int root, const char *path) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, root, path, &how, sizeof how);
}

int cell_landlock_abi(void) {
    /* landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) */
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, 1U << 0);
    return abi > 0 ? (int)abi : 0;
}

int cell_become_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

int cell_cloexec_inherited(void) {
    return (int)syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
}
