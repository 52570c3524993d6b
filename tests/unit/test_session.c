/* The sessions' pure decisions: the waiting modes' setup limits (which session gives way to a
 * new punch order, and when an order is refused) and the routing of an inbound connection on
 * the shared port to the session that dials its endpoint or host. */
#include <string.h>

#include "check.h"
#include "peer/hello.h"
#include "common/endpoint.h"
#include "peer/exit.h"
#include "peer/session.h"

static void t_oldest(void)
{
    const char *ids[] = {"bob", "eve", "bob", "mal", "eve"}; /* newest first */
    CHECK_INT(sess_oldest(ids, 5, "bob"), 2);
    CHECK_INT(sess_oldest(ids, 5, "mal"), 3);
    CHECK_INT(sess_oldest(ids, 5, "zed"), -1);
    /* of the ids holding more than one, the oldest session */
    CHECK_INT(sess_oldest(ids, 5, NULL), 4);
    const char *distinct[] = {"a", "b", "c"};
    CHECK_INT(sess_oldest(distinct, 3, NULL), -1);
}

static void t_room(void)
{
    int v = -7;
    const char *few[] = {"eve", "bob"};
    CHECK_INT(sess_room(few, 2, "alice", false, &v), SESS_ROOM);
    CHECK_INT(sess_room(few, 0, "alice", false, &v), SESS_ROOM);
    /* an id holding SESS_WAIT_PER_ID gives up its oldest, even with room to spare */
    const char *two[] = {"eve", "bob", "eve"};
    CHECK_INT(sess_room(two, 3, "eve", false, &v), SESS_EVICT_SAME);
    CHECK_INT(v, 2);
    CHECK_INT(sess_room(two, 3, "eve", true, &v), SESS_ROOM);
    CHECK_INT(sess_room(two, 3, "bob", false, &v), SESS_ROOM);
}

static void t_full(void)
{
    int v = -7;
    const char *full[SESS_WAIT_SETUPS], *distinct[SESS_WAIT_SETUPS];
    static char names[SESS_WAIT_SETUPS][8];
    for (int i = 0; i < SESS_WAIT_SETUPS; i++) {
        snprintf(names[i], sizeof names[i], "p%d", i);
        distinct[i] = names[i];
        full[i] = names[i];
    }
    /* all slots held by distinct ids: a distinct newcomer is refused */
    CHECK_INT(sess_room(distinct, SESS_WAIT_SETUPS, "alice", false, &v), SESS_REFUSE);
    /* ... and an id holding one takes no second slot from another */
    CHECK_INT(sess_room(distinct, SESS_WAIT_SETUPS, "p3", false, &v), SESS_REFUSE);
    /* one id holds two: its oldest gives way to the distinct newcomer */
    full[1] = full[5] = "eve";
    CHECK_INT(sess_room(full, SESS_WAIT_SETUPS, "alice", false, &v), SESS_EVICT_FULL);
    CHECK_INT(v, 5);
    /* eve again: first her own oldest goes (the full table's rule is asked after it) */
    CHECK_INT(sess_room(full, SESS_WAIT_SETUPS, "eve", false, &v), SESS_EVICT_SAME);
    CHECK_INT(v, 5);
    CHECK_INT(sess_room(full, SESS_WAIT_SETUPS - 1, "eve", true, &v), SESS_ROOM);
}

static void add_sess(struct sess_set *set, struct sess *ss, const char *cand0, const char *cand1)
{
    char err[100];
    memset(ss, 0, sizeof *ss);
    ss->set = set;
    ss->punch = (struct punch *)ss; /* an engine runs; sess_route never looks inside */
    CHECK_INT(ep_parse(cand0, &ss->cfg.cand[0].addr, err, sizeof err), 0);
    ss->cfg.ncand = 1;
    if (cand1) {
        CHECK_INT(ep_parse(cand1, &ss->cfg.cand[1].addr, err, sizeof err), 0);
        ss->cfg.ncand = 2;
    }
    q_insert_head(&set->list, &ss->node);
}

static const struct sockaddr *at(const char *s, struct sockaddr_storage *ss)
{
    char err[100];
    CHECK_INT(ep_parse(s, ss, err, sizeof err), 0);
    return (const struct sockaddr *)ss;
}

static void t_route(void)
{
    struct sess_set set;
    struct sess a, b, c;
    struct sockaddr_storage x;
    memset(&set, 0, sizeof set);
    sess_init(&set);
    add_sess(&set, &a, "198.51.100.7:4000", "10.0.0.7:4000");
    add_sess(&set, &b, "203.0.113.9:5000", NULL);
    /* the exact endpoint, then the only session dialling that host (a NAT may move the port) */
    CHECK(sess_route(&set, at("10.0.0.7:4000", &x)) == &a);
    CHECK(sess_route(&set, at("203.0.113.9:6001", &x)) == &b);
    /* a host that none dials is nobody's */
    CHECK(sess_route(&set, at("192.0.2.1:4000", &x)) == NULL);
    /* two sessions dialling one host: only the exact endpoint tells them apart */
    add_sess(&set, &c, "203.0.113.9:5001", NULL);
    CHECK(sess_route(&set, at("203.0.113.9:6001", &x)) == NULL);
    CHECK(sess_route(&set, at("203.0.113.9:5001", &x)) == &c);
    /* a relay-only session, or one whose engine is over, takes no inbound connection */
    c.cfg.relay_only = true;
    CHECK(sess_route(&set, at("203.0.113.9:5001", &x)) == &b);
    b.punch = NULL;
    CHECK(sess_route(&set, at("203.0.113.9:5000", &x)) == NULL);
}

/* A birthday session has no IPv4 candidate (the engine is its IPv4 path): what comes from its
 * target's address (any port: the other side's NAT picks it) is its own, unless another
 * session dials that host too. */
static void t_route_birthday(void)
{
    struct sess_set set;
    struct sess a, b;
    struct sockaddr_storage x;
    char err[100];
    memset(&set, 0, sizeof set);
    sess_init(&set);
    add_sess(&set, &a, "[2001:db8::7]:4000", NULL); /* an IPv6 candidate stays */
    a.cfg.birthday = true;
    CHECK_INT(ep_parse("203.0.113.10:1", &a.cfg.bday_target, err, sizeof err), 0);
    CHECK(sess_route(&set, at("203.0.113.10:1534", &x)) == &a);
    CHECK(sess_route(&set, at("[2001:db8::7]:4000", &x)) == &a);
    CHECK(sess_route(&set, at("203.0.113.11:1534", &x)) == NULL);
    /* without the birthday, that address is nobody's */
    a.cfg.birthday = false;
    CHECK(sess_route(&set, at("203.0.113.10:1534", &x)) == NULL);
    a.cfg.birthday = true;
    /* another session dialling the same host: neither can claim it by host */
    add_sess(&set, &b, "203.0.113.10:5000", NULL);
    CHECK(sess_route(&set, at("203.0.113.10:1534", &x)) == NULL);
    CHECK(sess_route(&set, at("203.0.113.10:5000", &x)) == &b);
}

/* Resume mode's gate: only the suspended session's resume, from its peer, with its key and role;
 * every other order is refused (before the engine would dial anything), each for its reason. */
static void t_resume_refused(void)
{
    unsigned char key[32], rs[32];
    memset(key, 0x11, sizeof key);
    memset(rs, 0x22, sizeof rs);
    const char *root = "0123456789abcdef0123456789abcdef";
    struct sess_resume r = {.root = root, .peer = "bob", .peer_key = key,
                            .role = PROTO_RESPONDER, .rs = rs, .last_epoch = 2, .rx = 9};
    struct proto_msg good, m;
    char why[100];
    memset(&good, 0, sizeof good);
    good.type = PROTO_PUNCH;
    snprintf(good.u.punch.peer, sizeof good.u.punch.peer, "bob");
    snprintf(good.u.punch.resume, sizeof good.u.punch.resume, "%s", root);
    snprintf(good.u.punch.session, sizeof good.u.punch.session, "%s",
             "fedcba9876543210fedcba9876543210");
    good.u.punch.has_key = true;
    memcpy(good.u.punch.key, key, sizeof key);
    good.u.punch.role = PROTO_RESPONDER;
    CHECK(!sess_resume_refused(&r, &good, why, sizeof why));

    m = good;
    m.u.punch.resume[0] = '\0'; /* a fresh punch order, not a resume */
    CHECK(sess_resume_refused(&r, &m, why, sizeof why));
    CHECK_STR(why, "it resumes no session");
    m = good;
    m.u.punch.resume[31] = '0'; /* another session's root */
    CHECK(sess_resume_refused(&r, &m, why, sizeof why));
    CHECK_STR(why, "it resumes another session");
    m = good;
    snprintf(m.u.punch.peer, sizeof m.u.punch.peer, "mallory");
    CHECK(sess_resume_refused(&r, &m, why, sizeof why));
    CHECK_STR(why, "it comes from another peer");
    m = good;
    m.u.punch.has_key = false;
    CHECK(sess_resume_refused(&r, &m, why, sizeof why));
    CHECK_STR(why, "it carries no key");
    m = good;
    m.u.punch.key[31] ^= 1;
    CHECK(sess_resume_refused(&r, &m, why, sizeof why));
    CHECK_STR(why, "its key is not the session's peer's");
    m = good;
    m.u.punch.role = PROTO_INITIATOR;
    CHECK(sess_resume_refused(&r, &m, why, sizeof why));
    CHECK_STR(why, "its role is not ours in the session");
}

/* SESS_SERVE (listen --forward): an order with punch.resume goes to serve->resume_find, never
 * to admit (no --max-sessions slot) nor failed; a root no session of ours waits with, or a
 * known root from another peer, key or role, starts nothing (nothing dialled). */
static int srv_admits, srv_fails, srv_finds;
static bool srv_admit(void *arg, const char *peer, char *fp, size_t fplen, char *why,
                      size_t whylen)
{
    (void)arg, (void)peer, (void)fp, (void)fplen;
    snprintf(why, whylen, "the test refuses it");
    srv_admits++;
    return false;
}
static void srv_failed(void *arg, const char *peer, int status)
{
    (void)arg, (void)peer, (void)status;
    srv_fails++;
}
static bool srv_find(void *arg, const char *root, struct serve_resume *sr, char *why,
                     size_t whylen)
{
    (void)arg;
    srv_finds++;
    if (strcmp(root, "0123456789abcdef0123456789abcdef") != 0) {
        snprintf(why, whylen, "none");
        return false;
    }
    memset(sr, 0, sizeof *sr);
    snprintf(sr->root, sizeof sr->root, "%s", root);
    snprintf(sr->peer, sizeof sr->peer, "bob");
    memset(sr->peer_key, 0x11, sizeof sr->peer_key);
    sr->role = PROTO_RESPONDER;
    return true;
}

static void t_serve_resume_refused(void)
{
    struct peer_serve sv = {.admit = srv_admit, .failed = srv_failed, .resume_find = srv_find};
    struct sess_set set;
    struct proto_msg good, m;
    memset(&set, 0, sizeof set);
    set.mode = SESS_SERVE;
    set.serve = &sv;
    sess_init(&set);
    memset(&good, 0, sizeof good);
    good.type = PROTO_PUNCH;
    snprintf(good.u.punch.peer, sizeof good.u.punch.peer, "bob");
    snprintf(good.u.punch.resume, sizeof good.u.punch.resume, "%s",
             "0123456789abcdef0123456789abcdef");
    good.u.punch.has_key = true;
    memset(good.u.punch.key, 0x11, sizeof good.u.punch.key);
    good.u.punch.role = PROTO_RESPONDER;

    m = good;
    m.u.punch.resume[0] = 'f'; /* a root nobody waits with */
    CHECK(sess_start(&set, &m, 0, 0) == SESS_NONE);
    m = good;
    snprintf(m.u.punch.peer, sizeof m.u.punch.peer, "mallory");
    CHECK(sess_start(&set, &m, 0, 0) == SESS_NONE);
    m = good;
    m.u.punch.key[0] ^= 1;
    CHECK(sess_start(&set, &m, 0, 0) == SESS_NONE);
    m = good;
    m.u.punch.role = PROTO_INITIATOR;
    CHECK(sess_start(&set, &m, 0, 0) == SESS_NONE);
    CHECK_INT(srv_finds, 4);
    CHECK_INT(srv_admits, 0);
    CHECK_INT(srv_fails, 0);
    CHECK(!sess_any(&set));
    /* without the hook every resume order is refused as well */
    sv.resume_find = NULL;
    CHECK(sess_start(&set, &good, 0, 0) == SESS_NONE);
    CHECK_INT(srv_admits, 0);
    /* an order without punch.resume is an ordinary one: admit decides (and refuses here) */
    m = good;
    m.u.punch.resume[0] = '\0';
    CHECK(sess_start(&set, &m, 0, 0) == SESS_NONE);
    CHECK_INT(srv_admits, 1);
}

/* hello.features (resume.md 4.1): ["resume"] only to a server that offered it, only with the
 * session layer on; otherwise the hello is today's. */
static void t_hello_features(void)
{
    struct peer_opts o;
    struct proto_msg m;
    memset(&o, 0, sizeof o);
    memset(&m, 0, sizeof m);
    o.resume_timeout_s = PEER_DEFAULT_RESUME_TIMEOUT;
    o.resume_buffer = PEER_DEFAULT_RESUME_BUFFER;
    CHECK(!hello_features(&o, false, &m) && m.u.hello.features == 0);
    CHECK(hello_features(&o, true, &m) && m.u.hello.features == PROTO_FEAT_RESUME);
    memset(&m, 0, sizeof m);
    o.resume_timeout_s = 0; /* --resume-timeout 0: nothing announced */
    CHECK(!hello_features(&o, true, &m) && m.u.hello.features == 0);
    o.resume_timeout_s = PROTO_RESUME_TIMEOUT_MAX;
    CHECK(hello_features(&o, true, &m));
    memset(&m, 0, sizeof m);
    o.resume_timeout_s = PROTO_RESUME_TIMEOUT_MAX + 1; /* outside the protocol's range */
    CHECK(!hello_features(&o, true, &m) && m.u.hello.features == 0);
    o.resume_timeout_s = 1;
    o.resume_buffer = PROTO_RESUME_BUF_MIN - 1;
    CHECK(!hello_features(&o, true, &m));
    o.resume_buffer = PROTO_RESUME_BUF_MAX;
    CHECK(hello_features(&o, true, &m));
}

/* sess_report_of: a punch's end as its traversal report (PROTOCOL.md 5.14, 19) */
static void t_report_of(void)
{
    static const char sid[] = "0123456789abcdef0123456789abcdef";
    struct peer_link l;
    struct proto_msg m;
    memset(&l, 0, sizeof l);
    l.via = "lan";
    l.attempts = 3;
    l.punch_ms = 42;
    sess_report_of(sid, EXIT_DONE, &l, 999, 77, PROTO_NAT_INDEPENDENT, &m);
    CHECK_INT(m.type, PROTO_REPORT);
    CHECK_STR(m.u.report.session, sid);
    CHECK_INT(m.u.report.result, PROTO_RES_DIRECT);
    CHECK_INT(m.u.report.candidate, PROTO_CAND_LAN);
    CHECK_INT(m.u.report.attempts, 3); /* the link's, not the caller's count */
    CHECK_INT(m.u.report.ms, 42);
    CHECK_INT(m.u.report.nat, PROTO_NAT_INDEPENDENT);
    /* relayed: the candidate is the relay, whatever the link's via says */
    l.relayed = true;
    l.via = "relay";
    sess_report_of(sid, EXIT_DONE, &l, 0, 0, PROTO_NAT_DEPENDENT, &m);
    CHECK_INT(m.u.report.result, PROTO_RES_RELAY);
    CHECK_INT(m.u.report.candidate, PROTO_CAND_RELAY);
    /* a direct winner of a kind the protocol does not name is still direct */
    l.relayed = false;
    l.via = "given";
    sess_report_of(sid, EXIT_DONE, &l, 0, 0, PROTO_NAT_UNKNOWN, &m);
    CHECK_INT(m.u.report.result, PROTO_RES_DIRECT);
    CHECK_INT(m.u.report.candidate, PROTO_CAND_PUBLIC);
    /* failed: no candidate, the caller's attempts and ms, clamped to the message's bounds */
    sess_report_of(sid, EXIT_PUNCH, &l, 10 * (uint64_t)PROTO_REPORT_MAX_MS, 100000,
                   (enum proto_nat)7, &m);
    CHECK_INT(m.u.report.result, PROTO_RES_FAILED);
    CHECK_INT(m.u.report.candidate, PROTO_CAND_NONE);
    CHECK_INT(m.u.report.attempts, PROTO_REPORT_MAX_ATTEMPTS);
    CHECK_INT(m.u.report.ms, PROTO_REPORT_MAX_MS);
    CHECK_INT(m.u.report.nat, PROTO_NAT_UNKNOWN);
    /* and it always encodes */
    char line[PROTO_MAX_LINE];
    CHECK(proto_encode(&m, line, sizeof line) > 0);
}

CHECK_MAIN(TEST(t_oldest), TEST(t_room), TEST(t_full), TEST(t_route), TEST(t_route_birthday),
           TEST(t_resume_refused), TEST(t_serve_resume_refused), TEST(t_hello_features),
           TEST(t_report_of))
