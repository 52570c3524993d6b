#include "peer/rpump.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/clock.h"
#include "common/rstream.h"
#include "common/sframe.h"
#include "common/sock.h"
#include "peer/exit.h"

#define RPUMP_ABORT_WAIT_MS 500 /* ABORT is best effort: this long for it to leave */
#define RPUMP_RETRY_MS 50       /* a full mailbox: MB_LOST is pushed again after this */

struct rpump {
    const struct rpump_cfg *c;
    struct mbox *mb;
    int in, out;
    struct rstream rs;
    struct rpump_stats *st;
    char *err;
    size_t errlen;
    bool src_open, out_open;
    bool lost_pending; /* MB_LOST to push (the mailbox was full) */
    bool refused;      /* that MB_LOST follows a refused MB_CONN (MB_LOST_REFUSED) */
    char lost_why[MB_WHY];
    uint64_t lost_ms; /* when the current connection failed (0: not suspended) */
    uint64_t start_ms; /* when epoch 0 was attached: an upgrade's ms counts from it */
    uint32_t last_epoch;
    bool done; /* the session is DONE: only our output is left to finish */
};

/* Signals: the handler only notes the signal and wakes poll through a pipe, whichever thread
 * the kernel picks (the path side's loop runs in another); the loop sends the ABORT. */
static volatile sig_atomic_t rpump_signo;
static int rpump_sigpipe[2] = {-1, -1};

static void rpump_on_signal(int sig)
{
    int e = errno;
    rpump_signo = sig;
    if (rpump_sigpipe[1] >= 0 && write(rpump_sigpipe[1], "s", 1) < 0) {
        /* full: a wake-up is pending anyway */
    }
    errno = e;
}

static const int rpump_sigs[] = {SIGINT, SIGTERM, SIGHUP};

/* Several data planes may run in one process (sessions of connect --local, the tests): the
 * handlers and the pipe are shared, installed by the first and restored by the last. */
static pthread_mutex_t rpump_sig_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned rpump_sig_users;
static struct sigaction rpump_sig_old[3];

static int rpump_sig_start(void)
{
    int rc = 0;
    pthread_mutex_lock(&rpump_sig_mu);
    if (rpump_sig_users == 0) {
        struct sigaction sa;
        if (pipe2(rpump_sigpipe, O_NONBLOCK | O_CLOEXEC) < 0) {
            rc = -1;
            goto out;
        }
        rpump_signo = 0;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = rpump_on_signal; /* no SA_RESTART: poll returns EINTR at once */
        sigemptyset(&sa.sa_mask);
        for (int i = 0; i < 3; i++)
            sigaction(rpump_sigs[i], &sa, &rpump_sig_old[i]);
    }
    rpump_sig_users++;
out:
    pthread_mutex_unlock(&rpump_sig_mu);
    return rc;
}

static void rpump_sig_stop(void)
{
    pthread_mutex_lock(&rpump_sig_mu);
    if (--rpump_sig_users == 0) {
        for (int i = 0; i < 3; i++)
            sigaction(rpump_sigs[i], &rpump_sig_old[i], NULL);
        for (int i = 0; i < 2; i++) {
            if (rpump_sigpipe[i] >= 0)
                close(rpump_sigpipe[i]);
            rpump_sigpipe[i] = -1;
        }
    }
    pthread_mutex_unlock(&rpump_sig_mu);
}

static uint64_t rpump_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static bool rpump_transient(int e)
{
    return e == EAGAIN || e == EWOULDBLOCK || e == EINTR;
}

static void rpump_event(struct rpump *p, const struct rpump_event *e)
{
    if (p->c->event)
        p->c->event(p->c->arg, e);
}

/* --- the path side ------------------------------------------------------------------------- */

static void rpump_push_lost(struct rpump *p)
{
    struct mb_msg m;
    memset(&m, 0, sizeof m);
    m.kind = MB_LOST;
    m.conn.fd = -1;
    m.conn.epoch = p->last_epoch;
    m.conn.peer_rx = rs_rx_offset(rst_sess(&p->rs));
    m.status = p->refused ? MB_LOST_REFUSED : 0;
    snprintf(m.why, sizeof m.why, "%s", p->lost_why);
    p->lost_pending = mb_to_path(p->mb, &m) < 0;
}

static void rpump_lost(struct rpump *p, uint64_t now)
{
    struct rsess *s = rst_sess(&p->rs);
    snprintf(p->lost_why, sizeof p->lost_why, "%s", rst_why(&p->rs));
    p->refused = false;
    if (!p->lost_ms)
        p->lost_ms = now ? now : 1;
    struct rpump_event e = {.kind = RPUMP_SUSPENDED,
                            .why = p->lost_why,
                            .epoch = p->last_epoch,
                            .tx = rs_tx_acked(s),
                            .rx = rs_rx(s)};
    rpump_event(p, &e); /* before the path side hears of it: the event's line comes first */
    rpump_push_lost(p);
}

static int rpump_attach(struct rpump *p, struct mb_conn *k, bool upgrade, uint64_t now)
{
    struct rst_attach a = {.fd = k->fd,
                           .epoch = k->epoch,
                           .tx = k->tx,
                           .rx = k->rx,
                           .peer_rx = k->peer_rx,
                           .upgrade = upgrade,
                           .prefill = k->prefill,
                           .prefill_len = k->prefill_len};
    uint64_t high = p->rs.high;
    if (rst_attach(&p->rs, &a, now) < 0)
        return -1;
    p->refused = false;
    p->last_epoch = k->epoch;
    if (k->epoch == 0)
        return 0;
    p->st->resumes += upgrade ? 0 : 1;
    p->st->upgrades += upgrade ? 1 : 0;
    /* an upgrade is no recovery: its ms is the session's age (from epoch 0's attach) */
    struct rpump_event e = {.kind = upgrade ? RPUMP_UPGRADED : RPUMP_RESUMED,
                            .epoch = k->epoch,
                            .ms = upgrade      ? now - p->start_ms
                                  : p->lost_ms ? now - p->lost_ms
                                               : 0,
                            .resent = high > k->peer_rx ? high - k->peer_rx : 0,
                            .tx = rs_tx_acked(rst_sess(&p->rs)),
                            .rx = rs_rx(rst_sess(&p->rs)),
                            .conn = k};
    p->lost_ms = 0;
    rpump_event(p, &e);
    return 0;
}

/* MB_CONN: a resume from SUSPENDED (also an upgrade whose old connection failed meanwhile), or
 * an upgrade of a live session. A refused one is closed; when we are suspended the path side is
 * asked again. */
static void rpump_on_conn(struct rpump *p, struct mb_msg *m, uint64_t now)
{
    enum rs_state st = rs_state(rst_sess(&p->rs));
    bool upgrade = m->conn.upgrade && st != RS_SUSPENDED;
    if (!m->conn.upgrade && (st == RS_ACTIVE || st == RS_MOVING) && m->conn.fd >= 0) {
        /* 5.4 "MB_CONN, c failed meanwhile": the peer resumed before we saw c fail */
        rst_cut(&p->rs, "connection lost (the peer resumed on a new one)", now);
        p->lost_ms = now;
    }
    if (m->conn.fd < 0 || rpump_attach(p, &m->conn, upgrade, now) < 0) {
        if (m->conn.fd >= 0)
            close(m->conn.fd);
        if (rs_state(rst_sess(&p->rs)) == RS_SUSPENDED && !p->rs.lost) { /* else RST_LOST does */
            snprintf(p->lost_why, sizeof p->lost_why, "the new connection was refused");
            /* the same suspension goes on: its deadline must not start again, or a peer whose
             * resumes lie about its offset would keep us re-punching for ever */
            p->refused = true; /* until an attach or a loss of a live connection */
            rpump_push_lost(p);
        }
    }
}

static void rpump_mailbox(struct rpump *p, uint64_t now)
{
    struct mb_msg m;
    while (mb_take(p->mb, MB_DATA, &m)) {
        if (m.kind == MB_CONN) {
            rpump_on_conn(p, &m, now);
        } else if (m.kind == MB_GIVE_UP) {
            if (m.status == EXIT_LOST) /* the peer's `gone`: its session ended, ours too */
                rs_on_gone(rst_sess(&p->rs), false, 0);
            else
                rs_give_up(rst_sess(&p->rs));
            snprintf(p->lost_why, sizeof p->lost_why, "%s", m.why[0] ? m.why : "given up");
        }
        sodium_memzero(&m, sizeof m);
    }
}

/* --- the local side ------------------------------------------------------------------------ */

static void rpump_close_out(struct rpump *p)
{
    if (!p->out_open)
        return;
    /* closing stdout is how a pipeline reader learns the stream ended */
    if (p->c->splice || p->out == p->in)
        shutdown(p->out, SHUT_WR);
    else
        sk_close_keep_std(p->out);
    p->out_open = false;
}

static enum rpump_status rpump_local_err(struct rpump *p, uint8_t reason, const char *what)
{
    snprintf(p->err, p->errlen, "%s: %s", what, strerror(errno));
    rst_abort(&p->rs, reason, RPUMP_ABORT_WAIT_MS);
    return RPUMP_LOCAL;
}

static int rpump_read_in(struct rpump *p, enum rpump_status *s)
{
    unsigned char *ptr;
    size_t len;
    if (rst_tx_space(&p->rs, &ptr, &len) < 0) {
        errno = ENOMEM;
        *s = rpump_local_err(p, SF_ABORT_READ, "reading input");
        return -1;
    }
    if (len == 0)
        return 0; /* the ring filled meanwhile */
    ssize_t r = read(p->in, ptr, len < RST_BUF ? len : RST_BUF);
    if (r < 0 && rpump_transient(errno))
        return 0;
    if (r < 0) {
        *s = rpump_local_err(p, errno == ECONNRESET ? SF_ABORT_RESET : SF_ABORT_READ,
                             "reading input");
        return -1;
    }
    if (r == 0) {
        rst_tx_eof(&p->rs);
        p->src_open = false;
        return 0;
    }
    rst_tx_commit(&p->rs, (size_t)r);
    p->st->sent += (uint64_t)r;
    return 0;
}

static int rpump_write_out(struct rpump *p, enum rpump_status *s)
{
    const unsigned char *ptr;
    size_t len = rst_rx_peek(&p->rs, &ptr);
    if (len == 0)
        return 0;
    ssize_t w = p->c->splice ? send(p->out, ptr, len, MSG_NOSIGNAL) : write(p->out, ptr, len);
    if (w < 0 && rpump_transient(errno))
        return 0;
    if (w < 0) {
        *s = rpump_local_err(p, errno == ECONNRESET ? SF_ABORT_RESET : SF_ABORT_WRITE,
                             "writing output");
        return -1;
    }
    if (!p->st->received && w > 0)
        p->st->first_rx_us = rpump_wall_us();
    p->st->received += (uint64_t)w;
    rst_rx_consume(&p->rs, (size_t)w);
    return 0;
}

/* --- the loop ------------------------------------------------------------------------------ */

/* What the engine said: 1 go on, 0 the pump ends with *s. */
static int rpump_on_ev(struct rpump *p, enum rst_ev ev, uint64_t now, enum rpump_status *s)
{
    switch (ev) {
    case RST_LOST:
        rpump_lost(p, now);
        return 1;
    case RST_DONE:
        p->done = true;
        return 1;
    case RST_ABORTED:
        snprintf(p->err, p->errlen, "%s", rst_why(&p->rs));
        *s = RPUMP_ABORTED;
        return 0;
    case RST_FAILED:
        if (p->lost_why[0] && rs_state(rst_sess(&p->rs)) == RS_FAILED)
            snprintf(p->err, p->errlen,
                     "the connection was lost and not resumed within %.3g s (%s)",
                     p->c->params.resume_ms / 1000.0, p->lost_why);
        else
            snprintf(p->err, p->errlen, "%s", rst_why(&p->rs));
        *s = RPUMP_FAILED;
        return 0;
    default:
        return 1;
    }
}

static bool rpump_want_in(struct rpump *p)
{
    return p->src_open && !p->done && rst_tx_want(&p->rs);
}

static enum rpump_status rpump_loop(struct rpump *p)
{
    enum rpump_status s = RPUMP_DONE;
    for (;;) {
        struct pollfd pf[5 + RST_MAX_FDS];
        int n = 0, i_in = -1, i_out = -1, i_mb, i_sig, i_stop = -1, base, timeout = -1;
        const unsigned char *dummy;
        uint64_t now = clk_ms();

        if (p->out_open && rst_peer_eof(&p->rs))
            rpump_close_out(p);
        if (p->done && rst_rx_peek(&p->rs, &dummy) == 0) {
            rpump_close_out(p);
            return RPUMP_DONE;
        }
        if (rpump_want_in(p)) {
            pf[n] = (struct pollfd){.fd = p->in, .events = POLLIN};
            i_in = n++;
        }
        if (p->out_open && rst_rx_peek(&p->rs, &dummy) > 0) {
            pf[n] = (struct pollfd){.fd = p->out, .events = POLLOUT};
            i_out = n++;
        }
        pf[n] = (struct pollfd){.fd = mb_fd(p->mb), .events = POLLIN};
        i_mb = n++;
        pf[n] = (struct pollfd){.fd = rpump_sigpipe[0], .events = POLLIN};
        i_sig = n++;
        if (p->c->has_stop) {
            pf[n] = (struct pollfd){.fd = p->c->stop_fd, .events = POLLIN};
            i_stop = n++;
        }
        base = n;
        n += rst_pollfds(&p->rs, pf + base, now, &timeout);
        if (p->lost_pending && (timeout < 0 || timeout > (int)RPUMP_RETRY_MS))
            timeout = RPUMP_RETRY_MS;
        if (poll(pf, (nfds_t)n, timeout) < 0 && errno != EINTR) {
            snprintf(p->err, p->errlen, "poll: %s", strerror(errno));
            rst_abort(&p->rs, SF_ABORT_READ, RPUMP_ABORT_WAIT_MS);
            return RPUMP_LOCAL;
        }
        if (rpump_signo || (pf[i_sig].revents & POLLIN)) {
            snprintf(p->err, p->errlen, "interrupted by signal %d", (int)rpump_signo);
            rst_abort(&p->rs, SF_ABORT_SIGNAL, RPUMP_ABORT_WAIT_MS);
            return RPUMP_SIGNAL;
        }
        if (i_stop >= 0 && pf[i_stop].revents) {
            snprintf(p->err, p->errlen, "the peer did not end the session in time; ended it");
            rst_abort(&p->rs, SF_ABORT_READ, RPUMP_ABORT_WAIT_MS);
            return RPUMP_LOCAL;
        }
        now = clk_ms();
        if (i_in >= 0 && pf[i_in].revents && rpump_read_in(p, &s) < 0)
            return s;
        if (i_out >= 0 && pf[i_out].revents && rpump_write_out(p, &s) < 0)
            return s;
        if (!rpump_on_ev(p, rst_handle(&p->rs, pf + base, now), now, &s))
            return s;
        if (pf[i_mb].revents & POLLIN)
            rpump_mailbox(p, now);
        if (p->lost_pending)
            rpump_push_lost(p);
    }
}

static int rpump_exit_code(enum rpump_status s)
{
    switch (s) {
    case RPUMP_DONE:
        return EXIT_DONE;
    case RPUMP_ABORTED:
        return EXIT_LOST;
    case RPUMP_FAILED:
        return EXIT_NOT_RESUMED;
    default:
        return EXIT_LOCAL;
    }
}

static void rpump_ended(struct mbox *mb, enum rpump_status s, const char *why)
{
    struct mb_msg m;
    memset(&m, 0, sizeof m);
    m.kind = MB_ENDED;
    m.conn.fd = -1;
    m.status = rpump_exit_code(s);
    snprintf(m.why, sizeof m.why, "%s", s == RPUMP_DONE ? "" : why);
    mb_to_path(mb, &m);
}

enum rpump_status rpump_run(const struct rpump_cfg *c, struct mbox *mb, int in, int out,
                            struct mb_conn *first, struct rpump_stats *st, char *err, size_t errlen)
{
    struct rpump p = {.c = c,
                      .mb = mb,
                      .in = in,
                      .out = out,
                      .st = st,
                      .err = err,
                      .errlen = errlen,
                      .src_open = true,
                      .out_open = true};
    enum rpump_status s = RPUMP_LOCAL;
    bool sig = false;

    memset(st, 0, sizeof *st);
    if (errlen)
        err[0] = '\0';
    if (rst_init(&p.rs, &c->params, c->ring, clk_ms()) < 0) {
        snprintf(err, errlen, "out of memory (or a bad --resume-buffer)");
        goto out;
    }
    if (rpump_sig_start() < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto out;
    }
    sig = true;
    p.start_ms = clk_ms();
    if (rpump_attach(&p, first, false, p.start_ms) < 0) {
        snprintf(err, errlen, "the first connection was refused");
        goto out;
    }
    first->fd = -1; /* the stream's now */
    s = rpump_loop(&p);
out:
    if (first->fd >= 0)
        close(first->fd);
    first->fd = -1;
    sodium_memzero(first->tx, sizeof first->tx);
    sodium_memzero(first->rx, sizeof first->rx);
    st->resent = rst_resent(&p.rs);
    if (sig)
        rpump_sig_stop();
    rst_free(&p.rs);
    rpump_ended(mb, s, err);
    return s;
}
