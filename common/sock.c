#include "common/sock.h"
#include "common/addrpol.h"
#include "common/endpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_min_rtt; glibc's copy lacks it */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int sk_open_bound(const struct sockaddr *local, char *err, size_t errlen)
{
    char ep[EP_STRLEN];
    int one = 1;
    int fd = socket(local->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        snprintf(err, errlen, "setsockopt SO_REUSEADDR/SO_REUSEPORT: %s", strerror(errno));
        goto fail;
    }
    if (local->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, local, ep_len(local)) < 0) {
        snprintf(err, errlen, "bind %s: %s", ep_format(local, ep, sizeof ep), strerror(errno));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

int sk_listen_reuse(const struct sockaddr *local, int backlog, char *err, size_t errlen)
{
    char ep[EP_STRLEN];
    int fd = sk_open_bound(local, err, errlen);
    if (fd < 0)
        return -1;
    if (listen(fd, backlog) < 0) {
        snprintf(err, errlen, "listen %s: %s", ep_format(local, ep, sizeof ep), strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int sk_close_keep_std(int fd)
{
    if (fd > STDERR_FILENO)
        return close(fd);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        return close(fd); /* no /dev/null: the end still has to reach the reader */
    int rc = dup2(null, fd) < 0 ? close(fd) : 0; /* dup2 closes fd's old description */
    close(null);
    return rc;
}

int sk_local(int fd, struct sockaddr_storage *out)
{
    socklen_t len = sizeof *out;
    memset(out, 0, sizeof *out);
    if (getsockname(fd, (struct sockaddr *)out, &len) < 0)
        return -1;
    ep_unmap(out);
    return 0;
}

int sk_set_blocking(int fd, bool blocking)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    fl = blocking ? (fl & ~O_NONBLOCK) : (fl | O_NONBLOCK);
    return fcntl(fd, F_SETFL, fl);
}

int sk_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

uint32_t sk_rtt_us(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return 0;
    /* The smoothed RTT of a young connection is skewed by its first exchanges: a peer that
     * answers the challenge after loading its key, a delayed ACK. The minimum is the path. */
    if (len >= offsetof(struct tcp_info, tcpi_min_rtt) + sizeof ti.tcpi_min_rtt && ti.tcpi_min_rtt)
        return ti.tcpi_min_rtt;
    return ti.tcpi_rtt;
}

void sk_tune_stream(int fd)
{
    int one = 1, idle = 30, intvl = 10, cnt = 3;
    unsigned int user_timeout_ms = 60000;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
}

bool sk_is_global6(const struct sockaddr *sa)
{
    return ap_is_global6(sa);
}

int sk_local_addrs(int family, int port, struct sockaddr_storage *out, int max)
{
    struct ifaddrs *ifa_list = NULL;
    int n = 0;
    if (getifaddrs(&ifa_list) < 0)
        return 0;
    for (struct ifaddrs *ifa = ifa_list; ifa && n < max; ifa = ifa->ifa_next) {
        if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != family || !(ifa->ifa_flags & IFF_UP) ||
            (ifa->ifa_flags & IFF_LOOPBACK) || !ap_local_usable(ifa->ifa_addr))
            continue;
        memset(&out[n], 0, sizeof out[n]);
        memcpy(&out[n], ifa->ifa_addr, ep_len(ifa->ifa_addr));
        ep_set_port((struct sockaddr *)&out[n], port);
        n++;
    }
    freeifaddrs(ifa_list);
    return n;
}

bool sk_is_subnet_broadcast(const struct sockaddr *sa)
{
    struct ifaddrs *ifa_list = NULL;
    bool found = false;
    if (sa->sa_family != AF_INET || getifaddrs(&ifa_list) < 0)
        return false;
    for (struct ifaddrs *ifa = ifa_list; ifa && !found; ifa = ifa->ifa_next)
        found = ifa->ifa_addr && ifa->ifa_addr->sa_family == AF_INET &&
                (ifa->ifa_flags & IFF_BROADCAST) && ifa->ifa_broadaddr &&
                ifa->ifa_broadaddr->sa_family == AF_INET &&
                ((const struct sockaddr_in *)ifa->ifa_broadaddr)->sin_addr.s_addr ==
                    ((const struct sockaddr_in *)sa)->sin_addr.s_addr;
    freeifaddrs(ifa_list);
    return found;
}
