/*
 * network.c — the sandbox's private network namespace, made usable.
 *
 * A new network namespace has a single device, lo, and it is down: nothing in the sandbox
 * could even talk to itself. Runs only with a LOOPBACK record, which plan.c accepts only
 * together with the sandbox's own network namespace: lo and the sysctl below are then the
 * namespace's, never the host's.
 */
#include "cell_init.h"

#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

void set_up_loopback(void) {
    /* Any socket of the namespace carries the interface ioctls; no `ip` binary is needed. */
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        fail(CELL_STEP_LOOPBACK, errno, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", sizeof "lo");
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) != 0)
        fail(CELL_STEP_LOOPBACK, errno, 0);
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(sock, SIOCSIFFLAGS, &ifr) != 0)
        fail(CELL_STEP_LOOPBACK, errno, 0);
    close(sock);

    /* Servers may bind low ports without a capability, as in Docker: the ports are this
     * namespace's own (two sandboxes can both listen on 80). /proc/sys/net shows the network
     * namespace of the process that opens it, so this is the sandbox's setting, not the host's. */
    if (write_sysctl("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0") != 0)
        fail(CELL_STEP_NET_SYSCTL, errno, 0);
}
