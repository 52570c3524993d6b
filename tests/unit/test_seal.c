/* The encrypted record stream: round trips of many sizes fed in arbitrary pieces, the final
 * record, and every kind of damage — a flipped byte anywhere, a cut stream, a dropped or
 * repeated record, bytes after the end, the wrong key — refused without releasing any byte of
 * the damaged record. */
#include "check.h"
#include "common/seal.h"

#include <stdlib.h>

struct sealed {
    unsigned char *buf;
    size_t len;
};

static unsigned char key_a[SEAL_KEYBYTES], key_b[SEAL_KEYBYTES];

static void fill(unsigned char *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (unsigned char)(seed >> 16);
    }
}

/* The whole stream for data: header, records written in pieces of write_step, the final. */
static struct sealed seal_all(const unsigned char *data, size_t n, size_t write_step, bool final)
{
    struct seal_tx tx;
    struct sealed s;
    size_t cap = SEAL_HEADER + n + (n / SEAL_CHUNK + n / write_step + 4) * SEAL_OVERHEAD;
    s.buf = malloc(cap);
    seal_tx_init(&tx, key_a, s.buf);
    s.len = SEAL_HEADER;
    for (size_t off = 0; off < n; off += write_step) {
        size_t k = n - off < write_step ? n - off : write_step;
        s.len += seal_tx_data(&tx, data + off, k, s.buf + s.len);
    }
    if (final)
        s.len += seal_tx_final(&tx, s.buf + s.len);
    return s;
}

struct opened {
    unsigned char *out;
    size_t len;
    enum seal_status last; /* the status that ended it: NEED at the end, FINAL, or an error */
    bool final;
};

/* Feeds the stream to a receiver in pieces of pseudo-random sizes (1..max_piece), as reads from
 * a socket would come, keeping unopened bytes like the pump does. */
static struct opened open_all(const unsigned char *key, const struct sealed *s, size_t max_piece,
                              uint32_t seed)
{
    struct seal_rx rx;
    struct opened o = {malloc(s->len + 1), 0, SEAL_NEED, false};
    unsigned char *acc = malloc(s->len + 1), plain[SEAL_CHUNK];
    size_t acc_len = 0, fed = 0;
    seal_rx_init(&rx, key);
    while (fed < s->len) {
        size_t piece;
        seed = seed * 1103515245u + 12345u;
        piece = 1 + (seed >> 8) % max_piece;
        if (piece > s->len - fed)
            piece = s->len - fed;
        memcpy(acc + acc_len, s->buf + fed, piece);
        acc_len += piece;
        fed += piece;
        for (;;) {
            size_t used, plen;
            enum seal_status st = seal_rx_next(&rx, acc, acc_len, &used, plain, &plen);
            memmove(acc, acc + used, acc_len - used);
            acc_len -= used;
            o.last = st;
            if (st == SEAL_DATA || st == SEAL_FINAL) {
                memcpy(o.out + o.len, plain, plen);
                o.len += plen;
                o.final = o.final || st == SEAL_FINAL;
                continue;
            }
            if (st != SEAL_NEED)
                goto out;
            break;
        }
    }
out:
    free(acc);
    return o;
}

static void t_roundtrip(void)
{
    const size_t sizes[] = {0, 1, 100, SEAL_CHUNK - 1, SEAL_CHUNK, SEAL_CHUNK + 1, 200000};
    const size_t steps[] = {1000, SEAL_CHUNK, 128 * 1024};
    const size_t pieces[] = {1, 7, 4096, 70000};
    unsigned char *data = malloc(200000);
    fill(data, 200000, 1);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (size_t j = 0; j < sizeof steps / sizeof steps[0]; j++)
            for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
                if (pieces[k] == 1 && sizes[i] > 20000)
                    continue; /* byte by byte: the small sizes say enough */
                struct sealed s = seal_all(data, sizes[i], steps[j], true);
                struct opened o = open_all(key_a, &s, pieces[k], (uint32_t)(i * 31 + k));
                CHECK_MSG(o.final && o.len == sizes[i] && memcmp(o.out, data, o.len) == 0,
                          "size %zu step %zu pieces %zu: final %d, %zu bytes", sizes[i], steps[j],
                          pieces[k], o.final, o.len);
                CHECK_INT(o.last, SEAL_NEED); /* everything consumed after the final */
                free(s.buf);
                free(o.out);
            }
    free(data);
}

static void t_record_sizes(void)
{
    CHECK_INT(seal_tx_size(0), 0);
    CHECK_INT(seal_tx_size(1), 1 + SEAL_OVERHEAD);
    CHECK_INT(seal_tx_size(SEAL_CHUNK), SEAL_CHUNK + SEAL_OVERHEAD);
    CHECK_INT(seal_tx_size(SEAL_CHUNK + 1), SEAL_CHUNK + 1 + 2 * SEAL_OVERHEAD);
    unsigned char data[SEAL_CHUNK + 1];
    fill(data, sizeof data, 2);
    struct sealed s = seal_all(data, sizeof data, sizeof data, false);
    CHECK_INT(s.len, SEAL_HEADER + seal_tx_size(sizeof data));
    /* the first record's length field: big-endian ciphertext length */
    CHECK_INT(s.buf[SEAL_HEADER] << 8 | s.buf[SEAL_HEADER + 1], SEAL_CHUNK + SEAL_ABYTES);
    free(s.buf);
}

/* Flipping any single byte of the stream (header, length, ciphertext, tag, final record) must
 * end it with an error, and what was released before is a prefix of the data, never a byte of
 * the damaged record. */
static void t_tamper(void)
{
    enum { N = 3 * SEAL_CHUNK + 500 };
    unsigned char *data = malloc(N);
    fill(data, N, 3);
    struct sealed s = seal_all(data, N, N, true);
    size_t errors = 0;
    for (size_t pos = 0; pos < s.len; pos += (pos < 64 || pos > s.len - 64) ? 1 : 997) {
        for (int bit = 0; bit < 8; bit += 7) {
            s.buf[pos] ^= (unsigned char)(1 << bit);
            struct opened o = open_all(key_a, &s, 5000, (uint32_t)pos);
            s.buf[pos] ^= (unsigned char)(1 << bit);
            bool failed = o.last == SEAL_BAD_AUTH || o.last == SEAL_BAD_LENGTH;
            /* a damaged length may also just leave the receiver waiting: never a clean end */
            CHECK_MSG(failed || (!o.final && o.last == SEAL_NEED),
                      "flip at %zu bit %d: status %d final %d", pos, bit, (int)o.last, o.final);
            CHECK_MSG(!o.final, "flip at %zu: the stream still ended cleanly", pos);
            CHECK_MSG(o.len <= N && memcmp(o.out, data, o.len) == 0 &&
                          (o.len % SEAL_CHUNK == 0 || o.len == N),
                      "flip at %zu: %zu bytes released, not a prefix of whole records", pos, o.len);
            errors += failed;
            free(o.out);
        }
    }
    CHECK(errors > 0);
    free(s.buf);
    free(data);
}

static void t_truncated(void)
{
    unsigned char data[40000];
    fill(data, sizeof data, 4);
    struct sealed s = seal_all(data, sizeof data, sizeof data, true);
    /* cut anywhere before the end of the final record: never a clean end */
    for (size_t cut = 0; cut < s.len; cut += cut < 100 ? 1 : 1001) {
        struct sealed t = {s.buf, cut};
        struct opened o = open_all(key_a, &t, 3000, (uint32_t)cut);
        CHECK_MSG(!o.final && o.last == SEAL_NEED, "cut at %zu: final %d status %d", cut, o.final,
                  (int)o.last);
        CHECK(memcmp(o.out, data, o.len) == 0);
        free(o.out);
    }
    /* a stream sent without a final record at all */
    struct sealed nf = seal_all(data, sizeof data, sizeof data, false);
    struct opened o = open_all(key_a, &nf, 3000, 9);
    CHECK(!o.final && o.len == sizeof data);
    free(o.out);
    free(nf.buf);
    free(s.buf);
}

static void t_reorder_and_extra(void)
{
    unsigned char data[3 * 100];
    fill(data, sizeof data, 5);
    /* three records of 100 bytes: each is SEAL_OVERHEAD + 100 long */
    struct sealed s = seal_all(data, sizeof data, 100, true);
    size_t rec = 100 + SEAL_OVERHEAD;
    struct sealed t = {malloc(s.len + rec + 64), 0};
    struct opened o;

    /* the second record dropped */
    memcpy(t.buf, s.buf, SEAL_HEADER + rec);
    memcpy(t.buf + SEAL_HEADER + rec, s.buf + SEAL_HEADER + 2 * rec, s.len - SEAL_HEADER - 2 * rec);
    t.len = s.len - rec;
    o = open_all(key_a, &t, 1000, 1);
    CHECK_INT(o.last, SEAL_BAD_AUTH);
    CHECK_INT(o.len, 100);
    free(o.out);

    /* the first record repeated */
    memcpy(t.buf, s.buf, SEAL_HEADER + rec);
    memcpy(t.buf + SEAL_HEADER + rec, s.buf + SEAL_HEADER, s.len - SEAL_HEADER);
    t.len = s.len + rec;
    o = open_all(key_a, &t, 1000, 2);
    CHECK_INT(o.last, SEAL_BAD_AUTH);
    CHECK_INT(o.len, 100);
    free(o.out);

    /* bytes after the final record */
    memcpy(t.buf, s.buf, s.len);
    memcpy(t.buf + s.len, "junk", 4);
    t.len = s.len + 4;
    o = open_all(key_a, &t, 1000, 3);
    CHECK_INT(o.last, SEAL_AFTER_FINAL);
    CHECK(o.final && o.len == sizeof data);
    free(o.out);

    /* the other key */
    o = open_all(key_b, &s, 1000, 4);
    CHECK_INT(o.last, SEAL_BAD_AUTH);
    CHECK_INT(o.len, 0);
    free(o.out);

    /* a length field beyond the limit */
    memcpy(t.buf, s.buf, s.len);
    t.buf[SEAL_HEADER] = 0xff;
    t.len = s.len;
    o = open_all(key_a, &t, 1000, 5);
    CHECK_INT(o.last, SEAL_BAD_LENGTH);
    free(o.out);
    CHECK(strstr(seal_strerror(SEAL_BAD_AUTH), "authentication failed") != NULL);

    free(t.buf);
    free(s.buf);
}

static void t_setup(void)
{
    if (sodium_init() < 0)
        exit(1);
    randombytes_buf(key_a, sizeof key_a);
    randombytes_buf(key_b, sizeof key_b);
}

CHECK_MAIN(TEST(t_setup), TEST(t_roundtrip), TEST(t_record_sizes), TEST(t_tamper),
           TEST(t_truncated), TEST(t_reorder_and_extra))
