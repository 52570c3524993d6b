/* common/rstream on its own: two engines in one thread over a socketpair, driven by hand with a
 * fake clock (no rpump, no mailbox): bytes through the ring, an idle ring given back, a refused
 * attach leaves the fd to the caller, a dead connection detected by the clock, an upgrade the
 * peer refused at its session's end (the move ends on c). */
#include "check.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/rstream.h"

static const unsigned char k_ab[SEAL_KEYBYTES] = {1}, k_ba[SEAL_KEYBYTES] = {2};

/* one round for both engines: poll (no wait), handle; what B received is appended to got */
static void round2(struct rstream *a, struct rstream *b, uint64_t now, unsigned char *got,
                   size_t *glen, size_t gmax)
{
    struct rstream *e[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        struct pollfd pf[RST_MAX_FDS];
        int t = -1, n = rst_pollfds(e[i], pf, now, &t);
        poll(pf, (nfds_t)n, 0);
        CHECK_INT(rst_handle(e[i], pf, now), RST_OK);
        const unsigned char *p;
        size_t len = rst_rx_peek(e[i], &p);
        if (i == 1 && len && *glen + len <= gmax) {
            memcpy(got + *glen, p, len);
            *glen += len;
        }
        rst_rx_consume(e[i], len);
    }
}

static void pair(struct rstream *a, struct rstream *b, const struct rs_params *p, int sv[2])
{
    CHECK(rst_init(a, p, RBUF_MIN, 1000) == 0);
    CHECK(rst_init(b, p, RBUF_MIN, 1000) == 0);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    struct rst_attach aa = {.fd = sv[0], .tx = k_ab, .rx = k_ba};
    struct rst_attach ab = {.fd = sv[1], .tx = k_ba, .rx = k_ab};
    CHECK(rst_attach(a, &aa, 1000) == 0);
    CHECK(rst_attach(b, &ab, 1000) == 0);
}

static void t_ring_and_trim(void)
{
    struct rstream a, b;
    struct rs_params p;
    int sv[2];
    static unsigned char want[200000], got[200000];
    size_t glen = 0, put = 0;
    rs_params_default(&p);
    pair(&a, &b, &p, sv);
    for (size_t i = 0; i < sizeof want; i++)
        want[i] = (unsigned char)(i * 7 + i / 251);
    uint64_t now = 1000;
    for (int k = 0; k < 2000 && glen < sizeof want; k++, now++) {
        unsigned char *sp;
        size_t room;
        CHECK(rst_tx_space(&a, &sp, &room) == 0);
        if (room > sizeof want - put)
            room = sizeof want - put;
        if (room && rst_tx_want(&a)) {
            memcpy(sp, want + put, room);
            rst_tx_commit(&a, room);
            put += room;
        }
        round2(&a, &b, now, got, &glen, sizeof got);
    }
    CHECK_INT(glen, sizeof want);
    CHECK(memcmp(got, want, sizeof want) == 0);
    /* all acknowledged after the delayed ACK; then a heartbeat's idleness gives the ring back */
    for (int k = 0; k < 50; k++, now += 10)
        round2(&a, &b, now, got, &glen, sizeof got);
    CHECK_INT(rs_tx_acked(rst_sess(&a)), sizeof want);
    CHECK(rbuf_storage(rs_ring(rst_sess(&a))) > 0); /* not yet: it was busy a moment ago */
    for (int k = 0; k < 10; k++, now += 1000)
        round2(&a, &b, now, got, &glen, sizeof got);
    CHECK_INT(rbuf_storage(rs_ring(rst_sess(&a))), 0);
    CHECK_INT(rs_state(rst_sess(&a)), RS_ACTIVE);
    rst_free(&a);
    rst_free(&b);
}

/* a refused attach (a resume while ACTIVE, a lying peer_rx) leaves the fd open, the session as
 * it was */
static void t_refused_attach(void)
{
    struct rstream a, b;
    int sv[2], x[2];
    pair(&a, &b, NULL, sv);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, x) == 0);
    struct rst_attach r1 = {.fd = x[0], .epoch = 1, .tx = k_ab, .rx = k_ba};
    CHECK_INT(rst_attach(&a, &r1, 1000), -1); /* ACTIVE: only an upgrade */
    struct rst_attach r2 = {
        .fd = x[0], .epoch = 1, .tx = k_ab, .rx = k_ba, .upgrade = true, .peer_rx = 5};
    CHECK_INT(rst_attach(&a, &r2, 1000), -1); /* peer_rx beyond what was ever sent */
    CHECK(fcntl(x[0], F_GETFD) >= 0);
    CHECK_INT(rs_state(rst_sess(&a)), RS_ACTIVE);
    close(x[0]);
    close(x[1]);
    rst_free(&a);
    rst_free(&b);
}

/* nothing received for dead_ms while reading: the connection fails, RST_LOST once */
static void t_dead(void)
{
    struct rstream a, b;
    struct rs_params p;
    int sv[2];
    rs_params_default(&p);
    p.heartbeat_ms = 1000000; /* b stays silent */
    pair(&a, &b, &p, sv);
    struct pollfd pf[RST_MAX_FDS];
    int t = -1, n = rst_pollfds(&a, pf, 1000, &t);
    CHECK(t > 0);
    poll(pf, (nfds_t)n, 0);
    CHECK_INT(rst_handle(&a, pf, 1000 + p.dead_ms - 1), RST_OK);
    CHECK_INT(rst_handle(&a, NULL, 1000 + p.dead_ms), RST_LOST);
    CHECK(strstr(rst_why(&a), "nothing received") != NULL);
    CHECK_INT(rs_state(rst_sess(&a)), RS_SUSPENDED);
    CHECK_INT(rst_handle(&a, NULL, 1000 + p.dead_ms + 1), RST_OK);
    rst_free(&a);
    rst_free(&b);
}

/* n bytes into e's ring, then its EOF */
static void put_eof(struct rstream *e, size_t n)
{
    unsigned char *sp;
    size_t room;
    CHECK(rst_tx_space(e, &sp, &room) == 0 && room >= n);
    memset(sp, 0x5a, n);
    rst_tx_commit(e, n);
    rst_tx_eof(e);
}

/* one rst_handle of e after a poll that does not wait */
static enum rst_ev step(struct rstream *e, uint64_t now)
{
    struct pollfd pf[RST_MAX_FDS];
    int t = -1, n = rst_pollfds(e, pf, now, &t);
    poll(pf, (nfds_t)n, 0);
    enum rst_ev v = rst_handle(e, pf, now);
    const unsigned char *p;
    rst_rx_consume(e, rst_rx_peek(e, &p));
    return v;
}

/* The upgrade racing the end (test_relay "--direct-timeout 0"): b (X) reached ENDING on c, so
 * its data plane refuses the upgrade and closes d, while a (Y), its FIN not acknowledged yet,
 * moved. a must end with b's ACK and TAG_FINAL on c (RST_DONE), not suspend (RST_LOST: a
 * resume the ended peer never answers, 120 s); b takes a's MOVE and TAG_FINAL as its end, no
 * protocol error. With our MOVE out before d hangs up (move_out) or not. */
static void t_upgrade_refused_at_end(void)
{
    for (int move_out = 0; move_out < 2; move_out++) {
        struct rstream a, b;
        int sv[2], y[2];
        uint64_t now = 1000;
        pair(&a, &b, NULL, sv);
        put_eof(&b, 50);
        CHECK_INT(step(&b, now), RST_OK); /* its data and FIN out */
        put_eof(&a, 100);
        CHECK_INT(step(&a, now), RST_OK); /* b's FIN read and acknowledged, our data and FIN out */
        CHECK_INT(step(&b, now), RST_OK);
        CHECK_INT(rs_state(rst_sess(&b)), RS_ENDING); /* its ACK and TAG_FINAL on c for a */
        CHECK_INT(rs_state(rst_sess(&a)), RS_ACTIVE);
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, y) == 0);
        struct rst_attach ua = {.fd = y[0], .epoch = 1, .tx = k_ab, .rx = k_ba, .upgrade = true};
        struct rst_attach ub = {.fd = y[1], .epoch = 1, .tx = k_ba, .rx = k_ab, .upgrade = true};
        CHECK_INT(rst_attach(&a, &ua, now), 0);
        CHECK_INT(rst_attach(&b, &ub, now), -1); /* ENDING: refused, closed (rpump_on_conn) */
        close(y[1]);
        if (move_out)
            CHECK_INT(rst_handle(&a, NULL, now), RST_OK); /* MOVE, TAG_FINAL on c; AT on d */
        enum rst_ev va = RST_OK;
        for (int k = 0; k < 10 && va == RST_OK; k++)
            va = step(&a, now);
        CHECK_INT(va, RST_DONE);
        CHECK_INT(rs_state(rst_sess(&a)), RS_DONE);
        enum rst_ev vb = RST_OK;
        for (int k = 0; k < 10 && vb == RST_OK; k++)
            vb = step(&b, now);
        CHECK_INT(vb, RST_DONE);
        CHECK_MSG(strstr(rst_why(&b), "protocol") == NULL, "b: %s", rst_why(&b));
        rst_free(&a);
        rst_free(&b);
    }
}

CHECK_MAIN(TEST(t_ring_and_trim), TEST(t_refused_attach), TEST(t_dead),
           TEST(t_upgrade_refused_at_end))
