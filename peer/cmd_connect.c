#include "peer/commands.h"
#include "peer/options.h"
#include "peer/splice.h"
#include "peer/control.h"
#include "peer/pipe.h"
#include "peer/events.h"

int cmd_connect(const struct peer_opts *o, int argc, char **argv)
{
    struct peer_link link;
    int rc;
    if (argc != 1)
        return opts_bad("%s", argc ? "connect takes one PEER" : "connect needs a PEER id");
    if ((rc = opts_need_server(o)) != EXIT_DONE || (rc = opts_check_peer(o, argv[0])) != EXIT_DONE)
        return rc;
    if (o->local)
        return spl_local(o, argv[0]);
    /* auxiliary: many connects (several ssh sessions) may run at once under one id */
    if ((rc = peer_rendezvous_aux(o, argv[0], &link)) != EXIT_DONE)
        return rc;
    peer_report(o, &link);
    return peer_pipe(o, &link);
}
