/* Events for scripts (--json): one JSON object per line on stderr, documented in README.
 * Every function but ev_error does nothing without --json or with -q;
 * the human log lines are written where the events happen (peer_report writes the path line). */
#ifndef TP_EVENTS_H
#define TP_EVENTS_H

#include <stdint.h>

#include "peer/link.h"
#include "peer/opts.h"
#include "peer/punch.h"

/* {"event":"registered","id":..,"server":..,"observed":..}; server: the one of --server used */
void ev_registered(const struct peer_opts *o, const char *server, const struct proto_msg *welcome);

/* {"event":"punching","peer":..,"session":..,"role":..,"candidates":[..],"direct":..,"relay":..} */
void ev_punching(const struct peer_opts *o, const struct proto_msg *punch,
                 const struct punch_cfg *cfg);

/* {"event":"closed","peer":..,"sent":N,"received":N,"status":N} */
void ev_closed(const struct peer_opts *o, const char *peer, uint64_t sent, uint64_t received,
               int status);

/* {"event":"suspended","peer":..,"why":..,"tx":N,"rx":N}: a resumable session lost its
 * connection (tx: our bytes the peer acknowledged, rx: the peer's bytes we hold) */
void ev_suspended(const struct peer_opts *o, const char *peer, const char *why, uint64_t tx,
                  uint64_t rx);

/* The `resumed` line (unless -q) or {"event":"resumed","peer":..,"ms":N,"via":"direct"|"relay",
 * "remote":..,"epoch":N,"resent":N} */
struct rpump_event;
void ev_resumed(const struct peer_opts *o, const char *peer, const struct rpump_event *e);
/* relay first, then direct: the live session moved to a direct connection after e->ms (from
 * the session's start); the line "PEER: relay, upgraded to direct after N ms (EP, VIA)", or
 * the event `upgraded` {peer, ms, remote, via} */
void ev_upgraded(const struct peer_opts *o, const char *peer, const struct rpump_event *e);

/* The code a maker made (README, "Codes"): "Code: 7-guitar-ribbon" alone on its line and
 * the hint (hint is the other side's command, "tcpunch receive"), or with --json the event
 * {"event":"code","code":..,"ttl":S,"command":..,"message":"Code: .."}. Shown even with -q: it
 * is the run's point. */
void ev_code(const struct peer_opts *o, const char *code, unsigned ttl_s, const char *hint);

/* {"event":"error","code":..,"message":..,"exit":N}: the program's last line when it fails.
 * message NULL: a generic one for the exit status. */
void ev_error(int status, const char *message);

/* The short code of an error exit status ("server", "punch-failed", ...). */
const char *ev_exit_code(int status);

/* Reports how the link was made: the path line (unless -q), or the `connected` event. */
void peer_report(const struct peer_opts *o, const struct peer_link *link);

#endif
