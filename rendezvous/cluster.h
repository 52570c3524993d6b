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

struct proto_msg;
struct plan_peer;
struct gate_cfg;
struct rly;
struct cl;

/* A connection as the cluster knows it: embedded in its user's connection struct, whose fields
 * the cluster never sees (the user maps a link back with container_of). */
struct cl_link {
    struct q ops; /* the cluster operations that may still answer it */
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
/* conn is leaving: no answer from Redis or another instance may reach it any more. */
void cl_conn_gone(struct cl *c, struct cl_link *conn);

#endif
