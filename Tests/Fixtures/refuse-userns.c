/*
 * refuse-userns MODE COMMAND [ARG...] — runs COMMAND the way a host that refuses unprivileged
 * user namespaces would, for cell's tests (LandlockIsolationTests):
 *   docker    a seccomp filter as Docker's default profile has it: clone and unshare with
 *             CLONE_NEWUSER fail with EPERM, clone3 with ENOSYS;
 *   apparmor  what Ubuntu's AppArmor restriction leaves: the user namespace is made, but every
 *             mount call in it fails with EPERM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NR offsetof(struct seccomp_data, nr)
#define ARG0 offsetof(struct seccomp_data, args[0])
#define DENY(e) BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (e))
#define ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: refuse-userns docker|apparmor COMMAND [ARG...]\n");
        return 2;
    }
    struct sock_filter docker[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, NR),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1),
        DENY(ENOSYS),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_unshare, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG0),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_NEWUSER, 0, 1),
        DENY(EPERM),
        ALLOW,
    };
    struct sock_filter apparmor[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, NR),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mount, 6, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mount_setattr, 5, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_open_tree, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_move_mount, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_fsopen, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pivot_root, 1, 0),
        ALLOW,
        DENY(EPERM),
    };
    int is_docker = strcmp(argv[1], "docker") == 0;
    if (!is_docker && strcmp(argv[1], "apparmor") != 0) {
        fprintf(stderr, "refuse-userns: unknown mode %s\n", argv[1]);
        return 2;
    }
    struct sock_fprog prog = is_docker ? (struct sock_fprog){sizeof docker / sizeof docker[0], docker}
                                       : (struct sock_fprog){sizeof apparmor / sizeof apparmor[0], apparmor};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
        perror("refuse-userns: seccomp");
        return 1;
    }
    execvp(argv[2], argv + 2);
    perror("refuse-userns: exec");
    return 127;
}
