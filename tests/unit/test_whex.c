/* The peer's code exchange (peer/whex.c): its decision table, and maker and claimer state
 * machines run against each other in-process through a "server" that relays honestly, or
 * lies: swaps two exchanges' messages, reflects a side's own message back, substitutes an AD,
 * sends messages out of turn. A lying server must make both sides fail, never succeed with the
 * wrong party; a wrong code must fail on both sides and burn the code.
 *
 * The ADs here are a small test format ("A" or "B", then the id, 32 key bytes after a NUL):
 * the state machine treats them as opaque bytes and asks its check_ad callback, whose real
 * form (whex_check_ad over peer/whad) has its own tests below. */
#include "tests/unit/check.h"
#include "peer/whcmd.h"
#include "peer/whex.h"

#include <sodium.h>

#define MAXQ 8

struct side {
    struct whex x;
    struct whex_msg q[MAXQ]; /* what it sent, in order */
    int nq;
    char code[WCODE_TEXT_MAX];
    int ends;
    enum whex_end end;
    char why[300];
    char expect; /* the role letter the other side's AD must carry */
    bool mode_mismatch;
    uint8_t key[32];
};

static void s_send(void *arg, const struct whex_msg *m)
{
    struct side *s = arg;
    if (s->nq < MAXQ)
        s->q[s->nq++] = *m;
}

static void s_code(void *arg, const char *text)
{
    struct side *s = arg;
    snprintf(s->code, sizeof s->code, "%s", text);
}

static void s_end(void *arg, enum whex_end e, const char *why)
{
    struct side *s = arg;
    s->ends++;
    s->end = e;
    snprintf(s->why, sizeof s->why, "%s", why);
}

static enum whex_end s_check_ad(void *arg, const uint8_t *ad, size_t len, struct whex_peer *p,
                                char *why, size_t whylen)
{
    struct side *s = arg;
    const uint8_t *nul = len > 1 ? memchr(ad, 0, len) : NULL;
    if (!nul || ad[0] != (uint8_t)s->expect || (size_t)(ad + len - nul) != 33 ||
        nul - ad - 1 < 1 || nul - ad - 1 > PROTO_MAX_ID) {
        snprintf(why, whylen, "bad AD");
        return WHEX_BAD_AD;
    }
    if (s->mode_mismatch) {
        snprintf(why, whylen, "for the other command");
        return WHEX_MODE;
    }
    memcpy(p->id, ad + 1, (size_t)(nul - ad - 1));
    p->id[nul - ad - 1] = '\0';
    memcpy(p->key, nul + 1, 32);
    return WHEX_OK;
}

static size_t make_ad(char role, const char *id, const uint8_t key[32], uint8_t *out)
{
    size_t n = strlen(id);
    out[0] = (uint8_t)role;
    memcpy(out + 1, id, n);
    out[1 + n] = 0;
    memcpy(out + 2 + n, key, 32);
    return n + 34;
}

static const struct whex_cbs *cbs_for(struct side *s)
{
    static struct whex_cbs c[4];
    static int next;
    struct whex_cbs *cb = &c[next++ % 4];
    *cb = (struct whex_cbs){s_send, s_code, s_end, s_check_ad, s};
    return cb;
}

static void maker_init(struct side *s, const char *id, unsigned nwords)
{
    uint8_t ad[CPACE_AD_MAX];
    if (sodium_init() < 0)
        abort();
    memset(s, 0, sizeof *s);
    randombytes_buf(s->key, sizeof s->key);
    s->expect = 'B';
    struct whex_cfg cfg = {.role = WHEX_MAKER,
                           .nwords = nwords,
                           .ad = ad,
                           .ad_len = make_ad('A', id, s->key, ad)};
    CHECK_INT(whex_init(&s->x, &cfg, cbs_for(s)), 0);
}

static void claimer_init(struct side *s, const char *id, const char *code)
{
    uint8_t ad[CPACE_AD_MAX];
    struct wcode c;
    char err[200];
    if (sodium_init() < 0)
        abort();
    memset(s, 0, sizeof *s);
    randombytes_buf(s->key, sizeof s->key);
    s->expect = 'A';
    CHECK_INT(wcode_parse(code, &c, err, sizeof err), 0);
    struct whex_cfg cfg = {.role = WHEX_CLAIMER,
                           .code = &c,
                           .ad = ad,
                           .ad_len = make_ad('B', id, s->key, ad)};
    CHECK_INT(whex_init(&s->x, &cfg, cbs_for(s)), 0);
}

/* Takes the oldest message a side sent. */
static bool take(struct side *s, struct whex_msg *m)
{
    if (s->nq == 0)
        return false;
    *m = s->q[0];
    memmove(s->q, s->q + 1, (size_t)(s->nq - 1) * sizeof s->q[0]);
    s->nq--;
    return true;
}

/* The mailbox's side, honestly: opened to the maker, its post stored for the claim. */
struct mbox {
    uint32_t channel;
    uint8_t sid[WHEX_SID_BYTES];
    struct whex_msg post;
};

static void srv_open(struct mbox *b, struct side *maker, uint32_t channel)
{
    struct whex_msg m = {.kind = WHEX_OPENED, .channel = channel, .ttl = 600};
    if (!CHECK(take(maker, &m)) || !CHECK_INT(m.kind, WHEX_OPEN))
        return;
    m = (struct whex_msg){.kind = WHEX_OPENED, .channel = channel, .ttl = 600};
    b->channel = channel;
    randombytes_buf(b->sid, sizeof b->sid);
    memcpy(m.sid, b->sid, sizeof m.sid);
    whex_feed(&maker->x, &m);
    if (CHECK(take(maker, &b->post)))
        CHECK_INT(b->post.kind, WHEX_POST);
}

/* The claimer's claim is answered with the post as code-claimed. */
static void srv_claim(struct mbox *b, struct side *claimer)
{
    struct whex_msg m;
    if (!CHECK(take(claimer, &m)) || !CHECK_INT(m.kind, WHEX_CLAIM))
        return;
    if (m.channel != b->channel) {
        whex_feed(&claimer->x, &(struct whex_msg){.kind = WHEX_E_UNKNOWN});
        return;
    }
    m = b->post;
    m.kind = WHEX_CLAIMED;
    memcpy(m.sid, b->sid, sizeof m.sid);
    whex_feed(&claimer->x, &m);
}

/* Relays whatever one side sent to the other, as the mailbox does: answer and confirm pass
 * unchanged, an abort becomes code-wrong on the other side. */
static bool srv_relay(struct side *from, struct side *to)
{
    struct whex_msg m;
    if (!take(from, &m))
        return false;
    if (m.kind == WHEX_ABORT)
        m = (struct whex_msg){.kind = WHEX_E_WRONG};
    whex_feed(&to->x, &m);
    return true;
}

/* The whole run through an honest server; the claimer types code (NULL: the maker's). */
static void run_honest(struct side *a, struct side *b, const char *code)
{
    struct mbox box;
    maker_init(a, "alice", 2);
    whex_start(&a->x);
    srv_open(&box, a, 7);
    claimer_init(b, "bob", code ? code : a->code);
    whex_start(&b->x);
    srv_claim(&box, b);
    for (int i = 0; i < 6 && (srv_relay(b, a) | srv_relay(a, b));)
        i++;
}

static void t_decide_table(void)
{
    int handlers = 0;
    for (int r = WHEX_MAKER; r <= WHEX_CLAIMER; r++)
        for (int st = WHEX_S_IDLE; st <= WHEX_S_END; st++)
            for (int k = 0; k < WHEX_KIND_COUNT; k++) {
                enum whex_act a = whex_decide(r, st, k);
                handlers += a == WHEX_A_OPENED || a == WHEX_A_ANSWER || a == WHEX_A_CLAIMED ||
                            a == WHEX_A_CONFIRM;
                if (st == WHEX_S_END || st == WHEX_S_IDLE)
                    CHECK_INT(a, WHEX_A_IGNORE);
                if (k >= WHEX_E_UNKNOWN && st != WHEX_S_END && st != WHEX_S_IDLE &&
                    st != WHEX_S_OK)
                    CHECK_INT(a, WHEX_A_ERROR);
            }
    /* exactly one handler per step of the exchange */
    CHECK_INT(handlers, 4);
    CHECK_INT(whex_decide(WHEX_MAKER, WHEX_S_OPENING, WHEX_OPENED), WHEX_A_OPENED);
    CHECK_INT(whex_decide(WHEX_MAKER, WHEX_S_POSTED, WHEX_ANSWER), WHEX_A_ANSWER);
    CHECK_INT(whex_decide(WHEX_CLAIMER, WHEX_S_CLAIMING, WHEX_CLAIMED), WHEX_A_CLAIMED);
    CHECK_INT(whex_decide(WHEX_CLAIMER, WHEX_S_ANSWERED, WHEX_CONFIRM), WHEX_A_CONFIRM);
    /* the maker never takes a claimed, the claimer never an answer: no reflection */
    CHECK_INT(whex_decide(WHEX_MAKER, WHEX_S_POSTED, WHEX_CLAIMED), WHEX_A_REFUSE);
    CHECK_INT(whex_decide(WHEX_MAKER, WHEX_S_POSTED, WHEX_CONFIRM), WHEX_A_REFUSE);
    CHECK_INT(whex_decide(WHEX_CLAIMER, WHEX_S_ANSWERED, WHEX_ANSWER), WHEX_A_REFUSE);
    CHECK_INT(whex_decide(WHEX_CLAIMER, WHEX_S_CLAIMING, WHEX_CONFIRM), WHEX_A_REFUSE);
    CHECK_INT(whex_decide(WHEX_MAKER, WHEX_S_POSTED, WHEX_OPENED), WHEX_A_REFUSE);
    /* confirmed: only the maker's late code-wrong counts */
    CHECK_INT(whex_decide(WHEX_MAKER, WHEX_S_OK, WHEX_E_WRONG), WHEX_A_LATE);
    CHECK_INT(whex_decide(WHEX_MAKER, WHEX_S_OK, WHEX_ANSWER), WHEX_A_IGNORE);
    CHECK_INT(whex_decide(WHEX_CLAIMER, WHEX_S_OK, WHEX_E_WRONG), WHEX_A_IGNORE);
    CHECK_INT(whex_error_end(WHEX_E_UNKNOWN), WHEX_UNKNOWN);
    CHECK_INT(whex_error_end(WHEX_E_EXPIRED), WHEX_EXPIRED);
    CHECK_INT(whex_error_end(WHEX_E_WRONG), WHEX_PEER_WRONG);
}

static void t_init_refuses(void)
{
    struct whex x;
    uint8_t ad[1] = {'A'};
    struct side s;
    const struct whex_cbs *cb = cbs_for(&s);
    struct whex_cfg cfg = {.role = WHEX_MAKER, .nwords = 4, .ad = ad, .ad_len = 1};
    CHECK_INT(whex_init(&x, &cfg, cb), -1); /* 4 words */
    cfg.nwords = 1;
    CHECK_INT(whex_init(&x, &cfg, cb), -1);
    cfg.nwords = 2;
    cfg.ad_len = 0;
    CHECK_INT(whex_init(&x, &cfg, cb), -1);
    cfg.ad_len = CPACE_AD_MAX + 1;
    CHECK_INT(whex_init(&x, &cfg, cb), -1);
    cfg = (struct whex_cfg){.role = WHEX_CLAIMER, .ad = ad, .ad_len = 1};
    CHECK_INT(whex_init(&x, &cfg, cb), -1); /* no code */
}

static void t_honest(void)
{
    struct side a, b;
    run_honest(&a, &b, NULL);
    CHECK(strncmp(a.code, "7-", 2) == 0);
    CHECK_INT(a.ends, 1);
    CHECK_INT(b.ends, 1);
    CHECK_INT(a.end, WHEX_OK);
    CHECK_INT(b.end, WHEX_OK);
    if (!CHECK(whex_confirmed(&a.x) && whex_confirmed(&b.x)))
        return;
    CHECK_STR(whex_peer(&a.x)->id, "bob");
    CHECK_STR(whex_peer(&b.x)->id, "alice");
    CHECK(memcmp(whex_peer(&a.x)->key, b.key, 32) == 0);
    CHECK(memcmp(whex_peer(&b.x)->key, a.key, 32) == 0);
    CHECK(memcmp(whex_bind(&a.x), whex_bind(&b.x), CPACE_BIND_BYTES) == 0);
    CHECK(!sodium_is_zero(whex_bind(&a.x), CPACE_BIND_BYTES));
    /* the words are gone once they did their work */
    CHECK(sodium_is_zero((const unsigned char *)&a.x.code, sizeof a.x.code));
    CHECK(sodium_is_zero((const unsigned char *)&b.x.code, sizeof b.x.code));
    CHECK(!whex_live(&a.x) && !whex_live(&b.x));
    whex_wipe(&a.x);
    whex_wipe(&b.x);
    CHECK(whex_bind(&a.x) == NULL);
}

static void t_three_words(void)
{
    struct side a;
    struct mbox box;
    struct wcode c;
    char err[200];
    maker_init(&a, "alice", 3);
    whex_start(&a.x);
    srv_open(&box, &a, 123456);
    CHECK_INT(wcode_parse(a.code, &c, err, sizeof err), 0);
    CHECK_INT(c.nwords, 3);
    CHECK_INT(c.channel, 123456);
}

/* The claimer's words differ in one word: the maker refuses its tag, says so to the server
 * (code-abort: burned) and never sends its own tag; the claimer hears code-wrong. */
static void t_wrong_code(void)
{
    struct side a, b;
    struct wcode c;
    char err[200], wrong[WCODE_TEXT_MAX];
    struct mbox box;
    maker_init(&a, "alice", 2);
    whex_start(&a.x);
    srv_open(&box, &a, 7);
    CHECK_INT(wcode_parse(a.code, &c, err, sizeof err), 0);
    c.word[1] = (uint16_t)((c.word[1] + 1) % wcode_nwords);
    wcode_format(&c, wrong, sizeof wrong);
    claimer_init(&b, "bob", wrong);
    whex_start(&b.x);
    srv_claim(&box, &b);
    if (!CHECK_INT(b.nq, 1) || !CHECK_INT(b.q[0].kind, WHEX_ANSWER))
        return;
    srv_relay(&b, &a);
    CHECK_INT(a.ends, 1);
    CHECK_INT(a.end, WHEX_WRONG);
    if (CHECK_INT(a.nq, 1))
        CHECK_INT(a.q[0].kind, WHEX_ABORT); /* no code-confirm: no tag to test a guess on */
    CHECK_INT(a.q[0].channel, 7);
    srv_relay(&a, &b);
    CHECK_INT(b.ends, 1);
    CHECK_INT(b.end, WHEX_PEER_WRONG);
    CHECK(!whex_confirmed(&a.x) && !whex_confirmed(&b.x));
    /* one guess per code: the right answer after that changes nothing */
    struct side b2;
    claimer_init(&b2, "bob", a.code);
    whex_start(&b2.x);
    srv_claim(&box, &b2);
    srv_relay(&b2, &a);
    CHECK_INT(a.ends, 1);
    CHECK(!whex_confirmed(&a.x));
    CHECK_INT(a.nq, 0);
    /* the PAKE state is wiped: nothing to retry with */
    CHECK_INT(a.x.cp.state, CPACE_IDLE);
    CHECK(sodium_is_zero(a.x.cp.y, sizeof a.x.cp.y));
}

/* Two exchanges at once (channels 7 and 8); the server hands each claimer the other maker's
 * post and relays the answers by channel or crosswise. */
static void swapped(bool cross_answers)
{
    struct side a1, a2, b1, b2;
    struct mbox x1, x2;
    struct whex_msg m;
    maker_init(&a1, "alice", 2);
    maker_init(&a2, "mallory", 2);
    whex_start(&a1.x);
    whex_start(&a2.x);
    srv_open(&x1, &a1, 7);
    srv_open(&x2, &a2, 8);
    claimer_init(&b1, "bob", a1.code);
    claimer_init(&b2, "carol", a2.code);
    whex_start(&b1.x);
    whex_start(&b2.x);
    /* swap the posts, rewriting the channel so each looks like the claimed one */
    struct whex_msg p1 = x1.post, p2 = x2.post;
    x1.post = p2;
    x1.post.channel = 7;
    x2.post = p1;
    x2.post.channel = 8;
    srv_claim(&x1, &b1);
    srv_claim(&x2, &b2);
    if (cross_answers) {
        if (take(&b1, &m)) {
            m.channel = 8;
            whex_feed(&a2.x, &m);
        }
        if (take(&b2, &m)) {
            m.channel = 7;
            whex_feed(&a1.x, &m);
        }
    } else {
        srv_relay(&b1, &a1);
        srv_relay(&b2, &a2);
    }
    for (int i = 0; i < 4; i++) {
        srv_relay(&a1, &b1);
        srv_relay(&a2, &b2);
    }
    CHECK(!whex_confirmed(&a1.x));
    CHECK(!whex_confirmed(&a2.x));
    CHECK(!whex_confirmed(&b1.x));
    CHECK(!whex_confirmed(&b2.x));
    CHECK_INT(a1.ends, 1);
    CHECK_INT(a2.ends, 1);
    CHECK_INT(b1.ends, 1);
    CHECK_INT(b2.ends, 1);
}

static void t_swapped_posts(void)
{
    swapped(false);
}

static void t_swapped_crosswise(void)
{
    swapped(true);
}

/* The server sends the maker's own post back to it as the answer: refused by the AD (its
 * label is the maker's), and with a forged claimer AD around the maker's own share, by the
 * PAKE (our own share back). */
static void t_reflect_post(void)
{
    struct side a;
    struct mbox box;
    struct whex_msg m;
    maker_init(&a, "alice", 2);
    whex_start(&a.x);
    srv_open(&box, &a, 7);
    m = box.post;
    m.kind = WHEX_ANSWER;
    whex_feed(&a.x, &m);
    CHECK_INT(a.end, WHEX_BAD_AD);
    CHECK(!whex_confirmed(&a.x));

    maker_init(&a, "alice", 2);
    whex_start(&a.x);
    srv_open(&box, &a, 7);
    m = box.post;
    m.kind = WHEX_ANSWER;
    m.ad_len = make_ad('B', "mallory", a.key, m.ad);
    whex_feed(&a.x, &m);
    CHECK_INT(a.ends, 1);
    CHECK_INT(a.end, WHEX_WRONG);
    CHECK(!whex_confirmed(&a.x));
    if (CHECK_INT(a.nq, 1))
        CHECK_INT(a.q[0].kind, WHEX_ABORT);
}

/* The server sends the claimer's own tag back as the maker's confirm. */
static void t_reflect_answer(void)
{
    struct side a, b;
    struct mbox box;
    struct whex_msg m;
    maker_init(&a, "alice", 2);
    whex_start(&a.x);
    srv_open(&box, &a, 7);
    claimer_init(&b, "bob", a.code);
    whex_start(&b.x);
    srv_claim(&box, &b);
    if (!CHECK(take(&b, &m)))
        return;
    m.kind = WHEX_CONFIRM;
    whex_feed(&b.x, &m);
    CHECK_INT(b.end, WHEX_WRONG);
    CHECK(!whex_confirmed(&b.x));
    if (CHECK_INT(b.nq, 1))
        CHECK_INT(b.q[0].kind, WHEX_ABORT);
}

/* The server puts its own key into the claimer's AD (a valid AD, another key): the maker's
 * transcript is not the claimer's, so it refuses the tag and never learns a false key. */
static void t_substituted_ad(void)
{
    struct side a, b;
    struct mbox box;
    struct whex_msg m;
    uint8_t evil[32];
    randombytes_buf(evil, sizeof evil);
    maker_init(&a, "alice", 2);
    whex_start(&a.x);
    srv_open(&box, &a, 7);
    claimer_init(&b, "bob", a.code);
    whex_start(&b.x);
    srv_claim(&box, &b);
    if (!CHECK(take(&b, &m)))
        return;
    m.ad_len = make_ad('B', "bob", evil, m.ad);
    whex_feed(&a.x, &m);
    CHECK_INT(a.end, WHEX_WRONG);
    CHECK(!whex_confirmed(&a.x));
    srv_relay(&a, &b);
    CHECK_INT(b.end, WHEX_PEER_WRONG);

    /* the same on the way to the claimer: the maker's AD with another key */
    maker_init(&a, "alice", 2);
    whex_start(&a.x);
    srv_open(&box, &a, 7);
    box.post.ad_len = make_ad('A', "alice", evil, box.post.ad);
    claimer_init(&b, "bob", a.code);
    whex_start(&b.x);
    srv_claim(&box, &b);
    srv_relay(&b, &a);
    CHECK_INT(a.end, WHEX_WRONG);
    srv_relay(&a, &b);
    CHECK(!whex_confirmed(&a.x) && !whex_confirmed(&b.x));
}

/* A share that does not decode (all 0xff), as the answer: refused before any tag. */
static void t_bad_share(void)
{
    struct side a, b;
    struct mbox box;
    struct whex_msg m;
    maker_init(&a, "alice", 2);
    whex_start(&a.x);
    srv_open(&box, &a, 7);
    claimer_init(&b, "bob", a.code);
    whex_start(&b.x);
    srv_claim(&box, &b);
    if (!CHECK(take(&b, &m)))
        return;
    memset(m.share, 0xff, sizeof m.share);
    whex_feed(&a.x, &m);
    CHECK_INT(a.end, WHEX_WRONG);
    CHECK(!whex_confirmed(&a.x));
}

/* Messages out of turn end the exchange with an abort: the server broke it. */
static void t_out_of_turn(void)
{
    struct side a, b;
    struct mbox box;
    struct whex_msg m;
    /* the maker gets a claimed (as if it were the claimer) */
    maker_init(&a, "alice", 2);
    whex_start(&a.x);
    srv_open(&box, &a, 7);
    m = box.post;
    m.kind = WHEX_CLAIMED;
    whex_feed(&a.x, &m);
    CHECK_INT(a.end, WHEX_SERVER);
    if (CHECK_INT(a.nq, 1))
        CHECK_INT(a.q[0].kind, WHEX_ABORT);
    /* the claimer gets a confirm before it claimed anything */
    claimer_init(&b, "bob", "7-acorn-zipper");
    whex_start(&b.x);
    take(&b, &m);
    whex_feed(&b.x, &(struct whex_msg){.kind = WHEX_CONFIRM, .channel = 7});
    CHECK_INT(b.end, WHEX_SERVER);
    /* code-claimed for another channel than the one typed */
    run_honest(&a, &b, NULL);
    maker_init(&a, "alice", 2);
    whex_start(&a.x);
    srv_open(&box, &a, 7);
    claimer_init(&b, "bob", a.code);
    whex_start(&b.x);
    take(&b, &m);
    m = box.post;
    m.kind = WHEX_CLAIMED;
    m.channel = 8;
    whex_feed(&b.x, &m);
    CHECK_INT(b.end, WHEX_SERVER);
    CHECK(!whex_confirmed(&b.x));
    /* the maker's opened twice */
    maker_init(&a, "alice", 2);
    whex_start(&a.x);
    srv_open(&box, &a, 7);
    whex_feed(&a.x, &(struct whex_msg){.kind = WHEX_OPENED, .channel = 9});
    CHECK_INT(a.end, WHEX_SERVER);
}

static void t_errors(void)
{
    struct side a, b;
    struct mbox box;
    /* a claim of a code nobody made */
    claimer_init(&b, "bob", "42-acorn-zipper");
    whex_start(&b.x);
    maker_init(&a, "alice", 2);
    whex_start(&a.x);
    srv_open(&box, &a, 7);
    srv_claim(&box, &b);
    CHECK_INT(b.end, WHEX_UNKNOWN);
    CHECK_INT(b.nq, 0); /* nothing to abort: the server said it has no such code */
    /* the maker's code expires */
    whex_feed(&a.x, &(struct whex_msg){.kind = WHEX_E_EXPIRED});
    CHECK_INT(a.end, WHEX_EXPIRED);
    CHECK_INT(a.nq, 0);
    CHECK(!whex_live(&a.x));
    /* after the end, nothing counts */
    whex_feed(&a.x, &(struct whex_msg){.kind = WHEX_E_WRONG});
    CHECK_INT(a.ends, 1);
    /* confirmed, then the claimer's late abort reaches the maker */
    run_honest(&a, &b, NULL);
    CHECK_INT(a.end, WHEX_OK);
    whex_feed(&a.x, &(struct whex_msg){.kind = WHEX_E_WRONG});
    CHECK_INT(a.ends, 2);
    CHECK_INT(a.end, WHEX_PEER_WRONG);
    CHECK(!whex_confirmed(&a.x));
    CHECK(whex_bind(&a.x) == NULL);
}

/* The AD check's verdicts pass through, each with an abort (the code is burned). */
static void t_mode(void)
{
    struct side a, b;
    struct mbox box;
    maker_init(&a, "alice", 2);
    whex_start(&a.x);
    srv_open(&box, &a, 7);
    claimer_init(&b, "bob", a.code);
    b.mode_mismatch = true;
    whex_start(&b.x);
    srv_claim(&box, &b);
    CHECK_INT(b.end, WHEX_MODE);
    if (CHECK_INT(b.nq, 1))
        CHECK_INT(b.q[0].kind, WHEX_ABORT);
    srv_relay(&b, &a);
    CHECK_INT(a.end, WHEX_PEER_WRONG);
}

/* whex_check_ad over real ADs (peer/whad): the other role's AD for our mode passes with its
 * id and key; our own role's (a reflection), another mode, garbage are refused. */
static void t_check_ad(void)
{
    uint8_t ad[CPACE_AD_MAX], key[32];
    struct whex_peer p;
    char why[300];
    int n;
    if (sodium_init() < 0)
        abort();
    randombytes_buf(key, sizeof key);
    n = whad_encode(ad, sizeof ad, WHAD_CLAIMER, WHAD_FILE, "bob", key);
    if (!CHECK(n > 0))
        return;
    CHECK_INT(whex_check_ad(WHEX_MAKER, WHAD_FILE, ad, (size_t)n, &p, why, sizeof why), WHEX_OK);
    CHECK_STR(p.id, "bob");
    CHECK(memcmp(p.key, key, 32) == 0);
    /* the claimer's AD to the claimer: reflected */
    CHECK_INT(whex_check_ad(WHEX_CLAIMER, WHAD_FILE, ad, (size_t)n, &p, why, sizeof why),
              WHEX_BAD_AD);
    /* a file code typed into connect --code */
    CHECK_INT(whex_check_ad(WHEX_MAKER, WHAD_PIPE, ad, (size_t)n, &p, why, sizeof why), WHEX_MODE);
    CHECK(strstr(why, "receive CODE") != NULL);
    CHECK(sodium_is_zero(p.key, sizeof p.key));
    n = whad_encode(ad, sizeof ad, WHAD_MAKER, WHAD_FILE, "alice", key);
    CHECK_INT(whex_check_ad(WHEX_CLAIMER, WHAD_PIPE, ad, (size_t)n, &p, why, sizeof why),
              WHEX_MODE);
    CHECK(strstr(why, "made for `tcpunch receive CODE`") != NULL);
    CHECK_INT(whex_check_ad(WHEX_CLAIMER, WHAD_FILE, ad, (size_t)n - 1, &p, why, sizeof why),
              WHEX_BAD_AD);
    CHECK_INT(whex_check_ad(WHEX_CLAIMER, WHAD_FILE, ad, 0, &p, why, sizeof why), WHEX_BAD_AD);
}

/* A full run with real ADs: the claimer typed a file code into connect --code. It refuses
 * before its PAKE runs (no share of it reaches the maker) and burns the code; the maker hears
 * code-wrong. */
struct real {
    struct side s;
    enum whex_role role;
    enum whad_mode mode;
};
static enum whex_end real_check(void *arg, const uint8_t *ad, size_t len, struct whex_peer *p,
                                char *why, size_t whylen)
{
    struct real *r = arg;
    return whex_check_ad(r->role, r->mode, ad, len, p, why, whylen);
}

static void real_init(struct real *r, enum whex_role role, enum whad_mode mode, const char *id,
                      const struct wcode *code)
{
    uint8_t ad[CPACE_AD_MAX];
    memset(r, 0, sizeof *r);
    r->role = role;
    r->mode = mode;
    randombytes_buf(r->s.key, sizeof r->s.key);
    int n = whad_encode(ad, sizeof ad, role == WHEX_MAKER ? WHAD_MAKER : WHAD_CLAIMER, mode, id,
                        r->s.key);
    struct whex_cfg cfg = {
        .role = role, .nwords = 2, .code = code, .ad = ad, .ad_len = n > 0 ? (size_t)n : 0};
    static struct whex_cbs cb[2];
    struct whex_cbs *c = &cb[role];
    *c = (struct whex_cbs){s_send, s_code, s_end, real_check, r};
    CHECK_INT(whex_init(&r->s.x, &cfg, c), 0);
}

/* s_send etc. take the struct side: real's first member */
static void real_run(enum whad_mode made, enum whad_mode typed, struct real *a, struct real *b)
{
    struct mbox box;
    struct wcode c;
    char err[200];
    real_init(a, WHEX_MAKER, made, "alice", NULL);
    whex_start(&a->s.x);
    srv_open(&box, &a->s, 31);
    CHECK_INT(wcode_parse(a->s.code, &c, err, sizeof err), 0);
    real_init(b, WHEX_CLAIMER, typed, "bob", &c);
    whex_start(&b->s.x);
    srv_claim(&box, &b->s);
    for (int i = 0; i < 6 && (srv_relay(&b->s, &a->s) | srv_relay(&a->s, &b->s));)
        i++;
}

static void t_real_ads(void)
{
    struct real a, b;
    real_run(WHAD_PIPE, WHAD_PIPE, &a, &b);
    CHECK_INT(a.s.end, WHEX_OK);
    CHECK_INT(b.s.end, WHEX_OK);
    if (CHECK(whex_confirmed(&a.s.x) && whex_confirmed(&b.s.x))) {
        CHECK_STR(whex_peer(&a.s.x)->id, "bob");
        CHECK_STR(whex_peer(&b.s.x)->id, "alice");
        CHECK(memcmp(whex_peer(&b.s.x)->key, a.s.key, 32) == 0);
    }
    real_run(WHAD_FILE, WHAD_PIPE, &a, &b);
    CHECK_INT(b.s.end, WHEX_MODE);
    CHECK_INT(a.s.end, WHEX_PEER_WRONG);
    CHECK(!whex_confirmed(&a.s.x) && !whex_confirmed(&b.s.x));
}

/* A server that sends anything at all: random kinds, channels (ours or not), sids, shares,
 * ADs (real ones of the other side among them) and tags, up to 6 messages, 3000 runs of each
 * role. Neither side may ever confirm (that needs the words), each ends at most once, sends
 * nothing after its end and only its own role's messages, and never reads past an AD. */
static void t_random_server(void)
{
    int ends = 0;
    for (int run = 0; run < 6000; run++) {
        enum whex_role role = run % 2 ? WHEX_CLAIMER : WHEX_MAKER;
        struct wcode c;
        char err[200];
        struct real r;
        CHECK_INT(wcode_parse("42-acorn-zipper", &c, err, sizeof err), 0);
        real_init(&r, role, WHAD_FILE, "me", &c);
        whex_start(&r.s.x);
        int n = 1 + (int)randombytes_uniform(6), sent_at_end = -1;
        for (int i = 0; i < n; i++) {
            struct whex_msg m;
            randombytes_buf(&m, sizeof m);
            m.kind = (enum whex_kind)randombytes_uniform(WHEX_KIND_COUNT);
            m.channel = randombytes_uniform(2) ? 42 : randombytes_uniform(1000000);
            m.ad_len = randombytes_uniform(CPACE_AD_MAX + 1);
            if (randombytes_uniform(2)) {
                int k = whad_encode(m.ad, sizeof m.ad,
                                    role == WHEX_MAKER ? WHAD_CLAIMER : WHAD_MAKER, WHAD_FILE,
                                    "other", m.share);
                m.ad_len = k > 0 ? (size_t)k : 0;
            }
            if (r.s.ends && sent_at_end < 0)
                sent_at_end = r.s.nq;
            whex_feed(&r.s.x, &m);
        }
        if (r.s.ends && sent_at_end < 0)
            sent_at_end = r.s.nq;
        ends += r.s.ends > 0;
        if (!CHECK(!whex_confirmed(&r.s.x)) || !CHECK(r.s.end != WHEX_OK || !r.s.ends) ||
            !CHECK(r.s.ends <= 1))
            return;
        for (int i = 0; i < r.s.nq; i++) {
            enum whex_kind k = r.s.q[i].kind;
            bool mine = role == WHEX_MAKER ? (k == WHEX_OPEN || k == WHEX_POST ||
                                              k == WHEX_CONFIRM || k == WHEX_ABORT)
                                           : (k == WHEX_CLAIM || k == WHEX_ANSWER ||
                                              k == WHEX_ABORT);
            if (!CHECK(mine) || !CHECK(k != WHEX_CONFIRM))
                return;
        }
        /* nothing goes out after the end but the one abort that ends it */
        if (sent_at_end >= 0 && !CHECK(r.s.nq == sent_at_end))
            return;
        whex_wipe(&r.s.x);
    }
    CHECK(ends > 1000); /* the runs did reach ends, not only ignores */
}

/* send's two readings (wormhole.md 6.3) */
static void t_send_reading(void)
{
    /* --to and --code decide whatever exists */
    CHECK_INT(whcmd_send_reading(false, true, 2, true, true), WHCMD_SEND_PEER);
    CHECK_INT(whcmd_send_reading(true, false, 2, false, true), WHCMD_SEND_CODE);
    /* an existing first argument is a file; a note when it could have been a peer */
    CHECK_INT(whcmd_send_reading(false, false, 1, true, true), WHCMD_SEND_CODE);
    CHECK_INT(whcmd_send_reading(false, false, 2, true, true), WHCMD_SEND_CODE_NOTE);
    CHECK_INT(whcmd_send_reading(false, false, 2, true, false), WHCMD_SEND_CODE);
    /* no such file: the peer, as before codes */
    CHECK_INT(whcmd_send_reading(false, false, 2, false, true), WHCMD_SEND_PEER);
    CHECK_INT(whcmd_send_reading(false, false, 1, false, true), WHCMD_SEND_PEER);
}

static void t_code_arg(void)
{
    struct wcode c;
    char err[200], text[WCODE_TEXT_MAX];
    char *one[] = {"7-guitar-ribbon"}, *three[] = {"7", "Guitar", "ribbon"},
         *typo[] = {"7-guitar-ribon"}, *four[] = {"7", "acorn", "acorn", "acorn", "acorn"};
    char big[400];
    char *longs[] = {big};
    CHECK_INT(whcmd_code_arg(1, one, &c, err, sizeof err), 0);
    CHECK_INT(c.channel, 7);
    CHECK_INT(whcmd_code_arg(3, three, &c, err, sizeof err), 0);
    wcode_format(&c, text, sizeof text);
    CHECK_STR(text, "7-guitar-ribbon");
    CHECK_INT(whcmd_code_arg(1, typo, &c, err, sizeof err), -1);
    CHECK(strstr(err, "spelling") != NULL);
    CHECK_INT(whcmd_code_arg(5, four, &c, err, sizeof err), -1);
    CHECK_INT(whcmd_code_arg(0, one, &c, err, sizeof err), -1);
    /* longer than the parser reads: refused whole, never cut into something valid */
    memset(big, ' ', sizeof big);
    memcpy(big + 300, "7-guitar-ribbon", 15);
    big[sizeof big - 1] = '\0';
    CHECK_INT(whcmd_code_arg(1, longs, &c, err, sizeof err), -1);
}

static void t_opts_misfit(void)
{
    struct peer_opts o;
    memset(&o, 0, sizeof o);
    CHECK(whcmd_opts_misfit(&o, WHCMD_NONE) == NULL);
    CHECK(whcmd_opts_misfit(&o, WHCMD_CLAIM) == NULL);
    o.code_words = 3;
    CHECK(whcmd_opts_misfit(&o, WHCMD_MAKE) == NULL);
    CHECK(whcmd_opts_misfit(&o, WHCMD_CLAIM) != NULL);
    CHECK(whcmd_opts_misfit(&o, WHCMD_NONE) != NULL);
    o.code_words = 0;
    o.remember = true;
    CHECK(whcmd_opts_misfit(&o, WHCMD_NONE) != NULL);
    CHECK(whcmd_opts_misfit(&o, WHCMD_CLAIM) == NULL);
    o.remember = false;
    snprintf(o.peer_fp, sizeof o.peer_fp, "SHA256:x");
    CHECK(whcmd_opts_misfit(&o, WHCMD_MAKE) != NULL);
    CHECK(whcmd_opts_misfit(&o, WHCMD_NONE) == NULL);
}

CHECK_MAIN(TEST(t_check_ad), TEST(t_real_ads), TEST(t_random_server), TEST(t_send_reading), TEST(t_code_arg),
           TEST(t_opts_misfit), TEST(t_decide_table), TEST(t_init_refuses), TEST(t_honest), TEST(t_three_words),
           TEST(t_wrong_code), TEST(t_swapped_posts), TEST(t_swapped_crosswise),
           TEST(t_reflect_post), TEST(t_reflect_answer), TEST(t_substituted_ad),
           TEST(t_bad_share), TEST(t_out_of_turn), TEST(t_errors), TEST(t_mode))
