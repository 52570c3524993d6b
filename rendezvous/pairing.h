/* Pairing of two peers of this instance: a registered peer asks for another id registered
 * here; both get a `punch` with the other's endpoints, timed (plan.c) so that they arrive at
 * about the same moment. Also the delayed sends both kinds of pair use. */
#ifndef TP_PAIRING_H
#define TP_PAIRING_H

#include "rendezvous/plan.h"
#include "rendezvous/conn.h"
#include "rendezvous/relay.h"

#define PAIR_MAX_PENDING 16 /* delayed punches queued for one peer; more are sent at once */

/* Pairs `from` with `to`, both registered here (the server has checked the request), on a
 * server that relays (rly) or not: a no-path error to from, or a session and its two punches.
 * resume: the connect's resume root ("" none), passed into both punches. */
void pair_connect(struct rly *rly, bool relays, const struct plan_bday_cfg *bday, struct conn *from,
                  struct conn *to, const char *resume);

/* c as one side of a pair. */
void pair_peer_of(struct conn *c, struct plan_peer *p);
/* c got a birthday plan now: it gets none in the next PLAN_BDAY_GAP_MS. */
void pair_bday_mark(struct conn *c);
/* Sends line to `to` after delay_us (rounded to ms; 0: now). A punch that cannot be delayed
 * (too many pending) is sent at once. */
void pair_send_later(struct conn *to, const char *session, const char *line, size_t len,
                     uint64_t delay_us);

/* Cancels the delayed punches addressed to c. The server calls it when c leaves the
 * registry (closing, fatal error), before c can be freed. */
void pair_cancel(struct conn *c);

#endif
