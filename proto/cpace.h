/* CPace (IRTF CFRG draft-irtf-cfrg-cpace), cipher suite CPACE-RISTR255-SHA512, built from
 * libsodium's ristretto255 and SHA-512 only: a balanced PAKE for the one-time wormhole codes
 * (docs/design/wormhole.md). Two parties that share a low-entropy password (PRS) each send one
 * share; each derives the intermediate session key ISK, which is equal on both sides only if
 * PRS, CI, sid and the transcript (both shares, both ADs) are. Someone who sees or relays every
 * byte learns nothing that lets them test a password offline; an active attacker gets one
 * guess per run.
 *
 * Initiator-responder mode (the draft's transcript_ir): tcpunch always knows which side is which
 * (the role comes from the mailbox), so the ordered transcript (transcript_oc) is only offered
 * for the draft's vectors (cpace_isk).
 *
 *   struct cpace c;
 *   cpace_start(&c, CPACE_INITIATOR, &in, share);     send share, with in.ad (ADa)
 *   cpace_finish(&c, peer_share, peer_ad, n, isk)      -1: the peer's share is invalid: abort
 *   cpace_tag(&c, tag)                                 send tag
 *   cpace_check_tag(&c, peer_tag)                      -1: wrong password (or a meddler): abort
 *   cpace_binding_key(isk, label, n, key)              the key bound into the session handshake
 *   cpace_wipe(&c)
 *
 * Every function wipes its secrets (scalars, K, hash states) before it returns, on every path;
 * the state holds the scalar only between start and finish, and the MAC key and tags only after
 * a successful finish. K is never exposed (the draft, "Key derivation"). */
#ifndef TP_PROTO_CPACE_H
#define TP_PROTO_CPACE_H

#include <stddef.h>
#include <stdint.h>

#define CPACE_SHARE_BYTES 32  /* an encoded ristretto255 element */
#define CPACE_SCALAR_BYTES 32 /* a ristretto255 scalar, little-endian */
#define CPACE_ISK_BYTES 64    /* SHA-512 */
#define CPACE_TAG_BYTES 64    /* HMAC-SHA512 */
#define CPACE_BIND_BYTES 32   /* the session-binding key */
/* Bounds on every input: they are ours or the mailbox's, but they are copied into the state
 * (sid, ADs) and a bound keeps the state fixed-size. */
#define CPACE_INPUT_MAX 512
#define CPACE_SID_MAX 64
#define CPACE_AD_MAX 256

enum cpace_role { CPACE_INITIATOR, CPACE_RESPONDER };
/* The draft's two transcripts: transcript_ir (roles fixed), transcript_oc (ordered concatenation,
 * the symmetric setting). */
enum cpace_mode { CPACE_IR, CPACE_OC };

struct cpace_in {
    const uint8_t *prs; /* the password-related string (secret): 1..CPACE_INPUT_MAX bytes */
    size_t prs_len;
    const uint8_t *ci; /* channel identifier (not sent; both sides must agree) */
    size_t ci_len;
    const uint8_t *sid; /* session id (public, unique per run), may be empty */
    size_t sid_len;
    const uint8_t *ad; /* own associated data: ADa for the initiator, ADb for the responder */
    size_t ad_len;
};

enum cpace_state { CPACE_IDLE = 0, CPACE_STARTED, CPACE_DONE };

/* One party's run. Opaque to callers: use the functions. */
struct cpace {
    enum cpace_state state;
    enum cpace_role role;
    uint8_t y[CPACE_SCALAR_BYTES]; /* own scalar, STARTED only */
    uint8_t share[CPACE_SHARE_BYTES];
    uint8_t sid[CPACE_SID_MAX];
    size_t sid_len;
    uint8_t ad[CPACE_AD_MAX];
    size_t ad_len;
    uint8_t mac_key[64];                  /* DONE only */
    uint8_t own_tag[CPACE_TAG_BYTES];     /* DONE only */
    uint8_t peer_tag[CPACE_TAG_BYTES];    /* DONE only: the tag the peer must send */
};

/* Starts a run: samples the scalar (crypto_core_ristretto255_scalar_random), writes the own share
 * Y = y*g. 0, or -1 if an input is out of bounds (nothing kept). */
int cpace_start(struct cpace *c, enum cpace_role role, const struct cpace_in *in,
                uint8_t share[CPACE_SHARE_BYTES]);

/* With the peer's share and AD: K = scalar_mult_vfy(y, peer share); ISK (initiator-responder
 * transcript), the MAC key and both confirmation tags. 0, or -1 when the peer's share does not
 * decode or K is the identity (the draft: MUST abort), when the AD is too long or the state is
 * not STARTED; after -1 the state is wiped and can do nothing more. The scalar is wiped either
 * way: a run is never finished twice. */
int cpace_finish(struct cpace *c, const uint8_t peer_share[CPACE_SHARE_BYTES],
                 const uint8_t *peer_ad, size_t peer_ad_len, uint8_t isk[CPACE_ISK_BYTES]);

/* The own explicit key confirmation tag (the draft, "Key confirmation"):
 *   mac_key = SHA-512(b"CPaceMac" || sid || ISK), tag = HMAC-SHA512(mac_key, lv_cat(Y, AD))
 * over the own message. 0, or -1 before a successful finish. */
int cpace_tag(const struct cpace *c, uint8_t tag[CPACE_TAG_BYTES]);

/* Checks the peer's tag in constant time (sodium_memcmp). 0 if it is the one a peer with the
 * same password sends; else -1 (and the state is wiped). */
int cpace_check_tag(struct cpace *c, const uint8_t tag[CPACE_TAG_BYTES]);

/* The key that binds a finished PAKE into the session handshake, HKDF-Expand-SHA512 (RFC 5869)
 * with ISK as the pseudorandom key (the draft: process ISK with a KDF before use):
 *   key = first 32 bytes of HMAC-SHA512(ISK, "tcpunch cpace bind v1" || lv(label) || 0x01)
 * label names the use (at most CPACE_INPUT_MAX bytes). 0, or -1 on a bad label. */
int cpace_binding_key(const uint8_t isk[CPACE_ISK_BYTES], const uint8_t *label, size_t label_len,
                      uint8_t key[CPACE_BIND_BYTES]);

/* Wipes the whole state (sodium_memzero); safe on a wiped state. */
void cpace_wipe(struct cpace *c);

/* The draft's building blocks, exposed for its test vectors (tests/unit/test_cpace.c). */

/* lv_cat of n strings into out (prepend_len of each: LEB128 length, then the bytes): the length
 * written, or 0 if it does not fit in cap (a result is never empty: each part has a length). */
size_t cpace_lv_cat(uint8_t *out, size_t cap, size_t n, const uint8_t *const *parts,
                    const size_t *lens);
/* generator_string(G.DSI, PRS, CI, sid, 128) into out: the length, or 0 (does not fit, or an
 * input out of bounds). */
size_t cpace_generator_string(uint8_t *out, size_t cap, const struct cpace_in *in);
/* calculate_generator: the encoded generator g. 0, or -1 on an input out of bounds. */
int cpace_calculate_generator(const struct cpace_in *in, uint8_t g[CPACE_SHARE_BYTES]);
/* scalar_mult_vfy(y, X): encode(y * decode(X)), or -1 (the draft's G.I) when X does not decode
 * or the product is the identity; out is then all zero. */
int cpace_scalar_mult_vfy(const uint8_t y[CPACE_SCALAR_BYTES], const uint8_t x[CPACE_SHARE_BYTES],
                          uint8_t out[CPACE_SHARE_BYTES]);
/* cpace_start with a given scalar instead of a random one (the draft's ya, yb). Tests only: a
 * scalar must never be reused. */
int cpace_start_with_scalar(struct cpace *c, enum cpace_role role, const struct cpace_in *in,
                            const uint8_t y[CPACE_SCALAR_BYTES], uint8_t share[CPACE_SHARE_BYTES]);
/* ISK = SHA-512(lv_cat(G.DSI || b"_ISK", sid, K) || transcript(Ya, ADa, Yb, ADb)) in either mode;
 * 0, or -1 on an input out of bounds. */
int cpace_isk(enum cpace_mode mode, const uint8_t *sid, size_t sid_len,
              const uint8_t k[CPACE_SHARE_BYTES], const uint8_t ya[CPACE_SHARE_BYTES],
              const uint8_t *ada, size_t ada_len, const uint8_t yb[CPACE_SHARE_BYTES],
              const uint8_t *adb, size_t adb_len, uint8_t isk[CPACE_ISK_BYTES]);

#endif
