/* The encrypted record stream: round trips of many sizes fed in arbitrary pieces, the final
 * record, and every kind of damage — a flipped byte anywhere, a cut stream, a dropped or
 * repeated record, bytes after the end, the wrong key — refused without releasing any byte of
 * the damaged record. Control records (TAG_PUSH, issue 15): SEAL_CTL from a session receiver,
 * data from a legacy one as before, every other tag refused by a session receiver, the limits of
 * seal_tx_ctl. */
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

/* One record with any tag, as a sender other than seal.c could make it. */
static size_t raw_record(struct seal_tx *t, const unsigned char *p, size_t n, unsigned char tag,
                         unsigned char *out)
{
    unsigned long long clen = 0;
    crypto_secretstream_xchacha20poly1305_push(&t->st, out + 2, &clen, p, n, NULL, 0, tag);
    out[0] = (unsigned char)(clen >> 8);
    out[1] = (unsigned char)clen;
    return (size_t)clen + 2;
}

struct rec {
    enum seal_status st;
    size_t len;
    unsigned char plain[SEAL_CHUNK];
};

/* Opens buf record by record, fed in pieces of max_piece bytes; up to max records, returns how
 * many statuses other than SEAL_NEED it saw (it stops after the first error). */
static size_t open_records(struct seal_rx *rx, const unsigned char *buf, size_t len,
                           size_t max_piece, struct rec *recs, size_t max)
{
    unsigned char *acc = malloc(len + 1);
    size_t acc_len = 0, fed = 0, n = 0;
    while (fed < len && n < max) {
        size_t piece = len - fed < max_piece ? len - fed : max_piece;
        memcpy(acc + acc_len, buf + fed, piece);
        acc_len += piece;
        fed += piece;
        while (n < max) {
            size_t used, plen = 12345;
            memset(recs[n].plain, 0xaa, sizeof recs[n].plain);
            enum seal_status st = seal_rx_next(rx, acc, acc_len, &used, recs[n].plain, &plen);
            memmove(acc, acc + used, acc_len - used);
            acc_len -= used;
            if (st == SEAL_NEED)
                break;
            recs[n].st = st;
            recs[n].len = plen;
            n++;
            if (st != SEAL_DATA && st != SEAL_CTL && st != SEAL_FINAL) {
                free(acc);
                return n;
            }
        }
    }
    free(acc);
    return n;
}

/* data, control, data, control of a whole chunk, final: a session receiver sees each kind, a
 * legacy receiver (today's pump, chan, chat) sees data only, the same bytes in the same order. */
static void t_ctl_records(void)
{
    static unsigned char buf[SEAL_HEADER + 4 * SEAL_REC_MAX + SEAL_OVERHEAD];
    static struct rec recs[8];
    unsigned char d1[100], ctl[9] = {0x01, 0, 0, 0, 0, 0, 0, 0x01, 0x2c};
    static unsigned char d2[SEAL_CHUNK], c2[SEAL_CHUNK];
    struct seal_tx tx;
    struct seal_rx rx;
    size_t len = SEAL_HEADER, k;
    fill(d1, sizeof d1, 11);
    fill(d2, sizeof d2, 12);
    fill(c2, sizeof c2, 13);
    seal_tx_init(&tx, key_a, buf);
    len += seal_tx_data(&tx, d1, sizeof d1, buf + len);
    k = seal_tx_ctl(&tx, ctl, sizeof ctl, buf + len);
    /* on the wire a control record is a record like any other: length field n + ABYTES */
    CHECK_INT(k, sizeof ctl + SEAL_OVERHEAD);
    CHECK_INT(buf[len] << 8 | buf[len + 1], sizeof ctl + SEAL_ABYTES);
    len += k;
    len += seal_tx_data(&tx, d2, sizeof d2, buf + len);
    k = seal_tx_ctl(&tx, c2, sizeof c2, buf + len);
    CHECK_INT(k, SEAL_REC_MAX);
    len += k;
    len += seal_tx_final(&tx, buf + len);

    const size_t pieces[] = {1, 13, 4096, sizeof buf};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        seal_rx_init_session(&rx, key_a);
        if (!CHECK_INT(open_records(&rx, buf, len, pieces[i], recs, 8), 5))
            continue;
        CHECK_INT(recs[0].st, SEAL_DATA);
        CHECK(recs[0].len == sizeof d1 && memcmp(recs[0].plain, d1, sizeof d1) == 0);
        CHECK_INT(recs[1].st, SEAL_CTL);
        CHECK(recs[1].len == sizeof ctl && memcmp(recs[1].plain, ctl, sizeof ctl) == 0);
        CHECK_INT(recs[2].st, SEAL_DATA);
        CHECK(recs[2].len == sizeof d2 && memcmp(recs[2].plain, d2, sizeof d2) == 0);
        CHECK_INT(recs[3].st, SEAL_CTL);
        CHECK(recs[3].len == sizeof c2 && memcmp(recs[3].plain, c2, sizeof c2) == 0);
        CHECK_INT(recs[4].st, SEAL_FINAL);
        CHECK_INT(recs[4].len, 0);

        /* legacy: today's behaviour, every record but the final is data */
        seal_rx_init(&rx, key_a);
        if (!CHECK_INT(open_records(&rx, buf, len, pieces[i], recs, 8), 5))
            continue;
        for (int r = 0; r < 4; r++)
            CHECK_INT(recs[r].st, SEAL_DATA);
        CHECK(recs[1].len == sizeof ctl && memcmp(recs[1].plain, ctl, sizeof ctl) == 0);
        CHECK(recs[3].len == sizeof c2 && memcmp(recs[3].plain, c2, sizeof c2) == 0);
        CHECK_INT(recs[4].st, SEAL_FINAL);
    }

    /* a damaged control record fails like a data record, and releases nothing */
    size_t at = SEAL_HEADER + sizeof d1 + SEAL_OVERHEAD + 2 + 3;
    buf[at] ^= 0x10;
    seal_rx_init_session(&rx, key_a);
    CHECK_INT(open_records(&rx, buf, len, 4096, recs, 8), 2);
    CHECK_INT(recs[0].st, SEAL_DATA);
    CHECK_INT(recs[1].st, SEAL_BAD_AUTH);
    CHECK_INT(recs[1].len, 0);
    buf[at] ^= 0x10;
}

/* seal_tx_ctl seals one record of 1..SEAL_CHUNK bytes; outside that it seals nothing and leaves
 * the stream as it was (the next record still opens). */
static void t_ctl_limits(void)
{
    static unsigned char buf[SEAL_HEADER + 3 * SEAL_REC_MAX], big[SEAL_CHUNK + 1];
    static struct rec recs[4];
    unsigned char one = 0x42;
    struct seal_tx tx;
    struct seal_rx rx;
    size_t len = SEAL_HEADER;
    seal_tx_init(&tx, key_a, buf);
    memset(buf + len, 0x5a, 64);
    CHECK_INT(seal_tx_ctl(&tx, &one, 0, buf + len), 0);
    CHECK_INT(seal_tx_ctl(&tx, big, sizeof big, buf + len), 0);
    CHECK_INT(buf[len], 0x5a); /* nothing written */
    len += seal_tx_ctl(&tx, &one, 1, buf + len);
    CHECK_INT(len, SEAL_HEADER + 1 + SEAL_OVERHEAD);
    len += seal_tx_data(&tx, &one, 1, buf + len);
    seal_rx_init_session(&rx, key_a);
    CHECK_INT(open_records(&rx, buf, len, 7, recs, 4), 2);
    CHECK_INT(recs[0].st, SEAL_CTL);
    CHECK(recs[0].len == 1 && recs[0].plain[0] == 0x42);
    CHECK_INT(recs[1].st, SEAL_DATA);
    CHECK(recs[1].len == 1 && recs[1].plain[0] == 0x42);
}

/* Every tag a session stream does not carry (TAG_REKEY, combinations, unknown bytes) is refused
 * with SEAL_BAD_TAG, authentic or not, without releasing its bytes; a legacy stream keeps
 * taking them for data, as today (and goes on after a TAG_REKEY: libsodium rekeys both ends). */
static void t_ctl_tags(void)
{
    static unsigned char buf[SEAL_HEADER + 4 * (SEAL_OVERHEAD + 32)];
    static struct rec recs[4];
    const unsigned char tags[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x80, 0xfe, 0xff};
    unsigned char p[32];
    fill(p, sizeof p, 14);
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        struct seal_tx tx;
        struct seal_rx rx;
        size_t len = SEAL_HEADER;
        seal_tx_init(&tx, key_a, buf);
        len += raw_record(&tx, p, sizeof p, tags[i], buf + len);
        len += seal_tx_data(&tx, p, 5, buf + len);

        seal_rx_init_session(&rx, key_a);
        size_t n = open_records(&rx, buf, len, 9, recs, 4);
        switch (tags[i]) {
        case 0x00:
        case 0x01:
            CHECK_INT(n, 2);
            CHECK_INT(recs[0].st, tags[i] ? SEAL_CTL : SEAL_DATA);
            CHECK(recs[0].len == sizeof p && memcmp(recs[0].plain, p, sizeof p) == 0);
            CHECK_INT(recs[1].st, SEAL_DATA);
            break;
        case 0x03:
            /* the final, then the data record is a byte after it */
            CHECK_INT(n, 2);
            CHECK_INT(recs[0].st, SEAL_FINAL);
            CHECK_INT(recs[1].st, SEAL_AFTER_FINAL);
            break;
        default:
            CHECK_MSG(n == 1 && recs[0].st == SEAL_BAD_TAG && recs[0].len == 0,
                      "tag 0x%02x: %zu records, status %d", tags[i], n, (int)recs[0].st);
            /* the buffer was wiped: nothing of the record left in it */
            CHECK(memcmp(recs[0].plain, p, 4) != 0);
        }

        seal_rx_init(&rx, key_a);
        n = open_records(&rx, buf, len, 9, recs, 4);
        if (tags[i] == 0x03) {
            CHECK_INT(recs[0].st, SEAL_FINAL);
            continue;
        }
        CHECK_MSG(n == 2 && recs[0].st == SEAL_DATA && recs[1].st == SEAL_DATA,
                  "legacy, tag 0x%02x: %zu records, status %d", tags[i], n, (int)recs[0].st);
        CHECK(recs[0].len == sizeof p && memcmp(recs[0].plain, p, sizeof p) == 0);
        CHECK(recs[1].len == 5 && memcmp(recs[1].plain, p, 5) == 0);
    }
    CHECK(strstr(seal_strerror(SEAL_BAD_TAG), "protocol error") != NULL);
}

static void t_setup(void)
{
    if (sodium_init() < 0)
        exit(1);
    randombytes_buf(key_a, sizeof key_a);
    randombytes_buf(key_b, sizeof key_b);
}

CHECK_MAIN(TEST(t_setup), TEST(t_roundtrip), TEST(t_record_sizes), TEST(t_tamper),
           TEST(t_truncated), TEST(t_reorder_and_extra), TEST(t_ctl_records), TEST(t_ctl_limits),
           TEST(t_ctl_tags))
