/* Socket helpers. Each takes an error buffer so callers can print one precise message. */
#ifndef TP_SOCK_H
#define TP_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A non-blocking TCP socket bound to local with SO_REUSEADDR and SO_REUSEPORT, so several
 * sockets (control, punch attempts, listener) can share one local port. */
int sk_open_bound(const struct sockaddr *local, char *err, size_t errlen);

/* The same, listening. */
int sk_listen_reuse(const struct sockaddr *local, int backlog, char *err, size_t errlen);

int sk_local(int fd, struct sockaddr_storage *out);

/* Closes fd, as a reader of its pipe or file learns the stream ended; a standard descriptor
 * (0-2) is pointed at /dev/null instead, so that its number stays taken: a socket opened later
 * (a resume, an upgrade on another thread) would get it otherwise, and libuv aborts on a handle
 * below 3 (uv__close asserts fd > STDERR_FILENO). 0, or -1 with errno from close. */
int sk_close_keep_std(int fd);
int sk_set_blocking(int fd, bool blocking);

/* write() until all n bytes are out (EINTR retried), for blocking descriptors such as files.
 * Returns 0, or -1 with errno set. */
int sk_write_all(int fd, const void *buf, size_t n);

/* RTT of a connected socket in microseconds (the kernel's minimum, else its smoothed
 * figure), 0 when unknown. */
uint32_t sk_rtt_us(int fd);

/* Data connections: no Nagle delay for interactive use, and keepalive plus a user timeout so
 * a peer that vanished is noticed within about a minute instead of hanging forever. */
void sk_tune_stream(int fd);

/* This host's unicast addresses of family (loopback and link-local left out), each with port
 * set; returns how many were written to out (at most max). */
int sk_local_addrs(int family, int port, struct sockaddr_storage *out, int max);

/* Whether sa is a global unicast IPv6 address (2000::/3): reachable from other networks
 * without NAT, so worth offering as a candidate. A name kept for its callers; the rule is
 * common/addrpol's ap_is_global6. */
bool sk_is_global6(const struct sockaddr *sa);

/* Whether sa (IPv4) is the broadcast address of one of this host's subnets: a datagram
 * address, never a TCP peer (the classes every host knows are common/addrpol's). */
bool sk_is_subnet_broadcast(const struct sockaddr *sa);

#endif
