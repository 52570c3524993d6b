#include "peer/punch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/container.h"
#include "common/endpoint.h"
#include "common/linebuf.h"
#include "common/log.h"
#include "common/sock.h"

#define PUNCH_BACKOFF_MIN_MS 5
#define PUNCH_BACKOFF_MAX_MS 100

/* One outgoing attempt (per candidate, re-dialled after each failure) or one accepted
 * connection. */
struct pconn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_timer_t retry;
    struct punch *p;
    struct pconn *next; /* inbound list */
    int cand;           /* -1: accepted by the listener */
    bool tcp_open;      /* tcp initialised and not yet closed */
    bool dead;          /* no more retries (bad handshake) */
    bool line_seen;
    bool line_ok;
    unsigned backoff_ms;
    unsigned tries;
    int last_err;
    struct lb lb;
};

struct punch {
    uv_loop_t *loop;
    struct punch_cfg cfg;
    struct peer_link *link;
    punch_done_cb done;
    void *arg;
    uv_timer_t deadline;
    uv_tcp_t listener;
    bool listening;
    bool finished;
    int handles; /* open libuv handles; the punch is freed when the last one closes */
    uint64_t start_ms;
    unsigned attempts;
    struct pconn att[PUNCH_MAX_CAND];
    struct pconn *inbound;
    char rbuf[PROTO_MAX_LINE]; /* never more than one handshake line plus what follows it */
};

static void pu_dial(struct pconn *c);
static void pu_begin(struct pconn *c);

static void pu_on_retry(uv_timer_t *t)
{
    pu_dial(container_of(t, struct pconn, retry));
}

static void pu_handle_closed(uv_handle_t *h)
{
    struct punch *p = h->data;
    if (--p->handles == 0 && p->finished)
        free(p);
}

static void pu_inbound_closed(uv_handle_t *h)
{
    struct pconn *c = container_of((uv_tcp_t *)h, struct pconn, tcp);
    struct punch *p = c->p;
    free(c);
    if (--p->handles == 0 && p->finished)
        free(p);
}

static void pu_attempt_closed(uv_handle_t *h)
{
    struct pconn *c = container_of((uv_tcp_t *)h, struct pconn, tcp);
    struct punch *p = c->p;
    if (!p->finished && !c->dead) {
        uv_timer_start(&c->retry, pu_on_retry, c->backoff_ms, 0);
        c->backoff_ms =
            c->backoff_ms * 2 > PUNCH_BACKOFF_MAX_MS ? PUNCH_BACKOFF_MAX_MS : c->backoff_ms * 2;
    }
    pu_handle_closed(h);
}

static void pu_close_conn(struct pconn *c)
{
    if (!c->tcp_open)
        return;
    c->tcp_open = false;
    uv_close((uv_handle_t *)&c->tcp, c->cand < 0 ? pu_inbound_closed : pu_attempt_closed);
}

static const char *pu_kind(const struct pconn *c)
{
    return c->cand < 0 ? "inbound" : c->p->cfg.cand[c->cand].kind;
}

/* Summarises why no candidate worked, for the user. */
static void pu_failure_text(const struct punch *p, char *buf, size_t len)
{
    char ep[EP_STRLEN];
    size_t off = 0;
    for (int i = 0; i < p->cfg.ncand && off < len; i++) {
        const struct pconn *c = &p->att[i];
        int n = snprintf(buf + off, len - off, "%s%s (%s): %s after %u attempt%s", i ? "; " : "",
                         ep_format((const struct sockaddr *)&p->cfg.cand[i].addr, ep, sizeof ep),
                         p->cfg.cand[i].kind, c->last_err ? uv_strerror(c->last_err) : "no answer",
                         c->tries, c->tries == 1 ? "" : "s");
        if (n < 0)
            break;
        off += (size_t)n;
    }
    if (p->cfg.ncand == 0)
        snprintf(buf, len, "no usable candidate address");
}

static void pu_finish(struct punch *p, int status, const char *why)
{
    if (p->finished)
        return;
    p->finished = true;
    p->done(p, status, why, p->arg);
    uv_close((uv_handle_t *)&p->deadline, pu_handle_closed);
    if (p->listening)
        uv_close((uv_handle_t *)&p->listener, pu_handle_closed);
    for (int i = 0; i < p->cfg.ncand; i++) {
        uv_close((uv_handle_t *)&p->att[i].retry, pu_handle_closed);
        pu_close_conn(&p->att[i]);
    }
    for (struct pconn *c = p->inbound; c; c = c->next)
        pu_close_conn(c);
}

static void pu_win(struct pconn *c, const char *rest, size_t restlen)
{
    struct punch *p = c->p;
    struct peer_link *l = p->link;
    uv_os_fd_t fd;
    socklen_t alen = sizeof l->remote;

    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 || (l->fd = dup(fd)) < 0) {
        pu_finish(p, EXIT_LOCAL, "cannot take over the connection (out of descriptors)");
        return;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    getpeername(l->fd, (struct sockaddr *)&l->remote, &alen);
    ep_unmap(&l->remote);
    l->via = pu_kind(c);
    l->punch_ms = clk_ms() - p->start_ms;
    l->attempts = p->attempts;
    l->prefill_len = restlen;
    memcpy(l->prefill, rest, restlen);
    pu_finish(p, EXIT_DONE, NULL);
}

static int pu_on_line(void *ctx, char *line, size_t len)
{
    struct pconn *c = ctx;
    char why[256];
    c->line_seen = true;
    c->line_ok = shake_verify(c->p->cfg.shake, line, len, why, sizeof why);
    if (!c->line_ok)
        LOG_I("ignoring a connection (%s): %s", pu_kind(c), why);
    return 1;
}

static bool pu_send_shake(struct pconn *c)
{
    char line[PROTO_MAX_LINE];
    int n = shake_encode(c->p->cfg.shake, line, sizeof line);
    uv_buf_t b = uv_buf_init(line, n > 0 ? (unsigned)n : 0);
    /* a fresh connection's send buffer is empty, so the short line goes out whole or not at all */
    return n > 0 && uv_try_write((uv_stream_t *)&c->tcp, &b, 1) == n;
}

static void pu_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct pconn *c = container_of((uv_tcp_t *)h, struct pconn, tcp);
    (void)suggested;
    *buf = uv_buf_init(c->p->rbuf, sizeof c->p->rbuf);
}

static void pu_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pconn *c = container_of((uv_tcp_t *)s, struct pconn, tcp);
    ssize_t used;
    if (nread == 0)
        return;
    if (nread < 0) {
        c->last_err = (int)nread;
        pu_close_conn(c);
        return;
    }
    used = lb_feed(&c->lb, buf->base, (size_t)nread, pu_on_line, c);
    if (used < 0 || (c->line_seen && !c->line_ok)) {
        c->dead = true;
        pu_close_conn(c);
        return;
    }
    if (!c->line_seen)
        return;
    if (c->p->cfg.shake->role == PROTO_INITIATOR && !pu_send_shake(c)) {
        pu_close_conn(c);
        return;
    }
    pu_win(c, buf->base + used, (size_t)(nread - used));
}

/* A TCP connection exists: verify it (or take it, in plain mode). */
static void pu_begin(struct pconn *c)
{
    struct punch *p = c->p;
    if (!p->cfg.shake) {
        pu_win(c, NULL, 0);
        return;
    }
    lb_init(&c->lb);
    c->line_seen = c->line_ok = false;
    if (p->cfg.shake->role == PROTO_RESPONDER && !pu_send_shake(c)) {
        pu_close_conn(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, pu_alloc, pu_on_read);
}

static void pu_on_connect(uv_connect_t *req, int status)
{
    struct pconn *c = req->data;
    char ep[EP_STRLEN];
    if (c->p->finished || !c->tcp_open)
        return;
    if (status < 0) {
        c->last_err = status;
        LOG_D("connect to %s: %s",
              ep_format((struct sockaddr *)&c->p->cfg.cand[c->cand].addr, ep, sizeof ep),
              uv_strerror(status));
        pu_close_conn(c);
        return;
    }
    pu_begin(c);
}

static void pu_dial(struct pconn *c)
{
    struct punch *p = c->p;
    char err[200];
    int fd, rc;

    if (p->finished || c->dead)
        return;
    c->tries++;
    p->attempts++;
    fd = sk_open_bound((struct sockaddr *)&p->cfg.local, err, sizeof err);
    if (fd < 0) {
        LOG_D("%s", err);
        c->last_err = UV_EADDRINUSE;
        uv_timer_start(&c->retry, pu_on_retry, PUNCH_BACKOFF_MAX_MS, 0);
        return;
    }
    uv_tcp_init(p->loop, &c->tcp);
    c->tcp.data = p;
    p->handles++;
    c->tcp_open = true;
    if ((rc = uv_tcp_open(&c->tcp, fd)) < 0) {
        close(fd);
        c->last_err = rc;
        pu_close_conn(c);
        return;
    }
    c->creq.data = c;
    rc = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&p->cfg.cand[c->cand].addr,
                        pu_on_connect);
    if (rc < 0) {
        c->last_err = rc;
        pu_close_conn(c);
    }
}

static void pu_on_inbound(uv_stream_t *server, int status)
{
    struct punch *p = server->data;
    struct sockaddr_storage from;
    int alen = sizeof from;
    struct pconn *c;

    if (status < 0 || p->finished || !(c = calloc(1, sizeof *c)))
        return;
    c->p = p;
    c->cand = -1;
    uv_tcp_init(p->loop, &c->tcp);
    c->tcp.data = p;
    p->handles++;
    c->tcp_open = true;
    c->next = p->inbound;
    p->inbound = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        pu_close_conn(c);
        return;
    }
    uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&from, &alen);
    ep_unmap(&from);
    /* without a handshake only the expected host may take the place of the peer */
    if (!p->cfg.shake &&
        !ep_same_host((struct sockaddr *)&from, (struct sockaddr *)&p->cfg.cand[0].addr)) {
        pu_close_conn(c);
        return;
    }
    pu_begin(c);
}

static void pu_listen(struct punch *p)
{
    char err[200];
    int fd = sk_listen_reuse((struct sockaddr *)&p->cfg.local, 16, err, sizeof err);
    if (fd < 0) {
        LOG_D("no listener on the punch port: %s", err);
        return;
    }
    uv_tcp_init(p->loop, &p->listener);
    p->listener.data = p;
    p->handles++;
    p->listening = true;
    if (uv_tcp_open(&p->listener, fd) < 0) {
        close(fd);
        return;
    }
    if (uv_listen((uv_stream_t *)&p->listener, 16, pu_on_inbound) < 0)
        LOG_D("listen on the punch port failed");
}

static void pu_on_deadline(uv_timer_t *t)
{
    struct punch *p = t->data;
    char why[1024];
    pu_failure_text(p, why, sizeof why);
    pu_finish(p, EXIT_PUNCH, why);
}

struct punch *punch_start(uv_loop_t *loop, const struct punch_cfg *cfg, struct peer_link *link,
                          punch_done_cb done, void *arg, char *err, size_t errlen)
{
    struct punch *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->loop = loop;
    p->cfg = *cfg;
    p->link = link;
    p->done = done;
    p->arg = arg;
    p->start_ms = clk_ms();
    uv_timer_init(loop, &p->deadline);
    p->deadline.data = p;
    p->handles++;
    uv_timer_start(&p->deadline, pu_on_deadline, cfg->timeout_ms, 0);
    pu_listen(p);
    for (int i = 0; i < cfg->ncand; i++) {
        struct pconn *c = &p->att[i];
        c->p = p;
        c->cand = i;
        c->backoff_ms = PUNCH_BACKOFF_MIN_MS;
        uv_timer_init(loop, &c->retry);
        c->retry.data = p;
        p->handles++;
        pu_dial(c);
    }
    return p;
}

static void pu_add_cand(struct punch_cfg *cfg, const struct sockaddr_storage *a, const char *kind)
{
    if (a->ss_family != cfg->local.ss_family || cfg->ncand >= PUNCH_MAX_CAND)
        return;
    for (int i = 0; i < cfg->ncand; i++)
        if (ep_equal((const struct sockaddr *)&cfg->cand[i].addr, (const struct sockaddr *)a))
            return;
    cfg->cand[cfg->ncand].addr = *a;
    cfg->cand[cfg->ncand].kind = kind;
    cfg->ncand++;
}

void punch_candidates(struct punch_cfg *cfg, const struct sockaddr_storage *observed,
                      const struct proto_eplist *lan)
{
    cfg->ncand = 0;
    pu_add_cand(cfg, observed, "public");
    if (lan->n > 0) {
        /* A router that had to remap the control connection (its port was taken) may still
         * keep the peer's own port towards us: aim there too. */
        struct sockaddr_storage guess = *observed;
        ep_set_port((struct sockaddr *)&guess, ep_port((const struct sockaddr *)&lan->ep[0]));
        pu_add_cand(cfg, &guess, "port-preserved");
    }
    for (int i = 0; i < lan->n; i++)
        pu_add_cand(cfg, &lan->ep[i], "lan");
}
