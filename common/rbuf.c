#include "common/rbuf.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* Offset off lives at buf[off % size]. The position is derived from the offset, not kept, so
 * there is no head index to get out of step with acked, and moving the bytes to a ring of
 * another size is one loop (rbuf_move). The division costs nothing next to the system call
 * each reserve or peek goes with. */
static size_t rbuf_pos(const struct rbuf *rb, uint64_t off)
{
    return (size_t)(off % rb->size);
}

static size_t rbuf_min(size_t a, uint64_t b)
{
    return b < a ? (size_t)b : a;
}

int rbuf_init_at(struct rbuf *rb, size_t cap, uint64_t start)
{
    *rb = (struct rbuf){.acked = start, .end = start};
    if (cap < RBUF_MIN || cap > RBUF_MAX)
        return -1;
    rb->cap = cap;
    return 0;
}

int rbuf_init(struct rbuf *rb, size_t cap)
{
    return rbuf_init_at(rb, cap, 0);
}

void rbuf_free(struct rbuf *rb)
{
    /* no bytes held without storage to hold them: peek and the ring's arithmetic rely on it */
    rb->acked = rb->end;
    if (rb->buf)
        sodium_memzero(rb->buf, rb->size);
    free(rb->buf);
    rb->buf = NULL;
    rb->size = 0;
    rb->reserved = 0;
}

uint64_t rbuf_acked(const struct rbuf *rb)
{
    return rb->acked;
}

uint64_t rbuf_end(const struct rbuf *rb)
{
    return rb->end;
}

size_t rbuf_used(const struct rbuf *rb)
{
    return (size_t)(rb->end - rb->acked); /* at most cap: rbuf_commit and rbuf_write see to it */
}

size_t rbuf_room(const struct rbuf *rb)
{
    /* offsets never wrap: the last byte a session can carry is numbered 2^64 - 2 (end, one past
     * it, must still be representable); at a gigabyte a second that is 585 years away, but a
     * peer's offsets are checked against end, and end must stay monotonic for that to hold */
    return rbuf_min(rb->cap - rbuf_used(rb), UINT64_MAX - rb->end);
}

size_t rbuf_cap(const struct rbuf *rb)
{
    return rb->cap;
}

size_t rbuf_storage(const struct rbuf *rb)
{
    return rb->size;
}

/* The storage for need held bytes: the smallest RBUF_STEP * 2^k that holds them, but never more
 * than the capacity (need is at most cap, so the result always holds need). */
static size_t rbuf_step_for(const struct rbuf *rb, size_t need)
{
    size_t s = RBUF_STEP;
    while (s < need && s < rb->cap)
        s *= 2; /* s < cap <= RBUF_MAX = 2^30 here, so 2 * s fits even a 32-bit size_t */
    return s < rb->cap ? s : rb->cap;
}

/* Moves the held bytes into a new ring of size bytes (size >= used, or no move when nothing is
 * held). A fresh block rather than realloc: every byte changes place anyway (off % size), and
 * realloc would first copy the whole old ring, free space included. Drops the reservation: its
 * span was in the old ring. -1 on ENOMEM with nothing changed. */
static int rbuf_move(struct rbuf *rb, size_t size)
{
    unsigned char *nb = malloc(size);
    struct rbuf old = *rb;

    if (!nb)
        return -1;
    rb->buf = nb;
    rb->size = size;
    rb->reserved = 0;
    /* each piece is contiguous in both rings: it stops where either of them wraps */
    for (uint64_t off = old.acked; off < old.end;) {
        size_t from = rbuf_pos(&old, off), to = rbuf_pos(rb, off);
        size_t n = rbuf_min(old.size - from, old.end - off);
        n = rbuf_min(n, size - to);
        memcpy(nb + to, old.buf + from, n);
        off += n;
    }
    if (old.buf)
        sodium_memzero(old.buf, old.size);
    free(old.buf);
    return 0;
}

/* Makes the storage hold need bytes (need <= cap). */
static int rbuf_fit(struct rbuf *rb, size_t need)
{
    if (need <= rb->size)
        return 0;
    return rbuf_move(rb, rbuf_step_for(rb, need));
}

int rbuf_reserve(struct rbuf *rb, unsigned char **ptr, size_t *len)
{
    size_t room = rbuf_room(rb), used = rbuf_used(rb), at, n;

    *ptr = NULL;
    *len = 0;
    if (room == 0)
        return 0;
    /* grow only when full: a ring with free space left wraps instead, which keeps the storage
     * at the bytes in flight (see the policy in rbuf.h) */
    if (used == rb->size && rbuf_fit(rb, used + 1) != 0)
        return -1;
    at = rbuf_pos(rb, rb->end);
    /* up to the ring's edge, and not over held bytes (they sit after the free space when the
     * free space wraps); room caps it at the capacity and the offset limit */
    n = rbuf_min(rb->size - at, rb->size - used);
    n = rbuf_min(n, room);
    rb->reserved = n;
    *ptr = rb->buf + at;
    *len = n;
    return 0;
}

int rbuf_commit(struct rbuf *rb, size_t n)
{
    if (n > rb->reserved)
        return -1;
    rb->end += n; /* the reservation kept it within room: no overflow, used stays <= cap */
    rb->reserved -= n;
    return 0;
}

ssize_t rbuf_write(struct rbuf *rb, const void *data, size_t n)
{
    const unsigned char *p = data;
    size_t take = n < rbuf_room(rb) ? n : rbuf_room(rb), done = 0;

    /* one growth to the size the whole write needs, not one step at a time (each step would
     * move the held bytes again) */
    if (take && rbuf_fit(rb, rbuf_used(rb) + take) != 0)
        return -1;
    rb->reserved = 0;
    /* at most two pieces: the storage now holds used + take, and the free space wraps once */
    while (done < take) {
        size_t at = rbuf_pos(rb, rb->end), piece = rb->size - at;
        if (piece > take - done)
            piece = take - done;
        memcpy(rb->buf + at, p + done, piece);
        rb->end += piece;
        done += piece;
    }
    return (ssize_t)done;
}

int rbuf_ack(struct rbuf *rb, uint64_t off)
{
    if (off > rb->end)
        return -1;
    if (off < rb->acked)
        return 1;
    rb->acked = off;
    return 0;
}

int rbuf_peek(const struct rbuf *rb, uint64_t off, const unsigned char **ptr, size_t *len)
{
    size_t at;

    *ptr = NULL;
    *len = 0;
    if (off < rb->acked || off >= rb->end)
        return -1;
    at = rbuf_pos(rb, off); /* off < end means something is held, so size > 0 */
    *ptr = rb->buf + at;
    *len = rbuf_min(rb->size - at, rb->end - off);
    return 0;
}

int rbuf_trim(struct rbuf *rb)
{
    size_t used = rbuf_used(rb), want;

    rb->reserved = 0;
    if (used == 0) {
        rbuf_free(rb);
        return 0;
    }
    want = rbuf_step_for(rb, used);
    if (want >= rb->size)
        return 0;
    return rbuf_move(rb, want);
}
