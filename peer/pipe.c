/* Shared tail of every command: move the bytes (peer_report, in events.c, tells how the link
 * was made). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/pump.h"
#include "common/sock.h"
#include "peer/events.h"
#include "peer/exit.h"
#include "peer/pipe.h"
#include "peer/rpath.h"
#include "peer/rpump.h"

int peer_pipe(const struct peer_opts *o, struct peer_link *link)
{
    return peer_pipe_fds(o, link, STDIN_FILENO, STDOUT_FILENO);
}

struct pipe_ctx {
    const struct peer_opts *o;
    const struct peer_link *link;
    pipe_hook hook; /* the bridge's (may be NULL) */
    void *hook_arg;
    int stop_fd; /* the bridge's (-1: none) */
};

/* The data plane's events (on its thread): the lines a user reads, and --json events. */
static void pipe_event(void *arg, const struct rpump_event *e)
{
    const struct pipe_ctx *pc = arg;
    if (e->kind == RPUMP_SUSPENDED) {
        /* rstream says "connection lost (DETAIL)": the line names the peer, so DETAIL alone */
        const char *why = e->why ? e->why : "?";
        size_t n = strlen(why), pre = strlen("connection lost (");
        int len = (int)n;
        if (n > pre + 1 && strncmp(why, "connection lost (", pre) == 0 && why[n - 1] == ')') {
            why += pre;
            len = (int)(n - pre - 1);
        }
        LOG_N("connection to %s lost (%.*s); resuming for up to %llu s", pc->link->peer, len, why,
              (unsigned long long)(pc->link->resume_ms / 1000));
        ev_suspended(pc->o, pc->link->peer, e->why, e->tx, e->rx);
        if (pc->hook)
            pc->hook(pc->hook_arg, true);
        return;
    }
    if (e->kind == RPUMP_UPGRADED) {
        ev_upgraded(pc->o, pc->link->peer, e);
        return; /* not a resume: the stream never paused */
    }
    ev_resumed(pc->o, pc->link->peer, e);
    if (pc->hook)
        pc->hook(pc->hook_arg, false);
}

static int pipe_status(enum rpump_status s)
{
    switch (s) {
    case RPUMP_DONE:
        return EXIT_DONE;
    case RPUMP_ABORTED:
        return EXIT_LOST;
    case RPUMP_FAILED:
        return EXIT_NOT_RESUMED;
    case RPUMP_SIGNAL:
    case RPUMP_LOCAL:
    default:
        return EXIT_LOCAL;
    }
}

/* A session whose shakes both carried shake.resume (PROTOCOL.md section 18): the data plane
 * (rpump) on this thread, the path side (rpath) on its own, meeting at the mailbox. */
static int pipe_resumable(const struct peer_opts *o, struct peer_link *link, int in, int out,
                          const struct pipe_path *pp, struct pipe_ctx *pc)
{
    struct rpath_cfg pcfg;
    struct rpump_cfg rcfg;
    struct rpump_stats st = {0};
    struct mb_conn first;
    struct rpath *rp;
    char err[300] = "";
    enum rpump_status s;
    int rc;

    memset(&pcfg, 0, sizeof pcfg);
    pcfg.o = o;
    pcfg.role = link->role;
    snprintf(pcfg.root, sizeof pcfg.root, "%s", link->root);
    snprintf(pcfg.peer, sizeof pcfg.peer, "%s", link->peer);
    memcpy(pcfg.peer_key, link->peer_pk, sizeof pcfg.peer_key);
    memcpy(pcfg.rs, link->rs, sizeof pcfg.rs);
    snprintf(pcfg.server, sizeof pcfg.server, "%s", link->server);
    pcfg.timeout_ms = link->resume_ms;
    if (pp) {
        pcfg.attempt = pp->attempt;
        pcfg.attempt_arg = pp->arg;
    }
    /* relay first applied and the relay won epoch 0: move to direct when it comes */
    pcfg.upgrade = link->relayed && link->upgrade_wanted;
    sodium_memzero(link->rs, sizeof link->rs);

    memset(&first, 0, sizeof first);
    first.fd = link->fd;
    memcpy(first.tx, link->tx_key, sizeof first.tx);
    memcpy(first.rx, link->rx_key, sizeof first.rx);
    sodium_memzero(link->tx_key, sizeof link->tx_key);
    sodium_memzero(link->rx_key, sizeof link->rx_key);
    first.relayed = link->relayed;
    first.remote = link->relayed ? link->relay_server : link->remote;
    first.prefill_len = link->prefill_len <= sizeof first.prefill ? link->prefill_len : 0;
    memcpy(first.prefill, link->prefill, first.prefill_len);
    link->fd = -1;

    memset(&rcfg, 0, sizeof rcfg);
    rcfg.ring = o->resume_buffer ? o->resume_buffer : PEER_DEFAULT_RESUME_BUFFER;
    rs_params_default(&rcfg.params);
    rcfg.params.resume_ms = (uint32_t)link->resume_ms;
    /* an ACK at least every eighth of the peer's ring, or a small ring stalls on delayed ACKs */
    if (link->peer_buf / 8 && link->peer_buf / 8 < rcfg.params.ack_step)
        rcfg.params.ack_step = link->peer_buf / 8;
    rcfg.event = pipe_event;
    rcfg.arg = pc;
    rcfg.splice = in == out;
    rcfg.has_stop = pc->stop_fd >= 0;
    rcfg.stop_fd = pc->stop_fd;

    rp = rpath_start(&pcfg);
    sodium_memzero(pcfg.rs, sizeof pcfg.rs);
    if (!rp) {
        LOG_E("cannot start the session's path side: %s", strerror(errno));
        close(first.fd);
        sodium_memzero(&first, sizeof first);
        if (!pc->hook)
            ev_closed(o, link->peer, 0, 0, EXIT_LOCAL);
        return EXIT_LOCAL;
    }
    s = rpump_run(&rcfg, rpath_mbox(rp), in, out, &first, &st, err, sizeof err);
    rpath_stop(rp);
    sodium_memzero(&first, sizeof first);
    rc = pipe_status(s);
    LOG_I("closed: sent %llu bytes, received %llu bytes, %u resume%s, %u upgrade%s, %llu bytes "
          "resent",
          (unsigned long long)st.sent, (unsigned long long)st.received, st.resumes,
          st.resumes == 1 ? "" : "s", st.upgrades, st.upgrades == 1 ? "" : "s",
          (unsigned long long)st.resent);
    if (st.first_rx_us)
        LOG_I("first byte received at %llu.%06llu (wall clock)",
              (unsigned long long)(st.first_rx_us / 1000000u),
              (unsigned long long)(st.first_rx_us % 1000000u));
    if (rc != EXIT_DONE)
        LOG_E("%s", err[0] ? err : "the session failed");
    /* over the bridge, the user of the stream (files, chat) tells how it ended */
    if (!pc->hook)
        ev_closed(o, link->peer, st.sent, st.received, rc);
    return rc;
}

int peer_pipe_session(const struct peer_opts *o, struct peer_link *link, int fd, int stop_fd,
                      pipe_hook hook, void *arg)
{
    struct pipe_ctx pc = {o, link, hook, arg, stop_fd};
    sk_tune_stream(link->fd);
    return pipe_resumable(o, link, fd, fd, NULL, &pc);
}

int peer_pipe_fds(const struct peer_opts *o, struct peer_link *link, int in, int out)
{
    return peer_pipe_fds_path(o, link, in, out, NULL);
}

int peer_pipe_fds_path(const struct peer_opts *o, struct peer_link *link, int in, int out,
                       const struct pipe_path *pp)
{
    struct pump_stats st;
    char err[300];
    enum pump_status s;
    int rc;

    sk_tune_stream(link->fd);
    if (link->encrypted && link->resume) {
        struct pipe_ctx pc = {o, link, NULL, NULL, -1};
        return pipe_resumable(o, link, in, out, pp, &pc);
    }
    if (link->encrypted)
        s = pump_run_sealed(link->fd, in, out, link->prefill, link->prefill_len, link->tx_key,
                            link->rx_key, &st, err, sizeof err);
    else
        s = pump_run(link->fd, in, out, link->prefill, link->prefill_len, &st, err, sizeof err);
    sodium_memzero(link->tx_key, sizeof link->tx_key);
    sodium_memzero(link->rx_key, sizeof link->rx_key);
    close(link->fd);
    link->fd = -1;
    LOG_I("closed: sent %llu bytes, received %llu bytes", (unsigned long long)st.sent,
          (unsigned long long)st.received);
    if (st.first_rx_us)
        LOG_I("first byte received at %llu.%06llu (wall clock)",
              (unsigned long long)(st.first_rx_us / 1000000u),
              (unsigned long long)(st.first_rx_us % 1000000u));
    switch (s) {
    case PUMP_DONE:
        rc = EXIT_DONE;
        break;
    case PUMP_NET_LOST:
        LOG_E("%s (%s)", err, link->peer);
        rc = EXIT_LOST;
        break;
    default:
        LOG_E("%s", err);
        rc = EXIT_LOCAL;
        break;
    }
    ev_closed(o, link->peer, st.sent, st.received, rc);
    return rc;
}
