/* Pairing: a registered peer asks for another id; both get a `punch` with the other's
 * endpoints, timed so that they arrive at about the same moment. */
#ifndef TP_PAIRING_H
#define TP_PAIRING_H

#include "rendezvous/server.h"

#define PAIR_MAX_DELAY_MS 2000                 /* cap on the head start given to the farther peer */
#define PAIR_LEAD_US PROTO_DEFAULT_START_IN_US /* time for peers to get ready to send SYNs */
#define PAIR_MAX_PENDING 16 /* delayed punches queued for one peer; more are sent at once */

/* Handles `connect` from a registered peer: self-connect and peer-not-found are answered
 * with non-fatal errors; otherwise a session is created and punches are sent. */
void pair_connect(struct srv *s, struct srv_conn *from, const char *target);

/* Cancels the delayed punches addressed to c. The server calls it when c leaves the
 * registry (closing, fatal error), before c can be freed. */
void pair_cancel(struct srv_conn *c);

#endif
