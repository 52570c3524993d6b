/* libFuzzer harness for the peer handshake (peer/shake.c): the input is the byte stream that
 * arrives on a punched or relayed connection before the handshake is done. Any host that
 * reaches the punch port (or knows a relay token) can send these bytes, so they are untrusted.
 * The stream is framed by the line buffer as punch.c frames it, and every line is checked by
 * shake_verify as each side would check it at each step:
 *
 *   - alice (initiator) reading bob's offer, under each kind of trust (none, --peer-key,
 *     known_peers, the key from the punch): the trust checks and the refusal warnings;
 *   - bob (responder) reading alice's signed answer: the signature check;
 *   - alice reading bob's signed confirm, with and without having seen bob's shake;
 *   - both sides of direct mode (unsigned shakes, roles from the keys);
 *   - the same exchange with shake.resume on both sides (PROTOCOL.md section 18): alice reading
 *     bob's offer and confirm, bob reading alice's answer, whose signatures cover both members;
 *   - the same bound to a wormhole code (shake.code, PROTOCOL.md 8.4): a shake whose "code" is
 *     not the reader's is refused, and the keys of one that passes mix the binding in; a
 *     signature over another binding key's proof (8.2) is SHAKE_CODE, never SHAKE_OK.
 *
 * A line that passes goes on to shake_keys, which must cope with any ephemeral key (low-order
 * points included). All keys are fixed, derived from constant seeds: a crash must reproduce, and
 * the signed lines in fuzz/corpus/shake (written by `fuzz_shake_regress --write-seeds DIR`) must
 * stay valid across runs.
 *
 * The framing is done twice, once with the whole input in one read and once in small reads,
 * and both must give the same lines: a line split across reads must not change. */
#include "fuzz/fuzz.h"
#include "fuzz/fz_shake.h"
#include "common/linebuf.h"
#include "peer/shake.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define FZ_SESSION "3f9c0a7d51e24b6e8a0c1d2e3f405162"

enum { FZ_TRUST_NONE, FZ_TRUST_FP, FZ_TRUST_KNOWN, FZ_TRUST_SERVER, FZ_TRUST_COUNT };

static struct identity fz_id_alice, fz_id_bob, fz_id_eve;
static struct shake_ctx fz_alice[FZ_TRUST_COUNT]; /* the initiator, by how it trusts bob */
static struct shake_ctx fz_bob, fz_alice_sym, fz_bob_sym;
static struct shake_peer fz_bob_seen, fz_alice_seen; /* what a genuine shake showed each side */
/* both speak resume (bob's punch listed it), and what their genuine shakes showed */
static struct shake_ctx fz_alice_res, fz_bob_res;
static struct shake_peer fz_bob_res_seen, fz_alice_res_seen;
/* both bound to the same code, and what their genuine shakes showed */
static const unsigned char fz_bind[SHAKE_BIND_BYTES] = "fuzz_shake: a code binding key.";
static struct shake_ctx fz_alice_code, fz_bob_code;
static struct shake_peer fz_bob_code_seen, fz_alice_code_seen;
/* the sides of another code exchange (a server that ran one with each side) */
static const unsigned char fz_bind2[SHAKE_BIND_BYTES] = "fuzz_shake: another binding key";
static struct shake_ctx fz_alice_code2, fz_bob_code2;

static void fz_ctx(struct shake_ctx *s, enum proto_role role, bool symmetric)
{
    fz_shake_ctx(s, role, FZ_SESSION, &fz_id_alice, &fz_id_bob);
    s->symmetric = symmetric;
}

/* Alice's contexts, one per kind of trust in bob's key; the known_peers one holds eve's key,
 * so that bob's real key is refused there. */
static void fz_trust(struct shake_ctx *s, int kind)
{
    switch (kind) {
    case FZ_TRUST_FP:
        id_fingerprint(fz_id_bob.pk, s->trust.fp, sizeof s->trust.fp);
        break;
    case FZ_TRUST_KNOWN:
        s->trust.nknown = 1;
        s->trust.known[0].line = 3;
        memcpy(s->trust.known[0].pk, fz_id_eve.pk, sizeof fz_id_eve.pk);
        snprintf(s->trust.known_path, sizeof s->trust.known_path, "/nonexistent/known_peers");
        break;
    case FZ_TRUST_SERVER:
        s->trust.server_key = true;
        memcpy(s->trust.server_pk, fz_id_bob.pk, sizeof fz_id_bob.pk);
        break;
    default:
        break;
    }
}

/* Checks one line; returns the verdict. A rejection must come with a terminated, non-empty
 * reason: it is logged, and a refusal is the warning the user reads. A shake that passes is
 * carried on to the stream keys. */
static enum shake_verdict fz_verify(const struct shake_ctx *s, enum proto_type expect,
                                    const char *line, size_t len, struct shake_peer *peer,
                                    bool keys)
{
    char why[512];
    unsigned char tx[crypto_kx_SESSIONKEYBYTES], rx[crypto_kx_SESSIONKEYBYTES];
    enum shake_verdict v;

    memset(why, 0x5a, sizeof why);
    v = shake_verify(s, expect, line, len, peer, why, sizeof why);
    FZ_CHECK(v == SHAKE_OK || v == SHAKE_BAD || v == SHAKE_REFUSED || v == SHAKE_CODE, "verdict %d",
             (int)v);
    /* only a code context has a binding key for a signature to miss */
    FZ_CHECK(v != SHAKE_CODE || (s->code_bind && !s->symmetric), "a code verdict without a code");
    FZ_CHECK(v != SHAKE_CODE || expect == PROTO_CONFIRM || peer->seen,
             "a code verdict on a shake left the peer unseen (the responder confirms it)");
    if (v != SHAKE_OK) {
        FZ_CHECK(memchr(why, '\0', sizeof why) != NULL, "reason not terminated");
        FZ_CHECK(why[0] != '\0', "empty reason");
        return v;
    }
    FZ_CHECK(peer->seen, "a passing line left the peer unseen");
    if (expect == PROTO_SHAKE && keys) {
        struct shake_ctx mine = *s;
        if (mine.symmetric)
            shake_direct_role(&mine, peer);
        (void)shake_keys(&mine, peer, tx, rx);
    }
    return v;
}

/* The stream keys (an X25519 multiplication) are derived once per kind of side, not once per
 * kind of trust: the trust decides the verdict only, and the fuzzer runs faster. */
static void fz_check_line(const char *line, size_t len)
{
    struct shake_peer p;

    for (int k = 0; k < FZ_TRUST_COUNT; k++) {
        memset(&p, 0, sizeof p);
        fz_verify(&fz_alice[k], PROTO_SHAKE, line, len, &p, k == FZ_TRUST_NONE); /* offer */
    }
    memset(&p, 0, sizeof p);
    fz_verify(&fz_bob, PROTO_SHAKE, line, len, &p, true); /* alice's signed answer */
    p = fz_bob_seen;
    fz_verify(&fz_alice[FZ_TRUST_NONE], PROTO_CONFIRM, line, len, &p, false); /* bob's confirm */
    memset(&p, 0, sizeof p);
    fz_verify(&fz_alice[FZ_TRUST_NONE], PROTO_CONFIRM, line, len, &p, false); /* before a shake */
    memset(&p, 0, sizeof p);
    fz_verify(&fz_alice_sym, PROTO_SHAKE, line, len, &p, true); /* direct mode */
    p = fz_alice_seen;
    fz_verify(&fz_bob_sym, PROTO_CONFIRM, line, len, &p, false);
    memset(&p, 0, sizeof p);
    fz_verify(&fz_alice_res, PROTO_SHAKE, line, len, &p, true); /* a resume offer */
    memset(&p, 0, sizeof p);
    fz_verify(&fz_bob_res, PROTO_SHAKE, line, len, &p, true); /* an answer with resume */
    p = fz_bob_res_seen;
    fz_verify(&fz_alice_res, PROTO_CONFIRM, line, len, &p, false);
    memset(&p, 0, sizeof p);
    fz_verify(&fz_alice_code, PROTO_SHAKE, line, len, &p, true); /* an offer bound to a code */
    FZ_CHECK(!p.seen || p.code, "alice took an offer without the code");
    memset(&p, 0, sizeof p);
    fz_verify(&fz_bob_code, PROTO_SHAKE, line, len, &p, true); /* an answer bound to it */
    FZ_CHECK(!p.seen || p.code, "bob took an answer without the code");
    p = fz_bob_code_seen;
    fz_verify(&fz_alice_code, PROTO_CONFIRM, line, len, &p, false);
    memset(&p, 0, sizeof p);
    fz_verify(&fz_bob_code2, PROTO_SHAKE, line, len, &p, true); /* an answer for another code */
    p = fz_bob_code_seen;
    fz_verify(&fz_alice_code2, PROTO_CONFIRM, line, len, &p, false);
}

/* What the framing delivered: a count and a running FNV-1a hash over lengths and bytes. */
struct fz_lines {
    bool verify;
    size_t n;
    uint64_t hash;
};

static void fz_hash(struct fz_lines *l, const void *p, size_t len)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < len; i++)
        l->hash = (l->hash ^ b[i]) * 0x100000001b3ull;
}

static int fz_on_line(void *ctx, char *line, size_t len)
{
    struct fz_lines *l = ctx;
    FZ_CHECK(len < LB_MAX && line[len] == '\0', "line of %zu bytes not terminated", len);
    FZ_CHECK(memchr(line, '\n', len) == NULL, "newline inside a framed line");
    l->n++;
    fz_hash(l, &len, sizeof len);
    fz_hash(l, line, len);
    if (l->verify)
        fz_check_line(line, len);
    return 0;
}

/* Feeds data in reads of at most step bytes; returns false when a line exceeded the cap. */
static bool fz_frame(const uint8_t *data, size_t size, size_t step, struct fz_lines *l)
{
    struct lb lb;
    bool ok = true;
    /* lb_feed frames in place, and the fuzzer's input is read-only */
    char *copy = malloc(size ? size : 1);
    FZ_CHECK(copy != NULL, "out of memory");
    memcpy(copy, data, size);
    lb_init(&lb);
    for (size_t off = 0; off < size && ok;) {
        size_t n = size - off < step ? size - off : step;
        ssize_t used = lb_feed(&lb, copy + off, n, fz_on_line, l);
        ok = used >= 0;
        FZ_CHECK(!ok || (size_t)used == n, "lb_feed consumed %zd of %zu", used, n);
        off += n;
    }
    lb_free(&lb);
    free(copy);
    return ok;
}

/* The genuine lines of one handshake, each passed through the side that receives it. */
enum {
    FZ_OFFER,
    FZ_ANSWER,
    FZ_CONFIRM,
    FZ_SYM_ALICE,
    FZ_SYM_BOB,
    FZ_SYM_CONFIRM,
    FZ_RES_OFFER,
    FZ_RES_ANSWER,
    FZ_RES_CONFIRM,
    FZ_CODE_OFFER,
    FZ_CODE_ANSWER,
    FZ_CODE_CONFIRM,
    FZ_NLINES
};
static char fz_line[FZ_NLINES][PROTO_MAX_LINE];
static int fz_len[FZ_NLINES];

static void fz_encode(int i, const struct shake_ctx *s, enum proto_type t,
                      const struct shake_peer *p)
{
    fz_len[i] = shake_encode(s, t, p, fz_line[i], sizeof fz_line[i]);
    FZ_CHECK(fz_len[i] > 1 && fz_line[i][fz_len[i] - 1] == '\n', "line %d does not encode", i);
}

static void fz_expect(const struct shake_ctx *s, enum proto_type t, int i, struct shake_peer *p,
                      enum shake_verdict want, const char *what)
{
    char why[512] = "";
    enum shake_verdict v =
        shake_verify(s, t, fz_line[i], (size_t)fz_len[i] - 1, p, why, sizeof why);
    FZ_CHECK(v == want, "%s: verdict %d, want %d (%s)", what, (int)v, (int)want, why);
}

/* The exchange with shake.resume on both sides: genuine lines that pass, and the signatures'
 * coverage of the members (bob's member changed on the way: alice's answer fails at bob). */
static void fz_setup_resume(void)
{
    static const struct proto_resume_caps a = {true, PROTO_RESUME_V, 1u << 20, 60};
    static const struct proto_resume_caps b = {true, PROTO_RESUME_V, 8u << 20, 120};
    struct shake_peer p;
    fz_ctx(&fz_alice_res, PROTO_INITIATOR, false);
    fz_ctx(&fz_bob_res, PROTO_RESPONDER, false);
    fz_alice_res.resume = a;
    fz_bob_res.resume = b;
    fz_bob_res.resume_listed = true;
    fz_encode(FZ_RES_OFFER, &fz_bob_res, PROTO_SHAKE, NULL);
    memset(&fz_bob_res_seen, 0, sizeof fz_bob_res_seen);
    fz_expect(&fz_alice_res, PROTO_SHAKE, FZ_RES_OFFER, &fz_bob_res_seen, SHAKE_OK,
              "bob's resume offer");
    FZ_CHECK(fz_bob_res_seen.resume.has, "bob's offer lost its resume member");
    fz_encode(FZ_RES_ANSWER, &fz_alice_res, PROTO_SHAKE, &fz_bob_res_seen);
    memset(&fz_alice_res_seen, 0, sizeof fz_alice_res_seen);
    fz_expect(&fz_bob_res, PROTO_SHAKE, FZ_RES_ANSWER, &fz_alice_res_seen, SHAKE_OK,
              "alice's resume answer");
    fz_encode(FZ_RES_CONFIRM, &fz_bob_res, PROTO_CONFIRM, &fz_alice_res_seen);
    p = fz_bob_res_seen;
    fz_expect(&fz_alice_res, PROTO_CONFIRM, FZ_RES_CONFIRM, &p, SHAKE_OK, "bob's resume confirm");
    FZ_CHECK(shake_resume_on(&fz_alice_res, &p) && shake_resume_on(&fz_bob_res, &fz_alice_res_seen),
             "the layer is not on after a resume exchange");
    /* the plain answer is not valid where bob sent resume (its signature lacks both blocks) */
    memset(&p, 0, sizeof p);
    fz_expect(&fz_bob_res, PROTO_SHAKE, FZ_ANSWER, &p, SHAKE_BAD, "a plain answer to bob_res");
}

/* The exchange bound to a code: genuine lines that pass and agree on keys, and the plain lines
 * refused by the code contexts (and the code lines by the plain ones) like a changed key. */
static void fz_setup_code(void)
{
    unsigned char atx[32], arx[32], btx[32], brx[32];
    struct shake_peer p;
    fz_ctx(&fz_alice_code, PROTO_INITIATOR, false);
    fz_ctx(&fz_bob_code, PROTO_RESPONDER, false);
    fz_alice_code.code_bind = fz_bob_code.code_bind = fz_bind;
    fz_encode(FZ_CODE_OFFER, &fz_bob_code, PROTO_SHAKE, NULL);
    memset(&fz_bob_code_seen, 0, sizeof fz_bob_code_seen);
    fz_expect(&fz_alice_code, PROTO_SHAKE, FZ_CODE_OFFER, &fz_bob_code_seen, SHAKE_OK,
              "bob's code offer");
    fz_encode(FZ_CODE_ANSWER, &fz_alice_code, PROTO_SHAKE, &fz_bob_code_seen);
    memset(&fz_alice_code_seen, 0, sizeof fz_alice_code_seen);
    fz_expect(&fz_bob_code, PROTO_SHAKE, FZ_CODE_ANSWER, &fz_alice_code_seen, SHAKE_OK,
              "alice's code answer");
    fz_encode(FZ_CODE_CONFIRM, &fz_bob_code, PROTO_CONFIRM, &fz_alice_code_seen);
    p = fz_bob_code_seen;
    fz_expect(&fz_alice_code, PROTO_CONFIRM, FZ_CODE_CONFIRM, &p, SHAKE_OK, "bob's code confirm");
    FZ_CHECK(shake_keys(&fz_alice_code, &p, atx, arx) == 0 &&
                 shake_keys(&fz_bob_code, &fz_alice_code_seen, btx, brx) == 0 &&
                 memcmp(atx, brx, 32) == 0 && memcmp(arx, btx, 32) == 0,
             "the code exchange does not agree on keys");
    memset(&p, 0, sizeof p);
    fz_expect(&fz_alice_code, PROTO_SHAKE, FZ_OFFER, &p, SHAKE_REFUSED, "a plain offer, code");
    memset(&p, 0, sizeof p);
    fz_expect(&fz_bob_code, PROTO_SHAKE, FZ_ANSWER, &p, SHAKE_REFUSED, "a plain answer, code");
    memset(&p, 0, sizeof p);
    fz_expect(&fz_alice[FZ_TRUST_NONE], PROTO_SHAKE, FZ_CODE_OFFER, &p, SHAKE_REFUSED,
              "a code offer, plain");
    /* another code exchange's sides: the unsigned offer passes, the signatures do not */
    fz_ctx(&fz_bob_code2, PROTO_RESPONDER, false);
    fz_ctx(&fz_alice_code2, PROTO_INITIATOR, false);
    fz_bob_code2.code_bind = fz_alice_code2.code_bind = fz_bind2;
    memset(&p, 0, sizeof p);
    fz_expect(&fz_bob_code2, PROTO_SHAKE, FZ_CODE_ANSWER, &p, SHAKE_CODE, "a code answer, bind 2");
    p = fz_bob_code_seen;
    fz_expect(&fz_alice_code2, PROTO_CONFIRM, FZ_CODE_CONFIRM, &p, SHAKE_CODE,
              "a code confirm, bind 2");
}

/* Sets the contexts up, and checks that a genuine handshake passes: a change to shake_ctx that
 * this file does not follow then fails loudly instead of fuzzing only the rejection paths. */
static void fz_setup(void)
{
    struct shake_peer p;

    FZ_CHECK(sodium_init() >= 0, "sodium_init failed");
    fz_identity(&fz_id_alice, 'A');
    fz_identity(&fz_id_bob, 'B');
    fz_identity(&fz_id_eve, 'E');
    for (int k = 0; k < FZ_TRUST_COUNT; k++) {
        fz_ctx(&fz_alice[k], PROTO_INITIATOR, false);
        fz_trust(&fz_alice[k], k);
    }
    fz_ctx(&fz_bob, PROTO_RESPONDER, false);
    fz_ctx(&fz_alice_sym, PROTO_INITIATOR, true);
    fz_ctx(&fz_bob_sym, PROTO_RESPONDER, true);

    fz_encode(FZ_OFFER, &fz_bob, PROTO_SHAKE, NULL);
    memset(&fz_bob_seen, 0, sizeof fz_bob_seen);
    fz_expect(&fz_alice[FZ_TRUST_NONE], PROTO_SHAKE, FZ_OFFER, &fz_bob_seen, SHAKE_OK,
              "bob's offer to alice");
    for (int k = 0; k < FZ_TRUST_COUNT; k++) {
        memset(&p, 0, sizeof p);
        fz_expect(&fz_alice[k], PROTO_SHAKE, FZ_OFFER, &p,
                  k == FZ_TRUST_KNOWN ? SHAKE_REFUSED : SHAKE_OK, "bob's offer, trust kind");
    }
    fz_encode(FZ_ANSWER, &fz_alice[FZ_TRUST_NONE], PROTO_SHAKE, &fz_bob_seen);
    memset(&fz_alice_seen, 0, sizeof fz_alice_seen);
    fz_expect(&fz_bob, PROTO_SHAKE, FZ_ANSWER, &fz_alice_seen, SHAKE_OK, "alice's answer to bob");
    fz_encode(FZ_CONFIRM, &fz_bob, PROTO_CONFIRM, &fz_alice_seen);
    p = fz_bob_seen;
    fz_expect(&fz_alice[FZ_TRUST_NONE], PROTO_CONFIRM, FZ_CONFIRM, &p, SHAKE_OK, "bob's confirm");
    memset(&p, 0, sizeof p);
    fz_expect(&fz_bob, PROTO_SHAKE, FZ_OFFER, &p, SHAKE_BAD, "bob's offer back to bob");

    fz_encode(FZ_SYM_ALICE, &fz_alice_sym, PROTO_SHAKE, NULL);
    fz_encode(FZ_SYM_BOB, &fz_bob_sym, PROTO_SHAKE, NULL);
    memset(&p, 0, sizeof p);
    fz_expect(&fz_alice_sym, PROTO_SHAKE, FZ_SYM_BOB, &p, SHAKE_OK, "direct: bob's shake");
    fz_encode(FZ_SYM_CONFIRM, &fz_alice_sym, PROTO_CONFIRM, &p);
    p = fz_alice_seen;
    fz_expect(&fz_bob_sym, PROTO_CONFIRM, FZ_SYM_CONFIRM, &p, SHAKE_OK, "direct: alice's confirm");
    fz_setup_resume();
    fz_setup_code();
}

/* Called by regress_main.c for --write-seeds: the genuine lines, alone and as whole streams. */
int fuzz_write_seeds(const char *dir)
{
    static const struct {
        const char *name;
        int lines[3];
    } seeds[] = {
        {"offer", {FZ_OFFER, -1, -1}},
        {"answer", {FZ_ANSWER, -1, -1}},
        {"confirm", {FZ_CONFIRM, -1, -1}},
        {"answer-confirm", {FZ_ANSWER, FZ_CONFIRM, -1}},
        {"direct-alice", {FZ_SYM_ALICE, -1, -1}},
        {"direct-bob-confirm", {FZ_SYM_BOB, FZ_SYM_CONFIRM, -1}},
        {"resume-offer", {FZ_RES_OFFER, -1, -1}},
        {"resume-answer", {FZ_RES_ANSWER, -1, -1}},
        {"resume-answer-confirm", {FZ_RES_ANSWER, FZ_RES_CONFIRM, -1}},
        {"code-offer", {FZ_CODE_OFFER, -1, -1}},
        {"code-answer", {FZ_CODE_ANSWER, -1, -1}},
        {"code-answer-confirm", {FZ_CODE_ANSWER, FZ_CODE_CONFIRM, -1}},
    };
    fz_setup();
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[1024];
        FILE *f;
        snprintf(path, sizeof path, "%s/%s", dir, seeds[i].name);
        f = fopen(path, "wb");
        if (!f)
            return -1;
        for (int j = 0; j < 3 && seeds[i].lines[j] >= 0; j++)
            fwrite(fz_line[seeds[i].lines[j]], 1, (size_t)fz_len[seeds[i].lines[j]], f);
        if (fclose(f) != 0)
            return -1;
        printf("wrote %s\n", path);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    struct fz_lines whole = {true, 0, 0xcbf29ce484222325ull};
    struct fz_lines split = {false, 0, 0xcbf29ce484222325ull};
    bool ok_whole, ok_split;

    if (!ready) {
        fz_setup();
        ready = true;
    }
    /* the input as one line, as if a newline followed it */
    if (size < LB_MAX && memchr(data, '\n', size) == NULL)
        fz_check_line((const char *)data, size);
    ok_whole = fz_frame(data, size, size ? size : 1, &whole);
    ok_split = fz_frame(data, size, 1 + size % 7, &split);
    FZ_CHECK(ok_whole == ok_split, "line cap hit in one framing only");
    FZ_CHECK(whole.n == split.n && whole.hash == split.hash,
             "split reads framed differently: %zu vs %zu lines", whole.n, split.n);
    return 0;
}
