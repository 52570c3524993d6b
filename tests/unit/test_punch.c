/* The punch engine's memory on its direct attempts (Phase 8 re-audit, tests/adversarial/AUDIT.md):
 * since common/linebuf allocates a line's buffer only once a read ends inside a line, every
 * connection that may hold a started line must give that buffer back when it closes. A direct
 * attempt is such a connection: whoever answers at a candidate endpoint (the peer, or anyone
 * the server named) can send a piece of a line and close, and the attempt dials again.
 *
 * The test plays that answerer on loopback: ROUNDS punches, each of whose attempt reads a
 * started line and then the answerer's EOF. What the engine leaves allocated must not grow by
 * a line buffer per round (mallinfo2 in a plain build; a sanitizer build's leak check reports
 * the same buffers at exit).
 *
 * And the engine's side of a birthday punch (t_bday_adopt): which connections it adopts, and
 * that it waits for them with no candidate of its own. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
    char why[1024];
};

static void on_done(struct punch *p, int status, const char *why, void *arg)
{
    struct run *r = arg;
    (void)p;
    r->done = true;
    r->status = status;
    snprintf(r->why, sizeof r->why, "%s", why ? why : "");
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

/* A connected socket to the listener at `at` (its peer address: 127.0.0.1), and its accepted
 * other end in *other. */
static int dial(int lfd, const struct sockaddr_in *at, int *other)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct pollfd pf = {.fd = lfd, .events = POLLIN};
    *other = -1;
    if (fd < 0 || connect(fd, (const struct sockaddr *)at, sizeof *at) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (poll(&pf, 1, 1000) > 0)
        *other = accept(lfd, NULL, NULL);
    return fd;
}

static struct punch *bday_punch(uv_loop_t *loop, const char *target, struct peer_link *link,
                                struct run *r)
{
    static struct shake_ctx ctx;
    struct punch_cfg cfg;
    char err[200];
    memset(&ctx, 0, sizeof ctx);
    ctx.role = PROTO_INITIATOR; /* sends nothing first */
    memset(&cfg, 0, sizeof cfg);
    memset(link, 0, sizeof *link);
    link->fd = -1;
    cfg.local.ss_family = AF_INET;
    cfg.ncand = 0; /* a birthday punch: the IPv4 candidates left out */
    cfg.loopback_ok = true;
    cfg.shared_listener = true;
    cfg.timeout_ms = 60000;
    cfg.shake = &ctx;
    cfg.birthday = true;
    struct sockaddr_in *t = (struct sockaddr_in *)&cfg.bday_target;
    t->sin_family = AF_INET;
    inet_pton(AF_INET, target, &t->sin_addr);
    return punch_start(loop, &cfg, link, on_done, r, err, sizeof err);
}

/* Birthday connections: taken only from the target's address and up to PUNCH_MAX_BIRTHDAY at
 * once; with no candidate the engine waits for them (it does not fail for having none), and
 * the window's end brings its deadline forward, where it fails with the birthday's note. */
static void t_bday_adopt(void)
{
    uv_loop_t loop;
    struct sockaddr_in at = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof at;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), other[PUNCH_MAX_BIRTHDAY + 1];
    int mine[PUNCH_MAX_BIRTHDAY + 1], extra = -1;
    struct peer_link link;
    struct run r = {0};
    struct punch *p;
    int fd, n = 0;

    CHECK(sodium_init() >= 0);
    log_init("test_punch", LOG_SILENT, 0);
    CHECK(lfd >= 0);
    CHECK_INT(bind(lfd, (struct sockaddr *)&at, sizeof at), 0);
    CHECK_INT(listen(lfd, 64), 0);
    CHECK_INT(getsockname(lfd, (struct sockaddr *)&at, &alen), 0);
    CHECK_INT(uv_loop_init(&loop), 0);

    /* the target is 127.0.0.2: a connection from 127.0.0.1 is somebody else's */
    p = bday_punch(&loop, "127.0.0.2", &link, &r);
    if (!CHECK(p != NULL))
        return;
    fd = dial(lfd, &at, &other[0]);
    CHECK(fd >= 0);
    CHECK_INT(punch_adopt_index(p, fd, PUNCH_ADOPT_BIRTHDAY, 3), -1);
    CHECK(fcntl(fd, F_GETFD) < 0); /* closed */
    CHECK_INT(punch_adopted_pending(p, PUNCH_ADOPT_BIRTHDAY), 0);
    if (other[0] >= 0)
        close(other[0]);
    /* nothing to dial, nothing handshaking: not over before the birthday says so */
    turn_for(&loop, 300);
    CHECK(!r.done);
    punch_note(p, "birthday: none of 1024 guesses met one of 256 mappings");
    /* the window is over: the deadline comes forward (never back), and the punch fails then
     * with the note as its reason */
    CHECK(punch_bday_over(p, 100));
    CHECK(!punch_bday_over(p, 30000));
    CHECK(!r.done);
    turn_for(&loop, 400);
    CHECK(r.done);
    CHECK_INT(r.status, EXIT_PUNCH);
    CHECK_STR(r.why, "birthday: none of 1024 guesses met one of 256 mappings");
    uv_run(&loop, UV_RUN_DEFAULT);

    /* the target is us: taken, up to the bound */
    memset(&r, 0, sizeof r);
    p = bday_punch(&loop, "127.0.0.1", &link, &r);
    if (!CHECK(p != NULL))
        return;
    for (int i = 0; i <= PUNCH_MAX_BIRTHDAY; i++) {
        fd = dial(lfd, &at, &other[i]);
        if (!CHECK(fd >= 0))
            break;
        mine[i] = fd;
        if (punch_adopt_index(p, fd, PUNCH_ADOPT_BIRTHDAY, i) == 0)
            n++;
    }
    CHECK_INT(n, PUNCH_MAX_BIRTHDAY);
    /* the 17th is closed, not queued: it holds no descriptor and blocks nothing */
    CHECK(fcntl(mine[PUNCH_MAX_BIRTHDAY], F_GETFD) < 0);
    CHECK_INT(punch_adopted_pending(p, PUNCH_ADOPT_BIRTHDAY), PUNCH_MAX_BIRTHDAY);
    CHECK_INT(punch_adopted_pending(p, PUNCH_ADOPT_RELAY), 0);
    /* one that fails its handshake (the other end closes: a decoy that answered TCP) leaves
     * its slot: pending drops, and the next connection is taken */
    close(other[0]);
    other[0] = -1;
    turn_for(&loop, 200);
    CHECK(!r.done);
    CHECK_INT(punch_adopted_pending(p, PUNCH_ADOPT_BIRTHDAY), PUNCH_MAX_BIRTHDAY - 1);
    fd = dial(lfd, &at, &extra);
    CHECK(fd >= 0);
    CHECK_INT(punch_adopt_index(p, fd, PUNCH_ADOPT_BIRTHDAY, 99), 0);
    CHECK_INT(punch_adopted_pending(p, PUNCH_ADOPT_BIRTHDAY), PUNCH_MAX_BIRTHDAY);
    punch_abort(p, EXIT_PUNCH, "the test ends it");
    CHECK(r.done);
    CHECK_INT(punch_adopted_pending(p, PUNCH_ADOPT_BIRTHDAY), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i <= PUNCH_MAX_BIRTHDAY; i++)
        if (other[i] >= 0)
            close(other[i]);
    if (extra >= 0)
        close(extra);
    CHECK_INT(uv_loop_close(&loop), 0);
    close(lfd);
}

/* Reads one line (up to its newline) from fd while the loop turns; its length, or -1. */
static int read_line(uv_loop_t *loop, int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        if (!turn_until(loop, fd, POLLIN, 2000) || read(fd, buf + n, 1) != 1)
            return -1;
        if (buf[n++] == '\n')
            return (int)n;
    }
    return -1;
}

/* The engine as the initiator against a responder played here (peer/shake.c on our end of a
 * loopback connection), with shake.resume offered by both (on) or by the responder only: when
 * both shakes carried it, the winner's link holds the session part (resume.md 4.1, 4.2), else
 * none of it; the keys agree either way. */
static void resume_round(bool init_speaks)
{
    static struct identity ii, ir;
    static struct shake_ctx ctx, resp;
    struct sockaddr_in at = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof at;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), fd = -1, n;
    struct shake_peer at_r = {0};
    unsigned char tx[32], rx[32], rs[32];
    struct punch_cfg cfg;
    struct peer_link link;
    struct run r = {0};
    struct punch *p;
    uv_loop_t loop;
    char line[PROTO_MAX_LINE], err[200];

    crypto_sign_keypair(ii.pk, ii.sk);
    crypto_sign_keypair(ir.pk, ir.sk);
    memset(&ctx, 0, sizeof ctx);
    memset(&resp, 0, sizeof resp);
    snprintf(ctx.session, sizeof ctx.session, "0123456789abcdef0123456789abcdef");
    memcpy(resp.session, ctx.session, sizeof resp.session);
    snprintf(ctx.self, sizeof ctx.self, "alice");
    snprintf(ctx.peer, sizeof ctx.peer, "bob");
    snprintf(resp.self, sizeof resp.self, "bob");
    snprintf(resp.peer, sizeof resp.peer, "alice");
    ctx.role = PROTO_INITIATOR;
    resp.role = PROTO_RESPONDER;
    ctx.ident = &ii;
    resp.ident = &ir;
    if (init_speaks)
        ctx.resume = (struct proto_resume_caps){true, PROTO_RESUME_V, 1u << 20, 300};
    resp.resume = (struct proto_resume_caps){true, PROTO_RESUME_V, 8u << 20, 120};
    resp.resume_listed = true;
    shake_init(&ctx);
    shake_init(&resp);

    CHECK(lfd >= 0);
    CHECK_INT(bind(lfd, (struct sockaddr *)&at, sizeof at), 0);
    CHECK_INT(listen(lfd, 4), 0);
    CHECK_INT(getsockname(lfd, (struct sockaddr *)&at, &alen), 0);
    CHECK_INT(uv_loop_init(&loop), 0);
    memset(&cfg, 0, sizeof cfg);
    memset(&link, 0, sizeof link);
    link.fd = -1;
    cfg.local.ss_family = AF_INET;
    cfg.ncand = 1;
    memcpy(&cfg.cand[0].addr, &at, sizeof at);
    cfg.cand[0].kind = "public";
    cfg.loopback_ok = true;
    cfg.shared_listener = true;
    cfg.timeout_ms = 10000;
    cfg.shake = &ctx;
    p = punch_start(&loop, &cfg, &link, on_done, &r, err, sizeof err);
    CHECK(p != NULL);
    if (p && turn_until(&loop, lfd, POLLIN, 2000))
        fd = accept(lfd, NULL, NULL);
    CHECK(fd >= 0);
    if (fd >= 0) {
        n = shake_encode(&resp, PROTO_SHAKE, NULL, line, sizeof line);
        CHECK(n > 0 && send(fd, line, (size_t)n, MSG_NOSIGNAL) == n);
        n = read_line(&loop, fd, line, sizeof line);
        CHECK(n > 0);
        CHECK(n > 0 && shake_verify(&resp, PROTO_SHAKE, line, (size_t)n - 1, &at_r, err,
                                    sizeof err) == SHAKE_OK);
        CHECK(at_r.resume.has == init_speaks);
        n = shake_encode(&resp, PROTO_CONFIRM, &at_r, line, sizeof line);
        CHECK(n > 0 && send(fd, line, (size_t)n, MSG_NOSIGNAL) == n);
        for (int k = 0; k < 200 && !r.done; k++)
            turn_for(&loop, 10);
    }
    CHECK_MSG(r.done && r.status == EXIT_DONE, "punch: %d %s", r.status, r.why);
    CHECK(shake_keys_rs(&resp, &at_r, tx, rx, rs) == 0);
    CHECK(memcmp(link.tx_key, rx, 32) == 0 && memcmp(link.rx_key, tx, 32) == 0);
    CHECK(link.resume == init_speaks);
    if (init_speaks) {
        CHECK(link.role == PROTO_INITIATOR);
        CHECK_STR(link.root, ctx.session);
        CHECK(memcmp(link.rs, rs, 32) == 0);
        CHECK(link.resume_ms == 120000); /* the smaller of 300 and 120 s */
        CHECK(link.peer_buf == 8u << 20);
    } else {
        CHECK(!link.root[0] && link.resume_ms == 0 && link.peer_buf == 0);
    }
    if (!r.done && p)
        punch_abort(p, EXIT_PUNCH, "the test ends it");
    uv_run(&loop, UV_RUN_DEFAULT);
    if (link.fd >= 0)
        close(link.fd);
    if (fd >= 0)
        close(fd);
    close(lfd);
    CHECK_INT(uv_loop_close(&loop), 0);
    shake_wipe(&ctx);
    shake_wipe(&resp);
}

static void t_resume_link(void)
{
    log_init("test_punch", LOG_SILENT, 0);
    resume_round(true);
    resume_round(false);
}

CHECK_MAIN(TEST(t_attempt_line_freed), TEST(t_bday_adopt), TEST(t_resume_link))
