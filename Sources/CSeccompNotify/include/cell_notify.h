/*
 * cell_notify.h — the audit path's side of seccomp user notification (notify.c): receive a
 * notified call, read the caller's path arguments for the record, answer it. Used by the
 * audit logger (Sources/CellAudit/ViolationAuditor.swift); runs in the supervisor, an ordinary
 * process.
 */
#ifndef CELL_NOTIFY_H
#define CELL_NOTIFY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cell_notification {
    uint64_t id;
    uint32_t pid;   /* host pid of the calling thread */
    int32_t nr;
    uint32_t arch;  /* AUDIT_ARCH_* */
    uint64_t instruction_pointer;
    uint64_t args[6];
};

/* Receives one notification (blocking). Returns 0, or -1 with errno (ENOENT: the caller died
 * before it could be received; EINTR). */
int cell_notify_receive(int listener, struct cell_notification *out);
/* Answers: error > 0 fails the call with that errno; continue_call lets it run as it is. */
int cell_notify_respond(int listener, uint64_t id, int error, int continue_call);
/* Whether the notification is still pending (the caller has not died or been interrupted):
 * check after reading the caller's memory, before trusting what was read. */
int cell_notify_id_valid(int listener, uint64_t id);
/* Reads a NUL-terminated string of at most size-1 bytes from `pid`'s memory at `address`.
 * Returns its length, or -1 with errno; *terminated says whether its NUL was read (0: it went
 * on past size-1 bytes, or into memory that could not be read). */
long cell_read_string(pid_t pid, uint64_t address, char *buffer, size_t size, int *terminated);

/* Reads up to `size` bytes of `pid`'s memory at `address` (a socket address, for the record).
 * Returns the count read, or -1 with errno. */
long cell_read_memory(pid_t pid, uint64_t address, void *buffer, size_t size);
/* `cell learn`: whether `path` exists in the tree whose root is the descriptor `root` (a
 * sandbox's /proc/PID/root), resolved as a process rooted there would, the last component not
 * followed: 1 yes, 0 no (ENOENT, ENOTDIR), -1 cannot tell (errno). Only an O_PATH lookup:
 * nothing is opened for reading and no automount is triggered. */
int cell_exists_in_root(int root, const char *path);
/* An O_PATH descriptor of /proc/PID/root (the sandbox's root directory), or -1. */
int cell_open_root(pid_t pid);
/* Whether `path` exists on cell's side (lstat, AT_NO_AUTOMOUNT: no automount of the last
 * component; one on the way is mounted, as any lookup would): 1 yes, 0 no. */
int cell_exists_on_host(const char *path);

#endif
