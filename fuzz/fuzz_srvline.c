/* libFuzzer harness for what a rendezvous server sends a peer, through the peer's own code.
 * A server (or whoever answers on its address) is not trusted with the peer's memory: every
 * line it may send is hostile here. The input is the server's byte stream:
 *
 *   1. framed into lines as the control connection frames them (common/linebuf.c), each line
 *      decoded as PROTO_TO_PEER; a welcome sets our public endpoint; a punch goes through
 *      punch_candidates (peer/punch.c), which turns it into the engine's candidate list, for
 *      an IPv4, an IPv6 and a dual-stack control connection and with our endpoint taken from
 *      the welcome and from the punch itself (so the same-NAT LAN path is taken too), and
 *      through the events the peer prints about it (peer/events.c); every error's text goes
 *      through the error event;
 *   2. played, as it is, by a fake relay on loopback to the real relay client (peer/relay.c,
 *      rl_start): challenge, our relay line, `relayed`. When the client reports success, the
 *      line it sent must be a valid relay line for our session, it must have read nothing
 *      beyond the `relayed` line, and every byte after that line must still be in the socket
 *      (the other peer's data belongs to the punch engine: PROTOCOL.md, "Relay").
 *
 * Invariants on the candidates: at most PUNCH_MAX_CAND, no duplicates, each of a family the
 * engine can dial from its local endpoints, a nonzero port, a known kind, LAN ones only behind
 * our own public address. */
#include "fuzz/fuzz.h"
#include "common/endpoint.h"
#include "common/linebuf.h"
#include "common/log.h"
#include "peer/events.h"
#include "peer/punch.h"
#include "peer/relay.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FZ_SESSION "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
#define FZ_TOKEN "f0e1d2c3b4a5968778695a4b3c2d1e0f"
#define FZ_SPINS 400

static uv_loop_t fz_loop;
static int fz_listener = -1, fz_null = -1;
static struct sockaddr_storage fz_addr;
static struct peer_opts fz_opts;

struct fz_state {
    struct sockaddr_storage self; /* our public endpoint, from the last welcome (family 0: none) */
};

/* The events print to stderr: for their duration it is /dev/null (the fuzzer's own output and
 * FZ_CHECK's stay visible). */
static int fz_mute(void)
{
    int saved;
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    dup2(fz_null, STDERR_FILENO);
    return saved;
}

static void fz_unmute(int saved)
{
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
}

static bool fz_known_kind(const char *k)
{
    static const char *const kinds[] = {"public", "port-preserved", "ipv6", "lan"};
    for (size_t i = 0; k && i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(k, kinds[i]) == 0)
            return true;
    return false;
}

static void fz_check_cands(const struct punch_cfg *cfg, const struct proto_msg *m,
                           const struct sockaddr_storage *self)
{
    bool same = ep_same_host((const struct sockaddr *)&m->u.punch.observed,
                             (const struct sockaddr *)self);
    FZ_CHECK(cfg->ncand >= 0 && cfg->ncand <= PUNCH_MAX_CAND, "%d candidates", cfg->ncand);
    for (int i = 0; i < cfg->ncand; i++) {
        const struct sockaddr *a = (const struct sockaddr *)&cfg->cand[i].addr;
        char ep[EP_STRLEN];
        FZ_CHECK(fz_known_kind(cfg->cand[i].kind), "candidate %d of kind %s", i,
                 cfg->cand[i].kind ? cfg->cand[i].kind : "(null)");
        FZ_CHECK(a->sa_family == cfg->local.ss_family ||
                     (a->sa_family == AF_INET6 && cfg->local6.ss_family == AF_INET6),
                 "candidate %d of family %d, local %d/%d", i, a->sa_family, cfg->local.ss_family,
                 cfg->local6.ss_family);
        FZ_CHECK(ep_port(a) > 0 && ep_port(a) <= 65535, "candidate %d port %d", i, ep_port(a));
        FZ_CHECK(strcmp(cfg->cand[i].kind, "lan") != 0 || same, "a LAN candidate across NATs");
        memset(ep, 0x5a, sizeof ep);
        ep_format(a, ep, sizeof ep);
        FZ_CHECK(memchr(ep, '\0', sizeof ep) != NULL, "candidate %d formats unterminated", i);
        for (int j = 0; j < i; j++)
            FZ_CHECK(!ep_equal(a, (const struct sockaddr *)&cfg->cand[j].addr),
                     "candidates %d and %d are the same", j, i);
    }
}

/* The punch order as the control connection turns it into the engine's configuration. */
static void fz_punch(const struct proto_msg *m, const struct fz_state *st)
{
    static const int families[][2] = {{AF_INET, 0}, {AF_INET, AF_INET6}, {AF_INET6, 0}};
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (int s = 0; s < 2; s++) {
            struct punch_cfg cfg;
            const struct sockaddr_storage *self = s ? &m->u.punch.observed : &st->self;
            memset(&cfg, 0, sizeof cfg);
            cfg.local.ss_family = (sa_family_t)families[f][0];
            ep_set_port((struct sockaddr *)&cfg.local, 40000);
            if (families[f][1]) {
                cfg.local6.ss_family = AF_INET6;
                ep_set_port((struct sockaddr *)&cfg.local6, 40000);
            }
            punch_candidates(&cfg, &m->u.punch.observed,
                             m->u.punch.has_observed6 ? &m->u.punch.observed6 : NULL,
                             &m->u.punch.endpoints, self);
            fz_check_cands(&cfg, m, self);
            if (f == 1 && s == 0) {
                int saved = fz_mute();
                ev_punching(&fz_opts, m, &cfg);
                fz_unmute(saved);
            }
        }
}

static int fz_on_line(void *ctx, char *line, size_t len)
{
    struct fz_state *st = ctx;
    struct proto_msg m;
    char why[300];
    int saved;
    FZ_CHECK(len < LB_MAX && line[len] == '\0', "line of %zu bytes", len);
    if (proto_decode(line, len, PROTO_TO_PEER, &m, why, sizeof why) != PROTO_OK) {
        FZ_CHECK(memchr(why, '\0', sizeof why) && why[0], "a refusal without a reason");
        return 0;
    }
    switch (m.type) {
    case PROTO_WELCOME:
        st->self = m.u.welcome.observed;
        saved = fz_mute();
        ev_registered(&fz_opts, "fuzz.example:7000", &m);
        fz_unmute(saved);
        break;
    case PROTO_PUNCH:
        fz_punch(&m, st);
        break;
    case PROTO_ERROR:
        saved = fz_mute();
        ev_error(EXIT_SERVER, m.u.error.message);
        fz_unmute(saved);
        break;
    default:
        break;
    }
    return 0;
}

/* ---- the relay client against a fake relay ---- */

struct fz_relay {
    bool done;
    int status;
    int fd;
};

static void fz_relay_done(struct rl *r, int status, const char *why, int fd, void *arg)
{
    struct fz_relay *fr = arg;
    (void)r;
    (void)why;
    fr->done = true;
    fr->status = status;
    fr->fd = fd;
}

/* An abortive close: no TIME_WAIT left behind by a run (the fuzzer makes many). */
static void fz_reset(int fd)
{
    struct linger lg = {1, 0};
    if (fd < 0)
        return;
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* Where the server's stream ends the line that starts at off (the newline's index + 1), or 0. */
static size_t fz_line_end(const uint8_t *data, size_t size, size_t off)
{
    const uint8_t *nl = off < size ? memchr(data + off, '\n', size - off) : NULL;
    return nl ? (size_t)(nl - data) + 1 : 0;
}

static bool fz_is(const uint8_t *data, size_t off, size_t end, enum proto_type t)
{
    struct proto_msg m;
    char why[200];
    return end > off && proto_decode((const char *)data + off, end - off - 1, PROTO_TO_PEER, &m,
                                     why, sizeof why) == PROTO_OK &&
           m.type == t && (t != PROTO_RELAYED || strcmp(m.u.relayed.session, FZ_SESSION) == 0);
}

/* What the client sent the fake relay must be one valid relay line for our session. */
static void fz_check_join(int srv)
{
    char buf[PROTO_MAX_LINE + 1], why[200];
    struct proto_msg m;
    ssize_t n = recv(srv, buf, sizeof buf - 1, MSG_DONTWAIT);
    FZ_CHECK(n > 0 && buf[n - 1] == '\n' && memchr(buf, '\n', (size_t)n - 1) == NULL,
             "the relay client sent no single line");
    FZ_CHECK(proto_decode(buf, (size_t)n - 1, PROTO_TO_SERVER, &m, why, sizeof why) == PROTO_OK &&
                 m.type == PROTO_RELAY,
             "the relay client sent an invalid line: %s", why);
    FZ_CHECK(strcmp(m.u.relay.session, FZ_SESSION) == 0 && strcmp(m.u.relay.token, FZ_TOKEN) == 0,
             "the relay line names another session or token");
}

/* After success: the socket must hold exactly data[from..size), the other peer's bytes. */
static void fz_check_rest(int fd, const uint8_t *data, size_t size, size_t from)
{
    static uint8_t got[8192];
    size_t len = 0;
    for (int spin = 0; spin < FZ_SPINS; spin++) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        ssize_t n;
        if (poll(&pf, 1, 100) <= 0)
            continue;
        n = recv(fd, got + len, sizeof got - len, MSG_DONTWAIT);
        if (n == 0)
            break;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        FZ_CHECK(n > 0, "reading behind `relayed`: %s", strerror(errno));
        len += (size_t)n;
        FZ_CHECK(len <= size - from, "more behind `relayed` than was sent");
    }
    FZ_CHECK(len == size - from && memcmp(got, data + from, len) == 0,
             "the relay client consumed the peer's bytes: %zu of %zu left", len, size - from);
}

static void fz_relay(const uint8_t *data, size_t size)
{
    struct fz_relay fr = {.fd = -1};
    char err[200];
    int srv = -1;
    size_t end1, end2;
    struct rl *r = rl_start(&fz_loop, (const struct sockaddr *)&fz_addr, FZ_SESSION, FZ_TOKEN,
                            NULL, 0, fz_relay_done, &fr, err, sizeof err);
    FZ_CHECK(r != NULL, "rl_start: %s", err);
    for (int spin = 0; spin < FZ_SPINS && srv < 0 && !fr.done; spin++) {
        uv_run(&fz_loop, UV_RUN_NOWAIT);
        srv = accept4(fz_listener, NULL, NULL, SOCK_CLOEXEC);
        if (srv < 0)
            poll(NULL, 0, spin > 10 ? 1 : 0);
    }
    FZ_CHECK(srv >= 0, "the relay client did not connect to the fake relay");
    for (size_t off = 0; off < size;) {
        ssize_t w = send(srv, data + off, size - off, MSG_NOSIGNAL);
        FZ_CHECK(w > 0, "fake relay send: %s", strerror(errno));
        off += (size_t)w;
    }
    shutdown(srv, SHUT_WR);
    for (int spin = 0; spin < FZ_SPINS && !fr.done; spin++) {
        uv_run(&fz_loop, UV_RUN_NOWAIT);
        if (spin > 20)
            poll(NULL, 0, 1);
    }
    if (!fr.done)
        rl_cancel(r);
    uv_run(&fz_loop, UV_RUN_DEFAULT); /* the client's handles close, it frees itself */

    end1 = fz_line_end(data, size, 0);
    end2 = end1 ? fz_line_end(data, size, end1) : 0;
    if (fr.done && fr.status == EXIT_DONE) {
        FZ_CHECK(fz_is(data, 0, end1, PROTO_CHALLENGE) && fz_is(data, end1, end2, PROTO_RELAYED),
                 "the relay client joined without a challenge and `relayed` for its session");
        fz_check_join(srv);
        fz_check_rest(fr.fd, data, size, end2);
    }
    /* a genuine challenge and `relayed` must always get the client joined, whatever follows */
    FZ_CHECK((fr.done && fr.status == EXIT_DONE) ||
                 !(fz_is(data, 0, end1, PROTO_CHALLENGE) && fz_is(data, end1, end2, PROTO_RELAYED)),
             "a genuine challenge and `relayed` did not get the relay client joined (%s %d)",
             fr.done ? "status" : "not done", fr.status);
    if (fr.done && fr.status == EXIT_DONE)
        FZ_CHECK(fr.fd >= 0, "success without a descriptor");
    fz_reset(fr.fd);
    fz_reset(srv);
}

static void fz_setup(void)
{
    struct sockaddr_in *in = (struct sockaddr_in *)&fz_addr;
    socklen_t alen = sizeof fz_addr;
    FZ_CHECK(sodium_init() >= 0, "sodium_init failed");
    log_init("fuzz_srvline", LOG_SILENT, 0);
    FZ_CHECK(uv_loop_init(&fz_loop) == 0, "uv_loop_init");
    fz_null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    FZ_CHECK(fz_null >= 0, "/dev/null: %s", strerror(errno));
    fz_opts.json = true; /* the events are what is fuzzed; they go to /dev/null */
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fz_listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    FZ_CHECK(fz_listener >= 0 && bind(fz_listener, (struct sockaddr *)in, sizeof *in) == 0 &&
                 listen(fz_listener, 16) == 0 &&
                 getsockname(fz_listener, (struct sockaddr *)&fz_addr, &alen) == 0,
             "fake relay listener: %s", strerror(errno));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    struct lb lb;
    struct fz_state st;
    /* lb_feed frames in place, and the fuzzer's input is read-only */
    char *copy = malloc(size ? size : 1);
    if (!ready) {
        fz_setup();
        ready = true;
    }
    FZ_CHECK(copy != NULL, "out of memory");
    memcpy(copy, data, size);
    memset(&st, 0, sizeof st);
    lb_init(&lb);
    lb_feed(&lb, copy, size, fz_on_line, &st);
    lb_free(&lb);
    free(copy);
    fz_relay(data, size);
    return 0;
}
