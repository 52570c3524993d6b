/* The session bridge (docs/design/resume.md 4.7, "As built"): lets the turn-taking users of the
 * stream (chan.c for send/receive, chat.c) run over a resumable session without knowing about
 * it. bridge_start puts a local socketpair between the user and the session: the session's data
 * plane (pipe.c: rpump in splice mode, rpath on its own thread) runs on a thread of ours on one
 * end, and the user gets the other end as link->fd, a PLAIN stream (no seal: rstream seals the
 * records, and an orderly end of the plain stream is the session's FIN). */
#ifndef TP_BRIDGE_H
#define TP_BRIDGE_H

#include <stdbool.h>
#include <stdint.h>

#include "peer/link.h"
#include "peer/opts.h"
#include "peer/pipe.h"

struct bridge;

/* How the session thread runs the session: peer_pipe_session (a test may pass its own). */
typedef int (*bridge_run)(const struct peer_opts *o, struct peer_link *link, int fd,
                          int stop_fd, pipe_hook hook, void *arg);

/* When link->encrypted && link->resume: takes the link (its socket, keys, prefill) for the
 * session thread, which runs run, and puts the local end in link->fd with link->bridge set;
 * chat_lines: print `-- connection lost, resuming --` / `-- resumed --` on stderr. Otherwise
 * does nothing.
 * Returns 0, or -1 (logged; link->fd, when not -1, is still the caller's to close). */
int bridge_start(const struct peer_opts *o, struct peer_link *link, bool chat_lines,
                 bridge_run run);

/* True while the session is suspended, or when it resumed after since_ms (clk_ms): a stall
 * the user saw in that time is the path's, which the resume timeout bounds, not the peer's. */
bool bridge_paused(const struct bridge *b, uint64_t since_ms);

/* The session ended (the thread returned) and not in an orderly way: the end of the plain
 * stream the user saw is a lost session, not the peer's end. */
bool bridge_failed(const struct bridge *b);

/* Closes the user's end, waits for the session to end (it delivers what is left) and frees it.
 * Returns the exit status of the whole: the session's when it was not resumed (11) or failed
 * before this call (a signal: 6, the peer's ABORT: 5), else the user's rc when it failed, else
 * the session's. Without a bridge returns rc. */
int bridge_end(struct peer_link *link, int rc);

#endif
