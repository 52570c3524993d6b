/* Shared tail of every command: report the link, then move the bytes. */
#include <stdio.h>
#include <unistd.h>

#include "common/endpoint.h"
#include "common/log.h"
#include "common/pump.h"
#include "common/sock.h"
#include "peer/peer.h"

void peer_report(const struct peer_opts *o, const struct peer_link *link)
{
    char ep[EP_STRLEN];
    (void)o;
    LOG_N("connected to %s: direct, %s (%s), %llu ms after punch, %u attempt%s", link->peer,
          ep_format((const struct sockaddr *)&link->remote, ep, sizeof ep), link->via,
          (unsigned long long)link->punch_ms, link->attempts, link->attempts == 1 ? "" : "s");
}

int peer_pipe(const struct peer_opts *o, struct peer_link *link)
{
    struct pump_stats st;
    char err[300];
    enum pump_status s;

    (void)o;
    sk_tune_stream(link->fd);
    s = pump_run(link->fd, STDIN_FILENO, STDOUT_FILENO, link->prefill, link->prefill_len, &st, err,
                 sizeof err);
    close(link->fd);
    link->fd = -1;
    LOG_I("closed: sent %llu bytes, received %llu bytes", (unsigned long long)st.sent,
          (unsigned long long)st.received);
    switch (s) {
    case PUMP_DONE:
        return EXIT_DONE;
    case PUMP_NET_LOST:
        LOG_E("%s (%s)", err, link->peer);
        return EXIT_LOST;
    default:
        LOG_E("%s", err);
        return EXIT_LOCAL;
    }
}
