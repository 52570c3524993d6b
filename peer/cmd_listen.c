#include "peer/commands.h"
#include "peer/options.h"
#include "peer/splice.h"
#include "peer/control.h"
#include "peer/pipe.h"
#include "peer/events.h"
#include "peer/whcmd.h"

int cmd_listen(const struct peer_opts *o, int argc, char **argv)
{
    struct peer_link link;
    int rc;
    const char *misfit = whcmd_opts_misfit(o, o->code ? WHCMD_MAKE : WHCMD_NONE);
    if (argc > 0)
        return opts_bad("listen takes no arguments (got \"%s\")", argv[0]);
    if (misfit)
        return opts_bad("%s", misfit);
    if (o->code && o->forward)
        return opts_bad("%s", "--code and --forward exclude each other: a code is for one "
                              "connection");
    if (o->forward && !o->nallow && !o->allow_anyone)
        /* a forwarded service is reachable by whoever knows (or guesses) our id: say who */
        return opts_bad("%s", "listen --forward serves whoever connects to our id: name the "
                              "peers with --allow ID[=KEY] (repeatable), or give --allow-anyone");
    if (o->nallow && o->allow_anyone)
        return opts_bad("%s", "--allow and --allow-anyone exclude each other");
    if (!o->forward && (o->nallow || o->allow_anyone))
        return opts_bad("%s", o->nallow ? "--allow needs --forward HOST:PORT"
                                        : "--allow-anyone needs --forward HOST:PORT");
    if ((rc = opts_need_server(o)) != EXIT_DONE)
        return rc;
    if (o->forward)
        return spl_forward(o);
    rc = o->code ? peer_code_make(o, true, &link) : peer_rendezvous(o, NULL, &link);
    if (rc != EXIT_DONE)
        return rc;
    peer_report(o, &link);
    return peer_pipe(o, &link);
}
