/* libFuzzer harness for the wormhole code parser (proto/wcode.c, wcode_parse): the input is the
 * text a user (or a script passing on a message it received) gives `tcpunch receive CODE`, cut
 * at its first NUL as argv would be. Its error messages reach a terminal, so they must never
 * carry what the input had of control bytes or non-ASCII.
 *
 * Invariants: the result is 0 or -1; -1 comes with a message of printable ASCII and leaves the
 * code zeroed; 0 gives a code in range (channel 1..999999, 2 or 3 words of the list) whose
 * canonical text is the input's parts, lower-cased and joined by single hyphens (a model:
 * split at runs of space, tab and hyphen), and that text parses again to the same code; the
 * CPace inputs (PRS, CI) of an accepted code are never empty and fit their bounds. */
#include "fuzz/fuzz.h"
#include "proto/wcode.h"

#include <string.h>

/* The model's canonical form: parts split at runs of separators, lower case, joined by '-'. */
static size_t fz_model(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    int in_part = 0, parts = 0;
    for (; *s; s++) {
        char ch = *s;
        if (ch == ' ' || ch == '\t' || ch == '-') {
            in_part = 0;
            continue;
        }
        if (!in_part && parts++ > 0 && n < cap)
            out[n++] = '-';
        in_part = 1;
        if (n < cap)
            out[n++] = (ch >= 'A' && ch <= 'Z') ? (char)(ch | 0x20) : ch;
    }
    if (n >= cap)
        return 0;
    out[n] = '\0';
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), err[256], canon[WCODE_TEXT_MAX], model[WCODE_INPUT_MAX + 8];
    struct wcode c, d;
    uint8_t prs[WCODE_PRS_MAX], ci[WCODE_CI_MAX];
    int rc;
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    memset(err, 0, sizeof err);
    rc = wcode_parse(text, &c, err, sizeof err);
    FZ_CHECK(rc == 0 || rc == -1, "rc = %d", rc);
    if (rc != 0) {
        static const struct wcode zero;
        FZ_CHECK(err[0] != '\0', "a refusal without a message");
        for (const char *p = err; *p; p++)
            FZ_CHECK(*p >= 0x20 && *p < 0x7f, "byte 0x%02x in the message", (unsigned char)*p);
        FZ_CHECK(memcmp(&c, &zero, sizeof c) == 0, "a refused code left something behind");
        goto out;
    }
    FZ_CHECK(c.channel >= WCODE_CHANNEL_MIN && c.channel <= WCODE_CHANNEL_MAX, "channel %u",
             (unsigned)c.channel);
    FZ_CHECK(c.nwords >= WCODE_WORDS_MIN && c.nwords <= WCODE_WORDS_MAX, "%u words", c.nwords);
    for (unsigned i = 0; i < c.nwords; i++)
        FZ_CHECK(c.word[i] < wcode_nwords, "word index %u", c.word[i]);
    FZ_CHECK(wcode_format(&c, canon, sizeof canon) > 0, "an accepted code does not format");
    FZ_CHECK(strlen(text) <= WCODE_INPUT_MAX, "accepted %zu characters", strlen(text));
    FZ_CHECK(fz_model(text, model, sizeof model) > 0 && strcmp(model, canon) == 0,
             "read as %s, the model says %s", canon, model);
    FZ_CHECK(wcode_parse(canon, &d, err, sizeof err) == 0, "%s refused: %s", canon, err);
    FZ_CHECK(memcmp(&c, &d, sizeof c) == 0, "%s parses to another code", canon);
    FZ_CHECK(wcode_prs(&c, prs, sizeof prs) > 0, "no PRS");
    FZ_CHECK(wcode_ci(&c, ci, sizeof ci) > 0, "no CI");
out:
    free(text);
    return 0;
}
