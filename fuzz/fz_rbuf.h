/* The reference model of the resend buffer (common/rbuf.h), shared by fuzz_rbuf and
 * tests/unit/test_rbuf: the held bytes in a plain array, offset off at a[off - base], and the
 * storage the memory policy of rbuf.h prescribes, computed from its description rather than
 * from the ring. Nothing here checks anything: each caller compares the real buffer with it in
 * its own way (abort in the fuzzer, CHECK in the test). */
#ifndef TP_FZ_RBUF_H
#define TP_FZ_RBUF_H

#include "common/rbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct fz_model {
    unsigned char *a; /* 2 * cap bytes: held bytes from a[acked - base] */
    size_t alloc;
    size_t cap;
    uint64_t base, acked, end;
    size_t storage;  /* what rbuf_storage must say */
    size_t reserved; /* what the last rbuf_reserve lent and rbuf_commit has not used */
};

static inline void fz_model_init(struct fz_model *m, size_t cap, uint64_t start)
{
    *m = (struct fz_model){
        .cap = cap, .alloc = 2 * cap, .base = start, .acked = start, .end = start};
    m->a = malloc(m->alloc);
    if (!m->a)
        abort();
}

static inline void fz_model_free(struct fz_model *m)
{
    free(m->a);
    m->a = NULL;
}

static inline size_t fz_model_used(const struct fz_model *m)
{
    return (size_t)(m->end - m->acked);
}

static inline size_t fz_model_room(const struct fz_model *m)
{
    size_t r = m->cap - fz_model_used(m);
    return UINT64_MAX - m->end < r ? (size_t)(UINT64_MAX - m->end) : r;
}

/* The policy of rbuf.h in its own words: 64 KiB, doubled, never more than the capacity. */
static inline size_t fz_model_step(const struct fz_model *m, size_t need)
{
    size_t s = RBUF_STEP;
    while (s < need)
        s *= 2;
    return s < m->cap ? s : m->cap;
}

static inline void fz_model_grow(struct fz_model *m, size_t need)
{
    if (need > m->storage)
        m->storage = fz_model_step(m, need);
}

static inline unsigned char fz_model_byte(const struct fz_model *m, uint64_t off)
{
    return m->a[off - m->base];
}

/* Appends n bytes (the caller passes only what the buffer took: n <= room). Compacts when the
 * array is full, which happens after at least cap bytes appended, so the cost per byte stays
 * constant however often the ring wraps. */
static inline void fz_model_append(struct fz_model *m, const unsigned char *p, size_t n)
{
    if (m->end - m->base + n > m->alloc) {
        memmove(m->a, m->a + (m->acked - m->base), fz_model_used(m));
        m->base = m->acked;
    }
    memcpy(m->a + (m->end - m->base), p, n);
    m->end += n;
}

/* rbuf_write's effect: returns the count it must return. */
static inline size_t fz_model_write(struct fz_model *m, const unsigned char *p, size_t n)
{
    size_t take = n < fz_model_room(m) ? n : fz_model_room(m);
    if (take)
        fz_model_grow(m, fz_model_used(m) + take);
    m->reserved = 0;
    fz_model_append(m, p, take);
    return take;
}

/* rbuf_reserve's effect on the storage: it grows only when the held bytes fill it. */
static inline void fz_model_reserve(struct fz_model *m, size_t lent)
{
    if (fz_model_room(m) && fz_model_used(m) == m->storage)
        fz_model_grow(m, fz_model_used(m) + 1);
    m->reserved = lent;
}

/* rbuf_ack's result. */
static inline int fz_model_ack(struct fz_model *m, uint64_t off)
{
    if (off > m->end)
        return -1;
    if (off < m->acked)
        return 1;
    m->acked = off;
    return 0;
}

static inline void fz_model_trim(struct fz_model *m)
{
    size_t want;
    m->reserved = 0;
    if (fz_model_used(m) == 0) {
        m->storage = 0;
        return;
    }
    want = fz_model_step(m, fz_model_used(m));
    if (want < m->storage)
        m->storage = want;
}

static inline void fz_model_drop(struct fz_model *m) /* rbuf_free */
{
    m->acked = m->end;
    m->storage = 0;
    m->reserved = 0;
}

/* A small deterministic generator (splitmix64) for the bytes written and the test's choices. */
static inline uint64_t fz_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static inline void fz_fill(uint64_t *s, unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = fz_rand(s);
        memcpy(p + i, &r, n - i < 8 ? n - i : 8);
    }
}

#endif
