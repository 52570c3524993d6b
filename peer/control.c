/* The control connection to the rendezvous: register, ask for a peer, wait for the punch order,
 * then hand over to the punch engine. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "common/addrpol.h"
#include "common/clock.h"
#include "common/endpoint.h"
#include "common/linebuf.h"
#include "common/log.h"
#include "common/srvlist.h"
#include "common/sock.h"
#include "common/stamp.h"
#include "peer/events.h"
#include "peer/failover.h"
#include "peer/hello.h"
#include "peer/exit.h"
#include "peer/control.h"
#include "peer/probe.h"
#include "peer/punch.h"
#include "peer/relay.h"
#include "peer/trust.h"

#define CTL_CONNECT_TIMEOUT_MS 10000
/* one of a list: a dead server must not stall the others for long */
#define CTL_CONNECT_TIMEOUT_LIST_MS 3000
#define CTL_ANSWER_TIMEOUT_MS 10000
/* listen, receive, chat: punch orders set up at once, each until its handshake or --timeout.
 * Few enough that they cannot exhaust our descriptors (each engine holds at most a socket per
 * candidate and PUNCH_MAX_INBOUND more); what keeps a stranger's orders from crowding out the
 * real peer's is CTL_WAIT_PER_ID (the server's --connect-rate limits how fast anyone can make
 * them). */
#define CTL_WAIT_SETUPS 8
/* ... of which one peer id holds at most this many: a stranger's id ordering punches as fast
 * as the server lets it only churns its own sessions, never the slot of a distinct peer */
#define CTL_WAIT_PER_ID 2
/* An inbound connection that no session expects yet (its punch order may still be on the way:
 * the peer's order can arrive first) is held, without a byte written, this long at most, and
 * this many at once; then reset as if nothing listened. */
#define CTL_PENDING 16
#define CTL_PENDING_MS 1000

/* How a control connection serves punch orders. */
enum ctl_mode {
    CTL_ONE,   /* connect, chat PEER, send: one session, with the peer asked for */
    CTL_WAIT,  /* listen, receive, chat: sessions in parallel, the first handshake wins */
    CTL_SERVE, /* listen --forward: every admitted session, each handed to serve->linked */
};

/* CHALLENGE: connected, waiting for the server's challenge; HELLO: hello sent */
enum ctl_state {
    CTL_CONNECTING,
    CTL_CHALLENGE,
    CTL_HELLO,
    CTL_WAITING,
    CTL_ASKED,
    CTL_PUNCHING,
    CTL_DONE
};

struct ctl;

/* One punch order being served: its engine, its relay attempt and its handshake. A one-shot
 * control connection has at most one; a waiting one (listen, listen --forward) one per punch
 * order at a time. */
struct ctl_sess {
    struct ctl *c;
    struct ctl_sess *next;
    struct punch *punch;
    struct rl *relay;     /* the relay attempt, until it joined or failed */
    bool relay_only;      /* this session makes no direct attempt */
    char relay_note[400]; /* what became of the relay path, for a failure message */
    struct shake_ctx shake;
    struct punch_cfg cfg;   /* its candidates route the shared listener's connections */
    struct peer_link *link; /* the caller's (one-shot) or own */
    struct peer_link own;
};

struct ctl {
    uv_loop_t *loop;
    const struct peer_opts *o;
    const char *target;
    enum ctl_mode mode;
    /* CTL_SERVE: what to do with each punch order; CTL_WAIT: optional admit/failed hooks
     * (receive --from) */
    const struct peer_serve *serve;
    bool won; /* CTL_WAIT: a session completed its handshake; c->link holds it */
    bool aux;                       /* hello.aux: an auxiliary connection (connect) */
    bool aux_refused;               /* the server does not know aux (an older one) */
    struct peer_link *link;
    struct sockaddr_storage server;
    const char *name; /* the server of this attempt, as messages name it */
    bool multi;       /* one of several servers: a short connect timeout, failing moves on */
    char why[512];    /* how this attempt lost its server (the summary of a list) */
    struct sockaddr_storage local;
    struct sockaddr_storage local6;   /* [::]:P when IPv6 candidates are offered, else zero */
    struct sockaddr_storage observed; /* our public endpoint, as the server saw it */
    int fd;
    uv_poll_t poll; /* our own reads: recvmsg gives the kernel's arrival time of a punch */
    bool poll_open;
    uv_timer_t timer;
    enum ctl_state state;
    struct lb lb;
    int keepalive_s;
    int64_t ping_seq;
    uint64_t last_rx_ms;
    struct prb *probe;     /* the NAT probe while it runs */
    struct prb *probe6;    /* the IPv6 proof (welcome.probe6) while it runs */
    bool connect_waiting;  /* connect goes out once the probe is done */
    enum proto_nat nat;    /* our mapping, as the probe showed */
    struct ctl_sess *sess; /* sessions being punched */
    /* waiting modes: one listener on the shared port for all sessions (IPv4 or the control's
     * family, IPv6): several SO_REUSEPORT listeners would split inbound SYNs among them */
    uv_poll_t lst[2];
    int lst_fd[2];
    int nlst;
    struct {
        int fd;
        struct sockaddr_storage from;
        uint64_t ms;
    } pend[CTL_PENDING];
    int npend;
    uv_timer_t pend_timer; /* drops pending connections after CTL_PENDING_MS */
    int result;
    /* listen: a lost or unreachable server is waited for (peer_rendezvous tries again);
     * was_registered: an earlier attempt of this run got a welcome, registered: this one did,
     * retry: this one ended in a way worth another */
    bool may_retry, was_registered, registered, retry;
    uint64_t rx_us; /* monotonic arrival time of the bytes being parsed */
    char rbuf[16384];
};

static void ctl_poll_closed(uv_handle_t *h)
{
    struct ctl *c = h->data;
    close(c->fd);
    c->fd = -1;
}

static void ctl_close(struct ctl *c)
{
    if (!c->poll_open) {
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        return;
    }
    c->poll_open = false;
    uv_close((uv_handle_t *)&c->poll, ctl_poll_closed);
}

static void ctl_on_poll(uv_poll_t *h, int status, int events);
static void ctl_lst_closed(uv_handle_t *h);

/* A reset, not a FIN: to the dialler it looks like no listener, and no TIME_WAIT stays on the
 * 4-tuple the peer may dial again. */
static void ctl_rst_close(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static void ctl_pend_take(struct ctl *c, int i)
{
    c->pend[i] = c->pend[--c->npend];
    if (!c->npend)
        uv_timer_stop(&c->pend_timer);
}

static void ctl_pend_route(struct ctl *c);

static void ctl_pend_drop_all(struct ctl *c)
{
    while (c->npend) {
        ctl_rst_close(c->pend[0].fd);
        ctl_pend_take(c, 0);
    }
}

/* The shared listener lives as long as the registration or, after that, as long as sessions
 * still punch (a server lost in the middle of a punch does not end it). */
static void ctl_close_listeners(struct ctl *c)
{
    for (int i = 0; i < c->nlst; i++)
        uv_close((uv_handle_t *)&c->lst[i], ctl_lst_closed);
    c->nlst = 0;
}

static void ctl_end(struct ctl *c, int result)
{
    if (c->state == CTL_DONE)
        return;
    c->state = CTL_DONE;
    c->result = result;
    uv_timer_stop(&c->timer);
    ctl_pend_drop_all(c);
    prb_cancel(c->probe);
    prb_cancel(c->probe6);
    c->probe = c->probe6 = NULL;
    /* one-shot: the relay goes with the server connection, as before; the waiting modes let
     * running sessions finish on their own (uv_run returns once they have) */
    if (c->mode == CTL_ONE && c->sess) {
        rl_cancel(c->sess->relay);
        c->sess->relay = NULL;
    }
    if (!c->sess)
        ctl_close_listeners(c);
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
    LOG_E("%s", msg);
    ctl_end(c, result);
}

/* The server is down, went away or turned us away for now. listen waits for it (another
 * attempt follows; ctl_run_all says when), and so does a list's next server for anyone not
 * registered yet; everyone else fails. */
static void ctl_lost(struct ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ctl_lost(struct ctl *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    if (!c->may_retry && !(c->multi && !c->registered)) {
        LOG_E("%s", c->why);
        ctl_end(c, EXIT_SERVER);
        return;
    }
    LOG_W("%s", c->why);
    c->retry = true;
    ctl_end(c, EXIT_SERVER);
}

/* With a list the hint comes once, after all of them (ctl_run_all). */
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

static int ctl_send(struct ctl *c, const struct proto_msg *m)
{
    char line[PROTO_MAX_LINE];
    int n = proto_encode(m, line, sizeof line);
    /* control lines are tiny and rare: the socket buffer takes them whole */
    if (n <= 0 || c->fd < 0 || send(c->fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
        ctl_lost(c, "cannot send to the server %s%s", c->name, "");
        return -1;
    }
    return 0;
}

static void ctl_send_hello(struct ctl *c, const unsigned char *nonce)
{
    struct proto_msg m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_HELLO;
    m.u.hello.version = PROTO_VERSION;
    memcpy(m.u.hello.id, c->o->id, sizeof m.u.hello.id);
    m.u.hello.path = c->o->path;
    m.u.hello.aux = c->aux;
    /* a server on loopback means everybody is on this host: LAN addresses add nothing */
    if (!ep_is_loopback((struct sockaddr *)&c->server)) {
        struct proto_eplist *l = &m.u.hello.endpoints;
        /* global IPv6 first: an IPv4 host may have many LAN addresses, and those only help
         * behind the same NAT, while a global IPv6 address is a path from anywhere */
        l->n = punch_local6(&c->local, &c->local6, l->ep, 2);
        l->n += sk_local_addrs(c->local.ss_family, ep_port((struct sockaddr *)&c->local),
                               l->ep + l->n, PROTO_MAX_ENDPOINTS - l->n);
    }
    hello_sign(c->o, nonce, &m); /* last: the admit covers the endpoints */
    ctl_send(c, &m);
}

static void ctl_sess_free(struct ctl_sess *ss)
{
    struct ctl *c = ss->c;
    struct ctl_sess **pp = &c->sess;
    while (*pp && *pp != ss)
        pp = &(*pp)->next;
    if (*pp)
        *pp = ss->next;
    rl_cancel(ss->relay);
    shake_wipe(&ss->shake);
    sodium_memzero(&ss->own, sizeof ss->own);
    free(ss);
    if (c->state == CTL_DONE && !c->sess)
        ctl_close_listeners(c);
}

/* An admitted session ended without a link: its admit hook's slot goes back. */
static void ctl_hook_failed(struct ctl *c, const char *peer)
{
    if (c->serve && c->serve->failed)
        c->serve->failed(c->serve->arg, peer);
}

/* CTL_WAIT: the first session to complete its handshake is the one; every other session in
 * setup is aborted (a stranger's, or a slower path of the same peer's). */
static void ctl_wait_won(struct ctl *c, struct ctl_sess *ss)
{
    *c->link = *ss->link;
    c->won = true;
    ctl_sess_free(ss);
    while ((ss = c->sess)) {
        if (ss->punch)
            punch_abort(ss->punch, EXIT_PUNCH, "another session completed first");
        else
            ctl_sess_free(ss);
    }
    if (c->state != CTL_DONE) {
        ctl_end(c, EXIT_DONE);
    } else { /* the server was lost meanwhile: the session stands all the same */
        c->result = EXIT_DONE;
        c->retry = false;
    }
}

static void ctl_punch_done(struct punch *p, int status, const char *why, void *arg)
{
    struct ctl_sess *ss = arg;
    struct ctl *c = ss->c;
    char note[400];
    (void)p;
    ss->punch = NULL;
    if (c->won) { /* aborted: another session won */
        LOG_D("session with %s aborted: another one completed first", ss->shake.peer);
        ctl_hook_failed(c, ss->shake.peer);
        ctl_sess_free(ss);
        return;
    }
    if (ss->relay)
        rl_describe(ss->relay, note, sizeof note);
    else
        snprintf(note, sizeof note, "%s", ss->relay_note);
    shake_wipe(&ss->shake);
    if (status == EXIT_DONE) {
        trust_record(&ss->shake.trust, ss->link->peer_pk);
        snprintf(ss->link->server, sizeof ss->link->server, "%s", c->name);
    }
    /* waiting: one failed session (a stranger's, a refused key, a punch that found no path)
     * is not the end; the next punch order may be the peer's */
    if (status != EXIT_DONE && ss->relay_only)
        log_msg(c->mode == CTL_WAIT ? LOG_WARN : LOG_ERROR,
                "punch to %s failed: relay: %s; direct skipped: %s%s", ss->shake.peer, note,
                ss->link->direct_why, c->mode == CTL_WAIT ? "; still waiting" : "");
    else if (status != EXIT_DONE)
        log_msg(c->mode == CTL_WAIT ? LOG_WARN : LOG_ERROR,
                "punch to %s failed: direct: %s; relay: %s%s", ss->shake.peer, why, note,
                c->mode == CTL_WAIT ? "; still waiting" : "");
    if (c->mode == CTL_ONE) {
        ctl_sess_free(ss);
        ctl_end(c, status);
        return;
    }
    if (status == EXIT_DONE && c->mode == CTL_WAIT) {
        ctl_wait_won(c, ss);
        return;
    }
    /* serve mode: the link (and its descriptor) is the callee's; the control connection
     * stays for the next punch order */
    if (status == EXIT_DONE)
        c->serve->linked(c->serve->arg, ss->link);
    else
        ctl_hook_failed(c, ss->shake.peer);
    ctl_sess_free(ss);
}

static void ctl_relay_done(struct rl *r, int status, const char *why, int fd, void *arg)
{
    struct ctl_sess *ss = arg;
    (void)r;
    ss->relay = NULL;
    if (status == EXIT_DONE) {
        snprintf(ss->relay_note, sizeof ss->relay_note, "joined, but no handshake through it");
        if (!ss->punch)
            close(fd);
        else
            punch_adopt(ss->punch, fd, "relay");
        return;
    }
    snprintf(ss->relay_note, sizeof ss->relay_note, "%s", why);
    if (ss->relay_only && ss->punch)
        punch_abort(ss->punch, status, why);
    else
        LOG_W("%s; still trying direct", why);
}

/* What this session tries: direct attempts, the relay, or both. Returns 1 when the relay is
 * used, 0 when not, -1 after logging why (no path at all). */
static int ctl_plan(struct ctl_sess *ss, const struct proto_msg *m, struct punch_cfg *cfg)
{
    const struct peer_opts *o = ss->c->o;
    bool relay = m->u.punch.relay && o->path != PROTO_PATH_DIRECT;
    const char *skip = NULL;
    if (m->u.punch.no_direct)
        skip = m->u.punch.reason[0] ? m->u.punch.reason : "the server says there is no direct path";
    else if (o->path == PROTO_PATH_RELAY)
        skip = "--relay-only";
    /* with a direct path, reason says why the server offered no relay (a quota) */
    snprintf(ss->relay_note, sizeof ss->relay_note, "%.200s",
             o->path == PROTO_PATH_DIRECT                              ? "not used (--no-relay)"
             : !relay && !m->u.punch.no_direct && m->u.punch.reason[0] ? m->u.punch.reason
             : !relay                                                  ? "not offered by the server"
                                                                       : "not tried");
    if (skip && !relay) {
        LOG_E("no path to %s: direct skipped (%s), relay not offered", m->u.punch.peer, skip);
        return -1;
    }
    if (skip) {
        cfg->relay_only = true;
        snprintf(ss->link->direct_why, sizeof ss->link->direct_why, "%.200s", skip);
    }
    ss->relay_only = cfg->relay_only;
    return relay;
}

/* The relay goes to the address the control connection uses, or to the punch's relay_addr,
 * from a fresh ephemeral port. */
static void ctl_relay_start(struct ctl_sess *ss, const struct proto_msg *m)
{
    struct ctl *c = ss->c;
    char err[200];
    uint64_t delay = ss->relay_only ? 0 : c->o->direct_timeout_ms;
    /* a cluster may run the session's relay on another instance (punch.relay_addr) */
    const struct sockaddr *at = m->u.punch.has_relay_addr
                                    ? (const struct sockaddr *)&m->u.punch.relay_addr
                                    : (const struct sockaddr *)&c->server;
    const char *bad = ap_bad_relay(at, (const struct sockaddr *)&c->server);
    char ep[EP_STRLEN];
    if (bad) {
        /* only the server's own address or a global one: a lying server must not aim our
         * relay connection (and its token line) at our own host or LAN */
        snprintf(ss->relay_note, sizeof ss->relay_note,
                 "refused the relay address %s: it is %s, neither the server's own address nor "
                 "a global one",
                 ep_format(at, ep, sizeof ep), bad);
        LOG_W("%s", ss->relay_note);
        if (ss->relay_only)
            punch_abort(ss->punch, EXIT_PUNCH, ss->relay_note);
        return;
    }
    ss->relay = rl_start(c->loop, at, m->u.punch.session,
                         m->u.punch.token, c->o->have_secret ? c->o->secret : NULL, delay,
                         ctl_relay_done, ss, err, sizeof err);
    if (ss->relay)
        return;
    snprintf(ss->relay_note, sizeof ss->relay_note, "%s", err);
    if (ss->relay_only)
        punch_abort(ss->punch, EXIT_LOCAL, err);
}

static int ctl_nsess(const struct ctl *c, const char *peer)
{
    int n = 0;
    for (const struct ctl_sess *ss = c->sess; ss; ss = ss->next)
        n += !peer || strcmp(ss->shake.peer, peer) == 0;
    return n;
}

/* The oldest session in setup of peer (the list is newest first), or with peer NULL the
 * oldest of any id holding more than one. */
static struct ctl_sess *ctl_oldest(struct ctl *c, const char *peer)
{
    struct ctl_sess *old = NULL;
    for (struct ctl_sess *ss = c->sess; ss; ss = ss->next)
        if (peer ? strcmp(ss->shake.peer, peer) == 0 : ctl_nsess(c, ss->shake.peer) > 1)
            old = ss;
    return old;
}

static void ctl_evict(struct ctl *c, struct ctl_sess *ss, const char *why)
{
    LOG_W("dropping a session in setup with %s: %s", ss->shake.peer, why);
    if (ss->punch) {
        punch_abort(ss->punch, EXIT_PUNCH, why); /* ctl_punch_done frees it */
    } else {
        ctl_hook_failed(c, ss->shake.peer);
        ctl_sess_free(ss);
    }
}

/* CTL_WAIT: room for a punch order of peer. An id already holding CTL_WAIT_PER_ID gives up
 * its oldest (the newest order is the likeliest to be answered); a full table gives up the
 * oldest session of an id holding more than one, so that against strangers of fewer than
 * CTL_WAIT_SETUPS / CTL_WAIT_PER_ID ids a distinct peer always gets a slot. */
static bool ctl_wait_room(struct ctl *c, const char *peer)
{
    struct ctl_sess *old;
    if (ctl_nsess(c, peer) >= CTL_WAIT_PER_ID && (old = ctl_oldest(c, peer)))
        ctl_evict(c, old, "a newer punch order of the same id");
    if (ctl_nsess(c, NULL) < CTL_WAIT_SETUPS)
        return true;
    if (!(old = ctl_oldest(c, NULL))) {
        LOG_W("refusing a session with %s: %d are being set up already", peer, CTL_WAIT_SETUPS);
        return false;
    }
    ctl_evict(c, old, "all setup slots are taken; its id holds more than one");
    return true;
}

/* Whether a punch order may start a session: one-shot takes one (for the peer asked for);
 * waiting takes up to CTL_WAIT_SETUPS at once (ctl_wait_room); both waiting modes ask the
 * admit callback (--allow, --max-sessions, receive --from) first, which may pin the key. A
 * refused order takes no slot and evicts nothing. */
static bool ctl_admit(struct ctl *c, const struct proto_msg *m, char *fp, size_t fplen)
{
    char why[300];
    fp[0] = '\0';
    if (c->mode != CTL_ONE) {
        if (c->serve && c->serve->admit &&
            !c->serve->admit(c->serve->arg, m->u.punch.peer, fp, fplen, why, sizeof why)) {
            LOG_W("refusing a session with %s: %s", m->u.punch.peer, why);
            return false;
        }
        if (c->mode == CTL_WAIT && !ctl_wait_room(c, m->u.punch.peer)) {
            ctl_hook_failed(c, m->u.punch.peer);
            return false;
        }
        return true;
    }
    if (c->state == CTL_PUNCHING) {
        LOG_W("ignoring a second punch order (from %s): already connecting", m->u.punch.peer);
        return false;
    }
    if (c->target && strcmp(m->u.punch.peer, c->target) != 0) {
        LOG_W("ignoring a punch order for %s while asking for %s", m->u.punch.peer, c->target);
        return false;
    }
    c->state = CTL_PUNCHING;
    uv_timer_stop(&c->timer);
    return true;
}

/* The session's handshake context and trust; EXIT_DONE or trust_prepare's failure. */
static int ctl_sess_shake(struct ctl_sess *ss, const struct proto_msg *m, const char *fp)
{
    struct ctl *c = ss->c;
    int rc;
    memcpy(ss->shake.session, m->u.punch.session, sizeof ss->shake.session);
    memcpy(ss->shake.self, c->o->id, sizeof ss->shake.self);
    memcpy(ss->shake.peer, m->u.punch.peer, sizeof ss->shake.peer);
    ss->shake.role = m->u.punch.role;
    ss->shake.ident = c->o->ident;
    shake_init(&ss->shake);
    if ((rc = trust_prepare(c->o, m->u.punch.peer, m->u.punch.has_key ? m->u.punch.key : NULL,
                            &ss->shake.trust)) != EXIT_DONE)
        return rc;
    /* --allow ID=KEY pins the key like --peer-key, for this peer only */
    if (fp[0])
        snprintf(ss->shake.trust.fp, sizeof ss->shake.trust.fp, "%s", fp);
    memcpy(ss->link->peer, m->u.punch.peer, sizeof ss->link->peer);
    return EXIT_DONE;
}

/* A waiting peer turns away, before dialling anything, a peer whose registered key (the
 * punch's word) it would refuse in the handshake anyway: a stranger knocking while we pin
 * the real peer (--peer-key, --allow ID=KEY, known_peers). A server that lies about the key
 * gains nothing: the handshake checks the key the connection shows. */
static bool ctl_key_refused(struct ctl_sess *ss, const struct proto_msg *m)
{
    char why[1024];
    if (ss->c->mode == CTL_ONE || !m->u.punch.has_key ||
        shake_trust_key(&ss->shake.trust, m->u.punch.key, why, sizeof why) != SHAKE_REFUSED)
        return false;
    LOG_W("refusing a session with %s, by the key it registered with: %s", m->u.punch.peer, why);
    return true;
}

/* A session that could not start: one-shot ends with status, serve mode releases its slot. */
static void ctl_sess_abandon(struct ctl_sess *ss, int status, const char *err)
{
    struct ctl *c = ss->c;
    if (err)
        LOG_E("%s", err);
    if (c->mode != CTL_ONE)
        ctl_hook_failed(c, ss->shake.peer);
    ctl_sess_free(ss);
    if (c->mode == CTL_ONE)
        ctl_end(c, status);
}

static void ctl_on_punch(struct ctl *c, const struct proto_msg *m)
{
    struct punch_cfg *cfg;
    struct ctl_sess *ss;
    char ep[EP_STRLEN], err[200], fp[ID_FP_SIZE];
    int relay, rc;

    if (!ctl_admit(c, m, fp, sizeof fp))
        return;
    if (!(ss = calloc(1, sizeof *ss))) {
        if (c->mode != CTL_ONE)
            ctl_hook_failed(c, m->u.punch.peer);
        ctl_fail(c, EXIT_LOCAL, "out of memory%s%s", "", "");
        return;
    }
    ss->c = c;
    ss->link = c->mode != CTL_ONE ? &ss->own : c->link;
    ss->own.fd = -1;
    memcpy(ss->shake.peer, m->u.punch.peer, sizeof ss->shake.peer);
    ss->next = c->sess;
    c->sess = ss;
    cfg = &ss->cfg;
    if ((relay = ctl_plan(ss, m, cfg)) < 0) {
        ctl_sess_abandon(ss, EXIT_PUNCH, NULL);
        return;
    }
    cfg->local = c->local;
    cfg->local6 = c->local6;
    cfg->timeout_ms = c->o->timeout_ms;
    cfg->rtt_us = sk_rtt_us(c->fd);
    cfg->shared_listener = c->mode != CTL_ONE;
    cfg->loopback_ok = ep_is_loopback((const struct sockaddr *)&c->server);
    /* the server timed both orders to arrive together: aim both first SYNs at the same moment
     * after the kernel's arrival stamp, leaving time to get ready */
    cfg->start_us = c->rx_us + (m->u.punch.start_in_us >= 0 ? (uint64_t)m->u.punch.start_in_us
                                                            : PROTO_DEFAULT_START_IN_US);
    if (!cfg->relay_only)
        punch_candidates(cfg, &m->u.punch.observed,
                         m->u.punch.has_observed6 ? &m->u.punch.observed6 : NULL,
                         &m->u.punch.endpoints, &c->observed);
    if ((rc = ctl_sess_shake(ss, m, fp)) != EXIT_DONE) {
        ctl_sess_abandon(ss, rc, NULL);
        return;
    }
    if (ctl_key_refused(ss, m)) {
        ctl_sess_abandon(ss, EXIT_PUNCH, NULL);
        return;
    }
    cfg->shake = &ss->shake;
    LOG_I("punching to %s at %s (%d candidate%s, %s)", m->u.punch.peer,
          ep_format((const struct sockaddr *)&m->u.punch.observed, ep, sizeof ep), cfg->ncand,
          cfg->ncand == 1 ? "" : "s",
          m->u.punch.role == PROTO_INITIATOR ? "initiator" : "responder");
    ev_punching(c->o, m, cfg);
    for (int i = 0; i < cfg->ncand; i++)
        LOG_D("candidate %d: %s (%s)", i,
              ep_format((struct sockaddr *)&cfg->cand[i].addr, ep, sizeof ep), cfg->cand[i].kind);
    ss->punch = punch_start(c->loop, cfg, ss->link, ctl_punch_done, ss, err, sizeof err);
    if (!ss->punch) {
        ctl_sess_abandon(ss, EXIT_LOCAL, err);
        return;
    }
    if (relay)
        ctl_relay_start(ss, m);
    ctl_pend_route(c);
}

static void ctl_on_error(struct ctl *c, const struct proto_msg *m)
{
    const char *code = m->u.error.code;
    char msg[500]; /* ctl_fail prints it into 512 bytes */
    if (c->state == CTL_PUNCHING) {
        LOG_I("server: %s (%s)", m->u.error.message, code);
        return;
    }
    if (strcmp(code, "peer-not-found") == 0) {
        /* a cluster says more than "not here" (an instance down, Redis unreachable): keep it */
        bool plain = strstr(m->u.error.message, "is not registered on") != NULL;
        snprintf(msg, sizeof msg,
                 "%s is not registered on %s%s%.200s%s: is `tcpunch listen` (or `receive`) "
                 "running there with --id %s?",
                 c->target ? c->target : "the peer", c->name, plain ? "" : " (",
                 plain ? "" : m->u.error.message, plain ? "" : ")",
                 c->target ? c->target : "ID");
        ctl_fail(c, EXIT_NO_PEER, "%s%s", msg, "");
        return;
    }
    if (strcmp(code, "no-path") == 0) {
        snprintf(msg, sizeof msg, "no path to %s: %s", c->target ? c->target : "the peer",
                 m->u.error.message);
        ctl_fail(c, EXIT_PUNCH, "%s%s", msg, "");
        return;
    }
    if (c->aux && c->state == CTL_HELLO && strcmp(code, "bad-field") == 0) {
        /* a server from before auxiliary connections: register the usual way instead */
        LOG_I("the server %s does not take auxiliary connections; registering as %s", c->name,
              c->o->id);
        c->aux_refused = c->retry = true;
        ctl_end(c, EXIT_SERVER);
        return;
    }
    if (strcmp(code, "id-taken") == 0 && !c->was_registered) {
        snprintf(msg, sizeof msg, "the id \"%s\" is already online on %s; choose another with --id",
                 c->o->id, c->name);
        ctl_fail(c, EXIT_SERVER, "%s%s", msg, "");
        return;
    }
    snprintf(msg, sizeof msg, "server %s refused: %s (%s)", c->name, m->u.error.message, code);
    /* waiting for a challenge that never came: an older server, not a passing state */
    if (fo_transient(code, c->was_registered) &&
        !(c->state == CTL_CHALLENGE && strcmp(code, "hello-timeout") == 0))
        ctl_lost(c, "%s%s", msg, "");
    else
        ctl_fail(c, EXIT_SERVER, "%s%s", msg, "");
}

static void ctl_on_timer(uv_timer_t *t)
{
    struct ctl *c = t->data;
    struct proto_msg m;
    uint64_t interval = (uint64_t)c->keepalive_s * 1000 / 3;

    switch (c->state) {
    case CTL_CONNECTING:
        ctl_lost(c, "cannot reach the server %s: %s", c->name, "timed out");
        break;
    case CTL_CHALLENGE:
        /* it is sent on accept: a server that stays silent does not speak this protocol (or
         * hangs); a list has others */
        if (c->multi) {
            ctl_lost(c, "the server %s sent no challenge within %s", c->name, "10 s");
            break;
        }
        ctl_fail(c, EXIT_SERVER,
                 "the server %s sent no challenge within %s (an older tcpunch-rendezvous?)",
                 c->name, "10 s");
        break;
    case CTL_HELLO:
    case CTL_ASKED:
        ctl_lost(c, "the server %s did not answer within %s", c->name, "10 s");
        break;
    case CTL_WAITING:
        if (clk_ms() - c->last_rx_ms > 2 * interval + 5000) {
            ctl_lost(c, "the server %s stopped answering%s", c->name, "");
            break;
        }
        memset(&m, 0, sizeof m);
        m.type = PROTO_PING;
        m.u.ping.seq = ++c->ping_seq;
        ctl_send(c, &m);
        break;
    default:
        break;
    }
}

static void ctl_send_connect(struct ctl *c)
{
    struct proto_msg req;
    memset(&req, 0, sizeof req);
    req.type = PROTO_CONNECT;
    snprintf(req.u.connect.target, sizeof req.u.connect.target, "%s", c->target);
    ctl_send(c, &req);
}

/* connect goes out once both probes have ended: the server then knows our mapping and our
 * IPv6 endpoint when it pairs us */
static void ctl_probes_over(struct ctl *c)
{
    if (c->connect_waiting && !c->probe && !c->probe6 && c->state == CTL_ASKED) {
        c->connect_waiting = false;
        ctl_send_connect(c);
    }
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
                          c->o->have_secret ? c->o->secret : NULL, PRB_TIMEOUT_MS,
                          ctl_probe6_done, c, err, sizeof err);
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
    c->probe = prb_start(c->loop, (const struct sockaddr *)&c->local, (const struct sockaddr *)&to,
                         m->u.welcome.probe_token, c->o->have_secret ? c->o->secret : NULL,
                         PRB_TIMEOUT_MS, ctl_probe_done, c, err, sizeof err);
    if (!c->probe)
        LOG_I("probe not started, going on without it: %s", err);
    ctl_probe6_start(c, m);
}

/* Which session an inbound connection on the shared port belongs to: the one dialling that
 * exact endpoint, else the only one dialling that host. Anything else is closed before a byte
 * is written: a connection from a host that is none of the peers' is not a peer (a NAT may
 * change the port, not the address), and our shake would tell a stranger the session. */
static struct ctl_sess *ctl_route(struct ctl *c, const struct sockaddr *from)
{
    struct ctl_sess *host = NULL;
    int nhost = 0;
    for (struct ctl_sess *ss = c->sess; ss; ss = ss->next) {
        bool same_host = false;
        if (!ss->punch || ss->cfg.relay_only)
            continue;
        for (int i = 0; i < ss->cfg.ncand; i++) {
            const struct sockaddr *cand = (const struct sockaddr *)&ss->cfg.cand[i].addr;
            if (ep_equal(cand, from))
                return ss;
            same_host = same_host || ep_same_host(cand, from);
        }
        if (same_host) {
            host = ss;
            nhost++;
        }
    }
    return nhost == 1 ? host : NULL;
}

/* Pending connections that a new session has a candidate for go to it. */
static void ctl_pend_route(struct ctl *c)
{
    for (int i = 0; i < c->npend;) {
        struct ctl_sess *ss = ctl_route(c, (const struct sockaddr *)&c->pend[i].from);
        int fd = c->pend[i].fd;
        if (!ss) {
            i++;
            continue;
        }
        ctl_pend_take(c, i);
        punch_adopt(ss->punch, fd, "inbound");
    }
}

static void ctl_on_pend_timer(uv_timer_t *t)
{
    struct ctl *c = t->data;
    uint64_t now = clk_ms();
    for (int i = 0; i < c->npend;) {
        if (now - c->pend[i].ms < CTL_PENDING_MS) {
            i++;
            continue;
        }
        ctl_rst_close(c->pend[i].fd);
        ctl_pend_take(c, i);
    }
}

/* No session expects fd (yet): hold it a moment, or reset it. */
static void ctl_pend_add(struct ctl *c, int fd, const struct sockaddr_storage *from)
{
    char ep[EP_STRLEN];
    if (c->state == CTL_DONE || c->npend >= CTL_PENDING) {
        LOG_D("resetting an inbound connection from %s: no session has a candidate there",
              ep_format((const struct sockaddr *)from, ep, sizeof ep));
        ctl_rst_close(fd);
        return;
    }
    c->pend[c->npend].fd = fd;
    c->pend[c->npend].from = *from;
    c->pend[c->npend].ms = clk_ms();
    if (c->npend++ == 0)
        uv_timer_start(&c->pend_timer, ctl_on_pend_timer, 200, 200);
}

/* The listener is polled, not uv_listen'ed: libuv would accept on its own and hold the
 * connection in its handle, while the sessions' engines take plain descriptors. */
static void ctl_on_inbound(uv_poll_t *h, int status, int events)
{
    struct ctl *c = h->data;
    struct sockaddr_storage from;
    struct ctl_sess *ss;
    uv_os_fd_t lfd;

    (void)events;
    if (status < 0 || uv_fileno((uv_handle_t *)h, &lfd) != 0)
        return;
    for (int n = 0; n < 64; n++) { /* bounded: the loop has other work */
        socklen_t alen = sizeof from;
        int fd = accept4(lfd, (struct sockaddr *)&from, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        ep_unmap(&from);
        ss = ctl_route(c, (const struct sockaddr *)&from);
        if (!ss) {
            ctl_pend_add(c, fd, &from);
            continue;
        }
        punch_adopt(ss->punch, fd, "inbound");
    }
}

static void ctl_lst_closed(uv_handle_t *h)
{
    struct ctl *c = h->data;
    close(c->lst_fd[(uv_poll_t *)h - c->lst]);
}

static void ctl_listen_on(struct ctl *c, const struct sockaddr_storage *local)
{
    char err[200];
    uv_poll_t *l = &c->lst[c->nlst];
    int fd = sk_listen_reuse((const struct sockaddr *)local, 64, err, sizeof err);
    if (fd < 0) {
        LOG_D("no listener on the punch port: %s", err);
        return;
    }
    if (uv_poll_init(c->loop, l, fd) < 0) {
        close(fd);
        return;
    }
    l->data = c;
    c->lst_fd[c->nlst++] = fd;
    uv_poll_start(l, UV_READABLE, ctl_on_inbound);
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
    if (c->o->path == PROTO_PATH_RELAY && !m->u.welcome.relay) {
        ctl_fail(c, EXIT_PUNCH, "the server %s does not relay, and --relay-only needs its relay%s",
                 c->name, "");
        return;
    }
    /* with a list, which server took us is worth saying at the default verbosity */
    log_msg(c->multi ? LOG_NOTE : LOG_INFO, "registered as %s on %s, public endpoint %s",
            m->u.welcome.id, c->name,
            ep_format((const struct sockaddr *)&m->u.welcome.observed, ep, sizeof ep));
    ev_registered(c->o, c->name, m);
    ctl_probe_start(c, m);
    if (c->mode != CTL_ONE) {
        ctl_listen_on(c, &c->local);
        if (c->local6.ss_family == AF_INET6)
            ctl_listen_on(c, &c->local6);
    }
    if (!c->target) {
        c->state = CTL_WAITING;
        LOG_I("waiting for a peer to connect to %s", c->o->id);
        /* ping often enough that the server never sees us silent for a whole keepalive */
        uv_timer_start(&c->timer, ctl_on_timer, (uint64_t)c->keepalive_s * 1000 / 3,
                       (uint64_t)c->keepalive_s * 1000 / 3);
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

static int ctl_on_line(void *arg, char *line, size_t len)
{
    struct ctl *c = arg;
    struct proto_msg m;
    char why[300];
    enum proto_err e = proto_decode(line, len, PROTO_TO_PEER, &m, why, sizeof why);
    if (e != PROTO_OK) {
        ctl_fail(c, EXIT_SERVER, "the server sent an invalid message (%s): %s", proto_err_code(e),
                 why);
        return 1;
    }
    switch (m.type) {
    case PROTO_CHALLENGE:
        if (c->state == CTL_CHALLENGE) {
            c->state = CTL_HELLO;
            ctl_send_hello(c, m.u.challenge.nonce);
        } else {
            LOG_W("ignoring an unexpected challenge");
        }
        break;
    case PROTO_WELCOME:
        ctl_on_welcome(c, &m);
        break;
    case PROTO_PUNCH:
        ctl_on_punch(c, &m);
        break;
    case PROTO_ERROR:
        ctl_on_error(c, &m);
        break;
    case PROTO_PING:
        m.type = PROTO_PONG;
        ctl_send(c, &m);
        break;
    default: /* pong: liveness is already noted */
        break;
    }
    return c->state == CTL_DONE;
}

static ssize_t ctl_recv(struct ctl *c)
{
    return stamp_recv(c->fd, c->rbuf, sizeof c->rbuf, &c->rx_us);
}

static void ctl_on_readable(struct ctl *c)
{
    ssize_t n = ctl_recv(c);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        if (c->state == CTL_PUNCHING) {
            /* the server is no longer needed for this session */
            ctl_close(c);
            return;
        }
        ctl_lost(c, "lost the connection to the server %s: %s", c->name,
                 n == 0 ? "closed by the server" : strerror(errno));
        return;
    }
    c->last_rx_ms = clk_ms();
    if (lb_feed(&c->lb, c->rbuf, (size_t)n, ctl_on_line, c) < 0)
        ctl_fail(c, EXIT_SERVER, "the server %s sent a line over %s bytes", c->name, "4096");
}

static void ctl_on_connected(struct ctl *c)
{
    char ep[EP_STRLEN];
    int err = 0, one = 1, port;
    socklen_t elen = sizeof err;

    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err) {
        ctl_unreachable(c, strerror(err));
        return;
    }
    sk_local(c->fd, &c->local);
    LOG_D("connected to %s from %s", c->name,
          ep_format((struct sockaddr *)&c->local, ep, sizeof ep));
    /* punch sockets share the port on the wildcard address, like the control socket */
    port = ep_port((struct sockaddr *)&c->local);
    memset(&c->local, 0, sizeof c->local);
    c->local.ss_family = c->server.ss_family;
    ep_set_port((struct sockaddr *)&c->local, port);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    /* the server speaks first: hello answers its challenge */
    c->state = CTL_CHALLENGE;
    c->last_rx_ms = clk_ms();
    uv_timer_start(&c->timer, ctl_on_timer, CTL_ANSWER_TIMEOUT_MS, 0);
    uv_poll_start(&c->poll, UV_READABLE, ctl_on_poll);
}

static void ctl_on_poll(uv_poll_t *h, int status, int events)
{
    struct ctl *c = h->data;
    if (c->state == CTL_DONE)
        return;
    if (c->state == CTL_CONNECTING) {
        if (status < 0 || (events & UV_WRITABLE))
            ctl_on_connected(c);
        return;
    }
    ctl_on_readable(c);
}

static int ctl_open(struct ctl *c)
{
    char err[300];
    struct sockaddr_storage any;

    memset(&any, 0, sizeof any);
    any.ss_family = c->server.ss_family;
    ep_set_port((struct sockaddr *)&any, c->o->port);
    c->fd = sk_open_bound((struct sockaddr *)&any, err, sizeof err);
    if (c->fd < 0) {
        LOG_E("cannot use local port %d: %s", c->o->port, err);
        return EXIT_LOCAL;
    }
    if (connect(c->fd, (struct sockaddr *)&c->server, ep_len((struct sockaddr *)&c->server)) < 0 &&
        errno != EINPROGRESS) {
        ctl_unreachable(c, strerror(errno));
        return EXIT_SERVER;
    }
    if (uv_poll_init(c->loop, &c->poll, c->fd) < 0) {
        LOG_E("cannot watch the server connection");
        return EXIT_LOCAL;
    }
    c->poll.data = c;
    c->poll_open = true;
    uv_poll_start(&c->poll, UV_WRITABLE, ctl_on_poll);
    uv_timer_start(&c->timer, ctl_on_timer,
                   c->multi ? CTL_CONNECT_TIMEOUT_LIST_MS : CTL_CONNECT_TIMEOUT_MS, 0);
    return EXIT_DONE;
}

/* What every attempt of one command is given (the failover's callback data). */
struct ctl_run {
    const struct peer_opts *o;
    const char *target;
    struct peer_link *link;
    enum ctl_mode mode;
    const struct peer_serve *serve; /* CTL_SERVE's callbacks, CTL_WAIT's optional hooks */
    bool aux;                       /* register as an auxiliary connection (hello.aux) */
    bool may_retry;                 /* listen or chat without a peer, and no --no-retry */
};

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
    c->o = run->o;
    c->target = run->target;
    c->mode = run->mode;
    c->serve = run->serve;
    c->aux = run->aux;
    c->link = link;
    c->state = CTL_CONNECTING;
    c->fd = -1;
    c->may_retry = run->may_retry;
    c->was_registered = was_registered;
    c->server = s->addr;
    c->name = s->name;
    c->multi = multi;
    c->loop = loop;
    lb_init(&c->lb);
    uv_timer_init(c->loop, &c->timer);
    c->timer.data = c;
    uv_timer_init(c->loop, &c->pend_timer);
    c->pend_timer.data = c;
    out->rc = ctl_open(c);
    if (out->rc != EXIT_DONE)
        ctl_end(c, out->rc);
    /* the loop runs this attempt alone: it returns when the attempt is over */
    uv_run(c->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&c->timer, NULL);
    uv_close((uv_handle_t *)&c->pend_timer, NULL);
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
    struct ctl_run run = {.o = o, .target = target, .link = link, .mode = CTL_ONE};
    return ctl_run_all(&run);
}

int peer_wait(const struct peer_opts *o, const struct peer_serve *hooks, struct peer_link *link)
{
    struct ctl_run run = {
        .o = o, .link = link, .mode = CTL_WAIT, .serve = hooks, .may_retry = !o->no_retry};
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
    struct ctl_run run = {.o = o, .target = target, .link = link, .mode = CTL_ONE, .aux = true};
    return ctl_run_all(&run);
}

int peer_serve(const struct peer_opts *o, const struct peer_serve *sv)
{
    struct ctl_run run = {
        .o = o, .mode = CTL_SERVE, .serve = sv, .may_retry = !o->no_retry};
    return ctl_run_all(&run);
}
