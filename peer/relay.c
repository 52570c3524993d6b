#include "peer/relay.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/endpoint.h"
#include "common/linebuf.h"
#include "common/log.h"
#include "peer/hello.h"
#include "peer/exit.h"
#include "peer/srvconn.h"

enum rl_state { RL_DELAY, RL_OPEN, RL_DONE };

struct rl {
    uv_timer_t timer; /* the delay; the attempt is freed when it has closed */
    struct sc *sc;    /* the exchange with the server, once opened */
    enum rl_state state;
    struct sockaddr_storage server;
    char where[EP_STRLEN];
    char session[PROTO_SESSION_LEN + 1];
    char token[PROTO_TOKEN_LEN + 1];
    bool have_secret;
    unsigned char secret[32];
    uint64_t delay_ms;
    rl_done_cb done;
    void *arg;
};

static void rl_on_closed(uv_handle_t *h)
{
    free(h->data);
}

static void rl_close(struct rl *r)
{
    r->state = RL_DONE;
    sc_close(r->sc);
    r->sc = NULL;
    uv_close((uv_handle_t *)&r->timer, rl_on_closed);
}

static void rl_finish(struct rl *r, int status, const char *why, int fd)
{
    rl_done_cb done = r->done;
    void *arg = r->arg;
    rl_close(r);
    done(r, status, why, fd, arg);
}

static void rl_fail(struct rl *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void rl_fail(struct rl *r, int status, const char *fmt, ...)
{
    char why[PROTO_MAX_TEXT + PROTO_MAX_CODE + EP_STRLEN + SC_DETAIL];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    rl_finish(r, status, why, -1);
}

/* The server refused: its codes for the relay mean this path failed, not the server. */
static void rl_on_error(struct rl *r, const struct proto_msg *m)
{
    int status = EXIT_SERVER;
    switch (proto_code_parse(m->u.error.code)) {
    case PC_RELAY_REFUSED:
    case PC_RELAY_FULL:
    case PC_RELAY_DISABLED:
    case PC_RELAY_TIMEOUT:
        status = EXIT_PUNCH;
        break;
    default:
        break;
    }
    rl_fail(r, status, "the relay at %s refused: %s (%s)", r->where, m->u.error.message,
            m->u.error.code);
}

static void rl_first(struct sc *sc, void *data, const unsigned char *nonce, struct proto_msg *m)
{
    struct rl *r = data;
    (void)sc;
    m->type = PROTO_RELAY;
    m->u.relay.version = PROTO_VERSION;
    memcpy(m->u.relay.session, r->session, sizeof m->u.relay.session);
    memcpy(m->u.relay.token, r->token, sizeof m->u.relay.token);
    hello_admit(r->have_secret ? r->secret : NULL, nonce, m);
    LOG_D("relay: waiting at %s for the other peer", r->where);
}

/* The server's lines, each taken off the socket up to its newline and not one byte more
 * (SC_PEEK): what follows `relayed` is the other peer's, written by whoever joined the
 * session; it must reach the punch engine untouched and through its bounded reads, not through
 * a buffer of ours (the 8 KiB the relay client once read here could overflow the link's
 * prefill). */
static void rl_on_msg(struct sc *sc, void *data, const struct proto_msg *m, uint64_t rx_us)
{
    struct rl *r = data;
    (void)rx_us;
    if (m->type == PROTO_ERROR) {
        rl_on_error(r, m);
    } else if (sc_phase(sc) == SC_CHALLENGE) {
        rl_fail(r, EXIT_SERVER, "the relay at %s answered %s, not a challenge", r->where,
                proto_type_name(m->type));
    } else if (m->type != PROTO_RELAYED || strcmp(m->u.relayed.session, r->session) != 0) {
        rl_fail(r, EXIT_SERVER, "the relay at %s answered %s, not relayed for our session",
                r->where, proto_type_name(m->type));
    } else {
        LOG_I("relay: joined at %s", r->where);
        r->sc = NULL;
        rl_finish(r, EXIT_DONE, NULL, sc_detach(sc));
    }
}

static void rl_on_fail(struct sc *sc, void *data, const struct sc_error *e)
{
    struct rl *r = data;
    (void)sc;
    r->sc = NULL;
    switch (e->kind) {
    case SC_FAIL_SOCKET:
    case SC_FAIL_CONNECT:
    case SC_FAIL_TIMEOUT:
        rl_fail(r, EXIT_SERVER, "cannot reach the relay at %s: %s", r->where, e->detail);
        break;
    case SC_FAIL_WATCH:
        rl_fail(r, EXIT_SERVER, "cannot watch the relay connection");
        break;
    case SC_FAIL_CLOSED:
        rl_fail(r, EXIT_SERVER, "lost the relay connection to %s before the other peer joined: %s",
                r->where, e->detail);
        break;
    case SC_FAIL_LONG:
        rl_fail(r, EXIT_SERVER, "the relay at %s sent a line over %d bytes", r->where, LB_MAX);
        break;
    case SC_FAIL_INVALID:
        rl_fail(r, EXIT_SERVER, "the relay at %s sent an invalid line (%s): %s", r->where,
                proto_err_code(e->perr), e->detail);
        break;
    case SC_FAIL_SEND:
        rl_fail(r, EXIT_SERVER, "cannot send to the relay at %s: %s", r->where, e->detail);
        break;
    }
}

static const struct sc_cbs rl_cbs = {
    .first = rl_first, .msg = rl_on_msg, .fail = rl_on_fail};

static void rl_on_timer(uv_timer_t *t)
{
    struct rl *r = t->data;
    struct sc_error e;
    /* from an ephemeral port: the relay is a connection of its own, not a punch */
    struct sc_cfg cfg = {.server = (struct sockaddr *)&r->server, .flags = SC_PEEK};
    r->state = RL_OPEN;
    r->sc = sc_open(uv_handle_get_loop((uv_handle_t *)t), &cfg, &rl_cbs, r, &e);
    if (!r->sc) {
        rl_on_fail(NULL, r, &e);
        return;
    }
    LOG_I("relay: connecting to %s", r->where);
}

struct rl *rl_start(uv_loop_t *loop, const struct sockaddr *server, const char *session,
                    const char *token, const unsigned char *secret, uint64_t delay_ms,
                    rl_done_cb done, void *arg, char *err, size_t errlen)
{
    struct rl *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(&r->server, server, ep_len(server));
    ep_format(server, r->where, sizeof r->where);
    snprintf(r->session, sizeof r->session, "%s", session);
    snprintf(r->token, sizeof r->token, "%s", token);
    r->have_secret = secret != NULL;
    if (secret)
        memcpy(r->secret, secret, sizeof r->secret);
    r->delay_ms = delay_ms;
    r->done = done;
    r->arg = arg;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, rl_on_timer, delay_ms, 0);
    return r;
}

void rl_now(struct rl *r)
{
    if (r && r->state == RL_DELAY)
        uv_timer_start(&r->timer, rl_on_timer, 0, 0);
}

void rl_cancel(struct rl *r)
{
    if (r && r->state != RL_DONE)
        rl_close(r);
}

void rl_describe(const struct rl *r, char *buf, size_t len)
{
    switch (r->state) {
    case RL_DELAY:
        snprintf(buf, len, "not opened (--direct-timeout %.1f s not reached)",
                 (double)r->delay_ms / 1000.0);
        break;
    case RL_OPEN:
        if (sc_phase(r->sc) == SC_ANSWER)
            snprintf(buf, len, "the other peer did not join at %s in time", r->where);
        else
            snprintf(buf, len, "still connecting to %s", r->where);
        break;
    default:
        snprintf(buf, len, "ended");
        break;
    }
}
