#include "peer/chan.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/sock.h"
#include "peer/bridge.h"

int chan_init(struct chan *c, struct peer_link *link)
{
    struct timeval tv = {.tv_sec = CHAN_STALL_S};
    memset(c, 0, sizeof *c);
    c->fd = link->fd;
    c->br = link->bridge;
    c->stall_ms = CHAN_STALL_S * 1000;
    c->win_ms = clk_ms();
    c->wire_cap = SEAL_HEADER + seal_tx_size(SEAL_CHUNK * 8) + SEAL_OVERHEAD;
    c->wire = malloc(c->wire_cap);
    if (!c->wire)
        return -1;
    sk_tune_stream(c->fd);
    sk_set_blocking(c->fd, true);
    /* a peer that stops reading or writing must not hang us: the calls fail with EAGAIN */
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    seal_tx_init(&c->tx, link->tx_key, c->wire);
    seal_rx_init(&c->rx, link->rx_key);
    sodium_memzero(link->tx_key, sizeof link->tx_key);
    sodium_memzero(link->rx_key, sizeof link->rx_key);
    memcpy(c->cin, link->prefill, link->prefill_len);
    c->cin_len = link->prefill_len;
    return 0;
}

static int chan_neterr(struct chan *c, const char *what, int e)
{
    if (bridge_failed(c->br))
        snprintf(c->err, sizeof c->err, "the session ended before the transfer did");
    else if (e == EAGAIN || e == EWOULDBLOCK)
        snprintf(c->err, sizeof c->err, "connection stalled: nothing %s for %d s", what,
                 CHAN_STALL_S);
    else if (e == ETIMEDOUT)
        snprintf(c->err, sizeof c->err,
                 "connection stalled: less than %d KiB %s in %d s", CHAN_PROGRESS / 1024, what,
                 c->stall_ms / 1000);
    else
        snprintf(c->err, sizeof c->err, "connection lost: %s", strerror(e));
    return -1;
}

static int chan_send_all(struct chan *c, const unsigned char *p, size_t n)
{
    uint64_t since = clk_ms();
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        /* the session was suspended while we waited: its resume timeout, not ours, applies */
        if (w < 0 && errno == EAGAIN && bridge_paused(c->br, since)) {
            since = clk_ms();
            continue;
        }
        if (w < 0)
            return chan_neterr(c, "sent", errno);
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Our stream header, kept at the front of wire by seal_tx_init, goes out before the first
 * record. */
static size_t chan_prefix(struct chan *c)
{
    if (c->header_sent)
        return 0;
    c->header_sent = true;
    return SEAL_HEADER;
}

static void chan_new_window(struct chan *c)
{
    c->win_ms = clk_ms();
    c->win_bytes = 0;
}

/* Waits for bytes to read until the progress window closes. */
static int chan_wait(struct chan *c)
{
    for (;;) {
        uint64_t now = clk_ms(), end = c->win_ms + (uint64_t)c->stall_ms;
        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        int r;
        if (now >= end && bridge_paused(c->br, c->win_ms)) {
            /* a suspension is not the peer's stall: the window starts again */
            chan_new_window(c);
            continue;
        }
        if (now >= end)
            return chan_neterr(c, "received", ETIMEDOUT);
        r = poll(&pf, 1, (int)(end - now));
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return chan_neterr(c, "received", errno);
    }
}

int chan_write(struct chan *c, const void *data, size_t n)
{
    const unsigned char *p = data;
    if (c->br) {
        if (chan_send_all(c, p, n) < 0)
            return -1;
        chan_new_window(c);
        return 0;
    }
    while (n > 0) {
        size_t take = n < SEAL_CHUNK * 8 ? n : SEAL_CHUNK * 8;
        size_t pre = chan_prefix(c);
        size_t len = pre + seal_tx_data(&c->tx, p, take, c->wire + pre);
        if (chan_send_all(c, c->wire, len) < 0)
            return -1;
        p += take;
        n -= take;
    }
    chan_new_window(c);
    return 0;
}

int chan_finish(struct chan *c)
{
    size_t pre, len;
    if (c->br) {
        /* the plain stream's end is the session's FIN: rstream makes it the final record */
        chan_new_window(c);
        if (shutdown(c->fd, SHUT_WR) < 0)
            return chan_neterr(c, "sent", errno);
        return 0;
    }
    pre = chan_prefix(c);
    len = pre + seal_tx_final(&c->tx, c->wire + pre);
    if (chan_send_all(c, c->wire, len) < 0)
        return -1;
    chan_new_window(c);
    shutdown(c->fd, SHUT_WR);
    return 0;
}

/* Over the bridge: the next bytes of the plain stream into plain. 1: data, 0: the peer's end
 * (the session's FIN), -1: error (the end of a session that was not resumed included). */
static int chan_fill_plain(struct chan *c)
{
    for (;;) {
        ssize_t r;
        if (c->final_seen)
            return 0;
        if (chan_wait(c) < 0)
            return -1;
        r = recv(c->fd, c->plain, sizeof c->plain, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue; /* chan_wait decides about stalls, the socket's timeout does not */
        if (r < 0 || (r == 0 && bridge_failed(c->br)))
            return chan_neterr(c, "received", r < 0 ? errno : ECONNRESET);
        if (r == 0) {
            c->final_seen = true;
            return 0;
        }
        if ((c->win_bytes += (size_t)r) >= CHAN_PROGRESS)
            chan_new_window(c);
        c->plen = (size_t)r;
        c->poff = 0;
        return 1;
    }
}

/* Opens the next record into plain, reading from the socket as needed. 1: data (maybe 0
 * bytes), 0: the final record, -1: error. */
static int chan_fill(struct chan *c)
{
    if (c->br)
        return chan_fill_plain(c);
    for (;;) {
        size_t used = 0, plen = 0;
        enum seal_status s;
        ssize_t r;
        if (c->final_seen)
            return 0;
        s = seal_rx_next(&c->rx, c->cin, c->cin_len, &used, c->plain, &plen);
        memmove(c->cin, c->cin + used, c->cin_len - used);
        c->cin_len -= used;
        if (s == SEAL_DATA || s == SEAL_FINAL) {
            if ((c->win_bytes += plen) >= CHAN_PROGRESS)
                chan_new_window(c);
            c->plen = plen;
            c->poff = 0;
            c->final_seen = s == SEAL_FINAL;
            if (plen > 0 || !c->final_seen)
                return 1;
            return 0;
        }
        if (s != SEAL_NEED) {
            snprintf(c->err, sizeof c->err, "%s", seal_strerror(s));
            return -1;
        }
        if (chan_wait(c) < 0)
            return -1;
        r = recv(c->fd, c->cin + c->cin_len, sizeof c->cin - c->cin_len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return chan_neterr(c, "received", errno);
        if (r == 0) {
            snprintf(c->err, sizeof c->err,
                     "connection lost (stream ended without its final record)");
            return -1;
        }
        c->cin_len += (size_t)r;
    }
}

long chan_read(struct chan *c, void *buf, size_t n)
{
    size_t take;
    while (c->poff == c->plen) {
        int f = chan_fill(c);
        if (f <= 0)
            return f;
    }
    take = c->plen - c->poff < n ? c->plen - c->poff : n;
    memcpy(buf, c->plain + c->poff, take);
    c->poff += take;
    return (long)take;
}

long chan_readline(struct chan *c, char *line, size_t cap)
{
    size_t len = 0;
    for (;;) {
        char ch;
        long r = chan_read(c, &ch, 1);
        if (r < 0)
            return -1;
        if (r == 0) {
            if (len == 0)
                return 0;
            snprintf(c->err, sizeof c->err, "the peer's stream ended inside a line");
            return -1;
        }
        if (ch == '\n' && len == 0) {
            snprintf(c->err, sizeof c->err, "the peer sent an empty line");
            return -1;
        }
        if (ch == '\n')
            break;
        if (len + 1 >= cap) {
            snprintf(c->err, sizeof c->err, "the peer sent a line over %zu bytes", cap - 1);
            return -1;
        }
        line[len++] = ch;
    }
    line[len] = '\0';
    return (long)len;
}

void chan_free(struct chan *c)
{
    sodium_memzero(&c->tx, sizeof c->tx);
    sodium_memzero(&c->rx, sizeof c->rx);
    free(c->wire);
    c->wire = NULL;
}
