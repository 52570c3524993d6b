#include "rendezvous/wh.h"
#include "common/hmap.h"
#include "common/log.h"
#include "common/queue.h"
#include "rendezvous/limits.h"
#include "rendezvous/metrics.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deadlines sit in a wheel of one-second slots: a channel is in the slot of its deadline's
 * second (rounded up), and a tick empties the slots whose second has passed. No deadline is
 * more than WH_TTL_MAX + WH_STEP_MS ahead, so every entry of a due slot is due: a tick costs
 * the expired channels only, whatever the ttl a peer asked for. */
#define WH_WHEEL 4096u
_Static_assert(WH_WHEEL * 1000ull > (WH_TTL_MAX + 1) * 1000ull + WH_STEP_MS + WH_DONE_MS,
               "a deadline must fit the wheel");
#define WH_SRC_KEY 17
#define WH_FAM_SITE6 0xff /* a /48's entry: its pseudo family in the key (limits.c's likewise) */
_Static_assert(WH_END_COUNT == MTR_CODE_ENDS, "tcpunch_codes_ended_total's labels");
#define WH_UNIT                                                                                     \
    60000 /* a bucket's parts of a token: rate per minute = rate parts per ms */ /* family + 16     \
                                                                                    address bytes   \
                                                                                    (limits.h:      \
                                                                                    lim_source_key) \
                                                                                  */

struct wh_chan {
    struct hmap_node node; /* in w->chans by number */
    struct q tick;         /* in the wheel slot of its deadline */
    uint32_t channel;
    enum wh_state state;
    uint64_t since_ms, deadline_ms;
    uint64_t serial; /* this allocation, for the directory's answers */
    unsigned ttl_s;
    unsigned draws; /* numbers tried in the directory (WH_DRAWS at most) */
    struct wh_link *maker, *claimer;
    struct wh_src *src;  /* the maker's source entry (its open count) */
    struct wh_src *site; /* and its IPv6 /48's (NULL: none) */
    unsigned char sid[PROTO_CODE_SID_BYTES];
    /* the maker's post, handed to the one claimer */
    unsigned char share[PROTO_CODE_SHARE_BYTES];
    size_t ad_len;
    unsigned char ad[PROTO_CODE_AD_MAX];
};

/* Per source address (IPv6: per /64, and per /48 as a site with LIM_SITE_FACTOR times the
 * limits, as connections are counted: limits.h): its open channels and its bucket. An entry
 * lives while it holds channels, or its bucket is not full again, or a flood window is
 * running. */
struct wh_src {
    struct hmap_node node;
    struct q idle; /* on w->idle while opens == 0, last touched last */
    unsigned char key[WH_SRC_KEY];
    bool site; /* a /48 (key[0] WH_FAM_SITE6) */
    unsigned opens;
    struct wh_bucket bucket;
    uint64_t touched_ms;
    uint64_t flood_ms; /* the window's start (0: none) */
    unsigned refused;  /* rate-limited refusals in it */
};

struct wh {
    struct wh_cfg cfg;
    struct mtr *mtr;
    struct hmap chans;
    struct hmap srcs;
    struct q idle;
    struct q wheel[WH_WHEEL];
    uint64_t wheel_s; /* the next second whose slot is due */
    uint64_t serial;
    struct wh_dir dir;
};

/* ---- pure decisions ---- */

static const char *const wh_state_names[WH_STATE_COUNT] = {"reserving", "open",     "posted",
                                                           "claimed",   "answered", "done"};
static const char *const wh_end_names[WH_END_COUNT] = {"confirmed", "wrong", "expired",
                                                       "unknown_claim", "gone"};

const char *wh_state_name(enum wh_state st)
{
    return (unsigned)st < WH_STATE_COUNT ? wh_state_names[st] : "?";
}

const char *wh_end_name(enum wh_end e)
{
    return (unsigned)e < WH_END_COUNT ? wh_end_names[e] : "?";
}

enum wh_act wh_decide(enum wh_state st, enum wh_side side, enum proto_type t)
{
    bool maker = side == WH_MAKER,
         exchange = st == WH_CLAIMED || st == WH_ANSWERED || st == WH_DONE;
    switch (t) {
    case PROTO_CODE_POST:
        return maker && st == WH_OPEN ? WH_A_POST : WH_A_UNEXPECTED;
    case PROTO_CODE_ANSWER:
        return !maker && st == WH_CLAIMED ? WH_A_ANSWER : WH_A_UNEXPECTED;
    case PROTO_CODE_CONFIRM:
        return maker && st == WH_ANSWERED ? WH_A_CONFIRM : WH_A_UNEXPECTED;
    case PROTO_CODE_ABORT:
        if (exchange)
            return WH_A_BURN;
        /* before a claim only the maker has the channel; it may withdraw it (not while the
         * directory has not answered: it does not know the number yet) */
        return maker && (st == WH_OPEN || st == WH_POSTED) ? WH_A_WITHDRAW : WH_A_UNEXPECTED;
    default: /* open and claim are not about a channel the sender holds */
        return WH_A_UNEXPECTED;
    }
}

uint32_t wh_range(size_t open)
{
    uint64_t r = (uint64_t)open * 10;
    if (r < WH_RANGE_MIN)
        r = WH_RANGE_MIN;
    return r > PROTO_CODE_CHANNEL_MAX ? PROTO_CODE_CHANNEL_MAX : (uint32_t)r;
}

uint64_t wh_deadline(enum wh_state st, uint64_t since_ms, unsigned ttl_s)
{
    switch (st) {
    case WH_CLAIMED:
    case WH_ANSWERED:
        return since_ms + WH_STEP_MS;
    case WH_DONE:
        return since_ms + WH_DONE_MS;
    default:
        return since_ms + (uint64_t)ttl_s * 1000;
    }
}

unsigned wh_ttl(unsigned asked, unsigned cfg_ttl)
{
    return asked && asked < cfg_ttl ? asked : cfg_ttl;
}

unsigned wh_burst(unsigned rate)
{
    return rate / 2 > 5 ? rate / 2 : 5;
}

/* Brings b up to date. It counts in WH_UNIT parts of a token, so that rate tokens a minute
 * are exactly rate parts a millisecond: no rounding loses a slow rate's refill. */
static void wh_bucket_refill(struct wh_bucket *b, unsigned rate, uint64_t now_ms)
{
    uint64_t gained = now_ms > b->last_ms ? (now_ms - b->last_ms) * rate : 0;
    b->last_ms = now_ms;
    b->missing = (uint64_t)b->missing > gained ? b->missing - (int64_t)gained : 0;
}

int wh_bucket_take(struct wh_bucket *b, unsigned rate, unsigned cost, uint64_t now_ms)
{
    int64_t full = (int64_t)wh_burst(rate) * WH_UNIT;
    if (rate == 0)
        return 0;
    wh_bucket_refill(b, rate, now_ms);
    if (b->missing + (int64_t)cost * WH_UNIT > full)
        return -1;
    b->missing += (int64_t)cost * WH_UNIT;
    return 0;
}

void wh_bucket_charge(struct wh_bucket *b, unsigned rate, unsigned cost, uint64_t now_ms)
{
    int64_t full = (int64_t)wh_burst(rate) * WH_UNIT;
    if (rate == 0)
        return;
    wh_bucket_refill(b, rate, now_ms);
    b->missing += (int64_t)cost * WH_UNIT;
    if (b->missing > 2 * full) /* a debt of at most one burst */
        b->missing = 2 * full;
}

bool wh_bucket_full(struct wh_bucket *b, unsigned rate, uint64_t now_ms)
{
    if (rate == 0)
        return true;
    wh_bucket_refill(b, rate, now_ms);
    return b->missing == 0;
}

/* ---- links ---- */

void wh_link_init(struct wh_link *l, const struct wh_link_ops *ops, const char *id,
                  const struct sockaddr *src, bool aux, bool remote)
{
    memset(l, 0, sizeof *l);
    l->ops = ops;
    snprintf(l->id, sizeof l->id, "%s", id ? id : "");
    l->src = src;
    l->aux = aux;
    l->remote = remote;
}

void wh_link_unproxy(struct wh_link *l)
{
    l->proxy = NULL;
}

static void wh_refuse(struct wh_link *l, enum proto_code code, const char *msg)
{
    l->ops->refuse(l, code, msg, false);
}

/* ---- sources ---- */

static bool wh_src_eq(const struct hmap_node *n, const void *key)
{
    return memcmp(hmap_data(n, struct wh_src, node)->key, key, WH_SRC_KEY) == 0;
}

/* The keys of sa's entries: its address's (IPv6: /64) and, for IPv6, its /48's. Returns how
 * many (0: a remote link or another family, counted nowhere). */
static int wh_src_keys(const struct sockaddr *sa, unsigned char key[WH_SRC_KEY],
                       unsigned char site[WH_SRC_KEY])
{
    memset(key, 0, WH_SRC_KEY);
    memset(site, 0, WH_SRC_KEY);
    if (!sa || lim_source_key(sa, &key[0], key + 1) == 0)
        return 0;
    if (key[0] != AF_INET6)
        return 1;
    site[0] = WH_FAM_SITE6;
    memcpy(site + 1, key + 1, 6);
    return 2;
}

/* A /48 has LIM_SITE_FACTOR times a source's rate (and its burst from that). */
static unsigned wh_src_rate(const struct wh *w, const struct wh_src *s)
{
    return s->site ? w->cfg.rate * LIM_SITE_FACTOR : w->cfg.rate;
}

/* The entry of key, made when missing; NULL when WH_MAX_SOURCES idle entries exist (*full
 * then set). keep (an entry the caller holds) is never the one forgotten to make room. */
static struct wh_src *wh_src_get(struct wh *w, const unsigned char key[WH_SRC_KEY],
                                 const struct wh_src *keep, uint64_t now, bool *full)
{
    struct hmap_node *n;
    struct wh_src *s;
    uint64_t h;
    *full = false;
    h = hmap_hash(&w->srcs, key, WH_SRC_KEY);
    if ((n = hmap_find(&w->srcs, h, wh_src_eq, key))) {
        s = hmap_data(n, struct wh_src, node);
        goto touch;
    }
    /* entries with channels are bounded by --code-max, the others by WH_MAX_SOURCES: when
     * that many are tracked the one idle longest is forgotten (its source starts afresh)
     * rather than every new source refused */
    if (hmap_count(&w->srcs) >= WH_MAX_SOURCES + (size_t)w->cfg.max && q_head(&w->idle) &&
        q_data(q_head(&w->idle), struct wh_src, idle) != keep) {
        struct wh_src *old = q_data(q_head(&w->idle), struct wh_src, idle);
        q_remove(&old->idle);
        hmap_remove(&w->srcs, &old->node);
        free(old);
    }
    if (hmap_count(&w->srcs) >= WH_MAX_SOURCES + (size_t)w->cfg.max ||
        !(s = calloc(1, sizeof *s))) {
        *full = true;
        return NULL;
    }
    memcpy(s->key, key, WH_SRC_KEY);
    s->site = key[0] == WH_FAM_SITE6;
    q_init(&s->idle);
    s->bucket.last_ms = now;
    hmap_insert(&w->srcs, &s->node, h);
touch:
    s->touched_ms = now;
    if (s->opens == 0) { /* to the tail: the idle list stays in touch order */
        if (q_linked(&s->idle))
            q_remove(&s->idle);
        q_insert_tail(&w->idle, &s->idle);
    }
    return s;
}

static void wh_src_opens(struct wh *w, struct wh_src *s, int delta, uint64_t now)
{
    s->opens = (unsigned)((int)s->opens + delta);
    s->touched_ms = now;
    if (q_linked(&s->idle))
        q_remove(&s->idle);
    if (s->opens == 0)
        q_insert_tail(&w->idle, &s->idle);
}

/* How long an idle entry still matters: until its bucket could be full and its flood window
 * over; the idle list is in touch order, so its head is the first to go. */
static void wh_src_expire(struct wh *w, uint64_t now)
{
    struct q *it;
    while ((it = q_head(&w->idle))) {
        struct wh_src *s = q_data(it, struct wh_src, idle);
        if (now - s->touched_ms < WH_FLOOD_WINDOW_MS ||
            !wh_bucket_full(&s->bucket, wh_src_rate(w, s), now))
            break;
        q_remove(&s->idle);
        hmap_remove(&w->srcs, &s->node);
        free(s);
    }
}

/* A refusal for the rate: after WH_FLOOD_REFUSALS within a minute it is fatal (a client that
 * waits as told never gets there). */
static void wh_rate_refuse(struct wh_link *l, struct wh_src *s, const char *what, uint64_t now)
{
    char msg[PROTO_MAX_TEXT];
    bool fatal = false;
    if (s) {
        if (!s->flood_ms || now - s->flood_ms >= WH_FLOOD_WINDOW_MS) {
            s->flood_ms = now ? now : 1;
            s->refused = 0;
        }
        fatal = ++s->refused > WH_FLOOD_REFUSALS;
    }
    if (fatal)
        snprintf(msg, sizeof msg,
                 "more than %d code requests refused in a minute from this address",
                 WH_FLOOD_REFUSALS);
    else
        snprintf(msg, sizeof msg, "%s; try again later", what);
    LOG_I("code: %s refused: %s", l->id, msg);
    l->ops->refuse(l, PC_RATE_LIMITED, msg, fatal);
}

/* The entries of sa: *s its own, *site its /48's (IPv6); both NULL when it is counted
 * nowhere. -1 (neither set) when the table is full. */
static int wh_src_pair(struct wh *w, const struct sockaddr *sa, uint64_t now, struct wh_src **s,
                       struct wh_src **site)
{
    unsigned char key[WH_SRC_KEY], skey[WH_SRC_KEY];
    int n = wh_src_keys(sa, key, skey);
    bool full = false;
    *s = *site = NULL;
    if (n >= 1 && !(*s = wh_src_get(w, key, NULL, now, &full)))
        return -1;
    if (n == 2 && !(*site = wh_src_get(w, skey, *s, now, &full))) {
        *s = NULL; /* made or touched, idle: it goes in its time */
        return -1;
    }
    return 0;
}

/* Takes one --code-rate token for an open or a claim of l, from its source and its /48.
 * Returns 0, or -1 after refusing. */
static int wh_take(struct wh *w, struct wh_link *l, struct wh_src **out, struct wh_src **site,
                   uint64_t now)
{
    char msg[PROTO_MAX_TEXT];
    struct wh_src *s;
    if (wh_src_pair(w, l->src, now, &s, site) < 0) {
        *out = NULL;
        wh_refuse(l, PC_RATE_LIMITED, "the server tracks too many addresses now; try again later");
        return -1;
    }
    *out = s;
    if (s && wh_bucket_take(&s->bucket, w->cfg.rate, 1, now) < 0) {
        snprintf(msg, sizeof msg, "at most %u code opens and claims per minute from one address",
                 w->cfg.rate);
        wh_rate_refuse(l, s, msg, now);
        return -1;
    }
    if (*site && wh_bucket_take(&(*site)->bucket, wh_src_rate(w, *site), 1, now) < 0) {
        snprintf(msg, sizeof msg,
                 "at most %u code opens and claims per minute from one IPv6 /48",
                 wh_src_rate(w, *site));
        wh_rate_refuse(l, s, msg, now);
        return -1;
    }
    return 0;
}

void wh_penalize_source(struct wh *w, const struct sockaddr *src, uint64_t now_ms)
{
    struct wh_src *s, *site;
    if (wh_src_pair(w, src, now_ms, &s, &site) < 0)
        return;
    if (s)
        wh_bucket_charge(&s->bucket, w->cfg.rate, WH_FAIL_COST, now_ms);
    if (site)
        wh_bucket_charge(&site->bucket, wh_src_rate(w, site), WH_FAIL_COST, now_ms);
}

static void wh_penalize(struct wh *w, struct wh_link *claimer, uint64_t now)
{
    if (claimer->ops->penalize)
        claimer->ops->penalize(claimer);
    else
        wh_penalize_source(w, claimer->src, now);
}

/* ---- channels ---- */

static bool wh_chan_eq(const struct hmap_node *n, const void *key)
{
    return hmap_data(n, struct wh_chan, node)->channel == *(const uint32_t *)key;
}

static struct wh_chan *wh_find(const struct wh *w, uint32_t channel)
{
    struct hmap_node *n =
        hmap_find(&w->chans, hmap_hash(&w->chans, &channel, sizeof channel), wh_chan_eq, &channel);
    return n ? hmap_data(n, struct wh_chan, node) : NULL;
}

static void wh_arm(struct wh *w, struct wh_chan *c, uint64_t since)
{
    uint64_t slot;
    c->since_ms = since;
    c->deadline_ms = wh_deadline(c->state, since, c->ttl_s);
    slot = (c->deadline_ms + 999) / 1000;
    if (slot < w->wheel_s) /* not before the next slot to be emptied */
        slot = w->wheel_s;
    if (q_linked(&c->tick))
        q_remove(&c->tick);
    q_insert_tail(&w->wheel[slot % WH_WHEEL], &c->tick);
}

/* A free number: WH_DRAWS uniform draws among 1..range (each free with probability at least
 * 9/10, as range >= 10 x open), then a scan from a random start, which finds one since
 * open < range. 0 when none is free. taken: numbers of this open the directory said another
 * instance holds; each doubles the range, since the range counts only this instance's
 * channels (ten instances with 100 open each hold every number of 1..999). */
static uint32_t wh_draw(const struct wh *w, unsigned taken)
{
    uint32_t range = wh_range(hmap_count(&w->chans)), n;
    for (unsigned i = 0; i < taken && range < PROTO_CODE_CHANNEL_MAX; i++)
        range = range > PROTO_CODE_CHANNEL_MAX / 2 ? PROTO_CODE_CHANNEL_MAX : range * 2;
    for (int i = 0; i < WH_DRAWS; i++) {
        n = 1 + randombytes_uniform(range);
        if (!wh_find(w, n))
            return n;
    }
    n = 1 + randombytes_uniform(range);
    for (uint32_t i = 0; i < range; i++, n = n % range + 1)
        if (!wh_find(w, n))
            return n;
    return 0;
}

/* Puts c under a fresh number (c->channel 0: not in the table yet). Returns 0, or -1 when
 * none is free. */
static int wh_number(struct wh *w, struct wh_chan *c)
{
    uint32_t n = wh_draw(w, c->draws);
    if (!n)
        return -1;
    c->channel = n;
    c->serial = ++w->serial;
    hmap_insert(&w->chans, &c->node, hmap_hash(&w->chans, &n, sizeof n));
    return 0;
}

/* Takes c out of every table and counts its end; its links hold nothing any more. The caller
 * tells the sides afterwards, from copies of the link pointers. */
static void wh_unlink(struct wh *w, struct wh_chan *c, enum wh_end how, uint64_t now)
{
    /* a pending reservation is released too: the directory's commands run in order, so the
     * release follows the reserve (and deletes only what is still ours) */
    if (c->channel) {
        hmap_remove(&w->chans, &c->node);
        if (w->dir.release)
            w->dir.release(w->dir.data, c->channel, c->serial);
    }
    if (q_linked(&c->tick))
        q_remove(&c->tick);
    if (c->src)
        wh_src_opens(w, c->src, -1, now);
    if (c->site)
        wh_src_opens(w, c->site, -1, now);
    if (c->maker)
        c->maker->chan = NULL;
    if (c->claimer)
        c->claimer->chan = NULL;
    /* WH_END_COUNT: an open refused before its code-opened, which counts nowhere */
    if (w->mtr && (unsigned)how < WH_END_COUNT)
        w->mtr->codes_ended[how]++;
    LOG_N("code %u: %s (%s%s%s)", c->channel, how < WH_END_COUNT ? wh_end_name(how) : "refused",
          c->maker ? c->maker->id : "-", c->claimer ? " <- " : "",
          c->claimer ? c->claimer->id : "");
}

static void wh_released(struct wh_link *l)
{
    if (l && l->ops->released)
        l->ops->released(l);
}

/* Ends c: the maker gets to_maker, the claimer to_claimer (PC_UNKNOWN: nothing). */
static void wh_end(struct wh *w, struct wh_chan *c, enum wh_end how, enum proto_code to_maker,
                   enum proto_code to_claimer, const char *msg, uint64_t now)
{
    struct wh_link *maker = c->maker, *claimer = c->claimer;
    wh_unlink(w, c, how, now);
    sodium_memzero(c, sizeof *c);
    free(c);
    if (maker && to_maker != PC_UNKNOWN)
        wh_refuse(maker, to_maker, msg);
    if (claimer && to_claimer != PC_UNKNOWN)
        wh_refuse(claimer, to_claimer, msg);
    wh_released(maker);
    wh_released(claimer);
}

static void wh_send(struct wh_link *l, const struct proto_msg *m)
{
    char line[PROTO_MAX_LINE];
    int n = proto_encode(m, line, sizeof line);
    if (n > 0)
        l->ops->send(l, line, (size_t)n);
}

/* code-opened to the maker: the channel is OPEN. */
static void wh_opened(struct wh *w, struct wh_chan *c)
{
    struct proto_msg m;
    c->state = WH_OPEN;
    if (w->mtr)
        w->mtr->codes_opened++;
    LOG_N("code %u: opened by %s, %u s", c->channel, c->maker->id, c->ttl_s);
    memset(&m, 0, sizeof m);
    m.type = PROTO_CODE_OPENED;
    m.u.code.channel = (int)c->channel;
    m.u.code.ttl = (int)c->ttl_s;
    memcpy(m.u.code.sid, c->sid, sizeof c->sid);
    wh_send(c->maker, &m);
}

/* Asks the directory for c's number until it is ours, taken too often, or the directory is
 * down; with no directory it is ours at once. */
static void wh_reserve(struct wh *w, struct wh_chan *c, uint64_t now)
{
    for (;;) {
        enum wh_dir_result r = w->dir.reserve
                                   ? w->dir.reserve(w->dir.data, c->channel, c->serial, c->ttl_s)
                                   : WH_DIR_OK;
        if (r == WH_DIR_PENDING)
            return;
        if (r == WH_DIR_OK) {
            wh_opened(w, c);
            return;
        }
        hmap_remove(&w->chans, &c->node);
        c->channel = 0;
        if (r == WH_DIR_DOWN) {
            wh_end(w, c, WH_END_COUNT, PC_OVERLOADED, PC_UNKNOWN,
                   "the cluster store is unavailable; try again later", now);
            return;
        }
        if (++c->draws >= WH_DRAWS || wh_number(w, c) < 0) {
            wh_end(w, c, WH_END_COUNT, PC_SERVER_FULL, PC_UNKNOWN,
                   "no free code channel number; try again later", now);
            return;
        }
    }
}

void wh_dir_reserved(struct wh *w, uint32_t channel, uint64_t serial, enum wh_dir_result r,
                     uint64_t now_ms)
{
    struct wh_chan *c = wh_find(w, channel);
    if (!c || c->serial != serial || c->state != WH_RESERVING)
        return; /* its maker left, or a late answer for an earlier draw */
    if (r == WH_DIR_OK) {
        wh_opened(w, c);
        return;
    }
    /* taken or down: as a synchronous answer would have been, with the next draw asked */
    hmap_remove(&w->chans, &c->node);
    c->channel = 0;
    if (r == WH_DIR_DOWN || ++c->draws >= WH_DRAWS || wh_number(w, c) < 0) {
        wh_end(w, c, WH_END_COUNT, r == WH_DIR_DOWN ? PC_OVERLOADED : PC_SERVER_FULL, PC_UNKNOWN,
               r == WH_DIR_DOWN ? "the cluster store is unavailable; try again later"
                                : "no free code channel number; try again later",
               now_ms);
        return;
    }
    wh_reserve(w, c, now_ms);
}

static void wh_open(struct wh *w, struct wh_link *l, const struct proto_msg *m, uint64_t now)
{
    char msg[PROTO_MAX_TEXT];
    struct wh_src *s, *site;
    struct wh_chan *c;
    if (l->aux || l->remote) {
        wh_refuse(l, PC_UNEXPECTED_TYPE,
                  "code-open needs a main registration, not an auxiliary one");
        return;
    }
    if (l->chan || l->proxy) {
        wh_refuse(l, PC_UNEXPECTED_TYPE, "this connection holds a code channel already");
        return;
    }
    if (wh_take(w, l, &s, &site, now) < 0)
        return;
    if (s && s->opens >= WH_PER_SOURCE) {
        snprintf(msg, sizeof msg, "at most %d open code channels per address", WH_PER_SOURCE);
        wh_rate_refuse(l, s, msg, now);
        return;
    }
    if (site && site->opens >= LIM_SITE_FACTOR * WH_PER_SOURCE) {
        snprintf(msg, sizeof msg, "at most %u open code channels per IPv6 /48",
                 LIM_SITE_FACTOR * WH_PER_SOURCE);
        wh_rate_refuse(l, s, msg, now);
        return;
    }
    if (hmap_count(&w->chans) >= w->cfg.max) {
        LOG_I("code: %s refused: %u channels open", l->id, w->cfg.max);
        wh_refuse(l, PC_SERVER_FULL, "the server has as many open code channels as it takes");
        return;
    }
    if (!(c = calloc(1, sizeof *c))) {
        wh_refuse(l, PC_SERVER_FULL, "the server is out of memory");
        return;
    }
    q_init(&c->tick);
    c->state = WH_RESERVING;
    c->ttl_s = wh_ttl((unsigned)m->u.code.ttl, w->cfg.ttl_s);
    c->maker = l;
    l->chan = c;
    c->src = s;
    c->site = site;
    if (s)
        wh_src_opens(w, s, +1, now);
    if (site)
        wh_src_opens(w, site, +1, now);
    randombytes_buf(c->sid, sizeof c->sid);
    if (wh_number(w, c) < 0) { /* cannot happen while max < range; kept for safety */
        wh_end(w, c, WH_END_COUNT, PC_SERVER_FULL, PC_UNKNOWN, "no free code channel number", now);
        return;
    }
    wh_arm(w, c, now);
    wh_reserve(w, c, now);
}

static void wh_claim(struct wh *w, struct wh_link *l, uint32_t channel, uint64_t now)
{
    struct proto_msg m;
    struct wh_src *s, *site;
    struct wh_chan *c;
    if (l->chan || l->proxy) {
        wh_refuse(l, PC_UNEXPECTED_TYPE, "this connection holds a code channel already");
        return;
    }
    if (wh_take(w, l, &s, &site, now) < 0)
        return;
    c = wh_find(w, channel);
    if (!c && w->dir.claim_elsewhere && w->dir.claim_elsewhere(w->dir.data, l, channel))
        return;
    if (!c || c->state != WH_POSTED) {
        if (w->mtr)
            w->mtr->codes_ended[WH_END_UNKNOWN_CLAIM]++;
        LOG_I("code %u: claim by %s refused: %s", channel, l->id,
              c ? wh_state_name(c->state) : "no such channel");
        wh_refuse(l, PC_CODE_UNKNOWN,
                  "no such code: it expired, was already used, or was never made");
        return;
    }
    c->state = WH_CLAIMED;
    c->claimer = l;
    l->chan = c;
    wh_arm(w, c, now);
    if (w->mtr)
        w->mtr->codes_claimed++;
    LOG_N("code %u: claimed by %s (made by %s)", c->channel, l->id, c->maker->id);
    memset(&m, 0, sizeof m);
    m.type = PROTO_CODE_CLAIMED;
    m.u.code.channel = (int)c->channel;
    memcpy(m.u.code.sid, c->sid, sizeof c->sid);
    memcpy(m.u.code.share, c->share, sizeof c->share);
    m.u.code.ad_len = c->ad_len;
    memcpy(m.u.code.ad, c->ad, c->ad_len);
    wh_send(l, &m);
}

/* A message about the channel l holds. */
static void wh_step(struct wh *w, struct wh_link *l, const struct proto_msg *m, uint64_t now)
{
    struct wh_chan *c = l->chan;
    enum wh_side side;
    struct wh_link *other;
    struct proto_msg fwd;
    if (!c || c->channel != (uint32_t)m->u.code.channel) {
        wh_refuse(l, PC_UNEXPECTED_TYPE, "this connection holds no such code channel");
        return;
    }
    side = c->maker == l ? WH_MAKER : WH_CLAIMER;
    other = side == WH_MAKER ? c->claimer : c->maker;
    switch (wh_decide(c->state, side, m->type)) {
    case WH_A_POST:
        memcpy(c->share, m->u.code.share, sizeof c->share);
        c->ad_len = m->u.code.ad_len;
        memcpy(c->ad, m->u.code.ad, c->ad_len);
        c->state = WH_POSTED;
        LOG_I("code %u: posted by %s", c->channel, l->id);
        return;
    case WH_A_ANSWER:
    case WH_A_CONFIRM:
        c->state = m->type == PROTO_CODE_ANSWER ? WH_ANSWERED : WH_DONE;
        if (c->state == WH_DONE)
            wh_arm(w, c, now);
        LOG_I("code %u: %s from %s", c->channel, wh_state_name(c->state), l->id);
        fwd = *m; /* unchanged: the decoder's strictness makes its encoding the same bytes */
        if (other)
            wh_send(other, &fwd);
        return;
    case WH_A_BURN:
        if (c->claimer)
            wh_penalize(w, c->claimer, now);
        LOG_I("code %u: aborted by %s (%s)", c->channel, l->id,
              side == WH_MAKER ? "maker" : "claimer");
        wh_end(w, c, WH_END_WRONG, side == WH_CLAIMER ? PC_CODE_WRONG : PC_UNKNOWN,
               side == WH_MAKER ? PC_CODE_WRONG : PC_UNKNOWN,
               "the other side found the code wrong; the code is burned", now);
        return;
    case WH_A_WITHDRAW:
        wh_end(w, c, WH_END_WRONG, PC_UNKNOWN, PC_UNKNOWN, "", now);
        return;
    default:
        wh_refuse(l, PC_UNEXPECTED_TYPE, "this code message is not valid in the channel's state");
        return;
    }
}

void wh_msg(struct wh *w, struct wh_link *l, const struct proto_msg *m, uint64_t now_ms)
{
    if (!w->cfg.enabled) {
        wh_refuse(l, PC_UNEXPECTED_TYPE, "this server has no code mailbox (--no-code)");
        return;
    }
    if (l->proxy && m->type != PROTO_CODE_OPEN && m->type != PROTO_CODE_CLAIM && w->dir.forward) {
        w->dir.forward(w->dir.data, l, m);
        return;
    }
    switch (m->type) {
    case PROTO_CODE_OPEN:
        wh_open(w, l, m, now_ms);
        return;
    case PROTO_CODE_CLAIM:
        wh_claim(w, l, (uint32_t)m->u.code.channel, now_ms);
        return;
    case PROTO_CODE_POST:
    case PROTO_CODE_ANSWER:
    case PROTO_CODE_CONFIRM:
    case PROTO_CODE_ABORT:
        wh_step(w, l, m, now_ms);
        return;
    default:
        wh_refuse(l, PC_UNEXPECTED_TYPE, "this message is not valid here");
        return;
    }
}

void wh_gone(struct wh *w, struct wh_link *l, uint64_t now_ms)
{
    struct wh_chan *c = l->chan;
    bool exchange;
    if (!w)
        return;
    if (l->proxy && w->dir.forward_gone) {
        l->proxy = NULL;
        w->dir.forward_gone(w->dir.data, l);
    }
    if (!c)
        return;
    exchange = c->state == WH_CLAIMED || c->state == WH_ANSWERED;
    if (c->maker == l) {
        /* in DONE the exchange finished: that is a confirmed channel whose maker moved on */
        wh_end(w, c, c->state == WH_DONE ? WH_END_CONFIRMED : WH_END_GONE, PC_UNKNOWN,
               exchange ? PC_CODE_WRONG : PC_UNKNOWN,
               "the other side left during the code exchange; the code is burned", now_ms);
        return;
    }
    if (exchange) {
        wh_penalize(w, l, now_ms);
        wh_end(w, c, WH_END_GONE, PC_CODE_WRONG, PC_UNKNOWN,
               "the other side left during the code exchange; the code is burned", now_ms);
        return;
    }
    /* DONE: the maker may still abort; the claimer is simply no longer there to hear it */
    c->claimer = NULL;
    l->chan = NULL;
    wh_released(l);
}

/* c's deadline has passed. */
static void wh_expire(struct wh *w, struct wh_chan *c, uint64_t now)
{
    switch (c->state) {
    case WH_DONE:
        wh_end(w, c, WH_END_CONFIRMED, PC_UNKNOWN, PC_UNKNOWN, "", now);
        return;
    case WH_CLAIMED:
    case WH_ANSWERED:
        /* in CLAIMED the claimer owed its answer: letting the exchange run out burns the code
         * as leaving does, and costs as much (else a burner pays a third of a leaver's price) */
        if (c->state == WH_CLAIMED && c->claimer)
            wh_penalize(w, c->claimer, now);
        wh_end(w, c, WH_END_EXPIRED, PC_CODE_EXPIRED, PC_CODE_EXPIRED,
               "the code exchange did not finish in time; the code is burned", now);
        return;
    default: /* a reservation the directory never answered was not opened: counted nowhere */
        wh_end(w, c, c->state == WH_RESERVING ? WH_END_COUNT : WH_END_EXPIRED, PC_CODE_EXPIRED,
               PC_UNKNOWN, "the code expired unused", now);
        return;
    }
}

void wh_tick(struct wh *w, uint64_t now_ms)
{
    uint64_t now_s = now_ms / 1000;
    if (!w)
        return;
    /* a loop that stalled longer than the wheel turns at most once: every entry is due */
    for (unsigned n = 0; w->wheel_s <= now_s && n < WH_WHEEL; n++, w->wheel_s++) {
        struct q *slot = &w->wheel[w->wheel_s % WH_WHEEL], *it;
        while ((it = q_head(slot))) {
            struct wh_chan *c = q_data(it, struct wh_chan, tick);
            q_remove(&c->tick); /* an early entry (a clock step) still goes: nothing is armed
                                   beyond the wheel */
            wh_expire(w, c, now_ms);
        }
    }
    if (w->wheel_s <= now_s)
        w->wheel_s = now_s + 1;
    wh_src_expire(w, now_ms);
}

/* ---- life cycle ---- */

struct wh *wh_new(const struct wh_cfg *cfg, struct mtr *mtr, uint64_t now_ms)
{
    struct wh *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->cfg = *cfg;
    w->mtr = mtr;
    q_init(&w->idle);
    for (unsigned i = 0; i < WH_WHEEL; i++)
        q_init(&w->wheel[i]);
    w->wheel_s = now_ms / 1000 + 1;
    if (hmap_init(&w->chans, 64) < 0 || hmap_init(&w->srcs, 64) < 0) {
        wh_free(w);
        return NULL;
    }
    return w;
}

void wh_free(struct wh *w)
{
    struct hmap_node *it, *tmp;
    if (!w)
        return;
    hmap_foreach_safe(it, tmp, &w->chans)
    {
        struct wh_chan *c = hmap_data(it, struct wh_chan, node);
        if (c->maker)
            c->maker->chan = NULL;
        if (c->claimer)
            c->claimer->chan = NULL;
        sodium_memzero(c, sizeof *c);
        free(c);
    }
    hmap_foreach_safe(it, tmp, &w->srcs) free(hmap_data(it, struct wh_src, node));
    hmap_fini(&w->chans);
    hmap_fini(&w->srcs);
    free(w);
}

void wh_set_dir(struct wh *w, const struct wh_dir *dir)
{
    w->dir = *dir;
}

bool wh_enabled(const struct wh *w)
{
    return w && w->cfg.enabled;
}

size_t wh_open_count(const struct wh *w)
{
    return hmap_count(&w->chans);
}

size_t wh_sources(const struct wh *w)
{
    return hmap_count(&w->srcs);
}
