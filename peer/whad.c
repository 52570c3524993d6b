#include "peer/whad.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define WHAD_LABEL "tcpunch-wormhole-1 "   /* then the side's letter */
#define WHAD_LABEL_LEN (sizeof WHAD_LABEL) /* with the letter, without a NUL */
/* A LEB128 length of more bytes than this cannot be a field's: every field fits in one byte
 * (PROTO_MAX_ID < 128); two more are read only to tell "overlong" from "too long". */
#define WHAD_LEN_BYTES 3

static const char *const whad_modes[] = {[WHAD_FILE] = "file", [WHAD_PIPE] = "pipe"};

const char *whad_mode_name(enum whad_mode mode)
{
    return (unsigned)mode < sizeof whad_modes / sizeof whad_modes[0] ? whad_modes[mode] : "?";
}

static bool whad_side_ok(char side)
{
    return side == WHAD_MAKER || side == WHAD_CLAIMER;
}

static const char *whad_side_name(char side)
{
    return side == WHAD_MAKER ? "the code's maker" : "the code's claimer";
}

int whad_encode(uint8_t *out, size_t cap, char side, enum whad_mode mode, const char *id,
                const uint8_t key[PROTO_KEY_BYTES])
{
    char label[WHAD_LABEL_LEN + 1];
    const uint8_t *parts[4];
    size_t lens[4], n;
    if (!out || !key || !id || !whad_side_ok(side) || !proto_valid_id(id) ||
        (unsigned)mode >= sizeof whad_modes / sizeof whad_modes[0])
        return -1;
    snprintf(label, sizeof label, "%s%c", WHAD_LABEL, side);
    parts[0] = (const uint8_t *)label;
    lens[0] = WHAD_LABEL_LEN;
    parts[1] = (const uint8_t *)whad_modes[mode];
    lens[1] = strlen(whad_modes[mode]);
    parts[2] = (const uint8_t *)id;
    lens[2] = strlen(id);
    parts[3] = key;
    lens[3] = PROTO_KEY_BYTES;
    n = cpace_lv_cat(out, cap, 4, parts, lens);
    return n > 0 && n <= WHAD_MAX_BYTES ? (int)n : -1;
}

/* A reader over the AD; why is set once, by the first failure. */
struct whad_rd {
    const uint8_t *p;
    size_t len, off;
    char *why;
    size_t whylen;
};

static int whad_fail(struct whad_rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int whad_fail(struct whad_rd *r, const char *fmt, ...)
{
    va_list ap;
    if (r->why && r->whylen) {
        va_start(ap, fmt);
        vsnprintf(r->why, r->whylen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* One prepend_len'd field of at most max bytes: *field points at its bytes in the AD, *n is
 * their count. The length must be LEB128 in its shortest form (one value, one spelling: the AD
 * is hashed into ISK as sent, and a second spelling would be a second AD saying the same). */
static int whad_field(struct whad_rd *r, const char *what, size_t max, const uint8_t **field,
                      size_t *n)
{
    size_t v = 0, k = 0;
    uint8_t b;
    do {
        if (r->off >= r->len)
            return whad_fail(r, "the AD ends before its %s", what);
        if (k == WHAD_LEN_BYTES)
            return whad_fail(r, "the AD's %s is longer than %zu bytes", what, max);
        b = r->p[r->off++];
        v |= (size_t)(b & 0x7f) << (7 * k);
        k++;
    } while (b & 0x80);
    if (k > 1 && b == 0)
        return whad_fail(r, "the AD's %s has an overlong length", what);
    if (v > max)
        return whad_fail(r, "the AD's %s is longer than %zu bytes", what, max);
    if (v > r->len - r->off)
        return whad_fail(r, "the AD's %s runs past its end", what);
    *field = r->p + r->off;
    *n = v;
    r->off += v;
    return 0;
}

/* The label must be the one of side; the other side's label is told apart, since it is what a
 * server reflecting our own message or swapping the two sides' would show. */
static int whad_rd_label(struct whad_rd *r, char side)
{
    const uint8_t *f;
    size_t n;
    if (whad_field(r, "label", WHAD_LABEL_LEN, &f, &n) < 0)
        return -1;
    if (n == WHAD_LABEL_LEN && memcmp(f, WHAD_LABEL, WHAD_LABEL_LEN - 1) == 0 &&
        whad_side_ok((char)f[n - 1])) {
        if ((char)f[n - 1] == side)
            return 0;
        return whad_fail(r,
                         "the AD is %s's, where %s's was due (a server reflecting or swapping "
                         "the messages?)",
                         whad_side_name((char)f[n - 1]), whad_side_name(side));
    }
    return whad_fail(r, "the AD's label is not tcpunch-wormhole-1's (another program or version)");
}

static int whad_rd_mode(struct whad_rd *r, enum whad_mode *mode)
{
    const uint8_t *f;
    size_t n;
    if (whad_field(r, "mode", 4, &f, &n) < 0)
        return -1;
    for (size_t i = 0; i < sizeof whad_modes / sizeof whad_modes[0]; i++)
        if (n == strlen(whad_modes[i]) && memcmp(f, whad_modes[i], n) == 0) {
            *mode = (enum whad_mode)i;
            return 0;
        }
    return whad_fail(r, "the AD names an unknown mode (neither file nor pipe)");
}

/* The id is copied only after its length is bounded; a NUL inside it would make a shorter id
 * than the one hashed into ISK, so the copy's length must be the field's. */
static int whad_rd_id(struct whad_rd *r, char id[PROTO_MAX_ID + 1])
{
    const uint8_t *f;
    size_t n;
    if (whad_field(r, "id", PROTO_MAX_ID, &f, &n) < 0)
        return -1;
    memcpy(id, f, n);
    id[n] = '\0';
    if (strlen(id) != n || !proto_valid_id(id))
        return whad_fail(r, "the AD's id is not a valid tcpunch id");
    return 0;
}

static int whad_rd_key(struct whad_rd *r, uint8_t key[PROTO_KEY_BYTES])
{
    const uint8_t *f;
    size_t n;
    if (whad_field(r, "key", PROTO_KEY_BYTES, &f, &n) < 0)
        return -1;
    if (n != PROTO_KEY_BYTES)
        return whad_fail(r, "the AD's key is %zu bytes, not %d", n, PROTO_KEY_BYTES);
    memcpy(key, f, n);
    return 0;
}

int whad_parse(const uint8_t *ad, size_t len, char side, enum whad_mode *mode,
               char id[PROTO_MAX_ID + 1], uint8_t key[PROTO_KEY_BYTES], char *why, size_t whylen)
{
    struct whad_rd r = {.p = ad, .len = len, .why = why, .whylen = whylen};
    int rc = -1;
    if (why && whylen)
        why[0] = '\0';
    if (!whad_side_ok(side) || (!ad && len > 0)) {
        whad_fail(&r, "no AD to read");
        goto out;
    }
    if (len > CPACE_AD_MAX) {
        whad_fail(&r, "the AD is %zu bytes, over %d", len, CPACE_AD_MAX);
        goto out;
    }
    if (whad_rd_label(&r, side) < 0 || whad_rd_mode(&r, mode) < 0 || whad_rd_id(&r, id) < 0 ||
        whad_rd_key(&r, key) < 0)
        goto out;
    if (r.off != len) {
        whad_fail(&r, "the AD has %zu bytes after its key", len - r.off);
        goto out;
    }
    rc = 0;
out:
    if (rc < 0) {
        *mode = WHAD_FILE;
        memset(id, 0, PROTO_MAX_ID + 1);
        memset(key, 0, PROTO_KEY_BYTES);
    }
    return rc;
}
