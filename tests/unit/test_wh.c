/* The wormhole mailbox (rendezvous/wh.c): its pure decisions, and the state machine driven
 * through fake links (no sockets, time passed in), including hostile orders, re-entrant
 * drops, the table bounds and the cluster hooks. */
#include "check.h"
#include "rendezvous/limits.h"
#include "rendezvous/metrics.h"
#include "rendezvous/wh.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>

/* ---- fake sides ---- */

#define FL_LINES 8
struct flink {
    struct wh_link l;
    struct sockaddr_in sa;
    struct proto_msg got[FL_LINES]; /* decoded lines sent to it (the last FL_LINES) */
    int ngot;
    enum proto_code refused; /* its last refusal (PC_UNKNOWN: none) */
    bool fatal;
    int nrefused;
    int released, penalized;
    /* re-entrancy: the next send drops this side (as an overflowing queue does) */
    struct wh *drop_on_send;
};

static void fl_send(struct wh_link *l, const char *line, size_t len)
{
    struct flink *f = (struct flink *)l;
    char why[256];
    struct proto_msg *m = &f->got[f->ngot % FL_LINES];
    CHECK(len > 0 && line[len - 1] == '\n');
    CHECK_INT(proto_decode(line, len - 1, PROTO_TO_PEER, m, why, sizeof why), PROTO_OK);
    f->ngot++;
    if (f->drop_on_send) {
        struct wh *w = f->drop_on_send;
        f->drop_on_send = NULL;
        wh_gone(w, l, 0);
    }
}

static void fl_refuse(struct wh_link *l, enum proto_code code, const char *msg, bool fatal)
{
    struct flink *f = (struct flink *)l;
    CHECK(msg != NULL);
    f->refused = code;
    f->fatal = fatal;
    f->nrefused++;
}

static void fl_released(struct wh_link *l)
{
    ((struct flink *)l)->released++;
}

static void fl_penalize(struct wh_link *l)
{
    ((struct flink *)l)->penalized++;
}

static const struct wh_link_ops fl_ops = {
    .send = fl_send, .refuse = fl_refuse, .released = fl_released};
static const struct wh_link_ops fl_remote_ops = {
    .send = fl_send, .refuse = fl_refuse, .released = fl_released, .penalize = fl_penalize};

/* A side from 10.0.x.y (each n its own address unless same_src). */
static void fl_init(struct flink *f, unsigned n, bool aux)
{
    memset(f, 0, sizeof *f);
    f->sa.sin_family = AF_INET;
    f->sa.sin_addr.s_addr = htonl(0x0a000000u + n);
    wh_link_init(&f->l, &fl_ops, "peer", (const struct sockaddr *)&f->sa, aux, false);
}

static const struct proto_msg *fl_last(const struct flink *f)
{
    return f->ngot ? &f->got[(f->ngot - 1) % FL_LINES] : NULL;
}

static struct proto_msg code_msg(enum proto_type t, int channel)
{
    struct proto_msg m;
    memset(&m, 0, sizeof m);
    m.type = t;
    m.u.code.channel = channel;
    for (int i = 0; i < PROTO_CODE_SHARE_BYTES; i++)
        m.u.code.share[i] = (unsigned char)(t * 16 + i);
    m.u.code.ad_len = 40 + (size_t)t;
    for (size_t i = 0; i < m.u.code.ad_len; i++)
        m.u.code.ad[i] = (unsigned char)(i ^ (unsigned)t);
    for (int i = 0; i < PROTO_CODE_TAG_BYTES; i++)
        m.u.code.tag[i] = (unsigned char)(t + 3 * i);
    return m;
}

static void say(struct wh *w, struct flink *f, enum proto_type t, int channel, uint64_t now)
{
    struct proto_msg m = code_msg(t, channel);
    wh_msg(w, &f->l, &m, now);
}

/* Opens and posts on f; the channel, or 0. */
static int open_post(struct wh *w, struct flink *f, uint64_t now)
{
    const struct proto_msg *m;
    int before = f->ngot;
    say(w, f, PROTO_CODE_OPEN, 0, now);
    m = fl_last(f);
    if (f->ngot != before + 1 || !m || m->type != PROTO_CODE_OPENED)
        return 0;
    say(w, f, PROTO_CODE_POST, m->u.code.channel, now);
    return m->u.code.channel;
}

static struct wh_cfg cfg_of(unsigned ttl, unsigned max, unsigned rate)
{
    struct wh_cfg c = {true, ttl, max, rate};
    return c;
}

/* ---- pure decisions ---- */

static void t_decide(void)
{
    static const enum proto_type types[] = {PROTO_CODE_OPEN,    PROTO_CODE_POST,
                                            PROTO_CODE_CLAIM,   PROTO_CODE_ANSWER,
                                            PROTO_CODE_CONFIRM, PROTO_CODE_ABORT};
    int allowed = 0;
    CHECK(sodium_init() >= 0); /* the tables' hash keys and the draws come from randombytes */
    for (int st = 0; st < WH_STATE_COUNT; st++)
        for (int side = 0; side < 2; side++)
            for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
                allowed +=
                    wh_decide((enum wh_state)st, (enum wh_side)side, types[i]) != WH_A_UNEXPECTED;
    /* post (1), answer (1), confirm (1), withdraw (2), burn (3 states x 2 sides) */
    CHECK_INT(allowed, 11);
    CHECK_INT(wh_decide(WH_OPEN, WH_MAKER, PROTO_CODE_POST), WH_A_POST);
    CHECK_INT(wh_decide(WH_POSTED, WH_MAKER, PROTO_CODE_POST), WH_A_UNEXPECTED); /* once */
    CHECK_INT(wh_decide(WH_OPEN, WH_CLAIMER, PROTO_CODE_POST), WH_A_UNEXPECTED);
    CHECK_INT(wh_decide(WH_CLAIMED, WH_CLAIMER, PROTO_CODE_ANSWER), WH_A_ANSWER);
    CHECK_INT(wh_decide(WH_CLAIMED, WH_MAKER, PROTO_CODE_ANSWER), WH_A_UNEXPECTED);
    CHECK_INT(wh_decide(WH_ANSWERED, WH_CLAIMER, PROTO_CODE_ANSWER), WH_A_UNEXPECTED);
    CHECK_INT(wh_decide(WH_ANSWERED, WH_MAKER, PROTO_CODE_CONFIRM), WH_A_CONFIRM);
    CHECK_INT(wh_decide(WH_ANSWERED, WH_CLAIMER, PROTO_CODE_CONFIRM), WH_A_UNEXPECTED);
    CHECK_INT(wh_decide(WH_CLAIMED, WH_MAKER, PROTO_CODE_CONFIRM), WH_A_UNEXPECTED);
    CHECK_INT(wh_decide(WH_DONE, WH_MAKER, PROTO_CODE_CONFIRM), WH_A_UNEXPECTED);
    for (int st = WH_CLAIMED; st <= WH_DONE; st++) {
        CHECK_INT(wh_decide((enum wh_state)st, WH_MAKER, PROTO_CODE_ABORT), WH_A_BURN);
        CHECK_INT(wh_decide((enum wh_state)st, WH_CLAIMER, PROTO_CODE_ABORT), WH_A_BURN);
    }
    CHECK_INT(wh_decide(WH_OPEN, WH_MAKER, PROTO_CODE_ABORT), WH_A_WITHDRAW);
    CHECK_INT(wh_decide(WH_POSTED, WH_MAKER, PROTO_CODE_ABORT), WH_A_WITHDRAW);
    CHECK_INT(wh_decide(WH_RESERVING, WH_MAKER, PROTO_CODE_ABORT), WH_A_UNEXPECTED);
    CHECK_INT(wh_decide(WH_POSTED, WH_MAKER, PROTO_CODE_OPENED), WH_A_UNEXPECTED);
    CHECK_STR(wh_state_name(WH_ANSWERED), "answered");
    CHECK_STR(wh_state_name(WH_STATE_COUNT), "?");
    CHECK_STR(wh_end_name(WH_END_UNKNOWN_CLAIM), "unknown_claim");
    for (int e = 0; e < WH_END_COUNT; e++)
        CHECK_STR(wh_end_name((enum wh_end)e), mtr_code_end_name(e));
}

static void t_range_deadline(void)
{
    CHECK_INT(wh_range(0), 999);
    CHECK_INT(wh_range(99), 999);
    CHECK_INT(wh_range(100), 1000);
    CHECK_INT(wh_range(5000), 50000);
    CHECK_INT(wh_range(WH_MAX_MAX), PROTO_CODE_CHANNEL_MAX);
    CHECK_INT(wh_range((size_t)1 << 40), PROTO_CODE_CHANNEL_MAX);
    CHECK_INT(wh_deadline(WH_OPEN, 1000, 600), 601000);
    CHECK_INT(wh_deadline(WH_POSTED, 1000, 10), 11000);
    CHECK_INT(wh_deadline(WH_RESERVING, 1000, 10), 11000);
    CHECK_INT(wh_deadline(WH_CLAIMED, 5000, 600), 5000 + WH_STEP_MS);
    CHECK_INT(wh_deadline(WH_ANSWERED, 5000, 600), 5000 + WH_STEP_MS);
    CHECK_INT(wh_deadline(WH_DONE, 7000, 600), 7000 + WH_DONE_MS);
    CHECK_INT(wh_ttl(0, 600), 600);
    CHECK_INT(wh_ttl(30, 600), 30);
    CHECK_INT(wh_ttl(601, 600), 600);
    CHECK_INT(wh_ttl(3600, 10), 10);
    CHECK_INT(wh_burst(20), 10);
    CHECK_INT(wh_burst(4), 5);
    CHECK_INT(wh_burst(11), 5);
    CHECK_INT(wh_burst(100), 50);
}

static void t_bucket(void)
{
    struct wh_bucket b = {0, 1000};
    int n = 0;
    while (n < 100 && wh_bucket_take(&b, 20, 1, 1000) == 0)
        n++;
    CHECK_INT(n, 10); /* the burst */
    CHECK_INT(wh_bucket_take(&b, 20, 1, 3999), -1);
    CHECK_INT(wh_bucket_take(&b, 20, 1, 4000), 0); /* 20 a minute: one per 3 s */
    CHECK_INT(wh_bucket_take(&b, 20, 1, 4000), -1);
    /* slow refills add up: 3000 ms in 1 ms steps */
    for (uint64_t t = 4001; t <= 7000; t++)
        CHECK(wh_bucket_take(&b, 20, 1, t) == -1 || t == 7000);
    CHECK(!wh_bucket_full(&b, 20, 7000));
    /* a penalty goes into debt, capped at one burst */
    wh_bucket_charge(&b, 20, 100, 7000);
    CHECK_INT(b.missing, 2 * 10 * 60000);
    CHECK_INT(wh_bucket_take(&b, 20, 1, 7000 + 30000), -1); /* still 5 short */
    CHECK(wh_bucket_full(&b, 20, 7000 + 60000));
    /* a cost of 3 needs 3 */
    b = (struct wh_bucket){0, 0};
    CHECK_INT(wh_bucket_take(&b, 20, 9, 0), 0);
    CHECK_INT(wh_bucket_take(&b, 20, 3, 0), -1);
    CHECK_INT(wh_bucket_take(&b, 20, 1, 0), 0);
    /* rate 0: no limit; a clock that steps back refills nothing and breaks nothing */
    CHECK_INT(wh_bucket_take(&b, 0, 1000, 0), 0);
    CHECK_INT(wh_bucket_take(&b, 20, 1, 0), -1);
    CHECK_INT(wh_bucket_take(&b, 20, 1, 0), -1);
}

/* ---- the state machine ---- */

static void t_exchange(void)
{
    struct mtr mtr = {0};
    struct wh_cfg cfg = cfg_of(600, 100, 0);
    struct wh *w = wh_new(&cfg, &mtr, 0);
    struct flink a, b, c;
    const struct proto_msg *m;
    struct proto_msg post = code_msg(PROTO_CODE_POST, 0), ans = code_msg(PROTO_CODE_ANSWER, 0);
    int ch;
    unsigned char sid[PROTO_CODE_SID_BYTES];
    if (!CHECK(w != NULL))
        return;
    fl_init(&a, 1, false);
    fl_init(&b, 2, true);
    fl_init(&c, 3, false);
    ch = open_post(w, &a, 0);
    CHECK(ch >= 1 && ch <= 999);
    CHECK_INT(fl_last(&a)->u.code.ttl, 600);
    memcpy(sid, fl_last(&a)->u.code.sid, sizeof sid);
    CHECK_INT(a.nrefused, 0);
    CHECK_INT(wh_open_count(w), 1);
    CHECK_INT(mtr.codes_opened, 1);
    /* the claim gets the post byte for byte, with the sid */
    say(w, &b, PROTO_CODE_CLAIM, ch, 100);
    m = fl_last(&b);
    if (CHECK(m && m->type == PROTO_CODE_CLAIMED)) {
        CHECK_INT(m->u.code.channel, ch);
        CHECK(memcmp(m->u.code.sid, sid, sizeof sid) == 0);
        CHECK(memcmp(m->u.code.share, post.u.code.share, PROTO_CODE_SHARE_BYTES) == 0);
        CHECK(m->u.code.ad_len == post.u.code.ad_len &&
              memcmp(m->u.code.ad, post.u.code.ad, post.u.code.ad_len) == 0);
    }
    CHECK_INT(mtr.codes_claimed, 1);
    /* one claim only */
    say(w, &c, PROTO_CODE_CLAIM, ch, 100);
    CHECK_INT(c.refused, PC_CODE_UNKNOWN);
    CHECK_INT(mtr.codes_ended[WH_END_UNKNOWN_CLAIM], 1);
    /* the answer to the maker, unchanged; the confirm to the claimer */
    say(w, &b, PROTO_CODE_ANSWER, ch, 200);
    m = fl_last(&a);
    CHECK(m && m->type == PROTO_CODE_ANSWER && m->u.code.channel == ch &&
          memcmp(m->u.code.tag, ans.u.code.tag, PROTO_CODE_TAG_BYTES) == 0 &&
          m->u.code.ad_len == ans.u.code.ad_len &&
          memcmp(m->u.code.share, ans.u.code.share, PROTO_CODE_SHARE_BYTES) == 0);
    say(w, &a, PROTO_CODE_CONFIRM, ch, 300);
    m = fl_last(&b);
    CHECK(m && m->type == PROTO_CODE_CONFIRM && m->u.code.channel == ch);
    CHECK_INT(a.nrefused + b.nrefused, 0);
    /* DONE lasts WH_DONE_MS, then the channel goes silently as confirmed */
    wh_tick(w, 300 + WH_DONE_MS - 1000);
    CHECK_INT(wh_open_count(w), 1);
    wh_tick(w, 300 + WH_DONE_MS + 1000);
    CHECK_INT(wh_open_count(w), 0);
    CHECK_INT(mtr.codes_ended[WH_END_CONFIRMED], 1);
    CHECK_INT(a.nrefused + b.nrefused, 0);
    CHECK(a.l.chan == NULL && b.l.chan == NULL);
    wh_free(w);
}

/* Every out-of-turn message: unexpected-type, and the channel is untouched. */
static void t_hostile_orders(void)
{
    struct wh_cfg cfg = cfg_of(600, 100, 0);
    struct wh *w = wh_new(&cfg, NULL, 0);
    struct flink a, b, c, x;
    int ch, ch2;
    fl_init(&a, 1, false);
    fl_init(&b, 2, false);
    fl_init(&c, 3, false);
    fl_init(&x, 4, true);
    say(w, &a, PROTO_CODE_OPEN, 0, 0);
    ch = fl_last(&a)->u.code.channel;
    say(w, &b, PROTO_CODE_CLAIM, ch, 0); /* OPEN, not posted: not claimable */
    CHECK_INT(b.refused, PC_CODE_UNKNOWN);
    say(w, &a, PROTO_CODE_POST, ch, 0);
    say(w, &a, PROTO_CODE_POST, ch, 0); /* a second post */
    CHECK_INT(a.refused, PC_UNEXPECTED_TYPE);
    say(w, &a, PROTO_CODE_OPEN, 0, 0); /* a second open */
    CHECK_INT(a.nrefused, 2);
    /* a stranger acts on the channel: nothing happens */
    b.refused = PC_UNKNOWN;
    for (enum proto_type t = PROTO_CODE_POST; t <= PROTO_CODE_ABORT; t++) {
        if (t == PROTO_CODE_CLAIM || t == PROTO_CODE_CLAIMED)
            continue;
        c.refused = PC_UNKNOWN;
        say(w, &c, t, ch, 0);
        CHECK_INT(c.refused, PC_UNEXPECTED_TYPE);
    }
    /* ... nor the maker out of turn */
    say(w, &a, PROTO_CODE_ANSWER, ch, 0);
    say(w, &a, PROTO_CODE_CONFIRM, ch, 0);
    CHECK_INT(a.nrefused, 4);
    CHECK_INT(a.ngot, 1);
    /* an aux registration may claim, not open */
    say(w, &x, PROTO_CODE_OPEN, 0, 0);
    CHECK_INT(x.refused, PC_UNEXPECTED_TYPE);
    say(w, &x, PROTO_CODE_CLAIM, ch, 0);
    CHECK(fl_last(&x) && fl_last(&x)->type == PROTO_CODE_CLAIMED);
    /* the claimer confirms, names another channel, claims again: all refused */
    x.refused = PC_UNKNOWN;
    say(w, &x, PROTO_CODE_CONFIRM, ch, 0);
    CHECK_INT(x.refused, PC_UNEXPECTED_TYPE);
    ch2 = open_post(w, &c, 0);
    CHECK(ch2 > 0 && ch2 != ch);
    say(w, &x, PROTO_CODE_ANSWER, ch2, 0); /* not its channel */
    say(w, &x, PROTO_CODE_CLAIM, ch2, 0);  /* it holds one */
    CHECK_INT(x.nrefused, 4);
    CHECK_INT(c.ngot, 1);                /* ch2's maker heard nothing */
    say(w, &c, PROTO_CODE_CLAIM, ch, 0); /* a maker cannot claim */
    CHECK_INT(c.refused, PC_UNEXPECTED_TYPE);
    /* after all that the exchange still works */
    say(w, &x, PROTO_CODE_ANSWER, ch, 0);
    CHECK(fl_last(&a)->type == PROTO_CODE_ANSWER);
    say(w, &a, PROTO_CODE_CONFIRM, ch, 0);
    CHECK(fl_last(&x)->type == PROTO_CODE_CONFIRM);
    say(w, &a, PROTO_CODE_CONFIRM, ch, 0); /* once */
    CHECK_INT(a.refused, PC_UNEXPECTED_TYPE);
    wh_free(w);
    CHECK(a.l.chan == NULL && x.l.chan == NULL && c.l.chan == NULL);
}

static void t_abort_gone(void)
{
    struct mtr mtr = {0};
    struct wh_cfg cfg = cfg_of(600, 100, 0);
    struct wh *w = wh_new(&cfg, &mtr, 0);
    struct flink a, b, c;
    int ch;
    fl_init(&a, 1, false);
    fl_init(&b, 2, false);
    fl_init(&c, 3, false);
    /* the maker's abort in ANSWERED: the claimer hears code-wrong, the channel is gone */
    ch = open_post(w, &a, 0);
    say(w, &b, PROTO_CODE_CLAIM, ch, 0);
    say(w, &b, PROTO_CODE_ANSWER, ch, 0);
    say(w, &a, PROTO_CODE_ABORT, ch, 0);
    CHECK_INT(b.refused, PC_CODE_WRONG);
    CHECK_INT(a.nrefused, 0);
    CHECK_INT(wh_open_count(w), 0);
    say(w, &c, PROTO_CODE_CLAIM, ch, 0);
    CHECK_INT(c.refused, PC_CODE_UNKNOWN);
    CHECK_INT(mtr.codes_ended[WH_END_WRONG], 1);
    /* the claimer's abort in CLAIMED: the maker hears it */
    b.refused = PC_UNKNOWN;
    ch = open_post(w, &a, 0);
    say(w, &b, PROTO_CODE_CLAIM, ch, 0);
    say(w, &b, PROTO_CODE_ABORT, ch, 0);
    CHECK_INT(a.refused, PC_CODE_WRONG);
    CHECK_INT(b.refused, PC_UNKNOWN);
    /* the maker leaves before a claim: gone, nobody told */
    a.refused = PC_UNKNOWN;
    ch = open_post(w, &a, 0);
    wh_gone(w, &a.l, 0);
    wh_gone(w, &a.l, 0); /* twice: harmless (conn.c reports linger and close) */
    say(w, &b, PROTO_CODE_CLAIM, ch, 0);
    CHECK_INT(b.refused, PC_CODE_UNKNOWN);
    /* the maker leaves in CLAIMED: the claimer hears code-wrong */
    b.refused = PC_UNKNOWN;
    ch = open_post(w, &a, 0);
    say(w, &b, PROTO_CODE_CLAIM, ch, 0);
    wh_gone(w, &a.l, 0);
    CHECK_INT(b.refused, PC_CODE_WRONG);
    CHECK(b.l.chan == NULL);
    /* the claimer leaves in ANSWERED: the maker hears code-wrong */
    ch = open_post(w, &a, 0);
    say(w, &b, PROTO_CODE_CLAIM, ch, 0);
    say(w, &b, PROTO_CODE_ANSWER, ch, 0);
    wh_gone(w, &b.l, 0);
    CHECK_INT(a.refused, PC_CODE_WRONG);
    CHECK_INT(mtr.codes_ended[WH_END_GONE], 3);
    /* the claimer leaves in DONE: nothing; the maker's later abort ends it quietly */
    a.refused = PC_UNKNOWN;
    ch = open_post(w, &a, 0);
    say(w, &b, PROTO_CODE_CLAIM, ch, 0);
    say(w, &b, PROTO_CODE_ANSWER, ch, 0);
    say(w, &a, PROTO_CODE_CONFIRM, ch, 0);
    wh_gone(w, &b.l, 0);
    CHECK_INT(a.refused, PC_UNKNOWN);
    CHECK_INT(wh_open_count(w), 1);
    say(w, &a, PROTO_CODE_ABORT, ch, 0);
    CHECK_INT(wh_open_count(w), 0);
    /* withdraw before a claim */
    ch = open_post(w, &a, 0);
    say(w, &a, PROTO_CODE_ABORT, ch, 0);
    CHECK_INT(wh_open_count(w), 0);
    CHECK(a.l.chan == NULL);
    wh_free(w);
}

/* A side dropped while the mailbox talks to it (its queue overflowed): the other side is told
 * and nothing is used after it is freed (ASan). */
static void t_reentrant(void)
{
    struct wh_cfg cfg = cfg_of(600, 100, 0);
    struct wh *w = wh_new(&cfg, NULL, 0);
    struct flink a, b;
    int ch;
    fl_init(&a, 1, false);
    fl_init(&b, 2, false);
    ch = open_post(w, &a, 0);
    b.drop_on_send = w; /* the code-claimed drops it */
    say(w, &b, PROTO_CODE_CLAIM, ch, 0);
    CHECK_INT(a.refused, PC_CODE_WRONG);
    CHECK_INT(wh_open_count(w), 0);
    ch = open_post(w, &a, 0);
    say(w, &b, PROTO_CODE_CLAIM, ch, 0);
    a.drop_on_send = w; /* the forwarded answer drops the maker */
    b.refused = PC_UNKNOWN;
    say(w, &b, PROTO_CODE_ANSWER, ch, 0);
    CHECK_INT(b.refused, PC_CODE_WRONG);
    CHECK_INT(wh_open_count(w), 0);
    /* a drop on the code-opened itself */
    a.drop_on_send = w;
    say(w, &a, PROTO_CODE_OPEN, 0, 0);
    CHECK_INT(wh_open_count(w), 0);
    CHECK(a.l.chan == NULL && b.l.chan == NULL);
    wh_free(w);
}

static void t_expiry(void)
{
    struct mtr mtr = {0};
    struct wh_cfg cfg = cfg_of(10, 100, 0);
    struct wh *w = wh_new(&cfg, &mtr, 1000);
    struct flink a, b, c, d;
    struct proto_msg open = code_msg(PROTO_CODE_OPEN, 0);
    int ch;
    fl_init(&a, 1, false);
    fl_init(&b, 2, false);
    fl_init(&c, 3, false);
    fl_init(&d, 4, false);
    ch = open_post(w, &a, 1000); /* ttl 10 s: ends at 11 000 */
    open.u.code.ttl = 2;         /* asks for 2 s */
    wh_msg(w, &c.l, &open, 1500);
    CHECK_INT(fl_last(&c)->u.code.ttl, 2);
    open.u.code.ttl = 3600; /* asks for more: gets the server's */
    wh_msg(w, &d.l, &open, 1500);
    CHECK_INT(fl_last(&d)->u.code.ttl, 10);
    for (uint64_t t = 1500; t < 3500; t += 250)
        wh_tick(w, t);
    CHECK_INT(c.refused, PC_UNKNOWN);
    wh_tick(w, 4000);
    CHECK_INT(c.refused, PC_CODE_EXPIRED);
    for (uint64_t t = 4000; t < 11000; t += 500)
        wh_tick(w, t);
    CHECK_INT(a.refused, PC_UNKNOWN);
    wh_tick(w, 11000);
    CHECK_INT(a.refused, PC_CODE_EXPIRED);
    CHECK(a.l.chan == NULL);
    say(w, &b, PROTO_CODE_CLAIM, ch, 11000);
    CHECK_INT(b.refused, PC_CODE_UNKNOWN);
    /* a claim just before the ttl gets WH_STEP_MS for the exchange, not the ttl's rest */
    a.refused = b.refused = PC_UNKNOWN;
    ch = open_post(w, &a, 20000);
    say(w, &b, PROTO_CODE_CLAIM, ch, 29000);
    wh_tick(w, 30500);
    CHECK_INT(a.refused, PC_UNKNOWN);
    wh_tick(w, 29000 + WH_STEP_MS - 1000);
    CHECK_INT(a.refused, PC_UNKNOWN);
    say(w, &b, PROTO_CODE_ANSWER, ch, 29000 + WH_STEP_MS - 500); /* the answer does not extend */
    wh_tick(w, 29000 + WH_STEP_MS + 1000);
    CHECK_INT(a.refused, PC_CODE_EXPIRED);
    CHECK_INT(b.refused, PC_CODE_EXPIRED);
    CHECK_INT(mtr.codes_ended[WH_END_EXPIRED], 4); /* a, c, d (at 11 500), and this one */
    /* a loop that stalled for longer than the wheel turns still ends everything due */
    ch = open_post(w, &a, 100000);
    wh_tick(w, 100000 + 5000 * 1000ull);
    CHECK_INT(wh_open_count(w), 0);
    wh_free(w);
}

static void t_allocation(void)
{
    enum { N = 3000 };
    static struct flink f[N];
    static bool seen[PROTO_CODE_CHANNEL_MAX + 1];
    struct wh_cfg cfg = cfg_of(600, N, 0);
    struct wh *w = wh_new(&cfg, NULL, 0);
    struct flink extra;
    unsigned small = 0;
    for (unsigned i = 0; i < N; i++) {
        size_t open = wh_open_count(w);
        int ch;
        fl_init(&f[i], 100 + i, false);
        say(w, &f[i], PROTO_CODE_OPEN, 0, 0);
        ch = fl_last(&f[i]) ? fl_last(&f[i])->u.code.channel : 0;
        if (!CHECK_MSG(ch >= 1 && (uint32_t)ch <= wh_range(open) && !seen[ch],
                       "open %u: channel %d (range %u)", i, ch, wh_range(open)))
            break;
        seen[ch] = true;
        small += ch <= 999;
    }
    /* while under 100 are open, every number is in 1..999 */
    CHECK((unsigned)small >= 100);
    /* --code-max: server-full, non-fatal */
    fl_init(&extra, 99999, false);
    say(w, &extra, PROTO_CODE_OPEN, 0, 0);
    CHECK(extra.refused == PC_SERVER_FULL && !extra.fatal);
    wh_gone(w, &f[7].l, 0);
    say(w, &extra, PROTO_CODE_OPEN, 0, 0);
    CHECK(fl_last(&extra) && fl_last(&extra)->type == PROTO_CODE_OPENED);
    /* the sids differ */
    wh_free(w);
    for (unsigned i = 0; i < N; i++)
        CHECK(f[i].l.chan == NULL);
}

/* The per-source bounds: 4 open channels, --code-rate with the extra cost of a failed claim,
 * the flood cut, and the table of sources. */
static void t_sources(void)
{
    struct wh_cfg cfg = cfg_of(600, 100, 20);
    struct wh *w = wh_new(&cfg, NULL, 0);
    struct flink s[6], g, m[8];
    int ok = 0, n;
    memset(m, 0, sizeof m);
    for (int i = 0; i < 6; i++) {
        fl_init(&s[i], 7, false); /* all from one address */
        say(w, &s[i], PROTO_CODE_OPEN, 0, 0);
        ok += s[i].ngot;
    }
    CHECK_INT(ok, WH_PER_SOURCE);
    CHECK(s[4].refused == PC_RATE_LIMITED && !s[4].fatal);
    /* the guesser: each failed claim costs 1 + WH_FAIL_COST; the burst of 10 buys 4 */
    fl_init(&g, 9, false);
    for (n = 0; n < 8; n++) {
        int ch;
        fl_init(&m[n], 200 + (unsigned)n, false);
        ch = open_post(w, &m[n], 0);
        g.refused = PC_UNKNOWN;
        say(w, &g, PROTO_CODE_CLAIM, ch, 0);
        if (g.refused == PC_RATE_LIMITED)
            break;
        say(w, &m[n], PROTO_CODE_ABORT, ch, 0);
    }
    CHECK_INT(n, 4);
    /* the flood cut: refusals past WH_FLOOD_REFUSALS in a minute are fatal */
    fl_init(&g, 10, false);
    for (n = 0; n < 40 && !g.fatal; n++)
        say(w, &g, PROTO_CODE_CLAIM, 5, 1000);
    CHECK_INT(n, 10 + WH_FLOOD_REFUSALS + 1); /* the burst's 10 claims, 10 refusals, the cut */
    CHECK(g.fatal && g.refused == PC_RATE_LIMITED);
    /* rate 0: no bucket, but still 4 open per source */
    wh_free(w);
    for (int i = 0; i < 8; i++)
        CHECK(m[i].l.chan == NULL);
}

/* A claim flood from fresh addresses (IPv6 /48s, each a source and a site: a /64 of the same
 * /48 is no fresh source, t_site) cannot grow the sources without bound (the oldest idle entry
 * makes room: nobody is refused for the table), and the entries go once idle. */
static void t_source_table(void)
{
    struct wh_cfg cfg = cfg_of(600, 10, 20);
    struct wh *w = wh_new(&cfg, NULL, 0);
    struct flink f;
    struct sockaddr_in6 sa6;
    unsigned refused = 0;
    memset(&sa6, 0, sizeof sa6);
    sa6.sin6_family = AF_INET6;
    sa6.sin6_addr.s6_addr[0] = 0x20;
    fl_init(&f, 1, false);
    f.l.src = (const struct sockaddr *)&sa6;
    for (uint32_t i = 0; i < WH_MAX_SOURCES + 100; i++) {
        sa6.sin6_addr.s6_addr[3] = (unsigned char)(i >> 16);
        sa6.sin6_addr.s6_addr[4] = (unsigned char)(i >> 8);
        sa6.sin6_addr.s6_addr[5] = (unsigned char)i;
        sa6.sin6_addr.s6_addr[15] = 1; /* the host part does not count */
        f.refused = PC_UNKNOWN;
        say(w, &f, PROTO_CODE_CLAIM, 1, 1000);
        refused += f.refused == PC_RATE_LIMITED;
    }
    CHECK_INT(wh_sources(w), WH_MAX_SOURCES + cfg.max);
    CHECK_INT(refused, 0);
    /* the first source was forgotten: it has a fresh bucket again */
    memset(sa6.sin6_addr.s6_addr + 3, 0, 3);
    for (int i = 0; i < 10; i++) {
        f.refused = PC_UNKNOWN;
        say(w, &f, PROTO_CODE_CLAIM, 1, 1000);
        CHECK_INT(f.refused, PC_CODE_UNKNOWN);
    }
    wh_tick(w, 1000 + WH_FLOOD_WINDOW_MS + 1000);
    CHECK_INT(wh_sources(w), 0);
    wh_free(w);
}

/* A burner who claims and lets the exchange expire in CLAIMED (it owed the answer) burns the
 * code as one who leaves mid-exchange does, and pays as much: before, it paid one token where
 * leaving cost three, so it burned every code at a third of the price. Claims until refused,
 * each on a fresh maker's channel, one round per WH_STEP_MS (refill counted alike). */
static int burn_rounds(bool expire)
{
    struct wh_cfg cfg = cfg_of(3600, 100, 2);
    struct wh *w = wh_new(&cfg, NULL, 0);
    struct flink m, g;
    uint64_t now = 0;
    int n;
    fl_init(&g, 9, false);
    for (n = 0; n < 50; n++) {
        int ch;
        fl_init(&m, 100 + (unsigned)n, false);
        ch = open_post(w, &m, now);
        g.refused = PC_UNKNOWN;
        say(w, &g, PROTO_CODE_CLAIM, ch, now);
        if (g.refused == PC_RATE_LIMITED)
            break;
        if (!expire)
            wh_gone(w, &g.l, now);
        now += WH_STEP_MS + 1000;
        wh_tick(w, now);
        CHECK(g.l.chan == NULL && m.refused == (expire ? PC_CODE_EXPIRED : PC_CODE_WRONG));
        wh_gone(w, &m.l, now);
    }
    wh_free(w);
    return n;
}

static void t_burn_by_expiry(void)
{
    int gone = burn_rounds(false), expired = burn_rounds(true);
    CHECK(gone > 0 && gone < 50);
    CHECK_INT(expired, gone);
}

/* One IPv6 site (a /48: 65536 /64s) is one source too, with LIM_SITE_FACTOR times a /64's
 * limits, as connections are counted (limits.h): without it a /48 brings a fresh bucket and
 * 4 fresh channels with every /64, and burns every code on the server from one home line. */
static void t_site(void)
{
    struct wh_cfg cfg = cfg_of(600, 1000, 20);
    struct wh *w = wh_new(&cfg, NULL, 0);
    struct sockaddr_in6 sa[10];
    struct flink f[10 * WH_PER_SOURCE];
    unsigned refused = 0, opened = 0, site_burst = wh_burst(20 * LIM_SITE_FACTOR);
    memset(sa, 0, sizeof sa);
    for (unsigned i = 0; i < 10; i++) {
        sa[i].sin6_family = AF_INET6;
        sa[i].sin6_addr.s6_addr[0] = 0x20;
        sa[i].sin6_addr.s6_addr[1] = 0x01;
        sa[i].sin6_addr.s6_addr[7] = (unsigned char)(i + 1); /* a /64 of its own */
        sa[i].sin6_addr.s6_addr[15] = 1;
    }
    sa[9].sin6_addr.s6_addr[5] = 1; /* another /48 */
    /* claims: each /64 of the site spends its burst of 10 */
    for (unsigned i = 0; i < 9; i++)
        for (unsigned n = 0; n < wh_burst(20); n++) {
            fl_init(&f[0], 1, true);
            f[0].l.src = (const struct sockaddr *)&sa[i];
            say(w, &f[0], PROTO_CODE_CLAIM, 1, 0);
            refused += f[0].refused == PC_RATE_LIMITED;
        }
    CHECK_INT(refused, 9 * wh_burst(20) - site_burst);
    /* another site has its own */
    f[0].refused = PC_UNKNOWN;
    f[0].l.src = (const struct sockaddr *)&sa[9];
    say(w, &f[0], PROTO_CODE_CLAIM, 1, 0);
    CHECK_INT(f[0].refused, PC_CODE_UNKNOWN);
    wh_free(w);
    /* open channels: 4 per /64, LIM_SITE_FACTOR x 4 per /48 */
    cfg.rate = 0;
    w = wh_new(&cfg, NULL, 0);
    for (unsigned i = 0; i < 10 * WH_PER_SOURCE; i++) {
        fl_init(&f[i], 1, false);
        f[i].l.src = (const struct sockaddr *)&sa[i / WH_PER_SOURCE];
        say(w, &f[i], PROTO_CODE_OPEN, 0, 0);
        opened += f[i].ngot;
    }
    /* 9 /64s of one site: 32 of their 36; the other site's 4 */
    CHECK_INT(opened, LIM_SITE_FACTOR * WH_PER_SOURCE + WH_PER_SOURCE);
    CHECK(f[9 * WH_PER_SOURCE - 1].refused == PC_RATE_LIMITED);
    /* a channel of the site that ends makes room for one more */
    wh_gone(w, &f[0].l, 0);
    say(w, &f[9 * WH_PER_SOURCE - 1], PROTO_CODE_OPEN, 0, 0);
    CHECK_INT(f[9 * WH_PER_SOURCE - 1].ngot, 1);
    wh_free(w);
}

/* ---- the cluster's hooks ---- */

struct fdir {
    int reserves, releases, taken_first;
    enum wh_dir_result answer;
    uint32_t last_ch;
    uint64_t last_serial;
    uint32_t released_ch;
    uint64_t released_serial;
    int elsewhere, forwards, forward_gones;
    struct wh_link *proxied;
};

static enum wh_dir_result fd_reserve(void *data, uint32_t ch, uint64_t serial, unsigned ttl)
{
    struct fdir *d = data;
    CHECK(ttl > 0);
    d->reserves++;
    d->last_ch = ch;
    d->last_serial = serial;
    if (d->taken_first > 0) {
        d->taken_first--;
        return WH_DIR_TAKEN;
    }
    return d->answer;
}

static void fd_release(void *data, uint32_t ch, uint64_t serial)
{
    struct fdir *d = data;
    d->releases++;
    d->released_ch = ch;
    d->released_serial = serial;
}

static bool fd_elsewhere(void *data, struct wh_link *claimer, uint32_t ch)
{
    struct fdir *d = data;
    d->elsewhere++;
    if (ch != 4242)
        return false;
    claimer->proxy = d;
    d->proxied = claimer;
    return true;
}

static void fd_forward(void *data, struct wh_link *from, const struct proto_msg *m)
{
    struct fdir *d = data;
    CHECK(from == d->proxied && m->type >= PROTO_CODE_OPEN);
    d->forwards++;
}

static void fd_forward_gone(void *data, struct wh_link *l)
{
    struct fdir *d = data;
    CHECK(l == d->proxied);
    d->forward_gones++;
}

static void t_dir(void)
{
    struct fdir d = {.answer = WH_DIR_OK, .taken_first = 2};
    struct wh_dir dir = {&d, fd_reserve, fd_release, fd_elsewhere, fd_forward, fd_forward_gone};
    struct wh_cfg cfg = cfg_of(600, 100, 0);
    struct wh *w = wh_new(&cfg, NULL, 0);
    struct flink a, b, r;
    int ch;
    wh_set_dir(w, &dir);
    fl_init(&a, 1, false);
    fl_init(&b, 2, false);
    /* two numbers taken elsewhere, the third is ours */
    ch = open_post(w, &a, 0);
    CHECK(ch > 0 && d.reserves == 3 && (uint32_t)ch == d.last_ch);
    wh_gone(w, &a.l, 0);
    CHECK(d.releases == 1 && d.released_ch == (uint32_t)ch && d.released_serial == d.last_serial);
    /* taken WH_DRAWS times: server-full */
    d.taken_first = 100;
    say(w, &a, PROTO_CODE_OPEN, 0, 0);
    CHECK_INT(a.refused, PC_SERVER_FULL);
    CHECK_INT(wh_open_count(w), 0);
    CHECK(a.l.chan == NULL);
    /* down: overloaded (passing) */
    d.taken_first = 0;
    d.answer = WH_DIR_DOWN;
    say(w, &a, PROTO_CODE_OPEN, 0, 0);
    CHECK_INT(a.refused, PC_OVERLOADED);
    /* pending: code-opened only once the directory answers; stale answers are ignored */
    d.answer = WH_DIR_PENDING;
    a.ngot = 0;
    say(w, &a, PROTO_CODE_OPEN, 0, 0);
    CHECK_INT(a.ngot, 0);
    wh_dir_reserved(w, d.last_ch, d.last_serial + 1, WH_DIR_OK, 0);
    CHECK_INT(a.ngot, 0);
    say(w, &b, PROTO_CODE_CLAIM, (int)d.last_ch, 0); /* not claimable while reserving */
    CHECK_INT(b.refused, PC_CODE_UNKNOWN);
    d.answer = WH_DIR_OK;
    wh_dir_reserved(w, d.last_ch, d.last_serial, WH_DIR_TAKEN, 0); /* redrawn, then ours */
    CHECK(a.ngot == 1 && fl_last(&a)->type == PROTO_CODE_OPENED &&
          (uint32_t)fl_last(&a)->u.code.channel == d.last_ch);
    wh_dir_reserved(w, d.last_ch, d.last_serial, WH_DIR_OK, 0); /* a repeat: nothing */
    CHECK_INT(a.ngot, 1);
    /* a claim of a number not here goes to the cluster; the link's lines follow it there */
    b.refused = PC_UNKNOWN;
    say(w, &b, PROTO_CODE_CLAIM, 4242, 0);
    CHECK(d.elsewhere >= 1 && b.refused == PC_UNKNOWN && b.l.proxy == &d);
    say(w, &b, PROTO_CODE_ANSWER, 4242, 0);
    say(w, &b, PROTO_CODE_ABORT, 4242, 0);
    CHECK_INT(d.forwards, 2);
    say(w, &b, PROTO_CODE_CLAIM, 4242, 0); /* a second claim while the first lasts */
    CHECK_INT(b.refused, PC_UNEXPECTED_TYPE);
    wh_gone(w, &b.l, 0);
    CHECK(d.forward_gones == 1 && b.l.proxy == NULL);
    /* a remote claimer on the maker's instance: its penalty goes to its own instance */
    ch = fl_last(&a)->u.code.channel;
    say(w, &a, PROTO_CODE_POST, ch, 0);
    memset(&r, 0, sizeof r);
    wh_link_init(&r.l, &fl_remote_ops, "far", NULL, false, true);
    say(w, &r, PROTO_CODE_CLAIM, ch, 0);
    CHECK(fl_last(&r) && fl_last(&r)->type == PROTO_CODE_CLAIMED);
    say(w, &a, PROTO_CODE_ABORT, ch, 0);
    CHECK(r.refused == PC_CODE_WRONG && r.penalized == 1 && r.released >= 1);
    say(w, &r, PROTO_CODE_OPEN, 0, 0); /* a remote link never opens */
    CHECK_INT(r.refused, PC_UNEXPECTED_TYPE);
    wh_free(w);
}

/* Other instances hold every number of 1..999 (ten of them with 100 channels each): the range
 * counts only this instance's channels, so every draw there was taken and every open here
 * was server-full. Each number taken elsewhere now widens the next draw. */
static enum wh_dir_result fd_crowded(void *data, uint32_t ch, uint64_t serial, unsigned ttl)
{
    struct fdir *d = data;
    (void)serial;
    (void)ttl;
    d->reserves++;
    return ch <= WH_RANGE_MIN ? WH_DIR_TAKEN : WH_DIR_OK;
}

static void t_crowded(void)
{
    struct fdir d = {0};
    struct wh_dir dir = {&d, fd_crowded, fd_release, fd_elsewhere, fd_forward, fd_forward_gone};
    struct wh_cfg cfg = cfg_of(600, 100, 0);
    struct wh *w = wh_new(&cfg, NULL, 0);
    struct flink a[20];
    int opened = 0;
    wh_set_dir(w, &dir);
    for (unsigned i = 0; i < 20; i++) {
        int ch;
        fl_init(&a[i], 100 + i, false);
        ch = open_post(w, &a[i], 0);
        opened += ch > WH_RANGE_MIN && ch <= (WH_RANGE_MIN << WH_DRAWS);
    }
    CHECK_INT(opened, 20);
    CHECK_INT(wh_open_count(w), 20);
    wh_free(w);
}

static void t_disabled(void)
{
    struct wh_cfg cfg = cfg_of(600, 100, 0);
    struct wh *w;
    struct flink a;
    cfg.enabled = false;
    w = wh_new(&cfg, NULL, 0);
    fl_init(&a, 1, false);
    CHECK(!wh_enabled(w));
    say(w, &a, PROTO_CODE_OPEN, 0, 0);
    CHECK(a.refused == PC_UNEXPECTED_TYPE && !a.fatal && a.ngot == 0);
    CHECK_INT(wh_open_count(w), 0);
    wh_free(w);
}

CHECK_MAIN(TEST(t_decide), TEST(t_range_deadline), TEST(t_bucket), TEST(t_exchange),
           TEST(t_hostile_orders), TEST(t_abort_gone), TEST(t_reentrant), TEST(t_expiry),
           TEST(t_allocation), TEST(t_sources), TEST(t_source_table), TEST(t_site), TEST(t_burn_by_expiry), TEST(t_dir), TEST(t_crowded), TEST(t_disabled))
