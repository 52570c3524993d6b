#include "rendezvous/conn.h"
#include "rendezvous/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void conn_refuse_flush(struct conn *c);

/* A queued write owns a copy of its line, so callers may pass stack buffers. */
struct conn_wreq {
    uv_write_t req;
    struct conn *conn;
    size_t cost; /* counted in conn->wcost while queued */
    char data[];
};

#define CONN_MALLOC_OVERHEAD 16 /* malloc's header: a short line costs what it really holds */

static struct conn_list *conn_list_of(struct conn_set *set, enum conn_state st)
{
    switch (st) {
    case CONN_HELLO:
        return &set->fresh;
    case CONN_LIVE:
        return &set->live;
    case CONN_LINGER:
        return &set->linger;
    default:
        return NULL;
    }
}

void conn_set_init(struct conn_set *set, uv_loop_t *loop, const struct conn_hooks *hooks,
                   struct mtr *mtr)
{
    set->loop = loop;
    set->mtr = mtr;
    q_init(&set->fresh.q);
    q_init(&set->live.q);
    q_init(&set->linger.q);
    set->fresh.n = set->live.n = set->linger.n = 0;
    set->hooks = *hooks;
}

struct conn *conn_first(const struct conn_list *l)
{
    struct q *h = q_head(&l->q);
    return h ? q_data(h, struct conn, link) : NULL;
}

struct conn *conn_next(const struct conn_list *l, const struct conn *c)
{
    struct q *n = q_next(&l->q, &c->link);
    return n ? q_data(n, struct conn, link) : NULL;
}

size_t conn_count(const struct conn_set *set)
{
    return set->fresh.n + set->live.n + set->linger.n;
}

void conn_set_state(struct conn *c, enum conn_state st)
{
    struct conn_list *from = conn_list_of(c->set, c->state);
    struct conn_list *to = conn_list_of(c->set, st);
    if (from) {
        q_remove(&c->link);
        from->n--;
    }
    c->state = st;
    c->since_ms = uv_now(c->set->loop);
    if (to) {
        q_insert_tail(&to->q, &c->link);
        to->n++;
    }
}

bool conn_active(const struct conn *c)
{
    return c->state == CONN_HELLO || c->state == CONN_LIVE;
}

const char *conn_who(const struct conn *c, char *buf, size_t len)
{
    if (c->id[0])
        snprintf(buf, len, "%s (%s)", c->id, c->addr);
    else
        snprintf(buf, len, "%s", c->addr);
    return buf;
}

void conn_endpoints(const struct conn *c, struct proto_eplist *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < c->nep; i++)
        memcpy(&out->ep[i], &c->ep[i], ep_len(&c->ep[i].sa));
    out->n = c->nep;
}

/* ---- closing ---- */

static void conn_on_close(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct conn_hooks *hooks = &c->set->hooks;
    lb_free(&c->lb);
    free(c->ep);
    free(c->held);
    free(c->rt); /* reports.c's table: plain memory */
    free(c);
    hooks->on_closed(hooks->data);
}

void conn_close(struct conn *c)
{
    if (c->state == CONN_CLOSED)
        return;
    conn_refuse_flush(c);
    c->set->hooks.on_gone(c->set->hooks.data, c, CONN_CLOSED);
    conn_set_state(c, CONN_CLOSED);
    uv_close((uv_handle_t *)&c->tcp, conn_on_close);
    c->set->hooks.on_closed(c->set->hooks.data);
}

void conn_drop(struct conn *c, enum log_level level, const char *fmt, ...)
{
    char who[PROTO_MAX_ID + EP_STRLEN + 4], why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    log_msg(level, "drop %s: %s", conn_who(c, who, sizeof who), why);
    conn_close(c);
}

static void conn_on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    if (status == UV_ECANCELED) /* the handle is being closed already */
        return;
    /* Our FIN is out; keep reading until the peer's EOF, since closing with unread input
     * would send a reset that can destroy the error line before the peer reads it. */
    if (status < 0)
        conn_drop(c, LOG_DEBUG, "shutdown failed: %s", uv_strerror(status));
    else if (c->peer_eof)
        conn_drop(c, LOG_DEBUG, "closed by peer after the error");
}

/* After a fatal error line: stop taking messages, leave the registry, and close once the
 * line has been written and the peer has closed (or the user's sweep gives up on it). */
void conn_linger(struct conn *c)
{
    int rc;
    if (!conn_active(c))
        return;
    c->set->hooks.on_gone(c->set->hooks.data, c, CONN_LINGER);
    conn_set_state(c, CONN_LINGER);
    conn_read_resume(c); /* lingering input is read and dropped: the peer's EOF ends it */
    c->shut.data = c;
    rc = uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, conn_on_shutdown);
    if (rc < 0)
        conn_drop(c, LOG_DEBUG, "shutdown: %s", uv_strerror(rc));
}

/* ---- writing ---- */

static void conn_on_write(uv_write_t *req, int status)
{
    struct conn_wreq *w = (struct conn_wreq *)req;
    struct conn *c = w->conn;
    c->wcost -= w->cost;
    free(w);
    if (status == UV_ECANCELED)
        return;
    if (status == 0) {
        if (c->read_paused && c->wcost < CONN_READ_PAUSE / 2)
            conn_read_resume(c);
        return;
    }
    if (c->state == CONN_LIVE)
        conn_drop(c, LOG_NOTE, "write failed: %s", uv_strerror(status));
    else if (c->state != CONN_CLOSED)
        conn_drop(c, LOG_DEBUG, "write failed: %s", uv_strerror(status));
}

/* Queues a copy of line without any policy; the public conn_send adds the checks. */
int conn_write(struct conn *c, const char *line, size_t len)
{
    struct conn_wreq *w = malloc(sizeof *w + len);
    uv_buf_t b;
    int rc;
    if (!w)
        return UV_ENOMEM;
    memcpy(w->data, line, len);
    w->conn = c;
    w->cost = sizeof *w + len + CONN_MALLOC_OVERHEAD;
    b = uv_buf_init(w->data, (unsigned)len);
    rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_on_write);
    if (rc < 0) {
        free(w);
        return rc;
    }
    c->wcost += w->cost;
    return 0;
}

/* Reasons can quote what a peer sent (a type, a field name), cut at a byte count that may
 * split a UTF-8 sequence; the encoder refuses invalid UTF-8 and a quoted newline would forge
 * a log line. Printable ASCII is safe for both. */
const char *conn_clean(const char *in, char *out, size_t len)
{
    size_t i = 0;
    for (; in[i] && i + 1 < len; i++)
        out[i] = (unsigned char)in[i] >= 0x20 && (unsigned char)in[i] < 0x7f ? in[i] : '?';
    out[i] = '\0';
    return out;
}

/* Writes an error line; a fatal one also starts the close. */
void conn_error(struct conn *c, enum proto_code code, const char *message, bool fatal)
{
    char line[PROTO_MAX_LINE], clean[PROTO_MAX_TEXT + 1];
    int n =
        proto_encode_pc(code, conn_clean(message, clean, sizeof clean), fatal, line, sizeof line);
    int rc = n > 0 ? conn_write(c, line, (size_t)n) : UV_EINVAL;
    if (rc < 0) {
        conn_drop(c, LOG_DEBUG, "cannot send error %s: %s", proto_code_name(code), uv_strerror(rc));
        return;
    }
    mtr_error(c->set->mtr, code);
    if (fatal)
        conn_linger(c);
}

int conn_send(struct conn *c, const char *line, size_t len)
{
    int rc;
    if (!conn_active(c))
        return -1;
    rc = conn_write(c, line, len);
    if (rc < 0) {
        conn_drop(c, LOG_WARN, "cannot queue a write: %s", uv_strerror(rc));
        return -1;
    }
    /* A peer that does not read must not make the server buffer without bound. */
    if (c->wcost > CONN_MAX_WRITE_QUEUE) {
        char who[PROTO_MAX_ID + EP_STRLEN + 4];
        LOG_N("drop %s: overloaded (more than %d KiB waiting to be written)",
              conn_who(c, who, sizeof who), CONN_MAX_WRITE_QUEUE / 1024);
        conn_error(c, PC_OVERLOADED, "you are not reading what the server sends", true);
    }
    return 0;
}

/* The count of non-fatal refusals that were not logged, if any (a period ended, or the
 * connection closes). */
static void conn_refuse_flush(struct conn *c)
{
    char who[PROTO_MAX_ID + EP_STRLEN + 4];
    if (c->refuse_quiet)
        LOG_N("refused %s: %u more requests (not logged)", conn_who(c, who, sizeof who),
              c->refuse_quiet);
    c->refuse_quiet = 0;
}

/* Whether a non-fatal refusal of c may be logged: CONN_REFUSE_LOG_BURST per period. */
static bool conn_refuse_loggable(struct conn *c)
{
    uint64_t now = uv_now(c->set->loop);
    /* the period's start + 1, so that 0 means none yet */
    if (!c->refuse_window_ms || now + 1 - c->refuse_window_ms >= CONN_REFUSE_LOG_MS) {
        conn_refuse_flush(c);
        c->refuse_window_ms = now + 1;
        c->refuse_logged = 0;
    }
    if (c->refuse_logged >= CONN_REFUSE_LOG_BURST) {
        c->refuse_quiet++;
        return false;
    }
    c->refuse_logged++;
    return true;
}

bool conn_log_quota(struct conn *c)
{
    return conn_refuse_loggable(c);
}

void conn_refuse(struct conn *c, enum proto_code code, const char *message, bool fatal)
{
    char who[PROTO_MAX_ID + EP_STRLEN + 4], clean[PROTO_MAX_TEXT + 1];
    if (!conn_active(c))
        return;
    if (fatal)
        conn_refuse_flush(c);
    else if (!conn_refuse_loggable(c)) {
        conn_error(c, code, message, fatal);
        return;
    }
    LOG_N("refused %s: %s: %s%s", conn_who(c, who, sizeof who), proto_code_name(code),
          conn_clean(message, clean, sizeof clean), fatal ? " (closing)" : "");
    conn_error(c, code, message, fatal);
}

void conn_read_pause(struct conn *c)
{
    if (c->read_paused || !conn_active(c) || c->wcost <= CONN_READ_PAUSE)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->read_paused = true;
}

void conn_read_resume(struct conn *c)
{
    int rc;
    if (!c->read_paused || c->state == CONN_CLOSED)
        return;
    c->read_paused = false;
    if (c->claiming && conn_active(c))
        return; /* a hello waits for the cluster: the server reads again after the verdict */
    rc = uv_read_start((uv_stream_t *)&c->tcp, c->set->hooks.on_alloc, c->set->hooks.on_read);
    if (rc < 0)
        conn_drop(c, LOG_WARN, "cannot read: %s", uv_strerror(rc));
}
