/* The resume handshake (peer/rshake.c, design resume.md 4.4): a full exchange agreeing on the
 * new connection's keys (also from a real shake's resumption secret), and what it must stop: a
 * replayed line (an earlier epoch, or this epoch's line against a fresh attempt), a reflected
 * line, someone else's session (another RS), any tampered member, lines that break the strict
 * rules; and keys that differ per epoch. */
#include "check.h"
#include "peer/rshake.h"

#include <jansson.h>
#include <stdlib.h>

#define S1 "0123456789abcdef0123456789abcdef" /* the new punch's session */
#define S2 "00112233445566778899aabbccddeeff" /* a later punch's */
#define ROOT "fedcba9876543210fedcba9876543210"

static unsigned char rs_a[SHAKE_RS_BYTES], rs_b[SHAKE_RS_BYTES]; /* our session's; another's */

struct line {
    char b[PROTO_MAX_LINE + 64];
    size_t n; /* without the newline */
};

static void ctx(struct rshake_ctx *c, enum proto_role role, const char *session,
                const unsigned char *rs, uint32_t last, uint64_t rx)
{
    bool init = role == PROTO_INITIATOR;
    memset(c, 0, sizeof *c);
    snprintf(c->session, sizeof c->session, "%s", session);
    snprintf(c->root, sizeof c->root, "%s", ROOT);
    snprintf(c->self, sizeof c->self, "%s", init ? "alice" : "bob");
    snprintf(c->peer, sizeof c->peer, "%s", init ? "bob" : "alice");
    c->role = role;
    c->rs = rs;
    c->last_epoch = last;
    c->rx = rx;
    rshake_init(c);
}

static struct line enc(const struct rshake_ctx *c, enum rshake_type t, const struct rshake_peer *p)
{
    struct line l;
    int n = rshake_encode(c, t, p, l.b, PROTO_MAX_LINE);
    l.n = n > 0 ? (size_t)n - 1 : 0;
    l.b[n > 0 ? n : 0] = '\0';
    if (n > 0)
        CHECK(l.b[n - 1] == '\n');
    return l;
}

static enum shake_verdict ver(const struct rshake_ctx *c, enum rshake_type t, const struct line *l,
                              struct rshake_peer *p)
{
    char why[512] = "";
    enum shake_verdict v = rshake_verify(c, t, l->b, l->n, p, why, sizeof why);
    if (v != SHAKE_OK && getenv("RSHAKE_VERBOSE"))
        fprintf(stderr, "  refused: %s\n", why);
    return v;
}

/* The line with member key set to val (NULL: removed). */
static struct line edit(const struct line *in, const char *key, json_t *val)
{
    struct line out = {"", 0};
    json_t *o = json_loadb(in->b, in->n, 0, NULL);
    if (!CHECK(o))
        return out;
    if (val)
        json_object_set_new(o, key, val);
    else
        json_object_del(o, key);
    out.n = json_dumpb(o, out.b, sizeof out.b - 1, JSON_COMPACT);
    out.b[out.n] = '\0';
    json_decref(o);
    return out;
}

static struct line raw(const char *text)
{
    struct line l;
    snprintf(l.b, sizeof l.b, "%s", text);
    l.n = strlen(l.b);
    return l;
}

/* The three lines; whether both accepted, agreed on keys (into itx/irx when given) and saw each
 * other's offsets. */
static bool exchange(struct rshake_ctx *r, struct rshake_ctx *i, unsigned char *itx,
                     unsigned char *irx)
{
    struct rshake_peer at_i = {0}, at_r = {0};
    unsigned char tx1[32], rx1[32], tx2[32], rx2[32];
    struct line l = enc(r, RSHAKE_RESUME, NULL);
    if (!CHECK(l.n > 0) || !CHECK_INT(ver(i, RSHAKE_RESUME, &l, &at_i), SHAKE_OK))
        return false;
    CHECK_INT(at_i.epoch, r->last_epoch + 1);
    CHECK(rshake_keys(i, &at_i, tx1, rx1) < 0); /* nothing before resumed */
    l = enc(i, RSHAKE_RESUME, &at_i);
    if (!CHECK(l.n > 0) || !CHECK_INT(ver(r, RSHAKE_RESUME, &l, &at_r), SHAKE_OK))
        return false;
    CHECK(at_r.rx == i->rx);
    l = enc(r, RSHAKE_RESUMED, &at_r);
    if (!CHECK(l.n > 0) || !CHECK_INT(ver(i, RSHAKE_RESUMED, &l, &at_i), SHAKE_OK))
        return false;
    CHECK(at_i.done && at_i.rx == r->rx && at_i.gone == r->gone);
    if (!CHECK(rshake_keys(i, &at_i, tx1, rx1) == 0) ||
        !CHECK(rshake_keys(r, &at_r, tx2, rx2) == 0))
        return false;
    CHECK(memcmp(tx1, rx2, 32) == 0);
    CHECK(memcmp(rx1, tx2, 32) == 0);
    CHECK(memcmp(tx1, rx1, 32) != 0);
    if (itx)
        memcpy(itx, tx1, 32);
    if (irx)
        memcpy(irx, rx1, 32);
    return memcmp(tx1, rx2, 32) == 0 && memcmp(rx1, tx2, 32) == 0;
}

static void t_exchange(void)
{
    struct rshake_ctx r, i;
    ctx(&r, PROTO_RESPONDER, S1, rs_a, 0, 123456789);
    ctx(&i, PROTO_INITIATOR, S1, rs_a, 0, (UINT64_C(1) << 40) + 7);
    CHECK(exchange(&r, &i, NULL, NULL));
    /* the lines carry what the design says, and the offer no MAC */
    struct rshake_peer at_i = {0};
    struct line l = enc(&r, RSHAKE_RESUME, NULL);
    CHECK(strstr(l.b, "\"type\":\"resume\"") && strstr(l.b, "\"root\":\"" ROOT "\"") &&
          strstr(l.b, "\"epoch\":1") && strstr(l.b, "\"eph\":\"") && !strstr(l.b, "\"mac\"") &&
          !strstr(l.b, "\"rx\""));
    CHECK_INT(ver(&i, RSHAKE_RESUME, &l, &at_i), SHAKE_OK);
    l = enc(&i, RSHAKE_RESUME, &at_i);
    CHECK(strstr(l.b, "\"rx\":1099511627783") && strstr(l.b, "\"mac\":\""));
    /* lines not ours to send */
    char b[PROTO_MAX_LINE];
    struct rshake_peer none = {0};
    CHECK(rshake_encode(&i, RSHAKE_RESUME, NULL, b, sizeof b) < 0);
    CHECK(rshake_encode(&i, RSHAKE_RESUME, &none, b, sizeof b) < 0);
    CHECK(rshake_encode(&i, RSHAKE_RESUMED, &at_i, b, sizeof b) < 0);
    CHECK(rshake_encode(&r, RSHAKE_RESUMED, &none, b, sizeof b) < 0);
    CHECK(rshake_encode(&r, RSHAKE_RESUME, NULL, b, 20) < 0); /* no room */
    rshake_wipe(&r);
    rshake_wipe(&i);
}

/* RS from a real shake: both sides' shake_keys_rs work as the resume's secret. */
static void t_from_shake(void)
{
    static struct identity id_i, id_r;
    struct shake_ctx si, sr;
    struct shake_peer pi = {.seen = true}, pr = {.seen = true};
    unsigned char stx[32], srx[32], rs_i[32], rs_r[32], t2[32], r2[32], itx[32], irx[32];
    crypto_sign_keypair(id_i.pk, id_i.sk);
    crypto_sign_keypair(id_r.pk, id_r.sk);
    memset(&si, 0, sizeof si);
    memset(&sr, 0, sizeof sr);
    snprintf(si.session, sizeof si.session, "%s", ROOT);
    snprintf(sr.session, sizeof sr.session, "%s", ROOT);
    si.role = PROTO_INITIATOR;
    sr.role = PROTO_RESPONDER;
    si.ident = &id_i;
    sr.ident = &id_r;
    shake_init(&si);
    shake_init(&sr);
    memcpy(pi.key, id_r.pk, 32);
    memcpy(pi.eph, sr.eph_pk, 32);
    memcpy(pr.key, id_i.pk, 32);
    memcpy(pr.eph, si.eph_pk, 32);
    CHECK(shake_keys_rs(&si, &pi, stx, srx, rs_i) == 0);
    CHECK(shake_keys_rs(&sr, &pr, t2, r2, rs_r) == 0);
    CHECK(memcmp(rs_i, rs_r, 32) == 0);
    shake_wipe(&si);
    shake_wipe(&sr);

    struct rshake_ctx r, i;
    ctx(&r, PROTO_RESPONDER, S1, rs_r, 0, 10);
    ctx(&i, PROTO_INITIATOR, S1, rs_i, 0, 20);
    CHECK(exchange(&r, &i, itx, irx));
    /* the epoch's keys are not epoch 0's */
    CHECK(memcmp(itx, stx, 32) != 0 && memcmp(irx, srx, 32) != 0);
}

/* Epochs: the initiator takes only an epoch above its last, the responder only the one it
 * offered, and the keys of two epochs differ even with the same ephemeral keys. */
static void t_epochs(void)
{
    struct rshake_ctx r, i;
    struct rshake_peer p = {0}, q;
    struct line l;
    unsigned char tx1[32], rx1[32], tx2[32], rx2[32];

    ctx(&r, PROTO_RESPONDER, S1, rs_a, 2, 0);
    ctx(&i, PROTO_INITIATOR, S1, rs_a, 3, 0);
    l = enc(&r, RSHAKE_RESUME, NULL); /* epoch 3: not above the initiator's last */
    CHECK(strstr(l.b, "\"epoch\":3"));
    CHECK_INT(ver(&i, RSHAKE_RESUME, &l, &p), SHAKE_BAD);
    CHECK(!p.seen);
    r.last_epoch = 1; /* epoch 2: older still */
    l = enc(&r, RSHAKE_RESUME, NULL);
    CHECK_INT(ver(&i, RSHAKE_RESUME, &l, &p), SHAKE_BAD);
    r.last_epoch = 3; /* epoch 4 */
    CHECK(exchange(&r, &i, NULL, NULL));
    r.last_epoch = 9; /* a jump is fine: above the last */
    CHECK(exchange(&r, &i, NULL, NULL));
    l = edit(&l, "epoch", json_integer(0));
    CHECK_INT(ver(&i, RSHAKE_RESUME, &l, &p), SHAKE_BAD);

    /* an answer with a valid MAC but for another epoch than offered: refused by the responder */
    ctx(&r, PROTO_RESPONDER, S1, rs_a, 0, 0);
    ctx(&i, PROTO_INITIATOR, S1, rs_a, 0, 0);
    memset(&p, 0, sizeof p);
    l = enc(&r, RSHAKE_RESUME, NULL);
    CHECK_INT(ver(&i, RSHAKE_RESUME, &l, &p), SHAKE_OK);
    p.epoch = 5;
    l = enc(&i, RSHAKE_RESUME, &p);
    memset(&q, 0, sizeof q);
    CHECK_INT(ver(&r, RSHAKE_RESUME, &l, &q), SHAKE_BAD);
    r.last_epoch = 4; /* it offered 5: then the same line is good */
    CHECK_INT(ver(&r, RSHAKE_RESUME, &l, &q), SHAKE_OK);

    /* no epoch left */
    char b[PROTO_MAX_LINE];
    r.last_epoch = UINT32_MAX;
    CHECK(rshake_encode(&r, RSHAKE_RESUME, NULL, b, sizeof b) < 0);
    CHECK_INT(rshake_next_epoch(&r), 0);

    /* the same ephemeral keys, other epochs: other keys */
    struct rshake_peer pe = {.seen = true, .done = true, .epoch = 1};
    memcpy(pe.eph, r.eph_pk, 32);
    CHECK(rshake_keys(&i, &pe, tx1, rx1) == 0);
    pe.epoch = 2;
    CHECK(rshake_keys(&i, &pe, tx2, rx2) == 0);
    CHECK(memcmp(tx1, tx2, 32) != 0 && memcmp(rx1, rx2, 32) != 0);
    /* and another punch session, or another root: other keys */
    struct rshake_ctx i2 = i;
    snprintf(i2.session, sizeof i2.session, "%s", S2);
    CHECK(rshake_keys(&i2, &pe, tx1, rx1) == 0);
    CHECK(memcmp(tx1, tx2, 32) != 0);
    i2 = i;
    snprintf(i2.root, sizeof i2.root, "%s", S2);
    CHECK(rshake_keys(&i2, &pe, tx1, rx1) == 0);
    CHECK(memcmp(tx1, tx2, 32) != 0);
    i2 = i;
    i2.rs = rs_b;
    CHECK(rshake_keys(&i2, &pe, tx1, rx1) == 0);
    CHECK(memcmp(tx1, tx2, 32) != 0);
}

/* Recorded lines of one attempt never verify in another. */
static void t_replay(void)
{
    struct rshake_ctx r, i, r2, i2;
    struct rshake_peer at_i = {0}, at_r = {0}, p = {0};
    struct line offer, answer, resumed;

    ctx(&r, PROTO_RESPONDER, S1, rs_a, 0, 50);
    ctx(&i, PROTO_INITIATOR, S1, rs_a, 0, 60);
    offer = enc(&r, RSHAKE_RESUME, NULL);
    CHECK_INT(ver(&i, RSHAKE_RESUME, &offer, &at_i), SHAKE_OK);
    answer = enc(&i, RSHAKE_RESUME, &at_i);
    CHECK_INT(ver(&r, RSHAKE_RESUME, &answer, &at_r), SHAKE_OK);
    resumed = enc(&r, RSHAKE_RESUMED, &at_r);
    CHECK_INT(ver(&i, RSHAKE_RESUMED, &resumed, &at_i), SHAKE_OK);

    /* the same epoch's answer against a fresh responder attempt (its new key): refused */
    ctx(&r2, PROTO_RESPONDER, S1, rs_a, 0, 50);
    CHECK_INT(ver(&r2, RSHAKE_RESUME, &answer, &p), SHAKE_BAD);
    CHECK(!p.seen);
    /* the resumed against a fresh initiator attempt that took a new offer: refused */
    ctx(&i2, PROTO_INITIATOR, S1, rs_a, 0, 60);
    struct rshake_peer at_i2 = {0};
    struct line offer2 = enc(&r2, RSHAKE_RESUME, NULL);
    CHECK_INT(ver(&i2, RSHAKE_RESUME, &offer2, &at_i2), SHAKE_OK);
    CHECK_INT(ver(&i2, RSHAKE_RESUMED, &resumed, &at_i2), SHAKE_BAD);
    CHECK(!at_i2.done);
    /* even with the recorded offer accepted first (the attacker replays both): the fresh
     * initiator key is not what the recorded resumed covers */
    struct rshake_peer at_i3 = {0};
    CHECK_INT(ver(&i2, RSHAKE_RESUME, &offer, &at_i3), SHAKE_OK); /* the offer has no MAC */
    CHECK_INT(ver(&i2, RSHAKE_RESUMED, &resumed, &at_i3), SHAKE_BAD);

    /* after epoch 1 was accepted: its recorded offer and answer are an earlier epoch */
    i.last_epoch = 1;
    r.last_epoch = 1;
    memset(&p, 0, sizeof p);
    CHECK_INT(ver(&i, RSHAKE_RESUME, &offer, &p), SHAKE_BAD);
    CHECK_INT(ver(&r, RSHAKE_RESUME, &answer, &p), SHAKE_BAD);
    /* a later punch (session S2) of the same session: the recorded lines are for S1 */
    ctx(&r2, PROTO_RESPONDER, S2, rs_a, 0, 50);
    ctx(&i2, PROTO_INITIATOR, S2, rs_a, 0, 60);
    memcpy(r2.eph_pk, r.eph_pk, 32); /* even with the very same keys */
    memcpy(r2.eph_sk, r.eph_sk, 32);
    CHECK_INT(ver(&i2, RSHAKE_RESUME, &offer, &p), SHAKE_BAD);
    CHECK_INT(ver(&r2, RSHAKE_RESUME, &answer, &p), SHAKE_BAD);
    /* a line relabelled to S2 keeps S1's MAC */
    struct line moved = edit(&answer, "session", json_string(S2));
    CHECK_INT(ver(&r2, RSHAKE_RESUME, &moved, &p), SHAKE_BAD);
    rshake_wipe(&r);
    rshake_wipe(&i);
    rshake_wipe(&r2);
    rshake_wipe(&i2);
}

/* Our own lines sent back, or a MAC of one role presented as the other's. */
static void t_reflection(void)
{
    struct rshake_ctx r, i;
    struct rshake_peer at_i = {0}, at_r = {0}, p = {0};
    struct line offer, answer, l;
    char mac[64];

    ctx(&r, PROTO_RESPONDER, S1, rs_a, 0, 0);
    ctx(&i, PROTO_INITIATOR, S1, rs_a, 0, 0);
    offer = enc(&r, RSHAKE_RESUME, NULL);
    CHECK_INT(ver(&i, RSHAKE_RESUME, &offer, &at_i), SHAKE_OK);
    answer = enc(&i, RSHAKE_RESUME, &at_i);

    /* as sent: from/to are the wrong way round */
    CHECK_INT(ver(&r, RSHAKE_RESUME, &offer, &p), SHAKE_BAD);
    CHECK_INT(ver(&i, RSHAKE_RESUME, &answer, &p), SHAKE_BAD);
    json_t *o = json_loadb(answer.b, answer.n, 0, NULL);
    snprintf(mac, sizeof mac, "%s", json_string_value(json_object_get(o, "mac")));
    json_decref(o);
    /* with from/to swapped: our own key */
    l = edit(&offer, "from", json_string("alice"));
    l = edit(&l, "to", json_string("bob"));
    l = edit(&l, "rx", json_integer(0));
    l = edit(&l, "mac", json_string(mac));
    CHECK_INT(ver(&r, RSHAKE_RESUME, &l, &p), SHAKE_BAD);
    CHECK(!p.seen);
    l = edit(&answer, "from", json_string("bob"));
    l = edit(&l, "to", json_string("alice"));
    l = edit(&l, "rx", NULL);
    l = edit(&l, "mac", NULL);
    CHECK_INT(ver(&i, RSHAKE_RESUME, &l, &p), SHAKE_BAD);

    /* the initiator's MAC as a resumed (the role letter differs), the same rx */
    CHECK_INT(ver(&r, RSHAKE_RESUME, &answer, &at_r), SHAKE_OK);
    l = enc(&r, RSHAKE_RESUMED, &at_r);
    l = edit(&l, "mac", json_string(mac));
    l = edit(&l, "rx", json_integer(0));
    CHECK_INT(ver(&i, RSHAKE_RESUMED, &l, &at_i), SHAKE_BAD);
    CHECK(!at_i.done);
    /* the resumed itself is still good: only the reflection failed */
    l = enc(&r, RSHAKE_RESUMED, &at_r);
    CHECK_INT(ver(&i, RSHAKE_RESUMED, &l, &at_i), SHAKE_OK);
    /* and a responder never takes a resumed */
    CHECK_INT(ver(&r, RSHAKE_RESUMED, &l, &at_r), SHAKE_BAD);
}

/* Someone else's session: another resumption secret, all else equal. */
static void t_wrong_rs(void)
{
    struct rshake_ctx r, i, rb;
    struct rshake_peer at_i = {0}, at_r = {0}, p = {0};
    struct line l;

    ctx(&r, PROTO_RESPONDER, S1, rs_a, 0, 0);
    ctx(&i, PROTO_INITIATOR, S1, rs_b, 0, 0);
    l = enc(&r, RSHAKE_RESUME, NULL);
    CHECK_INT(ver(&i, RSHAKE_RESUME, &l, &at_i), SHAKE_OK); /* the offer proves nothing */
    l = enc(&i, RSHAKE_RESUME, &at_i);
    CHECK_INT(ver(&r, RSHAKE_RESUME, &l, &p), SHAKE_BAD);
    CHECK(!p.seen);

    /* a responder with the other secret answering the real initiator's answer */
    ctx(&i, PROTO_INITIATOR, S1, rs_a, 0, 0);
    ctx(&rb, PROTO_RESPONDER, S1, rs_b, 0, 0);
    memset(&at_i, 0, sizeof at_i);
    l = enc(&rb, RSHAKE_RESUME, NULL);
    CHECK_INT(ver(&i, RSHAKE_RESUME, &l, &at_i), SHAKE_OK);
    l = enc(&i, RSHAKE_RESUME, &at_i);
    /* rb cannot verify it; it forges at_r as if it had */
    CHECK_INT(ver(&rb, RSHAKE_RESUME, &l, &at_r), SHAKE_BAD);
    json_t *o = json_loadb(l.b, l.n, 0, NULL);
    at_r.seen = true;
    at_r.epoch = 1;
    CHECK(sodium_base642bin(at_r.eph, 32, json_string_value(json_object_get(o, "eph")), 44, NULL,
                            NULL, NULL, sodium_base64_VARIANT_ORIGINAL) == 0);
    json_decref(o);
    l = enc(&rb, RSHAKE_RESUMED, &at_r);
    CHECK_INT(ver(&i, RSHAKE_RESUMED, &l, &at_i), SHAKE_BAD);
    CHECK(!at_i.done);

    /* no secret at all */
    r.rs = NULL;
    char b[PROTO_MAX_LINE];
    CHECK(rshake_encode(&r, RSHAKE_RESUME, NULL, b, sizeof b) < 0);
    CHECK_INT(ver(&r, RSHAKE_RESUME, &l, &p), SHAKE_BAD);
}

/* Every member of the answer and of resumed is covered; the offer's are checked or covered
 * later (a tampered offer fails the exchange at the responder). */
static void t_tamper(void)
{
    struct rshake_ctx r, i;
    struct rshake_peer at_i = {0}, at_r = {0}, p;
    struct line offer, answer, resumed, l;

    ctx(&r, PROTO_RESPONDER, S1, rs_a, 0, 1000);
    ctx(&i, PROTO_INITIATOR, S1, rs_a, 0, 2000);
    offer = enc(&r, RSHAKE_RESUME, NULL);
    CHECK_INT(ver(&i, RSHAKE_RESUME, &offer, &at_i), SHAKE_OK);
    answer = enc(&i, RSHAKE_RESUME, &at_i);

    struct {
        const char *key;
        json_t *val;
    } answer_edits[] = {
        {"rx", json_integer(2001)},
        {"rx", json_integer(0)},
        {"epoch", json_integer(2)},
        {"session", json_string(S2)},
        {"root", json_string(S2)},
        {"from", json_string("mallory")},
        {"to", json_string("carol")},
        {"eph", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")},
        {"mac", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")},
    };
    for (size_t k = 0; k < sizeof answer_edits / sizeof answer_edits[0]; k++) {
        memset(&p, 0, sizeof p);
        l = edit(&answer, answer_edits[k].key, answer_edits[k].val);
        if (!CHECK_INT(ver(&r, RSHAKE_RESUME, &l, &p), SHAKE_BAD))
            fprintf(stderr, "  accepted with %s changed\n", answer_edits[k].key);
        CHECK(!p.seen);
    }
    CHECK_INT(ver(&r, RSHAKE_RESUME, &answer, &at_r), SHAKE_OK);
    resumed = enc(&r, RSHAKE_RESUMED, &at_r);

    struct {
        const char *key;
        json_t *val;
    } resumed_edits[] = {
        {"rx", json_integer(1001)},
        {"rx", json_integer(999)},
        {"gone", json_true()},
        {"session", json_string(S2)},
        {"mac", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")},
    };
    for (size_t k = 0; k < sizeof resumed_edits / sizeof resumed_edits[0]; k++) {
        struct rshake_peer q = at_i;
        l = edit(&resumed, resumed_edits[k].key, resumed_edits[k].val);
        if (!CHECK_INT(ver(&i, RSHAKE_RESUMED, &l, &q), SHAKE_BAD))
            fprintf(stderr, "  accepted with %s changed\n", resumed_edits[k].key);
        CHECK(!q.done);
    }
    /* the initiator's own rx changed after its answer: resumed no longer matches */
    struct rshake_peer q = at_i;
    i.rx = 2001;
    CHECK_INT(ver(&i, RSHAKE_RESUMED, &resumed, &q), SHAKE_BAD);
    i.rx = 2000;
    CHECK_INT(ver(&i, RSHAKE_RESUMED, &resumed, &q), SHAKE_OK);

    /* a man in the middle replaces the offer's key or epoch: the initiator cannot tell (no MAC
     * yet), but its answer then fails at the responder */
    struct rshake_ctx m;
    ctx(&m, PROTO_RESPONDER, S1, rs_b, 0, 0);
    char mk[64];
    sodium_bin2base64(mk, sizeof mk, m.eph_pk, 32, sodium_base64_VARIANT_ORIGINAL);
    const char *keys[] = {"eph", "epoch"};
    json_t *vals[] = {json_string(mk), json_integer(7)};
    for (int k = 0; k < 2; k++) {
        struct rshake_peer a = {0}, b = {0};
        l = edit(&offer, keys[k], vals[k]);
        CHECK_INT(ver(&i, RSHAKE_RESUME, &l, &a), SHAKE_OK);
        l = enc(&i, RSHAKE_RESUME, &a);
        CHECK_INT(ver(&r, RSHAKE_RESUME, &l, &b), SHAKE_BAD);
        CHECK(!b.seen);
    }
    /* the offer's checked members */
    const char *bad_offer[][2] = {
        {"session", S2}, {"root", S2}, {"from", "mallory"}, {"to", "carol"}};
    for (int k = 0; k < 4; k++) {
        struct rshake_peer a = {0};
        l = edit(&offer, bad_offer[k][0], json_string(bad_offer[k][1]));
        CHECK_INT(ver(&i, RSHAKE_RESUME, &l, &a), SHAKE_BAD);
    }
    rshake_wipe(&m);
}

/* The strict rules, as proto's for peer lines. */
static void t_strict(void)
{
    struct rshake_ctx r, i;
    struct rshake_peer at_i = {0}, p;
    struct line offer, answer;

    ctx(&r, PROTO_RESPONDER, S1, rs_a, 0, 0);
    ctx(&i, PROTO_INITIATOR, S1, rs_a, 0, 0);
    offer = enc(&r, RSHAKE_RESUME, NULL);
    CHECK_INT(ver(&i, RSHAKE_RESUME, &offer, &at_i), SHAKE_OK);
    answer = enc(&i, RSHAKE_RESUME, &at_i);

#define BAD_OFFER(line_)                                                                           \
    do {                                                                                           \
        struct line bl_ = (line_);                                                                 \
        memset(&p, 0, sizeof p);                                                                   \
        CHECK_INT(ver(&i, RSHAKE_RESUME, &bl_, &p), SHAKE_BAD);                                    \
    } while (0)
#define BAD_ANSWER(line_)                                                                          \
    do {                                                                                           \
        struct line bl_ = (line_);                                                                 \
        memset(&p, 0, sizeof p);                                                                   \
        CHECK_INT(ver(&r, RSHAKE_RESUME, &bl_, &p), SHAKE_BAD);                                    \
    } while (0)

    BAD_OFFER(edit(&offer, "extra", json_true()));
    BAD_OFFER(edit(&offer, "mac", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")));
    BAD_OFFER(edit(&offer, "rx", json_integer(0)));
    BAD_OFFER(edit(&offer, "root", NULL));
    BAD_OFFER(edit(&offer, "epoch", json_real(1.0)));
    BAD_OFFER(edit(&offer, "epoch", json_string("1")));
    BAD_OFFER(edit(&offer, "epoch", json_integer((json_int_t)UINT32_MAX + 1)));
    BAD_OFFER(edit(&offer, "eph", json_string("not base64")));
    BAD_OFFER(edit(&offer, "type", json_string("resumed")));
    BAD_OFFER(edit(&offer, "type", json_string("shake")));
    BAD_ANSWER(edit(&answer, "mac", NULL));
    BAD_ANSWER(edit(&answer, "rx", NULL));
    BAD_ANSWER(edit(&answer, "rx", json_integer(-1)));
    BAD_ANSWER(edit(&answer, "rx", json_integer((json_int_t)RSHAKE_RX_MAX + 1)));
    BAD_ANSWER(edit(&answer, "gone", json_false()));
    BAD_ANSWER(raw("[1,2,3]"));
    BAD_ANSWER(raw("{\"type\":1}"));
    BAD_ANSWER(raw("{\"type\":\"resume\""));
    BAD_ANSWER(raw("\"resume\""));
    /* a duplicate member */
    struct line dup;
    memcpy(dup.b, "{\"rx\":0,", 8);
    memcpy(dup.b + 8, answer.b + 1, answer.n); /* with its NUL */
    dup.n = answer.n + 7;
    BAD_ANSWER(dup);
    /* the answer verifies as it is */
    memset(&p, 0, sizeof p);
    CHECK_INT(ver(&r, RSHAKE_RESUME, &answer, &p), SHAKE_OK);
    /* non-canonical base64 of the same bytes: the last character's unused bits set */
    json_t *o = json_loadb(answer.b, answer.n, 0, NULL);
    char mac[64];
    snprintf(mac, sizeof mac, "%s", json_string_value(json_object_get(o, "mac")));
    json_decref(o);
    char *last = mac + strlen(mac) - 2; /* 32 bytes: 43 characters and one '=' */
    const char *b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int v = (int)(strchr(b64, *last) - b64);
    if (CHECK((v & 3) == 0)) {
        *last = b64[v | 1];
        BAD_ANSWER(edit(&answer, "mac", json_string(mac)));
    }
    /* a line too long */
    static char big[PROTO_MAX_LINE + 16];
    memset(big, ' ', sizeof big - 1);
    memcpy(big, answer.b, answer.n);
    big[sizeof big - 1] = '\0';
    BAD_ANSWER(raw(big));
    /* rx at its maximum is fine */
    ctx(&i, PROTO_INITIATOR, S1, rs_a, 0, RSHAKE_RX_MAX);
    ctx(&r, PROTO_RESPONDER, S1, rs_a, 0, RSHAKE_RX_MAX);
    CHECK(exchange(&r, &i, NULL, NULL));
    i.rx = RSHAKE_RX_MAX + 1;
    char b[PROTO_MAX_LINE];
    CHECK(rshake_encode(&i, RSHAKE_RESUME, &at_i, b, sizeof b) < 0);
}

/* The tombstone's answer reaches the initiator authenticated. */
static void t_gone(void)
{
    struct rshake_ctx r, i;
    ctx(&r, PROTO_RESPONDER, S1, rs_a, 0, 5);
    ctx(&i, PROTO_INITIATOR, S1, rs_a, 0, 6);
    r.gone = true;
    CHECK(exchange(&r, &i, NULL, NULL)); /* checks at_i.gone == r.gone */
}

static void t_low_order(void)
{
    struct rshake_ctx i, r;
    struct rshake_peer p = {.seen = true, .done = true, .epoch = 1};
    unsigned char tx[32], rx[32];
    ctx(&i, PROTO_INITIATOR, S1, rs_a, 0, 0);
    ctx(&r, PROTO_RESPONDER, S1, rs_a, 0, 0);
    memset(p.eph, 0, sizeof p.eph);
    CHECK(rshake_keys(&i, &p, tx, rx) < 0);
    CHECK(rshake_keys(&r, &p, tx, rx) < 0);
    memcpy(p.eph, r.eph_pk, 32);
    CHECK(rshake_keys(&i, &p, tx, rx) == 0);
    p.epoch = 0; /* epoch 0 is the shake's */
    CHECK(rshake_keys(&i, &p, tx, rx) < 0);
}

/* ---- the formulas of design 4.4, recomputed here from their definitions ---- */

static size_t put(unsigned char *m, size_t off, const void *p, size_t n)
{
    memcpy(m + off, p, n);
    return off + n;
}

static size_t put_be(unsigned char *m, size_t off, uint64_t v)
{
    for (int k = 7; k >= 0; k--)
        m[off++] = (unsigned char)(v >> (8 * k));
    return off;
}

static void line_b64(const struct line *l, const char *key, unsigned char *out)
{
    json_t *o = json_loadb(l->b, l->n, 0, NULL);
    const char *t = json_string_value(json_object_get(o, key));
    CHECK(t && sodium_base642bin(out, 32, t, strlen(t), NULL, NULL, NULL,
                                 sodium_base64_VARIANT_ORIGINAL) == 0);
    json_decref(o);
}

static void t_formulas(void)
{
    struct rshake_ctx r, i;
    struct rshake_peer at_i = {0}, at_r = {0};
    unsigned char m[512], want[32], got[32], kx_rx[32], kx_tx[32], tx[32], rx[32];
    size_t off, common;
    const uint64_t rx_i = 0x0010203040506070ull, rx_r = 77; /* below RSHAKE_RX_MAX */
    struct line l;

    ctx(&r, PROTO_RESPONDER, S1, rs_a, 6, rx_r); /* offers epoch 7 */
    ctx(&i, PROTO_INITIATOR, S1, rs_a, 2, rx_i);
    r.gone = true;
    l = enc(&r, RSHAKE_RESUME, NULL);
    CHECK_INT(ver(&i, RSHAKE_RESUME, &l, &at_i), SHAKE_OK);
    l = enc(&i, RSHAKE_RESUME, &at_i);
    CHECK_INT(ver(&r, RSHAKE_RESUME, &l, &at_r), SHAKE_OK);

    /* "tcpunch-rmac-v1" || letter || S || root || e(8) || id_I \0 || id_R \0 || E_R || E_I */
    off = put(m, 0, "tcpunch-rmac-v1", 15);
    off = put(m, off, "I", 1);
    off = put(m, off, S1, 32);
    off = put(m, off, ROOT, 32);
    off = put_be(m, off, 7);
    off = put(m, off, "alice", 6);
    off = put(m, off, "bob", 4);
    off = put(m, off, r.eph_pk, 32);
    off = put(m, off, i.eph_pk, 32);
    common = off;
    off = put_be(m, off, rx_i);
    crypto_generichash(want, 32, m, off, rs_a, 32);
    line_b64(&l, "mac", got);
    CHECK(memcmp(got, want, 32) == 0); /* MAC_I */

    m[15] = 'R';
    off = put_be(m, common, rx_i);
    off = put_be(m, off, rx_r);
    m[off++] = 1; /* gone */
    crypto_generichash(want, 32, m, off, rs_a, 32);
    l = enc(&r, RSHAKE_RESUMED, &at_r);
    line_b64(&l, "mac", got);
    CHECK(memcmp(got, want, 32) == 0); /* MAC_R */
    CHECK_INT(ver(&i, RSHAKE_RESUMED, &l, &at_i), SHAKE_OK);
    CHECK(at_i.gone && at_i.rx == rx_r);

    /* tx = BLAKE2b-256(key = RS, "tcpunch-keys-r1" || kx_tx || root || S || e(8) || E_I || E_R) */
    CHECK(rshake_keys(&i, &at_i, tx, rx) == 0);
    CHECK(crypto_kx_client_session_keys(kx_rx, kx_tx, i.eph_pk, i.eph_sk, r.eph_pk) == 0);
    const unsigned char *kx[2] = {kx_tx, kx_rx}, *out[2] = {tx, rx};
    for (int k = 0; k < 2; k++) {
        off = put(m, 0, "tcpunch-keys-r1", 15);
        off = put(m, off, kx[k], 32);
        off = put(m, off, ROOT, 32);
        off = put(m, off, S1, 32);
        off = put_be(m, off, 7);
        off = put(m, off, i.eph_pk, 32);
        off = put(m, off, r.eph_pk, 32);
        crypto_generichash(want, 32, m, off, rs_a, 32);
        CHECK(memcmp(out[k], want, 32) == 0);
    }
    rshake_wipe(&r);
    rshake_wipe(&i);
}

static void t_setup(void)
{
    if (sodium_init() < 0)
        exit(1);
    randombytes_buf(rs_a, sizeof rs_a);
    randombytes_buf(rs_b, sizeof rs_b);
}

CHECK_MAIN(TEST(t_setup), TEST(t_exchange), TEST(t_from_shake), TEST(t_epochs), TEST(t_replay),
           TEST(t_reflection), TEST(t_wrong_rs), TEST(t_tamper), TEST(t_strict), TEST(t_gone),
           TEST(t_low_order), TEST(t_formulas))
