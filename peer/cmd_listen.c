#include "peer/commands.h"
#include "peer/options.h"
#include "peer/splice.h"

int cmd_listen(const struct peer_opts *o, int argc, char **argv)
{
    struct peer_link link;
    int rc;
    if (argc > 0)
        return opts_bad("listen takes no arguments (got \"%s\")", argv[0]);
    if ((rc = opts_need_server(o)) != EXIT_DONE)
        return rc;
    if (o->forward)
        return spl_forward(o);
    if (o->nallow)
        return opts_bad("%s", "--allow needs --forward HOST:PORT");
    if ((rc = peer_rendezvous(o, NULL, &link)) != EXIT_DONE)
        return rc;
    peer_report(o, &link);
    return peer_pipe(o, &link);
}
