/* libFuzzer harness for the control records of a resumable session (common/sframe.c) and the
 * record kinds of common/seal.c (issue 15; nothing uses either yet). The input is a stream of
 * records, each `tag(1) len(1) plaintext(len)` (the last one cut where the input ends):
 *   - every plaintext goes into sf_decode, whose verdict and fields must match a model written
 *     here from the layout (docs/design/resume.md 4.3); what decodes must re-encode to the same
 *     bytes, and what encodes must decode to itself;
 *   - the records are sealed with their tag (TAG_MESSAGE through seal_tx_data, TAG_PUSH through
 *     seal_tx_ctl, any other byte by hand) into one stream, and opened twice, in pieces: by a
 *     session receiver, which must report DATA / CTL / FINAL / BAD_TAG by the tag and stop at the
 *     first refusal, and by a legacy receiver, which must take every tag but TAG_FINAL for data,
 *     as today. Every plaintext released must be the record's, every control record must decode
 *     as its plaintext did directly.
 * Seeds: fuzz_sframe_regress --write-seeds fuzz/corpus/sframe (fuzz_write_seeds below). */
#include "common/seal.h"
#include "common/sframe.h"
#include "fuzz/fuzz.h"

#include <string.h>

#define FZ_RECS 2048 /* records in an input of 4096 bytes, at most */

static const unsigned char fz_key[SEAL_KEYBYTES] = {9, 8, 7, 6, 5, 4, 3, 2, 1};

struct fz_rec {
    unsigned char tag;
    size_t off, len; /* the plaintext in the input */
};

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    while (n-- > 0)
        v = v << 8 | *p++;
    return v;
}

/* The layout, read afresh: 0 and the fields, or -1. */
static int model(const uint8_t *p, size_t n, struct sf_ctl *c)
{
    memset(c, 0, sizeof *c);
    if (n == 0)
        return -1;
    switch (p[0]) {
    case 0x01:
    case 0x02:
    case 0x04:
    case 0x06:
        if (n != 9)
            return -1;
        c->off = be(p + 1, 8);
        break;
    case 0x03:
        if (n != 13 || be(p + 9, 4) == 0)
            return -1;
        c->off = be(p + 1, 8);
        c->epoch = (uint32_t)be(p + 9, 4);
        break;
    case 0x05:
        if (n != 2 || p[1] < 1 || p[1] > 5)
            return -1;
        c->reason = p[1];
        break;
    default:
        return -1;
    }
    c->type = (enum sf_type)p[0];
    return 0;
}

static void check_codec(const uint8_t *p, size_t n)
{
    struct sf_ctl c, m, d;
    unsigned char out[SF_MAX + 1];
    int rc, mrc;
    memset(&c, 0x5a, sizeof c);
    rc = sf_decode(p, n, &c);
    mrc = model(p, n, &m);
    FZ_CHECK(rc == mrc, "sf_decode %d, the model %d (type 0x%02x, %zu bytes)", rc, mrc,
             n ? p[0] : 0, n);
    FZ_CHECK(c.type == m.type && c.off == m.off && c.epoch == m.epoch && c.reason == m.reason,
             "decoded fields differ from the model");
    if (rc != 0)
        return;
    memset(out, 0xee, sizeof out);
    FZ_CHECK(sf_encode(&c, out) == n && memcmp(out, p, n) == 0 && out[n] == 0xee,
             "not canonical: type 0x%02x", p[0]);
    FZ_CHECK(sf_len(c.type) == n, "sf_len(%d) != %zu", (int)c.type, n);
    FZ_CHECK(sf_decode(out, n, &d) == 0 && d.type == c.type && d.off == c.off &&
                 d.epoch == c.epoch && d.reason == c.reason,
             "re-encoded record decodes differently");
}

/* One record of plaintext p[0..n) with tag into out; returns its length (0: nothing sealed). */
static size_t seal_one(struct seal_tx *t, unsigned char tag, const uint8_t *p, size_t n,
                       unsigned char *out)
{
    unsigned long long clen = 0;
    size_t k;
    if (tag == crypto_secretstream_xchacha20poly1305_TAG_MESSAGE && n > 0) {
        k = seal_tx_data(t, p, n, out);
        FZ_CHECK(k == n + SEAL_OVERHEAD, "data record of %zu bytes sealed as %zu", n, k);
        return k;
    }
    if (tag == crypto_secretstream_xchacha20poly1305_TAG_PUSH) {
        k = seal_tx_ctl(t, p, n, out);
        FZ_CHECK(k == (n ? n + SEAL_OVERHEAD : 0), "control record of %zu bytes sealed as %zu", n,
                 k);
        return k;
    }
    crypto_secretstream_xchacha20poly1305_push(&t->st, out + 2, &clen, p, n, NULL, 0, tag);
    out[0] = (unsigned char)(clen >> 8);
    out[1] = (unsigned char)clen;
    return (size_t)clen + 2;
}

/* What a receiver must say of a record with this tag. */
static enum seal_status expect(bool session, unsigned char tag)
{
    if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL)
        return SEAL_FINAL;
    if (!session || tag == crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
        return SEAL_DATA;
    return tag == crypto_secretstream_xchacha20poly1305_TAG_PUSH ? SEAL_CTL : SEAL_BAD_TAG;
}

static void open_stream(bool session, const uint8_t *data, const struct fz_rec *recs, size_t nrec,
                        const unsigned char *wire, size_t len, uint32_t seed)
{
    static unsigned char acc[SEAL_HEADER + FZ_RECS * (255 + SEAL_OVERHEAD)];
    static unsigned char plain[SEAL_CHUNK];
    struct seal_rx rx;
    size_t acc_len = 0, fed = 0, r = 0;
    bool stopped = false;
    if (session)
        seal_rx_init_session(&rx, fz_key);
    else
        seal_rx_init(&rx, fz_key);
    while (fed < len && !stopped) {
        size_t piece;
        seed = seed * 1103515245u + 12345u;
        piece = 1 + (seed >> 8) % 700;
        if (piece > len - fed)
            piece = len - fed;
        memcpy(acc + acc_len, wire + fed, piece);
        acc_len += piece;
        fed += piece;
        for (;;) {
            size_t used, plen;
            enum seal_status st = seal_rx_next(&rx, acc, acc_len, &used, plain, &plen), want;
            memmove(acc, acc + used, acc_len - used);
            acc_len -= used;
            if (st == SEAL_NEED)
                break;
            FZ_CHECK(r < nrec, "%s: status %d after the last record",
                     session ? "session" : "legacy", (int)st);
            want = expect(session, recs[r].tag);
            FZ_CHECK(st == want, "%s: record %zu (tag 0x%02x): status %d, expected %d",
                     session ? "session" : "legacy", r, recs[r].tag, (int)st, (int)want);
            if (st == SEAL_BAD_TAG) {
                FZ_CHECK(plen == 0, "a refused record released %zu bytes", plen);
                stopped = true;
                break;
            }
            FZ_CHECK(plen == recs[r].len && memcmp(plain, data + recs[r].off, plen) == 0,
                     "record %zu: plaintext differs", r);
            if (st == SEAL_CTL) {
                struct sf_ctl a, b;
                FZ_CHECK(sf_decode(plain, plen, &a) == sf_decode(data + recs[r].off, plen, &b) &&
                             a.type == b.type && a.off == b.off && a.epoch == b.epoch &&
                             a.reason == b.reason,
                         "record %zu decodes differently after sealing", r);
            }
            r++;
            if (st == SEAL_FINAL) {
                /* anything after the final is an error, nothing more is opened */
                if (acc_len > 0 || fed < len) {
                    st = seal_rx_next(&rx, acc, acc_len ? acc_len : 1, &used, plain, &plen);
                    FZ_CHECK(st == SEAL_AFTER_FINAL, "bytes after the final: status %d", (int)st);
                }
                stopped = true;
                break;
            }
        }
    }
    if (!stopped)
        FZ_CHECK(r == nrec, "%s: %zu of %zu records opened", session ? "session" : "legacy", r,
                 nrec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fz_rec recs[FZ_RECS];
    static unsigned char wire[SEAL_HEADER + FZ_RECS * (255 + SEAL_OVERHEAD)];
    struct seal_tx tx;
    size_t nrec = 0, len = SEAL_HEADER, pos = 0;

    if (sodium_init() < 0)
        abort();
    check_codec(data, size); /* the whole input as one plaintext too */
    seal_tx_init(&tx, fz_key, wire);
    while (pos + 2 <= size && nrec < FZ_RECS) {
        unsigned char tag = data[pos];
        size_t n = data[pos + 1], k;
        pos += 2;
        if (n > size - pos)
            n = size - pos;
        check_codec(data + pos, n);
        k = seal_one(&tx, tag, data + pos, n, wire + len);
        if (k > 0) {
            recs[nrec++] = (struct fz_rec){tag, pos, n};
            len += k;
        }
        pos += n;
    }
    open_stream(true, data, recs, nrec, wire, len, (uint32_t)size);
    open_stream(false, data, recs, nrec, wire, len, (uint32_t)size * 7u + 1);
    return 0;
}

/* Seeds: one record per input of each control type, the edges of the codec, and streams that
 * mix every kind of record. */
struct fz_seed {
    uint8_t b[512];
    size_t n;
};

static void fz_rec_put(struct fz_seed *s, uint8_t tag, const uint8_t *p, size_t n)
{
    s->b[s->n++] = tag;
    s->b[s->n++] = (uint8_t)n;
    memcpy(s->b + s->n, p, n);
    s->n += n;
}

static void fz_ctl_put(struct fz_seed *s, struct sf_ctl c)
{
    uint8_t p[SF_MAX];
    size_t n = sf_encode(&c, p);
    if (n == 0)
        abort();
    fz_rec_put(s, 0x01, p, n);
}

static int fz_save(const char *dir, const char *name, const struct fz_seed *s)
{
    char path[4096];
    FILE *f;
    int bad;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!(f = fopen(path, "wb")))
        return -1;
    bad = fwrite(s->b, 1, s->n, f) != s->n;
    return fclose(f) != 0 || bad ? -1 : 0;
}

int fuzz_write_seeds(const char *dir)
{
    static const struct {
        const char *name;
        struct sf_ctl c;
    } one[] = {
        {"ack", {SF_ACK, 1u << 20, 0, 0}},
        {"at", {SF_AT, 0, 0, 0}},
        {"move", {SF_MOVE, 0x0102030405060708u, 1, 0}},
        {"fin-max", {SF_FIN, UINT64_MAX, 0, 0}},
        {"abort-signal", {SF_ABORT, 0, 0, SF_ABORT_SIGNAL}},
        {"abort-gone", {SF_ABORT, 0, 0, SF_ABORT_GONE}},
        {"resend", {SF_RESEND, 0xffffffffu, 0, 0}},
    };
    struct fz_seed s;
    int bad = 0;
    uint8_t junk[SF_MAX + 2];

    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) {
        s.n = 0;
        fz_ctl_put(&s, one[i].c);
        bad |= fz_save(dir, one[i].name, &s);
    }

    /* near misses: unknown types, lengths one off, reserved values */
    s.n = 0;
    memset(junk, 0, sizeof junk);
    junk[0] = 0x00;
    fz_rec_put(&s, 0x01, junk, 9);
    junk[0] = 0x07;
    fz_rec_put(&s, 0x01, junk, 9);
    junk[0] = 0xff;
    fz_rec_put(&s, 0x01, junk, 13);
    junk[0] = SF_ACK;
    fz_rec_put(&s, 0x01, junk, 8);
    fz_rec_put(&s, 0x01, junk, 10);
    junk[0] = SF_MOVE;
    fz_rec_put(&s, 0x01, junk, 13); /* epoch 0 */
    fz_rec_put(&s, 0x01, junk, 12);
    junk[0] = SF_ABORT;
    junk[1] = 0;
    fz_rec_put(&s, 0x01, junk, 2);
    junk[1] = 6;
    fz_rec_put(&s, 0x01, junk, 2);
    fz_rec_put(&s, 0x01, junk, 3);
    fz_rec_put(&s, 0x01, junk, 0); /* an empty control record is not sealed */
    fz_rec_put(&s, 0x01, junk, 1);
    bad |= fz_save(dir, "near-misses", &s);

    /* a session's connection: AT, data, ACK, data, MOVE, final */
    s.n = 0;
    fz_ctl_put(&s, (struct sf_ctl){SF_AT, 4096, 0, 0});
    memset(junk, 'x', sizeof junk);
    fz_rec_put(&s, 0x00, junk, sizeof junk);
    fz_ctl_put(&s, (struct sf_ctl){SF_ACK, 77, 0, 0});
    fz_rec_put(&s, 0x00, junk, 1);
    fz_ctl_put(&s, (struct sf_ctl){SF_MOVE, 4096 + sizeof junk + 1, 2, 0});
    fz_rec_put(&s, 0x03, junk, 0);
    bad |= fz_save(dir, "session-stream", &s);

    /* the end: FIN, ACK of FIN + 1, final, then a record after it */
    s.n = 0;
    fz_ctl_put(&s, (struct sf_ctl){SF_FIN, 100, 0, 0});
    fz_ctl_put(&s, (struct sf_ctl){SF_ACK, 101, 0, 0});
    fz_rec_put(&s, 0x03, junk, 0);
    fz_rec_put(&s, 0x00, junk, 4);
    bad |= fz_save(dir, "after-final", &s);

    /* tags a session stream never carries: refused there, data in a legacy stream */
    s.n = 0;
    fz_rec_put(&s, 0x00, junk, 3);
    fz_rec_put(&s, 0x02, junk, 5); /* TAG_REKEY */
    fz_rec_put(&s, 0x00, junk, 3);
    bad |= fz_save(dir, "tag-rekey", &s);
    s.n = 0;
    fz_ctl_put(&s, (struct sf_ctl){SF_RESEND, 0, 0, 0});
    fz_rec_put(&s, 0x80, junk, 2);
    fz_rec_put(&s, 0x01, junk, 2);
    bad |= fz_save(dir, "tag-unknown", &s);
    /* a final with data (legacy streams allow it) */
    s.n = 0;
    fz_rec_put(&s, 0x03, junk, 9);
    bad |= fz_save(dir, "final-with-data", &s);
    return bad ? -1 : 0;
}
