/* The data-plane engine of one resumable stream (issue 15, docs/design/resume.md 4.3, 5.3, 5.4):
 * the session state machine (common/rsess) driven over a succession of connections, each with
 * its own secretstream pair (the 24-byte header each way first, under that connection's keys),
 * its own output buffer (records batched, nonblocking sends) and its own input buffer (records
 * len(2, BE) || ciphertext, parsed as common/seal.h says). At most two connections at a time: the
 * current one and, during a move (upgrade), the old one draining to its EOF.
 *
 * The caller owns poll() and the local side:
 *   - the source goes straight into the ring: rst_tx_space (the free span, zero copy), read(2),
 *     rst_tx_commit; rst_tx_eof at its EOF;
 *   - what the peer sent waits in the receive buffer: rst_rx_peek, write(2), rst_rx_consume;
 *     rst_peer_eof once the peer's FIN is taken and the buffer is empty;
 *   - connections: rst_attach (epoch 0, a resume after RST_LOST, or an upgrade);
 *   - poll: rst_pollfds adds the connections' fds and lowers the timeout, rst_handle does the
 *     I/O their revents allow, the timers of rs_tick, and says what happened.
 *
 * Sealing happens in rst_handle: control records due (ACK, AT, RESEND) go ahead of data, then
 * data from the ring in records of up to SEAL_CHUNK bytes, then FIN, TAG_FINAL or ABORT, as
 * rsess.h's "Order on the wire" says; as much as fits in the output buffer, then one send.
 * A failed connection is closed with RST (SO_LINGER 0). Nothing here knows about peer/. */
#ifndef TP_RSTREAM_H
#define TP_RSTREAM_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/rsess.h"
#include "common/seal.h"

#define RST_BUF (128u * 1024) /* plaintext per direction buffered, as PUMP_BUF */
#define RST_WHY 256
#define RST_MAX_FDS 2    /* rst_pollfds adds at most this many */
/* forged records (authentication, length) with no new authentic data between them: the session
 * ends (exit 5). Each one fails its connection (a resume follows); new data from the peer resets
 * the count, so an injection on the path costs a resume, and only an attacker who keeps every new
 * connection from carrying data ends the session early, which cutting each one also does. */
#define RST_AUTH_FAILS 3
#define RST_PREFILL 4096 /* the most prefill rst_attach takes */

/* A connection handed over (mb_conn's fields, which peer/ copies in). */
struct rst_attach {
    int fd; /* taken by rst_attach on success */
    uint32_t epoch;
    const unsigned char *tx; /* SEAL_KEYBYTES: what we seal with */
    const unsigned char *rx; /* SEAL_KEYBYTES: what we open with */
    uint64_t peer_rx;        /* the peer's rx from the handshake (0 for epoch 0) */
    bool upgrade;            /* move a live session to it (rs_upgrade), else rs_attach */
    const void *prefill;     /* the peer's bytes read behind the handshake */
    size_t prefill_len;
};

struct rst_conn {
    int fd; /* -1: no connection in this slot */
    uint32_t epoch;
    struct seal_tx tx;
    struct seal_rx rx;
    unsigned char *out; /* sealed bytes: [ooff, olen) still to send */
    size_t olen, ooff;
    unsigned char *in; /* ciphertext not opened yet: [0, ilen) */
    size_t ilen;
    bool eof;       /* EOF read */
    bool final_out; /* our TAG_FINAL is in out: shutdown(SHUT_WR) once it is sent */
    bool shut;      /* shutdown(SHUT_WR) done */
    bool hup;       /* POLLHUP after our shutdown: no more polling */
    bool blocked;   /* records not opened for want of room (or prefill): open without POLLIN */
    bool moved_in;  /* the peer's MOVE was read here: only its TAG_FINAL and EOF follow */
    int pi;         /* its index in the last rst_pollfds, -1 none */
};

enum rst_ev {
    RST_OK = 0,  /* nothing for the caller */
    RST_LOST,    /* the current connection failed: suspended (rst_why), wait for rst_attach */
    RST_DONE,    /* both directions ended deliberately and our last records are out */
    RST_ABORTED, /* the peer's ABORT (rst_why), or too many forged records */
    RST_FAILED,  /* not resumed in time (the resume deadline), or resume_ms 0 */
};

struct rstream { /* members private; public only so that callers can embed it */
    struct rsess s;
    struct rst_conn cur, old;
    unsigned char *down; /* received plaintext: [doff, dlen) to write out */
    size_t dlen, doff;
    unsigned char *scratch;     /* plaintext of records of a connection not read for data */
    uint64_t high;              /* the highest offset ever sealed */
    uint64_t resent;            /* bytes sealed again (below high) */
    uint64_t rx_total;          /* bytes taken into down */
    uint64_t trim_end, trim_ms; /* the ring's end when last seen moving, and when */
    unsigned bad_auth;
    bool lost;    /* an RST_LOST not reported yet */
    bool aborted; /* too many forged records */
    char why[RST_WHY];
};

/* An empty stream (RS_NEW) with a ring of ring bytes (RBUF_MIN..RBUF_MAX). p NULL: defaults.
 * 0, or -1 (bad size or out of memory; rst_free is still harmless). */
int rst_init(struct rstream *r, const struct rs_params *p, size_t ring, uint64_t now_ms);
/* Closes the connections (RST if not ended deliberately), wipes keys, ring and buffers. */
void rst_free(struct rstream *r);

/* 0: the connection is the session's (fd taken; its stream header queued); -1: refused (wrong
 * state, stale epoch, a lying peer_rx, too much prefill, no memory): fd not taken, caller closes.
 */
int rst_attach(struct rstream *r, const struct rst_attach *a, uint64_t now_ms);

/* The current connection counts as failed now (closed with RST; RST_LOST follows unless an
 * rst_attach comes first): the path side learnt it first, e.g. the peer resumed already. */
void rst_cut(struct rstream *r, const char *why, uint64_t now_ms);

/* The ring's free span for the source: *len 0 when the ring is full (do not read). -1 no memory. */
int rst_tx_space(struct rstream *r, unsigned char **ptr, size_t *len);
void rst_tx_commit(struct rstream *r, size_t n);
/* whether to poll the source now: the ring has room and, on a live connection, not much is
 * waiting to be sealed already (suspended: until the ring is full) */
bool rst_tx_want(struct rstream *r);
void rst_tx_eof(struct rstream *r);

/* Received bytes waiting to be written out: their length (0: none). */
size_t rst_rx_peek(const struct rstream *r, const unsigned char **ptr);
void rst_rx_consume(struct rstream *r, size_t n);
/* the peer's direction ended (FIN taken) and everything before it was consumed */
bool rst_peer_eof(const struct rstream *r);

/* Adds the connections' pollfds at pf (room for RST_MAX_FDS) and returns how many; *timeout
 * (poll's, -1 none) is lowered to the session's next timer. */
int rst_pollfds(struct rstream *r, struct pollfd *pf, uint64_t now_ms, int *timeout);
/* After poll (pf as given to rst_pollfds; NULL to only run timers and send): reads, opens,
 * seals, sends. One event at a time: call again until RST_OK. */
enum rst_ev rst_handle(struct rstream *r, const struct pollfd *pf, uint64_t now_ms);

/* A local error or a signal: ABORT{reason} and TAG_FINAL sealed on the current connection and
 * sent best effort (for at most wait_ms). */
void rst_abort(struct rstream *r, uint8_t reason, int wait_ms);

const char *rst_why(const struct rstream *r);
struct rsess *rst_sess(struct rstream *r);
uint64_t rst_resent(const struct rstream *r);

#endif
