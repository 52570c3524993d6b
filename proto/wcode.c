/* The wormhole codes' text: generation, canonical form, the parser for what a user types, and
 * the CPace inputs they turn into. */
#include "proto/wcode.h"
#include "proto/cpace.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char wc_ci_label[] = "tcpunch-wormhole-1";
/* what the messages quote of a user's part: enough to recognise it */
#define WC_QUOTE 16

static int wc_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int wc_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int wc_is_sep(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '-';
}

static int wc_is_digit(unsigned char ch)
{
    return ch >= '0' && ch <= '9';
}

static int wc_is_letter(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static int wc_valid(const struct wcode *c)
{
    if (!c || c->channel < WCODE_CHANNEL_MIN || c->channel > WCODE_CHANNEL_MAX ||
        c->nwords < WCODE_WORDS_MIN || c->nwords > WCODE_WORDS_MAX)
        return 0;
    for (unsigned i = 0; i < c->nwords; i++)
        if (c->word[i] >= wcode_nwords)
            return 0;
    return 1;
}

void wcode_wipe(struct wcode *c)
{
    if (c)
        sodium_memzero(c, sizeof *c);
}

int wcode_generate(struct wcode *c, uint32_t channel, unsigned nwords)
{
    if (!c)
        return -1;
    wcode_wipe(c);
    if (channel < WCODE_CHANNEL_MIN || channel > WCODE_CHANNEL_MAX || nwords < WCODE_WORDS_MIN ||
        nwords > WCODE_WORDS_MAX)
        return -1;
    c->channel = channel;
    c->nwords = nwords;
    for (unsigned i = 0; i < nwords; i++)
        c->word[i] = (uint16_t)randombytes_uniform(wcode_nwords); /* uniform: no modulo bias */
    return 0;
}

/* Appends the words joined by sep (a leading sep too if lead) to out at *at; 0 or -1 (no room,
 * counting the NUL when nul). */
static int wc_put_words(const struct wcode *c, char *out, size_t cap, size_t *at, int lead, int nul)
{
    for (unsigned i = 0; i < c->nwords; i++) {
        const char *w = wcode_words[c->word[i]];
        size_t n = strlen(w), need = n + (lead || i > 0) + (nul ? 1 : 0);
        if (need > cap - *at)
            return -1;
        if (lead || i > 0)
            out[(*at)++] = '-';
        memcpy(out + *at, w, n);
        *at += n;
    }
    return 0;
}

size_t wcode_format(const struct wcode *c, char *out, size_t cap)
{
    size_t at;
    int n;
    if (!out || cap == 0 || !wc_valid(c))
        return 0;
    n = snprintf(out, cap, "%u", (unsigned)c->channel);
    if (n < 0 || (size_t)n >= cap)
        goto fail;
    at = (size_t)n;
    if (wc_put_words(c, out, cap, &at, 1, 1) != 0)
        goto fail;
    out[at] = '\0';
    return at;
fail:
    sodium_memzero(out, cap);
    return 0;
}

size_t wcode_prs(const struct wcode *c, uint8_t *out, size_t cap)
{
    size_t at = 0;
    if (!out || !wc_valid(c))
        return 0;
    if (wc_put_words(c, (char *)out, cap, &at, 0, 0) != 0) {
        sodium_memzero(out, cap);
        return 0;
    }
    return at;
}

size_t wcode_ci(const struct wcode *c, uint8_t *out, size_t cap)
{
    char num[12];
    const uint8_t *parts[2];
    size_t lens[2];
    if (!out || !wc_valid(c))
        return 0;
    snprintf(num, sizeof num, "%u", (unsigned)c->channel);
    parts[0] = (const uint8_t *)wc_ci_label, lens[0] = sizeof wc_ci_label - 1;
    parts[1] = (const uint8_t *)num, lens[1] = strlen(num);
    return cpace_lv_cat(out, cap, 2, parts, lens);
}

int wcode_word_index(const char *w, size_t len)
{
    size_t lo = 0, hi = wcode_nwords;
    if (!w || len == 0 || len > WCODE_WORD_MAX)
        return -1;
    while (lo < hi) { /* the list is sorted (test_wcode checks it) */
        size_t mid = lo + (hi - lo) / 2;
        const char *m = wcode_words[mid];
        int r = strncmp(w, m, len);
        if (r == 0 && m[len] != '\0')
            r = -1; /* w is a prefix of m: it sorts first */
        if (r == 0)
            return (int)mid;
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

struct wc_tok {
    const char *p;
    size_t n;
};

/* The channel number: digits, no leading zero, in range. */
static int wc_channel(const struct wc_tok *t, uint32_t *out, char *err, size_t errlen)
{
    uint32_t v = 0;
    int q = t->n < WC_QUOTE ? (int)t->n : WC_QUOTE;
    for (size_t i = 0; i < t->n; i++)
        if (!wc_is_digit((unsigned char)t->p[i]))
            return wc_err(err, errlen,
                          "a code starts with its channel number, as in 7-guitar-ribbon "
                          "(\"%.*s%s\" is not a number)",
                          q, t->p, t->n > WC_QUOTE ? "..." : "");
    if (t->n > 1 && t->p[0] == '0')
        return wc_err(err, errlen, "the channel number \"%.*s%s\" has a leading zero", q, t->p,
                      t->n > WC_QUOTE ? "..." : "");
    if (t->n > 6)
        goto range;
    for (size_t i = 0; i < t->n; i++)
        v = v * 10 + (uint32_t)(t->p[i] - '0');
    if (v < WCODE_CHANNEL_MIN || v > WCODE_CHANNEL_MAX)
        goto range;
    *out = v;
    return 0;
range:
    return wc_err(err, errlen, "the channel number \"%.*s%s\" is out of range (%u to %u)", q, t->p,
                  t->n > WC_QUOTE ? "..." : "", WCODE_CHANNEL_MIN, WCODE_CHANNEL_MAX);
}

/* The k-th word (1-based in messages), any case, into its index. */
static int wc_word(const struct wc_tok *t, size_t k, uint16_t *out, char *err, size_t errlen)
{
    char low[WC_QUOTE];
    size_t n = t->n < sizeof low ? t->n : sizeof low;
    int idx, rc;
    for (size_t i = 0; i < t->n; i++)
        if (!wc_is_letter((unsigned char)t->p[i]))
            return wc_err(err, errlen, "word %zu of the code (\"%.*s%s\") has a digit: words are "
                                       "letters only",
                          k, (int)n, t->p, t->n > n ? "..." : "");
    for (size_t i = 0; i < n; i++)
        low[i] = (char)(t->p[i] | 0x20); /* ASCII letters: lower case */
    idx = t->n <= WCODE_WORD_MAX ? wcode_word_index(low, t->n) : -1;
    if (idx < 0)
        rc = wc_err(err, errlen, "\"%.*s%s\" (word %zu) is not a word of the code list; check "
                                 "the spelling",
                    (int)n, low, t->n > n ? "..." : "", k);
    else
        *out = (uint16_t)idx, rc = 0;
    sodium_memzero(low, sizeof low);
    return rc;
}

int wcode_parse(const char *text, struct wcode *c, char *err, size_t errlen)
{
    struct wc_tok tok[1 + WCODE_WORDS_MAX];
    struct wcode got = {0};
    size_t len, ntok = 0, i = 0;
    int rc = -1;
    if (err && errlen)
        err[0] = '\0';
    if (c)
        wcode_wipe(c);
    if (!text || !c)
        return wc_err(err, errlen, "no code given");
    len = strnlen(text, WCODE_INPUT_MAX + 1);
    if (len > WCODE_INPUT_MAX)
        return wc_err(err, errlen, "the code is too long (more than %d characters)",
                      WCODE_INPUT_MAX);
    for (size_t k = 0; k < len; k++) {
        unsigned char ch = (unsigned char)text[k];
        if (wc_is_sep(ch) || wc_is_digit(ch) || wc_is_letter(ch))
            continue;
        if (ch > 0x20 && ch < 0x7f)
            return wc_err(err, errlen, "the code has a '%c' (character %zu): it is a number and "
                                       "words, separated by hyphens or spaces",
                          (char)ch, k + 1);
        return wc_err(err, errlen, "the code has a byte 0x%02x (character %zu): it is a number "
                                   "and words, separated by hyphens or spaces",
                      ch, k + 1);
    }
    while (i < len) {
        size_t start;
        while (i < len && wc_is_sep((unsigned char)text[i]))
            i++;
        if (i == len)
            break;
        start = i;
        while (i < len && !wc_is_sep((unsigned char)text[i]))
            i++;
        if (ntok == sizeof tok / sizeof tok[0])
            return wc_err(err, errlen, "a code has %d or %d words after the channel number; this "
                                       "one has more",
                          WCODE_WORDS_MIN, WCODE_WORDS_MAX);
        tok[ntok].p = text + start, tok[ntok].n = i - start;
        ntok++;
    }
    if (ntok == 0)
        return wc_err(err, errlen, "the code is empty");
    if (wc_channel(&tok[0], &got.channel, err, errlen) != 0)
        goto out;
    if (ntok - 1 < WCODE_WORDS_MIN) {
        rc = wc_err(err, errlen, "a code has %d or %d words after the channel number; this one "
                                 "has %zu",
                    WCODE_WORDS_MIN, WCODE_WORDS_MAX, ntok - 1);
        goto out;
    }
    got.nwords = (unsigned)(ntok - 1);
    for (size_t k = 1; k < ntok; k++)
        if (wc_word(&tok[k], k, &got.word[k - 1], err, errlen) != 0)
            goto out;
    *c = got;
    rc = 0;
out:
    wcode_wipe(&got);
    return rc;
}
