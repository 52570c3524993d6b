/* Introductions between instances over the bus (PROTOCOL.md, "Cluster"): the initiator's
 * instance finds the target's in the directory and sends it an introduce; the target's
 * instance plans the pair as pairing.c does for a local one and answers with the initiator's
 * punch. Every message is built and checked by proto/bus.c, and taken only fresh. */
#include "rendezvous/cluster.h"
#include "rendezvous/cluster_int.h"
#include "common/log.h"
#include "common/rand.h"
#include "rendezvous/metrics.h"
#include "rendezvous/plan.h"
#include "rendezvous/relay.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the bus: every message is checked as strictly as a line from the wire ---- */

/* Takes t from sender unless it is stale, from the future or not larger than the last one
 * taken from it (a replay). */
static bool cl_fresh(struct cl *c, const char *sender, int64_t t)
{
    int64_t now = cl__wall_us(), win = (int64_t)CL_BUS_FRESH_S * 1000000;
    struct cl_sender *e = NULL, *oldest = NULL;
    if (t < now - win || t > now + win) {
        cl__reject(c,
                   "from %s: stamped %+" PRId64 " ms from now, outside +-%d s (clock skew, "
                   "or a replay)",
                   sender, (t - now) / 1000, CL_BUS_FRESH_S);
        return false;
    }
    for (size_t i = 0; i < c->nsenders; i++) {
        if (strcmp(c->senders[i].inst, sender) == 0)
            e = &c->senders[i];
        if (!oldest || c->senders[i].seen_ms < oldest->seen_ms)
            oldest = &c->senders[i];
    }
    if (!e && t <= c->floor_t) {
        cl__reject(c, "from %s: older than this instance's start (a replay)", sender);
        return false;
    }
    if (e && t <= e->last_t) {
        cl__reject(c, "from %s: sequence %" PRId64 " not after %" PRId64 " (a replay)", sender, t,
                   e->last_t);
        return false;
    }
    if (!e && c->nsenders < CL_MAX_SENDERS)
        e = &c->senders[c->nsenders++];
    else if (!e) {
        /* more instances than remembered: the forgotten one's messages stay refused */
        if (oldest->last_t > c->floor_t)
            c->floor_t = oldest->last_t;
        e = oldest;
    }
    snprintf(e->inst, sizeof e->inst, "%s", sender);
    e->last_t = t;
    e->seen_ms = uv_now(c->loop);
    return true;
}

/* ---- introductions: the initiator's instance ---- */

static void cl_on_published(redisAsyncContext *ac, void *r, void *privdata)
{
    struct cl_op *op = privdata;
    redisReply *reply = r;
    char msg[PROTO_MAX_TEXT];
    (void)ac;
    if (!op->finished && (!cl__reply_ok(reply) || reply->type != REDIS_REPLY_INTEGER)) {
        snprintf(msg, sizeof msg, "%s cannot be reached now: the cluster store failed", op->target);
        cl__op_fail(op, PC_PEER_NOT_FOUND, msg);
    } else if (!op->finished && reply->integer == 0) {
        /* crashed, its directory entries not expired yet */
        LOG_I("cluster: %s is on instance %s, which is not running", op->target, op->where);
        snprintf(msg, sizeof msg, "%s was registered on instance %s, which is not running",
                 op->target, op->where);
        cl__op_fail(op, PC_PEER_NOT_FOUND, msg);
    }
    cl__op_unref(op);
}

/* The initiator as the target's instance will describe it to the target: a punch (with an
 * empty plan), so that the receiving side decodes it with the protocol's own checks. */
static void cl_introduce_msg(struct cl *c, struct cl_op *op, struct cl_link *from,
                             struct bus_msg *m)
{
    struct plan_peer me;
    struct plan none;
    memset(&none, 0, sizeof none);
    none.direct = true;
    memset(m, 0, sizeof *m);
    m->type = BUS_INTRODUCE;
    c->user.facts(c->user.data, from, &me);
    /* unfiltered: the target's instance knows both observed addresses and filters */
    plan_describe(&me, NULL, PROTO_RESPONDER, op->session, &none, NULL, &m->u.introduce.peer);
    /* the initiator's features and the resume root travel as introduce members of their own
     * (as birthday does): the embedded punch stays what it was, and B plans with them */
    m->u.introduce.peer.u.punch.peer_features = 0;
    m->u.introduce.features = me.features;
    snprintf(m->u.introduce.resume, sizeof m->u.introduce.resume, "%s", op->resume);
    snprintf(m->session, sizeof m->session, "%s", op->session);
    snprintf(m->u.introduce.from, sizeof m->u.introduce.from, "%s", c->inst);
    snprintf(m->u.introduce.target, sizeof m->u.introduce.target, "%s", op->target);
    m->u.introduce.path = me.path;
    m->u.introduce.rtt_us = me.rtt_us;
    /* its caps only while it may take part now: the target's instance cannot know when it had
     * its last plan */
    if (!me.bday_recent)
        m->u.introduce.bday = me.bday;
    m->u.introduce.bus_rtt_us = c->redis_rtt_us;
}

static void cl_on_located(redisAsyncContext *ac, void *r, void *privdata)
{
    struct cl_op *op = privdata;
    struct cl *c = op->cl;
    redisReply *reply = r;
    char msg[PROTO_MAX_TEXT];
    struct bus_msg intro;
    (void)ac;
    if (op->finished) {
        cl__op_unref(op);
        return;
    }
    if (!cl__reply_ok(reply)) {
        snprintf(msg, sizeof msg, "%s cannot be looked up now: the cluster store failed",
                 op->target);
        cl__op_fail(op, PC_PEER_NOT_FOUND, msg);
    } else if (reply->type != REDIS_REPLY_STRING || strcmp(reply->str, c->inst) == 0 ||
               !bus_valid_instance(reply->str)) {
        /* our own name: a stale entry of a peer that has just left */
        snprintf(msg, sizeof msg, "%s is not registered on any server of this cluster", op->target);
        cl__op_fail(op, PC_PEER_NOT_FOUND, msg);
    } else {
        snprintf(op->where, sizeof op->where, "%s", reply->str);
        if (op->conn)
            cl_introduce_msg(c, op, op->conn, &intro);
        op->refs++;
        if (!op->conn || cl__publish(c, op->where, &intro, cl_on_published, op) < 0) {
            op->refs--;
            cl__op_fail(op, PC_INTERNAL, "the server cannot reach the cluster now");
        } else {
            LOG_I("cluster: introduce %s to %s on instance %s (session %s)", op->from, op->target,
                  op->where, op->session);
            if (c->user.mtr)
                c->user.mtr->cl_intro_out++;
            op->deadline_ms = uv_now(c->loop) + CL_ANSWER_MS;
        }
    }
    cl__op_unref(op);
}

void cl_connect(struct cl *c, struct cl_link *from, const char *from_id, const char *target,
                const char *resume)
{
    char key[CL_KEY_MAX], msg[PROTO_MAX_TEXT];
    struct cl_op *op;
    if (c->state != CL_UP) {
        snprintf(msg, sizeof msg,
                 "%s is not registered on this server, and the cluster is "
                 "unavailable (Redis at %.64s:%d is down)",
                 target, c->host, c->port);
        c->user.refuse(c->user.data, from, PC_PEER_NOT_FOUND, msg);
        return;
    }
    if (!(op = cl__op_new(c, CL_INTRO, from))) {
        c->user.refuse(c->user.data, from, PC_RATE_LIMITED,
                       "the server has too many introductions in flight");
        return;
    }
    snprintf(op->target, sizeof op->target, "%s", target);
    snprintf(op->from, sizeof op->from, "%s", from_id);
    snprintf(op->resume, sizeof op->resume, "%s", resume);
    if (rnd_hex(op->session, PROTO_SESSION_LEN / 2) < 0) {
        cl__op_fail(op, PC_INTERNAL, "the server cannot create a session now");
        return;
    }
    cl__key(c, "peer", target, key, sizeof key);
    op->refs++;
    if (redisAsyncCommand(c->cmd, cl_on_located, op, "GET %s", key) != REDIS_OK) {
        op->refs--;
        cl__op_fail(op, PC_INTERNAL, "the server cannot reach the cluster now");
    }
}

/* The target's instance answered: forward the punch it made for our initiator. Only the
 * instance the introduction went to may answer, and only with that session's punch for the
 * initiator with the target, or with one of the errors an instance sends. */
static void cl_on_answer(struct cl *c, struct bus_msg *m)
{
    struct cl_op *op;
    struct cl_link *conn;
    char buf[PROTO_MAX_LINE], target[PROTO_MAX_ID + 1], where[BUS_MAX_INSTANCE + 1];
    char from[PROTO_MAX_ID + 1];
    char sess[PROTO_SESSION_LEN + 1], why[2 * PROTO_MAX_TEXT];
    int n;

    op = cl__op_find(c, m->session);
    if (!op || !op->conn) {
        LOG_D("cluster: answer for unknown or expired session %s", m->session);
        return;
    }
    if (strcmp(op->where, m->sender) != 0) {
        cl__reject(c, "from %s: an answer for session %s, which went to instance %s", m->sender,
                   m->session, op->where[0] ? op->where : "(none yet)");
        return;
    }
    if (bus_answer_is(m, op->target, why, sizeof why) != BUS_OK) {
        cl__reject(c, "%s", why);
        return;
    }
    if (m->u.answer.code != PC_UNKNOWN) {
        cl__op_fail(op, m->u.answer.code, m->u.answer.message);
        return;
    }
    /* re-encoded from the decoded message: what reaches the peer is one canonical line */
    n = proto_encode(&m->u.answer.line, buf, sizeof buf);
    if (n <= 0) {
        cl__op_fail(op, PC_INTERNAL, "another server of the cluster sent a broken answer");
        return;
    }
    conn = op->conn;
    memcpy(sess, op->session, sizeof sess);
    memcpy(target, op->target, sizeof target);
    memcpy(where, op->where, sizeof where);
    memcpy(from, op->from, sizeof from);
    /* finished before sending: a send that drops conn must find no operation of it */
    cl__op_finish(op);
    if (m->u.answer.line.u.punch.has_birthday) {
        c->user.bday_planned(c->user.data, conn);
        LOG_I("punch %s: birthday: %s (%s) <-> %s (on instance %s), K %d, M %d", sess, from,
              proto_bday_role_name(m->u.answer.line.u.punch.birthday.role), target, where,
              m->u.answer.line.u.punch.birthday.k, m->u.answer.line.u.punch.birthday.m);
    }
    LOG_N("punch sent: session %s, %s (initiator) <-> %s (responder, on instance %s), %lld us "
          "after the answer",
          sess, from, target, where, (long long)m->u.answer.delay_us);
    /* another instance's word: held back no longer than this server holds its own punches */
    c->user.punch(c->user.data, conn, sess, buf, (size_t)n, plan_cap_us(m->u.answer.delay_us));
}

/* ---- introductions: the target's instance ---- */

static void cl_answer_error(struct cl *c, const char *to, const char *session, enum proto_code code,
                            const char *message)
{
    struct bus_msg m;
    memset(&m, 0, sizeof m);
    m.type = BUS_ANSWER;
    snprintf(m.session, sizeof m.session, "%s", session);
    m.u.answer.code = code;
    snprintf(m.u.answer.message, sizeof m.u.answer.message, "%s", message);
    cl__publish(c, to, &m, NULL, NULL);
}

/* The initiator from an introduce, checked as its own instance checked its hello: candidates
 * that may be offered, then the path (path_why: bus_decode's reason when the path is unknown,
 * else NULL). Returns 0, or -1 (logged) when the message is refused. */
static int cl_remote_peer(struct cl *c, const struct bus_msg *bm, const char *path_why,
                          struct plan_peer *p)
{
    const struct proto_msg *m = &bm->u.introduce.peer;
    char ep[EP_STRLEN];
    const char *bad;
    bool loopback_ok;
    loopback_ok = ep_is_loopback((const struct sockaddr *)&m->u.punch.observed);
    /* the observed address too: the relay and a NAT-mapping peer dial it */
    if ((bad = c->user.bad_candidate((const struct sockaddr *)&m->u.punch.observed, true)))
        ep_format((const struct sockaddr *)&m->u.punch.observed, ep, sizeof ep);
    for (int i = 0; !bad && i < m->u.punch.endpoints.n; i++)
        if ((bad = c->user.bad_candidate((const struct sockaddr *)&m->u.punch.endpoints.ep[i],
                                         loopback_ok)))
            ep_format((const struct sockaddr *)&m->u.punch.endpoints.ep[i], ep, sizeof ep);
    if (bad) {
        cl__reject(c, "from %s: introduce for session %s: endpoint %s is %s", bm->sender,
                   bm->session, ep, bad);
        return -1;
    }
    if (path_why) {
        cl__reject(c, "%s", path_why);
        return -1;
    }
    memset(p, 0, sizeof *p);
    memcpy(p->id, m->u.punch.peer, sizeof p->id);
    p->observed = m->u.punch.observed;
    p->eps = m->u.punch.endpoints;
    p->has_obs6 = m->u.punch.has_observed6;
    p->obs6 = m->u.punch.observed6;
    p->nat = m->u.punch.nat;
    p->has_key = m->u.punch.has_key;
    memcpy(p->key, m->u.punch.key, sizeof p->key);
    p->path = bm->u.introduce.path;
    p->rtt_us = bm->u.introduce.rtt_us;
    p->bday = bm->u.introduce.bday;
    p->features = bm->u.introduce.features;
    return 0;
}

/* The relay for a session whose initiator is on another instance: the quotas count the remote
 * initiator by its id, key and the address its own instance saw; they are this instance's
 * counts only (the relay runs here). Returns 0, or -1 when the relay was the only path and
 * refuses (msg: the no-path message). */
static int cl_offer(struct cl *c, const char *session, const struct plan_peer *pi,
                    const struct plan_peer *pt, struct plan *pl, char *msg, size_t len)
{
    struct rly_party qi = {.id = pi->id,
                           .key = pi->has_key ? pi->key : NULL,
                           .src = (const struct sockaddr *)&pi->observed};
    struct rly_party qt = {
        .id = pt->id, .key = pt->key, .src = (const struct sockaddr *)&pt->observed};
    char why[PROTO_MAX_TEXT];
    if (!pl->relay ||
        rly_offer(c->user.rly, session, &qi, &qt, pl->token[0], pl->token[1], why, sizeof why) == 0)
        return 0;
    LOG_N("cluster: session %s: %s -> %s: no relay%s: %s", session, pi->id, pt->id,
          pl->direct ? ", direct only" : "", why);
    return plan_no_relay(pl, why, msg, len);
}

/* path_why: bus_decode's reason when the path is unknown (refused after the endpoints), or
 * NULL. */
static void cl_on_introduce(struct cl *c, const struct bus_msg *m, const char *path_why)
{
    /* answers go to the sender (bus_decode checked "from" names it too) */
    const char *session = m->session, *from = m->sender, *target = m->u.introduce.target;
    struct cl_link *to;
    struct plan_peer pi, pt;
    struct plan pl;
    struct plan_punches pp;
    struct plan_route route = {.across = true, .relay_addr = &c->public_addr};
    struct bus_msg ans;
    char li[PROTO_MAX_LINE], lt[PROTO_MAX_LINE], text[PROTO_MAX_TEXT];
    int nt;

    if (c->user.mtr)
        c->user.mtr->cl_intro_in++;
    if (cl_remote_peer(c, m, path_why, &pi) < 0)
        return;
    to = c->user.find(c->user.data, target);
    if (!to) {
        snprintf(text, sizeof text, "%s is not registered on any server of this cluster", target);
        cl_answer_error(c, from, session, PC_PEER_NOT_FOUND, text);
        return;
    }
    c->user.facts(c->user.data, to, &pt);
    if (plan_path(c->user.relays, &pi, &pt, &pl, text, sizeof text) < 0 ||
        cl_offer(c, session, &pi, &pt, &pl, text, sizeof text) < 0) {
        mtr_intro(c->user.mtr, MTR_PATH_NONE);
        cl_answer_error(c, from, session, PC_NO_PATH, text);
        return;
    }
    /* into both punches, the initiator's (in the answer) and the target's */
    snprintf(pl.resume, sizeof pl.resume, "%s", m->u.introduce.resume);
    if (plan_birthday(&(struct plan_bday_cfg){c->user.bday_k_max, c->user.bday_m_max}, &pi, &pt,
                      &pl)) {
        c->user.bday_planned(c->user.data, to);
        LOG_I("punch %s: birthday: %s (%s, on instance %s) <-> %s (%s), K %d, M %d", session,
              pi.id, pl.bday_hard == PLAN_I ? "hard" : "easy", from, pt.id,
              pl.bday_hard == PLAN_T ? "hard" : "easy", pl.bday_k, pl.bday_m);
    }
    /* the initiator joins the relay here, through the address peers know this instance by */
    route.bus_rtt_us = m->u.introduce.bus_rtt_us + c->redis_rtt_us;
    plan_punches(&pl, &pi, &pt, session, &route, &pp);
    /* both punches must encode before either leaves: the initiator's goes out in the answer */
    nt = proto_encode(&pp.s[PLAN_T].m, lt, sizeof lt);
    if (proto_encode(&pp.s[PLAN_I].m, li, sizeof li) <= 0 || nt <= 0) {
        cl_answer_error(c, from, session, PC_INTERNAL, "the server cannot encode the punch");
        return;
    }
    memset(&ans, 0, sizeof ans);
    ans.type = BUS_ANSWER;
    snprintf(ans.session, sizeof ans.session, "%s", session);
    ans.u.answer.line = pp.s[PLAN_I].m;
    ans.u.answer.delay_us = (uint32_t)pp.s[PLAN_I].delay_us;
    if (cl__publish(c, from, &ans, NULL, NULL) < 0) {
        LOG_W("cluster: cannot answer instance %s for session %s", from, session);
        return;
    }
    c->user.punch(c->user.data, to, session, lt, (size_t)nt, pp.s[PLAN_T].delay_us);
    mtr_intro(c->user.mtr, mtr_path_of(pl.direct, pl.relay, pl.bday));
    LOG_N("punch sent: session %s, %s (initiator, on instance %s) <-> %s (responder), %s %llu us "
          "later, direct %s%s, relay %s%s%s",
          session, pi.id, from, pt.id, pt.id, (unsigned long long)pp.s[PLAN_T].delay_us,
          pl.direct ? "yes" : "no", pl.bday ? " (birthday)" : "", pl.relay ? "offered" : "no",
          pl.resume[0] ? ", resuming " : "", pl.resume);
    if (pl.relay)
        LOG_I("cluster: session %s relays here, at %s", session, c->public_text);
}

/* ---- replace: a registration moved here from another instance ---- */

/* The directory entry set as cl_announce sets it, answering the instance it named before (nil:
 * none). Here and not in cl_claim.c: what it is for is the bus message that follows. */
static const char cl_lua_take[] = "local v = redis.call('GET', KEYS[1]) "
                                  "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return v";

struct cl_take {
    struct cl *cl;
    char id[PROTO_MAX_ID + 1];
    unsigned char key[PROTO_KEY_BYTES];
};

static void cl_on_taken(redisAsyncContext *ac, void *r, void *privdata)
{
    struct cl_take *tk = privdata;
    struct cl *c = tk->cl;
    redisReply *reply = r;
    struct bus_msg m;
    (void)ac;
    /* no earlier holder, or this instance (a local replace has withdrawn it already) */
    if (!cl__reply_ok(reply) || reply->type != REDIS_REPLY_STRING ||
        strcmp(reply->str, c->inst) == 0 || !bus_valid_instance(reply->str))
        goto cleanup;
    memset(&m, 0, sizeof m);
    m.type = BUS_REPLACE;
    snprintf(m.u.replace.id, sizeof m.u.replace.id, "%s", tk->id);
    memcpy(m.u.replace.key, tk->key, sizeof m.u.replace.key);
    if (cl__publish(c, reply->str, &m, NULL, NULL) < 0)
        LOG_W("cluster: cannot tell instance %s that %s registered here", reply->str, tk->id);
    else
        LOG_N("cluster: %s (replace) was on instance %s: told it to close that registration",
              tk->id, reply->str);
cleanup:
    free(tk);
}

void cl_announce_replace(struct cl *c, const char *id, const unsigned char *key)
{
    char dkey[CL_KEY_MAX], ttl[16];
    struct cl_take *tk;
    if (!c || c->state != CL_UP)
        return;
    if (!(tk = calloc(1, sizeof *tk))) {
        cl_announce(c, id); /* the old holder then stays until its keepalive, as before */
        return;
    }
    tk->cl = c;
    snprintf(tk->id, sizeof tk->id, "%s", id);
    memcpy(tk->key, key, sizeof tk->key);
    snprintf(ttl, sizeof ttl, "%u", c->ttl);
    cl__key(c, "peer", id, dkey, sizeof dkey);
    if (redisAsyncCommand(c->cmd, cl_on_taken, tk, "EVAL %s 1 %s %s %s", cl_lua_take, dkey, c->inst,
                          ttl) != REDIS_OK)
        free(tk);
}

/* Another instance took id for a hello with replace: only an instance (the bus MAC) says so,
 * and the server closes its registration only when the key is the one it holds. */
static void cl_on_replace(struct cl *c, const struct bus_msg *m)
{
    LOG_I("cluster: instance %s took %s (replace)", m->sender, m->u.replace.id);
    c->user.replaced(c->user.data, m->u.replace.id, m->u.replace.key, m->sender);
}

/* One message from the subscription: authenticated, fresh, then strictly decoded. */
void cl__dispatch(struct cl *c, const char *payload, size_t len)
{
    struct bus_msg m;
    const char *json;
    size_t jlen;
    char why[2 * PROTO_MAX_TEXT];
    enum bus_err e;

    if (bus_open(c->bus_key, c->chan, payload, len, &json, &jlen, why, sizeof why) < 0) {
        cl__reject(c, "%s", why);
        return;
    }
    e = bus_decode(json, jlen, c->inst, &m, why, sizeof why);
    if (e == BUS_E_ENVELOPE) {
        cl__reject(c, "%s", why);
        return;
    }
    if (!cl_fresh(c, m.sender, m.t))
        return;
    if (e == BUS_E_TYPE)
        LOG_D("cluster: %s", why);
    else if (e != BUS_OK && e != BUS_E_PATH)
        cl__reject(c, "%s", why);
    else if (m.type == BUS_INTRODUCE)
        cl_on_introduce(c, &m, e == BUS_E_PATH ? why : NULL);
    else if (m.type == BUS_REPLACE)
        cl_on_replace(c, &m);
    else if (m.type == BUS_CODE)
        cl__code_on_bus(c, &m);
    else
        cl_on_answer(c, &m);
}
