#include "common/pump.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct pump_dir {
    char *buf;
    size_t len, off;
    bool src_open; /* more may come from the source */
    bool dst_open; /* destination not yet closed */
};

struct pump {
    int net, in, out;
    struct pump_dir up;   /* in -> net */
    struct pump_dir down; /* net -> out */
    struct pump_stats *st;
    char *err;
    size_t errlen;
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
            close(p->out);
        else
            shutdown(p->out, SHUT_WR);
        p->down.dst_open = false;
    }
}

static bool pump_transient(int e)
{
    return e == EAGAIN || e == EWOULDBLOCK || e == EINTR;
}

static enum pump_status pump_fill(struct pump *p, struct pump_dir *d, int fd, bool from_net)
{
    ssize_t r = read(fd, d->buf, PUMP_BUF);
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

static enum pump_status pump_drain(struct pump *p, struct pump_dir *d, int fd, bool to_net)
{
    ssize_t w = to_net ? send(fd, d->buf + d->off, d->len - d->off, MSG_NOSIGNAL)
                       : write(fd, d->buf + d->off, d->len - d->off);
    if (w >= 0) {
        d->off += (size_t)w;
        if (to_net)
            p->st->sent += (uint64_t)w;
        else
            p->st->received += (uint64_t)w;
        if (d->off == d->len)
            d->off = d->len = 0;
        return PUMP_DONE;
    }
    if (pump_transient(errno))
        return PUMP_DONE;
    snprintf(p->err, p->errlen, "%s: %s", to_net ? "connection lost" : "writing output",
             strerror(errno));
    return to_net ? PUMP_NET_LOST : PUMP_LOCAL_ERR;
}

static enum pump_status pump_loop(struct pump *p)
{
    for (;;) {
        struct pollfd pf[3];
        int n = 0, i_in = -1, i_net = -1, i_out = -1;
        enum pump_status s = PUMP_DONE;

        pump_finish(p);
        if (pump_dir_done(&p->up) && pump_dir_done(&p->down))
            return PUMP_DONE;
        if (p->up.src_open && p->up.len == 0) {
            pf[n] = (struct pollfd){.fd = p->in, .events = POLLIN};
            i_in = n++;
        }
        pf[n] = (struct pollfd){.fd = p->net, .events = 0};
        if (p->up.len > 0)
            pf[n].events |= POLLOUT;
        if (p->down.src_open && p->down.len == 0)
            pf[n].events |= POLLIN;
        if (pf[n].events == 0)
            pf[n].fd = -1; /* else a hung-up socket would wake poll forever */
        i_net = n++;
        if (p->down.len > 0) {
            pf[n] = (struct pollfd){.fd = p->out, .events = POLLOUT};
            i_out = n++;
        }
        if (poll(pf, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            snprintf(p->err, p->errlen, "poll: %s", strerror(errno));
            return PUMP_LOCAL_ERR;
        }
        if (i_in >= 0 && pf[i_in].revents)
            s = pump_fill(p, &p->up, p->in, false);
        if (s == PUMP_DONE && (pf[i_net].revents & (POLLIN | POLLHUP | POLLERR)) &&
            p->down.src_open && p->down.len == 0)
            s = pump_fill(p, &p->down, p->net, true);
        if (s == PUMP_DONE && (pf[i_net].revents & (POLLOUT | POLLERR)) && p->up.len > 0)
            s = pump_drain(p, &p->up, p->net, true);
        if (s == PUMP_DONE && i_out >= 0 && pf[i_out].revents)
            s = pump_drain(p, &p->down, p->out, false);
        if (s != PUMP_DONE)
            return s;
    }
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
    fcntl(net, F_SETFL, fcntl(net, F_GETFL) | O_NONBLOCK);
    s = pump_loop(&p);
out:
    free(p.up.buf);
    free(p.down.buf);
    return s;
}
