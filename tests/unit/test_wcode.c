/* The wormhole codes (proto/wcode.c): the word list's rules, the canonical text, what the parser
 * accepts as a user types it and what it refuses (each refusal with its message), and the CPace
 * inputs a code turns into. */
#include "tests/unit/check.h"
#include "proto/cpace.h"
#include "proto/wcode.h"

#include <sodium.h>

static void setup(void)
{
    if (sodium_init() < 0)
        abort();
}

/* The list: 256 words (8 bits each, the entropy docs/design/wormhole.md states), lower-case
 * letters, 3 to 8 of them, strictly sorted (so distinct, and the parser's binary search
 * works), no word the beginning of another, each found by its own index. */
static void t_list(void)
{
    CHECK_INT(wcode_nwords, 256);
    for (unsigned i = 0; i < wcode_nwords; i++) {
        const char *w = wcode_words[i];
        size_t n = strlen(w);
        CHECK_MSG(n >= 3 && n <= WCODE_WORD_MAX, "word %u \"%s\": %zu letters", i, w, n);
        for (size_t k = 0; k < n; k++)
            CHECK_MSG(w[k] >= 'a' && w[k] <= 'z', "word %u \"%s\": not a-z", i, w);
        if (i > 0)
            CHECK_MSG(strcmp(wcode_words[i - 1], w) < 0, "\"%s\" before \"%s\"", wcode_words[i - 1],
                      w);
        for (unsigned j = 0; j < wcode_nwords; j++)
            if (j != i)
                CHECK_MSG(strncmp(wcode_words[j], w, n) != 0, "\"%s\" begins \"%s\"", w,
                          wcode_words[j]);
        CHECK_INT(wcode_word_index(w, n), (int)i);
    }
    CHECK_INT(wcode_word_index("guitar", 6) >= 0, 1);
    CHECK_INT(wcode_word_index("guita", 5), -1); /* a prefix of a word */
    CHECK_INT(wcode_word_index("guitars", 7), -1);
    CHECK_INT(wcode_word_index("aaa", 3), -1);  /* before the first */
    CHECK_INT(wcode_word_index("zzzz", 4), -1); /* after the last */
    CHECK_INT(wcode_word_index("", 0), -1);
}

static struct wcode mk(uint32_t ch, const char *w1, const char *w2, const char *w3)
{
    struct wcode c = {ch, w3 ? 3u : 2u, {0, 0, 0}};
    c.word[0] = (uint16_t)wcode_word_index(w1, strlen(w1));
    c.word[1] = (uint16_t)wcode_word_index(w2, strlen(w2));
    if (w3)
        c.word[2] = (uint16_t)wcode_word_index(w3, strlen(w3));
    return c;
}

static void t_format(void)
{
    struct wcode c = mk(7, "guitar", "ribbon", NULL);
    char out[WCODE_TEXT_MAX];
    CHECK_INT(wcode_format(&c, out, sizeof out), 15);
    CHECK_STR(out, "7-guitar-ribbon");
    CHECK_INT(wcode_format(&c, out, 15), 0); /* no room for the NUL */
    CHECK_INT(wcode_format(&c, out, 16), 15);
    c = mk(999999, "umbrella", "umbrella", "umbrella");
    CHECK_INT(wcode_format(&c, out, sizeof out), WCODE_TEXT_MAX - 1); /* the longest fits */
    CHECK_STR(out, "999999-umbrella-umbrella-umbrella");
    c.channel = 0;
    CHECK_INT(wcode_format(&c, out, sizeof out), 0);
    c.channel = 1000000;
    CHECK_INT(wcode_format(&c, out, sizeof out), 0);
    c.channel = 1, c.nwords = 1;
    CHECK_INT(wcode_format(&c, out, sizeof out), 0);
    c.nwords = 4;
    CHECK_INT(wcode_format(&c, out, sizeof out), 0);
    c.nwords = 2, c.word[1] = (uint16_t)wcode_nwords;
    CHECK_INT(wcode_format(&c, out, sizeof out), 0);
}

/* parse(text) gives canon, formatted back */
static int parses_as(const char *text, const char *canon)
{
    struct wcode c;
    char err[200], out[WCODE_TEXT_MAX];
    if (wcode_parse(text, &c, err, sizeof err) != 0)
        return CHECK_MSG(0, "\"%s\" refused: %s", text, err);
    if (!CHECK(wcode_format(&c, out, sizeof out) > 0))
        return 0;
    return CHECK_MSG(strcmp(out, canon) == 0, "\"%s\" read as %s, not %s", text, out, canon);
}

/* parse(text) is refused with a message that contains want */
static int refused(const char *text, const char *want)
{
    struct wcode c;
    char err[200];
    memset(&c, 0x5a, sizeof c);
    if (wcode_parse(text, &c, err, sizeof err) == 0)
        return CHECK_MSG(0, "\"%s\" accepted", text);
    CHECK(sodium_is_zero((const unsigned char *)&c, sizeof c)); /* no half-parsed code */
    for (const char *p = err; *p; p++)
        CHECK_MSG(*p >= 0x20 && *p < 0x7f, "\"%s\": unprintable byte in the message", text);
    return CHECK_MSG(strstr(err, want) != NULL, "\"%s\": message \"%s\" lacks \"%s\"", text, err,
                     want);
}

static void t_parse_accepts(void)
{
    parses_as("7-guitar-ribbon", "7-guitar-ribbon");
    parses_as("7-Guitar-RIBBON", "7-guitar-ribbon");
    parses_as("7 guitar ribbon", "7-guitar-ribbon");
    parses_as("  7 - guitar\t-ribbon  ", "7-guitar-ribbon");
    parses_as("7--guitar--ribbon-", "7-guitar-ribbon");
    parses_as("-7-guitar-ribbon", "7-guitar-ribbon");
    parses_as("123456-acorn-zipper-walnut", "123456-acorn-zipper-walnut");
    parses_as("999999-zebra-acorn", "999999-zebra-acorn");
    parses_as("1 ZEBRA Acorn", "1-zebra-acorn");
}

static void t_parse_refuses(void)
{
    char longer[WCODE_INPUT_MAX + 2];
    refused(NULL, "no code");
    refused("", "empty");
    refused(" - \t ", "empty");
    refused("guitar-ribbon", "starts with its channel number");
    refused("7a-guitar-ribbon", "\"7a\" is not a number");
    refused("07-guitar-ribbon", "leading zero");
    refused("0-guitar-ribbon", "out of range");
    refused("1000000-guitar-ribbon", "out of range");
    refused("99999999999999999999-guitar-ribbon", "out of range");
    refused("7", "2 or 3 words");
    refused("7-guitar", "has 1");
    refused("7-guitar-ribbon-acorn-zebra", "more");
    refused("7-guitar-ribbn", "\"ribbn\" (word 2) is not a word");
    refused("7-guitar-RIBBONS", "\"ribbons\" (word 2)");
    refused("7-guitarguitarguitarguitar-ribbon", "\"guitarguitarguit...\" (word 1)");
    refused("7-gu1tar-ribbon", "has a digit");
    refused("7-guitar-7", "word 2");
    refused("7_guitar_ribbon", "'_'");
    refused("7.guitar.ribbon", "'.'");
    refused("7-guitar-ribbon\n", "0x0a");
    refused("7-guit\x1b[2Jar-ribbon", "0x1b");
    refused("7-gu\xc3\xaftar-ribbon", "0xc3"); /* non-ASCII */
    refused("7,guitar,ribbon", "','");
    memset(longer, ' ', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    memcpy(longer, "7-guitar-ribbon", 15);
    refused(longer, "too long");
    longer[WCODE_INPUT_MAX] = '\0'; /* exactly the limit: spaces trail, fine */
    parses_as(longer, "7-guitar-ribbon");
    /* no message buffer: still refused, nothing written */
    {
        struct wcode c;
        CHECK_INT(wcode_parse("7-x-y", &c, NULL, 0), -1);
        CHECK_INT(wcode_parse("7-guitar-ribbon", NULL, NULL, 0), -1);
    }
}

/* Generated codes are in range, format and parse back to themselves; the words are spread over
 * the whole list (a generator stuck on a few words would fail). */
static void t_generate_roundtrip(void)
{
    static unsigned char seen[256];
    unsigned distinct = 0;
    setup();
    for (int i = 0; i < 2000; i++) {
        struct wcode c, d;
        char out[WCODE_TEXT_MAX], err[200];
        uint32_t ch = 1 + (uint32_t)randombytes_uniform(WCODE_CHANNEL_MAX);
        unsigned nw = 2 + (unsigned)(i & 1);
        if (!CHECK_INT(wcode_generate(&c, ch, nw), 0))
            return;
        CHECK(c.channel == ch && c.nwords == nw);
        CHECK(wcode_format(&c, out, sizeof out) > 0);
        if (!CHECK_MSG(wcode_parse(out, &d, err, sizeof err) == 0, "%s: %s", out, err))
            return;
        CHECK(memcmp(&c, &d, sizeof c) == 0);
        for (unsigned k = 0; k < nw; k++)
            seen[c.word[k]] = 1;
    }
    for (unsigned i = 0; i < 256; i++)
        distinct += seen[i];
    /* 5000 draws over 256 words: missing any one has probability about 256 * e^-19.5 */
    CHECK_INT(distinct, 256);
    {
        struct wcode c;
        CHECK_INT(wcode_generate(&c, 0, 2), -1);
        CHECK_INT(wcode_generate(&c, WCODE_CHANNEL_MAX + 1, 2), -1);
        CHECK_INT(wcode_generate(&c, 5, 1), -1);
        CHECK_INT(wcode_generate(&c, 5, 4), -1);
    }
}

/* The CPace inputs: the words as the password, the channel in CI; the same code typed any way
 * gives the same bytes; another channel or another word, others. */
static void t_cpace_inputs(void)
{
    struct wcode c, d;
    uint8_t prs[WCODE_PRS_MAX], ci[WCODE_CI_MAX], prs2[WCODE_PRS_MAX], ci2[WCODE_CI_MAX];
    size_t np, nc, np2, nc2;
    char err[200];
    setup();
    c = mk(7, "guitar", "ribbon", NULL);
    np = wcode_prs(&c, prs, sizeof prs);
    CHECK(np == 13 && memcmp(prs, "guitar-ribbon", 13) == 0);
    nc = wcode_ci(&c, ci, sizeof ci);
    CHECK(nc == 21 && memcmp(ci, "\x12tcpunch-wormhole-1\x01" "7", 21) == 0);
    CHECK_INT(wcode_prs(&c, prs2, 12), 0); /* does not fit */
    CHECK_INT(wcode_ci(&c, ci2, 20), 0);
    CHECK_INT(wcode_parse(" 7 GUITAR  Ribbon ", &d, err, sizeof err), 0);
    np2 = wcode_prs(&d, prs2, sizeof prs2);
    nc2 = wcode_ci(&d, ci2, sizeof ci2);
    CHECK(np2 == np && memcmp(prs, prs2, np) == 0 && nc2 == nc && memcmp(ci, ci2, nc) == 0);
    d.channel = 77;
    nc2 = wcode_ci(&d, ci2, sizeof ci2);
    CHECK(nc2 != nc || memcmp(ci, ci2, nc) != 0);
    c = mk(999999, "umbrella", "umbrella", "umbrella");
    CHECK_INT(wcode_prs(&c, prs, sizeof prs), WCODE_PRS_MAX - 1);
    CHECK(wcode_ci(&c, ci, sizeof ci) > 0);
    c.nwords = 9;
    CHECK_INT(wcode_prs(&c, prs, sizeof prs), 0);
    CHECK_INT(wcode_ci(&c, ci, sizeof ci), 0);
    wcode_wipe(&c);
    CHECK(sodium_is_zero((const unsigned char *)&c, sizeof c));
}

/* End to end: two codes run through CPace. The same code typed differently agrees; one wrong
 * word, or the right words on another channel, fail on both sides. */
static int pake(const char *code_a, const char *code_b)
{
    struct wcode ca, cb;
    uint8_t pa[WCODE_PRS_MAX], pb[WCODE_PRS_MAX], ia[WCODE_CI_MAX], ib[WCODE_CI_MAX];
    uint8_t sa[32], sb[32], ka[64], kb[64], ta[64], tb[64];
    struct cpace a, b;
    struct cpace_in ina = {0}, inb = {0};
    int oka, okb;
    if (wcode_parse(code_a, &ca, NULL, 0) || wcode_parse(code_b, &cb, NULL, 0))
        return -2;
    ina.prs = pa, ina.prs_len = wcode_prs(&ca, pa, sizeof pa);
    ina.ci = ia, ina.ci_len = wcode_ci(&ca, ia, sizeof ia);
    inb.prs = pb, inb.prs_len = wcode_prs(&cb, pb, sizeof pb);
    inb.ci = ib, inb.ci_len = wcode_ci(&cb, ib, sizeof ib);
    if (cpace_start(&a, CPACE_INITIATOR, &ina, sa) || cpace_start(&b, CPACE_RESPONDER, &inb, sb) ||
        cpace_finish(&a, sb, NULL, 0, ka) || cpace_finish(&b, sa, NULL, 0, kb))
        return -3;
    cpace_tag(&a, ta);
    cpace_tag(&b, tb);
    oka = cpace_check_tag(&a, tb) == 0;
    okb = cpace_check_tag(&b, ta) == 0;
    cpace_wipe(&a);
    cpace_wipe(&b);
    sodium_memzero(pa, sizeof pa);
    sodium_memzero(pb, sizeof pb);
    if (oka && okb && memcmp(ka, kb, 64) == 0)
        return 1;
    return !oka && !okb ? 0 : -1;
}

static void t_pake(void)
{
    setup();
    CHECK_INT(pake("7-guitar-ribbon", "7 Guitar Ribbon"), 1);
    CHECK_INT(pake("7-guitar-ribbon", "7-guitar-walnut"), 0);
    CHECK_INT(pake("7-guitar-ribbon", "8-guitar-ribbon"), 0);
    CHECK_INT(pake("7-guitar-ribbon", "7-ribbon-guitar"), 0);
    CHECK_INT(pake("7-guitar-ribbon", "7-guitar-ribbon-acorn"), 0);
}

CHECK_MAIN(TEST(t_list), TEST(t_format), TEST(t_parse_accepts), TEST(t_parse_refuses),
           TEST(t_generate_roundtrip), TEST(t_cpace_inputs), TEST(t_pake))
