/* What a peer sends in answer to the server's challenge (PROTOCOL.md, "Challenge"). */
#ifndef TP_HELLO_H
#define TP_HELLO_H

#include <stdbool.h>

#include "peer/opts.h"

/* Fills hello's key, sig and (with --secret-file) admit for the challenge nonce. Call it last:
 * the signature covers the id, and the admit every field of the hello (endpoints, path, aux). */
void hello_sign(const struct peer_opts *o, const unsigned char *nonce, struct proto_msg *hello);

/* hello.features (PROTOCOL.md section 18): ["resume"] iff the server offered it (offered: the
 * challenge listed "resume"; an older server would answer bad-field) and the session layer is
 * on (--resume-timeout > 0, both values in the protocol's ranges). Before hello_sign: the admit
 * covers it. Returns whether it announced. */
bool hello_features(const struct peer_opts *o, bool offered, struct proto_msg *hello);

/* The admit proof of m (a hello, relay or probe whose fields are all set) for nonce under
 * secret; NULL: none, m carries no admit. */
void hello_admit(const unsigned char *secret, const unsigned char *nonce, struct proto_msg *m);

#endif
