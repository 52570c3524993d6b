/* Failover across the servers of --server: rounds over the list in its order, moving on when a
 * server cannot be used or is lost, and pausing (on a uv_timer, never a blocking sleep) between
 * rounds. What an attempt does on a server is the caller's: it is a callback. */
#ifndef TP_FAILOVER_H
#define TP_FAILOVER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "common/srvlist.h"

/* listen's reconnect back-off: doubling from MIN up to MAX, each wait spread by +-20% */
#define FO_RETRY_MIN_MS 1000
#define FO_RETRY_MAX_MS 30000
/* after losing its server, a peer waits 0 to this long before the next one, so that the
 * peers of a dead server do not all land on the next in the same instant */
#define FO_SPREAD_MS 500

/* What one attempt on a server tells the failover. */
struct fo_outcome {
    int rc;          /* its exit code */
    bool retry;      /* it ended in a way worth another attempt */
    bool registered; /* it got a welcome */
    char why[512];   /* how it lost its server (for the summary of a list) */
};

/* One attempt on server s, on loop: the callee runs the loop until its attempt is over and
 * leaves no handle of its own on it. multi: s is one of several; was_registered: an earlier
 * attempt of this run got a welcome. */
struct fo_cbs {
    void (*attempt)(void *data, uv_loop_t *loop, const struct sl_server *s, bool multi,
                    bool was_registered, struct fo_outcome *out);
    void *data;
};

/* Rounds over the servers of list until an attempt ends for good (its rc), or, unless
 * may_retry, a whole round failed (EXIT_SERVER). EXIT_LOCAL when it cannot even start. */
int fo_run(const char *list, bool may_retry, const struct fo_cbs *cb);

/* The pure part: where a run stands, and what comes after an attempt. */
struct fo {
    int n;         /* servers of this round */
    int cur;       /* the server of the next attempt */
    int left;      /* attempts left in this round */
    uint64_t wait; /* the back-off of the next pause between rounds */
    bool multi;    /* the list names (or resolves to) several servers */
    bool may_retry;
    bool was_registered;
};

enum fo_step {
    FO_STOP,       /* the attempt ended for good: its rc is the run's */
    FO_NEXT,       /* try the next server of the round at once */
    FO_MOVE,       /* registered and lost on a list: a new round from the next, after a spread */
    FO_ROUND_OVER, /* nobody of the round took us: fo_give_up, or a pause */
};

void fo_init(struct fo *f, bool may_retry);

/* A new round of n servers, from the one after the server last used. */
void fo_round(struct fo *f, int n);

/* After an attempt on f->cur that ended with retry and registered as given. */
enum fo_step fo_after(struct fo *f, bool retry, bool registered);

/* A round is over: true when the run ends (no retry). */
bool fo_give_up(const struct fo *f);

/* The pause before the next round (f->wait spread by +-20%, uniform(n) drawing from 0..n-1),
 * and the back-off doubled for the one after it, up to FO_RETRY_MAX_MS. */
uint64_t fo_pause_ms(struct fo *f, uint32_t (*uniform)(uint32_t n));

/* Refusals that go away by themselves (a reason for another attempt). id-taken is one only
 * after we had the id: our own previous connection may still hold it until the server notices
 * that it is gone. Everything else (id-owned, not-authorized, not-admitted, protocol errors)
 * would fail again. */
bool fo_transient(const char *code, bool was_registered);

#endif
