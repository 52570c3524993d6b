/* CPace (proto/cpace.c) against the draft's own test vectors, and the runs a wormhole code
 * meets: the right code, a wrong one, a hostile share, a server that reflects or swaps messages.
 *
 * The vectors are draft-irtf-cfrg-cpace's, CPACE-RISTR255-SHA512: the editor's copy of
 * github.com/cfrg/draft-irtf-cfrg-cpace at commit 8fb4056 (2026-04-23, the newest text found;
 * the last numbered draft before it is -20 of 2026-03-23), Appendix A ("CPace function
 * definitions": prepend_len, lv_cat) and Appendix B.3 ("Test vector for CPace using group
 * ristretto255 and hash SHA-512": generator, ya/Ya, yb/Yb, K, ISK for initiator/responder and
 * for the parallel (ordered) transcript, scalar_mult_vfy's valid and invalid inputs). Every
 * value is compared in full.
 *
 * The draft gives no vectors for the confirmation tags nor, of course, for tcpunch's binding
 * key: those below were computed outside this code, with Python's hashlib and hmac from the
 * draft's formulas ("Key confirmation": mac_key = SHA-512(b"CPaceMac" || sid || ISK), Ta =
 * HMAC-SHA512(mac_key, lv_cat(Ya, ADa)), Tb likewise) and RFC 5869's HKDF-Expand over the
 * ISK_IR vector. */
#include "tests/unit/check.h"
#include "proto/cpace.h"

#include <sodium.h>

/* Appendix B.3 inputs */
#define V_PRS "Password"
#define V_CI "0b415f696e69746961746f720b425f726573706f6e646572" /* b'\x0bA_initiator\x0bB_responder' */
#define V_SID "7e4b4791d6a8ef019b936c79fb7f2c57"
#define V_GENSTR                                                                                   \
    "11435061636552697374726574746f3235350850617373776f726464"                                   \
    "00000000000000000000000000000000000000000000000000000000"                                   \
    "00000000000000000000000000000000000000000000000000000000"                                   \
    "00000000000000000000000000000000000000000000000000000000"                                   \
    "00000000000000000000000000000000180b415f696e69746961746f"                                   \
    "720b425f726573706f6e646572107e4b4791d6a8ef019b936c79fb7f"                                   \
    "2c57"
#define V_G "222b6b195fe84b1652badb6f6a3ae3d24341e7306967f0b8115b40d5698c7e56"
#define V_YA_S "da3d23700a9e5699258aef94dc060dfda5ebb61f02a5ea77fad53f4ff0976d08"
#define V_YA "d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0eec482b9157"
#define V_YB_S "d2316b454718c35362d83d69df6320f38578ed5984651435e2949762d900b80d"
#define V_YB "3ea7e0b19560d7c0b0f5734f63b955286dfa8232b5ebe63324e2d9e7433f7258"
#define V_K "80b69a8a76457ab6a4d7f887a4bf6b55a2f80ac19c333f917a05fc9887c8b40f"
#define V_ISK_IR                                                                                   \
    "b69effbf61b51d56401c0f65601abe428de8206feaaf0e32198896dcae7b35cd"                           \
    "2b38950a39dfd5d4a79164614c2984f7daa460b588c1e80c3fa2068af7900447"
#define V_ISK_OC                                                                                   \
    "544199d71f62f8d9a1fee55727e24fe4a45844593c2b6013c4fa3969d0e5debb"                           \
    "2244675c0b43397cbb68d342b01fc0f98fc961469a25134de9f0f813c1a57476"
/* "Test case for scalar_mult with valid inputs", "Invalid inputs for scalar_mult_vfy" */
#define V_S "7cd0e075fa7955ba52c02759a6c90dbbfc10e6d40aea8d283e407d88cf538a05"
#define V_X "2c3c6b8c4f3800e7aef6864025b4ed79bd599117e427c41bd47d93d654b4a51c"
#define V_SX "7c13645fe790a468f62c39beb7388e541d8405d1ade69d1778c5fe3e7f6b600e"
#define V_YI1 "2b3c6b8c4f3800e7aef6864025b4ed79bd599117e427c41bd47d93d654b4a51c"
/* computed with Python (see the top): Ta, Tb over the vectors' messages, and
 * cpace_binding_key(ISK_IR, "tcpunch wormhole session") */
#define V_TA                                                                                       \
    "30478d28d83ae3b214295e91f4a3eb62999a8ed94575075db4a7d3bc3e4d26f1"                           \
    "6c51adba12dc7771372637a46b5134e0937cddd7d820bfdd83be335e339eb57a"
#define V_TB                                                                                       \
    "e927a7da291676f8878caae9cb70407d2f14117e6f9ff9adcfda797c4bcf2bd2"                           \
    "fefd2ca3f2ddcce81b7386996c895b2f359010cc92069d5ff4ad49a977de79a6"
#define V_BIND "455a4d7bdb5f769a8a63e1e66222a5fcdb4f2d8d6868a6ef99714cf3822982cb"
#define V_BIND_LABEL "tcpunch wormhole session"

static uint8_t vci[64], vsid[16];
static size_t vci_len;

/* hex into out: the byte count; aborts the program on a malformed constant (a bug in this file) */
static size_t hx(uint8_t *out, size_t cap, const char *hex)
{
    size_t n = 0;
    if (sodium_hex2bin(out, cap, hex, strlen(hex), NULL, &n, NULL) != 0) {
        fprintf(stderr, "bad hex constant %s\n", hex);
        abort();
    }
    return n;
}

/* Compares all n bytes with the hex value; on a mismatch prints both. */
#define CHECK_HEX(buf, n, hex)                                                                     \
    __extension__({                                                                                \
        uint8_t want_[512];                                                                        \
        size_t wn_ = hx(want_, sizeof want_, hex);                                                 \
        char got_[1025];                                                                           \
        int ok_ = wn_ == (size_t)(n) && memcmp((buf), want_, wn_) == 0;                            \
        if (!ok_)                                                                                  \
            sodium_bin2hex(got_, sizeof got_, (buf), (size_t)(n) < 512 ? (size_t)(n) : 512);       \
        ok_ ? 1 : check_fail_(__FILE__, __LINE__, "%s: got %s (%zu bytes), want %s", #buf, got_,   \
                              (size_t)(n), hex);                                                   \
    })

static void setup(void)
{
    if (sodium_init() < 0)
        abort();
    vci_len = hx(vci, sizeof vci, V_CI);
    hx(vsid, sizeof vsid, V_SID);
}

static struct cpace_in vin(const char *prs, const char *ad)
{
    struct cpace_in in = {(const uint8_t *)prs, strlen(prs), vci, vci_len, vsid, sizeof vsid,
                          (const uint8_t *)ad, strlen(ad)};
    return in;
}

/* Appendix A: prepend_len and lv_cat */
static void t_lv(void)
{
    uint8_t r[128], out[256];
    const uint8_t *p[4] = {(const uint8_t *)"1234", (const uint8_t *)"5", (const uint8_t *)"",
                           (const uint8_t *)"678"};
    size_t l[4] = {4, 1, 0, 3}, n;
    for (int i = 0; i < 128; i++)
        r[i] = (uint8_t)i;
    n = cpace_lv_cat(out, sizeof out, 1, p + 2, l + 2);
    CHECK_HEX(out, n, "00");
    n = cpace_lv_cat(out, sizeof out, 1, p, l);
    CHECK_HEX(out, n, "0431323334");
    p[0] = r, l[0] = 127;
    n = cpace_lv_cat(out, sizeof out, 1, p, l);
    CHECK(n == 128 && out[0] == 0x7f && memcmp(out + 1, r, 127) == 0);
    l[0] = 128;
    n = cpace_lv_cat(out, sizeof out, 1, p, l);
    CHECK(n == 130 && out[0] == 0x80 && out[1] == 0x01 && memcmp(out + 2, r, 128) == 0);
    p[0] = (const uint8_t *)"1234", l[0] = 4;
    n = cpace_lv_cat(out, sizeof out, 4, p, l);
    CHECK_HEX(out, n, "043132333401350003363738");
    /* one byte short of the result: nothing */
    CHECK_INT(cpace_lv_cat(out, 11, 4, p, l), 0);
}

static void t_generator_string(void)
{
    struct cpace_in in;
    uint8_t out[512];
    size_t n;
    setup();
    in = vin(V_PRS, "");
    n = cpace_generator_string(out, sizeof out, &in);
    CHECK_HEX(out, n, V_GENSTR);
    CHECK_INT(cpace_generator_string(out, 169, &in), 0); /* does not fit */
    /* a long password: no padding, still the draft's layout (lengths in LEB128) */
    {
        char prs[200];
        memset(prs, 'p', sizeof prs - 1);
        prs[sizeof prs - 1] = '\0';
        in = vin(prs, "");
        n = cpace_generator_string(out, sizeof out, &in);
        CHECK_INT(n, 18 + 2 + 199 + 1 + 1 + vci_len + 1 + 16);
        CHECK(out[18] == 0xc7 && out[19] == 0x01 && out[20 + 199] == 0x00);
    }
}

static void t_generator(void)
{
    struct cpace_in in;
    uint8_t g[32];
    setup();
    in = vin(V_PRS, "");
    CHECK_INT(cpace_calculate_generator(&in, g), 0);
    CHECK_HEX(g, 32, V_G);
    in.prs_len = 0; /* an empty password is a caller's bug */
    CHECK_INT(cpace_calculate_generator(&in, g), -1);
}

static void t_shares_k_isk(void)
{
    struct cpace_in ina, inb;
    struct cpace a, b;
    uint8_t ya[32], yb[32], sa[32], sb[32], k[32], isk[64], y2[32];
    setup();
    ina = vin(V_PRS, "ADa");
    inb = vin(V_PRS, "ADb");
    hx(ya, 32, V_YA_S);
    hx(yb, 32, V_YB_S);
    CHECK_INT(cpace_start_with_scalar(&a, CPACE_INITIATOR, &ina, ya, sa), 0);
    CHECK_HEX(sa, 32, V_YA);
    CHECK_INT(cpace_start_with_scalar(&b, CPACE_RESPONDER, &inb, yb, sb), 0);
    CHECK_HEX(sb, 32, V_YB);
    CHECK_INT(cpace_scalar_mult_vfy(ya, sb, k), 0);
    CHECK_HEX(k, 32, V_K);
    CHECK_INT(cpace_scalar_mult_vfy(yb, sa, k), 0);
    CHECK_HEX(k, 32, V_K);
    CHECK_INT(cpace_isk(CPACE_IR, vsid, 16, k, sa, (const uint8_t *)"ADa", 3, sb,
                        (const uint8_t *)"ADb", 3, isk), 0);
    CHECK_HEX(isk, 64, V_ISK_IR);
    CHECK_INT(cpace_isk(CPACE_OC, vsid, 16, k, sa, (const uint8_t *)"ADa", 3, sb,
                        (const uint8_t *)"ADb", 3, isk), 0);
    CHECK_HEX(isk, 64, V_ISK_OC);
    /* the ordered transcript does not depend on who is called A */
    CHECK_INT(cpace_isk(CPACE_OC, vsid, 16, k, sb, (const uint8_t *)"ADb", 3, sa,
                        (const uint8_t *)"ADa", 3, isk), 0);
    CHECK_HEX(isk, 64, V_ISK_OC);
    /* the draft's valid scalar_mult case */
    hx(ya, 32, V_S);
    hx(y2, 32, V_X);
    CHECK_INT(cpace_scalar_mult_vfy(ya, y2, k), 0);
    CHECK_HEX(k, 32, V_SX);
    cpace_wipe(&a);
    cpace_wipe(&b);
}

/* The whole exchange through the state, with the draft's scalars: both ISKs are the vector,
 * the tags are the independently computed ones, each side accepts the other's. */
static void t_run_vectors(void)
{
    struct cpace_in ina, inb;
    struct cpace a, b;
    uint8_t ya[32], yb[32], sa[32], sb[32], ika[64], ikb[64], ta[64], tb[64];
    setup();
    ina = vin(V_PRS, "ADa");
    inb = vin(V_PRS, "ADb");
    hx(ya, 32, V_YA_S);
    hx(yb, 32, V_YB_S);
    CHECK_INT(cpace_start_with_scalar(&a, CPACE_INITIATOR, &ina, ya, sa), 0);
    CHECK_INT(cpace_start_with_scalar(&b, CPACE_RESPONDER, &inb, yb, sb), 0);
    CHECK_INT(cpace_tag(&a, ta), -1); /* no tag before the peer's share */
    CHECK_INT(cpace_finish(&b, sa, (const uint8_t *)"ADa", 3, ikb), 0);
    CHECK_INT(cpace_finish(&a, sb, (const uint8_t *)"ADb", 3, ika), 0);
    CHECK_HEX(ika, 64, V_ISK_IR);
    CHECK_HEX(ikb, 64, V_ISK_IR);
    CHECK_INT(cpace_tag(&a, ta), 0);
    CHECK_INT(cpace_tag(&b, tb), 0);
    CHECK_HEX(ta, 64, V_TA);
    CHECK_HEX(tb, 64, V_TB);
    /* each side's own tag is not what it expects from the other (a reflected tag fails) */
    CHECK(memcmp(ta, tb, 64) != 0);
    CHECK_INT(cpace_check_tag(&b, ta), 0);
    CHECK_INT(cpace_check_tag(&a, tb), 0);
    /* a second finish: the scalar is gone */
    CHECK_INT(cpace_finish(&a, sb, (const uint8_t *)"ADb", 3, ika), -1);
    cpace_wipe(&a);
    cpace_wipe(&b);
}

/* One side's run against a given peer share: the result of finish, the state wiped on -1 */
static int finish_against(const uint8_t peer[32])
{
    struct cpace_in in = vin(V_PRS, "ADa");
    struct cpace a;
    uint8_t s[32], isk[64], tag[64], zero[64] = {0};
    int rc;
    if (cpace_start(&a, CPACE_INITIATOR, &in, s) != 0)
        return -2;
    memset(isk, 0xaa, sizeof isk);
    rc = cpace_finish(&a, peer, (const uint8_t *)"ADb", 3, isk);
    if (rc != 0) {
        /* aborted: no key out, nothing left in the state, no tag to send */
        CHECK(memcmp(isk, zero, 64) == 0);
        CHECK(sodium_is_zero((const uint8_t *)&a, sizeof a));
        CHECK_INT(cpace_tag(&a, tag), -1);
    }
    cpace_wipe(&a);
    return rc;
}

static void t_invalid_shares(void)
{
    uint8_t y[32], x[32], out[32];
    static const uint8_t zero[32];
    setup();
    hx(y, 32, V_S);
    /* the draft's invalid inputs: Y_i1 (does not decode) and G.I */
    hx(x, 32, V_YI1);
    memset(out, 0x55, 32);
    CHECK_INT(cpace_scalar_mult_vfy(y, x, out), -1);
    CHECK(sodium_is_zero(out, 32));
    CHECK_INT(cpace_scalar_mult_vfy(y, zero, out), -1);
    CHECK(sodium_is_zero(out, 32));
    CHECK_INT(finish_against(x), -1);
    CHECK_INT(finish_against(zero), -1);
    /* non-canonical encodings of valid-looking values: the field prime p itself (an encoding of
     * 0 plus p), the top bit set on a valid share, a negative (odd) field element */
    memset(x, 0xff, 32);
    x[0] = 0xed, x[31] = 0x7f;
    CHECK_INT(finish_against(x), -1);
    hx(x, 32, V_YA);
    CHECK_INT(finish_against(x), 0); /* the untouched share is fine */
    x[31] |= 0x80;
    CHECK_INT(finish_against(x), -1);
    hx(x, 32, V_YA);
    x[0] ^= 1;
    CHECK_INT(finish_against(x), -1);
    memset(x, 0xff, 32);
    CHECK_INT(finish_against(x), -1);
}

/* A run of two fresh parties: both finish; 1 if both ISKs match and both tags verify, 0 if the
 * ISKs differ and both tags are refused, -1 for anything else (a half-confirmed run) */
static int run(const char *pa, const char *pb, const char *cib, const char *adb_seen_by_a)
{
    struct cpace_in ina = vin(pa, "ADa"), inb = vin(pb, "ADb");
    struct cpace a, b;
    uint8_t sa[32], sb[32], ika[64], ikb[64], ta[64], tb[64];
    int oka, okb, same;
    if (cib)
        inb.ci = (const uint8_t *)cib, inb.ci_len = strlen(cib);
    if (cpace_start(&a, CPACE_INITIATOR, &ina, sa) != 0 ||
        cpace_start(&b, CPACE_RESPONDER, &inb, sb) != 0)
        return -2;
    if (cpace_finish(&b, sa, ina.ad, ina.ad_len, ikb) != 0 ||
        cpace_finish(&a, sb, (const uint8_t *)adb_seen_by_a, strlen(adb_seen_by_a), ika) != 0)
        return -3;
    same = sodium_memcmp(ika, ikb, 64) == 0;
    cpace_tag(&a, ta);
    cpace_tag(&b, tb);
    okb = cpace_check_tag(&b, ta) == 0;
    oka = cpace_check_tag(&a, tb) == 0;
    cpace_wipe(&a);
    cpace_wipe(&b);
    if (same && oka && okb)
        return 1;
    if (!same && !oka && !okb)
        return 0;
    return -1;
}

static void t_wrong_password(void)
{
    setup();
    for (int i = 0; i < 4; i++) /* fresh scalars each time */
        CHECK_INT(run(V_PRS, V_PRS, NULL, "ADb"), 1);
    CHECK_INT(run("guitar-ribbon", "guitar-ribbons", NULL, "ADb"), 0);
    CHECK_INT(run(V_PRS, "password", NULL, "ADb"), 0);
    /* the same words on another channel (CI) */
    CHECK_INT(run(V_PRS, V_PRS, "\x0b" "A_initiator\x0b" "B_responder7", "ADb"), 0);
    /* an AD changed on the way (the server rewrote it): no agreement, both refuse */
    CHECK_INT(run(V_PRS, V_PRS, NULL, "ADc"), 0);
}

/* A server that reflects A's own message back to A, or swaps the roles' messages: nobody ends
 * with a confirmed key. */
static void t_lying_server(void)
{
    struct cpace_in ina, inb;
    struct cpace a, b;
    uint8_t sa[32], sb[32], ika[64], ikb[64], ta[64], tb[64];
    setup();
    ina = vin(V_PRS, "ADa");
    inb = vin(V_PRS, "ADb");
    /* reflection: A's own message comes back to A. Its tag would be the one A expects (each
     * tag covers its sender's message only), so the share itself is refused, whatever AD
     * comes with it */
    CHECK_INT(cpace_start(&a, CPACE_INITIATOR, &ina, sa), 0);
    CHECK_INT(cpace_finish(&a, sa, (const uint8_t *)"ADa", 3, ika), -1);
    CHECK_INT(cpace_tag(&a, ta), -1);
    CHECK_INT(cpace_start(&b, CPACE_RESPONDER, &inb, sb), 0);
    CHECK_INT(cpace_finish(&b, sb, (const uint8_t *)"ADa", 3, ikb), -1);
    /* both told they are the initiator (the server swapped the roles for B) */
    CHECK_INT(cpace_start(&a, CPACE_INITIATOR, &ina, sa), 0);
    CHECK_INT(cpace_start(&b, CPACE_INITIATOR, &inb, sb), 0);
    CHECK_INT(cpace_finish(&a, sb, (const uint8_t *)"ADb", 3, ika), 0);
    CHECK_INT(cpace_finish(&b, sa, (const uint8_t *)"ADa", 3, ikb), 0);
    CHECK(memcmp(ika, ikb, 64) != 0);
    CHECK_INT(cpace_tag(&a, ta), 0);
    CHECK_INT(cpace_tag(&b, tb), 0);
    CHECK_INT(cpace_check_tag(&a, tb), -1);
    CHECK_INT(cpace_check_tag(&b, ta), -1);
    /* a wrong tag of any kind, one bit off, is refused and wipes the state */
    {
        uint8_t ya[32], yb[32];
        hx(ya, 32, V_YA_S);
        hx(yb, 32, V_YB_S);
        CHECK_INT(cpace_start_with_scalar(&a, CPACE_INITIATOR, &ina, ya, sa), 0);
        CHECK_INT(cpace_start_with_scalar(&b, CPACE_RESPONDER, &inb, yb, sb), 0);
        CHECK_INT(cpace_finish(&a, sb, (const uint8_t *)"ADb", 3, ika), 0);
        CHECK_INT(cpace_tag(&a, ta), 0);
        hx(tb, 64, V_TB);
        tb[63] ^= 1;
        CHECK_INT(cpace_check_tag(&a, tb), -1);
        CHECK(sodium_is_zero((const uint8_t *)&a, sizeof a));
        tb[63] ^= 1;
        CHECK_INT(cpace_check_tag(&a, tb), -1); /* and stays refused */
    }
    cpace_wipe(&a);
    cpace_wipe(&b);
}

static void t_bounds(void)
{
    struct cpace_in in;
    struct cpace a;
    uint8_t s[32], isk[64], big[CPACE_AD_MAX + 1];
    setup();
    memset(big, 'x', sizeof big);
    in = vin(V_PRS, "ADa");
    in.ad = big, in.ad_len = CPACE_AD_MAX + 1;
    CHECK_INT(cpace_start(&a, CPACE_INITIATOR, &in, s), -1);
    in.ad_len = CPACE_AD_MAX;
    CHECK_INT(cpace_start(&a, CPACE_INITIATOR, &in, s), 0);
    CHECK_INT(cpace_finish(&a, s, big, CPACE_AD_MAX + 1, isk), -1); /* peer's AD too long */
    in = vin(V_PRS, "ADa");
    in.sid_len = CPACE_SID_MAX + 1;
    CHECK_INT(cpace_start(&a, CPACE_INITIATOR, &in, s), -1);
    in = vin(V_PRS, "ADa");
    in.ci = NULL; /* a length without bytes */
    CHECK_INT(cpace_start(&a, CPACE_INITIATOR, &in, s), -1);
    in = vin(V_PRS, "ADa");
    CHECK_INT(cpace_start(&a, (enum cpace_role)7, &in, s), -1);
    /* no key buffer: refused, and the run is over */
    in = vin(V_PRS, "ADa");
    CHECK_INT(cpace_start(&a, CPACE_INITIATOR, &in, s), 0);
    CHECK_INT(cpace_finish(&a, s, NULL, 0, NULL), -1);
    CHECK(sodium_is_zero((const uint8_t *)&a, sizeof a));
    /* finish without start */
    cpace_wipe(&a);
    CHECK_INT(cpace_finish(&a, s, NULL, 0, isk), -1);
    CHECK_INT(cpace_check_tag(&a, isk), -1);
}

static void t_binding_key(void)
{
    uint8_t isk[64], k1[32], k2[32];
    setup();
    hx(isk, 64, V_ISK_IR);
    CHECK_INT(cpace_binding_key(isk, (const uint8_t *)V_BIND_LABEL, strlen(V_BIND_LABEL), k1), 0);
    CHECK_HEX(k1, 32, V_BIND);
    CHECK_INT(cpace_binding_key(isk, (const uint8_t *)"other", 5, k2), 0);
    CHECK(memcmp(k1, k2, 32) != 0);
    isk[0] ^= 1;
    CHECK_INT(cpace_binding_key(isk, (const uint8_t *)V_BIND_LABEL, strlen(V_BIND_LABEL), k2), 0);
    CHECK(memcmp(k1, k2, 32) != 0);
    CHECK_INT(cpace_binding_key(isk, NULL, 3, k2), -1);
}

CHECK_MAIN(TEST(t_lv), TEST(t_generator_string), TEST(t_generator), TEST(t_shares_k_isk),
           TEST(t_run_vectors), TEST(t_invalid_shares), TEST(t_wrong_password),
           TEST(t_lying_server), TEST(t_bounds), TEST(t_binding_key))
