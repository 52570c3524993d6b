/* Which identity key we accept for a peer (known_peers, --peer-key, the server's word) and the
 * trust-on-first-use record afterwards (README, "Identities"). */
#ifndef TP_TRUST_H
#define TP_TRUST_H

#include "peer/exit.h"
#include "peer/opts.h"
#include "peer/shake.h"

/* Fills t for the peer called name (an id, or HOST:PORT in direct mode): --peer-key from o, the
 * known_peers lines for name, and server_pk, the key the server says the peer registered with
 * (NULL: none). Returns EXIT_DONE; EXIT_PUNCH after logging why when known_peers has a line
 * for name that cannot be read (refused like a changed key); EXIT_LOCAL when the file cannot be
 * read at all. */
int trust_prepare(const struct peer_opts *o, const char *name, const unsigned char *server_pk,
                  struct shake_trust *t);

/* After a verified handshake with pk: a peer seen for the first time is recorded in known_peers
 * and its fingerprint printed, like ssh's first contact. */
void trust_record(const struct shake_trust *t, const unsigned char *pk);

#endif
