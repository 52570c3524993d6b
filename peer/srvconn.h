/* One client exchange with the rendezvous server, the way every peer connection to it begins
 * (PROTOCOL.md, "Connecting"): connect (from the shared punch port when asked), wait for the
 * server's challenge, send the caller's first line (hello, relay or probe, each signed over the
 * challenge's nonce), then hand each line the server sends to the caller, decoded.
 *
 * Event-driven on a uv loop, no blocking call. Lines are framed by common/linebuf with its
 * LB_MAX cap. In SC_PEEK mode nothing past the newline of a line is ever taken off the socket,
 * so after the server's last line (relay: `relayed`) the bytes that follow, the other peer's,
 * are still in the socket for whoever takes the descriptor over (sc_detach). */
#ifndef TP_PEER_SRVCONN_H
#define TP_PEER_SRVCONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "proto/proto.h"

enum sc_phase {
    SC_CONNECTING, /* the TCP connect is under way */
    SC_CHALLENGE,  /* connected, waiting for the server's challenge */
    SC_ANSWER,     /* our first line is sent: the server's lines go to the caller */
    SC_CLOSED,     /* failed, closed or detached: nothing more is called */
};

enum sc_fail {
    SC_FAIL_SOCKET,  /* socket or bind (a local problem; detail says which) */
    SC_FAIL_WATCH,   /* the loop cannot watch the descriptor */
    SC_FAIL_CONNECT, /* connect failed (detail: the system's reason) */
    SC_FAIL_TIMEOUT, /* the phase's timer ran out (detail: "timed out") */
    SC_FAIL_CLOSED,  /* end of stream or a read error ("closed by the server" or the reason) */
    SC_FAIL_LONG,    /* a line over LB_MAX bytes */
    SC_FAIL_INVALID, /* a line the decoder refused (perr and detail: its code and reason) */
    SC_FAIL_SEND,    /* the first line could not be encoded or sent */
};

#define SC_DETAIL 256

struct sc_error {
    enum sc_fail kind;
    enum sc_phase phase; /* where it happened */
    enum proto_err perr; /* SC_FAIL_INVALID */
    char detail[SC_DETAIL];
};

/* answer_ms: the connect deadline goes on through the challenge and the answer (one limit
 * for the whole exchange, as the NAT probe has) */
#define SC_KEEP_DEADLINE UINT64_MAX

#define SC_PEEK 1u  /* take a line off the socket only up to its newline, never more */
#define SC_STAMP 2u /* rx_us is the kernel's arrival time (SO_TIMESTAMPNS), not the read's */

struct sc_cfg {
    const struct sockaddr *server;
    /* bind here first (wildcard address, the shared punch port: SO_REUSEADDR/SO_REUSEPORT,
     * IPv6 only for an IPv6 address); NULL: an ephemeral port of our own */
    const struct sockaddr *local;
    uint64_t connect_ms; /* limit of SC_CONNECTING; 0: none */
    /* limit from connected until the caller changes it (sc_timeout); 0: none, or
     * SC_KEEP_DEADLINE */
    uint64_t answer_ms;
    unsigned flags; /* SC_PEEK, SC_STAMP */
};

struct sc;

/* What the exchange tells its user; data is the pointer given to sc_open. sc_close,
 * sc_detach, sc_timeout and sc_send may be called from inside any of them. */
struct sc_cbs {
    /* optional: connected; local is our end as the kernel bound it */
    void (*connected)(struct sc *sc, void *data, const struct sockaddr_storage *local);
    /* the challenge came: fill m (type included) with the first line, signed over nonce */
    void (*first)(struct sc *sc, void *data, const unsigned char *nonce, struct proto_msg *m);
    /* every other line of the server, decoded, with its arrival time (monotonic µs); lines
     * before the challenge come here too (sc_phase tells SC_CHALLENGE): whether they are
     * allowed is the caller's rule */
    void (*msg)(struct sc *sc, void *data, const struct proto_msg *m, uint64_t rx_us);
    /* the exchange failed and is closed already (the descriptor with it); sc is gone after */
    void (*fail)(struct sc *sc, void *data, const struct sc_error *e);
};

/* Opens the connection. Returns NULL with err filled (SC_FAIL_SOCKET, SC_FAIL_CONNECT or
 * SC_FAIL_WATCH) when it cannot even start; no callback is called then. cbs must outlive the
 * exchange (a static table). */
struct sc *sc_open(uv_loop_t *loop, const struct sc_cfg *cfg, const struct sc_cbs *cbs,
                   void *data, struct sc_error *err);

/* Sends one more line (control: connect, ping, pong). 0, or -1 with errno (or EINVAL when it
 * does not encode); no callback is called. */
int sc_send(struct sc *sc, const struct proto_msg *m);

/* Restarts the phase's timer with ms (0: stops it); when it runs out, fail is called with
 * SC_FAIL_TIMEOUT. */
void sc_timeout(struct sc *sc, uint64_t ms);

enum sc_phase sc_phase(const struct sc *sc);
int sc_fd(const struct sc *sc);
/* Whether the server's challenge offered birthday punching (challenge.features); false before
 * it came. `first` may ask it. */
bool sc_feat_birthday(const struct sc *sc);
/* Whether it offered sessions that survive their connection ("resume", PROTOCOL.md section
 * 18): only then may the hello carry features or replace. */
bool sc_feat_resume(const struct sc *sc);
/* Whether it takes traversal reports ("report", PROTOCOL.md "Traversal reports"): only then
 * may a report be sent (an older server refuses the type, fatally). */
bool sc_feat_report(const struct sc *sc);
/* The server takes hello.replace: its challenge listed "replace" or "resume" (PROTOCOL.md 5.1). */
bool sc_feat_replace(const struct sc *sc);
/* Whether it has the wormhole mailbox ("code", PROTOCOL.md section 20). */
bool sc_feat_code(const struct sc *sc);

/* Ends the exchange and hands the descriptor over: the loop no longer watches it, nothing
 * unread has been taken off it, and the caller closes it. */
int sc_detach(struct sc *sc);

/* Ends the exchange and closes the connection; no callback is called. NULL, or an exchange
 * that has just failed or been detached (from inside its callback), is harmless; the memory
 * goes on the next loop turn. */
void sc_close(struct sc *sc);

#endif
