/* The session state machine of a resumable stream (issue 15, docs/design/resume.md 4.3, 4.6, 5.4):
 * per direction the offsets, when an ACK, a heartbeat, an AT, a RESEND, a MOVE, a FIN or a
 * TAG_FINAL is due, when the connection counts as dead, how received data is classified, which
 * control records are lies, and the states of table 5.4. Pure: no I/O, no clock of its own (every
 * call that needs the time is given now_ms, any monotonic millisecond clock), no allocation but
 * the ring's (struct rbuf, embedded, which allocates as bytes are written).
 *
 * The data plane (rstream) drives it:
 *   - connections: rs_attach (epoch 0, or a resume from SUSPENDED), rs_upgrade (ACTIVE -> MOVING),
 *     rs_conn_failed (any failure: read/write error, dead, protocol error, bad EOF);
 *   - what it received: rs_on_data (a data record's length), rs_on_ctl (a decoded control
 *     record), rs_on_final (a TAG_FINAL), rs_on_eof, each naming the epoch of the connection it
 *     came on; -1 from any of them is a protocol error: the caller then calls rs_conn_failed;
 *   - what it sends: rs_tick gives the control records due now (RS_ACT_*), rs_ctl fills one,
 *     rs_sent says it went out; data is sealed from rs_tx_peek, then rs_tx_sent;
 *   - the source: the ring is rs_ring (rbuf_reserve/commit or rbuf_write, at most rs_tx_room),
 *     rs_tx_eof at the source's EOF; the local side: rs_abort;
 *   - poll: rs_next_timeout.
 *
 * Order on the wire, which the caller keeps: RS_ACT_MOVE goes on the old connection (MOVE, then
 * TAG_FINAL, then shutdown(SHUT_WR)); on the current one ACK, AT, RESEND (control records ahead
 * of data), then data (rs_tx_peek gives nothing while an AT is due), then FIN (due only once all
 * data went out), then TAG_FINAL (RS_ACT_FINAL) or ABORT (RS_ACT_ABORT: ABORT then TAG_FINAL). */
#ifndef TP_RSESS_H
#define TP_RSESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/rbuf.h"

#define RS_HEARTBEAT_MS 5000u    /* H: an ACK after this long with nothing sent (4.3) */
#define RS_DEAD_MS 15000u        /* D: a connection read from that was silent this long failed */
#define RS_ACK_DELAY_MS 20u      /* a delayed ACK: this long after the last data record */
#define RS_ACK_MAX_DELAY_MS 200u /* and never later than this after the first unacknowledged byte  \
                                  */
#define RS_ACK_STEP                                                                                \
    (256u * 1024)            /* an ACK every this many bytes received (the ring's cache cost) */
#define RS_LINGER_MS 10000u  /* ENDING: the peer's TAG_FINAL or EOF waited for (PUMP_LINGER_MS) */
#define RS_RESUME_MS 120000u /* SUSPENDED: --resume-timeout's default */
#define RS_ABORT_GONE 5      /* ABORT's reason "gone" (4.3) */
#define RS_LAST_OFFSET (UINT64_MAX - 1) /* offsets of data stay below this: end + 1 (FIN) fits */

struct rs_params {
    uint64_t ack_step;         /* bytes received since the last ACK that make one due (> 0) */
    uint32_t ack_delay_ms;     /* after the last data record, an ACK for what is unacknowledged */
    uint32_t ack_max_delay_ms; /* after the first unacknowledged byte at most */
    uint32_t heartbeat_ms;     /* H */
    uint32_t dead_ms;          /* D */
    uint32_t linger_ms;        /* ENDING's wait */
    uint32_t resume_ms;        /* SUSPENDED -> FAILED; 0: a failure is final at once */
};
void rs_params_default(struct rs_params *p);

/* A control record as this layer sees it; the same types and numbers as the wire's (4.3) and as
 * common/sframe's struct sf_ctl (type, off, epoch, reason), so the mapping is field by field.
 * off is ACK's rx, AT's off, MOVE's, FIN's end, RESEND's from. */
enum rs_ctl_type {
    RS_CTL_ACK = 1,
    RS_CTL_AT = 2,
    RS_CTL_MOVE = 3,
    RS_CTL_FIN = 4,
    RS_CTL_ABORT = 5,
    RS_CTL_RESEND = 6
};
struct rs_ctl {
    enum rs_ctl_type type;
    uint64_t off;
    uint32_t epoch; /* MOVE */
    uint8_t reason; /* ABORT */
};

/* table 5.4's states, RS_NEW before the first connection */
enum rs_state {
    RS_NEW = 0,
    RS_ACTIVE,    /* one current connection (and perhaps an old one draining to its EOF) */
    RS_MOVING,    /* old c -> current d: our MOVE due or the peer's not read yet */
    RS_SUSPENDED, /* no connection; waiting for rs_attach until the resume deadline */
    RS_ENDING,    /* both FINs done: ACK, TAG_FINAL, the peer's TAG_FINAL or EOF */
    RS_DONE,      /* ended deliberately */
    RS_ABORTED,   /* ABORT received (exit 5) or sent by us (rs_abort) */
    RS_FAILED     /* not resumed in time, or rs_give_up (exit 11) */
};

/* what rs_tick finds due (a mask) */
enum rs_act {
    RS_ACT_NONE = 0,
    RS_ACT_ACK = 1 << 0,    /* ACK{rs_rx_offset} on the current connection (also the heartbeat) */
    RS_ACT_AT = 1 << 1,     /* AT{sent} on the current connection, before any of its data */
    RS_ACT_RESEND = 1 << 2, /* RESEND{rx} on the current connection */
    RS_ACT_MOVE = 1 << 3,   /* MOVE{end, epoch}, TAG_FINAL, shutdown(SHUT_WR) on the old one */
    RS_ACT_FIN = 1 << 4,    /* FIN{end} on the current connection, after its data */
    RS_ACT_FINAL = 1 << 5,  /* ENDING: TAG_FINAL, shutdown(SHUT_WR) on the current connection */
    RS_ACT_ABORT = 1 << 6,  /* ABORT{reason}, TAG_FINAL on the current connection, then end */
    RS_ACT_DEAD = 1 << 7,   /* the connection read from was silent for dead_ms: fail it */
    RS_ACT_DONE = 1 << 8,   /* RS_DONE reached */
    RS_ACT_FAILED = 1 << 9  /* RS_FAILED reached (the resume deadline) */
};

/* rs_on_data's verdict */
enum rs_rx {
    RS_RX_DELIVER = 0, /* skip bytes are duplicates, the take bytes after them are new */
    RS_RX_DUP,         /* all of it was delivered before (a resend after a resume) */
    RS_RX_DROP,        /* after a gap, until the next AT (a RESEND is due or out): drop it */
    RS_RX_ERROR        /* a protocol error: gap, data past the FIN, before the AT, offset limit */
};

/* one connection as the session sees it */
struct rs_conn_st {
    uint32_t epoch;
    bool open;     /* attached, not failed nor closed after EOF */
    bool moved_in; /* the peer's MOVE was read here: it carries no more data of the peer */
    bool final_in; /* the peer's TAG_FINAL was read here */
    bool eof_in;   /* and its EOF */
};

/* The fields are read through the functions below; they are here so that a stream can embed the
 * session without an allocation. */
struct rsess {
    struct rs_params p;
    enum rs_state state;
    struct rs_conn_st cur, old; /* old: the connection being moved from (open while draining) */
    uint32_t last_epoch;        /* the newest epoch ever attached */
    uint64_t now;               /* the latest time given */

    /* our direction: the ring holds [acked, end); sent is the cursor of the current connection */
    struct rbuf tx;
    uint64_t sent, high; /* high: the most ever sent on any connection */
    bool fin;            /* the source ended at rbuf_end */
    bool fin_sent_conn;  /* FIN went out on the current connection */
    bool fin_ever_sent;  /* ... on any connection: an ACK of end + 1 is valid */
    bool fin_acked;
    bool at_due, move_due, final_due, final_sent, abort_due;
    uint8_t abort_reason; /* ours (abort_due) or the peer's (RS_ABORTED, peer_aborted) */
    bool peer_aborted;
    uint64_t move_end;   /* our MOVE's end */
    uint64_t last_tx_ms; /* something went out on the current connection */

    /* the peer's direction */
    uint64_t rx;       /* bytes taken: the next byte to deliver */
    uint64_t rx_acked; /* the last ACK we sent (rx + 1 once the FIN was taken) */
    uint64_t conn_off; /* offset of the next data record on the connection read */
    bool conn_known;   /* conn_off is known: epoch 0, or an AT was read */
    bool gap_ok;       /* a gap on this connection is answered with RESEND (4.6 step 4) */
    bool gap_drop;     /* dropping until the next AT */
    bool resend_due;
    bool peer_fin;
    uint64_t peer_end;
    bool ack_now;        /* an ACK at once: the FIN taken, or ENDING */
    uint32_t wait_epoch; /* the peer moved on to this epoch, not handed over yet (0: none) */
    /* MOVING, d failed before the peer's MOVE with both FINs sent: c is read on for the peer's
     * end (it may have ended there and never taken d); nothing more is sent (rs_conn_failed) */
    bool d_lost;
    uint64_t last_rx_ms; /* something was read on the connection read from */
    uint64_t last_data_ms, first_unacked_ms;
    uint64_t deadline_ms; /* SUSPENDED: resume deadline; ENDING after FINAL: linger */
};

/* An unconnected session (RS_NEW) whose directions start at tx_start (ours) and rx_start (the
 * peer's): 0 and 0 for a new session. p NULL: rs_params_default. 0, or -1 when ring_cap is outside
 * rbuf's limits or p's ack_step is 0. */
int rs_init(struct rsess *s, const struct rs_params *p, size_t ring_cap, uint64_t tx_start,
            uint64_t rx_start, uint64_t now_ms);
void rs_free(struct rsess *s); /* the ring, wiped */

/* A new current connection: epoch 0 from RS_NEW (peer_rx must be tx_start), or a resume from
 * RS_SUSPENDED (epoch above every earlier one; peer_rx the peer's rx from the resume handshake,
 * +1 once it holds our FIN). Sending restarts at peer_rx (AT due). -1: wrong state, stale epoch,
 * or peer_rx outside [acked, high] (+1 after FIN): a lying peer, the session is unchanged. */
int rs_attach(struct rsess *s, uint32_t epoch, uint64_t peer_rx, uint64_t now_ms);

/* ACTIVE(c) -> MOVING(c -> d): d is verified (its handshake gave peer_rx, taken as an ACK). Our
 * MOVE{end = sent} is due on c, AT{sent} on d, data goes on d. -1: not ACTIVE (SUSPENDED takes
 * rs_attach), epoch not newer, peer_rx a lie, or the peer already moved to another epoch. */
int rs_upgrade(struct rsess *s, uint32_t epoch, uint64_t peer_rx, uint64_t now_ms);

/* The connection of this epoch failed (error, RS_ACT_DEAD, a protocol error, an EOF rs_on_eof
 * refused). Table 5.4: the current one -> SUSPENDED (FAILED at once with resume_ms 0; DONE in
 * ENDING), except d during MOVING before the peer's MOVE once both FINs are sent: MOVING stays,
 * c is read on for the peer's end (rs_on_final), anything else there suspends; the old one during
 * MOVING -> ACTIVE(d), its gap answered by a RESEND (SUSPENDED when d failed first); a draining
 * one: just gone. Closing the socket(s) is the caller's. Returns the new state. */
enum rs_state rs_conn_failed(struct rsess *s, uint32_t epoch, uint64_t now_ms);
void rs_give_up(struct rsess *s);               /* MB_GIVE_UP: SUSPENDED -> FAILED */
void rs_abort(struct rsess *s, uint8_t reason); /* local error or signal: ABORT due, RS_ABORTED */
/* A resume answered `gone` (4.4: the peer's tombstone) while SUSPENDED. ended: the tombstone is of
 * a session that ended deliberately (DONE after ENDING) and peer_rx is its final rx. DONE when that
 * rx is our end + 1 (all our bytes and our FIN are in) and we hold the peer's FIN: only the last
 * ACKs were lost with the connection. Otherwise ABORTED, reason RS_ABORT_GONE. */
enum rs_state rs_on_gone(struct rsess *s, bool ended, uint64_t peer_rx);

/* A data record of len bytes read on the connection of epoch: which bytes are new. *skip
 * duplicates first, then *take new ones, which the caller takes into its receive buffer (rx grows
 * by *take). */
enum rs_rx rs_on_data(struct rsess *s, uint32_t epoch, size_t len, size_t *skip, size_t *take,
                      uint64_t now_ms);
/* A control record read on the connection of epoch. 0; 1 a stale ACK (ignored); -1 protocol
 * error (an ACK or RESEND beyond what was ever sent, a FIN or MOVE not at the connection's
 * offset, an AT above rx where no gap may be, ...). ABORT -> RS_ABORTED (0). */
int rs_on_ctl(struct rsess *s, uint32_t epoch, const struct rs_ctl *c, uint64_t now_ms);
/* The peer's TAG_FINAL: valid after its MOVE on that connection or once both FINs are done; on c
 * during MOVING without the peer's MOVE, with both FINs done, the peer ended the session on c
 * and never took d: DONE. */
int rs_on_final(struct rsess *s, uint32_t epoch, uint64_t now_ms);
/* EOF: 0 when expected (after the peer's TAG_FINAL, or in ENDING), -1 when it is a failure (the
 * caller calls rs_conn_failed). */
int rs_on_eof(struct rsess *s, uint32_t epoch, uint64_t now_ms);
/* Whether the connection of epoch is still the session's: the caller closes a connection (c after
 * a move, drained; an older one replaced) as soon as this says false. */
bool rs_conn_open(const struct rsess *s, uint32_t epoch);

/* Our direction. */
struct rbuf *rs_ring(struct rsess *s);
size_t rs_tx_room(const struct rsess *s); /* what the source may put in the ring now */
void rs_tx_eof(struct rsess *s);          /* the source ended: FIN at rbuf_end, after the data */
/* The next data to seal on the current connection: from sent, one ring span (the caller cuts it
 * to records). 0 and *len > 0; -1 when nothing is to be sent now (no connection, AT due first, all
 * sent). Valid as rbuf_peek's span. */
int rs_tx_peek(const struct rsess *s, const unsigned char **ptr, size_t *len);
void rs_tx_sent(struct rsess *s, size_t n, uint64_t now_ms); /* n bytes of it were sealed */

/* What is due now (a mask of RS_ACT_*). Applies the time's transitions (SUSPENDED -> FAILED,
 * ENDING -> DONE). reading false (our output is blocked, we do not read): the silence timer is
 * held (restarted when reading starts again), so a slow consumer never looks like a dead path. */
unsigned rs_tick(struct rsess *s, uint64_t now_ms, bool reading);
/* The record for one act bit of rs_tick (ACK, AT, RESEND, MOVE, FIN, ABORT); 0, -1 for others. */
int rs_ctl(const struct rsess *s, unsigned act, struct rs_ctl *out);
/* One act bit went out (the records of its line in enum rs_act). */
void rs_sent(struct rsess *s, unsigned act, uint64_t now_ms);
/* ms until rs_tick has something new (0: now), -1 for none; for poll. */
int rs_next_timeout(const struct rsess *s, uint64_t now_ms, bool reading);

enum rs_state rs_state(const struct rsess *s);
const char *rs_state_name(enum rs_state st); /* "ACTIVE", as table 5.4 */
/* The connection to read from: true and its epoch, false when none (suspended, or waiting for
 * the connection the peer's MOVE named). */
bool rs_reading(const struct rsess *s, uint32_t *epoch);
uint64_t rs_rx_offset(
    const struct rsess *s); /* rx, +1 once the peer's FIN is taken: for ACK, the resume handshake */
uint64_t rs_rx(const struct rsess *s); /* bytes of the peer's taken */
uint64_t rs_tx_sent_off(const struct rsess *s);
uint64_t rs_tx_acked(const struct rsess *s);
/* MOVING with d failed: c is read for the peer's end only (rs_conn_failed) */
bool rs_d_lost(const struct rsess *s);
bool rs_peer_eof(const struct rsess *s); /* the peer's FIN taken: close our output */

#endif
