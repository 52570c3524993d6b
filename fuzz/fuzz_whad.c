/* libFuzzer harness for the wormhole AD parser (peer/whad.c, whad_parse): the AD is the other
 * side's, relayed by a server that may lie, so every byte of it is hostile. The input's first
 * byte says which side's AD we expect (bit 0: 0 the maker's, 1 the claimer's); the rest is
 * the AD, as it arrives (its base64 already undone).
 *
 * Invariants: the result is 0 or -1; -1 comes with a message of printable ASCII (the AD's
 * bytes never reach a terminal) and leaves mode, id and key zeroed; 0 gives a known mode, a
 * valid tcpunch id and an AD within WHAD_MAX_BYTES that is exactly what whad_encode makes of
 * what was read (one spelling per AD: no overlong length, no other label, nothing after), and
 * the same AD is refused as the other side's (a reflected or swapped message). */
#include "fuzz/fuzz.h"
#include "peer/whad.h"

#include <string.h>

static void fz_refused(const char *why, enum whad_mode mode, const char *id, const uint8_t *key)
{
    static const char zid[PROTO_MAX_ID + 1];
    static const uint8_t zkey[PROTO_KEY_BYTES];
    FZ_CHECK(why[0] != '\0', "a refusal without a message");
    for (const char *p = why; *p; p++)
        FZ_CHECK(*p >= 0x20 && *p < 0x7f, "byte 0x%02x in the message", (unsigned char)*p);
    FZ_CHECK(mode == WHAD_FILE, "mode %d left behind", (int)mode);
    FZ_CHECK(memcmp(id, zid, sizeof zid) == 0, "an id left behind");
    FZ_CHECK(memcmp(key, zkey, sizeof zkey) == 0, "a key left behind");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum whad_mode mode = WHAD_PIPE;
    char id[PROTO_MAX_ID + 1], why[256];
    uint8_t key[PROTO_KEY_BYTES], again[WHAD_MAX_BYTES];
    const uint8_t *ad;
    char side, other;
    size_t len;
    int rc, n;
    if (size < 1)
        return 0;
    side = (data[0] & 1) ? WHAD_CLAIMER : WHAD_MAKER;
    other = side == WHAD_MAKER ? WHAD_CLAIMER : WHAD_MAKER;
    ad = data + 1;
    len = size - 1;
    memset(id, 'x', sizeof id);
    memset(key, 0xff, sizeof key);
    memset(why, 0, sizeof why);
    rc = whad_parse(ad, len, side, &mode, id, key, why, sizeof why);
    FZ_CHECK(rc == 0 || rc == -1, "rc = %d", rc);
    if (rc != 0) {
        fz_refused(why, mode, id, key);
        return 0;
    }
    FZ_CHECK(mode == WHAD_FILE || mode == WHAD_PIPE, "mode %d", (int)mode);
    FZ_CHECK(memchr(id, '\0', sizeof id) != NULL && proto_valid_id(id), "an invalid id taken");
    FZ_CHECK(len <= WHAD_MAX_BYTES, "an AD of %zu bytes taken", len);
    n = whad_encode(again, sizeof again, side, mode, id, key);
    FZ_CHECK(n > 0 && (size_t)n == len && memcmp(again, ad, len) == 0,
             "an AD taken that is not the canonical one of what it says (%d vs %zu bytes)", n, len);
    memset(why, 0, sizeof why);
    rc = whad_parse(ad, len, other, &mode, id, key, why, sizeof why);
    FZ_CHECK(rc == -1, "the AD taken as both sides'");
    fz_refused(why, mode, id, key);
    return 0;
}
