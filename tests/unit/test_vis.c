/* common/vis.c: text from the network rendered safe for a terminal. */
#include <string.h>

#include "check.h"
#include "common/vis.h"

static const char *vis(const char *s)
{
    static char out[VIS_SIZE(256)];
    return vis_str(s, out, sizeof out);
}

static void t_passes(void)
{
    CHECK_STR(vis("plain text: bob, 127.0.0.1:7000 (ok)"), "plain text: bob, 127.0.0.1:7000 (ok)");
    CHECK_STR(vis("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80"), "gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80");
    CHECK_STR(vis(""), "");
    CHECK(vis_clean("ok \xc3\xbc", 5));
}

static void t_controls(void)
{
    /* a window title, a screen clear, a cursor move, a bell */
    CHECK_STR(vis("\x1b]0;owned\x07"), "\\x1b]0;owned\\x07");
    CHECK_STR(vis("a\x1b[2J\x1b[1;1Hb"), "a\\x1b[2J\\x1b[1;1Hb");
    CHECK_STR(vis("line\nforged: ok\r"), "line\\x0aforged: ok\\x0d");
    CHECK_STR(vis("del\x7f bs\x08 tab\t"), "del\\x7f bs\\x08 tab\t"); /* a tab passes */
    /* C1 controls: as UTF-8 (U+009B, CSI) and as a raw byte (not UTF-8) */
    CHECK_STR(vis("\xc2\x9b" "2J"), "\\u009b2J");
    CHECK_STR(vis("\x9b" "2J"), "\\x9b2J");
    CHECK(!vis_clean("\x1b", 1) && !vis_clean("\xc2\x85", 2));
}

static void t_invalid_utf8(void)
{
    CHECK_STR(vis("\xff\xfe"), "\\xff\\xfe");
    CHECK_STR(vis("\xc0\xaf"), "\\xc0\\xaf");             /* overlong '/' */
    CHECK_STR(vis("\xed\xa0\x80"), "\\xed\\xa0\\x80");     /* a surrogate */
    CHECK_STR(vis("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80"); /* past U+10FFFF */
    CHECK_STR(vis("cut \xe2\x82"), "cut \\xe2\\x82");      /* a sequence cut short */
}

static void t_invisible(void)
{
    /* right-to-left override, isolates, marks, line and paragraph separators */
    CHECK_STR(vis("a\xe2\x80\xae" "b"), "a\\u202eb");
    CHECK_STR(vis("\xe2\x81\xa6x\xe2\x81\xa9"), "\\u2066x\\u2069");
    CHECK_STR(vis("\xe2\x80\x8f\xe2\x80\xa8"), "\\u200f\\u2028");
    /* the Arabic letter mark, zero-width space/non-joiner/joiner, word joiner, BOM */
    CHECK_STR(vis("a\xd8\x9c" "b"), "a\\u061cb");
    CHECK_STR(vis("\xe2\x80\x8b\xe2\x80\x8c\xe2\x80\x8d"), "\\u200b\\u200c\\u200d");
    CHECK_STR(vis("\xe2\x81\xa0\xef\xbb\xbf"), "\\u2060\\ufeff");
    CHECK(!vis_clean("\xd8\x9c", 2) && !vis_clean("\xef\xbb\xbf", 3));
}

/* A backslash is doubled: a peer's literal "\x1b[2J" must not read like our escape of ESC. */
static void t_backslash(void)
{
    CHECK_STR(vis("\\x1b[2J"), "\\\\x1b[2J");
    CHECK_STR(vis("\x1b"), "\\x1b");
    CHECK_STR(vis("a\\b"), "a\\\\b");
    CHECK(vis_clean("a\\b", 3)); /* shown doubled, but nothing hidden: a name may have one */
}

/* Cut to fit at a character boundary, never inside an escape or a UTF-8 sequence. */
static void t_bounds(void)
{
    char out[8], big[VIS_SIZE(4)];
    CHECK_INT(vis_mem("\x1b\x1b\x1b", 3, out, sizeof out), 4);
    CHECK_STR(out, "\\x1b");
    CHECK_INT(vis_mem("abcdef\xc3\xbc", 8, out, sizeof out), 6);
    CHECK_STR(out, "abcdef");
    /* the worst case fits VIS_SIZE */
    CHECK_INT(vis_mem("\x01\x02\x03\x04", 4, big, sizeof big), 16);
    /* a NUL inside counted bytes (a chat line) is shown, not an end */
    CHECK_INT(vis_mem("a\0b", 3, big, sizeof big), 6);
    CHECK_STR(big, "a\\x00b");
    CHECK_INT(vis_mem("x", 1, out, 0), 0);
}

CHECK_MAIN(TEST(t_passes), TEST(t_controls), TEST(t_invalid_utf8), TEST(t_invisible),
           TEST(t_backslash), TEST(t_bounds))
