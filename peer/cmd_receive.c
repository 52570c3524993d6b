#include <unistd.h>

#include "peer/commands.h"
#include "peer/frecv.h"
#include "peer/options.h"

int cmd_receive(const struct peer_opts *o, int argc, char **argv)
{
    struct peer_link link;
    int rc, dirfd;
    if (argc > 0)
        return opts_bad("receive takes no arguments (got \"%s\"; the directory is --dir DIR)",
                        argv[0]);
    if ((rc = opts_need_server(o)) != EXIT_DONE)
        return rc;
    if ((dirfd = frecv_open_dir(o->dir ? o->dir : ".")) < 0)
        return EXIT_LOCAL;
    /* like listen: one sender, then we are done */
    if ((rc = peer_rendezvous(o, NULL, &link)) == EXIT_DONE) {
        peer_report(o, &link);
        rc = frecv_run(o, &link, dirfd, o->force);
    }
    close(dirfd);
    return rc;
}
