/* libFuzzer harness for what a peer (or the mailbox relaying for it) sends into CPace
 * (proto/cpace.c, cpace_finish): the input is the peer's share (its first 32 bytes, zero-padded
 * when shorter) and its associated data (the rest, any length). The honest side has started a
 * run with a fixed password; half the time as initiator, half as responder (the first byte's low
 * bit, after the share).
 *
 * Invariants: finish returns 0 or -1. On -1 nothing is left: the ISK buffer and the whole state
 * are zero and no tag can be had. On 0 the share is the one canonical encoding of its element
 * (decoding and encoding again, as 1 * share, gives the same bytes: no second encoding of an
 * element is ever accepted), it is not our own share, the AD is within CPACE_AD_MAX, and a tag
 * the peer did not compute (ours reflected, or all zeros) is refused. */
#include "fuzz/fuzz.h"
#include "proto/cpace.h"

#include <sodium.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    static const uint8_t prs[] = "guitar-ribbon", ci[] = "\x12tcpunch-wormhole-1\x01" "7";
    static const uint8_t one[32] = {1};
    struct cpace_in in = {prs, sizeof prs - 1, ci, sizeof ci - 1, (const uint8_t *)"0123456789abcdef",
                          16, (const uint8_t *)"ADa", 3};
    struct cpace c;
    uint8_t peer[32] = {0}, own[32], isk[64], tag[64], again[32];
    const uint8_t *ad = size > 32 ? data + 32 : NULL;
    size_t ad_len = size > 32 ? size - 32 : 0;
    enum cpace_role role;
    int rc;
    if (!ready) {
        if (sodium_init() < 0)
            abort();
        ready = 1;
    }
    memcpy(peer, data, size < 32 ? size : 32);
    role = (ad_len && (ad[0] & 1)) ? CPACE_RESPONDER : CPACE_INITIATOR;
    FZ_CHECK(cpace_start(&c, role, &in, own) == 0, "start failed");
    memset(isk, 0xa5, sizeof isk);
    rc = cpace_finish(&c, peer, ad, ad_len, isk);
    FZ_CHECK(rc == 0 || rc == -1, "rc = %d", rc);
    if (rc != 0) {
        FZ_CHECK(sodium_is_zero(isk, sizeof isk), "ISK left after a refusal");
        FZ_CHECK(sodium_is_zero((const uint8_t *)&c, sizeof c), "state left after a refusal");
        FZ_CHECK(cpace_tag(&c, tag) == -1, "a tag after a refusal");
        return 0;
    }
    FZ_CHECK(ad_len <= CPACE_AD_MAX, "an AD of %zu bytes accepted", ad_len);
    FZ_CHECK(sodium_memcmp(peer, own, 32) != 0, "our own share accepted");
    FZ_CHECK(crypto_scalarmult_ristretto255(again, one, peer) == 0 && memcmp(again, peer, 32) == 0,
             "a non-canonical share accepted");
    FZ_CHECK(!sodium_is_zero(isk, sizeof isk), "an all-zero ISK");
    FZ_CHECK(cpace_tag(&c, tag) == 0, "no tag after a finish");
    FZ_CHECK(cpace_check_tag(&c, tag) == -1, "our own tag accepted back");
    /* the refusal wiped the state: a zero tag, or any tag, is refused from now on */
    memset(tag, 0, sizeof tag);
    FZ_CHECK(cpace_check_tag(&c, tag) == -1, "a zero tag accepted");
    cpace_wipe(&c);
    return 0;
}
