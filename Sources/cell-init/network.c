/*
 * network.c — the sandbox's private network namespace, made usable.
 *
 * A new network namespace has a single device, lo, and it is down: nothing in the sandbox
 * could even talk to itself. Runs only with a LOOPBACK (or UNREACHABLE) record, which plan.c
 * accepts only together with the sandbox's own network namespace: lo, the sysctl and the route
 * below are then the namespace's, never the host's.
 */
#include "cell_init.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
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

/*
 * One IPv4 address made unreachable in the sandbox's network namespace: with user-mode
 * networking through pasta, the gateway (10.0.2.2) leads to the host's loopback when
 * --allow-host-loopback is given; without it, pasta would pass a connection to that address on
 * to the host's own network, where slirp4netns refuses it. This route says "no route to host"
 * before a packet leaves. (Not with slirp4netns: it delivers published connections from the
 * gateway's address, so replies must be able to reach it.)
 *
 * Added now, while pid 1 holds CAP_NET_ADMIN in the namespace and before the helper configures
 * tap0 (the hold comes after the lock-down). Its scope is "universe", not the "host" scope an
 * SIOCADDRT reject route gets: the kernel checks a new default route's gateway with a lookup of
 * link scope, which skips a universe route and finds tap0's subnet, so the helper's default
 * route via this same address can still be added. Hence netlink, not the route ioctl.
 */
void make_unreachable(uint32_t address) {
    struct {
        struct nlmsghdr header;
        struct rtmsg route;
        struct rtattr destination;
        uint32_t address;
    } request;
    memset(&request, 0, sizeof request);
    request.header.nlmsg_len = sizeof request;
    request.header.nlmsg_type = RTM_NEWROUTE;
    request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    request.route.rtm_family = AF_INET;
    request.route.rtm_dst_len = 32;
    request.route.rtm_table = RT_TABLE_MAIN;
    request.route.rtm_protocol = RTPROT_BOOT;
    request.route.rtm_scope = RT_SCOPE_UNIVERSE;
    request.route.rtm_type = RTN_UNREACHABLE;
    request.destination.rta_len = RTA_LENGTH(sizeof request.address);
    request.destination.rta_type = RTA_DST;
    request.address = htonl(address);

    int sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (sock < 0)
        fail(CELL_STEP_UNREACHABLE, errno, 0);
    if (send(sock, &request, sizeof request, 0) != (ssize_t)sizeof request)
        fail(CELL_STEP_UNREACHABLE, errno, 0);
    /* The kernel's acknowledgement: an NLMSG_ERROR whose error is 0, or the refusal. */
    struct {
        struct nlmsghdr header;
        struct nlmsgerr error;
    } reply;
    ssize_t n = recv(sock, &reply, sizeof reply, 0);
    if (n < (ssize_t)sizeof reply || reply.header.nlmsg_type != NLMSG_ERROR)
        fail(CELL_STEP_UNREACHABLE, n < 0 ? errno : EPROTO, 0);
    if (reply.error.error != 0)
        fail(CELL_STEP_UNREACHABLE, -reply.error.error, 0);
    close(sock);
}

/*
 * --net proxy: the sandbox's only way out. For each CELL_REC_SEND_FD, a TCP socket listening on
 * 127.0.0.1 of the sandbox's own network namespace (its lo, up in set_up_loopback), handed to
 * the supervisor ('S'), which gives it to the proxy outside: the proxy accepts the sandbox's
 * connections from the sandbox's namespace and makes its own from the host's. pid 1 keeps no
 * copy, so nothing in the sandbox can accept on it or close it, and the port stays taken.
 */
void hand_out_listeners(const struct plan *p) {
    for (uint32_t i = 0; i < p->listener_count; i++) {
        int sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (sock < 0)
            fail(CELL_STEP_SEND_FD, errno, p->listeners[i]);
        struct sockaddr_in address;
        memset(&address, 0, sizeof address);
        address.sin_family = AF_INET;
        address.sin_port = htons(p->listeners[i]);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(sock, (struct sockaddr *)&address, sizeof address) != 0 || listen(sock, 128) != 0)
            fail(CELL_STEP_SEND_FD, errno, p->listeners[i]);
        if (send_up('S', sock) != 0)
            fail(CELL_STEP_SEND_FD, errno, p->listeners[i]);
        close(sock);
    }
}
