#include "common/endpoint.h"
#include "common/addrpol.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EP_PORT_MAX 65535
#define EP_HOST_MAX 256  /* a command-line host name, with its NUL (DNS names are shorter) */
#define EP_QUOTE_MAX 80  /* how much of a bad argument a message quotes */

static int ep_parse_port(const char *s, bool allow_zero, int *port)
{
    long v = 0;
    if (*s == '\0' || strlen(s) > 5)
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v > EP_PORT_MAX || (v == 0 && !allow_zero))
        return -1;
    *port = (int)v;
    return 0;
}

/* Splits "host:port" / "[host]:port" into its two parts (host copied into hbuf). */
static int ep_split(const char *s, char *hbuf, size_t hlen, const char **port, bool *bracketed)
{
    const char *colon;
    size_t n;
    *bracketed = s[0] == '[';
    if (*bracketed) {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        n = (size_t)(close - s - 1);
        colon = close + 1;
        s++;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return -1; /* unbracketed IPv6 is ambiguous */
        n = (size_t)(colon - s);
    }
    if (n >= hlen)
        return -1;
    memcpy(hbuf, s, n);
    hbuf[n] = '\0';
    *port = colon + 1;
    return 0;
}

int ep_parse(const char *s, struct sockaddr_storage *out, char *err, size_t errlen)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *pstr;
    bool br;
    int port;
    memset(out, 0, sizeof *out);
    if (ep_split(s, host, sizeof host, &pstr, &br) < 0) {
        snprintf(err, errlen, "endpoint \"%.*s\" is not HOST:PORT", EP_QUOTE_MAX, s);
        return -1;
    }
    if (ep_parse_port(pstr, false, &port) < 0) {
        snprintf(err, errlen, "endpoint \"%.*s\" has a bad port (1..%d)", EP_QUOTE_MAX, s,
                 EP_PORT_MAX);
        return -1;
    }
    if (br) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            goto bad_addr;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)out;
        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            goto bad_addr;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
    }
    return 0;
bad_addr:
    snprintf(err, errlen, "endpoint \"%.*s\" has no numeric IPv4 or [IPv6] address", EP_QUOTE_MAX,
             s);
    return -1;
}

/* Splits a command-line "HOST:PORT" into host (EP_HOST_MAX bytes) and a checked port. */
static int ep_split_cli(const char *s, bool allow_zero, char *host, const char **pstr, bool *br,
                        int *port, char *err, size_t errlen)
{
    if (ep_split(s, host, EP_HOST_MAX, pstr, br) < 0) {
        snprintf(err, errlen, "\"%.*s\" is not HOST:PORT (IPv6 as [ADDR]:PORT)", EP_QUOTE_MAX, s);
        return -1;
    }
    if (ep_parse_port(*pstr, allow_zero, port) < 0) {
        snprintf(err, errlen, "\"%.*s\": port must be a number %d..%d", EP_QUOTE_MAX, s,
                 allow_zero ? 0 : 1, EP_PORT_MAX);
        return -1;
    }
    return 0;
}

int ep_check_syntax(const char *s, bool allow_zero, char *err, size_t errlen)
{
    char host[EP_HOST_MAX];
    const char *pstr;
    bool br;
    int port;
    return ep_split_cli(s, allow_zero, host, &pstr, &br, &port, err, errlen);
}

/* The resolver's answer for a command-line "HOST:PORT" (res to be freed), and its port. */
static int ep_lookup(const char *s, bool allow_zero, struct addrinfo **res, int *port, char *err,
                     size_t errlen)
{
    char host[EP_HOST_MAX];
    const char *pstr;
    bool br;
    int rc;
    struct addrinfo hints;

    *res = NULL;
    if (ep_split_cli(s, allow_zero, host, &pstr, &br, port, err, errlen) < 0)
        return -1;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = br ? AF_INET6 : AF_UNSPEC;
    hints.ai_flags = AI_ADDRCONFIG;
    if (host[0] == '\0') {
        hints.ai_flags |= AI_PASSIVE;
        hints.ai_family = AF_INET;
    }
    rc = getaddrinfo(host[0] ? host : NULL, "1", &hints, res);
    if (rc == EAI_BADFLAGS || (rc != 0 && (hints.ai_flags & AI_ADDRCONFIG))) {
        hints.ai_flags &= ~AI_ADDRCONFIG; /* e.g. only loopback configured */
        rc = getaddrinfo(host[0] ? host : NULL, "1", &hints, res);
    }
    if (rc != 0) {
        *res = NULL;
        snprintf(err, errlen, "cannot resolve \"%.*s\": %s", EP_QUOTE_MAX, host, gai_strerror(rc));
        return -1;
    }
    return 0;
}

int ep_resolve(const char *s, bool allow_zero, struct sockaddr_storage *out, char *err,
               size_t errlen)
{
    struct addrinfo *res, *pick;
    int port;

    memset(out, 0, sizeof *out);
    if (ep_lookup(s, allow_zero, &res, &port, err, errlen) < 0)
        return -1;
    /* IPv4 first: the punch needs both peers on the same family, and every NAT speaks v4 */
    for (pick = res; pick && pick->ai_family != AF_INET; pick = pick->ai_next)
        ;
    if (!pick)
        pick = res;
    memcpy(out, pick->ai_addr, pick->ai_addrlen);
    freeaddrinfo(res);
    ep_set_port((struct sockaddr *)out, port);
    return 0;
}

/* Appends the addresses of family (any but IPv4 when v4 is false) not yet in out. */
static int ep_collect(const struct addrinfo *res, bool v4, int port, struct sockaddr_storage *out,
                      int n, int max)
{
    for (const struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
        struct sockaddr_storage a;
        bool dup = false;
        if ((ai->ai_family == AF_INET) != v4 || ai->ai_addrlen > sizeof a)
            continue;
        memset(&a, 0, sizeof a);
        memcpy(&a, ai->ai_addr, ai->ai_addrlen);
        ep_set_port((struct sockaddr *)&a, port);
        for (int i = 0; i < n && !dup; i++)
            dup = ep_equal((struct sockaddr *)&out[i], (struct sockaddr *)&a);
        if (!dup)
            out[n++] = a;
    }
    return n;
}

int ep_resolve_all(const char *s, bool allow_zero, struct sockaddr_storage *out, int max, char *err,
                   size_t errlen)
{
    struct addrinfo *res;
    int port, n;

    if (ep_lookup(s, allow_zero, &res, &port, err, errlen) < 0)
        return -1;
    /* IPv4 first, as ep_resolve picks it */
    n = ep_collect(res, true, port, out, 0, max);
    n = ep_collect(res, false, port, out, n, max);
    freeaddrinfo(res);
    if (n == 0) {
        snprintf(err, errlen, "\"%.*s\" has no usable address", EP_QUOTE_MAX, s);
        return -1;
    }
    return n;
}

const char *ep_format(const struct sockaddr *sa, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a4->sin_addr, a, sizeof a);
        snprintf(buf, len, "%s:%d", a, ntohs(a4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a6->sin6_addr, a, sizeof a);
        snprintf(buf, len, "[%s]:%d", a, ntohs(a6->sin6_port));
    } else {
        snprintf(buf, len, "?");
    }
    return buf;
}

socklen_t ep_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

bool ep_is_loopback(const struct sockaddr *sa)
{
    return ap_is_loopback(sa);
}

int ep_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

void ep_set_port(struct sockaddr *sa, int port)
{
    if (sa->sa_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
    else if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
}

bool ep_same_host(const struct sockaddr *a, const struct sockaddr *b)
{
    return ap_same_host(a, b);
}

bool ep_equal(const struct sockaddr *a, const struct sockaddr *b)
{
    return ep_same_host(a, b) && ep_port(a) == ep_port(b);
}

void ep_unmap(struct sockaddr_storage *ss)
{
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    struct sockaddr_in a4;
    if (ss->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr))
        return;
    memset(&a4, 0, sizeof a4);
    a4.sin_family = AF_INET;
    a4.sin_port = a6->sin6_port;
    memcpy(&a4.sin_addr, &a6->sin6_addr.s6_addr[12], 4);
    memset(ss, 0, sizeof *ss);
    memcpy(ss, &a4, sizeof a4);
}
