/* The session handshake on a punched connection (PROTOCOL.md, "Handshake"): the responder
 * offers a shake on every connection, the initiator answers on the one it selects, the
 * responder confirms it. */
#ifndef TP_SHAKE_H
#define TP_SHAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/proto.h"

struct shake_ctx {
    char session[PROTO_SESSION_LEN + 1];
    char self[PROTO_MAX_ID + 1];
    char peer[PROTO_MAX_ID + 1];
    enum proto_role role;
};

/* Encodes our shake (PROTO_SHAKE) or confirm (PROTO_CONFIRM) line; returns its length or -1. */
int shake_encode(const struct shake_ctx *s, enum proto_type type, char *buf, size_t len);

/* Checks a received line: a message of type expect for our session (a shake also from our
 * peer, to us). Returns true if valid, else false with the reason in why. */
bool shake_verify(const struct shake_ctx *s, enum proto_type expect, const char *line, size_t len,
                  char *why, size_t whylen);

#endif
