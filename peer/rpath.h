/* The path side of a resumable session (docs/design/resume.md 4.5, 5.1): a thread with its own
 * libuv loop that waits on the session's mailbox. On MB_LOST from the data plane (rpump) it finds
 * the peer again within the resume timeout and hands the verified connection over as MB_CONN:
 *   - the initiator (the side that sent the first connect) re-punches: a fresh auxiliary control
 *     connection to the server that introduced us (then the rest of --server), a connect with
 *     `resume` = the root, the punch engine in resume mode (peer/rshake lines), backoff as
 *     peer/resume.h's tables;
 *   - the responder makes itself reachable: a control connection registering its id with
 *     hello.replace, which takes only punch orders with punch.resume = the root from the
 *     session's peer id and key (anything else is refused before anything is dialled).
 * Past the deadline it pushes MB_GIVE_UP. On MB_ENDED it stops.
 *
 * As built (docs/design/resume.md 4.5, "As built: the path side"): each attempt runs on a thread
 * of its own (the path loop stays free to take MB_ENDED and cancel it); a failed attempt waits
 * resume_next_ms (the ASK table when it returned EXIT_NO_PEER, else the punch table), capped by
 * the deadline. connect/listen pipes and forwarding start it; listen --forward's responder
 * does not register (its serve loop stays registered): its attempt is peer/rwait's. */
#ifndef TP_RPATH_H
#define TP_RPATH_H

#include <stdint.h>

#include "common/srvlist.h"
#include "peer/mbox.h"
#include "peer/link.h"
#include "peer/opts.h"

struct resume_link_cfg;

struct rpath_cfg {
    const struct peer_opts *o; /* must outlive the path side */
    enum proto_role role;      /* the session's */
    char root[PROTO_SESSION_LEN + 1];
    char peer[PROTO_MAX_ID + 1];
    unsigned char peer_key[32]; /* the peer's verified identity key */
    unsigned char rs[32];       /* copied; wiped at rpath_stop */
    char server[SL_NAME];       /* the rendezvous that introduced us: tried first */
    uint64_t timeout_ms;        /* the effective resume timeout */
    /* relay first (docs/design/resume.md 4.6, as built): epoch 0 is relayed and was joined
     * early; at the start the path side tries to upgrade the live session to direct (a resume
     * order, direct-only, handed over as MB_CONN with upgrade), up to MIGRATE_UPGRADE_TRIES
     * times (peer/migrate.h) */
    bool upgrade;
    /* One attempt (NULL: peer_resume_link). Replaceable so that tests script the attempts; it
     * runs on a thread of its own, the path loop stays free to take MB_ENDED meanwhile. */
    int (*attempt)(const struct resume_link_cfg *r, struct peer_link *link, char *why,
                   size_t whylen);
    /* The attempt's own state (the attempt reads r->c->attempt_arg): a serving responder's
     * attempt (peer/rwait.h) waits there for the link its control connection punched. */
    void *attempt_arg;
};

struct rpath;

/* Starts the thread (its loop, the mailbox). NULL with errno when it cannot. */
struct rpath *rpath_start(const struct rpath_cfg *c);
/* The mailbox the data plane uses (valid until rpath_stop). */
struct mbox *rpath_mbox(struct rpath *r);
/* After the data plane returned (it pushed MB_ENDED): stops whatever runs, joins the thread,
 * closes the mailbox, wipes and frees. */
void rpath_stop(struct rpath *r);

/* One resume attempt's connection, blocking (run on the path thread): the initiator's
 * re-punch or the responder's wait, through control.c in resume mode. rx and last_epoch are the
 * data plane's at the failure. EXIT_DONE with link filled (link->epoch, peer_rx, gone, keys,
 * prefill), or another exit code with why. cancel: polled; non-zero stops the attempt. */
struct resume_link_cfg {
    const struct rpath_cfg *c;
    uint64_t rx;
    uint32_t last_epoch;
    uint64_t deadline_ms; /* clk_ms() after which the attempt gives up */
    const volatile int *cancel;
    bool direct_only; /* an upgrade: ignore a relay offer, give up on a punch without direct */
};
int peer_resume_link(const struct resume_link_cfg *r, struct peer_link *link, char *why,
                     size_t whylen);

#endif
