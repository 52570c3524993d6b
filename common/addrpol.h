/* Address policy: what kind of address an endpoint is, and which kinds a peer may be told to
 * dial (a punch candidate) or to join a relay at. Pure functions, no I/O, in ONE place, so that
 * the peer (punch candidates, relay_addr), the local address list (sk_local_addrs) and
 * ep_is_loopback agree on what "loopback" or "link-local" means. IPv4-mapped (::ffff:a.b.c.d)
 * and IPv4-compatible (::a.b.c.d) IPv6 addresses are judged as the IPv4 address they carry:
 * a socket dialling one reaches that IPv4 address. */
#ifndef TP_ADDRPOL_H
#define TP_ADDRPOL_H

#include <stdbool.h>
#include <stdint.h>
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

/* The class of sa's address (the port is ignored), an IPv6 address that carries an IPv4 one
 * judged as that IPv4 address: what a socket dialling it reaches. */
enum ap_class ap_classify(const struct sockaddr *sa);
/* The class of the address as written: only an IPv4-mapped ::ffff:a.b.c.d is judged as its
 * IPv4 address, every other IPv6 address by its own prefix (the server's rule, ap_bad_offer). */
enum ap_class ap_classify_plain(const struct sockaddr *sa);

/* The IPv4 address (host order) sa is, or stands for as an IPv6 address (mapped, SIIT,
 * compatible, NAT64, 6to4). Returns false when it carries none. */
bool ap_v4_of(const struct sockaddr *sa, uint32_t *v4);
/* Inside AP_PRIVATE: carrier-grade NAT space, 100.64.0.0/10 (also as an IPv6 form of it). */
bool ap_is_cgnat(const struct sockaddr *sa);
/* Inside AP_GLOBAL: the documentation ranges 192.0.2/24, 198.51.100/24, 203.0.113/24 (labs use
 * them as public addresses) and 2001:db8::/32. */
bool ap_is_documentation(const struct sockaddr *sa);
/* A global unicast IPv6 address (2000::/3): reachable from other networks without NAT. */
bool ap_is_global6(const struct sockaddr *sa);

/* "a link-local (169.254.0.0/16) address" and so on, for messages; family-aware. */
const char *ap_describe(const struct sockaddr *sa);

bool ap_is_loopback(const struct sockaddr *sa);

/* Why sa must not be dialled as a punch candidate (or offered as one), NULL when it may: only
 * unicast that could be another host is allowed; loopback only with loopback_ok (the server,
 * and so every peer it introduces, is on this host). The rendezvous server applies the same
 * rule to hello endpoints. */
const char *ap_bad_candidate(const struct sockaddr *sa, bool loopback_ok);

/* The server's rule for a candidate it offers to another peer (a hello endpoint, the observed
 * address, a probe's IPv6 address), NULL when it may: the class as written (ap_classify_plain),
 * so NAT64, 6to4 and compatible forms pass, which the peer's own rule (ap_bad_candidate) then
 * refuses to dial; the words are those of the bad-endpoint error (PROTOCOL.md, "Candidates"). */
const char *ap_bad_offer(const struct sockaddr *sa, bool loopback_ok);

/* Whether an interface address of this host is worth offering as a candidate: the peer's dial
 * rule without loopback (sk_local_addrs). */
bool ap_local_usable(const struct sockaddr *sa);

/* Whether a and b are the same IP address (ports ignored; other families never). */
bool ap_same_host(const struct sockaddr *a, const struct sockaddr *b);

/* Why relay (a punch's relay_addr) must not be joined, NULL when it may: it must be the server's
 * own address (another port of it: another instance on the same host) or a globally routable
 * one (another instance of the cluster, reached like the server). A loopback relay is thus only
 * accepted as the server's own loopback address, and a private address never but as the
 * server's own: a lying server cannot aim the relay connection into our own host or LAN. */
const char *ap_bad_relay(const struct sockaddr *relay, const struct sockaddr *server);

#endif
