/* The relay's quotas against one IPv6 /48: its 65536 /64s each have their own --relay-per-ip and
 * --relay-offers-per-peer, so without a /48 aggregate one site could hold every relay session
 * and fill the offer table. */
#include "check.h"
#include "rendezvous/limits.h"
#include "rendezvous/relay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in6 site_addr(unsigned net)
{
    struct sockaddr_in6 a;
    char ip[64];
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    snprintf(ip, sizeof ip, "2001:db8:1:%x::1", net);
    inet_pton(AF_INET6, ip, &a.sin6_addr);
    return a;
}

static const struct rly_cfg cfg = {.enabled = true,
                                   .max_sessions = 64,
                                   .wait = 30,
                                   .per_peer = 4,
                                   .per_ip = 8,
                                   .offers_per_peer = 64};

static void t_offers(void)
{
    uv_loop_t loop;
    struct rly *r;
    struct sockaddr_in other = {.sin_family = AF_INET};
    char session[PROTO_SESSION_LEN + 1], t0[40], t1[40], why[200], a[64], b[64];
    unsigned ok = 0;
    uv_loop_init(&loop);
    other.sin_addr.s_addr = htonl(0xc0000201);
    if (!CHECK((r = rly_new(&loop, &cfg, NULL, NULL))))
        return;
    for (unsigned net = 0; net < 256; net++) {
        struct sockaddr_in6 src = site_addr(net);
        for (unsigned k = 0; k < 64; k++) {
            struct rly_party p0 = {a, NULL, (struct sockaddr *)&src};
            struct rly_party p1 = {b, NULL, (struct sockaddr *)&other};
            snprintf(a, sizeof a, "a%u-%u", net, k);
            snprintf(b, sizeof b, "b%u-%u", net, k);
            snprintf(session, sizeof session, "%032x", net * 64 + k);
            ok += rly_offer(r, session, &p0, &p1, t0, t1, why, sizeof why) == 0;
        }
    }
    CHECK_MSG(ok == 64 * LIM_SITE_FACTOR, "one /48 has %u offers pending, want %u", ok,
              64 * LIM_SITE_FACTOR);
    rly_stop(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    rly_free(r);
    uv_loop_close(&loop);
}

/* A connected loopback TCP socket for the relay to own; *peer is the other end. */
static int tcp_pair(int lfd, const struct sockaddr_in *at, int *peer)
{
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (const struct sockaddr *)at, sizeof *at) < 0) {
        if (c >= 0)
            close(c);
        return -1;
    }
    *peer = c;
    return accept(lfd, NULL, NULL);
}

static void t_sessions(void)
{
    uv_loop_t loop;
    struct rly *r;
    struct sockaddr_in at = {.sin_family = AF_INET};
    socklen_t alen = sizeof at;
    char session[PROTO_SESSION_LEN + 1], t0[40], t1[40], why[200], a[64], b[64], code[40],
        msg[200];
    int lfd = socket(AF_INET, SOCK_STREAM, 0), peers[64];
    unsigned ok = 0, n = 0;
    at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&at, sizeof at) == 0 &&
               listen(lfd, 128) == 0 && getsockname(lfd, (struct sockaddr *)&at, &alen) == 0))
        return;
    uv_loop_init(&loop);
    if (!CHECK((r = rly_new(&loop, &cfg, NULL, NULL))))
        return;
    /* 8 /64s of one /48, each within --relay-per-ip 8: 64 sessions, all the relay has */
    for (unsigned net = 0; net < 8; net++) {
        struct sockaddr_in6 src = site_addr(net);
        for (unsigned k = 0; k < 8; k++) {
            struct rly_party p0 = {a, NULL, (struct sockaddr *)&src};
            struct rly_party p1 = {b, NULL, (struct sockaddr *)&src};
            int fd;
            snprintf(a, sizeof a, "a%u-%u", net, k);
            snprintf(b, sizeof b, "b%u-%u", net, k);
            snprintf(session, sizeof session, "%032x", net * 8 + k);
            if (rly_offer(r, session, &p0, &p1, t0, t1, why, sizeof why) < 0)
                continue;
            if ((fd = tcp_pair(lfd, &at, &peers[n])) < 0)
                continue;
            n++;
            if (rly_join(r, session, t0, fd, "x", (struct sockaddr *)&src, NULL, 0, code,
                         sizeof code, msg, sizeof msg) == 0)
                ok++;
            else
                close(fd);
        }
    }
    CHECK_MSG(ok == 16, "one /48 holds %u of the relay's 64 sessions, want 16 (a quarter)", ok);
    CHECK_INT(rly_active(r), ok);
    {
        struct rly_stats st;
        rly_stats(r, &st); /* the metrics' view: every joined side is a started session */
        CHECK_INT(st.active, ok);
        CHECK_INT(st.sessions, ok);
        CHECK_INT(st.bytes, 0);
        rly_stop(r);
        uv_run(&loop, UV_RUN_DEFAULT);
        rly_stats(r, &st); /* each waiting side was told server-shutdown */
        CHECK_INT(st.active, 0);
        CHECK_INT(st.sessions, ok);
        CHECK_INT(st.errors[PC_SERVER_SHUTDOWN], ok);
    }
    rly_free(r);
    uv_loop_close(&loop);
    for (unsigned i = 0; i < n; i++)
        close(peers[i]);
    close(lfd);
}

CHECK_MAIN(TEST(t_offers), TEST(t_sessions))
