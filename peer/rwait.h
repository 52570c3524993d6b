/* listen --forward's resumable sessions (docs/design/resume.md 4.5, "Responder, suspended"):
 * the serve loop's control connection stays registered, so a suspended forwarded session must
 * not register its id again (hello.replace would throw the listener's own registration out).
 * Instead its path side's attempt (rwait_attempt as rpath_cfg.attempt, the entry as
 * attempt_arg) waits in this table; the control connection routes a resume order to it by
 * punch.resume (rwait_find, before anything is dialled), runs the resume punch itself and hands
 * the won link over (rwait_give), which the attempt returns to rpath as its MB_CONN.
 * Thread-safe: attempts run on path threads, find and give on the control connection's. */
#ifndef TP_RWAIT_H
#define TP_RWAIT_H

#include <stdbool.h>
#include <stddef.h>

#include "peer/link.h"
#include "peer/serve.h"

struct resume_link_cfg;
struct rwait;
struct rwait_ent;

/* NULL with errno when out of memory. Lives until the process ends (threads hold it). */
struct rwait *rwait_new(void);
/* Only with no entry left (a usage error ends the command; the tests). */
void rwait_free(struct rwait *t);
/* An entry for one forwarded session (NULL when out of memory); idle until its attempt runs. */
struct rwait_ent *rwait_add(struct rwait *t);
/* After the session's pipe returned (its path side is stopped): unlinks, wipes, frees. */
void rwait_remove(struct rwait_ent *e);

/* rpath's attempt for a serving responder: publishes the suspended session (root, peer, key,
 * role, RS from r->c; rx and last_epoch from r) and blocks until a link is given, r->cancel or
 * r->deadline_ms. EXIT_DONE with *link, else EXIT_PUNCH with why. */
int rwait_attempt(const struct resume_link_cfg *r, struct peer_link *link, char *why,
                  size_t whylen);

/* How many suspensions began so far (serve->suspensions). */
unsigned rwait_suspensions(struct rwait *t);

/* The suspended session with this root, waiting for a resume: *sr filled, true; false with
 * why when none is (a stranger's root, or not suspended now). */
bool rwait_find(struct rwait *t, const char *root, struct serve_resume *sr, char *why,
                size_t whylen);
/* The resume punch for root won: the waiting attempt takes link (fd and keys). Nobody waiting
 * any more (its deadline passed meanwhile): the connection is closed. link is wiped. */
void rwait_give(struct rwait *t, const char *root, struct peer_link *link);

#endif
