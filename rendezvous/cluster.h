/* Cluster mode (--redis): several rendezvous instances act as one, with Redis as the shared
 * directory (id -> instance, with a TTL each instance refreshes), the owner table of ids and the
 * message bus between instances (one pub/sub channel per instance). PROTOCOL.md, "Cluster".
 *
 * Without --redis none of this exists (no struct cl) and the server is a single instance.
 * With it, an outage of Redis never stops local service: registrations and introductions
 * between peers of this instance go on; the cluster layer reconnects with back-off and
 * re-announces every local peer when Redis is back. */
#ifndef TP_CLUSTER_H
#define TP_CLUSTER_H

#include "common/queue.h"
#include "proto/code.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

struct mtr;

#define CL_DEFAULT_PREFIX "tcpunch:"
#define CL_DEFAULT_TTL 30       /* seconds a directory entry lives without a refresh */
#define CL_ANSWER_MS 2000       /* how long an instance waits for another to answer */
#define CL_PING_MS 1000         /* Redis health check and RTT measurement period */
#define CL_PING_TIMEOUT_MS 3000 /* no PONG for this long: Redis counts as down */
#define CL_BACKOFF_MIN_S 1      /* first reconnect delay, doubled up to ... */
#define CL_BACKOFF_MAX_S 30     /* ... this */
#define CL_MAX_OPS 4096         /* introductions and id claims in flight at once */
#define CL_REFRESH_BATCH 128    /* directory entries refreshed by one Redis command */
#define CL_MAX_PREFIX 64
#define CL_BUS_FRESH_S 30  /* a bus message older or newer than this is refused */
#define CL_MAX_SENDERS 256 /* instances whose last sequence number is remembered */
/* wormhole codes (cl_code.c) */
/* a channel's directory key outlives its ttl by the mailbox's step (30 s after the claim) and
 * its DONE linger (30 s) plus a margin: a claimed channel keeps its number until it is deleted,
 * so no instance hands the number out again while it lives (a key of ttl + 30 s could lapse
 * under a channel claimed late) */
#define CL_CODE_KEY_SLACK_S 90
#define CL_CODE_MAX_PROXIES 4096 /* claims of this instance's peers held on other instances */
#define CL_CODE_MAX_NUMS 100000  /* numbers remembered for a rejoin (the mailbox's --code-max) */
#define CL_CODE_STEP_MS 30000    /* the mailbox's deadline after a claim (wh.h WH_STEP_MS) */
#define CL_CODE_DONE_MS 30000    /* how long a confirmed channel lingers for a late abort */
#define CL_CODE_GRACE_MS 5000    /* on top of those: the maker's instance says so first */

struct proto_msg;
struct plan_peer;
struct gate_cfg;
struct rly;
struct cl;
struct cl_px;

/* The directory's answer to a reservation of a code number (cl_code_reserve). */
enum cl_code_res {
    CL_CODE_OK,    /* the number is this instance's cluster-wide */
    CL_CODE_TAKEN, /* another channel (of any instance) holds it: draw again */
    CL_CODE_DOWN,  /* Redis failed or is slow: the open is refused (overloaded) */
};

/* A connection as the cluster knows it: embedded in its user's connection struct, whose fields
 * the cluster never sees (the user maps a link back with container_of). */
struct cl_link {
    struct q ops;     /* the cluster operations that may still answer it */
    struct cl_px *px; /* its claim of a code held on another instance, or NULL */
};

/* What the cluster needs of the server that uses it, given at cl_new (hiredis/libuv style:
 * functions plus their data). The cluster calls down into plan.c, relay.c and limits.c, and
 * up only through these. */
struct cl_user {
    void *data;
    const struct gate_cfg *gate; /* the id limits a claim applies */
    struct rly *rly;             /* relay offers for sessions relayed here */
    bool relays;                 /* this instance offers the relay */
    int bday_k_max, bday_m_max;  /* its caps on a birthday plan (plan.h; 0: never) */
    /* the verdict on a hello's id (cl_claim): code PC_UNKNOWN registers conn now, else it is
     * refused with code and msg */
    void (*claimed)(void *data, struct cl_link *conn, const struct proto_msg *hello,
                    enum proto_code code, const char *msg);
    /* a non-fatal error to conn (an introduction that failed) */
    void (*refuse)(void *data, struct cl_link *conn, enum proto_code code, const char *msg);
    /* the registered main peer holding id here, or NULL */
    struct cl_link *(*find)(void *data, const char *id);
    /* conn as one side of a pair */
    void (*facts)(void *data, struct cl_link *conn, struct plan_peer *p);
    /* conn's punch for session, to send delay_us from now (plan.c has capped it) */
    void (*punch)(void *data, struct cl_link *conn, const char *session, const char *line,
                  size_t len, uint64_t delay_us);
    /* conn got a birthday plan (in a punch of this instance or one forwarded from another):
     * none more for it for a while (PLAN_BDAY_GAP_MS) */
    void (*bday_planned)(void *data, struct cl_link *conn);
    /* calls fn for every registered main peer; returns the number of registered connections */
    size_t (*each_peer)(void *data, void (*fn)(void *arg, const char *id, const unsigned char *key),
                        void *arg);
    /* another instance (by) registered id with key for a hello with replace: the main
     * registration of id here, if it has that key, is closed with `replaced` */
    void (*replaced)(void *data, const char *id, const unsigned char *key, const char *by);
    /* the server's counters (metrics.h): introductions planned here, introduce in/out */
    struct mtr *mtr;
    /* why sa may not be offered to a peer as a candidate, or NULL */
    const char *(*bad_candidate)(const struct sockaddr *sa, bool loopback_ok);

    /* -- wormhole codes (cl_code.c): the server's mailbox; NULL code_reserved: no codes -- */
    /* the answer to cl_code_reserve(channel, serial) */
    void (*code_reserved)(void *data, uint32_t channel, uint64_t serial, enum cl_code_res r);
    /* for the mailbox here: a line of the claimer ref on instance inst for channel, one of
     * code-claim, code-answer or code-abort with that channel (proto/bus.c checked it); m NULL:
     * that claimer has gone. Answers go back with cl_code_to_claimer(inst, ref, channel). */
    void (*code_remote)(void *data, const char *inst, uint64_t ref, uint32_t channel,
                        const struct proto_msg *m);
    /* for conn, whose claim is held on another instance: a line of the maker's mailbox there,
     * code-claimed, code-confirm or an error of the mailbox's (checked and decoded: the
     * server sends it re-encoded) */
    void (*code_deliver)(void *data, struct cl_link *conn, const struct proto_msg *m);
    /* conn's claim held on another instance has ended (after its last line or refusal) */
    void (*code_ended)(void *data, struct cl_link *conn);
    /* conn's claim held on another instance failed (code-wrong, or its own abort): its source
     * pays the mailbox's extra cost here, where its limits are counted */
    void (*code_penalize)(void *data, struct cl_link *conn);
};

struct cl_cfg {
    const char *redis;                   /* HOST:PORT; NULL: no cluster */
    const char *password_file;           /* first line is Redis's AUTH password; NULL: none */
    const char *secret_file;             /* the cluster secret: every bus message carries its MAC */
    const char *prefix;                  /* of every key and channel */
    const char *instance_id;             /* NULL: hostname-PUBLIC_ADDRESS */
    struct sockaddr_storage public_addr; /* how peers reach this instance (relay_addr) */
    unsigned ttl;                        /* seconds, see CL_DEFAULT_TTL */
};

/* Checks cfg (instance id, password file) and starts connecting to Redis; the server serves
 * its local peers whether or not Redis answers. Returns NULL with err on a configuration error
 * or when out of memory. */
struct cl *cl_new(uv_loop_t *loop, const struct cl_cfg *cfg, const struct cl_user *user,
                  char *err, size_t errlen);
/* Shutdown: lets what is queued for Redis (the withdrawals of the peers just dropped) leave,
 * for at most a second, then closes the connections and timers; the loop ends after that. */
void cl_stop(struct cl *c);
/* After the loop has run the closes. */
void cl_free(struct cl *c);

void cl_link_init(struct cl_link *l);

/* A `connect` from the peer from_id for an id that is not registered here: ask the directory,
 * then the instance holding it. from gets its punch, or a non-fatal error, later (or at once).
 * resume: the connect's resume root ("" none), carried in the introduce into both punches. */
void cl_connect(struct cl *c, struct cl_link *from, const char *from_id, const char *target,
                const char *resume);

/* Ownership of a new id (not in the local cache of owners) of a hello from src: claims it for
 * the hello's key cluster-wide, then tells user->claimed. Returns 0 when the claim is under
 * way, -1 when Redis is unavailable (the caller refuses the hello with a passing error). */
int cl_claim(struct cl *c, struct cl_link *conn, const struct proto_msg *hello,
             const struct sockaddr *src);

/* Whether Redis answers now: while it does, every hello is checked there (ownership and the
 * cluster's allowlist); while it does not, ids already seen here are served from memory. */
bool cl_is_up(const struct cl *c);
/* The round trip of the last PING to Redis in microseconds (0: none answered yet). */
uint32_t cl_redis_rtt_us(const struct cl *c);

/* A main (non-auxiliary) registration of id appeared on / left this instance. */
void cl_announce(struct cl *c, const char *id);
void cl_withdraw(struct cl *c, const char *id);
/* cl_announce for a hello with replace (key: the key it proved): when the directory named
 * another instance for id, that instance is told (bus `replace`) to close its registration of
 * id with that key. */
void cl_announce_replace(struct cl *c, const char *id, const unsigned char *key);
/* conn is leaving: no answer from Redis or another instance may reach it any more; its claim
 * held on another instance, if any, is given up there. */
void cl_conn_gone(struct cl *c, struct cl_link *conn);

/* ---- wormhole codes (cl_code.c; PROTOCOL.md 20.5, "In a cluster") ----
 * The maker's instance holds a channel's state; Redis only says which instance that is. */

/* Reserves channel cluster-wide for a new channel of this instance (serial: the attempt, given
 * back in the answer): SET NX with an expiry of ttl_s + CL_CODE_KEY_SLACK_S. 0: the answer comes
 * through user->code_reserved; 1: taken at once (an earlier reservation of the number timed
 * out and Redis has not answered it yet): draw again; -1: Redis is down, nothing sent (the
 * open is refused). */
int cl_code_reserve(struct cl *c, uint32_t channel, uint64_t serial, unsigned ttl_s);
/* A channel of this instance has ended: its directory key goes, if it still names us. serial:
 * the reservation's (0: none), so that one still unanswered is not remembered when its OK
 * comes. */
void cl_code_release(struct cl *c, uint32_t channel, uint64_t serial);
/* A code-claim of conn for a channel that is not on this instance (its source's limits taken
 * already): asks the directory, then the holder's instance over the bus; what comes back goes
 * through user->code_deliver, a refusal here (unknown, overloaded) through user->refuse, and
 * user->code_ended follows the last of them. */
void cl_code_claim(struct cl *c, struct cl_link *conn, uint32_t channel);
/* conn is leaving: its claim held on another instance, if any, is given up there (also done by
 * cl_conn_gone; harmless twice). */
void cl_code_gone(struct cl *c, struct cl_link *conn);
/* Whether conn holds a claim on another instance (it may then neither open nor claim). */
bool cl_code_busy(const struct cl *c, const struct cl_link *conn);
/* A line of conn (code-answer, code-abort, or another code-* line) for a channel it claimed
 * on another instance: passed on, or refused with unexpected-type. Returns -1 (nothing done)
 * when conn holds no claim there for that channel: the caller handles the line itself. */
int cl_code_forward(struct cl *c, struct cl_link *conn, const struct proto_msg *m);
/* From the mailbox here to the claimer ref on instance inst: line (len bytes, its newline
 * included: code-claimed, code-confirm or a non-fatal error, decoded again and checked as the
 * receiver will), or NULL: the channel has ended, nothing more will come. -1: not sent (the
 * cluster is down, or the line may not go to a claimer): the caller takes that claimer as
 * gone. */
int cl_code_to_claimer(struct cl *c, const char *inst, uint64_t ref, uint32_t channel,
                       const char *line, size_t len);

#endif
