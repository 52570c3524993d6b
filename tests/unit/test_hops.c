/* hops.c: the TTL rule (hops_choose, hops_choose_dest) for the lab's topologies and every branch
 * of it, which addresses count as a NAT's inside (hops_private4), and the scan itself on
 * loopback: one report, the server's answer at TTL 1, a cancel that reports nothing. */
#include "check.h"
#include "peer/hops.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <time.h>

/* from[] out of "192.168.1.1 - 203.0.113.254": one word per TTL, "-" for no answer */
static int mk(struct sockaddr_storage *from, const char *spec)
{
    char buf[256], *save = NULL, *w;
    int n = 0;
    memset(from, 0, sizeof(struct sockaddr_storage) * HOPS_MAX_TTL);
    snprintf(buf, sizeof buf, "%s", spec);
    for (w = strtok_r(buf, " ", &save); w && n < HOPS_MAX_TTL;
         w = strtok_r(NULL, " ", &save), n++) {
        struct sockaddr_in *s = (struct sockaddr_in *)&from[n];
        if (strcmp(w, "-") == 0)
            continue;
        s->sin_family = AF_INET;
        if (inet_pton(AF_INET, w, &s->sin_addr) != 1)
            check_fail_(__FILE__, __LINE__, "bad address %s in the test", w);
    }
    return n;
}

static bool priv(const char *a)
{
    struct sockaddr_in s;
    memset(&s, 0, sizeof s);
    s.sin_family = AF_INET;
    inet_pton(AF_INET, a, &s.sin_addr);
    return hops_private4((const struct sockaddr *)&s);
}

static void t_private4_edges(void)
{
    CHECK(!priv("9.255.255.255"));
    CHECK(priv("10.0.0.0"));
    CHECK(priv("10.255.255.255"));
    CHECK(!priv("11.0.0.0"));
    CHECK(!priv("172.15.255.255"));
    CHECK(priv("172.16.0.0"));
    CHECK(priv("172.31.255.255"));
    CHECK(!priv("172.32.0.0"));
    CHECK(!priv("192.167.255.255"));
    CHECK(priv("192.168.0.1"));
    CHECK(priv("192.168.255.255"));
    CHECK(!priv("192.169.0.0"));
    CHECK(!priv("100.63.255.255"));
    CHECK(priv("100.64.0.0"));
    CHECK(priv("100.127.255.255"));
    CHECK(!priv("100.128.0.0"));
    CHECK(!priv("169.253.255.255"));
    CHECK(priv("169.254.0.1"));
    CHECK(!priv("169.255.0.0"));
    CHECK(priv("127.0.0.1"));
    CHECK(priv("127.255.255.254"));
    CHECK(!priv("128.0.0.0"));
    /* the documentation ranges are the lab's internet: global */
    CHECK(!priv("192.0.2.1"));
    CHECK(!priv("198.51.100.1"));
    CHECK(!priv("203.0.113.254"));
    CHECK(!priv("8.8.8.8"));
    /* not IPv4 at all, or nothing */
    {
        struct sockaddr_in6 s6;
        memset(&s6, 0, sizeof s6);
        s6.sin6_family = AF_INET6;
        inet_pton(AF_INET6, "fd00::1", &s6.sin6_addr);
        CHECK(!hops_private4((const struct sockaddr *)&s6));
        CHECK(!hops_private4(NULL));
    }
}

static void t_lab_o(void)
{
    /* hard-drop: alice's NAT at hop 1, the wan router (global) at hop 2, the server at 3 */
    struct sockaddr_storage f[HOPS_MAX_TTL];
    struct hops_result r;
    int n = mk(f, "192.168.1.1 203.0.113.254");
    r = hops_choose(f, n);
    CHECK_INT(r.ttl, 2);
    CHECK(r.measured);
    CHECK_INT(r.answers, 2);
    CHECK_STR(r.why, "TTL 2: 203.0.113.254 is the first global router (TTL 1: 192.168.1.1)");
    /* as hops_start sees it: the server answered from TTL 3 on; the same choice */
    r = hops_choose_dest(f, HOPS_MAX_TTL, 3);
    CHECK_INT(r.ttl, 2);
    CHECK(r.measured);
    CHECK_STR(r.why, "TTL 2: 203.0.113.254 is the first global router (TTL 1: 192.168.1.1)");
}

static void t_lab_q(void)
{
    /* hard-cgnat: home NAT at 1, the carrier NAT (100.64/10 inside) at 2, the wan router at 3 */
    struct sockaddr_storage f[HOPS_MAX_TTL];
    struct hops_result r;
    mk(f, "192.168.1.1 100.64.0.1 203.0.113.254");
    r = hops_choose_dest(f, HOPS_MAX_TTL, 4);
    CHECK_INT(r.ttl, 3);
    CHECK(r.measured);
    CHECK_INT(r.answers, 3);
    CHECK_STR(r.why, "TTL 3: 203.0.113.254 is the first global router (TTL 1: 192.168.1.1, TTL 2: "
                     "100.64.0.1)");
}

static void t_gaps(void)
{
    struct sockaddr_storage f[HOPS_MAX_TTL];
    struct hops_result r;
    /* the home router does not answer: the first global one still decides */
    mk(f, "- 198.51.100.1 198.51.100.2");
    r = hops_choose(f, HOPS_MAX_TTL);
    CHECK_INT(r.ttl, 2);
    CHECK(r.measured);
    CHECK_INT(r.answers, 2);
    CHECK_STR(r.why, "TTL 2: 198.51.100.1 is the first global router (TTL 1: none)");
    /* a silent carrier NAT between: the global router at 3 is past it */
    mk(f, "192.168.1.1 - 203.0.113.254");
    r = hops_choose(f, HOPS_MAX_TTL);
    CHECK_INT(r.ttl, 3);
    CHECK_STR(r.why, "TTL 3: 203.0.113.254 is the first global router (TTL 1: 192.168.1.1, TTL 2: "
                     "none)");
    /* a private router above a global one (an ISP's own numbering) does not move it */
    mk(f, "192.168.1.1 203.0.113.254 10.1.1.1 198.51.100.1");
    CHECK_INT(hops_choose(f, HOPS_MAX_TTL).ttl, 2);
    /* a global answer at TTL 1: no NAT that answers; TTL 1 */
    mk(f, "198.51.100.1 198.51.100.2");
    r = hops_choose(f, HOPS_MAX_TTL);
    CHECK_INT(r.ttl, 1);
    CHECK_STR(r.why, "TTL 1: 198.51.100.1 is the first global router");
}

static void t_private_only(void)
{
    struct sockaddr_storage f[HOPS_MAX_TTL];
    struct hops_result r;
    /* the internet's routers are silent: one past the last private router */
    mk(f, "192.168.1.1");
    r = hops_choose(f, HOPS_MAX_TTL);
    CHECK_INT(r.ttl, 2);
    CHECK(r.measured);
    CHECK_INT(r.answers, 1);
    CHECK_STR(r.why, "TTL 1: 192.168.1.1 is the last router that answered, a private one; TTL 2 "
                     "passes it");
    mk(f, "192.168.1.1 100.64.0.1");
    CHECK_INT(hops_choose(f, HOPS_MAX_TTL).ttl, 3);
    /* a gap between private routers: the last one counts */
    mk(f, "192.168.1.1 - 10.0.0.1 - -");
    r = hops_choose(f, HOPS_MAX_TTL);
    CHECK_INT(r.ttl, 4);
    CHECK_STR(r.why, "TTL 3: 10.0.0.1 is the last router that answered, a private one; TTL 4 "
                     "passes it (TTL 1: 192.168.1.1, TTL 2: none)");
    /* every TTL private: one past the scan (still within the plan's 0-16) */
    mk(f, "10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5 10.0.0.6 10.0.0.7 10.0.0.8");
    r = hops_choose(f, HOPS_MAX_TTL);
    CHECK_INT(r.ttl, HOPS_MAX_TTL + 1);
    CHECK_INT(r.answers, HOPS_MAX_TTL);
    CHECK(strlen(r.why) < sizeof r.why); /* the list is cut, the string still ends */
}

static void t_server_reached(void)
{
    struct sockaddr_storage f[HOPS_MAX_TTL];
    struct hops_result r;
    /* the bridged lab: the server sits right outside alice's NAT, no router between */
    mk(f, "192.168.1.1");
    r = hops_choose_dest(f, HOPS_MAX_TTL, 2);
    CHECK_INT(r.ttl, 2);
    CHECK(r.measured);
    CHECK_STR(r.why, "TTL 2 reached the server with no global router before it, so it passes our "
                     "NATs (TTL 1: 192.168.1.1)");
    /* silent routers before the server: the server's TTL, not one past the last private one */
    mk(f, "192.168.1.1 - -");
    r = hops_choose_dest(f, HOPS_MAX_TTL, 4);
    CHECK_INT(r.ttl, 4);
    CHECK(r.measured);
    /* nothing answered but the server */
    mk(f, "");
    r = hops_choose_dest(f, HOPS_MAX_TTL, 3);
    CHECK_INT(r.ttl, 3);
    CHECK(r.measured);
    CHECK_INT(r.answers, 0);
    /* the server on our link: nothing to measure */
    r = hops_choose_dest(f, HOPS_MAX_TTL, 1);
    CHECK_INT(r.ttl, HOPS_DEFAULT_TTL);
    CHECK(!r.measured);
    CHECK_STR(r.why, "TTL 1 reached the server: no router to measure, TTL 3 (the default)");
    /* a time exceeded at or above the server's TTL cannot be a router before it: ignored */
    mk(f, "192.168.1.1 203.0.113.254");
    r = hops_choose_dest(f, HOPS_MAX_TTL, 2);
    CHECK_INT(r.ttl, 2);
    CHECK(strstr(r.why, "reached the server") != NULL);
}

static void t_nothing(void)
{
    struct sockaddr_storage f[HOPS_MAX_TTL];
    struct hops_result r;
    mk(f, "- - - - - - - -");
    r = hops_choose(f, HOPS_MAX_TTL);
    CHECK_INT(r.ttl, HOPS_DEFAULT_TTL);
    CHECK(!r.measured);
    CHECK_INT(r.answers, 0);
    CHECK_STR(r.why, "no router answered: TTL 3 (the default)");
    r = hops_choose(NULL, 0);
    CHECK_INT(r.ttl, HOPS_DEFAULT_TTL);
    CHECK(!r.measured);
    r = hops_choose(f, -1);
    CHECK_INT(r.ttl, HOPS_DEFAULT_TTL);
    /* an IPv6 answer is no IPv4 router's */
    {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&f[0];
        s6->sin6_family = AF_INET6;
        r = hops_choose(f, 1);
        CHECK_INT(r.ttl, HOPS_DEFAULT_TTL);
        CHECK_INT(r.answers, 0);
    }
}

/* ---- the scan on a real loop, on loopback */

struct seen {
    int calls;
    struct hops_result r;
    struct hops *h;
};

static void on_done(struct hops *h, const struct hops_result *r, void *arg)
{
    struct seen *s = arg;
    s->calls++;
    s->r = *r;
    s->h = h;
    hops_cancel(h); /* inside the report: a no-op, the scan frees itself */
}

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void lo4(struct sockaddr_in *s)
{
    memset(s, 0, sizeof *s);
    s->sin_family = AF_INET;
    s->sin_port = htons(7000); /* replaced by the traceroute ports */
    s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static void t_scan_loopback(void)
{
    /* 127.0.0.1 answers every TTL with a port unreachable (loopback is not rate limited): the
     * server at TTL 1, so the default TTL, and at once rather than after HOPS_WAIT_MS */
    uv_loop_t loop;
    struct sockaddr_in to;
    struct seen s;
    char err[128] = "";
    struct hops *h;
    uint64_t t0, dt;
    memset(&s, 0, sizeof s);
    lo4(&to);
    uv_loop_init(&loop);
    t0 = ms_now();
    h = hops_start(&loop, (const struct sockaddr *)&to, on_done, &s, err, sizeof err);
    if (!CHECK_MSG(h != NULL, "hops_start: %s", err)) {
        uv_loop_close(&loop);
        return;
    }
    CHECK_INT(s.calls, 0); /* never from hops_start itself */
    uv_run(&loop, UV_RUN_DEFAULT);
    dt = ms_now() - t0;
    CHECK_INT(s.calls, 1);
    CHECK(s.h == h);
    CHECK_INT(s.r.ttl, HOPS_DEFAULT_TTL);
    CHECK(!s.r.measured);
    CHECK_INT(s.r.answers, 0);
    CHECK_MSG(strstr(s.r.why, "TTL 1 reached the server") != NULL, "why: %s", s.r.why);
    CHECK_MSG(dt < HOPS_WAIT_MS / 2, "took %llu ms", (unsigned long long)dt);
    /* every handle closed and freed: the loop closes */
    CHECK_INT(uv_loop_close(&loop), 0);
}

static void t_scan_cancel(void)
{
    uv_loop_t loop;
    struct sockaddr_in to;
    struct seen s;
    char err[128] = "";
    struct hops *h;
    memset(&s, 0, sizeof s);
    lo4(&to);
    uv_loop_init(&loop);
    h = hops_start(&loop, (const struct sockaddr *)&to, on_done, &s, err, sizeof err);
    if (!CHECK_MSG(h != NULL, "hops_start: %s", err)) {
        uv_loop_close(&loop);
        return;
    }
    hops_cancel(h);
    uv_run(&loop, UV_RUN_DEFAULT); /* returns: nothing is left active */
    CHECK_INT(s.calls, 0);
    CHECK_INT(uv_loop_close(&loop), 0);
    hops_cancel(NULL);

    /* cancelled after the loop ran a while (the answers read, the deadline pending or not) */
    memset(&s, 0, sizeof s);
    uv_loop_init(&loop);
    h = hops_start(&loop, (const struct sockaddr *)&to, on_done, &s, err, sizeof err);
    if (!CHECK_MSG(h != NULL, "hops_start: %s", err)) {
        uv_loop_close(&loop);
        return;
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    if (s.calls == 0)
        hops_cancel(h);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(s.calls <= 1);
    CHECK_INT(uv_loop_close(&loop), 0);
}

static void t_scan_refuses(void)
{
    uv_loop_t loop;
    struct sockaddr_in6 s6;
    struct sockaddr_in to;
    struct seen s;
    char err[128] = "";
    memset(&s, 0, sizeof s);
    memset(&s6, 0, sizeof s6);
    s6.sin6_family = AF_INET6;
    s6.sin6_addr = in6addr_loopback;
    uv_loop_init(&loop);
    CHECK(hops_start(&loop, (const struct sockaddr *)&s6, on_done, &s, err, sizeof err) == NULL);
    CHECK_STR(err, "TTL discovery is IPv4 only");
    lo4(&to);
    CHECK(hops_start(&loop, (const struct sockaddr *)&to, NULL, &s, err, sizeof err) == NULL);
    /* a destination no packet can be sent to: every send fails, so it cannot start */
    to.sin_addr.s_addr = htonl(0xffffffffu); /* broadcast without SO_BROADCAST: EACCES */
    CHECK(hops_start(&loop, (const struct sockaddr *)&to, on_done, &s, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "sendto with TTL") != NULL, "err: %s", err);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(s.calls, 0);
    CHECK_INT(uv_loop_close(&loop), 0);
}

CHECK_MAIN(TEST(t_private4_edges), TEST(t_lab_o), TEST(t_lab_q), TEST(t_gaps), TEST(t_private_only),
           TEST(t_server_reached), TEST(t_nothing), TEST(t_scan_loopback), TEST(t_scan_cancel),
           TEST(t_scan_refuses))
