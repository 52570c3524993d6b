/* Address policy: what kind of address an endpoint is, and which kinds a peer may be told to
 * dial (a punch candidate) or to join a relay at. Pure functions, no I/O, in ONE place, so that
 * the peer (punch candidates, relay_addr), the local address list (sk_local_addrs) and
 * ep_is_loopback agree on what "loopback" or "link-local" means. IPv4-mapped (::ffff:a.b.c.d)
 * and IPv4-compatible (::a.b.c.d) IPv6 addresses are judged as the IPv4 address they carry:
 * a socket dialling one reaches that IPv4 address. */
#ifndef TP_ADDRPOL_H
#define TP_ADDRPOL_H

#include <stdbool.h>
#include <sys/socket.h>

enum ap_class {
    AP_GLOBAL,    /* unicast that may be routed on the internet (documentation ranges too) */
    AP_PRIVATE,   /* 10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT), fc00::/7, fec0::/10 */
    AP_LOOPBACK,  /* 127/8, ::1 */
    AP_LINKLOCAL, /* 169.254/16 (the cloud metadata address is one), fe80::/10 */
    AP_UNSPEC,    /* 0.0.0.0/8, :: (dialling 0.0.0.0 reaches this host) */
    AP_MULTICAST, /* 224/4, ff00::/8 */
    AP_BROADCAST, /* 255.255.255.255 */
    AP_RESERVED,  /* 240/4 but the broadcast address */
    AP_INVALID,   /* not IPv4 or IPv6 */
};

/* The class of sa's address (the port is ignored). */
enum ap_class ap_classify(const struct sockaddr *sa);

/* "a link-local (169.254.0.0/16) address" and so on, for messages; family-aware. */
const char *ap_describe(const struct sockaddr *sa);

bool ap_is_loopback(const struct sockaddr *sa);

/* Why sa must not be dialled as a punch candidate (or offered as one), NULL when it may: only
 * unicast that could be another host is allowed; loopback only with loopback_ok (the server,
 * and so every peer it introduces, is on this host). The rendezvous server applies the same
 * rule to hello endpoints. */
const char *ap_bad_candidate(const struct sockaddr *sa, bool loopback_ok);

/* Why relay (a punch's relay_addr) must not be joined, NULL when it may: it must be the server's
 * own address (another port of it: another instance on the same host) or a globally routable
 * one (another instance of the cluster, reached like the server). A loopback relay is thus only
 * accepted as the server's own loopback address, and a private address never but as the
 * server's own: a lying server cannot aim the relay connection into our own host or LAN. */
const char *ap_bad_relay(const struct sockaddr *relay, const struct sockaddr *server);

#endif
