#include "peer/rshake.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define RSHAKE_MAC_PREFIX "tcpunch-rmac-v1" /* without its NUL */
#define RSHAKE_KEYS_PREFIX "tcpunch-keys-r1"
#define RSHAKE_MAC_BYTES crypto_generichash_BYTES /* 32: not truncated */
#define RSHAKE_MSG_MAX 512

void rshake_init(struct rshake_ctx *c)
{
    crypto_kx_keypair(c->eph_pk, c->eph_sk);
}

void rshake_wipe(struct rshake_ctx *c)
{
    sodium_memzero(c->eph_sk, sizeof c->eph_sk);
}

uint32_t rshake_next_epoch(const struct rshake_ctx *c)
{
    return c->last_epoch == UINT32_MAX ? 0 : c->last_epoch + 1;
}

static size_t rs_put(unsigned char *out, size_t off, const void *p, size_t n)
{
    memcpy(out + off, p, n);
    return off + n;
}

static size_t rs_put_be(unsigned char *out, size_t off, uint64_t v, int bytes)
{
    for (int k = bytes - 1; k >= 0; k--)
        out[off++] = (unsigned char)(v >> (8 * k));
    return off;
}

/* MAC_I = BLAKE2b-256(key = RS, "tcpunch-rmac-v1" || "I" || S || root || e(8) || id_I "\0" ||
 * id_R "\0" || E_R || E_I || rx_I(8)); MAC_R the same with "R", then || rx_R(8) || gone(1).
 * Big-endian integers. by_init: whose MAC (the letter); the ids, keys and offsets are put in the
 * roles' order whoever computes it. */
static void rs_mac(const struct rshake_ctx *c, bool by_init, const unsigned char *eph_i,
                   const unsigned char *eph_r, uint32_t epoch, uint64_t rx_i, uint64_t rx_r,
                   bool gone, unsigned char *mac)
{
    bool init = c->role == PROTO_INITIATOR;
    const char *id_i = init ? c->self : c->peer, *id_r = init ? c->peer : c->self;
    unsigned char m[RSHAKE_MSG_MAX];
    size_t off = 0;
    off = rs_put(m, off, RSHAKE_MAC_PREFIX, strlen(RSHAKE_MAC_PREFIX));
    off = rs_put(m, off, by_init ? "I" : "R", 1);
    off = rs_put(m, off, c->session, PROTO_SESSION_LEN);
    off = rs_put(m, off, c->root, PROTO_SESSION_LEN);
    off = rs_put_be(m, off, epoch, 8);
    off = rs_put(m, off, id_i, strlen(id_i) + 1);
    off = rs_put(m, off, id_r, strlen(id_r) + 1);
    off = rs_put(m, off, eph_r, crypto_kx_PUBLICKEYBYTES);
    off = rs_put(m, off, eph_i, crypto_kx_PUBLICKEYBYTES);
    off = rs_put_be(m, off, rx_i, 8);
    if (!by_init) {
        off = rs_put_be(m, off, rx_r, 8);
        m[off++] = gone ? 1 : 0;
    }
    crypto_generichash(mac, RSHAKE_MAC_BYTES, m, off, c->rs, SHAKE_RS_BYTES);
}

static json_t *rs_b64(const unsigned char *bin, size_t n)
{
    char text[sodium_base64_ENCODED_LEN(64, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(text, sizeof text, bin, n, sodium_base64_VARIANT_ORIGINAL);
    return json_string(text);
}

static int rs_dump(json_t *o, char *buf, size_t len)
{
    size_t cap = len < PROTO_MAX_LINE ? len : PROTO_MAX_LINE, n;
    if (!o)
        return -1;
    n = json_dumpb(o, buf, cap, JSON_COMPACT);
    json_decref(o);
    if (n == 0 || n + 1 > cap)
        return -1;
    buf[n] = '\n';
    return (int)n + 1;
}

int rshake_encode(const struct rshake_ctx *c, enum rshake_type t, const struct rshake_peer *p,
                  char *buf, size_t len)
{
    bool init = c->role == PROTO_INITIATOR;
    unsigned char mac[RSHAKE_MAC_BYTES];
    json_t *o;
    if (!c->rs || c->rx > RSHAKE_RX_MAX)
        return -1;
    if (t == RSHAKE_RESUMED) {
        /* the responder accepts the initiator's resume that p holds */
        if (init || !p || !p->seen)
            return -1;
        rs_mac(c, false, p->eph, c->eph_pk, p->epoch, p->rx, c->rx, c->gone, mac);
        o = json_pack("{s:s, s:s, s:I, s:b, s:o}", "type", "resumed", "session", c->session, "rx",
                      (json_int_t)c->rx, "gone", c->gone, "mac", rs_b64(mac, sizeof mac));
        return rs_dump(o, buf, len);
    }
    if (!init) {
        uint32_t e = rshake_next_epoch(c);
        if (e == 0)
            return -1;
        o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:o}", "type", "resume", "session",
                      c->session, "root", c->root, "from", c->self, "to", c->peer, "epoch",
                      (json_int_t)e, "eph", rs_b64(c->eph_pk, sizeof c->eph_pk));
        return rs_dump(o, buf, len);
    }
    if (!p || !p->seen)
        return -1;
    rs_mac(c, true, c->eph_pk, p->eph, p->epoch, c->rx, 0, false, mac);
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:I, s:o}", "type", "resume", "session",
                  c->session, "root", c->root, "from", c->self, "to", c->peer, "epoch",
                  (json_int_t)p->epoch, "eph", rs_b64(c->eph_pk, sizeof c->eph_pk), "rx",
                  (json_int_t)c->rx, "mac", rs_b64(mac, sizeof mac));
    return rs_dump(o, buf, len);
}

/* ---- decoding ---- */

struct rd {
    json_t *o;
    char *why;
    size_t whylen;
};

static bool rd_fail(struct rd *d, const char *what, const char *key)
{
    snprintf(d->why, d->whylen, "%s \"%s\"", what, key);
    return false;
}

/* Exactly the members in allowed (NULL-terminated), no other. */
static bool rd_members(struct rd *d, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(d->o, key, v)
    {
        bool ok = false;
        (void)v;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, key) == 0;
        if (!ok)
            return rd_fail(d, "unknown member", key);
    }
    for (const char *const *a = allowed; *a; a++)
        if (!json_object_get(d->o, *a))
            return rd_fail(d, "missing member", *a);
    return true;
}

static const char *rd_str(struct rd *d, const char *key)
{
    json_t *v = json_object_get(d->o, key);
    if (!json_is_string(v)) {
        rd_fail(d, "not a string:", key);
        return NULL;
    }
    return json_string_value(v);
}

static bool rd_same(struct rd *d, const char *key, const char *want)
{
    const char *s = rd_str(d, key);
    if (!s)
        return false;
    if (strcmp(s, want) != 0) {
        snprintf(d->why, d->whylen, "\"%s\" is \"%.64s\", expected \"%s\"", key, s, want);
        return false;
    }
    return true;
}

static bool rd_uint(struct rd *d, const char *key, uint64_t lo, uint64_t hi, uint64_t *out)
{
    json_t *v = json_object_get(d->o, key);
    json_int_t n;
    if (!json_is_integer(v))
        return rd_fail(d, "not an integer:", key);
    n = json_integer_value(v);
    if (n < 0 || (uint64_t)n < lo || (uint64_t)n > hi)
        return rd_fail(d, "out of range:", key);
    *out = (uint64_t)n;
    return true;
}

/* Canonical standard base64 of exactly n bytes (as proto's binary members). */
static bool rd_b64(struct rd *d, const char *key, unsigned char *out, size_t n)
{
    char again[sodium_base64_ENCODED_LEN(64, sodium_base64_VARIANT_ORIGINAL)];
    const char *s = rd_str(d, key);
    size_t got = 0, len;
    if (!s)
        return false;
    len = strlen(s);
    if (len != sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL) - 1 ||
        sodium_base642bin(out, n, s, len, NULL, &got, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        got != n)
        return rd_fail(d, "not base64 of the right length:", key);
    sodium_bin2base64(again, sizeof again, out, n, sodium_base64_VARIANT_ORIGINAL);
    if (strcmp(again, s) != 0)
        return rd_fail(d, "not canonical base64:", key);
    return true;
}

static const char *const rd_offer[] = {"type", "session", "root", "from",
                                       "to",   "epoch",   "eph",  NULL};
static const char *const rd_answer[] = {"type",  "session", "root", "from", "to",
                                        "epoch", "eph",     "rx",   "mac",  NULL};
static const char *const rd_resumed[] = {"type", "session", "rx", "gone", "mac", NULL};

/* A resume line: the responder's offer (we are the initiator) or the initiator's answer. */
static bool rd_resume(const struct rshake_ctx *c, struct rd *d, struct rshake_peer *p)
{
    bool init = c->role == PROTO_INITIATOR;
    struct rshake_peer got = {.seen = true};
    unsigned char mac[RSHAKE_MAC_BYTES], want[RSHAKE_MAC_BYTES];
    uint64_t e, rx = 0;

    if (!rd_members(d, init ? rd_offer : rd_answer) || !rd_same(d, "session", c->session) ||
        !rd_same(d, "root", c->root) || !rd_same(d, "from", c->peer) ||
        !rd_same(d, "to", c->self) || !rd_uint(d, "epoch", 1, UINT32_MAX, &e) ||
        !rd_b64(d, "eph", got.eph, sizeof got.eph))
        return false;
    if (init ? e <= c->last_epoch : e != rshake_next_epoch(c)) {
        snprintf(d->why, d->whylen, "epoch %llu, %s %lu", (unsigned long long)e,
                 init ? "not above the last accepted" : "not the one offered after",
                 (unsigned long)c->last_epoch);
        return false;
    }
    if (sodium_memcmp(got.eph, c->eph_pk, sizeof got.eph) == 0) {
        snprintf(d->why, d->whylen, "our own resume came back");
        return false;
    }
    got.epoch = (uint32_t)e;
    if (!init) {
        if (!rd_uint(d, "rx", 0, RSHAKE_RX_MAX, &rx) || !rd_b64(d, "mac", mac, sizeof mac))
            return false;
        rs_mac(c, true, got.eph, c->eph_pk, got.epoch, rx, 0, false, want);
        if (crypto_verify_32(mac, want) != 0) {
            snprintf(d->why, d->whylen, "the resume's MAC does not verify");
            return false;
        }
        got.rx = rx;
    }
    *p = got;
    return true;
}

static bool rd_resumed_line(const struct rshake_ctx *c, struct rd *d, struct rshake_peer *p)
{
    unsigned char mac[RSHAKE_MAC_BYTES], want[RSHAKE_MAC_BYTES];
    json_t *g;
    uint64_t rx;
    if (c->role != PROTO_INITIATOR || !p->seen) {
        snprintf(d->why, d->whylen, "resumed where none was due");
        return false;
    }
    if (!rd_members(d, rd_resumed) || !rd_same(d, "session", c->session) ||
        !rd_uint(d, "rx", 0, RSHAKE_RX_MAX, &rx))
        return false;
    g = json_object_get(d->o, "gone");
    if (!json_is_boolean(g))
        return rd_fail(d, "not a boolean:", "gone");
    if (!rd_b64(d, "mac", mac, sizeof mac))
        return false;
    rs_mac(c, false, c->eph_pk, p->eph, p->epoch, c->rx, rx, json_is_true(g), want);
    if (crypto_verify_32(mac, want) != 0) {
        snprintf(d->why, d->whylen, "the resumed's MAC does not verify");
        return false;
    }
    p->rx = rx;
    p->gone = json_is_true(g);
    p->done = true;
    return true;
}

enum shake_verdict rshake_verify(const struct rshake_ctx *c, enum rshake_type expect,
                                 const char *line, size_t len, struct rshake_peer *p, char *why,
                                 size_t whylen)
{
    struct rd d = {.why = why, .whylen = whylen};
    json_error_t jerr;
    const char *type;
    bool ok;

    if (!c->rs) {
        snprintf(why, whylen, "no resumption secret");
        return SHAKE_BAD;
    }
    if (len >= PROTO_MAX_LINE) {
        snprintf(why, whylen, "line of %zu bytes exceeds %d", len + 1, PROTO_MAX_LINE);
        return SHAKE_BAD;
    }
    d.o = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!d.o) {
        snprintf(why, whylen, "bad-json: %s", jerr.text);
        return SHAKE_BAD;
    }
    if (!json_is_object(d.o) || !(type = rd_str(&d, "type"))) {
        snprintf(why, whylen, "not an object with a type");
        json_decref(d.o);
        return SHAKE_BAD;
    }
    if (strcmp(type, expect == RSHAKE_RESUMED ? "resumed" : "resume") != 0) {
        snprintf(why, whylen, "got \"%.32s\" where %s was due", type,
                 expect == RSHAKE_RESUMED ? "resumed" : "resume");
        json_decref(d.o);
        return SHAKE_BAD;
    }
    ok = expect == RSHAKE_RESUMED ? rd_resumed_line(c, &d, p) : rd_resume(c, &d, p);
    json_decref(d.o);
    return ok ? SHAKE_OK : SHAKE_BAD;
}

/* tx = BLAKE2b-256(key = RS, "tcpunch-keys-r1" || kx_tx || root || S || e(8) || E_I || E_R),
 * rx likewise with kx_rx: the initiator's tx is the responder's rx. */
static void rs_bind(const struct rshake_ctx *c, const struct rshake_peer *p,
                    const unsigned char *kx, unsigned char *out)
{
    bool init = c->role == PROTO_INITIATOR;
    unsigned char m[RSHAKE_MSG_MAX];
    size_t off = 0;
    off = rs_put(m, off, RSHAKE_KEYS_PREFIX, strlen(RSHAKE_KEYS_PREFIX));
    off = rs_put(m, off, kx, crypto_kx_SESSIONKEYBYTES);
    off = rs_put(m, off, c->root, PROTO_SESSION_LEN);
    off = rs_put(m, off, c->session, PROTO_SESSION_LEN);
    off = rs_put_be(m, off, p->epoch, 8);
    off = rs_put(m, off, init ? c->eph_pk : p->eph, crypto_kx_PUBLICKEYBYTES);
    off = rs_put(m, off, init ? p->eph : c->eph_pk, crypto_kx_PUBLICKEYBYTES);
    crypto_generichash(out, crypto_kx_SESSIONKEYBYTES, m, off, c->rs, SHAKE_RS_BYTES);
    sodium_memzero(m, sizeof m);
}

int rshake_keys(const struct rshake_ctx *c, const struct rshake_peer *p, unsigned char *tx,
                unsigned char *rx)
{
    unsigned char ktx[crypto_kx_SESSIONKEYBYTES], krx[crypto_kx_SESSIONKEYBYTES];
    bool init = c->role == PROTO_INITIATOR;
    int rc;
    if (!c->rs || !p->seen || p->epoch == 0 || (init && !p->done))
        return -1;
    rc = init ? crypto_kx_client_session_keys(krx, ktx, c->eph_pk, c->eph_sk, p->eph)
              : crypto_kx_server_session_keys(krx, ktx, c->eph_pk, c->eph_sk, p->eph);
    if (rc == 0) {
        rs_bind(c, p, ktx, tx);
        rs_bind(c, p, krx, rx);
    }
    sodium_memzero(ktx, sizeof ktx);
    sodium_memzero(krx, sizeof krx);
    return rc == 0 ? 0 : -1;
}
