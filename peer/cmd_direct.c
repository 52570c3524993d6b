/* The original technique, without a server: both sides know each other's public endpoint and
 * keep connecting from an agreed local port until the SYNs meet. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "common/endpoint.h"
#include "common/log.h"
#include "peer/commands.h"
#include "peer/dshake.h"
#include "peer/options.h"
#include "peer/punch.h"
#include "peer/pipe.h"
#include "peer/events.h"

struct direct_state {
    int status;
};

static void direct_done(struct punch *p, int status, const char *why, void *arg)
{
    struct direct_state *d = arg;
    (void)p;
    d->status = status;
    if (status != EXIT_DONE)
        LOG_E("no connection: %s", why);
}

int cmd_direct(const struct peer_opts *o, int argc, char **argv)
{
    struct punch_cfg cfg;
    struct peer_link link;
    struct direct_state d = {EXIT_PUNCH};
    char err[300];
    uv_loop_t loop;

    if (argc != 1)
        return opts_bad("%s", "direct needs one HOST:PORT (and --port LOCAL)");
    if (o->port == 0)
        return opts_bad("%s", "direct needs --port LOCAL: the port the other side aims at");
    memset(&cfg, 0, sizeof cfg);
    memset(&link, 0, sizeof link);
    link.fd = -1;
    if (ep_resolve(argv[0], false, &cfg.cand[0].addr, err, sizeof err) < 0)
        return opts_bad("%s", err);
    cfg.cand[0].kind = "given";
    cfg.ncand = 1;
    cfg.local.ss_family = cfg.cand[0].addr.ss_family;
    ep_set_port((struct sockaddr *)&cfg.local, o->port);
    cfg.timeout_ms = o->timeout_ms;
    snprintf(link.peer, sizeof link.peer, "%s", argv[0]);

    uv_loop_init(&loop);
    if (!punch_start(&loop, &cfg, &link, direct_done, &d, err, sizeof err)) {
        LOG_E("%s", err);
        uv_loop_close(&loop);
        return EXIT_LOCAL;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    /* known_peers knows a direct peer by HOST:PORT as given on the command line */
    if (d.status == EXIT_DONE && !o->plain)
        d.status = dsh_run(o, &link, argv[0]);
    if (d.status != EXIT_DONE) {
        if (link.fd >= 0)
            close(link.fd);
        return d.status;
    }
    peer_report(o, &link);
    return peer_pipe(o, &link);
}
