/* What a peer sends in answer to the server's challenge (PROTOCOL.md, "Challenge"). */
#ifndef TP_HELLO_H
#define TP_HELLO_H

#include <stdbool.h>

#include "peer/peer.h"

/* Fills hello's key, sig and (with --secret-file) admit for the challenge nonce; the id must
 * be set already, since the signature covers it. */
void hello_sign(const struct peer_opts *o, const unsigned char *nonce, struct proto_msg *hello);

/* The admit proof for nonce under secret (NULL: none; *has is then false). For the first line
 * of relay and probe connections, which carry no signature. */
void hello_admit(const unsigned char *secret, const unsigned char *nonce, bool *has,
                 unsigned char *admit);

#endif
