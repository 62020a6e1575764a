/*
 * notify.c — the supervisor's side of seccomp user notification (the audit path). Runs in the
 * supervisor, an ordinary process: malloc and libc are fine here.
 */
#include "cell_notify.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* The kernel may use larger structures than this header's: ask once, allocate to fit. */
static size_t notif_size, resp_size;

static int sizes(void) {
    if (notif_size)
        return 0;
    struct seccomp_notif_sizes s;
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &s) != 0)
        return -1;
    notif_size = s.seccomp_notif > sizeof(struct seccomp_notif) ? s.seccomp_notif : sizeof(struct seccomp_notif);
    resp_size = s.seccomp_notif_resp > sizeof(struct seccomp_notif_resp) ? s.seccomp_notif_resp
                                                                          : sizeof(struct seccomp_notif_resp);
    return 0;
}

int cell_notify_receive(int listener, struct cell_notification *out) {
    if (sizes() != 0)
        return -1;
    struct seccomp_notif *req = calloc(1, notif_size);
    if (!req) {
        errno = ENOMEM;
        return -1;
    }
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, req) != 0) {
        int e = errno;
        free(req);
        errno = e;
        return -1;
    }
    out->id = req->id;
    out->pid = req->pid;
    out->nr = req->data.nr;
    out->arch = req->data.arch;
    out->instruction_pointer = req->data.instruction_pointer;
    for (int i = 0; i < 6; i++)
        out->args[i] = req->data.args[i];
    free(req);
    return 0;
}

int cell_notify_respond(int listener, uint64_t id, int error, int continue_call) {
    if (sizes() != 0)
        return -1;
    struct seccomp_notif_resp *resp = calloc(1, resp_size);
    if (!resp) {
        errno = ENOMEM;
        return -1;
    }
    resp->id = id;
    if (continue_call) {
        resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    } else {
        resp->error = -error;
    }
    int rc = ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp);
    int e = errno;
    free(resp);
    errno = e;
    return rc;
}

int cell_notify_id_valid(int listener, uint64_t id) {
    return ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

long cell_read_string(pid_t pid, uint64_t address, char *buffer, size_t size, int *terminated) {
    *terminated = 0;
    if (size == 0 || address == 0) {
        errno = EFAULT;
        return -1;
    }
    /* Read page by page: a string near the end of a mapping must not fail because the bytes
     * after it are unmapped. */
    size_t got = 0;
    while (got < size - 1) {
        uint64_t at = address + got;
        size_t chunk = 4096 - (size_t)(at % 4096);
        if (chunk > size - 1 - got)
            chunk = size - 1 - got;
        struct iovec local = {buffer + got, chunk};
        struct iovec remote = {(void *)(uintptr_t)at, chunk};
        ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (n <= 0) {
            if (got == 0)
                return -1;
            break;
        }
        void *nul = memchr(buffer + got, 0, (size_t)n);
        if (nul) {
            *terminated = 1;
            return (long)((char *)nul - buffer);
        }
        got += (size_t)n;
    }
    buffer[got] = 0;
    return (long)got;
}

long cell_read_memory(pid_t pid, uint64_t address, void *buffer, size_t size) {
    struct iovec local = {buffer, size};
    struct iovec remote = {(void *)(uintptr_t)address, size};
    return (long)process_vm_readv(pid, &local, 1, &remote, 1, 0);
}

int cell_exists_in_root(int root, const char *path) {
    /* RESOLVE_IN_ROOT: "..", absolute symlinks and the path itself stay inside `root`, as for
     * the sandbox's processes; no magic link (/proc/self/...) leads out of it. */
    struct open_how how = {
        .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    int fd = (int)syscall(SYS_openat2, root, path, &how, sizeof how);
    if (fd >= 0) {
        close(fd);
        return 1;
    }
    return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
}

int cell_exists_on_host(const char *path) {
    struct stat st;
    return fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT) == 0;
}

int cell_open_root(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/root", (int)pid);
    return open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
}
