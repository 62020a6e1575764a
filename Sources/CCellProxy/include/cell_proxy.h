/*
 * cell_proxy.h — the C of cell-proxy (--net proxy's filtering proxy): its own wall, raised at
 * its start (confine.c), and the relay that carries a connection's bytes (relay.c).
 */
#ifndef CELL_PROXY_H
#define CELL_PROXY_H

#include <stdint.h>

/* No_new_privs, not dumpable, and where the kernel has Landlock a domain that reads only
 * beneath `read_paths`, connects by TCP only to `ports` (ABI 4) and binds nothing, scoped
 * (ABI 6). 0 (also without Landlock), or -errno. */
int cell_confine_proxy(const char *const *read_paths, int path_count, const uint16_t *ports, int port_count);

/* Carries bytes both ways between two connected sockets until both directions have ended,
 * passing each end of file on as a half-close; counts the bytes from `client` to `upstream`
 * (`out`) and back (`in`). Returns 0, or -errno of the first failure. */
int cell_relay(int client, int upstream, uint64_t *out, uint64_t *in);

#endif
