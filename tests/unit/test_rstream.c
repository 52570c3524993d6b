/* common/rstream on its own: two engines in one thread over a socketpair, driven by hand with a
 * fake clock (no rpump, no mailbox): bytes through the ring, an idle ring given back, a refused
 * attach leaves the fd to the caller, a dead connection detected by the clock. */
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

CHECK_MAIN(TEST(t_ring_and_trim), TEST(t_refused_attach), TEST(t_dead))
