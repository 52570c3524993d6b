/* A peer's check of a birthday plan (peer/bdplan.c): every refusal of design section 7 ("What
 * a peer refuses"), the caps of its own --birthday-k/-m, and the summary of an attempt that
 * found no winner (the words of the path line's "direct failed: ..."). */
#include <string.h>

#include "check.h"
#include "common/endpoint.h"
#include "peer/bdplan.h"

static struct sockaddr_storage addr(const char *s)
{
    struct sockaddr_storage a;
    char err[100];
    memset(&a, 0, sizeof a);
    if (ep_parse(s, &a, err, sizeof err) < 0)
        fprintf(stderr, "bad test endpoint %s: %s\n", s, err);
    return a;
}

static struct sockaddr_storage observed;

/* A plan the server might send the hard side, all fields valid, aimed at observed. */
static struct proto_bday hard_plan(void)
{
    struct proto_bday p = {.role = PROTO_BDAY_HARD,
                           .k = 256,
                           .m = 1024,
                           .ttl = 0,
                           .pace_ms = 800,
                           .port_lo = 1024,
                           .port_hi = 65535,
                           .easy_delay_us = 50000};
    p.target = addr("203.0.113.20:40000");
    return p;
}

static struct bdplan_ctx ctx_for(enum proto_nat verdict)
{
    observed = addr("203.0.113.20:40000");
    return (struct bdplan_ctx){.observed = &observed,
                               .verdict = verdict,
                               .loopback_ok = false,
                               .cap_k = 256,
                               .cap_m = 1024,
                               .announced = true,
                               .busy = false};
}

/* Refused, and why says what (a word of it). */
static int refused(const struct proto_bday *p, const struct bdplan_ctx *c, const char *word)
{
    struct proto_bday out;
    char why[300] = "";
    memset(&out, 0x5a, sizeof out);
    if (bdplan_check(p, c, &out, why, sizeof why))
        return CHECK_MSG(0, "accepted, expected a refusal mentioning \"%s\"", word);
    return CHECK_MSG(strstr(why, word) != NULL, "why \"%s\" lacks \"%s\"", why, word);
}

static void t_accept_hard(void)
{
    struct proto_bday p = hard_plan(), out;
    struct bdplan_ctx c = ctx_for(PROTO_NAT_DEPENDENT);
    char why[300];
    CHECK(bdplan_check(&p, &c, &out, why, sizeof why));
    CHECK_INT(out.role, PROTO_BDAY_HARD);
    CHECK_INT(out.k, 256);
    CHECK_INT(out.m, 1024);
    CHECK_INT(out.pace_ms, 800);
    CHECK(ep_equal((struct sockaddr *)&out.target, (struct sockaddr *)&p.target));
    /* the target's port may differ from observed's (the port-preserved guess): the address is
     * what must agree */
    p.target = addr("203.0.113.20:51000");
    CHECK(bdplan_check(&p, &c, &out, why, sizeof why));
}

static void t_accept_easy(void)
{
    struct proto_bday p = hard_plan(), out;
    struct bdplan_ctx c = ctx_for(PROTO_NAT_INDEPENDENT);
    char why[300];
    p.role = PROTO_BDAY_EASY;
    p.target = addr("203.0.113.20:1"); /* the port is not used */
    CHECK(bdplan_check(&p, &c, &out, why, sizeof why));
    CHECK_INT(out.role, PROTO_BDAY_EASY);
    CHECK_INT(out.m, 1024);
}

/* A plan above our own flags is capped to them, not refused; only what we spend is capped. */
static void t_caps(void)
{
    struct proto_bday p = hard_plan(), out;
    struct bdplan_ctx c = ctx_for(PROTO_NAT_DEPENDENT);
    char why[300];
    p.k = 512;
    p.m = 4096;
    c.cap_k = 100;
    c.cap_m = 10;
    CHECK(bdplan_check(&p, &c, &out, why, sizeof why));
    CHECK_INT(out.k, 100);
    CHECK_INT(out.m, 4096); /* the easy side's count: informational here */
    c = ctx_for(PROTO_NAT_INDEPENDENT);
    c.cap_m = 300;
    c.cap_k = 1;
    p.role = PROTO_BDAY_EASY;
    CHECK(bdplan_check(&p, &c, &out, why, sizeof why));
    CHECK_INT(out.m, 300);
    CHECK_INT(out.k, 512);
    /* below the caps: as planned */
    p.m = 200;
    CHECK(bdplan_check(&p, &c, &out, why, sizeof why));
    CHECK_INT(out.m, 200);
}

static void t_not_taking_part(void)
{
    struct proto_bday p = hard_plan();
    struct bdplan_ctx c = ctx_for(PROTO_NAT_DEPENDENT);
    c.cap_k = 0;
    refused(&p, &c, "--birthday-k");
    c = ctx_for(PROTO_NAT_DEPENDENT);
    c.cap_m = 0;
    refused(&p, &c, "--birthday-m");
    /* a plan for a peer whose hello did not carry birthday (the server had not offered it) */
    c = ctx_for(PROTO_NAT_DEPENDENT);
    c.announced = false;
    refused(&p, &c, "did not announce");
}

/* The server must not aim our SYNs at a third party. */
static void t_target_not_observed(void)
{
    struct proto_bday p = hard_plan();
    struct bdplan_ctx c = ctx_for(PROTO_NAT_DEPENDENT);
    p.target = addr("198.51.100.7:40000");
    refused(&p, &c, "not the peer's observed address 203.0.113.20");
    p = hard_plan();
    p.role = PROTO_BDAY_EASY;
    p.target = addr("203.0.113.21:40000");
    c = ctx_for(PROTO_NAT_INDEPENDENT);
    refused(&p, &c, "not the peer's observed address");
}

/* We take only a role we measured. */
static void t_role_verdict(void)
{
    struct proto_bday p = hard_plan();
    struct bdplan_ctx c = ctx_for(PROTO_NAT_INDEPENDENT);
    refused(&p, &c, "makes us hard");
    c = ctx_for(PROTO_NAT_UNKNOWN);
    refused(&p, &c, "did not measure");
    p.role = PROTO_BDAY_EASY;
    refused(&p, &c, "did not measure");
    c = ctx_for(PROTO_NAT_DEPENDENT);
    refused(&p, &c, "makes us easy");
}

/* Global unicast IPv4 only; loopback only in tests (the session sets loopback_ok only with the
 * server on loopback and TCPUNCH_TEST_BIRTHDAY_LOOPBACK=1). */
static void t_target_kind(void)
{
    static const char *const bad[][2] = {
        {"192.168.1.5:4000", "private"},      {"10.0.0.1:4000", "private"},
        {"100.64.0.9:4000", "private"},       {"127.0.0.1:4000", "loopback"},
        {"169.254.169.254:80", "link-local"}, {"0.0.0.0:4000", "unspecified"},
        {"224.0.0.1:4000", "multicast"},      {"255.255.255.255:4000", "broadcast"},
        {"240.0.0.1:4000", "reserved"},
    };
    struct proto_bday out;
    char why[300];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct proto_bday p = hard_plan();
        struct bdplan_ctx c = ctx_for(PROTO_NAT_DEPENDENT);
        p.target = addr(bad[i][0]);
        observed = p.target; /* even when the server observed it so */
        CHECK_MSG(refused(&p, &c, bad[i][1]), "target %s", bad[i][0]);
    }
    /* IPv6: birthday punching is IPv4 only */
    struct proto_bday p = hard_plan();
    struct bdplan_ctx c = ctx_for(PROTO_NAT_DEPENDENT);
    p.target = addr("[2001:db8::1]:4000");
    observed = p.target;
    refused(&p, &c, "not an IPv4 address");
    /* loopback without the test switch: refused, saying why */
    p = hard_plan();
    p.target = addr("127.0.0.1:4000");
    observed = p.target;
    refused(&p, &c,
            "a scan of our own ports; allowed only in tests, with "
            "TCPUNCH_TEST_BIRTHDAY_LOOPBACK=1");
    /* the test switch (and the server on loopback: everybody is on this host) */
    c.loopback_ok = true;
    CHECK(bdplan_check(&p, &c, &out, why, sizeof why));
}

/* Decoding refuses these already; the check does again, each with its field's name. */
enum field { F_K, F_M, F_TTL, F_PACE, F_LO, F_HI, F_DELAY, F_ROLE };

static void set_field(struct proto_bday *p, enum field f, int v)
{
    switch (f) {
    case F_K:
        p->k = v;
        break;
    case F_M:
        p->m = v;
        break;
    case F_TTL:
        p->ttl = v;
        break;
    case F_PACE:
        p->pace_ms = v;
        break;
    case F_LO:
        p->port_lo = v;
        break;
    case F_HI:
        p->port_hi = v;
        break;
    case F_DELAY:
        p->easy_delay_us = v;
        break;
    case F_ROLE:
        p->role = (enum proto_bday_role)v;
        break;
    }
}

static void t_ranges(void)
{
    static const struct {
        enum field f;
        int v;
        const char *word;
    } cases[] = {
        {F_K, 0, "k 0"},
        {F_K, PROTO_BDAY_MAX_K + 1, "k 513"},
        {F_M, 0, "m 0"},
        {F_M, PROTO_BDAY_MAX_M + 1, "m 4097"},
        {F_TTL, -1, "ttl -1"},
        {F_TTL, PROTO_BDAY_MAX_TTL + 1, "ttl 17"},
        {F_PACE, PROTO_BDAY_MIN_PACE_MS - 1, "pace_ms 99"},
        {F_PACE, PROTO_BDAY_MAX_PACE_MS + 1, "pace_ms 2001"},
        {F_LO, 0, "ports [0, 65535]"},
        {F_LO, 65535 + 1, "ports [65536, 65535]"}, /* above hi */
        {F_HI, 1023, "ports [1024, 1023]"},
        {F_HI, 65536, "ports [1024, 65536]"},
        {F_DELAY, -1, "easy_delay_us -1"},
        {F_DELAY, PROTO_BDAY_MAX_DELAY_US + 1, "easy_delay_us 200001"},
        {F_ROLE, 7, "role"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct proto_bday p = hard_plan();
        struct bdplan_ctx c = ctx_for(PROTO_NAT_DEPENDENT);
        set_field(&p, cases[i].f, cases[i].v);
        CHECK_MSG(refused(&p, &c, cases[i].word), "case %zu", i);
    }
    /* the edges themselves are valid */
    struct proto_bday p = hard_plan(), out;
    struct bdplan_ctx c = ctx_for(PROTO_NAT_DEPENDENT);
    char why[300];
    p.k = PROTO_BDAY_MAX_K;
    p.m = PROTO_BDAY_MAX_M;
    p.ttl = PROTO_BDAY_MAX_TTL;
    p.pace_ms = PROTO_BDAY_MIN_PACE_MS;
    p.port_lo = p.port_hi = 65535;
    p.easy_delay_us = PROTO_BDAY_MAX_DELAY_US;
    c.cap_k = PROTO_BDAY_MAX_K;
    CHECK(bdplan_check(&p, &c, &out, why, sizeof why));
    CHECK_INT(out.k, PROTO_BDAY_MAX_K);
}

/* One at a time per process. */
static void t_busy(void)
{
    struct proto_bday p = hard_plan();
    struct bdplan_ctx c = ctx_for(PROTO_NAT_DEPENDENT);
    c.busy = true;
    refused(&p, &c, "another birthday punch");
}

/* At most one start per PROTO_BDAY_GAP_MS, counted from the last start however it ended (a
 * lying server evicting the session must not make room for the next burst), and at most
 * BDPLAN_MAX_PER_HOUR starts an hour. */
static void t_gap(void)
{
    struct proto_bday p = hard_plan(), out;
    struct bdplan_ctx c = ctx_for(PROTO_NAT_DEPENDENT);
    char why[300];
    const uint64_t t = 5000000000ull; /* some monotonic now */
    CHECK_INT(BDPLAN_GAP_US, 10000000);
    CHECK_INT(PROTO_BDAY_GAP_MS, 10000);
    /* never started: whatever the clock says */
    c.now_us = 1;
    c.last_start_us = 0;
    c.started = false;
    CHECK(bdplan_check(&p, &c, &out, why, sizeof why));
    /* started, even at clock 0: the flag says so, not the value */
    c.started = true;
    c.now_us = 30000;
    c.last_start_us = 0;
    refused(&p, &c, "our last birthday punch started 30 ms ago (one per 10 s at most)");
    c.now_us = t;
    c.last_start_us = t - 30000;
    refused(&p, &c, "started 30 ms ago");
    c.last_start_us = t - BDPLAN_GAP_US + 1;
    refused(&p, &c, "one per 10 s");
    c.last_start_us = t - BDPLAN_GAP_US;
    CHECK(bdplan_check(&p, &c, &out, why, sizeof why));
    /* a clock before the last start (it cannot be: refused, not wrapped into "long ago") */
    c.last_start_us = t + 5;
    refused(&p, &c, "one per 10 s");
    /* the easy side too */
    p = hard_plan();
    p.role = PROTO_BDAY_EASY;
    c = ctx_for(PROTO_NAT_INDEPENDENT);
    c.started = true;
    c.now_us = t;
    c.last_start_us = t - 9999999;
    refused(&p, &c, "one per 10 s");
    /* the hour */
    c.last_start_us = t - BDPLAN_GAP_US;
    c.starts_hour = BDPLAN_MAX_PER_HOUR - 1;
    CHECK(bdplan_check(&p, &c, &out, why, sizeof why));
    c.starts_hour = BDPLAN_MAX_PER_HOUR;
    refused(&p, &c, "we started 60 birthday punches within the hour (60 at most)");
}

/* TTL 1 dies at our own NAT: raised to BDPLAN_MIN_TTL; 0 (the peer chooses) and more stay. */
static void t_ttl_floor(void)
{
    struct proto_bday p = hard_plan(), out;
    struct bdplan_ctx c = ctx_for(PROTO_NAT_DEPENDENT);
    char why[300];
    p.ttl = 1;
    CHECK(bdplan_check(&p, &c, &out, why, sizeof why));
    CHECK_INT(out.ttl, BDPLAN_MIN_TTL);
    CHECK_INT(BDPLAN_MIN_TTL, 2);
    p.ttl = 0;
    CHECK(bdplan_check(&p, &c, &out, why, sizeof why));
    CHECK_INT(out.ttl, 0);
    p.ttl = 5;
    CHECK(bdplan_check(&p, &c, &out, why, sizeof why));
    CHECK_INT(out.ttl, 5);
}

static void t_summary(void)
{
    struct proto_bday p = hard_plan();
    struct bday_stats st = {.sent = 256, .planned = 256, .winner_index = -1};
    char buf[200];
    bdplan_summary(&p, &st, buf, sizeof buf);
    CHECK_STR(buf, "birthday: none of 1024 guesses met one of 256 mappings");
    st.icmp = 12;
    st.refused = 1;
    bdplan_summary(&p, &st, buf, sizeof buf);
    CHECK_STR(buf, "birthday: none of 1024 guesses met one of 256 mappings; 12 mappings lost to "
                   "ICMP; the easy NAT reset 1 SYN");
    p.role = PROTO_BDAY_EASY;
    p.k = 128;
    st = (struct bday_stats){.sent = 1000, .planned = 1000, .refused = 3, .fitted = true};
    bdplan_summary(&p, &st, buf, sizeof buf);
    CHECK_STR(buf, "birthday: none of 1000 guesses met one of 128 mappings; 3 guesses answered "
                   "with RST; m lowered to 1000 to fit the descriptor limit");
    st = (struct bday_stats){.sent = 40, .planned = 1024, .connected = 1};
    bdplan_summary(&p, &st, buf, sizeof buf);
    CHECK_STR(buf, "birthday: 40 guesses sent, 1 connected");
    /* a short buffer is cut, never overrun */
    char tiny[12];
    bdplan_summary(&p, &st, tiny, sizeof tiny);
    CHECK_INT(strlen(tiny), sizeof tiny - 1);
}

CHECK_MAIN(TEST(t_accept_hard), TEST(t_accept_easy), TEST(t_caps), TEST(t_not_taking_part),
           TEST(t_target_not_observed), TEST(t_role_verdict), TEST(t_target_kind), TEST(t_ranges),
           TEST(t_busy), TEST(t_gap), TEST(t_ttl_floor), TEST(t_summary))
