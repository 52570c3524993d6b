/* The shared tail of the commands: move the bytes between the link and stdin/stdout. */
#ifndef TP_PIPE_H
#define TP_PIPE_H

#include "peer/link.h"
#include "peer/opts.h"

/* Pipes stdin/stdout through the link with netcat semantics; returns an exit code. */
int peer_pipe(const struct peer_opts *o, struct peer_link *link);

/* The same between the link and in/out (one socket for both: a splice; its end is passed on
 * as shutdown(SHUT_WR)). Closes link->fd, not in or out. */
int peer_pipe_fds(const struct peer_opts *o, struct peer_link *link, int in, int out);

#endif
