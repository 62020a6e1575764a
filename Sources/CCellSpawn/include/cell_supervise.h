/*
 * cell_supervise.h — system headers the Swift supervisor needs that Swift's Glibc module does
 * not export (signalfd), re-exported through this C module.
 */
#ifndef CELL_SUPERVISE_H
#define CELL_SUPERVISE_H

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#endif
