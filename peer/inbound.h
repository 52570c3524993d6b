/* The shared port's listener in the waiting modes (listen, receive, chat, listen --forward):
 * one listener (per family) for all sessions, because several SO_REUSEPORT listeners would
 * split the inbound SYNs among them. Each accepted connection goes to the session that expects
 * it (the user's lookup callback says which); one that no session expects yet (its punch order may
 * still be on the way: the peer's order can arrive first) is held, without a byte written, at
 * most INB_HOLD_MS and INB_HOLD at once, then reset as if nothing listened. */
#ifndef TP_INBOUND_H
#define TP_INBOUND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#define INB_HOLD 16
#define INB_HOLD_MS 1000

struct inb_cbs {
    /* The session that expects a connection from from, or NULL. */
    void *(*lookup)(void *data, const struct sockaddr *from);
    /* Hands fd to that session: its own from now on. */
    void (*adopt)(void *data, void *sess, int fd);
    void *data;
};

struct inb {
    uv_loop_t *loop;
    struct inb_cbs cb;
    uv_poll_t lst[2];
    int lst_fd[2];
    int nlst;
    struct {
        int fd;
        struct sockaddr_storage from;
        uint64_t ms;
    } held[INB_HOLD];
    int nheld;
    bool holding;     /* false once inb_drop_held ran: unexpected connections are reset */
    uv_timer_t timer; /* resets held connections after INB_HOLD_MS */
};

void inb_init(struct inb *in, uv_loop_t *loop, const struct inb_cbs *cb);

/* Listens on local (the shared port); a failure is only logged (no inbound path then). */
void inb_listen(struct inb *in, const struct sockaddr_storage *local);

/* Offers the held connections again (a new session may expect some). */
void inb_route(struct inb *in);

/* Resets the held connections, and every unexpected one from now on. */
void inb_drop_held(struct inb *in);

/* Closes the listeners (harmless twice). */
void inb_close(struct inb *in);

/* Closes the timer: the last call, before the loop runs the close callbacks. */
void inb_free(struct inb *in);

#endif
