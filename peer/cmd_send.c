#include <unistd.h>

#include "peer/bridge.h"
#include "peer/commands.h"
#include "peer/fsend.h"
#include "peer/options.h"
#include "peer/control.h"
#include "peer/events.h"

int cmd_send(const struct peer_opts *o, int argc, char **argv)
{
    struct fsend_list files;
    struct peer_link link;
    int rc;
    if (argc < 2)
        return opts_bad("%s", argc ? "send needs at least one FILE after the PEER"
                                   : "send needs a PEER and at least one FILE");
    if ((rc = opts_need_server(o)) != EXIT_DONE || (rc = opts_check_peer(o, argv[0])) != EXIT_DONE)
        return rc;
    /* every file is checked before the peer is bothered */
    if ((rc = fsend_collect(&files, argc - 1, argv + 1)) != EXIT_DONE)
        goto out;
    if ((rc = peer_rendezvous(o, argv[0], &link)) != EXIT_DONE)
        goto out;
    peer_report(o, &link);
    /* a resumable session: the file protocol runs over the bridge's plain stream */
    if (bridge_start(o, &link, false, peer_pipe_session) < 0) {
        if (link.fd >= 0)
            close(link.fd);
        rc = EXIT_LOCAL;
        goto out;
    }
    rc = fsend_run(o, &link, &files);
out:
    fsend_free(&files);
    return rc;
}
