/* The rendezvous server: listeners, one state struct per peer connection, the protocol. */
#ifndef TP_SERVER_H
#define TP_SERVER_H

#include "common/endpoint.h"
#include "common/hmap.h"
#include "common/linebuf.h"
#include "common/queue.h"
#include "common/sdlisten.h"
#include "proto/proto.h"
#include "rendezvous/cluster.h"
#include "rendezvous/conn.h"
#include "rendezvous/gate.h"
#include "rendezvous/limits.h"
#include "rendezvous/metrics.h"
#include "rendezvous/plan.h"
#include "rendezvous/relay.h"
#include "rendezvous/wh.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define SRV_MAX_LISTEN 16
/* pings per connection and second, also the burst: a peer needs one per keepalive/3 (at least
 * 1 s); beyond → too-many-pings (fatal) */
#define SRV_PING_RATE 10
/* connect requests refused by --connect-rate within one second beyond which the peer is
 * dropped (rate-limited, fatal): this many times --connect-rate, at least this many */
#define SRV_CONNECT_EXCESS 10
/* probes of the control connection's family recorded per registration (the peer sends one;
 * one more for a retry); an IPv6 proof (probe6) is recorded once */
#define SRV_MAX_PROBES 2
#define SRV_READ_BUF (64 * 1024)
#define SRV_MAX_HELD PROTO_MAX_LINE /* bytes read after a hello waiting for its claim */

struct srv;

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
    struct plan_bday_cfg bday; /* --birthday-k-max, --birthday-m-max (0: never birthday) */
    bool resume;               /* offer resume in challenge.features (--no-resume: false) */
    unsigned drain;            /* --drain SEC: the first SIGTERM drains (0: stops at once) */
    /* systemd socket activation (sdlisten.h): listening sockets served instead of binding
     * listen and probe_listen (nactivated 0: none passed) */
    struct sdl_fd activated[2 * SRV_MAX_LISTEN];
    int nactivated;
    struct cl_cfg cluster;   /* cluster.redis NULL: a single instance */
    struct wh_cfg code; /* the wormhole mailbox: --code-ttl, --code-max, --code-rate, --no-code */
};

/* srv_init failures */
enum { SRV_E_RESOURCE = -1, SRV_E_CONFIG = -2 };

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
    struct wh *wh;      /* the wormhole mailbox (wh.h) */
    struct hmap rlinks; /* claimers on other instances of channels here (srv_code.c) */
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
    /* --drain under way (srv_shutdown): peers told to go drain.told of drain.total, over
     * drain.spread_ms from drain.start_ms, on a timer of RST_TICK_MS */
    struct {
        uv_timer_t timer;
        bool on;
        uint64_t start_ms, spread_ms;
        size_t total, told;
    } drain;
    struct mtr mtr; /* the counters of metrics.h (--metrics-listen serves them) */
    struct conn_set conns; /* every connection, by state */
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
 * why (e.g. the signal name) is logged; NULL logs nothing (start-up failure). With --drain
 * (and why set) it drains first: s->stopping at once, the listeners closed, the peers told
 * over a spread, relayed sessions let finish, everything else once they are done or after
 * --drain seconds. */
void srv_shutdown(struct srv *s, const char *why);
/* SIGHUP: reads --authorized again and drops registered peers it no longer lists. */
void srv_reload(struct srv *s);
/* Frees what srv_init allocated; call after uv_run has returned. */
void srv_free(struct srv *s);

/* ---- for pairing.c ---- */

struct conn *srv_find(struct srv *s, const char *id);

/* Why sa may not be offered to another peer as a candidate (loopback_ok: the peer is on the
 * host of the server that saw it), or NULL when it may. */
const char *srv_bad_candidate(const struct sockaddr *sa, bool loopback_ok);


#endif
