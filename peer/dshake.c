#include "peer/dshake.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "common/clock.h"
#include "common/log.h"
#include "peer/shake.h"
#include "peer/trust.h"

/* One side's view of the exchange: what was read and not used yet. */
struct dsh {
    int fd;
    uint64_t deadline_ms;
    char buf[PROTO_MAX_LINE]; /* so that what follows the last line fits the prefill */
    size_t len;
};

static int dsh_wait(struct dsh *d, short events)
{
    uint64_t now = clk_ms();
    struct pollfd pf = {.fd = d->fd, .events = events};
    if (now >= d->deadline_ms)
        return -1;
    int r = poll(&pf, 1, (int)(d->deadline_ms - now));
    return r < 0 && errno == EINTR ? 0 : r > 0 ? 0 : -1;
}

static int dsh_send(struct dsh *d, const char *line, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(d->fd, line + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0)
            off += (size_t)w;
        else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (dsh_wait(d, POLLOUT) < 0)
                return -1;
        } else
            return -1;
    }
    return 0;
}

/* Reads until buf holds a whole line; returns its length (without the newline), or -1 with why
 * on timeout, EOF, error or an over-long line. */
static ssize_t dsh_line(struct dsh *d, char *why, size_t whylen)
{
    for (;;) {
        char *nl = memchr(d->buf, '\n', d->len);
        ssize_t r;
        if (nl)
            return nl - d->buf;
        if (d->len >= PROTO_MAX_LINE) {
            snprintf(why, whylen, "the peer sent something that is not a handshake line");
            return -1;
        }
        if (dsh_wait(d, POLLIN) < 0) {
            snprintf(why, whylen, "no handshake from the peer within %d s", DSH_TIMEOUT_MS / 1000);
            return -1;
        }
        r = recv(d->fd, d->buf + d->len, sizeof d->buf - d->len, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            snprintf(why, whylen, "the peer closed the connection during the handshake");
            return -1;
        }
        if (r > 0)
            d->len += (size_t)r;
    }
}

static void dsh_consume(struct dsh *d, size_t n)
{
    memmove(d->buf, d->buf + n, d->len - n);
    d->len -= n;
}

/* Sends ours, reads and checks theirs. */
static enum shake_verdict dsh_step(struct dsh *d, struct shake_ctx *s, enum proto_type type,
                                   struct shake_peer *peer, char *why, size_t whylen)
{
    char line[PROTO_MAX_LINE];
    enum shake_verdict v;
    int n = shake_encode(s, type, peer, line, sizeof line);
    ssize_t len;
    if (n <= 0 || dsh_send(d, line, (size_t)n) < 0) {
        snprintf(why, whylen, "cannot send the handshake");
        return SHAKE_BAD;
    }
    if ((len = dsh_line(d, why, whylen)) < 0)
        return SHAKE_BAD;
    v = shake_verify(s, type, d->buf, (size_t)len, peer, why, whylen);
    dsh_consume(d, (size_t)len + 1);
    return v;
}

static int dsh_fail(enum shake_verdict v, const char *why)
{
    if (v == SHAKE_REFUSED)
        LOG_E("%s", why);
    else
        LOG_E("direct handshake failed: %s (both sides need tcpunch direct, both with or both "
              "without --plain)",
              why);
    return EXIT_PUNCH;
}

int dsh_run(const struct peer_opts *o, struct peer_link *link, const char *name)
{
    struct shake_ctx s;
    struct shake_peer peer;
    struct dsh d = {.fd = link->fd, .deadline_ms = clk_ms() + DSH_TIMEOUT_MS};
    enum shake_verdict v;
    char why[1024];
    int rc;

    memset(&s, 0, sizeof s);
    memset(&peer, 0, sizeof peer);
    /* no server: a fixed session and placeholder ids; the fresh ephemeral keys in both
     * signatures are what make each run's handshake unique */
    memset(s.session, '0', PROTO_SESSION_LEN);
    snprintf(s.self, sizeof s.self, "direct");
    snprintf(s.peer, sizeof s.peer, "direct");
    s.symmetric = true;
    s.ident = o->ident;
    shake_init(&s);
    if ((rc = trust_prepare(o, name, NULL, &s.trust)) != EXIT_DONE)
        goto out;
    if ((v = dsh_step(&d, &s, PROTO_SHAKE, &peer, why, sizeof why)) != SHAKE_OK) {
        rc = dsh_fail(v, why);
        goto out;
    }
    shake_direct_role(&s, &peer);
    if ((v = dsh_step(&d, &s, PROTO_CONFIRM, &peer, why, sizeof why)) != SHAKE_OK ||
        shake_keys(&s, &peer, link->tx_key, link->rx_key) < 0) {
        rc = dsh_fail(v == SHAKE_OK ? SHAKE_BAD : v,
                      v == SHAKE_OK ? "the peer's ephemeral key is unusable" : why);
        goto out;
    }
    link->encrypted = true;
    memcpy(link->peer_pk, peer.key, sizeof link->peer_pk);
    memcpy(link->prefill, d.buf, d.len);
    link->prefill_len = d.len;
    trust_record(&s.trust, peer.key);
    rc = EXIT_DONE;
out:
    shake_wipe(&s);
    return rc;
}
