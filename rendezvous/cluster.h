/* Cluster mode (--redis): several rendezvous instances act as one, with Redis as the shared
 * directory (id -> instance, with a TTL each instance refreshes), the owner table of ids and the
 * message bus between instances (one pub/sub channel per instance). PROTOCOL.md, "Cluster".
 *
 * Without --redis none of this exists (srv->cl is NULL) and the server is a single instance.
 * With it, an outage of Redis never stops local service: registrations and introductions
 * between peers of this instance go on; the cluster layer reconnects with back-off and
 * re-announces every local peer when Redis is back. */
#ifndef TP_CLUSTER_H
#define TP_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define CL_DEFAULT_PREFIX "tcpunch:"
#define CL_DEFAULT_TTL 30       /* seconds a directory entry lives without a refresh */
#define CL_ANSWER_MS 2000       /* how long an instance waits for another to answer */
#define CL_PING_MS 1000         /* Redis health check and RTT measurement period */
#define CL_PING_TIMEOUT_MS 3000 /* no PONG for this long: Redis counts as down */
#define CL_BACKOFF_MIN_S 1      /* first reconnect delay, doubled up to ... */
#define CL_BACKOFF_MAX_S 30     /* ... this */
#define CL_MAX_OPS 4096         /* introductions and id claims in flight at once */
#define CL_MAX_INSTANCE 128     /* bytes of an instance id */
#define CL_MAX_PREFIX 64
#define CL_BUS_MAX 8192    /* bytes of one bus message */
#define CL_BUS_FRESH_S 30  /* a bus message older or newer than this is refused */
#define CL_MAX_SENDERS 256 /* instances whose last sequence number is remembered */

struct srv;
struct srv_conn;
struct proto_msg;
struct cl;

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
struct cl *cl_new(struct srv *s, uv_loop_t *loop, const struct cl_cfg *cfg, char *err,
                  size_t errlen);
/* Shutdown: lets what is queued for Redis (the withdrawals of the peers just dropped) leave,
 * for at most a second, then closes the connections and timers; the loop ends after that. */
void cl_stop(struct cl *c);
/* After the loop has run the closes. */
void cl_free(struct cl *c);

/* A `connect` for an id that is not registered here: ask the directory, then the instance
 * holding it. from gets its punch, or a non-fatal error, later (or at once). */
void cl_connect(struct cl *c, struct srv_conn *from, const char *target);

/* Ownership of a new id (not in the local cache of owners): claims it for the hello's key
 * cluster-wide, then calls srv_hello_claimed. Returns 0 when the claim is under way, -1 when
 * Redis is unavailable (the caller refuses the hello with a passing error). */
int cl_claim(struct cl *c, struct srv_conn *conn, const struct proto_msg *hello);

/* Whether Redis answers now: while it does, every hello is checked there (ownership and the
 * cluster's allowlist); while it does not, ids already seen here are served from memory. */
bool cl_is_up(const struct cl *c);

/* A main (non-auxiliary) registration appeared on / left this instance. */
void cl_announce(struct cl *c, const struct srv_conn *peer);
void cl_withdraw(struct cl *c, const struct srv_conn *peer);
/* conn is leaving: no answer from Redis or another instance may reach it any more. */
void cl_conn_gone(struct cl *c, struct srv_conn *conn);

#endif
