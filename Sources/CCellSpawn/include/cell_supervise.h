/*
 * cell_supervise.h — system headers the Swift supervisor needs that Swift's Glibc module does
 * not export (signalfd, TIOCGPTPEER), re-exported through this C module.
 */
#ifndef CELL_SUPERVISE_H
#define CELL_SUPERVISE_H

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/sysinfo.h>   /* sysinfo: the machine's memory, for the cgroup ceiling */
#include <sys/xattr.h>     /* getxattr: systemd's user.delegate mark on a cgroup */
#include <sys/vfs.h>
#include <sys/wait.h>

/* A descriptor of a pty's terminal side, from its master (Linux 4.13): a macro Swift cannot import. */
static const unsigned long cell_tiocgptpeer = TIOCGPTPEER;

#endif
