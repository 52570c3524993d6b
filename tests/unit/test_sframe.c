/* The control records of a resumable session (common/sframe.c): the exact bytes of each type,
 * round trips at the edges of every field, every type byte at every length (only the type's own
 * length decodes), the reserved values (ABORT reasons outside 1..5, MOVE to epoch 0), the
 * encoding being canonical, and one record through seal_tx_ctl and a session receiver. */
#include "check.h"
#include "common/seal.h"
#include "common/sframe.h"

static const uint64_t offs[] = {0,
                                1,
                                0xff,
                                0x100,
                                0xffffffffu,
                                0x100000000u,
                                0x0102030405060708u,
                                0x8000000000000000u,
                                UINT64_MAX - 1,
                                UINT64_MAX};

static int same(const struct sf_ctl *a, const struct sf_ctl *b)
{
    return a->type == b->type && a->off == b->off && a->epoch == b->epoch && a->reason == b->reason;
}

/* The layout pinned byte for byte (docs/design/resume.md 4.3). */
static void t_vectors(void)
{
    static const struct {
        struct sf_ctl c;
        size_t n;
        unsigned char b[SF_MAX];
    } v[] = {
        {{SF_ACK, 0x0102030405060708u, 0, 0}, 9, {0x01, 1, 2, 3, 4, 5, 6, 7, 8}},
        {{SF_AT, 0x1000, 0, 0}, 9, {0x02, 0, 0, 0, 0, 0, 0, 0x10, 0}},
        {{SF_MOVE, 0xa1a2a3a4a5a6a7a8u, 0x01020304u, 0},
         13,
         {0x03, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 1, 2, 3, 4}},
        {{SF_FIN, UINT64_MAX, 0, 0}, 9, {0x04, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
        {{SF_ABORT, 0, 0, SF_ABORT_GONE}, 2, {0x05, 0x05}},
        {{SF_RESEND, 0, 0, 0}, 9, {0x06, 0, 0, 0, 0, 0, 0, 0, 0}},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        unsigned char out[SF_MAX + 1];
        struct sf_ctl c;
        memset(out, 0xee, sizeof out);
        CHECK_INT(sf_encode(&v[i].c, out), v[i].n);
        CHECK_MSG(memcmp(out, v[i].b, v[i].n) == 0, "vector %zu: bytes differ", i);
        CHECK_INT(out[v[i].n], 0xee); /* nothing written past the record */
        CHECK_INT(sf_len(v[i].c.type), v[i].n);
        CHECK_INT(sf_decode(v[i].b, v[i].n, &c), 0);
        CHECK_MSG(same(&c, &v[i].c), "vector %zu: decoded differently", i);
    }
    CHECK_INT(SF_MAX, 13);
}

static void t_roundtrip(void)
{
    const uint32_t epochs[] = {1, 2, 0xff, 0x100, 0x7fffffffu, 0xffffffffu};
    for (int t = SF_ACK; t <= SF_RESEND; t++)
        for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++)
            for (size_t e = 0; e < sizeof epochs / sizeof epochs[0]; e++)
                for (int r = SF_ABORT_SIGNAL; r <= SF_ABORT_GONE; r++) {
                    struct sf_ctl c = {(enum sf_type)t, 0, 0, 0}, d;
                    unsigned char out[SF_MAX];
                    if (t == SF_ABORT)
                        c.reason = (uint8_t)r;
                    else if (r != SF_ABORT_SIGNAL)
                        continue;
                    if (t == SF_MOVE)
                        c.epoch = epochs[e];
                    else if (e)
                        continue;
                    if (t != SF_ABORT)
                        c.off = offs[i];
                    else if (i)
                        continue;
                    size_t n = sf_encode(&c, out);
                    CHECK_INT(n, sf_len(t));
                    memset(&d, 0x77, sizeof d);
                    CHECK_INT(sf_decode(out, n, &d), 0);
                    CHECK_MSG(same(&c, &d), "type %d off %llx epoch %u reason %d", t,
                              (unsigned long long)c.off, c.epoch, r);
                }
}

/* Every type byte at every length from 0 to SF_MAX + 3: only a known type at its own length
 * decodes (with valid field values), and then it re-encodes to the same bytes. */
static void t_types_and_lengths(void)
{
    int accepted = 0;
    for (int type = 0; type < 256; type++)
        for (size_t n = 0; n <= SF_MAX + 3; n++) {
            /* an exact-size buffer, so a read past n is a read past the allocation */
            unsigned char *p = malloc(n ? n : 1);
            struct sf_ctl c;
            for (size_t i = 1; i < n; i++)
                p[i] = (unsigned char)(i == 1 ? 0x01 : 0x30 + i); /* reason 1, epoch != 0 */
            if (n)
                p[0] = (unsigned char)type;
            memset(&c, 0x77, sizeof c);
            int rc = sf_decode(p, n, &c);
            int want = n > 0 && type >= 1 && type <= 6 && n == sf_len(type);
            CHECK_MSG(rc == (want ? 0 : -1), "type 0x%02x length %zu: %d", type, n, rc);
            if (rc == 0) {
                unsigned char out[SF_MAX];
                accepted++;
                CHECK_INT(c.type, type);
                CHECK_INT(sf_encode(&c, out), n);
                CHECK_MSG(memcmp(out, p, n) == 0, "type 0x%02x: not canonical", type);
            } else {
                struct sf_ctl zero;
                memset(&zero, 0, sizeof zero);
                CHECK_MSG(memcmp(&c, &zero, sizeof c) == 0, "type 0x%02x length %zu: not zeroed",
                          type, n);
            }
            free(p);
        }
    CHECK_INT(accepted, 6);
    CHECK_INT(sf_len(0), 0);
    CHECK_INT(sf_len(7), 0);
    CHECK_INT(sf_len(-1), 0);
    CHECK_INT(sf_len(0x101), 0);
}

/* The reserved values: ABORT reasons 0 and 6..255, MOVE to epoch 0. */
static void t_reserved(void)
{
    for (int r = 0; r < 256; r++) {
        unsigned char p[2] = {SF_ABORT, (unsigned char)r}, out[SF_MAX];
        struct sf_ctl c, e = {SF_ABORT, 0, 0, (uint8_t)r};
        int ok = r >= 1 && r <= 5;
        CHECK_MSG(sf_decode(p, 2, &c) == (ok ? 0 : -1), "reason %d", r);
        CHECK_MSG(sf_encode(&e, out) == (ok ? 2u : 0u), "encode reason %d", r);
        if (ok)
            CHECK_INT(c.reason, r);
    }
    unsigned char move[13] = {SF_MOVE, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0};
    struct sf_ctl c;
    CHECK_INT(sf_decode(move, 13, &c), -1);
    for (int i = 9; i < 13; i++) {
        move[i] = 1;
        CHECK_INT(sf_decode(move, 13, &c), 0);
        CHECK_INT(c.epoch, 1u << (8 * (12 - i)));
        CHECK_INT(c.off, 9);
        move[i] = 0;
    }
    struct sf_ctl m0 = {SF_MOVE, 5, 0, 0};
    unsigned char out[SF_MAX + 1];
    memset(out, 0xee, sizeof out);
    CHECK_INT(sf_encode(&m0, out), 0);
    CHECK_INT(out[0], 0xee); /* nothing written */
}

/* sf_encode ignores the fields a type does not have; sf_decode leaves them 0; unknown types
 * are not encoded. */
static void t_unused_fields(void)
{
    unsigned char out[SF_MAX + 1], want[9] = {SF_ACK, 0, 0, 0, 0, 0, 0, 0, 7};
    struct sf_ctl ack = {SF_ACK, 7, 99, 3}, ab = {SF_ABORT, 1234, 5, SF_ABORT_READ}, d;
    CHECK_INT(sf_encode(&ack, out), 9);
    CHECK(memcmp(out, want, 9) == 0);
    CHECK_INT(sf_decode(out, 9, &d), 0);
    CHECK(d.epoch == 0 && d.reason == 0 && d.off == 7);
    CHECK_INT(sf_encode(&ab, out), 2);
    CHECK(out[0] == SF_ABORT && out[1] == SF_ABORT_READ);
    CHECK_INT(sf_decode(out, 2, &d), 0);
    CHECK(d.off == 0 && d.epoch == 0 && d.reason == SF_ABORT_READ);
    for (int t = -1; t < 300; t += (t < 10 ? 1 : 37)) {
        struct sf_ctl u = {(enum sf_type)t, 1, 1, 1};
        memset(out, 0xee, sizeof out);
        if (t >= SF_ACK && t <= SF_RESEND)
            continue;
        CHECK_MSG(sf_encode(&u, out) == 0 && out[0] == 0xee, "type %d encoded", t);
    }
}

static void t_names(void)
{
    CHECK_STR(sf_type_name(SF_ACK), "ACK");
    CHECK_STR(sf_type_name(SF_AT), "AT");
    CHECK_STR(sf_type_name(SF_MOVE), "MOVE");
    CHECK_STR(sf_type_name(SF_FIN), "FIN");
    CHECK_STR(sf_type_name(SF_ABORT), "ABORT");
    CHECK_STR(sf_type_name(SF_RESEND), "RESEND");
    CHECK_STR(sf_type_name(0), "?");
    CHECK_STR(sf_type_name(7), "?");
    CHECK_STR(sf_abort_str(SF_ABORT_SIGNAL), "interrupted by a signal");
    CHECK_STR(sf_abort_str(SF_ABORT_GONE), "the session is gone");
    CHECK_STR(sf_abort_str(0), "unknown reason");
    CHECK_STR(sf_abort_str(6), "unknown reason");
    for (int r = 1; r <= 5; r++)
        CHECK(strcmp(sf_abort_str(r), "unknown reason") != 0);
}

/* A control record end to end: encoded, sealed with TAG_PUSH, opened by a session receiver as
 * SEAL_CTL and decoded; an ACK is the 28 bytes on the wire the design counts. */
static void t_sealed(void)
{
    unsigned char key[SEAL_KEYBYTES], wire[SEAL_HEADER + 6 * (SF_MAX + SEAL_OVERHEAD)];
    unsigned char plain[SEAL_CHUNK], rec[SF_MAX];
    struct sf_ctl in[6] = {{SF_ACK, 1u << 20, 0, 0}, {SF_AT, 77, 0, 0},
                           {SF_MOVE, 1000, 2, 0},    {SF_FIN, 5000, 0, 0},
                           {SF_RESEND, 900, 0, 0},   {SF_ABORT, 0, 0, SF_ABORT_SIGNAL}};
    struct seal_tx tx;
    struct seal_rx rx;
    size_t len = SEAL_HEADER, off = 0;
    if (sodium_init() < 0)
        exit(1);
    randombytes_buf(key, sizeof key);
    seal_tx_init(&tx, key, wire);
    for (int i = 0; i < 6; i++) {
        size_t n = sf_encode(&in[i], rec), k = seal_tx_ctl(&tx, rec, n, wire + len);
        CHECK_INT(k, n + SEAL_OVERHEAD);
        if (in[i].type == SF_ACK)
            CHECK_INT(k, 28);
        len += k;
    }
    seal_rx_init_session(&rx, key);
    for (int i = 0; i < 6; i++) {
        size_t used, plen;
        struct sf_ctl d;
        enum seal_status st = seal_rx_next(&rx, wire + off, len - off, &used, plain, &plen);
        off += used;
        CHECK_INT(st, SEAL_CTL);
        CHECK_INT(sf_decode(plain, plen, &d), 0);
        CHECK_MSG(same(&d, &in[i]), "record %d", i);
    }
    CHECK_INT(off, len);
}

CHECK_MAIN(TEST(t_vectors), TEST(t_roundtrip), TEST(t_types_and_lengths), TEST(t_reserved),
           TEST(t_unused_fields), TEST(t_names), TEST(t_sealed))
