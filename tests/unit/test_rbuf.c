/* The sender's resend buffer (common/rbuf.c): every operation at its edges (empty, full, the
 * ring's wrap with reserve/commit and peek spans, acks at, below and beyond the end, peeks
 * outside [acked, end)), the capacity's limits, the offsets' limit at 2^64, the memory policy
 * (what is allocated after N bytes), memory running out, rings wiped when freed, and long seeded
 * random runs cross-checked byte for byte against the plain-array model of fuzz/fz_rbuf.h, wrapping
 * the ring thousands of times. */
#include "check.h"
#include "common/rbuf.h"
#include "fuzz/fz_rbuf.h"

#include <stdbool.h>

#define KiB (1024u)
#define MiB (1024u * 1024)

static unsigned char pat_[4 * MiB]; /* test data: pat_[i] for the byte at offset i */

/* Out of memory on demand, and a look at each ring as it is freed: the test links with
 * -Wl,--wrap=malloc,--wrap=free (tests/unit/CMakeLists.txt), so rbuf.c's calls come here.
 * fail_malloc_ > 0 makes that many mallocs fail; a free of watch_ checks it was wiped. */
void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);
void __real_free(void *p);
void __wrap_free(void *p);
static int fail_malloc_;
static const unsigned char *watch_;
static size_t watch_len_;
static int watch_freed_, watch_dirty_;
void *__wrap_malloc(size_t n)
{
    if (fail_malloc_ > 0) {
        fail_malloc_--;
        return NULL;
    }
    return __real_malloc(n);
}
void __wrap_free(void *p)
{
    if (p && p == watch_) {
        watch_freed_++;
        for (size_t i = 0; i < watch_len_; i++)
            watch_dirty_ += watch_[i] != 0;
        watch_ = NULL;
    }
    __real_free(p);
}

static void watch(const struct rbuf *rb)
{
    watch_ = rb->buf;
    watch_len_ = rb->size;
    watch_freed_ = watch_dirty_ = 0;
}

static void setup_pattern(void)
{
    static bool done;
    uint64_t s = 42;
    if (!done)
        fz_fill(&s, pat_, sizeof pat_);
    done = true;
}

/* The bytes [off, end) through peek, against pat_ (offsets below sizeof pat_), in at most
 * max_spans spans. */
static bool held_is_pattern(const struct rbuf *rb, uint64_t off, int max_spans)
{
    int spans = 0;
    while (off < rbuf_end(rb)) {
        const unsigned char *p;
        size_t n;
        if (!CHECK_INT(rbuf_peek(rb, off, &p, &n), 0) || !CHECK(n > 0) ||
            !CHECK(n <= rbuf_end(rb) - off))
            return false;
        if (!CHECK_MSG(memcmp(p, pat_ + off, n) == 0, "bytes at %" PRIu64 " differ", off))
            return false;
        off += n;
        spans++;
    }
    return CHECK_MSG(spans <= max_spans, "%d spans", spans);
}

static void t_init_limits(void)
{
    struct rbuf rb;
    CHECK_INT(rbuf_init(&rb, 0), -1);
    CHECK_INT(rbuf_init(&rb, RBUF_MIN - 1), -1);
    CHECK_INT(rbuf_init(&rb, (size_t)RBUF_MAX + 1), -1);
    CHECK_INT(rbuf_init(&rb, SIZE_MAX), -1);
    CHECK_INT(rbuf_init(&rb, RBUF_MIN), 0);
    CHECK_INT(rbuf_cap(&rb), RBUF_MIN);
    CHECK_INT(rbuf_init(&rb, RBUF_DEFAULT), 0);
    CHECK_INT(rbuf_cap(&rb), 8 * MiB);
    CHECK_INT(rbuf_init(&rb, RBUF_MAX), 0);
    CHECK_INT(rbuf_cap(&rb), 1024 * MiB);
    /* nothing allocated, even at the largest capacity */
    CHECK_INT(rbuf_storage(&rb), 0);
    CHECK(rb.buf == NULL);
    CHECK_INT(rbuf_acked(&rb), 0);
    CHECK_INT(rbuf_end(&rb), 0);
    CHECK_INT(rbuf_used(&rb), 0);
    CHECK_INT(rbuf_room(&rb), RBUF_MAX);
    rbuf_free(&rb);
    rbuf_free(&rb); /* twice is harmless */
    CHECK_INT(rbuf_init_at(&rb, RBUF_MIN, 12345), 0);
    CHECK_INT(rbuf_acked(&rb), 12345);
    CHECK_INT(rbuf_end(&rb), 12345);
}

static void t_empty(void)
{
    struct rbuf rb;
    const unsigned char *p = (const unsigned char *)"x";
    size_t n = 99;

    rbuf_init(&rb, RBUF_MIN);
    CHECK_INT(rbuf_peek(&rb, 0, &p, &n), -1);
    CHECK(p == NULL);
    CHECK_INT(n, 0);
    CHECK_INT(rbuf_ack(&rb, 0), 0); /* at the end: nothing to free */
    CHECK_INT(rbuf_ack(&rb, 1), -1);
    CHECK_INT(rbuf_commit(&rb, 1), -1); /* nothing reserved */
    CHECK_INT(rbuf_commit(&rb, 0), 0);
    CHECK_INT(rbuf_write(&rb, "", 0), 0);
    CHECK_INT(rbuf_storage(&rb), 0); /* an empty write allocates nothing */
    CHECK_INT(rbuf_trim(&rb), 0);
    CHECK_INT(rbuf_storage(&rb), 0);
    CHECK_INT(rbuf_end(&rb), 0);
    rbuf_free(&rb);
}

static void t_write_peek(void)
{
    struct rbuf rb;
    const unsigned char *p;
    size_t n;

    setup_pattern();
    rbuf_init(&rb, RBUF_MIN);
    CHECK_INT(rbuf_write(&rb, pat_, 10), 10);
    CHECK_INT(rbuf_acked(&rb), 0);
    CHECK_INT(rbuf_end(&rb), 10);
    CHECK_INT(rbuf_used(&rb), 10);
    CHECK_INT(rbuf_room(&rb), RBUF_MIN - 10);
    CHECK_INT(rbuf_storage(&rb), RBUF_STEP);
    CHECK_INT(rbuf_peek(&rb, 0, &p, &n), 0);
    CHECK_INT(n, 10);
    CHECK(memcmp(p, pat_, 10) == 0);
    CHECK_INT(rbuf_peek(&rb, 9, &p, &n), 0);
    CHECK_INT(n, 1);
    CHECK_INT(*p, pat_[9]);
    CHECK_INT(rbuf_peek(&rb, 10, &p, &n), -1); /* end itself holds nothing */
    CHECK_INT(rbuf_peek(&rb, UINT64_MAX, &p, &n), -1);
    CHECK_INT(rbuf_ack(&rb, 4), 0);
    CHECK_INT(rbuf_peek(&rb, 3, &p, &n), -1); /* below acked: gone */
    CHECK_INT(rbuf_peek(&rb, 4, &p, &n), 0);
    CHECK_INT(n, 6);
    CHECK(memcmp(p, pat_ + 4, 6) == 0);
    CHECK_INT(rbuf_write(&rb, pat_ + 10, 20), 20);
    CHECK(held_is_pattern(&rb, 4, 1));
    rbuf_free(&rb);
}

static void t_full_backpressure(void)
{
    struct rbuf rb;
    unsigned char *w;
    size_t n;

    setup_pattern();
    rbuf_init(&rb, RBUF_MIN);
    CHECK_INT(rbuf_write(&rb, pat_, RBUF_MIN + 100), RBUF_MIN); /* the rest stays with the caller */
    CHECK_INT(rbuf_room(&rb), 0);
    CHECK_INT(rbuf_used(&rb), RBUF_MIN);
    CHECK_INT(rbuf_write(&rb, pat_ + RBUF_MIN, 1), 0);
    CHECK_INT(rbuf_reserve(&rb, &w, &n), 0);
    CHECK_INT(n, 0);
    CHECK(w == NULL);
    CHECK_INT(rbuf_commit(&rb, 1), -1);
    CHECK_INT(rbuf_storage(&rb), RBUF_MIN); /* full at the capacity: no growth past it */
    CHECK_INT(rbuf_ack(&rb, 100), 0);
    CHECK_INT(rbuf_room(&rb), 100);
    CHECK_INT(rbuf_write(&rb, pat_ + RBUF_MIN, 200), 100);
    CHECK_INT(rbuf_end(&rb), RBUF_MIN + 100);
    CHECK(held_is_pattern(&rb, 100, 2));
    rbuf_free(&rb);
}

static void t_ack(void)
{
    struct rbuf rb;

    setup_pattern();
    rbuf_init(&rb, RBUF_MIN);
    rbuf_write(&rb, pat_, 1000);
    CHECK_INT(rbuf_ack(&rb, 1001), -1); /* beyond the end: a lying peer */
    CHECK_INT(rbuf_ack(&rb, UINT64_MAX), -1);
    CHECK_INT(rbuf_acked(&rb), 0); /* and nothing changed */
    CHECK_INT(rbuf_used(&rb), 1000);
    CHECK_INT(rbuf_ack(&rb, 300), 0);
    CHECK_INT(rbuf_acked(&rb), 300);
    CHECK_INT(rbuf_ack(&rb, 299), 1); /* below: stale, a no-op */
    CHECK_INT(rbuf_ack(&rb, 0), 1);
    CHECK_INT(rbuf_acked(&rb), 300);
    CHECK_INT(rbuf_ack(&rb, 300), 0); /* at acked: nothing new, not stale */
    CHECK_INT(rbuf_acked(&rb), 300);
    CHECK_INT(rbuf_used(&rb), 700);
    CHECK(held_is_pattern(&rb, 300, 1));
    CHECK_INT(rbuf_ack(&rb, 1000), 0); /* exactly at the end: everything gone */
    CHECK_INT(rbuf_used(&rb), 0);
    CHECK_INT(rbuf_room(&rb), RBUF_MIN);
    CHECK_INT(rbuf_storage(&rb), RBUF_STEP); /* an ack frees no storage (policy) */
    const unsigned char *p;
    size_t n;
    CHECK_INT(rbuf_peek(&rb, 999, &p, &n), -1);
    CHECK_INT(rbuf_peek(&rb, 1000, &p, &n), -1);
    rbuf_free(&rb);
}

/* The ring wraps inside a reservation and inside a peek: spans stop at the edge, the rest
 * follows, at most two spans for any range. */
static void t_wrap_spans(void)
{
    struct rbuf rb;
    unsigned char *w, *w2;
    size_t n, n2;
    const unsigned char *p;

    setup_pattern();
    rbuf_init(&rb, RBUF_MIN); /* one 64 KiB ring, never regrown */
    CHECK_INT(rbuf_write(&rb, pat_, 60000), 60000);
    CHECK_INT(rbuf_ack(&rb, 59000), 0);
    /* free space: 5536 bytes to the ring's edge, then 59000 from its start */
    CHECK_INT(rbuf_reserve(&rb, &w, &n), 0);
    CHECK_INT(n, RBUF_MIN - 60000);
    CHECK(w == rb.buf + 60000);
    CHECK_INT(rbuf_commit(&rb, n + 1), -1); /* more than lent */
    memcpy(w, pat_ + 60000, 1000);
    CHECK_INT(rbuf_commit(&rb, 1000), 0); /* a part of it: the rest stays lent, right after */
    CHECK_INT(rbuf_reserve(&rb, &w2, &n2), 0);
    CHECK(w2 == w + 1000);
    CHECK_INT(n2, n - 1000);
    memcpy(w2, pat_ + 61000, n2);
    CHECK_INT(rbuf_commit(&rb, n2), 0);
    CHECK_INT(rbuf_end(&rb), RBUF_MIN);
    CHECK_INT(rbuf_commit(&rb, 1), -1); /* used up */
    CHECK_INT(rbuf_reserve(&rb, &w, &n), 0);
    CHECK(w == rb.buf); /* wrapped to the start */
    CHECK_INT(n, 59000);
    memcpy(w, pat_ + RBUF_MIN, 5000);
    CHECK_INT(rbuf_commit(&rb, 5000), 0);
    CHECK_INT(rbuf_storage(&rb), RBUF_MIN);
    /* held: [59000, 70536), physically 59000..65535 then 0..4999 */
    CHECK_INT(rbuf_peek(&rb, 59000, &p, &n), 0);
    CHECK(p == rb.buf + 59000);
    CHECK_INT(n, RBUF_MIN - 59000);
    CHECK_INT(rbuf_peek(&rb, RBUF_MIN - 1, &p, &n), 0);
    CHECK_INT(n, 1);
    CHECK_INT(rbuf_peek(&rb, RBUF_MIN, &p, &n), 0);
    CHECK(p == rb.buf);
    CHECK_INT(n, 5000);
    for (uint64_t off = 59000; off < rbuf_end(&rb); off += 517)
        CHECK(held_is_pattern(&rb, off, 2));
    /* write() across the edge: two pieces, same bytes */
    CHECK_INT(rbuf_ack(&rb, RBUF_MIN + 1464), 0); /* 3536 held, 62000 free */
    CHECK_INT(rbuf_write(&rb, pat_ + RBUF_MIN + 5000, 62000), 62000);
    CHECK(held_is_pattern(&rb, RBUF_MIN + 1464, 2));
    CHECK_INT(rbuf_room(&rb), 0);
    /* a write drops the reservation: its span may have moved */
    CHECK_INT(rbuf_ack(&rb, rbuf_end(&rb) - 10), 0);
    CHECK_INT(rbuf_reserve(&rb, &w, &n), 0);
    CHECK(n > 0);
    CHECK_INT(rbuf_write(&rb, pat_ + rbuf_end(&rb), 1), 1);
    CHECK_INT(rbuf_commit(&rb, 1), -1);
    CHECK(held_is_pattern(&rb, rbuf_acked(&rb), 2));
    rbuf_free(&rb);
}

/* An ack between reserve and commit keeps the span: acks never move bytes. */
static void t_ack_during_reserve(void)
{
    struct rbuf rb;
    unsigned char *w;
    size_t n;

    setup_pattern();
    rbuf_init(&rb, RBUF_MIN);
    rbuf_write(&rb, pat_, 100);
    CHECK_INT(rbuf_reserve(&rb, &w, &n), 0);
    CHECK_INT(n, RBUF_STEP - 100);
    CHECK_INT(rbuf_ack(&rb, 100), 0);
    memcpy(w, pat_ + 100, n);
    /* a span committed in pieces without asking again: what is left stays lent */
    CHECK_INT(rbuf_commit(&rb, 10), 0);
    CHECK_INT(rbuf_commit(&rb, 20), 0);
    CHECK_INT(rbuf_commit(&rb, n - 30), 0);
    CHECK_INT(rbuf_end(&rb), RBUF_STEP);
    CHECK_INT(rbuf_commit(&rb, 1), -1);
    CHECK(held_is_pattern(&rb, 100, 1));
    rbuf_free(&rb);
}

/* What is allocated after N bytes written and none acknowledged: min(cap, 64 KiB * 2^k >= N). */
static void t_growth_policy(void)
{
    static const struct {
        size_t n, want;
    } w[] = {
        {1, 64 * KiB},          {64 * KiB, 64 * KiB},       {64 * KiB + 1, 128 * KiB},
        {100000, 128 * KiB},    {128 * KiB + 1, 256 * KiB}, {1 * MiB, 1 * MiB},
        {1 * MiB + 1, 2 * MiB}, {3 * MiB, 4 * MiB},         {4 * MiB, 4 * MiB},
    };
    struct rbuf rb;

    setup_pattern();
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
        /* in one write */
        rbuf_init(&rb, RBUF_DEFAULT);
        CHECK_INT(rbuf_write(&rb, pat_, w[i].n), w[i].n);
        CHECK_MSG(rbuf_storage(&rb) == w[i].want, "%zu bytes in one write: %zu allocated", w[i].n,
                  rbuf_storage(&rb));
        CHECK(held_is_pattern(&rb, 0, 1));
        rbuf_free(&rb);
        /* and as a reader fills it: reserve, commit in pieces of 1000 */
        rbuf_init(&rb, RBUF_DEFAULT);
        while (rbuf_end(&rb) < w[i].n) {
            unsigned char *p;
            size_t n;
            if (!CHECK_INT(rbuf_reserve(&rb, &p, &n), 0) || !CHECK(n > 0))
                break;
            if (n > 1000)
                n = 1000;
            if (n > w[i].n - rbuf_end(&rb))
                n = w[i].n - (size_t)rbuf_end(&rb);
            memcpy(p, pat_ + rbuf_end(&rb), n);
            rbuf_commit(&rb, n);
        }
        CHECK_MSG(rbuf_storage(&rb) == w[i].want, "%zu bytes reserved: %zu allocated", w[i].n,
                  rbuf_storage(&rb));
        CHECK(held_is_pattern(&rb, 0, 1));
        rbuf_free(&rb);
    }

    /* the last step is the capacity itself when that is no power of two */
    rbuf_init(&rb, 100000);
    CHECK_INT(rbuf_write(&rb, pat_, 70000), 70000);
    CHECK_INT(rbuf_storage(&rb), 100000);
    rbuf_free(&rb);
    rbuf_init(&rb, RBUF_MIN + 1);
    CHECK_INT(rbuf_write(&rb, pat_, RBUF_MIN), RBUF_MIN);
    CHECK_INT(rbuf_storage(&rb), RBUF_MIN);
    CHECK_INT(rbuf_write(&rb, pat_ + RBUF_MIN, 5), 1);
    CHECK_INT(rbuf_storage(&rb), RBUF_MIN + 1);
    CHECK(held_is_pattern(&rb, 0, 1));
    rbuf_free(&rb);

    /* the largest capacity allocates what is held, not the gigabyte */
    rbuf_init(&rb, RBUF_MAX);
    CHECK_INT(rbuf_write(&rb, pat_, 3 * MiB), 3 * MiB);
    CHECK_INT(rbuf_storage(&rb), 4 * MiB);
    rbuf_free(&rb);

    /* a ring the acks keep emptying wraps and stays at the first step */
    rbuf_init(&rb, RBUF_DEFAULT);
    for (int round = 0; round < 100; round++) {
        CHECK_INT(rbuf_write(&rb, pat_ + 40000, 40000), 40000);
        CHECK_INT(rbuf_ack(&rb, rbuf_end(&rb)), 0);
    }
    CHECK_INT(rbuf_storage(&rb), RBUF_STEP);
    rbuf_free(&rb);
}

/* Growth while the held bytes wrap in the old ring moves them all, in order. */
static void t_growth_moves_wrapped(void)
{
    struct rbuf rb;
    unsigned char *w;
    size_t n;

    setup_pattern();
    rbuf_init(&rb, RBUF_DEFAULT);
    rbuf_write(&rb, pat_, 50000);
    rbuf_ack(&rb, 40000);
    rbuf_write(&rb, pat_ + 50000, RBUF_STEP - 10000); /* full, wrapped: 40000..65535, 0..39999 */
    CHECK_INT(rbuf_storage(&rb), RBUF_STEP);
    CHECK_INT(rbuf_used(&rb), RBUF_STEP);
    CHECK(held_is_pattern(&rb, 40000, 2));
    CHECK_INT(rbuf_reserve(&rb, &w, &n), 0); /* full: the reserve grows it */
    CHECK_INT(rbuf_storage(&rb), 2 * RBUF_STEP);
    CHECK(n > 0);
    CHECK(held_is_pattern(&rb, 40000, 2));
    memcpy(w, pat_ + rbuf_end(&rb), n);
    rbuf_commit(&rb, n);
    CHECK(held_is_pattern(&rb, 40000, 2));
    /* a write needing several steps grows once, straight to the step that holds it all */
    CHECK_INT(rbuf_write(&rb, pat_ + rbuf_end(&rb), 1 * MiB), 1 * MiB);
    CHECK_INT(rbuf_storage(&rb), 2 * MiB);
    CHECK(held_is_pattern(&rb, 40000, 2));
    rbuf_free(&rb);
}

/* rbuf_trim: an idle session gives everything back; a busy one shrinks to what it holds. */
static void t_trim(void)
{
    struct rbuf rb;
    unsigned char *w;
    size_t n;

    setup_pattern();
    rbuf_init(&rb, RBUF_DEFAULT);
    rbuf_write(&rb, pat_, 3 * MiB);
    CHECK_INT(rbuf_storage(&rb), 4 * MiB);
    unsigned char *before = rb.buf;
    CHECK_INT(rbuf_trim(&rb), 0); /* 3 MiB held: 4 MiB is already the smallest step */
    CHECK_INT(rbuf_storage(&rb), 4 * MiB);
    CHECK(rb.buf == before); /* and nothing was moved for nothing */
    rbuf_ack(&rb, 3 * MiB - 100000);
    CHECK_INT(rbuf_trim(&rb), 0);
    CHECK_INT(rbuf_storage(&rb), 128 * KiB);
    CHECK(held_is_pattern(&rb, 3 * MiB - 100000, 2));
    rbuf_ack(&rb, 3 * MiB - 10);
    CHECK_INT(rbuf_trim(&rb), 0);
    CHECK_INT(rbuf_storage(&rb), RBUF_STEP);
    CHECK(held_is_pattern(&rb, 3 * MiB - 10, 2));
    CHECK_INT(rbuf_reserve(&rb, &w, &n), 0);
    CHECK_INT(rbuf_trim(&rb), 0);
    CHECK_INT(rbuf_commit(&rb, 1), -1); /* trim drops the reservation */
    rbuf_ack(&rb, 3 * MiB);
    CHECK_INT(rbuf_trim(&rb), 0);
    CHECK_INT(rbuf_storage(&rb), 0); /* idle: sizeof(struct rbuf), nothing else */
    CHECK(rb.buf == NULL);
    CHECK_INT(rbuf_end(&rb), 3 * MiB); /* the numbering goes on */
    CHECK_INT(rbuf_write(&rb, pat_ + 3 * MiB, 10), 10);
    CHECK_INT(rbuf_storage(&rb), RBUF_STEP);
    CHECK(held_is_pattern(&rb, 3 * MiB, 1));
    /* rbuf_free with bytes held: they are gone, the buffer is empty and usable */
    rbuf_free(&rb);
    CHECK_INT(rbuf_used(&rb), 0);
    CHECK_INT(rbuf_acked(&rb), 3 * MiB + 10);
    const unsigned char *p;
    CHECK_INT(rbuf_peek(&rb, 3 * MiB + 5, &p, &n), -1);
    CHECK_INT(rbuf_write(&rb, pat_ + 3 * MiB + 10, 10), 10);
    CHECK(held_is_pattern(&rb, 3 * MiB + 10, 1));
    rbuf_free(&rb);
}

/* The numbering ends at 2^64 - 1 (end itself must be representable): room shrinks to it, and
 * nothing overflows on the way, also where the ring's positions wrap with the offsets. */
static void t_offset_limit(void)
{
    struct rbuf rb;
    unsigned char *w, buf[5000];
    size_t n;
    const unsigned char *p;
    uint64_t s = 7;

    fz_fill(&s, buf, sizeof buf);
    rbuf_init_at(&rb, RBUF_MIN, UINT64_MAX - 1000);
    CHECK_INT(rbuf_room(&rb), 1000);
    CHECK_INT(rbuf_write(&rb, buf, 5000), 1000);
    CHECK(rbuf_end(&rb) == UINT64_MAX);
    CHECK_INT(rbuf_room(&rb), 0);
    CHECK_INT(rbuf_reserve(&rb, &w, &n), 0);
    CHECK_INT(n, 0);
    CHECK_INT(rbuf_peek(&rb, UINT64_MAX - 1, &p, &n), 0);
    CHECK_INT(n, 1);
    CHECK_INT(*p, buf[999]);
    CHECK_INT(rbuf_peek(&rb, UINT64_MAX, &p, &n), -1);
    CHECK_INT(rbuf_ack(&rb, UINT64_MAX), 0);
    CHECK_INT(rbuf_used(&rb), 0);
    CHECK_INT(rbuf_room(&rb), 0); /* acknowledged, and still nothing more to number */
    CHECK_INT(rbuf_write(&rb, buf, 1), 0);
    rbuf_free(&rb);

    /* reserve near the limit: lent no more than the offsets allow */
    rbuf_init_at(&rb, RBUF_MIN, UINT64_MAX - 10);
    CHECK_INT(rbuf_reserve(&rb, &w, &n), 0);
    CHECK_INT(n, 10);
    CHECK_INT(rbuf_commit(&rb, 11), -1);
    CHECK_INT(rbuf_commit(&rb, 10), 0);
    CHECK(rbuf_end(&rb) == UINT64_MAX);
    rbuf_free(&rb);
}

/* Memory running out at each place the buffer allocates: the call fails, nothing changes, and
 * the same call succeeds once memory is back. */
static void t_enomem(void)
{
    struct rbuf rb;
    unsigned char *w;
    size_t n;

    setup_pattern();
    rbuf_init(&rb, RBUF_DEFAULT);
    fail_malloc_ = 1;
    CHECK_INT(rbuf_write(&rb, pat_, 10), -1); /* the first allocation */
    CHECK_INT(fail_malloc_, 0);               /* (the wrapper was reached) */
    CHECK_INT(rbuf_end(&rb), 0);
    CHECK_INT(rbuf_storage(&rb), 0);
    fail_malloc_ = 1;
    CHECK_INT(rbuf_reserve(&rb, &w, &n), -1);
    CHECK(w == NULL);
    CHECK_INT(n, 0);
    CHECK_INT(rbuf_commit(&rb, 1), -1);
    CHECK_INT(rbuf_write(&rb, pat_, 10), 10);

    /* growth of a full, wrapped ring */
    rbuf_ack(&rb, 10);
    rbuf_write(&rb, pat_ + 10, 50000);
    rbuf_ack(&rb, 40000);
    CHECK_INT(rbuf_write(&rb, pat_ + 50010, RBUF_STEP - 10010), RBUF_STEP - 10010);
    CHECK_INT(rbuf_used(&rb), RBUF_STEP);
    fail_malloc_ = 1;
    CHECK_INT(rbuf_write(&rb, pat_ + rbuf_end(&rb), 1), -1);
    fail_malloc_ = 1;
    CHECK_INT(rbuf_reserve(&rb, &w, &n), -1);
    CHECK_INT(rbuf_storage(&rb), RBUF_STEP);
    CHECK_INT(rbuf_used(&rb), RBUF_STEP);
    CHECK(held_is_pattern(&rb, 40000, 2));
    CHECK_INT(rbuf_write(&rb, pat_ + rbuf_end(&rb), 1 * MiB), 1 * MiB);
    CHECK_INT(rbuf_storage(&rb), 2 * MiB);
    CHECK(held_is_pattern(&rb, 40000, 2));

    /* a trim that would move the bytes to a smaller ring */
    rbuf_ack(&rb, rbuf_end(&rb) - 1000);
    fail_malloc_ = 1;
    CHECK_INT(rbuf_trim(&rb), -1);
    CHECK_INT(rbuf_storage(&rb), 2 * MiB);
    CHECK(held_is_pattern(&rb, rbuf_acked(&rb), 2));
    CHECK_INT(rbuf_trim(&rb), 0);
    CHECK_INT(rbuf_storage(&rb), RBUF_STEP);
    CHECK(held_is_pattern(&rb, rbuf_acked(&rb), 2));
    fail_malloc_ = 0;
    rbuf_free(&rb);
}

/* The user's plaintext does not outlive the ring it was in: every ring is wiped when it is freed
 * (the bytes moved to a bigger or smaller one, trimmed away, or the buffer freed). */
static void t_wipe(void)
{
    struct rbuf rb;

    setup_pattern();
    rbuf_init(&rb, RBUF_DEFAULT);
    rbuf_write(&rb, pat_, RBUF_STEP); /* full: every byte of the ring is the user's */
    watch(&rb);
    CHECK_INT(rbuf_write(&rb, pat_ + RBUF_STEP, 10), 10); /* moves to 128 KiB */
    CHECK_INT(watch_freed_, 1);
    CHECK_INT(watch_dirty_, 0);
    CHECK(held_is_pattern(&rb, 0, 1));
    rbuf_ack(&rb, RBUF_STEP);
    watch(&rb);
    CHECK_INT(rbuf_trim(&rb), 0); /* 10 bytes held: back to 64 KiB */
    CHECK_INT(watch_freed_, 1);
    CHECK_INT(watch_dirty_, 0);
    CHECK(held_is_pattern(&rb, RBUF_STEP, 1));
    watch(&rb);
    rbuf_free(&rb); /* with bytes held */
    CHECK_INT(watch_freed_, 1);
    CHECK_INT(watch_dirty_, 0);
    rbuf_write(&rb, pat_, 1000);
    rbuf_ack(&rb, rbuf_end(&rb));
    watch(&rb);
    CHECK_INT(rbuf_trim(&rb), 0); /* empty: all of it goes */
    CHECK_INT(watch_freed_, 1);
    CHECK_INT(watch_dirty_, 0);
    watch_ = NULL;
}

struct cfg {
    size_t cap;
    uint64_t start;
    uint64_t seed;
    int ops;
};

/* One long random run against the model: every result, query and lent byte compared. Returns
 * the bytes written. */
static uint64_t random_run(const struct cfg *c)
{
    static unsigned char data[256 * KiB];
    struct rbuf rb;
    struct fz_model m;
    uint64_t s = c->seed, written = 0;
    int bad = 0;

    rbuf_init_at(&rb, c->cap, c->start);
    fz_model_init(&m, c->cap, c->start);
    for (int i = 0; i < c->ops && !bad; i++) {
        uint64_t r = fz_rand(&s), used = fz_model_used(&m);
        unsigned what = (unsigned)(r % 100);
        /* lengths mostly below a quarter of the capacity, sometimes past all of it */
        size_t len = (size_t)((r >> 8) % (r & 0x10000 ? c->cap + c->cap / 2 : c->cap / 4 + 1));

        if (len > sizeof data)
            len = sizeof data;
        if (what < 30) {
            fz_fill(&s, data, len);
            ssize_t got = rbuf_write(&rb, data, len);
            size_t want = fz_model_write(&m, data, len);
            bad |= !CHECK_INT(got, want);
            written += want;
        } else if (what < 55) {
            unsigned char *w;
            size_t n, k;
            bad |= !CHECK_INT(rbuf_reserve(&rb, &w, &n), 0);
            fz_model_reserve(&m, n);
            bad |= !CHECK(n <= fz_model_room(&m));
            bad |= !CHECK(fz_model_room(&m) == 0 || n > 0);
            bad |= !CHECK(n == 0 || (w >= rb.buf && w + n <= rb.buf + rb.size));
            k = (r >> 40) % 4 == 0 ? n : (n ? (size_t)((r >> 20) % (n + 1)) : 0);
            fz_fill(&s, data, k < sizeof data ? k : sizeof data);
            if (k > sizeof data)
                k = sizeof data;
            if (k) /* w is NULL when nothing was lent */
                memcpy(w, data, k);
            bad |= !CHECK_INT(rbuf_commit(&rb, k), 0);
            fz_model_append(&m, data, k);
            m.reserved -= k;
            written += k;
            if ((r >> 44) % 8 == 0) /* more than is left: refused */
                bad |= !CHECK_INT(rbuf_commit(&rb, m.reserved + 1), -1);
            if ((r >> 47) % 4 == 0 && m.reserved) { /* the rest, without asking again */
                k = m.reserved < sizeof data ? m.reserved : sizeof data;
                fz_fill(&s, data, k);
                memcpy(w + (n - m.reserved), data, k);
                bad |= !CHECK_INT(rbuf_commit(&rb, k), 0);
                fz_model_append(&m, data, k);
                m.reserved -= k;
                written += k;
            }
        } else if (what < 80) {
            /* ack: mostly forwards into the held bytes, sometimes at the end, below acked or
             * beyond the end */
            uint64_t off;
            switch ((r >> 40) % 8) {
            case 0:
                off = m.end;
                break;
            case 1:
                off = m.end + 1 + (r >> 48) % 70000;
                if (off < m.end) /* past 2^64 */
                    off = UINT64_MAX;
                break;
            case 2:
                off = m.acked - (r >> 48) % (m.acked - c->start + 1);
                break;
            default:
                off = m.acked + (used ? (r >> 20) % (used + 1) : 0);
            }
            bad |= !CHECK_INT(rbuf_ack(&rb, off), fz_model_ack(&m, off));
        } else if (what < 97) {
            /* peek inside (compare the span) or outside */
            const unsigned char *p;
            size_t n;
            uint64_t off;
            int inside = (r >> 40) % 5 != 0 && used;
            if (inside)
                off = m.acked + (r >> 20) % used;
            else if ((r >> 43) & 1)
                off = m.end + (r >> 48) % 1000;
            else
                off = m.acked - 1 - (r >> 48) % 1000;
            if (off >= m.acked && off < m.end)
                inside = 1; /* an "outside" offset that happened to land inside */
            if (!inside) {
                bad |= !CHECK_INT(rbuf_peek(&rb, off, &p, &n), -1);
            } else {
                bad |= !CHECK_INT(rbuf_peek(&rb, off, &p, &n), 0);
                bad |= !CHECK(n > 0 && n <= m.end - off);
                bad |= !CHECK_MSG(memcmp(p, &m.a[off - m.base], n) == 0,
                                  "seed %" PRIu64 " op %d: bytes from %" PRIu64 " differ", c->seed,
                                  i, off);
            }
        } else if (what < 99) {
            bad |= !CHECK_INT(rbuf_trim(&rb), 0);
            fz_model_trim(&m);
        } else {
            rbuf_free(&rb);
            fz_model_drop(&m);
        }
        bad |= !CHECK_INT(rbuf_acked(&rb), m.acked);
        bad |= !CHECK_INT(rbuf_end(&rb), m.end);
        bad |= !CHECK_INT(rbuf_used(&rb), fz_model_used(&m));
        bad |= !CHECK_INT(rbuf_room(&rb), fz_model_room(&m));
        bad |= !CHECK_MSG(rbuf_storage(&rb) == m.storage,
                          "seed %" PRIu64 " op %d: %zu allocated, the policy says %zu", c->seed, i,
                          rbuf_storage(&rb), m.storage);
        bad |= !CHECK(rbuf_storage(&rb) <= c->cap && rbuf_storage(&rb) >= fz_model_used(&m));
    }
    /* and at the end the whole content, through spans */
    for (uint64_t off = m.acked; off < m.end && !bad;) {
        const unsigned char *p;
        size_t n;
        bad |= !CHECK_INT(rbuf_peek(&rb, off, &p, &n), 0);
        bad |= !CHECK(memcmp(p, &m.a[off - m.base], n) == 0);
        off += n;
    }
    rbuf_free(&rb);
    fz_model_free(&m);
    return written;
}

static void t_random_model(void)
{
    static const struct cfg cfgs[] = {
        {RBUF_MIN, 0, 1, 40000},
        {RBUF_MIN + 13, 0, 2, 40000},    /* a ring whose size is no power of two */
        {100003, 0, 3, 30000},           /* growth 64 KiB -> the capacity */
        {3 * RBUF_MIN + 7, 0, 4, 30000}, /* 64 KiB -> 128 KiB -> the capacity */
        {RBUF_MIN + 13, UINT64_MAX - 100 * MiB, 5, 40000}, /* offsets up to the limit */
        {RBUF_MIN, (uint64_t)1 << 63, 6, 20000},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        uint64_t w = random_run(&cfgs[i]);
        /* thousands of trips round the ring */
        if (i < 2)
            CHECK_MSG(w / cfgs[i].cap >= 1000, "cap %zu: only %" PRIu64 " bytes written",
                      cfgs[i].cap, w);
        printf("  cap %zu seed %" PRIu64 ": %" PRIu64 " bytes, %" PRIu64 " times the capacity\n",
               cfgs[i].cap, cfgs[i].seed, w, w / cfgs[i].cap);
    }
}

CHECK_MAIN(TEST(t_init_limits), TEST(t_empty), TEST(t_write_peek), TEST(t_full_backpressure),
           TEST(t_ack), TEST(t_wrap_spans), TEST(t_ack_during_reserve), TEST(t_growth_policy),
           TEST(t_growth_moves_wrapped), TEST(t_trim), TEST(t_offset_limit), TEST(t_enomem),
           TEST(t_wipe), TEST(t_random_model))
