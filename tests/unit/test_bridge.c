/* peer/bridge: the session thread's end of files and chat over a resumable session. What is
 * tested here is the bridge's own bound: once the user let go (bridge_end), a session whose peer
 * never ends its direction is stopped after BRIDGE_LINGER_MS instead of holding the program for
 * ever (found by review: the join had no bound); one that ends by itself is waited for and its
 * status kept. The session is a stub (bridge_run) so that only the bridge is under test. */
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/clock.h"
#include "peer/bridge.h"
#include "peer/exit.h"

static int stub_saw_stop;

/* a peer that never ends: the session runs until told to stop */
static int run_forever(const struct peer_opts *o, struct peer_link *link, int fd, int stop_fd,
                       pipe_hook hook, void *arg)
{
    (void)o, (void)fd, (void)hook, (void)arg;
    struct pollfd p = {.fd = stop_fd, .events = POLLIN};
    int n = poll(&p, 1, 30000);
    stub_saw_stop = n == 1;
    close(link->fd);
    return n == 1 ? EXIT_LOCAL : EXIT_DONE;
}

/* a session that ends by itself soon after the user's end (the peer's FIN came) */
static int run_ends(const struct peer_opts *o, struct peer_link *link, int fd, int stop_fd,
                    pipe_hook hook, void *arg)
{
    (void)o, (void)fd, (void)stop_fd, (void)hook, (void)arg;
    usleep(200 * 1000);
    close(link->fd);
    return EXIT_DONE;
}

static void fake_link(struct peer_link *l, int sv[2])
{
    memset(l, 0, sizeof *l);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    l->fd = sv[0];
    l->encrypted = l->resume = true;
    snprintf(l->peer, sizeof l->peer, "bob");
}

static void t_stops_a_peer_that_never_ends(void)
{
    struct peer_opts o;
    struct peer_link l;
    int sv[2];
    memset(&o, 0, sizeof o);
    fake_link(&l, sv);
    CHECK_INT(bridge_start(&o, &l, false, run_forever), 0);
    CHECK(l.bridge != NULL);
    uint64_t t0 = clk_ms();
    int rc = bridge_end(&l, EXIT_DONE);
    uint64_t ms = clk_ms() - t0;
    CHECK_INT(rc, EXIT_DONE); /* our side was complete: the user's status */
    CHECK(stub_saw_stop);
    CHECK_MSG(ms >= 9000 && ms < 15000, "bridge_end took %llu ms", (unsigned long long)ms);
    close(sv[1]);
}

static void t_waits_for_a_session_that_ends(void)
{
    struct peer_opts o;
    struct peer_link l;
    int sv[2];
    memset(&o, 0, sizeof o);
    fake_link(&l, sv);
    CHECK_INT(bridge_start(&o, &l, false, run_ends), 0);
    uint64_t t0 = clk_ms();
    CHECK_INT(bridge_end(&l, EXIT_DONE), EXIT_DONE);
    CHECK_MSG(clk_ms() - t0 < 3000, "bridge_end took %llu ms", (unsigned long long)(clk_ms() - t0));
    close(sv[1]);
}

CHECK_MAIN(TEST(t_waits_for_a_session_that_ends), TEST(t_stops_a_peer_that_never_ends))
