/* libFuzzer harness for the resume handshake's lines (peer/rshake.c). The input is what arrives
 * on a connection of a resume punch before the exchange is done: untrusted, since any host that
 * reaches the punch port (or the relay) can send it. It is cut into lines at '\n' (as the punch
 * engine's line buffer would deliver them, at most PROTO_MAX_LINE bytes each), and every line is
 * checked as each side would check it at each step:
 *
 *   - alice (initiator, last epoch 0) reading bob's offer; a valid one is answered (the answer
 *     must encode) and its keys computed (any key: low-order points included);
 *   - bob (responder, offering epoch 1) reading alice's answer; a valid one must carry epoch 1
 *     and an offset in range, and bob's resumed must encode;
 *   - alice reading bob's resumed after bob's genuine offer; a valid one sets done.
 *
 * The secret and all ephemeral keys are fixed (constant seeds), so the lines with MACs in
 * fuzz/corpus/rshake (written by `fuzz_rshake_regress --write-seeds DIR`) stay valid. */
#include "fuzz/fuzz.h"
#include "peer/rshake.h"

#include <stdbool.h>
#include <string.h>

#define FZ_S "3f9c0a7d51e24b6e8a0c1d2e3f405162"
#define FZ_ROOT "0123456789abcdef0123456789abcdef"

static unsigned char fz_rs[SHAKE_RS_BYTES];
static struct rshake_ctx fz_alice, fz_bob;
static struct rshake_peer fz_offer_seen; /* alice's view after bob's genuine offer */
static char fz_line[3][PROTO_MAX_LINE];  /* offer, answer, resumed: genuine */
static int fz_len[3];

static void fz_ctx(struct rshake_ctx *c, enum proto_role role, unsigned char seed, uint64_t rx)
{
    unsigned char s[crypto_kx_SEEDBYTES];
    bool init = role == PROTO_INITIATOR;
    memset(c, 0, sizeof *c);
    snprintf(c->session, sizeof c->session, "%s", FZ_S);
    snprintf(c->root, sizeof c->root, "%s", FZ_ROOT);
    snprintf(c->self, sizeof c->self, "%s", init ? "alice" : "bob");
    snprintf(c->peer, sizeof c->peer, "%s", init ? "bob" : "alice");
    c->role = role;
    c->rs = fz_rs;
    c->rx = rx;
    memset(s, seed, sizeof s);
    crypto_kx_seed_keypair(c->eph_pk, c->eph_sk, s);
}

static void fz_setup(void)
{
    struct rshake_peer at_r = {0};
    char why[256];
    FZ_CHECK(sodium_init() >= 0, "sodium_init");
    memset(fz_rs, 0x5a, sizeof fz_rs);
    fz_ctx(&fz_alice, PROTO_INITIATOR, 0x01, 4096);
    fz_ctx(&fz_bob, PROTO_RESPONDER, 0x02, 65536);
    fz_len[0] = rshake_encode(&fz_bob, RSHAKE_RESUME, NULL, fz_line[0], sizeof fz_line[0]);
    FZ_CHECK(fz_len[0] > 0 &&
                 rshake_verify(&fz_alice, RSHAKE_RESUME, fz_line[0], (size_t)fz_len[0] - 1,
                               &fz_offer_seen, why, sizeof why) == SHAKE_OK,
             "genuine offer: %s", why);
    fz_len[1] =
        rshake_encode(&fz_alice, RSHAKE_RESUME, &fz_offer_seen, fz_line[1], sizeof fz_line[1]);
    FZ_CHECK(fz_len[1] > 0 &&
                 rshake_verify(&fz_bob, RSHAKE_RESUME, fz_line[1], (size_t)fz_len[1] - 1, &at_r,
                               why, sizeof why) == SHAKE_OK,
             "genuine answer: %s", why);
    fz_len[2] = rshake_encode(&fz_bob, RSHAKE_RESUMED, &at_r, fz_line[2], sizeof fz_line[2]);
    FZ_CHECK(fz_len[2] > 0, "genuine resumed");
}

static void fz_one(const char *line, size_t len)
{
    struct rshake_peer p = {0};
    unsigned char tx[32], rx[32];
    char why[256] = "", b[PROTO_MAX_LINE];

    if (rshake_verify(&fz_alice, RSHAKE_RESUME, line, len, &p, why, sizeof why) == SHAKE_OK) {
        FZ_CHECK(p.seen && p.epoch >= 1, "offer taken without an epoch");
        FZ_CHECK(rshake_encode(&fz_alice, RSHAKE_RESUME, &p, b, sizeof b) > 0, "no answer");
        p.done = true; /* as after a resumed: the keys of any offered key */
        (void)rshake_keys(&fz_alice, &p, tx, rx);
    }
    FZ_CHECK(strlen(why) < sizeof why, "why");

    memset(&p, 0, sizeof p);
    if (rshake_verify(&fz_bob, RSHAKE_RESUME, line, len, &p, why, sizeof why) == SHAKE_OK) {
        FZ_CHECK(p.seen && p.epoch == 1 && p.rx <= RSHAKE_RX_MAX, "answer out of range");
        FZ_CHECK(rshake_encode(&fz_bob, RSHAKE_RESUMED, &p, b, sizeof b) > 0, "no resumed");
        FZ_CHECK(rshake_keys(&fz_bob, &p, tx, rx) == 0 ||
                     memcmp(p.eph, fz_alice.eph_pk, sizeof p.eph) != 0,
                 "alice's genuine key gave no keys");
    }

    p = fz_offer_seen;
    if (rshake_verify(&fz_alice, RSHAKE_RESUMED, line, len, &p, why, sizeof why) == SHAKE_OK) {
        FZ_CHECK(p.done && p.rx <= RSHAKE_RX_MAX, "resumed taken without done");
        FZ_CHECK(rshake_keys(&fz_alice, &p, tx, rx) == 0, "no keys after a genuine resumed");
    } else {
        FZ_CHECK(!p.done, "a refused resumed set done");
    }
}

int fuzz_write_seeds(const char *dir)
{
    static const char *const names[] = {"offer", "answer", "resumed"};
    fz_setup();
    for (int i = 0; i < 3; i++) {
        char path[1024];
        FILE *f;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        f = fopen(path, "wb");
        if (!f)
            return -1;
        fwrite(fz_line[i], 1, (size_t)fz_len[i], f);
        if (fclose(f) != 0)
            return -1;
        printf("wrote %s\n", path);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    const char *p = (const char *)data, *end = p + size;
    if (!ready) {
        fz_setup();
        ready = true;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n < PROTO_MAX_LINE) /* longer: the line buffer drops the connection */
            fz_one(p, n);
        p += n + 1;
    }
    return 0;
}
