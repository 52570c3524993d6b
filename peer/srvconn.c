#include "peer/srvconn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/endpoint.h"
#include "common/linebuf.h"
#include "common/sock.h"
#include "common/stamp.h"

struct sc {
    uv_poll_t poll; /* our own reads: a peek, or recvmsg for the kernel's stamp */
    uv_timer_t timer;
    int handles; /* freed when both have closed */
    int fd;
    enum sc_phase phase;
    unsigned flags;
    uint64_t answer_ms;
    const struct sc_cbs *cbs;
    void *data;
    struct lb lb;
    uint64_t rx_us;     /* arrival time of the bytes being framed */
    bool feat_birthday; /* the challenge listed "birthday" */
    bool feat_resume;   /* the challenge listed "resume" */
    bool feat_report;   /* the challenge listed "report" */
    bool feat_replace;  /* ... "replace" (or "resume": a server that takes hello.replace) */
    bool feat_code;     /* ... "code": the wormhole mailbox */
    char rbuf[16384];
};

static void sc_on_closed(uv_handle_t *h)
{
    struct sc *sc = h->data;
    if (--sc->handles > 0)
        return;
    lb_free(&sc->lb);
    free(sc);
}

/* Closing the poll handle first matters: libuv drops the descriptor from epoll when the handle
 * closes, which must happen before anyone else (sc_detach's taker) registers it. */
static void sc_shut(struct sc *sc)
{
    sc->phase = SC_CLOSED;
    uv_timer_stop(&sc->timer);
    uv_close((uv_handle_t *)&sc->poll, sc_on_closed);
    uv_close((uv_handle_t *)&sc->timer, sc_on_closed);
    if (sc->fd >= 0)
        close(sc->fd);
    sc->fd = -1;
}

static void sc_fail(struct sc *sc, enum sc_fail kind, enum proto_err perr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void sc_fail(struct sc *sc, enum sc_fail kind, enum proto_err perr, const char *fmt, ...)
{
    struct sc_error e = {.kind = kind, .phase = sc->phase, .perr = perr};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.detail, sizeof e.detail, fmt, ap);
    va_end(ap);
    sc_shut(sc);
    sc->cbs->fail(sc, sc->data, &e);
}

/* One read into rbuf (flags: MSG_PEEK or 0), noting the arrival time. */
static ssize_t sc_recv(struct sc *sc, size_t len, int flags)
{
    char cbuf[CMSG_SPACE(sizeof(struct timespec))];
    struct iovec iov = {sc->rbuf, len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n;
    if (sc->flags & SC_STAMP) {
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof cbuf;
    }
    n = recvmsg(sc->fd, &mh, flags | MSG_DONTWAIT);
    sc->rx_us = clk_us();
    for (struct cmsghdr *cm = n > 0 && mh.msg_controllen ? CMSG_FIRSTHDR(&mh) : NULL; cm;
         cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof ts);
            sc->rx_us = stamp_to_mono(&ts);
        }
    return n;
}

/* The bytes to take off the socket now: all that is there, or in SC_PEEK mode what a peek
 * shows up to (and with) the first newline. A line without its newline yet is taken as far as
 * it goes (it is all the server's), so the poll does not spin on it. */
static ssize_t sc_take(struct sc *sc)
{
    ssize_t n;
    char *nl;
    if (!(sc->flags & SC_PEEK))
        return sc_recv(sc, sizeof sc->rbuf, 0);
    n = sc_recv(sc, sizeof sc->rbuf, MSG_PEEK);
    if (n <= 0)
        return n;
    nl = memchr(sc->rbuf, '\n', (size_t)n);
    if (nl)
        n = nl - sc->rbuf + 1;
    /* the peeked bytes are there: this read returns exactly them */
    if (sc_recv(sc, (size_t)n, 0) == n)
        return n;
    errno = EIO;
    return -1;
}

static void sc_answer(struct sc *sc, const unsigned char *nonce)
{
    struct proto_msg m;
    char line[PROTO_MAX_LINE];
    int n;
    memset(&m, 0, sizeof m);
    sc->cbs->first(sc, sc->data, nonce, &m);
    n = proto_encode(&m, line, sizeof line);
    /* our first bytes on a fresh connection: the send buffer takes the short line whole */
    if (n <= 0 || send(sc->fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
        sc_fail(sc, SC_FAIL_SEND, PROTO_OK, "%s", n <= 0 ? "encoding failed" : strerror(errno));
        return;
    }
    sc->phase = SC_ANSWER;
}

static int sc_on_line(void *arg, char *line, size_t len)
{
    struct sc *sc = arg;
    struct proto_msg m;
    char why[SC_DETAIL];
    enum proto_err e = proto_decode(line, len, PROTO_TO_PEER, &m, why, sizeof why);
    if (e != PROTO_OK) {
        sc_fail(sc, SC_FAIL_INVALID, e, "%s", why);
    } else if (sc->phase == SC_CHALLENGE && m.type == PROTO_CHALLENGE) {
        sc->feat_birthday = m.u.challenge.feat_birthday;
        sc->feat_resume = m.u.challenge.feat_resume;
        sc->feat_report = m.u.challenge.feat_report;
        sc->feat_replace = m.u.challenge.feat_replace || m.u.challenge.feat_resume;
        sc->feat_code = m.u.challenge.feat_code;
        sc_answer(sc, m.u.challenge.nonce); /* the server speaks first */
    } else {
        sc->cbs->msg(sc, sc->data, &m, sc->rx_us);
    }
    /* a callback that ended the exchange stops the framing: in SC_PEEK mode nothing was read
     * behind this line anyway */
    return sc->phase == SC_CLOSED;
}

/* One read and its lines. Returns 1 when bytes came and the exchange goes on, 0 when there
 * was nothing to read, -1 when it has ended. */
static int sc_read(struct sc *sc)
{
    ssize_t n = sc_take(sc);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0) {
        sc_fail(sc, SC_FAIL_CLOSED, PROTO_OK, "%s",
                n == 0 ? "closed by the server" : strerror(errno));
        return -1;
    }
    if (lb_feed(&sc->lb, sc->rbuf, (size_t)n, sc_on_line, sc) < 0)
        sc_fail(sc, SC_FAIL_LONG, PROTO_OK, "a line over %d bytes", LB_MAX);
    return sc->phase == SC_CLOSED ? -1 : 1;
}

static void sc_connected(struct sc *sc, int status);

static void sc_on_poll(uv_poll_t *h, int status, int events)
{
    struct sc *sc = h->data;
    int err = 0;
    socklen_t elen = sizeof err;
    (void)events;
    if (sc->phase == SC_CONNECTING) {
        sc_connected(sc, status);
        return;
    }
    if (status >= 0) {
        sc_read(sc);
        return;
    }
    /* an error stops the poll (libuv): what arrived before it is still the server's word
     * (an error line before a reset), so read it all, then report the socket's error */
    while (sc_read(sc) > 0)
        ;
    if (sc->phase == SC_CLOSED)
        return;
    getsockopt(sc->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    sc_fail(sc, SC_FAIL_CLOSED, PROTO_OK, "%s", err ? strerror(err) : uv_strerror(status));
}

static void sc_on_timer(uv_timer_t *t)
{
    struct sc *sc = t->data;
    sc_fail(sc, SC_FAIL_TIMEOUT, PROTO_OK, "%s", "timed out");
}

static void sc_connected(struct sc *sc, int status)
{
    struct sockaddr_storage local;
    int err = 0, one = 1;
    socklen_t elen = sizeof err;
    getsockopt(sc->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    if (status < 0 || err) {
        sc_fail(sc, SC_FAIL_CONNECT, PROTO_OK, "%s", err ? strerror(err) : uv_strerror(status));
        return;
    }
    sk_local(sc->fd, &local);
    /* short interactive lines; the relay hands this socket on to the punch engine as it is */
    setsockopt(sc->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (sc->flags & SC_STAMP)
        setsockopt(sc->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    sc->phase = SC_CHALLENGE;
    if (sc->answer_ms != SC_KEEP_DEADLINE)
        sc_timeout(sc, sc->answer_ms);
    uv_poll_start(&sc->poll, UV_READABLE, sc_on_poll);
    if (sc->cbs->connected)
        sc->cbs->connected(sc, sc->data, &local);
}

/* The descriptor, bound and connecting; -1 with err filled. */
static int sc_socket(const struct sc_cfg *cfg, struct sc_error *err)
{
    int fd;
    err->perr = PROTO_OK;
    err->phase = SC_CONNECTING;
    err->kind = SC_FAIL_SOCKET;
    if (cfg->local) {
        fd = sk_open_bound(cfg->local, err->detail, sizeof err->detail);
        if (fd < 0)
            return -1;
    } else if ((fd = socket(cfg->server->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                            0)) < 0) {
        snprintf(err->detail, sizeof err->detail, "%s", strerror(errno));
        return -1;
    }
    if (connect(fd, cfg->server, ep_len(cfg->server)) < 0 && errno != EINPROGRESS) {
        err->kind = SC_FAIL_CONNECT;
        snprintf(err->detail, sizeof err->detail, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

struct sc *sc_open(uv_loop_t *loop, const struct sc_cfg *cfg, const struct sc_cbs *cbs, void *data,
                   struct sc_error *err)
{
    struct sc *sc = calloc(1, sizeof *sc);
    int rc;
    if (!sc) {
        *err = (struct sc_error){.kind = SC_FAIL_SOCKET, .phase = SC_CONNECTING};
        snprintf(err->detail, sizeof err->detail, "out of memory");
        return NULL;
    }
    sc->fd = sc_socket(cfg, err);
    if (sc->fd < 0)
        goto fail;
    if ((rc = uv_poll_init(loop, &sc->poll, sc->fd)) < 0) {
        err->kind = SC_FAIL_WATCH;
        snprintf(err->detail, sizeof err->detail, "%s", uv_strerror(rc));
        goto fail;
    }
    uv_timer_init(loop, &sc->timer);
    sc->poll.data = sc->timer.data = sc;
    sc->handles = 2;
    sc->phase = SC_CONNECTING;
    sc->flags = cfg->flags;
    sc->answer_ms = cfg->answer_ms;
    sc->cbs = cbs;
    sc->data = data;
    lb_init(&sc->lb);
    sc_timeout(sc, cfg->connect_ms);
    uv_poll_start(&sc->poll, UV_WRITABLE, sc_on_poll);
    return sc;
fail:
    if (sc->fd >= 0)
        close(sc->fd);
    free(sc);
    return NULL;
}

int sc_send(struct sc *sc, const struct proto_msg *m)
{
    char line[PROTO_MAX_LINE];
    int n = proto_encode(m, line, sizeof line);
    ssize_t w;
    if (n <= 0) {
        errno = EINVAL;
        return -1;
    }
    if (sc->fd < 0) {
        errno = ENOTCONN;
        return -1;
    }
    /* control lines are tiny and rare: the socket buffer takes them whole */
    w = send(sc->fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w == n)
        return 0;
    if (w >= 0)
        errno = EAGAIN; /* a part went: the line is broken all the same */
    return -1;
}

void sc_timeout(struct sc *sc, uint64_t ms)
{
    uv_timer_stop(&sc->timer);
    if (ms && sc->phase != SC_CLOSED)
        uv_timer_start(&sc->timer, sc_on_timer, ms, 0);
}

enum sc_phase sc_phase(const struct sc *sc)
{
    return sc->phase;
}

int sc_fd(const struct sc *sc)
{
    return sc->fd;
}

bool sc_feat_birthday(const struct sc *sc)
{
    return sc->feat_birthday;
}

bool sc_feat_report(const struct sc *sc)
{
    return sc->feat_report;
}

bool sc_feat_resume(const struct sc *sc)
{
    return sc->feat_resume;
}

bool sc_feat_replace(const struct sc *sc)
{
    return sc->feat_replace;
}

bool sc_feat_code(const struct sc *sc)
{
    return sc->feat_code;
}

int sc_detach(struct sc *sc)
{
    int fd = sc->fd;
    sc->fd = -1;
    if (sc->phase != SC_CLOSED)
        sc_shut(sc);
    return fd;
}

void sc_close(struct sc *sc)
{
    if (sc && sc->phase != SC_CLOSED)
        sc_shut(sc);
}
