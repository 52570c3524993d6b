#ifndef TP_CHAT_H
#define TP_CHAT_H

#include "peer/link.h"
#include "peer/opts.h"

/* Line chat over the link: our stdin lines go out, the peer's lines are printed as
 * "PEER: text" on stdout. Ends on /quit, stdin EOF or the peer leaving; returns an exit code. */
int chat_run(const struct peer_opts *o, struct peer_link *link);

#endif
