/* The sessions of a control connection: one per punch order, each with its handshake context,
 * its punch engine and its relay attempt. The waiting modes' limits on sessions in setup and
 * their eviction live here. The control connection starts sessions (sess_start) and hears of
 * their ends through callbacks; a session never sees the control connection. */
#ifndef TP_SESSION_H
#define TP_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "common/queue.h"
#include "peer/bday.h"
#include "peer/link.h"
#include "peer/opts.h"
#include "peer/punch.h"
#include "peer/rshake.h"
#include "peer/serve.h"
#include "peer/shake.h"
#include "proto/proto.h"

/* listen, receive, chat: punch orders set up at once, each until its handshake or --timeout.
 * Few enough that they cannot exhaust our descriptors (each engine holds at most a socket per
 * candidate and PUNCH_MAX_INBOUND more); what keeps a stranger's orders from crowding out the
 * real peer's is SESS_WAIT_PER_ID (the server's --connect-rate limits how fast anyone can make
 * them). */
#define SESS_WAIT_SETUPS 8
/* ... of which one peer id holds at most this many: a stranger's id ordering punches as fast
 * as the server lets it only churns its own sessions, never the slot of a distinct peer */
#define SESS_WAIT_PER_ID 2

/* How a control connection serves punch orders. */
enum sess_mode {
    SESS_ONE,   /* connect, chat PEER, send: one session, with the peer asked for */
    SESS_WAIT,  /* listen, receive, chat: sessions in parallel, the first handshake wins */
    SESS_SERVE, /* listen --forward: every admitted session, each handed to serve->linked */
};

struct sess_cbs {
    /* SESS_ONE: the session ended, with *link filled when status is EXIT_DONE (or it could not
     * start: status says why). */
    void (*ended)(void *data, int status);
    /* SESS_WAIT: a session completed its handshake first: *link holds it, the others are
     * being aborted. */
    void (*won)(void *data);
    /* The last session is gone. */
    void (*idle)(void *data);
    void *data;
    /* A session's outcome as a traversal report (PROTOCOL.md, "Traversal reports"), called
     * once its punch has ended and before any of the above for it: the control connection is
     * still open. Optional (NULL). Not called for a session aborted by another one, by a newer
     * resume order or by a cancelled resume, nor for a failed upgrade attempt (the session
     * stays on the relay its first introduction reported). */
    void (*report)(void *data, const struct proto_msg *m);
};

/* The report of a punch that ended with status (EXIT_DONE: *l is the link), ms after its order,
 * with attempts connect() calls when it failed, our own mapping nat: a PROTO_REPORT in *out. */
void sess_report_of(const char *session, int status, const struct peer_link *l, uint64_t ms,
                    unsigned attempts, enum proto_nat nat, struct proto_msg *out);

/* Resume mode (docs/design/resume.md 4.5): the set serves only resume punches of one suspended
 * session, each engine running the resume lines (peer/rshake) instead of the shake. The
 * pointers are the path side's and outlive the set. */
struct sess_resume {
    const char *root;              /* the session's root id */
    const char *peer;              /* the session's peer id */
    const unsigned char *peer_key; /* its verified identity key (32 bytes) */
    enum proto_role role;          /* the session's roles */
    const unsigned char *rs;       /* the resumption secret (SHAKE_RS_BYTES) */
    uint32_t last_epoch;           /* the newest epoch attached */
    uint64_t rx;                   /* our receive offset, announced in the resume line */
    /* an upgrade of a live relayed session (4.6, as built): the relay offer is ignored and a
     * punch without a direct path ends the attempt at once */
    bool direct_only;
};

/* Whether punch order m is not one of that session's resumes: punch.resume is its root,
 * punch.peer its peer, punch.key its peer's key and punch.role its role. True with why:
 * refuse it before anything is dialled (a stranger, or a lying server, cannot make us dial). */
bool sess_resume_refused(const struct sess_resume *r, const struct proto_msg *m, char *why,
                         size_t whylen);

/* All sessions of one control connection, and what they are given. The pointers are the
 * control connection's and outlive the set. */
struct sess_set {
    uv_loop_t *loop;
    const struct peer_opts *o;
    enum sess_mode mode;
    /* SESS_SERVE: what to do with each session; SESS_WAIT: optional admit/failed hooks */
    const struct peer_serve *serve;
    struct peer_link *link;                  /* SESS_ONE: the caller's; SESS_WAIT: the winner's */
    const struct sockaddr_storage *server;   /* the rendezvous (and default relay) address */
    const char *name;                        /* the server, as messages name it */
    const struct sockaddr_storage *local;    /* the shared port, IPv4 (or the server's family) */
    const struct sockaddr_storage *local6;   /* [::]:P when IPv6 candidates are offered */
    const struct sockaddr_storage *observed; /* our public endpoint, as the server saw it */
    /* our mapping as the probe showed it (a birthday plan's role must match it), and the TTL
     * the hops scan found for a hard side's first SYNs (0: not known yet, HOPS_DEFAULT_TTL) */
    const enum proto_nat *nat;
    const int *bday_ttl;
    const bool *bday_announced;   /* our hello carried birthday */
    const bool *resume_announced; /* our hello carried features ["resume"] */
    struct sess_cbs cb;
    const struct sess_resume *resume; /* resume mode (NULL: the shake, as always) */
    struct q list; /* newest first */
    bool won;      /* SESS_WAIT: a session completed its handshake */
};

/* One punch order being served. */
struct sess {
    struct q node;
    struct sess_set *set;
    struct punch *punch;
    struct rl *relay;     /* the relay attempt, until it joined or failed */
    bool relay_only;      /* this session makes no direct attempt */
    char relay_note[400]; /* what became of the relay path, for a failure message */
    struct shake_ctx shake;
    struct rshake_ctx rshake; /* resume mode: the engine's context (cfg.resume) */
    /* resume mode: the set's (peer_resume_link) or, serving (listen --forward), this order's
     * own: sres points into sr, a copy of the suspended session's state (serve->resume_find),
     * and the session takes no admit slot */
    const struct sess_resume *res;
    struct sess_resume sres;
    struct serve_resume sr;
    bool serve_resume;
    struct punch_cfg cfg;   /* its candidates route the shared listener's connections */
    struct peer_link *link; /* the caller's (one-shot) or own */
    struct peer_link own;
    /* the birthday punch beside the engine (peer/bday.c), from its start until the punch ends
     * (counted as running meanwhile), with the plan as we took it (capped) */
    struct bday *bday;
    struct proto_bday bplan;
    /* its report: the order's session and arrival (clk_ms), and no_report when its end is no
     * traversal outcome (aborted for another session, a newer resume order, a cancel) */
    char sid[PROTO_SESSION_LEN + 1];
    uint64_t order_ms;
    unsigned bday_sent; /* the birthday punch's SYNs, counted as attempts */
    bool no_report;
};

void sess_init(struct sess_set *set);

enum sess_start {
    SESS_STARTED, /* a session punches */
    SESS_NONE,    /* refused or could not start (logged; one-shot: cb.ended was called) */
    SESS_NOMEM,   /* out of memory: the caller ends */
};

/* A session for punch order m (the waiting modes admit it first: hooks, SESS_WAIT's limits;
 * SESS_SERVE routes an order with punch.resume to serve->resume_find instead),
 * timed from the order's arrival rx_us (monotonic), with the control connection's RTT. */
enum sess_start sess_start(struct sess_set *set, const struct proto_msg *m, uint32_t rtt_us,
                           uint64_t rx_us);

bool sess_any(const struct sess_set *set);

/* Aborts every session (their punches end with EXIT_PUNCH and why): a cancelled resume. */
void sess_abort(struct sess_set *set, const char *why);

/* One-shot, the server connection gone: the relay attempt goes with it. */
void sess_cancel_relays(struct sess_set *set);

/* Which session an inbound connection on the shared port belongs to (NULL: none). */
struct sess *sess_route(struct sess_set *set, const struct sockaddr *from);

/* Hands an accepted connection to the session's engine. */
void sess_adopt(struct sess *ss, int fd);

/* The pure part of SESS_WAIT's limits: room for a punch order of peer among n sessions in
 * setup whose ids are ids[0..n-1], newest first. */
enum sess_room {
    SESS_ROOM,       /* there is room */
    SESS_EVICT_SAME, /* peer holds SESS_WAIT_PER_ID already: *victim, its oldest, goes first */
    SESS_EVICT_FULL, /* all slots taken: *victim, the oldest of an id holding more than one */
    SESS_REFUSE,     /* all slots taken by distinct ids: the order is refused */
};
enum sess_room sess_room(const char *const ids[], int n, const char *peer, bool same_done,
                         int *victim);

/* The oldest index (the list is newest first) whose id is peer, or with peer NULL the oldest
 * of an id holding more than one; -1 when there is none. */
int sess_oldest(const char *const ids[], int n, const char *peer);

#endif
