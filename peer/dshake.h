/* The end-to-end handshake of `direct` mode (PROTOCOL.md, "Direct mode"), on the one connection
 * the punch made: no server, so no session and no roles beforehand. Both sides send an unsigned
 * shake at once; the lower ephemeral key takes the initiator's role; both then send a signed
 * confirm. The peer's key is trusted through known_peers under its HOST:PORT, or --peer-key. */
#ifndef TP_DSHAKE_H
#define TP_DSHAKE_H

#include "peer/exit.h"
#include "peer/link.h"
#include "peer/opts.h"

/* Runs the handshake on link->fd (at most DSH_TIMEOUT_MS) with the peer known as name; fills the
 * link's keys and prefill. Returns EXIT_DONE, EXIT_PUNCH after logging why, or EXIT_LOCAL. */
int dsh_run(const struct peer_opts *o, struct peer_link *link, const char *name);

#define DSH_TIMEOUT_MS 5000

#endif
