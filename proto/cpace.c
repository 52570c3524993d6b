/* CPace over ristretto255 with SHA-512, written from the definitions of draft-irtf-cfrg-cpace
 * (section "CPace protocol instructions", the ristretto255 group object, "Key confirmation" and
 * Appendix A's string functions). Every primitive is libsodium's; this file only encodes and
 * orders the bytes the draft hashes. */
#include "proto/cpace.h"

#include <sodium.h>
#include <string.h>

_Static_assert(CPACE_SHARE_BYTES == crypto_core_ristretto255_BYTES, "element size");
_Static_assert(CPACE_SCALAR_BYTES == crypto_core_ristretto255_SCALARBYTES, "scalar size");
_Static_assert(CPACE_ISK_BYTES == crypto_hash_sha512_BYTES, "ISK size");
_Static_assert(CPACE_TAG_BYTES == crypto_auth_hmacsha512_BYTES, "tag size");
_Static_assert(crypto_core_ristretto255_HASHBYTES == 2 * 32, "2 * field_size_bytes");

/* G_Ristretto255.DSI, and the DSI of the ISK (G.DSI || b"_ISK") */
static const char cp_dsi[] = "CPaceRistretto255";
static const char cp_dsi_isk[] = "CPaceRistretto255_ISK";
static const char cp_mac_label[] = "CPaceMac";
static const char cp_bind_label[] = "tcpunch cpace bind v1";
#define CP_S_IN_BYTES 128 /* SHA-512's input block: H.s_in_bytes */
/* lv_cat(Y, AD) of one message: a 1-byte length, Y, a length of up to 2 bytes, AD */
#define CP_MSG_MAX (1 + CPACE_SHARE_BYTES + 2 + CPACE_AD_MAX)

/* Where encoded bytes go: a SHA-512 state, an HMAC-SHA512 state, a buffer, or several. The
 * same encoder feeds the hash and, for the draft's vectors, a buffer, so that the vectors test
 * the bytes that are hashed. */
struct cp_sink {
    crypto_hash_sha512_state *h;
    crypto_auth_hmacsha512_state *m;
    uint8_t *buf;
    size_t cap, len;
    int overflow;
};

static void cp_put(struct cp_sink *s, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (s->h)
        crypto_hash_sha512_update(s->h, p, n);
    if (s->m)
        crypto_auth_hmacsha512_update(s->m, p, n);
    if (s->buf) {
        if (s->overflow || n > s->cap - s->len) {
            s->overflow = 1;
            return;
        }
        memcpy(s->buf + s->len, p, n);
    }
    s->len += n;
}

/* The LEB128 encoding of n: 7 bits a byte, least significant first, bit 7 set while more follow. */
static void cp_put_len(struct cp_sink *s, size_t n)
{
    uint8_t b[10];
    size_t k = 0;
    do {
        b[k] = (uint8_t)(n & 0x7f);
        n >>= 7;
        if (n)
            b[k] |= 0x80;
        k++;
    } while (n);
    cp_put(s, b, k);
}

/* prepend_len(p) */
static void cp_lv(struct cp_sink *s, const void *p, size_t n)
{
    cp_put_len(s, n);
    cp_put(s, p, n);
}

/* len(prepend_len(x)) for a string of n bytes */
static size_t cp_lv_size(size_t n)
{
    size_t k = 1;
    for (size_t m = n >> 7; m; m >>= 7)
        k++;
    return k + n;
}

/* A (pointer, length) pair is usable: within max, and a pointer wherever there are bytes. */
static int cp_ok(const void *p, size_t n, size_t max)
{
    return n <= max && (p || n == 0);
}

static int cp_in_ok(const struct cpace_in *in)
{
    return in && in->prs_len >= 1 && cp_ok(in->prs, in->prs_len, CPACE_INPUT_MAX) &&
           cp_ok(in->ci, in->ci_len, CPACE_INPUT_MAX) && cp_ok(in->sid, in->sid_len, CPACE_SID_MAX) &&
           cp_ok(in->ad, in->ad_len, CPACE_AD_MAX);
}

/* generator_string(G.DSI, PRS, CI, sid, s_in_bytes) = lv_cat(DSI, PRS, zero_bytes(len_zpad),
 * CI, sid): the padding makes DSI and PRS fill the first hash block whatever the password's
 * length (the draft: fewer side channels on the PRS). */
static void cp_gen_string(struct cp_sink *s, const struct cpace_in *in)
{
    static const uint8_t zeros[CP_S_IN_BYTES];
    size_t used = cp_lv_size(sizeof cp_dsi - 1) + cp_lv_size(in->prs_len) + 1;
    size_t zpad = used < CP_S_IN_BYTES ? CP_S_IN_BYTES - used : 0;
    cp_lv(s, cp_dsi, sizeof cp_dsi - 1);
    cp_lv(s, in->prs, in->prs_len);
    cp_lv(s, zeros, zpad); /* zpad < CP_S_IN_BYTES */
    cp_lv(s, in->ci, in->ci_len);
    cp_lv(s, in->sid, in->sid_len);
}

size_t cpace_lv_cat(uint8_t *out, size_t cap, size_t n, const uint8_t *const *parts,
                    const size_t *lens)
{
    struct cp_sink s = {.buf = out, .cap = cap};
    for (size_t i = 0; i < n; i++)
        cp_lv(&s, parts[i], lens[i]);
    return s.overflow || !out ? 0 : s.len;
}

size_t cpace_generator_string(uint8_t *out, size_t cap, const struct cpace_in *in)
{
    struct cp_sink s = {.buf = out, .cap = cap};
    if (!out || !cp_in_ok(in))
        return 0;
    cp_gen_string(&s, in);
    if (s.overflow) {
        sodium_memzero(out, cap); /* it holds the password */
        return 0;
    }
    return s.len;
}

int cpace_calculate_generator(const struct cpace_in *in, uint8_t g[CPACE_SHARE_BYTES])
{
    crypto_hash_sha512_state h;
    uint8_t hash[crypto_hash_sha512_BYTES];
    struct cp_sink s = {.h = &h};
    if (!cp_in_ok(in))
        return -1;
    crypto_hash_sha512_init(&h);
    cp_gen_string(&s, in);
    /* H.hash(gen_str, 2 * field_size_bytes): SHA-512's whole output */
    crypto_hash_sha512_final(&h, hash);
    crypto_core_ristretto255_from_hash(g, hash); /* element_derivation (RFC 9496) */
    sodium_memzero(hash, sizeof hash);
    sodium_memzero(&h, sizeof h);
    return 0;
}

int cpace_scalar_mult_vfy(const uint8_t y[CPACE_SCALAR_BYTES], const uint8_t x[CPACE_SHARE_BYTES],
                          uint8_t out[CPACE_SHARE_BYTES])
{
    /* RFC 9496's decode fails for any s >= p. libsodium (1.0.18) rejects s in [p, 2^255) and
     * negative s, but masks bit 255 away, so an encoding with it set would decode as the
     * element without it: the same element under a second encoding, which the draft's
     * transcript (and test_cpace's t_invalid_shares) does not allow. Then libsodium fails when
     * the product is the identity; the explicit test for G.I (all zero) is the draft's rule. */
    if ((x[CPACE_SHARE_BYTES - 1] & 0x80) != 0 || crypto_scalarmult_ristretto255(out, y, x) != 0 ||
        sodium_is_zero(out, CPACE_SHARE_BYTES)) {
        sodium_memzero(out, CPACE_SHARE_BYTES);
        return -1;
    }
    return 0;
}

/* lv_cat(Y, AD) of one message into out (CP_MSG_MAX bytes): the length */
static size_t cp_msg(uint8_t out[CP_MSG_MAX], const uint8_t *y, const uint8_t *ad, size_t ad_len)
{
    struct cp_sink s = {.buf = out, .cap = CP_MSG_MAX};
    cp_lv(&s, y, CPACE_SHARE_BYTES);
    cp_lv(&s, ad, ad_len);
    return s.len; /* ad_len <= CPACE_AD_MAX: it fits */
}

/* The draft's lexiographically_larger(a, b) (public bytes: no need for constant time) */
static int cp_larger(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = memcmp(a, b, n);
    return c != 0 ? c > 0 : an > bn;
}

int cpace_isk(enum cpace_mode mode, const uint8_t *sid, size_t sid_len,
              const uint8_t k[CPACE_SHARE_BYTES], const uint8_t ya[CPACE_SHARE_BYTES],
              const uint8_t *ada, size_t ada_len, const uint8_t yb[CPACE_SHARE_BYTES],
              const uint8_t *adb, size_t adb_len, uint8_t isk[CPACE_ISK_BYTES])
{
    crypto_hash_sha512_state h;
    struct cp_sink s = {.h = &h};
    uint8_t ma[CP_MSG_MAX], mb[CP_MSG_MAX];
    size_t na, nb;
    if (!cp_ok(sid, sid_len, CPACE_SID_MAX) || !cp_ok(ada, ada_len, CPACE_AD_MAX) ||
        !cp_ok(adb, adb_len, CPACE_AD_MAX) || (mode != CPACE_IR && mode != CPACE_OC))
        return -1;
    na = cp_msg(ma, ya, ada, ada_len);
    nb = cp_msg(mb, yb, adb, adb_len);
    crypto_hash_sha512_init(&h);
    cp_lv(&s, cp_dsi_isk, sizeof cp_dsi_isk - 1);
    cp_lv(&s, sid, sid_len);
    cp_lv(&s, k, CPACE_SHARE_BYTES);
    if (mode == CPACE_IR) { /* transcript_ir = lv_cat(Ya, ADa) || lv_cat(Yb, ADb) */
        cp_put(&s, ma, na);
        cp_put(&s, mb, nb);
    } else { /* transcript_oc = o_cat(lv_cat(Ya, ADa), lv_cat(Yb, ADb)) */
        int a_first = cp_larger(ma, na, mb, nb);
        cp_put(&s, "oc", 2);
        cp_put(&s, a_first ? ma : mb, a_first ? na : nb);
        cp_put(&s, a_first ? mb : ma, a_first ? nb : na);
    }
    crypto_hash_sha512_final(&h, isk);
    sodium_memzero(&h, sizeof h);
    return 0;
}

void cpace_wipe(struct cpace *c)
{
    if (c)
        sodium_memzero(c, sizeof *c);
}

int cpace_start_with_scalar(struct cpace *c, enum cpace_role role, const struct cpace_in *in,
                            const uint8_t y[CPACE_SCALAR_BYTES], uint8_t share[CPACE_SHARE_BYTES])
{
    uint8_t g[CPACE_SHARE_BYTES];
    int rc = -1;
    cpace_wipe(c);
    if (!c || (role != CPACE_INITIATOR && role != CPACE_RESPONDER) || !cp_in_ok(in))
        return -1;
    if (cpace_calculate_generator(in, g) != 0)
        goto out;
    /* scalar_mult(y, g): g is a valid element; -1 only for a zero scalar (y*g = G.I) */
    if (crypto_scalarmult_ristretto255(c->share, y, g) != 0)
        goto out;
    memcpy(c->y, y, CPACE_SCALAR_BYTES);
    memcpy(c->sid, in->sid ? in->sid : (const uint8_t *)"", in->sid_len);
    c->sid_len = in->sid_len;
    if (in->ad_len)
        memcpy(c->ad, in->ad, in->ad_len);
    c->ad_len = in->ad_len;
    c->role = role;
    c->state = CPACE_STARTED;
    memcpy(share, c->share, CPACE_SHARE_BYTES);
    rc = 0;
out:
    sodium_memzero(g, sizeof g); /* g alone lets anyone test passwords offline */
    if (rc != 0)
        cpace_wipe(c);
    return rc;
}

int cpace_start(struct cpace *c, enum cpace_role role, const struct cpace_in *in,
                uint8_t share[CPACE_SHARE_BYTES])
{
    uint8_t y[CPACE_SCALAR_BYTES];
    int rc;
    /* uniform in [1, order - 1]: the draft's alternative to masked random bytes */
    crypto_core_ristretto255_scalar_random(y);
    rc = cpace_start_with_scalar(c, role, in, y, share);
    sodium_memzero(y, sizeof y);
    return rc;
}

/* HMAC-SHA512(mac_key, lv_cat(Y, AD)) */
static void cp_tag(const uint8_t mac_key[64], const uint8_t *y, const uint8_t *ad, size_t ad_len,
                   uint8_t tag[CPACE_TAG_BYTES])
{
    crypto_auth_hmacsha512_state m;
    struct cp_sink s = {.m = &m};
    crypto_auth_hmacsha512_init(&m, mac_key, 64);
    cp_lv(&s, y, CPACE_SHARE_BYTES);
    cp_lv(&s, ad, ad_len);
    crypto_auth_hmacsha512_final(&m, tag);
    sodium_memzero(&m, sizeof m);
}

int cpace_finish(struct cpace *c, const uint8_t peer_share[CPACE_SHARE_BYTES],
                 const uint8_t *peer_ad, size_t peer_ad_len, uint8_t isk[CPACE_ISK_BYTES])
{
    uint8_t k[CPACE_SHARE_BYTES];
    crypto_hash_sha512_state h;
    const uint8_t *ya, *yb, *ada, *adb;
    size_t ada_len, adb_len;
    int rc = -1;
    if (!c)
        return -1;
    if (!peer_share || !isk) {
        cpace_wipe(c);
        return -1;
    }
    if (c->state != CPACE_STARTED || !cp_ok(peer_ad, peer_ad_len, CPACE_AD_MAX))
        goto out;
    /* Our own share coming back: in the initiator-responder setting an honest peer's share
     * equals ours only by a collision of random scalars. Refused, because the draft's tags
     * cover each side's own message only: with Yb = Ya and ADb = ADa, our own tag reflected
     * back would be the tag we expect, confirming a key that no peer holds. */
    if (sodium_memcmp(peer_share, c->share, CPACE_SHARE_BYTES) == 0)
        goto out;
    if (cpace_scalar_mult_vfy(c->y, peer_share, k) != 0)
        goto out; /* the draft: MUST abort if K = G.I */
    sodium_memzero(c->y, sizeof c->y);
    if (c->role == CPACE_INITIATOR) {
        ya = c->share, ada = c->ad, ada_len = c->ad_len;
        yb = peer_share, adb = peer_ad, adb_len = peer_ad_len;
    } else {
        ya = peer_share, ada = peer_ad, ada_len = peer_ad_len;
        yb = c->share, adb = c->ad, adb_len = c->ad_len;
    }
    if (cpace_isk(CPACE_IR, c->sid, c->sid_len, k, ya, ada, ada_len, yb, adb, adb_len, isk) != 0)
        goto out;
    /* mac_key = H.hash(b"CPaceMac" || sid || ISK) */
    crypto_hash_sha512_init(&h);
    crypto_hash_sha512_update(&h, (const uint8_t *)cp_mac_label, sizeof cp_mac_label - 1);
    crypto_hash_sha512_update(&h, c->sid, c->sid_len);
    crypto_hash_sha512_update(&h, isk, CPACE_ISK_BYTES);
    crypto_hash_sha512_final(&h, c->mac_key);
    sodium_memzero(&h, sizeof h);
    /* Ta over A's message, Tb over B's: each side sends the tag of what it sent */
    cp_tag(c->mac_key, ya, ada, ada_len, c->role == CPACE_INITIATOR ? c->own_tag : c->peer_tag);
    cp_tag(c->mac_key, yb, adb, adb_len, c->role == CPACE_INITIATOR ? c->peer_tag : c->own_tag);
    c->state = CPACE_DONE;
    rc = 0;
out:
    sodium_memzero(k, sizeof k);
    if (rc != 0) {
        sodium_memzero(isk, CPACE_ISK_BYTES);
        cpace_wipe(c);
    }
    return rc;
}

int cpace_tag(const struct cpace *c, uint8_t tag[CPACE_TAG_BYTES])
{
    if (!c || !tag || c->state != CPACE_DONE)
        return -1;
    memcpy(tag, c->own_tag, CPACE_TAG_BYTES);
    return 0;
}

int cpace_check_tag(struct cpace *c, const uint8_t tag[CPACE_TAG_BYTES])
{
    if (!c || c->state != CPACE_DONE || !tag) {
        cpace_wipe(c);
        return -1;
    }
    if (sodium_memcmp(tag, c->peer_tag, CPACE_TAG_BYTES) != 0) {
        cpace_wipe(c);
        return -1;
    }
    return 0;
}

int cpace_binding_key(const uint8_t isk[CPACE_ISK_BYTES], const uint8_t *label, size_t label_len,
                      uint8_t key[CPACE_BIND_BYTES])
{
    crypto_auth_hmacsha512_state m;
    struct cp_sink s = {.m = &m};
    uint8_t t[crypto_auth_hmacsha512_BYTES];
    static const uint8_t one = 1;
    if (!isk || !key || !cp_ok(label, label_len, CPACE_INPUT_MAX))
        return -1;
    /* HKDF-Expand(PRK = ISK, info, 32): T(1) = HMAC(PRK, info || 0x01); ISK is already a
     * uniform 64-byte key, so Extract is not needed (RFC 5869, section 3.3) */
    crypto_auth_hmacsha512_init(&m, isk, CPACE_ISK_BYTES);
    cp_put(&s, cp_bind_label, sizeof cp_bind_label - 1);
    cp_lv(&s, label, label_len);
    cp_put(&s, &one, 1);
    crypto_auth_hmacsha512_final(&m, t);
    memcpy(key, t, CPACE_BIND_BYTES);
    sodium_memzero(t, sizeof t);
    sodium_memzero(&m, sizeof m);
    return 0;
}
