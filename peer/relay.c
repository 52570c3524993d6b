#include "peer/relay.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/endpoint.h"
#include "common/log.h"
#include "peer/hello.h"
#include "peer/exit.h"

enum rl_state { RL_DELAY, RL_CONNECTING, RL_CHALLENGE, RL_WAITING, RL_DONE };

struct rl {
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_poll_t poll;
    bool poll_open;
    int handles; /* freed when the last one has closed */
    int fd;
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
    size_t len;
    /* the server's current line, and never more: rl_on_readable takes bytes off the socket
     * only up to the line's newline, so whatever the other peer sent behind `relayed` stays in
     * the socket for the punch engine, which reads it as the handshake (PROTOCOL.md, "Relay") */
    char buf[PROTO_MAX_LINE];
};

static void rl_on_closed(uv_handle_t *h)
{
    struct rl *r = h->data;
    if (--r->handles == 0)
        free(r);
}

/* Closing the poll handle first matters: libuv drops the descriptor from epoll when the handle
 * closes, which must happen before anyone else registers the same descriptor. */
static void rl_close(struct rl *r, bool keep_fd)
{
    r->state = RL_DONE;
    uv_timer_stop(&r->timer);
    if (r->poll_open) {
        r->poll_open = false;
        uv_close((uv_handle_t *)&r->poll, rl_on_closed);
    }
    if (!keep_fd && r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    uv_close((uv_handle_t *)&r->timer, rl_on_closed);
}

static void rl_fail(struct rl *r, int status, const char *why)
{
    rl_done_cb done = r->done;
    void *arg = r->arg;
    rl_close(r, false);
    done(r, status, why, -1, arg);
}

static void rl_succeed(struct rl *r)
{
    rl_done_cb done = r->done;
    void *arg = r->arg;
    int fd = r->fd;
    rl_close(r, true);
    done(r, EXIT_DONE, NULL, fd, arg);
}

/* The server refused: its codes for the relay mean this path failed, not the server. */
static void rl_on_error(struct rl *r, const struct proto_msg *m)
{
    static const char *const punch_codes[] = {"relay-refused", "relay-full", "relay-disabled",
                                              "relay-timeout"};
    char why[PROTO_MAX_TEXT + PROTO_MAX_CODE + EP_STRLEN + 32];
    int status = EXIT_SERVER;
    for (size_t i = 0; i < sizeof punch_codes / sizeof punch_codes[0]; i++)
        if (strcmp(m->u.error.code, punch_codes[i]) == 0)
            status = EXIT_PUNCH;
    snprintf(why, sizeof why, "the relay at %s refused: %s (%s)", r->where, m->u.error.message,
             m->u.error.code);
    rl_fail(r, status, why);
}

static void rl_send_join(struct rl *r, const unsigned char *nonce)
{
    struct proto_msg m;
    char line[PROTO_MAX_LINE], why[300];
    int n, one = 1;
    memset(&m, 0, sizeof m);
    m.type = PROTO_RELAY;
    m.u.relay.version = PROTO_VERSION;
    memcpy(m.u.relay.session, r->session, sizeof m.u.relay.session);
    memcpy(m.u.relay.token, r->token, sizeof m.u.relay.token);
    hello_admit(r->have_secret ? r->secret : NULL, nonce, &m);
    n = proto_encode(&m, line, sizeof line);
    setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* our first bytes on a fresh connection: the send buffer takes the short line whole */
    if (n <= 0 || send(r->fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
        snprintf(why, sizeof why, "cannot send to the relay at %s: %s", r->where,
                 n <= 0 ? "encoding failed" : strerror(errno));
        rl_fail(r, EXIT_SERVER, why);
        return;
    }
    r->state = RL_WAITING;
    LOG_D("relay: waiting at %s for the other peer", r->where);
}

static void rl_on_line(struct rl *r, size_t line_len)
{
    struct proto_msg m;
    char why[400], err[300];
    enum proto_err e = proto_decode(r->buf, line_len, PROTO_TO_PEER, &m, err, sizeof err);
    if (e != PROTO_OK) {
        snprintf(why, sizeof why, "the relay at %s sent an invalid line (%s): %s", r->where,
                 proto_err_code(e), err);
        rl_fail(r, EXIT_SERVER, why);
    } else if (m.type == PROTO_ERROR) {
        rl_on_error(r, &m);
    } else if (r->state == RL_CHALLENGE && m.type == PROTO_CHALLENGE) {
        /* the server speaks first; its next line answers our relay line */
        rl_send_join(r, m.u.challenge.nonce);
    } else if (r->state == RL_CHALLENGE) {
        snprintf(why, sizeof why, "the relay at %s answered %s, not a challenge", r->where,
                 proto_type_name(m.type));
        rl_fail(r, EXIT_SERVER, why);
    } else if (m.type != PROTO_RELAYED || strcmp(m.u.relayed.session, r->session) != 0) {
        snprintf(why, sizeof why, "the relay at %s answered %s, not relayed for our session",
                 r->where, proto_type_name(m.type));
        rl_fail(r, EXIT_SERVER, why);
    } else {
        LOG_I("relay: joined at %s", r->where);
        rl_succeed(r);
    }
}

/* Takes the bytes of the server's line off the socket, and not one byte more: a peek shows
 * what has arrived, and only the part up to (and with) the first newline is read. What follows
 * `relayed` is the other peer's, written by whoever joined the session: it must reach the punch
 * engine untouched and through its bounded reads, not through a buffer of ours (the 8 KiB the
 * relay client once read here could overflow the link's prefill). A line without its newline
 * yet is read as far as it goes (it is all the server's), so the poll does not spin on it. */
static void rl_on_readable(struct rl *r)
{
    char why[300];
    char *nl;
    size_t take, room = sizeof r->buf - r->len;
    ssize_t n = recv(r->fd, r->buf + r->len, room, MSG_DONTWAIT | MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        snprintf(why, sizeof why,
                 "lost the relay connection to %s before the other peer joined: %s", r->where,
                 n == 0 ? "closed by the server" : strerror(errno));
        rl_fail(r, EXIT_SERVER, why);
        return;
    }
    nl = memchr(r->buf + r->len, '\n', (size_t)n);
    take = nl ? (size_t)(nl - (r->buf + r->len)) + 1 : (size_t)n;
    /* the peeked bytes are there: this read returns exactly them */
    if (recv(r->fd, r->buf + r->len, take, MSG_DONTWAIT) != (ssize_t)take) {
        snprintf(why, sizeof why, "lost the relay connection to %s: %s", r->where,
                 strerror(errno));
        rl_fail(r, EXIT_SERVER, why);
        return;
    }
    r->len += take;
    if (nl) {
        size_t line_len = r->len - 1;
        r->buf[line_len] = '\0';
        r->len = 0;
        rl_on_line(r, line_len);
    } else if (r->len >= sizeof r->buf) {
        snprintf(why, sizeof why, "the relay at %s sent a line over %d bytes", r->where,
                 PROTO_MAX_LINE);
        rl_fail(r, EXIT_SERVER, why);
    }
}

static void rl_on_poll(uv_poll_t *h, int status, int events)
{
    struct rl *r = h->data;
    int err = 0;
    socklen_t elen = sizeof err;
    char why[300];
    (void)events;
    if (r->state == RL_CONNECTING) {
        getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        if (status < 0 || err) {
            snprintf(why, sizeof why, "cannot reach the relay at %s: %s", r->where,
                     err ? strerror(err) : uv_strerror(status));
            rl_fail(r, EXIT_SERVER, why);
            return;
        }
        r->state = RL_CHALLENGE;
        uv_poll_start(&r->poll, UV_READABLE, rl_on_poll);
        return;
    }
    if (r->state == RL_CHALLENGE || r->state == RL_WAITING)
        rl_on_readable(r);
}

static void rl_open(struct rl *r)
{
    char why[300];
    r->fd = socket(r->server.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->fd < 0 ||
        (connect(r->fd, (struct sockaddr *)&r->server, ep_len((struct sockaddr *)&r->server)) < 0 &&
         errno != EINPROGRESS)) {
        snprintf(why, sizeof why, "cannot reach the relay at %s: %s", r->where, strerror(errno));
        rl_fail(r, EXIT_SERVER, why);
        return;
    }
    if (uv_poll_init(r->loop, &r->poll, r->fd) < 0) {
        rl_fail(r, EXIT_SERVER, "cannot watch the relay connection");
        return;
    }
    r->poll.data = r;
    r->poll_open = true;
    r->handles++;
    r->state = RL_CONNECTING;
    LOG_I("relay: connecting to %s", r->where);
    uv_poll_start(&r->poll, UV_WRITABLE, rl_on_poll);
}

static void rl_on_timer(uv_timer_t *t)
{
    rl_open(t->data);
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
    r->loop = loop;
    r->fd = -1;
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
    r->handles = 1;
    uv_timer_start(&r->timer, rl_on_timer, delay_ms, 0);
    return r;
}

void rl_cancel(struct rl *r)
{
    if (r && r->state != RL_DONE)
        rl_close(r, false);
}

void rl_describe(const struct rl *r, char *buf, size_t len)
{
    switch (r->state) {
    case RL_DELAY:
        snprintf(buf, len, "not opened (--direct-timeout %.1f s not reached)",
                 (double)r->delay_ms / 1000.0);
        break;
    case RL_CONNECTING:
    case RL_CHALLENGE:
        snprintf(buf, len, "still connecting to %s", r->where);
        break;
    case RL_WAITING:
        snprintf(buf, len, "the other peer did not join at %s in time", r->where);
        break;
    default:
        snprintf(buf, len, "ended");
        break;
    }
}
