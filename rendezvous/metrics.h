/* The server's counters (deploy/METRICS.md): plain numbers the server and its modules bump as
 * things happen, and the pure renderer of the Prometheus text exposition format over them plus
 * the gauges read at scrape time. No event loop, no sockets, no server structs: the HTTP side
 * (mhttp.c) asks its user for the text, and the user (server.c) fills a struct mtr_view.
 *
 * Every label set is closed (enums below, PC_COUNT codes, the NAT kinds), so no peer can grow
 * the exposition by what it sends. */
#ifndef TP_METRICS_H
#define TP_METRICS_H

#include "proto/code.h"
#include "proto/proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An introduction's path decision (plan.c): label `path` of tcpunch_introductions_total. */
enum mtr_path {
    MTR_PATH_DIRECT,      /* a punch, with the relay offered as the fallback */
    MTR_PATH_DIRECT_ONLY, /* a punch, no relay (the server does not relay, or refused the offer) */
    MTR_PATH_BIRTHDAY,    /* a birthday punch (either with or without a relay fallback) */
    MTR_PATH_RELAY,       /* relay at once, no punch */
    MTR_PATH_NONE,        /* no path: the connect was answered with no-path */
    MTR_PATH_COUNT
};

/* A peer's traversal report (PROTOCOL.md, "Traversal reports"): label `result`. */
enum mtr_result { MTR_RES_DIRECT, MTR_RES_RELAY, MTR_RES_FAILED, MTR_RES_COUNT };

/* The unordered pair of both sides' NAT mappings as the server knew them at the punch
 * (proto_nat: unknown, independent, dependent): label `nat_pair`, 6 values. */
#define MTR_NAT_KINDS 3
#define MTR_NAT_PAIRS 6

/* tcpunch_punch_duration_seconds: upper bounds of the histogram's buckets, in ms (+Inf is
 * implied after the last) */
#define MTR_LAT_BUCKETS 10
static const uint32_t mtr_lat_bounds_ms[MTR_LAT_BUCKETS] = {50,   100,  250,   500,   1000,
                                                             2500, 5000, 10000, 30000, 60000};

/* Why a traversal report was not counted (rendezvous/reports.h): label `reason` of
 * tcpunch_punch_reports_rejected_total. */
enum mtr_rej {
    MTR_REJ_UNKNOWN, /* no punch of this connection had that session (or it was evicted) */
    MTR_REJ_AGAIN,   /* that session was reported already on this connection */
    MTR_REJ_EXPIRED, /* the punch was longer ago than RT_TTL_MS (rtable.h) */
    MTR_REJ_COUNT
};

/* tcpunch_codes_ended_total{how}: confirmed, wrong, expired, unknown_claim, gone (wh.h) */
#define MTR_CODE_ENDS 5

struct mtr {
    uint64_t accepted;               /* connections accepted on the main listeners */
    uint64_t registrations;          /* welcomes sent (aux connections included) */
    uint64_t replaced;               /* ids taken over by hello.replace (local or cluster) */
    uint64_t errors[PC_COUNT];       /* error lines sent, by code (refusals, fatal or not) */
    uint64_t intros[MTR_PATH_COUNT]; /* introductions this instance planned, by decision */
    uint64_t probes[MTR_NAT_KINDS];  /* probes recorded, by the mapping they showed */
    /* traversal reports accepted */
    uint64_t results[MTR_RES_COUNT][MTR_NAT_PAIRS];
    uint64_t lat_count[MTR_RES_COUNT][MTR_LAT_BUCKETS + 1]; /* per bucket, not cumulative */
    uint64_t lat_sum_ms[MTR_RES_COUNT];
    uint64_t cl_intro_in, cl_intro_out; /* cluster: introduce messages received / sent */
    uint64_t reports_rejected[MTR_REJ_COUNT]; /* traversal reports not counted, by reason */
    /* wormhole codes (rendezvous/wh.c): channels opened (code-opened sent), claimed, ended by
     * how (wh.h's enum wh_end, in its order: label `how`) */
    uint64_t codes_opened, codes_claimed;
    uint64_t codes_ended[MTR_CODE_ENDS];
};

static inline unsigned mtr_nat_pair(enum proto_nat a, enum proto_nat b)
{
    unsigned x = (unsigned)a < MTR_NAT_KINDS ? (unsigned)a : 0;
    unsigned y = (unsigned)b < MTR_NAT_KINDS ? (unsigned)b : 0;
    if (x > y) {
        unsigned t = x;
        x = y;
        y = t;
    }
    /* (0,0) (0,1) (0,2) (1,1) (1,2) (2,2) */
    return x == 0 ? y : x == 1 ? 2 + y : 5;
}

static inline void mtr_error(struct mtr *m, enum proto_code c)
{
    if (m && (unsigned)c < PC_COUNT)
        m->errors[c]++;
}

static inline void mtr_intro(struct mtr *m, enum mtr_path p)
{
    if (m && (unsigned)p < MTR_PATH_COUNT)
        m->intros[p]++;
}

static inline void mtr_probe(struct mtr *m, enum proto_nat n)
{
    if (m && (unsigned)n < MTR_NAT_KINDS)
        m->probes[n]++;
}

/* One accepted traversal report: result, the pair's NAT kinds (the server's view at the punch),
 * and the report's ms. */
static inline void mtr_punch_result(struct mtr *m, enum mtr_result r, enum proto_nat a,
                                    enum proto_nat b, uint32_t ms)
{
    int i = 0;
    if (!m || (unsigned)r >= MTR_RES_COUNT)
        return;
    m->results[r][mtr_nat_pair(a, b)]++;
    while (i < MTR_LAT_BUCKETS && ms > mtr_lat_bounds_ms[i])
        i++;
    m->lat_count[r][i]++;
    m->lat_sum_ms[r] += ms;
}

static inline void mtr_report_rejected(struct mtr *m, enum mtr_rej r)
{
    if (m && (unsigned)r < MTR_REJ_COUNT)
        m->reports_rejected[r]++;
}

/* An introduction's decision as the path label: a birthday punch first (it is also direct),
 * then a punch with or without the relay behind it, then the relay alone. */
static inline enum mtr_path mtr_path_of(bool direct, bool relay, bool bday)
{
    if (bday)
        return MTR_PATH_BIRTHDAY;
    if (direct)
        return relay ? MTR_PATH_DIRECT : MTR_PATH_DIRECT_ONLY;
    return relay ? MTR_PATH_RELAY : MTR_PATH_NONE;
}

/* ---- the exposition (metrics.c) ---- */

enum { MTR_FAM_IPV4, MTR_FAM_IPV6, MTR_FAMS };
enum { MTR_CONN_HELLO, MTR_CONN_LIVE, MTR_CONN_LINGER, MTR_CONN_STATES };

/* The counters plus the gauges read at scrape time by the server (server glue: srv_metrics.c).
 * A value that could not be read (rss_bytes, open_fds 0) is left out of the text. */
struct mtr_view {
    const struct mtr *m;
    uint64_t peers[MTR_FAMS];        /* registered peers online, by their control address */
    uint64_t conns[MTR_CONN_STATES]; /* connections by state */
    uint64_t max_peers;
    uint64_t relay_active, relay_total, relay_bytes;
    uint64_t rss_bytes, open_fds;
    bool cluster;      /* cluster mode: the tcpunch_cluster_* lines are there */
    bool redis_up;
    double redis_rtt_s; /* the last PING's round trip (0: none yet) */
    bool draining;      /* the server is stopping: /healthz says 503 */
    uint64_t codes_open; /* wormhole channels open now (wh_open_count) */
    const char *version;
    double start_time_s; /* Unix time */
};

/* Names of the closed label sets (tests and docs list them from here). */
const char *mtr_path_name(enum mtr_path p);
const char *mtr_result_name(enum mtr_result r);
const char *mtr_rej_name(enum mtr_rej r);
const char *mtr_code_end_name(int how); /* "confirmed", ... ("?" out of range) */
const char *mtr_nat_pair_name(unsigned pair);
const char *mtr_family_name(int fam);
const char *mtr_conn_state_name(int st);

/* Writes the Prometheus text exposition format (version 0.0.4) of v into buf (cap bytes, NUL
 * terminated when cap > 0), like snprintf: returns the length the whole text needs, so a
 * result >= cap means it was cut and a buffer of result + 1 bytes will hold it. */
size_t mtr_render(const struct mtr_view *v, char *buf, size_t cap);

#endif
