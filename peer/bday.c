/* The birthday engine (peer/bday.h; docs/design/birthday.md sections 3, 6 and 7).
 *
 * One engine is one attempt in one role. Its sockets are raw nonblocking descriptors watched by
 * a uv_poll_t each (not uv_tcp_t: the hard side must set IP_TTL between socket() and connect()
 * and back right after, and a completed connection is handed to the caller as a bare fd, which
 * the caller adopts with uv_tcp_open). Each socket has a slot of its own, used once (hard: k
 * slots, easy: one per guess), so a slot's poll handle is never reused before its close
 * callback ran.
 *
 * Lifetime: the engine owns two timers and the poll handles of its live sockets. A socket ends
 * (completed, failed, expired, stopped) with uv_poll_stop + uv_close of its handle (the close
 * removes the fd from the loop's epoll set at once) and, unless handed over, close() of its fd
 * right after: libuv never closes the fd of a uv_poll_t. The struct is freed by the last close
 * callback after bday_stop, never synchronously, so bday_stop can be called from inside any of
 * our callbacks (conn, over) and the code that called the callback still finds b valid; it
 * checks b->stopped and returns without touching anything else. After `over` the engine stays
 * (its stats readable) until bday_stop. */
#include "peer/bday.h"

#include "common/clock.h"
#include "common/endpoint.h"
#include "common/log.h"
#include "common/sock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Hard side: sockets dialled per tick, and the tick. 64 SYNs (~5 KB) is a burst any uplink
 * buffer takes, 64 × (socket, bind, 2 setsockopt, connect) is a millisecond or two of the loop,
 * and 512 sockets are all out 14 ms after t0: well before the easy side's first guess at
 * t0 + 50 ms (plus the path's delay). */
#define BD_HARD_BATCH 64
#define BD_HARD_TICK_MS 2
/* Easy side: every tick sends the guesses that are due and closes those past their life; once
 * every guess is out, the same timer sweeps every BD_SWEEP_MS (design section 7: closed in
 * batches by a 50 ms sweep of their age). */
#define BD_EASY_TICK_MS 5
#define BD_SWEEP_MS 50
#define BD_EASY_SLACK_US (2 * BD_EASY_TICK_MS * 1000)

enum bd_state { BS_UNUSED, BS_LIVE, BS_DONE };

struct bsock {
    uv_poll_t poll;
    struct bday *b;
    int fd;
    int index;
    uint64_t born_us;
    unsigned char state;
};

struct bday {
    uv_loop_t *loop;
    struct bday_cfg cfg;
    bday_conn_cb conn;
    bday_over_cb over;
    void *arg;
    struct bday_stats st;

    uv_timer_t tick; /* hard: the dial batches; easy: guesses due + age sweep */
    uv_timer_t end;  /* hard: t0 + pace + grace, every socket closed */
    int handles;     /* initialised handles whose close callback has not run */

    struct bsock *slot; /* n of them */
    int n;              /* planned sockets: k or the guesses */
    uint16_t *order;    /* easy: the guessed ports, n */
    int next;           /* next slot to dial */
    int sweep_from;     /* easy: slots below this are all done */
    int live;
    uint64_t begin_us; /* hard: t0; easy: t0 + easy_delay_us */
    int ttl_default;   /* hard: what IP_TTL reads on a fresh socket */
    bool sending_done; /* no more connect() will be made */
    bool over_called;
    bool stopped;
};

/* ---- the pure parts ---- */

/* uniform in [0, n) from a 32-bit draw, multiply-shift (bias below n / 2^32, no loop) */
static uint32_t bd_below(uint32_t (*rnd)(void *), void *rarg, uint32_t n)
{
    return (uint32_t)(((uint64_t)rnd(rarg) * n) >> 32);
}

/* count distinct values of [base, base + size) into out, in random order: Floyd's sampling
 * (exactly count draws) marks them in a bitmap, then Fisher-Yates shuffles them */
static void bd_sample(int base, int size, int count, uint16_t *out, uint32_t (*rnd)(void *),
                      void *rarg)
{
    uint8_t used[65536 / 8];
    int got = 0;
    memset(used, 0, sizeof used);
    for (int j = size - count; j < size; j++) {
        int t = (int)bd_below(rnd, rarg, (uint32_t)j + 1);
        if (used[t >> 3] & (1u << (t & 7)))
            t = j; /* j itself cannot be taken yet: draws so far were all < j */
        used[t >> 3] |= (uint8_t)(1u << (t & 7));
        out[got++] = (uint16_t)(base + t);
    }
    for (int i = got - 1; i > 0; i--) {
        int r = (int)bd_below(rnd, rarg, (uint32_t)i + 1);
        uint16_t tmp = out[i];
        out[i] = out[r];
        out[r] = tmp;
    }
}

int bday_guess_order(int lo, int hi, int n, uint16_t *out, uint32_t (*rnd)(void *), void *rarg)
{
    int low_lo, low_hi, nlow = 0, done = 0;
    if (!out || !rnd || n <= 0 || lo < 1 || hi > 65535 || lo > hi)
        return 0;
    if (n > hi - lo + 1)
        n = hi - lo + 1;
    /* [1024, 2047] inside the range first (finding 5) */
    low_lo = lo > 1024 ? lo : 1024;
    low_hi = hi < 2047 ? hi : 2047;
    if (low_lo <= low_hi) {
        nlow = low_hi - low_lo + 1;
        int take = n < nlow ? n : nlow;
        bd_sample(low_lo, nlow, take, out, rnd, rarg);
        done = take;
    }
    if (done == n)
        return n;
    if (nlow == 0) {
        bd_sample(lo, hi - lo + 1, n, out, rnd, rarg);
        return n;
    }
    /* the rest: [lo, low_lo) and (low_hi, hi] as one range of offsets with the hole skipped.
     * Sampled as offsets into a virtual range of size rest, mapped after. */
    {
        int below = low_lo - lo, above = hi - low_hi, rest = below + above;
        int want = n - done;
        bd_sample(0, rest, want, out + done, rnd, rarg);
        for (int i = done; i < n; i++) {
            int off = out[i];
            out[i] = (uint16_t)(off < below ? lo + off : low_hi + 1 + (off - below));
        }
    }
    return n;
}

uint64_t bday_guess_at_us(int i, int m, int pace_ms)
{
    if (m <= 0 || pace_ms <= 0 || i <= 0)
        return 0;
    if (i >= m)
        return (uint64_t)pace_ms * 1000u;
    return (uint64_t)i * (uint64_t)pace_ms * 1000u / (uint64_t)m;
}

uint64_t bday_hard_close_ms(int pace_ms)
{
    uint64_t ms = (uint64_t)(pace_ms > 0 ? pace_ms : 0) + BDAY_HARD_GRACE_MS;
    return ms < BDAY_HARD_MAX_LIFE_MS ? ms : BDAY_HARD_MAX_LIFE_MS;
}

/* A guess lives BDAY_GUESS_LIFE_MS and is closed by the next tick after that (BD_EASY_TICK_MS
 * while guesses are still going out, when the peak is): any window of LIFE + TICK holds at
 * most floor(window * m / pace) + 1 of the evenly spaced send times. */
int bday_live_guesses(int m, int pace_ms)
{
    uint64_t w = BDAY_GUESS_LIFE_MS + BD_EASY_TICK_MS, n;
    if (m <= 0)
        return 0;
    if (pace_ms <= 0)
        return m;
    n = w * (uint64_t)m / (uint64_t)pace_ms + 1;
    return n >= (uint64_t)m ? m : (int)n;
}

int bday_fit(enum proto_bday_role role, int want, int pace_ms, long open, long limit)
{
    long avail;
    int lo, hi;
    if (want <= 0 || open < 0 || limit <= 0)
        return 0;
    avail = limit - open - BDAY_FD_RESERVE;
    if (avail <= 0)
        return 0;
    if (role == PROTO_BDAY_HARD)
        return want <= avail ? want : (int)avail;
    if (bday_live_guesses(want, pace_ms) <= avail)
        return want;
    /* the largest m with live(m) <= avail: live is nondecreasing in m; at most 13 steps */
    lo = 0;
    hi = want;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (bday_live_guesses(mid, pace_ms) <= avail)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* ---- descriptors ---- */

/* Descriptors in use: the entries of /proc/self/fd (one pass over a few hundred names, once
 * per attempt), less the directory's own. Without /proc, the probe of every number below
 * min(limit, 65536) with F_GETFD: exact, and once per attempt. */
static long bd_fds_open(long limit)
{
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                n++;
        closedir(d);
        return n > 0 ? n - 1 : 0;
    }
    if (limit > 65536 || limit <= 0)
        limit = 65536;
    for (long fd = 0; fd < limit; fd++)
        if (fcntl((int)fd, F_GETFD) >= 0)
            n++;
    return n;
}

/* Raises RLIMIT_NOFILE's soft limit to what the attempt needs (at most the hard limit), then
 * fits k or m into what there is. Returns the count to plan, 0 when nothing fits. The raised
 * limit is left raised after the attempt, on purpose: it is still within the hard limit the
 * process was given, descriptors are only used when opened, and lowering it again would race
 * with whatever else opened descriptors meanwhile (nothing is gained by restoring it). */
static int bd_fit_fds(const struct bday_cfg *cfg, int want, bool *fitted)
{
    struct rlimit rl;
    long open, need, got;
    int sockets = cfg->role == PROTO_BDAY_HARD ? want : bday_live_guesses(want, cfg->pace_ms);
    int n;
    *fitted = false;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return want; /* nothing known: the sockets' own EMFILE will say */
    got = rl.rlim_cur == RLIM_INFINITY ? 1L << 30 : (long)rl.rlim_cur;
    open = bd_fds_open(got);
    need = open + BDAY_FD_RESERVE + sockets;
    if (need > got && (rl.rlim_max == RLIM_INFINITY || (long)rl.rlim_max > got)) {
        struct rlimit nr = rl;
        long to =
            rl.rlim_max == RLIM_INFINITY || need <= (long)rl.rlim_max ? need : (long)rl.rlim_max;
        nr.rlim_cur = (rlim_t)to;
        if (setrlimit(RLIMIT_NOFILE, &nr) == 0) {
            LOG_D("birthday: descriptor limit raised from %ld to %ld", got, to);
            got = to;
        }
    }
    n = bday_fit(cfg->role, want, cfg->pace_ms, open, got);
    if (n < want) {
        *fitted = true;
        LOG_I("birthday: %d of %d %s fit the descriptor limit (%ld, %ld in use, %d kept free)", n,
              want, cfg->role == PROTO_BDAY_HARD ? "sockets" : "guesses", got, open,
              BDAY_FD_RESERVE);
    }
    return n;
}

/* ---- the engine ---- */

static void bd_handle_closed(uv_handle_t *h);

static void bd_free_if_done(struct bday *b)
{
    if (b->stopped && b->handles == 0) {
        free(b->slot);
        free(b->order);
        free(b);
    }
}

static void bd_handle_closed(uv_handle_t *h)
{
    struct bday *b;
    if (h->type == UV_POLL)
        b = ((struct bsock *)h->data)->b;
    else
        b = h->data;
    b->handles--;
    bd_free_if_done(b);
}

/* Ends a live socket: its handle closed, its fd closed unless keep (handed over). */
static void bd_end(struct bsock *s, bool keep)
{
    struct bday *b = s->b;
    if (s->state != BS_LIVE)
        return;
    s->state = BS_DONE;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, bd_handle_closed);
    if (!keep)
        close(s->fd);
    s->fd = -1;
    b->live--;
}

/* A socket's error: what the path line reports (design section 7). ICMP unreachable and time
 * exceeded end a SYN_SENT socket on Linux with one of the first group (finding 4). */
static void bd_count_err(struct bday *b, int err, bool sent)
{
    switch (err) {
    case ECONNREFUSED:
        b->st.refused++;
        break;
    case ETIMEDOUT:
        /* a hard socket the kernel gave up (TCP_SYNCNT 1): expired, as at our own close */
        if (!sent || b->cfg.role != PROTO_BDAY_HARD)
            b->st.other_err++;
        break;
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EHOSTDOWN:
    case ENETDOWN:
    case ENONET:
    case EPROTO:
    case ENOPROTOOPT:
        /* refused on the spot (no route) is no ICMP and no SYN */
        if (sent)
            b->st.icmp++;
        else
            b->st.other_err++;
        break;
    default:
        b->st.other_err++;
        break;
    }
}

/* Over when nothing more can come: every connect() made (or no more to be made) and no socket
 * live. Returns true when the over callback ran (the caller then touches nothing). */
static bool bd_maybe_over(struct bday *b)
{
    if (b->stopped || b->over_called || !b->sending_done || b->live > 0)
        return false;
    b->over_called = true;
    uv_timer_stop(&b->tick);
    uv_timer_stop(&b->end);
    LOG_D("birthday (%s): over: %d of %d sent, %d connected, %d refused, %d ICMP, %d other, "
          "%d live at most",
          b->cfg.role == PROTO_BDAY_HARD ? "hard" : "easy", b->st.sent, b->st.planned,
          b->st.connected, b->st.refused, b->st.icmp, b->st.other_err, b->st.live_max);
    if (b->over)
        b->over(b, b->arg);
    return true;
}

static void bd_on_poll(uv_poll_t *h, int status, int events)
{
    struct bsock *s = h->data;
    struct bday *b = s->b;
    int soerr = 0, fd = s->fd, index = s->index;
    socklen_t len = sizeof soerr;
    (void)events;

    if (b->stopped || s->state != BS_LIVE)
        return;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr == 0 && status < 0)
        soerr = -status;
    if (soerr == 0) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0) {
            if (errno == ENOTCONN)
                return; /* not yet: a spurious wakeup, keep watching */
            soerr = errno;
        }
    }
    if (soerr != 0) {
        bd_count_err(b, soerr, true);
        bd_end(s, false);
        bd_maybe_over(b);
        return;
    }
    bd_end(s, true);
    b->st.connected++;
    b->st.winner_index = index;
    /* the easy side goes on guessing: a completed connection is not yet the peer (a service
     * listening on the hard NAT's address, a forged SYN,ACK); only its handshake says so, and
     * the punch stops the engine when one wins */
    if (b->conn)
        b->conn(b, fd, index, b->arg);
    else
        close(fd);
    if (b->stopped)
        return;
    bd_maybe_over(b);
}

static void bd_live_add(struct bday *b)
{
    b->live++;
    if (b->live > b->st.live_max)
        b->st.live_max = b->live;
}

/* Watches a socket whose connect() is under way (or done): its slot goes live. */
static void bd_watch(struct bday *b, struct bsock *s, int fd)
{
    int rc;
    s->fd = fd;
    s->b = b;
    if ((rc = uv_poll_init(b->loop, &s->poll, fd)) < 0) {
        LOG_D("birthday: poll: %s", uv_strerror(rc));
        close(fd);
        s->state = BS_DONE;
        b->st.other_err++;
        return;
    }
    b->handles++;
    s->poll.data = s;
    s->state = BS_LIVE;
    bd_live_add(b);
    uv_poll_start(&s->poll, UV_WRITABLE, bd_on_poll);
}

/* connect() on a nonblocking socket; returns 0 when it is under way (or done), else the errno
 * (the socket is then closed and counted). */
static int bd_connect(struct bday *b, int fd, const struct sockaddr_in *to)
{
    if (connect(fd, (const struct sockaddr *)to, sizeof *to) == 0 || errno == EINPROGRESS) {
        b->st.sent++;
        return 0;
    }
    int e = errno;
    /* loopback can deliver the RST before connect() returns: the SYN went out all the same */
    if (e == ECONNREFUSED)
        b->st.sent++;
    bd_count_err(b, e, false);
    close(fd);
    return e;
}

static void bd_hard_dial(struct bday *b, struct bsock *s)
{
    const struct sockaddr_in *to = (const struct sockaddr_in *)&b->cfg.target;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), ttl = b->cfg.ttl;
    int back = -1;

    s->state = BS_DONE;
    if (fd < 0) {
        LOG_D("birthday: socket: %s", strerror(errno));
        b->st.other_err++;
        return;
    }
    if (b->cfg.local.ss_family == AF_INET &&
        bind(fd, (const struct sockaddr *)&b->cfg.local, sizeof(struct sockaddr_in)) < 0) {
        LOG_D("birthday: bind: %s", strerror(errno));
        b->st.other_err++;
        close(fd);
        return;
    }
    /* the kernel gives the socket up 3 s after its first SYN whatever tcp_syn_retries says
     * (bday.h, BDAY_HARD_MAX_LIFE_MS: our own close comes first): without it, not sent */
    if (setsockopt(fd, IPPROTO_TCP, TCP_SYNCNT, &(int){1}, sizeof(int)) < 0) {
        LOG_D("birthday: TCP_SYNCNT 1: %s", strerror(errno));
        b->st.other_err++;
        close(fd);
        return;
    }
    if (setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl) < 0) {
        /* without the low TTL the SYN could draw the easy NAT's RST (finding 3): not sent */
        LOG_D("birthday: IP_TTL %d: %s", ttl, strerror(errno));
        b->st.other_err++;
        close(fd);
        return;
    }
    if (bd_connect(b, fd, to) != 0)
        return;
    /* the SYN has left: retransmissions and the simultaneous open's SYN,ACK travel normally.
     * -1 is Linux's "the route's default" (what a fresh socket reads); elsewhere, that value */
    if (setsockopt(fd, IPPROTO_IP, IP_TTL, &back, sizeof back) < 0)
        setsockopt(fd, IPPROTO_IP, IP_TTL, &b->ttl_default, sizeof b->ttl_default);
    s->born_us = clk_us();
    bd_watch(b, s, fd);
}

static void bd_easy_dial(struct bday *b, struct bsock *s, uint16_t port)
{
    struct sockaddr_in to;
    const struct sockaddr_in *local = (const struct sockaddr_in *)&b->cfg.local;
    char err[160];
    int fd;

    s->state = BS_DONE;
    memcpy(&to, &b->cfg.target, sizeof to);
    to.sin_port = htons(port);
    if (to.sin_addr.s_addr == local->sin_addr.s_addr && to.sin_port == local->sin_port) {
        b->st.other_err++; /* ourselves: a TCP self-connect, never the peer */
        return;
    }
    if ((fd = sk_open_bound((const struct sockaddr *)local, err, sizeof err)) < 0) {
        LOG_D("birthday: %s", err);
        b->st.other_err++;
        return;
    }
    /* EADDRINUSE / EADDRNOTAVAIL here: that 4-tuple exists already (another socket of the
     * shared port talks to this port of the target): the guess is skipped, as other_err */
    if (bd_connect(b, fd, &to) != 0)
        return;
    s->born_us = clk_us();
    bd_watch(b, s, fd);
}

static void bd_close_all(struct bday *b)
{
    for (int i = 0; i < b->next && i < b->n; i++)
        bd_end(&b->slot[i], false);
}

static void bd_on_end(uv_timer_t *t)
{
    struct bday *b = t->data;
    if (b->stopped || b->over_called)
        return;
    b->sending_done = true;
    uv_timer_stop(&b->tick);
    bd_close_all(b);
    bd_maybe_over(b);
}

static void bd_hard_tick(struct bday *b)
{
    int stop = b->next + BD_HARD_BATCH;
    if (clk_us() < b->begin_us)
        return; /* the loop's cached time fired us early */
    if (stop > b->n)
        stop = b->n;
    while (b->next < stop && !b->stopped)
        bd_hard_dial(b, &b->slot[b->next++]);
    if (b->next >= b->n) {
        b->sending_done = true;
        uv_timer_stop(&b->tick);
        bd_maybe_over(b);
    }
}

static void bd_easy_tick(struct bday *b)
{
    uint64_t now = clk_us();
    uint64_t life = (uint64_t)BDAY_GUESS_LIFE_MS * 1000u;

    /* the sweep: guesses go out in slot order, so they expire in it */
    while (b->sweep_from < b->next) {
        struct bsock *s = &b->slot[b->sweep_from];
        if (s->state == BS_LIVE && now - s->born_us < life)
            break;
        bd_end(s, false);
        b->sweep_from++;
    }
    if (!b->sending_done && now >= b->begin_us) {
        uint64_t el = now - b->begin_us, due = bday_guess_at_us(b->next, b->n, b->cfg.pace_ms);
        /* a late tick (a busy loop, a start already past) sends what is due within the slack
         * and shifts the rest: the guesses are never denser than the pace, plus the slack */
        if (el > due + BD_EASY_SLACK_US) {
            b->begin_us += el - due - BD_EASY_SLACK_US;
            el = due + BD_EASY_SLACK_US;
        }
        while (b->next < b->n && bday_guess_at_us(b->next, b->n, b->cfg.pace_ms) <= el) {
            int i = b->next++;
            bd_easy_dial(b, &b->slot[i], b->order[i]);
        }
        if (b->next >= b->n) {
            b->sending_done = true;
            uv_timer_set_repeat(&b->tick, BD_SWEEP_MS);
        }
    }
    bd_maybe_over(b);
}

static void bd_on_tick(uv_timer_t *t)
{
    struct bday *b = t->data;
    if (b->stopped || b->over_called)
        return;
    if (b->cfg.role == PROTO_BDAY_HARD)
        bd_hard_tick(b);
    else
        bd_easy_tick(b);
}

static uint32_t bd_rnd(void *arg)
{
    (void)arg;
    return randombytes_random();
}

static bool bd_port_ok(int p)
{
    return p >= 1 && p <= 65535;
}

/* The plan's bounds, checked again here: the engine is the last line before the wire. */
static bool bd_check(const struct bday_cfg *c, char *err, size_t errlen)
{
    const struct sockaddr_in *t = (const struct sockaddr_in *)&c->target;
    const struct sockaddr_in *l = (const struct sockaddr_in *)&c->local;
    if (c->target.ss_family != AF_INET) {
        snprintf(err, errlen, "birthday: the target is not an IPv4 address");
        return false;
    }
    if (t->sin_addr.s_addr == htonl(INADDR_ANY) || t->sin_addr.s_addr == htonl(INADDR_BROADCAST)) {
        snprintf(err, errlen, "birthday: the target address is not a host");
        return false;
    }
    if (c->easy_delay_us > PROTO_BDAY_MAX_DELAY_US) {
        snprintf(err, errlen, "birthday: easy delay %llu us out of range",
                 (unsigned long long)c->easy_delay_us);
        return false;
    }
    if (c->role == PROTO_BDAY_HARD) {
        if (c->k < 1 || c->k > PROTO_BDAY_MAX_K) {
            snprintf(err, errlen, "birthday: k %d out of 1..%d", c->k, PROTO_BDAY_MAX_K);
            return false;
        }
        if (c->ttl < 1 || c->ttl > 255) {
            snprintf(err, errlen, "birthday: ttl %d out of 1..255", c->ttl);
            return false;
        }
        if (!bd_port_ok(ntohs(t->sin_port))) {
            snprintf(err, errlen, "birthday: the target has no port");
            return false;
        }
        if (c->pace_ms < 0 || c->pace_ms > PROTO_BDAY_MAX_PACE_MS) {
            snprintf(err, errlen, "birthday: pace %d ms out of 0..%d", c->pace_ms,
                     PROTO_BDAY_MAX_PACE_MS);
            return false;
        }
        if (c->local.ss_family != AF_UNSPEC &&
            (c->local.ss_family != AF_INET || l->sin_port != 0)) {
            snprintf(err, errlen, "birthday: the hard side binds IPv4 port 0");
            return false;
        }
        return true;
    }
    if (c->role != PROTO_BDAY_EASY) {
        snprintf(err, errlen, "birthday: unknown role");
        return false;
    }
    if (c->m < 1 || c->m > PROTO_BDAY_MAX_M) {
        snprintf(err, errlen, "birthday: m %d out of 1..%d", c->m, PROTO_BDAY_MAX_M);
        return false;
    }
    if (!bd_port_ok(c->port_lo) || !bd_port_ok(c->port_hi) || c->port_lo > c->port_hi) {
        snprintf(err, errlen, "birthday: ports %d-%d out of 1..65535", c->port_lo, c->port_hi);
        return false;
    }
    if (c->pace_ms < PROTO_BDAY_MIN_PACE_MS || c->pace_ms > PROTO_BDAY_MAX_PACE_MS) {
        snprintf(err, errlen, "birthday: pace %d ms out of %d..%d", c->pace_ms,
                 PROTO_BDAY_MIN_PACE_MS, PROTO_BDAY_MAX_PACE_MS);
        return false;
    }
    if (c->local.ss_family != AF_INET || l->sin_port == 0) {
        snprintf(err, errlen, "birthday: the easy side needs its shared IPv4 port");
        return false;
    }
    return true;
}

/* Before anything is sent: the socket work the role needs, tried once (a socket error now is
 * bday_start's NULL, not k or m silent failures later). */
static bool bd_probe(struct bday *b, char *err, size_t errlen)
{
    int fd;
    if (b->cfg.role == PROTO_BDAY_EASY) {
        if ((fd = sk_open_bound((const struct sockaddr *)&b->cfg.local, err, errlen)) < 0)
            return false;
        close(fd);
        return true;
    }
    socklen_t len = sizeof b->ttl_default;
    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
        snprintf(err, errlen, "birthday: socket: %s", strerror(errno));
        return false;
    }
    if (getsockopt(fd, IPPROTO_IP, IP_TTL, &b->ttl_default, &len) < 0 || b->ttl_default < 1 ||
        b->ttl_default > 255) {
        snprintf(err, errlen, "birthday: reading IP_TTL: %s", strerror(errno));
        close(fd);
        return false;
    }
    if (setsockopt(fd, IPPROTO_TCP, TCP_SYNCNT, &(int){1}, sizeof(int)) < 0) {
        snprintf(err, errlen, "birthday: TCP_SYNCNT 1: %s", strerror(errno));
        close(fd);
        return false;
    }
    if (setsockopt(fd, IPPROTO_IP, IP_TTL, &b->cfg.ttl, sizeof b->cfg.ttl) < 0) {
        snprintf(err, errlen, "birthday: IP_TTL %d: %s", b->cfg.ttl, strerror(errno));
        close(fd);
        return false;
    }
    close(fd);
    return true;
}

struct bday *bday_start(uv_loop_t *loop, const struct bday_cfg *cfg, bday_conn_cb conn,
                        bday_over_cb over, void *arg, char *err, size_t errlen)
{
    struct bday *b;
    uint64_t now, at;
    int want;

    if (!loop || !cfg) {
        snprintf(err, errlen, "birthday: no configuration");
        return NULL;
    }
    if (!bd_check(cfg, err, errlen))
        return NULL;
    if (!(b = calloc(1, sizeof *b))) {
        snprintf(err, errlen, "birthday: out of memory");
        return NULL;
    }
    b->loop = loop;
    b->cfg = *cfg;
    b->conn = conn;
    b->over = over;
    b->arg = arg;
    b->st.winner_index = -1;
    if (!bd_probe(b, err, errlen))
        goto fail;

    want = cfg->role == PROTO_BDAY_HARD ? cfg->k : cfg->m;
    if (cfg->role == PROTO_BDAY_EASY) {
        if (!(b->order = malloc(sizeof *b->order * (size_t)want))) {
            snprintf(err, errlen, "birthday: out of memory");
            goto fail;
        }
        want = bday_guess_order(cfg->port_lo, cfg->port_hi, want, b->order, bd_rnd, NULL);
    }
    b->n = bd_fit_fds(cfg, want, &b->st.fitted);
    if (b->n <= 0) {
        snprintf(err, errlen, "birthday: no descriptors for even one %s",
                 cfg->role == PROTO_BDAY_HARD ? "socket" : "guess");
        goto fail;
    }
    b->st.planned = b->n;
    if (!(b->slot = calloc((size_t)b->n, sizeof *b->slot))) {
        snprintf(err, errlen, "birthday: out of memory");
        goto fail;
    }
    for (int i = 0; i < b->n; i++) {
        b->slot[i].b = b;
        b->slot[i].fd = -1;
        b->slot[i].index = i;
    }

    b->begin_us = cfg->start_us + (cfg->role == PROTO_BDAY_EASY ? cfg->easy_delay_us : 0);
    if (log_enabled(LOG_DEBUG)) {
        char ep[EP_STRLEN];
        ep_format((const struct sockaddr *)&cfg->target, ep, sizeof ep);
        if (cfg->role == PROTO_BDAY_HARD)
            LOG_D("birthday (hard): %d sockets to %s, first SYN with TTL %d (then %d), closed "
                  "%d ms after t0",
                  b->n, ep, cfg->ttl, b->ttl_default, (int)bday_hard_close_ms(cfg->pace_ms));
        else
            LOG_D("birthday (easy): %d guesses in %d-%d of %s from port %d over %d ms, %llu us "
                  "after t0",
                  b->n, cfg->port_lo, cfg->port_hi, ep,
                  ntohs(((const struct sockaddr_in *)&cfg->local)->sin_port), cfg->pace_ms,
                  (unsigned long long)cfg->easy_delay_us);
    }
    uv_timer_init(loop, &b->tick);
    uv_timer_init(loop, &b->end);
    b->tick.data = b->end.data = b;
    b->handles = 2;
    uv_update_time(loop);
    now = clk_us();
    at = b->begin_us > now ? (b->begin_us - now + 999) / 1000 : 0;
    uv_timer_start(&b->tick, bd_on_tick, at,
                   cfg->role == PROTO_BDAY_HARD ? BD_HARD_TICK_MS : BD_EASY_TICK_MS);
    if (cfg->role == PROTO_BDAY_HARD) {
        uint64_t end_us = cfg->start_us + bday_hard_close_ms(cfg->pace_ms) * 1000u;
        uv_timer_start(&b->end, bd_on_end, end_us > now ? (end_us - now + 999) / 1000 : 0, 0);
    }
    return b;
fail:
    free(b->order);
    free(b->slot);
    free(b);
    return NULL;
}

void bday_stop(struct bday *b)
{
    if (!b || b->stopped)
        return;
    bd_close_all(b);
    b->stopped = true;
    uv_close((uv_handle_t *)&b->tick, bd_handle_closed);
    uv_close((uv_handle_t *)&b->end, bd_handle_closed);
    /* freed by the last close callback (there are at least the two timers') */
}

void bday_get_stats(const struct bday *b, struct bday_stats *out)
{
    if (!out)
        return;
    if (!b) {
        memset(out, 0, sizeof *out);
        out->winner_index = -1;
        return;
    }
    *out = b->st;
}
