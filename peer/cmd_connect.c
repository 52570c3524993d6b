#include "peer/commands.h"
#include "peer/options.h"
#include "peer/splice.h"
#include "peer/control.h"
#include "peer/pipe.h"
#include "peer/events.h"
#include "peer/whcmd.h"

/* connect --code CODE: a typo is a usage error before anything touches the network */
static int con_code(const struct peer_opts *o, int argc, char **argv)
{
    struct wcode code;
    struct peer_link link;
    char err[300];
    const char *misfit = whcmd_opts_misfit(o, WHCMD_CLAIM);
    int rc;
    if (misfit)
        return opts_bad("%s", misfit);
    if (argc < 1)
        return opts_bad("%s", "connect --code needs the CODE the other side's listen --code "
                              "printed");
    if (o->local)
        return opts_bad("%s", "--code and --local exclude each other: a code is for one "
                              "connection");
    if (whcmd_code_arg(argc, argv, &code, err, sizeof err) < 0)
        return opts_bad("%s", err);
    if ((rc = opts_need_server(o)) == EXIT_DONE)
        rc = peer_code_claim(o, true, &code, &link);
    wcode_wipe(&code);
    if (rc != EXIT_DONE)
        return rc;
    peer_report(o, &link);
    return peer_pipe(o, &link);
}

int cmd_connect(const struct peer_opts *o, int argc, char **argv)
{
    struct peer_link link;
    const char *misfit = whcmd_opts_misfit(o, WHCMD_NONE);
    int rc;
    if (o->code)
        return con_code(o, argc, argv);
    if (misfit)
        return opts_bad("%s", misfit);
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
