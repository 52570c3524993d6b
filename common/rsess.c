#include "common/rsess.h"

#include <string.h>

void rs_params_default(struct rs_params *p)
{
    *p = (struct rs_params){.ack_step = RS_ACK_STEP,
                            .ack_delay_ms = RS_ACK_DELAY_MS,
                            .ack_max_delay_ms = RS_ACK_MAX_DELAY_MS,
                            .heartbeat_ms = RS_HEARTBEAT_MS,
                            .dead_ms = RS_DEAD_MS,
                            .linger_ms = RS_LINGER_MS,
                            .resume_ms = RS_RESUME_MS};
}

int rs_init(struct rsess *s, const struct rs_params *p, size_t ring_cap, uint64_t tx_start,
            uint64_t rx_start, uint64_t now_ms)
{
    memset(s, 0, sizeof *s);
    if (p)
        s->p = *p;
    else
        rs_params_default(&s->p);
    s->state = RS_NEW;
    s->now = now_ms;
    s->sent = s->high = tx_start;
    s->rx = s->rx_acked = s->conn_off = rx_start;
    if (tx_start > RS_LAST_OFFSET || rx_start > RS_LAST_OFFSET || s->p.ack_step == 0)
        return -1;
    return rbuf_init_at(&s->tx, ring_cap, tx_start);
}

void rs_free(struct rsess *s)
{
    rbuf_free(&s->tx);
}

static bool rs_live(const struct rsess *s)
{
    return s->state == RS_ACTIVE || s->state == RS_MOVING || s->state == RS_ENDING;
}

uint64_t rs_rx_offset(const struct rsess *s)
{
    return s->rx + (s->peer_fin && s->rx == s->peer_end ? 1 : 0);
}

/* what the peer has acknowledged: acked, +1 once our FIN is */
static uint64_t rs_acked_off(const struct rsess *s)
{
    return rbuf_acked(&s->tx) + (s->fin_acked ? 1 : 0);
}

static uint64_t rs_ack_limit(const struct rsess *s)
{
    return s->high + (s->fin_ever_sent ? 1 : 0);
}

/* both FINs done: ENDING (from ACTIVE only; a move completes first) */
static void rs_check_end(struct rsess *s)
{
    if (s->state != RS_ACTIVE || !s->fin_acked || !s->peer_fin || s->rx != s->peer_end)
        return;
    s->state = RS_ENDING;
    s->ack_now = true;
    s->final_due = true;
    s->at_due = false;
    s->resend_due = false;
}

/* An acknowledgement a (an ACK, a handshake's rx, a RESEND's from): 0 taken, 1 stale, -1 a lie. */
static int rs_take_ack(struct rsess *s, uint64_t a)
{
    if (a > rs_ack_limit(s))
        return -1;
    if (a < rs_acked_off(s))
        return 1;
    if (a == rs_acked_off(s))
        return 0;
    if (s->fin_ever_sent && a == rbuf_end(&s->tx) + 1) {
        s->fin_acked = true;
        a = rbuf_end(&s->tx);
    }
    rbuf_ack(&s->tx, a); /* a <= high <= end: never refused */
    if (s->sent < a) {
        /* after a rewind the peer holds more than this connection carried: jump, with an AT */
        s->sent = a;
        s->at_due = true;
    }
    return 0;
}

/* sending starts over at `from` on the current connection */
static void rs_rewind(struct rsess *s, uint64_t from)
{
    uint64_t end = rbuf_end(&s->tx);
    s->sent = from < rbuf_acked(&s->tx) ? rbuf_acked(&s->tx) : from;
    if (s->sent > end)
        s->sent = end;
    s->fin_sent_conn = false;
}

/* the connection read from changes: its offset is unknown until its AT */
static void rs_read_new(struct rsess *s, bool gap_ok, uint64_t now)
{
    s->conn_known = false;
    s->gap_ok = gap_ok;
    s->gap_drop = false;
    s->resend_due = false;
    s->last_rx_ms = now;
}

int rs_attach(struct rsess *s, uint32_t epoch, uint64_t peer_rx, uint64_t now_ms)
{
    s->now = now_ms;
    if (s->state == RS_NEW) {
        if (epoch != 0 || peer_rx != rbuf_acked(&s->tx))
            return -1;
    } else if (s->state != RS_SUSPENDED || epoch <= s->last_epoch) {
        return -1;
    }
    if (peer_rx > rs_ack_limit(s) || peer_rx < rs_acked_off(s))
        return -1; /* beyond what we ever sent, or less than it acknowledged: a lie */
    rs_take_ack(s, peer_rx);
    rs_rewind(s, peer_rx);
    s->cur = (struct rs_conn_st){.epoch = epoch, .open = true};
    s->old = (struct rs_conn_st){0};
    s->last_epoch = epoch;
    s->state = RS_ACTIVE;
    s->at_due = epoch != 0;
    s->move_due = false;
    s->wait_epoch = 0;
    rs_read_new(s, false, now_ms);
    if (epoch == 0) {
        s->conn_known = true;
        s->conn_off = s->rx;
    }
    s->rx_acked = rs_rx_offset(s); /* the handshake told the peer */
    s->last_tx_ms = now_ms;
    rs_check_end(s);
    return 0;
}

int rs_upgrade(struct rsess *s, uint32_t epoch, uint64_t peer_rx, uint64_t now_ms)
{
    s->now = now_ms;
    if (s->state != RS_ACTIVE || epoch <= s->last_epoch)
        return -1;
    if (s->wait_epoch && s->wait_epoch != epoch)
        return -1;
    if (rs_take_ack(s, peer_rx) < 0)
        return -1;
    s->old = s->cur;
    s->cur = (struct rs_conn_st){.epoch = epoch, .open = true};
    s->last_epoch = epoch;
    s->state = RS_MOVING;
    s->move_end = s->sent;
    s->move_due = true;
    s->at_due = true;
    s->fin_sent_conn = false;
    s->last_tx_ms = now_ms;
    if (s->wait_epoch == epoch) { /* the peer moved first: its data is on d already */
        s->wait_epoch = 0;
        rs_read_new(s, false, now_ms);
    }
    return 0;
}

/* MOVING ends when our MOVE is out and the peer's was read (or c is gone) */
static void rs_move_done(struct rsess *s)
{
    if (s->state != RS_MOVING || s->move_due || !(s->old.moved_in || !s->old.open))
        return;
    s->state = RS_ACTIVE;
    rs_check_end(s);
}

/* The current connection is gone: SUSPENDED until a resume (FAILED at once with resume_ms 0). */
static enum rs_state rs_suspend(struct rsess *s, uint64_t now_ms)
{
    s->cur.open = false;
    s->old.open = false;
    s->at_due = s->move_due = s->resend_due = s->ack_now = false;
    s->wait_epoch = 0;
    s->gap_drop = false;
    s->d_lost = false;
    if (s->p.resume_ms == 0) {
        s->state = RS_FAILED;
    } else {
        s->state = RS_SUSPENDED;
        s->deadline_ms = now_ms + s->p.resume_ms;
    }
    return s->state;
}

/* MOVING, d failed before the peer's MOVE: whether c may still bring the session's end. A peer
 * whose session is ending (both FINs done) takes no new connection (rs_upgrade refuses it) and
 * ends on c; for that it must have acknowledged our FIN and sent its own, so we hold its FIN and
 * sent ours. A d that failed otherwise suspends at once: c carries no more data of ours. */
static bool rs_end_on_c_possible(const struct rsess *s)
{
    return s->state == RS_MOVING && s->old.open && !s->old.moved_in && rs_peer_eof(s) &&
           s->fin_ever_sent;
}

enum rs_state rs_conn_failed(struct rsess *s, uint32_t epoch, uint64_t now_ms)
{
    s->now = now_ms;
    if (s->state == RS_ENDING) {
        s->state = RS_DONE; /* a failure after both FINs needs no resume */
        return s->state;
    }
    if (!rs_live(s))
        return s->state;
    if (s->old.open && epoch == s->old.epoch) {
        bool had_move = s->old.moved_in;
        if (s->d_lost) /* c was all that was left and brought no end */
            return rs_suspend(s, now_ms);
        s->old.open = false;
        s->move_due = false; /* lost with c: the peer learns it from our AT on d */
        if (s->state == RS_MOVING) {
            if (!had_move) /* the MOVE may have been lost with c: d's data may start above rx */
                rs_read_new(s, true, now_ms);
            s->state = RS_ACTIVE;
            rs_check_end(s);
        }
        return s->state;
    }
    if (!s->cur.open || epoch != s->cur.epoch)
        return s->state; /* not a connection of ours (any more) */
    if (rs_end_on_c_possible(s)) {
        /* the peer may have refused d at its end: MOVING goes on, c read for what it brings
         * (rs_on_final: the end; its MOVE or its failure: SUSPENDED); nothing is sent any more */
        s->cur.open = false;
        s->d_lost = true;
        s->at_due = s->move_due = s->resend_due = s->ack_now = false;
        return s->state;
    }
    return rs_suspend(s, now_ms);
}

void rs_give_up(struct rsess *s)
{
    if (s->state == RS_SUSPENDED || s->state == RS_NEW)
        s->state = RS_FAILED;
}

enum rs_state rs_on_gone(struct rsess *s, bool ended, uint64_t peer_rx)
{
    if (s->state != RS_SUSPENDED)
        return s->state;
    if (ended && s->fin_ever_sent && peer_rx == rbuf_end(&s->tx) + 1 && rs_peer_eof(s)) {
        /* everything both ways is through; only the last ACKs were lost with the connection */
        rs_take_ack(s, peer_rx);
        s->state = RS_DONE;
    } else {
        s->state = RS_ABORTED;
        s->peer_aborted = true;
        s->abort_reason = RS_ABORT_GONE;
    }
    return s->state;
}

void rs_abort(struct rsess *s, uint8_t reason)
{
    if (s->state == RS_DONE || s->state == RS_ABORTED || s->state == RS_FAILED)
        return;
    s->abort_due = s->cur.open;
    s->abort_reason = reason;
    s->peer_aborted = false;
    s->state = RS_ABORTED;
}

bool rs_reading(const struct rsess *s, uint32_t *epoch)
{
    if (!rs_live(s) || s->wait_epoch)
        return false;
    if (s->state == RS_MOVING && s->old.open && !s->old.moved_in) {
        *epoch = s->old.epoch;
        return true;
    }
    if (!s->cur.open || s->cur.moved_in)
        return false;
    *epoch = s->cur.epoch;
    return true;
}

static bool rs_is_reading(const struct rsess *s, uint32_t epoch)
{
    uint32_t e;
    return rs_reading(s, &e) && e == epoch;
}

/* an epoch of an open connection of ours: something was received on it */
static bool rs_heard(struct rsess *s, uint32_t epoch, uint64_t now)
{
    s->now = now;
    if (rs_is_reading(s, epoch))
        s->last_rx_ms = now;
    return (s->cur.open && s->cur.epoch == epoch) || (s->old.open && s->old.epoch == epoch);
}

enum rs_rx rs_on_data(struct rsess *s, uint32_t epoch, size_t len, size_t *skip, size_t *take,
                      uint64_t now_ms)
{
    *skip = *take = 0;
    if (!rs_heard(s, epoch, now_ms) || !rs_is_reading(s, epoch) || len == 0 || !rs_live(s))
        return RS_RX_ERROR;
    if (s->gap_drop) {
        *skip = len;
        return RS_RX_DROP;
    }
    if (!s->conn_known || s->conn_off > s->rx)
        return RS_RX_ERROR; /* data before the AT of an epoch >= 1, or a gap */
    if (len > RS_LAST_OFFSET - s->conn_off)
        return RS_RX_ERROR; /* past the last offset a session can number */
    uint64_t next = s->conn_off + len;
    if (s->peer_fin && next > s->peer_end)
        return RS_RX_ERROR; /* data past the peer's FIN */
    uint64_t dup = s->rx - s->conn_off;
    *skip = dup < len ? (size_t)dup : len;
    *take = len - *skip;
    s->conn_off = next;
    if (*take == 0)
        return RS_RX_DUP;
    if (rs_rx_offset(s) == s->rx_acked)
        s->first_unacked_ms = now_ms;
    s->rx += *take;
    s->last_data_ms = now_ms;
    return RS_RX_DELIVER;
}

static int rs_on_at(struct rsess *s, uint64_t off)
{
    if (s->peer_fin && off > s->peer_end)
        return -1;
    if (off <= s->rx) {
        s->gap_drop = false;
        s->conn_off = off;
        s->conn_known = true;
        return 0;
    }
    if (s->gap_ok && !s->gap_drop) { /* 4.6 step 4: once per connection */
        s->gap_ok = false;
        s->gap_drop = true;
        s->resend_due = true;
        return 0;
    }
    return -1; /* a gap where none may be, or the AT after our RESEND above rx */
}

static int rs_on_move(struct rsess *s, uint32_t epoch, uint64_t end, uint32_t next)
{
    if (s->gap_drop || !s->conn_known || end != s->conn_off || next <= epoch)
        return -1;
    if (s->d_lost)
        return -1; /* the peer moved to d, which failed: c fails too, SUSPENDED */
    if (s->state == RS_ENDING && epoch == s->cur.epoch && !s->cur.moved_in) {
        /* the peer moved to a connection our side refused (ENDING: nothing left to carry); the
         * TAG_FINAL that follows here ends the session as the peer's end would */
        s->cur.moved_in = true;
        return 0;
    }
    if (s->state == RS_MOVING && s->old.open && epoch == s->old.epoch) {
        if (next != s->cur.epoch)
            return -1;
        s->old.moved_in = true;
        rs_read_new(s, false, s->now);
        rs_move_done(s);
        return 0;
    }
    if (s->state == RS_ACTIVE && epoch == s->cur.epoch) {
        /* the peer moved before the path side handed us its new connection: wait for it */
        s->cur.moved_in = true;
        s->wait_epoch = next;
        return 0;
    }
    return -1;
}

static int rs_on_fin(struct rsess *s, uint64_t end)
{
    if (s->gap_drop)
        return 0; /* part of what is dropped until the AT; it comes again */
    if (!s->conn_known || end != s->conn_off || end != s->rx)
        return -1;
    if (s->peer_fin && end != s->peer_end)
        return -1;
    s->peer_fin = true;
    s->peer_end = end;
    s->ack_now = true;
    rs_check_end(s);
    return 0;
}

int rs_on_ctl(struct rsess *s, uint32_t epoch, const struct rs_ctl *c, uint64_t now_ms)
{
    if (!rs_heard(s, epoch, now_ms))
        return -1;
    if (c->type == RS_CTL_ABORT) {
        if (s->state != RS_ABORTED && s->state != RS_DONE && s->state != RS_FAILED) {
            s->state = RS_ABORTED;
            s->peer_aborted = true;
            s->abort_reason = c->reason;
            s->abort_due = false;
        }
        return 0;
    }
    if (!rs_live(s))
        return s->state == RS_ABORTED ? 0 : -1;
    switch (c->type) {
    case RS_CTL_ACK: {
        int r = rs_take_ack(s, c->off);
        if (r == 0)
            rs_check_end(s);
        return r;
    }
    case RS_CTL_RESEND:
        /* the peer holds everything below from and lost what followed: go back, on d only */
        if (epoch != s->cur.epoch || c->off > s->high || c->off < rbuf_acked(&s->tx))
            return -1;
        if (s->state == RS_ENDING)
            return -1;
        rs_take_ack(s, c->off);
        rs_rewind(s, c->off);
        s->at_due = true;
        return 0;
    case RS_CTL_AT:
    case RS_CTL_MOVE:
    case RS_CTL_FIN:
        if (!rs_is_reading(s, epoch))
            return -1; /* the peer's data records and their order come on one connection */
        if (c->type == RS_CTL_AT)
            return rs_on_at(s, c->off);
        if (c->type == RS_CTL_MOVE)
            return rs_on_move(s, epoch, c->off, c->epoch);
        return rs_on_fin(s, c->off);
    default:
        return -1;
    }
}

int rs_on_final(struct rsess *s, uint32_t epoch, uint64_t now_ms)
{
    if (s->state == RS_ABORTED)
        return 0;
    if (!rs_heard(s, epoch, now_ms) || !rs_live(s))
        return -1;
    struct rs_conn_st *k = s->old.open && s->old.epoch == epoch ? &s->old : &s->cur;
    if (s->state == RS_MOVING && k == &s->old && !k->moved_in && s->fin_acked && rs_peer_eof(s)) {
        /* the peer ended the session on c without moving: it refused d, which carries nothing
         * then; both directions are through, so the session is (5.4 "MOVING | peer's end on c") */
        k->final_in = true;
        s->cur.open = false;
        s->d_lost = false;
        s->state = RS_DONE;
        return 0;
    }
    if (!k->moved_in && !(s->state == RS_ENDING && k == &s->cur))
        return -1; /* TAG_FINAL without MOVE, before the session's end */
    k->final_in = true;
    if (s->state == RS_ENDING && s->final_sent && k == &s->cur)
        s->state = RS_DONE;
    return 0;
}

int rs_on_eof(struct rsess *s, uint32_t epoch, uint64_t now_ms)
{
    s->now = now_ms;
    if (s->state == RS_ABORTED || s->state == RS_DONE)
        return 0;
    if (s->old.open && s->old.epoch == epoch) {
        if (!s->old.final_in)
            return -1;
        s->old.eof_in = true;
        if (!s->move_due)
            s->old.open = false; /* drained, and our MOVE is out: close it */
        rs_move_done(s);
        return 0;
    }
    if (!s->cur.open || s->cur.epoch != epoch)
        return -1;
    if (s->state == RS_ENDING) { /* the peer is through too: no failure any more */
        s->cur.eof_in = true;
        if (s->final_sent)
            s->state = RS_DONE;
        return 0;
    }
    if (s->cur.final_in) { /* after its MOVE: we go on writing here until the upgrade */
        s->cur.eof_in = true;
        return 0;
    }
    return -1;
}

bool rs_conn_open(const struct rsess *s, uint32_t epoch)
{
    if (!rs_live(s))
        return false;
    return (s->cur.open && s->cur.epoch == epoch) || (s->old.open && s->old.epoch == epoch);
}

struct rbuf *rs_ring(struct rsess *s)
{
    return &s->tx;
}

size_t rs_tx_room(const struct rsess *s)
{
    size_t room = rbuf_room(&s->tx);
    uint64_t left = RS_LAST_OFFSET - rbuf_end(&s->tx);
    if (s->fin)
        return 0;
    return left < room ? (size_t)left : room;
}

void rs_tx_eof(struct rsess *s)
{
    s->fin = true;
}

int rs_tx_peek(const struct rsess *s, const unsigned char **ptr, size_t *len)
{
    *ptr = NULL;
    *len = 0;
    if ((s->state != RS_ACTIVE && s->state != RS_MOVING) || !s->cur.open || s->at_due)
        return -1;
    if (s->sent >= rbuf_end(&s->tx))
        return -1;
    return rbuf_peek(&s->tx, s->sent, ptr, len);
}

void rs_tx_sent(struct rsess *s, size_t n, uint64_t now_ms)
{
    uint64_t left = rbuf_end(&s->tx) - s->sent;
    s->sent += n < left ? n : left;
    if (s->sent > s->high)
        s->high = s->sent;
    s->last_tx_ms = now_ms;
    s->now = now_ms;
}

/* the time an ACK becomes due for what was received (UINT64_MAX: none) */
static uint64_t rs_ack_at(const struct rsess *s)
{
    if (rs_rx_offset(s) == s->rx_acked)
        return UINT64_MAX;
    if (s->ack_now || rs_rx_offset(s) - s->rx_acked >= s->p.ack_step)
        return 0;
    uint64_t a = s->last_data_ms + s->p.ack_delay_ms,
             b = s->first_unacked_ms + s->p.ack_max_delay_ms;
    return a < b ? a : b;
}

/* the time the connection read from counts as dead (UINT64_MAX: none) */
static uint64_t rs_dead_at(const struct rsess *s, bool reading)
{
    uint32_t e;
    if (!reading || !rs_reading(s, &e))
        return UINT64_MAX;
    return s->last_rx_ms + s->p.dead_ms;
}

static bool rs_can_send(const struct rsess *s)
{
    return (s->state == RS_ACTIVE || s->state == RS_MOVING ||
            (s->state == RS_ENDING && !s->final_sent)) &&
           s->cur.open;
}

unsigned rs_tick(struct rsess *s, uint64_t now_ms, bool reading)
{
    unsigned act = 0;
    s->now = now_ms;
    if (!reading)
        s->last_rx_ms = now_ms; /* held while our output is blocked */
    switch (s->state) {
    case RS_SUSPENDED:
        if (now_ms >= s->deadline_ms)
            s->state = RS_FAILED;
        break;
    case RS_ENDING:
        if (s->final_sent && now_ms >= s->deadline_ms)
            s->state = RS_DONE;
        break;
    default:
        break;
    }
    if (s->state == RS_DONE)
        return RS_ACT_DONE;
    if (s->state == RS_FAILED)
        return RS_ACT_FAILED;
    if (s->state == RS_ABORTED)
        return s->abort_due ? RS_ACT_ABORT : 0;
    if (s->move_due && s->old.open)
        act |= RS_ACT_MOVE;
    if (rs_can_send(s)) {
        if (s->ack_now || now_ms >= rs_ack_at(s) || now_ms >= s->last_tx_ms + s->p.heartbeat_ms)
            act |= RS_ACT_ACK;
        if (s->at_due)
            act |= RS_ACT_AT;
        if (s->resend_due)
            act |= RS_ACT_RESEND;
        if (s->state != RS_ENDING && s->fin && !s->fin_sent_conn && !s->fin_acked && !s->at_due &&
            s->sent == rbuf_end(&s->tx))
            act |= RS_ACT_FIN;
        if (s->state == RS_ENDING && s->final_due)
            act |= RS_ACT_FINAL;
    }
    if (now_ms >= rs_dead_at(s, reading))
        act |= RS_ACT_DEAD;
    return act;
}

int rs_ctl(const struct rsess *s, unsigned act, struct rs_ctl *out)
{
    *out = (struct rs_ctl){0};
    switch (act) {
    case RS_ACT_ACK:
        *out = (struct rs_ctl){.type = RS_CTL_ACK, .off = rs_rx_offset(s)};
        return 0;
    case RS_ACT_AT:
        *out = (struct rs_ctl){.type = RS_CTL_AT, .off = s->sent};
        return 0;
    case RS_ACT_RESEND:
        *out = (struct rs_ctl){.type = RS_CTL_RESEND, .off = s->rx};
        return 0;
    case RS_ACT_MOVE:
        *out = (struct rs_ctl){.type = RS_CTL_MOVE, .off = s->move_end, .epoch = s->cur.epoch};
        return 0;
    case RS_ACT_FIN:
        *out = (struct rs_ctl){.type = RS_CTL_FIN, .off = rbuf_end(&s->tx)};
        return 0;
    case RS_ACT_ABORT:
        *out = (struct rs_ctl){.type = RS_CTL_ABORT, .reason = s->abort_reason};
        return 0;
    default:
        return -1;
    }
}

void rs_sent(struct rsess *s, unsigned act, uint64_t now_ms)
{
    s->now = now_ms;
    if (act != RS_ACT_MOVE)
        s->last_tx_ms = now_ms;
    switch (act) {
    case RS_ACT_ACK:
        s->rx_acked = rs_rx_offset(s);
        s->ack_now = false;
        break;
    case RS_ACT_AT:
        s->at_due = false;
        break;
    case RS_ACT_RESEND:
        s->resend_due = false;
        break;
    case RS_ACT_MOVE:
        s->move_due = false;
        if (s->old.eof_in)
            s->old.open = false; /* the peer's half is through: close it */
        rs_move_done(s);
        break;
    case RS_ACT_FIN:
        s->fin_sent_conn = s->fin_ever_sent = true;
        break;
    case RS_ACT_FINAL:
        if (s->state == RS_ENDING) {
            s->final_due = false;
            s->final_sent = true;
            s->deadline_ms = now_ms + s->p.linger_ms;
            if (s->cur.final_in || s->cur.eof_in)
                s->state = RS_DONE;
        }
        break;
    case RS_ACT_ABORT:
        s->abort_due = false;
        break;
    default:
        break;
    }
}

int rs_next_timeout(const struct rsess *s, uint64_t now_ms, bool reading)
{
    uint64_t at = UINT64_MAX;
    switch (s->state) {
    case RS_SUSPENDED:
        at = s->deadline_ms;
        break;
    case RS_DONE:
    case RS_FAILED:
        return 0;
    case RS_ABORTED:
        return s->abort_due ? 0 : -1;
    case RS_NEW:
        return -1;
    default:
        if (s->move_due && s->old.open)
            return 0;
        if (s->state == RS_ENDING && s->final_sent)
            at = s->deadline_ms;
        if (rs_can_send(s)) {
            uint64_t a = rs_ack_at(s), h = s->last_tx_ms + s->p.heartbeat_ms;
            if (s->ack_now || s->at_due || s->resend_due || s->final_due)
                return 0;
            if (s->fin && !s->fin_sent_conn && !s->fin_acked && s->sent == rbuf_end(&s->tx))
                return 0;
            at = a < at ? a : at;
            at = h < at ? h : at;
        }
        uint64_t d = rs_dead_at(s, reading);
        at = d < at ? d : at;
        break;
    }
    if (at == UINT64_MAX)
        return -1;
    if (at <= now_ms)
        return 0;
    uint64_t left = at - now_ms;
    return left > INT32_MAX ? INT32_MAX : (int)left;
}

enum rs_state rs_state(const struct rsess *s)
{
    return s->state;
}

const char *rs_state_name(enum rs_state st)
{
    static const char *const names[] = {"NEW",    "ACTIVE", "MOVING",  "SUSPENDED",
                                        "ENDING", "DONE",   "ABORTED", "FAILED"};
    return (unsigned)st < sizeof names / sizeof names[0] ? names[st] : "?";
}

uint64_t rs_rx(const struct rsess *s)
{
    return s->rx;
}

uint64_t rs_tx_sent_off(const struct rsess *s)
{
    return s->sent;
}

uint64_t rs_tx_acked(const struct rsess *s)
{
    return rbuf_acked(&s->tx);
}

bool rs_peer_eof(const struct rsess *s)
{
    return s->peer_fin && s->rx == s->peer_end;
}

bool rs_d_lost(const struct rsess *s)
{
    return s->d_lost;
}
