/* The wormhole mailbox (PROTOCOL.md section 20, docs/design/wormhole.md 6.2): short-lived
 * channels through which a code's maker and its one claimer exchange their CPace messages.
 * The mailbox sees the channel number, the sid it draws and the bytes it relays; it never
 * decodes a share and learns nothing that tests the code's words.
 *
 * It knows no connection and no event loop: each side of a channel is a struct wh_link that
 * its owner embeds (a peer's control connection in server.c; in cluster mode a claimer on
 * another instance, cl_code.c) and that receives lines and refusals through its ops. Time is
 * passed in (now_ms); the owner calls wh_tick from its sweep. Every table is bounded:
 * channels by --code-max, sources by WH_MAX_SOURCES, the deadline wheel is fixed.
 *
 *   struct wh *w = wh_new(&cfg, &mtr, now);
 *   link: wh_link_init(&c->wh, &ops, id, src, aux)    the owner's struct embeds it
 *   wh_msg(w, &c->wh, &msg, now)                       every code-* message of that side
 *   wh_gone(w, &c->wh, now)                            the side's connection left
 *   wh_tick(w, now)                                    deadlines (every sweep)
 *
 * Re-entrancy: a link op may re-enter the mailbox with wh_gone (a send that overflows a
 * connection's queue drops it, and the drop reports the link gone): the mailbox calls ops only
 * once its own state is consistent and touches nothing of the channel afterwards. An op must
 * not free any link but its own synchronously (remote links are freed in ops->released). */
#ifndef TP_WH_H
#define TP_WH_H

#include "proto/code.h"
#include "proto/proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct mtr;

#define WH_TTL_MIN 10 /* --code-ttl range, seconds */
#define WH_TTL_MAX PROTO_CODE_TTL_MAX
#define WH_TTL_DEFAULT 600
#define WH_MAX_DEFAULT 10000 /* --code-max: open channels per instance */
#define WH_MAX_MAX 100000    /* so that 10 x open fits the 999999 numbers with room to spare */
#define WH_RATE_DEFAULT 20   /* --code-rate: opens + claims per minute per source */
#define WH_PER_SOURCE 4      /* open channels per source address */
#define WH_STEP_MS                                                                                 \
    30000                /* CLAIMED/ANSWERED: the exchange must finish this long after the claim   \
                          */
#define WH_DONE_MS 30000 /* DONE: kept so a late code-abort of the claimer reaches the maker */
#define WH_RANGE_MIN 999 /* channel numbers are drawn in 1..max(this, 10 x open) */
#define WH_FAIL_COST 2   /* extra tokens a claim costs its source when the exchange failed */
#define WH_FLOOD_REFUSALS 10 /* rate-limited refusals per source and minute before the cut */
#define WH_FLOOD_WINDOW_MS 60000
#define WH_MAX_SOURCES 65536 /* source entries tracked beyond those holding channels */
#define WH_DRAWS 8           /* random draws before a scan; the cluster's directory tries */

struct wh_cfg {
    bool enabled;   /* false: --no-code, every code-* message is unexpected-type */
    unsigned ttl_s; /* --code-ttl */
    unsigned max;   /* --code-max */
    unsigned rate;  /* --code-rate per minute per source (0: unlimited) */
};

/* ---- pure decisions (unit-tested in tests/unit/test_wh.c) ---- */

enum wh_state {
    WH_RESERVING, /* allocated here, its number not yet confirmed by the directory (cluster) */
    WH_OPEN,      /* code-opened sent, no post yet */
    WH_POSTED,    /* the maker's post is in: claimable */
    WH_CLAIMED,   /* code-claimed sent to the one claimer, waiting for its answer */
    WH_ANSWERED,  /* the answer went to the maker, waiting for its confirm or abort */
    WH_DONE,      /* the confirm went to the claimer; kept WH_DONE_MS for a late abort */
    WH_STATE_COUNT
};
enum wh_side { WH_MAKER, WH_CLAIMER };

/* What a code-* message of a side does to a channel in a state. */
enum wh_act {
    WH_A_UNEXPECTED, /* wrong side, wrong state or wrong type: unexpected-type, nothing else */
    WH_A_POST,       /* store the post: OPEN -> POSTED */
    WH_A_ANSWER,     /* forward to the maker: CLAIMED -> ANSWERED */
    WH_A_CONFIRM,    /* forward to the claimer: ANSWERED -> DONE */
    WH_A_BURN,       /* an abort with a claimer: the other side gets code-wrong, deleted */
    WH_A_WITHDRAW,   /* the maker's abort before any claim: deleted, nobody told */
};
enum wh_act wh_decide(enum wh_state st, enum wh_side side, enum proto_type t);

/* How a channel ended: label `how` of tcpunch_codes_ended_total (unknown_claim counts the
 * claims answered code-unknown, which end no channel) */
enum wh_end {
    WH_END_CONFIRMED,
    WH_END_WRONG,
    WH_END_EXPIRED,
    WH_END_UNKNOWN_CLAIM,
    WH_END_GONE,
    WH_END_COUNT
};
const char *wh_end_name(enum wh_end e);

/* The numbers new channels are drawn from: 1..wh_range(open), max(999, 10 x open) capped at
 * PROTO_CODE_CHANNEL_MAX. */
uint32_t wh_range(size_t open);
/* When a channel in st must end: since_ms is its open (RESERVING, OPEN, POSTED), its claim
 * (CLAIMED, ANSWERED) or its confirm (DONE). */
uint64_t wh_deadline(enum wh_state st, uint64_t since_ms, unsigned ttl_s);
/* The ttl a code-open gets: its own (0: none) capped at the server's. */
unsigned wh_ttl(unsigned asked, unsigned cfg_ttl);
/* --code-rate's burst: half a minute's tokens, at least 5. */
unsigned wh_burst(unsigned rate);
/* The state names for logs ("open", "posted", ...). */
const char *wh_state_name(enum wh_state st);

/* A token bucket of --code-rate per minute with wh_burst tokens, in milli-tokens; it may go
 * into debt (a failed claim's extra cost) down to -burst. Zero-initialised means full. */
struct wh_bucket {
    int64_t missing; /* milli-tokens short of a full bucket; more than full: debt */
    uint64_t last_ms;
};
/* Takes cost tokens when that many are there (0), else takes none (-1). rate 0: always 0. */
int wh_bucket_take(struct wh_bucket *b, unsigned rate, unsigned cost, uint64_t now_ms);
/* Takes cost tokens whatever is there (a penalty), the debt capped at a burst. */
void wh_bucket_charge(struct wh_bucket *b, unsigned rate, unsigned cost, uint64_t now_ms);
/* Whether the bucket is full again (its entry may be forgotten). */
bool wh_bucket_full(struct wh_bucket *b, unsigned rate, uint64_t now_ms);

/* ---- the sides ---- */

struct wh_link;
struct wh_chan;

struct wh_link_ops {
    /* one encoded line, '\n' included, to this side */
    void (*send)(struct wh_link *l, const char *line, size_t len);
    /* an error to this side; fatal only for a flood (WH_FLOOD_REFUSALS) */
    void (*refuse)(struct wh_link *l, enum proto_code code, const char *msg, bool fatal);
    /* optional: the mailbox holds no pointer to l any more (a remote link may be freed) */
    void (*released)(struct wh_link *l);
    /* optional: this claimer's exchange failed (code-abort, code-wrong): a remote link passes
     * the extra cost to its own instance's bucket; NULL: the mailbox charges src's bucket */
    void (*penalize)(struct wh_link *l);
};

/* A side, embedded by its owner. Everything after ops is the mailbox's except as noted. */
struct wh_link {
    const struct wh_link_ops *ops;
    char id[PROTO_MAX_ID + 1]; /* owner's: the peer's id, for logs */
    /* owner's: the source address the per-source limits count (NULL: a remote link, whose
     * limits are its own instance's business) */
    const struct sockaddr *src;
    bool aux;    /* owner's: an auxiliary registration (may claim, may not open) */
    bool remote; /* owner's: a claimer on another instance (cluster) */
    /* owner's (cluster): this link's claim went to another instance; its later code-* lines
     * go to dir->forward and its leaving to dir->forward_gone until the cluster sets it back
     * to NULL (wh_link_unproxy) */
    void *proxy;
    struct wh_chan *chan; /* the channel it makes or claims, NULL: none */
};

void wh_link_init(struct wh_link *l, const struct wh_link_ops *ops, const char *id,
                  const struct sockaddr *src, bool aux, bool remote);

/* ---- the cluster's hooks (rendezvous/cl_code.c wires them; NULL members: a single
 * instance) ----
 *
 * The maker's instance runs the whole state machine (wormhole.md 6.2); Redis is only the
 * directory of numbers. How cl_code.c plugs in (server.c owns s->wh and calls wh_set_dir once
 * the cluster exists):
 *
 * - Directory: reserve() does SET <prefix>code:<N> <instance> NX EX <ttl+90> (WH_DIR_PENDING,
 *   answered with wh_dir_reserved(w, N, serial, OK | TAKEN | DOWN, now) when Redis replies;
 *   TAKEN draws another number, at most WH_DRAWS tries, then server-full; DOWN: overloaded).
 *   release() is the compare-and-delete; it is called for every channel that had a number,
 *   a pending one included (Redis runs one connection's commands in order).
 * - Claimer's instance: claim_elsewhere() gets every claim of a number not held here (the
 *   claimer's token is taken already). Return true and set claimer->proxy (a proxy entry, ref
 *   -> claimer), GET the number, and pass the claim over the bus to the holder; if the number
 *   is absent, refuse the link code-unknown yourself and wh_link_unproxy() it. While proxy is
 *   set every code-* line of the link goes to forward() (to be sent over the bus) and its
 *   connection's end to forward_gone() (proxy is cleared by the mailbox then). Lines and
 *   errors coming back over the bus go to the link's ops (send / refuse); when the remote
 *   channel ended (an error, or DONE's time) call wh_link_unproxy(). A failed exchange's
 *   penalty is charged here, where the claimer's own abort and any code-wrong pass:
 *   wh_penalize_source(w, link->src, now) (no bus message carries it; wormhole.md 6.2).
 * - Maker's instance: a bus claim becomes a remote link, embedded in the cluster's own entry:
 *   wh_link_init(&e->link, &remote_ops, claimer_id, NULL, false, true), then
 *   wh_msg(w, &e->link, &claim, now); later bus lines of that claimer: wh_msg(w, &e->link,
 *   &m, now); its instance reporting it gone: wh_gone(w, &e->link, now). remote_ops.send and
 *   .refuse put the line or error on the bus to (instance, ref); .penalize does nothing
 *   (the claimer's instance charges it); .released is where e may be freed (the mailbox holds no pointer to it any more;
 *   until then it must stay valid). A claim that was refused (code-unknown, rate-limited:
 *   e->link.chan is still NULL when wh_msg returns) never gets .released: free e then.
 *   A remote link has no source (its limits are its own instance's), never opens, and is
 *   refused like a local one out of turn. */

enum wh_dir_result {
    WH_DIR_OK,      /* the number is ours cluster-wide */
    WH_DIR_PENDING, /* the answer comes later through wh_dir_reserved */
    WH_DIR_TAKEN,   /* another instance holds it: draw again */
    WH_DIR_DOWN,    /* the directory is unreachable: the open is refused (overloaded) */
};

struct wh_dir {
    void *data;
    /* A locally free number was drawn for a new channel (serial tells this attempt apart):
     * reserve it in the directory for ttl_s + WH_STEP_MS. */
    enum wh_dir_result (*reserve)(void *data, uint32_t channel, uint64_t serial, unsigned ttl_s);
    /* The channel that held this number (and serial) ended: release it if still ours. */
    void (*release)(void *data, uint32_t channel, uint64_t serial);
    /* A claim of a number this instance does not hold: return true when the cluster takes it
     * on (it answers claimer through its ops later, and sets claimer->proxy while it lasts);
     * false: the claimer gets code-unknown. The source's token is already taken. */
    bool (*claim_elsewhere)(void *data, struct wh_link *claimer, uint32_t channel);
    /* A code-* message from a link with proxy set (its claim lives on another instance). */
    void (*forward)(void *data, struct wh_link *from, const struct proto_msg *m);
    /* A link with proxy set has left (its connection closed). */
    void (*forward_gone)(void *data, struct wh_link *l);
};

/* ---- the mailbox ---- */

struct wh;

/* mtr (optional) gets the codes_* counters. NULL when out of memory. */
struct wh *wh_new(const struct wh_cfg *cfg, struct mtr *mtr, uint64_t now_ms);
void wh_free(struct wh *w);
void wh_set_dir(struct wh *w, const struct wh_dir *dir);
bool wh_enabled(const struct wh *w);

/* A code-* message (m->type PROTO_CODE_*) from side l, decoded strictly already. */
void wh_msg(struct wh *w, struct wh_link *l, const struct proto_msg *m, uint64_t now_ms);
/* l's connection left (harmless when l holds nothing; called again: nothing). */
void wh_gone(struct wh *w, struct wh_link *l, uint64_t now_ms);
/* Ends the channels whose deadline has passed; forgets idle sources. */
void wh_tick(struct wh *w, uint64_t now_ms);
/* The directory's late answer to a reserve that returned WH_DIR_PENDING (stale answers, for a
 * channel gone or redrawn since, are ignored). */
void wh_dir_reserved(struct wh *w, uint32_t channel, uint64_t serial, enum wh_dir_result r,
                     uint64_t now_ms);
/* The cluster ends l's proxy state (its remote channel ended). */
void wh_link_unproxy(struct wh_link *l);
/* A failed remote exchange's extra cost, on this instance's bucket of src. */
void wh_penalize_source(struct wh *w, const struct sockaddr *src, uint64_t now_ms);

/* Channels open (any state), and source entries tracked. */
size_t wh_open_count(const struct wh *w);
size_t wh_sources(const struct wh *w);

#endif
