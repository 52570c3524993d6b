/* The one-time wormhole codes (docs/design/wormhole.md): "<channel>-<word>-<word>[-<word>]",
 * e.g. 7-guitar-ribbon. The channel is a number the server's mailbox allocates (public: it
 * names the meeting place); the words are the secret, drawn from the list in proto/words.txt,
 * and become CPace's password (proto/cpace.h), the channel its channel identifier.
 *
 * Pure functions: no I/O, no allocation. The words are a secret: wcode_wipe a code, and
 * sodium_memzero the PRS, when done with them. */
#ifndef TP_PROTO_WCODE_H
#define TP_PROTO_WCODE_H

#include <stddef.h>
#include <stdint.h>

#define WCODE_CHANNEL_MIN 1u
#define WCODE_CHANNEL_MAX 999999u /* at most 6 digits */
#define WCODE_WORDS_MIN 2
#define WCODE_WORDS_MAX 3
#define WCODE_WORD_MAX 8 /* letters in the longest word (CMake refuses a longer one) */
/* The longest canonical code: 6 digits and 3 words of 8 letters, each after a hyphen, and a NUL */
#define WCODE_TEXT_MAX (6 + WCODE_WORDS_MAX * (1 + WCODE_WORD_MAX) + 1)
/* The longest text wcode_parse reads (spaces a user typed included); longer is refused */
#define WCODE_INPUT_MAX 128
/* The longest PRS and CI (wcode_prs, wcode_ci) */
#define WCODE_PRS_MAX (WCODE_WORDS_MAX * (1 + WCODE_WORD_MAX))
#define WCODE_CI_MAX 64

/* The word list, sorted (generated from proto/words.txt by CMake) */
extern const char *const wcode_words[];
extern const unsigned wcode_nwords;

struct wcode {
    uint32_t channel;
    unsigned nwords;                /* WCODE_WORDS_MIN..WCODE_WORDS_MAX */
    uint16_t word[WCODE_WORDS_MAX]; /* indices into wcode_words */
};

/* A fresh code for a channel the server allocated: nwords words, each uniform over the list
 * (randombytes_uniform; sodium_init first). 0, or -1 if channel or nwords is out of range. */
int wcode_generate(struct wcode *c, uint32_t channel, unsigned nwords);

/* The canonical text ("7-guitar-ribbon") into out: its length, or 0 if the code is not valid or
 * cap (with the NUL) is too small. WCODE_TEXT_MAX always fits. */
size_t wcode_format(const struct wcode *c, char *out, size_t cap);

/* Reads a code as a user types it: ASCII letters in any case, the parts separated by runs of
 * hyphens, spaces or tabs, which may also lead and trail ("7 Guitar ribbon", " 7-guitar--ribbon ").
 * Anything else is refused: 0, or -1 with a message for the user in err (it quotes the input
 * only as far as it is letters and digits, so a hostile text cannot reach a terminal). */
int wcode_parse(const char *text, struct wcode *c, char *err, size_t errlen);

/* The index of a lower-case word of len letters in the list, or -1. */
int wcode_word_index(const char *w, size_t len);

/* CPace's password for the code: its words, lower case, joined by hyphens ("guitar-ribbon").
 * The length written, or 0 if the code is not valid or cap is too small. */
size_t wcode_prs(const struct wcode *c, uint8_t *out, size_t cap);

/* CPace's channel identifier: lv_cat(b"tcpunch-wormhole-1", decimal channel) (the draft's
 * length-value encoding). The length written, or 0. Public, but both sides must agree on it:
 * a code typed on the wrong channel cannot match. */
size_t wcode_ci(const struct wcode *c, uint8_t *out, size_t cap);

/* Wipes the code (sodium_memzero). */
void wcode_wipe(struct wcode *c);

#endif
