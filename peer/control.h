/* The control connection to the rendezvous, as the commands use it: register, ask for a peer
 * or wait for punch orders, and get the link (or serve every session through hooks). */
#ifndef TP_CONTROL_H
#define TP_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "peer/link.h"
#include "peer/opts.h"
#include "peer/serve.h"
#include "proto/wcode.h"

/* Registers with the server, asks for target (NULL: peer_wait, waits for someone to ask for
 * us), punches and verifies. Returns EXIT_DONE with *link filled, or an exit code after
 * printing why. */
int peer_rendezvous(const struct peer_opts *o, const char *target, struct peer_link *link);

/* The same for `connect`: the control connection is an auxiliary one (PROTOCOL.md, hello.aux),
 * so that any number of them may run at once under our id, next to a `listen` of that id. */
int peer_rendezvous_aux(const struct peer_opts *o, const char *target, struct peer_link *link);

/* listen, receive, chat without a peer (peer_rendezvous with no target): stays registered and
 * sets up every punch order addressed to us, up to 8 at once and 2 per peer id (a newer order
 * replaces an older one, see sess_wait_room in session.c), in parallel; the first session
 * that completes its handshake is the link, the others are aborted. A session that fails (a
 * stranger that never dials, a refused key, no path) is logged and waiting goes on. hooks may
 * be NULL; its admit (e.g. receive --from) and failed are called as for peer_serve, linked is
 * not used. Returns EXIT_DONE with *link filled, or an exit code when the server is lost for
 * good or refused us. Nothing is read from stdin before it returns. */
int peer_wait(const struct peer_opts *o, const struct peer_serve *hooks, struct peer_link *link);

/* receive --from: peer_wait with gate's admit (it may pin the peer's key; a refused order
 * leaves us waiting for the next). */
int peer_rendezvous_gate(const struct peer_opts *o, const struct peer_serve *gate,
                         struct peer_link *link);

/* First contact with a one-time code (README, "Codes"; docs/design/wormhole.md 6.3). The
 * maker (send FILE..., listen --code) registers, opens a channel at the server's mailbox,
 * shows the code and waits; after a confirmed exchange it takes a punch order only from the
 * claimer's id, the claimer's key pinned. The claimer (receive CODE, connect --code CODE)
 * registers as an auxiliary connection, claims the channel and, confirmed, asks for the
 * maker's id on the same connection, the maker's key pinned. Both bind the handshake to the
 * code. pipe: a code for listen/connect, else for send/receive. Returns EXIT_DONE with *link,
 * or an exit code (EXIT_CODE_FAILED, EXIT_NO_CODE, EXIT_SERVER, ...) after printing why. A
 * code lives on one server and dies with the connection: neither retries after registering. */
int peer_code_make(const struct peer_opts *o, bool pipe, struct peer_link *link);
int peer_code_claim(const struct peer_opts *o, bool pipe, const struct wcode *code,
                    struct peer_link *link);

/* Stays registered (across server restarts, unless --no-retry) and serves every punch order
 * addressed to us at once, each as its own session. Returns only when the server is lost for
 * good or refused us (an exit code). */
int peer_serve(const struct peer_opts *o, const struct peer_serve *sv);

#endif
