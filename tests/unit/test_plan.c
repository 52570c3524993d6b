/* plan.c: the rows of PROTOCOL.md 5.4 "Choosing the path", the relay fallback, what a punch
 * names, and the timing rules of section 6 (step 3) and section 16 (step 4). */
#include "check.h"
#include "rendezvous/plan.h"

#include "common/endpoint.h"

static struct plan_peer peer(const char *id, enum proto_path path, enum proto_nat nat,
                             const char *observed)
{
    struct plan_peer p;
    memset(&p, 0, sizeof p);
    snprintf(p.id, sizeof p.id, "%s", id);
    p.path = path;
    p.nat = nat;
    ep_parse(observed, &p.observed, NULL, 0);
    p.has_key = true;
    return p;
}

#define ANY PROTO_PATH_ANY
#define RELAY PROTO_PATH_RELAY
#define DIRECT PROTO_PATH_DIRECT
#define DEP PROTO_NAT_DEPENDENT
#define IND PROTO_NAT_INDEPENDENT

static int decide(bool relays, struct plan_peer i, struct plan_peer t, struct plan *pl, char *msg)
{
    msg[0] = '\0';
    return plan_path(relays, &i, &t, pl, msg, PROTO_MAX_TEXT);
}

/* One case of the table: alice (I) connects to bob (T). */
struct row {
    const char *table_row; /* which row of PROTOCOL.md decides it */
    bool relays;
    enum proto_path pi, pt;
    enum proto_nat ni, nt;
    bool v6; /* both have an observed IPv6 endpoint */
    int rc;
    bool direct, relay;
    const char *text; /* the no-path message, or the punch's reason */
};

static const struct row rows[] = {
    {"1", true, RELAY, DIRECT, IND, IND, false, -1, false, false,
     "alice allows only a relayed connection and bob only a direct one"},
    {"1", false, DIRECT, RELAY, IND, IND, false, -1, false, false,
     "bob allows only a relayed connection and alice only a direct one"},
    {"2", false, ANY, RELAY, IND, IND, false, -1, false, false,
     "bob asked for relay only, but this server does not relay"},
    {"2", false, ANY, ANY, DEP, DEP, false, -1, false, false,
     "both NATs map endpoint-dependently (symmetric), but this server does not relay"},
    /* the first row that matches decides: 2 before 3 */
    {"2", false, DIRECT, ANY, DEP, DEP, false, -1, false, false,
     "both NATs map endpoint-dependently (symmetric), but this server does not relay"},
    {"3", true, ANY, DIRECT, DEP, DEP, false, -1, false, false,
     "both NATs map endpoint-dependently (symmetric), and bob allows only a direct connection"},
    {"4", true, ANY, ANY, IND, DEP, false, 0, true, true, ""},
    {"4", false, ANY, ANY, IND, IND, false, 0, true, false, ""},
    {"4", true, DIRECT, ANY, IND, IND, false, 0, true, false, ""},
    {"4", true, RELAY, ANY, IND, IND, false, 0, false, true, "alice asked for relay only"},
    {"4", true, ANY, ANY, DEP, DEP, false, 0, false, true,
     "both NATs map endpoint-dependently (symmetric)"},
    /* observed IPv6 on both sides bypasses the NATs: still a punch */
    {"4", false, ANY, ANY, DEP, DEP, true, 0, true, false, ""},
};

static void t_table(void)
{
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        const struct row *r = &rows[k];
        struct plan_peer i = peer("alice", r->pi, r->ni, "192.0.2.1:1");
        struct plan_peer t = peer("bob", r->pt, r->nt, "192.0.2.2:1");
        struct plan pl;
        char msg[PROTO_MAX_TEXT];
        int rc;
        i.has_obs6 = t.has_obs6 = r->v6;
        rc = decide(r->relays, i, t, &pl, msg);
        CHECK_MSG(rc == r->rc, "case %zu (row %s): rc %d", k, r->table_row, rc);
        CHECK_STR(r->rc < 0 ? msg : pl.reason, r->text);
        if (r->rc == 0)
            CHECK_MSG(pl.direct == r->direct && pl.relay == r->relay,
                      "case %zu (row %s): direct %d relay %d", k, r->table_row, pl.direct,
                      pl.relay);
    }
}

/* an observed IPv6 endpoint on one side only: still symmetric */
static void t_v6_one_side(void)
{
    struct plan pl;
    char msg[PROTO_MAX_TEXT];
    struct plan_peer a = peer("alice", ANY, DEP, "192.0.2.1:1");
    a.has_obs6 = true;
    CHECK_INT(decide(false, a, peer("bob", ANY, DEP, "192.0.2.2:1"), &pl, msg), -1);
}

/* the relay refuses the offer: direct only with the reason, or no-path when it was the only way */
static void t_relay_refused(void)
{
    struct plan pl;
    char msg[PROTO_MAX_TEXT] = "";
    CHECK_INT(decide(true, peer("alice", ANY, IND, "192.0.2.1:1"),
                     peer("bob", ANY, IND, "192.0.2.2:1"), &pl, msg),
              0);
    CHECK_INT(plan_no_relay(&pl, "quota", msg, sizeof msg), 0);
    CHECK(pl.direct && !pl.relay);
    CHECK_STR(pl.reason, "no relay offered: quota");
    CHECK_INT(decide(true, peer("alice", RELAY, IND, "192.0.2.1:1"),
                     peer("bob", ANY, IND, "192.0.2.2:1"), &pl, msg),
              0);
    CHECK_INT(plan_no_relay(&pl, "quota", msg, sizeof msg), -1);
    CHECK_STR(msg, "alice asked for relay only; and the relay refuses it: quota");
}

static const struct plan_route here = {.across = false};

static void plan_of(struct plan_peer *i, struct plan_peer *t, const struct plan_route *r,
                    struct plan_punches *pp)
{
    struct plan pl;
    char msg[PROTO_MAX_TEXT];
    CHECK_INT(plan_path(true, i, t, &pl, msg, sizeof msg), 0);
    plan_punches(&pl, i, t, "00112233445566778899aabbccddeeff", r, pp);
}

/* local: the farther peer first, the nearer (far - near) / 2 later; a tie: the initiator first */
static void t_timing_local(void)
{
    struct plan_peer i = peer("alice", ANY, IND, "192.0.2.1:1000");
    struct plan_peer t = peer("bob", ANY, IND, "198.51.100.2:2000");
    struct plan_punches pp;

    i.rtt_us = 10001;
    t.rtt_us = 4000;
    plan_of(&i, &t, &here, &pp);
    CHECK_INT(pp.first, PLAN_I);
    CHECK_INT(pp.s[PLAN_I].delay_us, 0);
    CHECK_INT(pp.s[PLAN_T].delay_us, 3000);
    CHECK(!pp.s[PLAN_I].second && pp.s[PLAN_T].second);

    i.rtt_us = 1000;
    t.rtt_us = 9000;
    plan_of(&i, &t, &here, &pp);
    CHECK_INT(pp.first, PLAN_T);
    CHECK_INT(pp.s[PLAN_I].delay_us, 4000);
    CHECK_INT(pp.s[PLAN_T].delay_us, 0);
    CHECK(pp.s[PLAN_I].second && !pp.s[PLAN_T].second);

    i.rtt_us = t.rtt_us = 5000;
    plan_of(&i, &t, &here, &pp);
    CHECK_INT(pp.first, PLAN_I);
    CHECK_INT(pp.s[PLAN_I].delay_us + pp.s[PLAN_T].delay_us, 0);
    CHECK(pp.s[PLAN_T].second);
    /* the relay address is for an initiator on another instance only */
    CHECK(!pp.s[PLAN_I].m.u.punch.has_relay_addr);
}

/* the delay cap: applied once, to both directions */
static void t_delay_cap(void)
{
    struct plan_peer i = peer("alice", ANY, IND, "192.0.2.1:1000");
    struct plan_peer t = peer("bob", ANY, IND, "198.51.100.2:2000");
    struct plan_punches pp;

    i.rtt_us = 9000000;
    plan_of(&i, &t, &here, &pp);
    CHECK_INT(pp.s[PLAN_T].delay_us, PLAN_MAX_DELAY_US);
    i.rtt_us = 0;
    t.rtt_us = 9000000;
    plan_of(&i, &t, &here, &pp);
    CHECK_INT(pp.s[PLAN_I].delay_us, PLAN_MAX_DELAY_US);
    CHECK_INT(plan_cap_us(PLAN_MAX_DELAY_US + 1), PLAN_MAX_DELAY_US);
    CHECK_INT(plan_cap_us(1234), 1234);
}

/* across instances the initiator's punch also crosses the bus; nobody is "second" */
static void t_timing_across(void)
{
    struct sockaddr_storage pub;
    struct plan_route r = {.across = true, .bus_rtt_us = 20000, .relay_addr = &pub};
    struct plan_peer i = peer("alice", ANY, IND, "192.0.2.1:1000");
    struct plan_peer t = peer("bob", ANY, IND, "198.51.100.2:2000");
    struct plan_punches pp;

    ep_parse("203.0.113.9:7000", &pub, NULL, 0);
    i.rtt_us = 4000;
    t.rtt_us = 10000;
    plan_of(&i, &t, &r, &pp); /* I: (20000 + 4000) / 2, T: 10000 / 2 */
    CHECK_INT(pp.s[PLAN_T].delay_us, 7000);
    CHECK_INT(pp.s[PLAN_I].delay_us, 0);
    CHECK_INT(pp.first, PLAN_I);
    CHECK(!pp.s[PLAN_I].second && !pp.s[PLAN_T].second);
    CHECK(pp.s[PLAN_I].m.u.punch.has_relay_addr);
    CHECK(!pp.s[PLAN_T].m.u.punch.has_relay_addr);

    t.rtt_us = 40000;
    plan_of(&i, &t, &r, &pp);
    CHECK_INT(pp.s[PLAN_I].delay_us, 8000);
    CHECK_INT(pp.s[PLAN_T].delay_us, 0);
    CHECK_INT(pp.first, PLAN_T);
    CHECK(!pp.s[PLAN_I].second && !pp.s[PLAN_T].second);
}

/* each punch describes the other peer; LAN endpoints only behind the same public address */
static void t_punch_contents(void)
{
    struct plan_peer i = peer("alice", ANY, IND, "192.0.2.1:1000");
    struct plan_peer t = peer("bob", ANY, DEP, "198.51.100.2:2000");
    struct plan_punches pp;
    const struct proto_msg *mi, *mt;

    ep_parse("10.0.0.5:1111", &i.eps.ep[0], NULL, 0);
    i.eps.n = 1;
    plan_of(&i, &t, &here, &pp);
    mi = &pp.s[PLAN_I].m;
    mt = &pp.s[PLAN_T].m;
    CHECK_STR(mi->u.punch.peer, "bob");
    CHECK_INT(mi->u.punch.role, PROTO_INITIATOR);
    CHECK_INT(mi->u.punch.nat, DEP);
    CHECK_STR(mt->u.punch.peer, "alice");
    CHECK_INT(mt->u.punch.role, PROTO_RESPONDER);
    CHECK_INT(mt->u.punch.start_in_us, PLAN_LEAD_US);
    CHECK(mi->u.punch.relay && mt->u.punch.relay);
    /* elsewhere: only the port-preserved guess 192.0.2.1:1111, never 10.0.0.5 */
    CHECK_INT(mt->u.punch.endpoints.n, 1);
    CHECK_INT(ep_port((const struct sockaddr *)&mt->u.punch.endpoints.ep[0]), 1111);
    /* same public address: the LAN endpoint as well */
    ep_parse("192.0.2.1:3000", &t.observed, NULL, 0);
    plan_of(&i, &t, &here, &pp);
    CHECK_INT(pp.s[PLAN_T].m.u.punch.endpoints.n, 2);
}

static void t_lead_after(void)
{
    CHECK_INT(plan_lead_after(0), PLAN_LEAD_US);
    CHECK_INT(plan_lead_after(1000), PLAN_LEAD_US - 1000);
    CHECK_INT(plan_lead_after(PLAN_LEAD_US + 5), 0);
}

CHECK_MAIN(TEST(t_table), TEST(t_v6_one_side), TEST(t_relay_refused),
           TEST(t_timing_local), TEST(t_delay_cap), TEST(t_timing_across), TEST(t_punch_contents),
           TEST(t_lead_after))
