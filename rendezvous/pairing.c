#include "rendezvous/pairing.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/rand.h"
#include "common/sock.h"
#include "rendezvous/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A punch held back for the nearer peer. Linked into its recipient's list so that the
 * recipient going away cancels it: the timer never fires on a freed connection. */
struct pair_pending {
    uv_timer_t timer;
    struct srv_conn *to; /* NULL once cancelled */
    struct pair_pending *next;
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
    struct pair_pending **pp = &p->to->pending;
    while (*pp && *pp != p)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = p->next;
        p->to->npending--;
    }
}

static void pair_on_timer(uv_timer_t *t)
{
    struct pair_pending *p = t->data;
    struct srv_conn *to = p->to;
    char who[PROTO_MAX_ID + EP_STRLEN + 4];

    pair_unlink(p);
    p->to = NULL;
    if (srv_send(to, p->line, p->len) == 0)
        LOG_D("punch %s: delayed punch sent to %s", p->session, srv_who(to, who, sizeof who));
    uv_close((uv_handle_t *)&p->timer, pair_on_timer_close);
}

void pair_cancel(struct srv_conn *c)
{
    struct pair_pending *p = c->pending;
    while (p) {
        struct pair_pending *next = p->next;
        LOG_D("punch %s: delayed punch to %s cancelled, the peer is gone", p->session, c->id);
        uv_timer_stop(&p->timer);
        p->to = NULL;
        uv_close((uv_handle_t *)&p->timer, pair_on_timer_close);
        p = next;
    }
    c->pending = NULL;
    c->npending = 0;
}

void pair_peer_of(const struct srv_conn *c, struct pair_peer *p)
{
    memset(p, 0, sizeof *p);
    memcpy(p->id, c->id, sizeof p->id);
    p->observed = c->observed;
    srv_endpoints(c, &p->eps);
    p->has_obs6 = c->has_seen6;
    if (c->has_seen6)
        memcpy(&p->obs6, &c->seen6, sizeof c->seen6);
    p->nat = c->nat;
    p->path = c->path;
    p->has_key = true;
    memcpy(p->key, c->key, sizeof p->key);
}

/* Two endpoint-dependent NATs leave no direct IPv4 path; IPv6 endpoints on both sides, proven
 * by their probes, bypass the NATs, so those peers still punch. */
static bool pair_both_dependent(const struct pair_peer *a, const struct pair_peer *b)
{
    return a->nat == PROTO_NAT_DEPENDENT && b->nat == PROTO_NAT_DEPENDENT &&
           !(a->has_obs6 && b->has_obs6);
}

int pair_plan(bool relays, const struct pair_peer *from, const struct pair_peer *to,
              struct pair_plan *pl, char *msg, size_t len)
{
    const struct pair_peer *only_relay = from->path == PROTO_PATH_RELAY ? from
                                         : to->path == PROTO_PATH_RELAY ? to
                                                                        : NULL;
    const struct pair_peer *only_direct = from->path == PROTO_PATH_DIRECT ? from
                                          : to->path == PROTO_PATH_DIRECT ? to
                                                                          : NULL;
    bool symmetric = pair_both_dependent(from, to);

    memset(pl, 0, sizeof *pl);
    if (only_relay && only_direct) {
        snprintf(msg, len, "%s allows only a relayed connection and %s only a direct one",
                 only_relay->id, only_direct->id);
        return -1;
    }
    if (only_relay)
        snprintf(pl->reason, sizeof pl->reason, "%s asked for relay only", only_relay->id);
    else if (symmetric)
        snprintf(pl->reason, sizeof pl->reason, "both NATs map endpoint-dependently (symmetric)");
    pl->direct = !only_relay && !symmetric;
    pl->relay = relays && !only_direct;
    if (!pl->direct && !relays) {
        snprintf(msg, len, "%.200s, but this server does not relay", pl->reason);
        return -1;
    }
    /* not in the spec's table: a symmetric pair where one side refuses the relay has no path
     * either, and an empty punch would only make both sides wait for their timeout */
    if (!pl->direct && !pl->relay) {
        snprintf(msg, len, "%.120s, and %s allows only a direct connection", pl->reason,
                 only_direct->id);
        return -1;
    }
    return 0;
}

static void pair_add_ep(struct proto_eplist *l, const struct sockaddr_storage *a)
{
    for (int i = 0; i < l->n; i++)
        if (ep_equal((const struct sockaddr *)&l->ep[i], (const struct sockaddr *)a))
            return;
    if (l->n < PROTO_MAX_ENDPOINTS)
        l->ep[l->n++] = *a;
}

/* What a punch lists as other's endpoints for a recipient seen at `to`. The server hands out
 * only addresses that it observed itself or that can only lead into the recipient's own
 * network: a self-declared endpoint is a stranger's word, and the recipient dials it (a
 * reflection of SYNs at any host the stranger names). So: other's IPv6 endpoint when its probe
 * proved it (also in observed6, for peers that know that field); behind the same public
 * address, its LAN endpoints as declared (not its unproven global IPv6 ones, which reach out of
 * that network); elsewhere only its observed address with its own local port, the guess for a
 * NAT that keeps that port towards other destinations (PROTOCOL.md 7, "port-preserved"). */
static void pair_endpoints_for(const struct pair_peer *other, const struct sockaddr_storage *to,
                               struct proto_eplist *out)
{
    const struct sockaddr *obs = (const struct sockaddr *)&other->observed;
    memset(out, 0, sizeof *out);
    if (!to) {
        *out = other->eps;
        return;
    }
    if (other->eps.n > 0 && ep_port((const struct sockaddr *)&other->eps.ep[0]) != ep_port(obs)) {
        struct sockaddr_storage guess = other->observed;
        ep_set_port((struct sockaddr *)&guess, ep_port((const struct sockaddr *)&other->eps.ep[0]));
        pair_add_ep(out, &guess);
    }
    if (other->has_obs6)
        pair_add_ep(out, &other->obs6);
    if (!ep_same_host(obs, (const struct sockaddr *)to))
        return;
    for (int i = 0; i < other->eps.n; i++)
        if (!sk_is_global6((const struct sockaddr *)&other->eps.ep[i]))
            pair_add_ep(out, &other->eps.ep[i]);
}

/* The punch `to` receives: everything in it describes `other`. */
int pair_encode(const struct pair_peer *other, const struct sockaddr_storage *to,
                enum proto_role role, const char *session, const struct pair_plan *pl,
                const struct sockaddr_storage *relay_addr, struct proto_msg *m, char *buf,
                size_t len)
{
    memset(m, 0, sizeof *m);
    m->type = PROTO_PUNCH;
    memcpy(m->u.punch.session, session, PROTO_SESSION_LEN + 1);
    snprintf(m->u.punch.peer, sizeof m->u.punch.peer, "%s", other->id);
    m->u.punch.role = role;
    m->u.punch.observed = other->observed;
    pair_endpoints_for(other, to, &m->u.punch.endpoints);
    m->u.punch.has_observed6 = other->has_obs6;
    m->u.punch.observed6 = other->obs6;
    m->u.punch.nat = other->nat; /* as its probe showed; unknown without one */
    /* the key it proved at hello: the peers check the shake by it */
    m->u.punch.has_key = other->has_key;
    memcpy(m->u.punch.key, other->key, sizeof m->u.punch.key);
    m->u.punch.start_in_us = PAIR_LEAD_US;
    m->u.punch.relay = pl->relay;
    if (pl->relay)
        memcpy(m->u.punch.token, pl->token[role == PROTO_INITIATOR ? 0 : 1],
               sizeof m->u.punch.token);
    m->u.punch.no_direct = !pl->direct;
    if (!pl->direct || pl->reason[0]) /* with direct: why no relay was offered */
        snprintf(m->u.punch.reason, sizeof m->u.punch.reason, "%s", pl->reason);
    if (pl->relay && relay_addr) {
        m->u.punch.has_relay_addr = true;
        m->u.punch.relay_addr = *relay_addr;
    }
    return proto_encode(m, buf, len);
}

uint32_t pair_rtt_us(struct srv_conn *c)
{
    uv_os_fd_t fd;
    if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0)
        return 0;
    return sk_rtt_us(fd);
}

/* Queues line for `to` delay_ms from now. Returns 0, or -1 if it could not be delayed. */
static int pair_delay(struct srv_conn *to, const char *session, const char *line, size_t len,
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
    if (uv_timer_init(to->srv->loop, &p->timer) != 0) {
        free(p);
        return -1;
    }
    p->timer.data = p;
    p->to = to;
    memcpy(p->session, session, sizeof p->session);
    memcpy(p->line, line, len);
    p->len = len;
    uv_timer_start(&p->timer, pair_on_timer, delay_ms, 0);
    p->next = to->pending;
    to->pending = p;
    to->npending++;
    return 0;
}

void pair_send_later(struct srv_conn *to, const char *session, const char *line, size_t len,
                     uint64_t delay_us)
{
    uint64_t delay_ms = (delay_us + 500) / 1000;
    if (delay_ms > PAIR_MAX_DELAY_MS)
        delay_ms = PAIR_MAX_DELAY_MS;
    if (delay_ms == 0 || pair_delay(to, session, line, len, delay_ms) < 0)
        srv_send(to, line, len);
}

static const struct rly_party *pair_party(const struct srv_conn *c, struct rly_party *p)
{
    p->id = c->id;
    p->key = c->key;
    p->src = (const struct sockaddr *)&c->observed;
    return p;
}

int pair_offer(struct rly *r, const char *session, const struct rly_party *initiator,
               const struct rly_party *target, struct pair_plan *pl, char *why, size_t len)
{
    if (rly_offer(r, session, initiator, target, pl->token[0], pl->token[1], why, len) == 0)
        return 0;
    pl->relay = false;
    if (pl->direct) /* the punch tells both peers why they will get no relay */
        snprintf(pl->reason, sizeof pl->reason, "no relay offered: %.200s", why);
    return -1;
}

/* Both punches are encoded before either is sent: sending can drop a peer (overloaded),
 * and the second punch must still describe it as it was when the pair was made. */
static void pair_punch(struct srv_conn *from, struct srv_conn *to, struct pair_plan *pl)
{
    struct rly_party p0, p1;
    char why[PROTO_MAX_TEXT], msg[PROTO_MAX_TEXT];
    struct pair_peer p_from, p_to;
    char session[PROTO_SESSION_LEN + 1];
    char line_from[PROTO_MAX_LINE], line_to[PROTO_MAX_LINE];
    struct proto_msg m_from, m_to;
    int n_from, n_to;
    uint64_t sent_us;
    uint32_t rtt_from, rtt_to, near_rtt, far_rtt;
    uint64_t delay_ms;
    struct srv_conn *far, *near;
    const char *far_line, *near_line;
    size_t far_len, near_len;

    if (rnd_hex(session, PROTO_SESSION_LEN / 2) < 0) {
        LOG_E("cannot create a session id: no randomness available");
        srv_refuse(from, "internal", "the server cannot create a session now", false);
        return;
    }
    if (pl->relay && pair_offer(from->srv->rly, session, pair_party(from, &p0), pair_party(to, &p1),
                                pl, why, sizeof why) < 0) {
        if (!pl->direct) {
            LOG_N("punch %s: %s -> %s: no relay: %s", session, from->id, to->id, why);
            snprintf(msg, sizeof msg, "%.100s; and the relay refuses it: %.120s", pl->reason, why);
            srv_refuse(from, "no-path", msg, false);
            return;
        }
        LOG_N("punch %s: %s -> %s: no relay, direct only: %s", session, from->id, to->id, why);
    }
    /* an auxiliary connection exists for this one session (PROTOCOL.md, 5.1) */
    from->aux_used = from->aux;
    pair_peer_of(from, &p_from);
    pair_peer_of(to, &p_to);
    n_from = pair_encode(&p_to, &p_from.observed, PROTO_INITIATOR, session, pl, NULL, &m_from,
                         line_from, sizeof line_from);
    n_to = pair_encode(&p_from, &p_to.observed, PROTO_RESPONDER, session, pl, NULL, &m_to, line_to,
                       sizeof line_to);
    if (n_from < 0 || n_to < 0) { /* cannot happen: ids and 8 endpoints fit in a line */
        LOG_E("punch %s: cannot encode the punch messages", session);
        srv_refuse(from, "internal", "the server cannot encode the punch", false);
        return;
    }

    /* The farther peer gets its punch first and the nearer one half the RTT difference
     * later, so both arrive (and both start their SYNs) at about the same moment. */
    rtt_from = pair_rtt_us(from);
    rtt_to = pair_rtt_us(to);
    far = rtt_from >= rtt_to ? from : to;
    near = far == from ? to : from;
    far_rtt = far == from ? rtt_from : rtt_to;
    near_rtt = far == from ? rtt_to : rtt_from;
    far_line = far == from ? line_from : line_to;
    far_len = (size_t)(far == from ? n_from : n_to);
    near_line = near == from ? line_from : line_to;
    near_len = (size_t)(near == from ? n_from : n_to);
    delay_ms = ((uint64_t)(far_rtt - near_rtt) / 2 + 500) / 1000;
    if (delay_ms > PAIR_MAX_DELAY_MS)
        delay_ms = PAIR_MAX_DELAY_MS;

    sent_us = clk_us();
    srv_send(far, far_line, far_len);
    if (delay_ms == 0 || pair_delay(near, session, near_line, near_len, delay_ms) < 0) {
        /* The second copy leaves (and arrives) later by the time the first send took: tell its
         * peer to start that much sooner, so both first SYNs still leave together. */
        struct proto_msg *nm = near == from ? &m_from : &m_to;
        uint64_t gap = clk_us() - sent_us;
        int n;
        nm->u.punch.start_in_us = gap < PAIR_LEAD_US ? PAIR_LEAD_US - (int64_t)gap : 0;
        n = proto_encode(nm, line_from, sizeof line_from);
        delay_ms = 0;
        if (n > 0)
            srv_send(near, line_from, (size_t)n);
    }
    LOG_N("punch sent: session %s, %s (initiator) <-> %s (responder), %s first, %s %llu ms "
          "later (rtt %.1f / %.1f ms), direct %s, relay %s",
          session, from->id, to->id, far->id, near->id, (unsigned long long)delay_ms,
          far_rtt / 1000.0, near_rtt / 1000.0, pl->direct ? "yes" : "no",
          pl->relay ? "offered" : "no");
}

void pair_connect(struct srv *s, struct srv_conn *from, const char *target)
{
    char msg[PROTO_MAX_TEXT];
    struct srv_conn *to;
    struct pair_plan plan;
    struct pair_peer p_from, p_to;

    if (from->state != SRV_LIVE) {
        srv_refuse(from, "not-registered", "send hello before connect", true);
        return;
    }
    LOG_N("connect request: %s -> %s", from->id, target);
    if (strcmp(target, from->id) == 0) {
        srv_refuse(from, "self-connect", "cannot connect to your own id", false);
        return;
    }
    to = srv_find(s, target);
    if (!to && s->cl) { /* maybe on another instance: cluster.c answers, now or later */
        cl_connect(s->cl, from, target);
        return;
    }
    if (!to) {
        snprintf(msg, sizeof msg, "%s is not registered on this server", target);
        srv_refuse(from, "peer-not-found", msg, false);
        return;
    }
    pair_peer_of(from, &p_from);
    pair_peer_of(to, &p_to);
    if (pair_plan(s->cfg.relay.enabled, &p_from, &p_to, &plan, msg, sizeof msg) < 0) {
        srv_refuse(from, "no-path", msg, false);
        return;
    }
    pair_punch(from, to, &plan);
}
