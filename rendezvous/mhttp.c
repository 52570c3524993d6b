#include "rendezvous/mhttp.h"

#include "common/endpoint.h"
#include "common/log.h"
#include "common/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the pure parser ---- */

#define MH_MAX_METHOD 16

/* Bytes a head may hold: printable ASCII, tab, CR, LF. Anything else (NUL, other controls,
 * 8-bit) is not a request anyone's Prometheus sends. */
static bool mh_head_byte(unsigned char b)
{
    return (b >= 0x20 && b < 0x7f) || b == '\t' || b == '\r' || b == '\n';
}

/* "METHOD SP /target SP HTTP/1.d" in line[0..n) (without its CR LF). */
static enum mh_verdict mh_request_line(const char *line, size_t n, struct mh_req *out)
{
    size_t i = 0, m, t0, plen;
    while (i < n && line[i] >= 'A' && line[i] <= 'Z' && i < MH_MAX_METHOD)
        i++;
    m = i;
    if (m == 0 || i >= n || line[i] != ' ')
        return MH_BAD;
    t0 = ++i;
    if (i >= n || line[i] != '/')
        return MH_BAD;
    while (i < n && line[i] > ' ' && line[i] < 0x7f)
        i++;
    plen = i - t0;
    for (size_t k = t0; k < i; k++)
        if (line[k] == '?' || line[k] == '#') {
            plen = k - t0;
            break;
        }
    if (plen > MH_MAX_PATH || i >= n || line[i] != ' ')
        return MH_BAD;
    i++;
    if (n - i != 8 || memcmp(line + i, "HTTP/1.", 7) != 0 || line[i + 7] < '0' || line[i + 7] > '9')
        return MH_BAD;
    if (m == 3 && memcmp(line, "GET", 3) == 0)
        out->method = MH_GET;
    else if (m == 4 && memcmp(line, "HEAD", 4) == 0)
        out->method = MH_HEAD;
    else
        out->method = MH_OTHER;
    memcpy(out->path, line + t0, plen);
    out->path[plen] = '\0';
    return MH_OK;
}

/* The request line is judged as soon as it is complete, so garbage is answered at once; the
 * head is complete at an empty line (CR LF or a bare LF, as RFC 9112 allows). */
enum mh_verdict mh_parse(const char *buf, size_t len, size_t max, struct mh_req *out)
{
    size_t lim = len < max ? len : max, line_end = 0;
    bool have_line = false;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < lim; i++) {
        if (!mh_head_byte((unsigned char)buf[i]))
            return MH_BAD;
        if (buf[i] != '\n')
            continue;
        if (!have_line) {
            size_t n = i > 0 && buf[i - 1] == '\r' ? i - 1 : i;
            if (mh_request_line(buf, n, out) != MH_OK)
                return MH_BAD;
            have_line = true;
            line_end = i;
            continue;
        }
        /* an empty line after the request line: "\n\n" or "\n\r\n" */
        if ((i >= 1 && buf[i - 1] == '\n' && i - 1 >= line_end) ||
            (i >= 2 && buf[i - 1] == '\r' && buf[i - 2] == '\n' && i - 2 >= line_end))
            return MH_OK;
    }
    /* no end of line yet: a request line that is already not one is refused now */
    if (!have_line) {
        size_t i = 0;
        while (i < lim && buf[i] >= 'A' && buf[i] <= 'Z')
            i++;
        if (i > MH_MAX_METHOD || (i < lim && buf[i] != ' '))
            return MH_BAD;
    }
    return len >= max ? MH_TOO_LARGE : MH_MORE;
}

int mh_route(const struct mh_req *req, bool healthy, int *page)
{
    *page = 0;
    if (strcmp(req->path, "/metrics") == 0)
        *page = 1;
    else if (strcmp(req->path, "/healthz") == 0)
        *page = 2;
    else
        return 404;
    if (req->method == MH_OTHER)
        return 405;
    if (*page == 2 && !healthy)
        return 503;
    return 200;
}

/* ---- the server ---- */

struct mh {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct mh_user user;
    struct q conns;
    size_t nconns;
    int handles; /* open handles of m itself (the listener); freed at 0 with no conns */
    bool closing;
    char addr[EP_STRLEN];
};

struct mh_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shut;
    uv_write_t wreq;
    struct mh *m;
    struct q link;
    int handles;
    bool answered; /* a response was queued: further input is read and dropped */
    bool counted;  /* in m->nconns */
    bool peer_eof; /* the client half-closed after its request: close once the answer is out */
    char *out;     /* the response while it is being written */
    size_t len;
    char buf[MH_MAX_HEAD];
};

static void mh_maybe_free(struct mh *m)
{
    if (m->closing && m->handles == 0 && q_empty(&m->conns))
        free(m);
}

static void mh_conn_closed(uv_handle_t *h)
{
    struct mh_conn *c = h->data;
    struct mh *m = c->m;
    if (--c->handles > 0)
        return;
    if (c->counted) {
        q_remove(&c->link);
        m->nconns--;
    }
    free(c->out);
    free(c);
    mh_maybe_free(m);
}

static void mh_conn_close(struct mh_conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, mh_conn_closed);
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, mh_conn_closed);
}

static void mh_on_timer(uv_timer_t *t)
{
    mh_conn_close(t->data); /* slowloris, or a client that does not close after the answer */
}

static void mh_on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status; /* the client's EOF or the timer closes */
}

static void mh_on_write(uv_write_t *req, int status)
{
    struct mh_conn *c = req->data;
    free(c->out);
    c->out = NULL;
    if (status < 0 || uv_is_closing((uv_handle_t *)&c->tcp) || c->peer_eof) {
        mh_conn_close(c); /* nothing unread is left when the peer's EOF came: no reset */
        return;
    }
    /* FIN now; closing with unread input would be a reset that can cut the answer */
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, mh_on_shutdown) < 0)
        mh_conn_close(c);
    else
        uv_timer_start(&c->timer, mh_on_timer, MH_LINGER_MS, 0);
}

static const char *mh_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

/* The /metrics text in a buffer of its own, grown once to the size the renderer asked for. */
static char *mh_render(struct mh *m, size_t *len)
{
    size_t cap = 32 * 1024, need;
    char *b = malloc(cap);
    if (!b)
        return NULL;
    need = m->user.render(m->user.data, b, cap);
    if (need >= cap) {
        char *nb;
        cap = (need < MH_MAX_BODY ? need : MH_MAX_BODY - 1) + 1;
        if (!(nb = realloc(b, cap))) {
            free(b);
            return NULL;
        }
        b = nb;
        need = m->user.render(m->user.data, b, cap);
        if (need >= cap)
            need = cap - 1;
    }
    *len = need;
    return b;
}

static void mh_respond(struct mh_conn *c, int status, bool head_only, int page)
{
    const char *ctype = page == 1 && status == 200 ? "text/plain; version=0.0.4; charset=utf-8"
                                                   : "text/plain; charset=utf-8";
    char hdr[256], *body = NULL, small[64];
    size_t blen = 0;
    int hlen;
    uv_buf_t b;

    if (status == 200 && page == 1) {
        body = mh_render(c->m, &blen);
        if (!body)
            status = 500;
    }
    if (!body) {
        snprintf(small, sizeof small, "%s\n",
                 status == 200   ? "ok"
                 : status == 503 ? "draining"
                                 : mh_reason(status));
        blen = strlen(small);
    }
    hlen = snprintf(hdr, sizeof hdr,
                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                    "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                    status, mh_reason(status), ctype, blen);
    c->out = malloc((size_t)hlen + (head_only ? 0 : blen));
    if (!c->out) {
        free(body);
        mh_conn_close(c);
        return;
    }
    memcpy(c->out, hdr, (size_t)hlen);
    if (!head_only)
        memcpy(c->out + hlen, body ? body : small, blen);
    free(body);
    c->answered = true;
    c->wreq.data = c;
    b = uv_buf_init(c->out, (unsigned)(hlen + (head_only ? 0 : blen)));
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, mh_on_write) < 0) {
        free(c->out);
        c->out = NULL;
        mh_conn_close(c);
    }
}

static void mh_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct mh_conn *c = h->data;
    (void)hint;
    /* after the answer the input is dropped into the same buffer's start */
    if (c->answered)
        *b = uv_buf_init(c->buf, sizeof c->buf);
    else
        *b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len));
}

static void mh_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct mh_conn *c = s->data;
    struct mh_req req;
    int status, page;
    (void)b;
    if (n == UV_EOF && c->out) {
        /* a client that half-closes after its request still gets the whole answer */
        c->peer_eof = true;
        uv_read_stop(s);
        return;
    }
    if (n < 0) {
        mh_conn_close(c);
        return;
    }
    if (c->answered || n == 0)
        return;
    c->len += (size_t)n;
    switch (mh_parse(c->buf, c->len, sizeof c->buf, &req)) {
    case MH_MORE:
        return;
    case MH_BAD:
        mh_respond(c, 400, false, 0);
        return;
    case MH_TOO_LARGE:
        mh_respond(c, 431, false, 0);
        return;
    case MH_OK:
        break;
    }
    status = mh_route(&req, c->m->user.healthy(c->m->user.data), &page);
    mh_respond(c, status, req.method == MH_HEAD, page);
}

static void mh_on_connection(uv_stream_t *ls, int status)
{
    struct mh *m = ls->data;
    struct mh_conn *c;
    if (status < 0 || m->closing)
        return;
    if (!(c = calloc(1, sizeof *c)))
        return;
    c->m = m;
    if (uv_tcp_init(m->loop, &c->tcp) < 0) {
        free(c);
        return;
    }
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 1;
    uv_unref((uv_handle_t *)&c->tcp);
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0 || m->nconns >= MH_MAX_CONNS) {
        /* over the limit: accepted only to be closed, so the backlog never fills */
        uv_close((uv_handle_t *)&c->tcp, mh_conn_closed);
        return;
    }
    uv_timer_init(m->loop, &c->timer);
    uv_unref((uv_handle_t *)&c->timer);
    c->handles = 2;
    q_insert_tail(&m->conns, &c->link);
    m->nconns++;
    c->counted = true;
    uv_timer_start(&c->timer, mh_on_timer, MH_HEAD_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, mh_on_alloc, mh_on_read) < 0)
        mh_conn_close(c);
}

static void mh_listener_closed(uv_handle_t *h)
{
    struct mh *m = h->data;
    m->handles--;
    mh_maybe_free(m);
}

struct mh *mh_start(uv_loop_t *loop, const struct sockaddr *sa, const struct mh_user *user,
                    char *err, size_t errlen)
{
    struct mh *m = calloc(1, sizeof *m);
    unsigned flags = sa->sa_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
    int rc;
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->loop = loop;
    m->user = *user;
    q_init(&m->conns);
    ep_format(sa, m->addr, sizeof m->addr);
    if ((rc = uv_tcp_init(loop, &m->listener)) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", m->addr, uv_strerror(rc));
        free(m);
        return NULL;
    }
    m->handles = 1;
    m->listener.data = m;
    uv_unref((uv_handle_t *)&m->listener);
    rc = uv_tcp_bind(&m->listener, sa, flags);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&m->listener, 64, mh_on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", m->addr, uv_strerror(rc));
        m->closing = true;
        uv_close((uv_handle_t *)&m->listener, mh_listener_closed);
        return NULL;
    }
    LOG_N("metrics on http://%s/metrics", m->addr);
    return m;
}

void mh_close(struct mh *m)
{
    struct q *h;
    if (!m || m->closing)
        return;
    m->closing = true;
    for (h = q_head(&m->conns); h; h = q_next(&m->conns, h))
        mh_conn_close(q_data(h, struct mh_conn, link));
    uv_close((uv_handle_t *)&m->listener, mh_listener_closed);
}
