#include "rendezvous/server.h"
#include "rendezvous/srv_code.h"
#include "common/addrpol.h"
#include "common/log.h"
#include "common/rand.h"
#include "common/sock.h"
#include "rendezvous/pairing.h"
#include "rendezvous/registry.h"
#include "rendezvous/reports.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdarg.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SRV_BACKLOG 511
#define SRV_TRIM_MIN 1000 /* connections: below this, what malloc keeps is not worth a trim */
#define SRV_SWEEP_MS 500
#define SRV_PROBE6_REFRESH_MS 60000
#define SRV_LINGER_MS 5000      /* how long a refused peer gets to read its error and close */
#define SRV_STOP_LINGER_MS 2000 /* the same while shutting down */
/* sources tracked without a connection (their rate buckets refill within a second) */
#define SRV_IDLE_SOURCES 65536

static void srv_probe6_refresh(struct srv *s);
static void srv_unhold(struct conn *c);
static void srv_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void srv_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

/* ---- connections leaving ---- */

/* The last step of every shutdown: once no connection is left the sweep timer goes too, and
 * with the listeners already closed uv_run returns. */
static void srv_maybe_done(struct srv *s)
{
    if (!s->stopping || s->drain.on || conn_count(&s->conns) || (s->rly && !rly_idle(s->rly)))
        return;
    if (s->sweep_init && !uv_is_closing((uv_handle_t *)&s->sweep))
        uv_close((uv_handle_t *)&s->sweep, NULL);
}

/* The relay's last handle has closed during a shutdown. */
static void srv_on_relay_idle(void *arg)
{
    srv_maybe_done(arg);
}

static void srv_on_conn_closed(void *data)
{
    srv_maybe_done(data);
}

/* c leaves service (conn.c's on_gone): out of the registry, the cluster's operations and the
 * delayed punches, so that from here on no other peer's request and no timer can reach it;
 * once closed it no longer counts against its source address. */
static void srv_on_gone(void *data, struct conn *c, enum conn_state to)
{
    struct srv *s = data;
    if (to == CONN_CLOSED) {
        lim_release(s->lim, c->src, uv_now(s->loop));
        c->src = NULL;
    }
    if (c->state == CONN_LIVE && !c->aux && reg_remove(s->reg, c->id, c) == 0)
        cl_withdraw(s->cl, c->id);
    cl_conn_gone(s->cl, &c->cl);
    wh_gone(s->wh, &c->wh, uv_now(s->loop)); /* its channel burns, its other side is told */
    if (c->probe_token[0])
        reg_remove(s->probes, c->probe_token, c);
    c->probe_token[0] = '\0';
    pair_cancel(c);
}

struct conn *srv_find(struct srv *s, const char *id)
{
    return reg_find(s->reg, id);
}

/* ---- messages ---- */

/* A fresh random token per registration ties a later probe connection to this peer. Without
 * one (no probe listener, no randomness, out of memory) welcome just leaves the probe out. */
static void srv_issue_probe_token(struct conn *c, struct proto_msg *m)
{
    if (!c->srv->probe_port || rnd_hex(c->probe_token, PROTO_TOKEN_LEN / 2) < 0 ||
        reg_add(c->srv->probes, c->probe_token, c) != REG_OK) {
        c->probe_token[0] = '\0';
        return;
    }
    m->u.welcome.probe_port = c->srv->probe_port;
    memcpy(m->u.welcome.probe_token, c->probe_token, sizeof m->u.welcome.probe_token);
    /* an IPv4 peer proves its IPv6 endpoint by probing from it (srv_on_probe) */
    if (c->srv->has_probe6 && c->observed.ss_family == AF_INET) {
        m->u.welcome.has_probe6 = true;
        m->u.welcome.probe6 = c->srv->probe6;
    }
}

static void srv_welcome(struct conn *c)
{
    struct proto_msg m;
    char line[PROTO_MAX_LINE];
    int n;
    memset(&m, 0, sizeof m);
    m.type = PROTO_WELCOME;
    m.u.welcome.version = PROTO_VERSION;
    memcpy(m.u.welcome.id, c->id, sizeof m.u.welcome.id);
    m.u.welcome.observed = c->observed;
    m.u.welcome.keepalive = (int)c->srv->cfg.keepalive;
    m.u.welcome.relay = c->srv->cfg.relay.enabled;
    srv_issue_probe_token(c, &m);
    n = proto_encode(&m, line, sizeof line);
    if (n > 0 && conn_send(c, line, (size_t)n) == 0)
        c->srv->mtr.registrations++;
}

static void srv_log_endpoints(const struct conn *c)
{
    char ep[EP_STRLEN];
    if (!log_enabled(LOG_DEBUG))
        return;
    for (int i = 0; i < c->nep; i++)
        LOG_D("  %s endpoint %d: %s", c->id, i + 1, ep_format(&c->ep[i].sa, ep, sizeof ep));
}


static int srv_keep_endpoints(struct conn *c, const struct proto_eplist *l)
{
    if (l->n == 0)
        return 0;
    if (!(c->ep = calloc((size_t)l->n, sizeof *c->ep)))
        return -1;
    for (int i = 0; i < l->n; i++)
        memcpy(&c->ep[i], &l->ep[i], ep_len((const struct sockaddr *)&l->ep[i]));
    c->nep = (uint8_t)l->n;
    return 0;
}

/* The rule lives in common/addrpol (ap_bad_offer), with the peer's and the local address
 * list's. */
const char *srv_bad_candidate(const struct sockaddr *sa, bool loopback_ok)
{
    return ap_bad_offer(sa, loopback_ok);
}

/* Returns 0, or -1 after refusing c with bad-endpoint. */
static int srv_check_candidates(struct conn *c, const struct proto_eplist *l)
{
    bool loopback_ok = ep_is_loopback((const struct sockaddr *)&c->observed);
    char msg[PROTO_MAX_TEXT], ep[EP_STRLEN];
    for (int i = 0; i < l->n; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&l->ep[i];
        const char *why = srv_bad_candidate(sa, loopback_ok);
        if (why) {
            snprintf(msg, sizeof msg, "endpoint %s is %s", ep_format(sa, ep, sizeof ep), why);
            conn_refuse(c, PC_BAD_ENDPOINT, msg, true);
            return -1;
        }
    }
    return 0;
}

/* The connection of this instance that a hello with replace takes the id from: the id's holder
 * when it registered with the hello's key (the hello's signature has proved that key), or NULL
 * (no replace, an auxiliary connection, a different key: id-taken as before). Honoured with
 * --no-resume too (challenge.features "replace"): a restarted listen needs it. */
static struct conn *srv_replaceable(struct conn *c, const struct proto_msg *m)
{
    struct conn *old;
    if (!m->u.hello.replace || m->u.hello.aux)
        return NULL;
    old = reg_find(c->srv->reg, m->u.hello.id);
    if (!old || old == c || sodium_memcmp(old->key, m->u.hello.key, sizeof old->key) != 0)
        return NULL;
    return old;
}

/* hello.replace (PROTOCOL.md 18): the old holder is this peer's own connection that is gone
 * or superseded (a router reboot leaves it open here until the keepalive). It gets `replaced`
 * and leaves the registry at once (srv_on_gone), so that the id is free for c. Returns
 * whether it was replaced. */
static bool srv_replace_local(struct conn *c, const struct proto_msg *m)
{
    struct conn *old = srv_replaceable(c, m);
    char msg[PROTO_MAX_TEXT];
    if (!old)
        return false;
    /* the key's owner only, but in a loop each replace costs a signature check, a refusal and
     * (cluster) a bus message: the id's bucket goes from holder to holder */
    if (rst_replace_take(&old->replaces, uv_now(c->srv->loop)) < 0) {
        snprintf(msg, sizeof msg, "%s was replaced more than %d times in a row; try again in %d s",
                 old->id, RST_REPLACE_BURST, RST_REPLACE_EVERY_MS / 1000);
        conn_refuse(c, PC_RATE_LIMITED, msg, true);
        return false;
    }
    c->replaces = old->replaces;
    LOG_N("replace %s: the connection from %s gives way to the one from %s (same key)", old->id,
          old->addr, c->addr);
    snprintf(msg, sizeof msg, "a newer connection registered %s with the same key", old->id);
    conn_refuse(old, PC_REPLACED, msg, true);
    c->srv->mtr.replaced++;
    return reg_find(c->srv->reg, m->u.hello.id) == NULL;
}

/* ---- the wormhole mailbox's sides (wh.h): a registered connection ---- */

static void srv_wh_send(struct wh_link *l, const char *line, size_t len)
{
    conn_send(container_of(l, struct conn, wh), line, len);
}

static void srv_wh_refuse(struct wh_link *l, enum proto_code code, const char *msg, bool fatal)
{
    conn_refuse(container_of(l, struct conn, wh), code, msg, fatal);
}

static const struct wh_link_ops srv_wh_ops = {.send = srv_wh_send, .refuse = srv_wh_refuse};

/* The hello has passed every check but the registry and the owner binding. */
static void srv_register(struct conn *c, const struct proto_msg *m)
{
    char msg[PROTO_MAX_TEXT];
    enum reg_status rs;
    enum proto_code code;

    /* an auxiliary connection proves the same key but stays out of the registry: the id's
     * main registration (if any) keeps being the target, and both coexist */
    rs = m->u.hello.aux ? REG_OK : reg_add(c->srv->reg, m->u.hello.id, c);
    if (rs == REG_EXISTS && srv_replace_local(c, m))
        rs = reg_add(c->srv->reg, m->u.hello.id, c);
    if (!conn_active(c)) /* refused by srv_replace_local (replaced too often) */
        return;
    if (rs == REG_EXISTS) {
        snprintf(msg, sizeof msg, "%s is already registered by another connection", m->u.hello.id);
        conn_refuse(c, PC_ID_TAKEN, msg, true);
        return;
    }
    if (rs != REG_OK) {
        conn_refuse(c, PC_SERVER_FULL, "the server is out of memory", true);
        return;
    }
    /* in cluster mode a new id gets here only after Redis has bound it (cl_claim) */
    if ((code = gate_bind(&c->srv->gate, m->u.hello.id, m->u.hello.key,
                          (const struct sockaddr *)&c->observed, uv_now(c->srv->loop),
                          c->srv->cl != NULL, msg, sizeof msg)) != PC_UNKNOWN) {
        if (!m->u.hello.aux)
            reg_remove(c->srv->reg, m->u.hello.id, c);
        conn_refuse(c, code, msg, true);
        return;
    }
    memcpy(c->key, m->u.hello.key, sizeof c->key);
    memcpy(c->id, m->u.hello.id, sizeof c->id);
    if (srv_keep_endpoints(c, &m->u.hello.endpoints) < 0) {
        if (!m->u.hello.aux)
            reg_remove(c->srv->reg, m->u.hello.id, c);
        conn_refuse(c, PC_SERVER_FULL, "the server is out of memory", true);
        return;
    }
    c->path = m->u.hello.path;
    c->bday = m->u.hello.birthday;
    c->features = c->srv->cfg.resume ? m->u.hello.features : 0;
    c->aux = m->u.hello.aux;
    wh_link_init(&c->wh, &srv_wh_ops, c->id, (const struct sockaddr *)&c->observed, c->aux, false);
    conn_set_state(c, CONN_LIVE);
    LOG_N("register %s%s from %s (%d endpoint%s)", c->id, c->aux ? " (auxiliary)" : "", c->addr,
          c->nep, c->nep == 1 ? "" : "s");
    srv_log_endpoints(c);
    srv_welcome(c);
    /* with replace, the id's holder on another instance is told to let go (cl_announce_replace) */
    if (!c->aux && m->u.hello.replace)
        cl_announce_replace(c->srv->cl, c->id, c->key);
    else if (!c->aux)
        cl_announce(c->srv->cl, c->id);
}

/* The verdict on the owner of a hello's id (cl_claim): code PC_UNKNOWN registers c now, else
 * c is refused with code and msg. */
static void srv_hello_claimed(struct conn *c, const struct proto_msg *hello, enum proto_code code,
                              const char *msg)
{
    bool was = c->claiming;
    c->claiming = false;
    if (!conn_active(c))
        return;
    if (code != PC_UNKNOWN)
        conn_refuse(c, code, msg, true);
    else
        srv_register(c, hello);
    if (was)
        srv_unhold(c);
}

static void srv_on_hello(struct conn *c, const struct proto_msg *m)
{
    char msg[PROTO_MAX_TEXT];
    enum proto_code code;

    if (c->state == CONN_LIVE || c->claiming) {
        snprintf(msg, sizeof msg, "already registered as %s", c->claiming ? m->u.hello.id : c->id);
        conn_refuse(c, PC_ALREADY_REGISTERED, msg, true);
        return;
    }
    if ((code = gate_check_hello(&c->srv->gate, c->nonce, m, msg, sizeof msg)) != PC_UNKNOWN) {
        conn_refuse(c, code, msg, true);
        return;
    }
    if (srv_check_candidates(c, &m->u.hello.endpoints) < 0)
        return;
    /* cluster mode: every hello is checked in Redis while it answers (ownership cluster-wide,
     * the cluster's allowlist); during an outage only ids already bound here are served, from
     * memory (gate_check_hello has checked those) */
    if (c->srv->cl && (cl_is_up(c->srv->cl) || !ik_find(c->srv->gate.owners, m->u.hello.id))) {
        if (!m->u.hello.aux && reg_find(c->srv->reg, m->u.hello.id) && !srv_replaceable(c, m)) {
            snprintf(msg, sizeof msg, "%s is already registered by another connection",
                     m->u.hello.id);
            conn_refuse(c, PC_ID_TAKEN, msg, true);
            return;
        }
        if (cl_claim(c->srv->cl, &c->cl, m, (const struct sockaddr *)&c->observed) < 0) {
            conn_refuse(c, PC_INTERNAL,
                        "the server cannot check id ownership now: the cluster store is "
                        "unavailable; try again later",
                        true);
            return;
        }
        c->claiming = true;
        return;
    }
    srv_register(c, m);
}

static void srv_on_ping(struct conn *c, const struct proto_msg *m)
{
    struct proto_msg pong;
    char line[PROTO_MAX_LINE];
    int n;
    if (lim_take(&c->pings, SRV_PING_RATE, uv_now(c->srv->loop)) < 0) {
        snprintf(line, sizeof line, "at most %d pings per second", SRV_PING_RATE);
        conn_refuse(c, PC_TOO_MANY_PINGS, line, true);
        return;
    }
    memset(&pong, 0, sizeof pong);
    pong.type = PROTO_PONG;
    pong.u.ping.seq = m->u.ping.seq;
    n = proto_encode(&pong, line, sizeof line);
    if (n > 0)
        conn_send(c, line, (size_t)n);
}

/* A probe over IPv6 from a peer registered over IPv4: it completed a TCP handshake from that
 * endpoint, so the endpoint is the peer's, and punches may name it (PROTOCOL.md 5.9). It says
 * nothing about the IPv4 NAT's mapping. It comes from another family by design, so nothing but
 * the token ties it to the peer: the first proof of a registration is kept, later ones (a
 * stranger who saw the token on the path) change nothing. */
static void srv_probe_other_family(struct conn *owner, const struct conn *c)
{
    const char *why;
    if (c->observed.ss_family != AF_INET6) {
        LOG_I("probe from %s: %s is registered over IPv6; nothing recorded", c->addr, owner->id);
        return;
    }
    if (owner->has_seen6) {
        LOG_N("probe from %s: %s has proved its IPv6 endpoint already; nothing recorded", c->addr,
              owner->id);
        return;
    }
    why = srv_bad_candidate((const struct sockaddr *)&c->observed,
                            ep_is_loopback((const struct sockaddr *)&owner->observed));
    if (why) {
        LOG_I("probe from %s: %s, not recorded as its IPv6 endpoint: %s", c->addr, owner->id, why);
        return;
    }
    memcpy(&owner->seen6, &c->observed, sizeof owner->seen6);
    owner->has_seen6 = true;
    LOG_I("probe from %s: the IPv6 endpoint of %s", c->addr, owner->id);
}

/* Whether a and b (one family) have the same address, ports aside. */
static bool srv_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

/* A probe of the control connection's family: it tells the NAT's mapping only when it comes
 * from the control connection's address (a NAT maps one host to one public address; another
 * address is someone else holding the token), and only the first SRV_MAX_PROBES count.
 * Returns whether it was recorded. */
static bool srv_probe_same_family(struct conn *owner, const struct conn *c)
{
    char ctl[EP_STRLEN];
    ep_format((const struct sockaddr *)&owner->observed, ctl, sizeof ctl);
    if (!srv_same_host(&owner->observed, &c->observed)) {
        LOG_N("probe from %s: token of %s, whose control connection comes from %s: another "
              "address, nothing recorded",
              c->addr, owner->id, ctl);
        return false;
    }
    if (owner->nprobes >= SRV_MAX_PROBES) {
        LOG_N("probe from %s: %s has probed %d times already; nothing recorded", c->addr,
              owner->id, SRV_MAX_PROBES);
        return false;
    }
    owner->nprobes++;
    owner->nat = ep_equal((const struct sockaddr *)&owner->observed,
                          (const struct sockaddr *)&c->observed)
                     ? PROTO_NAT_INDEPENDENT
                     : PROTO_NAT_DEPENDENT;
    LOG_I("probe from %s: %s, control connection from %s: mapping %s", c->addr, owner->id, ctl,
          proto_nat_name(owner->nat));
    return true;
}

/* The first and only line of a probe connection: tell the prober where it came from and, when
 * its token names a registered peer, whether its NAT kept the mapping that peer's control
 * connection got. Then close gracefully: the answer must not be cut off by a reset. */
static void srv_on_probe(struct conn *c, const struct proto_msg *m)
{
    struct proto_msg r;
    struct conn *owner = NULL;
    char line[PROTO_MAX_LINE];
    int n;

    memset(&r, 0, sizeof r);
    r.type = PROTO_OBSERVED;
    r.u.observed.observed = c->observed;
    if (m->u.probe.token[0])
        owner = reg_find(c->srv->probes, m->u.probe.token);
    if (owner && owner->observed.ss_family != c->observed.ss_family)
        srv_probe_other_family(owner, c);
    else if (owner && srv_probe_same_family(owner, c))
        r.u.observed.mapping = owner->nat;
    else if (!owner)
        LOG_I("probe from %s: %s", c->addr, m->u.probe.token[0] ? "unknown token" : "no token");
    n = proto_encode(&r, line, sizeof line);
    if (n <= 0 || conn_write(c, line, (size_t)n) < 0) {
        conn_drop(c, LOG_DEBUG, "cannot answer the probe");
        return;
    }
    mtr_probe(&c->srv->mtr, r.u.observed.mapping);
    conn_linger(c);
}

/* The local-or-remote decision: a target registered here is paired here, one that is not may
 * be on another cluster instance (cluster.c answers, now or later). */
static void srv_route_connect(struct conn *from, const char *target, const char *resume)
{
    struct srv *s = from->srv;
    char msg[PROTO_MAX_TEXT];
    struct conn *to;

    if (from->state != CONN_LIVE) {
        conn_refuse(from, PC_NOT_REGISTERED, "send hello before connect", true);
        return;
    }
    LOG_N("connect request: %s -> %s%s%s", from->id, target, resume[0] ? ", resuming " : "",
          resume);
    if (strcmp(target, from->id) == 0) {
        conn_refuse(from, PC_SELF_CONNECT, "cannot connect to your own id", false);
        return;
    }
    to = srv_find(s, target);
    if (to)
        pair_connect(s->rly, s->cfg.relay.enabled, &s->cfg.bday, from, to, resume);
    else if (s->cl)
        cl_connect(s->cl, &from->cl, from->id, target, resume);
    else {
        snprintf(msg, sizeof msg, "%s is not registered on this server", target);
        conn_refuse(from, PC_PEER_NOT_FOUND, msg, false);
    }
}

/* Pairing is the costliest request (a session, maybe a relay offer, two punches): a peer gets
 * --connect-rate of them per second, and a refusal leaves it registered. */
static void srv_on_connect(struct conn *c, const struct proto_msg *m)
{
    char msg[PROTO_MAX_TEXT];
    uint64_t now = uv_now(c->srv->loop), most;
    if (c->aux_used) {
        conn_refuse(c, PC_UNEXPECTED_TYPE, "an auxiliary connection carries one session", true);
        return;
    }
    if (c->state == CONN_LIVE &&
        lim_take(&c->connects, c->srv->cfg.connect_rate, now) < 0) {
        /* a peer that keeps asking without waiting is a flood, not a client that retries */
        if (!c->excess_window_ms || now + 1 - c->excess_window_ms >= 1000) {
            c->excess_window_ms = now + 1; /* + 1: 0 means none yet */
            c->excess = 0;
        }
        most = (uint64_t)c->srv->cfg.connect_rate * SRV_CONNECT_EXCESS;
        if (++c->excess > (most > SRV_CONNECT_EXCESS ? most : SRV_CONNECT_EXCESS)) {
            snprintf(msg, sizeof msg,
                     "more than %llu connect requests beyond --connect-rate in a second",
                     (unsigned long long)most);
            conn_refuse(c, PC_RATE_LIMITED, msg, true);
            return;
        }
        snprintf(msg, sizeof msg, "at most %u connect requests per second; try again later",
                 c->srv->cfg.connect_rate);
        conn_refuse(c, PC_RATE_LIMITED, msg, false);
        return;
    }
    /* connect.resume passes unchanged into both punches (resume.md 4.5); a server that does
     * not offer resume (--no-resume) plans the punch as for any connect */
    srv_route_connect(c, m->u.connect.target, c->srv->cfg.resume ? m->u.connect.resume : "");
}

/* One complete line. Returns non-zero when c stopped taking messages, which ends the feed. */
static int srv_on_line(void *ctx, char *line, size_t len)
{
    struct conn *c = ctx;
    struct proto_msg m;
    char why[256];
    enum proto_err e;

    e = proto_decode(line, len, PROTO_TO_SERVER, &m, why, sizeof why);
    /* a server with a secret does no other work for a stranger: not even parse errors. The
     * admit covers the fields of its line, so the line is decoded first, and one that does not
     * decode cannot prove anything */
    if (!c->admitted && !gate_admitted(&c->srv->gate, c->nonce, e == PROTO_OK ? &m : NULL)) {
        conn_refuse(c, PC_NOT_ADMITTED,
                    "the first line must carry admit, proof of the server's secret made for this "
                    "connection and this line",
                    true);
        return 1;
    }
    c->admitted = true;
    if (e != PROTO_OK) {
        conn_refuse(c, proto_err_pc(e), why, true);
        return 1;
    }
    LOG_D("%s from %s", proto_type_name(m.type), c->id[0] ? c->id : c->addr);
    if (c->state == CONN_LIVE)
        conn_set_state(c, CONN_LIVE); /* any message counts as a sign of life */
    if (c->probe_only && m.type != PROTO_PROBE) {
        conn_refuse(c, PC_UNEXPECTED_TYPE, "a probe listener takes only probe", true);
        return 1;
    }
    if (m.type == PROTO_PROBE) {
        if (c->state == CONN_HELLO)
            srv_on_probe(c, &m);
        else
            conn_refuse(c, PC_UNEXPECTED_TYPE, "probe must be the first line of a connection",
                        true);
        return 1;
    }
    if (m.type == PROTO_RELAY) {
        if (c->state != CONN_HELLO) {
            conn_refuse(c, PC_UNEXPECTED_TYPE, "relay must be the first line of a new connection",
                        true);
            return 1;
        }
        /* joined in srv_on_read, which knows the bytes that followed this line */
        c->relay_req = true;
        memcpy(c->relay_session, m.u.relay.session, sizeof c->relay_session);
        memcpy(c->relay_token, m.u.relay.token, sizeof c->relay_token);
        return 1;
    }
    if (c->state != CONN_LIVE && m.type != PROTO_HELLO) {
        conn_refuse(c, PC_NOT_REGISTERED, "hello must be the first message", true);
        return 1;
    }
    switch (m.type) {
    case PROTO_HELLO:
        srv_on_hello(c, &m);
        if (c->claiming)
            return 1; /* what follows waits for the verdict (srv_hold) */
        break;
    case PROTO_CONNECT:
        srv_on_connect(c, &m);
        break;
    case PROTO_PING:
        srv_on_ping(c, &m);
        break;
    case PROTO_PONG:
        break; /* the server sends no pings; a pong is harmless */
    case PROTO_REPORT:
        rpt_recv(c, &c->srv->mtr, &m); /* answered with nothing */
        break;
    case PROTO_CODE_OPEN:
    case PROTO_CODE_POST:
    case PROTO_CODE_CLAIM:
    case PROTO_CODE_ANSWER:
    case PROTO_CODE_CONFIRM:
    case PROTO_CODE_ABORT:
        wh_msg(c->srv->wh, &c->wh, &m, uv_now(c->srv->loop));
        break;
    default:   /* proto_decode admits nothing else in this direction */
        conn_refuse(c, PC_UNEXPECTED_TYPE, "this message is not valid here", true);
        break;
    }
    return conn_active(c) ? 0 : 1;
}

/* ---- reading ---- */

static void srv_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)hint;
    *buf = uv_buf_init(c->srv->rbuf, sizeof c->srv->rbuf);
}

/* Reading pauses while what we owe the peer is past CONN_READ_PAUSE: each line it sends may
 * queue an answer, and a peer that does not read would otherwise make us hold them all. */

static void srv_on_read_end(struct conn *c, ssize_t status)
{
    const char *why = status == UV_EOF ? "closed by peer" : uv_strerror((int)status);
    if (c->state == CONN_LINGER && status == UV_EOF &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > 0)
        c->peer_eof = true; /* closing now would discard the error line; shutdown's cb closes */
    else if (c->state == CONN_LINGER)
        conn_drop(c, LOG_DEBUG, "%s after the error", why);
    else if (c->state == CONN_LIVE)
        conn_drop(c, LOG_NOTE, "%s", why);
    else
        conn_drop(c, LOG_INFO, "%s before hello", why);
}

static void srv_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);
static void srv_hold(struct conn *c, const char *rest, size_t n);

/* A `relay` first line: the connection leaves the peer path (no registry, no pings, not
 * counted as a peer) and the relay owns its socket from now on. */
static void srv_relay(struct conn *c, const char *rest, size_t restlen)
{
    char code[PROTO_MAX_CODE + 1], msg[PROTO_MAX_TEXT + 1];
    uv_os_fd_t fd;
    int dupfd = -1;

    c->relay_req = false;
    /* the relay gets its own descriptor; closing ours then sends nothing on the wire */
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 || (dupfd = dup(fd)) < 0) {
        conn_refuse(c, PC_RELAY_FULL, "the relay is out of resources", true);
        return;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (rly_join(c->srv->rly, c->relay_session, c->relay_token, dupfd, c->addr,
                 (const struct sockaddr *)&c->observed, rest, restlen, code, sizeof code, msg,
                 sizeof msg) < 0) {
        close(dupfd);
        uv_read_start((uv_stream_t *)&c->tcp, srv_on_alloc, srv_on_read);
        conn_refuse(c, proto_code_parse(code), msg, true);
        return;
    }
    LOG_D("connection from %s handed to the relay", c->addr);
    conn_close(c);
}

/* Feeds received bytes (modified in place) to the line parser. */
static void srv_feed(struct conn *c, char *data, size_t n)
{
    char msg[64];
    ssize_t used = lb_feed(&c->lb, data, n, srv_on_line, c);
    if (used >= 0 && c->relay_req)
        srv_relay(c, data + used, n - (size_t)used);
    else if (used >= 0 && c->claiming)
        srv_hold(c, data + used, n - (size_t)used);
    else if (used < 0) {
        snprintf(msg, sizeof msg, "a line is longer than %d bytes", PROTO_MAX_LINE);
        conn_refuse(c, PC_LINE_TOO_LONG, msg, true);
    } else {
        conn_read_pause(c);
    }
}

static void srv_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = st->data;

    if (n < 0) {
        srv_on_read_end(c, n);
        return;
    }
    if (n == 0 || !conn_active(c))
        return; /* lingering: input is read only so that closing sends no reset */
    srv_feed(c, buf->base, (size_t)n);
}

/* A hello waits for the cluster's verdict (PROTOCOL.md, "Cluster"): nothing after it is served
 * before. Reading stops; the bytes already read after the hello are kept (a client sends
 * nothing before welcome, so a little is plenty) and fed once the verdict is in. */
static void srv_hold(struct conn *c, const char *rest, size_t n)
{
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (n == 0)
        return;
    if (n > SRV_MAX_HELD || !(c->held = malloc(n))) {
        c->claiming = false; /* the verdict, when it comes, finds an inactive connection */
        conn_refuse(c, PC_UNEXPECTED_TYPE, "too much data before the server answered hello", true);
        uv_read_start((uv_stream_t *)&c->tcp, srv_on_alloc, srv_on_read);
        return;
    }
    memcpy(c->held, rest, n);
    c->nheld = n;
}

/* The verdict is in: read again, after feeding what was held. */
static void srv_unhold(struct conn *c)
{
    char *held = c->held;
    size_t n = c->nheld;
    c->held = NULL;
    c->nheld = 0;
    /* reading waits on if the answers to this peer are backed up (conn_read_resume) */
    if (c->state != CONN_CLOSED && !c->read_paused)
        uv_read_start((uv_stream_t *)&c->tcp, srv_on_alloc, srv_on_read);
    if (held && conn_active(c))
        srv_feed(c, held, n);
    free(held);
}

/* ---- accepting ---- */

/* A refusal at accept time costs no linger: the line goes into the empty socket buffer (or not
 * at all) and the connection closes at once, so a flood of refused connections holds nothing. */
static void srv_turn_away(struct conn *c, enum proto_code code, const char *message)
{
    char line[PROTO_MAX_LINE];
    int n = proto_encode_pc(code, message, true, line, sizeof line);
    LOG_N("refused %s: %s: %s (closing)", c->addr, proto_code_name(code), message);
    if (n > 0) {
        uv_buf_t b = uv_buf_init(line, (unsigned)n);
        if (uv_try_write((uv_stream_t *)&c->tcp, &b, 1) > 0)
            mtr_error(&c->srv->mtr, code);
    }
    conn_close(c);
}

/* --max-per-ip and --rate-per-ip. Returns 0, or -1 after turning c away. */
static int srv_limit_source(struct conn *c)
{
    struct srv *s = c->srv;
    char msg[PROTO_MAX_TEXT];
    switch (lim_admit(s->lim, (const struct sockaddr *)&c->observed, uv_now(s->loop), &c->src)) {
    case LIM_OK:
        return 0;
    case LIM_CONNS:
        snprintf(msg, sizeof msg, "at most %u connections at once from one address",
                 s->cfg.max_per_ip);
        srv_turn_away(c, PC_TOO_MANY_CONNECTIONS, msg);
        return -1;
    case LIM_RATE:
        snprintf(msg, sizeof msg, "at most %u new connections per second from one address",
                 s->cfg.rate_per_ip);
        srv_turn_away(c, PC_RATE_LIMITED, msg);
        return -1;
    default:
        srv_turn_away(c, PC_TOO_MANY_CONNECTIONS, "the server tracks too many addresses now");
        return -1;
    }
}

/* The server speaks first: a fresh nonce that the first line must answer (a hello's signature,
 * the secret's admit). Returns 0, or -1 after dropping c. */
static int srv_challenge(struct conn *c)
{
    struct proto_msg m;
    char line[PROTO_MAX_LINE];
    int n, rc;
    memset(&m, 0, sizeof m);
    m.type = PROTO_CHALLENGE;
    m.u.challenge.version = PROTO_VERSION;
    /* a peer sends hello.birthday only to a server that offers it (PROTOCOL.md, "Birthday") */
    m.u.challenge.feat_birthday = c->srv->cfg.bday.k_max > 0 && c->srv->cfg.bday.m_max > 0;
    /* ... and hello.features / connect.resume only to one that offers resume */
    m.u.challenge.feat_resume = c->srv->cfg.resume;
    /* ... and a report only to one that takes them (PROTOCOL.md, "Traversal reports") */
    m.u.challenge.feat_report = true;
    /* hello.replace is taken whatever --no-resume says (PROTOCOL.md 5.1) */
    m.u.challenge.feat_replace = true;
    /* ... and code-* only to one with the mailbox (PROTOCOL.md 20) */
    m.u.challenge.feat_code = wh_enabled(c->srv->wh);
    randombytes_buf(c->nonce, sizeof c->nonce);
    memcpy(m.u.challenge.nonce, c->nonce, sizeof c->nonce);
    n = proto_encode(&m, line, sizeof line);
    rc = n > 0 ? conn_write(c, line, (size_t)n) : UV_EINVAL;
    if (rc < 0) {
        conn_drop(c, LOG_DEBUG, "cannot send the challenge: %s", uv_strerror(rc));
        return -1;
    }
    return 0;
}

static void srv_on_connection(uv_stream_t *ls, int status)
{
    struct srv_listener *l = ls->data;
    struct srv *s = l->srv;
    struct conn *c;
    int len = sizeof c->observed;
    int rc;

    if (status < 0) {
        LOG_W("accept on %s: %s", l->addr, uv_strerror(status));
        return;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        LOG_E("out of memory: connection on %s not accepted", l->addr);
        return;
    }
    c->srv = s;
    c->set = &s->conns;
    q_init(&c->pending);
    cl_link_init(&c->cl);
    c->probe_only = l->probe;
    snprintf(c->addr, sizeof c->addr, "?");
    lb_init(&c->lb);
    if (uv_tcp_init(s->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    c->tcp.data = c;
    c->state = CONN_CLOSED; /* on no list until the next line */
    conn_set_state(c, CONN_HELLO);
    rc = uv_accept(ls, (uv_stream_t *)&c->tcp);
    if (rc == 0)
        rc = uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->observed, &len);
    if (rc < 0) {
        conn_drop(c, LOG_INFO, "accept on %s: %s", l->addr, uv_strerror(rc));
        return;
    }
    if (!l->probe)
        s->mtr.accepted++;
    ep_unmap(&c->observed);
    ep_format((const struct sockaddr *)&c->observed, c->addr, sizeof c->addr);
    uv_tcp_nodelay(&c->tcp, 1); /* punches must leave at once, their timing matters */
    LOG_I("connection from %s on %s", c->addr, l->addr);

    if (srv_limit_source(c) < 0)
        return;
    if (s->conns.fresh.n + s->conns.live.n > s->cfg.max_peers) {
        char msg[PROTO_MAX_TEXT];
        snprintf(msg, sizeof msg, "the server already serves %lu peers", s->cfg.max_peers);
        conn_refuse(c, PC_SERVER_FULL, msg, true);
    }
    if (c->state == CONN_CLOSED)
        return;
    /* refused: lingering, the stream shut down. A challenge now would fail (EPIPE) and close at
     * once, and a close with unread input is a reset that can cut the error line; instead its
     * input is read and dropped until the peer's EOF or the linger timeout, as for any refusal */
    if (conn_active(c) && srv_challenge(c) < 0)
        return;
    rc = uv_read_start((uv_stream_t *)&c->tcp, srv_on_alloc, srv_on_read);
    if (rc < 0)
        conn_drop(c, LOG_WARN, "cannot read: %s", uv_strerror(rc));
}

/* ---- timeouts ---- */

static void srv_expire(struct conn *c, enum proto_code code, const char *message)
{
    char who[PROTO_MAX_ID + EP_STRLEN + 4];
    log_msg(c->state == CONN_LIVE ? LOG_NOTE : LOG_INFO, "drop %s: %s",
            conn_who(c, who, sizeof who), proto_code_name(code));
    conn_error(c, code, message, true);
}

/* After a flood of connections has gone, give the freed memory back to the system: malloc
 * keeps it otherwise, and a server that was attacked once would look bloated for ever. */
static void srv_trim(struct srv *s)
{
    size_t n = conn_count(&s->conns);
    if (n > s->conns_high)
        s->conns_high = n;
    if (s->conns_high >= SRV_TRIM_MIN && n < s->conns_high / 2) {
        malloc_trim(0);
        s->conns_high = n;
    }
}

/* gate_tick: a registered id never lapses */
static bool srv_is_online(void *arg, const char *id)
{
    return srv_find(arg, id) != NULL;
}

static void srv_on_sweep(uv_timer_t *t)
{
    struct srv *s = t->data;
    uint64_t now = uv_now(s->loop);
    uint64_t hello_ms = (uint64_t)s->cfg.hello_timeout * 1000;
    uint64_t alive_ms = (uint64_t)s->cfg.keepalive * 1000;
    uint64_t linger_ms = s->stopping ? SRV_STOP_LINGER_MS : SRV_LINGER_MS;
    struct conn *c;
    char msg[PROTO_MAX_TEXT];

    lim_expire(s->lim, now);
    wh_tick(s->wh, now);
    if (s->probe6_port && now - s->probe6_checked_ms >= SRV_PROBE6_REFRESH_MS)
        srv_probe6_refresh(s);
    gate_tick(&s->gate, now, srv_is_online, s);
    /* Lingering ones first: the expired below join that list with since_ms = now. */
    while ((c = conn_first(&s->conns.linger)) && now - c->since_ms >= linger_ms)
        conn_drop(c, LOG_DEBUG, "the peer did not close after the error");
    while ((c = conn_first(&s->conns.fresh)) && now - c->since_ms >= hello_ms) {
        snprintf(msg, sizeof msg, "no hello within %u s", s->cfg.hello_timeout);
        srv_expire(c, PC_HELLO_TIMEOUT, msg);
    }
    while ((c = conn_first(&s->conns.live)) && now - c->since_ms >= alive_ms) {
        snprintf(msg, sizeof msg, "nothing received for %u s", s->cfg.keepalive);
        srv_expire(c, PC_KEEPALIVE_TIMEOUT, msg);
    }
    srv_trim(s);
}

/* ---- life cycle ---- */

/* ---- what cluster.c asks of the server (struct cl_user) ---- */

static struct conn *srv_of_link(struct cl_link *l)
{
    return container_of(l, struct conn, cl);
}

static void srv_cl_claimed(void *data, struct cl_link *conn, const struct proto_msg *hello,
                           enum proto_code code, const char *msg)
{
    (void)data;
    srv_hello_claimed(srv_of_link(conn), hello, code, msg);
}

static void srv_cl_refuse(void *data, struct cl_link *conn, enum proto_code code, const char *msg)
{
    (void)data;
    conn_refuse(srv_of_link(conn), code, msg, false);
}

static struct cl_link *srv_cl_find(void *data, const char *id)
{
    struct conn *c = srv_find(data, id);
    return c && c->state == CONN_LIVE ? &c->cl : NULL;
}

static void srv_cl_facts(void *data, struct cl_link *conn, struct plan_peer *p)
{
    (void)data;
    pair_peer_of(srv_of_link(conn), p);
}

static void srv_cl_punch(void *data, struct cl_link *conn, const char *session, const char *line,
                         size_t len, uint64_t delay_us)
{
    struct conn *c = srv_of_link(conn);
    (void)data;
    c->aux_used = c->aux; /* an auxiliary connection carries one session */
    rpt_note_line(c, session, line, len);
    pair_send_later(c, session, line, len, delay_us);
}

static void srv_cl_bday_planned(void *data, struct cl_link *conn)
{
    (void)data;
    pair_bday_mark(srv_of_link(conn));
}

/* Another instance registered id with key for a hello with replace: this instance's holder of
 * id with that key is the same peer's older connection (cl_announce_replace). */
static void srv_cl_replaced(void *data, const char *id, const unsigned char *key, const char *by)
{
    struct srv *s = data;
    struct conn *old = reg_find(s->reg, id);
    char msg[PROTO_MAX_TEXT];
    if (!old || sodium_memcmp(old->key, key, sizeof old->key) != 0) {
        LOG_I("cluster: %s moved to instance %s; no registration of it here with that key", id, by);
        return;
    }
    LOG_N("replace %s: the connection from %s gives way to one on instance %s (same key)", id,
          old->addr, by);
    snprintf(msg, sizeof msg, "a newer connection registered %s with the same key on instance %s",
             id, by);
    conn_refuse(old, PC_REPLACED, msg, true);
    s->mtr.replaced++;
}

static size_t srv_cl_each_peer(void *data,
                               void (*fn)(void *arg, const char *id, const unsigned char *key),
                               void *arg)
{
    struct srv *s = data;
    for (struct conn *p = conn_first(&s->conns.live); p; p = conn_next(&s->conns.live, p))
        if (!p->aux)
            fn(arg, p->id, p->key);
    return s->conns.live.n;
}

static struct cl *srv_cluster_new(struct srv *s, char *err, size_t errlen)
{
    struct cl_user user = {
        .data = s,
        .gate = &s->cfg.gate,
        .rly = s->rly,
        .relays = s->cfg.relay.enabled,
        .bday_k_max = s->cfg.bday.k_max,
        .bday_m_max = s->cfg.bday.m_max,
        .bday_planned = srv_cl_bday_planned,
        .claimed = srv_cl_claimed,
        .refuse = srv_cl_refuse,
        .find = srv_cl_find,
        .facts = srv_cl_facts,
        .punch = srv_cl_punch,
        .each_peer = srv_cl_each_peer,
        .replaced = srv_cl_replaced,
        .mtr = &s->mtr,
        .bad_candidate = srv_bad_candidate,
    };
    if (wh_enabled(s->wh)) /* the mailbox's channels and claims across instances */
        srv_code_user(&user);
    return cl_new(s->loop, &s->cfg.cluster, &user, err, errlen);
}

int srv_init(struct srv *s, uv_loop_t *loop, const struct srv_config *cfg, char *err, size_t errlen)
{
    int rc;
    struct lim_cfg lc = {cfg->max_per_ip, cfg->rate_per_ip, cfg->max_peers + SRV_IDLE_SOURCES};
    struct conn_hooks hooks = {.data = s,
                               .on_gone = srv_on_gone,
                               .on_closed = srv_on_conn_closed,
                               .on_alloc = srv_on_alloc,
                               .on_read = srv_on_read};
    memset(s, 0, sizeof *s);
    s->loop = loop;
    conn_set_init(&s->conns, loop, &hooks, &s->mtr);
    s->cfg = *cfg;
    s->gate.db_fd = -1;
    s->reg = reg_new();
    s->probes = reg_new();
    s->lim = lim_new(&lc);
    s->wh = wh_new(&cfg->code, &s->mtr, uv_now(loop));
    if (!s->reg || !s->probes || !s->lim || !s->wh) {
        snprintf(err, errlen, "out of memory");
        return SRV_E_RESOURCE;
    }
    if (gate_init(&s->gate, &cfg->gate, err, errlen) < 0)
        return SRV_E_CONFIG;
    rc = uv_timer_init(loop, &s->sweep);
    if (rc < 0) {
        snprintf(err, errlen, "timer: %s", uv_strerror(rc));
        return -1;
    }
    s->sweep_init = true;
    s->sweep.data = s;
    uv_timer_start(&s->sweep, srv_on_sweep, SRV_SWEEP_MS, SRV_SWEEP_MS);
    s->rly = rly_new(loop, &cfg->relay, srv_on_relay_idle, s);
    if (!s->rly) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* last: it offers the relay above to peers of other instances */
    if (cfg->cluster.redis && !(s->cl = srv_cluster_new(s, err, errlen)))
        return SRV_E_CONFIG;
    if (srv_code_wire(s) < 0) {
        snprintf(err, errlen, "out of memory");
        return SRV_E_RESOURCE;
    }
    return 0;
}

static int srv_listen_one(struct srv *s, struct srv_listener *l, const struct sockaddr *sa)
{
    struct sockaddr_storage bound;
    int len = sizeof bound;
    unsigned flags = sa->sa_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
    int rc = uv_tcp_init(s->loop, &l->tcp);
    if (rc < 0)
        return rc;
    s->nlisteners++;
    l->tcp.data = l;
    l->srv = s;
    rc = uv_tcp_bind(&l->tcp, sa, flags);
    if (rc == 0) /* libuv reports some bind errors (address in use) only from listen */
        rc = uv_listen((uv_stream_t *)&l->tcp, SRV_BACKLOG, srv_on_connection);
    if (rc == 0 && uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &len) == 0)
        ep_format((const struct sockaddr *)&bound, l->addr, sizeof l->addr);
    return rc;
}

static void srv_log_relay(const struct rly_cfg *r)
{
    if (!r->enabled) {
        LOG_I("relay disabled (--no-relay)");
        return;
    }
    LOG_I("relay: at most %lu sessions, %llu bytes and %llu s each (0: unlimited), %llu bytes/s "
          "per direction (0: unlimited), %u s to join",
          r->max_sessions, (unsigned long long)r->max_bytes, (unsigned long long)r->max_seconds,
          (unsigned long long)r->rate, r->wait);
}

/* [::]: where does an IPv4 peer find us over IPv6? At the host's first global address. */
static void srv_probe6_refresh(struct srv *s)
{
    struct sockaddr_storage a[PROTO_MAX_ENDPOINTS];
    int n = sk_local_addrs(AF_INET6, s->probe6_port, a, PROTO_MAX_ENDPOINTS);
    bool had = s->has_probe6;
    char ep[EP_STRLEN];
    s->probe6_checked_ms = uv_now(s->loop);
    s->has_probe6 = false;
    for (int i = 0; i < n && !s->has_probe6; i++)
        if (sk_is_global6((const struct sockaddr *)&a[i])) {
            s->has_probe6 = true;
            s->probe6 = a[i];
        }
    if (s->has_probe6 && !had)
        LOG_I("peers on IPv4 prove their IPv6 endpoints at %s",
              ep_format((const struct sockaddr *)&s->probe6, ep, sizeof ep));
    else if (!s->has_probe6 && had)
        LOG_W("no global IPv6 address on this host any more: peers on IPv4 cannot prove IPv6 "
              "endpoints");
}

/* The first IPv6 probe listener decides what welcome.probe6 says. */
static void srv_probe6_set(struct srv *s, const struct sockaddr *sa)
{
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;
    if (!IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr)) {
        s->has_probe6 = true;
        memcpy(&s->probe6, a6, sizeof *a6);
        return;
    }
    s->probe6_port = ep_port(sa);
    srv_probe6_refresh(s);
}

/* Main listeners first, then probe listeners, all in s->listeners. */
static int srv_listen_all(struct srv *s, const struct sockaddr_storage *addrs, int n, bool probe,
                          char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        struct srv_listener *l = &s->listeners[s->nlisteners];
        const struct sockaddr *sa = (const struct sockaddr *)&addrs[i];
        int rc;
        l->probe = probe;
        ep_format(sa, l->addr, sizeof l->addr);
        rc = srv_listen_one(s, l, sa);
        if (rc < 0 && !probe && sa->sa_family == AF_INET6 && s->cfg.listen_v6_optional) {
            LOG_W("not listening on %s (%s): IPv4 only", l->addr, uv_strerror(rc));
            continue;
        }
        if (rc < 0) {
            snprintf(err, errlen, "cannot listen on %s: %s", l->addr, uv_strerror(rc));
            return -1;
        }
        if (probe && !s->probe_port)
            s->probe_port = ep_port(sa);
        if (probe && !s->has_probe6 && !s->probe6_port && sa->sa_family == AF_INET6)
            srv_probe6_set(s, sa);
        LOG_N("listening on %s%s", l->addr, probe ? " (probes only)" : "");
    }
    return 0;
}

/* Socket activation: the sockets systemd keeps open across restarts (sdlisten.h has checked
 * each is a listening TCP socket), main ones and "probe" ones, in the order passed. */
static int srv_listen_activated(struct srv *s, char *err, size_t errlen)
{
    for (int i = 0; i < s->cfg.nactivated; i++) {
        struct srv_listener *l = &s->listeners[s->nlisteners];
        struct sockaddr_storage bound;
        int len = sizeof bound, rc = uv_tcp_init(s->loop, &l->tcp);
        if (rc < 0)
            goto fail;
        s->nlisteners++;
        l->tcp.data = l;
        l->srv = s;
        l->probe = s->cfg.activated[i].probe;
        rc = uv_tcp_open(&l->tcp, s->cfg.activated[i].fd);
        if (rc == 0)
            rc = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &len);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&l->tcp, SRV_BACKLOG, srv_on_connection);
        if (rc < 0)
            goto fail;
        ep_format((const struct sockaddr *)&bound, l->addr, sizeof l->addr);
        if (l->probe && !s->probe_port)
            s->probe_port = ep_port((const struct sockaddr *)&bound);
        if (l->probe && !s->has_probe6 && !s->probe6_port && bound.ss_family == AF_INET6)
            srv_probe6_set(s, (const struct sockaddr *)&bound);
        LOG_N("listening on %s%s (socket activation, fd %d)", l->addr,
              l->probe ? " (probes only)" : "", s->cfg.activated[i].fd);
        continue;
    fail:
        snprintf(err, errlen, "cannot listen on the socket passed as fd %d: %s",
                 s->cfg.activated[i].fd, uv_strerror(rc));
        return -1;
    }
    return 0;
}

int srv_listen(struct srv *s, char *err, size_t errlen)
{
    if (s->cfg.nactivated > 0) {
        if (srv_listen_activated(s, err, errlen) < 0)
            return -1;
    } else if (srv_listen_all(s, s->cfg.listen, s->cfg.nlisten, false, err, errlen) < 0 ||
               srv_listen_all(s, s->cfg.probe_listen, s->cfg.nprobe_listen, true, err, errlen) < 0)
        return -1;
    LOG_I("keepalive %u s, hello timeout %u s, at most %lu peers", s->cfg.keepalive,
          s->cfg.hello_timeout, s->cfg.max_peers);
    srv_log_relay(&s->cfg.relay);
    if (s->cfg.code.enabled)
        LOG_I("codes: channels live %u s, at most %u open, %u opens and claims a minute per "
              "address (0: unlimited)",
              s->cfg.code.ttl_s, s->cfg.code.max, s->cfg.code.rate);
    else
        LOG_I("codes disabled (--no-code)");
    return 0;
}

static void srv_close_all(struct conn_list *l)
{
    struct conn *c;
    while ((c = conn_first(l)))
        conn_close(c);
}

static void srv_close_listeners(struct srv *s)
{
    for (int i = 0; i < s->nlisteners; i++)
        if (!uv_is_closing((uv_handle_t *)&s->listeners[i].tcp))
            uv_close((uv_handle_t *)&s->listeners[i].tcp, NULL);
}

static void srv_tell_all(struct conn_list *l)
{
    struct conn *c;
    while ((c = conn_first(l)))
        conn_error(c, PC_SERVER_SHUTDOWN, "the server is shutting down", true);
}

/* The end of every shutdown, drained or not: relays cut, every peer told, the cluster left. */
static void srv_stop_now(struct srv *s)
{
    s->stopping = true;
    if (s->rly)
        rly_stop(s->rly);
    srv_close_listeners(s);
    srv_tell_all(&s->conns.live);
    srv_tell_all(&s->conns.fresh);
    cl_stop(s->cl); /* after the peers above were withdrawn from the directory */
    srv_maybe_done(s);
}

/* The drain's timer goes; what is left is srv_stop_now's. */
static void srv_drain_end(struct srv *s)
{
    if (!s->drain.on)
        return;
    s->drain.on = false;
    uv_close((uv_handle_t *)&s->drain.timer, NULL);
}

/* Done when every peer has gone (told, or left on its own: drain.told may never reach
 * drain.total then) and no relayed session is left; in cluster mode not before
 * RST_MOVE_GRACE_MS after the last goodbye, the time the peers take to register on another
 * instance (their own spread included). */
static bool srv_drained(const struct srv *s, uint64_t elapsed_ms)
{
    if (s->conns.live.n || s->conns.fresh.n || (s->rly && rly_active(s->rly)))
        return false;
    return !s->cl || elapsed_ms >= s->drain.spread_ms + RST_MOVE_GRACE_MS;
}

static void srv_on_drain_tick(uv_timer_t *t)
{
    struct srv *s = t->data;
    uint64_t elapsed = uv_now(s->loop) - s->drain.start_ms;
    size_t due = rst_due(s->drain.total, s->drain.spread_ms, elapsed);
    struct conn *c;

    while (s->drain.told < due && (c = conn_first(&s->conns.live))) {
        conn_error(c, PC_SERVER_SHUTDOWN, "the server is shutting down", true);
        s->drain.told++;
    }
    if (s->drain.told >= s->drain.total)
        srv_tell_all(&s->conns.live); /* registered meanwhile (a claim that was answered) */
    if (elapsed >= (uint64_t)s->cfg.drain * 1000) {
        LOG_N("drain: %u s are over: cutting %zu relayed sessions, dropping %zu connections",
              s->cfg.drain, s->rly ? rly_active(s->rly) : 0, conn_count(&s->conns));
        srv_drain_end(s);
        srv_stop_now(s);
        srv_close_all(&s->conns.linger);
        return;
    }
    if (srv_drained(s, elapsed)) {
        LOG_N("drain: done after %.1f s (%zu peers told to go)", (double)elapsed / 1000.0,
              s->drain.told);
        srv_drain_end(s);
        srv_stop_now(s);
    }
}

/* --drain: nothing new (no connection, no relay offer), the peers told to go over a spread
 * (srv_on_drain_tick), relayed sessions left to finish. Returns -1 when it cannot start (no
 * timer): the caller stops at once. */
static int srv_drain_start(struct srv *s, const char *why)
{
    if (uv_timer_init(s->loop, &s->drain.timer) < 0)
        return -1;
    s->drain.timer.data = s;
    s->drain.on = true;
    s->stopping = true; /* /healthz answers 503 from here on */
    s->drain.start_ms = uv_now(s->loop);
    s->drain.spread_ms = rst_spread_ms(s->cfg.drain);
    s->drain.total = s->conns.live.n;
    s->drain.told = 0;
    srv_close_listeners(s);
    if (s->rly)
        rly_drain(s->rly);
    srv_tell_all(&s->conns.fresh); /* not registered yet: nothing to move */
    LOG_N("drain (%s): %zu registered peers told to go over %.1f s; relayed sessions get %u s", why,
          s->drain.total, (double)s->drain.spread_ms / 1000.0, s->cfg.drain);
    uv_timer_start(&s->drain.timer, srv_on_drain_tick, RST_TICK_MS, RST_TICK_MS);
    return 0;
}

void srv_shutdown(struct srv *s, const char *why)
{
    if (s->stopping) { /* asked again: nobody is waited for any longer */
        LOG_N("shutdown (%s again): dropping %zu connections now", why ? why : "stop",
              conn_count(&s->conns));
        if (s->drain.on) {
            srv_drain_end(s);
            srv_stop_now(s);
        }
        srv_close_all(&s->conns.fresh);
        srv_close_all(&s->conns.live);
        srv_close_all(&s->conns.linger);
        return;
    }
    if (why && s->cfg.drain && srv_drain_start(s, why) == 0)
        return;
    if (why)
        LOG_N("shutdown (%s): %zu registered, %zu other connections", why, s->conns.live.n,
              s->conns.fresh.n + s->conns.linger.n);
    srv_stop_now(s);
}

void srv_reload(struct srv *s)
{
    char err[300], why[PROTO_MAX_TEXT];
    struct conn *c, *next;
    if (!s->cfg.gate.authorized) {
        LOG_N("SIGHUP: nothing to reload (no --authorized)");
        return;
    }
    if (gate_reload(&s->gate, err, sizeof err) < 0) {
        LOG_E("SIGHUP: keeping the previous allowlist: %s", err);
        return;
    }
    /* refusing moves c to the linger list: take the next one first */
    for (c = conn_first(&s->conns.live); c; c = next) {
        next = conn_next(&s->conns.live, c);
        if (gate_allowed(&s->gate, c->id, c->key))
            continue;
        snprintf(why, sizeof why, "%s is no longer authorized on this server", c->id);
        conn_refuse(c, PC_NOT_AUTHORIZED, why, true);
    }
}

void srv_free(struct srv *s)
{
    cl_free(s->cl);
    s->cl = NULL;
    gate_free(&s->gate);
    lim_free(s->lim);
    s->lim = NULL;
    wh_free(s->wh);
    s->wh = NULL;
    srv_code_free(s);
    reg_free(s->reg);
    reg_free(s->probes);
    rly_free(s->rly);
    s->rly = NULL;
    s->reg = s->probes = NULL;
}
