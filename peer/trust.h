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

/* What trust_remember did. */
enum trust_remember {
    TRUST_REM_ADDED, /* the line "name key" was appended: the peer had none */
    TRUST_REM_KNOWN, /* the peer already has a line with this key: nothing to do */
    TRUST_REM_OTHER, /* the peer has lines, none with this key: left alone (the user decides) */
    TRUST_REM_ERROR, /* the file could not be read or written, or has a line for the peer that
                      * cannot be read: not changed */
};

/* --remember after a handshake bound to a wormhole code (docs/design/wormhole.md 6.3): records
 * pk, the key the code exchange authenticated (the peer's AD key, pinned in the handshake), for
 * t->name in t->known_path, as trust on first use would but authenticated by the code, so the
 * next session needs no code. The file is read again first (a code may have waited minutes
 * since trust_prepare), and only a peer without any line gets one: another key already recorded
 * is never overwritten, since it may be the real peer's and the code only vouches for this
 * session. msg gets one line for the user in every case (the fingerprint and file for ADDED;
 * for OTHER "known_peers already has another key for NAME (FILE line N); not changed (remove
 * the line to replace it)"), which the caller logs: a note for ADDED and KNOWN, a warning for
 * OTHER and ERROR. Writing goes through kp_add, as trust_record's does. */
enum trust_remember trust_remember(const struct shake_trust *t, const unsigned char *pk, char *msg,
                                   size_t msglen);

/* The same, as session.c does it at the end of a verified handshake: for a session bound to a
 * code (code true), trust_remember when remember, else nothing (a code session is pinned to
 * the code's key and records nothing unless asked); any other session trust_record. Logs the
 * outcome. */
void trust_after_shake(const struct shake_trust *t, const unsigned char *pk, bool code,
                       bool remember);

#endif
