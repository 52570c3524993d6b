/* The session state machine (common/rsess.c) with a fake clock: every pure row of table 5.4 of
 * docs/design/resume.md (ACTIVE -> SUSPENDED -> ACTIVE as a resume or FAILED, ACTIVE -> MOVING ->
 * ACTIVE, the MOVE lost with c, d failing, an upgrade racing the end (the peer ends on c),
 * ENDING, ABORTED), the ACK cadence (step, delay, max delay, heartbeat), the dead timer and its
 * hold while not reading, a resume from an offset (duplicates skipped exactly, gaps refused),
 * the lying peer's ACKs, RESENDs and handshake offsets, FIN and ABORT ends, a tombstone's `gone`,
 * the records no state accepts, offsets near 2^64, rs_next_timeout, and seeded random runs of two
 * sessions over a simulated wire that loses every connection many times, checking that each side
 * receives the other's bytes exactly once and in order. */
#include "check.h"
#include "common/rsess.h"

#include <stdbool.h>

#define KiB (1024u)

#define CHECK_U64(a, b)                                                                            \
    __extension__({                                                                                \
        uint64_t ua_ = (a), ub_ = (b);                                                             \
        ua_ == ub_ ? 1                                                                             \
                   : check_fail_(__FILE__, __LINE__, "%s == %s: %" PRIu64 " != %" PRIu64, #a, #b,  \
                                 ua_, ub_);                                                        \
    })

static uint64_t now_ = 1000000; /* the fake clock */

static unsigned char pat(uint64_t off)
{
    return (unsigned char)(off * 2654435761u >> 13);
}

/* n bytes of the pattern into the ring at its end */
static void put(struct rsess *s, size_t n)
{
    unsigned char tmp[4096];
    while (n) {
        size_t k = n < sizeof tmp ? n : sizeof tmp;
        uint64_t e = rbuf_end(rs_ring(s));
        for (size_t i = 0; i < k; i++)
            tmp[i] = pat(e + i);
        if (!CHECK(rbuf_write(rs_ring(s), tmp, k) == (ssize_t)k))
            return;
        n -= k;
    }
}

/* everything sendable sealed (as records of up to 16 KiB); returns the bytes */
static uint64_t send_all(struct rsess *s)
{
    const unsigned char *p;
    size_t len;
    uint64_t total = 0;
    while (rs_tx_peek(s, &p, &len) == 0) {
        size_t n = len < 16384 ? len : 16384;
        uint64_t at = rs_tx_sent_off(s);
        for (size_t i = 0; i < n; i++)
            if (p[i] != pat(at + i)) {
                CHECK_MSG(0, "ring byte at %" PRIu64 " wrong", at + i);
                return total;
            }
        rs_tx_sent(s, n, now_);
        total += n;
    }
    return total;
}

static struct rs_ctl ctl(enum rs_ctl_type t, uint64_t off)
{
    return (struct rs_ctl){.type = t, .off = off};
}

/* a session on epoch 0 */
static void active0(struct rsess *s)
{
    CHECK_INT(rs_init(s, NULL, RBUF_MIN, 0, 0, now_), 0);
    CHECK_INT(rs_attach(s, 0, 0, now_), 0);
    CHECK_INT(rs_state(s), RS_ACTIVE);
}

/* the act is due now; send it */
static bool due_send(struct rsess *s, unsigned act, struct rs_ctl *out)
{
    unsigned a = rs_tick(s, now_, true);
    if (!CHECK_MSG(a & act, "act %#x not due (mask %#x, state %s)", act, a,
                   rs_state_name(rs_state(s))))
        return false;
    struct rs_ctl c;
    if (rs_ctl(s, act, &c) == 0 && out)
        *out = c;
    rs_sent(s, act, now_);
    return true;
}

static void t_init(void)
{
    struct rsess s;
    struct rs_params p;
    CHECK_INT(rs_init(&s, NULL, RBUF_MIN - 1, 0, 0, now_), -1);
    rs_params_default(&p);
    CHECK_U64(p.ack_step, 256 * KiB);
    CHECK_INT(p.heartbeat_ms, 5000);
    CHECK_INT(p.dead_ms, 15000);
    p.ack_step = 0;
    CHECK_INT(rs_init(&s, &p, RBUF_MIN, 0, 0, now_), -1);
    CHECK_INT(rs_init(&s, NULL, RBUF_MIN, 0, 0, now_), 0);
    CHECK_INT(rs_state(&s), RS_NEW);
    CHECK_INT(rs_attach(&s, 1, 0, now_), -1); /* the first connection is epoch 0 */
    CHECK_INT(rs_attach(&s, 0, 5, now_), -1); /* from offset 0 */
    CHECK_INT(rs_next_timeout(&s, now_, true), -1);
    const unsigned char *ptr;
    size_t len;
    put(&s, 10);
    CHECK_INT(rs_tx_peek(&s, &ptr, &len), -1); /* no connection yet */
    CHECK_INT(rs_attach(&s, 0, 0, now_), 0);
    CHECK_INT(rs_tick(&s, now_, true) & RS_ACT_AT, 0); /* epoch 0 has no AT */
    CHECK_INT(rs_tx_peek(&s, &ptr, &len), 0);
    CHECK_INT(len, 10);
    CHECK_STR(rs_state_name(rs_state(&s)), "ACTIVE");
    rs_free(&s);
}

/* ACKs: valid up to what was ever sent, stale below acked, lies beyond */
static void t_acks(void)
{
    struct rsess s;
    active0(&s);
    put(&s, 1000);
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_ACK, .off = 1}, now_), -1);
    const unsigned char *p;
    size_t len;
    CHECK_INT(rs_tx_peek(&s, &p, &len), 0);
    rs_tx_sent(&s, 600, now_);
    struct rs_ctl a = ctl(RS_CTL_ACK, 601);
    CHECK_INT(rs_on_ctl(&s, 0, &a, now_), -1); /* written but never sent */
    a.off = 400;
    CHECK_INT(rs_on_ctl(&s, 0, &a, now_), 0);
    CHECK_U64(rs_tx_acked(&s), 400);
    CHECK_U64(rbuf_used(rs_ring(&s)), 600);
    a.off = 300;
    CHECK_INT(rs_on_ctl(&s, 0, &a, now_), 1); /* stale: ignored */
    CHECK_U64(rs_tx_acked(&s), 400);
    a.off = 400;
    CHECK_INT(rs_on_ctl(&s, 0, &a, now_), 0); /* the same again: nothing new */
    a.off = 600;
    CHECK_INT(rs_on_ctl(&s, 0, &a, now_), 0);
    a.off = 1001; /* end + 1 without a FIN */
    CHECK_INT(rs_on_ctl(&s, 0, &a, now_), -1);
    CHECK_INT(rs_on_ctl(&s, 7, &(struct rs_ctl){.type = RS_CTL_ACK, .off = 600}, now_), -1);
    struct rs_ctl bad = {.type = (enum rs_ctl_type)9};
    CHECK_INT(rs_on_ctl(&s, 0, &bad, now_), -1);
    rs_free(&s);
}

/* an ACK every ack_step bytes received, ack_delay after data stops, ack_max_delay at most */
static void t_ack_cadence(void)
{
    struct rsess s;
    size_t skip, take;
    active0(&s);
    uint64_t t0 = now_;
    for (int i = 0; i < 15; i++) { /* 240 KiB: below the step */
        CHECK_INT(rs_on_data(&s, 0, 16 * KiB, &skip, &take, now_), RS_RX_DELIVER);
        CHECK_INT(take, 16 * KiB);
        CHECK_INT(rs_tick(&s, now_, true) & RS_ACT_ACK, 0);
    }
    CHECK_INT(rs_next_timeout(&s, now_, true), 20);
    CHECK_INT(rs_on_data(&s, 0, 16 * KiB, &skip, &take, now_), RS_RX_DELIVER); /* 256 KiB */
    struct rs_ctl c;
    if (due_send(&s, RS_ACT_ACK, &c)) {
        CHECK_INT(c.type, RS_CTL_ACK);
        CHECK_U64(c.off, 256 * KiB);
    }
    CHECK_INT(rs_tick(&s, now_, true) & RS_ACT_ACK, 0);
    CHECK_INT(rs_next_timeout(&s, now_, true), 5000); /* the heartbeat, nothing received since */
    /* a small record, then silence: 20 ms later */
    CHECK_INT(rs_on_data(&s, 0, 100, &skip, &take, now_), RS_RX_DELIVER);
    CHECK_INT(rs_next_timeout(&s, now_, true), 20);
    now_ += 19;
    CHECK_INT(rs_tick(&s, now_, true) & RS_ACT_ACK, 0);
    now_ += 1;
    if (due_send(&s, RS_ACT_ACK, &c))
        CHECK_U64(c.off, 256 * KiB + 100);
    /* a trickle every 10 ms never lets the delay run out: the max delay (200 ms) does */
    uint64_t first = now_;
    int acks = 0;
    for (int i = 0; i < 25; i++) {
        now_ += 10;
        CHECK_INT(rs_on_data(&s, 0, 10, &skip, &take, now_), RS_RX_DELIVER);
        if (rs_tick(&s, now_, true) & RS_ACT_ACK) {
            CHECK_U64(now_ - first, 10 + 200); /* the first unacknowledged byte came at 10 */
            rs_sent(&s, RS_ACT_ACK, now_);
            acks++;
        }
    }
    CHECK_INT(acks, 1);
    (void)t0;
    rs_free(&s);

    /* the step is a parameter */
    struct rs_params p;
    rs_params_default(&p);
    p.ack_step = 128 * KiB;
    CHECK_INT(rs_init(&s, &p, RBUF_MIN, 0, 0, now_), 0);
    CHECK_INT(rs_attach(&s, 0, 0, now_), 0);
    int n = 0;
    for (int i = 0; i < 64; i++) { /* 1 MiB in 16 KiB records, acked as due */
        rs_on_data(&s, 0, 16 * KiB, &skip, &take, now_);
        if (rs_tick(&s, now_, true) & RS_ACT_ACK) {
            rs_sent(&s, RS_ACT_ACK, now_);
            n++;
        }
    }
    CHECK_INT(n, 8);
    rs_free(&s);
}

/* heartbeat after H of nothing sent; dead after D of nothing read while reading */
static void t_heartbeat_dead(void)
{
    struct rsess s;
    size_t skip, take;
    active0(&s);
    uint64_t t0 = now_;
    put(&s, 100);
    now_ += 3000;
    send_all(&s); /* data counts as something sent */
    CHECK_INT(rs_next_timeout(&s, now_, true), 5000);
    now_ += 4999;
    CHECK_INT(rs_tick(&s, now_, true) & RS_ACT_ACK, 0);
    now_ += 1;
    CHECK(due_send(&s, RS_ACT_ACK, NULL)); /* 8 s: the heartbeat, an ACK of rx 0 */
    CHECK_INT(rs_next_timeout(&s, now_, true), 5000);
    /* the dead timer: 15 s after the last thing read (t0) */
    now_ = t0 + 14999;
    CHECK_INT(rs_tick(&s, now_, true) & RS_ACT_DEAD, 0);
    CHECK(due_send(&s, RS_ACT_ACK, NULL)); /* the heartbeat at 13 s was due */
    CHECK_INT(rs_next_timeout(&s, now_, true), 1);
    now_ += 1;
    CHECK(rs_tick(&s, now_, true) & RS_ACT_DEAD);
    uint32_t e = 9;
    CHECK(rs_reading(&s, &e) && e == 0);
    CHECK_INT(rs_conn_failed(&s, e, now_), RS_SUSPENDED);
    rs_free(&s);

    /* reading false holds the timer: a slow consumer is not a dead path */
    active0(&s);
    t0 = now_;
    now_ += 60000;
    CHECK_INT(rs_tick(&s, now_, false) & RS_ACT_DEAD, 0);
    CHECK_INT(rs_tick(&s, now_, true) & RS_ACT_DEAD, 0); /* restarted when reading again */
    now_ += 14000;
    CHECK_INT(rs_on_data(&s, 0, 5, &skip, &take, now_), RS_RX_DELIVER); /* heard: restart */
    now_ += 14000;
    CHECK_INT(rs_tick(&s, now_, true) & RS_ACT_DEAD, 0);
    now_ += 1000;
    CHECK(rs_tick(&s, now_, true) & RS_ACT_DEAD);
    (void)t0;
    rs_free(&s);
}

/* ACTIVE -> SUSPENDED -> ACTIVE(d) as a resume: our side rewinds to the peer's rx, the peer's
 * data resent from an AT below our rx is skipped exactly, an AT above it refused */
static void t_resume(void)
{
    struct rsess s;
    size_t skip, take;
    active0(&s);
    put(&s, 5000);
    send_all(&s);
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_ACK, .off = 1000}, now_), 0);
    CHECK_INT(rs_on_data(&s, 0, 3000, &skip, &take, now_), RS_RX_DELIVER);
    CHECK_INT(rs_conn_failed(&s, 0, now_), RS_SUSPENDED);
    CHECK_INT(rs_tick(&s, now_, true), 0);
    CHECK_INT(rs_next_timeout(&s, now_, true), RS_RESUME_MS);
    CHECK_INT(rs_conn_failed(&s, 0, now_), RS_SUSPENDED); /* twice: nothing */
    const unsigned char *p;
    size_t len;
    CHECK_INT(rs_tx_peek(&s, &p, &len), -1);
    CHECK_INT(rs_on_data(&s, 0, 10, &skip, &take, now_), RS_RX_ERROR); /* no connection */
    /* lies in the handshake: beyond what was sent, below what was acknowledged, stale epoch */
    CHECK_INT(rs_attach(&s, 1, 5001, now_), -1);
    CHECK_INT(rs_attach(&s, 1, 999, now_), -1);
    CHECK_INT(rs_attach(&s, 0, 2000, now_), -1);
    CHECK_INT(rs_state(&s), RS_SUSPENDED);
    CHECK_INT(rs_attach(&s, 1, 2500, now_), 0);
    CHECK_INT(rs_state(&s), RS_ACTIVE);
    CHECK_U64(rs_tx_acked(&s), 2500);
    CHECK_INT(rs_tx_peek(&s, &p, &len), -1); /* the AT first */
    struct rs_ctl c;
    if (due_send(&s, RS_ACT_AT, &c)) {
        CHECK_INT(c.type, RS_CTL_AT);
        CHECK_U64(c.off, 2500);
    }
    CHECK_U64(send_all(&s), 2500); /* 2500..5000 again, the right bytes (send_all checks) */
    now_ += 1000;                  /* past any delayed ACK, before the heartbeat */
    CHECK_INT(rs_tick(&s, now_, true) & RS_ACT_ACK, 0); /* the handshake told our rx */

    /* the peer's side: data before its AT is refused */
    CHECK_INT(rs_on_data(&s, 1, 10, &skip, &take, now_), RS_RX_ERROR);
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_AT, .off = 3001}, now_), -1);
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_AT, .off = 2000}, now_), 0);
    CHECK_INT(rs_on_data(&s, 1, 600, &skip, &take, now_), RS_RX_DUP);
    CHECK_INT(take, 0);
    CHECK_INT(rs_on_data(&s, 1, 400, &skip, &take, now_), RS_RX_DUP); /* exactly to rx */
    CHECK_INT(rs_on_data(&s, 1, 16, &skip, &take, now_), RS_RX_DELIVER);
    CHECK_INT(skip, 0);
    CHECK_INT(take, 16);
    CHECK_U64(rs_rx(&s), 3016);
    /* a record straddling rx */
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_AT, .off = 3000}, now_), 0);
    CHECK_INT(rs_on_data(&s, 1, 20, &skip, &take, now_), RS_RX_DELIVER);
    CHECK_INT(skip, 16);
    CHECK_INT(take, 4);
    CHECK_U64(rs_rx(&s), 3020);
    rs_free(&s);
}

/* SUSPENDED -> FAILED at the deadline or on MB_GIVE_UP; resume_ms 0: a failure is final */
static void t_suspended_end(void)
{
    struct rsess s;
    active0(&s);
    rs_conn_failed(&s, 0, now_);
    now_ += RS_RESUME_MS - 1;
    CHECK_INT(rs_tick(&s, now_, true), 0);
    CHECK_INT(rs_next_timeout(&s, now_, true), 1);
    now_ += 1;
    CHECK_INT(rs_tick(&s, now_, true), RS_ACT_FAILED);
    CHECK_INT(rs_state(&s), RS_FAILED);
    CHECK_INT(rs_attach(&s, 1, 0, now_), -1);
    rs_free(&s);

    active0(&s);
    rs_conn_failed(&s, 0, now_);
    rs_give_up(&s);
    CHECK_INT(rs_state(&s), RS_FAILED);
    rs_free(&s);

    struct rs_params p;
    rs_params_default(&p);
    p.resume_ms = 0;
    CHECK_INT(rs_init(&s, &p, RBUF_MIN, 0, 0, now_), 0);
    rs_attach(&s, 0, 0, now_);
    CHECK_INT(rs_conn_failed(&s, 0, now_), RS_FAILED);
    rs_free(&s);
}

/* both FINs acknowledged and taken: ENDING: ACK (rx + 1), TAG_FINAL, the peer's: DONE */
static void t_fin_end(void)
{
    struct rsess s;
    size_t skip, take;
    struct rs_ctl c;
    active0(&s);
    put(&s, 100);
    rs_tx_eof(&s);
    CHECK_INT(rs_tx_room(&s), 0);                       /* nothing after the EOF */
    CHECK_INT(rs_tick(&s, now_, true) & RS_ACT_FIN, 0); /* data first */
    send_all(&s);
    CHECK_INT(rs_next_timeout(&s, now_, true), 0);
    if (due_send(&s, RS_ACT_FIN, &c)) {
        CHECK_INT(c.type, RS_CTL_FIN);
        CHECK_U64(c.off, 100);
    }
    CHECK_INT(rs_tick(&s, now_, true) & RS_ACT_FIN, 0); /* once per connection */
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_ACK, .off = 102}, now_), -1);
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_ACK, .off = 101}, now_), 0);
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_ACK, .off = 100}, now_), 1);
    CHECK_INT(rs_state(&s), RS_ACTIVE);      /* the peer's FIN is missing */
    CHECK_INT(rs_on_final(&s, 0, now_), -1); /* TAG_FINAL before the end, without MOVE */
    CHECK_INT(rs_on_data(&s, 0, 50, &skip, &take, now_), RS_RX_DELIVER);
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_FIN, .off = 49}, now_), -1);
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_FIN, .off = 50}, now_), 0);
    CHECK(rs_peer_eof(&s));
    CHECK_U64(rs_rx_offset(&s), 51);
    CHECK_INT(rs_state(&s), RS_ENDING);
    CHECK_INT(rs_on_data(&s, 0, 1, &skip, &take, now_), RS_RX_ERROR); /* past the FIN */
    unsigned a = rs_tick(&s, now_, true);
    CHECK(a & RS_ACT_ACK);
    CHECK(a & RS_ACT_FINAL);
    CHECK(due_send(&s, RS_ACT_ACK, &c) && c.off == 51);
    CHECK(due_send(&s, RS_ACT_FINAL, NULL));
    CHECK_INT(rs_next_timeout(&s, now_, true), RS_LINGER_MS);
    CHECK_INT(rs_on_final(&s, 0, now_), 0);
    CHECK_INT(rs_state(&s), RS_DONE);
    CHECK_INT(rs_tick(&s, now_, true), RS_ACT_DONE);
    rs_free(&s);

    /* the linger runs out: DONE; a failure in ENDING: DONE, no resume */
    for (int k = 0; k < 3; k++) {
        active0(&s);
        rs_tx_eof(&s);
        due_send(&s, RS_ACT_FIN, NULL);
        rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_FIN, .off = 0}, now_);
        CHECK_INT(rs_state(&s), RS_ACTIVE);
        rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_ACK, .off = 1}, now_);
        CHECK_INT(rs_state(&s), RS_ENDING);
        if (k == 0) {
            due_send(&s, RS_ACT_FINAL, NULL);
            now_ += RS_LINGER_MS;
            CHECK_INT(rs_tick(&s, now_, true), RS_ACT_DONE);
        } else if (k == 1) {
            CHECK_INT(rs_conn_failed(&s, 0, now_), RS_DONE);
        } else {
            CHECK_INT(rs_on_eof(&s, 0, now_), 0); /* the peer's EOF before our FINAL */
            due_send(&s, RS_ACT_FINAL, NULL);
            CHECK_INT(rs_state(&s), RS_DONE);
        }
        rs_free(&s);
    }

    /* FIN resent after a resume until acknowledged; the peer's FIN again: the same end only */
    active0(&s);
    put(&s, 10);
    rs_tx_eof(&s);
    send_all(&s);
    due_send(&s, RS_ACT_FIN, NULL);
    rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_FIN, .off = 0}, now_);
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_FIN, .off = 1}, now_), -1);
    CHECK_INT(rs_on_eof(&s, 0, now_), -1); /* EOF without TAG_FINAL: a failure */
    rs_conn_failed(&s, 0, now_);
    CHECK_INT(rs_attach(&s, 1, 12, now_), -1);
    CHECK_INT(rs_attach(&s, 1, 10, now_), 0); /* the peer has the data, not the FIN */
    due_send(&s, RS_ACT_AT, &c);
    CHECK_U64(c.off, 10);
    CHECK(due_send(&s, RS_ACT_FIN, &c) && c.off == 10);
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_AT, .off = 0}, now_), 0);
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_FIN, .off = 0}, now_), 0);
    CHECK_INT(rs_state(&s), RS_ACTIVE);
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_ACK, .off = 11}, now_), 0);
    CHECK_INT(rs_state(&s), RS_ENDING);
    rs_free(&s);

    /* resumed with both FINs done already: ENDING on the new connection at once */
    active0(&s);
    rs_tx_eof(&s);
    due_send(&s, RS_ACT_FIN, NULL);
    rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_FIN, .off = 0}, now_);
    rs_conn_failed(&s, 0, now_);
    CHECK_INT(rs_attach(&s, 1, 1, now_), 0);
    CHECK_INT(rs_state(&s), RS_ENDING);
    CHECK(rs_tick(&s, now_, true) & RS_ACT_FINAL);
    rs_free(&s);
}

/* a resume answered by the peer's tombstone: DONE only when everything both ways was through */
static void t_gone(void)
{
    struct rsess s;
    size_t skip, take;
    for (int k = 0; k < 4; k++) {
        active0(&s);
        put(&s, 50);
        rs_tx_eof(&s);
        send_all(&s);
        due_send(&s, RS_ACT_FIN, NULL);
        rs_on_data(&s, 0, 7, &skip, &take, now_);
        if (k != 3)
            rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_FIN, .off = 7}, now_);
        CHECK_INT(rs_on_gone(&s, true, 51), RS_ACTIVE); /* only while suspended */
        rs_conn_failed(&s, 0, now_);
        if (k == 0) {
            CHECK_INT(rs_on_gone(&s, true, 51), RS_DONE); /* the peer ended with our FIN in */
            CHECK_U64(rs_tx_acked(&s), 50);
        } else if (k == 1) {
            CHECK_INT(rs_on_gone(&s, true, 50), RS_ABORTED); /* our FIN never got there */
            CHECK_INT(s.abort_reason, RS_ABORT_GONE);
        } else if (k == 2) {
            CHECK_INT(rs_on_gone(&s, false, 51), RS_ABORTED); /* a tombstone of an abort */
        } else {
            CHECK_INT(rs_on_gone(&s, true, 51), RS_ABORTED); /* the peer's FIN is not here */
        }
        rs_free(&s);
    }
}

/* any | ABORT received: ABORTED; local error or signal: ABORT (then TAG_FINAL) due */
static void t_abort(void)
{
    struct rsess s;
    struct rs_ctl c;
    active0(&s);
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_ABORT, .reason = 4}, now_), 0);
    CHECK_INT(rs_state(&s), RS_ABORTED);
    CHECK(s.peer_aborted);
    CHECK_INT(s.abort_reason, 4);
    CHECK_INT(rs_tick(&s, now_, true), 0);
    CHECK_INT(rs_on_final(&s, 0, now_), 0);
    CHECK_INT(rs_on_eof(&s, 0, now_), 0);
    rs_free(&s);

    active0(&s);
    put(&s, 10);
    rs_abort(&s, 1);
    CHECK_INT(rs_state(&s), RS_ABORTED);
    const unsigned char *p;
    size_t len;
    CHECK_INT(rs_tx_peek(&s, &p, &len), -1);
    CHECK_INT(rs_next_timeout(&s, now_, true), 0);
    if (due_send(&s, RS_ACT_ABORT, &c)) {
        CHECK_INT(c.type, RS_CTL_ABORT);
        CHECK_INT(c.reason, 1);
    }
    CHECK_INT(rs_tick(&s, now_, true), 0);
    CHECK_INT(rs_next_timeout(&s, now_, true), -1);
    rs_free(&s);

    /* suspended: nothing to send it on */
    active0(&s);
    rs_conn_failed(&s, 0, now_);
    rs_abort(&s, 1);
    CHECK_INT(rs_state(&s), RS_ABORTED);
    CHECK_INT(rs_tick(&s, now_, true), 0);
    rs_free(&s);
}

/* ACTIVE(c) -> MOVING(c -> d) -> ACTIVE(d), with the peer's MOVE read on c */
static void t_move(void)
{
    struct rsess s;
    size_t skip, take;
    struct rs_ctl c;
    active0(&s);
    put(&s, 300);
    const unsigned char *p;
    size_t len;
    rs_tx_peek(&s, &p, &len);
    rs_tx_sent(&s, 200, now_);
    CHECK_INT(rs_on_data(&s, 0, 70, &skip, &take, now_), RS_RX_DELIVER);
    CHECK_INT(rs_upgrade(&s, 0, 0, now_), -1);   /* not a newer epoch */
    CHECK_INT(rs_upgrade(&s, 1, 201, now_), -1); /* the handshake's rx a lie */
    CHECK_INT(rs_upgrade(&s, 1, 50, now_), 0);
    CHECK_INT(rs_state(&s), RS_MOVING);
    CHECK_U64(rs_tx_acked(&s), 50);
    CHECK_INT(rs_upgrade(&s, 2, 50, now_), -1);
    unsigned a = rs_tick(&s, now_, true);
    CHECK(a & RS_ACT_MOVE);
    CHECK(a & RS_ACT_AT);
    CHECK_INT(rs_tx_peek(&s, &p, &len), -1); /* d's AT first */
    if (due_send(&s, RS_ACT_MOVE, &c)) {
        CHECK_INT(c.type, RS_CTL_MOVE);
        CHECK_U64(c.off, 200);
        CHECK_INT(c.epoch, 1);
    }
    CHECK_INT(rs_state(&s), RS_MOVING); /* the peer's MOVE not read */
    if (due_send(&s, RS_ACT_AT, &c))
        CHECK_U64(c.off, 200);
    CHECK_U64(send_all(&s), 100); /* on d, from X */
    uint32_t e;
    CHECK(rs_reading(&s, &e) && e == 0);                               /* c until the peer's MOVE */
    CHECK_INT(rs_on_data(&s, 1, 10, &skip, &take, now_), RS_RX_ERROR); /* d is not read yet */
    CHECK_INT(rs_on_data(&s, 0, 30, &skip, &take, now_), RS_RX_DELIVER);
    /* an ACK on c still counts */
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_ACK, .off = 200}, now_), 0);
    /* the peer's MOVE: at c's offset, naming d */
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_MOVE, .off = 99, .epoch = 1}, now_),
              -1);
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_MOVE, .off = 100, .epoch = 2}, now_),
              -1);
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_MOVE, .off = 100, .epoch = 1}, now_),
              0);
    CHECK_INT(rs_state(&s), RS_ACTIVE);
    CHECK(rs_reading(&s, &e) && e == 1);
    CHECK(rs_conn_open(&s, 0));                                        /* draining */
    CHECK_INT(rs_on_data(&s, 0, 10, &skip, &take, now_), RS_RX_ERROR); /* nothing after MOVE */
    CHECK_INT(rs_on_eof(&s, 0, now_), -1); /* EOF before its TAG_FINAL */
    CHECK_INT(rs_on_final(&s, 0, now_), 0);
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_AT, .off = 100}, now_), 0);
    CHECK_INT(rs_on_data(&s, 1, 10, &skip, &take, now_), RS_RX_DELIVER);
    CHECK_U64(rs_rx(&s), 110);
    CHECK_INT(rs_on_eof(&s, 0, now_), 0);
    CHECK(!rs_conn_open(&s, 0)); /* the caller closes c */
    CHECK(rs_conn_open(&s, 1));
    /* a failure of c now changes nothing */
    CHECK_INT(rs_conn_failed(&s, 0, now_), RS_ACTIVE);
    rs_free(&s);

    /* the peer's MOVE read before our side has d: wait for d, then read it at once */
    active0(&s);
    rs_on_data(&s, 0, 40, &skip, &take, now_);
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_MOVE, .off = 40, .epoch = 0}, now_),
              -1); /* not a newer epoch */
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_MOVE, .off = 40, .epoch = 3}, now_),
              0);
    CHECK_INT(rs_state(&s), RS_ACTIVE);
    CHECK(!rs_reading(&s, &e));
    now_ += 60000;
    CHECK_INT(rs_tick(&s, now_, true) & RS_ACT_DEAD, 0); /* waiting is not silence */
    CHECK_INT(rs_on_final(&s, 0, now_), 0);
    CHECK_INT(rs_on_eof(&s, 0, now_), 0); /* half closed: we go on writing to c */
    CHECK(rs_conn_open(&s, 0));
    put(&s, 5);
    CHECK_U64(send_all(&s), 5);                /* still on c */
    CHECK_INT(rs_upgrade(&s, 2, 0, now_), -1); /* the peer named 3 */
    CHECK_INT(rs_upgrade(&s, 3, 0, now_), 0);
    CHECK(rs_reading(&s, &e) && e == 3);
    CHECK(due_send(&s, RS_ACT_MOVE, &c) && c.off == 5 && c.epoch == 3);
    CHECK_INT(rs_state(&s), RS_ACTIVE);
    CHECK(!rs_conn_open(&s, 0)); /* its EOF was in and our MOVE out */
    rs_free(&s);
}

/* MOVING | c failed before the peer's MOVE: ACTIVE(d), a gap on d answered by RESEND{rx} */
static void t_move_c_fails(void)
{
    struct rsess s;
    size_t skip, take;
    struct rs_ctl c;
    uint32_t e;
    active0(&s);
    rs_on_data(&s, 0, 100, &skip, &take, now_);
    rs_upgrade(&s, 1, 0, now_);
    CHECK_INT(rs_conn_failed(&s, 0, now_), RS_ACTIVE);
    CHECK_INT(rs_tick(&s, now_, true) & RS_ACT_MOVE, 0); /* lost with c */
    CHECK(rs_reading(&s, &e) && e == 1);
    CHECK_INT(rs_tick(&s, now_, true) & RS_ACT_RESEND, 0); /* only once a gap shows */
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_AT, .off = 180}, now_), 0);
    if (due_send(&s, RS_ACT_RESEND, &c)) {
        CHECK_INT(c.type, RS_CTL_RESEND);
        CHECK_U64(c.off, 100);
    }
    CHECK_INT(rs_on_data(&s, 1, 50, &skip, &take, now_), RS_RX_DROP);
    CHECK_INT(take, 0);
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_FIN, .off = 230}, now_), 0);
    CHECK(!rs_peer_eof(&s)); /* dropped with the rest */
    CHECK_U64(rs_rx(&s), 100);
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_AT, .off = 100}, now_), 0);
    CHECK_INT(rs_on_data(&s, 1, 130, &skip, &take, now_), RS_RX_DELIVER);
    CHECK_INT(take, 130);
    CHECK_U64(rs_rx(&s), 230);
    /* one gap per connection: a second is a protocol error */
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_AT, .off = 300}, now_), -1);
    rs_free(&s);

    /* the rewind's AT above rx again is a lie */
    active0(&s);
    rs_on_data(&s, 0, 100, &skip, &take, now_);
    rs_upgrade(&s, 1, 0, now_);
    rs_conn_failed(&s, 0, now_);
    rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_AT, .off = 180}, now_);
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_AT, .off = 101}, now_), -1);
    rs_free(&s);

    /* nothing lost with c: d's AT at rx, no RESEND, no go-back */
    active0(&s);
    rs_on_data(&s, 0, 100, &skip, &take, now_);
    rs_upgrade(&s, 1, 0, now_);
    rs_conn_failed(&s, 0, now_);
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_AT, .off = 100}, now_), 0);
    CHECK_INT(rs_tick(&s, now_, true) & RS_ACT_RESEND, 0);
    CHECK_INT(rs_on_data(&s, 1, 10, &skip, &take, now_), RS_RX_DELIVER);
    rs_free(&s);

    /* MOVING | d failed: SUSPENDED (c carries no more data) */
    active0(&s);
    rs_upgrade(&s, 1, 0, now_);
    CHECK_INT(rs_conn_failed(&s, 1, now_), RS_SUSPENDED);
    CHECK(!rs_conn_open(&s, 0));
    CHECK(!rs_conn_open(&s, 1));
    CHECK_INT(rs_attach(&s, 1, 0, now_), -1); /* a resume takes a new epoch */
    CHECK_INT(rs_attach(&s, 2, 0, now_), 0);
    rs_free(&s);
}

/* Y: 100 bytes and our FIN out, the peer's 50 and its FIN read and acknowledged, our FIN not yet
 * acknowledged (the peer's ACK is on its way): ACTIVE, and an upgrade now moves to d */
static void moving_at_end(struct rsess *s)
{
    size_t skip, take;
    active0(s);
    put(s, 100);
    rs_tx_eof(s);
    send_all(s);
    due_send(s, RS_ACT_FIN, NULL);
    rs_on_data(s, 0, 50, &skip, &take, now_);
    rs_on_ctl(s, 0, &(struct rs_ctl){.type = RS_CTL_FIN, .off = 50}, now_);
    due_send(s, RS_ACT_ACK, NULL);
    CHECK_INT(rs_state(s), RS_ACTIVE);
    CHECK_INT(rs_upgrade(s, 1, 0, now_), 0);
    CHECK_INT(rs_state(s), RS_MOVING);
}

/* The upgrade racing the session's end (test_relay "--direct-timeout 0", 2 runs in 5): the peer
 * reached ENDING on c (our FIN acknowledged, its FIN acknowledged by us), so it refuses d and
 * closes it, while we, still waiting for the ACK of our FIN, moved. The peer's ACK and TAG_FINAL
 * come on c without a MOVE: the session is DONE on both sides, whichever of d's failure and c's
 * end we see first, instead of a suspension that waits for a resume nobody will send. */
static void t_move_peer_ended(void)
{
    struct rsess s, x;
    struct rs_ctl c;
    size_t skip, take;
    uint32_t e;

    /* d fails first: MOVING goes on, c is read for the peer's end, nothing is sent */
    moving_at_end(&s);
    due_send(&s, RS_ACT_MOVE, NULL);
    CHECK_INT(rs_conn_failed(&s, 1, now_), RS_MOVING);
    CHECK(rs_d_lost(&s));
    CHECK(rs_reading(&s, &e) && e == 0);
    CHECK(!rs_conn_open(&s, 1));
    CHECK(rs_conn_open(&s, 0));
    now_ += RS_HEARTBEAT_MS;
    CHECK_INT(rs_tick(&s, now_, true) & (RS_ACT_ACK | RS_ACT_AT | RS_ACT_MOVE), 0);
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_ACK, .off = 101}, now_), 0);
    CHECK_INT(rs_state(&s), RS_MOVING);
    CHECK_INT(rs_on_final(&s, 0, now_), 0);
    CHECK_INT(rs_state(&s), RS_DONE);
    CHECK_INT(rs_tick(&s, now_, true), RS_ACT_DONE);
    CHECK_INT(rs_on_eof(&s, 0, now_), 0);
    rs_free(&s);

    /* c's end first (d not failed yet, our MOVE still due): DONE, no MOVE goes out */
    moving_at_end(&s);
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_ACK, .off = 101}, now_), 0);
    CHECK_INT(rs_on_final(&s, 0, now_), 0);
    CHECK_INT(rs_state(&s), RS_DONE);
    CHECK_INT(rs_tick(&s, now_, true), RS_ACT_DONE);
    CHECK_INT(rs_conn_failed(&s, 1, now_), RS_DONE);
    rs_free(&s);

    /* a TAG_FINAL on c without MOVE while our FIN is not acknowledged: still a protocol error */
    moving_at_end(&s);
    CHECK_INT(rs_on_final(&s, 0, now_), -1);
    rs_free(&s);

    /* d failed, then the peer's MOVE on c: it did take d, which is gone: c fails, SUSPENDED */
    moving_at_end(&s);
    due_send(&s, RS_ACT_MOVE, NULL);
    rs_conn_failed(&s, 1, now_);
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_MOVE, .off = 50, .epoch = 1}, now_),
              -1);
    CHECK_INT(rs_conn_failed(&s, 0, now_), RS_SUSPENDED);
    CHECK(!rs_d_lost(&s));
    CHECK_INT(rs_attach(&s, 2, 101, now_), 0); /* the resume ends it there */
    CHECK_INT(rs_state(&s), RS_ENDING);
    rs_free(&s);

    /* d failed, then c ends without its end (EOF), or stays silent: SUSPENDED, as before */
    for (int k = 0; k < 2; k++) {
        moving_at_end(&s);
        due_send(&s, RS_ACT_MOVE, NULL);
        rs_conn_failed(&s, 1, now_);
        if (k == 0) {
            CHECK_INT(rs_on_eof(&s, 0, now_), -1);
        } else {
            now_ += RS_DEAD_MS;
            CHECK(rs_tick(&s, now_, true) & RS_ACT_DEAD);
        }
        CHECK_INT(rs_conn_failed(&s, 0, now_), RS_SUSPENDED);
        rs_free(&s);
    }

    /* d failing before both FINs are through suspends at once (c carries no more of ours) */
    active0(&s);
    put(&s, 10);
    send_all(&s);
    rs_on_data(&s, 0, 5, &skip, &take, now_);
    rs_upgrade(&s, 1, 0, now_);
    CHECK_INT(rs_conn_failed(&s, 1, now_), RS_SUSPENDED);
    rs_free(&s);

    /* the other side, X: ENDING refuses d; our MOVE read there is taken, its TAG_FINAL ends */
    active0(&x);
    put(&x, 50);
    rs_tx_eof(&x);
    send_all(&x);
    due_send(&x, RS_ACT_FIN, NULL);
    rs_on_data(&x, 0, 100, &skip, &take, now_);
    rs_on_ctl(&x, 0, &(struct rs_ctl){.type = RS_CTL_FIN, .off = 100}, now_);
    rs_on_ctl(&x, 0, &(struct rs_ctl){.type = RS_CTL_ACK, .off = 51}, now_);
    CHECK_INT(rs_state(&x), RS_ENDING);
    CHECK_INT(rs_upgrade(&x, 1, 0, now_), -1);
    CHECK(due_send(&x, RS_ACT_ACK, &c) && c.off == 101);
    CHECK(due_send(&x, RS_ACT_FINAL, NULL));
    CHECK_INT(rs_on_ctl(&x, 0, &(struct rs_ctl){.type = RS_CTL_MOVE, .off = 99, .epoch = 1}, now_),
              -1); /* not at the offset */
    CHECK_INT(rs_on_ctl(&x, 0, &(struct rs_ctl){.type = RS_CTL_MOVE, .off = 100, .epoch = 1}, now_),
              0);
    CHECK_INT(rs_state(&x), RS_ENDING);
    CHECK_INT(rs_on_final(&x, 0, now_), 0);
    CHECK_INT(rs_state(&x), RS_DONE);
    rs_free(&x);
}

/* what no state accepts: upgrades outside ACTIVE, records on unknown connections, a MOVE or a
 * TAG_FINAL where none may be */
static void t_refusals(void)
{
    struct rsess s;
    size_t skip, take;
    active0(&s);
    CHECK_INT(rs_on_data(&s, 5, 10, &skip, &take, now_), RS_RX_ERROR);
    CHECK_INT(rs_on_data(&s, 0, 0, &skip, &take, now_), RS_RX_ERROR);
    CHECK_INT(rs_on_final(&s, 5, now_), -1);
    CHECK_INT(rs_on_eof(&s, 0, now_), -1);
    CHECK_INT(rs_upgrade(&s, 1, 0, now_), 0);
    CHECK_INT(rs_on_final(&s, 1, now_), -1); /* on d, before anything */
    CHECK_INT(rs_on_final(&s, 0, now_), -1); /* on c before the peer's MOVE */
    rs_conn_failed(&s, 1, now_);
    CHECK_INT(rs_upgrade(&s, 2, 0, now_), -1); /* SUSPENDED takes rs_attach */
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_ACK, .off = 0}, now_), -1);
    rs_free(&s);

    /* a MOVE in the middle of a gap's drop */
    active0(&s);
    rs_on_data(&s, 0, 10, &skip, &take, now_);
    rs_upgrade(&s, 1, 0, now_);
    rs_conn_failed(&s, 0, now_);
    rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_AT, .off = 20}, now_);
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_MOVE, .off = 20, .epoch = 2}, now_),
              -1);
    rs_free(&s);

    /* ENDING takes no upgrade, no RESEND */
    active0(&s);
    rs_tx_eof(&s);
    due_send(&s, RS_ACT_FIN, NULL);
    rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_FIN, .off = 0}, now_);
    rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_ACK, .off = 1}, now_);
    CHECK_INT(rs_state(&s), RS_ENDING);
    CHECK_INT(rs_upgrade(&s, 1, 1, now_), -1);
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_RESEND, .off = 0}, now_), -1);
    CHECK_INT(rs_tick(&s, now_, true) & (RS_ACT_AT | RS_ACT_FIN | RS_ACT_RESEND), 0);
    rs_free(&s);
}

/* the sender's side of a RESEND, and the lies in one */
static void t_resend(void)
{
    struct rsess s;
    struct rs_ctl c;
    active0(&s);
    put(&s, 1000);
    send_all(&s);
    rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_ACK, .off = 300}, now_);
    rs_upgrade(&s, 1, 300, now_);
    due_send(&s, RS_ACT_MOVE, NULL);
    due_send(&s, RS_ACT_AT, NULL);
    put(&s, 500);
    CHECK_U64(send_all(&s), 500);
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_RESEND, .off = 500}, now_), -1);
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_RESEND, .off = 1501}, now_), -1);
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_RESEND, .off = 299}, now_), -1);
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_RESEND, .off = 700}, now_), 0);
    CHECK_U64(rs_tx_acked(&s), 700);
    CHECK(due_send(&s, RS_ACT_AT, &c) && c.off == 700);
    CHECK_U64(send_all(&s), 800); /* 700..1500 again */
    rs_free(&s);

    /* an ACK between sent and high after a rewind: valid; sending jumps there with an AT */
    active0(&s);
    put(&s, 1000);
    send_all(&s);
    rs_conn_failed(&s, 0, now_);
    rs_attach(&s, 1, 200, now_);
    due_send(&s, RS_ACT_AT, NULL);
    const unsigned char *p;
    size_t len;
    rs_tx_peek(&s, &p, &len);
    rs_tx_sent(&s, 100, now_); /* sent 300 */
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_ACK, .off = 1001}, now_), -1);
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_ACK, .off = 800}, now_), 0);
    CHECK_U64(rs_tx_sent_off(&s), 800);
    CHECK(due_send(&s, RS_ACT_AT, &c) && c.off == 800);
    CHECK_U64(send_all(&s), 200);
    rs_free(&s);
}

/* offsets near 2^64: the last data offset is 2^64 - 2, so the FIN's end + 1 fits */
static void t_edges(void)
{
    struct rsess s;
    size_t skip, take;
    struct rs_ctl c;
    uint64_t start = UINT64_MAX - 1000;
    CHECK_INT(rs_init(&s, NULL, RBUF_MIN, UINT64_MAX, 0, now_), -1);
    CHECK_INT(rs_init(&s, NULL, RBUF_MIN, start, start, now_), 0);
    CHECK_INT(rs_attach(&s, 0, start, now_), 0);
    CHECK_INT(rs_tx_room(&s), 999);
    put(&s, 999);
    CHECK_INT(rs_tx_room(&s), 0);
    CHECK_U64(send_all(&s), 999);
    CHECK_U64(rs_tx_sent_off(&s), RS_LAST_OFFSET);
    rs_tx_eof(&s);
    CHECK(due_send(&s, RS_ACT_FIN, &c) && c.off == RS_LAST_OFFSET);
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_ACK, .off = UINT64_MAX}, now_), 0);
    CHECK(s.fin_acked);
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_ACK, .off = UINT64_MAX - 5}, now_),
              1);
    /* the peer's side */
    CHECK_INT(rs_on_data(&s, 0, 1000, &skip, &take, now_), RS_RX_ERROR); /* would reach 2^64 - 1 */
    CHECK_INT(rs_on_data(&s, 0, 999, &skip, &take, now_), RS_RX_DELIVER);
    CHECK_U64(rs_rx(&s), RS_LAST_OFFSET);
    CHECK_INT(rs_on_ctl(&s, 0, &(struct rs_ctl){.type = RS_CTL_FIN, .off = RS_LAST_OFFSET}, now_),
              0);
    CHECK_U64(rs_rx_offset(&s), UINT64_MAX);
    CHECK_INT(rs_state(&s), RS_ENDING);
    CHECK(due_send(&s, RS_ACT_ACK, &c) && c.off == UINT64_MAX);
    rs_free(&s);

    /* a resume high up: duplicates skipped across the top */
    CHECK_INT(rs_init(&s, NULL, RBUF_MIN, start, start, now_), 0);
    rs_attach(&s, 0, start, now_);
    rs_on_data(&s, 0, 500, &skip, &take, now_);
    rs_conn_failed(&s, 0, now_);
    rs_attach(&s, 1, start, now_);
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_AT, .off = start + 100}, now_), 0);
    CHECK_INT(rs_on_data(&s, 1, 499, &skip, &take, now_), RS_RX_DELIVER);
    CHECK_INT(skip, 400);
    CHECK_INT(take, 99);
    CHECK_INT(rs_on_ctl(&s, 1, &(struct rs_ctl){.type = RS_CTL_AT, .off = UINT64_MAX}, now_), -1);
    rs_free(&s);
}

/* rs_next_timeout: the nearest of the delayed ACK, heartbeat, dead, deadline */
static void t_timeout(void)
{
    struct rsess s;
    size_t skip, take;
    active0(&s);
    CHECK_INT(rs_next_timeout(&s, now_, true), 5000); /* heartbeat before dead */
    CHECK_INT(rs_next_timeout(&s, now_, false), 5000);
    now_ += 4000;
    rs_sent(&s, RS_ACT_ACK, now_);
    CHECK_INT(rs_next_timeout(&s, now_, true), 5000);
    now_ += 4000;
    rs_sent(&s, RS_ACT_ACK, now_);
    now_ += 4000;
    CHECK_INT(rs_next_timeout(&s, now_, true), 1000);  /* 12 s silent: dead at 15 s */
    CHECK_INT(rs_next_timeout(&s, now_, false), 1000); /* the heartbeat at 13 s */
    rs_on_data(&s, 0, 1, &skip, &take, now_);
    CHECK_INT(rs_next_timeout(&s, now_, true), 20);
    now_ += 100;
    CHECK_INT(rs_next_timeout(&s, now_, true), 0);
    rs_free(&s);
}

/* Two sessions over a simulated wire. Each connection is a queue per direction of records (data
 * with its offset for the check, control, TAG_FINAL); a cut loses what is in flight, a resume
 * attaches both with the other's rx; some connections are replaced by an upgrade (a move). The
 * receivers check every delivered byte against the pattern: nothing lost, doubled or reordered. */
enum rec_kind { REC_DATA, REC_CTL, REC_FINAL };
struct rec {
    enum rec_kind kind;
    uint64_t off; /* REC_DATA: the offset it was sealed at (never told to the receiver) */
    size_t len;
    struct rs_ctl c;
};
#define QCAP 4096
struct queue {
    struct rec r[QCAP];
    size_t head, n;
    bool shut; /* TAG_FINAL sent and shut down */
};
struct side {
    struct rsess s;
    struct queue *out[2]; /* by slot: the peer reads it */
    uint32_t ep[2];
    bool open[2];
    uint64_t total; /* bytes the source has */
    uint64_t got;   /* bytes delivered */
};
static struct queue q_[2][2]; /* [side][slot] */
static long n_cuts_, n_moves_, n_cfail_, n_dup_, n_drop_, n_done_,
    n_gone_; /* what the runs went through */
static uint64_t rng_ = 1;
static unsigned rnd(unsigned n)
{
    rng_ = rng_ * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)((rng_ >> 33) % n);
}
static void qpush(struct queue *q, struct rec r)
{
    if (q->n < QCAP) {
        q->r[(q->head + q->n) % QCAP] = r;
        q->n++;
    }
}

static int slot_of(struct side *x, uint32_t ep)
{
    for (int i = 0; i < 2; i++)
        if (x->open[i] && x->ep[i] == ep)
            return i;
    return -1;
}

/* one side sends what is due on its connections */
static void pump_out(struct side *x)
{
    unsigned act = rs_tick(&x->s, now_, true);
    struct rs_ctl c;
    int cur = slot_of(x, x->s.cur.epoch), old = x->s.old.open ? slot_of(x, x->s.old.epoch) : -1;
    if ((act & RS_ACT_MOVE) && old >= 0) {
        rs_ctl(&x->s, RS_ACT_MOVE, &c);
        qpush(x->out[old], (struct rec){.kind = REC_CTL, .c = c});
        qpush(x->out[old], (struct rec){.kind = REC_FINAL});
        x->out[old]->shut = true;
        rs_sent(&x->s, RS_ACT_MOVE, now_);
    }
    if (cur < 0)
        return;
    static const unsigned order[] = {RS_ACT_ACK, RS_ACT_AT, RS_ACT_RESEND};
    for (int i = 0; i < 3; i++)
        if (act & order[i]) {
            rs_ctl(&x->s, order[i], &c);
            qpush(x->out[cur], (struct rec){.kind = REC_CTL, .c = c});
            rs_sent(&x->s, order[i], now_);
        }
    if (x->s.state == RS_ACTIVE || x->s.state == RS_MOVING) {
        /* the source: top up the ring */
        size_t room = rs_tx_room(&x->s);
        uint64_t left = x->total - rbuf_end(rs_ring(&x->s));
        size_t n = room < left ? room : (size_t)left;
        if (n > 3000)
            n = 1 + rnd(3000);
        if (n && !x->s.fin)
            put(&x->s, n);
        if (rbuf_end(rs_ring(&x->s)) == x->total && !x->s.fin)
            rs_tx_eof(&x->s);
    }
    const unsigned char *p;
    size_t len;
    for (int k = 0; k < 4 && rs_tx_peek(&x->s, &p, &len) == 0; k++) {
        size_t n = len < 700 ? len : 700;
        qpush(x->out[cur], (struct rec){.kind = REC_DATA, .off = rs_tx_sent_off(&x->s), .len = n});
        rs_tx_sent(&x->s, n, now_);
    }
    act = rs_tick(&x->s, now_, true);
    if (act & RS_ACT_FIN) {
        rs_ctl(&x->s, RS_ACT_FIN, &c);
        qpush(x->out[cur], (struct rec){.kind = REC_CTL, .c = c});
        rs_sent(&x->s, RS_ACT_FIN, now_);
    }
    if (act & RS_ACT_ACK) {
        rs_ctl(&x->s, RS_ACT_ACK, &c);
        qpush(x->out[cur], (struct rec){.kind = REC_CTL, .c = c});
        rs_sent(&x->s, RS_ACT_ACK, now_);
    }
    if (act & RS_ACT_FINAL) {
        qpush(x->out[cur], (struct rec){.kind = REC_FINAL});
        x->out[cur]->shut = true;
        rs_sent(&x->s, RS_ACT_FINAL, now_);
    }
}

static void cut(struct side *x, int slot)
{
    if (x->open[slot]) {
        x->open[slot] = false;
        rs_conn_failed(&x->s, x->ep[slot], now_);
    }
}

/* y reads a few records of x's queue on the connection y reads from; 0, or -1 protocol error */
static int pump_in(struct side *x, struct side *y, int peer_of[2])
{
    uint32_t ep;
    int n = 1 + (int)rnd(8); /* sometimes less than was sent: records in flight */
    for (int k = 0; k < n; k++) {
        if (!rs_reading(&y->s, &ep))
            return 0;
        int ys = slot_of(y, ep);
        if (ys < 0)
            return 0;
        struct queue *q = x->out[peer_of[ys]];
        if (q->n == 0) {
            if (q->shut && rs_on_eof(&y->s, ep, now_) < 0)
                cut(y, ys);
            return 0;
        }
        struct rec r = q->r[q->head];
        q->head = (q->head + 1) % QCAP;
        q->n--;
        int rc = 0;
        if (r.kind == REC_DATA) {
            size_t skip, take;
            enum rs_rx v = rs_on_data(&y->s, ep, r.len, &skip, &take, now_);
            if (skip)
                n_dup_++;
            if (v == RS_RX_DROP)
                n_drop_++;
            if (v == RS_RX_ERROR)
                rc = -1;
            else if (v == RS_RX_DELIVER) {
                uint64_t at = r.off + skip;
                if (!CHECK_MSG(at == y->got, "delivered at %" PRIu64 ", expected %" PRIu64, at,
                               y->got))
                    return -2;
                y->got += take;
            }
        } else if (r.kind == REC_CTL) {
            rc = rs_on_ctl(&y->s, ep, &r.c, now_) < 0 ? -1 : 0;
        } else {
            rc = rs_on_final(&y->s, ep, now_);
        }
        if (rc < 0) {
            CHECK_MSG(0, "protocol error from an honest peer (kind %d, type %d, off %" PRIu64 ")",
                      r.kind, r.c.type, r.c.off);
            return -2;
        }
    }
    return 0;
}

/* the rx y's handshake tells x: now and then one a little old (the handshake read it while the old
 * connection still delivered: "ACTIVE(c) | MB_CONN, c failed meanwhile"), never below x's acked */
static uint64_t stale_rx(struct rsess *y, struct rsess *x)
{
    uint64_t rx = rs_rx_offset(y), low = rbuf_acked(rs_ring(x)) + (x->fin_acked ? 1 : 0);
    if (rnd(2) == 0 || rx <= low)
        return rx;
    return rx - rnd((unsigned)(rx - low < 5000 ? rx - low : 5000) + 1);
}

static void t_sim(void)
{
    unsigned seeds = getenv("RS_SIM_SEEDS") ? (unsigned)atoi(getenv("RS_SIM_SEEDS")) : 300;
    for (unsigned seed = 1; seed <= seeds; seed++) {
        rng_ = seed;
        struct side a = {0}, b = {0};
        memset(q_, 0, sizeof q_);
        a.total = 20000 + rnd(200000);
        b.total = rnd(4) == 0 ? 0 : rnd(200000);
        CHECK_INT(rs_init(&a.s, NULL, RBUF_MIN, 0, 0, now_), 0);
        CHECK_INT(rs_init(&b.s, NULL, RBUF_MIN, 0, 0, now_), 0);
        for (int i = 0; i < 2; i++) {
            a.out[i] = &q_[0][i];
            b.out[i] = &q_[1][i];
        }
        /* slot 0 of each is epoch 0; slots pair up by index (peer_of identity) */
        int peer_of[2] = {0, 1};
        a.ep[0] = b.ep[0] = 0;
        a.open[0] = b.open[0] = true;
        rs_attach(&a.s, 0, 0, now_);
        rs_attach(&b.s, 0, 0, now_);
        uint32_t epoch = 0;
        int cuts = 0, moves = 0, steps = 0;
        bool bad = false;
        while (steps++ < 200000 && !bad) {
            now_ += 1;
            enum rs_state sa = rs_state(&a.s), sb = rs_state(&b.s);
            if (sa == RS_DONE && sb == RS_DONE)
                break;
            if (sa == RS_FAILED || sb == RS_FAILED || sa == RS_ABORTED || sb == RS_ABORTED) {
                CHECK_MSG(0, "seed %u: session ended %s/%s", seed, rs_state_name(sa),
                          rs_state_name(sb));
                bad = true;
                break;
            }
            unsigned ev = rnd(1000);
            if (ev < 3 && cuts < 12) {
                /* a cut: everything in flight on every connection is lost, both fail */
                cuts++;
                for (int i = 0; i < 2; i++) {
                    cut(&a, i);
                    cut(&b, i);
                    memset(&q_[0][i], 0, sizeof q_[0][i]);
                    memset(&q_[1][i], 0, sizeof q_[1][i]);
                }
            } else if (ev < 6 && moves < 8 && sa == RS_ACTIVE && sb == RS_ACTIVE && !a.s.old.open &&
                       !b.s.old.open) {
                /* an upgrade: a new connection d in the free slot, handed to both */
                int ds = a.open[0] ? 1 : 0;
                if (a.open[ds] || b.open[ds])
                    continue;
                epoch++;
                moves++;
                memset(&q_[0][ds], 0, sizeof q_[0][ds]);
                memset(&q_[1][ds], 0, sizeof q_[1][ds]);
                a.ep[ds] = b.ep[ds] = epoch;
                a.open[ds] = b.open[ds] = true;
                uint64_t arx = rs_rx_offset(&a.s), brx = rs_rx_offset(&b.s);
                CHECK_INT(rs_upgrade(&a.s, epoch, brx, now_), 0);
                CHECK_INT(rs_upgrade(&b.s, epoch, arx, now_), 0);
                unsigned how = rnd(6);
                if (how < 3) {
                    /* c fails during the move: before any MOVE went out, after a's MOVE was
                     * queued (lost with c's in-flight), or after b read it */
                    if (how >= 1)
                        pump_out(&a);
                    if (how >= 2 && pump_in(&a, &b, peer_of) < -1)
                        bad = true;
                    int cs = 1 - ds;
                    memset(&q_[0][cs], 0, sizeof q_[0][cs]);
                    memset(&q_[1][cs], 0, sizeof q_[1][cs]);
                    cut(&a, cs);
                    cut(&b, cs);
                    n_cfail_++;
                }
            } else if (ev < 250 && a.s.old.open && !a.s.old.moved_in) {
                /* c fails during the move (its in-flight lost) */
                int cs = slot_of(&a, a.s.old.epoch);
                if (cs >= 0 && a.s.old.open) {
                    memset(&q_[0][cs], 0, sizeof q_[0][cs]);
                    memset(&q_[1][cs], 0, sizeof q_[1][cs]);
                    cut(&a, cs);
                    n_cfail_++;
                    int bs = slot_of(&b, a.ep[cs]);
                    if (bs >= 0)
                        cut(&b, bs);
                }
            }
            /* both suspended: resume on a fresh epoch in slot 0 */
            if (rs_state(&a.s) == RS_SUSPENDED && rs_state(&b.s) == RS_SUSPENDED) {
                epoch++;
                memset(q_, 0, sizeof q_);
                a.open[1] = b.open[1] = false;
                a.ep[0] = b.ep[0] = epoch;
                a.open[0] = b.open[0] = true;
                uint64_t arx = stale_rx(&a.s, &b.s), brx = stale_rx(&b.s, &a.s);
                CHECK_INT(rs_attach(&a.s, epoch, brx, now_), 0);
                CHECK_INT(rs_attach(&b.s, epoch, arx, now_), 0);
            } else if ((sa == RS_DONE && rs_state(&b.s) == RS_SUSPENDED) ||
                       (sb == RS_DONE && rs_state(&a.s) == RS_SUSPENDED)) {
                /* the one that ended answers the resume from its tombstone: gone */
                struct side *z = sa == RS_DONE ? &b : &a;
                if (getenv("RS_DEBUG"))
                    fprintf(stderr,
                            "gone: fin %d sent %d acked %" PRIu64 " end %" PRIu64
                            " finacked %d peer_fin %d rx %" PRIu64 " peer_end %" PRIu64 "\n",
                            z->s.fin, z->s.fin_ever_sent, rbuf_acked(rs_ring(&z->s)),
                            rbuf_end(rs_ring(&z->s)), z->s.fin_acked, z->s.peer_fin, z->s.rx,
                            z->s.peer_end);
                struct side *w = z == &a ? &b : &a;
                CHECK_INT(rs_on_gone(&z->s, true, rs_rx_offset(&w->s)), RS_DONE);
                n_gone_++;
                continue;
            } else if (rs_state(&a.s) == RS_SUSPENDED || rs_state(&b.s) == RS_SUSPENDED) {
                /* one side noticed: the other notices too (its connection is as dead) */
                for (int i = 0; i < 2; i++) {
                    cut(&a, i);
                    cut(&b, i);
                }
                continue;
            }
            /* closed connections the session gave up */
            for (int i = 0; i < 2; i++) {
                if (a.open[i] && !rs_conn_open(&a.s, a.ep[i]) && rs_state(&a.s) != RS_DONE)
                    a.open[i] = false;
                if (b.open[i] && !rs_conn_open(&b.s, b.ep[i]) && rs_state(&b.s) != RS_DONE)
                    b.open[i] = false;
            }
            pump_out(&a);
            pump_out(&b);
            if (pump_in(&a, &b, peer_of) < -1 || pump_in(&b, &a, peer_of) < -1)
                bad = true;
        }
        n_cuts_ += cuts;
        n_moves_ += moves;
        if (rs_state(&a.s) == RS_DONE && rs_state(&b.s) == RS_DONE)
            n_done_++;
        if (!bad && !(rs_state(&a.s) == RS_DONE && rs_state(&b.s) == RS_DONE))
            fprintf(stderr,
                    "seed %u: not done: %s/%s after %d steps, got %" PRIu64 "/%" PRIu64 " %" PRIu64
                    "/%" PRIu64 "\n",
                    seed, rs_state_name(rs_state(&a.s)), rs_state_name(rs_state(&b.s)), steps,
                    a.got, b.total, b.got, a.total);
        if (!bad) {
            CHECK_MSG(a.got == b.total && b.got == a.total,
                      "seed %u: got %" PRIu64 "/%" PRIu64 " and %" PRIu64 "/%" PRIu64
                      " after %d steps (%s/%s, %d cuts, %d moves)",
                      seed, a.got, b.total, b.got, a.total, steps, rs_state_name(rs_state(&a.s)),
                      rs_state_name(rs_state(&b.s)), cuts, moves);
        }
        rs_free(&a.s);
        rs_free(&b.s);
    }
    fprintf(stderr,
            "sim: %ld cuts, %ld moves, %ld c lost in a move, %ld records with duplicates, "
            "%ld dropped after a gap, %ld ended by a tombstone's gone, %ld of %u runs DONE on "
            "both sides\n",
            n_cuts_, n_moves_, n_cfail_, n_dup_, n_drop_, n_gone_, n_done_, seeds);
    CHECK(n_cuts_ > 100 && n_moves_ > 50 && n_cfail_ > 10 && n_dup_ > 100 && n_drop_ > 0);
    CHECK_INT(n_done_, seeds);
}

CHECK_MAIN(TEST(t_init), TEST(t_acks), TEST(t_ack_cadence), TEST(t_heartbeat_dead), TEST(t_resume),
           TEST(t_suspended_end), TEST(t_fin_end), TEST(t_abort), TEST(t_gone), TEST(t_move),
           TEST(t_move_c_fails), TEST(t_move_peer_ended), TEST(t_refusals), TEST(t_resend),
           TEST(t_edges), TEST(t_timeout), TEST(t_sim))
