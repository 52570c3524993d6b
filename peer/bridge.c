#include "peer/bridge.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "peer/exit.h"

/* how long the peer may take to end its direction after ours ended (PUMP_LINGER_MS's value) */
#define BRIDGE_LINGER_MS 10000u

struct bridge {
    const struct peer_opts *o;
    struct peer_link link; /* the session thread's copy: the user's link->fd is the local end */
    int fd;                /* the session's end of the socketpair */
    int stop[2];           /* bridge_end writes stop[1]: the session thread's rpump ends */
    pthread_t thread;
    bridge_run run;
    bool chat_lines;
    atomic_bool suspended;
    atomic_uint_fast64_t resumed_ms; /* clk_ms of the newest resume (0: none yet) */
    atomic_bool ended;
    atomic_int rc; /* the session's exit status, once ended */
};

/* On the session thread: remember the state for bridge_paused, and tell a chat's user. */
static void bridge_hook(void *arg, bool suspended)
{
    struct bridge *b = arg;
    if (!suspended)
        atomic_store(&b->resumed_ms, clk_ms());
    atomic_store(&b->suspended, suspended);
    if (b->chat_lines)
        fputs(suspended ? "\r-- connection lost, resuming --\n" : "\r-- resumed --\n", stderr);
}

static void *bridge_main(void *arg)
{
    struct bridge *b = arg;
    int rc = b->run(b->o, &b->link, b->fd, b->stop[0], bridge_hook, b);
    atomic_store(&b->rc, rc);
    /* ended before the close: a user that sees its stream end can then tell a lost session
     * from the peer's orderly end */
    atomic_store(&b->ended, true);
    atomic_store(&b->suspended, false);
    shutdown(b->fd, SHUT_RDWR);
    return NULL;
}

/* Moves the link's session state into b and wipes it from the user's copy. */
static void bridge_take(struct bridge *b, struct peer_link *link, int fd)
{
    memcpy(&b->link, link, sizeof b->link);
    sodium_memzero(link->tx_key, sizeof link->tx_key);
    sodium_memzero(link->rx_key, sizeof link->rx_key);
    sodium_memzero(link->rs, sizeof link->rs);
    link->prefill_len = 0;
    link->fd = fd;
    link->bridge = b;
}

int bridge_start(const struct peer_opts *o, struct peer_link *link, bool chat_lines,
                 bridge_run run)
{
    struct bridge *b;
    int sv[2] = {-1, -1}, e;
    if (!link->encrypted || !link->resume)
        return 0;
    b = calloc(1, sizeof *b);
    if (b)
        b->stop[0] = b->stop[1] = -1;
    if (!b || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
        pipe2(b->stop, O_CLOEXEC) < 0) {
        LOG_E("cannot start the session bridge: %s", strerror(errno));
        goto fail;
    }
    b->o = o;
    b->run = run;
    b->fd = sv[1];
    b->chat_lines = chat_lines && !o->json;
    bridge_take(b, link, sv[0]);
    if ((e = pthread_create(&b->thread, NULL, bridge_main, b)) != 0) {
        /* give the link back as it was: the caller closes it */
        LOG_E("cannot start the session bridge: %s", strerror(e));
        close(b->link.fd);
        close(sv[0]);
        sv[0] = -1;
        link->fd = -1;
        link->bridge = NULL;
        goto fail;
    }
    return 0;
fail:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    if (b) {
        if (b->stop[0] >= 0)
            close(b->stop[0]);
        if (b->stop[1] >= 0)
            close(b->stop[1]);
        sodium_memzero(&b->link, sizeof b->link);
    }
    free(b);
    return -1;
}

bool bridge_paused(const struct bridge *b, uint64_t since_ms)
{
    return b && (atomic_load(&b->suspended) || atomic_load(&b->resumed_ms) > since_ms);
}

bool bridge_failed(const struct bridge *b)
{
    return b && atomic_load(&b->ended) && atomic_load(&b->rc) != EXIT_DONE;
}

/* After the user let go: the session delivers what is left and ends once the peer ends its
 * direction too. A peer that never does (heartbeats keep the connection alive) would hold us for
 * ever, so it gets BRIDGE_LINGER_MS, counted again after each resume and not while suspended (the
 * resume timeout bounds that); then the session is stopped. True when it had to be. */
static bool bridge_wait(struct bridge *b)
{
    uint64_t start = clk_ms();
    while (!atomic_load(&b->ended)) {
        uint64_t since = atomic_load(&b->resumed_ms);
        if (since < start)
            since = start;
        if (!atomic_load(&b->suspended) && clk_ms() - since >= BRIDGE_LINGER_MS) {
            LOG_W("%s did not end the session within %u s of ours; ending it", b->link.peer,
                  (unsigned)(BRIDGE_LINGER_MS / 1000));
            if (write(b->stop[1], "x", 1) < 0)
                LOG_W("cannot stop the session: %s", strerror(errno));
            return true;
        }
        usleep(20 * 1000);
    }
    return false;
}

int bridge_end(struct peer_link *link, int rc)
{
    struct bridge *b = link->bridge;
    bool early, stopped;
    int brc;
    if (!b)
        return rc;
    /* a session that failed before we let go of it is why the user failed (a signal, an
     * ABORT from the peer): its status is the truth, not the user's view of it */
    early = bridge_failed(b);
    /* our end closed is the session's FIN (or, with bytes it did not read, its ABORT) */
    if (link->fd >= 0)
        close(link->fd);
    link->fd = -1;
    stopped = bridge_wait(b);
    pthread_join(b->thread, NULL);
    brc = atomic_load(&b->rc);
    close(b->fd);
    close(b->stop[0]);
    close(b->stop[1]);
    sodium_memzero(&b->link, sizeof b->link);
    free(b);
    link->bridge = NULL;
    if (stopped) /* our side is complete; only the peer's end never came */
        return rc;
    if (brc == EXIT_NOT_RESUMED || early)
        return brc;
    return rc != EXIT_DONE ? rc : brc;
}
