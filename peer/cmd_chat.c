#include "peer/chat.h"
#include "peer/commands.h"
#include "peer/options.h"
#include "peer/control.h"
#include "peer/events.h"

int cmd_chat(const struct peer_opts *o, int argc, char **argv)
{
    struct peer_link link;
    int rc;
    if (argc > 1)
        return opts_bad("chat takes at most one PEER (got \"%s\")", argv[1]);
    if ((rc = opts_need_server(o)) != EXIT_DONE)
        return rc;
    if (argc == 1 && (rc = opts_check_peer(o, argv[0])) != EXIT_DONE)
        return rc;
    if ((rc = peer_rendezvous(o, argc ? argv[0] : NULL, &link)) != EXIT_DONE)
        return rc;
    peer_report(o, &link);
    return chat_run(o, &link);
}
