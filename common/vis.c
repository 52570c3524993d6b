#include "common/vis.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (at most n bytes) and its code point, or 0 when the
 * bytes there are not one (overlong forms, surrogates and values past U+10FFFF included). */
static size_t vis_utf8(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t need;
    uint32_t v, min;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        need = 2, v = s[0] & 0x1f, min = 0x80;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        need = 3, v = s[0] & 0x0f, min = 0x800;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        need = 4, v = s[0] & 0x07, min = 0x10000;
    else
        return 0;
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return need;
}

/* Code points a terminal acts on or that change how the text around them reads. A tab only
 * moves the cursor right to a tab stop (which only an escape sequence could move): it passes,
 * so that a chat line keeps its tabs. */
static int vis_hidden(uint32_t cp)
{
    return (cp < 0x20 && cp != '\t') || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) ||
           cp == 0x061c ||                   /* Arabic letter mark: a direction mark */
           (cp >= 0x200b && cp <= 0x200f) || /* zero-width space, non-joiner, joiner; marks */
           (cp >= 0x2028 && cp <= 0x202e) || cp == 0x2060 || /* word joiner */
           (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;   /* zero-width no-break space */
}

size_t vis_mem(const char *s, size_t n, char *out, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    if (len == 0)
        return 0;
    for (size_t i = 0; i < n;) {
        char esc[8];
        const char *piece = esc;
        uint32_t cp = 0;
        size_t k = vis_utf8(p + i, n - i, &cp), plen;
        if (k == 0 || (k == 1 && vis_hidden(cp))) {
            snprintf(esc, sizeof esc, "\\x%02x", p[i]);
            k = 1;
        } else if (vis_hidden(cp)) {
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
        } else if (cp == '\\') {
            /* else a peer's literal "\x1b[2J" would read like one of our escapes */
            snprintf(esc, sizeof esc, "\\\\");
        } else {
            piece = s + i;
        }
        plen = piece == esc ? strlen(esc) : k;
        if (o + plen >= len)
            break; /* whole characters only */
        memcpy(out + o, piece, plen);
        o += plen;
        i += k;
    }
    out[o] = '\0';
    return o;
}

const char *vis_str(const char *s, char *out, size_t len)
{
    vis_mem(s, strlen(s), out, len);
    return out;
}

int vis_clean(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        size_t k = vis_utf8(p + i, n - i, &cp);
        if (k == 0 || vis_hidden(cp))
            return 0;
        i += k;
    }
    return 1;
}
