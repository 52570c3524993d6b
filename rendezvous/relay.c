#include "rendezvous/relay.h"
#include "common/container.h"
#include "common/endpoint.h"
#include "common/hmap.h"
#include "common/log.h"
#include "common/queue.h"
#include "common/rand.h"
#include "rendezvous/limits.h"
#include "rendezvous/procself.h"
#include "rendezvous/rzc.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define RLY_MIN_BUCKETS 64u
#define RLY_SWEEP_MS 1000
#define RLY_CHUNK (128 * 1024) /* largest read (64 KiB: 80 % of a socat relay, 128: 87 %); with a rate limit, reads shrink to rate/8 */
#define RLY_MAX_Q 8 /* a session's distinct counts: two ids, two keys, two sources, their /48s */
#define RLY_LINGER_MS 2000     /* a refused waiting side gets this long to read its error */
#define RLY_KEEPALIVE_S 60     /* notice a peer that vanished without a reset */
/* descriptors left free for accepts and control connections: below this many, a new spliced
 * session copies instead of taking its RZC_FDS_PER_SESSION pipe ends */
#define RLY_FD_RESERVE 64
/* each direction's pipe, when the kernel grants it (else its default, 64 KiB): what a stalled
 * receiver lets the relay hold besides the socket buffers, RLY_QUEUE_HIGH as on the copy path.
 * 256 KiB against 64: about 20 % less CPU per byte. Pipe pages count against the user's
 * /proc/sys/fs/pipe-user-pages-soft (16384 pages): 128 pages a session, so the default
 * --relay-max 64 fits; beyond it the kernel refuses to grow pipes (256 pages) and then gives
 * out 2-page ones, which RLY_PIPE_MIN turns down */
#ifndef RLY_PIPE_SIZE
#define RLY_PIPE_SIZE (256 * 1024)
#endif
/* the smallest pipe worth splicing through: the kernel's default. Past the user's
 * pipe-user-pages-soft new pipes get 2 pages (8 KiB) and cannot grow; through those splice
 * cost about 1.3 times the copy's CPU per byte (256 MiB: 35-44 ticks against 30-31), so such a
 * session copies */
#define RLY_PIPE_MIN (64 * 1024)
#define RLY_PUMP_ROUNDS 8 /* fill/drain rounds per wakeup of a spliced session, then others */

enum rly_state { RS_WAITING, RS_SPLICED, RS_LINGER, RS_ENDED };

/* Why a side is not being read; reading runs only while none applies. */
enum { RLY_PAUSE_QUEUE = 1, RLY_PAUSE_RATE = 2, RLY_PAUSE_PIPE = 4 };

/* What the quotas count by (--relay-per-peer, --relay-offers-per-peer). RQ_SITE: an IPv6
 * source's /48, which holds 65536 /64s (RQ_SRC) and so gets its own, larger, quotas. */
enum { RQ_ID = 1, RQ_KEY, RQ_SRC, RQ_SITE };
#define RLY_OQ 4 /* the counts an offer is held by: the initiator's id, key, source, /48 */

/* One id, key or source address and what it holds: offers it initiated that are pending,
 * sessions it is part of. Kept while either is non-zero. */
struct rly_q {
    struct hmap_node node;
    uint32_t offers, sessions;
    uint8_t kind, len;
    unsigned char b[PROTO_MAX_ID + 1];
};

/* An offer: what a relay line must match. Kept until both sides joined or it expired. */
struct rly_rec {
    struct hmap_node node; /* in rly.offers, by session */
    struct q link;         /* in rly.byage */
    char session[PROTO_SESSION_LEN + 1];
    char id[2][PROTO_MAX_ID + 1];
    char token[2][PROTO_TOKEN_LEN + 1];
    bool used[2];
    uint64_t created_ms;
    struct rly_sess *sess; /* once a side has joined */
    struct rly_q *oq[RLY_OQ]; /* the initiator's id, key, source, /48: each holds this offer */
    unsigned char key[2][PROTO_KEY_BYTES]; /* each side's key, for the session's counts */
    bool has_key[2];
};

struct rly_side {
    uv_tcp_t tcp;
    uv_timer_t rate_timer;
    uv_shutdown_t shut;
    struct rly_sess *s;
    int idx;
    bool open;       /* tcp initialised and not closed */
    bool timer_open; /* rate_timer initialised and not closed */
    bool reading;
    bool eof;       /* this side sent its FIN */
    bool shut_sent; /* our FIN towards this side is queued */
    bool shut_done;
    unsigned pause;
    uint64_t bytes; /* read from this side, forwarded (or to be) to the other */
    uint64_t rate_start_ms, rate_bytes;
    size_t qcost; /* memory held by this side's bytes queued to the other (rly_wreq.cost) */
    char *pend; /* bytes the side sent before the splice, at most RLY_EARLY_MAX */
    size_t pend_len;
    char addr[EP_STRLEN];
    /* the zero-copy path (rly_zc_start): the socket, a dup of tcp's, is watched by poll alone
     * (tcp is closed by then: libuv allows one watcher per descriptor) */
    uv_poll_t poll;
    bool poll_open;
    int fd;
    int pevents;         /* what poll waits for now */
    struct rzc_pipe out; /* this side's bytes on their way to the other */
};

struct rly_sess {
    struct rly *r;
    struct rly_rec *rec; /* NULL once spliced: nothing can join any more */
    struct q link;       /* in rly.sessions */
    enum rly_state state;
    bool counted; /* in r->nactive */
    char session[PROTO_SESSION_LEN + 1];
    char id[2][PROTO_MAX_ID + 1];
    uv_timer_t timer; /* waiting: relay-wait; spliced: --relay-seconds; linger */
    bool timer_open;
    uv_timer_t idle_timer; /* spliced: --relay-idle */
    bool idle_open;
    int handles;
    bool zc; /* spliced in the kernel (rly_zc_start), not copied */
    uint64_t start_ms;
    uint64_t last_byte_ms;      /* the last byte either side sent */
    struct rly_q *q[RLY_MAX_Q]; /* the counts holding this session */
    int nq;
    struct rly_side side[2];
};

struct rly {
    uv_loop_t *loop;
    struct rly_cfg cfg;
    void (*idle)(void *);
    void *arg;
    /* sessions, ids and keys are chosen by the peers: the tables' keyed hash (common/hmap)
     * keeps them from piling into one chain */
    struct hmap offers; /* session -> struct rly_rec */
    struct q byage;     /* every offer, oldest first */
    struct q sessions;  /* struct rly_sess, newest first */
    size_t nactive;
    uint64_t nsessions, nbytes; /* rly_stats */
    uint64_t nerrors[PC_COUNT];
    struct hmap quotas; /* (kind, bytes) -> struct rly_q */
    uv_timer_t sweep;
    bool sweep_open;
    bool stopping;
    bool draining; /* rly_drain: no new offers, the sessions run on */
    bool zc_ok;       /* splice(2) is used (not --relay-copy, and rzc_probe said it works) */
    char zc_why[120]; /* why not, when not */
    /* a read buffer that got a short read, kept for the next read of any side */
    struct rly_wreq *spare;
    size_t spare_len;
};

/* A write request with its bytes. A long read's buffer becomes the request that forwards it
 * (no copy); a short read is copied into one of its exact size (rly_on_read), so what a queued
 * byte holds is bounded whatever the segment sizes: the backpressure counts `cost`. */
struct rly_wreq {
    uv_write_t req;
    struct rly_sess *s;
    int from;    /* the side the bytes came from; they go to the other */
    size_t cost; /* bytes allocated for this request, counted in from's qcost while queued */
    char data[];
};

static void rly_end(struct rly_sess *s, bool reset, const char *why);
static void rly_update_read(struct rly_side *d);

/* ---- quotas: per id, per key, per source address ---- */

/* What a count is found by: its kind and len bytes (an id, a key, a source's family and
 * address). */
struct rly_qkey {
    uint8_t kind;
    size_t len;
    const unsigned char *b;
};

static bool rly_q_eq(const struct hmap_node *n, const void *key)
{
    const struct rly_q *e = hmap_data(n, struct rly_q, node);
    const struct rly_qkey *k = key;
    return e->kind == k->kind && e->len == k->len && memcmp(e->b, k->b, k->len) == 0;
}

static uint64_t rly_q_hash(const struct rly *r, uint8_t kind, const unsigned char *b, size_t len)
{
    unsigned char in[PROTO_MAX_ID + 2];
    in[0] = kind;
    memcpy(in + 1, b, len);
    return hmap_hash(&r->quotas, in, len + 1);
}

/* The entry for an id, key (32 bytes) or source; created when missing unless peek. NULL: no
 * such entry (peek), nothing to count by (no key, not an IP source) or out of memory. */
static struct rly_q *rly_q_get(struct rly *r, uint8_t kind, const void *what, bool peek)
{
    unsigned char b[PROTO_MAX_ID + 1];
    size_t len;
    uint8_t family;
    uint64_t h;
    struct hmap_node *n;
    struct rly_q *e;
    if (!what)
        return NULL;
    if (kind == RQ_ID) {
        len = strlen(what);
        memcpy(b, what, len);
    } else if (kind == RQ_KEY) {
        len = PROTO_KEY_BYTES;
        memcpy(b, what, len);
    } else {
        if (lim_source_key(what, &family, b + 1) == 0)
            return NULL;
        if (kind == RQ_SITE && family != AF_INET6)
            return NULL; /* IPv4: the address is the whole source */
        if (kind == RQ_SITE)
            memset(b + 1 + 6, 0, 10);
        b[0] = family;
        len = 17;
    }
    h = rly_q_hash(r, kind, b, len);
    n = hmap_find(&r->quotas, h, rly_q_eq, &(struct rly_qkey){kind, len, b});
    if (n || peek)
        return n ? hmap_data(n, struct rly_q, node) : NULL;
    if (!(e = calloc(1, sizeof *e)))
        return NULL;
    e->kind = kind;
    e->len = (uint8_t)len;
    memcpy(e->b, b, len);
    hmap_insert(&r->quotas, &e->node, h);
    return e;
}

static void rly_q_put(struct rly *r, struct rly_q *e)
{
    if (!e || e->offers || e->sessions)
        return;
    hmap_remove(&r->quotas, &e->node);
    free(e);
}

static void rly_q_name(const struct rly_q *e, char *out, size_t len)
{
    char fp[12];
    if (e->kind == RQ_ID)
        snprintf(out, len, "%.*s", (int)e->len, (const char *)e->b);
    else if (e->kind == RQ_KEY) {
        sodium_bin2hex(fp, sizeof fp, e->b, 5);
        snprintf(out, len, "key %s...", fp);
    } else {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        ss.ss_family = e->b[0];
        if (e->b[0] == AF_INET)
            memcpy(&((struct sockaddr_in *)&ss)->sin_addr, e->b + 1, 4);
        else
            memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, e->b + 1, 16);
        if (e->kind == RQ_SITE)
            lim_site_text((const struct sockaddr *)&ss, out, len);
        else
            lim_source_text((const struct sockaddr *)&ss, out, len);
    }
}

/* The session quota of e. A /48 may hold LIM_SITE_FACTOR x --relay-per-ip but never more than a
 * quarter of --relay-max-sessions (at least --relay-per-ip): otherwise 8 /64s of one site, each
 * within its own quota, held every relay session. */
static unsigned rly_q_max(const struct rly *r, const struct rly_q *e)
{
    unsigned long site, quarter;
    if (e->kind == RQ_ID || e->kind == RQ_KEY)
        return r->cfg.per_peer;
    if (e->kind == RQ_SRC || !r->cfg.per_ip)
        return r->cfg.per_ip;
    site = (unsigned long)r->cfg.per_ip * LIM_SITE_FACTOR;
    quarter = r->cfg.max_sessions / 4 > r->cfg.per_ip ? r->cfg.max_sessions / 4 : r->cfg.per_ip;
    return (unsigned)(site < quarter ? site : quarter);
}

/* The pending-offer quota of e: --relay-offers-per-peer, LIM_SITE_FACTOR x that for a /48. */
static unsigned rly_q_max_offers(const struct rly *r, const struct rly_q *e)
{
    if (e->kind != RQ_SITE)
        return r->cfg.offers_per_peer;
    return r->cfg.offers_per_peer * LIM_SITE_FACTOR;
}

/* Whether e may hold one more session; why says who is at the limit otherwise. */
static bool rly_q_room(const struct rly *r, const struct rly_q *e, char *why, size_t len)
{
    char name[80];
    unsigned max = e ? rly_q_max(r, e) : 0;
    if (!e || !max || e->sessions < max)
        return true;
    rly_q_name(e, name, sizeof name);
    snprintf(why, len, "%s holds %u relay sessions already (--relay-per-%s)", name, max,
             e->kind == RQ_SRC || e->kind == RQ_SITE ? "ip" : "peer");
    return false;
}

/* Adds e to s's counts once. Returns -1 when s is counted by it already. */
static int rly_sess_count(struct rly_sess *s, struct rly_q *e)
{
    if (!e)
        return -1;
    for (int i = 0; i < s->nq; i++)
        if (s->q[i] == e)
            return -1;
    s->q[s->nq++] = e;
    e->sessions++;
    return 0;
}

static void rly_sess_uncount(struct rly_sess *s)
{
    for (int i = 0; i < s->nq; i++) {
        s->q[i]->sessions--;
        rly_q_put(s->r, s->q[i]);
    }
    s->nq = 0;
}

/* ---- offers ---- */

static struct rly_rec *rly_find(const struct rly *r, const char *session)
{
    struct hmap_node *n = hmap_find_str(&r->offers, session, struct rly_rec, node, session);
    return n ? hmap_data(n, struct rly_rec, node) : NULL;
}

/* The oldest offer, NULL when there is none. */
static struct rly_rec *rly_oldest(const struct rly *r)
{
    struct q *it = q_head(&r->byage);
    return it ? q_data(it, struct rly_rec, link) : NULL;
}

static void rly_rec_free(struct rly *r, struct rly_rec *e)
{
    hmap_remove(&r->offers, &e->node);
    q_remove(&e->link);
    if (e->sess)
        e->sess->rec = NULL;
    for (int i = 0; i < RLY_OQ; i++)
        if (e->oq[i]) {
            e->oq[i]->offers--;
            rly_q_put(r, e->oq[i]);
        }
    free(e);
}

/* The offer-time checks: the initiator's pending offers, and the sessions either side holds
 * already (the join checks the sessions again: offers made while under the limit may all be
 * joined at once). */
static int rly_offer_quota(struct rly *r, const struct rly_party *p0, const struct rly_party *p1,
                           char *why, size_t len)
{
    const struct rly_party *p[2] = {p0, p1};
    char name[80];
    for (int i = 0; i < 2; i++) {
        struct rly_q *q[RLY_OQ] = {rly_q_get(r, RQ_ID, p[i]->id, true),
                                   rly_q_get(r, RQ_KEY, p[i]->key, true),
                                   rly_q_get(r, RQ_SRC, p[i]->src, true),
                                   rly_q_get(r, RQ_SITE, p[i]->src, true)};
        for (int k = 0; k < RLY_OQ; k++) {
            if (!rly_q_room(r, q[k], why, len))
                return -1;
            if (i == 0 && q[k] && r->cfg.offers_per_peer &&
                q[k]->offers >= rly_q_max_offers(r, q[k])) {
                rly_q_name(q[k], name, sizeof name);
                snprintf(why, len,
                         "%s has %u relay offers pending already (--relay-offers-per-peer)", name,
                         rly_q_max_offers(r, q[k]));
                return -1;
            }
        }
    }
    return 0;
}

int rly_offer(struct rly *r, const char *session, const struct rly_party *p0,
              const struct rly_party *p1, char *token0, char *token1, char *why, size_t whylen)
{
    struct rly_rec *e;
    snprintf(why, whylen, "the relay has no room for another session");
    if (r->draining)
        snprintf(why, whylen, "the server is shutting down");
    if (!r->cfg.enabled || r->stopping || r->draining || hmap_count(&r->offers) >= RLY_MAX_OFFERS ||
        rly_find(r, session))
        return -1;
    if (rly_offer_quota(r, p0, p1, why, whylen) < 0)
        return -1;
    e = calloc(1, sizeof *e);
    if (!e)
        return -1;
    if (rnd_hex(e->token[0], PROTO_TOKEN_LEN / 2) < 0 ||
        rnd_hex(e->token[1], PROTO_TOKEN_LEN / 2) < 0) {
        free(e);
        return -1;
    }
    snprintf(e->session, sizeof e->session, "%s", session);
    snprintf(e->id[0], sizeof e->id[0], "%s", p0->id);
    snprintf(e->id[1], sizeof e->id[1], "%s", p1->id);
    e->created_ms = uv_now(r->loop);
    /* counted from here on; rly_rec_free gives the counts back */
    e->oq[0] = rly_q_get(r, RQ_ID, p0->id, false);
    e->oq[1] = rly_q_get(r, RQ_KEY, p0->key, false);
    e->oq[2] = rly_q_get(r, RQ_SRC, p0->src, false);
    e->oq[3] = rly_q_get(r, RQ_SITE, p0->src, false);
    for (int i = 0; i < RLY_OQ; i++)
        if (e->oq[i])
            e->oq[i]->offers++;
    for (int i = 0; i < 2; i++) {
        const struct rly_party *p = i ? p1 : p0;
        e->has_key[i] = p->key != NULL;
        if (p->key)
            memcpy(e->key[i], p->key, PROTO_KEY_BYTES);
    }
    hmap_insert(&r->offers, &e->node, hmap_hash_str(&r->offers, e->session));
    q_insert_tail(&r->byage, &e->link);
    memcpy(token0, e->token[0], PROTO_TOKEN_LEN + 1);
    memcpy(token1, e->token[1], PROTO_TOKEN_LEN + 1);
    return 0;
}

/* Offers nobody joined are dropped at their expiry; one with a waiting side is ended by that
 * side's own timer, which never runs past the same expiry. */
static void rly_on_sweep(uv_timer_t *t)
{
    struct rly *r = t->data;
    uint64_t now = uv_now(r->loop);
    struct q *it, *tmp;
    q_foreach_safe(it, tmp, &r->byage) {
        struct rly_rec *e = q_data(it, struct rly_rec, link);
        if (now - e->created_ms < RLY_OFFER_TTL_MS)
            break;
        if (!e->sess) {
            LOG_I("relay %s: offer expired, nobody joined", e->session);
            rly_rec_free(r, e);
        }
    }
}

/* Tokens are secrets: compare without an early exit. */
static bool rly_token_eq(const char *a, const char *b)
{
    unsigned char d = 0;
    for (int i = 0; i < PROTO_TOKEN_LEN; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

/* ---- handles and the end of a session ---- */

static void rly_maybe_idle(struct rly *r)
{
    if (r->stopping && !r->sweep_open && q_empty(&r->sessions) && r->idle)
        r->idle(r->arg);
}

static void rly_sess_unref(struct rly_sess *s)
{
    struct rly *r = s->r;
    if (--s->handles > 0 || s->state != RS_ENDED)
        return;
    q_remove(&s->link);
    free(s->side[0].pend);
    free(s->side[1].pend);
    free(s);
    rly_maybe_idle(r);
}

static void rly_on_handle_closed(uv_handle_t *h)
{
    rly_sess_unref(h->data);
}

static void rly_close_handle(uv_handle_t *h, bool *open)
{
    if (!*open)
        return;
    *open = false;
    uv_close(h, rly_on_handle_closed);
}

/* SO_LINGER 0: the close sends RST and drops what is unsent, so the peer sees ECONNRESET and
 * never a clean EOF that would hide a truncated stream. */
static void rly_abort_side(struct rly_side *d)
{
    struct linger lg = {1, 0};
    uv_os_fd_t fd;
    if (d->open && uv_fileno((uv_handle_t *)&d->tcp, &fd) == 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    if (d->poll_open)
        setsockopt(d->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

/* A spliced side's socket and pipe. uv_close stops the watcher at once (it leaves epoll), so
 * the descriptor can go right after. */
static void rly_zc_close(struct rly_side *d)
{
    if (!d->poll_open)
        return;
    rly_close_handle((uv_handle_t *)&d->poll, &d->poll_open);
    close(d->fd);
    d->fd = -1;
    rzc_close(&d->out);
}

static const char *rly_who(const struct rly_sess *s, int i)
{
    return s->id[i];
}

static void rly_log_end(const struct rly_sess *s, bool reset, const char *why)
{
    double secs = (double)(uv_now(s->r->loop) - s->start_ms) / 1000.0;
    if (s->state == RS_SPLICED)
        log_msg(reset ? LOG_WARN : LOG_NOTE,
                "relay %s ended%s after %.1f s: %s -> %s %llu bytes, %s -> %s %llu bytes: %s",
                s->session, reset ? " (reset)" : "", secs, rly_who(s, 0), rly_who(s, 1),
                (unsigned long long)s->side[0].bytes, rly_who(s, 1), rly_who(s, 0),
                (unsigned long long)s->side[1].bytes, why);
    else
        LOG_N("relay %s ended before the splice, after %.1f s: %s", s->session, secs, why);
}

/* Ends the session: closes both sides (with reset: abortively), its timers and its offer. */
static void rly_end(struct rly_sess *s, bool reset, const char *why)
{
    struct rly *r = s->r;
    if (s->state == RS_ENDED)
        return;
    if (why)
        rly_log_end(s, reset, why);
    s->state = RS_ENDED;
    if (s->counted) {
        s->counted = false;
        r->nactive--;
    }
    rly_sess_uncount(s);
    if (s->rec)
        rly_rec_free(r, s->rec);
    for (int i = 0; i < 2; i++) {
        struct rly_side *d = &s->side[i];
        if (reset)
            rly_abort_side(d);
        rly_close_handle((uv_handle_t *)&d->tcp, &d->open);
        rly_zc_close(d);
        rly_close_handle((uv_handle_t *)&d->rate_timer, &d->timer_open);
    }
    rly_close_handle((uv_handle_t *)&s->timer, &s->timer_open);
    rly_close_handle((uv_handle_t *)&s->idle_timer, &s->idle_open);
}

/* ---- writing ---- */

static void rly_on_write(uv_write_t *req, int status)
{
    struct rly_wreq *w = (struct rly_wreq *)req;
    struct rly_sess *s = w->s;
    struct rly_side *from = &s->side[w->from];
    struct rly_side *to = &s->side[1 - w->from];
    char why[160];
    from->qcost -= w->cost;
    free(w);
    if (s->state != RS_SPLICED || status == UV_ECANCELED)
        return;
    if (status < 0) {
        snprintf(why, sizeof why, "write to %s: %s", rly_who(s, to->idx), uv_strerror(status));
        rly_end(s, true, why);
        return;
    }
    if ((from->pause & RLY_PAUSE_QUEUE) &&
        uv_stream_get_write_queue_size((uv_stream_t *)&to->tcp) < RLY_QUEUE_LOW &&
        from->qcost < RLY_COST_LOW) {
        from->pause &= ~(unsigned)RLY_PAUSE_QUEUE;
        rly_update_read(from);
    }
}

/* len more bytes from `from`, to be forwarded: counted, or the session cut (a reset) when they
 * would take it past --relay-bytes. Returns -1 after ending s. Both paths count here. */
static int rly_count(struct rly_side *from, size_t len)
{
    struct rly_sess *s = from->s;
    uint64_t max = s->r->cfg.max_bytes;
    char why[160];
    if (max && s->side[0].bytes + s->side[1].bytes + len > max) {
        snprintf(why, sizeof why, "byte limit reached (--relay-bytes %llu)",
                 (unsigned long long)max);
        rly_end(s, true, why);
        return -1;
    }
    from->bytes += len;
    s->r->nbytes += len;
    s->last_byte_ms = uv_now(s->r->loop);
    return 0;
}

/* Queues w (len bytes from `from`) to the other side; takes w. Returns -1 after ending s. */
static int rly_queue(struct rly_side *from, struct rly_wreq *w, size_t len)
{
    struct rly_sess *s = from->s;
    struct rly_side *to = &s->side[1 - from->idx];
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    char why[160];
    int rc;

    if (rly_count(from, len) < 0) {
        free(w);
        return -1;
    }
    w->s = s;
    w->from = from->idx;
    rc = uv_write(&w->req, (uv_stream_t *)&to->tcp, &b, 1, rly_on_write);
    if (rc < 0) {
        free(w);
        snprintf(why, sizeof why, "write to %s: %s", rly_who(s, to->idx), uv_strerror(rc));
        rly_end(s, true, why);
        return -1;
    }
    from->qcost += w->cost;
    /* backpressure: the side that does not read stops the other from being read, by the
     * bytes waiting and by the memory they hold (many short requests) */
    if (uv_stream_get_write_queue_size((uv_stream_t *)&to->tcp) > RLY_QUEUE_HIGH ||
        from->qcost > RLY_COST_HIGH)
        from->pause |= RLY_PAUSE_QUEUE;
    return 0;
}

/* malloc's own header, counted so that the cost of a 1-byte request is what it really holds */
#define RLY_MALLOC_OVERHEAD 16

static struct rly_wreq *rly_wreq_new(size_t len)
{
    size_t size = sizeof(struct rly_wreq) + (len ? len : 1);
    struct rly_wreq *w = malloc(size);
    if (w)
        w->cost = size + RLY_MALLOC_OVERHEAD;
    return w;
}

/* A server line (relayed, error) to side d; not counted as relayed bytes. */
static int rly_write_line(struct rly_side *d, const char *line, size_t len)
{
    struct rly_wreq *w = rly_wreq_new(len);
    uv_buf_t b;
    int rc;
    if (!w)
        return UV_ENOMEM;
    memcpy(w->data, line, len);
    w->s = d->s;
    w->from = 1 - d->idx; /* the server's own line: counted for nobody */
    b = uv_buf_init(w->data, (unsigned)len);
    rc = uv_write(&w->req, (uv_stream_t *)&d->tcp, &b, 1, rly_on_write);
    if (rc < 0)
        free(w);
    else
        d->s->side[w->from].qcost += w->cost; /* rly_on_write takes it off again */
    return rc;
}

/* ---- reading ---- */

static size_t rly_chunk(const struct rly *r)
{
    uint64_t c = r->cfg.rate / 8;
    if (!r->cfg.rate)
        return RLY_CHUNK;
    return c < 1024 ? 1024 : c > RLY_CHUNK ? RLY_CHUNK : (size_t)c;
}

static void rly_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct rly_side *d = container_of((uv_tcp_t *)h, struct rly_side, tcp);
    struct rly *r = d->s->r;
    size_t n = rly_chunk(r);
    struct rly_wreq *w;
    (void)hint;
    if (r->spare && r->spare_len == n) {
        w = r->spare; /* libuv reads synchronously: one spare serves every side */
        r->spare = NULL;
    } else {
        w = rly_wreq_new(n);
    }
    *buf = w ? uv_buf_init(w->data, (unsigned)n) : uv_buf_init(NULL, 0);
}

/* A read buffer not forwarded as it is: kept for the next read (one at most), else freed. */
static void rly_spare(struct rly *r, struct rly_wreq *w, size_t len)
{
    if (!w)
        return;
    if (r->spare) {
        free(w);
        return;
    }
    r->spare = w;
    r->spare_len = len;
}

/* The request that forwards n bytes read into w (of len bytes): w itself when the read filled
 * at least half of it, else an exact-size copy, w going back to the spare. NULL: no memory. */
static struct rly_wreq *rly_fit(struct rly *r, struct rly_wreq *w, const uv_buf_t *buf, size_t n)
{
    size_t len = buf->len;
    struct rly_wreq *c;
    if (n >= len / 2)
        return w;
    c = rly_wreq_new(n);
    if (c)
        memcpy(c->data, buf->base, n);
    rly_spare(r, w, len);
    return c;
}

static void rly_zc_pump(struct rly_sess *s);

static void rly_on_rate(uv_timer_t *t)
{
    struct rly_side *d = container_of(t, struct rly_side, rate_timer);
    d->pause &= ~(unsigned)RLY_PAUSE_RATE;
    if (d->s->zc)
        rly_zc_pump(d->s);
    else
        rly_update_read(d);
}

/* Token bucket without burst credit: n more bytes from d are due at start + bytes/rate; reading
 * pauses until then. */
static void rly_rate(struct rly_side *d, size_t n)
{
    uint64_t rate = d->s->r->cfg.rate;
    uint64_t now = uv_now(d->s->r->loop), due;
    if (!rate)
        return;
    due = d->rate_start_ms + d->rate_bytes / rate * 1000 + d->rate_bytes % rate * 1000 / rate;
    if (due < now) {
        d->rate_start_ms = now;
        d->rate_bytes = 0;
    }
    d->rate_bytes += n;
    due = d->rate_start_ms + d->rate_bytes / rate * 1000 + d->rate_bytes % rate * 1000 / rate;
    if (due > now) {
        d->pause |= RLY_PAUSE_RATE;
        uv_timer_start(&d->rate_timer, rly_on_rate, due - now, 0);
    }
}

static void rly_on_shutdown(uv_shutdown_t *req, int status)
{
    struct rly_side *to = req->data;
    struct rly_sess *s = to->s;
    char why[160];
    if (s->state != RS_SPLICED || status == UV_ECANCELED)
        return;
    if (status < 0) {
        snprintf(why, sizeof why, "shutdown towards %s: %s", rly_who(s, to->idx),
                 uv_strerror(status));
        rly_end(s, true, why);
        return;
    }
    to->shut_done = true;
    if (s->side[0].shut_done && s->side[1].shut_done)
        rly_end(s, false, "both sides closed");
}

/* EOF from d: its direction is over; once what it sent has been written, pass the FIN on. */
static void rly_half_close(struct rly_side *d)
{
    struct rly_sess *s = d->s;
    struct rly_side *to = &s->side[1 - d->idx];
    char why[160];
    int rc;
    d->eof = true;
    d->reading = false; /* libuv stops reading at EOF by itself */
    to->shut.data = to;
    to->shut_sent = true;
    rc = uv_shutdown(&to->shut, (uv_stream_t *)&to->tcp, rly_on_shutdown);
    if (rc < 0) {
        snprintf(why, sizeof why, "shutdown towards %s: %s", rly_who(s, to->idx), uv_strerror(rc));
        rly_end(s, true, why);
    }
}

static void rly_refuse_waiting(struct rly_sess *s, enum proto_code code, const char *message);

/* Before the splice: keep what the side sends to forward it first. A peer should send nothing
 * before `relayed`; more than RLY_EARLY_MAX is refused rather than buffered, so that a waiting
 * side never costs more than that (PROTOCOL.md, section 12). */
static void rly_keep(struct rly_side *d, const char *data, size_t n)
{
    char *p, msg[PROTO_MAX_TEXT];
    if (d->pend_len + n > RLY_EARLY_MAX) {
        snprintf(msg, sizeof msg, "more than %d bytes sent before relayed", RLY_EARLY_MAX);
        rly_refuse_waiting(d->s, PC_RELAY_REFUSED, msg);
        return;
    }
    p = realloc(d->pend, d->pend_len + n);
    if (!p) {
        rly_end(d->s, true, "out of memory");
        return;
    }
    memcpy(p + d->pend_len, data, n);
    d->pend = p;
    d->pend_len += n;
}

static void rly_on_read_end(struct rly_side *d, ssize_t n)
{
    struct rly_sess *s = d->s;
    char why[200];
    d->reading = false;
    if (s->state == RS_SPLICED && n == UV_EOF) {
        rly_half_close(d);
        return;
    }
    if (s->state == RS_SPLICED) {
        snprintf(why, sizeof why, "read from %s: %s", rly_who(s, d->idx), uv_strerror((int)n));
        rly_end(s, true, why);
    } else if (s->state == RS_WAITING) {
        snprintf(why, sizeof why, "%s left while waiting (%s)", rly_who(s, d->idx),
                 n == UV_EOF ? "closed" : uv_strerror((int)n));
        rly_end(s, n != UV_EOF, why);
    } else {
        rly_end(s, false, NULL); /* lingering after an error line: done */
    }
}

static void rly_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct rly_side *d = container_of((uv_tcp_t *)st, struct rly_side, tcp);
    struct rly_wreq *w = buf->base ? container_of(buf->base, struct rly_wreq, data) : NULL;
    struct rly_sess *s = d->s;
    struct rly *r = s->r;

    if (n <= 0 || s->state != RS_SPLICED) {
        if (n > 0 && s->state == RS_WAITING)
            rly_keep(d, buf->base, (size_t)n);
        rly_spare(r, w, buf->len);
        if (n < 0)
            rly_on_read_end(d, n);
        return;
    }
    if (!(w = rly_fit(r, w, buf, (size_t)n))) {
        rly_end(s, true, "out of memory");
        return;
    }
    if (rly_queue(d, w, (size_t)n) < 0)
        return;
    rly_rate(d, (size_t)n);
    rly_update_read(d);
}

static void rly_update_read(struct rly_side *d)
{
    enum rly_state st = d->s->state;
    bool want = d->open && !d->eof && d->pause == 0 && st != RS_ENDED;
    char why[160];
    int rc = 0;
    if (want == d->reading)
        return;
    if (want)
        rc = uv_read_start((uv_stream_t *)&d->tcp, rly_on_alloc, rly_on_read);
    else
        uv_read_stop((uv_stream_t *)&d->tcp);
    if (rc < 0) {
        snprintf(why, sizeof why, "read from %s: %s", rly_who(d->s, d->idx), uv_strerror(rc));
        rly_end(d->s, true, why);
        return;
    }
    d->reading = want;
}

/* ---- session timer ---- */

static void rly_on_timer(uv_timer_t *t);

static void rly_arm(struct rly_sess *s, uint64_t ms)
{
    uv_timer_start(&s->timer, rly_on_timer, ms, 0);
}

/* The FIN after an error line is out; the close follows the peer's EOF or the linger timer. */
static void rly_on_linger_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

/* A waiting side is told why (error line), gets its FIN and a moment to read it. */
static void rly_refuse_waiting(struct rly_sess *s, enum proto_code code, const char *message)
{
    char line[PROTO_MAX_LINE];
    int n = proto_encode_pc(code, message, true, line, sizeof line);
    LOG_N("relay %s: refused %s (%s): %s: %s", s->session, rly_who(s, s->side[0].open ? 0 : 1),
          s->side[0].open ? s->side[0].addr : s->side[1].addr, proto_code_name(code), message);
    if ((unsigned)code < PC_COUNT)
        s->r->nerrors[code]++;
    if (s->counted) {
        s->counted = false;
        s->r->nactive--;
    }
    rly_sess_uncount(s);
    if (s->rec)
        rly_rec_free(s->r, s->rec);
    s->state = RS_LINGER;
    for (int i = 0; i < 2; i++) {
        struct rly_side *d = &s->side[i];
        if (!d->open)
            continue;
        d->pause = 0;
        rly_update_read(d); /* read (and drop) until the peer closes: no reset on close */
        d->shut.data = d;
        if (n <= 0 || rly_write_line(d, line, (size_t)n) < 0 ||
            uv_shutdown(&d->shut, (uv_stream_t *)&d->tcp, rly_on_linger_shutdown) < 0) {
            rly_end(s, false, NULL);
            return;
        }
    }
    rly_arm(s, RLY_LINGER_MS);
}

static void rly_on_timer(uv_timer_t *t)
{
    struct rly_sess *s = container_of(t, struct rly_sess, timer);
    char msg[PROTO_MAX_TEXT];
    switch (s->state) {
    case RS_WAITING: {
        int w = s->side[0].open ? 0 : 1;
        snprintf(msg, sizeof msg, "%s did not join the relay in time", rly_who(s, 1 - w));
        rly_refuse_waiting(s, PC_RELAY_TIMEOUT, msg);
        break;
    }
    case RS_SPLICED:
        snprintf(msg, sizeof msg, "time limit reached (--relay-seconds %llu)",
                 (unsigned long long)s->r->cfg.max_seconds);
        rly_end(s, true, msg);
        break;
    default:
        rly_end(s, false, NULL);
        break;
    }
}

/* --relay-idle: checked lazily, so that forwarding a byte costs no timer call. */
static void rly_on_idle(uv_timer_t *t)
{
    struct rly_sess *s = container_of(t, struct rly_sess, idle_timer);
    uint64_t idle_ms = (uint64_t)s->r->cfg.idle * 1000, quiet;
    char msg[PROTO_MAX_TEXT];
    if (s->state != RS_SPLICED)
        return;
    quiet = uv_now(s->r->loop) - s->last_byte_ms;
    if (quiet < idle_ms) {
        uv_timer_start(&s->idle_timer, rly_on_idle, idle_ms - quiet, 0);
        return;
    }
    snprintf(msg, sizeof msg, "idle limit reached: no byte for %u s (--relay-idle)",
             s->r->cfg.idle);
    rly_end(s, true, msg);
}

/* ---- joining ---- */

static struct rly_sess *rly_sess_new(struct rly *r, struct rly_rec *e)
{
    struct rly_sess *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->r = r;
    s->rec = e;
    memcpy(s->session, e->session, sizeof s->session);
    memcpy(s->id, e->id, sizeof s->id);
    s->start_ms = uv_now(r->loop);
    uv_timer_init(r->loop, &s->timer);
    s->timer.data = s;
    s->timer_open = true;
    uv_timer_init(r->loop, &s->idle_timer);
    s->idle_timer.data = s;
    s->idle_open = true;
    s->handles = 2;
    q_insert_head(&r->sessions, &s->link);
    s->counted = true;
    r->nactive++;
    r->nsessions++;
    e->sess = s;
    return s;
}

static int rly_side_open(struct rly_sess *s, int idx, int fd, const char *addr, const char *pre,
                         size_t prelen)
{
    struct rly_side *d = &s->side[idx];
    d->s = s;
    d->idx = idx;
    d->fd = -1;
    d->out.rd = d->out.wr = -1;
    snprintf(d->addr, sizeof d->addr, "%s", addr);
    if (prelen) {
        d->pend = malloc(prelen);
        if (!d->pend)
            return -1;
        memcpy(d->pend, pre, prelen);
        d->pend_len = prelen;
    }
    uv_tcp_init(s->r->loop, &d->tcp);
    d->tcp.data = s;
    d->open = true;
    s->handles++;
    if (uv_tcp_open(&d->tcp, fd) < 0) {
        /* the handle never took fd: the caller still owns it */
        rly_close_handle((uv_handle_t *)&d->tcp, &d->open);
        return -1;
    }
    uv_timer_init(s->r->loop, &d->rate_timer);
    d->rate_timer.data = s;
    d->timer_open = true;
    s->handles++;
    uv_tcp_nodelay(&d->tcp, 1);
    uv_tcp_keepalive(&d->tcp, 1, RLY_KEEPALIVE_S);
    return 0;
}

/* ---- the zero-copy path: splice socket -> pipe -> socket (rendezvous/rzc.h) ---- */

/* 0 when p is big enough to splice through (RLY_PIPE_MIN), else ENOBUFS with p closed. */
static int rly_zc_big(struct rzc_pipe *p)
{
    if (p->size >= RLY_PIPE_MIN)
        return 0;
    rzc_close(p);
    return ENOBUFS;
}

/* Whether a session may take its pipes: the descriptors open, the pipe ends, the two dups
 * that exist for a moment and RLY_FD_RESERVE within the soft RLIMIT_NOFILE. */
static bool rly_zc_fds(void)
{
    struct rlimit rl;
    uint64_t open = ps_open_fds();
    if (!open || getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return true; /* unknown: pipe2's EMFILE still tells */
    return open + RZC_FDS_PER_SESSION + 2 + RLY_FD_RESERVE <= rl.rlim_cur;
}

/* Says at start when --relay-max spliced sessions cannot all have their pipes within the soft
 * RLIMIT_NOFILE: 2 sockets and RZC_FDS_PER_SESSION pipe ends each, RLY_FD_RESERVE kept free.
 * Those beyond copy (rly_zc_fds); control connections need descriptors too. */
static void rly_zc_budget(const struct rly_cfg *cfg)
{
    struct rlimit rl;
    uint64_t need = (uint64_t)cfg->max_sessions * (2 + RZC_FDS_PER_SESSION) + RLY_FD_RESERVE;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || need <= rl.rlim_cur)
        return;
    LOG_W("relay: --relay-max %lu spliced sessions need up to %llu descriptors, the limit is %llu "
          "(ulimit -n): sessions beyond it copy through user space",
          cfg->max_sessions, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
}

/* Ends s for a system call that failed with err on side d ("read from", "write to"...): a
 * reset, as a failed read or write on the copy path. Returns -1. spliced: err came from
 * splice(2) itself; only then can EINVAL or ENOSYS mean a kernel that refuses to splice this
 * socket (an EINVAL from shutdown or from a socket's pending error says nothing about splice,
 * and must not turn splicing off for everyone). */
static int rly_zc_fail(struct rly_sess *s, const char *what, const struct rly_side *d, int err,
                       bool spliced)
{
    char why[200];
    if (spliced && (err == EINVAL || err == ENOSYS)) {
        /* the probe passed but this socket refuses: later sessions copy */
        s->r->zc_ok = false;
        snprintf(s->r->zc_why, sizeof s->r->zc_why, "splice: %s", strerror(err));
        LOG_W("relay: splice failed (%s): later sessions copy", strerror(err));
    }
    snprintf(why, sizeof why, "%s %s: %s", what, rly_who(s, d->idx), strerror(err));
    rly_end(s, true, why);
    return -1;
}

/* One direction, from a to the other side b: drain a's pipe into b, pass a's FIN on once the
 * pipe is empty, then fill the pipe from a. Returns -1 after ending s, else 1 when something
 * moved, 0 when nothing could. */
static int rly_zc_dir(struct rly_side *a)
{
    struct rly_sess *s = a->s;
    struct rly_side *b = &s->side[1 - a->idx];
    uint64_t max = s->r->cfg.max_bytes, total = s->side[0].bytes + s->side[1].bytes;
    int moved = 0;
    ssize_t n;

    if (a->out.held) {
        n = rzc_drain(&a->out, b->fd);
        if (n > 0) {
            moved = 1;
            a->pause &= ~(unsigned)RLY_PAUSE_PIPE; /* room again: the fill may try once more */
        } else if (n != -EAGAIN) {
            return rly_zc_fail(s, "write to", b, (int)-n, true);
        }
    }
    if (!a->out.held && a->eof && !b->shut_sent) {
        b->shut_sent = true;
        if (shutdown(b->fd, SHUT_WR) < 0)
            return rly_zc_fail(s, "shutdown towards", b, errno, false);
        b->shut_done = true;
        if (s->side[0].shut_done && s->side[1].shut_done) {
            rly_end(s, false, "both sides closed");
            return -1;
        }
        moved = 1;
    }
    if (a->eof || a->pause || a->out.held >= a->out.size)
        return moved;
    n = rzc_fill(&a->out, a->fd,
                 rzc_want(a->out.size - a->out.held, rly_chunk(s->r), max != 0,
                          max > total ? max - total : 0));
    if (n > 0) {
        if (rly_count(a, (size_t)n) < 0)
            return -1;
        rly_rate(a, (size_t)n);
        return 1;
    }
    if (n == 0) {
        a->eof = true; /* its FIN follows the bytes still in the pipe */
        return 1;
    }
    if (n != -EAGAIN)
        return rly_zc_fail(s, "read from", a, (int)-n, true);
    /* EAGAIN: a's socket is empty, or the pipe is full of short segments before its byte
     * count says so (a pipe holds a number of buffers, not of bytes). While it holds bytes,
     * the fill waits for the drain to make room; polling a for reading meanwhile would spin
     * on a socket that stays readable */
    if (a->out.held)
        a->pause |= RLY_PAUSE_PIPE;
    return moved;
}

static void rly_on_poll(uv_poll_t *h, int status, int events);

/* What each side's socket waits for: readable while its pipe may be filled, writable while the
 * other side's pipe holds bytes for it. Nothing: not watched (no wakeup for a socket at EOF). */
static void rly_zc_arm(struct rly_sess *s)
{
    char why[160];
    for (int i = 0; i < 2; i++) {
        struct rly_side *d = &s->side[i], *o = &s->side[1 - i];
        int ev = 0, rc;
        if (!d->eof && !d->pause && d->out.held < d->out.size)
            ev |= UV_READABLE;
        if (o->out.held)
            ev |= UV_WRITABLE;
        if (ev == d->pevents)
            continue;
        d->pevents = ev;
        rc = ev ? uv_poll_start(&d->poll, ev, rly_on_poll) : uv_poll_stop(&d->poll);
        if (rc < 0) {
            snprintf(why, sizeof why, "poll %s: %s", rly_who(s, i), uv_strerror(rc));
            rly_end(s, true, why);
            return;
        }
    }
}

/* Moves what can move, both directions, a bounded number of rounds, then waits for what
 * blocked. */
static void rly_zc_pump(struct rly_sess *s)
{
    for (int round = 0; round < RLY_PUMP_ROUNDS && s->state == RS_SPLICED; round++) {
        int m0 = rly_zc_dir(&s->side[0]), m1;
        if (m0 < 0 || (m1 = rly_zc_dir(&s->side[1])) < 0)
            return;
        if (!m0 && !m1)
            break;
    }
    if (s->state == RS_SPLICED)
        rly_zc_arm(s);
}

static void rly_on_poll(uv_poll_t *h, int status, int events)
{
    struct rly_side *d = container_of(h, struct rly_side, poll);
    struct rly_sess *s = d->s;
    int err = 0;
    socklen_t len = sizeof err;
    (void)events;
    if (s->state != RS_SPLICED)
        return;
    if (status < 0) {
        /* POLLERR (libuv says EBADF and stops the watcher): a reset, passed on as one. The
         * error is read here, so a later splice could no longer tell it from an EOF */
        if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || !err)
            err = ECONNRESET;
        rly_zc_fail(s, "connection with", d, err, false);
        return;
    }
    rly_zc_pump(s);
}

/* Side d's part of rly_zc_start: a dup of its socket in *fd and its pipe in *p, holding
 * `relayed` (line, n bytes) and then what d sent early. Returns 0 or an errno value; whatever
 * was made stays in *fd and *p for the caller to close. */
static int rly_zc_side(struct rly_side *d, const char *line, size_t n, int *fd,
                       struct rzc_pipe *p)
{
    uv_os_fd_t ofd;
    int err;
    if (uv_fileno((uv_handle_t *)&d->tcp, &ofd) != 0)
        return EBADF;
    if ((*fd = fcntl(ofd, F_DUPFD_CLOEXEC, 0)) < 0)
        return errno;
    if ((err = -rzc_open(p, n + d->pend_len, RLY_PIPE_SIZE)) != 0 || (err = rly_zc_big(p)) != 0 ||
        (err = -rzc_put(p, line, n)) != 0)
        return err;
    return -rzc_put(p, d->pend, d->pend_len);
}

/* A poll watcher for side d's dup fd. Returns 0 or an errno value. */
static int rly_zc_watch(struct rly_side *d, int fd)
{
    int rc = uv_poll_init(d->s->r->loop, &d->poll, fd);
    if (rc < 0)
        return -rc;
    d->poll.data = d->s;
    d->poll_open = true;
    d->s->handles++;
    return 0;
}

/* Moves s to the zero-copy path. Each side's socket leaves its uv_tcp_t for a dup watched by
 * a uv_poll_t, and gets a pipe towards the other side that first holds what the other side
 * hears before any spliced byte: `relayed` (line, n bytes), then what this side sent early.
 * Returns 0, or -1 with why when something is missing (descriptors, pipe pages, a watcher):
 * then nothing changed and the session copies. */
static int rly_zc_start(struct rly_sess *s, const char *line, size_t n, char *why, size_t len)
{
    struct rzc_pipe p[2] = {{-1, -1, 0, 0}, {-1, -1, 0, 0}};
    int fd[2] = {-1, -1}, err = 0;

    if (!rly_zc_fds()) {
        snprintf(why, len, "fewer than %d descriptors left", RZC_FDS_PER_SESSION + RLY_FD_RESERVE);
        return -1;
    }
    for (int i = 0; i < 2 && !err; i++)
        err = rly_zc_side(&s->side[i], line, n, &fd[i], &p[i]);
    for (int i = 0; i < 2 && !err; i++)
        err = rly_zc_watch(&s->side[i], fd[i]);
    if (err)
        goto fail;
    for (int i = 0; i < 2; i++) {
        struct rly_side *d = &s->side[i];
        rly_close_handle((uv_handle_t *)&d->tcp, &d->open); /* closes ofd; fd keeps the socket */
        d->reading = false;
        d->fd = fd[i];
        d->out = p[i];
        d->pevents = 0;
    }
    s->zc = true;
    return 0;

fail:
    snprintf(why, len, "%s", err == ENOBUFS ? "pipes of less than 64 KiB (the user's "
             "pipe-user-pages-soft is spent)" : strerror(err));
    for (int i = 0; i < 2; i++) {
        /* uv_close takes the watcher out of epoll at once: its fd may go right after */
        rly_close_handle((uv_handle_t *)&s->side[i].poll, &s->side[i].poll_open);
        rzc_close(&p[i]);
        if (fd[i] >= 0)
            close(fd[i]);
    }
    return -1;
}

/* The zero-copy splice of s, when this relay splices and s can have its pipes: the early
 * bytes counted as the copy path counts them, then the first fill and drain. Returns 0 when s
 * is spliced in the kernel (or ended), -1 when it is to copy. */
static int rly_splice_zc(struct rly_sess *s, const char *line, size_t n)
{
    char why[160];
    if (!s->r->zc_ok) {
        LOG_I("relay %s: copying through user space (%s)", s->session,
              s->r->cfg.copy ? "--relay-copy" : s->r->zc_why);
        return -1;
    }
    if (rly_zc_start(s, line, n, why, sizeof why) < 0) {
        LOG_I("relay %s: copying through user space (no pipe: %s)", s->session, why);
        return -1;
    }
    LOG_I("relay %s: splicing in the kernel (zero copy)", s->session);
    for (int i = 0; i < 2; i++) {
        struct rly_side *d = &s->side[i];
        if (d->pend_len && rly_count(d, d->pend_len) < 0)
            return 0;
        free(d->pend);
        d->pend = NULL;
        d->pend_len = 0;
    }
    rly_zc_pump(s);
    return 0;
}

/* Both sides are here: `relayed` to each, then what each sent early, then the bytes. */
static void rly_splice(struct rly_sess *s)
{
    struct proto_msg m;
    char line[PROTO_MAX_LINE];
    int n;

    rly_rec_free(s->r, s->rec);
    s->state = RS_SPLICED;
    s->start_ms = uv_now(s->r->loop);
    uv_timer_stop(&s->timer);
    if (s->r->cfg.max_seconds)
        rly_arm(s, s->r->cfg.max_seconds * 1000);
    s->last_byte_ms = s->start_ms;
    if (s->r->cfg.idle)
        uv_timer_start(&s->idle_timer, rly_on_idle, (uint64_t)s->r->cfg.idle * 1000, 0);
    LOG_N("relay %s: %s (%s) <-> %s (%s) joined, splicing", s->session, rly_who(s, 0),
          s->side[0].addr, rly_who(s, 1), s->side[1].addr);
    memset(&m, 0, sizeof m);
    m.type = PROTO_RELAYED;
    memcpy(m.u.relayed.session, s->session, sizeof m.u.relayed.session);
    n = proto_encode(&m, line, sizeof line);
    if (n > 0 && rly_splice_zc(s, line, (size_t)n) == 0)
        return;
    for (int i = 0; i < 2 && s->state == RS_SPLICED; i++)
        if (n <= 0 || rly_write_line(&s->side[i], line, (size_t)n) < 0)
            rly_end(s, true, "cannot write relayed");
    for (int i = 0; i < 2 && s->state == RS_SPLICED; i++) {
        struct rly_side *d = &s->side[i];
        struct rly_wreq *w;
        if (!d->pend_len)
            continue;
        w = rly_wreq_new(d->pend_len);
        if (!w) {
            rly_end(s, true, "out of memory");
            return;
        }
        memcpy(w->data, d->pend, d->pend_len);
        if (rly_queue(d, w, d->pend_len) < 0)
            return;
        free(d->pend);
        d->pend = NULL;
        d->pend_len = 0;
    }
    for (int i = 0; i < 2 && s->state == RS_SPLICED; i++)
        rly_update_read(&s->side[i]);
}

static int rly_refuse(char *code, size_t codelen, char *msg, size_t msglen, enum proto_code c,
                      const char *m)
{
    snprintf(code, codelen, "%s", proto_code_name(c));
    snprintf(msg, msglen, "%s", m);
    return -1;
}

/* The counts a joining side adds to its session (the first side: both ids and keys and its
 * source; the second: its source), in add. Returns 0, or -1 with why when one of them holds
 * --relay-per-peer sessions already. */
static int rly_join_quota(struct rly *r, const struct rly_rec *e, const struct sockaddr *sa,
                          struct rly_q *add[RLY_MAX_Q], int *nadd, char *why, size_t len)
{
    struct rly_q *c[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
    int n = 0, rc = 0;
    if (!e->sess) {
        c[0] = rly_q_get(r, RQ_ID, e->id[0], false);
        c[1] = rly_q_get(r, RQ_ID, e->id[1], false);
        c[2] = e->has_key[0] ? rly_q_get(r, RQ_KEY, e->key[0], false) : NULL;
        c[3] = e->has_key[1] ? rly_q_get(r, RQ_KEY, e->key[1], false) : NULL;
    }
    c[4] = rly_q_get(r, RQ_SRC, sa, false);
    c[5] = rly_q_get(r, RQ_SITE, sa, false);
    *nadd = 0;
    for (int i = 0; i < 6; i++) {
        bool dup = !c[i];
        for (int k = 0; k < n && !dup; k++)
            dup = add[k] == c[i];
        for (int k = 0; e->sess && k < e->sess->nq && !dup; k++)
            dup = e->sess->q[k] == c[i];
        if (dup)
            continue;
        add[n++] = c[i];
        if (rc == 0 && !rly_q_room(r, c[i], why, len))
            rc = -1;
    }
    if (rc < 0) {
        for (int k = 0; k < n; k++)
            rly_q_put(r, add[k]); /* frees the ones this join created */
        return -1;
    }
    *nadd = n;
    return 0;
}

int rly_join(struct rly *r, const char *session, const char *token, int fd, const char *addr,
             const struct sockaddr *sa, const char *pre, size_t prelen, char *code, size_t codelen,
             char *msg, size_t msglen)
{
    struct rly_rec *e;
    struct rly_sess *s;
    struct rly_q *add[RLY_MAX_Q];
    char text[PROTO_MAX_TEXT];
    uint64_t now = uv_now(r->loop), wait_ms, left_ms;
    int idx, nadd;

    if (!r->cfg.enabled)
        return rly_refuse(code, codelen, msg, msglen, PC_RELAY_DISABLED,
                          "this server does not relay");
    if (r->stopping)
        return rly_refuse(code, codelen, msg, msglen, PC_SERVER_SHUTDOWN,
                          "the server is shutting down");
    e = rly_find(r, session);
    if (!e)
        return rly_refuse(code, codelen, msg, msglen, PC_RELAY_REFUSED,
                          "unknown or expired relay session");
    idx = rly_token_eq(token, e->token[0]) ? 0 : rly_token_eq(token, e->token[1]) ? 1 : -1;
    if (idx < 0)
        return rly_refuse(code, codelen, msg, msglen, PC_RELAY_REFUSED,
                          "wrong token for this relay session");
    if (e->used[idx])
        return rly_refuse(code, codelen, msg, msglen, PC_RELAY_REFUSED,
                          "this token has already joined the relay");
    if (prelen > RLY_EARLY_MAX) {
        snprintf(text, sizeof text, "more than %d bytes sent before relayed", RLY_EARLY_MAX);
        return rly_refuse(code, codelen, msg, msglen, PC_RELAY_REFUSED, text);
    }
    if (!e->sess && r->nactive >= r->cfg.max_sessions) {
        snprintf(text, sizeof text, "the relay already carries %lu sessions", r->cfg.max_sessions);
        return rly_refuse(code, codelen, msg, msglen, PC_RELAY_FULL, text);
    }
    if (rly_join_quota(r, e, sa, add, &nadd, text, sizeof text) < 0) {
        LOG_N("relay %s: refused %s (%s): %s", e->session, e->id[idx], addr, text);
        return rly_refuse(code, codelen, msg, msglen, PC_RELAY_FULL, text);
    }
    s = e->sess ? e->sess : rly_sess_new(r, e);
    for (int i = 0; i < nadd; i++)
        if (!s || rly_sess_count(s, add[i]) < 0)
            rly_q_put(r, add[i]);
    if (!s || rly_side_open(s, idx, fd, addr, pre, prelen) < 0) {
        if (s && !s->side[1 - idx].open)
            rly_end(s, false, NULL);
        return rly_refuse(code, codelen, msg, msglen, PC_RELAY_FULL,
                          "the relay is out of resources");
    }
    e->used[idx] = true;
    if (s->side[1 - idx].open) {
        rly_splice(s);
        return 0;
    }
    /* the first side waits for --relay-wait, and never past the offer's expiry */
    wait_ms = (uint64_t)r->cfg.wait * 1000;
    left_ms = e->created_ms + RLY_OFFER_TTL_MS > now ? e->created_ms + RLY_OFFER_TTL_MS - now : 0;
    rly_arm(s, wait_ms < left_ms ? wait_ms : left_ms);
    LOG_N("relay %s: %s joined from %s, waiting for %s", s->session, rly_who(s, idx), addr,
          rly_who(s, 1 - idx));
    rly_update_read(&s->side[idx]);
    return 0;
}

/* ---- life cycle ---- */

struct rly *rly_new(uv_loop_t *loop, const struct rly_cfg *cfg, void (*idle)(void *), void *arg)
{
    struct rly *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->loop = loop;
    r->cfg = *cfg;
    q_init(&r->byage);
    q_init(&r->sessions);
    if (hmap_init(&r->offers, RLY_MIN_BUCKETS) < 0 || hmap_init(&r->quotas, RLY_MIN_BUCKETS) < 0) {
        hmap_fini(&r->offers);
        free(r);
        return NULL;
    }
    r->idle = idle;
    r->arg = arg;
    uv_timer_init(loop, &r->sweep);
    r->sweep.data = r;
    r->sweep_open = true;
    uv_timer_start(&r->sweep, rly_on_sweep, RLY_SWEEP_MS, RLY_SWEEP_MS);
    uv_unref((uv_handle_t *)&r->sweep); /* only sessions should keep the loop running */
    if (cfg->enabled && !cfg->copy) {
        r->zc_ok = rzc_probe(r->zc_why, sizeof r->zc_why);
        if (!r->zc_ok)
            LOG_W("relay: %s: relayed bytes are copied through user space", r->zc_why);
        else
            rly_zc_budget(cfg);
    }
    return r;
}

size_t rly_active(const struct rly *r)
{
    return r->nactive;
}

void rly_stats(const struct rly *r, struct rly_stats *out)
{
    out->active = r->nactive;
    out->sessions = r->nsessions;
    out->bytes = r->nbytes;
    out->errors = r->nerrors;
}

bool rly_idle(const struct rly *r)
{
    return r->stopping && !r->sweep_open && q_empty(&r->sessions);
}

static void rly_on_sweep_closed(uv_handle_t *h)
{
    struct rly *r = h->data;
    rly_maybe_idle(r);
}

void rly_drain(struct rly *r)
{
    struct q *it, *tmp;
    r->draining = true;
    /* nobody joins any more (the server's listeners are closed, its fresh connections told to
     * go): a side waiting for its other one would only hold the drain until --relay-wait or
     * SEC, then hear the same server-shutdown. It hears it now, and can go elsewhere. */
    q_foreach_safe(it, tmp, &r->sessions) {
        struct rly_sess *s = q_data(it, struct rly_sess, link);
        if (s->state == RS_WAITING)
            rly_refuse_waiting(s, PC_SERVER_SHUTDOWN,
                               "the server is shutting down: the other side can no longer join");
    }
}

void rly_stop(struct rly *r)
{
    struct rly_rec *e;
    struct q *it, *tmp;
    if (r->stopping)
        return;
    r->stopping = true;
    while ((e = rly_oldest(r)))
        rly_rec_free(r, e);
    q_foreach_safe(it, tmp, &r->sessions) {
        struct rly_sess *s = q_data(it, struct rly_sess, link);
        if (s->state == RS_WAITING)
            rly_refuse_waiting(s, PC_SERVER_SHUTDOWN, "the server is shutting down");
        else if (s->state == RS_SPLICED) {
            rly_end(s, true, "the server is shutting down");
        }
    }
    r->sweep_open = false;
    uv_close((uv_handle_t *)&r->sweep, rly_on_sweep_closed);
}

void rly_free(struct rly *r)
{
    struct rly_rec *e;
    struct hmap_node *it, *tmp;
    if (!r)
        return;
    free(r->spare);
    while ((e = rly_oldest(r)))
        rly_rec_free(r, e);
    hmap_foreach_safe(it, tmp, &r->quotas)
        free(hmap_data(it, struct rly_q, node));
    hmap_fini(&r->offers);
    hmap_fini(&r->quotas);
    free(r);
}
