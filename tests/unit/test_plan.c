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

/* ---- birthday punching: the row of PROTOCOL.md 5.4 and what both copies carry ---- */

static const struct plan_bday_cfg bday_on = {PLAN_BDAY_K_MAX, PLAN_BDAY_M_MAX};

/* alice behind an endpoint-dependent NAT, bob behind an independent one, both announcing the
 * peer defaults: the pair that gets a birthday plan */
static void bday_pair(struct plan_peer *i, struct plan_peer *t)
{
    *i = peer("alice", ANY, DEP, "203.0.113.10:40000");
    *t = peer("bob", ANY, IND, "198.51.100.20:50000");
    i->bday = t->bday = (struct proto_bday_caps){true, 256, 1024};
}

/* plan_path, then plan_birthday; rc of plan_path must be 0 */
static bool bday_decide(const struct plan_bday_cfg *cfg, bool relays, const struct plan_peer *i,
                        const struct plan_peer *t, struct plan *pl)
{
    char msg[PROTO_MAX_TEXT];
    if (plan_path(relays, i, t, pl, msg, sizeof msg) < 0)
        return false;
    return plan_birthday(cfg, i, t, pl);
}

static void t_bday_rule(void)
{
    struct plan_peer i, t;
    struct plan pl;
    bday_pair(&i, &t);
    CHECK(bday_decide(&bday_on, true, &i, &t, &pl));
    CHECK(pl.bday && pl.direct && pl.relay); /* the relay offer stays: the fallback */
    CHECK_INT(pl.bday_hard, 0);
    CHECK_INT(pl.bday_k, 256);
    CHECK_INT(pl.bday_m, 1024);
    CHECK_STR(pl.reason, "");
    /* the other way round: the target is the hard one */
    i.nat = IND;
    t.nat = DEP;
    CHECK(bday_decide(&bday_on, true, &i, &t, &pl) && pl.bday_hard == 1);
    /* without relay on the server: birthday still, direct only */
    CHECK(bday_decide(&bday_on, false, &i, &t, &pl) && pl.bday && !pl.relay);
    /* a peer asking for direct only may take part */
    i.path = DIRECT;
    CHECK(bday_decide(&bday_on, true, &i, &t, &pl) && pl.bday && !pl.relay);
}

/* every condition of the rule, each flipped alone, turns it off: the ordinary plan results */
static void t_bday_conditions(void)
{
    struct plan_bday_cfg off_k = {0, PLAN_BDAY_M_MAX}, off_m = {PLAN_BDAY_K_MAX, 0};
    struct plan_peer i, t;
    struct plan pl, ordinary;
    char msg[PROTO_MAX_TEXT];
    int n = 0;
    for (int c = 0;; c++) {
        const struct plan_bday_cfg *cfg = &bday_on;
        bday_pair(&i, &t);
        switch (c) {
        case 0: cfg = &off_k; break;                               /* server k cap 0 */
        case 1: cfg = &off_m; break;                               /* server m cap 0 */
        case 2: i.nat = PROTO_NAT_UNKNOWN; break;                  /* hard side not probed */
        case 3: t.nat = PROTO_NAT_UNKNOWN; break;                  /* easy side not probed */
        case 4: t.nat = IND, i.nat = IND; break;                   /* easy/easy */
        case 5: i.bday.has = false; break;                         /* hard did not announce */
        case 6: t.bday.has = false; break;                         /* easy did not announce */
        case 7: i.bday.k = 0; break;                               /* --birthday-k 0 */
        case 8: i.bday.m = 0; break;
        case 9: t.bday.k = 0; break;
        case 10: t.bday.m = 0; break;
        case 11: i.path = RELAY; break;                            /* relay only */
        case 12: t.path = RELAY; break;
        case 13: ep_parse("[2001:db8::10]:40000", &i.observed, NULL, 0); break; /* IPv6 control */
        case 14: ep_parse("[2001:db8::20]:50000", &t.observed, NULL, 0); break;
        case 15: ep_parse("198.51.100.20:40001", &i.observed, NULL, 0); break; /* one address */
        case 16: /* both with an observed IPv6 endpoint: the ordinary punch works */
            i.has_obs6 = t.has_obs6 = true;
            ep_parse("[2001:db8::10]:40000", &i.obs6, NULL, 0);
            ep_parse("[2001:db8::20]:50000", &t.obs6, NULL, 0);
            break;
        case 17: i.bday_recent = true; break;                      /* a plan within 10 s */
        case 18: t.bday_recent = true; break;
        default: goto done;
        }
        n++;
        if (plan_path(true, &i, &t, &ordinary, msg, sizeof msg) < 0) {
            CHECK_MSG(false, "condition %d: plan_path refused: %s", c, msg);
            continue;
        }
        pl = ordinary;
        CHECK_MSG(!plan_birthday(cfg, &i, &t, &pl), "condition %d: still birthday", c);
        CHECK_MSG(!pl.bday && memcmp(&pl, &ordinary, sizeof pl) == 0,
                  "condition %d: the plan changed", c);
        /* the punches carry no plan */
        struct plan_punches pp;
        plan_punches(&pl, &i, &t, "00112233445566778899aabbccddeeff", &here, &pp);
        CHECK_MSG(!pp.s[PLAN_I].m.u.punch.has_birthday && !pp.s[PLAN_T].m.u.punch.has_birthday,
                  "condition %d: a punch has birthday", c);
    }
done:
    CHECK_INT(n, 19);
    /* only one side with IPv6 keeps it */
    bday_pair(&i, &t);
    i.has_obs6 = true;
    CHECK(bday_decide(&bday_on, true, &i, &t, &pl));
    t.has_obs6 = true;
    i.has_obs6 = false;
    CHECK(bday_decide(&bday_on, true, &i, &t, &pl));
}

/* hard/hard stays relay-at-once, the reason unchanged; and no birthday there */
static void t_bday_hard_hard(void)
{
    struct plan_peer i, t;
    struct plan pl;
    char msg[PROTO_MAX_TEXT];
    bday_pair(&i, &t);
    t.nat = DEP;
    CHECK_INT(plan_path(true, &i, &t, &pl, msg, sizeof msg), 0);
    CHECK(!pl.direct && pl.relay);
    CHECK_STR(pl.reason, "both NATs map endpoint-dependently (symmetric)");
    CHECK(!plan_birthday(&bday_on, &i, &t, &pl));
    CHECK(!pl.bday && !pl.direct);
    /* a plan that is not direct never gets birthday, whatever the peers */
    memset(&pl, 0, sizeof pl);
    pl.relay = true;
    t.nat = IND;
    CHECK(!plan_birthday(&bday_on, &i, &t, &pl));
}

/* K from the server's cap and the hard peer's k, M from the cap and the easy peer's m */
static void t_bday_minima(void)
{
    struct plan_peer i, t;
    struct plan pl;
    struct plan_bday_cfg cfg = {100, 300};
    bday_pair(&i, &t); /* alice hard */
    i.bday = (struct proto_bday_caps){true, 50, 4000};  /* the hard peer's m does not count */
    t.bday = (struct proto_bday_caps){true, 500, 200};  /* nor the easy peer's k */
    CHECK(bday_decide(&cfg, true, &i, &t, &pl));
    CHECK_INT(pl.bday_k, 50);
    CHECK_INT(pl.bday_m, 200);
    cfg = (struct plan_bday_cfg){40, 150};
    CHECK(bday_decide(&cfg, true, &i, &t, &pl));
    CHECK_INT(pl.bday_k, 40);
    CHECK_INT(pl.bday_m, 150);
    /* the upper caps of the protocol, whatever the configuration says */
    cfg = (struct plan_bday_cfg){100000, 100000};
    i.bday = t.bday = (struct proto_bday_caps){true, PROTO_BDAY_MAX_K, PROTO_BDAY_MAX_M};
    CHECK(bday_decide(&cfg, true, &i, &t, &pl));
    CHECK_INT(pl.bday_k, 512);
    CHECK_INT(pl.bday_m, 4096);
    /* 1 and 1: the smallest plan */
    cfg = (struct plan_bday_cfg){1, 1};
    CHECK(bday_decide(&cfg, true, &i, &t, &pl));
    CHECK(pl.bday_k == 1 && pl.bday_m == 1);
    /* target hard: K from the target's k, M from the initiator's m */
    bday_pair(&i, &t);
    i.nat = IND;
    t.nat = DEP;
    i.bday = (struct proto_bday_caps){true, 7, 70};
    t.bday = (struct proto_bday_caps){true, 9, 90};
    CHECK(bday_decide(&bday_on, true, &i, &t, &pl));
    CHECK(pl.bday_hard == 1 && pl.bday_k == 9 && pl.bday_m == 70);
}

static void bday_check_copy(const struct proto_msg *m, enum proto_bday_role role,
                            const char *target, int k, int mm)
{
    const struct proto_bday *b = &m->u.punch.birthday;
    struct sockaddr_storage want;
    ep_parse(target, &want, NULL, 0);
    if (!CHECK(m->u.punch.has_birthday))
        return;
    CHECK_INT(b->role, role);
    CHECK(ep_equal((const struct sockaddr *)&b->target, (const struct sockaddr *)&want));
    /* the plan aims at the punch's own observed endpoint, which the peer checks */
    CHECK(ep_equal((const struct sockaddr *)&b->target,
                   (const struct sockaddr *)&m->u.punch.observed));
    CHECK_INT(b->k, k);
    CHECK_INT(b->m, mm);
    CHECK_INT(b->ttl, 0);
    CHECK_INT(b->pace_ms, 800);
    CHECK_INT(b->port_lo, 1024);
    CHECK_INT(b->port_hi, 65535);
    CHECK_INT(b->easy_delay_us, 50000);
}

/* both copies: the hard one aims at the easy peer's observed endpoint, the easy one at the hard
 * peer's observed address; the rest of the punch as without birthday */
static void t_bday_copies(void)
{
    struct plan_peer i, t;
    struct plan pl, plain;
    struct plan_punches pp, pq;
    char line[PROTO_MAX_LINE], why[200];
    struct proto_msg back;
    const char *s = "00112233445566778899aabbccddeeff";
    bday_pair(&i, &t);
    i.bday = (struct proto_bday_caps){true, 200, 3000};
    t.bday = (struct proto_bday_caps){true, 500, 900};
    CHECK(bday_decide(&bday_on, true, &i, &t, &pl));
    plan_punches(&pl, &i, &t, s, &here, &pp);
    /* alice (initiator) is hard: her copy names bob's endpoint */
    bday_check_copy(&pp.s[PLAN_I].m, PROTO_BDAY_HARD, "198.51.100.20:50000", 200, 900);
    bday_check_copy(&pp.s[PLAN_T].m, PROTO_BDAY_EASY, "203.0.113.10:40000", 200, 900);
    /* everything else is the ordinary punch's */
    plain = pl;
    plain.bday = false;
    plan_punches(&plain, &i, &t, s, &here, &pq);
    for (int k = 0; k < 2; k++) {
        pp.s[k].m.u.punch.has_birthday = false;
        memset(&pp.s[k].m.u.punch.birthday, 0, sizeof pp.s[k].m.u.punch.birthday);
        CHECK(memcmp(&pp.s[k].m, &pq.s[k].m, sizeof pp.s[k].m) == 0);
        CHECK_INT(pp.s[k].delay_us, pq.s[k].delay_us);
    }
    /* the target hard, across instances */
    {
        struct sockaddr_storage pub;
        struct plan_route r = {.across = true, .bus_rtt_us = 100, .relay_addr = &pub};
        ep_parse("203.0.113.9:7000", &pub, NULL, 0);
        i.nat = IND;
        t.nat = DEP;
        CHECK(bday_decide(&bday_on, true, &i, &t, &pl));
        memcpy(pl.token[0], s, sizeof pl.token[0]); /* as the relay offer sets them */
        memcpy(pl.token[1], s, sizeof pl.token[1]);
        plan_punches(&pl, &i, &t, s, &r, &pp);
        bday_check_copy(&pp.s[PLAN_I].m, PROTO_BDAY_EASY, "198.51.100.20:50000", 256, 1024);
        bday_check_copy(&pp.s[PLAN_T].m, PROTO_BDAY_HARD, "203.0.113.10:40000", 256, 1024);
    }
    /* each copy encodes and decodes as the peer reads it */
    for (int k = 0; k < 2; k++) {
        int n = proto_encode(&pp.s[k].m, line, sizeof line);
        CHECK(n > 0);
        CHECK_MSG(proto_decode(line, (size_t)n - 1, PROTO_TO_PEER, &back, why, sizeof why) ==
                      PROTO_OK,
                  "%.*s: %s", n, line, why);
        CHECK(back.u.punch.has_birthday &&
              back.u.punch.birthday.role == pp.s[k].m.u.punch.birthday.role);
    }
}

/* Resumable sessions: each punch carries the OTHER peer's features, both the plan's resume root
 * (none: absent in both). */
static void t_resume_members(void)
{
    struct plan_peer i = peer("alice", ANY, IND, "192.0.2.1:1000");
    struct plan_peer t = peer("bob", ANY, IND, "198.51.100.2:2000");
    static const char root[] = "fedcba9876543210fedcba9876543210";
    struct plan_punches pp;
    struct plan pl;
    char msg[PROTO_MAX_TEXT];

    i.features = PROTO_FEAT_RESUME;
    plan_of(&i, &t, &here, &pp);
    CHECK_INT(pp.s[PLAN_I].m.u.punch.peer_features, 0);
    CHECK_INT(pp.s[PLAN_T].m.u.punch.peer_features, PROTO_FEAT_RESUME);
    CHECK_STR(pp.s[PLAN_I].m.u.punch.resume, "");
    CHECK_STR(pp.s[PLAN_T].m.u.punch.resume, "");
    CHECK_INT(plan_path(true, &i, &t, &pl, msg, sizeof msg), 0);
    CHECK_STR(pl.resume, ""); /* plan_path starts it empty: the caller sets it */
    memcpy(pl.resume, root, sizeof pl.resume);
    plan_punches(&pl, &t, &i, "00112233445566778899aabbccddeeff", &here, &pp);
    CHECK_INT(pp.s[PLAN_I].m.u.punch.peer_features, PROTO_FEAT_RESUME);
    CHECK_INT(pp.s[PLAN_T].m.u.punch.peer_features, 0);
    CHECK_STR(pp.s[PLAN_I].m.u.punch.resume, root);
    CHECK_STR(pp.s[PLAN_T].m.u.punch.resume, root);
}

CHECK_MAIN(TEST(t_table), TEST(t_v6_one_side), TEST(t_relay_refused), TEST(t_timing_local),
           TEST(t_delay_cap), TEST(t_timing_across), TEST(t_punch_contents), TEST(t_lead_after),
           TEST(t_bday_rule), TEST(t_bday_conditions), TEST(t_bday_hard_hard), TEST(t_bday_minima),
           TEST(t_bday_copies), TEST(t_resume_members))
