/* A blocking, message-friendly view of the encrypted stream (common/seal.h) for the file
 * transfer: writes are sealed and sent at once, reads come out of opened records. The pump is
 * for bytes that flow both ways at once; the file protocol takes turns, so blocking calls with
 * a stall timeout are enough here. */
#ifndef TP_CHAN_H
#define TP_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/seal.h"
#include "peer/link.h"

/* The peer's turn must bring CHAN_PROGRESS bytes of data, or end (our next write), within
 * CHAN_STALL_S, and again for every CHAN_PROGRESS bytes: a sender that trickles a byte a minute
 * cannot hold a receiver (and its part file) for ever, while a real link of 1 KiB/s passes. Empty
 * records bring nothing and count for nothing. */
#define CHAN_STALL_S 60
#define CHAN_PROGRESS (64 * 1024)

struct chan {
    int fd;
    /* over the session bridge (peer/bridge.h): fd is a plain stream, rstream seals it, and a
     * suspension of the session pauses the stall rules (the resume timeout bounds it) */
    struct bridge *br;
    struct seal_tx tx;
    struct seal_rx rx;
    bool header_sent; /* our stream header went out with the first write */
    bool final_seen;  /* the peer's final record arrived */
    unsigned char cin[SEAL_HEADER + 2 * SEAL_REC_MAX]; /* received, not opened yet */
    size_t cin_len;
    unsigned char plain[SEAL_CHUNK]; /* opened, not consumed yet */
    size_t plen, poff;
    unsigned char *wire; /* sealed bytes for one write */
    size_t wire_cap;
    int stall_ms;        /* CHAN_STALL_S by default; frecv_refuse waits less */
    uint64_t win_ms;     /* start of the current progress window */
    size_t win_bytes;    /* plaintext received in it */
    char err[300];
};

/* Takes over the link: its keys (wiped there), socket and prefill; with link->bridge, its
 * plain local end. Returns 0, or -1 (out of memory). */
int chan_init(struct chan *c, struct peer_link *link);

/* Seals and sends n bytes; our turn ended, so the peer's progress window starts again. Returns
 * 0, or -1 with c->err. */
int chan_write(struct chan *c, const void *data, size_t n);

/* Up to n plaintext bytes into buf: returns how many (> 0), 0 at the clean end of the peer's
 * stream, or -1 with c->err (connection lost, stalled: less than CHAN_PROGRESS bytes within
 * stall_ms of the window's start, or a record failed authentication). */
long chan_read(struct chan *c, void *buf, size_t n);

/* One line without its '\n', NUL-terminated, at most cap-1 bytes. Returns its length, 0 at the
 * clean end before any byte, -1 with c->err (also for a line too long or empty: the file
 * protocol has none). */
long chan_readline(struct chan *c, char *line, size_t cap);

/* Sends our final record and half-closes. Returns 0 or -1 with c->err. */
int chan_finish(struct chan *c);

/* Wipes the stream state and frees; does not close the socket. */
void chan_free(struct chan *c);

#endif
