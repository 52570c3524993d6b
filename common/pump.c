#include "common/pump.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/seal.h"
#include "common/sock.h"

/* Sealed mode: room for the records around PUMP_BUF bytes of plaintext, the stream header and
 * the final record. */
#define PUMP_SEAL_SLACK ((PUMP_BUF / SEAL_CHUNK + 1) * SEAL_OVERHEAD + SEAL_HEADER + SEAL_OVERHEAD)

/* Plain mode moves a direction whose local end is a pipe with splice(2), pipe <-> socket in the
 * kernel: no copy through buf, and the pipe itself is the direction's bounded buffer. */
#define PUMP_SPLICE_MAX (1024 * 1024) /* asked per splice call; a pipe holds less */

struct pump_dir {
    char *buf;
    size_t len, off;
    bool src_open; /* more may come from the source */
    bool dst_open; /* destination not yet closed */
    bool splice;   /* plain mode: splice(2) moves this direction once buf is empty */
    bool blocked;  /* splice: the last call could not go on; wait until dst takes more */
};

struct pump {
    int net, in, out;
    struct pump_dir up;   /* in -> net */
    struct pump_dir down; /* net -> out */
    struct pump_stats *st;
    char *err;
    size_t errlen;
    /* sealed mode only */
    bool sealed;
    struct seal_tx tx;
    struct seal_rx rx;
    unsigned char *plain;  /* in -> net: plaintext before sealing into up.buf */
    size_t up_plain;       /* plaintext bytes sealed in up.buf, counted once it is sent */
    unsigned char *cipher; /* net -> out: records not opened yet */
    size_t clen;
    bool final_seen; /* the peer's final record arrived */
    uint64_t linger_ms; /* when both final records were through (0: not yet) */
};

static bool pump_dir_done(const struct pump_dir *d)
{
    return !d->src_open && d->len == d->off;
}

/* Finishes a direction once its source ended and its buffer drained. */
static void pump_finish(struct pump *p)
{
    if (pump_dir_done(&p->up) && p->up.dst_open) {
        shutdown(p->net, SHUT_WR);
        p->up.dst_open = false;
    }
    if (pump_dir_done(&p->down) && p->down.dst_open) {
        /* closing stdout is how a pipeline reader learns the stream ended */
        if (p->out != p->in)
            sk_close_keep_std(p->out);
        else
            shutdown(p->out, SHUT_WR);
        p->down.dst_open = false;
    }
}

static bool pump_transient(int e)
{
    return e == EAGAIN || e == EWOULDBLOCK || e == EINTR;
}

/* Opens whole records from p->cipher into the empty down buffer, as many as fit. */
static enum pump_status pump_open(struct pump *p)
{
    size_t off = 0;
    enum pump_status rc = PUMP_DONE;
    while (p->down.len + SEAL_CHUNK <= PUMP_BUF) {
        size_t used, plen;
        enum seal_status s = seal_rx_next(&p->rx, p->cipher + off, p->clen - off, &used,
                                          (unsigned char *)p->down.buf + p->down.len, &plen);
        off += used;
        if (s == SEAL_NEED)
            break;
        if (s != SEAL_DATA && s != SEAL_FINAL) {
            snprintf(p->err, p->errlen, "%s", seal_strerror(s));
            rc = PUMP_NET_LOST;
            break;
        }
        p->down.len += plen;
        p->final_seen = p->final_seen || s == SEAL_FINAL;
    }
    memmove(p->cipher, p->cipher + off, p->clen - off);
    p->clen -= off;
    return rc;
}

static enum pump_status pump_fill_sealed(struct pump *p, bool from_net)
{
    ssize_t r =
        from_net ? read(p->net, p->cipher + p->clen, PUMP_BUF) : read(p->in, p->plain, PUMP_BUF);
    if (r < 0 && pump_transient(errno))
        return PUMP_DONE;
    if (r < 0) {
        snprintf(p->err, p->errlen, "%s: %s", from_net ? "connection lost" : "reading input",
                 strerror(errno));
        return from_net ? PUMP_NET_LOST : PUMP_LOCAL_ERR;
    }
    if (!from_net) {
        unsigned char *out = (unsigned char *)p->up.buf;
        p->up.off = 0;
        p->up.len =
            r > 0 ? seal_tx_data(&p->tx, p->plain, (size_t)r, out) : seal_tx_final(&p->tx, out);
        p->up_plain = (size_t)r;
        p->up.src_open = r > 0;
        return PUMP_DONE;
    }
    if (r == 0) {
        /* a clean end is the final record, then EOF: anything else may be a cut */
        if (!p->final_seen) {
            snprintf(p->err, p->errlen, "connection lost (stream ended without its final record)");
            return PUMP_NET_LOST;
        }
        p->down.src_open = false;
        return PUMP_DONE;
    }
    p->clen += (size_t)r;
    return pump_open(p);
}

static uint64_t pump_wall_us(void);

/* One splice(2) of the direction d (buf empty) from src to dst. Both ends non-blocking (the
 * socket is O_NONBLOCK, the pipe side SPLICE_F_NONBLOCK): EAGAIN means the pipe was empty or
 * dst full, and the direction then waits for dst (an empty source only costs one wake-up).
 * A kernel that cannot splice these two (EINVAL) leaves the direction to read/write. */
static enum pump_status pump_splice(struct pump *p, struct pump_dir *d, int src, int dst,
                                    bool from_net)
{
    ssize_t r = splice(src, NULL, dst, NULL, PUMP_SPLICE_MAX, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    d->blocked = false;
    if (r > 0) {
        p->st->spliced += (uint64_t)r;
        if (from_net) {
            if (!p->st->received)
                p->st->first_rx_us = pump_wall_us();
            p->st->received += (uint64_t)r;
        } else {
            p->st->sent += (uint64_t)r;
        }
        return PUMP_DONE;
    }
    if (r == 0) {
        d->src_open = false;
        return PUMP_DONE;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        d->blocked = true;
        return PUMP_DONE;
    }
    if (errno == EINTR)
        return PUMP_DONE;
    if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
        d->splice = false;
        return PUMP_DONE;
    }
    /* from the net, only a full stop of out (EPIPE) is ours; to the net, every error is the
     * connection's (reading a pipe does not fail) */
    if (from_net && errno == EPIPE) {
        snprintf(p->err, p->errlen, "writing output: %s", strerror(errno));
        return PUMP_LOCAL_ERR;
    }
    snprintf(p->err, p->errlen, "connection lost: %s", strerror(errno));
    return PUMP_NET_LOST;
}

static enum pump_status pump_fill_plain(struct pump *p, struct pump_dir *d, int fd, bool from_net)
{
    ssize_t r;
    if (d->splice)
        return pump_splice(p, d, fd, from_net ? p->out : p->net, from_net);
    r = read(fd, d->buf, PUMP_BUF);
    if (r > 0) {
        d->len = (size_t)r;
        d->off = 0;
        return PUMP_DONE;
    }
    if (r == 0) {
        d->src_open = false;
        return PUMP_DONE;
    }
    if (pump_transient(errno))
        return PUMP_DONE;
    snprintf(p->err, p->errlen, "%s: %s", from_net ? "connection lost" : "reading input",
             strerror(errno));
    return from_net ? PUMP_NET_LOST : PUMP_LOCAL_ERR;
}

static enum pump_status pump_fill(struct pump *p, struct pump_dir *d, int fd, bool from_net)
{
    return p->sealed ? pump_fill_sealed(p, from_net) : pump_fill_plain(p, d, fd, from_net);
}

static uint64_t pump_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static enum pump_status pump_drain(struct pump *p, struct pump_dir *d, int fd, bool to_net)
{
    ssize_t w = to_net ? send(fd, d->buf + d->off, d->len - d->off, MSG_NOSIGNAL)
                       : write(fd, d->buf + d->off, d->len - d->off);
    if (w >= 0) {
        d->off += (size_t)w;
        if (to_net && !p->sealed)
            p->st->sent += (uint64_t)w;
        else if (!to_net) {
            if (!p->st->received && w > 0)
                p->st->first_rx_us = pump_wall_us();
            p->st->received += (uint64_t)w;
        }
        if (d->off == d->len) {
            if (to_net && p->sealed) {
                p->st->sent += p->up_plain;
                p->up_plain = 0;
            }
            d->off = d->len = 0;
        }
        return PUMP_DONE;
    }
    if (pump_transient(errno))
        return PUMP_DONE;
    snprintf(p->err, p->errlen, "%s: %s", to_net ? "connection lost" : "writing output",
             strerror(errno));
    return to_net ? PUMP_NET_LOST : PUMP_LOCAL_ERR;
}

/* poll's timeout: -1 (none: an idle session stays up, TCP keepalive finds dead peers), except
 * once both final records are through: then all data is in, and only the peer's FIN is
 * missing. A peer that never sends it must not hold us (or a --forward slot) for ever, so we
 * wait PUMP_LINGER_MS for it and then end as if it had come. */
static int pump_timeout(struct pump *p)
{
    uint64_t now;
    if (!p->sealed || !p->final_seen || p->up.dst_open || !p->down.src_open)
        return -1;
    now = clk_ms();
    if (!p->linger_ms)
        p->linger_ms = now;
    if (now - p->linger_ms >= PUMP_LINGER_MS) {
        p->down.src_open = false; /* nothing more may come: the final record was the end */
        return 0;
    }
    return (int)(PUMP_LINGER_MS - (now - p->linger_ms));
}

static enum pump_status pump_loop(struct pump *p)
{
    for (;;) {
        struct pollfd pf[3];
        int n = 0, i_in = -1, i_net = -1, i_out = -1, timeout;
        enum pump_status s = PUMP_DONE;

        /* records that arrived while out was busy are opened before reading more */
        if (p->sealed && p->down.len == 0 && p->clen > 0 && (s = pump_open(p)) != PUMP_DONE)
            return s;
        pump_finish(p);
        if (pump_dir_done(&p->up) && pump_dir_done(&p->down))
            return PUMP_DONE;
        if ((timeout = pump_timeout(p)) == 0)
            continue; /* the linger is over: finish */
        if (p->up.src_open && p->up.len == 0 && !p->up.blocked) {
            pf[n] = (struct pollfd){.fd = p->in, .events = POLLIN};
            i_in = n++;
        }
        pf[n] = (struct pollfd){.fd = p->net, .events = 0};
        if (p->up.len > 0 || p->up.blocked)
            pf[n].events |= POLLOUT;
        if (p->down.src_open && p->down.len == 0 && !p->down.blocked)
            pf[n].events |= POLLIN;
        if (pf[n].events == 0)
            pf[n].fd = -1; /* else a hung-up socket would wake poll forever */
        i_net = n++;
        if (p->down.len > 0 || p->down.blocked) {
            pf[n] = (struct pollfd){.fd = p->out, .events = POLLOUT};
            i_out = n++;
        }
        if (poll(pf, (nfds_t)n, timeout) < 0) {
            if (errno == EINTR)
                continue;
            snprintf(p->err, p->errlen, "poll: %s", strerror(errno));
            return PUMP_LOCAL_ERR;
        }
        if (i_in >= 0 && pf[i_in].revents) {
            s = pump_fill(p, &p->up, p->in, false);
            /* the socket is non-blocking and rarely full: send now rather than after one more
             * poll (a full one gives EAGAIN, and POLLOUT is waited for as before) */
            if (s == PUMP_DONE && p->up.len > 0)
                s = pump_drain(p, &p->up, p->net, true);
        }
        if (s == PUMP_DONE && (pf[i_net].revents & (POLLIN | POLLHUP | POLLERR)) &&
            p->down.src_open && p->down.len == 0 && !p->down.blocked)
            s = pump_fill(p, &p->down, p->net, true);
        if (s == PUMP_DONE && (pf[i_net].revents & (POLLOUT | POLLERR)) && p->up.len > 0)
            s = pump_drain(p, &p->up, p->net, true);
        else if (s == PUMP_DONE && (pf[i_net].revents & (POLLOUT | POLLERR)) && p->up.blocked)
            s = pump_fill(p, &p->up, p->in, false); /* the socket takes more: splice again */
        if (s == PUMP_DONE && i_out >= 0 && pf[i_out].revents && p->down.len > 0)
            s = pump_drain(p, &p->down, p->out, false);
        else if (s == PUMP_DONE && i_out >= 0 && pf[i_out].revents && p->down.blocked)
            s = pump_fill(p, &p->down, p->net, true); /* out takes more: splice again */
        if (s != PUMP_DONE)
            return s;
    }
}

static bool pump_is(int fd, mode_t type)
{
    struct stat sb;
    return fstat(fd, &sb) == 0 && (sb.st_mode & S_IFMT) == type;
}

enum pump_status pump_run(int net, int in, int out, const void *prefill, size_t prefill_len,
                          struct pump_stats *st, char *err, size_t errlen)
{
    struct pump p = {.net = net, .in = in, .out = out, .st = st, .err = err, .errlen = errlen};
    enum pump_status s;

    memset(st, 0, sizeof *st);
    p.up = (struct pump_dir){.buf = malloc(PUMP_BUF), .src_open = true, .dst_open = true};
    p.down = (struct pump_dir){.buf = malloc(PUMP_BUF), .src_open = true, .dst_open = true};
    if (!p.up.buf || !p.down.buf || prefill_len > PUMP_BUF) {
        snprintf(err, errlen, "out of memory");
        s = PUMP_LOCAL_ERR;
        goto out;
    }
    if (prefill_len) {
        memcpy(p.down.buf, prefill, prefill_len);
        p.down.len = prefill_len;
    }
    /* a pipe on the local side and a socket on the other: splice (the prefill goes by write) */
    p.up.splice = in != out && pump_is(in, S_IFIFO) && pump_is(net, S_IFSOCK);
    p.down.splice = in != out && pump_is(out, S_IFIFO) && pump_is(net, S_IFSOCK);
    fcntl(net, F_SETFL, fcntl(net, F_GETFL) | O_NONBLOCK);
    s = pump_loop(&p);
out:
    free(p.up.buf);
    free(p.down.buf);
    return s;
}

enum pump_status pump_run_sealed(int net, int in, int out, const void *prefill, size_t prefill_len,
                                 const unsigned char *tx_key, const unsigned char *rx_key,
                                 struct pump_stats *st, char *err, size_t errlen)
{
    struct pump p = {.net = net, .in = in, .out = out, .st = st, .err = err, .errlen = errlen};
    enum pump_status s;

    memset(st, 0, sizeof *st);
    p.sealed = true;
    /* all buffers once, for the whole run: no allocation per record */
    p.up = (struct pump_dir){
        .buf = malloc(PUMP_BUF + PUMP_SEAL_SLACK), .src_open = true, .dst_open = true};
    p.down = (struct pump_dir){.buf = malloc(PUMP_BUF), .src_open = true, .dst_open = true};
    p.plain = malloc(PUMP_BUF);
    p.cipher = malloc(PUMP_BUF + PUMP_SEAL_SLACK + SEAL_REC_MAX);
    if (!p.up.buf || !p.down.buf || !p.plain || !p.cipher || prefill_len > PUMP_BUF) {
        snprintf(err, errlen, "out of memory");
        s = PUMP_LOCAL_ERR;
        goto out;
    }
    /* our stream header goes first; the peer's comes first in what we read */
    seal_tx_init(&p.tx, tx_key, (unsigned char *)p.up.buf);
    p.up.len = SEAL_HEADER;
    seal_rx_init(&p.rx, rx_key);
    if (prefill_len)
        memcpy(p.cipher, prefill, prefill_len);
    p.clen = prefill_len;
    fcntl(net, F_SETFL, fcntl(net, F_GETFL) | O_NONBLOCK);
    s = pump_loop(&p);
out:
    sodium_memzero(&p.tx, sizeof p.tx);
    sodium_memzero(&p.rx, sizeof p.rx);
    free(p.up.buf);
    free(p.down.buf);
    free(p.plain);
    free(p.cipher);
    return s;
}
