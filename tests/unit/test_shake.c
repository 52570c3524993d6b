/* The end-to-end handshake (peer/shake.c): a full responder/initiator exchange agreeing on the
 * stream keys, the direct-mode variant, and the attacks it must stop: a forged or missing
 * signature, another key in place of the peer's, a shake replayed from an earlier handshake, a
 * reflected shake, and keys that known_peers, --peer-key or the server do not vouch for. */
#include "check.h"
#include "common/seal.h"
#include "peer/shake.h"

#include <stdlib.h>

#define SESSION "0123456789abcdef0123456789abcdef"

static struct identity id_i, id_r, id_m; /* initiator (alice), responder (bob), mallory */

static void ctx(struct shake_ctx *s, enum proto_role role, const struct identity *id,
                const char *self, const char *peer)
{
    memset(s, 0, sizeof *s);
    snprintf(s->session, sizeof s->session, "%s", SESSION);
    snprintf(s->self, sizeof s->self, "%s", self);
    snprintf(s->peer, sizeof s->peer, "%s", peer);
    snprintf(s->trust.name, sizeof s->trust.name, "%s", peer);
    s->role = role;
    s->ident = id;
    shake_init(s);
}

struct line {
    char b[PROTO_MAX_LINE];
    size_t n; /* without the newline */
};

/* proto_encode does not NUL-terminate: the line is terminated here, so that strstr on it
 * reads the line and not stale stack bytes behind it (a signed line of an earlier test) */
static struct line enc(const struct shake_ctx *s, enum proto_type t, const struct shake_peer *p)
{
    struct line l;
    int n = shake_encode(s, t, p, l.b, sizeof l.b - 1);
    l.n = n > 0 ? (size_t)n - 1 : 0;
    l.b[n > 0 ? n : 0] = '\0';
    return l;
}

static enum shake_verdict ver(const struct shake_ctx *s, enum proto_type t, const struct line *l,
                              struct shake_peer *p)
{
    char why[1024];
    return shake_verify(s, t, l->b, l->n, p, why, sizeof why);
}

/* Re-encodes a line after edit changed its decoded message. */
static struct line edit(const struct line *in, void (*fn)(struct proto_msg *))
{
    struct proto_msg m;
    struct line out = {"", 0};
    char why[200];
    if (proto_decode(in->b, in->n, PROTO_PEER_TO_PEER, &m, why, sizeof why) != PROTO_OK)
        return out;
    fn(&m);
    int n = proto_encode(&m, out.b, sizeof out.b);
    out.n = n > 0 ? (size_t)n - 1 : 0;
    return out;
}

/* The whole three-message exchange; returns whether both sides accepted and agreed on keys. */
static bool exchange(struct shake_ctx *r, struct shake_ctx *i)
{
    struct shake_peer at_i = {0}, at_r = {0};
    unsigned char itx[32], irx[32], rtx[32], rrx[32];
    struct line l = enc(r, PROTO_SHAKE, NULL);
    if (!CHECK_INT(ver(i, PROTO_SHAKE, &l, &at_i), SHAKE_OK))
        return false;
    l = enc(i, PROTO_SHAKE, &at_i);
    if (!CHECK_INT(ver(r, PROTO_SHAKE, &l, &at_r), SHAKE_OK))
        return false;
    l = enc(r, PROTO_CONFIRM, &at_r);
    if (!CHECK_INT(ver(i, PROTO_CONFIRM, &l, &at_i), SHAKE_OK))
        return false;
    CHECK(memcmp(at_i.key, r->ident->pk, 32) == 0);
    CHECK(memcmp(at_r.key, i->ident->pk, 32) == 0);
    CHECK(shake_keys(i, &at_i, itx, irx) == 0);
    CHECK(shake_keys(r, &at_r, rtx, rrx) == 0);
    CHECK(memcmp(itx, rrx, 32) == 0);
    CHECK(memcmp(irx, rtx, 32) == 0);
    CHECK(memcmp(itx, irx, 32) != 0);
    return true;
}

static void t_exchange(void)
{
    struct shake_ctx r, i;
    ctx(&r, PROTO_RESPONDER, &id_r, "bob", "alice");
    ctx(&i, PROTO_INITIATOR, &id_i, "alice", "bob");
    CHECK(exchange(&r, &i));
    /* the lines carry what PROTOCOL.md says */
    struct line l = enc(&r, PROTO_SHAKE, NULL);
    CHECK(strstr(l.b, "\"key\":\"") && strstr(l.b, "\"eph\":\"") && !strstr(l.b, "\"sig\""));
    shake_wipe(&r);
    shake_wipe(&i);
}

static void t_initiator_needs_the_peer(void)
{
    struct shake_ctx i;
    char b[PROTO_MAX_LINE];
    ctx(&i, PROTO_INITIATOR, &id_i, "alice", "bob");
    /* nothing to sign without the responder's shake */
    CHECK(shake_encode(&i, PROTO_SHAKE, NULL, b, sizeof b) < 0);
    CHECK(shake_encode(&i, PROTO_CONFIRM, NULL, b, sizeof b) < 0);
}

static void zero_sig(struct proto_msg *m)
{
    if (m->type == PROTO_SHAKE)
        m->u.shake.sig[0] ^= 1;
    else
        m->u.confirm.sig[5] ^= 0x40;
}
static void drop_sig(struct proto_msg *m)
{
    m->u.shake.has_sig = false;
}
static void add_sig(struct proto_msg *m)
{
    m->u.shake.has_sig = true;
}
static void mallory_key(struct proto_msg *m)
{
    memcpy(m->u.shake.key, id_m.pk, 32);
}
static void other_eph(struct proto_msg *m)
{
    m->u.shake.eph[3] ^= 0x10;
}
static void other_to(struct proto_msg *m)
{
    snprintf(m->u.shake.to, sizeof m->u.shake.to, "carol");
}
static void other_session(struct proto_msg *m)
{
    m->u.shake.session[0] = 'f';
}

static void t_bad_signatures(void)
{
    struct shake_ctx r, i;
    struct shake_peer at_i = {0}, at_r = {0};
    ctx(&r, PROTO_RESPONDER, &id_r, "bob", "alice");
    ctx(&i, PROTO_INITIATOR, &id_i, "alice", "bob");
    struct line rs = enc(&r, PROTO_SHAKE, NULL);
    CHECK_INT(ver(&i, PROTO_SHAKE, &rs, &at_i), SHAKE_OK);
    struct line is = enc(&i, PROTO_SHAKE, &at_i);

    struct line bad = edit(&is, zero_sig);
    CHECK_INT(ver(&r, PROTO_SHAKE, &bad, &at_r), SHAKE_BAD);
    bad = edit(&is, drop_sig);
    CHECK_INT(ver(&r, PROTO_SHAKE, &bad, &at_r), SHAKE_BAD);
    /* mallory's key in alice's signed shake: the signature does not verify under it */
    bad = edit(&is, mallory_key);
    CHECK_INT(ver(&r, PROTO_SHAKE, &bad, &at_r), SHAKE_BAD);
    /* a different ephemeral key than the one signed */
    bad = edit(&is, other_eph);
    CHECK_INT(ver(&r, PROTO_SHAKE, &bad, &at_r), SHAKE_BAD);
    bad = edit(&is, other_to);
    CHECK_INT(ver(&r, PROTO_SHAKE, &bad, &at_r), SHAKE_BAD);
    bad = edit(&is, other_session);
    CHECK_INT(ver(&r, PROTO_SHAKE, &bad, &at_r), SHAKE_BAD);
    CHECK(!at_r.seen);
    /* a responder's shake never carries a signature */
    bad = edit(&rs, add_sig);
    struct shake_peer fresh = {0};
    CHECK_INT(ver(&i, PROTO_SHAKE, &bad, &fresh), SHAKE_BAD);

    /* the genuine shake passes; then a forged confirm does not */
    CHECK_INT(ver(&r, PROTO_SHAKE, &is, &at_r), SHAKE_OK);
    struct line cf = enc(&r, PROTO_CONFIRM, &at_r);
    bad = edit(&cf, zero_sig);
    CHECK_INT(ver(&i, PROTO_CONFIRM, &bad, &at_i), SHAKE_BAD);
    /* a confirm signed by mallory for the same transcript */
    struct shake_ctx m = r;
    m.ident = &id_m;
    struct line mc = enc(&m, PROTO_CONFIRM, &at_r);
    CHECK_INT(ver(&i, PROTO_CONFIRM, &mc, &at_i), SHAKE_BAD);
    CHECK_INT(ver(&i, PROTO_CONFIRM, &cf, &at_i), SHAKE_OK);
    /* a confirm where a shake is due, and the reverse */
    CHECK_INT(ver(&r, PROTO_SHAKE, &cf, &at_r), SHAKE_BAD);
    CHECK_INT(ver(&i, PROTO_CONFIRM, &rs, &at_i), SHAKE_BAD);
}

/* Mallory plays the whole handshake with her own key: only trust can stop her. */
static void t_wrong_key(void)
{
    struct shake_ctx r, m;
    struct shake_peer at_m = {0}, at_r = {0};
    ctx(&r, PROTO_RESPONDER, &id_r, "bob", "alice");
    ctx(&m, PROTO_INITIATOR, &id_m, "alice", "bob");
    struct line rs = enc(&r, PROTO_SHAKE, NULL);
    CHECK_INT(ver(&m, PROTO_SHAKE, &rs, &at_m), SHAKE_OK);
    struct line ms = enc(&m, PROTO_SHAKE, &at_m);

    /* no trust information: first contact, accepted (and recorded by the caller) */
    CHECK_INT(ver(&r, PROTO_SHAKE, &ms, &at_r), SHAKE_OK);

    /* known_peers has alice's real key */
    r.trust.nknown = 1;
    r.trust.known[0].line = 7;
    memcpy(r.trust.known[0].pk, id_i.pk, 32);
    snprintf(r.trust.known_path, sizeof r.trust.known_path,
             "/home/bob/.config/tcpunch/known_peers");
    char why[1024];
    at_r.seen = false;
    CHECK_INT(shake_verify(&r, PROTO_SHAKE, ms.b, ms.n, &at_r, why, sizeof why), SHAKE_REFUSED);
    CHECK_MSG(strstr(why, "HAS CHANGED") && strstr(why, "known_peers line 7") &&
                  strstr(why, "delete line 7"),
              "%s", why);
    CHECK(!at_r.seen);
    /* a second known key for alice that is mallory's: accepted */
    r.trust.nknown = 2;
    memcpy(r.trust.known[1].pk, id_m.pk, 32);
    CHECK_INT(ver(&r, PROTO_SHAKE, &ms, &at_r), SHAKE_OK);

    /* --peer-key wins over known_peers */
    id_fingerprint(id_i.pk, r.trust.fp, sizeof r.trust.fp);
    CHECK_INT(shake_verify(&r, PROTO_SHAKE, ms.b, ms.n, &at_r, why, sizeof why), SHAKE_REFUSED);
    CHECK_MSG(strstr(why, "--peer-key") != NULL, "%s", why);
    id_fingerprint(id_m.pk, r.trust.fp, sizeof r.trust.fp);
    CHECK_INT(ver(&r, PROTO_SHAKE, &ms, &at_r), SHAKE_OK);

    /* nothing known, but the server vouches for alice's registered key */
    memset(&r.trust, 0, sizeof r.trust);
    r.trust.server_key = true;
    memcpy(r.trust.server_pk, id_i.pk, 32);
    CHECK_INT(ver(&r, PROTO_SHAKE, &ms, &at_r), SHAKE_REFUSED);
    memcpy(r.trust.server_pk, id_m.pk, 32);
    CHECK_INT(ver(&r, PROTO_SHAKE, &ms, &at_r), SHAKE_OK);

    /* the initiator checks the responder's key as soon as its shake arrives */
    struct shake_ctx i;
    struct shake_peer at_i = {0};
    ctx(&i, PROTO_INITIATOR, &id_i, "alice", "bob");
    i.trust.nknown = 1;
    memcpy(i.trust.known[0].pk, id_m.pk, 32);
    CHECK_INT(ver(&i, PROTO_SHAKE, &rs, &at_i), SHAKE_REFUSED);
}

/* A shake recorded from one handshake is worthless in the next: the signature covers the
 * responder's fresh ephemeral key. */
static void t_replay(void)
{
    struct shake_ctx r1, r2, i;
    struct shake_peer at_i = {0}, at_r = {0};
    ctx(&r1, PROTO_RESPONDER, &id_r, "bob", "alice");
    ctx(&i, PROTO_INITIATOR, &id_i, "alice", "bob");
    struct line rs = enc(&r1, PROTO_SHAKE, NULL);
    CHECK_INT(ver(&i, PROTO_SHAKE, &rs, &at_i), SHAKE_OK);
    struct line is = enc(&i, PROTO_SHAKE, &at_i);
    CHECK_INT(ver(&r1, PROTO_SHAKE, &is, &at_r), SHAKE_OK);
    struct line cf = enc(&r1, PROTO_CONFIRM, &at_r);

    ctx(&r2, PROTO_RESPONDER, &id_r, "bob", "alice"); /* same ids and session, new eph */
    at_r.seen = false;
    CHECK_INT(ver(&r2, PROTO_SHAKE, &is, &at_r), SHAKE_BAD);

    /* and the old confirm does not finish a new initiator's handshake */
    struct shake_ctx i2;
    struct shake_peer at_i2 = {0};
    ctx(&i2, PROTO_INITIATOR, &id_i, "alice", "bob");
    CHECK_INT(ver(&i2, PROTO_SHAKE, &rs, &at_i2), SHAKE_OK);
    CHECK_INT(ver(&i2, PROTO_CONFIRM, &cf, &at_i2), SHAKE_BAD);

    /* a responder's own shake reflected back at it */
    struct shake_ctx d;
    struct shake_peer at_d = {0};
    ctx(&d, PROTO_RESPONDER, &id_r, "x", "x");
    d.symmetric = true;
    struct line own = enc(&d, PROTO_SHAKE, NULL);
    CHECK_INT(ver(&d, PROTO_SHAKE, &own, &at_d), SHAKE_BAD);
}

static void t_direct(void)
{
    struct shake_ctx a, b;
    struct shake_peer at_a = {0}, at_b = {0};
    unsigned char atx[32], arx[32], btx[32], brx[32];
    ctx(&a, PROTO_RESPONDER, &id_i, "direct", "direct");
    ctx(&b, PROTO_RESPONDER, &id_r, "direct", "direct");
    a.symmetric = b.symmetric = true;
    struct line la = enc(&a, PROTO_SHAKE, NULL), lb = enc(&b, PROTO_SHAKE, NULL);
    CHECK(!strstr(la.b, "\"sig\""));
    CHECK_INT(ver(&a, PROTO_SHAKE, &lb, &at_a), SHAKE_OK);
    CHECK_INT(ver(&b, PROTO_SHAKE, &la, &at_b), SHAKE_OK);
    shake_direct_role(&a, &at_a);
    shake_direct_role(&b, &at_b);
    CHECK(a.role != b.role);
    la = enc(&a, PROTO_CONFIRM, &at_a);
    lb = enc(&b, PROTO_CONFIRM, &at_b);
    /* each side's confirm is only valid for the other */
    CHECK_INT(ver(&a, PROTO_CONFIRM, &la, &at_a), SHAKE_BAD);
    CHECK_INT(ver(&a, PROTO_CONFIRM, &lb, &at_a), SHAKE_OK);
    CHECK_INT(ver(&b, PROTO_CONFIRM, &la, &at_b), SHAKE_OK);
    CHECK(shake_keys(&a, &at_a, atx, arx) == 0);
    CHECK(shake_keys(&b, &at_b, btx, brx) == 0);
    CHECK(memcmp(atx, brx, 32) == 0 && memcmp(arx, btx, 32) == 0);
    /* a signed shake in direct mode is refused (the confirm carries the signature) */
    struct line ls = enc(&b, PROTO_SHAKE, NULL);
    struct line bad = edit(&ls, add_sig);
    struct shake_peer fresh = {0};
    CHECK_INT(ver(&a, PROTO_SHAKE, &bad, &fresh), SHAKE_BAD);
}

static void t_low_order_eph(void)
{
    struct shake_ctx i;
    struct shake_peer p = {.seen = true};
    unsigned char tx[32], rx[32];
    ctx(&i, PROTO_INITIATOR, &id_i, "alice", "bob");
    memset(p.eph, 0, sizeof p.eph); /* the all-zero point gives an all-zero shared secret */
    memcpy(p.key, id_r.pk, 32);
    CHECK(shake_keys(&i, &p, tx, rx) < 0);
}

static void hex(const unsigned char *b, size_t n, char *out)
{
    for (size_t k = 0; k < n; k++)
        snprintf(out + 2 * k, 3, "%02x", b[k]);
}

/* Fixed identities and ephemeral keys: the stream keys are what today's peers derive (recorded
 * from the code before the resumption secret was added), so adding RS changed nothing on the
 * wire or in the keys. */
static void vec_ctx(struct shake_ctx *s, enum proto_role role, struct identity *id,
                    unsigned char idseed, unsigned char ephseed, const char *self, const char *peer)
{
    unsigned char seed[32];
    memset(seed, idseed, sizeof seed);
    crypto_sign_seed_keypair(id->pk, id->sk, seed);
    ctx(s, role, id, self, peer);
    memset(seed, ephseed, sizeof seed);
    crypto_kx_seed_keypair(s->eph_pk, s->eph_sk, seed);
}

#define VEC_I_TX "a28d73f82bc4658c3e784a063d64a4e7e21f8d14559c6056da5ecea338557cfd"
#define VEC_I_RX "a9bd19dbbf71e301074429a1dd803393ef8d551c82136dc19d760f6cf8f87f7c"

static void t_vector(void)
{
    static struct identity vi, vr;
    struct shake_ctx i, r;
    struct shake_peer at_i = {.seen = true}, at_r = {.seen = true};
    unsigned char itx[32], irx[32], rtx[32], rrx[32];
    char h[65];
    vec_ctx(&i, PROTO_INITIATOR, &vi, 0x11, 0x33, "alice", "bob");
    vec_ctx(&r, PROTO_RESPONDER, &vr, 0x22, 0x44, "bob", "alice");
    memcpy(at_i.key, vr.pk, 32);
    memcpy(at_i.eph, r.eph_pk, 32);
    memcpy(at_r.key, vi.pk, 32);
    memcpy(at_r.eph, i.eph_pk, 32);
    CHECK(shake_keys(&i, &at_i, itx, irx) == 0);
    CHECK(shake_keys(&r, &at_r, rtx, rrx) == 0);
    hex(itx, 32, h);
    CHECK_STR(h, VEC_I_TX);
    hex(irx, 32, h);
    CHECK_STR(h, VEC_I_RX);
    CHECK(memcmp(itx, rrx, 32) == 0 && memcmp(irx, rtx, 32) == 0);
    shake_wipe(&i);
    shake_wipe(&r);
}

/* The resumption secret (design resume.md 4.2): the same on both sides of one handshake,
 * recomputed here from its definition, another for every handshake, and none of the stream
 * keys; asking for it leaves tx/rx as the vector has them. */
static void t_resumption_secret(void)
{
    static struct identity vi, vr;
    struct shake_ctx i, r;
    struct shake_peer at_i = {.seen = true}, at_r = {.seen = true};
    unsigned char itx[32], irx[32], rtx[32], rrx[32], irs[SHAKE_RS_BYTES], rrs[SHAKE_RS_BYTES];
    unsigned char ck_rx[32], ck_tx[32], key[64], msg[512], want[32];
    size_t off = 0;
    char h[65];
    vec_ctx(&i, PROTO_INITIATOR, &vi, 0x11, 0x33, "alice", "bob");
    vec_ctx(&r, PROTO_RESPONDER, &vr, 0x22, 0x44, "bob", "alice");
    memcpy(at_i.key, vr.pk, 32);
    memcpy(at_i.eph, r.eph_pk, 32);
    memcpy(at_r.key, vi.pk, 32);
    memcpy(at_r.eph, i.eph_pk, 32);
    CHECK(shake_keys_rs(&i, &at_i, itx, irx, irs) == 0);
    CHECK(shake_keys_rs(&r, &at_r, rtx, rrx, rrs) == 0);
    hex(itx, 32, h);
    CHECK_STR(h, VEC_I_TX);
    hex(irx, 32, h);
    CHECK_STR(h, VEC_I_RX);
    CHECK(memcmp(irs, rrs, 32) == 0);
    CHECK(memcmp(irs, itx, 32) != 0 && memcmp(irs, irx, 32) != 0);
    /* RS = BLAKE2b-256(key = kx_I_tx || kx_I_rx, "tcpunch-resume-v1" || session || eph_I ||
     * eph_R || key_I || key_R) */
    CHECK(crypto_kx_client_session_keys(ck_rx, ck_tx, i.eph_pk, i.eph_sk, r.eph_pk) == 0);
    memcpy(key, ck_tx, 32);
    memcpy(key + 32, ck_rx, 32);
    memcpy(msg, "tcpunch-resume-v1", 17), off = 17;
    memcpy(msg + off, SESSION, 32), off += 32;
    memcpy(msg + off, i.eph_pk, 32), off += 32;
    memcpy(msg + off, r.eph_pk, 32), off += 32;
    memcpy(msg + off, vi.pk, 32), off += 32;
    memcpy(msg + off, vr.pk, 32), off += 32;
    crypto_generichash(want, 32, msg, off, key, sizeof key);
    CHECK(memcmp(irs, want, 32) == 0);

    /* another handshake (fresh ephemeral keys), or another session id: another RS */
    unsigned char rs2[32], rs3[32], t2[32], r2[32];
    struct shake_ctx i2 = i;
    shake_init(&i2);
    memcpy(at_r.eph, i2.eph_pk, 32);
    CHECK(shake_keys_rs(&i2, &at_i, t2, r2, rs2) == 0);
    CHECK(memcmp(rs2, irs, 32) != 0);
    struct shake_ctx i3 = i;
    snprintf(i3.session, sizeof i3.session, "%s", "fedcba9876543210fedcba9876543210");
    CHECK(shake_keys_rs(&i3, &at_i, t2, r2, rs3) == 0);
    CHECK(memcmp(rs3, irs, 32) != 0 && memcmp(rs3, rs2, 32) != 0);

    /* a real exchange: both sides agree on RS */
    struct shake_ctx a, b;
    struct shake_peer at_a = {0}, at_b = {0};
    ctx(&b, PROTO_RESPONDER, &id_r, "bob", "alice");
    ctx(&a, PROTO_INITIATOR, &id_i, "alice", "bob");
    struct line l = enc(&b, PROTO_SHAKE, NULL);
    CHECK_INT(ver(&a, PROTO_SHAKE, &l, &at_a), SHAKE_OK);
    l = enc(&a, PROTO_SHAKE, &at_a);
    CHECK_INT(ver(&b, PROTO_SHAKE, &l, &at_b), SHAKE_OK);
    CHECK(shake_keys_rs(&a, &at_a, itx, irx, irs) == 0);
    CHECK(shake_keys_rs(&b, &at_b, rtx, rrx, rrs) == 0);
    CHECK(memcmp(irs, rrs, 32) == 0 && memcmp(irs, rs2, 32) != 0);
    CHECK(memcmp(itx, rrx, 32) == 0);
    /* the low-order point gives no RS either */
    memset(at_a.eph, 0, 32);
    CHECK(shake_keys_rs(&a, &at_a, itx, irx, irs) < 0);
    shake_wipe(&i);
    shake_wipe(&i2);
    shake_wipe(&r);
    shake_wipe(&a);
    shake_wipe(&b);
}

/* The signatures of today's handshake with the fixed keys of t_vector, recorded from the code
 * before shake.resume existed: without the member both signatures cover exactly today's bytes,
 * so a peer of this version and an older one verify each other. */
#define VEC_I_SIG                                                                                  \
    "7bf025af007492fbf213bdb22bbadd571d5212b812d36fdd18b1051fde9e3b00"                             \
    "d4e8e74144918a46e47228ec09d0d21c8df360ba91f0defb21618bb9e87aaf0e"
#define VEC_R_SIG                                                                                  \
    "48beb283c8f5eb025728ceb050b3a1a64780ce2555c37eb43788c772c0567571"                             \
    "41f1a15f88086322061a553bbaaa4b8680441db681facfe83a7813b7db2fd00a"

static void vec_sigs(struct shake_ctx *i, struct shake_ctx *r, struct shake_peer *at_i,
                     struct shake_peer *at_r, char *isig, char *rsig)
{
    struct proto_msg m;
    char why[200];
    struct line l = enc(r, PROTO_SHAKE, NULL);
    CHECK_INT(ver(i, PROTO_SHAKE, &l, at_i), SHAKE_OK);
    l = enc(i, PROTO_SHAKE, at_i);
    CHECK_INT(ver(r, PROTO_SHAKE, &l, at_r), SHAKE_OK);
    CHECK(proto_decode(l.b, l.n, PROTO_PEER_TO_PEER, &m, why, sizeof why) == PROTO_OK);
    hex(m.u.shake.sig, 64, isig);
    l = enc(r, PROTO_CONFIRM, at_r);
    CHECK_INT(ver(i, PROTO_CONFIRM, &l, at_i), SHAKE_OK);
    CHECK(proto_decode(l.b, l.n, PROTO_PEER_TO_PEER, &m, why, sizeof why) == PROTO_OK);
    hex(m.u.confirm.sig, 64, rsig);
}

static void t_vector_sigs(void)
{
    static struct identity vi, vr;
    struct shake_ctx i, r;
    struct shake_peer at_i = {0}, at_r = {0};
    char isig[129], rsig[129];
    vec_ctx(&i, PROTO_INITIATOR, &vi, 0x11, 0x33, "alice", "bob");
    vec_ctx(&r, PROTO_RESPONDER, &vr, 0x22, 0x44, "bob", "alice");
    vec_sigs(&i, &r, &at_i, &at_r, isig, rsig);
    CHECK_STR(isig, VEC_I_SIG);
    CHECK_STR(rsig, VEC_R_SIG);
    shake_wipe(&i);
    shake_wipe(&r);
}

/* ---- shake.resume (docs/design/resume.md 4.1, PROTOCOL.md section 18) ---- */

static const struct proto_resume_caps caps_r = {true, PROTO_RESUME_V, 8u << 20, 120};
static const struct proto_resume_caps caps_i = {true, PROTO_RESUME_V, 1u << 20, 30};

static void strip_resume(struct proto_msg *m)
{
    m->u.shake.resume.has = false;
}
static void bump_buf(struct proto_msg *m)
{
    m->u.shake.resume.buf += 1;
}
static void bump_timeout(struct proto_msg *m)
{
    m->u.shake.resume.timeout -= 1;
}
static void keep(struct proto_msg *m)
{
    (void)m;
}
static void add_resume(struct proto_msg *m)
{
    m->u.shake.resume = caps_i;
}

/* One combination: the responder speaks resume (r_has) and its punch listed the initiator's
 * feature (listed); the initiator speaks it (i_has). Who sends, and whether the layer is on,
 * follow 4.1 "Acceptance"; the handshake and its keys work in every case. */
static void resume_case(bool r_has, bool listed, bool i_has)
{
    struct shake_ctx r, i;
    struct shake_peer at_i = {0}, at_r = {0};
    unsigned char itx[32], irx[32], rtx[32], rrx[32];
    bool r_sends = r_has && listed, i_sends = i_has && r_sends;
    ctx(&r, PROTO_RESPONDER, &id_r, "bob", "alice");
    ctx(&i, PROTO_INITIATOR, &id_i, "alice", "bob");
    if (r_has)
        r.resume = caps_r;
    r.resume_listed = listed;
    if (i_has)
        i.resume = caps_i;
    i.resume_listed = true; /* the initiator does not look at its punch */
    struct line l = enc(&r, PROTO_SHAKE, NULL);
    CHECK_MSG((strstr(l.b, "\"resume\":{") != NULL) == r_sends, "case %d%d%d: %s", r_has, listed,
              i_has, l.b);
    CHECK_INT(ver(&i, PROTO_SHAKE, &l, &at_i), SHAKE_OK);
    CHECK(at_i.resume.has == r_sends);
    l = enc(&i, PROTO_SHAKE, &at_i);
    CHECK_MSG((strstr(l.b, "\"resume\":{") != NULL) == i_sends, "case %d%d%d: %s", r_has, listed,
              i_has, l.b);
    CHECK_INT(ver(&r, PROTO_SHAKE, &l, &at_r), SHAKE_OK);
    CHECK(at_r.resume.has == i_sends);
    l = enc(&r, PROTO_CONFIRM, &at_r);
    CHECK_INT(ver(&i, PROTO_CONFIRM, &l, &at_i), SHAKE_OK);
    CHECK_MSG(shake_resume_on(&i, &at_i) == i_sends && shake_resume_on(&r, &at_r) == i_sends,
              "case %d%d%d: on %d/%d", r_has, listed, i_has, shake_resume_on(&i, &at_i),
              shake_resume_on(&r, &at_r));
    if (i_sends) {
        CHECK(at_i.resume.buf == caps_r.buf && at_i.resume.timeout == caps_r.timeout);
        CHECK(at_r.resume.buf == caps_i.buf && at_r.resume.timeout == caps_i.timeout);
    }
    CHECK(shake_keys(&i, &at_i, itx, irx) == 0 && shake_keys(&r, &at_r, rtx, rrx) == 0);
    CHECK(memcmp(itx, rrx, 32) == 0 && memcmp(irx, rtx, 32) == 0);
    shake_wipe(&r);
    shake_wipe(&i);
}

static void t_resume_combinations(void)
{
    for (int k = 0; k < 8; k++)
        resume_case(k & 4, k & 2, k & 1);
}

/* Both on; one of the two shakes goes through f on the way (a relay in the middle). */
static enum shake_verdict resume_tampered(bool on_resp, void (*f)(struct proto_msg *))
{
    struct shake_ctx r, i;
    struct shake_peer at_i = {0}, at_r = {0};
    enum shake_verdict v;
    ctx(&r, PROTO_RESPONDER, &id_r, "bob", "alice");
    ctx(&i, PROTO_INITIATOR, &id_i, "alice", "bob");
    r.resume = caps_r;
    r.resume_listed = true;
    i.resume = caps_i;
    struct line l = enc(&r, PROTO_SHAKE, NULL);
    if (on_resp)
        l = edit(&l, f);
    CHECK_INT(ver(&i, PROTO_SHAKE, &l, &at_i), SHAKE_OK);
    l = enc(&i, PROTO_SHAKE, &at_i);
    if (!on_resp)
        l = edit(&l, f);
    v = ver(&r, PROTO_SHAKE, &l, &at_r);
    if (v == SHAKE_OK) {
        l = enc(&r, PROTO_CONFIRM, &at_r);
        v = ver(&i, PROTO_CONFIRM, &l, &at_i);
    }
    shake_wipe(&r);
    shake_wipe(&i);
    return v;
}

static void t_resume_tampered(void)
{
    static void (*const fns[])(struct proto_msg *) = {strip_resume, bump_buf, bump_timeout};
    for (size_t k = 0; k < sizeof fns / sizeof fns[0]; k++) {
        CHECK_MSG(resume_tampered(true, fns[k]) == SHAKE_BAD, "responder's, edit %zu", k);
        CHECK_MSG(resume_tampered(false, fns[k]) == SHAKE_BAD, "initiator's, edit %zu", k);
    }
    /* re-encoded unchanged, the same run passes: the edits are what fails it */
    CHECK_INT(resume_tampered(true, keep), SHAKE_OK);
    CHECK_INT(resume_tampered(false, keep), SHAKE_OK);
    /* an initiator's shake.resume where the responder sent none is refused, signed or not */
    struct shake_ctx r, i;
    struct shake_peer at_i = {0}, at_r = {0};
    ctx(&r, PROTO_RESPONDER, &id_r, "bob", "alice");
    ctx(&i, PROTO_INITIATOR, &id_i, "alice", "bob");
    r.resume = caps_r; /* speaks it, but the punch did not list it: sends none */
    i.resume = caps_i;
    struct line l = enc(&r, PROTO_SHAKE, NULL);
    CHECK(!strstr(l.b, "resume"));
    CHECK_INT(ver(&i, PROTO_SHAKE, &l, &at_i), SHAKE_OK);
    l = enc(&i, PROTO_SHAKE, &at_i);
    CHECK(!strstr(l.b, "resume"));
    l = edit(&l, add_resume);
    CHECK_INT(ver(&r, PROTO_SHAKE, &l, &at_r), SHAKE_BAD);
    shake_wipe(&r);
    shake_wipe(&i);
}

/* With shake.resume on, the signatures are other than today's vector (the blocks are covered);
 * with the caps set but nothing sent (the punch did not list it), they are today's. */
static void t_resume_vector(void)
{
    static struct identity vi, vr;
    struct shake_ctx i, r;
    struct shake_peer at_i = {0}, at_r = {0};
    char isig[129], rsig[129];
    vec_ctx(&i, PROTO_INITIATOR, &vi, 0x11, 0x33, "alice", "bob");
    vec_ctx(&r, PROTO_RESPONDER, &vr, 0x22, 0x44, "bob", "alice");
    i.resume = caps_i;
    r.resume = caps_r;
    vec_sigs(&i, &r, &at_i, &at_r, isig, rsig);
    CHECK_STR(isig, VEC_I_SIG);
    CHECK_STR(rsig, VEC_R_SIG);
    r.resume_listed = true;
    memset(&at_i, 0, sizeof at_i);
    memset(&at_r, 0, sizeof at_r);
    vec_sigs(&i, &r, &at_i, &at_r, isig, rsig);
    CHECK(strcmp(isig, VEC_I_SIG) != 0 && strcmp(rsig, VEC_R_SIG) != 0);
    CHECK(shake_resume_on(&i, &at_i) && shake_resume_on(&r, &at_r));
    shake_wipe(&i);
    shake_wipe(&r);
}

/* Direct mode announces nothing and ignores a shake.resume it is shown. */
static void t_resume_direct(void)
{
    struct shake_ctx a, b;
    struct shake_peer at_a = {0};
    ctx(&a, PROTO_RESPONDER, &id_i, "direct", "direct");
    ctx(&b, PROTO_RESPONDER, &id_r, "direct", "direct");
    a.symmetric = b.symmetric = true;
    a.resume = b.resume = caps_r;
    a.resume_listed = b.resume_listed = true;
    struct line lb = enc(&b, PROTO_SHAKE, NULL);
    CHECK(!strstr(lb.b, "resume"));
    lb = edit(&lb, add_resume);
    CHECK_INT(ver(&a, PROTO_SHAKE, &lb, &at_a), SHAKE_OK);
    CHECK(!at_a.resume.has && !shake_resume_on(&a, &at_a));
    shake_wipe(&a);
    shake_wipe(&b);
}

/* ---- shake.code: a handshake bound to a wormhole code (PROTOCOL.md 8.2, 8.4, 18.2;
 * docs/design/wormhole.md 6.3) ---- */

static const unsigned char bind_a[SHAKE_BIND_BYTES] = {
    0x55, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};
static unsigned char bind_b[SHAKE_BIND_BYTES]; /* bind_a with one bit flipped */

static void strip_code(struct proto_msg *m)
{
    m->u.shake.code = false;
}

static void add_code(struct proto_msg *m)
{
    m->u.shake.code = true;
}

/* One sealed record from tx opened by a receiver under rx: whether it authenticated. */
static bool record_opens(const unsigned char *tx, const unsigned char *rx)
{
    struct seal_tx t;
    struct seal_rx r;
    unsigned char wire[SEAL_HEADER + 64], plain[SEAL_CHUNK];
    size_t n, used, plen, off = 0;
    enum seal_status st;
    seal_tx_init(&t, tx, wire);
    n = SEAL_HEADER + seal_tx_data(&t, "hello", 5, wire + SEAL_HEADER);
    seal_rx_init(&r, rx);
    do {
        st = seal_rx_next(&r, wire + off, n - off, &used, plain, &plen);
        off += used;
    } while (st == SEAL_NEED && used > 0 && off < n);
    return st == SEAL_DATA && plen == 5 && memcmp(plain, "hello", 5) == 0;
}

/* A full exchange with r's and i's bindings as given; the keys both sides derive, and the RS. */
static bool code_run(const unsigned char *rb, const unsigned char *ib, unsigned char *itx,
                     unsigned char *irx, unsigned char *rtx, unsigned char *rrx, unsigned char *irs,
                     unsigned char *rrs)
{
    struct shake_ctx r, i;
    struct shake_peer at_i = {0}, at_r = {0};
    bool ok = false;
    ctx(&r, PROTO_RESPONDER, &id_r, "bob", "alice");
    ctx(&i, PROTO_INITIATOR, &id_i, "alice", "bob");
    r.code_bind = rb;
    i.code_bind = ib;
    struct line l = enc(&r, PROTO_SHAKE, NULL);
    if (!CHECK(strstr(l.b, ",\"code\":true") != NULL) ||
        !CHECK_INT(ver(&i, PROTO_SHAKE, &l, &at_i), SHAKE_OK))
        goto out;
    l = enc(&i, PROTO_SHAKE, &at_i);
    if (!CHECK(strstr(l.b, ",\"code\":true") != NULL) ||
        !CHECK_INT(ver(&r, PROTO_SHAKE, &l, &at_r), SHAKE_OK))
        goto out;
    l = enc(&r, PROTO_CONFIRM, &at_r);
    if (!CHECK_INT(ver(&i, PROTO_CONFIRM, &l, &at_i), SHAKE_OK))
        goto out;
    CHECK(at_i.code && at_r.code);
    ok = CHECK(shake_keys_rs(&i, &at_i, itx, irx, irs) == 0) &&
         CHECK(shake_keys_rs(&r, &at_r, rtx, rrx, rrs) == 0);
out:
    shake_wipe(&r);
    shake_wipe(&i);
    return ok;
}

/* The same binding on both sides: one pair of keys and one RS, and a record passes. Another
 * binding on one side no longer gets that far: the handshake refuses it (t_code_split). Were
 * the signatures to let it through, every key would differ and the first record fail
 * authentication (the keys are still bound, a second line of defence). */
static void t_code_keys(void)
{
    unsigned char itx[32], irx[32], rtx[32], rrx[32], irs[32], rrs[32];
    struct shake_ctx i, r;
    struct shake_peer at_i = {.seen = true, .code = true}, at_r = {.seen = true, .code = true};
    memcpy(bind_b, bind_a, sizeof bind_b);
    bind_b[31] ^= 0x80;
    if (code_run(bind_a, bind_a, itx, irx, rtx, rrx, irs, rrs)) {
        CHECK(memcmp(itx, rrx, 32) == 0 && memcmp(irx, rtx, 32) == 0);
        CHECK(memcmp(irs, rrs, 32) == 0);
        CHECK(record_opens(itx, rrx) && record_opens(rtx, irx));
    }
    ctx(&r, PROTO_RESPONDER, &id_r, "bob", "alice");
    ctx(&i, PROTO_INITIATOR, &id_i, "alice", "bob");
    memcpy(at_i.key, id_r.pk, 32);
    memcpy(at_i.eph, r.eph_pk, 32);
    memcpy(at_r.key, id_i.pk, 32);
    memcpy(at_r.eph, i.eph_pk, 32);
    r.code_bind = bind_a;
    i.code_bind = bind_b;
    CHECK(shake_keys_rs(&i, &at_i, itx, irx, irs) == 0);
    CHECK(shake_keys_rs(&r, &at_r, rtx, rrx, rrs) == 0);
    CHECK(memcmp(itx, rrx, 32) != 0 && memcmp(irx, rtx, 32) != 0);
    CHECK(memcmp(irs, rrs, 32) != 0);
    CHECK(!record_opens(itx, rrx) && !record_opens(rtx, irx));
    shake_wipe(&r);
    shake_wipe(&i);
}

/* A server that knew the code ran one exchange with each side (PROTOCOL.md 8.2, 20.6): each
 * holds another binding key, with the other's real identity key pinned. The responder refuses
 * the initiator's signed shake with SHAKE_CODE (not a plain bad line: the wording says someone
 * who knew the code is in the middle), still fills what it saw, and its confirm is refused
 * by the initiator with SHAKE_CODE too: both sides learn it at the handshake. With the same
 * binding the same lines pass; a bad signature under a key we do not trust is not the code's
 * case; and a confirm from the right bind but tampered is SHAKE_CODE (it cannot be told from
 * another bind: a peer with the real key that signs badly is no more honest). */
static void t_code_split(void)
{
    struct shake_ctx r, i;
    struct shake_peer at_i = {0}, at_r = {0}, seen = {0};
    char why[1024];
    struct line l, cf;
    ctx(&r, PROTO_RESPONDER, &id_r, "bob", "alice");
    ctx(&i, PROTO_INITIATOR, &id_i, "alice", "bob");
    id_fingerprint(id_i.pk, r.trust.fp, sizeof r.trust.fp); /* the AD key, pinned */
    id_fingerprint(id_r.pk, i.trust.fp, sizeof i.trust.fp);
    r.code_bind = bind_a;
    i.code_bind = bind_b;
    l = enc(&r, PROTO_SHAKE, NULL);
    CHECK_INT(ver(&i, PROTO_SHAKE, &l, &at_i), SHAKE_OK); /* unsigned: nothing to tell yet */
    l = enc(&i, PROTO_SHAKE, &at_i);
    CHECK_INT(shake_verify(&r, PROTO_SHAKE, l.b, l.n, &at_r, why, sizeof why), SHAKE_CODE);
    CHECK(strstr(why, "someone who knew the code is in the middle") != NULL);
    CHECK(strstr(why, "the code is burned") != NULL);
    CHECK(at_r.seen && at_r.code && memcmp(at_r.key, id_i.pk, 32) == 0);
    cf = enc(&r, PROTO_CONFIRM, &at_r);
    CHECK(cf.n > 0);
    CHECK_INT(shake_verify(&i, PROTO_CONFIRM, cf.b, cf.n, &at_i, why, sizeof why), SHAKE_CODE);
    CHECK(strstr(why, "someone who knew the code is in the middle") != NULL);
    /* the same lines with one binding on both sides pass */
    i.code_bind = bind_a;
    l = enc(&i, PROTO_SHAKE, &at_i);
    memset(&at_r, 0, sizeof at_r);
    CHECK_INT(ver(&r, PROTO_SHAKE, &l, &at_r), SHAKE_OK);
    cf = enc(&r, PROTO_CONFIRM, &at_r);
    CHECK_INT(ver(&i, PROTO_CONFIRM, &cf, &at_i), SHAKE_OK);
    /* that confirm with its signature zeroed: the code's case, not a plain bad line */
    struct line bad = edit(&cf, zero_sig);
    CHECK_INT(ver(&i, PROTO_CONFIRM, &bad, &at_i), SHAKE_CODE);
    /* a bad signature under mallory's key (not the pinned one) is not the code's case */
    bad = edit(&l, mallory_key);
    memset(&seen, 0, sizeof seen);
    CHECK_INT(shake_verify(&r, PROTO_SHAKE, bad.b, bad.n, &seen, why, sizeof why), SHAKE_BAD);
    CHECK(!seen.seen && strstr(why, "signature") != NULL);
    /* without a code a bad signature stays a plain bad line, on both sides */
    r.code_bind = i.code_bind = NULL;
    memset(&at_i, 0, sizeof at_i);
    l = enc(&r, PROTO_SHAKE, NULL);
    CHECK_INT(ver(&i, PROTO_SHAKE, &l, &at_i), SHAKE_OK);
    l = enc(&i, PROTO_SHAKE, &at_i);
    bad = edit(&l, zero_sig);
    memset(&at_r, 0, sizeof at_r);
    CHECK_INT(ver(&r, PROTO_SHAKE, &bad, &at_r), SHAKE_BAD);
    CHECK(!at_r.seen);
    CHECK_INT(ver(&r, PROTO_SHAKE, &l, &at_r), SHAKE_OK);
    cf = enc(&r, PROTO_CONFIRM, &at_r);
    bad = edit(&cf, zero_sig);
    CHECK_INT(ver(&i, PROTO_CONFIRM, &bad, &at_i), SHAKE_BAD);
    shake_wipe(&r);
    shake_wipe(&i);
}

/* With the fixed keys of t_vector: no binding gives today's keys (VEC_I_TX, VEC_I_RX); a
 * binding gives the keys and RS PROTOCOL.md 8.4 and 18.2 define, recomputed here from the
 * text: the old transcript, then "code" || bind. */
static void t_code_vector(void)
{
    static struct identity vi, vr;
    struct shake_ctx i, r;
    struct shake_peer at_i = {.seen = true, .code = true}, at_r = {.seen = true, .code = true};
    unsigned char itx[32], irx[32], rtx[32], rrx[32], irs[32], rrs[32];
    unsigned char ck_rx[32], ck_tx[32], both[64], msg[512], want[32];
    size_t off = 0;
    char h[65];
    vec_ctx(&i, PROTO_INITIATOR, &vi, 0x11, 0x33, "alice", "bob");
    vec_ctx(&r, PROTO_RESPONDER, &vr, 0x22, 0x44, "bob", "alice");
    memcpy(at_i.key, vr.pk, 32);
    memcpy(at_i.eph, r.eph_pk, 32);
    memcpy(at_r.key, vi.pk, 32);
    memcpy(at_r.eph, i.eph_pk, 32);
    i.code_bind = r.code_bind = bind_a;
    CHECK(shake_keys_rs(&i, &at_i, itx, irx, irs) == 0);
    CHECK(shake_keys_rs(&r, &at_r, rtx, rrx, rrs) == 0);
    CHECK(memcmp(itx, rrx, 32) == 0 && memcmp(irx, rtx, 32) == 0 && memcmp(irs, rrs, 32) == 0);
    hex(itx, 32, h);
    CHECK(strcmp(h, VEC_I_TX) != 0);
    /* tx = BLAKE2b-256(key = kx_tx, "tcpunch-keys-v1" || session || eph_I || eph_R || key_I ||
     * key_R || "code" || bind), rx with kx_rx, RS under its label keyed with both */
    CHECK(crypto_kx_client_session_keys(ck_rx, ck_tx, i.eph_pk, i.eph_sk, r.eph_pk) == 0);
    memcpy(msg, "tcpunch-keys-v1", 15), off = 15;
    memcpy(msg + off, SESSION, 32), off += 32;
    memcpy(msg + off, i.eph_pk, 32), off += 32;
    memcpy(msg + off, r.eph_pk, 32), off += 32;
    memcpy(msg + off, vi.pk, 32), off += 32;
    memcpy(msg + off, vr.pk, 32), off += 32;
    memcpy(msg + off, "code", 4), off += 4;
    memcpy(msg + off, bind_a, 32), off += 32;
    crypto_generichash(want, 32, msg, off, ck_tx, 32);
    CHECK(memcmp(itx, want, 32) == 0);
    crypto_generichash(want, 32, msg, off, ck_rx, 32);
    CHECK(memcmp(irx, want, 32) == 0);
    /* without the suffix: exactly today's vector */
    crypto_generichash(want, 32, msg, off - 36, ck_tx, 32);
    hex(want, 32, h);
    CHECK_STR(h, VEC_I_TX);
    memmove(msg + 17, msg + 15, off - 15), off += 2;
    memcpy(msg, "tcpunch-resume-v1", 17);
    memcpy(both, ck_tx, 32);
    memcpy(both + 32, ck_rx, 32);
    crypto_generichash(want, 32, msg, off, both, 64);
    CHECK(memcmp(irs, want, 32) == 0);
    /* no binding on either side: today's keys, byte for byte */
    i.code_bind = r.code_bind = NULL;
    at_i.code = at_r.code = false;
    CHECK(shake_keys(&i, &at_i, itx, irx) == 0);
    hex(itx, 32, h);
    CHECK_STR(h, VEC_I_TX);
    hex(irx, 32, h);
    CHECK_STR(h, VEC_I_RX);
    /* keys are never made for a peer whose "code" is not ours */
    at_i.code = true;
    CHECK(shake_keys(&i, &at_i, itx, irx) < 0);
    i.code_bind = bind_a;
    at_i.code = false;
    CHECK(shake_keys_rs(&i, &at_i, itx, irx, irs) < 0);
    shake_wipe(&i);
    shake_wipe(&r);
}

/* The signatures of a code handshake are not today's (the blocks are covered); without a
 * binding they are today's vector. */
static void t_code_vector_sigs(void)
{
    static struct identity vi, vr;
    struct shake_ctx i, r;
    struct shake_peer at_i = {0}, at_r = {0};
    char isig[129], rsig[129];
    vec_ctx(&i, PROTO_INITIATOR, &vi, 0x11, 0x33, "alice", "bob");
    vec_ctx(&r, PROTO_RESPONDER, &vr, 0x22, 0x44, "bob", "alice");
    unsigned char t[512], proof[32], sig[64], pmsg[21 + 32];
    char want[129];
    size_t off = 0;
    i.code_bind = r.code_bind = bind_a;
    vec_sigs(&i, &r, &at_i, &at_r, isig, rsig);
    CHECK(strcmp(isig, VEC_I_SIG) != 0 && strcmp(rsig, VEC_R_SIG) != 0);
    /* the initiator's signature recomputed from PROTOCOL.md 8.2: today's bytes, "code" for
     * each shake, then the proof HMAC-SHA-512-256(bind, "tcpunch-code-proof-v1" || session) */
    memcpy(pmsg, "tcpunch-code-proof-v1", 21);
    memcpy(pmsg + 21, SESSION, 32);
    crypto_auth_hmacsha512256(proof, pmsg, sizeof pmsg, bind_a);
    memcpy(t, "tcpunch-shake-v1", 17), off = 17;
    memcpy(t + off, SESSION, 32), off += 32;
    t[off++] = 'I';
    memcpy(t + off, r.eph_pk, 32), off += 32;
    memcpy(t + off, i.eph_pk, 32), off += 32;
    memcpy(t + off, vr.pk, 32), off += 32;
    memcpy(t + off, vi.pk, 32), off += 32;
    memcpy(t + off, "bob", 4), off += 4;
    memcpy(t + off, "alice", 6), off += 6;
    memcpy(t + off, "codecode", 8), off += 8;
    memcpy(t + off, proof, 32), off += 32;
    crypto_sign_detached(sig, NULL, t, off, vi.sk);
    hex(sig, 64, want);
    CHECK_STR(isig, want);
    i.code_bind = r.code_bind = NULL;
    memset(&at_i, 0, sizeof at_i);
    memset(&at_r, 0, sizeof at_r);
    vec_sigs(&i, &r, &at_i, &at_r, isig, rsig);
    CHECK_STR(isig, VEC_I_SIG);
    CHECK_STR(rsig, VEC_R_SIG);
    shake_wipe(&i);
    shake_wipe(&r);
}

/* A shake whose "code" is not what we expect is refused like a changed key (SHAKE_REFUSED, exit
 * 4), on either side: one side has a code and the other none, or a meddler strips or adds the
 * member on the way. rb/ib: the bindings; fr/fi: edits of the responder's and the initiator's
 * shake on the way. Returns the first verdict that is not SHAKE_OK, and which side gave it. */
static enum shake_verdict code_case(const unsigned char *rb, const unsigned char *ib,
                                    void (*fr)(struct proto_msg *), void (*fi)(struct proto_msg *),
                                    char *at, char *why, size_t whylen)
{
    struct shake_ctx r, i;
    struct shake_peer at_i = {0}, at_r = {0};
    enum shake_verdict v;
    ctx(&r, PROTO_RESPONDER, &id_r, "bob", "alice");
    ctx(&i, PROTO_INITIATOR, &id_i, "alice", "bob");
    r.code_bind = rb;
    i.code_bind = ib;
    struct line l = enc(&r, PROTO_SHAKE, NULL);
    if (fr)
        l = edit(&l, fr);
    *at = 'I';
    if ((v = shake_verify(&i, PROTO_SHAKE, l.b, l.n, &at_i, why, whylen)) != SHAKE_OK)
        goto out;
    l = enc(&i, PROTO_SHAKE, &at_i);
    if (fi)
        l = edit(&l, fi);
    *at = 'R';
    if ((v = shake_verify(&r, PROTO_SHAKE, l.b, l.n, &at_r, why, whylen)) != SHAKE_OK)
        goto out;
    l = enc(&r, PROTO_CONFIRM, &at_r);
    *at = 'C';
    v = shake_verify(&i, PROTO_CONFIRM, l.b, l.n, &at_i, why, whylen);
out:
    shake_wipe(&r);
    shake_wipe(&i);
    return v;
}

static void t_code_mismatch(void)
{
    char why[1024], at;
    /* the responder has a code, the initiator none: the initiator refuses the first line */
    CHECK_INT(code_case(bind_a, NULL, NULL, NULL, &at, why, sizeof why), SHAKE_REFUSED);
    CHECK(at == 'I' && strstr(why, "CODE MISMATCH") && strstr(why, "has none"));
    /* the initiator has a code, the responder none */
    CHECK_INT(code_case(NULL, bind_a, NULL, NULL, &at, why, sizeof why), SHAKE_REFUSED);
    CHECK(at == 'I' && strstr(why, "CODE MISMATCH") && strstr(why, "not bound"));
    /* both have it; a meddler strips it from the responder's shake, or from the initiator's */
    CHECK_INT(code_case(bind_a, bind_a, strip_code, NULL, &at, why, sizeof why), SHAKE_REFUSED);
    CHECK(at == 'I' && strstr(why, "not bound"));
    CHECK_INT(code_case(bind_a, bind_a, NULL, strip_code, &at, why, sizeof why), SHAKE_REFUSED);
    CHECK(at == 'R' && strstr(why, "not bound"));
    /* neither has one; a meddler adds it to either shake */
    CHECK_INT(code_case(NULL, NULL, add_code, NULL, &at, why, sizeof why), SHAKE_REFUSED);
    CHECK(at == 'I');
    CHECK_INT(code_case(NULL, NULL, NULL, add_code, &at, why, sizeof why), SHAKE_REFUSED);
    CHECK(at == 'R');
    /* re-encoded unchanged, the same runs pass: the edits are what fails them */
    CHECK_INT(code_case(bind_a, bind_a, keep, keep, &at, why, sizeof why), SHAKE_OK);
    CHECK_INT(code_case(NULL, NULL, keep, keep, &at, why, sizeof why), SHAKE_OK);
    /* different bindings: the responder refuses the initiator's signature (t_code_split) */
    CHECK_INT(code_case(bind_a, bind_b, NULL, NULL, &at, why, sizeof why), SHAKE_CODE);
    CHECK(at == 'R' && strstr(why, "code exchange was not with this peer"));
}

/* Both signatures cover the member, so stripping it is caught even by a side that would not
 * look at the flag: the initiator's signed shake with "code" stripped does not verify for a
 * responder without a code (which would take a shake without it), and the responder's confirm
 * of a code handshake does not verify for an initiator that believes there was none. */
static void t_code_signed(void)
{
    struct shake_ctx r, i, r0, i0;
    struct shake_peer at_i = {0}, at_r = {0}, at_r0 = {0}, at_i0;
    char why[1024];
    ctx(&r, PROTO_RESPONDER, &id_r, "bob", "alice");
    ctx(&i, PROTO_INITIATOR, &id_i, "alice", "bob");
    r.code_bind = i.code_bind = bind_a;
    struct line l = enc(&r, PROTO_SHAKE, NULL);
    CHECK_INT(ver(&i, PROTO_SHAKE, &l, &at_i), SHAKE_OK);
    l = enc(&i, PROTO_SHAKE, &at_i);
    struct line stripped = edit(&l, strip_code);
    CHECK(stripped.n > 0 && !strstr(stripped.b, "code"));
    r0 = r;
    r0.code_bind = NULL;
    CHECK_INT(shake_verify(&r0, PROTO_SHAKE, stripped.b, stripped.n, &at_r0, why, sizeof why),
              SHAKE_BAD);
    CHECK(strstr(why, "signature") != NULL);
    /* the real responder takes the real line and confirms */
    CHECK_INT(ver(&r, PROTO_SHAKE, &l, &at_r), SHAKE_OK);
    l = enc(&r, PROTO_CONFIRM, &at_r);
    i0 = i;
    i0.code_bind = NULL;
    at_i0 = at_i;
    at_i0.code = false;
    CHECK_INT(shake_verify(&i0, PROTO_CONFIRM, l.b, l.n, &at_i0, why, sizeof why), SHAKE_BAD);
    CHECK_INT(ver(&i, PROTO_CONFIRM, &l, &at_i), SHAKE_OK);
    shake_wipe(&r);
    shake_wipe(&i);
}

/* Direct mode has no code: a binding set there is not announced or mixed in, and a "code" it is
 * shown is ignored, as shake.resume is. */
static void t_code_direct(void)
{
    struct shake_ctx a, b;
    struct shake_peer at_a = {0}, at_b = {0};
    unsigned char atx[32], arx[32], btx[32], brx[32];
    ctx(&a, PROTO_RESPONDER, &id_i, "direct", "direct");
    ctx(&b, PROTO_RESPONDER, &id_r, "direct", "direct");
    a.symmetric = b.symmetric = true;
    a.code_bind = bind_a;
    struct line la = enc(&a, PROTO_SHAKE, NULL), lb = enc(&b, PROTO_SHAKE, NULL);
    CHECK(!strstr(la.b, "code") && !strstr(lb.b, "code"));
    lb = edit(&lb, add_code);
    CHECK_INT(ver(&a, PROTO_SHAKE, &lb, &at_a), SHAKE_OK);
    CHECK_INT(ver(&b, PROTO_SHAKE, &la, &at_b), SHAKE_OK);
    CHECK(!at_a.code && !at_b.code);
    shake_direct_role(&a, &at_a);
    shake_direct_role(&b, &at_b);
    CHECK(shake_keys(&a, &at_a, atx, arx) == 0 && shake_keys(&b, &at_b, btx, brx) == 0);
    CHECK(memcmp(atx, brx, 32) == 0 && memcmp(arx, btx, 32) == 0);
    shake_wipe(&a);
    shake_wipe(&b);
}

static void t_setup(void)
{
    if (sodium_init() < 0)
        exit(1);
    crypto_sign_keypair(id_i.pk, id_i.sk);
    crypto_sign_keypair(id_r.pk, id_r.sk);
    crypto_sign_keypair(id_m.pk, id_m.sk);
}

CHECK_MAIN(TEST(t_setup), TEST(t_exchange), TEST(t_initiator_needs_the_peer),
           TEST(t_bad_signatures), TEST(t_wrong_key), TEST(t_replay), TEST(t_direct),
           TEST(t_low_order_eph), TEST(t_vector), TEST(t_resumption_secret), TEST(t_vector_sigs),
           TEST(t_resume_combinations), TEST(t_resume_tampered), TEST(t_resume_vector),
           TEST(t_resume_direct), TEST(t_code_keys), TEST(t_code_vector), TEST(t_code_vector_sigs),
           TEST(t_code_mismatch), TEST(t_code_signed), TEST(t_code_direct), TEST(t_code_split))
