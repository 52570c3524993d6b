/* A blocking, message-friendly view of the encrypted stream (common/seal.h) for the file
 * transfer: writes are sealed and sent at once, reads come out of opened records. The pump is
 * for bytes that flow both ways at once; the file protocol takes turns, so blocking calls with
 * a stall timeout are enough here. */
#ifndef TP_CHAN_H
#define TP_CHAN_H

#include <stdbool.h>
#include <stddef.h>

#include "common/seal.h"
#include "peer/peer.h"

#define CHAN_STALL_S 60 /* no progress either way for this long: the peer is gone */

struct chan {
    int fd;
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
    char err[300];
};

/* Takes over the link: its keys (wiped there), socket and prefill. Returns 0, or -1 (out of
 * memory). */
int chan_init(struct chan *c, struct peer_link *link);

/* Seals and sends n bytes. Returns 0, or -1 with c->err. */
int chan_write(struct chan *c, const void *data, size_t n);

/* Up to n plaintext bytes into buf: returns how many (> 0), 0 at the clean end of the peer's
 * stream, or -1 with c->err (connection lost, stalled, or a record failed authentication). */
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
