#include "common/rstream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/sframe.h"

/* room kept at the end of an output buffer for the control records of one fill (ACK, AT,
 * RESEND, FIN, MOVE, ABORT and a TAG_FINAL each), so data never crowds them out */
#define RST_CTL_ROOM (8 * (SF_MAX + SEAL_OVERHEAD))
#define RST_OUT_CAP                                                                                \
    (SEAL_HEADER + RST_BUF + (RST_BUF / SEAL_CHUNK + 1) * SEAL_OVERHEAD + RST_CTL_ROOM)
#define RST_IN_CAP (RST_BUF + SEAL_REC_MAX)
#define RST_STUCK_MS 50 /* poll's timeout while what is due waits for room in the output */

static void rst_fail(struct rstream *r, struct rst_conn *c, uint64_t now, const char *what,
                     const char *detail);

static bool rst_transient(int e)
{
    return e == EAGAIN || e == EWOULDBLOCK || e == EINTR;
}

static void rst_conn_reset(struct rst_conn *c)
{
    unsigned char *out = c->out, *in = c->in;
    sodium_memzero(&c->tx, sizeof c->tx);
    sodium_memzero(&c->rx, sizeof c->rx);
    *c = (struct rst_conn){.fd = -1, .out = out, .in = in, .pi = -1};
}

/* A connection that failed goes with RST: the peer learns it in one trip if the reverse path
 * still works, and no FIN makes it look like a deliberate end. */
static void rst_close(struct rst_conn *c, bool rst)
{
    if (c->fd >= 0) {
        if (rst) {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(c->fd);
    }
    rst_conn_reset(c);
}

int rst_init(struct rstream *r, const struct rs_params *p, size_t ring, uint64_t now_ms)
{
    memset(r, 0, sizeof *r);
    rst_conn_reset(&r->cur);
    rst_conn_reset(&r->old);
    if (rs_init(&r->s, p, ring, 0, 0, now_ms) < 0)
        return -1;
    r->down = malloc(RST_BUF);
    r->scratch = malloc(SEAL_CHUNK);
    r->cur.out = malloc(RST_OUT_CAP);
    r->cur.in = malloc(RST_IN_CAP);
    r->old.out = malloc(RST_OUT_CAP);
    r->old.in = malloc(RST_IN_CAP);
    if (!r->down || !r->scratch || !r->cur.out || !r->cur.in || !r->old.out || !r->old.in)
        return -1;
    return 0;
}

static void rst_wipe_free(unsigned char *p, size_t n)
{
    if (p) {
        sodium_memzero(p, n);
        free(p);
    }
}

void rst_free(struct rstream *r)
{
    bool clean = rs_state(&r->s) == RS_DONE;
    rst_close(&r->cur, !clean);
    rst_close(&r->old, !clean);
    rst_wipe_free(r->cur.out, RST_OUT_CAP);
    rst_wipe_free(r->cur.in, RST_IN_CAP);
    rst_wipe_free(r->old.out, RST_OUT_CAP);
    rst_wipe_free(r->old.in, RST_IN_CAP);
    rst_wipe_free(r->down, RST_BUF);
    rst_wipe_free(r->scratch, SEAL_CHUNK);
    r->cur.out = r->cur.in = r->old.out = r->old.in = r->down = r->scratch = NULL;
    rs_free(&r->s);
}

/* a new connection in slot c: our stream header first, the peer's in what we read */
static void rst_conn_start(struct rst_conn *c, const struct rst_attach *a)
{
    rst_conn_reset(c);
    c->fd = a->fd;
    c->epoch = a->epoch;
    seal_tx_init(&c->tx, a->tx, c->out);
    c->olen = SEAL_HEADER;
    seal_rx_init_session(&c->rx, a->rx);
    if (a->prefill_len)
        memcpy(c->in, a->prefill, a->prefill_len);
    c->ilen = a->prefill_len;
    c->blocked = a->prefill_len > 0;
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

int rst_attach(struct rstream *r, const struct rst_attach *a, uint64_t now_ms)
{
    if (a->fd < 0 || a->prefill_len > RST_PREFILL || !r->down)
        return -1;
    if (a->upgrade) {
        if (rs_upgrade(&r->s, a->epoch, a->peer_rx, now_ms) < 0)
            return -1;
        rst_close(&r->old, true); /* an older move's leftover: the session let it go */
        struct rst_conn t = r->old;
        r->old = r->cur;
        r->cur = t;
    } else {
        if (rs_attach(&r->s, a->epoch, a->peer_rx, now_ms) < 0)
            return -1;
        rst_close(&r->cur, true);
        rst_close(&r->old, true);
    }
    rst_conn_start(&r->cur, a);
    r->lost = false;
    return 0;
}

void rst_cut(struct rstream *r, const char *why, uint64_t now_ms)
{
    if (r->cur.fd >= 0)
        rst_fail(r, &r->cur, now_ms, why, NULL);
    if (rs_d_lost(&r->s) && r->old.fd >= 0) { /* c read on after d failed: the peer resumed */
        rst_fail(r, &r->old, now_ms, why, NULL);
        snprintf(r->why, sizeof r->why, "%s", why);
    }
}

int rst_tx_space(struct rstream *r, unsigned char **ptr, size_t *len)
{
    size_t room = rs_tx_room(&r->s);
    *ptr = NULL;
    *len = 0;
    if (room == 0)
        return 0;
    if (rbuf_reserve(rs_ring(&r->s), ptr, len) < 0)
        return -1;
    if (*len > room)
        *len = room;
    return 0;
}

bool rst_tx_want(struct rstream *r)
{
    enum rs_state st = rs_state(&r->s);
    if (rs_tx_room(&r->s) == 0)
        return false;
    if (st != RS_ACTIVE && st != RS_MOVING)
        return true; /* suspended: the ring buffers what the source gives, until it is full */
    /* live: only a little ahead of what went out, so that the bytes are sealed while they are
     * still in the cache (a ring filled far ahead costs a cache miss per line on both ends) */
    return rbuf_end(rs_ring(&r->s)) - rs_tx_sent_off(&r->s) < RST_BUF;
}

void rst_tx_commit(struct rstream *r, size_t n)
{
    rbuf_commit(rs_ring(&r->s), n);
}

void rst_tx_eof(struct rstream *r)
{
    rs_tx_eof(&r->s);
}

size_t rst_rx_peek(const struct rstream *r, const unsigned char **ptr)
{
    *ptr = r->down + r->doff;
    return r->dlen - r->doff;
}

void rst_rx_consume(struct rstream *r, size_t n)
{
    r->doff += n;
    if (r->doff >= r->dlen)
        r->doff = r->dlen = 0;
}

bool rst_peer_eof(const struct rstream *r)
{
    return rs_peer_eof(&r->s) && r->dlen == r->doff;
}

const char *rst_why(const struct rstream *r)
{
    return r->why;
}

struct rsess *rst_sess(struct rstream *r)
{
    return &r->s;
}

uint64_t rst_resent(const struct rstream *r)
{
    return r->resent;
}

/* --- receiving ------------------------------------------------------------------------------ */

/* room for one more record's plaintext at the end of down (compacting if that makes it) */
static bool rst_down_room(struct rstream *r)
{
    if (r->dlen + SEAL_CHUNK <= RST_BUF)
        return true;
    if (r->doff == 0)
        return false;
    memmove(r->down, r->down + r->doff, r->dlen - r->doff);
    r->dlen -= r->doff;
    r->doff = 0;
    return r->dlen + SEAL_CHUNK <= RST_BUF;
}

/* whether c is the connection the peer's data comes on now */
static bool rst_data_conn(const struct rstream *r, const struct rst_conn *c)
{
    uint32_t e;
    return c->fd >= 0 && rs_reading(&r->s, &e) && e == c->epoch;
}

/* whether to read c now: the data connection while there is room for what it brings, or a
 * connection the peer moved away from (only its TAG_FINAL and EOF are left to read) */
static bool rst_want_read(const struct rstream *r, const struct rst_conn *c)
{
    if (c->fd < 0 || c->eof || c->ilen >= RST_IN_CAP)
        return false;
    if (rst_data_conn(r, c))
        return r->dlen + SEAL_CHUNK <= RST_BUF || r->doff > 0;
    return c->moved_in;
}

/* Table 5.4's "connection failed": the session decides what it means, the socket goes at once.
 * A d that failed during a move may leave c to be read for the peer's end (rsess d_lost): its
 * reason is kept for the suspension that follows when c brings none. */
static void rst_fail(struct rstream *r, struct rst_conn *c, uint64_t now, const char *what,
                     const char *detail)
{
    bool was_cur = c == &r->cur, was_d_lost = rs_d_lost(&r->s);
    enum rs_state st = rs_conn_failed(&r->s, c->epoch, now);
    rst_close(c, true);
    bool lost = st == RS_SUSPENDED || st == RS_FAILED;
    /* the current one, or c after d was lost (c was the session's last connection) */
    if (!(was_cur && (lost || rs_d_lost(&r->s))) && !(was_d_lost && lost))
        return;
    if (!was_d_lost) { /* d's failure is the reason, also when c brought no end after it */
        if (detail)
            snprintf(r->why, sizeof r->why, "%s (%s)", what, detail);
        else
            snprintf(r->why, sizeof r->why, "%s", what);
    }
    r->lost = st == RS_SUSPENDED;
}

static int rst_take_ctl(struct rstream *r, struct rst_conn *c, const unsigned char *p, size_t n,
                        uint64_t now)
{
    struct sf_ctl f;
    if (sf_decode(p, n, &f) < 0)
        return -1;
    struct rs_ctl k = {
        .type = (enum rs_ctl_type)f.type, .off = f.off, .epoch = f.epoch, .reason = f.reason};
    if (rs_on_ctl(&r->s, c->epoch, &k, now) < 0)
        return -1;
    if (k.type == RS_CTL_MOVE)
        c->moved_in = true;
    if (k.type == RS_CTL_ABORT)
        snprintf(r->why, sizeof r->why, "the peer ended the session (%s)", sf_abort_str(k.reason));
    return 0;
}

/* A data record of n bytes opened into down + dlen (or scratch): only what rsess calls new is
 * kept, right after what down already holds. */
static int rst_take_data(struct rstream *r, struct rst_conn *c, unsigned char *p, size_t n,
                         uint64_t now)
{
    size_t skip, take;
    enum rs_rx v = rs_on_data(&r->s, c->epoch, n, &skip, &take, now);
    if (v == RS_RX_ERROR || (take > 0 && p != r->down + r->dlen))
        return -1;
    if (v != RS_RX_DELIVER)
        return 0;
    if (skip)
        memmove(p, p + skip, take);
    r->dlen += take;
    r->rx_total += take;
    /* new authentic bytes: the path carries the session again, so forged records counted so
     * far were someone's injection that a resume got past (AUDIT.md, Phase 10 finding 1) */
    if (take > 0)
        r->bad_auth = 0;
    return 0;
}

/* One record opened: 1 go on, 0 stop (not a whole record), -1 c failed (or the session ended). */
static int rst_open_one(struct rstream *r, struct rst_conn *c, size_t *off, uint64_t now)
{
    bool data = rst_data_conn(r, c);
    unsigned char *plain;
    size_t used, plen;
    if (data && !rst_down_room(r)) {
        c->blocked = true; /* whole records may wait here: open them once out drained */
        return 0;
    }
    plain = data ? r->down + r->dlen : r->scratch;
    enum seal_status st = seal_rx_next(&c->rx, c->in + *off, c->ilen - *off, &used, plain, &plen);
    *off += used;
    c->blocked = false;
    switch (st) {
    case SEAL_NEED:
        return 0;
    case SEAL_DATA:
        if (rst_take_data(r, c, plain, plen, now) == 0)
            return 1;
        rst_fail(r, c, now, "connection lost", "protocol error: data out of place");
        return -1;
    case SEAL_CTL:
        if (rst_take_ctl(r, c, plain, plen, now) == 0) {
            sodium_memzero(plain, plen);
            return rs_state(&r->s) == RS_ABORTED ? -1 : 1;
        }
        rst_fail(r, c, now, "connection lost", "protocol error: a control record");
        return -1;
    case SEAL_FINAL:
        if (plen == 0 && rs_on_final(&r->s, c->epoch, now) == 0)
            return 1;
        rst_fail(r, c, now, "connection lost", "protocol error: a final record");
        return -1;
    case SEAL_BAD_AUTH:
    case SEAL_BAD_LENGTH: /* a forged length field: no genuine peer sends one either */
        if (++r->bad_auth >= RST_AUTH_FAILS)
            r->aborted = true;
        /* fall through */
    default:
        rst_fail(r, c, now, "connection lost", seal_strerror(st));
        return -1;
    }
}

/* Opens the whole records c holds, as far as the session lets it read. */
static void rst_open(struct rstream *r, struct rst_conn *c, uint64_t now)
{
    size_t off = 0;
    int k = 1;
    if (c->fd < 0 || c->ilen == 0)
        return;
    if (!rst_data_conn(r, c) && !c->moved_in && !(c == &r->old && c->fd >= 0))
        return; /* the peer's records here wait until it is this connection's turn */
    while (k > 0 && off < c->ilen)
        k = rst_open_one(r, c, &off, now);
    if (k < 0)
        return; /* c is closed, its buffer dropped */
    memmove(c->in, c->in + off, c->ilen - off);
    c->ilen -= off;
}

static void rst_on_eof(struct rstream *r, struct rst_conn *c, uint64_t now)
{
    c->eof = true;
    if (rs_on_eof(&r->s, c->epoch, now) < 0) {
        rst_fail(r, c, now, "connection lost", "it ended without its final record");
        return;
    }
}

static void rst_read(struct rstream *r, struct rst_conn *c, uint64_t now)
{
    ssize_t n = read(c->fd, c->in + c->ilen, RST_IN_CAP - c->ilen);
    if (n < 0) {
        if (!rst_transient(errno))
            rst_fail(r, c, now, "connection lost", strerror(errno));
        return;
    }
    if (n == 0) {
        rst_open(r, c, now);
        if (c->fd >= 0)
            rst_on_eof(r, c, now);
        return;
    }
    c->ilen += (size_t)n;
    rst_open(r, c, now);
}

/* --- sending -------------------------------------------------------------------------------- */

static size_t rst_pending(const struct rst_conn *c)
{
    return c->olen - c->ooff;
}

static void rst_seal_ctl(struct rst_conn *c, const struct rs_ctl *k)
{
    struct sf_ctl f = {
        .type = (enum sf_type)k->type, .off = k->off, .epoch = k->epoch, .reason = k->reason};
    unsigned char pl[SF_MAX];
    size_t n = sf_encode(&f, pl);
    if (n)
        c->olen += seal_tx_ctl(&c->tx, pl, n, c->out + c->olen);
}

/* the control record of one act bit, sealed on c, and told to the session */
static void rst_emit(struct rstream *r, struct rst_conn *c, unsigned act, uint64_t now)
{
    struct rs_ctl k;
    if (rs_ctl(&r->s, act, &k) == 0)
        rst_seal_ctl(c, &k);
    if (act == RS_ACT_MOVE || act == RS_ACT_ABORT || act == RS_ACT_FINAL) {
        c->olen += seal_tx_final(&c->tx, c->out + c->olen);
        c->final_out = true;
    }
    rs_sent(&r->s, act, now);
}

/* makes room at the end of c's output for at least need bytes, if moving what is pending does */
static bool rst_out_room(struct rst_conn *c, size_t need)
{
    if (c->ooff == c->olen)
        c->ooff = c->olen = 0;
    if (c->olen + need <= RST_OUT_CAP)
        return true;
    if (c->ooff == 0)
        return false;
    memmove(c->out, c->out + c->ooff, c->olen - c->ooff);
    c->olen -= c->ooff;
    c->ooff = 0;
    return c->olen + need <= RST_OUT_CAP;
}

/* data from the ring, one record at a time, while the output has room (big sends) */
static void rst_seal_data(struct rstream *r, struct rst_conn *c, uint64_t now)
{
    const unsigned char *p;
    size_t len;
    while (rst_out_room(c, SEAL_REC_MAX + RST_CTL_ROOM) && rs_tx_peek(&r->s, &p, &len) == 0) {
        size_t n = len < SEAL_CHUNK ? len : SEAL_CHUNK;
        uint64_t at = rs_tx_sent_off(&r->s);
        c->olen += seal_tx_data(&c->tx, p, n, c->out + c->olen);
        if (at < r->high)
            r->resent += r->high - at < n ? r->high - at : n;
        rs_tx_sent(&r->s, n, now);
        if (at + n > r->high)
            r->high = at + n;
    }
}

static bool rst_reading_now(const struct rstream *r)
{
    return r->dlen + SEAL_CHUNK <= RST_BUF || r->doff > 0;
}

/* What is due goes into the output buffers, in the order rsess.h gives; returns the acts. */
static unsigned rst_fill(struct rstream *r, uint64_t now)
{
    unsigned act = rs_tick(&r->s, now, rst_reading_now(r));
    struct rst_conn *c = &r->cur;
    if ((act & RS_ACT_MOVE) && r->old.fd >= 0 && rst_out_room(&r->old, RST_CTL_ROOM))
        rst_emit(r, &r->old, RS_ACT_MOVE, now);
    if (c->fd < 0 || c->final_out || !rst_out_room(c, RST_CTL_ROOM))
        return act;
    static const unsigned before[] = {RS_ACT_ACK, RS_ACT_AT, RS_ACT_RESEND};
    for (size_t i = 0; i < sizeof before / sizeof before[0]; i++)
        if (act & before[i])
            rst_emit(r, c, before[i], now);
    rst_seal_data(r, c, now);
    /* FIN is due only once all data went out, TAG_FINAL once both FINs are done: ask again */
    unsigned after = rs_tick(&r->s, now, rst_reading_now(r));
    if ((after & RS_ACT_ACK) && rst_out_room(c, RST_CTL_ROOM))
        rst_emit(r, c, RS_ACT_ACK, now);
    if ((after & RS_ACT_FIN) && rst_out_room(c, RST_CTL_ROOM))
        rst_emit(r, c, RS_ACT_FIN, now);
    if ((after & RS_ACT_FINAL) && rst_out_room(c, RST_CTL_ROOM))
        rst_emit(r, c, RS_ACT_FINAL, now);
    return act | after;
}

static void rst_send(struct rstream *r, struct rst_conn *c, uint64_t now)
{
    while (c->fd >= 0 && rst_pending(c) > 0) {
        ssize_t w = send(c->fd, c->out + c->ooff, rst_pending(c), MSG_NOSIGNAL);
        if (w < 0) {
            if (!rst_transient(errno))
                rst_fail(r, c, now, "connection lost", strerror(errno));
            return;
        }
        c->ooff += (size_t)w;
    }
    if (c->fd >= 0 && c->final_out && !c->shut && rst_pending(c) == 0) {
        shutdown(c->fd, SHUT_WR);
        c->shut = true;
    }
}

/* --- the loop's two calls ------------------------------------------------------------------- */

static void rst_poll_conn(struct rstream *r, struct rst_conn *c, struct pollfd *pf, int *n)
{
    c->pi = -1;
    if (c->fd < 0)
        return;
    /* a connection not read (our output is blocked, or its turn has not come) is still polled
     * with no events: a reset shows as POLLERR/POLLHUP at once, not at the next heartbeat */
    pf[*n] = (struct pollfd){.fd = c->fd, .events = 0};
    if (rst_want_read(r, c))
        pf[*n].events |= POLLIN;
    if (rst_pending(c) > 0)
        pf[*n].events |= POLLOUT;
    if (pf[*n].events == 0 && (c->eof || c->hup))
        pf[*n].fd = -1; /* else a hung-up socket would wake poll for ever */
    c->pi = (*n)++;
}

/* a connection whose output cannot take what is due until POLLOUT (the records due stay due,
 * and rs_next_timeout keeps saying 0) */
static bool rst_out_stuck(const struct rstream *r, const struct rst_conn *c)
{
    if (c->fd < 0 || rst_pending(c) == 0)
        return false;
    return rst_pending(c) + RST_CTL_ROOM > RST_OUT_CAP || rs_state(&r->s) == RS_DONE;
}

int rst_pollfds(struct rstream *r, struct pollfd *pf, uint64_t now_ms, int *timeout)
{
    int n = 0;
    rst_poll_conn(r, &r->cur, pf, &n);
    rst_poll_conn(r, &r->old, pf, &n);
    int t = rs_next_timeout(&r->s, now_ms, rst_reading_now(r));
    if (t == 0 && (rst_out_stuck(r, &r->cur) || rst_out_stuck(r, &r->old)))
        t = RST_STUCK_MS; /* POLLOUT wakes us; the timers only need a look now and then */
    if (r->lost || r->aborted)
        t = 0;
    if (rst_data_conn(r, &r->cur) && r->cur.blocked && rst_reading_now(r))
        t = 0; /* records left over (prefill, a full down buffer earlier); not for a part of
                  one (SEAL_NEED): that waits for POLLIN */
    if (t >= 0 && (*timeout < 0 || t < *timeout))
        *timeout = t;
    return n;
}

/* POLLERR or POLLHUP on a connection we did not read: reset (or closed both ways) before its
 * end, unless we shut our half ourselves (then it is the end's: stop polling it) */
static void rst_conn_hup(struct rstream *r, struct rst_conn *c, short ev, uint64_t now)
{
    int e = 0;
    socklen_t el = sizeof e;
    if (ev & POLLERR) {
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
        rst_fail(r, c, now, "connection lost", strerror(e ? e : ECONNRESET));
    } else if (!c->shut) {
        rst_fail(r, c, now, "connection lost", "hung up");
    } else {
        c->hup = true;
    }
}

static void rst_conn_io(struct rstream *r, struct rst_conn *c, const struct pollfd *pf,
                        uint64_t now)
{
    if (!pf || c->pi < 0 || c->fd < 0)
        return;
    short ev = pf[c->pi].revents, want = pf[c->pi].events;
    int fd = c->fd;
    if (!(want & POLLIN) && (ev & (POLLERR | POLLHUP))) {
        rst_conn_hup(r, c, ev, now);
        return;
    }
    if ((ev & (POLLIN | POLLHUP | POLLERR)) && c->ilen < RST_IN_CAP && !c->eof)
        rst_read(r, c, now);
    if (c->fd == fd && (ev & (POLLOUT | POLLERR)))
        rst_send(r, c, now);
}

/* the connection the peer moved away from goes once the session is through with it */
static void rst_drop_old(struct rstream *r)
{
    if (r->old.fd >= 0 && !rs_conn_open(&r->s, r->old.epoch) && rst_pending(&r->old) == 0)
        rst_close(&r->old, false);
}

/* An idle session gives its ring's storage back (rbuf.h's memory policy): nothing held, nothing
 * written for a heartbeat's time. The next byte allocates the first step again. */
static void rst_trim(struct rstream *r, uint64_t now)
{
    struct rbuf *rb = rs_ring(&r->s);
    if (rbuf_end(rb) != r->trim_end) {
        r->trim_end = rbuf_end(rb);
        r->trim_ms = now;
        return;
    }
    if (rbuf_storage(rb) && rbuf_used(rb) == 0 && now - r->trim_ms >= r->s.p.heartbeat_ms)
        rbuf_trim(rb);
}

static enum rst_ev rst_verdict(struct rstream *r)
{
    if (r->aborted) {
        snprintf(r->why, sizeof r->why,
                 "%u records failed authentication (forged): the session ends", r->bad_auth);
        r->aborted = false;
        rs_abort(&r->s, SF_ABORT_GONE); /* the failed connection took the ABORT's chance */
        return RST_ABORTED;
    }
    switch (rs_state(&r->s)) {
    case RS_FAILED:
        if (!r->why[0])
            snprintf(r->why, sizeof r->why, "not resumed in time");
        return RST_FAILED;
    case RS_ABORTED:
        return RST_ABORTED;
    case RS_DONE:
        if (r->cur.fd >= 0 && rst_pending(&r->cur) > 0)
            return RST_OK; /* our last ACK and TAG_FINAL still going out */
        return RST_DONE;
    default:
        break;
    }
    if (r->lost) {
        r->lost = false;
        return RST_LOST;
    }
    return RST_OK;
}

enum rst_ev rst_handle(struct rstream *r, const struct pollfd *pf, uint64_t now_ms)
{
    uint32_t e;
    rst_conn_io(r, &r->cur, pf, now_ms);
    rst_conn_io(r, &r->old, pf, now_ms);
    /* a move may have made the other connection the one to read: open what it holds */
    rst_open(r, &r->cur, now_ms);
    rst_open(r, &r->old, now_ms);
    unsigned act = rst_fill(r, now_ms);
    if ((act & RS_ACT_DEAD) && rs_reading(&r->s, &e)) {
        struct rst_conn *c = r->cur.fd >= 0 && r->cur.epoch == e ? &r->cur : &r->old;
        if (c->fd >= 0 && c->epoch == e)
            rst_fail(r, c, now_ms, "connection lost", "nothing received for too long");
    }
    rst_send(r, &r->cur, now_ms);
    rst_send(r, &r->old, now_ms);
    rst_drop_old(r);
    rst_trim(r, now_ms);
    return rst_verdict(r);
}

void rst_abort(struct rstream *r, uint8_t reason, int wait_ms)
{
    struct rst_conn *c = &r->cur;
    rs_abort(&r->s, reason);
    if (c->fd >= 0 && (rs_tick(&r->s, clk_ms(), true) & RS_ACT_ABORT) && !c->final_out &&
        rst_out_room(c, RST_CTL_ROOM))
        rst_emit(r, c, RS_ACT_ABORT, clk_ms());
    uint64_t end = clk_ms() + (uint64_t)(wait_ms > 0 ? wait_ms : 0);
    for (;;) {
        rst_send(r, c, clk_ms());
        uint64_t now = clk_ms();
        if (c->fd < 0 || rst_pending(c) == 0 || now >= end)
            break;
        struct pollfd p = {.fd = c->fd, .events = POLLOUT};
        poll(&p, 1, (int)(end - now));
    }
}
