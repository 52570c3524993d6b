/* The control connection to the rendezvous: register, ask for a peer, wait for the punch order,
 * then hand over to the punch engine. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "common/clock.h"
#include "common/endpoint.h"
#include "common/linebuf.h"
#include "common/log.h"
#include "common/sock.h"
#include "peer/events.h"
#include "peer/hello.h"
#include "peer/peer.h"
#include "peer/probe.h"
#include "peer/punch.h"
#include "peer/relay.h"
#include "peer/trust.h"

#define CTL_CONNECT_TIMEOUT_MS 10000
#define CTL_ANSWER_TIMEOUT_MS 10000
/* listen's reconnect back-off: doubling from MIN up to MAX, each wait spread by +-20% */
#define CTL_RETRY_MIN_MS 1000
#define CTL_RETRY_MAX_MS 30000

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

struct ctl {
    uv_loop_t loop;
    const struct peer_opts *o;
    const char *target;
    struct peer_link *link;
    struct sockaddr_storage server;
    struct sockaddr_storage local;
    struct sockaddr_storage local6; /* [::]:P when IPv6 candidates are offered, else zero */
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
    struct shake_ctx shake;
    struct prb *probe;    /* the NAT probe while it runs */
    bool connect_waiting; /* connect goes out once the probe is done */
    enum proto_nat nat;   /* our mapping, as the probe showed */
    struct punch *punch;  /* while punching */
    struct rl *relay;     /* the relay attempt, until it joined or failed */
    bool relay_only;      /* this session makes no direct attempt */
    char relay_note[400]; /* what became of the relay path, for a failure message */
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

static void ctl_end(struct ctl *c, int result)
{
    if (c->state == CTL_DONE)
        return;
    c->state = CTL_DONE;
    c->result = result;
    uv_timer_stop(&c->timer);
    prb_cancel(c->probe);
    c->probe = NULL;
    rl_cancel(c->relay);
    c->relay = NULL;
    ctl_close(c);
}

static void ctl_fail(struct ctl *c, int result, const char *fmt, const char *a, const char *b)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, a, b);
    LOG_E("%s", msg);
    ctl_end(c, result);
}

/* The server is down, went away or turned us away for now. listen waits for it (another
 * attempt follows; peer_rendezvous says when), everyone else fails. */
static void ctl_lost(struct ctl *c, const char *fmt, const char *a, const char *b)
{
    char msg[512];
    if (!c->may_retry) {
        ctl_fail(c, EXIT_SERVER, fmt, a, b);
        return;
    }
    snprintf(msg, sizeof msg, fmt, a, b);
    LOG_W("%s", msg);
    c->retry = true;
    ctl_end(c, EXIT_SERVER);
}

static int ctl_send(struct ctl *c, const struct proto_msg *m)
{
    char line[PROTO_MAX_LINE];
    int n = proto_encode(m, line, sizeof line);
    /* control lines are tiny and rare: the socket buffer takes them whole */
    if (n <= 0 || c->fd < 0 || send(c->fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
        ctl_lost(c, "cannot send to the server %s%s", c->o->server, "");
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
    hello_sign(c->o, nonce, &m);
    /* a server on loopback means everybody is on this host: LAN addresses add nothing */
    if (!ep_is_loopback((struct sockaddr *)&c->server)) {
        struct proto_eplist *l = &m.u.hello.endpoints;
        /* global IPv6 first: an IPv4 host may have many LAN addresses, and those only help
         * behind the same NAT, while a global IPv6 address is a path from anywhere */
        l->n = punch_local6(&c->local, &c->local6, l->ep, 2);
        l->n += sk_local_addrs(c->local.ss_family, ep_port((struct sockaddr *)&c->local),
                               l->ep + l->n, PROTO_MAX_ENDPOINTS - l->n);
    }
    ctl_send(c, &m);
}

static void ctl_punch_done(struct punch *p, int status, const char *why, void *arg)
{
    struct ctl *c = arg;
    char note[400];
    (void)p;
    c->punch = NULL;
    if (c->relay)
        rl_describe(c->relay, note, sizeof note);
    else
        snprintf(note, sizeof note, "%s", c->relay_note);
    shake_wipe(&c->shake);
    if (status == EXIT_DONE)
        trust_record(&c->shake.trust, c->link->peer_pk);
    if (status != EXIT_DONE && c->relay_only)
        LOG_E("punch to %s failed: relay: %s; direct skipped: %s", c->shake.peer, note,
              c->link->direct_why);
    else if (status != EXIT_DONE)
        LOG_E("punch to %s failed: direct: %s; relay: %s", c->shake.peer, why, note);
    ctl_end(c, status);
}

static void ctl_relay_done(struct rl *r, int status, const char *why, int fd, const char *pre,
                           size_t prelen, void *arg)
{
    struct ctl *c = arg;
    (void)r;
    c->relay = NULL;
    if (status == EXIT_DONE) {
        snprintf(c->relay_note, sizeof c->relay_note, "joined, but no handshake through it");
        if (!c->punch)
            close(fd);
        else
            punch_adopt(c->punch, fd, "relay", pre, prelen);
        return;
    }
    snprintf(c->relay_note, sizeof c->relay_note, "%s", why);
    if (c->relay_only && c->punch)
        punch_abort(c->punch, status, why);
    else
        LOG_W("%s; still trying direct", why);
}

/* What this session tries: direct attempts, the relay, or both. Returns 1 when the relay is
 * used, 0 when not, -1 after failing c (no path at all). */
static int ctl_plan(struct ctl *c, const struct proto_msg *m, struct punch_cfg *cfg)
{
    bool relay = m->u.punch.relay && c->o->path != PROTO_PATH_DIRECT;
    const char *skip = NULL;
    if (m->u.punch.no_direct)
        skip = m->u.punch.reason[0] ? m->u.punch.reason : "the server says there is no direct path";
    else if (c->o->path == PROTO_PATH_RELAY)
        skip = "--relay-only";
    snprintf(c->relay_note, sizeof c->relay_note, "%s",
             c->o->path == PROTO_PATH_DIRECT ? "not used (--no-relay)"
             : !relay                        ? "not offered by the server"
                                             : "not tried");
    if (skip && !relay) {
        ctl_fail(c, EXIT_PUNCH, "no path to %s: direct skipped (%s), relay not offered",
                 m->u.punch.peer, skip);
        return -1;
    }
    if (skip) {
        cfg->relay_only = true;
        snprintf(c->link->direct_why, sizeof c->link->direct_why, "%.200s", skip);
    }
    c->relay_only = cfg->relay_only;
    return relay;
}

/* The relay goes to the address the control connection uses, from a fresh ephemeral port. */
static void ctl_relay_start(struct ctl *c, const struct proto_msg *m)
{
    char err[200];
    uint64_t delay = c->relay_only ? 0 : c->o->direct_timeout_ms;
    c->relay = rl_start(&c->loop, (const struct sockaddr *)&c->server, m->u.punch.session,
                        m->u.punch.token, c->o->have_secret ? c->o->secret : NULL, delay,
                        ctl_relay_done, c, err, sizeof err);
    if (c->relay)
        return;
    snprintf(c->relay_note, sizeof c->relay_note, "%s", err);
    if (c->relay_only)
        punch_abort(c->punch, EXIT_LOCAL, err);
}

static void ctl_on_punch(struct ctl *c, const struct proto_msg *m)
{
    struct punch_cfg cfg;
    char ep[EP_STRLEN], err[200];
    int relay;

    if (c->state == CTL_PUNCHING) {
        LOG_W("ignoring a second punch order (from %s): already connecting", m->u.punch.peer);
        return;
    }
    if (c->target && strcmp(m->u.punch.peer, c->target) != 0) {
        LOG_W("ignoring a punch order for %s while asking for %s", m->u.punch.peer, c->target);
        return;
    }
    c->state = CTL_PUNCHING;
    uv_timer_stop(&c->timer);
    memset(&cfg, 0, sizeof cfg);
    if ((relay = ctl_plan(c, m, &cfg)) < 0)
        return;
    cfg.local = c->local;
    cfg.local6 = c->local6;
    cfg.timeout_ms = c->o->timeout_ms;
    /* the server timed both orders to arrive together: aim both first SYNs at the same moment
     * after the kernel's arrival stamp, leaving time to get ready */
    cfg.start_us = c->rx_us + (m->u.punch.start_in_us >= 0 ? (uint64_t)m->u.punch.start_in_us
                                                           : PROTO_DEFAULT_START_IN_US);
    if (!cfg.relay_only)
        punch_candidates(&cfg, &m->u.punch.observed, &m->u.punch.endpoints, &c->observed);
    memcpy(c->shake.session, m->u.punch.session, sizeof c->shake.session);
    memcpy(c->shake.self, c->o->id, sizeof c->shake.self);
    memcpy(c->shake.peer, m->u.punch.peer, sizeof c->shake.peer);
    c->shake.role = m->u.punch.role;
    c->shake.ident = c->o->ident;
    shake_init(&c->shake);
    if (trust_prepare(c->o, m->u.punch.peer, m->u.punch.has_key ? m->u.punch.key : NULL,
                      &c->shake.trust) != EXIT_DONE) {
        ctl_end(c, EXIT_LOCAL);
        return;
    }
    cfg.shake = &c->shake;
    memcpy(c->link->peer, m->u.punch.peer, sizeof c->link->peer);
    LOG_I("punching to %s at %s (%d candidate%s, %s)", m->u.punch.peer,
          ep_format((const struct sockaddr *)&m->u.punch.observed, ep, sizeof ep), cfg.ncand,
          cfg.ncand == 1 ? "" : "s",
          m->u.punch.role == PROTO_INITIATOR ? "initiator" : "responder");
    ev_punching(c->o, m, &cfg);
    for (int i = 0; i < cfg.ncand; i++)
        LOG_D("candidate %d: %s (%s)", i,
              ep_format((struct sockaddr *)&cfg.cand[i].addr, ep, sizeof ep), cfg.cand[i].kind);
    c->punch = punch_start(&c->loop, &cfg, c->link, ctl_punch_done, c, err, sizeof err);
    if (!c->punch)
        ctl_fail(c, EXIT_LOCAL, "%s%s", err, "");
    else if (relay)
        ctl_relay_start(c, m);
}

/* Refusals that go away by themselves. id-taken is one only after we had the id: our own
 * previous connection may still hold it until the server notices that it is gone. Everything
 * else (id-owned, not-authorized, not-admitted, protocol errors) would fail again. */
static bool ctl_transient(const char *code, bool was_registered)
{
    static const char *const codes[] = {
        "server-shutdown",      "keepalive-timeout", "hello-timeout", "server-full",
        "too-many-connections", "rate-limited",      "overloaded",    "internal"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(code, codes[i]) == 0)
            return true;
    return was_registered && strcmp(code, "id-taken") == 0;
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
        snprintf(msg, sizeof msg,
                 "%s is not registered on %s: is `tcpunch listen` running there with --id %s?",
                 c->target ? c->target : "the peer", c->o->server, c->target ? c->target : "ID");
        ctl_fail(c, EXIT_NO_PEER, "%s%s", msg, "");
        return;
    }
    if (strcmp(code, "no-path") == 0) {
        snprintf(msg, sizeof msg, "no path to %s: %s", c->target ? c->target : "the peer",
                 m->u.error.message);
        ctl_fail(c, EXIT_PUNCH, "%s%s", msg, "");
        return;
    }
    if (strcmp(code, "id-taken") == 0 && !c->was_registered) {
        snprintf(msg, sizeof msg, "the id \"%s\" is already online on %s; choose another with --id",
                 c->o->id, c->o->server);
        ctl_fail(c, EXIT_SERVER, "%s%s", msg, "");
        return;
    }
    snprintf(msg, sizeof msg, "server %s refused: %s (%s)", c->o->server, m->u.error.message, code);
    /* waiting for a challenge that never came: an older server, not a passing state */
    if (ctl_transient(code, c->was_registered) &&
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
        ctl_lost(c, "cannot reach the server %s: %s", c->o->server, "timed out");
        break;
    case CTL_CHALLENGE:
        /* it is sent on accept: a server that stays silent does not speak this protocol */
        ctl_fail(c, EXIT_SERVER,
                 "the server %s sent no challenge within %s (an older tcpunch-rendezvous?)",
                 c->o->server, "10 s");
        break;
    case CTL_HELLO:
    case CTL_ASKED:
        ctl_lost(c, "the server %s did not answer within %s", c->o->server, "10 s");
        break;
    case CTL_WAITING:
        if (clk_ms() - c->last_rx_ms > 2 * interval + 5000) {
            ctl_lost(c, "the server %s stopped answering%s", c->o->server, "");
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
    if (c->connect_waiting && c->state == CTL_ASKED) {
        c->connect_waiting = false;
        ctl_send_connect(c);
    }
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
    c->probe = prb_start(&c->loop, (const struct sockaddr *)&c->local, (const struct sockaddr *)&to,
                         m->u.welcome.probe_token, c->o->have_secret ? c->o->secret : NULL,
                         PRB_TIMEOUT_MS, ctl_probe_done, c, err, sizeof err);
    if (!c->probe)
        LOG_I("probe not started, going on without it: %s", err);
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
                 c->o->server, "");
        return;
    }
    LOG_I("registered as %s on %s, public endpoint %s", m->u.welcome.id, c->o->server,
          ep_format((const struct sockaddr *)&m->u.welcome.observed, ep, sizeof ep));
    ev_registered(c->o, m);
    ctl_probe_start(c, m);
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
    if (c->probe)
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

/* Converts a CLOCK_REALTIME receive stamp to our monotonic clock. */
static uint64_t ctl_stamp_to_mono(const struct timespec *rx)
{
    struct timespec real;
    uint64_t now = clk_us(), rx_real, real_now;
    clock_gettime(CLOCK_REALTIME, &real);
    rx_real = (uint64_t)rx->tv_sec * 1000000u + (uint64_t)rx->tv_nsec / 1000u;
    real_now = (uint64_t)real.tv_sec * 1000000u + (uint64_t)real.tv_nsec / 1000u;
    if (rx_real > real_now || real_now - rx_real > now)
        return now;
    return now - (real_now - rx_real);
}

static ssize_t ctl_recv(struct ctl *c)
{
    char cbuf[CMSG_SPACE(sizeof(struct timespec))];
    struct iovec iov = {c->rbuf, sizeof c->rbuf};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT);
    c->rx_us = clk_us();
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); n > 0 && cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof ts);
            c->rx_us = ctl_stamp_to_mono(&ts);
        }
    return n;
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
        ctl_lost(c, "lost the connection to the server %s: %s", c->o->server,
                 n == 0 ? "closed by the server" : strerror(errno));
        return;
    }
    c->last_rx_ms = clk_ms();
    if (lb_feed(&c->lb, c->rbuf, (size_t)n, ctl_on_line, c) < 0)
        ctl_fail(c, EXIT_SERVER, "the server %s sent a line over %s bytes", c->o->server, "4096");
}

static void ctl_on_connected(struct ctl *c)
{
    char ep[EP_STRLEN];
    int err = 0, one = 1, port;
    socklen_t elen = sizeof err;

    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err) {
        ctl_lost(c, "cannot reach the server %s: %s", c->o->server, strerror(err));
        return;
    }
    sk_local(c->fd, &c->local);
    LOG_D("connected to %s from %s", c->o->server,
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
        ctl_lost(c, "cannot reach the server %s: %s", c->o->server, strerror(errno));
        return EXIT_SERVER;
    }
    if (uv_poll_init(&c->loop, &c->poll, c->fd) < 0) {
        LOG_E("cannot watch the server connection");
        return EXIT_LOCAL;
    }
    c->poll.data = c;
    c->poll_open = true;
    uv_poll_start(&c->poll, UV_WRITABLE, ctl_on_poll);
    uv_timer_start(&c->timer, ctl_on_timer, CTL_CONNECT_TIMEOUT_MS, 0);
    return EXIT_DONE;
}

/* What one attempt tells the next (peer_rendezvous). */
struct ctl_run {
    bool may_retry;      /* listen or chat without a peer, and no --no-retry */
    bool was_registered; /* some attempt so far got a welcome */
    bool registered;     /* the last attempt got a welcome */
    bool retry;          /* the last attempt ended in a way worth another */
};

/* One connection to the server: register, wait or ask, punch. */
static int ctl_attempt(const struct peer_opts *o, const char *target, struct peer_link *link,
                       struct ctl_run *run)
{
    struct ctl *c = calloc(1, sizeof *c);
    char err[300];
    int result;

    if (!c) {
        LOG_E("out of memory");
        return EXIT_LOCAL;
    }
    memset(link, 0, sizeof *link);
    link->fd = -1;
    c->o = o;
    c->target = target;
    c->link = link;
    c->state = CTL_CONNECTING;
    c->fd = -1;
    c->may_retry = run->may_retry;
    c->was_registered = run->was_registered;
    lb_init(&c->lb);
    if (ep_resolve(o->server, false, &c->server, err, sizeof err) < 0) {
        /* a name that does not resolve now may resolve later: the network may be coming up */
        log_msg(run->may_retry ? LOG_WARN : LOG_ERROR, "server %s", err);
        run->retry = run->may_retry;
        free(c);
        return EXIT_SERVER;
    }
    uv_loop_init(&c->loop);
    uv_timer_init(&c->loop, &c->timer);
    c->timer.data = c;
    result = ctl_open(c);
    if (result != EXIT_DONE)
        ctl_end(c, result);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&c->timer, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&c->loop) != 0)
        LOG_D("event loop still had handles at exit");
    result = c->result;
    run->registered = c->registered;
    run->retry = c->retry;
    free(c);
    if (result != EXIT_DONE && link->fd >= 0) {
        close(link->fd);
        link->fd = -1;
    }
    return result;
}

static void ctl_sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* listen waits out a server that is down or restarting: after each lost attempt it waits
 * 1 s, 2 s, 4 s ... at most 30 s (back to 1 s after a registration), spread by +-20% so that
 * the peers of a restarted server do not all come back in the same instant. */
int peer_rendezvous(const struct peer_opts *o, const char *target, struct peer_link *link)
{
    struct ctl_run run = {.may_retry = !target && !o->no_retry};
    uint64_t wait = CTL_RETRY_MIN_MS;
    for (;;) {
        uint64_t ms;
        int rc;
        run.registered = run.retry = false;
        rc = ctl_attempt(o, target, link, &run);
        if (!run.retry)
            return rc;
        if (run.registered) {
            run.was_registered = true;
            wait = CTL_RETRY_MIN_MS;
        }
        ms = wait - wait / 5 + randombytes_uniform((uint32_t)(wait * 2 / 5) + 1);
        LOG_N("reconnecting to the server %s in %.1f s", o->server, (double)ms / 1000.0);
        ctl_sleep_ms(ms);
        wait = wait * 2 > CTL_RETRY_MAX_MS ? CTL_RETRY_MAX_MS : wait * 2;
    }
}
