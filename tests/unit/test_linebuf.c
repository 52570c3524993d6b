/* Line framing: lines split across feeds, several per feed, the 4096-byte cap (newline
 * included), a callback that stops the feed, and memory held only while a line is pending. */
#include "check.h"
#include "common/linebuf.h"

#include <stdbool.h>

#define MAXL 64

struct got {
    int n;
    char line[MAXL][LB_MAX + 1];
    size_t len[MAXL];
    int stop_after; /* return non-zero from the callback once n reaches this (0 = never) */
};

static int collect(void *ctx, char *line, size_t len)
{
    struct got *g = ctx;
    CHECK_INT(strlen(line), len); /* NUL-terminated, newline removed (no NUL in test data) */
    CHECK(memchr(line, '\n', len) == NULL);
    if (g->n < MAXL) {
        memcpy(g->line[g->n], line, len + 1);
        g->len[g->n] = len;
    }
    g->n++;
    return g->stop_after && g->n >= g->stop_after;
}

static struct got g_;
static struct lb lb_;
static bool exact_; /* feed from a heap copy of exactly n bytes: a read past it is an error */
static char copy_[4 * LB_MAX];

static void reset(void)
{
    memset(&g_, 0, sizeof g_);
    lb_free(&lb_);
}

static ssize_t feedn(const char *s, size_t n)
{
    char *d = copy_;
    ssize_t used;
    /* lb_feed writes into its input */
    if (exact_ && !(d = malloc(n ? n : 1)))
        return -2;
    memcpy(d, s, n);
    used = lb_feed(&lb_, d, n, collect, &g_);
    if (d != copy_)
        free(d);
    return used;
}

static ssize_t feed(const char *s)
{
    return feedn(s, strlen(s));
}

static void t_single(void)
{
    reset();
    CHECK_INT(feed("hello\n"), 6);
    if (CHECK_INT(g_.n, 1))
        CHECK_STR(g_.line[0], "hello");
    /* an empty line is a line */
    CHECK_INT(feed("\n"), 1);
    if (CHECK_INT(g_.n, 2))
        CHECK_INT(g_.len[1], 0);
    /* no newline yet: nothing delivered, everything consumed */
    CHECK_INT(feed("partial"), 7);
    CHECK_INT(g_.n, 2);
    CHECK_INT(feedn("", 0), 0);
    CHECK_INT(g_.n, 2);
}

static void t_split(void)
{
    reset();
    CHECK_INT(feed("{\"type\":"), 8);
    CHECK_INT(g_.n, 0);
    CHECK_INT(feed("\"ping\","), 7);
    CHECK_INT(g_.n, 0);
    CHECK_INT(feed("\"seq\":1}"), 8);
    CHECK_INT(g_.n, 0);
    CHECK_INT(feed("\n"), 1);
    if (CHECK_INT(g_.n, 1))
        CHECK_STR(g_.line[0], "{\"type\":\"ping\",\"seq\":1}");
    /* byte by byte */
    reset();
    const char *text = "ab\ncd\n\nef\n";
    for (const char *p = text; *p; p++)
        CHECK_INT(feedn(p, 1), 1);
    if (CHECK_INT(g_.n, 4)) {
        CHECK_STR(g_.line[0], "ab");
        CHECK_STR(g_.line[1], "cd");
        CHECK_STR(g_.line[2], "");
        CHECK_STR(g_.line[3], "ef");
    }
}

static void t_multiple(void)
{
    reset();
    CHECK_INT(feed("one\ntwo\nthree\nfour"), 18);
    if (CHECK_INT(g_.n, 3)) {
        CHECK_STR(g_.line[0], "one");
        CHECK_STR(g_.line[1], "two");
        CHECK_STR(g_.line[2], "three");
    }
    /* the partial "four" continues */
    CHECK_INT(feed("teen\nfive\n"), 10);
    if (CHECK_INT(g_.n, 5)) {
        CHECK_STR(g_.line[3], "fourteen");
        CHECK_STR(g_.line[4], "five");
    }
}

static void t_max_length(void)
{
    static char data[3 * LB_MAX];
    /* 4095 bytes of content + newline = 4096: accepted */
    reset();
    memset(data, 'x', LB_MAX - 1);
    data[LB_MAX - 1] = '\n';
    CHECK_INT(feedn(data, LB_MAX), LB_MAX);
    if (CHECK_INT(g_.n, 1))
        CHECK_INT(g_.len[0], LB_MAX - 1);
    /* the buffer is usable again afterwards */
    CHECK_INT(feed("ok\n"), 3);
    if (CHECK_INT(g_.n, 2))
        CHECK_STR(g_.line[1], "ok");

    /* the same, split in two feeds, the newline alone in the second */
    reset();
    CHECK_INT(feedn(data, LB_MAX - 1), LB_MAX - 1);
    CHECK_INT(g_.n, 0);
    CHECK_INT(feed("\n"), 1);
    if (CHECK_INT(g_.n, 1))
        CHECK_INT(g_.len[0], LB_MAX - 1);

    /* 4096 bytes of content: -1, whether or not the newline is in the same feed */
    reset();
    memset(data, 'y', LB_MAX);
    data[LB_MAX] = '\n';
    CHECK_INT(feedn(data, LB_MAX + 1), -1);
    CHECK_INT(g_.n, 0);
    reset();
    CHECK_INT(feedn(data, LB_MAX), -1);
    CHECK_INT(g_.n, 0);
    /* built up over several feeds */
    reset();
    CHECK_INT(feedn(data, 2000), 2000);
    CHECK_INT(feedn(data, 2095), 2095);
    CHECK_INT(feedn(data, 1), -1);
    CHECK_INT(g_.n, 0);
    /* a good line followed by an overlong one in the same feed: the good one is delivered */
    reset();
    memcpy(data, "good\n", 5);
    memset(data + 5, 'z', 2 * LB_MAX);
    CHECK_INT(feedn(data, 5 + 2 * LB_MAX), -1);
    if (CHECK_INT(g_.n, 1))
        CHECK_STR(g_.line[0], "good");
}

static void t_stop(void)
{
    /* the callback stops after the second line: lb_feed returns the bytes up to and including
     * that line's newline, and the rest is left to the caller */
    reset();
    g_.stop_after = 2;
    const char *s = "aa\nbbb\ncccc\ndd";
    CHECK_INT(feed(s), 7);
    CHECK_INT(g_.n, 2);
    /* the caller may feed the rest later */
    g_.stop_after = 0;
    CHECK_INT(feed(s + 7), 7);
    if (CHECK_INT(g_.n, 3))
        CHECK_STR(g_.line[2], "cccc");
    CHECK_INT(feed("\n"), 1);
    if (CHECK_INT(g_.n, 4))
        CHECK_STR(g_.line[3], "dd");

    /* stopping on the first line of a feed that began with a partial line */
    reset();
    g_.stop_after = 1;
    CHECK_INT(feed("par"), 3);
    CHECK_INT(feed("tial\nnext\n"), 5);
    if (CHECK_INT(g_.n, 1))
        CHECK_STR(g_.line[0], "partial");
    /* stopping at the very last line returns everything */
    reset();
    g_.stop_after = 1;
    CHECK_INT(feed("x\n"), 2);
}

struct raw {
    int n;
    size_t len;
    char b[16];
};

static int collect_raw(void *ctx, char *line, size_t len)
{
    struct raw *r = ctx;
    r->n++;
    r->len = len;
    if (len < sizeof r->b)
        memcpy(r->b, line, len + 1);
    return 0;
}

static void t_binary(void)
{
    /* bytes other than newline pass through untouched, NUL and CR included */
    char data[] = "a\0b\xff\r\n";
    struct lb lb;
    struct raw r = {0, 0, {0}};
    lb_init(&lb);
    CHECK_INT(lb_feed(&lb, data, sizeof data - 1, collect_raw, &r), sizeof data - 1);
    if (CHECK_INT(r.n, 1) && CHECK_INT(r.len, 5)) {
        CHECK(memcmp(r.b, "a\0b\xff\r", 5) == 0);
        CHECK(r.b[5] == '\0');
    }
    lb_free(&lb);
}

/* Every framing test again, fed from buffers of exactly the data's size (under the sanitizer
 * a read or write past the data is caught). */
static void t_exact_same(void)
{
    exact_ = true;
    t_single();
    t_split();
    t_multiple();
    t_max_length();
    t_stop();
    exact_ = false;
    reset();
}

/* The framer holds memory only while a line is pending. */
static void t_lazy_memory(void)
{
    char a[] = "one\ntwo\n", b[] = "thr", c[] = "ee\nfour\n";
    struct lb z;
    struct got g;
    memset(&g, 0, sizeof g);
    lb_init(&z);
    CHECK_INT(lb_feed(&z, a, strlen(a), collect, &g), 8);
    CHECK(z.buf == NULL);
    CHECK_INT(lb_feed(&z, b, strlen(b), collect, &g), 3);
    CHECK(z.buf != NULL);
    CHECK_INT(lb_feed(&z, c, strlen(c), collect, &g), 8);
    CHECK(z.buf == NULL);
    if (CHECK_INT(g.n, 4)) {
        CHECK_STR(g.line[2], "three");
        CHECK_STR(g.line[3], "four");
    }
    lb_free(&z);
    lb_free(&z); /* harmless twice */
    CHECK(z.buf == NULL);
}

/* Whole lines are framed in place: the newline becomes the NUL, the callback's line points
 * into the caller's data, and nothing is allocated. */
static void t_in_place(void)
{
    char d[] = "ab\ncd\n";
    struct lb z;
    struct raw r = {0, 0, {0}};
    lb_init(&z);
    CHECK_INT(lb_feed(&z, d, 6, collect_raw, &r), 6);
    CHECK_INT(r.n, 2);
    CHECK(memcmp(d, "ab\0cd\0", 6) == 0);
    CHECK(z.buf == NULL);
}

/* An overlong line leaves the framer empty, holding no memory, and ready for a fresh line
 * (a user that forgets lb_free after the error leaks nothing). */
static void t_overlong_resets(void)
{
    static char data[LB_MAX + 8];
    struct lb z;
    struct got g;
    char ok[] = "ok\n";
    memset(&g, 0, sizeof g);
    lb_init(&z);
    memset(data, 'q', sizeof data);
    CHECK_INT(lb_feed(&z, data, 100, collect, &g), 100);
    CHECK(z.buf != NULL);
    CHECK_INT(lb_feed(&z, data, sizeof data, collect, &g), -1);
    CHECK(z.buf == NULL);
    CHECK_INT(z.len, 0);
    CHECK_INT(lb_feed(&z, ok, 3, collect, &g), 3);
    if (CHECK_INT(g.n, 1))
        CHECK_STR(g.line[0], "ok");
}

/* A callback that stops on a copied line keeps the buffer (the owner may be gone); the next
 * feed starts a fresh line, and lb_free releases what is left. */
static void t_stop_copied(void)
{
    char a[] = "hal", b[] = "f\nnext\n", c[] = "next\n";
    struct lb z;
    struct got g;
    memset(&g, 0, sizeof g);
    g.stop_after = 1;
    lb_init(&z);
    CHECK_INT(lb_feed(&z, a, 3, collect, &g), 3);
    CHECK_INT(lb_feed(&z, b, strlen(b), collect, &g), 2);
    if (CHECK_INT(g.n, 1))
        CHECK_STR(g.line[0], "half");
    CHECK_INT(z.len, 0);
    g.stop_after = 0;
    CHECK_INT(lb_feed(&z, c, strlen(c), collect, &g), 5);
    if (CHECK_INT(g.n, 2))
        CHECK_STR(g.line[1], "next");
    lb_free(&z);
    CHECK(z.buf == NULL);
}

CHECK_MAIN(TEST(t_single), TEST(t_split), TEST(t_multiple), TEST(t_max_length), TEST(t_stop),
           TEST(t_binary), TEST(t_exact_same), TEST(t_lazy_memory), TEST(t_in_place),
           TEST(t_overlong_resets), TEST(t_stop_copied))
