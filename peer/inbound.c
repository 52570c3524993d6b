#include "peer/inbound.h"

#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/endpoint.h"
#include "common/log.h"
#include "common/sock.h"

/* A reset, not a FIN: to the dialler it looks like no listener, and no TIME_WAIT stays on the
 * 4-tuple the peer may dial again. */
static void inb_rst_close(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static void inb_take(struct inb *in, int i)
{
    in->held[i] = in->held[--in->nheld];
    if (!in->nheld)
        uv_timer_stop(&in->timer);
}

void inb_init(struct inb *in, uv_loop_t *loop, const struct inb_cbs *cb)
{
    memset(in, 0, sizeof *in);
    in->loop = loop;
    in->cb = *cb;
    in->holding = true;
    uv_timer_init(loop, &in->timer);
    in->timer.data = in;
}

void inb_drop_held(struct inb *in)
{
    in->holding = false;
    while (in->nheld) {
        inb_rst_close(in->held[0].fd);
        inb_take(in, 0);
    }
}

void inb_route(struct inb *in)
{
    for (int i = 0; i < in->nheld;) {
        void *ss = in->cb.lookup(in->cb.data, (const struct sockaddr *)&in->held[i].from);
        int fd = in->held[i].fd;
        if (!ss) {
            i++;
            continue;
        }
        inb_take(in, i);
        in->cb.adopt(in->cb.data, ss, fd);
    }
}

static void inb_on_timer(uv_timer_t *t)
{
    struct inb *in = t->data;
    uint64_t now = clk_ms();
    for (int i = 0; i < in->nheld;) {
        if (now - in->held[i].ms < INB_HOLD_MS) {
            i++;
            continue;
        }
        inb_rst_close(in->held[i].fd);
        inb_take(in, i);
    }
}

/* No session expects fd (yet): hold it a moment, or reset it. */
static void inb_hold(struct inb *in, int fd, const struct sockaddr_storage *from)
{
    char ep[EP_STRLEN];
    if (!in->holding || in->nheld >= INB_HOLD) {
        LOG_D("resetting an inbound connection from %s: no session has a candidate there",
              ep_format((const struct sockaddr *)from, ep, sizeof ep));
        inb_rst_close(fd);
        return;
    }
    in->held[in->nheld].fd = fd;
    in->held[in->nheld].from = *from;
    in->held[in->nheld].ms = clk_ms();
    if (in->nheld++ == 0)
        uv_timer_start(&in->timer, inb_on_timer, 200, 200);
}

/* The listener is polled, not uv_listen'ed: libuv would accept on its own and hold the
 * connection in its handle, while the sessions' engines take plain descriptors. */
static void inb_on_readable(uv_poll_t *h, int status, int events)
{
    struct inb *in = h->data;
    struct sockaddr_storage from;
    uv_os_fd_t lfd;
    void *ss;

    (void)events;
    if (status < 0 || uv_fileno((uv_handle_t *)h, &lfd) != 0)
        return;
    for (int n = 0; n < 64; n++) { /* bounded: the loop has other work */
        socklen_t alen = sizeof from;
        int fd = accept4(lfd, (struct sockaddr *)&from, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        ep_unmap(&from);
        ss = in->cb.lookup(in->cb.data, (const struct sockaddr *)&from);
        if (!ss) {
            inb_hold(in, fd, &from);
            continue;
        }
        in->cb.adopt(in->cb.data, ss, fd);
    }
}

void inb_listen(struct inb *in, const struct sockaddr_storage *local)
{
    char err[200];
    uv_poll_t *l = &in->lst[in->nlst];
    int fd = sk_listen_reuse((const struct sockaddr *)local, 64, err, sizeof err);
    if (fd < 0) {
        LOG_D("no listener on the punch port: %s", err);
        return;
    }
    if (uv_poll_init(in->loop, l, fd) < 0) {
        close(fd);
        return;
    }
    l->data = in;
    in->lst_fd[in->nlst++] = fd;
    uv_poll_start(l, UV_READABLE, inb_on_readable);
}

static void inb_lst_closed(uv_handle_t *h)
{
    struct inb *in = h->data;
    close(in->lst_fd[(uv_poll_t *)h - in->lst]);
}

void inb_close(struct inb *in)
{
    for (int i = 0; i < in->nlst; i++)
        uv_close((uv_handle_t *)&in->lst[i], inb_lst_closed);
    in->nlst = 0;
}

void inb_free(struct inb *in)
{
    uv_close((uv_handle_t *)&in->timer, NULL);
}
