/*
 * terminal.c — a pty on the sandbox's devpts: the command's own terminal (CELL_REC_TERMINAL),
 * and one for each process cell-runtime's exec asks for with a terminal (process.c).
 *
 * The caller's terminal never enters the sandbox (the trampoline put /dev/null where it was):
 * the command gets a pty of the sandbox's own, and the supervisor relays bytes between the
 * caller's terminal and the pty's master (or hands the master to an engine's console socket).
 * pid 1 only makes the pair, sizes it, and sends the master up; it keeps no end of it. The
 * terminal side is opened by path when the process is spawned (init.c), in its new session,
 * which makes it the controlling terminal.
 */
#include "cell_init.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

int make_pty(uint32_t rows, uint32_t cols, char path[32]) {
    /* The sandbox's devpts instance (mounts.c): /dev/ptmx is a link to it. */
    int master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return -1;
    int unlock = 0, number = -1;
    struct winsize size = {(unsigned short)rows, (unsigned short)cols, 0, 0};
    if (ioctl(master, TIOCSPTLCK, &unlock) != 0 || ioctl(master, TIOCGPTN, &number) != 0 ||
        ioctl(master, TIOCSWINSZ, &size) != 0) {
        int err = errno;
        close(master);
        errno = err;
        return -1;
    }
    char digits[24];
    const char *n = format_unsigned(digits, (unsigned)number, 10);
    const char prefix[] = "/dev/pts/";
    size_t at = 0;
    for (const char *c = prefix; *c; c++)
        path[at++] = *c;
    while (*n && at < 31)
        path[at++] = *n++;
    path[at] = '\0';
    return master;
}

void open_terminal(struct plan *p) {
    int master = make_pty(p->terminal_rows, p->terminal_cols, p->terminal_path);
    if (master < 0)
        fail(CELL_STEP_TERMINAL, errno, 0);
    /* The master is the supervisor's alone from here on: pid 1 keeps no copy. */
    if (send_up('T', master) != 0)
        fail(CELL_STEP_TERMINAL, errno, 1);
    close(master);
}
