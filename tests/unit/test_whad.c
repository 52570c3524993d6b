/* peer/whad.c: the wormhole AD, lv_cat(label, mode, id, key). The AD comes from the other side
 * through a server that may lie, so the parser takes exactly one spelling of each AD and says
 * why it refuses the rest without quoting their bytes. */
#include <string.h>

#include "check.h"
#include "peer/whad.h"

static uint8_t key[32];

static void setup(void)
{
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(0xa0 + i);
}

/* The AD of the maker "bob" for a file, byte by byte. */
static size_t bob_ad(uint8_t *out)
{
    size_t n = 0;
    out[n++] = 20;
    memcpy(out + n, "tcpunch-wormhole-1 A", 20);
    n += 20;
    out[n++] = 4;
    memcpy(out + n, "file", 4);
    n += 4;
    out[n++] = 3;
    memcpy(out + n, "bob", 3);
    n += 3;
    out[n++] = 32;
    memcpy(out + n, key, 32);
    return n + 32;
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* Parses ad as side's; on a refusal checks that why is set, printable, and that the outputs
 * were zeroed. Returns parse's result. */
static int parse(const uint8_t *ad, size_t len, char side, char *why, size_t whylen)
{
    static const char zero[PROTO_MAX_ID + 1];
    static const uint8_t zkey[32];
    enum whad_mode mode = WHAD_PIPE;
    char id[PROTO_MAX_ID + 1];
    uint8_t k[32];
    int rc;
    memset(id, 'x', sizeof id);
    memset(k, 0xff, sizeof k);
    rc = whad_parse(ad, len, side, &mode, id, k, why, whylen);
    if (rc < 0) {
        CHECK(why[0] != '\0');
        CHECK_MSG(printable(why), "unprintable refusal: %s", why);
        CHECK(mode == WHAD_FILE);
        CHECK(memcmp(id, zero, sizeof id) == 0);
        CHECK(memcmp(k, zkey, sizeof k) == 0);
    }
    return rc;
}

static void t_exact_bytes(void)
{
    uint8_t want[WHAD_MAX_BYTES], got[WHAD_MAX_BYTES];
    size_t n;
    setup();
    n = bob_ad(want);
    CHECK_INT(whad_encode(got, sizeof got, WHAD_MAKER, WHAD_FILE, "bob", key), (int)n);
    CHECK(memcmp(got, want, n) == 0);
}

static void t_roundtrip(void)
{
    static const char *const ids[] = {
        "a", "bob", "alice.home-2_x",
        "0123456789012345678901234567890123456789012345678901234567890123"};
    const char sides[] = {WHAD_MAKER, WHAD_CLAIMER};
    setup();
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        for (int s = 0; s < 2; s++)
            for (int m = WHAD_FILE; m <= WHAD_PIPE; m++) {
                uint8_t ad[WHAD_MAX_BYTES];
                enum whad_mode mode;
                char id[PROTO_MAX_ID + 1], why[200];
                uint8_t k[32];
                int n = whad_encode(ad, sizeof ad, sides[s], (enum whad_mode)m, ids[i], key);
                if (!CHECK(n > 0 && n <= WHAD_MAX_BYTES && n <= CPACE_AD_MAX))
                    continue;
                CHECK_INT(whad_parse(ad, (size_t)n, sides[s], &mode, id, k, why, sizeof why), 0);
                CHECK_INT(mode, m);
                CHECK_STR(id, ids[i]);
                CHECK(memcmp(k, key, 32) == 0);
                /* the other side's label is refused: a reflected or swapped AD */
                CHECK_INT(parse(ad, (size_t)n, sides[1 - s], why, sizeof why), -1);
                CHECK(strstr(why, "reflecting or swapping") != NULL);
            }
    /* the longest AD is exactly the bound */
    {
        uint8_t ad[WHAD_MAX_BYTES];
        CHECK_INT(whad_encode(ad, sizeof ad, WHAD_CLAIMER, WHAD_PIPE, ids[3], key), WHAD_MAX_BYTES);
    }
    CHECK_STR(whad_mode_name(WHAD_FILE), "file");
    CHECK_STR(whad_mode_name(WHAD_PIPE), "pipe");
    CHECK_STR(whad_mode_name((enum whad_mode)7), "?");
}

static void t_encode_refuses(void)
{
    uint8_t ad[WHAD_MAX_BYTES];
    setup();
    CHECK_INT(whad_encode(ad, sizeof ad, 'C', WHAD_FILE, "bob", key), -1);
    CHECK_INT(whad_encode(ad, sizeof ad, 'a', WHAD_FILE, "bob", key), -1);
    CHECK_INT(whad_encode(ad, sizeof ad, WHAD_MAKER, (enum whad_mode)2, "bob", key), -1);
    CHECK_INT(whad_encode(ad, sizeof ad, WHAD_MAKER, WHAD_FILE, "", key), -1);
    CHECK_INT(whad_encode(ad, sizeof ad, WHAD_MAKER, WHAD_FILE, "bo b", key), -1);
    CHECK_INT(whad_encode(ad, sizeof ad, WHAD_MAKER, WHAD_FILE, NULL, key), -1);
    CHECK_INT(whad_encode(ad, 62, WHAD_MAKER, WHAD_FILE, "bob", key), -1); /* needs 63 */
    CHECK_INT(whad_encode(ad, 63, WHAD_MAKER, WHAD_FILE, "bob", key), 63);
}

/* Each field refused on its own, in an otherwise good AD. */
static void t_parse_refuses(void)
{
    uint8_t good[WHAD_MAX_BYTES], ad[CPACE_AD_MAX + 8];
    char why[200];
    size_t n;
    setup();
    n = bob_ad(good);
    CHECK_INT(parse(good, n, WHAD_MAKER, why, sizeof why), 0);

    /* every proper prefix, the empty AD included */
    for (size_t k = 0; k < n; k++)
        CHECK_MSG(parse(good, k, WHAD_MAKER, why, sizeof why) == -1, "prefix of %zu taken", k);
    /* a byte after the key */
    memcpy(ad, good, n);
    ad[n] = 0;
    CHECK_INT(parse(ad, n + 1, WHAD_MAKER, why, sizeof why), -1);
    CHECK(strstr(why, "after its key") != NULL);
    /* over CPace's bound, whatever it holds */
    memset(ad, 0, sizeof ad);
    memcpy(ad, good, n);
    CHECK_INT(parse(ad, CPACE_AD_MAX + 1, WHAD_MAKER, why, sizeof why), -1);
    CHECK(strstr(why, "over 256") != NULL);
    /* an overlong length: the label's 20 as 0x94 0x00 */
    ad[0] = 0x94;
    ad[1] = 0x00;
    memcpy(ad + 2, good + 1, n - 1);
    CHECK_INT(parse(ad, n + 1, WHAD_MAKER, why, sizeof why), -1);
    CHECK(strstr(why, "overlong") != NULL);
    /* the same for the mode's 4 (0x84 0x00) and the key's 32 (0xa0 0x80 0x00) */
    memcpy(ad, good, 21);
    ad[21] = 0x84;
    ad[22] = 0x00;
    memcpy(ad + 23, good + 22, n - 22);
    CHECK_INT(parse(ad, n + 1, WHAD_MAKER, why, sizeof why), -1);
    CHECK(strstr(why, "mode has an overlong") != NULL);
    memcpy(ad, good, 30);
    ad[30] = 0xa0;
    ad[31] = 0x80;
    ad[32] = 0x00;
    memcpy(ad + 33, good + 31, 32);
    CHECK_INT(parse(ad, n + 2, WHAD_MAKER, why, sizeof why), -1);
    CHECK(strstr(why, "key has an overlong") != NULL);
    /* a length that never ends, and one past the end */
    memset(ad, 0xff, 8);
    CHECK_INT(parse(ad, 8, WHAD_MAKER, why, sizeof why), -1);
    CHECK(strstr(why, "longer than") != NULL);
    memcpy(ad, good, n);
    ad[26] = 60; /* the id's length */
    CHECK_INT(parse(ad, n, WHAD_MAKER, why, sizeof why), -1);
    CHECK(strstr(why, "runs past") != NULL);
    ad[26] = PROTO_MAX_ID + 1;
    CHECK_INT(parse(ad, n, WHAD_MAKER, why, sizeof why), -1);
    CHECK(strstr(why, "id is longer than 64") != NULL);
    /* labels: another version, another program, a lower-case side letter */
    memcpy(ad, good, n);
    ad[18] = '2';
    CHECK_INT(parse(ad, n, WHAD_MAKER, why, sizeof why), -1);
    CHECK(strstr(why, "label is not") != NULL);
    memcpy(ad, good, n);
    ad[20] = 'a';
    CHECK_INT(parse(ad, n, WHAD_MAKER, why, sizeof why), -1);
    CHECK(strstr(why, "label is not") != NULL);
    /* a label one byte short: "tcpunch-wormhole-1A" */
    ad[0] = 19;
    memcpy(ad + 1, "tcpunch-wormhole-1A", 19);
    memcpy(ad + 20, good + 21, n - 21);
    CHECK_INT(parse(ad, n - 1, WHAD_MAKER, why, sizeof why), -1);
    /* modes: unknown, upper case */
    memcpy(ad, good, n);
    memcpy(ad + 22, "fila", 4);
    CHECK_INT(parse(ad, n, WHAD_MAKER, why, sizeof why), -1);
    CHECK(strstr(why, "unknown mode") != NULL);
    memcpy(ad + 22, "FILE", 4);
    CHECK_INT(parse(ad, n, WHAD_MAKER, why, sizeof why), -1);
    /* ids: a NUL inside (a shorter id than the one hashed), a space, an escape byte */
    memcpy(ad, good, n);
    ad[28] = '\0';
    CHECK_INT(parse(ad, n, WHAD_MAKER, why, sizeof why), -1);
    CHECK(strstr(why, "not a valid tcpunch id") != NULL);
    ad[28] = ' ';
    CHECK_INT(parse(ad, n, WHAD_MAKER, why, sizeof why), -1);
    ad[28] = 0x1b;
    CHECK_INT(parse(ad, n, WHAD_MAKER, why, sizeof why), -1);
    CHECK(strchr(why, 0x1b) == NULL);
    /* an empty id: 0 bytes, then the key */
    memcpy(ad, good, 26);
    ad[26] = 0;
    memcpy(ad + 27, good + 30, 33);
    CHECK_INT(parse(ad, 60, WHAD_MAKER, why, sizeof why), -1);
    /* keys: 31 bytes (and nothing after), 33 bytes */
    memcpy(ad, good, n);
    ad[30] = 31;
    CHECK_INT(parse(ad, n - 1, WHAD_MAKER, why, sizeof why), -1);
    CHECK(strstr(why, "31 bytes") != NULL);
    ad[30] = 33;
    ad[n] = 0;
    CHECK_INT(parse(ad, n + 1, WHAD_MAKER, why, sizeof why), -1);
    CHECK(strstr(why, "key is longer than 32") != NULL);
    /* fields out of order: the mode where the label is due */
    memcpy(ad, good + 21, 5);
    memcpy(ad + 5, good, 21);
    memcpy(ad + 26, good + 26, n - 26);
    CHECK_INT(parse(ad, n, WHAD_MAKER, why, sizeof why), -1);
    /* a bad side asked for, and no buffer */
    CHECK_INT(parse(good, n, 'C', why, sizeof why), -1);
    CHECK_INT(parse(NULL, 5, WHAD_MAKER, why, sizeof why), -1);
}

/* Refusals quote nothing of the AD: a hostile id full of escapes and text never shows. */
static void t_no_echo(void)
{
    uint8_t ad[WHAD_MAX_BYTES];
    char why[300];
    size_t n;
    setup();
    n = bob_ad(ad);
    ad[26] = 3;
    memcpy(ad + 27, "\x1b]0", 3);
    CHECK_INT(parse(ad, n, WHAD_MAKER, why, sizeof why), -1);
    CHECK(strchr(why, 0x1b) == NULL && strstr(why, "]0") == NULL);
    n = bob_ad(ad);
    memcpy(ad + 22, "\x1b[2J", 4);
    CHECK_INT(parse(ad, n, WHAD_MAKER, why, sizeof why), -1);
    CHECK(strchr(why, 0x1b) == NULL && strstr(why, "[2J") == NULL);
    /* a small why buffer is cut, never overrun */
    memset(why, 'z', sizeof why);
    CHECK_INT(whad_parse(ad, n, WHAD_MAKER, &(enum whad_mode){0}, (char[PROTO_MAX_ID + 1]){0},
                         (uint8_t[32]){0}, why, 8),
              -1);
    CHECK_INT((int)strlen(why), 7);
    CHECK(why[8] == 'z');
}

CHECK_MAIN(TEST(t_exact_bytes), TEST(t_roundtrip), TEST(t_encode_refuses), TEST(t_parse_refuses),
           TEST(t_no_echo))
