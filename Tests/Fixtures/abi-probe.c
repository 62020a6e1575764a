/* abi-probe: makes mount(2) through another ABI than the native x86_64 one, to show that a
 * denied call cannot be smuggled past the seccomp filter under a different syscall number.
 *   abi-probe x32    mount through the x32 numbering (nr | 0x40000000)
 *   abi-probe i386   mount through the i386 entry point (int 0x80, nr 21)
 *   abi-probe native mount through the normal entry point
 * Prints "returned N errno E" when the call returns at all (outside a sandbox: an error such as
 * EFAULT or ENOSYS, never a kill). Inside cell the process is killed by SIGSYS instead. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    long rc;
    int err = 0;
    fflush(stdout);
    if (strcmp(argv[1], "x32") == 0) {
        rc = syscall(0x40000000L | SYS_mount, 1L, 1L, 1L, 0L, 0L);
        err = errno;
    } else if (strcmp(argv[1], "i386") == 0) {
#if defined(__x86_64__)
        long nr = 21; /* i386 mount */
        __asm__ volatile("int $0x80" : "=a"(rc) : "a"(nr), "b"(1L), "c"(1L), "d"(1L), "S"(0L), "D"(0L) : "memory");
        if (rc < 0) {
            err = (int)-rc;
            rc = -1;
        }
#else
        return 3;
#endif
    } else {
        rc = syscall(SYS_mount, 1L, 1L, 1L, 0L, 0L);
        err = errno;
    }
    printf("returned %ld errno %s\n", rc, rc < 0 ? strerrorname_np(err) : "none");
    return 0;
}
