/* The cluster's private header: what its files share, with the cl__ prefix of names that
 * leave a file but not the module. The files point one way, top to bottom:
 *
 *   cl_redis.c  the connections to Redis, their life cycle and the tick (cl_new, cl_stop)
 *   cl_claim.c  the directory (id -> instance) and the ownership of ids   } side by side,
 *   cl_intro.c  the bus's dispatch and introductions between instances   } neither calls the
 *   cl_code.c   wormhole codes: their numbers in Redis, claims across    } other, but the
 *               instances                                                } dispatch hands code
 *                                                                        } messages to cl_code.c
 *   cluster.c   operations in flight (claims, introductions), publishing and small helpers
 *
 * cluster.h, the module's face, goes with cluster.c at the bottom; this header extends it for
 * the four files and is included after it (it does not include it itself, so that the face
 * stays the lowest layer: every file of the module and its users rely on it). */
#ifndef TP_CLUSTER_INT_H
#define TP_CLUSTER_INT_H

#ifndef TP_CLUSTER_H
#error "include rendezvous/cluster.h before rendezvous/cluster_int.h"
#endif

#include "common/endpoint.h"
#include "common/hmap.h"
#include "proto/bus.h"
#include "proto/proto.h"

#include <hiredis/async.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define CL_KEY_MAX (CL_MAX_PREFIX + PROTO_MAX_ID + 16)
#define CL_CHAN_MAX (CL_MAX_PREFIX + BUS_MAX_INSTANCE + 16)

enum cl_state { CL_DOWN, CL_CONNECTING, CL_UP, CL_STOPPED };
enum cl_kind { CL_INTRO, CL_CLAIM, CL_CODE_OPEN };

/* A request waiting for Redis or another instance. Every Redis callback that may still come
 * holds a reference, so the record outlives its answer or timeout until hiredis is done. */
struct cl_op {
    struct cl *cl;
    struct q link;    /* in cl->ops while not finished */
    struct q by_conn; /* in conn->ops while not finished and conn is there */
    enum cl_kind kind;
    bool finished;
    int refs;
    struct cl_link *conn;        /* NULL once it has gone */
    char from[PROTO_MAX_ID + 1]; /* CL_INTRO: the initiator's id */
    uint64_t deadline_ms;
    char session[PROTO_SESSION_LEN + 1];
    char target[PROTO_MAX_ID + 1];
    char resume[PROTO_SESSION_LEN + 1]; /* CL_INTRO: connect.resume ("" none) */
    char where[BUS_MAX_INSTANCE + 1];   /* the target's instance, once known */
    struct proto_msg *hello;            /* CL_CLAIM: the hello to finish */
    struct sockaddr_storage src;        /* CL_CLAIM: where it came from (AF_UNSPEC: unknown) */
    bool by_sha;                        /* CL_CLAIM: sent as EVALSHA */
    uint32_t channel;                   /* CL_CODE_OPEN: the number reserved */
    uint64_t serial;                    /* CL_CODE_OPEN: the mailbox's attempt */
    unsigned key_ttl;                   /* CL_CODE_OPEN: the key's EX in seconds */
    bool released; /* CL_CODE_OPEN: its channel ended before the answer (its release is sent) */
};

struct cl_sweep; /* cl_claim.c: a refresh of the directory under way */

/* The last "t" taken from one instance: anything not larger is a replay. */
struct cl_sender {
    char inst[BUS_MAX_INSTANCE + 1];
    int64_t last_t;
    uint64_t seen_ms;
};

struct cl {
    struct cl_user user;
    uv_loop_t *loop;
    unsigned ttl;
    char host[256];
    int port;
    char password[256];
    bool has_password;
    char prefix[CL_MAX_PREFIX + 1];
    char inst[BUS_MAX_INSTANCE + 1];
    char chan[CL_CHAN_MAX];
    struct sockaddr_storage public_addr;
    char public_text[EP_STRLEN];
    /* cmd: claims, lookups, the bus's PUBLISH; sub: the subscription; bulk: the sweeps over
     * every peer (refresh, touch), whose hundreds of commands would otherwise queue in cmd
     * ahead of claims and introductions (Redis serves its clients in turn) */
    redisAsyncContext *cmd, *sub, *bulk;
    enum cl_state state;
    bool sub_ok, ping_ok, ever_up;
    unsigned backoff_s;
    uint64_t down_since_ms;
    uv_timer_t tick, retry, stop;
    int handles; /* initialised timers not yet closed */
    bool ping_out;
    uint64_t ping_sent_us, last_ping_ms, last_refresh_ms, last_touch_ms;
    uint32_t redis_rtt_us;
    struct q ops;
    size_t nops;
    unsigned char bus_key[BUS_KEY_BYTES];
    int64_t last_t_sent; /* the "t" of the last message sent */
    int64_t floor_t;     /* nothing older is taken: start time, or an evicted sender's last */
    struct cl_sender senders[CL_MAX_SENDERS];
    size_t nsenders;
    uint64_t reject_window_ms; /* rate limit of the rejection log lines */
    unsigned reject_logged, reject_quiet;
    unsigned long rejected; /* bus messages refused since start */
    char claim_sha[48];     /* the claim script's SHA1 in Redis's cache ("": send it whole) */
    struct cl_sweep *sweep; /* the refresh under way, or NULL */
    char code_sha[48];      /* the code release script's SHA1 ("": send it whole) */
    struct q pxs;           /* claims of local peers held on other instances (cl_code.c) */
    struct hmap px_refs;    /* the same, by ref */
    size_t npx;
    uint64_t next_ref; /* the last claim ref handed out */
    struct hmap nums;  /* the numbers this instance holds in the directory (struct cl_num) */
};

/* ---- cluster.c ---- */

/* prefix KIND ":" id, a Redis key of this cluster */
void cl__key(const struct cl *c, const char *kind, const char *id, char *out, size_t len);
/* the bus channel of instance inst */
void cl__chan_of(const struct cl *c, const char *inst, char *out, size_t len);
bool cl__reply_ok(const redisReply *r);
/* the wall clock in microseconds, the bus's "t" */
int64_t cl__wall_us(void);

/* A new operation of conn (NULL: of nobody, a code number's reservation), in the lists with
 * the lists' reference; NULL when there are CL_MAX_OPS already or no memory. */
struct cl_op *cl__op_new(struct cl *c, enum cl_kind kind, struct cl_link *conn);
void cl__op_unref(struct cl_op *op);
/* Takes op out of the lists: nothing will answer its connection any more. */
void cl__op_finish(struct cl_op *op);
/* Ends op with an answer to its connection (code PC_UNKNOWN: a claim's "registers"). */
void cl__op_fail(struct cl_op *op, enum proto_code code, const char *msg);
/* The introduction of session, or NULL. */
struct cl_op *cl__op_find(struct cl *c, const char *session);
/* Ends every operation: the cluster cannot answer them (why: the reason in the messages). */
void cl__fail_all(struct cl *c, const char *why);
/* Ends the operations whose deadline has passed. */
void cl__expire_ops(struct cl *c, uint64_t now);

/* Logs why a bus message was refused, rate-limited (counted in c->rejected). */
void cl__reject(struct cl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Stamps m with this instance and a fresh "t", MACs it for inst's channel and publishes (cb
 * gets the number of receivers). -1: not sent (Redis down, m not valid). */
int cl__publish(struct cl *c, const char *inst, struct bus_msg *m, redisCallbackFn *cb, void *arg);

/* ---- cl_claim.c ---- */

/* Sets the directory entry of every registered peer; returns their number. */
size_t cl__announce_all(struct cl *c);
/* Begins a refresh of every registered peer's entry (unless another instance has taken it),
 * spread over the next `ticks` calls of cl__sweep_step; one under way is finished first. */
void cl__sweep_start(struct cl *c, unsigned ticks);
/* Sends this tick's share of the refresh under way. */
void cl__sweep_step(struct cl *c);
/* Drops the refresh under way (Redis lost, the cluster stopping). */
void cl__sweep_end(struct cl *c);
/* Moves the last use of every registered id in Redis (--id-expire). */
void cl__touch_all(struct cl *c);
/* Loads the claim script into Redis's script cache (a fresh connection, before its claims). */
void cl__load_scripts(struct cl *c);

/* ---- cl_intro.c ---- */

/* One message from the subscription: authenticated, fresh, then strictly decoded. */
void cl__dispatch(struct cl *c, const char *payload, size_t len);

/* ---- cl_code.c ---- */

/* A `code` message, authenticated, fresh and decoded (cl__dispatch). */
void cl__code_on_bus(struct cl *c, const struct bus_msg *m);
/* Sets the directory keys of every number held here again (NX: another instance that took one
 * while Redis had forgotten it keeps it); forgets those past their expiry. */
void cl__code_announce_all(struct cl *c);
/* A reservation of channel timed out before Redis answered: the number is held back. */
void cl__code_doubt(struct cl *c, uint32_t channel);
/* Forgets every number (cl_free). */
void cl__code_free(struct cl *c);
/* Loads the release script (a fresh connection, before its first release). */
void cl__code_load_scripts(struct cl *c);
/* Ends the proxies whose deadline has passed. */
void cl__code_expire(struct cl *c, uint64_t now);
/* Ends every proxy: the bus is gone (why: for the claimers' messages). */
void cl__code_fail_all(struct cl *c, const char *why);

#endif
