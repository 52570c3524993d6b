#include "peer/punch.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "common/addrpol.h"
#include "common/clock.h"
#include "common/container.h"
#include "common/endpoint.h"
#include "common/linebuf.h"
#include "common/log.h"
#include "common/queue.h"
#include "common/sock.h"

/* Retries after a refusal (RST) happen on a grid of slots counted from the moment the punch
 * order arrived, the same on both peers: slot k is at t0 + 5, 10, 20, 30, 50, 70, 110 ... ms
 * (gaps 5 ms doubling every two slots up to 100 ms). Behind routers that answer an early SYN
 * with RST the two SYNs must cross within one router-to-router trip; the server makes the
 * orders arrive together, and slots shared by both sides keep every retry as well aligned as the
 * first attempt, where retry timers counted from each failure would drift apart. */
#define PUNCH_SLOT_MIN_MS 5
#define PUNCH_SLOT_MAX_MS 100
#define PUNCH_SLOT_MARGIN_US 300
#define PUNCH_SPIN_US 150
/* Refused dials re-dial at once, up to this many times per slot. Where the routers are closer
 * to each other than the two peers' clocks are (microseconds apart in a lab, where the SYNs must
 * cross within a few µs), each re-dial reopens our NAT's mapping for one router round trip at a
 * new phase, and the other side's burst does the same: one of the pairs lands. */
#define PUNCH_BURST 6
/* A connection that completes TCP but not the handshake within the stall time is given up and
 * re-dialled: some NATs pass the SYNs of a simultaneous open and then lose track of the
 * connection (Linux conntrack, after a RST crossed the SYNs, lets our packets out
 * untranslated). The handshake needs about one round trip: the stall time is a few round
 * trips of the control connection plus room for one retransmission, within these bounds. */
#define PUNCH_STALL_MIN_MS 800
#define PUNCH_STALL_MAX_MS 2500
#define PUNCH_SWEEP_MS 250
/* Inbound connections handled at once by one engine (relayed ones aside): enough for every
 * candidate of the peer several times over, and a bound on the descriptors someone on the
 * peer's host can make us hold. */
#define PUNCH_MAX_INBOUND 16

enum pc_state {
    PC_IDLE,     /* attempt: no socket (waiting to dial) */
    PC_DIALING,  /* SYN sent */
    PC_OFFERED,  /* TCP up; waiting for the peer's first handshake line */
    PC_VERIFIED, /* initiator: valid responder shake, kept as a spare */
    PC_SELECTED, /* initiator: our shake sent, waiting for the confirm */
    PC_WON,
};

/* One outgoing attempt (per candidate, re-dialled after each failure) or one accepted
 * connection. */
struct pconn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_timer_t retry;
    struct punch *p;
    struct q node;    /* on the inbound list */
    int cand;         /* -1: accepted by the listener, or adopted */
    const char *kind; /* adopted: what it is ("relay", "birthday"); NULL otherwise */
    bool relayed;     /* adopted as the relay's connection: kind is the relay path's name */
    bool bday;        /* adopted from the birthday engine */
    int bday_index;   /* ... its socket or guess */
    enum pc_state state;
    bool tcp_open; /* tcp initialised and not yet closed */
    bool dead;     /* no more retries (bad handshake) */
    bool line_done;
    bool fin;          /* closed with a FIN, not aborted: its last line must reach the peer */
    uint64_t since_ms; /* entered OFFERED or SELECTED */
    unsigned slot;     /* next retry slot */
    unsigned burst;    /* refused re-dials since the slot */
    bool refused;      /* the last dial was answered with RST */
    bool spent;        /* its share of the punch budget is used up: no more dials */
    uint64_t slot_us;
    unsigned tries;
    int last_err;
    struct lb lb;
    struct shake_peer peer; /* what this connection showed of the peer */
    /* resume mode: this connection's copy of cfg.resume with its own ephemeral key (wiped at
     * close), and what the connection showed of the peer's attempt */
    struct rshake_ctx rctx;
    struct rshake_peer rpeer;
};

struct punch {
    uv_loop_t *loop;
    struct punch_cfg cfg;
    struct peer_link *link;
    punch_done_cb done;
    void *arg;
    uv_timer_t deadline;
    uv_timer_t sweep;
    uv_tcp_t listener[2]; /* on the shared port: IPv4 (or the control's family), IPv6 */
    int listening;
    bool finished;
    int handles; /* open libuv handles; the punch is freed when the last one closes */
    uint64_t start_ms;
    uint64_t t0_us;
    unsigned attempts;
    unsigned established; /* direct connections that completed TCP */
    bool pinned;
    cpu_set_t cpus; /* the affinity to restore after the punch */
    struct pconn *selected;
    struct pconn att[PUNCH_MAX_CAND];
    struct q inbound; /* accepted and adopted connections, newest first */
    int ninbound;     /* accepted connections on the inbound list (adopted relays not counted) */
    int nbday;                 /* birthday connections on the inbound list */
    unsigned bday_established; /* birthday connections adopted */
    char note[200];            /* birthday: what it came to (punch_note) */
    bool key_refused;          /* a connection showed a key we do not trust (and was dropped) */
    /* a code session's connection showed the trusted key with a signature that does not cover
     * our code exchange's binding (SHAKE_CODE): the punch ends with EXIT_CODE_FAILED */
    bool code_refused;
    /* one read of any connection: a handshake line and what follows it, at most; the peer's
     * data behind the winning line must fit link->prefill (checked below) */
    char rbuf[PROTO_MAX_LINE];
};

static void pu_dial(struct pconn *c);
static void pu_select_spare(struct punch *p);
static void pu_close_conn(struct pconn *c);
static int pr_on_line(void *ctx, char *line, size_t len);
static bool pr_send(struct pconn *c, enum rshake_type t);
static bool pr_begin(struct pconn *c);

/* Whether connections run a handshake (the shake, or the resume lines), not direct plain TCP. */
static bool pu_secure(const struct punch_cfg *cfg)
{
    return cfg->shake || cfg->resume;
}

/* The session's role, from whichever handshake runs (pu_secure). */
static enum proto_role pu_role(const struct punch_cfg *cfg)
{
    return cfg->shake ? cfg->shake->role : cfg->resume->role;
}

static void pu_on_retry(uv_timer_t *t)
{
    struct pconn *c = container_of(t, struct pconn, retry);
    uint64_t now = clk_us();
    if (c->slot_us > now && c->slot_us - now < 3000) {
        /* Under 3 ms of blocking, only while punching, buys slot precision of microseconds:
         * sleep to just short of the slot, then spin past the scheduler's wake-up delay. */
        if (c->slot_us - now > PUNCH_SPIN_US) {
            uint64_t wake = c->slot_us - PUNCH_SPIN_US;
            struct timespec ts = {.tv_sec = (time_t)(wake / 1000000),
                                  .tv_nsec = (long)(wake % 1000000) * 1000};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        }
        while (clk_us() < c->slot_us)
            ;
    }
    c->burst = 0;
    pu_dial(c);
}

static uint64_t pu_slot_offset_us(unsigned k)
{
    uint64_t off = 0;
    for (unsigned i = 0; i < k; i++) {
        uint64_t gap = (uint64_t)PUNCH_SLOT_MIN_MS << (i / 2);
        off += gap > PUNCH_SLOT_MAX_MS ? PUNCH_SLOT_MAX_MS : gap;
    }
    return off * 1000;
}

/* Arms the retry timer for the next slot that is still ahead of us. */
static void pu_schedule(struct pconn *c)
{
    struct punch *p = c->p;
    uint64_t now = clk_us();
    do {
        c->slot++;
        c->slot_us = p->t0_us + pu_slot_offset_us(c->slot);
    } while (c->slot_us < now + PUNCH_SLOT_MARGIN_US);
    /* the loop's timers tick in whole ms and fire late: wake a ms early, pu_on_retry waits the
     * rest */
    uint64_t ms = (c->slot_us - now) / 1000;
    uv_timer_start(&c->retry, pu_on_retry, ms > 1 ? ms - 1 : 0, 0);
}

static void pu_handle_closed(uv_handle_t *h)
{
    struct punch *p = h->data;
    if (--p->handles == 0 && p->finished)
        free(p);
}

static void pu_inbound_closed(uv_handle_t *h)
{
    struct pconn *c = container_of((uv_tcp_t *)h, struct pconn, tcp);
    struct punch *p = c->p;
    q_remove(&c->node);
    if (c->bday)
        p->nbday--;
    else if (!c->kind)
        p->ninbound--;
    lb_free(&c->lb);
    free(c);
    if (--p->handles == 0 && p->finished)
        free(p);
}

static void pu_attempt_closed(uv_handle_t *h)
{
    struct pconn *c = container_of((uv_tcp_t *)h, struct pconn, tcp);
    struct punch *p = c->p;
    /* a started line (the answerer sent half of one and closed) holds the framer's buffer, and
     * the next dial from this pconn starts with lb_init */
    lb_free(&c->lb);
    if (!p->finished && !c->dead && !c->spent) {
        /* bursts only where the server saw the endpoint: they are for NATs that answer early
         * SYNs with RST, and a self-declared endpoint may be anybody's host */
        if (c->refused && c->burst < PUNCH_BURST && !p->cfg.cand[c->cand].declared) {
            c->burst++;
            pu_dial(c);
        } else {
            pu_schedule(c);
        }
    }
    pu_handle_closed(h);
}

static void pu_close_conn(struct pconn *c)
{
    struct punch *p = c->p;
    if (!c->tcp_open)
        return;
    if (c->state >= PC_OFFERED && c->state != PC_WON && !c->fin) {
        /* Abort rather than close: a FIN would leave the 4-tuple in TIME_WAIT for a minute,
         * and it is the very tuple the next attempt must use. */
        struct linger lg = {1, 0};
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    c->tcp_open = false;
    c->fin = false;
    c->state = PC_IDLE;
    if (p->cfg.resume) /* the ephemeral secret of this connection's attempt */
        rshake_wipe(&c->rctx);
    uv_close((uv_handle_t *)&c->tcp, c->cand < 0 ? pu_inbound_closed : pu_attempt_closed);
    if (p->selected == c) {
        p->selected = NULL;
        if (!p->finished)
            pu_select_spare(p);
    }
}

static const char *pu_kind(const struct pconn *c)
{
    if (c->kind)
        return c->kind;
    return c->cand < 0 ? "inbound" : c->p->cfg.cand[c->cand].kind;
}

/* What our own candidates came to, for the report of a relayed connection. */
static void pu_cand_text(const struct punch *p, char *buf, size_t len)
{
    double secs = (double)(clk_ms() - p->start_ms) / 1000.0;
    if (p->cfg.ncand == 0)
        snprintf(buf, len, "no usable candidate address");
    else if (p->attempts == 0)
        snprintf(buf, len, "the relay won before the first SYN");
    else if (p->established)
        snprintf(buf, len, "connected %u time%s but no handshake in %.1f s (%u attempt%s)",
                 p->established, p->established == 1 ? "" : "s", secs, p->attempts,
                 p->attempts == 1 ? "" : "s");
    else
        snprintf(buf, len, "no SYN got through in %.1f s (%u attempt%s)", secs, p->attempts,
                 p->attempts == 1 ? "" : "s");
}

/* Summarises why no candidate worked, for the user. */
static void pu_cand_failure(const struct punch *p, char *buf, size_t len)
{
    char ep[EP_STRLEN];
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < p->cfg.ncand && off < len; i++) {
        const struct pconn *c = &p->att[i];
        const char *what = c->last_err              ? uv_strerror(c->last_err)
                           : c->state >= PC_OFFERED ? "connected, but no handshake"
                                                    : "no answer";
        int n = snprintf(buf + off, len - off, "%s%s (%s): %s after %u attempt%s%s", i ? "; " : "",
                         ep_format((const struct sockaddr *)&p->cfg.cand[i].addr, ep, sizeof ep),
                         p->cfg.cand[i].kind, what, c->tries, c->tries == 1 ? "" : "s",
                         c->spent ? " (budget spent)" : "");
        if (n < 0)
            break;
        off += (size_t)n;
    }
    if (p->cfg.ncand == 0)
        snprintf(buf, len, "no usable candidate address%s",
                 p->cfg.nrefused ? " (the server's were refused, see -v)" : "");
}

/* A birthday punch's note, and what our candidates (IPv6 ones: the IPv4 ones are left out)
 * came to when there are any: own is pu_cand_text or pu_cand_failure. */
static void pu_with_note(const struct punch *p, char *buf, size_t len,
                         void (*own)(const struct punch *, char *, size_t))
{
    char cands[700], shook[80] = "";
    if (!p->cfg.birthday) {
        own(p, buf, len);
        return;
    }
    if (p->bday_established)
        snprintf(shook, sizeof shook, "; %u connection%s but no handshake", p->bday_established,
                 p->bday_established == 1 ? "" : "s");
    if (p->cfg.ncand == 0) {
        snprintf(buf, len, "%s%s", p->note, shook);
        return;
    }
    own(p, cands, sizeof cands);
    snprintf(buf, len, "%s%s; %s", p->note, shook, cands);
}

static void pu_direct_text(const struct punch *p, char *buf, size_t len)
{
    pu_with_note(p, buf, len, pu_cand_text);
}

static void pu_failure_text(const struct punch *p, char *buf, size_t len)
{
    pu_with_note(p, buf, len, pu_cand_failure);
}

/* When both peers run on one host (a NAT lab, two containers), a router-to-router trip takes
 * microseconds and a refused SYN is answered inside the sender's own connect() call: two peers
 * that the scheduler puts on one CPU then dial strictly one after the other, and every SYN meets
 * a NAT that the other SYN has not opened yet. Pinning the initiator to the first allowed CPU and
 * the responder to the last, for the punch only, lets the two dials run in parallel. Between
 * separate machines it changes nothing. */
static void pu_pin(struct punch *p, bool initiator)
{
    cpu_set_t one;
    int first = -1, last = -1;
    if (sched_getaffinity(0, sizeof p->cpus, &p->cpus) != 0 || CPU_COUNT(&p->cpus) < 2)
        return;
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &p->cpus)) {
            if (first < 0)
                first = i;
            last = i;
        }
    CPU_ZERO(&one);
    CPU_SET(initiator ? first : last, &one);
    p->pinned = sched_setaffinity(0, sizeof one, &one) == 0;
}

static void pu_unpin(struct punch *p)
{
    if (p->pinned)
        sched_setaffinity(0, sizeof p->cpus, &p->cpus);
    p->pinned = false;
}

static void pu_finish(struct punch *p, int status, const char *why)
{
    struct q *it;
    if (p->finished)
        return;
    p->finished = true;
    pu_unpin(p);
    p->done(p, status, why, p->arg);
    uv_close((uv_handle_t *)&p->deadline, pu_handle_closed);
    uv_close((uv_handle_t *)&p->sweep, pu_handle_closed);
    for (int i = 0; i < p->listening; i++)
        uv_close((uv_handle_t *)&p->listener[i], pu_handle_closed);
    for (int i = 0; i < p->cfg.ncand; i++) {
        uv_close((uv_handle_t *)&p->att[i].retry, pu_handle_closed);
        pu_close_conn(&p->att[i]);
    }
    q_foreach(it, &p->inbound)
        pu_close_conn(q_data(it, struct pconn, node));
}

/* The peer's data behind the winning handshake line goes to link->prefill, so the engine's
 * read buffer must never hold more than the prefill takes. */
_Static_assert(sizeof((struct punch *)0)->rbuf <= sizeof((struct peer_link *)0)->prefill,
               "a read of the punch engine must fit the link's prefill");

unsigned punch_attempts(const struct punch *p)
{
    return p ? p->attempts : 0;
}

static void pu_win(struct pconn *c, const char *rest, size_t restlen)
{
    struct punch *p = c->p;
    struct peer_link *l = p->link;
    uv_os_fd_t fd;
    socklen_t alen = sizeof l->remote;

    if (restlen > sizeof l->prefill) { /* cannot happen (see above); never copy past it */
        LOG_E("dropping a connection (%s): %zu bytes behind the handshake", pu_kind(c), restlen);
        c->dead = true;
        pu_close_conn(c);
        return;
    }

    /* the link outlives the libuv handle, which closes its own descriptor */
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 || (l->fd = dup(fd)) < 0) {
        pu_finish(p, EXIT_LOCAL, "cannot take over the connection (out of descriptors)");
        return;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    getpeername(l->fd, (struct sockaddr *)&l->remote, &alen);
    ep_unmap(&l->remote);
    l->via = pu_kind(c);
    l->punch_ms = clk_ms() - p->start_ms;
    l->attempts = p->attempts;
    l->relayed = c->relayed;
    l->birthday = c->bday;
    l->bday_n = c->bday ? c->bday_index + 1 : 0;
    if (l->relayed) {
        l->relay_server = l->remote;
        /* with no direct attempt the caller has put the reason in already */
        if (!p->cfg.relay_only)
            pu_direct_text(p, l->direct_why, sizeof l->direct_why);
    }
    /* rest is the tail of one read into p->rbuf (pu_alloc), which is never larger than the
     * prefill: everything the engine took off the socket fits, and what it did not read stays
     * in the socket for the pump. Nothing else ever reaches here (punch_adopt takes no bytes). */
    l->prefill_len = restlen;
    if (restlen)
        memcpy(l->prefill, rest, restlen);
    if (p->cfg.shake) {
        l->encrypted = true;
        memcpy(l->peer_pk, c->peer.key, sizeof l->peer_pk);
    }
    pu_finish(p, EXIT_DONE, NULL);
}

static bool pu_send(struct pconn *c, enum proto_type type)
{
    char line[PROTO_MAX_LINE];
    int n = shake_encode(c->p->cfg.shake, type, &c->peer, line, sizeof line);
    uv_buf_t b = uv_buf_init(line, n > 0 ? (unsigned)n : 0);
    /* the handshake is the first data on a fresh connection: its send buffer is empty, so a
     * short line goes out whole or not at all */
    return n > 0 && uv_try_write((uv_stream_t *)&c->tcp, &b, 1) == n;
}

/* Initiator: answer the responder's shake on c, making it the one connection we use. */
static void pu_select(struct pconn *c)
{
    struct punch *p = c->p;
    if (!(p->cfg.resume ? pr_send(c, RSHAKE_RESUME) : pu_send(c, PROTO_SHAKE))) {
        pu_close_conn(c);
        return;
    }
    c->state = PC_SELECTED;
    c->since_ms = clk_ms();
    p->selected = c;
}

static void pu_select_spare(struct punch *p)
{
    struct q *it;
    for (int i = 0; i < p->cfg.ncand; i++)
        if (p->att[i].state == PC_VERIFIED) {
            pu_select(&p->att[i]);
            return;
        }
    q_foreach(it, &p->inbound)
    {
        struct pconn *c = q_data(it, struct pconn, node);
        if (c->state == PC_VERIFIED) {
            pu_select(c);
            return;
        }
    }
}

/* The stream keys of the handshake's winner; when both shakes carried shake.resume, also the
 * link's session part (resume.md 4.1, 4.2): the roles, the root (this punch's session id), the
 * resumption secret, the effective timeout (the smaller one) and the peer's ring size. */
static int pu_keys(struct punch *p, const struct pconn *c)
{
    const struct shake_ctx *s = p->cfg.shake;
    struct peer_link *l = p->link;
    uint32_t t;
    if (!shake_resume_on(s, &c->peer))
        return shake_keys(s, &c->peer, l->tx_key, l->rx_key);
    if (shake_keys_rs(s, &c->peer, l->tx_key, l->rx_key, l->rs) < 0)
        return -1;
    t = s->resume.timeout < c->peer.resume.timeout ? s->resume.timeout : c->peer.resume.timeout;
    l->resume = true;
    l->role = s->role;
    memcpy(l->root, s->session, sizeof l->root);
    l->resume_ms = (uint64_t)t * 1000;
    l->peer_buf = c->peer.resume.buf;
    return 0;
}

/* A valid line arrived on c, of the shake or of a resume: the responder has answered it
 * (answered: its reply went out) and wins there; the initiator wins on its selected connection,
 * keeps c as a spare while another is selected, or selects it. */
static void pu_verified(struct pconn *c, bool initiator, bool answered)
{
    if (!initiator) {
        if (answered)
            c->state = PC_WON;
        else
            pu_close_conn(c);
    } else if (c->state == PC_SELECTED) {
        c->state = PC_WON;
    } else if (c->p->selected) {
        c->state = PC_VERIFIED;
    } else {
        pu_select(c);
    }
}

static int pu_on_line(void *ctx, char *line, size_t len)
{
    struct pconn *c = ctx;
    struct punch *p = c->p;
    bool initiator = p->cfg.shake->role == PROTO_INITIATOR;
    enum proto_type expect = c->state == PC_SELECTED ? PROTO_CONFIRM : PROTO_SHAKE;
    enum shake_verdict v = SHAKE_BAD;
    char why[1024];

    c->line_done = true;
    if (c->state == PC_VERIFIED)
        snprintf(why, sizeof why, "unexpected data before selection");
    else
        v = shake_verify(p->cfg.shake, expect, line, len, &c->peer, why, sizeof why);
    /* the stream keys are made where the handshake ends: the responder on the initiator's
     * shake, the initiator on the confirm */
    if (v == SHAKE_OK && (!initiator || c->state == PC_SELECTED) && pu_keys(p, c) < 0) {
        snprintf(why, sizeof why, "the peer's ephemeral key is unusable");
        v = SHAKE_BAD;
    }
    if (v == SHAKE_CODE) {
        /* As a refused key, it ends this connection only (anyone can send a shake with the
         * peer's public key and a bad signature). The responder still confirms, closing with
         * a FIN so that the line arrives: the initiator learns from the confirm's signature
         * what we learnt from its shake, and both sides end the same way. */
        if (!p->code_refused)
            LOG_E("%s", why);
        else
            LOG_I("dropping another connection (%s): its signature does not cover our code",
                  pu_kind(c));
        p->code_refused = true;
        if (!initiator && pu_send(c, PROTO_CONFIRM))
            c->fin = true;
        c->dead = true;
        pu_close_conn(c);
        return 1;
    }
    if (v == SHAKE_REFUSED) {
        /* A wrong key is worth a loud warning, but it ends this connection only: whoever
         * reached our port first (a stranger from the peer's host, or a third party that
         * learnt the session) must not be able to abort the real peer's attempt. The punch
         * ends with this reason only if nothing better comes by the deadline. */
        if (!p->key_refused)
            LOG_E("%s", why);
        else
            LOG_I("dropping another connection (%s) that shows an untrusted key", pu_kind(c));
        p->key_refused = true;
        c->dead = true;
        pu_close_conn(c);
        return 1;
    }
    if (v != SHAKE_OK) {
        LOG_I("dropping a connection (%s): %s", pu_kind(c), why);
        c->dead = true;
        pu_close_conn(c);
        return 1;
    }
    pu_verified(c, initiator, !initiator && pu_send(c, PROTO_CONFIRM));
    return 1;
}

/* ---- Resume mode (cfg.resume; docs/design/resume.md 4.4) ----
 * The same connections, states and timing as the shake, with the resume lines of peer/rshake:
 * PC_OFFERED is the table's UP (initiator) and R_OFFERED (responder: its offer sent),
 * PC_VERIFIED is I_SPARE, PC_SELECTED is I_SELECTED. Each connection has its own copy of the
 * context with its own ephemeral key, so no two connections ever derive the same keys and a
 * line recorded on one verifies on no other. */

/* Sends our line of type t on c; like pu_send, the first data on the connection. */
static bool pr_send(struct pconn *c, enum rshake_type t)
{
    char line[PROTO_MAX_LINE];
    int n = rshake_encode(&c->rctx, t, &c->rpeer, line, sizeof line);
    uv_buf_t b = uv_buf_init(line, n > 0 ? (unsigned)n : 0);
    return n > 0 && uv_try_write((uv_stream_t *)&c->tcp, &b, 1) == n;
}

/* A connection is up: its own attempt (fresh ephemeral key); the responder offers at once. */
static bool pr_begin(struct pconn *c)
{
    c->rctx = *c->p->cfg.resume;
    rshake_init(&c->rctx);
    memset(&c->rpeer, 0, sizeof c->rpeer);
    return c->rctx.role != PROTO_RESPONDER || pr_send(c, RSHAKE_RESUME);
}

/* The exchange on c verified: the link gets what the caller resumes the session with (fd,
 * remote, via, prefill ... pu_win fills as for the shake). Only a connection about to win gets
 * here and the punch ends right after; should the responder's `resumed` not go out, a later
 * winner overwrites all of it, as the shake's keys are overwritten. */
static bool pr_fill_link(struct pconn *c)
{
    struct peer_link *l = c->p->link;
    if (rshake_keys(&c->rctx, &c->rpeer, l->tx_key, l->rx_key) < 0)
        return false;
    l->encrypted = true;
    l->resume = true;
    l->role = c->rctx.role;
    snprintf(l->root, sizeof l->root, "%s", c->rctx.root);
    l->epoch = c->rpeer.epoch;
    l->peer_rx = c->rpeer.rx;
    l->gone = c->rpeer.gone;
    return true;
}

static void pr_drop(struct pconn *c, const char *why)
{
    LOG_I("dropping a connection (%s): %s", pu_kind(c), why);
    c->dead = true;
    pu_close_conn(c);
}

/* One resume line on c (the table of resume.md 4.4): anything but the expected valid line
 * ends this connection only. */
static int pr_on_line(void *ctx, char *line, size_t len)
{
    struct pconn *c = ctx;
    bool initiator = c->rctx.role == PROTO_INITIATOR;
    bool done = !initiator || c->state == PC_SELECTED; /* the line that ends the exchange */
    enum rshake_type expect = c->state == PC_SELECTED ? RSHAKE_RESUMED : RSHAKE_RESUME;
    char why[512];

    c->line_done = true;
    if (c->state == PC_VERIFIED) {
        pr_drop(c, "unexpected data before selection");
        return 1;
    }
    if (rshake_verify(&c->rctx, expect, line, len, &c->rpeer, why, sizeof why) != SHAKE_OK) {
        pr_drop(c, why);
        return 1;
    }
    if (done && !pr_fill_link(c)) {
        pr_drop(c, "the peer's ephemeral key is unusable");
        return 1;
    }
    pu_verified(c, initiator, !initiator && pr_send(c, RSHAKE_RESUMED));
    return 1;
}

/* A resume punch that could never win is refused before a SYN: with both contexts the engine
 * would not know which lines to speak, and past the last epoch the responder has nothing to
 * offer and the initiator could accept nothing. */
static bool pr_cfg_ok(const struct punch_cfg *cfg, char *err, size_t errlen)
{
    if (cfg->shake) {
        snprintf(err, errlen, "a punch runs the shake or the resume lines, not both");
        return false;
    }
    if (rshake_next_epoch(cfg->resume) == 0) {
        snprintf(err, errlen, "the session has no epoch left to resume with");
        return false;
    }
    return true;
}

/* ---- end of resume mode ---- */

static void pu_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct pconn *c = container_of((uv_tcp_t *)h, struct pconn, tcp);
    (void)suggested;
    *buf = uv_buf_init(c->p->rbuf, sizeof c->p->rbuf);
}

/* Handshake lines, one at a time: what follows the winning line is the peer's data. */
static void pu_feed(struct pconn *c, char *data, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t used;
        c->line_done = false;
        used = lb_feed(&c->lb, data + off, n - off, c->p->cfg.resume ? pr_on_line : pu_on_line, c);
        if (used < 0) {
            c->dead = true;
            pu_close_conn(c);
            return;
        }
        off += (size_t)used;
        if (!c->line_done || !c->tcp_open)
            return;
        if (c->state == PC_WON) {
            pu_win(c, data + off, n - off);
            return;
        }
    }
}

static void pu_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pconn *c = container_of((uv_tcp_t *)s, struct pconn, tcp);
    if (nread == 0)
        return;
    if (nread < 0) {
        c->last_err = (int)nread;
        pu_close_conn(c);
        return;
    }
    pu_feed(c, buf->base, (size_t)nread);
}

/* A TCP connection exists: verify it (or take it, in plain mode). */
static void pu_begin(struct pconn *c)
{
    struct punch *p = c->p;
    if (!pu_secure(&p->cfg)) {
        pu_win(c, NULL, 0);
        return;
    }
    lb_init(&c->lb);
    memset(&c->peer, 0, sizeof c->peer);
    c->state = PC_OFFERED;
    c->since_ms = clk_ms();
    if (p->cfg.resume) {
        if (!pr_begin(c)) {
            pu_close_conn(c);
            return;
        }
    } else if (p->cfg.shake->role == PROTO_RESPONDER && !pu_send(c, PROTO_SHAKE)) {
        pu_close_conn(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, pu_alloc, pu_on_read);
}

static void pu_on_connect(uv_connect_t *req, int status)
{
    struct pconn *c = req->data;
    char ep[EP_STRLEN];
    if (c->p->finished || !c->tcp_open)
        return;
    if (status < 0) {
        c->last_err = status;
        c->refused = status == UV_ECONNREFUSED;
        LOG_D("connect to %s: %s",
              ep_format((struct sockaddr *)&c->p->cfg.cand[c->cand].addr, ep, sizeof ep),
              uv_strerror(status));
        pu_close_conn(c);
        return;
    }
    c->p->established++;
    pu_begin(c);
}

static bool pu_can_dial(const struct punch_cfg *cfg, int family)
{
    return family == cfg->local.ss_family ||
           (family == AF_INET6 && cfg->local6.ss_family == AF_INET6);
}

/* The local wildcard endpoint a candidate is dialled from. */
static const struct sockaddr *pu_local_for(const struct punch_cfg *cfg, int family)
{
    return (const struct sockaddr *)(family == cfg->local.ss_family ? &cfg->local : &cfg->local6);
}

/* Whether c may dial once more within the punch budget (punch.h); once not, it stays quiet
 * until the deadline (connections may still come in, and the relay may still win). */
static bool pu_budget_left(struct pconn *c)
{
    struct punch *p = c->p;
    const struct punch_cand *cand = &p->cfg.cand[c->cand];
    unsigned cap = cand->declared ? PUNCH_BUDGET_DECLARED : PUNCH_BUDGET_OBSERVED;
    char ep[EP_STRLEN];
    /* direct mode (no handshake context): its one candidate is the user's own choice, and the
     * other side may start late in --timeout; nobody else named it */
    if (!pu_secure(&p->cfg) || (c->tries < cap && p->attempts < PUNCH_BUDGET_TOTAL))
        return true;
    if (!c->spent)
        LOG_I("no more SYNs to %s (%s): %u connection attempts, %u in this punch (at most %u per "
              "%s candidate, %u per punch)",
              ep_format((const struct sockaddr *)&cand->addr, ep, sizeof ep), cand->kind, c->tries,
              p->attempts, cap, cand->declared ? "self-declared" : "observed", PUNCH_BUDGET_TOTAL);
    c->spent = true;
    return false;
}

static void pu_dial(struct pconn *c)
{
    struct punch *p = c->p;
    const struct sockaddr *remote = (const struct sockaddr *)&p->cfg.cand[c->cand].addr;
    char err[200];
    int fd, rc;

    if (p->finished || c->dead || !pu_budget_left(c))
        return;
    c->tries++;
    p->attempts++;
    c->refused = false;
    fd = sk_open_bound(pu_local_for(&p->cfg, remote->sa_family), err, sizeof err);
    if (fd < 0) {
        LOG_D("%s", err);
        c->last_err = UV_EADDRINUSE;
        pu_schedule(c);
        return;
    }
    uv_tcp_init(p->loop, &c->tcp);
    c->tcp.data = p;
    p->handles++;
    c->tcp_open = true;
    c->state = PC_DIALING;
    if ((rc = uv_tcp_open(&c->tcp, fd)) < 0) {
        close(fd);
        c->last_err = rc;
        pu_close_conn(c);
        return;
    }
    c->creq.data = c;
    rc = uv_tcp_connect(&c->creq, &c->tcp, remote, pu_on_connect);
    if (rc < 0) {
        c->last_err = rc;
        pu_close_conn(c);
    }
}

/* Whether an inbound connection from `from` can be the peer: it comes from the host of one of
 * its candidates (a NAT may have changed the port, not the address). Anyone else who reaches
 * our port is closed before a byte is written: our shake would tell them the session. */
static bool pu_from_candidate(const struct punch *p, const struct sockaddr *from)
{
    /* a birthday punch's target is the peer's public address, left out of the candidates */
    if (p->cfg.birthday && ep_same_host((const struct sockaddr *)&p->cfg.bday_target, from))
        return true;
    for (int i = 0; i < p->cfg.ncand; i++)
        if (ep_same_host((const struct sockaddr *)&p->cfg.cand[i].addr, from))
            return true;
    return false;
}

/* A connection that did not come from one of our dials: accepted by the listener, or adopted
 * (the relay). Its tcp handle is initialised and counted; the caller attaches a socket. */
static struct pconn *pu_new_inbound(struct punch *p, const char *kind)
{
    struct pconn *c;
    if (!(c = calloc(1, sizeof *c)))
        return NULL;
    if (!kind)
        p->ninbound++;
    c->p = p;
    c->cand = -1;
    c->kind = kind;
    uv_tcp_init(p->loop, &c->tcp);
    c->tcp.data = p;
    p->handles++;
    c->tcp_open = true;
    q_insert_head(&p->inbound, &c->node);
    return c;
}

static void pu_on_inbound(uv_stream_t *server, int status)
{
    struct punch *p = server->data;
    struct sockaddr_storage from;
    int alen = sizeof from;
    struct pconn *c;

    if (status < 0 || p->finished || !(c = pu_new_inbound(p, NULL)))
        return;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        pu_close_conn(c);
        return;
    }
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&from, &alen) < 0) {
        pu_close_conn(c);
        return;
    }
    ep_unmap(&from);
    /* without a handshake only the expected host may take the place of the peer; with one,
     * only a host of the peer's candidates is worth our shake */
    if (p->ninbound > PUNCH_MAX_INBOUND ||
        (pu_secure(&p->cfg)
             ? !pu_from_candidate(p, (struct sockaddr *)&from)
             : p->cfg.ncand == 0 || !ep_same_host((struct sockaddr *)&from,
                                                  (struct sockaddr *)&p->cfg.cand[0].addr))) {
        char ep[EP_STRLEN];
        LOG_D("closing an inbound connection from %s: not a host of the peer's candidates, "
              "or too many at once",
              ep_format((struct sockaddr *)&from, ep, sizeof ep));
        pu_close_conn(c);
        return;
    }
    p->established++;
    pu_begin(c);
}

static void pu_listen_on(struct punch *p, const struct sockaddr_storage *local)
{
    char err[200];
    uv_tcp_t *l = &p->listener[p->listening];
    int fd = sk_listen_reuse((const struct sockaddr *)local, 16, err, sizeof err);
    if (fd < 0) {
        LOG_D("no listener on the punch port: %s", err);
        return;
    }
    uv_tcp_init(p->loop, l);
    l->data = p;
    p->handles++;
    p->listening++;
    if (uv_tcp_open(l, fd) < 0) {
        close(fd);
        return;
    }
    if (uv_listen((uv_stream_t *)l, 16, pu_on_inbound) < 0)
        LOG_D("listen on the punch port failed");
}

static void pu_listen(struct punch *p)
{
    pu_listen_on(p, &p->cfg.local);
    if (p->cfg.local6.ss_family == AF_INET6)
        pu_listen_on(p, &p->cfg.local6);
}

static uint64_t pu_stall_ms(const struct punch_cfg *cfg)
{
    uint64_t ms = 600 + 4 * (uint64_t)cfg->rtt_us / 1000;
    return ms < PUNCH_STALL_MIN_MS ? PUNCH_STALL_MIN_MS : ms > PUNCH_STALL_MAX_MS ? PUNCH_STALL_MAX_MS : ms;
}

static bool pu_stalled(const struct pconn *c, uint64_t now)
{
    return (c->state == PC_OFFERED || c->state == PC_SELECTED) &&
           now - c->since_ms > pu_stall_ms(&c->p->cfg);
}

static void pu_on_sweep(uv_timer_t *t)
{
    struct punch *p = t->data;
    uint64_t now = clk_ms();
    struct q *it;
    for (int i = 0; i < p->cfg.ncand; i++)
        if (pu_stalled(&p->att[i], now)) {
            LOG_D("re-dialling %s: the handshake stalled", pu_kind(&p->att[i]));
            pu_close_conn(&p->att[i]);
        }
    q_foreach(it, &p->inbound)
    {
        struct pconn *c = q_data(it, struct pconn, node);
        if (pu_stalled(c, now))
            pu_close_conn(c);
    }
}

static void pu_on_deadline(uv_timer_t *t)
{
    struct punch *p = t->data;
    char why[1024];
    if (p->code_refused) {
        snprintf(why, sizeof why,
                 "the code exchange was not with this peer: someone who knew the code is in the "
                 "middle; the code is burned");
        pu_finish(p, EXIT_CODE_FAILED, why);
        return;
    }
    if (p->key_refused)
        snprintf(why, sizeof why, "the peer's key was refused");
    else
        pu_failure_text(p, why, sizeof why);
    pu_finish(p, EXIT_PUNCH, why);
}

static void pu_timer(struct punch *p, uv_timer_t *t, uv_timer_cb cb, uint64_t after,
                     uint64_t repeat)
{
    uv_timer_init(p->loop, t);
    t->data = p;
    p->handles++;
    uv_timer_start(t, cb, after, repeat);
}

struct punch *punch_start(uv_loop_t *loop, const struct punch_cfg *cfg, struct peer_link *link,
                          punch_done_cb done, void *arg, char *err, size_t errlen)
{
    struct punch *p;
    if (cfg->resume && !pr_cfg_ok(cfg, err, errlen))
        return NULL;
    if (!(p = calloc(1, sizeof *p))) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    q_init(&p->inbound);
    p->loop = loop;
    p->cfg = *cfg;
    p->link = link;
    p->done = done;
    p->arg = arg;
    p->start_ms = clk_ms();
    p->t0_us = cfg->start_us > clk_us() ? cfg->start_us : clk_us();
    snprintf(p->note, sizeof p->note, "birthday: no connection yet");
    /* the default 50 us timer slack would blur the aim at t0 */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    /* direct mode has no roles: the lower port takes the first CPU, as seen from both ends */
    pu_pin(p, pu_secure(cfg) ? pu_role(cfg) == PROTO_INITIATOR
                         : cfg->ncand == 0 ||
                               ep_port((const struct sockaddr *)&cfg->local) <=
                                   ep_port((const struct sockaddr *)&cfg->cand[0].addr));
    pu_timer(p, &p->deadline, pu_on_deadline, cfg->timeout_ms, 0);
    pu_timer(p, &p->sweep, pu_on_sweep, PUNCH_SWEEP_MS, PUNCH_SWEEP_MS);
    if (!cfg->relay_only && !cfg->shared_listener)
        pu_listen(p);
    for (int i = 0; i < cfg->ncand; i++) {
        struct pconn *c = &p->att[i];
        c->p = p;
        c->cand = i;
        uv_timer_init(loop, &c->retry);
        c->retry.data = p;
        p->handles++;
        c->slot_us = p->t0_us;
        if (c->slot_us > clk_us() + PUNCH_SLOT_MARGIN_US)
            uv_timer_start(&c->retry, pu_on_retry, (c->slot_us - clk_us()) / 1000, 0);
        else
            pu_dial(c);
    }
    return p;
}

/* A birthday connection: only from the target's address (the engine dials nothing else; this
 * is the engine's word checked), within PUNCH_MAX_BIRTHDAY. */
static bool pu_bday_ok(const struct punch *p, int fd)
{
    struct sockaddr_storage from;
    socklen_t alen = sizeof from;
    if (!p->cfg.birthday || p->nbday >= PUNCH_MAX_BIRTHDAY ||
        getpeername(fd, (struct sockaddr *)&from, &alen) < 0)
        return false;
    ep_unmap(&from);
    return ep_same_host((const struct sockaddr *)&p->cfg.bday_target,
                        (const struct sockaddr *)&from);
}

/* Adopted connections live on the inbound list: closed, stalled and selected like those. An
 * "inbound" one (from a shared listener) must come from a host of the peer's candidates and
 * counts against PUNCH_MAX_INBOUND, as if our own listener had accepted it; a birthday one
 * (pu_bday_ok) counts against PUNCH_MAX_BIRTHDAY. */
int punch_adopt_index(struct punch *p, int fd, enum punch_adopt_kind kind, int index)
{
    bool inbound = kind == PUNCH_ADOPT_INBOUND, bday = kind == PUNCH_ADOPT_BIRTHDAY;
    struct sockaddr_storage from;
    socklen_t alen = sizeof from;
    struct pconn *c;
    if (inbound && (p->ninbound >= PUNCH_MAX_INBOUND ||
                    getpeername(fd, (struct sockaddr *)&from, &alen) < 0 ||
                    (ep_unmap(&from), !pu_from_candidate(p, (struct sockaddr *)&from)))) {
        close(fd);
        return -1;
    }
    if (bday && !pu_bday_ok(p, fd)) {
        LOG_D("closing a birthday connection: not from the target, or too many at once");
        close(fd);
        return -1;
    }
    const char *kind_name = inbound ? NULL : bday ? "birthday" : proto_path_name(PROTO_PATH_RELAY);
    if (p->finished || !(c = pu_new_inbound(p, kind_name))) {
        close(fd);
        return -1;
    }
    c->relayed = kind == PUNCH_ADOPT_RELAY;
    if (bday) {
        c->bday = true;
        c->bday_index = index;
        p->nbday++;
        p->bday_established++;
    }
    if (uv_tcp_open(&c->tcp, fd) < 0) {
        close(fd);
        pu_close_conn(c);
        return -1;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    pu_begin(c);
    return 0;
}

int punch_adopt(struct punch *p, int fd, enum punch_adopt_kind kind)
{
    return punch_adopt_index(p, fd, kind, -1);
}

void punch_abort(struct punch *p, int status, const char *why)
{
    pu_finish(p, status, why);
}

int punch_adopted_pending(const struct punch *p, enum punch_adopt_kind kind)
{
    const struct q *it;
    int n = 0;
    if (!p || p->finished)
        return 0;
    q_foreach(it, &p->inbound)
    {
        const struct pconn *c = q_data(it, struct pconn, node);
        bool of = kind == PUNCH_ADOPT_BIRTHDAY ? c->bday
                  : kind == PUNCH_ADOPT_RELAY  ? c->relayed
                                               : !c->kind;
        if (of && c->tcp_open)
            n++;
    }
    return n;
}

void punch_note(struct punch *p, const char *note)
{
    snprintf(p->note, sizeof p->note, "%s", note);
}

bool punch_bday_over(struct punch *p, uint64_t after_ms)
{
    struct q *it;
    if (p->finished || p->cfg.ncand > 0 || uv_timer_get_due_in(&p->deadline) <= after_ms)
        return false;
    q_foreach(it, &p->inbound)
    {
        if (q_data(it, struct pconn, node)->relayed)
            return false; /* the relay joined: its handshake has the time it always had */
    }
    uv_timer_start(&p->deadline, pu_on_deadline, after_ms, 0);
    return true;
}

/* Why the server's word must not make us dial a: loopback (unless everyone is on this host),
 * link-local (the cloud metadata address), unspecified (0.0.0.0 reaches this host), multicast,
 * broadcast, reserved (common/addrpol), or a local subnet's broadcast address. A lying server
 * or someone on its path could otherwise aim our SYNs and our shake at our own services or
 * our LAN's. */
static const char *pu_bad_cand(const struct punch_cfg *cfg, const struct sockaddr *a)
{
    const char *why = ap_bad_candidate(a, cfg->loopback_ok);
    if (!why && sk_is_subnet_broadcast(a))
        why = "the broadcast address of a local subnet";
    return why;
}

static void pu_add_cand(struct punch_cfg *cfg, const struct sockaddr_storage *a, const char *kind,
                        bool declared)
{
    const char *why;
    char ep[EP_STRLEN];
    if (!pu_can_dial(cfg, a->ss_family) || cfg->ncand >= PUNCH_MAX_CAND)
        return;
    if ((why = pu_bad_cand(cfg, (const struct sockaddr *)a))) {
        LOG_I("refusing the candidate %s (%s): it is %s",
              ep_format((const struct sockaddr *)a, ep, sizeof ep), kind, why);
        cfg->nrefused++;
        return;
    }
    for (int i = 0; i < cfg->ncand; i++)
        if (ep_equal((const struct sockaddr *)&cfg->cand[i].addr, (const struct sockaddr *)a))
            return;
    cfg->cand[cfg->ncand].addr = *a;
    cfg->cand[cfg->ncand].kind = kind;
    cfg->cand[cfg->ncand].declared = declared;
    cfg->ncand++;
}

void punch_candidates(struct punch_cfg *cfg, const struct sockaddr_storage *observed,
                      const struct sockaddr_storage *observed6, const struct proto_eplist *lan,
                      const struct sockaddr_storage *self)
{
    cfg->ncand = 0;
    cfg->nrefused = 0;
    pu_add_cand(cfg, observed, "public", false);
    if (lan->n > 0) {
        /* A router that had to remap the control connection (its port was taken) may still
         * keep the peer's own port towards us: aim there too. */
        struct sockaddr_storage guess = *observed;
        ep_set_port((struct sockaddr *)&guess, ep_port((const struct sockaddr *)&lan->ep[0]));
        pu_add_cand(cfg, &guess, "port-preserved", true);
    }
    /* Global IPv6 addresses need no NAT traversal, only a stateful firewall's simultaneous
     * open: worth a try from anywhere. The one the server saw on the peer's probe first. */
    if (observed6)
        pu_add_cand(cfg, observed6, "ipv6", false);
    for (int i = 0; i < lan->n; i++)
        if (sk_is_global6((const struct sockaddr *)&lan->ep[i]))
            pu_add_cand(cfg, &lan->ep[i], "ipv6", true);
    /* Private addresses only make sense behind the same public address. Elsewhere a SYN to them
     * is lost at best, and at worst its NAT mapping catches stray packets of the real attempt
     * that the peer's router let out untranslated. */
    if (!ep_same_host((const struct sockaddr *)observed, (const struct sockaddr *)self))
        return;
    for (int i = 0; i < lan->n; i++)
        pu_add_cand(cfg, &lan->ep[i], "lan", true);
}

int punch_local6(const struct sockaddr_storage *local, struct sockaddr_storage *local6,
                 struct sockaddr_storage *out, int max)
{
    struct sockaddr_storage all[PROTO_MAX_ENDPOINTS];
    int port = ep_port((const struct sockaddr *)local), n = 0, fd;
    char err[200];

    memset(local6, 0, sizeof *local6);
    if (local->ss_family != AF_INET || max <= 0)
        return 0;
    int found = sk_local_addrs(AF_INET6, port, all, PROTO_MAX_ENDPOINTS);
    for (int i = 0; i < found && n < max; i++)
        if (sk_is_global6((const struct sockaddr *)&all[i]))
            out[n++] = all[i];
    if (n == 0)
        return 0;
    local6->ss_family = AF_INET6;
    ep_set_port((struct sockaddr *)local6, port);
    /* the port is ours on IPv4; someone else may hold it on IPv6 */
    if ((fd = sk_open_bound((const struct sockaddr *)local6, err, sizeof err)) < 0) {
        LOG_D("no IPv6 candidates: %s", err);
        memset(local6, 0, sizeof *local6);
        return 0;
    }
    close(fd);
    return n;
}
