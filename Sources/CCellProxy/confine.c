/*
 * confine.c — cell-proxy's own wall, raised at its start before it reads a byte from the
 * sandbox (Sources/cell-proxy/main.swift).
 *
 * The proxy parses what the sandbox sends, so a bug in it must not become the user's whole
 * account: no_new_privs, no core dump or ptrace by the user's other processes (not dumpable),
 * and a Landlock domain where the kernel has one. The domain lets it read what the system's
 * resolver needs (configuration, NSS modules) and nothing else of the filesystem, connect by TCP
 * only to the allow-list's ports (ABI 4), bind nothing, and neither signal nor reach abstract
 * unix sockets outside itself (ABI 6). Best effort, as cell's own second wall: a kernel without
 * Landlock leaves the rest.
 */
#include "cell_proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ABI 4's TCP port rule, which Debian 12's kernel headers (6.1) do not have yet. */
struct net_port_attr {
    uint64_t allowed_access;
    uint64_t port;
} __attribute__((packed));
#define RULE_NET_PORT 2

struct ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

int cell_confine_proxy(const char *const *read_paths, int path_count, const uint16_t *ports, int port_count) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return -errno;
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 1)
        return 0;
    /* Every filesystem right of this ABI: execute ... make_sym (1), refer (2), truncate (3),
     * ioctl_dev (5). Network rights from ABI 4, scoping from ABI 6. */
    struct ruleset_attr attr = {
        .handled_access_fs = ((1ULL << 13) - 1) | (abi >= 2 ? 1ULL << 13 : 0) | (abi >= 3 ? 1ULL << 14 : 0) |
                             (abi >= 5 ? 1ULL << 15 : 0),
        .handled_access_net = abi >= 4 ? (1ULL << 0) | (1ULL << 1) : 0, /* bind_tcp, connect_tcp */
        .scoped = abi >= 6 ? (1ULL << 0) | (1ULL << 1) : 0,             /* abstract unix sockets, signals */
    };
    size_t size = abi >= 6 ? sizeof attr : abi >= 4 ? 2 * sizeof(uint64_t) : sizeof(uint64_t);
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (ruleset < 0)
        return -errno;
    int result = 0;
    for (int i = 0; i < path_count && result == 0; i++) {
        int fd = open(read_paths[i], O_PATH | O_CLOEXEC);
        if (fd < 0)
            continue; /* not on this system: nothing to allow */
        struct stat st;
        struct landlock_path_beneath_attr rule = {
            /* A file takes only file rights (a directory right on it is EINVAL). */
            .allowed_access = LANDLOCK_ACCESS_FS_READ_FILE |
                              (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) ? LANDLOCK_ACCESS_FS_READ_DIR : 0),
            .parent_fd = fd,
        };
        if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) != 0)
            result = -errno;
        close(fd);
    }
    for (int i = 0; i < port_count && result == 0 && abi >= 4; i++) {
        struct net_port_attr rule = {.allowed_access = 1ULL << 1 /* connect_tcp */, .port = ports[i]};
        if (syscall(SYS_landlock_add_rule, ruleset, RULE_NET_PORT, &rule, 0) != 0)
            result = -errno;
    }
    if (result == 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) != 0)
        result = -errno;
    close(ruleset);
    return result;
}
