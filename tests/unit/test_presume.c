/* The punch engine's resume mode (peer/punch.c with cfg.resume, design resume.md 4.4): two
 * engines of one process punch each other on loopback, an initiator and a responder of the same
 * session (S, root, RS), each dialling the other's port and listening on its own. With matching
 * sessions both win one connection whose keys pair up (the initiator's tx is the responder's
 * rx), at epoch last_epoch + 1, each link holding the other side's announced offset, and the
 * bytes that arrived behind the last line in the prefill. With another RS, another root, another
 * session id, or an initiator that has already accepted a later epoch, nobody wins: every
 * connection is refused and both punches fail at their deadline. The relayed connection
 * (punch_adopt) runs the same lines; against a scripted responder the initiator keeps a second
 * valid offer as a spare and answers it when the selected connection fails, a bad line drops its
 * connection only, and data behind `resumed` beyond one read is split between the prefill and
 * the socket without a byte lost. A punch that cannot win (no epoch left, both contexts) is
 * refused by punch_start. TPRESUME_VERBOSE=1 shows the engines' logs (why each connection was
 * dropped). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "check.h"
#include "common/clock.h"
#include "common/log.h"
#include "peer/exit.h"
#include "peer/link.h"
#include "peer/punch.h"
#include "peer/rshake.h"

#define S1 "0123456789abcdef0123456789abcdef"
#define S2 "00112233445566778899aabbccddeeff"
#define ROOT1 "fedcba9876543210fedcba9876543210"
#define ROOT2 "ffffffffffffffff0000000000000000"
#define RX_I 1000
#define RX_R 2000
#define FROM_R "data from the responder"
#define FROM_I "data from the initiator"

static unsigned char rs_a[SHAKE_RS_BYTES], rs_b[SHAKE_RS_BYTES];
static void setup(void);

/* One engine of the pair and what became of it. */
struct side {
    struct rshake_ctx ctx;
    struct punch_cfg cfg;
    struct peer_link link;
    const char *say; /* written on the link as soon as it won: the other's prefill */
    bool done;
    int status;
    char why[1024];
};

static void on_done(struct punch *p, int status, const char *why, void *arg)
{
    struct side *s = arg;
    (void)p;
    s->done = true;
    s->status = status;
    snprintf(s->why, sizeof s->why, "%s", why ? why : "");
    /* no Nagle delay behind the unacknowledged last line: the bytes go out with it, and the
     * other engine (on this thread, so not before this callback returns) reads both at once */
    if (status == EXIT_DONE)
        CHECK(setsockopt(s->link.fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int)) == 0);
    if (status == EXIT_DONE && s->say)
        CHECK(write(s->link.fd, s->say, strlen(s->say)) == (ssize_t)strlen(s->say));
}

/* A port of 127.0.0.1 that is free now. */
static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static void loopback(struct sockaddr_storage *ss, int port)
{
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    memset(ss, 0, sizeof *ss);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->sin_port = htons((uint16_t)port);
}

/* A side of session (session, root, rs) listening on port `self` and dialling `other`. */
static void side_init(struct side *s, enum proto_role role, const char *session, const char *root,
                      const unsigned char *rs, uint32_t last, int self, int other,
                      uint64_t timeout_ms)
{
    bool init = role == PROTO_INITIATOR;
    memset(s, 0, sizeof *s);
    snprintf(s->ctx.session, sizeof s->ctx.session, "%s", session);
    snprintf(s->ctx.root, sizeof s->ctx.root, "%s", root);
    snprintf(s->ctx.self, sizeof s->ctx.self, "%s", init ? "alice" : "bob");
    snprintf(s->ctx.peer, sizeof s->ctx.peer, "%s", init ? "bob" : "alice");
    s->ctx.role = role;
    s->ctx.rs = rs;
    s->ctx.last_epoch = last;
    s->ctx.rx = init ? RX_I : RX_R;
    s->link.fd = -1;
    loopback(&s->cfg.local, self);
    s->cfg.ncand = 1;
    loopback(&s->cfg.cand[0].addr, other);
    s->cfg.cand[0].kind = "public";
    s->cfg.loopback_ok = true;
    s->cfg.timeout_ms = timeout_ms;
    s->cfg.resume = &s->ctx;
    s->say = init ? FROM_I : FROM_R;
}

/* Runs both engines to their end (each frees itself once its handles closed). */
static void run_pair(struct side *ini, struct side *resp)
{
    uv_loop_t loop;
    char err[200];
    struct punch *pi, *pr;
    uint64_t end;

    CHECK_INT(uv_loop_init(&loop), 0);
    pr = punch_start(&loop, &resp->cfg, &resp->link, on_done, resp, err, sizeof err);
    pi = punch_start(&loop, &ini->cfg, &ini->link, on_done, ini, err, sizeof err);
    CHECK(pr && pi);
    end = clk_ms() + ini->cfg.timeout_ms + resp->cfg.timeout_ms + 2000;
    while ((!ini->done || !resp->done) && clk_ms() < end) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    if (pi && !ini->done)
        punch_abort(pi, EXIT_PUNCH, "the test ends it");
    if (pr && !resp->done)
        punch_abort(pr, EXIT_PUNCH, "the test ends it");
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
}

/* What the responder's link reads within ms (the initiator's bytes written after its win). */
static size_t read_for(int fd, char *buf, size_t len, int ms)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    ssize_t n;
    if (poll(&pf, 1, ms) <= 0 || (n = read(fd, buf, len)) <= 0)
        return 0;
    return (size_t)n;
}

static void close_links(struct side *a, struct side *b)
{
    if (a->link.fd >= 0)
        close(a->link.fd);
    if (b->link.fd >= 0)
        close(b->link.fd);
}

/* One punch of a matching pair; *ini and *resp hold the links afterwards (fds closed). */
static void won_pair(struct side *ini, struct side *resp, bool gone)
{
    int pa = free_port(), pb = free_port();
    char buf[256] = "";
    size_t n;

    CHECK(pa > 0 && pb > 0 && pa != pb);
    side_init(ini, PROTO_INITIATOR, S1, ROOT1, rs_a, 0, pa, pb, 4000);
    side_init(resp, PROTO_RESPONDER, S1, ROOT1, rs_a, 0, pb, pa, 4000);
    resp->ctx.gone = gone;
    run_pair(ini, resp);
    CHECK_MSG(ini->status == EXIT_DONE, "initiator: %d %s", ini->status, ini->why);
    CHECK_MSG(resp->status == EXIT_DONE, "responder: %d %s", resp->status, resp->why);
    if (ini->status != EXIT_DONE || resp->status != EXIT_DONE) {
        close_links(ini, resp);
        return;
    }
    CHECK(ini->link.resume && resp->link.resume);
    CHECK(ini->link.encrypted && resp->link.encrypted);
    CHECK_INT(ini->link.epoch, 1);
    CHECK_INT(resp->link.epoch, 1);
    CHECK_INT(ini->link.peer_rx, RX_R);
    CHECK_INT(resp->link.peer_rx, RX_I);
    CHECK(ini->link.gone == gone);
    CHECK(!resp->link.gone);
    CHECK(ini->link.role == PROTO_INITIATOR && resp->link.role == PROTO_RESPONDER);
    CHECK_STR(ini->link.root, ROOT1);
    CHECK(memcmp(ini->link.tx_key, resp->link.rx_key, sizeof ini->link.tx_key) == 0);
    CHECK(memcmp(ini->link.rx_key, resp->link.tx_key, sizeof ini->link.rx_key) == 0);
    CHECK(memcmp(ini->link.tx_key, ini->link.rx_key, sizeof ini->link.tx_key) != 0);
    /* the responder wrote right after its `resumed`: the initiator read it with that line */
    CHECK_INT(ini->link.prefill_len, strlen(FROM_R));
    CHECK(ini->link.prefill_len == strlen(FROM_R) &&
          memcmp(ini->link.prefill, FROM_R, strlen(FROM_R)) == 0);
    /* the responder won on the initiator's line, before the initiator wrote: it is in the
     * socket, on the one connection both links share */
    CHECK_INT(resp->link.prefill_len, 0);
    n = read_for(resp->link.fd, buf, sizeof buf - 1, 2000);
    CHECK_INT(n, strlen(FROM_I));
    CHECK(n == strlen(FROM_I) && memcmp(buf, FROM_I, n) == 0);
    close_links(ini, resp);
}

/* Both win, with paired keys, epoch 1, each other's offsets and the prefill; a second punch of
 * the same session gets other keys (fresh ephemerals per connection). */
static void t_resume_won(void)
{
    setup();
    static struct side ini, resp, ini2, resp2;
    won_pair(&ini, &resp, false);
    won_pair(&ini2, &resp2, false);
    CHECK(memcmp(ini.link.tx_key, ini2.link.tx_key, sizeof ini.link.tx_key) != 0);
}

/* A responder whose session ended says so in `resumed`: the initiator's link has gone. */
static void t_resume_gone(void)
{
    setup();
    static struct side ini, resp;
    won_pair(&ini, &resp, true);
}

/* A pair that must not get together: both fail at their deadline, no link. */
static void no_win(const char *what, const char *session_r, const char *root_r,
                   const unsigned char *rs_r, uint32_t last_i)
{
    static struct side ini, resp;
    int pa = free_port(), pb = free_port();
    CHECK(pa > 0 && pb > 0 && pa != pb);
    side_init(&ini, PROTO_INITIATOR, S1, ROOT1, rs_a, last_i, pa, pb, 1500);
    side_init(&resp, PROTO_RESPONDER, session_r, root_r, rs_r, 0, pb, pa, 1500);
    run_pair(&ini, &resp);
    CHECK_MSG(ini.status == EXIT_PUNCH, "%s: initiator %d %s", what, ini.status, ini.why);
    CHECK_MSG(resp.status == EXIT_PUNCH, "%s: responder %d %s", what, resp.status, resp.why);
    CHECK(ini.link.fd < 0 && resp.link.fd < 0);
    close_links(&ini, &resp);
}

static void t_resume_refused(void)
{
    setup();
    no_win("another RS", S1, ROOT1, rs_b, 0);
    no_win("another root", S1, ROOT2, rs_a, 0);
    no_win("another session id", S2, ROOT1, rs_a, 0);
    /* the responder offers epoch 1, but the initiator has accepted epoch 1 already */
    no_win("an old epoch", S1, ROOT1, rs_a, 1);
}

/* A connected pair of loopback sockets: *mine for the test, the other end returned (for
 * punch_adopt, as the relay's connection would be). */
static int tcp_pair(int *mine)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), fd = -1;
    *mine = -1;
    if (lfd < 0)
        return -1;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 1) == 0 &&
        getsockname(lfd, (struct sockaddr *)&a, &alen) == 0 &&
        (*mine = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0 &&
        connect(*mine, (struct sockaddr *)&a, sizeof a) == 0)
        fd = accept(lfd, NULL, NULL);
    close(lfd);
    return fd;
}

/* A relay-only engine (no candidate, no listener): only adopted connections compete. */
static void relay_side(struct side *s, enum proto_role role, uint32_t last)
{
    side_init(s, role, S1, ROOT1, rs_a, last, 0, 0, 4000);
    s->cfg.ncand = 0;
    s->cfg.relay_only = true;
}

/* The relayed connection runs the resume lines too: two relay-only engines joined by one
 * connection, handed to each with punch_adopt, both win on it. */
static void t_resume_relayed(void)
{
    static struct side ini, resp;
    uv_loop_t loop;
    char err[200];
    struct punch *pi, *pr;
    int a, b;
    uint64_t end;

    setup();
    relay_side(&ini, PROTO_INITIATOR, 0);
    relay_side(&resp, PROTO_RESPONDER, 0);
    ini.say = resp.say = NULL;
    CHECK_INT(uv_loop_init(&loop), 0);
    pi = punch_start(&loop, &ini.cfg, &ini.link, on_done, &ini, err, sizeof err);
    pr = punch_start(&loop, &resp.cfg, &resp.link, on_done, &resp, err, sizeof err);
    b = tcp_pair(&a);
    CHECK(pi && pr && a >= 0 && b >= 0);
    CHECK_INT(punch_adopt(pi, a, PUNCH_ADOPT_RELAY), 0);
    CHECK_INT(punch_adopt(pr, b, PUNCH_ADOPT_RELAY), 0);
    end = clk_ms() + 5000;
    while ((!ini.done || !resp.done) && clk_ms() < end) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    CHECK_MSG(ini.status == EXIT_DONE, "initiator: %d %s", ini.status, ini.why);
    CHECK_MSG(resp.status == EXIT_DONE, "responder: %d %s", resp.status, resp.why);
    CHECK(ini.link.relayed && resp.link.relayed);
    CHECK(ini.link.resume && resp.link.resume);
    CHECK_INT(ini.link.epoch, 1);
    CHECK_INT(ini.link.peer_rx, RX_R);
    CHECK_INT(resp.link.peer_rx, RX_I);
    CHECK(memcmp(ini.link.tx_key, resp.link.rx_key, sizeof ini.link.tx_key) == 0);
    CHECK(memcmp(ini.link.rx_key, resp.link.tx_key, sizeof ini.link.rx_key) == 0);
    if (!ini.done)
        punch_abort(pi, EXIT_PUNCH, "the test ends it");
    if (!resp.done)
        punch_abort(pr, EXIT_PUNCH, "the test ends it");
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
    close_links(&ini, &resp);
}

/* One line from fd (the engine's, on loop), without its newline, within ms; 0: none. */
static size_t line_from(uv_loop_t *loop, int fd, char *buf, size_t len, int ms)
{
    size_t have = 0;
    uint64_t end = clk_ms() + (uint64_t)ms;
    while (clk_ms() < end && have < len - 1) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        ssize_t n;
        uv_run(loop, UV_RUN_NOWAIT);
        if (poll(&pf, 1, 2) <= 0)
            continue;
        if ((n = recv(fd, buf + have, 1, 0)) <= 0) /* one byte at a time: never past the line */
            return 0;
        if (buf[have] == '\n') {
            buf[have] = '\0';
            return have;
        }
        have += (size_t)n;
    }
    return 0;
}

static void send_line(int fd, const struct rshake_ctx *c, enum rshake_type t,
                      const struct rshake_peer *p)
{
    char line[PROTO_MAX_LINE];
    int n = rshake_encode(c, t, p, line, sizeof line);
    CHECK(n > 0 && send(fd, line, (size_t)n, MSG_NOSIGNAL) == n);
}

/* The scripted responder's context for one connection (its own ephemeral). */
static void responder_ctx(struct rshake_ctx *r, uint64_t rx)
{
    memset(r, 0, sizeof *r);
    snprintf(r->session, sizeof r->session, "%s", S1);
    snprintf(r->root, sizeof r->root, "%s", ROOT1);
    snprintf(r->self, sizeof r->self, "bob");
    snprintf(r->peer, sizeof r->peer, "alice");
    r->role = PROTO_RESPONDER;
    r->rs = rs_a;
    r->rx = rx;
    rshake_init(r);
}

/* The initiator engine against a scripted responder on three relayed connections: a bad line
 * drops its connection only; the first valid offer is answered (selected), the second kept as a
 * spare and answered only when the selected one fails; the spare's `resumed` wins, with the keys
 * the scripted responder derives for that connection. */
static void t_resume_spare(void)
{
    static struct side ini;
    struct rshake_ctx r[3];
    struct rshake_peer rp[3];
    unsigned char tx[32], rx[32];
    char line[PROTO_MAX_LINE + 1], why[256];
    uv_loop_t loop;
    int mine[3], theirs[3];
    struct punch *p;
    char err[200];
    uint64_t end;

    setup();
    relay_side(&ini, PROTO_INITIATOR, 0);
    ini.say = NULL;
    CHECK_INT(uv_loop_init(&loop), 0);
    p = punch_start(&loop, &ini.cfg, &ini.link, on_done, &ini, err, sizeof err);
    CHECK(p != NULL);
    for (int i = 0; i < 3; i++) {
        responder_ctx(&r[i], RX_R + (uint64_t)i);
        memset(&rp[i], 0, sizeof rp[i]);
        theirs[i] = tcp_pair(&mine[i]);
        CHECK(theirs[i] >= 0 && mine[i] >= 0);
        CHECK_INT(punch_adopt(p, theirs[i], PUNCH_ADOPT_RELAY), 0);
    }
    /* 0: garbage, dropped (EOF on our end); the punch goes on */
    CHECK(send(mine[0], "{\"type\":\"shake\"}\n", 17, MSG_NOSIGNAL) == 17);
    CHECK_INT(line_from(&loop, mine[0], line, sizeof line, 2000), 0);
    CHECK_INT(punch_adopted_pending(p, PUNCH_ADOPT_RELAY), 2);
    /* 1: a valid offer, answered at once */
    send_line(mine[1], &r[1], RSHAKE_RESUME, NULL);
    CHECK(line_from(&loop, mine[1], line, sizeof line, 2000) > 0);
    CHECK_INT(rshake_verify(&r[1], RSHAKE_RESUME, line, strlen(line), &rp[1], why, sizeof why),
              SHAKE_OK);
    CHECK_INT(rp[1].rx, RX_I);
    /* 2: a valid offer while 1 is selected: a spare, not answered */
    send_line(mine[2], &r[2], RSHAKE_RESUME, NULL);
    CHECK_INT(line_from(&loop, mine[2], line, sizeof line, 300), 0);
    CHECK(!ini.done);
    /* 1 fails: the spare is answered */
    close(mine[1]);
    mine[1] = -1;
    CHECK(line_from(&loop, mine[2], line, sizeof line, 2000) > 0);
    CHECK_INT(rshake_verify(&r[2], RSHAKE_RESUME, line, strlen(line), &rp[2], why, sizeof why),
              SHAKE_OK);
    send_line(mine[2], &r[2], RSHAKE_RESUMED, &rp[2]);
    end = clk_ms() + 2000;
    while (!ini.done && clk_ms() < end) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    CHECK_MSG(ini.status == EXIT_DONE, "initiator: %d %s", ini.status, ini.why);
    CHECK_INT(ini.link.peer_rx, RX_R + 2);
    CHECK_INT(ini.link.epoch, 1);
    CHECK_INT(rshake_keys(&r[2], &rp[2], tx, rx), 0);
    CHECK(memcmp(ini.link.tx_key, rx, sizeof rx) == 0);
    CHECK(memcmp(ini.link.rx_key, tx, sizeof tx) == 0);
    if (!ini.done)
        punch_abort(p, EXIT_PUNCH, "the test ends it");
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
    for (int i = 0; i < 3; i++) {
        rshake_wipe(&r[i]);
        if (mine[i] >= 0)
            close(mine[i]);
    }
    if (ini.link.fd >= 0)
        close(ini.link.fd);
}

/* More peer data behind `resumed` than one read of the engine (and the link's prefill) takes:
 * the prefill holds the first part, the socket the rest, nothing lost or doubled. */
static void t_resume_prefill(void)
{
    static struct side ini;
    static char data[3 * PROTO_MAX_LINE], got[sizeof data], buf[PROTO_MAX_LINE + 1];
    struct rshake_ctx r;
    struct rshake_peer rp;
    char why[256], line[PROTO_MAX_LINE];
    uv_loop_t loop;
    int mine, theirs, n;
    size_t have = 0;
    struct punch *p;
    char err[200];
    uint64_t end;

    setup();
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)('a' + i % 23);
    relay_side(&ini, PROTO_INITIATOR, 0);
    ini.say = NULL;
    responder_ctx(&r, RX_R);
    memset(&rp, 0, sizeof rp);
    CHECK_INT(uv_loop_init(&loop), 0);
    p = punch_start(&loop, &ini.cfg, &ini.link, on_done, &ini, err, sizeof err);
    theirs = tcp_pair(&mine);
    CHECK(p && mine >= 0 && theirs >= 0);
    CHECK_INT(punch_adopt(p, theirs, PUNCH_ADOPT_RELAY), 0);
    send_line(mine, &r, RSHAKE_RESUME, NULL);
    CHECK(line_from(&loop, mine, buf, sizeof buf, 2000) > 0);
    CHECK_INT(rshake_verify(&r, RSHAKE_RESUME, buf, strlen(buf), &rp, why, sizeof why), SHAKE_OK);
    /* resumed and the data in one send: the engine's read ends inside the data */
    n = rshake_encode(&r, RSHAKE_RESUMED, &rp, line, sizeof line);
    CHECK(n > 0);
    memmove(data, line, (size_t)n); /* the stream: the line, then data */
    CHECK(send(mine, data, sizeof data, MSG_NOSIGNAL) == (ssize_t)sizeof data);
    end = clk_ms() + 2000;
    while (!ini.done && clk_ms() < end) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    CHECK_MSG(ini.status == EXIT_DONE, "initiator: %d %s", ini.status, ini.why);
    if (ini.status == EXIT_DONE) {
        CHECK(ini.link.prefill_len > 0 && ini.link.prefill_len <= sizeof ini.link.prefill);
        memcpy(got, ini.link.prefill, ini.link.prefill_len);
        have = ini.link.prefill_len;
        while (have < sizeof data - (size_t)n) {
            size_t k = read_for(ini.link.fd, got + have, sizeof data - (size_t)n - have, 1000);
            if (k == 0)
                break;
            have += k;
        }
        CHECK_INT(have, sizeof data - (size_t)n);
        CHECK(memcmp(got, data + n, sizeof data - (size_t)n) == 0);
    }
    if (!ini.done)
        punch_abort(p, EXIT_PUNCH, "the test ends it");
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
    rshake_wipe(&r);
    close(mine);
    if (ini.link.fd >= 0)
        close(ini.link.fd);
}

/* A resume punch that cannot win is refused at the start: past the last epoch, or with the
 * shake's context too. */
static void t_resume_cfg(void)
{
    static struct side s;
    struct shake_ctx shake;
    uv_loop_t loop;
    char err[200] = "";

    setup();
    CHECK_INT(uv_loop_init(&loop), 0);
    relay_side(&s, PROTO_RESPONDER, UINT32_MAX);
    CHECK(punch_start(&loop, &s.cfg, &s.link, on_done, &s, err, sizeof err) == NULL);
    CHECK(strstr(err, "epoch") != NULL);
    relay_side(&s, PROTO_INITIATOR, 0);
    memset(&shake, 0, sizeof shake);
    s.cfg.shake = &shake;
    err[0] = '\0';
    CHECK(punch_start(&loop, &s.cfg, &s.link, on_done, &s, err, sizeof err) == NULL);
    CHECK(strstr(err, "not both") != NULL);
    CHECK(!s.done);
    CHECK_INT(uv_loop_close(&loop), 0);
}

/* Each test may run alone (by name): the first to run sets up. */
static void setup(void)
{
    static bool once;
    if (once)
        return;
    once = true;
    CHECK(sodium_init() >= 0);
    log_init("test_presume", getenv("TPRESUME_VERBOSE") ? LOG_DEBUG : LOG_SILENT, 0);
    randombytes_buf(rs_a, sizeof rs_a);
    randombytes_buf(rs_b, sizeof rs_b);
}

CHECK_MAIN(TEST(t_resume_won), TEST(t_resume_gone), TEST(t_resume_refused), TEST(t_resume_relayed),
           TEST(t_resume_spare), TEST(t_resume_prefill), TEST(t_resume_cfg))
