/* peer/srvconn: the client exchange with the server, against a fake server on loopback in
 * this same thread (a plain listening socket; the client runs on a uv loop between the fake
 * server's steps). Every wait is bounded: a test that hangs fails instead. */
#include "check.h"
#include "common/clock.h"
#include "common/endpoint.h"
#include "common/linebuf.h"
#include "common/sock.h"
#include "peer/srvconn.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#define T_WAIT_MS 3000 /* the most any step may take */
#define T_MAXMSG 8

struct t_run {
    bool connected, failed;
    struct sockaddr_storage local;
    int nfirst;
    unsigned char nonce[PROTO_NONCE_BYTES];
    int nmsg;
    enum proto_type type[T_MAXMSG];
    enum sc_phase phase[T_MAXMSG];
    uint64_t rx_us[T_MAXMSG];
    struct sc_error err;
    bool detach_on_msg; /* take the descriptor over on the first message after the challenge */
    int fd;             /* taken over */
};

static uv_loop_t loop_;
static int lst_ = -1;
static struct sockaddr_storage addr_;

static void t_connected(struct sc *sc, void *data, const struct sockaddr_storage *local)
{
    struct t_run *t = data;
    CHECK_INT(sc_phase(sc), SC_CHALLENGE);
    t->connected = true;
    t->local = *local;
}

static void t_first(struct sc *sc, void *data, const unsigned char *nonce, struct proto_msg *m)
{
    struct t_run *t = data;
    CHECK_INT(sc_phase(sc), SC_CHALLENGE);
    t->nfirst++;
    memcpy(t->nonce, nonce, sizeof t->nonce);
    m->type = PROTO_PING;
    m->u.ping.seq = 77;
}

static void t_msg(struct sc *sc, void *data, const struct proto_msg *m, uint64_t rx_us)
{
    struct t_run *t = data;
    if (t->nmsg < T_MAXMSG) {
        t->type[t->nmsg] = m->type;
        t->phase[t->nmsg] = sc_phase(sc);
        t->rx_us[t->nmsg] = rx_us;
    }
    t->nmsg++;
    if (t->detach_on_msg && sc_phase(sc) == SC_ANSWER && t->fd < 0)
        t->fd = sc_detach(sc);
}

static void t_fail(struct sc *sc, void *data, const struct sc_error *e)
{
    struct t_run *t = data;
    CHECK_INT(sc_phase(sc), SC_CLOSED);
    t->failed = true;
    t->err = *e;
}

static const struct sc_cbs cbs_ = {
    .connected = t_connected, .first = t_first, .msg = t_msg, .fail = t_fail};

static void t_setup(void)
{
    struct sockaddr_in *in = (struct sockaddr_in *)&addr_;
    socklen_t alen = sizeof addr_;
    uv_loop_init(&loop_);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lst_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lst_ < 0 || bind(lst_, (struct sockaddr *)in, sizeof *in) != 0 || listen(lst_, 16) != 0 ||
        getsockname(lst_, (struct sockaddr *)&addr_, &alen) != 0) {
        perror("fake server");
        exit(1);
    }
    alarm(60); /* a hang is a failure, not a stuck CI */
}

static void t_init(struct t_run *t)
{
    if (lst_ < 0)
        t_setup();
    memset(t, 0, sizeof *t);
    t->fd = -1;
}

static struct sc *t_open(struct t_run *t, unsigned flags, uint64_t connect_ms, uint64_t answer_ms)
{
    struct sc_error e;
    struct sc_cfg cfg = {.server = (struct sockaddr *)&addr_,
                         .connect_ms = connect_ms,
                         .answer_ms = answer_ms,
                         .flags = flags};
    struct sc *sc = sc_open(&loop_, &cfg, &cbs_, t, &e);
    CHECK(sc != NULL);
    return sc;
}

/* Runs the client's loop until *flag is set, or T_WAIT_MS. */
static void t_run_until(const bool *flag)
{
    uint64_t end = clk_ms() + T_WAIT_MS;
    while (!*flag && clk_ms() < end) {
        uv_run(&loop_, UV_RUN_NOWAIT);
        if (!*flag)
            poll(NULL, 0, 1);
    }
}

/* Runs the loop until n messages have come (or T_WAIT_MS). */
static void t_run_msgs(struct t_run *t, int n)
{
    uint64_t end = clk_ms() + T_WAIT_MS;
    while (t->nmsg < n && !t->failed && clk_ms() < end) {
        uv_run(&loop_, UV_RUN_NOWAIT);
        poll(NULL, 0, 1);
    }
}

/* Lets closed handles go: nothing may be left on the loop between tests. */
static void t_drain(void)
{
    uv_run(&loop_, UV_RUN_NOWAIT);
    CHECK(!uv_loop_alive(&loop_));
}

/* The fake server's side of the connection the client opened. */
static int t_accept(void)
{
    uint64_t end = clk_ms() + T_WAIT_MS;
    while (clk_ms() < end) {
        struct pollfd pf = {.fd = lst_, .events = POLLIN};
        int fd;
        uv_run(&loop_, UV_RUN_NOWAIT);
        if (poll(&pf, 1, 10) <= 0)
            continue;
        fd = accept4(lst_, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
    }
    CHECK(!"the client did not connect");
    return -1;
}

static void t_send(int fd, const char *s, size_t n)
{
    CHECK_INT(send(fd, s, n, MSG_NOSIGNAL), n);
}

static void t_send_msg(int fd, const struct proto_msg *m)
{
    char line[PROTO_MAX_LINE];
    int n = proto_encode(m, line, sizeof line);
    if (CHECK(n > 0))
        t_send(fd, line, (size_t)n);
}

static void t_send_challenge(int fd)
{
    struct proto_msg m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_CHALLENGE;
    memset(m.u.challenge.nonce, 0x42, sizeof m.u.challenge.nonce);
    t_send_msg(fd, &m);
}

static void t_send_ping(int fd, int64_t seq)
{
    struct proto_msg m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_PING;
    m.u.ping.seq = seq;
    t_send_msg(fd, &m);
}

/* What the client sent: one line, the ping its first-line callback built. */
static void t_check_first_line(int fd)
{
    char buf[PROTO_MAX_LINE + 1], why[200];
    struct proto_msg m;
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    uint64_t end = clk_ms() + T_WAIT_MS;
    ssize_t n;
    /* the client reads the challenge on its loop, and answers */
    do
        uv_run(&loop_, UV_RUN_NOWAIT);
    while (poll(&pf, 1, 1) == 0 && clk_ms() < end);
    n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    if (!CHECK(n > 0 && buf[n - 1] == '\n'))
        return;
    CHECK(memchr(buf, '\n', (size_t)n - 1) == NULL);
    if (CHECK_INT(proto_decode(buf, (size_t)n - 1, PROTO_TO_SERVER, &m, why, sizeof why),
                  PROTO_OK)) {
        CHECK_INT(m.type, PROTO_PING);
        CHECK_INT(m.u.ping.seq, 77);
    }
}

/* The exchange as it should go: challenge, our first line, the answers, each delivered. */
static void t_challenge_answer(void)
{
    struct t_run t;
    struct sc *sc;
    int srv;
    uint64_t start = clk_us();
    t_init(&t);
    sc = t_open(&t, SC_STAMP, 1000, 1000);
    srv = t_accept();
    t_run_until(&t.connected);
    CHECK(t.connected);
    CHECK(ep_port((struct sockaddr *)&t.local) != 0);
    /* a line before the challenge reaches the caller, in SC_CHALLENGE */
    t_send_ping(srv, 1);
    t_run_msgs(&t, 1);
    if (CHECK_INT(t.nmsg, 1)) {
        CHECK_INT(t.type[0], PROTO_PING);
        CHECK_INT(t.phase[0], SC_CHALLENGE);
    }
    CHECK_INT(t.nfirst, 0);
    t_send_challenge(srv);
    t_check_first_line(srv);
    CHECK_INT(t.nfirst, 1);
    CHECK(t.nonce[0] == 0x42 && t.nonce[PROTO_NONCE_BYTES - 1] == 0x42);
    CHECK_INT(sc_phase(sc), SC_ANSWER);
    /* two answers in one segment: both delivered, in order, in SC_ANSWER; a second challenge
     * is an answer like any other */
    t_send_ping(srv, 2);
    t_send_challenge(srv);
    t_run_msgs(&t, 3);
    if (CHECK_INT(t.nmsg, 3)) {
        CHECK_INT(t.type[1], PROTO_PING);
        CHECK_INT(t.phase[1], SC_ANSWER);
        CHECK_INT(t.type[2], PROTO_CHALLENGE);
        /* the kernel's stamp, on our monotonic clock */
        CHECK(t.rx_us[1] >= start && t.rx_us[1] <= clk_us());
    }
    CHECK_INT(t.nfirst, 1);
    /* more lines from the caller */
    {
        struct proto_msg m;
        memset(&m, 0, sizeof m);
        m.type = PROTO_PONG;
        m.u.ping.seq = 5;
        CHECK_INT(sc_send(sc, &m), 0);
    }
    CHECK(!t.failed);
    sc_close(sc);
    sc_close(sc); /* harmless in the same turn */
    close(srv);
    t_drain();
}

/* A line over LB_MAX bytes ends the exchange, in either mode. */
static void t_overlong(void)
{
    static char big[LB_MAX + 100];
    for (int peek = 0; peek < 2; peek++) {
        struct t_run t;
        int srv;
        t_init(&t);
        t_open(&t, peek ? SC_PEEK : 0, 1000, 1000);
        srv = t_accept();
        t_send_challenge(srv);
        t_check_first_line(srv);
        memset(big, 'x', sizeof big);
        t_send(srv, big, sizeof big);
        t_run_until(&t.failed);
        if (CHECK(t.failed)) {
            CHECK_INT(t.err.kind, SC_FAIL_LONG);
            CHECK_INT(t.err.phase, SC_ANSWER);
        }
        CHECK_INT(t.nmsg, 0);
        close(srv);
        t_drain();
    }
    /* one byte less (LB_MAX with the newline) is a line: it fails to decode, not to frame */
    {
        struct t_run t;
        int srv;
        t_init(&t);
        t_open(&t, SC_PEEK, 1000, 1000);
        srv = t_accept();
        memset(big, 'x', LB_MAX - 1);
        big[LB_MAX - 1] = '\n';
        t_send(srv, big, LB_MAX);
        t_run_until(&t.failed);
        if (CHECK(t.failed)) {
            CHECK_INT(t.err.kind, SC_FAIL_INVALID);
            CHECK(t.err.perr != PROTO_OK);
            CHECK(t.err.detail[0] != '\0');
        }
        close(srv);
        t_drain();
    }
}

/* The server closes before its challenge. */
static void t_eof_before_challenge(void)
{
    struct t_run t;
    t_init(&t);
    t_open(&t, 0, 1000, 1000);
    close(t_accept());
    t_run_until(&t.failed);
    if (CHECK(t.failed)) {
        CHECK_INT(t.err.kind, SC_FAIL_CLOSED);
        CHECK_INT(t.err.phase, SC_CHALLENGE);
        CHECK_STR(t.err.detail, "closed by the server");
    }
    CHECK_INT(t.nfirst, 0);
    t_drain();
}

/* A silent server: the answer timer runs out in SC_CHALLENGE; with SC_KEEP_DEADLINE the
 * connect deadline goes on through it. */
static void t_timeout(void)
{
    for (int keep = 0; keep < 2; keep++) {
        struct t_run t;
        uint64_t t0 = clk_ms(), took;
        int srv;
        t_init(&t);
        t_open(&t, 0, keep ? 150 : 1000, keep ? SC_KEEP_DEADLINE : 150);
        srv = t_accept();
        t_run_until(&t.failed);
        took = clk_ms() - t0;
        if (CHECK(t.failed)) {
            CHECK_INT(t.err.kind, SC_FAIL_TIMEOUT);
            CHECK_INT(t.err.phase, SC_CHALLENGE);
            CHECK_STR(t.err.detail, "timed out");
        }
        CHECK(took >= 140 && took < 1000);
        close(srv);
        t_drain();
    }
    /* sc_timeout(0) stops the limit: nothing fails */
    {
        struct t_run t;
        struct sc *sc;
        uint64_t end;
        int srv;
        t_init(&t);
        sc = t_open(&t, 0, 1000, 100);
        srv = t_accept();
        t_run_until(&t.connected);
        sc_timeout(sc, 0);
        for (end = clk_ms() + 250; clk_ms() < end;)
            uv_run(&loop_, UV_RUN_NOWAIT), poll(NULL, 0, 5);
        CHECK(!t.failed);
        sc_close(sc);
        close(srv);
        t_drain();
    }
}

/* SC_PEEK: after the line the caller stops on, the bytes behind it are still in the socket
 * for whoever takes the descriptor over (the relay's other peer); without it they are read. */
static void t_peek_leaves_rest(void)
{
    static const char rest[] = "the other peer's bytes\nand more, no newline";
    char line[PROTO_MAX_LINE + sizeof rest];
    struct proto_msg m;
    for (int peek = 0; peek < 2; peek++) {
        struct t_run t;
        char got[sizeof rest + 16];
        int srv, n;
        ssize_t r;
        t_init(&t);
        t.detach_on_msg = true;
        t_open(&t, peek ? SC_PEEK : 0, 1000, 1000);
        srv = t_accept();
        t_send_challenge(srv);
        t_check_first_line(srv);
        memset(&m, 0, sizeof m);
        m.type = PROTO_PING;
        m.u.ping.seq = 9;
        n = proto_encode(&m, line, PROTO_MAX_LINE);
        /* the answer and what follows it in one segment */
        memcpy(line + n, rest, sizeof rest - 1);
        t_send(srv, line, (size_t)n + sizeof rest - 1);
        t_run_msgs(&t, 1);
        CHECK_INT(t.nmsg, 1);
        if (!CHECK(t.fd >= 0)) {
            close(srv);
            continue;
        }
        t_drain();
        r = recv(t.fd, got, sizeof got, MSG_DONTWAIT);
        if (peek) {
            if (CHECK_INT(r, sizeof rest - 1))
                CHECK(memcmp(got, rest, sizeof rest - 1) == 0);
        } else {
            CHECK(r < 0 && errno == EAGAIN); /* the plain mode took it all */
        }
        close(t.fd);
        close(srv);
    }
}

/* Bound to a port another socket holds (the punch listener shares it): SO_REUSEADDR and
 * SO_REUSEPORT let it, and the connection leaves from that port. */
static void t_shared_port(void)
{
    struct sockaddr_storage any, held;
    struct sc_cfg cfg = {.server = (struct sockaddr *)&addr_, .local = (struct sockaddr *)&any,
                         .connect_ms = 1000, .answer_ms = 1000};
    struct sc_error e;
    struct t_run t;
    struct sc *sc;
    char err[200];
    int hold, srv;
    memset(&any, 0, sizeof any);
    any.ss_family = AF_INET;
    hold = sk_listen_reuse((struct sockaddr *)&any, 4, err, sizeof err);
    if (!CHECK(hold >= 0))
        return;
    sk_local(hold, &held);
    ep_set_port((struct sockaddr *)&any, ep_port((struct sockaddr *)&held));
    t_init(&t);
    sc = sc_open(&loop_, &cfg, &cbs_, &t, &e);
    if (!CHECK(sc != NULL)) {
        close(hold);
        return;
    }
    srv = t_accept();
    t_run_until(&t.connected);
    CHECK_INT(ep_port((struct sockaddr *)&t.local), ep_port((struct sockaddr *)&held));
    sc_close(sc);
    close(srv);
    close(hold);
    t_drain();
}

/* Nobody listens: a connect failure, reported by sc_open or by the callback. */
static void t_refused(void)
{
    struct sockaddr_storage dead;
    socklen_t len = sizeof dead;
    struct sc_cfg cfg = {.server = (struct sockaddr *)&dead, .connect_ms = 1000};
    struct sc_error e;
    struct t_run t;
    struct sc *sc;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    /* a port just freed: nothing listens there */
    CHECK(bind(fd, (struct sockaddr *)&in, sizeof in) == 0);
    getsockname(fd, (struct sockaddr *)&dead, &len);
    close(fd);
    t_init(&t);
    sc = sc_open(&loop_, &cfg, &cbs_, &t, &e);
    if (sc) {
        t_run_until(&t.failed);
        e = t.err;
        CHECK(t.failed);
    }
    CHECK_INT(e.kind, SC_FAIL_CONNECT);
    CHECK_INT(e.phase, SC_CONNECTING);
    CHECK_STR(e.detail, strerror(ECONNREFUSED));
    t_drain();
}

CHECK_MAIN(TEST(t_challenge_answer), TEST(t_overlong),
           TEST(t_eof_before_challenge), TEST(t_timeout), TEST(t_peek_leaves_rest),
           TEST(t_shared_port), TEST(t_refused))
