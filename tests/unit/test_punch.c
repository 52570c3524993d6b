/* The punch engine's memory on its direct attempts (Phase 8 re-audit, tests/adversarial/AUDIT.md):
 * since common/linebuf allocates a line's buffer only once a read ends inside a line, every
 * connection that may hold a started line must give that buffer back when it closes. A direct
 * attempt is such a connection: whoever answers at a candidate endpoint (the peer, or anyone
 * the server named) can send a piece of a line and close, and the attempt dials again.
 *
 * The test plays that answerer on loopback: ROUNDS punches, each of whose attempt reads a
 * started line and then the answerer's EOF. What the engine leaves allocated must not grow by
 * a line buffer per round (mallinfo2 in a plain build; a sanitizer build's leak check reports
 * the same buffers at exit). */
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "check.h"
#include "common/clock.h"
#include "common/linebuf.h"
#include "common/log.h"
#include "peer/exit.h"
#include "peer/link.h"
#include "peer/punch.h"
#include "peer/shake.h"

#define ROUNDS 24

struct run {
    bool done;
    int status;
};

static void on_done(struct punch *p, int status, const char *why, void *arg)
{
    struct run *r = arg;
    (void)p;
    (void)why;
    r->done = true;
    r->status = status;
}

/* Runs the loop (without blocking) until fd is readable or ms have passed. */
static bool turn_until(uv_loop_t *loop, int fd, short events, int ms)
{
    uint64_t end = clk_ms() + (uint64_t)ms;
    while (clk_ms() < end) {
        struct pollfd pf = {.fd = fd, .events = events};
        uv_run(loop, UV_RUN_NOWAIT);
        if (poll(&pf, 1, 5) > 0)
            return true;
    }
    return false;
}

static void turn_for(uv_loop_t *loop, int ms)
{
    uint64_t end = clk_ms() + (uint64_t)ms;
    while (clk_ms() < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
}

/* One punch whose only candidate is our listener: its attempt gets a started line, then EOF. */
static void one_round(uv_loop_t *loop, int lfd, const struct sockaddr_in *at)
{
    static struct shake_ctx ctx; /* only its role is read before a whole line arrives */
    struct punch_cfg cfg;
    struct peer_link link;
    struct run r = {0};
    struct punch *p;
    char err[200];
    int fd;

    memset(&ctx, 0, sizeof ctx);
    ctx.role = PROTO_INITIATOR; /* sends nothing first: the attempt just reads */
    memset(&cfg, 0, sizeof cfg);
    memset(&link, 0, sizeof link);
    link.fd = -1;
    cfg.local.ss_family = AF_INET; /* 0.0.0.0:0: an ephemeral port per dial */
    cfg.ncand = 1;
    memcpy(&cfg.cand[0].addr, at, sizeof *at);
    cfg.cand[0].kind = "public";
    cfg.loopback_ok = true;
    cfg.shared_listener = true; /* no listener of its own */
    cfg.timeout_ms = 60000;     /* the test ends the punch itself */
    cfg.shake = &ctx;
    p = punch_start(loop, &cfg, &link, on_done, &r, err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    CHECK(turn_until(loop, lfd, POLLIN, 2000));
    fd = accept(lfd, NULL, NULL);
    CHECK(fd >= 0);
    if (fd >= 0) {
        /* a line started and never finished: the framer copies it into its buffer */
        CHECK_INT(send(fd, "{\"type\":\"shake\"", 15, MSG_NOSIGNAL), 15);
        turn_for(loop, 30);
        close(fd); /* EOF: the attempt closes and (later) dials again */
    }
    turn_for(loop, 30);
    if (!r.done)
        punch_abort(p, EXIT_PUNCH, "the test ends it");
    CHECK(r.done);
    uv_run(loop, UV_RUN_DEFAULT); /* the engine's handles close, it frees itself */
    /* a redial may have reached the listener meanwhile: reset it */
    while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0)
        close(fd);
}

static void t_attempt_line_freed(void)
{
    uv_loop_t loop;
    struct sockaddr_in at = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof at;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    size_t before, after;

    CHECK(sodium_init() >= 0);
    log_init("test_punch", LOG_SILENT, 0); /* quiet: the engine logs every attempt */
    CHECK(lfd >= 0);
    CHECK_INT(bind(lfd, (struct sockaddr *)&at, sizeof at), 0);
    CHECK_INT(listen(lfd, 16), 0);
    CHECK_INT(getsockname(lfd, (struct sockaddr *)&at, &alen), 0);
    CHECK_INT(uv_loop_init(&loop), 0);
    one_round(&loop, lfd, &at); /* warms up the loop's and the libraries' own allocations */
    before = mallinfo2().uordblks;
    for (int i = 0; i < ROUNDS; i++)
        one_round(&loop, lfd, &at);
    after = mallinfo2().uordblks;
    /* a leaked line buffer per round would be ROUNDS * (LB_MAX + 1) bytes */
    if (after > before + (size_t)ROUNDS * LB_MAX / 2)
        fprintf(stderr, "  the engine kept %zu bytes more after %d punches\n", after - before,
                ROUNDS);
    CHECK(after <= before + (size_t)ROUNDS * LB_MAX / 2);
    CHECK_INT(uv_loop_close(&loop), 0);
    close(lfd);
}

CHECK_MAIN(TEST(t_attempt_line_freed))
