#include "rendezvous/plan.h"
#include "common/endpoint.h"
#include "common/sock.h"

#include <stdio.h>
#include <string.h>

/* Two endpoint-dependent NATs leave no direct IPv4 path; IPv6 endpoints on both sides, proven
 * by their probes, bypass the NATs, so those peers still punch. */
static bool plan_both_dependent(const struct plan_peer *a, const struct plan_peer *b)
{
    return a->nat == PROTO_NAT_DEPENDENT && b->nat == PROTO_NAT_DEPENDENT &&
           !(a->has_obs6 && b->has_obs6);
}

static const struct plan_peer *plan_wants(const struct plan_peer *i, const struct plan_peer *t,
                                          enum proto_path path)
{
    return i->path == path ? i : t->path == path ? t : NULL;
}

int plan_path(bool relays, const struct plan_peer *i, const struct plan_peer *t, struct plan *pl,
              char *msg, size_t len)
{
    const struct plan_peer *only_relay = plan_wants(i, t, PROTO_PATH_RELAY);
    const struct plan_peer *only_direct = plan_wants(i, t, PROTO_PATH_DIRECT);
    bool symmetric = plan_both_dependent(i, t);

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
    /* a symmetric pair where one side refuses the relay has no path either, and an empty punch
     * would only make both sides wait for their timeout */
    if (!pl->direct && !pl->relay) {
        snprintf(msg, len, "%.120s, and %s allows only a direct connection", pl->reason,
                 only_direct->id);
        return -1;
    }
    return 0;
}

static int plan_min(int a, int b)
{
    return a < b ? a : b;
}

/* One side as birthday needs it: announced, K and M above 0, no plan lately, not relay only,
 * its control connection over IPv4. */
static bool plan_bday_able(const struct plan_peer *p)
{
    return p->bday.has && p->bday.k > 0 && p->bday.m > 0 && !p->bday_recent &&
           p->path != PROTO_PATH_RELAY && p->observed.ss_family == AF_INET;
}

bool plan_birthday(const struct plan_bday_cfg *cfg, const struct plan_peer *i,
                   const struct plan_peer *t, struct plan *pl)
{
    const struct plan_peer *hard, *easy;
    if (!pl->direct || cfg->k_max <= 0 || cfg->m_max <= 0 || !plan_bday_able(i) ||
        !plan_bday_able(t))
        return false;
    if (i->nat == PROTO_NAT_DEPENDENT && t->nat == PROTO_NAT_INDEPENDENT)
        hard = i, easy = t;
    else if (t->nat == PROTO_NAT_DEPENDENT && i->nat == PROTO_NAT_INDEPENDENT)
        hard = t, easy = i;
    else
        return false;
    /* one public address: one NAT, the LAN candidates work; IPv6 on both: the ordinary punch */
    if (ep_same_host((const struct sockaddr *)&i->observed, (const struct sockaddr *)&t->observed) ||
        (i->has_obs6 && t->has_obs6))
        return false;
    pl->bday = true;
    pl->bday_hard = hard == i ? 0 : 1;
    pl->bday_k = plan_min(plan_min(cfg->k_max, PROTO_BDAY_MAX_K), hard->bday.k);
    pl->bday_m = plan_min(plan_min(cfg->m_max, PROTO_BDAY_MAX_M), easy->bday.m);
    return true;
}

int plan_no_relay(struct plan *pl, const char *why, char *msg, size_t len)
{
    pl->relay = false;
    if (!pl->direct) {
        snprintf(msg, len, "%.100s; and the relay refuses it: %.120s", pl->reason, why);
        return -1;
    }
    /* the punch tells both peers why they will get no relay */
    snprintf(pl->reason, sizeof pl->reason, "no relay offered: %.200s", why);
    return 0;
}

static void plan_add_ep(struct proto_eplist *l, const struct sockaddr_storage *a)
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
static void plan_endpoints_for(const struct plan_peer *other, const struct sockaddr_storage *to,
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
        plan_add_ep(out, &guess);
    }
    if (other->has_obs6)
        plan_add_ep(out, &other->obs6);
    if (!ep_same_host(obs, (const struct sockaddr *)to))
        return;
    for (int i = 0; i < other->eps.n; i++)
        if (!sk_is_global6((const struct sockaddr *)&other->eps.ep[i]))
            plan_add_ep(out, &other->eps.ep[i]);
}

/* The punch `to` receives: everything in it describes `other`. */
void plan_describe(const struct plan_peer *other, const struct sockaddr_storage *to,
                   enum proto_role role, const char *session, const struct plan *pl,
                   const struct sockaddr_storage *relay_addr, struct proto_msg *m)
{
    memset(m, 0, sizeof *m);
    m->type = PROTO_PUNCH;
    memcpy(m->u.punch.session, session, PROTO_SESSION_LEN + 1);
    snprintf(m->u.punch.peer, sizeof m->u.punch.peer, "%s", other->id);
    m->u.punch.role = role;
    m->u.punch.observed = other->observed;
    plan_endpoints_for(other, to, &m->u.punch.endpoints);
    m->u.punch.has_observed6 = other->has_obs6;
    m->u.punch.observed6 = other->obs6;
    m->u.punch.nat = other->nat; /* as its probe showed; unknown without one */
    /* the key it proved at hello: the peers check the shake by it */
    m->u.punch.has_key = other->has_key;
    memcpy(m->u.punch.key, other->key, sizeof m->u.punch.key);
    m->u.punch.start_in_us = PLAN_LEAD_US;
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
    /* resumable sessions: what the other announced, and the session this punch resumes */
    m->u.punch.peer_features = other->features;
    memcpy(m->u.punch.resume, pl->resume, sizeof m->u.punch.resume);
    if (pl->bday) {
        /* both copies aim at `other`'s observed endpoint: the hard side dials the easy side's
         * mapping, the easy side guesses ports of the hard side's address (its port unused) */
        struct proto_bday *b = &m->u.punch.birthday;
        int me = role == PROTO_INITIATOR ? 0 : 1;
        m->u.punch.has_birthday = true;
        b->role = me == pl->bday_hard ? PROTO_BDAY_HARD : PROTO_BDAY_EASY;
        b->target = other->observed;
        b->k = pl->bday_k;
        b->m = pl->bday_m;
        b->ttl = PLAN_BDAY_TTL;
        b->pace_ms = PLAN_BDAY_PACE_MS;
        b->port_lo = PLAN_BDAY_PORT_LO;
        b->port_hi = PLAN_BDAY_PORT_HI;
        b->easy_delay_us = PLAN_BDAY_EASY_DELAY_US;
    }
}

uint64_t plan_cap_us(uint64_t us)
{
    return us > PLAN_MAX_DELAY_US ? PLAN_MAX_DELAY_US : us;
}

int64_t plan_lead_after(uint64_t gap_us)
{
    return gap_us < PLAN_LEAD_US ? PLAN_LEAD_US - (int64_t)gap_us : 0;
}

/* A message needs about half a round trip to arrive: the initiator's after the bus (half of
 * bus_rtt_us) and half its own RTT, the target's after half its RTT. The one that would arrive
 * first is held back by the difference, so both peers send their SYNs together. Computed in
 * whole round trips and halved once, so that a local pair gets exactly (far - near) / 2. */
static void plan_timing(uint32_t rtt_i, uint32_t rtt_t, uint32_t bus_rtt_us,
                        struct plan_punches *out)
{
    uint64_t trip_i = (uint64_t)bus_rtt_us + rtt_i;
    out->s[PLAN_T].delay_us = trip_i > rtt_t ? plan_cap_us((trip_i - rtt_t) / 2) : 0;
    out->s[PLAN_I].delay_us = rtt_t > trip_i ? plan_cap_us((rtt_t - trip_i) / 2) : 0;
    out->first = trip_i >= rtt_t ? PLAN_I : PLAN_T; /* the farther first; on a tie the initiator */
}

void plan_punches(const struct plan *pl, const struct plan_peer *i, const struct plan_peer *t,
                  const char *session, const struct plan_route *route, struct plan_punches *out)
{
    memset(out, 0, sizeof *out);
    plan_describe(t, &i->observed, PROTO_INITIATOR, session, pl,
                  route->across ? route->relay_addr : NULL, &out->s[PLAN_I].m);
    plan_describe(i, &t->observed, PROTO_RESPONDER, session, pl, NULL, &out->s[PLAN_T].m);
    plan_timing(i->rtt_us, t->rtt_us, route->across ? route->bus_rtt_us : 0, out);
    /* across instances each copy leaves from its own server: neither waits for the other */
    if (!route->across)
        out->s[!out->first].second = true;
}
