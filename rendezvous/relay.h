/* The relay fallback: sessions the server introduced with `punch` ... `relay:true` may have
 * their two peers join over fresh connections, which are then spliced byte for byte
 * (PROTOCOL.md, "Relay"). The relay never connects out. */
#ifndef TP_RELAY_H
#define TP_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "proto/proto.h"

#define RLY_QUEUE_HIGH (256 * 1024) /* stop reading a side above this much queued to the other */
#define RLY_QUEUE_LOW (RLY_QUEUE_HIGH / 2) /* ... and resume below this */
/* ... or above this much memory held by what is queued (requests, buffers): short segments
 * cost more than their bytes. Per session and direction at most RLY_COST_HIGH plus one read
 * (RLY_CHUNK) is held; the relay's one spare read buffer adds RLY_CHUNK in all */
#define RLY_COST_HIGH (2 * RLY_QUEUE_HIGH)
#define RLY_COST_LOW (RLY_COST_HIGH / 2)
#define RLY_OFFER_TTL_MS 60000             /* an offer expires this long after the punch */
#define RLY_MAX_OFFERS 16384               /* offers kept at once: bounds what connect floods pin */
#define RLY_EARLY_MAX (64 * 1024) /* bytes a side may send before `relayed`; more: refused */

struct rly_cfg {
    bool enabled;
    unsigned long max_sessions; /* sessions with at least one side joined */
    uint64_t max_bytes;         /* per session, both directions; 0 = unlimited */
    uint64_t max_seconds;       /* per spliced session; 0 = unlimited */
    uint64_t rate;              /* bytes/s per direction per session; 0 = unlimited */
    unsigned wait;              /* seconds the first side waits for the second */
    unsigned idle;              /* a spliced session with no byte for this long is cut; 0: never */
    unsigned per_peer;          /* sessions at once per id and per key; 0: no limit */
    unsigned per_ip;            /* sessions at once per source address (IPv6 /64); 0: none */
    unsigned offers_per_peer;   /* pending offers per initiating id, key, source; 0: no limit */
    bool copy; /* --relay-copy: copy relayed bytes through user space, never splice(2) */
};

/* One side of an offer as the quotas count it: its id, its key (NULL: unknown) and the address
 * of its control connection (NULL: unknown). */
struct rly_party {
    const char *id;
    const unsigned char *key;
    const struct sockaddr *src;
};

struct rly;

/* Returns NULL when out of memory. Unless cfg->copy, it checks once that splice(2) works on a
 * TCP socket here (rendezvous/rzc.h): spliced sessions then move their bytes in the kernel,
 * each with a pipe per direction (RZC_FDS_PER_SESSION more descriptors), and copy as before
 * when a pipe cannot be had. idle is called (once stopping) when the last relay handle
 * has closed, so that the owner can finish its own shutdown. */
struct rly *rly_new(uv_loop_t *loop, const struct rly_cfg *cfg, void (*idle)(void *), void *arg);

/* Records an offer for session: side 0 (the initiator p0) and side 1 (p1) get fresh random
 * tokens (33 bytes each, NUL-terminated). Returns 0, or -1 with the reason in why when the relay
 * is disabled, full of offers, out of randomness/memory, or a quota is used up: p0 (its id, key
 * or source) has offers_per_peer offers pending, or either side's id or key per_peer sessions
 * running, or its source per_ip. */
int rly_offer(struct rly *r, const char *session, const struct rly_party *p0,
              const struct rly_party *p1, char *token0, char *token1, char *why, size_t whylen);

/* A `relay` line arrived as the first line of a fresh connection fd from sa (addr as text); pre
 * holds the bytes that followed it. Returns 0 when the relay took fd (it owns and closes it from
 * now on), or -1 with the error code and message to send (fd untouched, still the caller's). */
int rly_join(struct rly *r, const char *session, const char *token, int fd, const char *addr,
             const struct sockaddr *sa, const char *pre, size_t prelen, char *code, size_t codelen,
             char *msg, size_t msglen);

/* Spliced or waiting sessions at the moment. Only tests/unit/test_relay.c calls it today; it
 * stays for Phase 11's metrics, which report the active relay sessions. */
size_t rly_active(const struct rly *r);

/* Totals since rly_new, for the server's metrics. */
struct rly_stats {
    size_t active;     /* rly_active */
    uint64_t sessions; /* sessions started (a first side joined) */
    uint64_t bytes;    /* bytes forwarded, both directions */
    const uint64_t *errors; /* error lines sent on relay connections, PC_COUNT of them by code */
};
void rly_stats(const struct rly *r, struct rly_stats *out);

/* After rly_stop: true once nothing of the relay keeps the loop busy. */
bool rly_idle(const struct rly *r);

/* A drain (--drain): new offers are refused from now on; the sessions already spliced go on
 * until they end or rly_stop cuts them (rly_active tells how many are left). A side waiting
 * for its other one gets server-shutdown at once: the server takes no joins any more. */
void rly_drain(struct rly *r);

/* Server shutdown: waiting sides get server-shutdown, spliced sessions are reset, offers are
 * dropped; idle is called when every handle has closed (possibly from within this call). */
void rly_stop(struct rly *r);

/* Frees the table; only after rly_stop and the loop has run the closes. */
void rly_free(struct rly *r);

#endif
