#include "rendezvous/pairing.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/queue.h"
#include "common/rand.h"
#include "common/sock.h"
#include "rendezvous/reports.h"
#include "rendezvous/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A punch held back for the nearer peer. Linked into its recipient's list so that the
 * recipient going away cancels it: the timer never fires on a freed connection. */
struct pair_pending {
    uv_timer_t timer;
    struct conn *to; /* NULL once cancelled */
    struct q link;       /* in to->pending */
    char session[PROTO_SESSION_LEN + 1];
    size_t len;
    char line[PROTO_MAX_LINE];
};

static void pair_on_timer_close(uv_handle_t *h)
{
    free(h->data);
}

static void pair_unlink(struct pair_pending *p)
{
    if (q_linked(&p->link)) {
        q_remove(&p->link);
        p->to->npending--;
    }
}

static void pair_on_timer(uv_timer_t *t)
{
    struct pair_pending *p = t->data;
    struct conn *to = p->to;
    char who[PROTO_MAX_ID + EP_STRLEN + 4];

    pair_unlink(p);
    p->to = NULL;
    if (conn_send(to, p->line, p->len) == 0)
        LOG_D("punch %s: delayed punch sent to %s", p->session, conn_who(to, who, sizeof who));
    uv_close((uv_handle_t *)&p->timer, pair_on_timer_close);
}

void pair_cancel(struct conn *c)
{
    struct q *it, *tmp;
    q_foreach_safe(it, tmp, &c->pending) {
        struct pair_pending *p = q_data(it, struct pair_pending, link);
        LOG_D("punch %s: delayed punch to %s cancelled, the peer is gone", p->session, c->id);
        q_remove(&p->link);
        uv_timer_stop(&p->timer);
        p->to = NULL;
        uv_close((uv_handle_t *)&p->timer, pair_on_timer_close);
    }
    c->npending = 0;
}

static uint32_t pair_rtt_us(struct conn *c)
{
    uv_os_fd_t fd;
    if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0)
        return 0;
    return sk_rtt_us(fd);
}

void pair_peer_of(struct conn *c, struct plan_peer *p)
{
    memset(p, 0, sizeof *p);
    memcpy(p->id, c->id, sizeof p->id);
    p->observed = c->observed;
    conn_endpoints(c, &p->eps);
    p->has_obs6 = c->has_seen6;
    if (c->has_seen6)
        memcpy(&p->obs6, &c->seen6, sizeof c->seen6);
    p->nat = c->nat;
    p->path = c->path;
    p->has_key = true;
    memcpy(p->key, c->key, sizeof p->key);
    p->rtt_us = pair_rtt_us(c);
    p->bday = c->bday;
    p->features = c->features;
    p->bday_recent = c->bday_planned && uv_now(c->set->loop) - c->bday_ms < PLAN_BDAY_GAP_MS;
}

void pair_bday_mark(struct conn *c)
{
    c->bday_planned = true;
    c->bday_ms = uv_now(c->set->loop);
}

/* Queues line for `to` delay_ms from now. Returns 0, or -1 if it could not be delayed. */
static int pair_delay(struct conn *to, const char *session, const char *line, size_t len,
                      uint64_t delay_ms)
{
    struct pair_pending *p;
    if (to->npending >= PAIR_MAX_PENDING)
        return -1; /* bounds the memory a connect flood can pin for 2 s */
    if (len > sizeof p->line)
        return -1; /* never: every caller's line is one protocol line */
    p = malloc(sizeof *p);
    if (!p)
        return -1;
    memset(p, 0, offsetof(struct pair_pending, line));
    if (uv_timer_init(to->set->loop, &p->timer) != 0) {
        free(p);
        return -1;
    }
    p->timer.data = p;
    p->to = to;
    memcpy(p->session, session, sizeof p->session);
    memcpy(p->line, line, len);
    p->len = len;
    uv_timer_start(&p->timer, pair_on_timer, delay_ms, 0);
    q_insert_head(&to->pending, &p->link);
    to->npending++;
    return 0;
}

/* Holds line back delay_us (rounded to ms; plan.c has capped it). Returns the delay in ms, or
 * 0 when it was not held back (no delay, or too many pending): the caller sends it now. */
static uint64_t pair_hold(struct conn *to, const char *session, const char *line, size_t len,
                          uint64_t delay_us)
{
    /* every caller has capped it already (plan_timing, cl_on_answer); capping here too keeps the
     * bound where the punch is held, whoever calls next */
    uint64_t delay_ms = (plan_cap_us(delay_us) + 500) / 1000;
    if (delay_ms == 0 || pair_delay(to, session, line, len, delay_ms) < 0)
        return 0;
    return delay_ms;
}

void pair_send_later(struct conn *to, const char *session, const char *line, size_t len,
                     uint64_t delay_us)
{
    if (pair_hold(to, session, line, len, delay_us) == 0)
        conn_send(to, line, len);
}

static const struct rly_party *pair_party(const struct conn *c, struct rly_party *p)
{
    p->id = c->id;
    p->key = c->key;
    p->src = (const struct sockaddr *)&c->observed;
    return p;
}

/* Offers the relay for session when the plan wants one; a refusal leaves the session direct
 * only or, when the relay was its only path, refuses the connect. Returns 0 or -1 (refused). */
static int pair_offer(struct rly *rly, struct conn *from, struct conn *to,
                      const char *session, struct plan *pl)
{
    struct rly_party p0, p1;
    char why[PROTO_MAX_TEXT], msg[PROTO_MAX_TEXT];
    if (!pl->relay || rly_offer(rly, session, pair_party(from, &p0), pair_party(to, &p1),
                                pl->token[0], pl->token[1], why, sizeof why) == 0)
        return 0;
    if (plan_no_relay(pl, why, msg, sizeof msg) < 0) {
        LOG_N("punch %s: %s -> %s: no relay: %s", session, from->id, to->id, why);
        mtr_intro(from->set->mtr, MTR_PATH_NONE);
        conn_refuse(from, PC_NO_PATH, msg, false);
        return -1;
    }
    LOG_N("punch %s: %s -> %s: no relay, direct only: %s", session, from->id, to->id, why);
    return 0;
}

/* The far copy leaves now, the near one when plan.c says. Returns the delay the second got, in
 * ms (0: sent right after the first). */
static uint64_t pair_deliver(struct conn *const conn[2], struct plan_punches *pp,
                             char line[2][PROTO_MAX_LINE], const int n[2])
{
    int f = pp->first, s = !pp->first;
    uint64_t sent_us = clk_us(), delay_ms;
    int len;
    conn_send(conn[f], line[f], (size_t)n[f]);
    delay_ms = pair_hold(conn[s], pp->s[s].m.u.punch.session, line[s], (size_t)n[s],
                         pp->s[s].delay_us);
    if (delay_ms > 0)
        return delay_ms;
    /* The second copy leaves (and arrives) later by the time the first send took: tell its
     * peer to start that much sooner, so both first SYNs still leave together. */
    pp->s[s].m.u.punch.start_in_us = plan_lead_after(clk_us() - sent_us);
    len = proto_encode(&pp->s[s].m, line[s], PROTO_MAX_LINE);
    if (len > 0)
        conn_send(conn[s], line[s], (size_t)len);
    return 0;
}

void pair_connect(struct rly *rly, bool relays, const struct plan_bday_cfg *bday, struct conn *from,
                  struct conn *to, const char *resume)
{
    static const struct plan_route here = {.across = false};
    char msg[PROTO_MAX_TEXT], session[PROTO_SESSION_LEN + 1];
    char line[2][PROTO_MAX_LINE];
    int n[2];
    struct plan pl;
    struct plan_peer pi, pt;
    struct plan_punches pp;
    struct conn *conn[2] = {from, to};
    uint64_t delay_ms;
    int f;

    pair_peer_of(from, &pi);
    pair_peer_of(to, &pt);
    if (plan_path(relays, &pi, &pt, &pl, msg, sizeof msg) < 0) {
        mtr_intro(from->set->mtr, MTR_PATH_NONE);
        conn_refuse(from, PC_NO_PATH, msg, false);
        return;
    }
    snprintf(pl.resume, sizeof pl.resume, "%s", resume);
    if (rnd_hex(session, PROTO_SESSION_LEN / 2) < 0) {
        LOG_E("cannot create a session id: no randomness available");
        conn_refuse(from, PC_INTERNAL, "the server cannot create a session now", false);
        return;
    }
    if (pair_offer(rly, from, to, session, &pl) < 0)
        return;
    if (plan_birthday(bday, &pi, &pt, &pl)) {
        pair_bday_mark(from);
        pair_bday_mark(to);
        LOG_I("punch %s: birthday: %s (%s) <-> %s (%s), K %d, M %d", session, pi.id,
              pl.bday_hard == PLAN_I ? "hard" : "easy", pt.id,
              pl.bday_hard == PLAN_T ? "hard" : "easy", pl.bday_k, pl.bday_m);
    }
    /* an auxiliary connection exists for this one session (PROTOCOL.md, 5.1) */
    from->aux_used = from->aux;
    /* Both punches are encoded before either is sent: sending can drop a peer (overloaded),
     * and the second punch must still describe it as it was when the pair was made. */
    plan_punches(&pl, &pi, &pt, session, &here, &pp);
    n[PLAN_I] = proto_encode(&pp.s[PLAN_I].m, line[PLAN_I], sizeof line[PLAN_I]);
    n[PLAN_T] = proto_encode(&pp.s[PLAN_T].m, line[PLAN_T], sizeof line[PLAN_T]);
    if (n[PLAN_I] < 0 || n[PLAN_T] < 0) { /* cannot happen: ids and 8 endpoints fit in a line */
        LOG_E("punch %s: cannot encode the punch messages", session);
        conn_refuse(from, PC_INTERNAL, "the server cannot encode the punch", false);
        return;
    }
    /* each side may report on this session once (PROTOCOL.md, "Traversal reports") */
    rpt_note(from, session, pi.nat, pt.nat);
    rpt_note(to, session, pt.nat, pi.nat);
    f = pp.first;
    mtr_intro(from->set->mtr, mtr_path_of(pl.direct, pl.relay, pl.bday));
    delay_ms = pair_deliver(conn, &pp, line, n);
    LOG_N("punch sent: session %s, %s (initiator) <-> %s (responder), %s first, %s %llu ms "
          "later (rtt %.1f / %.1f ms), direct %s%s, relay %s%s%s",
          session, pi.id, pt.id, f == PLAN_I ? pi.id : pt.id, f == PLAN_I ? pt.id : pi.id,
          (unsigned long long)delay_ms, (f == PLAN_I ? pi : pt).rtt_us / 1000.0,
          (f == PLAN_I ? pt : pi).rtt_us / 1000.0, pl.direct ? "yes" : "no",
          pl.bday ? " (birthday)" : "", pl.relay ? "offered" : "no",
          pl.resume[0] ? ", resuming " : "", pl.resume);
}
