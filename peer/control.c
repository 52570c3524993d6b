/* The control connection to the rendezvous: register, ask for a peer, wait for the punch order,
 * then hand over to the punch engine. The exchange itself (connect from the shared port,
 * challenge, framing, kernel receive stamps, its deadlines) is peer/srvconn's; this file holds
 * the control protocol's rules on top of it. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "common/clock.h"
#include "common/endpoint.h"
#include "common/linebuf.h" /* LB_MAX, in a message */
#include "common/log.h"
#include "common/srvlist.h"
#include "common/sock.h"
#include "peer/events.h"
#include "peer/failover.h"
#include "peer/hello.h"
#include "peer/hops.h"
#include "peer/inbound.h"
#include "peer/exit.h"
#include "peer/control.h"
#include "peer/probe.h"
#include "peer/punch.h"
#include "peer/resume.h"
#include "peer/rpath.h"
#include "peer/session.h"
#include "peer/srvconn.h"
#include "peer/whad.h"
#include "peer/whex.h"
#include "proto/code.h"

#define CTL_CONNECT_TIMEOUT_MS 10000
/* one of a list: a dead server must not stall the others for long */
#define CTL_CONNECT_TIMEOUT_LIST_MS 3000
#define CTL_ANSWER_TIMEOUT_MS 10000
/* SESS_SERVE: a session was suspended, so the path to the server may be gone too: a ping
 * unanswered this long means the registration is dead (the keepalive would take 2/3 of it and
 * more), and we register again (with replace) for the resume order to reach us */
#define CTL_ALIVE_MS 3000
#define CTL_ALIVE_POLL_MS 250
/* codes (wormhole.md 6.3): the claimer waits this long for each answer of the mailbox (its
 * WH_STEP_MS: the server gives up an exchange after as long), the maker past its code's ttl
 * this much more for the server's word, and after a confirmed exchange --timeout and this
 * much for the claimer's punch order */
#define CTL_CODE_STEP_MS 30000
#define CTL_CODE_GRACE_MS 35000
#define CTL_CODE_ORDER_MS 30000
/* ... and after a failed session with the claimer, this long for a newer one to start */
#define CTL_CODE_AFTER_FAIL_MS 2000
/* CHALLENGE: connected, waiting for the server's challenge; HELLO: hello sent */
enum ctl_state {
    CTL_CONNECTING,
    CTL_CHALLENGE,
    CTL_HELLO,
    SESS_WAITING,
    CTL_ASKED,
    CTL_CODE, /* the claimer: registered, the code exchange running */
    CTL_PUNCHING,
    CTL_DONE
};

struct ctl;

/* A code run (wormhole.md 6.3), shared by its attempts: the command's options, to which a
 * confirmed exchange adds the pin and the binding; the exchange; what it confirmed. */
struct ctl_code {
    struct peer_opts o;
    enum whex_role role;
    enum whad_mode mode;
    struct wcode code; /* claimer: as typed */
    struct whex x;
    uint8_t bind[CPACE_BIND_BYTES];
    char peer[PROTO_MAX_ID + 1]; /* the other side, once confirmed */
    unsigned ttl_s;              /* maker: the code's life, as code-opened said */
    struct peer_serve gate;      /* maker: the punch orders it takes (the claimer's only) */
    struct ctl *c;               /* the attempt running */
    bool sess_failed;            /* maker: a session with the claimer failed */
    bool sess_code;              /* ... its peer signed for another code exchange (SHAKE_CODE) */
};

struct ctl {
    uv_loop_t *loop;
    const struct peer_opts *o;
    const char *target;
    enum sess_mode mode;
    bool aux;         /* hello.aux: an auxiliary connection (connect) */
    bool aux_refused; /* the server does not know aux (an older one) */
    struct sockaddr_storage server;
    const char *name; /* the server of this attempt, as messages name it */
    bool multi;       /* one of several servers: a short connect timeout, failing moves on */
    char why[512];    /* how this attempt lost its server (the summary of a list) */
    struct sockaddr_storage local;
    struct sockaddr_storage local6;   /* [::]:P when IPv6 candidates are offered, else zero */
    struct sockaddr_storage observed; /* our public endpoint, as the server saw it */
    struct sc *sc;    /* the exchange with the server (peer/srvconn.c) while it is open */
    uv_timer_t timer; /* the keepalive; srvconn keeps the exchange's own deadlines */
    enum ctl_state state;
    int keepalive_s;
    int64_t ping_seq;
    uint64_t last_rx_ms;
    struct prb *probe;    /* the NAT probe while it runs */
    struct prb *probe6;   /* the IPv6 proof (welcome.probe6) while it runs */
    bool connect_waiting; /* connect goes out once the probe is done */
    enum proto_nat nat;   /* our mapping, as the probe showed */
    /* behind a hard NAT: the TTL scan towards the server (peer/hops.c) while it runs, and the
     * TTL it found for a birthday punch's first SYNs (0 until then) */
    struct hops *hops;
    int bday_ttl;
    bool hops_held;          /* connect waits for the scan too (it fits in the probe's time) */
    bool bday_announced;     /* our hello carried birthday */
    bool resume_announced;   /* our hello carried features ["resume"] */
    uint64_t probe_start_ms; /* when the probe started */
    struct sess_set sess;    /* the sessions of our punch orders */
    /* waiting modes: the shared port's listener, routing inbound connections to sessions */
    struct inb inb;
    int result;
    /* listen: a lost or unreachable server is waited for (peer_rendezvous tries again);
     * was_registered: an earlier attempt of this run got a welcome, registered: this one did,
     * retry: this one ended in a way worth another */
    bool may_retry, was_registered, registered, retry;
    /* resume mode (peer_resume_link; NULL otherwise): the suspended session this connection
     * serves, the engine's view of it, a timer polling cancel and the deadline, and the
     * peer-not-found answers so far (the initiator asks again on c->timer) */
    const struct resume_link_cfg *rsm;
    struct sess_resume sres;
    uv_timer_t watch;
    int not_found;
    bool replacing; /* a newer resume order is taking over: the old session's end is not ours */
    /* SESS_SERVE with serve->suspensions: the poll (alive), the count last seen, and when the
     * check's ping went out (0: no check running) */
    uv_timer_t alive;
    bool alive_on;
    unsigned seen_susp;
    uint64_t alive_ping_ms;
    /* a code run (NULL otherwise), and its deadlines: the maker's for the server's word on its
     * code, then for the claimer's punch order */
    struct ctl_code *code;
    uv_timer_t code_timer;
};

/* Errors that end a resume attempt are not the session's end (rpath tries again): -v. */
static enum log_level ctl_err_level(const struct ctl *c)
{
    return c->rsm ? LOG_INFO : LOG_ERROR;
}

static void ctl_close(struct ctl *c)
{
    sc_close(c->sc);
    c->sc = NULL;
}

static void ctl_end(struct ctl *c, int result)
{
    if (c->state == CTL_DONE)
        return;
    c->state = CTL_DONE;
    c->result = result;
    uv_timer_stop(&c->timer);
    uv_timer_stop(&c->code_timer);
    if (c->rsm)
        uv_timer_stop(&c->watch);
    if (c->alive_on)
        uv_timer_stop(&c->alive);
    inb_drop_held(&c->inb);
    prb_cancel(c->probe);
    prb_cancel(c->probe6);
    c->probe = c->probe6 = NULL;
    hops_cancel(c->hops);
    c->hops = NULL;
    /* one-shot: the relay goes with the server connection, as before; the waiting modes let
     * running sessions finish on their own (uv_run returns once they have) */
    if (c->mode == SESS_ONE)
        sess_cancel_relays(&c->sess);
    if (!sess_any(&c->sess))
        inb_close(&c->inb);
    ctl_close(c);
}

static void ctl_fail(struct ctl *c, int result, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ctl_fail(struct ctl *c, int result, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_msg(ctl_err_level(c), "%s", msg);
    ctl_end(c, result);
}

/* The server is down, went away or turned us away for now. listen waits for it (another
 * attempt follows; peer/failover.c says when), and so does a list's next server for anyone
 * not registered yet; everyone else fails. */
static void ctl_lost(struct ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ctl_lost(struct ctl *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    if (!c->may_retry && !(c->multi && !c->registered)) {
        log_msg(ctl_err_level(c), "%s", c->why);
        ctl_end(c, EXIT_SERVER);
        return;
    }
    LOG_W("%s", c->why);
    c->retry = true;
    ctl_end(c, EXIT_SERVER);
}

/* With a list the hint comes once, after all of them (peer/failover.c). */
static void ctl_unreachable(struct ctl *c, const char *reason)
{
    if (c->multi)
        ctl_lost(c, "cannot reach the server %s: %s", c->name, reason);
    else
        ctl_lost(c,
                 "cannot reach the server %s: %s (check the address; is tcpunch-rendezvous "
                 "running there, its port open in the firewall?)",
                 c->name, reason);
}

static void ctl_send_failed(struct ctl *c)
{
    ctl_lost(c, "cannot send to the server %s", c->name);
}

static int ctl_send(struct ctl *c, const struct proto_msg *m)
{
    if (!c->sc || sc_send(c->sc, m) < 0) {
        ctl_send_failed(c);
        return -1;
    }
    return 0;
}

/* srvconn's first: the challenge came; hello answers it (srvconn sends it). */
static void ctl_on_first(struct sc *sc, void *data, const unsigned char *nonce, struct proto_msg *m)
{
    struct ctl *c = data;
    c->last_rx_ms = clk_ms();
    c->state = CTL_HELLO;
    m->type = PROTO_HELLO;
    m->u.hello.version = PROTO_VERSION;
    memcpy(m->u.hello.id, c->o->id, sizeof m->u.hello.id);
    m->u.hello.path = c->o->path;
    m->u.hello.aux = c->aux;
    /* a server on loopback means everybody is on this host: LAN addresses add nothing */
    if (!ep_is_loopback((struct sockaddr *)&c->server)) {
        struct proto_eplist *l = &m->u.hello.endpoints;
        /* global IPv6 first: an IPv4 host may have many LAN addresses, and those only help
         * behind the same NAT, while a global IPv6 address is a path from anywhere */
        l->n = punch_local6(&c->local, &c->local6, l->ep, 2);
        l->n += sk_local_addrs(c->local.ss_family, ep_port((struct sockaddr *)&c->local),
                               l->ep + l->n, PROTO_MAX_ENDPOINTS - l->n);
    }
    /* birthday punching (PROTOCOL.md, "Birthday punching"): our limits, only to a server that
     * offered it, and only when we take part at all */
    c->bday_announced = sc_feat_birthday(sc) && c->o->birthday_k > 0 && c->o->birthday_m > 0;
    if (c->bday_announced)
        m->u.hello.birthday =
            (struct proto_bday_caps){.has = true, .k = c->o->birthday_k, .m = c->o->birthday_m};
    c->resume_announced = hello_features(c->o, sc_feat_resume(sc), m);
    /* resuming: our session layer whatever the options say (the session has it), and
     * (responder) the id our lost registration may still hold, taken over from it; only to a
     * server that offered resume */
    if (c->rsm && sc_feat_resume(sc)) {
        m->u.hello.features |= PROTO_FEAT_RESUME;
        /* not for an upgrade (relay first): the session is alive, our old registration was
         * closed at the link, and a replace would throw out another process of ours that holds
         * the id now (a second listen with the same key); without it an upgrade to an id in use
         * just fails, and the session stays on the relay */
        m->u.hello.replace = c->rsm->c->role == PROTO_RESPONDER && !c->rsm->direct_only;
    }
    /* the waiting modes (listen, receive, chat waiting) take the id from an older connection
     * of the same key, on a fresh start too: a process killed and started again (or a router
     * reboot) leaves that one open at the server until its keepalive, and the id would be
     * "already online" until then; for listen --forward it is also how the resume orders of
     * our suspended sessions reach this connection. Another key is still refused. Only to a
     * server that takes it ("replace", or "resume" from servers before it) */
    if (c->mode != SESS_ONE && !c->aux && !c->rsm && sc_feat_replace(sc))
        m->u.hello.replace = true;
    hello_sign(c->o, nonce, m); /* last: the admit covers the endpoints, birthday, features */
}

/* A session ended without a server connection left to end: the listener goes with the last. */
static void ctl_sess_idle(void *data)
{
    struct ctl *c = data;
    if (c->state == CTL_DONE)
        inb_close(&c->inb);
}

/* A session's traversal report (PROTOCOL.md, "Traversal reports"): only to a server that asked
 * for them in its challenge, never with --no-report, and never at the session's cost: written
 * at once (sc_send does not wait) before the caller closes the connection, a failure only
 * logged at -v. Written straight to srvconn: ctl_send's failure would lose the server. */
static void ctl_sess_report(void *data, const struct proto_msg *m)
{
    struct ctl *c = data;
    if (c->o->no_report || !c->sc || !sc_feat_report(c->sc))
        return;
    if (sc_send(c->sc, m) < 0) {
        LOG_I("report on session %s not sent: %s", m->u.report.session, strerror(errno));
        return;
    }
    LOG_I("report sent: session %s %s via %s, %d attempt%s, %u ms", m->u.report.session,
          proto_result_name(m->u.report.result), proto_cand_name(m->u.report.candidate),
          m->u.report.attempts, m->u.report.attempts == 1 ? "" : "s", (unsigned)m->u.report.ms);
}

/* One-shot: the session's end is ours. */
static void ctl_sess_ended(void *data, int status)
{
    struct ctl *c = data;
    if (c->replacing) /* resume mode: a newer order takes over (ctl_resume_replace) */
        return;
    ctl_end(c, status);
}

/* SESS_WAIT: the first handshake is the link. */
static void ctl_sess_won(void *data)
{
    struct ctl *c = data;
    if (c->state != CTL_DONE) {
        ctl_end(c, EXIT_DONE);
    } else { /* the server was lost meanwhile: the session stands all the same */
        c->result = EXIT_DONE;
        c->retry = false;
    }
}

/* One-shot: one punch order, for the peer asked for. */
static bool ctl_admit_one(struct ctl *c, const struct proto_msg *m)
{
    if (c->state == CTL_PUNCHING) {
        LOG_W("ignoring a second punch order (from %s): already connecting", m->u.punch.peer);
        return false;
    }
    if (c->target && strcmp(m->u.punch.peer, c->target) != 0) {
        LOG_W("ignoring a punch order for %s while asking for %s", m->u.punch.peer, c->target);
        return false;
    }
    c->state = CTL_PUNCHING;
    sc_timeout(c->sc, 0); /* the answer came */
    return true;
}

/* Resume mode takes only the suspended session's resume orders (design 4.5, 4.8): anything
 * else is turned away before anything is dialled. */
static bool ctl_resume_refused(struct ctl *c, const struct proto_msg *m)
{
    char why[100];
    if (!c->rsm || !sess_resume_refused(&c->sres, m, why, sizeof why))
        return false;
    LOG_I("refusing a punch order from %s while resuming the session with %s: %s",
          m->u.punch.peer, c->sres.peer, why);
    return true;
}

/* Resume mode, a valid order while one is being punched: the newer one replaces it (design
 * 4.5: the newest is the one the peer is answering; the peer gave the older up, perhaps after
 * its punch failed early, and asked again). The one-shot session ends without ending us. */
static void ctl_resume_replace(struct ctl *c, const struct proto_msg *m)
{
    LOG_I("a newer resume order from %s replaces the one being punched", m->u.punch.peer);
    c->replacing = true;
    sess_abort(&c->sess, "a newer resume order replaced it");
    c->replacing = false;
}

static bool ctl_code_refuses(struct ctl *c, const struct proto_msg *m);

static void ctl_on_punch(struct ctl *c, const struct proto_msg *m, uint64_t rx_us)
{
    if (ctl_resume_refused(c, m) || ctl_code_refuses(c, m))
        return;
    if (c->rsm && c->state == CTL_PUNCHING)
        ctl_resume_replace(c, m); /* admitted already: the session starts below */
    else if (c->mode == SESS_ONE && !ctl_admit_one(c, m))
        return;
    switch (sess_start(&c->sess, m, sk_rtt_us(sc_fd(c->sc)), rx_us)) {
    case SESS_NOMEM:
        ctl_fail(c, EXIT_LOCAL, "%s", "out of memory");
        break;
    case SESS_STARTED:
        inb_route(&c->inb); /* held connections the new session has a candidate for */
        break;
    case SESS_NONE:
        break;
    }
}

static void ctl_resume_not_found(struct ctl *c);
static bool ctl_code_error(struct ctl *c, enum proto_code pc);

static void ctl_on_error(struct ctl *c, const struct proto_msg *m)
{
    const char *code = m->u.error.code;
    enum proto_code pc = proto_code_parse(code);
    char msg[500]; /* ctl_fail prints it into 512 bytes */
    if (ctl_code_error(c, pc))
        return;
    if (c->state == CTL_PUNCHING) {
        /* the server is no longer needed for this session (even after `replaced`) */
        LOG_I("server: %s (%s)", m->u.error.message, code);
        return;
    }
    /* a newer connection of ours holds the id: this one is superseded, and reconnecting would
     * only take the id back from it (so ctl_fail, never ctl_lost) */
    if (pc == PC_REPLACED) {
        ctl_fail(c, EXIT_SERVER,
                 "another connection of ours (same key) took the id %s on %s; not reconnecting",
                 c->o->id, c->name);
        return;
    }
    if (pc == PC_PEER_NOT_FOUND && c->rsm && c->state == CTL_ASKED) {
        ctl_resume_not_found(c);
        return;
    }
    if (pc == PC_PEER_NOT_FOUND) {
        /* a cluster says more than "not here" (an instance down, Redis unreachable): keep it */
        bool plain = strstr(m->u.error.message, "is not registered on") != NULL;
        snprintf(msg, sizeof msg,
                 "%s is not registered on %s%s%.200s%s: is `tcpunch listen` (or `receive`) "
                 "running there with --id %s?",
                 c->target ? c->target : "the peer", c->name, plain ? "" : " (",
                 plain ? "" : m->u.error.message, plain ? "" : ")", c->target ? c->target : "ID");
        ctl_fail(c, EXIT_NO_PEER, "%s", msg);
        return;
    }
    if (pc == PC_NO_PATH) {
        snprintf(msg, sizeof msg, "no path to %s: %s", c->target ? c->target : "the peer",
                 m->u.error.message);
        ctl_fail(c, EXIT_PUNCH, "%s", msg);
        return;
    }
    if (c->aux && c->state == CTL_HELLO && pc == PC_BAD_FIELD) {
        /* a server from before auxiliary connections: register the usual way instead */
        LOG_I("the server %s does not take auxiliary connections; registering as %s", c->name,
              c->o->id);
        c->aux_refused = c->retry = true;
        ctl_end(c, EXIT_SERVER);
        return;
    }
    if (pc == PC_ID_TAKEN && !c->was_registered) {
        snprintf(msg, sizeof msg, "the id \"%s\" is already online on %s; choose another with --id",
                 c->o->id, c->name);
        ctl_fail(c, EXIT_SERVER, "%s", msg);
        return;
    }
    snprintf(msg, sizeof msg, "server %s refused: %s (%s)", c->name, m->u.error.message, code);
    /* waiting for a challenge that never came: an older server, not a passing state */
    if (fo_transient(code, c->was_registered) &&
        !(c->state == CTL_CHALLENGE && pc == PC_HELLO_TIMEOUT))
        ctl_lost(c, "%s", msg);
    else
        ctl_fail(c, EXIT_SERVER, "%s", msg);
}

/* The waiting modes' keepalive: a ping every third of it, and a server silent for two rounds
 * and more is gone. */
static void ctl_on_keepalive(uv_timer_t *t)
{
    struct ctl *c = t->data;
    struct proto_msg m;
    uint64_t interval = (uint64_t)c->keepalive_s * 1000 / 3;

    if (c->state != SESS_WAITING)
        return;
    if (clk_ms() - c->last_rx_ms > 2 * interval + 5000) {
        ctl_lost(c, "the server %s stopped answering", c->name);
        return;
    }
    memset(&m, 0, sizeof m);
    m.type = PROTO_PING;
    m.u.ping.seq = ++c->ping_seq;
    ctl_send(c, &m);
}

/* SESS_SERVE: a new suspension starts a check (a ping); a check unanswered for CTL_ALIVE_MS
 * loses the server (ctl_lost: registering again follows). */
static void ctl_on_alive(uv_timer_t *t)
{
    struct ctl *c = t->data;
    unsigned n = c->sess.serve->suspensions(c->sess.serve->arg);
    uint64_t now = clk_ms();
    struct proto_msg m;

    if (c->state != SESS_WAITING)
        return;
    if (c->alive_ping_ms && c->last_rx_ms >= c->alive_ping_ms) {
        c->alive_ping_ms = 0; /* answered: the registration stands */
    } else if (c->alive_ping_ms && now - c->alive_ping_ms > CTL_ALIVE_MS) {
        ctl_lost(c, "the server %s did not answer within %d s after a session was suspended",
                 c->name, CTL_ALIVE_MS / 1000);
        return;
    }
    if (n == c->seen_susp || c->alive_ping_ms)
        return;
    c->seen_susp = n;
    c->alive_ping_ms = now;
    memset(&m, 0, sizeof m);
    m.type = PROTO_PING;
    m.u.ping.seq = ++c->ping_seq;
    ctl_send(c, &m);
}

static void ctl_alive_init(struct ctl *c)
{
    const struct peer_serve *sv = c->sess.serve;
    /* without retries (--no-retry) a lost server ends the forwarder: no check then, the
     * keepalive decides as before */
    if (c->mode != SESS_SERVE || !sv || !sv->suspensions || !c->may_retry)
        return;
    c->seen_susp = sv->suspensions(sv->arg); /* earlier suspensions were another connection's */
    uv_timer_init(c->loop, &c->alive);
    c->alive.data = c;
    c->alive_on = true;
    uv_timer_start(&c->alive, ctl_on_alive, CTL_ALIVE_POLL_MS, CTL_ALIVE_POLL_MS);
}

static void ctl_send_connect(struct ctl *c)
{
    struct proto_msg req;
    memset(&req, 0, sizeof req);
    req.type = PROTO_CONNECT;
    snprintf(req.u.connect.target, sizeof req.u.connect.target, "%s", c->target);
    if (c->rsm)
        snprintf(req.u.connect.resume, sizeof req.u.connect.resume, "%s", c->sres.root);
    ctl_send(c, &req);
}

static void ctl_on_reask(uv_timer_t *t)
{
    struct ctl *c = t->data;
    if (c->state != CTL_ASKED || !c->sc)
        return;
    sc_timeout(c->sc, CTL_ANSWER_TIMEOUT_MS);
    ctl_send_connect(c);
}

/* The resuming initiator's ASK got peer-not-found: the responder may still be registering
 * again (its failure detection runs within D of ours), so ask again on this connection after
 * resume.h's waits (250 ms, 500 ms, 1 s, then every 2 s) rather than giving the attempt up;
 * the deadline (watch) ends it. */
static void ctl_resume_not_found(struct ctl *c)
{
    uint64_t w = resume_next_ms(c->not_found++, true, randombytes_random());
    LOG_I("%s is not registered on %s yet; asking again in %llu ms", c->target, c->name,
          (unsigned long long)w);
    sc_timeout(c->sc, 0); /* the answer came; the next connect restarts it */
    uv_timer_start(&c->timer, ctl_on_reask, w, 0);
}

/* connect goes out once both probes have ended: the server then knows our mapping and our
 * IPv6 endpoint when it pairs us */
static void ctl_probes_over(struct ctl *c)
{
    if (c->connect_waiting && !c->probe && !c->probe6 && !(c->hops && c->hops_held) &&
        c->state == CTL_ASKED) {
        c->connect_waiting = false;
        ctl_send_connect(c);
    }
}

static void ctl_hops_done(struct hops *h, const struct hops_result *r, void *arg)
{
    struct ctl *c = arg;
    (void)h;
    c->hops = NULL;
    c->bday_ttl = r->ttl;
    LOG_I("birthday: first SYNs will leave with TTL %d (%s)", r->ttl, r->why);
    ctl_probes_over(c);
}

/* Behind a hard NAT we may be told to open a birthday punch's mappings, with SYNs that die
 * past our outermost NAT: how far that is, measured once per server connection, after the
 * probe (its verdict says whether we are hard). A connect that waits for the probe waits for
 * the scan too, but only when the scan's longest wait still fits in the time the probe may
 * take (PRB_TIMEOUT_MS from its start): the scan never delays connect beyond what the probe
 * could have; a punch that comes first uses HOPS_DEFAULT_TTL. IPv4 only, like birthday
 * punching. */
static void ctl_hops_start(struct ctl *c)
{
    char err[200];
    if (c->hops || c->bday_ttl || c->server.ss_family != AF_INET || c->o->birthday_k == 0 ||
        c->o->birthday_m == 0)
        return;
    c->hops =
        hops_start(c->loop, (const struct sockaddr *)&c->server, ctl_hops_done, c, err, sizeof err);
    if (!c->hops)
        LOG_I("birthday: no TTL scan (%s); a punch would use TTL %d", err, HOPS_DEFAULT_TTL);
    c->hops_held = c->hops && clk_ms() - c->probe_start_ms + HOPS_WAIT_MS <= PRB_TIMEOUT_MS;
}

static void ctl_probe_done(struct prb *p, const struct prb_result *r, void *arg)
{
    struct ctl *c = arg;
    char ep[EP_STRLEN];
    (void)p;
    c->probe = NULL;
    if (r->ok) {
        c->nat = r->mapping;
        LOG_I("probe: the probe port saw us as %s, NAT mapping %s",
              ep_format((const struct sockaddr *)&r->observed, ep, sizeof ep),
              proto_nat_name(r->mapping));
        if (r->mapping == PROTO_NAT_DEPENDENT)
            ctl_hops_start(c);
    } else {
        LOG_I("probe failed, going on without it: %s", r->why);
    }
    ctl_probes_over(c);
}

static void ctl_probe6_done(struct prb *p, const struct prb_result *r, void *arg)
{
    struct ctl *c = arg;
    char ep[EP_STRLEN];
    (void)p;
    c->probe6 = NULL;
    if (r->ok)
        LOG_I("IPv6 probe: the server saw us at %s; it may give that endpoint to our peers",
              ep_format((const struct sockaddr *)&r->observed, ep, sizeof ep));
    else
        LOG_I("IPv6 probe failed: the server will not give our IPv6 endpoints out: %s", r->why);
    ctl_probes_over(c);
}

/* The server passes on only IPv6 endpoints it has seen (PROTOCOL.md 5.9): when we offer IPv6
 * candidates over an IPv4 control connection, we probe its IPv6 probe listener from [::]:P. */
static void ctl_probe6_start(struct ctl *c, const struct proto_msg *m)
{
    char err[200];
    if (!m->u.welcome.has_probe6 || m->u.welcome.probe6.ss_family != AF_INET6 ||
        c->local6.ss_family != AF_INET6)
        return;
    c->probe6 = prb_start(c->loop, (const struct sockaddr *)&c->local6,
                          (const struct sockaddr *)&m->u.welcome.probe6, m->u.welcome.probe_token,
                          c->o->have_secret ? c->o->secret : NULL, PRB_TIMEOUT_MS, ctl_probe6_done,
                          c, err, sizeof err);
    if (!c->probe6)
        LOG_I("IPv6 probe not started, going on without it: %s", err);
}

/* The probe runs from our shared port, like the punch will, so that the server learns our
 * mapping (and can tell the other peer in its punch). A probe that fails costs nothing. */
static void ctl_probe_start(struct ctl *c, const struct proto_msg *m)
{
    struct sockaddr_storage to = c->server;
    char err[200];
    if (!m->u.welcome.probe_port)
        return;
    ep_set_port((struct sockaddr *)&to, m->u.welcome.probe_port);
    c->probe_start_ms = clk_ms();
    c->probe = prb_start(c->loop, (const struct sockaddr *)&c->local, (const struct sockaddr *)&to,
                         m->u.welcome.probe_token, c->o->have_secret ? c->o->secret : NULL,
                         PRB_TIMEOUT_MS, ctl_probe_done, c, err, sizeof err);
    if (!c->probe)
        LOG_I("probe not started, going on without it: %s", err);
    ctl_probe6_start(c, m);
}

/* The shared listener's lookup: the session a connection belongs to (sess_route). */
static void *ctl_inb_lookup(void *data, const struct sockaddr *from)
{
    struct ctl *c = data;
    return sess_route(&c->sess, from);
}

static void ctl_inb_adopt(void *data, void *sess, int fd)
{
    (void)data;
    sess_adopt(sess, fd);
}

/* --- codes (wormhole.md 6.3): the exchange runs in peer/whex; this is its wire and its ends */

/* A code-* message of the server as the exchange takes it (its members as proto.c decoded
 * them: sizes already checked). */
static void ctl_code_from_wire(const struct proto_msg *m, struct whex_msg *w)
{
    static const enum whex_kind kinds[PROTO_TYPE_COUNT] = {
        [PROTO_CODE_OPENED] = WHEX_OPENED,   [PROTO_CODE_CLAIMED] = WHEX_CLAIMED,
        [PROTO_CODE_ANSWER] = WHEX_ANSWER,   [PROTO_CODE_CONFIRM] = WHEX_CONFIRM,
        [PROTO_CODE_OPEN] = WHEX_OPEN,       [PROTO_CODE_POST] = WHEX_POST,
        [PROTO_CODE_CLAIM] = WHEX_CLAIM,     [PROTO_CODE_ABORT] = WHEX_ABORT};
    memset(w, 0, sizeof *w);
    w->kind = kinds[m->type];
    w->channel = m->u.code.channel > 0 ? (uint32_t)m->u.code.channel : 0;
    w->ttl = m->u.code.ttl > 0 ? (uint32_t)m->u.code.ttl : 0;
    memcpy(w->sid, m->u.code.sid, sizeof w->sid);
    memcpy(w->share, m->u.code.share, sizeof w->share);
    w->ad_len = m->u.code.ad_len <= sizeof w->ad ? m->u.code.ad_len : 0;
    memcpy(w->ad, m->u.code.ad, w->ad_len);
    memcpy(w->tag, m->u.code.tag, sizeof w->tag);
}

static void ctl_code_to_wire(const struct whex_msg *w, struct proto_msg *m)
{
    static const enum proto_type types[WHEX_KIND_COUNT] = {
        [WHEX_OPEN] = PROTO_CODE_OPEN,       [WHEX_POST] = PROTO_CODE_POST,
        [WHEX_CLAIM] = PROTO_CODE_CLAIM,     [WHEX_ANSWER] = PROTO_CODE_ANSWER,
        [WHEX_CONFIRM] = PROTO_CODE_CONFIRM, [WHEX_ABORT] = PROTO_CODE_ABORT};
    memset(m, 0, sizeof *m);
    m->type = types[w->kind];
    m->u.code.channel = (int)w->channel;
    memcpy(m->u.code.share, w->share, sizeof m->u.code.share);
    m->u.code.ad_len = w->ad_len;
    memcpy(m->u.code.ad, w->ad, w->ad_len);
    memcpy(m->u.code.tag, w->tag, sizeof m->u.code.tag);
}

/* whex's send: each step of the claimer waits CTL_CODE_STEP_MS for the server's answer, the
 * maker's code-open the usual answer time (the claim, later, may take the code's ttl) */
static void ctl_code_send(void *arg, const struct whex_msg *w)
{
    struct ctl_code *k = arg;
    struct ctl *c = k->c;
    struct proto_msg m;
    if (!c || c->state == CTL_DONE)
        return;
    ctl_code_to_wire(w, &m);
    if (ctl_send(c, &m) < 0)
        return;
    if (w->kind == WHEX_CLAIM || w->kind == WHEX_ANSWER)
        sc_timeout(c->sc, CTL_CODE_STEP_MS);
    else if (w->kind == WHEX_OPEN)
        sc_timeout(c->sc, CTL_ANSWER_TIMEOUT_MS);
    sodium_memzero(&m, sizeof m);
}

static void ctl_code_show(void *arg, const char *text)
{
    struct ctl_code *k = arg;
    if (k->c && k->c->state != CTL_DONE)
        ev_code(&k->o, text, k->ttl_s,
                k->mode == WHAD_FILE ? "tcpunch receive" : "tcpunch connect --code");
}

static enum whex_end ctl_code_check_ad(void *arg, const uint8_t *ad, size_t len,
                                       struct whex_peer *p, char *why, size_t whylen)
{
    struct ctl_code *k = arg;
    return whex_check_ad(k->role, k->mode, ad, len, p, why, whylen);
}

static void ctl_code_arm(struct ctl *c, uint64_t ms);

/* Confirmed: the other side's key is pinned (as --peer-key), the binding goes to the
 * handshake, and the claimer asks for the maker; the maker waits for that order. */
static void ctl_code_ok(struct ctl *c, struct ctl_code *k)
{
    const struct whex_peer *p = whex_peer(&k->x);
    char fp[ID_FP_SIZE];
    id_fingerprint(p->key, fp, sizeof fp);
    if (strcmp(p->id, c->o->id) == 0) {
        /* the server would refuse the connect (self-connect): say what to change */
        ctl_fail(c, EXIT_USAGE, "both sides use the id \"%s\"; give one of them another --id",
                 p->id);
        return;
    }
    snprintf(k->peer, sizeof k->peer, "%s", p->id);
    snprintf(k->o.peer_fp, sizeof k->o.peer_fp, "%s", fp);
    memcpy(k->bind, whex_bind(&k->x), sizeof k->bind);
    k->o.code_bind = k->bind; /* every session of this run is the code's */
    LOG_I("code confirmed: the other side is %s, key %s", k->peer, fp);
    if (k->role == WHEX_MAKER) {
        sc_timeout(c->sc, 0);
        ctl_code_arm(c, c->o->timeout_ms + CTL_CODE_ORDER_MS);
        return;
    }
    c->target = k->peer;
    c->state = CTL_ASKED;
    sc_timeout(c->sc, CTL_ANSWER_TIMEOUT_MS);
    if (c->probe || c->probe6 || (c->hops && c->hops_held))
        c->connect_waiting = true;
    else
        ctl_send_connect(c);
}

/* What went wrong, for the user, by side: exit 12 (burned), 13 (no such code), 2, 6. */
static void ctl_code_failed_end(struct ctl *c, struct ctl_code *k, enum whex_end e,
                                const char *why)
{
    bool maker = k->role == WHEX_MAKER;
    switch (e) {
    case WHEX_WRONG:
        LOG_I("code exchange: %s", why);
        ctl_fail(c, EXIT_CODE_FAILED, "%s",
                 maker ? "wrong code: someone typed a wrong code (or guessed); the code is "
                         "burned, make a new one"
                       : "wrong code: it does not match the other side's (a typo?); the code "
                         "is burned, ask for a new one");
        break;
    case WHEX_BAD_AD:
    case WHEX_MODE:
        ctl_fail(c, EXIT_CODE_FAILED, "%s; the code is burned, %s", why,
                 maker ? "make a new one" : "ask for a new one");
        break;
    case WHEX_PEER_WRONG:
        ctl_fail(c, EXIT_CODE_FAILED, "the other side found the code wrong (%s); the code is "
                 "burned, %s", why, maker ? "make a new one" : "ask for a new one");
        break;
    case WHEX_UNKNOWN:
        ctl_fail(c, EXIT_NO_CODE, "%s", "no such code: it expired, was already used, or was "
                                        "never made; ask for a new one");
        break;
    case WHEX_EXPIRED:
        ctl_fail(c, EXIT_NO_CODE, "%s",
                 maker ? "the code expired (unused, or its exchange took too long); make a new "
                         "one"
                       : "the code exchange did not finish in time; ask for a new code");
        break;
    case WHEX_SERVER:
        ctl_fail(c, EXIT_SERVER, "the server %s broke the code exchange: %s", c->name, why);
        break;
    default:
        ctl_fail(c, EXIT_LOCAL, "code exchange: %s", why);
        break;
    }
}

static void ctl_code_end(void *arg, enum whex_end e, const char *why)
{
    struct ctl_code *k = arg;
    struct ctl *c = k->c;
    if (!c || c->state == CTL_DONE)
        return;
    if (e == WHEX_OK) {
        ctl_code_ok(c, k);
        return;
    }
    /* the maker, confirmed, heard the claimer refuse our tag: no session may stand */
    if (k->peer[0])
        sess_abort(&c->sess, "the code exchange failed after all");
    ctl_code_failed_end(c, k, e, why);
}

/* The maker's deadlines: the server's word on the code (its ttl and a grace), then the
 * claimer's punch order (one running may finish: the punch has its own --timeout). */
static void ctl_on_code_timer(uv_timer_t *t)
{
    struct ctl *c = t->data;
    struct ctl_code *k = c->code;
    if (c->state == CTL_DONE)
        return;
    if (!whex_confirmed(&k->x)) {
        ctl_fail(c, EXIT_NO_CODE, "the code expired unused (the server %s said nothing in "
                 "%u s); make a new one", c->name, k->ttl_s + CTL_CODE_GRACE_MS / 1000);
        return;
    }
    if (sess_any(&c->sess)) {
        ctl_code_arm(c, 1000);
        return;
    }
    if (k->sess_code)
        ctl_fail(c, EXIT_CODE_FAILED,
                 "the code exchange was not with %s: someone who knew the "
                 "code is in the middle; the code is burned",
                 k->peer);
    else if (k->sess_failed)
        ctl_fail(c, EXIT_PUNCH, "the connection with %s failed; the code is used up", k->peer);
    else
        ctl_fail(c, EXIT_PUNCH, "%s did not connect within %llu s of the code exchange",
                 k->peer, (unsigned long long)(c->o->timeout_ms + CTL_CODE_ORDER_MS) / 1000);
}

static void ctl_code_arm(struct ctl *c, uint64_t ms)
{
    uv_timer_start(&c->code_timer, ctl_on_code_timer, ms, 0);
}

/* After welcome: the maker opens a channel (and waits, registered, as listen does), the
 * claimer claims the one typed. */
static void ctl_code_begin(struct ctl *c)
{
    struct ctl_code *k = c->code;
    uint8_t ad[WHAD_MAX_BYTES];
    struct whex_cbs cb = {ctl_code_send, ctl_code_show, ctl_code_end, ctl_code_check_ad, k};
    struct whex_cfg cfg = {.role = k->role,
                           .nwords = k->o.code_words ? k->o.code_words : WCODE_WORDS_MIN,
                           .code = &k->code,
                           .ad = ad};
    int n;
    if (!sc_feat_code(c->sc)) {
        ctl_fail(c, EXIT_SERVER,
                 "the server %s does not support codes (tcpunch-rendezvous too old or --no-code)",
                 c->name);
        return;
    }
    n = whad_encode(ad, sizeof ad, k->role == WHEX_MAKER ? WHAD_MAKER : WHAD_CLAIMER, k->mode,
                    c->o->id, c->o->ident->pk);
    cfg.ad_len = n > 0 ? (size_t)n : 0;
    whex_wipe(&k->x);
    if (n <= 0 || whex_init(&k->x, &cfg, &cb) < 0) {
        ctl_fail(c, EXIT_LOCAL, "%s", "cannot set up the code exchange");
        return;
    }
    k->c = c;
    if (k->role == WHEX_CLAIMER)
        c->state = CTL_CODE;
    whex_start(&k->x);
}

static void ctl_code_msg(struct ctl *c, const struct proto_msg *m)
{
    struct whex_msg w;
    if (!c->code) {
        LOG_W("ignoring an unexpected %s", proto_type_name(m->type));
        return;
    }
    ctl_code_from_wire(m, &w);
    if (w.kind == WHEX_OPENED && c->code->role == WHEX_MAKER && whex_live(&c->code->x)) {
        c->code->ttl_s = w.ttl < PROTO_CODE_TTL_MAX ? w.ttl : PROTO_CODE_TTL_MAX;
        sc_timeout(c->sc, 0); /* the answer came: the code lives its ttl from now */
        ctl_code_arm(c, (uint64_t)c->code->ttl_s * 1000 + CTL_CODE_GRACE_MS);
    }
    whex_feed(&c->code->x, &w);
    sodium_memzero(&w, sizeof w);
}

/* The mailbox's errors belong to the exchange while it runs (and the maker's late code-wrong
 * after it): true when taken. */
static bool ctl_code_error(struct ctl *c, enum proto_code pc)
{
    static const struct {
        enum proto_code pc;
        enum whex_kind k;
    } map[] = {{PC_CODE_UNKNOWN, WHEX_E_UNKNOWN},
               {PC_CODE_EXPIRED, WHEX_E_EXPIRED},
               {PC_CODE_WRONG, WHEX_E_WRONG}};
    if (!c->code)
        return false;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (map[i].pc != pc)
            continue;
        whex_feed(&c->code->x, &(struct whex_msg){.kind = map[i].k});
        return true;
    }
    return false;
}

/* Before a confirmed exchange nobody is punched to: not the server's choice of peer, not a
 * stranger who knows our id (the maker's gate then takes only the claimer's id). */
static bool ctl_code_refuses(struct ctl *c, const struct proto_msg *m)
{
    if (!c->code || whex_confirmed(&c->code->x))
        return false;
    LOG_W("refusing a punch order from %s: no code exchange is confirmed", m->u.punch.peer);
    return true;
}

/* The maker's gate (as receive --from ID=KEY's): only the confirmed claimer, its key pinned. */
static bool ctl_code_admit(void *arg, const char *peer, char *fp, size_t fplen, char *why,
                           size_t whylen)
{
    struct ctl_code *k = arg;
    if (!whex_confirmed(&k->x) || strcmp(peer, k->peer) != 0) {
        snprintf(why, whylen, "not the peer that typed our code");
        return false;
    }
    snprintf(fp, fplen, "%s", k->o.peer_fp);
    return true;
}

/* One code, one session: a failed punch with the claimer ends the maker soon (the claimer
 * has given up too: its one-shot punch failed), unless a newer order of it is being served
 * (it replaced the one that failed): the deadline checks that. */
static void ctl_code_sess_failed(void *arg, const char *peer, int status)
{
    struct ctl_code *k = arg;
    (void)peer;
    if (!k->c || k->c->state == CTL_DONE || k->c->sess.won)
        return;
    k->sess_failed = true;
    k->sess_code = k->sess_code || status == EXIT_CODE_FAILED;
    ctl_code_arm(k->c, CTL_CODE_AFTER_FAIL_MS);
}

static void ctl_on_welcome(struct ctl *c, const struct proto_msg *m)
{
    char ep[EP_STRLEN];
    if (c->state != CTL_HELLO) {
        LOG_W("ignoring an unexpected welcome");
        return;
    }
    c->keepalive_s = m->u.welcome.keepalive;
    c->observed = m->u.welcome.observed;
    c->registered = true;
    /* without it the server neither passes connect.resume on nor takes replace: another may */
    if (c->rsm && !sc_feat_resume(c->sc)) {
        ctl_lost(c, "the server %s does not offer resumable sessions", c->name);
        return;
    }
    if (c->o->path == PROTO_PATH_RELAY && !m->u.welcome.relay) {
        ctl_fail(c, EXIT_PUNCH, "the server %s does not relay, and --relay-only needs its relay",
                 c->name);
        return;
    }
    /* with a list, which server took us is worth saying at the default verbosity */
    log_msg(c->multi ? LOG_NOTE : LOG_INFO, "registered as %s on %s, public endpoint %s",
            m->u.welcome.id, c->name,
            ep_format((const struct sockaddr *)&m->u.welcome.observed, ep, sizeof ep));
    if (!c->rsm) /* a resume's events are the data plane's (suspended, resumed) */
        ev_registered(c->o, c->name, m);
    ctl_probe_start(c, m);
    if (c->mode != SESS_ONE) {
        inb_listen(&c->inb, &c->local);
        if (c->local6.ss_family == AF_INET6)
            inb_listen(&c->inb, &c->local6);
    }
    if (c->code && c->code->role == WHEX_CLAIMER) {
        ctl_code_begin(c); /* connect follows a confirmed exchange */
        return;
    }
    if (!c->target) {
        c->state = SESS_WAITING;
        LOG_I("waiting for a peer to connect to %s", c->o->id);
        sc_timeout(c->sc, 0); /* the answer came: from now on the keepalive watches */
        /* ping often enough that the server never sees us silent for a whole keepalive */
        uv_timer_start(&c->timer, ctl_on_keepalive, (uint64_t)c->keepalive_s * 1000 / 3,
                       (uint64_t)c->keepalive_s * 1000 / 3);
        if (c->code)
            ctl_code_begin(c);
        return;
    }
    c->state = CTL_ASKED;
    /* with our mapping known before the pairing, the server can choose the path (at most
     * PRB_TIMEOUT_MS of delay, and only when the server has a probe port) */
    if (c->probe || c->probe6)
        c->connect_waiting = true;
    else
        ctl_send_connect(c);
}

/* srvconn's msg: every line of the server after the challenge (and any before it). */
static void ctl_on_msg(struct sc *sc, void *data, const struct proto_msg *msg, uint64_t rx_us)
{
    struct ctl *c = data;
    struct proto_msg m = *msg;
    (void)sc;
    c->last_rx_ms = clk_ms();
    switch (m.type) {
    case PROTO_CHALLENGE: /* the first one went to ctl_on_first */
        LOG_W("ignoring an unexpected challenge");
        break;
    case PROTO_WELCOME:
        ctl_on_welcome(c, &m);
        break;
    case PROTO_PUNCH:
        ctl_on_punch(c, &m, rx_us);
        break;
    case PROTO_ERROR:
        ctl_on_error(c, &m);
        break;
    case PROTO_CODE_OPENED:
    case PROTO_CODE_CLAIMED:
    case PROTO_CODE_ANSWER:
    case PROTO_CODE_CONFIRM:
        ctl_code_msg(c, &m);
        break;
    case PROTO_PING:
        m.type = PROTO_PONG;
        ctl_send(c, &m);
        break;
    default: /* pong: liveness is already noted */
        break;
    }
}

static void ctl_on_connected(struct sc *sc, void *data, const struct sockaddr_storage *local)
{
    struct ctl *c = data;
    char ep[EP_STRLEN];
    int port = ep_port((const struct sockaddr *)local);
    (void)sc;
    LOG_D("connected to %s from %s", c->name,
          ep_format((const struct sockaddr *)local, ep, sizeof ep));
    /* punch sockets share the port on the wildcard address, like the control socket */
    memset(&c->local, 0, sizeof c->local);
    c->local.ss_family = c->server.ss_family;
    ep_set_port((struct sockaddr *)&c->local, port);
    /* the server speaks first: hello answers its challenge */
    c->state = CTL_CHALLENGE;
    c->last_rx_ms = clk_ms();
}

/* The server sent no challenge: it is sent on accept, so a server that stays silent does not
 * speak this protocol (or hangs); a list has others. */
static void ctl_no_challenge(struct ctl *c)
{
    if (c->multi)
        ctl_lost(c, "the server %s sent no challenge within %d s", c->name,
                 CTL_ANSWER_TIMEOUT_MS / 1000);
    else
        ctl_fail(c, EXIT_SERVER,
                 "the server %s sent no challenge within %d s (an older tcpunch-rendezvous?)",
                 c->name, CTL_ANSWER_TIMEOUT_MS / 1000);
}

static void ctl_on_timeout(struct ctl *c, enum sc_phase phase)
{
    switch (phase) {
    case SC_CONNECTING:
        ctl_lost(c, "cannot reach the server %s: %s", c->name, "timed out");
        break;
    case SC_CHALLENGE:
        ctl_no_challenge(c);
        break;
    default: /* hello, connect or a code step sent */
        if (c->code && whex_live(&c->code->x))
            ctl_fail(c, EXIT_SERVER, "the server %s did not answer the code exchange in time",
                     c->name);
        else
            ctl_lost(c, "the server %s did not answer within %d s", c->name,
                     CTL_ANSWER_TIMEOUT_MS / 1000);
        break;
    }
}

/* srvconn's fail: the connection is closed already. */
static void ctl_on_fail(struct sc *sc, void *data, const struct sc_error *e)
{
    struct ctl *c = data;
    (void)sc;
    c->sc = NULL;
    switch (e->kind) {
    case SC_FAIL_CONNECT:
        ctl_unreachable(c, e->detail);
        break;
    case SC_FAIL_TIMEOUT:
        ctl_on_timeout(c, e->phase);
        break;
    case SC_FAIL_CLOSED:
        /* punching: the server is no longer needed for this session */
        if (c->state != CTL_PUNCHING)
            ctl_lost(c, "lost the connection to the server %s: %s", c->name, e->detail);
        break;
    case SC_FAIL_LONG:
        ctl_fail(c, EXIT_SERVER, "the server %s sent a line over %d bytes", c->name, LB_MAX);
        break;
    case SC_FAIL_INVALID:
        ctl_fail(c, EXIT_SERVER, "the server sent an invalid message (%s): %s",
                 proto_err_code(e->perr), e->detail);
        break;
    case SC_FAIL_SEND:
    default: /* SOCKET and WATCH come only from sc_open */
        ctl_send_failed(c);
        break;
    }
}

static const struct sc_cbs ctl_sc_cbs = {
    .connected = ctl_on_connected, .first = ctl_on_first, .msg = ctl_on_msg, .fail = ctl_on_fail};

static int ctl_open(struct ctl *c)
{
    struct sockaddr_storage any = {.ss_family = c->server.ss_family};
    /* SC_STAMP: a punch's kernel arrival time goes into the RTT the punch engine waits by */
    struct sc_cfg cfg = {.server = (const struct sockaddr *)&c->server,
                         .local = (const struct sockaddr *)&any,
                         .connect_ms =
                             c->multi ? CTL_CONNECT_TIMEOUT_LIST_MS : CTL_CONNECT_TIMEOUT_MS,
                         .answer_ms = CTL_ANSWER_TIMEOUT_MS,
                         .flags = SC_STAMP};
    struct sc_error e;

    ep_set_port((struct sockaddr *)&any, c->o->port); /* the shared punch port, on the wildcard */
    c->sc = sc_open(c->loop, &cfg, &ctl_sc_cbs, c, &e);
    if (c->sc)
        return EXIT_DONE;
    switch (e.kind) {
    case SC_FAIL_CONNECT:
        ctl_unreachable(c, e.detail);
        return EXIT_SERVER;
    case SC_FAIL_WATCH:
        LOG_E("cannot watch the server connection");
        return EXIT_LOCAL;
    default:
        LOG_E("cannot use local port %d: %s", c->o->port, e.detail);
        return EXIT_LOCAL;
    }
}

/* What every attempt of one command is given (the failover's callback data). */
struct ctl_run {
    const struct peer_opts *o;
    const char *target;
    struct peer_link *link;
    enum sess_mode mode;
    const struct peer_serve *serve; /* SESS_SERVE's callbacks, SESS_WAIT's optional hooks */
    bool aux;                       /* register as an auxiliary connection (hello.aux) */
    bool may_retry;                 /* listen or chat without a peer, and no --no-retry */
    const struct resume_link_cfg *rsm; /* resume mode (peer_resume_link), else NULL */
    struct ctl_code *code;             /* a code run, else NULL */
};

/* The path thread sets it (atomically) while the attempt's thread polls it. */
static bool ctl_cancelled(const struct resume_link_cfg *r)
{
    return __atomic_load_n(r->cancel, __ATOMIC_ACQUIRE) != 0;
}

/* Resume mode: the attempt ends when the path side cancels it or the deadline passes,
 * whatever it is doing (registering, waiting, punching). */
static void ctl_on_watch(uv_timer_t *t)
{
    struct ctl *c = t->data;
    const char *why = ctl_cancelled(c->rsm)             ? "the resume was cancelled"
                      : clk_ms() >= c->rsm->deadline_ms ? "the resume timeout passed"
                                                        : NULL;
    if (!why || c->state == CTL_DONE)
        return;
    LOG_D("resume attempt on %s ends: %s", c->name, why);
    snprintf(c->why, sizeof c->why, "%s", why);
    sess_abort(&c->sess, why); /* one-shot: its end is ctl_end's */
    ctl_end(c, EXIT_PUNCH);
}

#define CTL_WATCH_MS 50 /* how soon a cancel is seen */

static void ctl_resume_init(struct ctl *c, const struct resume_link_cfg *r)
{
    const struct rpath_cfg *rc = r->c;
    c->rsm = r;
    c->sres = (struct sess_resume){.root = rc->root,
                                   .peer = rc->peer,
                                   .peer_key = rc->peer_key,
                                   .role = rc->role,
                                   .rs = rc->rs,
                                   .last_epoch = r->last_epoch,
                                   .rx = r->rx,
                                   .direct_only = r->direct_only};
    c->sess.resume = &c->sres;
    uv_timer_init(c->loop, &c->watch);
    c->watch.data = c;
    uv_timer_start(&c->watch, ctl_on_watch, CTL_WATCH_MS, CTL_WATCH_MS);
}

/* One connection to server s, on loop: register, wait or ask, punch. Returns whether the
 * server refused hello.aux (an older one). */
static bool ctl_attempt(const struct ctl_run *run, uv_loop_t *loop, const struct sl_server *s,
                        bool multi, bool was_registered, struct fo_outcome *out)
{
    struct ctl *c = calloc(1, sizeof *c);
    struct peer_link *link = run->link;
    bool aux_refused;

    if (!c) {
        LOG_E("out of memory");
        out->rc = EXIT_LOCAL;
        return false;
    }
    if (link) {
        memset(link, 0, sizeof *link);
        link->fd = -1;
    }
    c->o = run->code ? &run->code->o : run->o;
    c->code = run->code;
    c->target = run->target;
    c->mode = run->mode;
    c->aux = run->aux;
    c->state = CTL_CONNECTING;
    c->may_retry = run->may_retry;
    c->was_registered = was_registered;
    c->server = s->addr;
    c->name = s->name;
    c->multi = multi;
    c->loop = loop;
    c->sess = (struct sess_set){.loop = loop,
                                .o = c->o,
                                .mode = run->mode,
                                .serve = run->serve,
                                .link = link,
                                .server = &c->server,
                                .name = c->name,
                                .local = &c->local,
                                .local6 = &c->local6,
                                .observed = &c->observed,
                                .nat = &c->nat,
                                .bday_ttl = &c->bday_ttl,
                                .bday_announced = &c->bday_announced,
                                .resume_announced = &c->resume_announced,
                                .cb = {ctl_sess_ended, ctl_sess_won, ctl_sess_idle, c,
                                       ctl_sess_report}};
    sess_init(&c->sess);
    uv_timer_init(c->loop, &c->timer);
    c->timer.data = c;
    uv_timer_init(c->loop, &c->code_timer);
    c->code_timer.data = c;
    ctl_alive_init(c);
    if (run->rsm)
        ctl_resume_init(c, run->rsm);
    inb_init(&c->inb, c->loop, &(struct inb_cbs){ctl_inb_lookup, ctl_inb_adopt, c});
    out->rc = ctl_open(c);
    if (out->rc != EXIT_DONE)
        ctl_end(c, out->rc);
    /* the loop runs this attempt alone: it returns when the attempt is over */
    uv_run(c->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&c->timer, NULL);
    uv_close((uv_handle_t *)&c->code_timer, NULL);
    if (run->code)
        run->code->c = NULL; /* the exchange's callbacks find no attempt from now on */
    if (c->alive_on)
        uv_close((uv_handle_t *)&c->alive, NULL);
    if (c->rsm)
        uv_close((uv_handle_t *)&c->watch, NULL);
    inb_free(&c->inb);
    uv_run(c->loop, UV_RUN_DEFAULT);
    out->rc = c->result;
    out->registered = c->registered;
    out->retry = c->retry;
    aux_refused = c->aux_refused;
    snprintf(out->why, sizeof out->why, "%s", c->why);
    free(c);
    if (out->rc != EXIT_DONE && link && link->fd >= 0) {
        close(link->fd);
        link->fd = -1;
    }
    return aux_refused;
}

/* The failover's attempt: one on server s (again without hello.aux, at once, if the server is
 * an older one that does not know it). */
static void ctl_try(void *data, uv_loop_t *loop, const struct sl_server *s, bool multi,
                    bool was_registered, struct fo_outcome *out)
{
    struct ctl_run *run = data;
    for (;;) {
        memset(out, 0, sizeof *out);
        if (!(ctl_attempt(run, loop, s, multi, was_registered, out) && run->aux))
            return;
        run->aux = false; /* the server is there, it only spoke an older dialect */
    }
}

/* Rounds over the servers of --server (peer/failover.c): a one-shot command tries one round;
 * a waiting one (listen, receive, serve) that loses its server moves on to the next and, when
 * a whole round failed, waits and tries again. */
static int ctl_run_all(struct ctl_run *run)
{
    struct fo_cbs cb = {ctl_try, run};
    return fo_run(run->o->server, run->may_retry, &cb);
}

int peer_rendezvous(const struct peer_opts *o, const char *target, struct peer_link *link)
{
    if (!target)
        return peer_wait(o, NULL, link);
    struct ctl_run run = {.o = o, .target = target, .link = link, .mode = SESS_ONE};
    return ctl_run_all(&run);
}

int peer_wait(const struct peer_opts *o, const struct peer_serve *hooks, struct peer_link *link)
{
    struct ctl_run run = {
        .o = o, .link = link, .mode = SESS_WAIT, .serve = hooks, .may_retry = !o->no_retry};
    return ctl_run_all(&run);
}

/* receive --from: its admit hook is peer_wait's */
int peer_rendezvous_gate(const struct peer_opts *o, const struct peer_serve *gate,
                         struct peer_link *link)
{
    return peer_wait(o, gate, link);
}

int peer_rendezvous_aux(const struct peer_opts *o, const char *target, struct peer_link *link)
{
    struct ctl_run run = {.o = o, .target = target, .link = link, .mode = SESS_ONE, .aux = true};
    return ctl_run_all(&run);
}

/* One code run: the options copied (the exchange adds the pin and the binding), no retry (a
 * code lives on its server and dies with the connection), and every secret wiped after. */
static int ctl_code_run(const struct peer_opts *o, enum whex_role role, bool pipe,
                        const struct wcode *code, struct peer_link *link)
{
    struct ctl_code *k = sodium_malloc(sizeof *k);
    struct ctl_run run = {.link = link, .mode = role == WHEX_MAKER ? SESS_WAIT : SESS_ONE,
                          .aux = role == WHEX_CLAIMER};
    int rc;
    if (!k) {
        LOG_E("out of memory");
        return EXIT_LOCAL;
    }
    memset(k, 0, sizeof *k);
    k->o = *o;
    k->o.no_retry = true;
    k->role = role;
    k->mode = pipe ? WHAD_PIPE : WHAD_FILE;
    if (code)
        k->code = *code;
    k->gate = (struct peer_serve){.admit = ctl_code_admit, .failed = ctl_code_sess_failed, .arg = k};
    k->x.state = WHEX_S_END;
    run.o = &k->o;
    run.code = k;
    run.serve = role == WHEX_MAKER ? &k->gate : NULL;
    rc = ctl_run_all(&run);
    whex_wipe(&k->x);
    sodium_free(k); /* sodium_free wipes the rest */
    return rc;
}

int peer_code_make(const struct peer_opts *o, bool pipe, struct peer_link *link)
{
    return ctl_code_run(o, WHEX_MAKER, pipe, NULL, link);
}

int peer_code_claim(const struct peer_opts *o, bool pipe, const struct wcode *code,
                    struct peer_link *link)
{
    return ctl_code_run(o, WHEX_CLAIMER, pipe, code, link);
}

int peer_serve(const struct peer_opts *o, const struct peer_serve *sv)
{
    struct ctl_run run = {.o = o, .mode = SESS_SERVE, .serve = sv, .may_retry = !o->no_retry};
    return ctl_run_all(&run);
}

/* The servers of o->server with the one that introduced us (its name, as link->server holds
 * it) first, the others in their order. 0 when none resolved. */
static int ctl_resume_servers(const struct rpath_cfg *c, struct sl_list *l)
{
    char skipped[512] = "";
    if (sl_resolve(c->o->server, l, skipped, sizeof skipped) == 0)
        return 0;
    for (int i = 1; i < l->n; i++) {
        if (strcmp(l->s[i].name, c->server) != 0)
            continue;
        struct sl_server first = l->s[i];
        memmove(&l->s[1], &l->s[0], (size_t)i * sizeof l->s[0]);
        l->s[0] = first;
        break;
    }
    return l->n;
}

/* One resume attempt (rpath.h): one round over the servers, the one that introduced us first.
 * The initiator registers an auxiliary connection from a new local port (a new NAT mapping),
 * asks with connect.resume and, while answered peer-not-found, asks again on it (resume.h's
 * waits); the responder registers its id with replace and waits for the resume order. Either
 * takes one valid resume punch order and returns its result: a failed punch, or a server
 * lost before one, returns so that rpath waits per the punch table and registers again. */
int peer_resume_link(const struct resume_link_cfg *r, struct peer_link *link, char *why,
                     size_t whylen)
{
    const struct rpath_cfg *rc = r->c;
    struct peer_opts o = *rc->o;
    struct sl_list *l = malloc(sizeof *l);
    bool initiator = rc->role == PROTO_INITIATOR;
    struct ctl_run run = {.o = &o,
                          .target = initiator ? rc->peer : NULL,
                          .link = link,
                          .mode = SESS_ONE,
                          .aux = initiator,
                          .rsm = r};
    struct fo_outcome out = {.rc = EXIT_SERVER};
    uv_loop_t loop;
    int n;

    snprintf(why, whylen, "no server to resume through");
    if (!l)
        return EXIT_LOCAL;
    if (initiator)
        o.port = 0; /* a fresh port: whatever broke the old path may have been its mapping */
    if ((n = ctl_resume_servers(rc, l)) == 0)
        goto done;
    if (uv_loop_init(&loop) != 0) {
        out.rc = EXIT_LOCAL;
        goto done;
    }
    snprintf(why, whylen, "the resume was cancelled or its time is over");
    for (int i = 0; i < n && !ctl_cancelled(r) && clk_ms() < r->deadline_ms; i++) {
        uint64_t left = r->deadline_ms - clk_ms();
        o.timeout_ms = rc->o->timeout_ms < left ? rc->o->timeout_ms : left;
        ctl_try(&run, &loop, &l->s[i], n > 1, false, &out);
        snprintf(why, whylen, "%s", out.why[0] ? out.why : "the punch failed");
        /* only a server lost, unreachable or unusable (no resume offered, a refusal) moves on
         * to the next within this attempt (design 4.5: "lost the server: the next server") */
        if (out.rc != EXIT_SERVER)
            break;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
done:
    free(l);
    return out.rc;
}
