/* The serve hooks: what a waiting control connection asks and tells its user about each
 * session (listen --forward, receive --from). */
#ifndef TP_SERVE_H
#define TP_SERVE_H

#include <stdbool.h>
#include <stddef.h>

#include "peer/link.h"

/* listen --forward: what the control connection does with each punch order. */
struct peer_serve {
    /* Called before anything is dialled: false refuses the session (why says why). May set fp
     * to the fingerprint the peer's key must have ("" leaves the usual trust). */
    bool (*admit)(void *arg, const char *peer, char *fp, size_t fplen, char *why, size_t whylen);
    /* An admitted session ended without a link. */
    void (*failed)(void *arg, const char *peer);
    /* An admitted session is up: the callee copies *link and owns link->fd from now on. */
    void (*linked)(void *arg, struct peer_link *link);
    void *arg;
};

#endif
