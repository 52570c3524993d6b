#include "peer/chat.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/seal.h"
#include "common/sock.h"
#include "common/vis.h"
#include "peer/bridge.h"
#include "peer/events.h"

#define CHAT_LINE 4096
#define CHAT_LINGER_MS 5000 /* after we leave, how long the peer's last lines may take */

struct chat {
    const struct peer_opts *o;
    struct peer_link *link;
    bool tty;
    bool leaving; /* we sent our FIN */
    uint64_t leave_ms;
    char in[CHAT_LINE]; /* partial line typed by us */
    size_t in_len;
    char rx[CHAT_LINE]; /* partial line from the peer */
    size_t rx_len;
    char tx[4 * CHAT_LINE]; /* lines waiting to be sealed (one record holds them all) */
    size_t tx_len;
    uint64_t sent, received; /* bytes of text each way, for the closed event */
    /* the encrypted stream (common/seal.h), like the pipe's */
    struct seal_tx stx;
    struct seal_rx srx;
    unsigned char wire[SEAL_HEADER + SEAL_REC_MAX]; /* sealed bytes waiting for the socket */
    size_t wire_len;
    unsigned char cin[SEAL_HEADER + SEAL_REC_MAX + CHAT_LINE]; /* received, not yet opened */
    size_t cin_len;
    bool final_queued; /* our final record is in wire (or sent) */
    bool final_seen;   /* the peer's final record arrived */
    /* over the session bridge (peer/bridge.h): a plain stream, rstream seals the records and
     * the stream's end is the final record */
    bool plain;
};

static void chat_prompt(const struct chat *c)
{
    /* --json promises that every stderr line is an event */
    if (c->tty && !c->leaving && !c->o->json)
        fputs("> ", stderr);
}

/* Prints one line from the peer, rendered by vis_mem: a peer cannot drive our terminal (no
 * escape sequence, C1 control or invalid UTF-8 reaches it). */
static void chat_show(struct chat *c)
{
    char peer[VIS_SIZE(PROTO_MAX_ID)], text[VIS_SIZE(CHAT_LINE)];
    if (c->tty && !c->o->json)
        fputs("\r", stderr);
    vis_str(c->link->peer, peer, sizeof peer);
    vis_mem(c->rx, c->rx_len, text, sizeof text);
    printf("%s: %s\n", peer, text);
    fflush(stdout);
    c->rx_len = 0;
    chat_prompt(c);
}

static void chat_leave(struct chat *c)
{
    if (c->leaving)
        return;
    c->leaving = true;
    c->leave_ms = clk_ms();
}

/* Queues what we typed, line by line; "/quit" alone on a line ends the chat. */
static void chat_typed(struct chat *c, const char *data, size_t n)
{
    for (size_t i = 0; i < n && !c->leaving; i++) {
        if (data[i] != '\n' && c->in_len < CHAT_LINE - 1) {
            c->in[c->in_len++] = data[i];
            continue;
        }
        if (c->in_len && c->in[c->in_len - 1] == '\r')
            c->in_len--;
        if (c->in_len == 5 && memcmp(c->in, "/quit", 5) == 0) {
            chat_leave(c);
            break;
        }
        memcpy(c->tx + c->tx_len, c->in, c->in_len);
        c->tx[c->tx_len + c->in_len] = '\n';
        c->tx_len += c->in_len + 1;
        c->in_len = 0;
        if (data[i] != '\n')
            i--; /* an over-long line was split: the byte still belongs to the next part */
        chat_prompt(c);
    }
}

static void chat_received(struct chat *c, const char *data, size_t n)
{
    c->received += n;
    for (size_t i = 0; i < n; i++) {
        if (data[i] == '\n' || c->rx_len == CHAT_LINE - 1) {
            chat_show(c);
            if (data[i] == '\n')
                continue;
        }
        c->rx[c->rx_len++] = data[i];
    }
}

/* Seals what was typed (and, once we leave, the final record) and sends what the socket takes. */
static int chat_flush(struct chat *c)
{
    ssize_t w;
    if (c->wire_len == 0 && c->tx_len > 0 && c->plain) {
        memcpy(c->wire, c->tx, c->tx_len);
        c->wire_len = c->tx_len;
        c->sent += c->tx_len;
        c->tx_len = 0;
    }
    if (c->wire_len == 0 && c->tx_len > 0) {
        c->wire_len = seal_tx_data(&c->stx, c->tx, c->tx_len, c->wire);
        c->sent += c->tx_len;
        c->tx_len = 0;
    }
    if (c->wire_len == 0 && c->leaving && !c->final_queued) {
        /* plain: the shutdown that follows is the end */
        c->wire_len = c->plain ? 0 : seal_tx_final(&c->stx, c->wire);
        c->final_queued = true;
    }
    if (c->wire_len == 0)
        return 0;
    w = send(c->link->fd, c->wire, c->wire_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    memmove(c->wire, c->wire + w, c->wire_len - (size_t)w);
    c->wire_len -= (size_t)w;
    return 0;
}

/* Opens every whole record received; -1 after logging when one fails authentication. */
static int chat_open(struct chat *c)
{
    unsigned char plain[SEAL_CHUNK];
    size_t off = 0, used, plen;
    enum seal_status s;
    if (c->plain) {
        chat_received(c, (const char *)c->cin, c->cin_len);
        c->cin_len = 0;
        return 0;
    }
    do {
        s = seal_rx_next(&c->srx, c->cin + off, c->cin_len - off, &used, plain, &plen);
        off += used;
        if (s == SEAL_DATA || s == SEAL_FINAL)
            chat_received(c, (const char *)plain, plen);
        c->final_seen = c->final_seen || s == SEAL_FINAL;
    } while (s == SEAL_DATA || s == SEAL_FINAL);
    memmove(c->cin, c->cin + off, c->cin_len - off);
    c->cin_len -= off;
    if (s == SEAL_NEED)
        return 0;
    LOG_E("connection to %s: %s", c->link->peer, seal_strerror(s));
    return -1;
}

/* The peer left: end our stream properly too (our final record, then FIN), so that it sees a
 * clean end rather than a cut. It is a few bytes; a peer that does not take them within a
 * second is gone anyway. */
static void chat_goodbye(struct chat *c)
{
    uint64_t until = clk_ms() + 1000;
    while (clk_ms() < until) {
        struct pollfd pf = {.fd = c->link->fd, .events = POLLOUT};
        if (chat_flush(c) < 0)
            return;
        if (c->final_queued && !c->wire_len)
            break;
        poll(&pf, 1, 100);
    }
    shutdown(c->link->fd, SHUT_WR);
}

static int chat_loop(struct chat *c)
{
    char buf[CHAT_LINE];
    bool fin_sent = false;
    for (;;) {
        struct pollfd pf[2] = {{.fd = c->link->fd, .events = POLLIN},
                               {.fd = STDIN_FILENO, .events = POLLIN}};
        int timeout = -1;
        ssize_t r;
        if (chat_flush(c) < 0) {
            LOG_E("connection to %s lost: %s", c->link->peer, strerror(errno));
            return EXIT_LOST;
        }
        if (c->wire_len)
            pf[0].events |= POLLOUT;
        /* stop reading our input while the socket is backed up. One read of CHAT_LINE bytes
         * can queue up to 2 * CHAT_LINE + 1: a pending partial line of CHAT_LINE - 1 bytes
         * flushed, then every byte read a line of its own (newlines) or part of one */
        if (c->leaving || c->tx_len > sizeof c->tx - (2 * CHAT_LINE + 2))
            pf[1].fd = -1;
        if (c->leaving && c->final_queued && !c->wire_len && !fin_sent) {
            shutdown(c->link->fd, SHUT_WR);
            fin_sent = true;
        }
        if (c->leaving) {
            uint64_t spent = clk_ms() - c->leave_ms;
            if (spent >= CHAT_LINGER_MS)
                return EXIT_DONE;
            timeout = (int)(CHAT_LINGER_MS - spent);
        }
        if (poll(pf, 2, timeout) < 0) {
            if (errno == EINTR)
                continue;
            return EXIT_LOCAL;
        }
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            r = recv(c->link->fd, c->cin + c->cin_len, sizeof c->cin - c->cin_len, MSG_DONTWAIT);
            if (r == 0) {
                if (c->rx_len)
                    chat_show(c);
                /* plain: the end is the peer's, unless the session was lost (logged) */
                if (c->plain && bridge_failed(c->link->bridge))
                    return EXIT_LOST;
                c->final_seen = c->final_seen || c->plain;
                if (!c->final_seen) {
                    LOG_E("connection to %s lost (stream ended without its final record)",
                          c->link->peer);
                    return EXIT_LOST;
                }
                if (!c->leaving)
                    LOG_N("%s left the chat", c->link->peer);
                chat_leave(c);
                chat_goodbye(c);
                return EXIT_DONE;
            }
            if (r < 0 && errno != EAGAIN && errno != EINTR) {
                LOG_E("connection to %s lost: %s", c->link->peer, strerror(errno));
                return EXIT_LOST;
            }
            if (r > 0) {
                c->cin_len += (size_t)r;
                if (chat_open(c) < 0)
                    return EXIT_LOST;
            }
        }
        if (pf[1].fd >= 0 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            r = read(STDIN_FILENO, buf, sizeof buf);
            if (r < 0 && errno != EAGAIN && errno != EINTR) {
                LOG_E("reading input: %s", strerror(errno));
                return EXIT_LOCAL;
            }
            if (r == 0)
                chat_leave(c);
            else if (r > 0)
                chat_typed(c, buf, (size_t)r);
        }
    }
}

int chat_run(const struct peer_opts *o, struct peer_link *link)
{
    struct chat *c = calloc(1, sizeof *c);
    int rc;
    if (!c) {
        close(link->fd);
        return EXIT_LOCAL;
    }
    c->o = o;
    c->link = link;
    c->tty = isatty(STDIN_FILENO);
    /* a resumable session: the chat runs over the bridge's plain stream */
    if (bridge_start(o, link, c->tty, peer_pipe_session) < 0) {
        rc = EXIT_LOCAL;
        goto out;
    }
    c->plain = link->bridge != NULL;
    sk_tune_stream(link->fd);
    if (c->tty && !o->json) {
        char peer[VIS_SIZE(PROTO_MAX_ID)];
        fprintf(stderr, "chatting with %s; /quit or Ctrl-D to leave\n",
                vis_str(link->peer, peer, sizeof peer));
    }
    /* chat runs only after the end-to-end handshake: always sealed, here or by the session */
    seal_tx_init(&c->stx, link->tx_key, c->wire);
    c->wire_len = c->plain ? 0 : SEAL_HEADER;
    seal_rx_init(&c->srx, link->rx_key);
    sodium_memzero(link->tx_key, sizeof link->tx_key);
    sodium_memzero(link->rx_key, sizeof link->rx_key);
    memcpy(c->cin, link->prefill, link->prefill_len);
    c->cin_len = link->prefill_len;
    chat_prompt(c);
    rc = chat_open(c) < 0 ? EXIT_LOST : chat_loop(c);
    rc = bridge_end(link, rc);
    ev_closed(o, link->peer, c->sent, c->received, rc);
out:
    if (link->fd >= 0)
        close(link->fd);
    link->fd = -1;
    sodium_memzero(c, sizeof *c);
    free(c);
    return rc;
}
