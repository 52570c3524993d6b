/* The shared tail of the commands: move the bytes between the link and stdin/stdout. */
#ifndef TP_PIPE_H
#define TP_PIPE_H

#include <stdbool.h>

#include "peer/link.h"
#include "peer/opts.h"

struct resume_link_cfg;

/* Pipes stdin/stdout through the link with netcat semantics; returns an exit code. */
int peer_pipe(const struct peer_opts *o, struct peer_link *link);

/* The same between the link and in/out (one socket for both: a splice; its end is passed on
 * as shutdown(SHUT_WR)). Closes link->fd, not in or out. */
int peer_pipe_fds(const struct peer_opts *o, struct peer_link *link, int in, int out);

/* How a resumable session's path side finds the peer again (rpath_cfg.attempt and
 * attempt_arg; attempt NULL: peer_resume_link, the usual). */
struct pipe_path {
    int (*attempt)(const struct resume_link_cfg *r, struct peer_link *link, char *why,
                   size_t whylen);
    void *arg;
};

/* peer_pipe_fds with the path side's attempt given (pp NULL: the usual). */
int peer_pipe_fds_path(const struct peer_opts *o, struct peer_link *link, int in, int out,
                       const struct pipe_path *pp);

/* Runs a resumable session (link->encrypted && link->resume) between the link and one local
 * socket fd, for the bridge (peer/bridge.h): hook (may be NULL) is called on the session's
 * thread after each suspension (true) and resume (false) is logged; no closed event (the user
 * of the bridge sends it). stop_fd (-1: none) readable ends the session at once (rpump_cfg
 * has_stop). Closes link->fd, not fd, nor stop_fd. */
typedef void (*pipe_hook)(void *arg, bool suspended);
int peer_pipe_session(const struct peer_opts *o, struct peer_link *link, int fd, int stop_fd,
                      pipe_hook hook, void *arg);

#endif
