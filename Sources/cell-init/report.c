/*
 * report.c — the reports up CELL_FD_REPORT (struct cell_report, cell_plan.h).
 *
 * A report is 16 bytes, less than PIPE_BUF, so one write() puts it in the pipe whole or not at
 * all: the supervisor never reads half a report. When the write fails the supervisor is gone,
 * and there is nobody left to tell.
 */
#include "cell_init.h"

#include <errno.h>
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
