#include "peer/probe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/endpoint.h"
#include "common/linebuf.h"
#include "common/sock.h"
#include "peer/hello.h"

/* CHALLENGE: connected, waiting for the server's challenge; READING: probe sent */
enum prb_state { PRB_CONNECTING, PRB_CHALLENGE, PRB_READING, PRB_DONE };

struct prb {
    uv_poll_t poll;
    uv_timer_t timer;
    int fd;
    int open_handles; /* freed when both close callbacks have run */
    enum prb_state state;
    prb_done_cb done;
    void *arg;
    char token[PROTO_TOKEN_LEN + 1];
    bool have_secret;
    unsigned char secret[32];
    struct prb_result res;
    struct lb lb;
};

static void prb_on_close(uv_handle_t *h)
{
    struct prb *p = h->data;
    if (--p->open_handles > 0)
        return;
    if (p->fd >= 0)
        close(p->fd);
    free(p);
}

static void prb_close(struct prb *p)
{
    p->state = PRB_DONE;
    uv_close((uv_handle_t *)&p->poll, prb_on_close);
    uv_close((uv_handle_t *)&p->timer, prb_on_close);
}

/* Reports once and starts the close; the result is copied so done may start another probe. */
static void prb_finish(struct prb *p)
{
    struct prb_result r = p->res;
    if (p->state == PRB_DONE)
        return;
    prb_close(p);
    p->done(p, &r, p->arg);
}

static void prb_fail(struct prb *p, const char *what, const char *detail)
{
    p->res.ok = 0;
    snprintf(p->res.why, sizeof p->res.why, "%s%s%s", what, detail[0] ? ": " : "", detail);
    prb_finish(p);
}

static void prb_send(struct prb *p, const unsigned char *nonce)
{
    struct proto_msg m;
    char line[PROTO_MAX_LINE];
    int n;

    memset(&m, 0, sizeof m);
    m.type = PROTO_PROBE;
    m.u.probe.version = PROTO_VERSION;
    memcpy(m.u.probe.token, p->token, sizeof m.u.probe.token);
    hello_admit(p->have_secret ? p->secret : NULL, nonce, &m);
    n = proto_encode(&m, line, sizeof line);
    /* one short line into an empty socket buffer: it goes whole or not at all */
    if (n <= 0 || send(p->fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
        prb_fail(p, "cannot send", n <= 0 ? "encoding" : strerror(errno));
        return;
    }
    p->state = PRB_READING;
}

static int prb_on_line(void *arg, char *line, size_t len)
{
    struct prb *p = arg;
    struct proto_msg m;
    char why[160];
    enum proto_err e = proto_decode(line, len, PROTO_TO_PEER, &m, why, sizeof why);
    if (e != PROTO_OK) {
        prb_fail(p, "invalid answer", why);
        return 1;
    }
    if (m.type == PROTO_ERROR) {
        prb_fail(p, "refused", m.u.error.message);
        return 1;
    }
    if (p->state == PRB_CHALLENGE && m.type == PROTO_CHALLENGE) {
        prb_send(p, m.u.challenge.nonce);
        return p->state != PRB_READING;
    }
    if (p->state != PRB_READING || m.type != PROTO_OBSERVED) {
        prb_fail(p, "unexpected answer", proto_type_name(m.type));
        return 1;
    }
    p->res.ok = 1;
    p->res.observed = m.u.observed.observed;
    p->res.mapping = m.u.observed.mapping;
    prb_finish(p);
    return 1;
}

static void prb_read(struct prb *p)
{
    char buf[PROTO_MAX_LINE];
    ssize_t n = recv(p->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        prb_fail(p, "no answer", n == 0 ? "closed by the server" : strerror(errno));
        return;
    }
    if (lb_feed(&p->lb, buf, (size_t)n, prb_on_line, p) < 0)
        prb_fail(p, "invalid answer", "line too long");
}

static void prb_on_poll(uv_poll_t *h, int status, int events);

static void prb_connected(struct prb *p)
{
    int err = 0;
    socklen_t elen = sizeof err;
    getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err) {
        prb_fail(p, "cannot connect", strerror(err));
        return;
    }
    p->state = PRB_CHALLENGE;
    uv_poll_start(&p->poll, UV_READABLE, prb_on_poll);
}

static void prb_on_poll(uv_poll_t *h, int status, int events)
{
    struct prb *p = h->data;
    (void)events;
    if (p->state == PRB_CONNECTING)
        prb_connected(p);
    else if (p->state != PRB_DONE && status < 0)
        prb_fail(p, "no answer", uv_strerror(status));
    else if (p->state != PRB_DONE)
        prb_read(p);
}

static void prb_on_timeout(uv_timer_t *t)
{
    struct prb *p = t->data;
    prb_fail(p, p->state == PRB_CONNECTING ? "cannot connect" : "no answer", "timed out");
}

struct prb *prb_start(uv_loop_t *loop, const struct sockaddr *local, const struct sockaddr *server,
                      const char *token, const unsigned char *secret, uint64_t timeout_ms,
                      prb_done_cb done, void *arg, char *err, size_t errlen)
{
    struct prb *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->done = done;
    p->arg = arg;
    snprintf(p->token, sizeof p->token, "%s", token);
    p->have_secret = secret != NULL;
    if (secret)
        memcpy(p->secret, secret, sizeof p->secret);
    lb_init(&p->lb);
    p->fd = sk_open_bound(local, err, errlen);
    if (p->fd < 0)
        goto fail;
    if (connect(p->fd, server, ep_len(server)) < 0 && errno != EINPROGRESS) {
        snprintf(err, errlen, "connect: %s", strerror(errno));
        goto fail;
    }
    if (uv_poll_init(loop, &p->poll, p->fd) < 0) {
        snprintf(err, errlen, "cannot watch the probe socket");
        goto fail;
    }
    uv_timer_init(loop, &p->timer);
    p->poll.data = p->timer.data = p;
    p->open_handles = 2;
    p->state = PRB_CONNECTING;
    uv_poll_start(&p->poll, UV_WRITABLE, prb_on_poll);
    uv_timer_start(&p->timer, prb_on_timeout, timeout_ms, 0);
    return p;
fail:
    if (p->fd >= 0)
        close(p->fd);
    free(p);
    return NULL;
}

void prb_cancel(struct prb *p)
{
    if (p && p->state != PRB_DONE)
        prb_close(p);
}
