#include "rendezvous/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The text grows into a caller's buffer, snprintf style: what does not fit is only counted, so
 * one pass tells the caller the size it needs. */
struct mtr_out {
    char *buf;
    size_t cap, len;
};

static void mtr_put(struct mtr_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mtr_put(struct mtr_out *o, const char *fmt, ...)
{
    char *at = o->len < o->cap ? o->buf + o->len : NULL;
    size_t room = o->len < o->cap ? o->cap - o->len : 0;
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(at, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

static void mtr_head(struct mtr_out *o, const char *name, const char *type, const char *help)
{
    mtr_put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void mtr_u64(struct mtr_out *o, const char *name, uint64_t v)
{
    mtr_put(o, "%s %llu\n", name, (unsigned long long)v);
}

/* A sample with one label; the value comes from a closed set (no escaping needed). */
static void mtr_u64l(struct mtr_out *o, const char *name, const char *label, const char *value,
                     uint64_t v)
{
    mtr_put(o, "%s{%s=\"%s\"} %llu\n", name, label, value, (unsigned long long)v);
}

/* A whole metric that is one number. */
static void mtr_one(struct mtr_out *o, const char *name, const char *type, const char *help,
                    uint64_t v)
{
    mtr_head(o, name, type, help);
    mtr_u64(o, name, v);
}

const char *mtr_path_name(enum mtr_path p)
{
    static const char *const names[MTR_PATH_COUNT] = {"direct", "direct_only", "birthday", "relay",
                                                      "none"};
    return (unsigned)p < MTR_PATH_COUNT ? names[p] : "?";
}

const char *mtr_code_end_name(int how)
{
    static const char *const names[MTR_CODE_ENDS] = {"confirmed", "wrong", "expired",
                                                     "unknown_claim", "gone"};
    return how >= 0 && how < MTR_CODE_ENDS ? names[how] : "?";
}

const char *mtr_rej_name(enum mtr_rej r)
{
    static const char *const names[MTR_REJ_COUNT] = {"unknown", "again", "expired"};
    return (unsigned)r < MTR_REJ_COUNT ? names[r] : "?";
}

const char *mtr_result_name(enum mtr_result r)
{
    static const char *const names[MTR_RES_COUNT] = {"direct", "relay", "failed"};
    return (unsigned)r < MTR_RES_COUNT ? names[r] : "?";
}

/* In mtr_nat_pair's order: (0,0) (0,1) (0,2) (1,1) (1,2) (2,2) of proto_nat. */
const char *mtr_nat_pair_name(unsigned pair)
{
    static const char *const names[MTR_NAT_PAIRS] = {
        "unknown-unknown",         "unknown-independent",   "unknown-dependent",
        "independent-independent", "independent-dependent", "dependent-dependent"};
    return pair < MTR_NAT_PAIRS ? names[pair] : "?";
}

const char *mtr_family_name(int fam)
{
    return fam == MTR_FAM_IPV4 ? "ipv4" : fam == MTR_FAM_IPV6 ? "ipv6" : "?";
}

const char *mtr_conn_state_name(int st)
{
    static const char *const names[MTR_CONN_STATES] = {"hello", "live", "linger"};
    return st >= 0 && st < MTR_CONN_STATES ? names[st] : "?";
}

/* The version is the build's, but it is quoted into a label: escape it as the format says. */
static void mtr_build_info(struct mtr_out *o, const char *version)
{
    const char *v = version ? version : "";
    mtr_head(o, "tcpunch_build_info", "gauge", "Always 1; the label names the version.");
    mtr_put(o, "tcpunch_build_info{version=\"");
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            mtr_put(o, "\\%c", *v);
        else if (*v == '\n')
            mtr_put(o, "\\n");
        else
            mtr_put(o, "%c", *v);
    }
    mtr_put(o, "\"} 1\n");
}

static void mtr_peers(struct mtr_out *o, const struct mtr_view *v)
{
    mtr_head(o, "tcpunch_peers_online", "gauge",
             "Registered peers, by the address family of their control connection.");
    for (int f = 0; f < MTR_FAMS; f++)
        mtr_u64l(o, "tcpunch_peers_online", "family", mtr_family_name(f), v->peers[f]);
    mtr_head(o, "tcpunch_connections", "gauge",
             "Open control connections by state: hello (not registered yet), live, linger "
             "(refused, closing).");
    for (int s = 0; s < MTR_CONN_STATES; s++)
        mtr_u64l(o, "tcpunch_connections", "state", mtr_conn_state_name(s), v->conns[s]);
    mtr_one(o, "tcpunch_max_peers", "gauge", "The --max-peers limit.", v->max_peers);
}

static void mtr_counters(struct mtr_out *o, const struct mtr *m)
{
    mtr_one(o, "tcpunch_connections_accepted_total", "counter",
            "Connections accepted on the main listeners.", m->accepted);
    mtr_one(o, "tcpunch_registrations_total", "counter",
            "Registrations (welcome sent), auxiliary connections included.", m->registrations);
    mtr_one(o, "tcpunch_replaced_total", "counter",
            "Registrations closed with replaced: a newer connection with the same key took the id.",
            m->replaced);
    mtr_head(o, "tcpunch_errors_sent_total", "counter",
             "Error lines sent to peers (refusals), by protocol error code.");
    for (int c = PC_UNKNOWN + 1; c < PC_COUNT; c++)
        mtr_u64l(o, "tcpunch_errors_sent_total", "code", proto_code_name((enum proto_code)c),
                 m->errors[c]);
    mtr_head(o, "tcpunch_introductions_total", "counter",
             "Introductions this instance planned, by path decision.");
    for (int p = 0; p < MTR_PATH_COUNT; p++)
        mtr_u64l(o, "tcpunch_introductions_total", "path", mtr_path_name((enum mtr_path)p),
                 m->intros[p]);
    mtr_head(o, "tcpunch_probes_total", "counter",
             "Mapping probes recorded, by the NAT mapping they showed.");
    for (int n = 0; n < MTR_NAT_KINDS; n++)
        mtr_u64l(o, "tcpunch_probes_total", "mapping", proto_nat_name((enum proto_nat)n),
                 m->probes[n]);
}

static void mtr_relay(struct mtr_out *o, const struct mtr_view *v)
{
    mtr_one(o, "tcpunch_relay_sessions_active", "gauge",
            "Relay sessions waiting for their second side or splicing.", v->relay_active);
    mtr_one(o, "tcpunch_relay_sessions_total", "counter", "Relay sessions started.",
            v->relay_total);
    mtr_one(o, "tcpunch_relay_bytes_total", "counter",
            "Bytes forwarded by the relay, both directions.", v->relay_bytes);
}

static void mtr_results(struct mtr_out *o, const struct mtr *m)
{
    static const char hist[] = "tcpunch_punch_duration_seconds";
    mtr_head(o, "tcpunch_punch_results_total", "counter",
             "Traversal reports from peers, by outcome and the pair's NAT mappings.");
    for (int r = 0; r < MTR_RES_COUNT; r++)
        for (unsigned p = 0; p < MTR_NAT_PAIRS; p++)
            mtr_put(o, "tcpunch_punch_results_total{result=\"%s\",nat_pair=\"%s\"} %llu\n",
                    mtr_result_name((enum mtr_result)r), mtr_nat_pair_name(p),
                    (unsigned long long)m->results[r][p]);
    mtr_head(o, hist, "histogram", "Time from the punch to the reported outcome, by outcome.");
    for (int r = 0; r < MTR_RES_COUNT; r++) {
        const char *rn = mtr_result_name((enum mtr_result)r);
        uint64_t cum = 0;
        for (int b = 0; b <= MTR_LAT_BUCKETS; b++) {
            cum += m->lat_count[r][b];
            if (b < MTR_LAT_BUCKETS)
                mtr_put(o, "%s_bucket{result=\"%s\",le=\"%g\"} %llu\n", hist, rn,
                        mtr_lat_bounds_ms[b] / 1000.0, (unsigned long long)cum);
            else
                mtr_put(o, "%s_bucket{result=\"%s\",le=\"+Inf\"} %llu\n", hist, rn,
                        (unsigned long long)cum);
        }
        mtr_put(o, "%s_sum{result=\"%s\"} %.3f\n", hist, rn, m->lat_sum_ms[r] / 1000.0);
        mtr_put(o, "%s_count{result=\"%s\"} %llu\n", hist, rn, (unsigned long long)cum);
    }
    mtr_head(o, "tcpunch_punch_reports_rejected_total", "counter",
             "Traversal reports not counted: unknown session, again (reported already), expired.");
    for (int r = 0; r < MTR_REJ_COUNT; r++)
        mtr_u64l(o, "tcpunch_punch_reports_rejected_total", "reason",
                 mtr_rej_name((enum mtr_rej)r), m->reports_rejected[r]);
}

static void mtr_codes(struct mtr_out *o, const struct mtr_view *v)
{
    mtr_one(o, "tcpunch_codes_opened_total", "counter",
            "Wormhole code channels opened (code-opened sent).", v->m->codes_opened);
    mtr_one(o, "tcpunch_codes_claimed_total", "counter",
            "Wormhole code channels claimed (code-claimed sent).", v->m->codes_claimed);
    mtr_head(o, "tcpunch_codes_ended_total", "counter",
             "Wormhole code channels ended: confirmed, wrong (aborted), expired, gone (a side "
             "left); unknown_claim counts claims answered code-unknown.");
    for (int h = 0; h < MTR_CODE_ENDS; h++)
        mtr_u64l(o, "tcpunch_codes_ended_total", "how", mtr_code_end_name(h), v->m->codes_ended[h]);
    mtr_one(o, "tcpunch_codes_open", "gauge", "Wormhole code channels open now.", v->codes_open);
}

static void mtr_cluster(struct mtr_out *o, const struct mtr_view *v)
{
    if (!v->cluster)
        return;
    mtr_one(o, "tcpunch_cluster_redis_up", "gauge", "1 while the connection to Redis is up.",
            v->redis_up);
    mtr_head(o, "tcpunch_cluster_redis_rtt_seconds", "gauge",
             "Round trip of the last PING to Redis.");
    mtr_put(o, "tcpunch_cluster_redis_rtt_seconds %.6f\n", v->redis_rtt_s);
    mtr_head(o, "tcpunch_cluster_introductions_total", "counter",
             "Introduce messages over the cluster bus: in (received), out (sent).");
    mtr_u64l(o, "tcpunch_cluster_introductions_total", "direction", "in", v->m->cl_intro_in);
    mtr_u64l(o, "tcpunch_cluster_introductions_total", "direction", "out", v->m->cl_intro_out);
}

static void mtr_process(struct mtr_out *o, const struct mtr_view *v)
{
    if (v->rss_bytes)
        mtr_one(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                v->rss_bytes);
    if (v->open_fds)
        mtr_one(o, "process_open_fds", "gauge", "Number of open file descriptors.", v->open_fds);
    mtr_head(o, "process_start_time_seconds", "gauge",
             "Start time of the process since the Unix epoch in seconds.");
    mtr_put(o, "process_start_time_seconds %.3f\n", v->start_time_s);
    mtr_one(o, "tcpunch_draining", "gauge", "1 once the server is stopping (SIGTERM).",
            v->draining);
    mtr_build_info(o, v->version);
}

size_t mtr_render(const struct mtr_view *v, char *buf, size_t cap)
{
    static const struct mtr zero;
    struct mtr_view w = *v;
    struct mtr_out o = {buf, cap, 0};
    if (cap)
        buf[0] = '\0';
    if (!w.m)
        w.m = &zero;
    mtr_peers(&o, &w);
    mtr_counters(&o, w.m);
    mtr_relay(&o, &w);
    mtr_results(&o, w.m);
    mtr_codes(&o, &w);
    mtr_cluster(&o, &w);
    mtr_process(&o, &w);
    return o.len;
}
