#include "common/addrpol.h"

#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

static const uint8_t ap_nat64[12] = {0, 0x64, 0xff, 0x9b};                     /* 64:ff9b::/96 */
static const uint8_t ap_nat64_local[6] = {0, 0x64, 0xff, 0x9b, 0, 1};          /* 64:ff9b:1::/48 */
static const uint8_t ap_siit[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0}; /* ::ffff:0:0/96 */

/* The IPv4 address an IPv6 one stands for: mapped ::ffff:a.b.c.d, SIIT ::ffff:0:a.b.c.d,
 * (deprecated) compatible ::a.b.c.d (but not :: and ::1, which are IPv6's own), NAT64
 * 64:ff9b::a.b.c.d and 64:ff9b:1::a.b.c.d (the /96 layout), and 6to4 2002:AABB:CCDD::/48. A
 * NAT64 or 6to4 gateway on the way turns these into the IPv4 address, so they are judged as
 * it: else a lying server could aim us at 127.0.0.1 or 169.254.169.254 behind the gateway. */
static bool ap_embedded_v4(const struct in6_addr *a6, uint32_t *v4)
{
    static const uint8_t zero[12];
    const uint8_t *b = a6->s6_addr;
    uint32_t n;
    memcpy(&n, b + 12, 4);
    n = ntohl(n);
    if (IN6_IS_ADDR_V4MAPPED(a6) || memcmp(b, ap_siit, 12) == 0 || memcmp(b, ap_nat64, 12) == 0 ||
        (memcmp(b, ap_nat64_local, 6) == 0 && memcmp(b + 6, zero, 6) == 0) ||
        (memcmp(b, zero, 12) == 0 && n > 1)) {
        *v4 = n;
        return true;
    }
    if (b[0] == 0x20 && b[1] == 0x02) { /* 6to4 */
        *v4 = (uint32_t)b[2] << 24 | (uint32_t)b[3] << 16 | (uint32_t)b[4] << 8 | b[5];
        return true;
    }
    return false;
}

static enum ap_class ap_class_v4(uint32_t a)
{
    if ((a >> 24) == 0)
        return AP_UNSPEC;
    if ((a >> 24) == 127)
        return AP_LOOPBACK;
    if ((a >> 16) == 0xa9fe)
        return AP_LINKLOCAL;
    if ((a >> 28) == 0xe)
        return AP_MULTICAST;
    if (a == 0xffffffffu)
        return AP_BROADCAST;
    if ((a >> 28) == 0xf)
        return AP_RESERVED;
    if ((a >> 24) == 10 || (a >> 20) == 0xac1 || (a >> 16) == 0xc0a8 || (a >> 22) == 0x191)
        return AP_PRIVATE; /* 10/8, 172.16/12, 192.168/16, 100.64/10 */
    return AP_GLOBAL;
}

/* The class of an IPv6 address by its own prefixes, whatever IPv4 address it may carry. */
static enum ap_class ap_class_v6_own(const struct in6_addr *a6)
{
    if (IN6_IS_ADDR_UNSPECIFIED(a6))
        return AP_UNSPEC;
    if (IN6_IS_ADDR_LOOPBACK(a6))
        return AP_LOOPBACK;
    if (IN6_IS_ADDR_MULTICAST(a6))
        return AP_MULTICAST;
    if (IN6_IS_ADDR_LINKLOCAL(a6))
        return AP_LINKLOCAL;
    if ((a6->s6_addr[0] & 0xfe) == 0xfc || IN6_IS_ADDR_SITELOCAL(a6))
        return AP_PRIVATE;
    return AP_GLOBAL;
}

static enum ap_class ap_class_v6(const struct in6_addr *a6)
{
    uint32_t v4;
    if (ap_embedded_v4(a6, &v4))
        return ap_class_v4(v4);
    /* the local-use NAT64 prefix with another layout (RFC 6052 /48-/64): where its IPv4
     * address sits depends on the site's prefix length; never global (RFC 8215) */
    if (memcmp(a6->s6_addr, ap_nat64_local, 6) == 0)
        return AP_RESERVED;
    return ap_class_v6_own(a6);
}

static uint32_t ap_v4_host(const struct sockaddr *sa)
{
    return ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
}

static const struct in6_addr *ap_v6(const struct sockaddr *sa)
{
    return &((const struct sockaddr_in6 *)sa)->sin6_addr;
}

enum ap_class ap_classify(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ap_class_v4(ap_v4_host(sa));
    if (sa->sa_family == AF_INET6)
        return ap_class_v6(ap_v6(sa));
    return AP_INVALID;
}

enum ap_class ap_classify_plain(const struct sockaddr *sa)
{
    uint32_t v4;
    if (sa->sa_family == AF_INET)
        return ap_class_v4(ap_v4_host(sa));
    if (sa->sa_family != AF_INET6)
        return AP_INVALID;
    if (IN6_IS_ADDR_V4MAPPED(ap_v6(sa))) {
        memcpy(&v4, ap_v6(sa)->s6_addr + 12, 4);
        return ap_class_v4(ntohl(v4));
    }
    return ap_class_v6_own(ap_v6(sa));
}

bool ap_v4_of(const struct sockaddr *sa, uint32_t *v4)
{
    if (sa->sa_family == AF_INET) {
        *v4 = ap_v4_host(sa);
        return true;
    }
    return sa->sa_family == AF_INET6 && ap_embedded_v4(ap_v6(sa), v4);
}

bool ap_is_cgnat(const struct sockaddr *sa)
{
    uint32_t v4;
    return ap_v4_of(sa, &v4) && (v4 >> 22) == 0x191; /* 100.64/10 */
}

bool ap_is_documentation(const struct sockaddr *sa)
{
    static const uint8_t doc6[4] = {0x20, 0x01, 0x0d, 0xb8}; /* 2001:db8::/32 */
    uint32_t v4;
    if (sa->sa_family == AF_INET6 && memcmp(ap_v6(sa)->s6_addr, doc6, sizeof doc6) == 0)
        return true;
    if (!ap_v4_of(sa, &v4))
        return false;
    v4 >>= 8; /* TEST-NET-1, -2, -3 */
    return v4 == 0xc00002 || v4 == 0xc63364 || v4 == 0xcb0071;
}

bool ap_is_global6(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 && (ap_v6(sa)->s6_addr[0] & 0xe0) == 0x20;
}

/* The same words as the server's bad-endpoint messages (PROTOCOL.md, "Candidates"). */
static const char *ap_describe_class(enum ap_class k, bool v6)
{
    switch (k) {
    case AP_GLOBAL:
        return "a global unicast address";
    case AP_PRIVATE:
        return v6 ? "a private (fc00::/7, fec0::/10) address"
                  : "a private (10/8, 172.16/12, 192.168/16, 100.64/10) address";
    case AP_LOOPBACK:
        return "a loopback address";
    case AP_LINKLOCAL:
        return v6 ? "a link-local (fe80::/10) address" : "a link-local (169.254.0.0/16) address";
    case AP_UNSPEC:
        return v6 ? "the unspecified address ::" : "an unspecified (0.0.0.0/8) address";
    case AP_MULTICAST:
        return "a multicast address";
    case AP_BROADCAST:
        return "the broadcast address";
    case AP_RESERVED:
        return "a reserved (240.0.0.0/4) address";
    default:
        return "not an IP address";
    }
}

const char *ap_describe(const struct sockaddr *sa)
{
    uint32_t v4;
    return ap_describe_class(ap_classify(sa), sa->sa_family == AF_INET6 && !ap_v4_of(sa, &v4));
}

/* Unicast that could be another host; loopback only when every peer is on this host. */
static bool ap_class_ok(enum ap_class k, bool loopback_ok)
{
    return k == AP_GLOBAL || k == AP_PRIVATE || (k == AP_LOOPBACK && loopback_ok);
}

bool ap_is_loopback(const struct sockaddr *sa)
{
    return ap_classify(sa) == AP_LOOPBACK;
}

const char *ap_bad_candidate(const struct sockaddr *sa, bool loopback_ok)
{
    return ap_class_ok(ap_classify(sa), loopback_ok) ? NULL : ap_describe(sa);
}

const char *ap_bad_offer(const struct sockaddr *sa, bool loopback_ok)
{
    enum ap_class k = ap_classify_plain(sa);
    if (ap_class_ok(k, loopback_ok))
        return NULL;
    if (k == AP_LOOPBACK)
        return "a loopback address, from a peer that is not on the server's host";
    if (k == AP_BROADCAST || k == AP_RESERVED)
        return "a broadcast or reserved (240.0.0.0/4) address";
    return ap_describe_class(k, sa->sa_family == AF_INET6 && !IN6_IS_ADDR_V4MAPPED(ap_v6(sa)));
}

bool ap_local_usable(const struct sockaddr *sa)
{
    return ap_bad_candidate(sa, false) == NULL;
}

bool ap_same_host(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return a->sa_family == AF_INET6 && memcmp(ap_v6(a), ap_v6(b), 16) == 0;
}

const char *ap_bad_relay(const struct sockaddr *relay, const struct sockaddr *server)
{
    enum ap_class k = ap_classify(relay);
    if (ap_same_host(relay, server) && k != AP_INVALID && ap_bad_candidate(relay, true) == NULL)
        return NULL;
    if (k == AP_GLOBAL)
        return NULL;
    return ap_describe(relay);
}
