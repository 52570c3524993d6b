/* A peer's connection to the server: its state, the lists it is on, its writes (with their
 * memory bound and read pause), its refusals and its close. What a leaving connection means to
 * the registry, the cluster and pairing is its user's business: it hears of it through one
 * hook, on_gone. */
#ifndef TP_CONN_H
#define TP_CONN_H

#include "common/endpoint.h"
#include "common/linebuf.h"
#include "common/log.h"
#include "common/queue.h"
#include "proto/proto.h"
#include "rendezvous/cluster.h"
#include "rendezvous/limits.h"
#include "rendezvous/restart.h"
#include "rendezvous/wh.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

/* Memory queued to one peer (lines plus each request's own allocation) before it is dropped */
#define CONN_MAX_WRITE_QUEUE (256 * 1024)
/* ... and before its input stops being read (until the queue is below half of it): what a
 * peer that does not read makes us answer waits in its own socket, not in our memory */
#define CONN_READ_PAUSE (16 * 1024)
/* non-fatal refusals logged per connection and CONN_REFUSE_LOG_MS, then only counted (one line
 * with the count when the period ends or the connection closes): a peer can send 50,000
 * refused `connect`s a second, which must not become 50,000 log lines */
#define CONN_REFUSE_LOG_BURST 5
#define CONN_REFUSE_LOG_MS 10000

struct srv;
struct conn;
struct rt_tab;
struct mtr;

enum conn_state {
    CONN_HELLO,  /* accepted, waiting for hello */
    CONN_LIVE,   /* registered under id */
    CONN_LINGER, /* a fatal error was sent; waiting for it to leave and for the peer's EOF */
    CONN_CLOSED, /* uv_close called; freed in its close callback */
};

/* Connections sit on exactly one list per state, each ordered by its deadline (accept time,
 * last received line, fatal error time), so the sweep only ever looks at expired entries. */
struct conn_list {
    struct q q;
    size_t n;
};

struct conn {
    uv_tcp_t tcp; /* first member: the handle pointer is the connection pointer */
    uv_shutdown_t shut;
    struct srv *srv;       /* the server it came to (opaque here) */
    struct conn_set *set;  /* the lists it is on, and who hears of it leaving */
    struct q link;         /* in the list of its state */
    enum conn_state state;
    uint64_t since_ms; /* uv_now of the event the deadline of the current list counts from */
    char id[PROTO_MAX_ID + 1]; /* "" until registered */
    char addr[EP_STRLEN];      /* observed endpoint as text, for logs */
    struct sockaddr_storage observed;
    /* hello's endpoints, kept compactly: a peer lists none to a few, and a full list of
     * sockaddr_storage would cost 1 KiB per idle peer (see conn_endpoints) */
    union conn_ep *ep;
    uint8_t nep;
    /* issued in welcome when a probe listener exists; a probe quoting it is ours */
    char probe_token[PROTO_TOKEN_LEN + 1];
    enum proto_nat nat;   /* learnt from a probe; the other peer's punch carries it */
    uint8_t nprobes;      /* probes recorded into nat (at most SRV_MAX_PROBES) */
    /* an IPv4 peer's IPv6 endpoint, seen as the source of its probe over IPv6 (welcome.probe6):
     * the only IPv6 endpoint of it that punches name as reachable from anywhere */
    bool has_seen6;
    struct sockaddr_in6 seen6;
    bool probe_only;      /* accepted on a probe listener: `probe` is the only valid line */
    enum proto_path path; /* hello.path: what this peer allows for its sessions */
    struct proto_bday_caps bday; /* hello.birthday: its limits for a birthday punch */
    uint32_t features; /* hello.features (PROTO_FEAT_*), kept only while resume is offered */
    /* uv_now of its last birthday plan (pairing.c), if bday_planned: one per PLAN_BDAY_GAP_MS */
    bool bday_planned;
    uint64_t bday_ms;
    /* hello.aux: registered but not in the registry (never a target, no id clash); may pair
     * once (aux_used after its punch) */
    bool aux, aux_used;
    uint8_t peer_slot; /* 1 + its index in set->peers while counted there; 0: not counted */
    /* a `relay` first line, handed to the relay once the bytes after it are known */
    bool relay_req;
    char relay_session[PROTO_SESSION_LEN + 1];
    char relay_token[PROTO_TOKEN_LEN + 1];
    struct rt_tab *rt; /* the sessions it was punched into, for its reports (reports.c) */
    struct q pending; /* delayed punches to this peer (pairing.c) */
    int npending;
    bool peer_eof; /* lingering: the peer has closed, we wait for our error line to leave */
    bool admitted; /* its first line proved the secret (or the server has none) */
    bool claiming; /* its hello waits for the cluster's verdict on the id's owner */
    char *held;    /* while claiming: bytes read after the hello, served after the verdict */
    size_t nheld;
    struct cl_link cl; /* its cluster operations (cluster.c) that may still answer it */
    struct wh_link wh; /* its side of a wormhole channel (wh.h), set up at registration */
    unsigned char nonce[PROTO_NONCE_BYTES]; /* this connection's challenge */
    unsigned char key[PROTO_KEY_BYTES];     /* the key it registered with */
    struct lim_src *src;                    /* counted against its source address */
    struct lim_bucket connects;             /* --connect-rate */
    struct lim_bucket pings;                /* SRV_PING_RATE (server.h) */
    struct rst_bucket replaces; /* hello.replace of this id, handed on to the next holder */
    uint64_t refuse_window_ms;              /* CONN_REFUSE_LOG_MS period (0: none yet) */
    unsigned refuse_logged, refuse_quiet;   /* in it: refusals logged, refusals only counted */
    uint64_t excess_window_ms;              /* the second in which connects were refused */
    unsigned excess;                        /* how many */
    size_t wcost;     /* memory held by queued writes (conn_write) */
    bool read_paused; /* wcost passed CONN_READ_PAUSE: not reading until it drains */
    struct lb lb; /* holds memory only while a line is half read */
};

union conn_ep {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

/* What a set of connections tells its user, libuv style: functions plus data. */
struct conn_hooks {
    void *data;
    /* c stops being served, on its way to `to` (CONN_LINGER after a fatal error, then
     * CONN_CLOSED; also CONN_CLOSED directly): nothing may reach it from here on. Called once
     * per step, so it must be harmless the second time. */
    void (*on_gone)(void *data, struct conn *c, enum conn_state to);
    /* a connection closed, or its memory was handed back: the user may be done */
    void (*on_closed)(void *data);
    /* a paused connection reads again with these */
    uv_alloc_cb on_alloc;
    uv_read_cb on_read;
};

struct conn_set {
    uv_loop_t *loop;
    struct mtr *mtr; /* the server's counters (metrics.h): error lines sent, by code; or NULL */
    struct conn_list fresh, live, linger;
    /* live and not auxiliary, by the family of observed ([1]: IPv6): kept as they move, so
     * that a metrics scrape never walks every peer */
    size_t peers[2];
    struct conn_hooks hooks;
};

void conn_set_init(struct conn_set *set, uv_loop_t *loop, const struct conn_hooks *hooks,
                   struct mtr *mtr);
/* The oldest connection of a list and the one after c, NULL at the end. */
struct conn *conn_first(const struct conn_list *l);
struct conn *conn_next(const struct conn_list *l, const struct conn *c);
size_t conn_count(const struct conn_set *set);

/* c's hello endpoints as the protocol's list (for punch). */
void conn_endpoints(const struct conn *c, struct proto_eplist *out);
/* Moving to the tail with a fresh timestamp keeps every list sorted by its deadline. c->aux
 * and c->observed must be set before c becomes CONN_LIVE (set->peers counts it by them). */
void conn_set_state(struct conn *c, enum conn_state st);
/* Accepted or registered: not lingering nor closed. */
bool conn_active(const struct conn *c);
/* The peer's display name for logs: "id (addr)" or "addr". */
const char *conn_who(const struct conn *c, char *buf, size_t len);

/* Queues one encoded line (copied). Drops the peer with `overloaded` when its write queue
 * exceeds CONN_MAX_WRITE_QUEUE. Returns 0, or -1 when the line was not queued. */
int conn_send(struct conn *c, const char *line, size_t len);
/* Sends an error line and logs "refused". A fatal error also closes the connection once the
 * line has been written (the connection stays allocated until then). */
void conn_refuse(struct conn *c, enum proto_code code, const char *message, bool fatal);
/* Writes an error line without logging it; a fatal one also starts the close. */
void conn_error(struct conn *c, enum proto_code code, const char *message, bool fatal);
/* Queues a copy of line without any policy (conn_send adds the checks); a libuv error code. */
int conn_write(struct conn *c, const char *line, size_t len);
/* Whether a line about something c sent that was turned away may be logged now: the same
 * CONN_REFUSE_LOG_BURST per CONN_REFUSE_LOG_MS as refusals, the rest counted into one line. */
bool conn_log_quota(struct conn *c);
/* Reasons can quote what a peer sent: printable ASCII only. */
const char *conn_clean(const char *in, char *out, size_t len);

/* After a fatal error line: stop taking messages and close once the line has been written and
 * the peer has closed (the user's sweep ends a linger that lasts too long). */
void conn_linger(struct conn *c);
void conn_close(struct conn *c);
/* Logs "drop WHO: why" at level and closes. */
void conn_drop(struct conn *c, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Stops reading while more than CONN_READ_PAUSE waits to be written; resumes below half. */
void conn_read_pause(struct conn *c);
void conn_read_resume(struct conn *c);

#endif
