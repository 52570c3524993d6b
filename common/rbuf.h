/* The sender's resend buffer of a session (issue 15): one direction's bytes, numbered from 0 by a
 * 64-bit offset, kept from the moment the application side hands them over until the peer
 * acknowledges them, so that a resumed session can send them again from any offset the peer
 * names. Pure: no I/O, no event loop; the session layer owns the sockets and the timers.
 *
 *              acked                      end
 *   ...........|==========================|- - - - - - - - - - -|
 *    gone       held (sent or not yet)     room (cap - used)
 *
 * The send cursor (what the current connection has carried) is not kept here: it belongs to
 * the connection and restarts at the peer's offset on a resume; the buffer only holds the bytes
 * and refuses offsets outside [acked, end).
 *
 * No copy of its own on the hot path: the writer reads from its source straight into the free
 * space (rbuf_reserve, read(2), rbuf_commit) and the sealer seals records straight out of the
 * held bytes (rbuf_peek), so the buffer takes the place of today's plaintext buffer, with the
 * same one copy into it. rbuf_write is there for bytes already in memory. There is no copy-out:
 * a resend reads through rbuf_peek like the first send.
 *
 * The storage is a ring; a span lent out by rbuf_reserve or rbuf_peek ends where the ring wraps,
 * so the caller asks again for the rest (at most two spans cover any range while the storage
 * stays the same size).
 *
 * Memory policy: the capacity (the flag, RBUF_DEFAULT) bounds the bytes held, and the storage
 * follows the bytes actually held, not the flag. Nothing is allocated until the first byte is
 * written; the first allocation is RBUF_STEP (64 KiB), and whenever the held bytes would not fit
 * the storage moves to the smallest step that holds them, the steps being 64 KiB * 2^k up to the
 * capacity, which is the last step (it need not be a power of two). After N bytes written and
 * none acknowledged it is therefore min(cap, the smallest 64 KiB * 2^k >= N); with a peer that
 * acknowledges as it receives, about the bytes in flight. While the bytes move, both rings exist
 * for that moment: less than twice the capacity (1.5 times but for the move to the last step).
 * Acks never free storage (a busy stream empties its buffer many times a second and would
 * allocate again each time); rbuf_trim gives it back, and the session layer calls it when the
 * stream has gone quiet, so an idle session costs sizeof(struct rbuf) and nothing else. */
#ifndef TP_RBUF_H
#define TP_RBUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RBUF_MIN (64u * 1024)           /* smallest capacity */
#define RBUF_MAX (1024u * 1024 * 1024)  /* largest capacity */
#define RBUF_DEFAULT (8u * 1024 * 1024) /* the flag's default */
#define RBUF_STEP (64u * 1024)          /* the first allocation; each further step doubles */

/* Read the fields through the functions below; they are here so a session can embed the buffer
 * without an allocation of its own. */
struct rbuf {
    unsigned char *buf; /* the ring, NULL while nothing is allocated */
    size_t size;        /* bytes of buf: 0 or a step */
    size_t cap;         /* the most bytes ever held */
    size_t reserved;    /* bytes after end lent out by the last rbuf_reserve, not committed */
    uint64_t acked;     /* the first byte held: everything below it was acknowledged */
    uint64_t end;       /* one past the last byte written */
};

/* Sets up an empty buffer whose bytes are numbered from 0 (rbuf_init) or from start. Allocates
 * nothing. -1 when cap is outside [RBUF_MIN, RBUF_MAX]; the buffer is then unusable. */
int rbuf_init(struct rbuf *rb, size_t cap);
int rbuf_init_at(struct rbuf *rb, size_t cap, uint64_t start);

/* Frees the storage, and with it the held bytes: they count as gone (acked = end), and the
 * buffer stays usable, empty, its offsets going on from end. Harmless on a buffer that never
 * held anything, and twice. Every ring is wiped before it is freed (here, in rbuf_trim and when
 * the bytes move to a bigger ring): it held the user's plaintext. */
void rbuf_free(struct rbuf *rb);

/* Appends up to n bytes of data at end: returns how many it took, never more than rbuf_room()
 * (backpressure: the rest stays with the caller, nothing is dropped). -1 when the storage had to
 * grow and memory ran out; nothing was taken then. */
ssize_t rbuf_write(struct rbuf *rb, const void *data, size_t n);

/* Lends out the free space right after end, for read(2) straight into the buffer: *ptr, *len is
 * the first contiguous span of it (at most rbuf_room(); the rest follows after rbuf_commit, where
 * the ring wraps). *len 0 (and *ptr NULL) when the buffer is full. Grows the storage when the
 * held bytes fill it. 0, or -1 when memory ran out (nothing changed). The span stays valid until
 * rbuf_commit uses it up or rbuf_write, rbuf_trim or rbuf_free is called; rbuf_ack leaves it. */
int rbuf_reserve(struct rbuf *rb, unsigned char **ptr, size_t *len);

/* Appends the first n bytes of the reserved span (end += n). -1, and nothing appended, when n
 * exceeds what is still reserved. */
int rbuf_commit(struct rbuf *rb, size_t n);

/* The peer received everything below off: those bytes go. 0 (off == acked included: nothing
 * new); 1 when off is below acked, a stale ack, ignored; -1 when off is beyond end: the peer
 * acknowledges bytes never written (a lying or broken peer), and nothing changes. The buffer
 * knows what was written, not what was sent: a session that keeps its send cursor refuses an
 * ack beyond what it ever sent itself, before it gets here. */
int rbuf_ack(struct rbuf *rb, uint64_t off);

/* Lends out held bytes from off, for (re)sending: *ptr, *len is the contiguous span from off
 * (*len > 0; the rest of [off, end) follows from off + *len). -1 when off is outside
 * [acked, end). Valid until rbuf_write, rbuf_reserve (both may grow the storage and move the
 * held bytes), rbuf_trim or rbuf_free; rbuf_commit keeps it, and so does rbuf_ack up to off. */
int rbuf_peek(const struct rbuf *rb, uint64_t off, const unsigned char **ptr, size_t *len);

/* Gives storage back: all of it when nothing is held, otherwise shrinks to the smallest step
 * that holds the bytes (moving them). Drops any reservation. 0, or -1 when memory for the
 * smaller copy ran out (nothing changed). */
int rbuf_trim(struct rbuf *rb);

uint64_t rbuf_acked(const struct rbuf *rb); /* the first offset held */
uint64_t rbuf_end(const struct rbuf *rb);   /* one past the last offset written */
size_t rbuf_used(const struct rbuf *rb);    /* end - acked, at most the capacity */
/* bytes rbuf_write would take now: cap - used (less only where end would pass 2^64 - 1) */
size_t rbuf_room(const struct rbuf *rb);
size_t rbuf_cap(const struct rbuf *rb);
size_t rbuf_storage(const struct rbuf *rb); /* bytes allocated now (memory accounting) */

#endif
