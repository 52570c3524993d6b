/* The rendezvous server: listeners, one state struct per peer connection, the protocol. */
#ifndef TP_SERVER_H
#define TP_SERVER_H

#include "common/endpoint.h"
#include "common/linebuf.h"
#include "proto/proto.h"
#include "rendezvous/cluster.h"
#include "rendezvous/gate.h"
#include "rendezvous/limits.h"
#include "rendezvous/relay.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define SRV_MAX_LISTEN 16
/* Memory queued to one peer (lines plus each request's own allocation) before it is dropped */
#define SRV_MAX_WRITE_QUEUE (256 * 1024)
/* ... and before its input stops being read (until the queue is below half of it): what a
 * peer that does not read makes us answer waits in its own socket, not in our memory */
#define SRV_READ_PAUSE (16 * 1024)
/* pings per connection and second, also the burst: a peer needs one per keepalive/3 (at least
 * 1 s); beyond → too-many-pings (fatal) */
#define SRV_PING_RATE 10
/* non-fatal refusals logged per connection and SRV_REFUSE_LOG_MS, then only counted (one line
 * with the count when the period ends or the connection closes): a peer can send 50,000
 * refused `connect`s a second, which must not become 50,000 log lines */
#define SRV_REFUSE_LOG_BURST 5
#define SRV_REFUSE_LOG_MS 10000
/* connect requests refused by --connect-rate within one second beyond which the peer is
 * dropped (rate-limited, fatal): this many times --connect-rate, at least this many */
#define SRV_CONNECT_EXCESS 10
/* probes of the control connection's family recorded per registration (the peer sends one;
 * one more for a retry); an IPv6 proof (probe6) is recorded once */
#define SRV_MAX_PROBES 2
#define SRV_READ_BUF (64 * 1024)
#define SRV_MAX_HELD PROTO_MAX_LINE /* bytes read after a hello waiting for its claim */

struct srv;
struct pair_pending;
union srv_ep;

struct srv_config {
    struct sockaddr_storage listen[SRV_MAX_LISTEN];
    int nlisten;
    bool listen_v6_optional; /* the default dual-stack pair: IPv6 may be missing on this host */
    /* --probe-listen: listeners that take only `probe`; the first one's port is announced */
    struct sockaddr_storage probe_listen[SRV_MAX_LISTEN];
    int nprobe_listen;
    unsigned keepalive;      /* seconds of silence before a registered peer is dropped */
    unsigned hello_timeout;  /* seconds a new connection has to send hello */
    unsigned long max_peers; /* concurrent connections, registered or not yet */
    struct rly_cfg relay;    /* the relay fallback (relay.h) */
    struct gate_cfg gate;    /* secret, allowlist, id owners (gate.h) */
    unsigned max_per_ip;     /* connections open at once per source address (0: no limit) */
    unsigned rate_per_ip;    /* new connections per second per source address (0: no limit) */
    unsigned connect_rate;   /* connect requests per second per peer (0: no limit) */
    struct cl_cfg cluster;   /* cluster.redis NULL: a single instance */
};

/* srv_init failures */
enum { SRV_E_RESOURCE = -1, SRV_E_CONFIG = -2 };

enum srv_conn_state {
    SRV_HELLO,  /* accepted, waiting for hello */
    SRV_LIVE,   /* registered under id */
    SRV_LINGER, /* a fatal error was sent; waiting for it to leave and for the peer's EOF */
    SRV_CLOSED, /* uv_close called; freed in its close callback */
};

/* Connections sit on exactly one list per state, each ordered by its deadline (accept time,
 * last received line, fatal error time), so the sweep only ever looks at expired entries. */
struct srv_list {
    struct srv_conn *head, *tail;
    size_t n;
};

struct srv_conn {
    uv_tcp_t tcp; /* first member: the handle pointer is the connection pointer */
    uv_shutdown_t shut;
    struct srv *srv;
    struct srv_conn *prev, *next; /* in the list of its state */
    enum srv_conn_state state;
    uint64_t since_ms; /* uv_now of the event the deadline of the current list counts from */
    char id[PROTO_MAX_ID + 1]; /* "" until registered */
    char addr[EP_STRLEN];      /* observed endpoint as text, for logs */
    struct sockaddr_storage observed;
    /* hello's endpoints, kept compactly: a peer lists none to a few, and a full list of
     * sockaddr_storage would cost 1 KiB per idle peer (see srv_endpoints) */
    union srv_ep *ep;
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
    /* hello.aux: registered but not in the registry (never a target, no id clash); may pair
     * once (aux_used after its punch) */
    bool aux, aux_used;
    /* a `relay` first line, handed to the relay once the bytes after it are known */
    bool relay_req;
    char relay_session[PROTO_SESSION_LEN + 1];
    char relay_token[PROTO_TOKEN_LEN + 1];
    struct pair_pending *pending; /* delayed punches to this peer (pairing.c) */
    int npending;
    bool peer_eof; /* lingering: the peer has closed, we wait for our error line to leave */
    bool admitted; /* its first line proved the secret (or the server has none) */
    bool claiming; /* its hello waits for the cluster's verdict on the id's owner */
    char *held;    /* while claiming: bytes read after the hello, served after the verdict */
    size_t nheld;
    int cl_ops;    /* cluster operations (cluster.c) that may still answer it */
    unsigned char nonce[PROTO_NONCE_BYTES]; /* this connection's challenge */
    unsigned char key[PROTO_KEY_BYTES];     /* the key it registered with */
    struct lim_src *src;                    /* counted against its source address */
    struct lim_bucket connects;             /* --connect-rate */
    struct lim_bucket pings;                /* SRV_PING_RATE */
    uint64_t refuse_window_ms;              /* SRV_REFUSE_LOG_MS period (0: none yet) */
    unsigned refuse_logged, refuse_quiet;   /* in it: refusals logged, refusals only counted */
    uint64_t excess_window_ms;              /* the second in which connects were refused */
    unsigned excess;                        /* how many */
    size_t wcost;     /* memory held by queued writes (srv_write) */
    bool read_paused; /* wcost passed SRV_READ_PAUSE: not reading until it drains */
    struct lb lb; /* holds memory only while a line is half read */
};

union srv_ep {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

struct srv_listener {
    uv_tcp_t tcp;
    struct srv *srv;
    bool probe; /* a --probe-listen listener */
    char addr[EP_STRLEN];
};

struct srv {
    uv_loop_t *loop;
    struct srv_config cfg;
    struct reg *reg;
    struct reg *probes; /* probe_token -> registered connection */
    struct rly *rly;    /* relay sessions and offers */
    struct gate gate;   /* who may register (gate.h) */
    struct lim *lim;    /* per-source connection limits */
    struct cl *cl;      /* cluster mode (cluster.h); NULL for a single instance */
    int probe_port;     /* announced in welcome; 0: no probe listener */
    /* the first IPv6 probe listener, announced to IPv4 peers as welcome.probe6: its address,
     * or for [::] (probe6_port set) the host's first global IPv6 address, looked up again
     * every SRV_PROBE6_REFRESH_MS (addresses come and go) */
    bool has_probe6;
    struct sockaddr_storage probe6;
    int probe6_port;
    uint64_t probe6_checked_ms;
    struct srv_listener listeners[2 * SRV_MAX_LISTEN];
    int nlisteners; /* initialised handles */
    uv_timer_t sweep;
    bool sweep_init;
    size_t conns_high; /* most connections at once since memory was last handed back */
    bool stopping;
    struct srv_list fresh, live, linger;
    char rbuf[SRV_READ_BUF]; /* reads are handled synchronously, so one buffer serves all */
};

/* Sets up s (registry, sweep timer, the files of gate.h). Returns 0, or SRV_E_CONFIG (a file
 * given on the command line is unusable) or SRV_E_RESOURCE with a message in err. */
int srv_init(struct srv *s, uv_loop_t *loop, const struct srv_config *cfg, char *err,
             size_t errlen);
/* Binds and listens on every configured address; on failure err reads
 * "cannot listen on ADDR: reason" and the caller should srv_shutdown and run the loop. */
int srv_listen(struct srv *s, char *err, size_t errlen);
/* Stops accepting, sends server-shutdown to every peer and closes every handle once they
 * are gone; uv_run then returns. A second call drops the remaining peers at once.
 * why (e.g. the signal name) is logged; NULL logs nothing (start-up failure). */
void srv_shutdown(struct srv *s, const char *why);
/* SIGHUP: reads --authorized again and drops registered peers it no longer lists. */
void srv_reload(struct srv *s);
/* Frees what srv_init allocated; call after uv_run has returned. */
void srv_free(struct srv *s);

/* ---- for pairing.c ---- */

/* Queues one encoded line (copied). Drops the peer with `overloaded` when its write queue
 * exceeds SRV_MAX_WRITE_QUEUE. Returns 0, or -1 when the line was not queued. */
int srv_send(struct srv_conn *c, const char *line, size_t len);
/* Sends an error line and logs "refused". A fatal error also closes the connection once the
 * line has been written (the connection stays allocated until then). */
void srv_refuse(struct srv_conn *c, const char *code, const char *message, bool fatal);
struct srv_conn *srv_find(struct srv *s, const char *id);
/* The peer's display name for logs: "id (addr)" or "addr". */
const char *srv_who(const struct srv_conn *c, char *buf, size_t len);

/* ---- for cluster.c ---- */

/* The verdict on the owner of a hello's id (cl_claim): code NULL registers c now, else c is
 * refused with code and msg. */
void srv_hello_claimed(struct srv_conn *c, const struct proto_msg *hello, const char *code,
                       const char *msg);

/* Why sa may not be offered to another peer as a candidate (loopback_ok: the peer is on the
 * host of the server that saw it), or NULL when it may. */
const char *srv_bad_candidate(const struct sockaddr *sa, bool loopback_ok);

/* c's hello endpoints as the protocol's list (for punch). */
void srv_endpoints(const struct srv_conn *c, struct proto_eplist *out);

#endif
