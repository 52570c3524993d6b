/* The serve hooks: what a waiting control connection asks and tells its user about each
 * session (listen --forward, receive --from). */
#ifndef TP_SERVE_H
#define TP_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peer/link.h"

/* listen --forward, a resumable session suspended (docs/design/resume.md 4.5, "Responder,
 * suspended"): what a resume order for it needs, copied out of the serve side's table. */
struct serve_resume {
    char root[PROTO_SESSION_LEN + 1];
    char peer[PROTO_MAX_ID + 1];
    unsigned char peer_key[32]; /* the peer's verified identity key */
    enum proto_role role;       /* ours in the session */
    unsigned char rs[32];       /* the resumption secret; wiped by the session when done */
    uint32_t last_epoch;        /* the newest epoch attached */
    uint64_t rx;                /* our receive offset at the failure */
};

/* listen --forward: what the control connection does with each punch order. */
struct peer_serve {
    /* Called before anything is dialled: false refuses the session (why says why). May set fp
     * to the fingerprint the peer's key must have ("" leaves the usual trust). */
    bool (*admit)(void *arg, const char *peer, char *fp, size_t fplen, char *why, size_t whylen);
    /* An admitted session ended without a link; status is its punch's (EXIT_PUNCH, or
     * EXIT_CODE_FAILED: a code session's peer signed for another code exchange). */
    void (*failed)(void *arg, const char *peer, int status);
    /* An admitted session is up: the callee copies *link and owns link->fd from now on. */
    void (*linked)(void *arg, struct peer_link *link);
    /* A punch order with punch.resume set (NULL: such orders are refused). Fills *r from the
     * suspended session whose root is root, false when none waits for one (why says so). A
     * resume takes no slot: neither admit nor failed is called for it. */
    bool (*resume_find)(void *arg, const char *root, struct serve_resume *r, char *why,
                        size_t whylen);
    /* The resume punch for root won: the callee owns link->fd (and its keys) from now on. */
    void (*resumed)(void *arg, const char *root, struct peer_link *link);
    /* How many times a session of ours was suspended so far (NULL: never asked). A new one
     * makes the control connection check at once that its server still answers: the path loss
     * may have taken the control connection too (a router reboot), and the resume order comes
     * only through a live registration. */
    unsigned (*suspensions)(void *arg);
    void *arg;
};

#endif
