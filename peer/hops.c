/* TTL discovery for the birthday punch's low-TTL SYNs (peer/hops.h; design/birthday.md,
 * section 6, "TTL"). One UDP socket with IP_RECVERR sends one datagram per TTL 1..HOPS_MAX_TTL
 * to the server; the kernel queues every ICMP error for it on the socket's error queue, with
 * the router that sent it (SO_EE_OFFENDER) and the original datagram's destination.
 *
 * Which TTL an error belongs to: each probe goes to its own destination port, 33434 + TTL (the
 * traceroute convention), and recvmsg(MSG_ERRQUEUE) returns the original destination, port
 * included, in msg_name (taken from the header the ICMP quotes, which a NAT on the way
 * translates back, RFC 5508, leaving the destination as it was). That works even when a router
 * quotes only the 8 bytes of the UDP header that RFC 792 requires, when the payload is gone.
 * The payload carries the TTL as well ("tcpunch-hops" and the TTL byte): when the quote
 * includes it, it must agree, so an error for some other datagram of this socket (there is
 * none) or a forged one that guessed the port but not the payload is ignored.
 *
 * Waiting: uv_poll on the socket. Linux reports a queued error as EPOLLERR, and libuv (1.44,
 * tested) hands that to the poll callback as status UV_EBADF with the handle stopped; so the
 * callback drains the error queue whatever the status and starts the poll again. A deadline
 * timer (HOPS_WAIT_MS) drains the queue a last time and finishes, so nothing depends on the
 * poll beyond the early finish. */
#include "peer/hops.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HOPS_PORT_BASE 33434
static const char hops_magic[] = "tcpunch-hops"; /* payload: these 12 bytes, then the TTL */
#define HOPS_MAGIC_LEN (sizeof hops_magic - 1)
#define HOPS_DRAIN_MAX 64 /* messages read per wakeup (a queue holds a few per TTL at most) */
#define HOPS_IDLE_MAX 4   /* wakeups in a row that found nothing: stop polling, await deadline */

struct hops {
    uv_loop_t *loop;
    uv_poll_t poll;
    uv_timer_t timer;
    int fd;
    int handles; /* handles not yet closed; the struct is freed when it reaches 0 */
    bool over;   /* reported or cancelled: nothing more happens but the closing */
    int idle;
    hops_done_cb done;
    void *arg;
    struct sockaddr_in to;
    bool sent[HOPS_MAX_TTL];
    struct sockaddr_storage from[HOPS_MAX_TTL]; /* time exceeded, by TTL - 1 */
    int dest_ttl;                               /* smallest TTL the server answered, 0 none */
};

bool hops_private4(const struct sockaddr *a)
{
    uint32_t v;
    if (!a || a->sa_family != AF_INET)
        return false;
    v = ntohl(((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr);
    return (v >> 24) == 10 ||                  /* 10/8 */
           (v >> 20) == ((172u << 4) | 1) ||   /* 172.16/12: 172.16.0.0 - 172.31.255.255 */
           (v >> 16) == ((192u << 8) | 168) || /* 192.168/16 */
           (v >> 22) == ((100u << 2) | 1) ||   /* 100.64/10: 100.64.0.0 - 100.127.255.255 */
           (v >> 16) == ((169u << 8) | 254) || /* 169.254/16 */
           (v >> 24) == 127;                   /* 127/8 */
}

/* ---------------------------------------------------------------- the rule (pure) */

static void hops_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    const struct sockaddr_in *s = (const struct sockaddr_in *)(const void *)ss;
    if (ss->ss_family != AF_INET || !inet_ntop(AF_INET, &s->sin_addr, buf, (socklen_t)len))
        snprintf(buf, len, "none");
}

/* Appends to r->why, truncating (never overflowing) when it is full. */
static void hops_why(struct hops_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void hops_why(struct hops_result *r, const char *fmt, ...)
{
    size_t used = strlen(r->why);
    va_list ap;
    if (used + 1 >= sizeof r->why)
        return;
    va_start(ap, fmt);
    vsnprintf(r->why + used, sizeof r->why - used, fmt, ap);
    va_end(ap);
}

/* " (TTL 1: 192.168.1.1, TTL 2: none)" for TTLs 1..upto, nothing when upto < 1. */
static void hops_why_below(struct hops_result *r, const struct sockaddr_storage *from, int upto)
{
    char a[INET_ADDRSTRLEN];
    for (int t = 1; t <= upto; t++) {
        hops_addr(&from[t - 1], a, sizeof a);
        hops_why(r, "%sTTL %d: %s", t == 1 ? " (" : ", ", t, a);
    }
    if (upto >= 1)
        hops_why(r, ")");
}

/* The rule. Background: a datagram (or SYN) sent with TTL t is forwarded by the routers at
 * hops 1..t-1 and expires at hop t, so a NAT at hop k has created its mapping when t > k. Every
 * NAT of ours is on the way to any destination outside; a router that answers from a private
 * address (hops_private4) is inside our outermost NAT or is one of our NATs, and one that
 * answers from a global address is past it (its ICMP was not translated on the way: nothing
 * between it and the internet hides it). Only TTLs below the one that reached the server count
 * (above it nothing expires).
 *   1. The smallest TTL t whose time exceeded came from a global address: t. The SYN has passed
 *      every NAT of ours and dies at the first router outside, before the peer's NAT can answer
 *      it. Unanswered TTLs below t do not matter: whatever did not answer forwarded the probe.
 *   2. No global router, but the server answered (port unreachable) at TTL d >= 2: d. The
 *      server is reached without any global router between, so all our NATs lie within the
 *      hops 1..d-1, and TTL d passes them all; it is the smallest TTL that surely does (a
 *      silent router between the last private one and the server may be a NAT too). It does
 *      not tell how far the peer's NAT is, but nothing measured from here could.
 *   3. The server answered at TTL 1 (on our link, no router at all): nothing to measure,
 *      HOPS_DEFAULT_TTL, measured false.
 *   4. Only private routers answered, and nothing above them: the last private TTL L plus 1.
 *      A router past L that does not answer may be a NAT still; L + 1 is the best the answers
 *      say. Measured (it came from the answers).
 *   5. Nothing answered: HOPS_DEFAULT_TTL, measured false. */
struct hops_result hops_choose_dest(const struct sockaddr_storage *from, int n, int dest_ttl)
{
    struct hops_result r;
    char a[INET_ADDRSTRLEN];
    int lim = n, last_private = 0;
    memset(&r, 0, sizeof r);
    if (!from || n < 0)
        n = lim = 0;
    if (dest_ttl > 0 && dest_ttl - 1 < lim)
        lim = dest_ttl - 1;
    for (int i = 0; i < n; i++)
        if (from[i].ss_family == AF_INET)
            r.answers++;
    for (int t = 1; t <= lim; t++) {
        const struct sockaddr_storage *f = &from[t - 1];
        if (f->ss_family != AF_INET)
            continue;
        if (!hops_private4((const struct sockaddr *)f)) {
            r.ttl = t;
            r.measured = true;
            hops_addr(f, a, sizeof a);
            hops_why(&r, "TTL %d: %s is the first global router", t, a);
            hops_why_below(&r, from, t - 1);
            return r;
        }
        last_private = t;
    }
    if (dest_ttl >= 2) {
        r.ttl = dest_ttl;
        r.measured = true;
        hops_why(&r,
                 "TTL %d reached the server with no global router before it, so it passes our NATs",
                 dest_ttl);
        hops_why_below(&r, from, lim);
        return r;
    }
    if (dest_ttl == 1) {
        r.ttl = HOPS_DEFAULT_TTL;
        r.measured = false;
        hops_why(&r, "TTL 1 reached the server: no router to measure, TTL %d (the default)",
                 HOPS_DEFAULT_TTL);
        return r;
    }
    if (last_private > 0) {
        r.ttl = last_private + 1;
        r.measured = true;
        hops_addr(&from[last_private - 1], a, sizeof a);
        hops_why(&r, "TTL %d: %s is the last router that answered, a private one; TTL %d passes it",
                 last_private, a, last_private + 1);
        hops_why_below(&r, from, last_private - 1);
        return r;
    }
    r.ttl = HOPS_DEFAULT_TTL;
    r.measured = false;
    hops_why(&r, "no router answered: TTL %d (the default)", HOPS_DEFAULT_TTL);
    return r;
}

struct hops_result hops_choose(const struct sockaddr_storage *from, int n)
{
    return hops_choose_dest(from, n, 0);
}

/* Whether no answer still to come can change the choice: the deciding TTL (the first global
 * router, or the server) is known and every TTL below it has answered. A TTL that was never
 * sent cannot answer; it counts as answered (silent). */
static bool hops_certain(const struct hops *h)
{
    int top = h->dest_ttl > 0 ? h->dest_ttl - 1 : HOPS_MAX_TTL;
    for (int t = 1; t <= top; t++) {
        const struct sockaddr_storage *f = &h->from[t - 1];
        if (f->ss_family != AF_INET) {
            if (h->sent[t - 1])
                return false;
            continue;
        }
        if (!hops_private4((const struct sockaddr *)f))
            return true;
    }
    /* every TTL below the server answered privately, or (no server) every TTL answered */
    return true;
}

/* ---------------------------------------------------------------- the scan */

static void hops_on_close(uv_handle_t *hd)
{
    struct hops *h = hd->data;
    if (hd == (uv_handle_t *)&h->poll && h->fd >= 0) {
        close(h->fd); /* the poll is off the descriptor now */
        h->fd = -1;
    }
    if (--h->handles == 0)
        free(h);
}

static void hops_close(struct hops *h)
{
    h->over = true;
    uv_close((uv_handle_t *)&h->poll, hops_on_close);
    uv_close((uv_handle_t *)&h->timer, hops_on_close);
}

/* One error from the queue: a time exceeded for a TTL, or the server's port unreachable. */
static void hops_note(struct hops *h, const struct sockaddr_in *orig,
                      const struct sock_extended_err *ee, const unsigned char *payload,
                      ssize_t plen)
{
    const struct sockaddr *off = SO_EE_OFFENDER(ee);
    int t;
    if (ee->ee_origin != SO_EE_ORIGIN_ICMP || orig->sin_family != AF_INET ||
        orig->sin_addr.s_addr != h->to.sin_addr.s_addr)
        return;
    t = (int)ntohs(orig->sin_port) - HOPS_PORT_BASE;
    if (t < 1 || t > HOPS_MAX_TTL || !h->sent[t - 1])
        return;
    if (plen > 0) { /* as much of the payload as the router quoted must be this probe's */
        unsigned char want[HOPS_MAGIC_LEN + 1];
        memcpy(want, hops_magic, HOPS_MAGIC_LEN);
        want[HOPS_MAGIC_LEN] = (unsigned char)t;
        if (memcmp(payload, want, (size_t)plen < sizeof want ? (size_t)plen : sizeof want) != 0)
            return;
    }
    if (off->sa_family != AF_INET)
        return;
    if (ee->ee_type == 11 && ee->ee_code == 0) { /* time exceeded in transit */
        if (h->from[t - 1].ss_family != AF_INET)
            memcpy(&h->from[t - 1], off, sizeof(struct sockaddr_in));
    } else if (ee->ee_type == 3 && ee->ee_code == 3 &&
               ((const struct sockaddr_in *)(const void *)off)->sin_addr.s_addr ==
                   h->to.sin_addr.s_addr) {
        if (h->dest_ttl == 0 || t < h->dest_ttl)
            h->dest_ttl = t; /* port unreachable from the server itself: this TTL reached it */
    }
    /* other unreachables (a router or firewall refusing the probe) say nothing about the hop */
}

/* Reads the error queue (and discards any datagram someone sent us). Returns messages read. */
static int hops_drain(struct hops *h)
{
    int got = 0, err;
    socklen_t elen = sizeof err;
    for (int i = 0; i < HOPS_DRAIN_MAX; i++) {
        unsigned char payload[64];
        union {
            char
                buf[CMSG_SPACE(sizeof(struct sock_extended_err) + sizeof(struct sockaddr_in)) + 64];
            struct cmsghdr align;
        } ctl;
        struct sockaddr_in orig;
        struct iovec iov = {payload, sizeof payload};
        struct msghdr m;
        struct cmsghdr *c;
        ssize_t n;
        memset(&m, 0, sizeof m);
        memset(&orig, 0, sizeof orig);
        m.msg_name = &orig;
        m.msg_namelen = sizeof orig;
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = ctl.buf;
        m.msg_controllen = sizeof ctl.buf;
        n = recvmsg(h->fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT);
        if (n < 0)
            break;
        got++;
        for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
            if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR)
                hops_note(h, &orig, (const struct sock_extended_err *)(void *)CMSG_DATA(c), payload,
                          n);
    }
    for (int i = 0; i < HOPS_DRAIN_MAX; i++) {
        unsigned char junk[64];
        if (recv(h->fd, junk, sizeof junk, MSG_DONTWAIT) < 0)
            break;
        got++;
    }
    /* a pending socket error without a queued message would keep EPOLLERR up: clear it */
    if (getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err)
        got++;
    return got;
}

static void hops_finish(struct hops *h)
{
    struct hops_result r = hops_choose_dest(h->from, HOPS_MAX_TTL, h->dest_ttl);
    uv_poll_stop(&h->poll);
    uv_timer_stop(&h->timer);
    h->over = true; /* a hops_cancel from the callback is then a no-op */
    h->done(h, &r, h->arg);
    hops_close(h);
}

static void hops_on_poll(uv_poll_t *p, int status, int events)
{
    struct hops *h = p->data;
    (void)events;
    if (h->over)
        return;
    /* status < 0 is how libuv reports EPOLLERR, a queued ICMP error (the poll is stopped then) */
    h->idle = hops_drain(h) > 0 ? 0 : h->idle + 1;
    if (hops_certain(h)) {
        hops_finish(h);
        return;
    }
    if (status < 0 || !uv_is_active((uv_handle_t *)p)) {
        /* restart, unless it keeps waking with nothing to read: then the deadline does it */
        if (h->idle < HOPS_IDLE_MAX)
            uv_poll_start(p, UV_READABLE, hops_on_poll);
    }
}

static void hops_on_timer(uv_timer_t *t)
{
    struct hops *h = t->data;
    if (h->over)
        return;
    hops_drain(h);
    hops_finish(h);
}

/* Sends the probe for TTL t; true when it left. A pending socket error (an ICMP for an earlier
 * probe, which IP_RECVERR also sets as the socket's error) fails the next send with its errno
 * (EHOSTUNREACH for a time exceeded, ECONNREFUSED for a port unreachable): when the queue then
 * holds something, it is read and the send tried once more; an error of the send itself (no
 * route, say) leaves nothing queued and ends the attempt. */
static bool hops_send(struct hops *h, int t, char *err, size_t errlen)
{
    unsigned char payload[HOPS_MAGIC_LEN + 1];
    struct sockaddr_in dst = h->to;
    memcpy(payload, hops_magic, HOPS_MAGIC_LEN);
    payload[HOPS_MAGIC_LEN] = (unsigned char)t;
    dst.sin_port = htons((uint16_t)(HOPS_PORT_BASE + t));
    if (setsockopt(h->fd, IPPROTO_IP, IP_TTL, &t, sizeof t) < 0) {
        snprintf(err, errlen, "IP_TTL %d: %s", t, strerror(errno));
        return false;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (sendto(h->fd, payload, sizeof payload, 0, (const struct sockaddr *)&dst, sizeof dst) ==
            (ssize_t)sizeof payload)
            return true;
        snprintf(err, errlen, "sendto with TTL %d: %s", t, strerror(errno));
        if (hops_drain(h) == 0)
            return false;
    }
    return false;
}

struct hops *hops_start(uv_loop_t *loop, const struct sockaddr *to, hops_done_cb done, void *arg,
                        char *err, size_t errlen)
{
    struct hops *h;
    int one = 1, rc, sent = 0;
    char e[128] = "";
    if (!loop || !to || !done) {
        snprintf(err, errlen, "bad arguments");
        return NULL;
    }
    if (to->sa_family != AF_INET) {
        snprintf(err, errlen, "TTL discovery is IPv4 only");
        return NULL;
    }
    if (!(h = calloc(1, sizeof *h))) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->loop = loop;
    h->done = done;
    h->arg = arg;
    memcpy(&h->to, to, sizeof h->to);
    h->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (h->fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        free(h);
        return NULL;
    }
    if (setsockopt(h->fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one) < 0) {
        snprintf(err, errlen, "IP_RECVERR: %s", strerror(errno));
        close(h->fd);
        free(h);
        return NULL;
    }
    for (int t = 1; t <= HOPS_MAX_TTL; t++) {
        h->sent[t - 1] = hops_send(h, t, e, sizeof e);
        sent += h->sent[t - 1];
    }
    if (sent == 0) {
        snprintf(err, errlen, "%s", e);
        close(h->fd);
        free(h);
        return NULL;
    }
    if ((rc = uv_poll_init(loop, &h->poll, h->fd)) < 0) {
        snprintf(err, errlen, "poll: %s", uv_strerror(rc));
        close(h->fd);
        free(h);
        return NULL;
    }
    uv_timer_init(loop, &h->timer);
    h->poll.data = h->timer.data = h;
    h->handles = 2;
    hops_drain(h);
    /* answers read while sending may already decide it: report from the loop, not from here */
    uv_timer_start(&h->timer, hops_on_timer, hops_certain(h) ? 0 : HOPS_WAIT_MS, 0);
    uv_poll_start(&h->poll, UV_READABLE, hops_on_poll); /* else the deadline reads the queue */
    return h;
}

void hops_cancel(struct hops *h)
{
    if (!h || h->over)
        return;
    uv_poll_stop(&h->poll);
    uv_timer_stop(&h->timer);
    hops_close(h);
}
