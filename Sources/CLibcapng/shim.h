/* libcap-ng for Swift: capability names and numbers (used in the supervisor only: libcap-ng
 * allocates, so it never runs between clone and execve). */
#ifndef CELL_LIBCAPNG_SHIM_H
#define CELL_LIBCAPNG_SHIM_H
#include <cap-ng.h>
#endif
