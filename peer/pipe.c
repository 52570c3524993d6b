/* Shared tail of every command: move the bytes (peer_report, in events.c, tells how the link
 * was made). */
#include <stdio.h>
#include <unistd.h>

#include "common/log.h"
#include "common/pump.h"
#include "common/sock.h"
#include "peer/events.h"
#include "peer/exit.h"
#include "peer/pipe.h"

int peer_pipe(const struct peer_opts *o, struct peer_link *link)
{
    return peer_pipe_fds(o, link, STDIN_FILENO, STDOUT_FILENO);
}

int peer_pipe_fds(const struct peer_opts *o, struct peer_link *link, int in, int out)
{
    struct pump_stats st;
    char err[300];
    enum pump_status s;
    int rc;

    sk_tune_stream(link->fd);
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
