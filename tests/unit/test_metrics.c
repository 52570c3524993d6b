/* The metrics exposition (rendezvous/metrics.c) and the metrics port's request parser
 * (rendezvous/mhttp.c): both pure. */
#include "check.h"
#include "rendezvous/metrics.h"
#include "rendezvous/mhttp.h"

#include <ctype.h>
#include <stdbool.h>

#define BIG (256 * 1024)
static char text[BIG];

static bool t_name_ok(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
            return false;
    return true;
}

/* One sample line: name, optional {k="v",...}, one space, a number. Returns the name's length
 * or 0 when the line is not a sample. */
static size_t t_sample(const char *l, size_t n)
{
    size_t i = 0, nl;
    while (i < n && l[i] != '{' && l[i] != ' ')
        i++;
    nl = i;
    if (!t_name_ok(l, nl))
        return 0;
    if (i < n && l[i] == '{') {
        i++;
        for (;;) {
            size_t k0 = i;
            while (i < n && l[i] != '=')
                i++;
            if (!t_name_ok(l + k0, i - k0) || i + 1 >= n || l[i + 1] != '"')
                return 0;
            i += 2;
            while (i < n && l[i] != '"') {
                if (l[i] == '\\')
                    i++;
                i++;
            }
            if (i >= n)
                return 0;
            i++;
            if (i < n && l[i] == ',') {
                i++;
                continue;
            }
            if (i < n && l[i] == '}') {
                i++;
                break;
            }
            return 0;
        }
    }
    if (i >= n || l[i] != ' ')
        return 0;
    i++;
    {
        char num[64], *end;
        if (n - i == 0 || n - i >= sizeof num)
            return 0;
        memcpy(num, l + i, n - i);
        num[n - i] = '\0';
        strtod(num, &end);
        if (*end)
            return 0;
    }
    return nl;
}

/* The family a sample belongs to: a histogram's _bucket/_sum/_count go to its name. */
static bool t_in_family(const char *sample, size_t n, const char *fam, const char *type)
{
    size_t fl = strlen(fam);
    if (n == fl && memcmp(sample, fam, n) == 0)
        return strcmp(type, "histogram") != 0;
    if (strcmp(type, "histogram") != 0 || n <= fl || memcmp(sample, fam, fl) != 0)
        return false;
    return (n - fl == 7 && memcmp(sample + fl, "_bucket", 7) == 0) ||
           (n - fl == 4 && memcmp(sample + fl, "_sum", 4) == 0) ||
           (n - fl == 6 && memcmp(sample + fl, "_count", 6) == 0);
}

/* Every line is HELP, TYPE or a sample of the family TYPE announced last; HELP comes right
 * before TYPE; no family twice; counters end in _total. Returns the number of samples. */
static int t_grammar(const char *s)
{
    char fam[128] = "", type[32] = "", seen[8192] = " ";
    bool help = false;
    int samples = 0;
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t n;
        if (!CHECK(nl != NULL))
            return -1;
        n = (size_t)(nl - s);
        if (n > 7 && memcmp(s, "# HELP ", 7) == 0) {
            CHECK(!help);
            help = true;
        } else if (n > 7 && memcmp(s, "# TYPE ", 7) == 0) {
            char f[128], t[32], key[140];
            CHECK(help);
            help = false;
            if (!CHECK(sscanf(s + 7, "%127s %31s", f, t) == 2))
                return -1;
            CHECK(strcmp(t, "counter") == 0 || strcmp(t, "gauge") == 0 ||
                  strcmp(t, "histogram") == 0);
            if (strcmp(t, "counter") == 0 &&
                !CHECK(strlen(f) > 6 && strcmp(f + strlen(f) - 6, "_total") == 0))
                fprintf(stderr, "  counter %s\n", f);
            snprintf(key, sizeof key, " %s ", f);
            if (!CHECK(strstr(seen, key) == NULL))
                fprintf(stderr, "  family %s twice\n", f);
            if (strlen(seen) + strlen(key) < sizeof seen)
                strcat(seen, key + 1);
            snprintf(fam, sizeof fam, "%s", f);
            snprintf(type, sizeof type, "%s", t);
        } else {
            size_t nn = t_sample(s, n);
            CHECK(!help);
            if (!CHECK(nn > 0) || !CHECK(t_in_family(s, nn, fam, type)))
                fprintf(stderr, "  line: %.*s (family %s)\n", (int)n, s, fam);
            samples++;
        }
        s = nl + 1;
    }
    return samples;
}

/* The value of the sample line starting with prefix (name and labels, then a space). */
static double t_value(const char *s, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (const char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, prefix, pl) == 0 && l[pl] == ' ')
            return strtod(l + pl + 1, NULL);
    check_fail_(__FILE__, __LINE__, "no sample %s", prefix);
    return -1;
}

static bool t_has(const char *s, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (const char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, prefix, pl) == 0 && l[pl] == ' ')
            return true;
    return false;
}

static void t_render_grammar(void)
{
    struct mtr m = {0};
    struct mtr_view v = {.m = &m,
                         .version = "1.2.3",
                         .rss_bytes = 4096,
                         .open_fds = 7,
                         .cluster = true,
                         .redis_up = true,
                         .redis_rtt_s = 0.0005};
    size_t n;
    m.errors[PC_ID_TAKEN] = 3;
    mtr_punch_result(&m, MTR_RES_DIRECT, PROTO_NAT_INDEPENDENT, PROTO_NAT_DEPENDENT, 120);
    mtr_report_rejected(&m, MTR_REJ_AGAIN);
    mtr_report_rejected(&m, MTR_REJ_AGAIN);
    n = mtr_render(&v, text, sizeof text);
    CHECK(n > 0 && n < sizeof text);
    CHECK_INT(strlen(text), n);
    CHECK(t_grammar(text) > 100);
    CHECK(t_value(text, "tcpunch_errors_sent_total{code=\"id-taken\"}") == 3);
    CHECK(t_value(text, "tcpunch_punch_reports_rejected_total{reason=\"again\"}") == 2);
    CHECK(t_value(text, "tcpunch_punch_reports_rejected_total{reason=\"unknown\"}") == 0);
    CHECK(t_value(text, "tcpunch_build_info{version=\"1.2.3\"}") == 1);
    CHECK(t_value(text, "process_resident_memory_bytes") == 4096);
    CHECK(t_value(text, "tcpunch_cluster_redis_up") == 1);
    CHECK(t_value(text, "tcpunch_cluster_redis_rtt_seconds") == 0.0005);
}

/* Every label value of every closed set is there from the start, zeros included. */
static void t_render_all_labels(void)
{
    struct mtr m = {0};
    struct mtr_view v = {.m = &m, .version = "x"};
    char p[256];
    mtr_render(&v, text, sizeof text);
    for (int c = 1; c < PC_COUNT; c++) {
        snprintf(p, sizeof p, "tcpunch_errors_sent_total{code=\"%s\"}",
                 proto_code_name((enum proto_code)c));
        CHECK(t_value(text, p) == 0);
    }
    for (int i = 0; i < MTR_PATH_COUNT; i++) {
        snprintf(p, sizeof p, "tcpunch_introductions_total{path=\"%s\"}",
                 mtr_path_name((enum mtr_path)i));
        CHECK(t_value(text, p) == 0);
    }
    for (int r = 0; r < MTR_RES_COUNT; r++)
        for (unsigned q = 0; q < MTR_NAT_PAIRS; q++) {
            snprintf(p, sizeof p, "tcpunch_punch_results_total{result=\"%s\",nat_pair=\"%s\"}",
                     mtr_result_name((enum mtr_result)r), mtr_nat_pair_name(q));
            CHECK(t_value(text, p) == 0);
        }
    for (int r = 0; r < MTR_REJ_COUNT; r++) {
        snprintf(p, sizeof p, "tcpunch_punch_reports_rejected_total{reason=\"%s\"}",
                 mtr_rej_name((enum mtr_rej)r));
        CHECK(t_value(text, p) == 0);
    }
    CHECK(t_value(text, "tcpunch_probes_total{mapping=\"unknown\"}") == 0);
    CHECK(t_value(text, "tcpunch_probes_total{mapping=\"independent\"}") == 0);
    CHECK(t_value(text, "tcpunch_probes_total{mapping=\"dependent\"}") == 0);
    CHECK(t_value(text, "tcpunch_peers_online{family=\"ipv4\"}") == 0);
    CHECK(t_value(text, "tcpunch_peers_online{family=\"ipv6\"}") == 0);
    CHECK(t_value(text, "tcpunch_connections{state=\"linger\"}") == 0);
    /* not in cluster mode: no cluster lines; no /proc values: no process lines for them */
    CHECK(strstr(text, "tcpunch_cluster_") == NULL);
    CHECK(strstr(text, "process_open_fds") == NULL);
    CHECK(t_has(text, "process_start_time_seconds"));
    CHECK(t_value(text, "tcpunch_draining") == 0);
    CHECK(strstr(text, "?") == NULL); /* no name fell outside its table */
}

static void t_nat_pairs(void)
{
    static const struct {
        enum proto_nat a, b;
        const char *name;
    } cases[] = {
        {PROTO_NAT_UNKNOWN, PROTO_NAT_UNKNOWN, "unknown-unknown"},
        {PROTO_NAT_DEPENDENT, PROTO_NAT_UNKNOWN, "unknown-dependent"},
        {PROTO_NAT_INDEPENDENT, PROTO_NAT_INDEPENDENT, "independent-independent"},
        {PROTO_NAT_DEPENDENT, PROTO_NAT_INDEPENDENT, "independent-dependent"},
        {PROTO_NAT_INDEPENDENT, PROTO_NAT_DEPENDENT, "independent-dependent"},
        {PROTO_NAT_DEPENDENT, PROTO_NAT_DEPENDENT, "dependent-dependent"},
        {PROTO_NAT_UNKNOWN, PROTO_NAT_INDEPENDENT, "unknown-independent"},
        {(enum proto_nat)9, PROTO_NAT_INDEPENDENT, "unknown-independent"}, /* out of range */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_STR(mtr_nat_pair_name(mtr_nat_pair(cases[i].a, cases[i].b)), cases[i].name);
}

/* Cumulative buckets, +Inf equal to _count, _sum in seconds, counts matching the results. */
static void t_histogram(void)
{
    static const uint32_t ms[] = {10, 50, 51, 120, 999, 1000, 59000, 70000, 200000};
    struct mtr m = {0};
    struct mtr_view v = {.m = &m, .version = "x"};
    double prev = -1, sum_ms = 0;
    char p[256];
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        mtr_punch_result(&m, MTR_RES_RELAY, PROTO_NAT_DEPENDENT, PROTO_NAT_DEPENDENT, ms[i]);
        sum_ms += ms[i];
    }
    mtr_punch_result(&m, MTR_RES_FAILED, PROTO_NAT_UNKNOWN, PROTO_NAT_UNKNOWN, 5);
    mtr_render(&v, text, sizeof text);
    CHECK(t_grammar(text) > 0);
    for (int b = 0; b < MTR_LAT_BUCKETS; b++) {
        double got, want = 0;
        snprintf(p, sizeof p, "tcpunch_punch_duration_seconds_bucket{result=\"relay\",le=\"%g\"}",
                 mtr_lat_bounds_ms[b] / 1000.0);
        got = t_value(text, p);
        for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
            want += ms[i] <= mtr_lat_bounds_ms[b];
        CHECK(got == want);
        CHECK(got >= prev);
        prev = got;
    }
    CHECK(t_value(text, "tcpunch_punch_duration_seconds_bucket{result=\"relay\",le=\"0.05\"}") ==
          2);
    CHECK(t_value(text, "tcpunch_punch_duration_seconds_bucket{result=\"relay\",le=\"+Inf\"}") ==
          9);
    CHECK(t_value(text, "tcpunch_punch_duration_seconds_count{result=\"relay\"}") == 9);
    CHECK(t_value(text, "tcpunch_punch_duration_seconds_sum{result=\"relay\"}") == sum_ms / 1000.0);
    CHECK(t_value(text, "tcpunch_punch_results_total{result=\"relay\",nat_pair=\"dependent-"
                        "dependent\"}") == 9);
    CHECK(t_value(text, "tcpunch_punch_duration_seconds_count{result=\"failed\"}") == 1);
    CHECK(t_value(text, "tcpunch_punch_duration_seconds_count{result=\"direct\"}") == 0);
}

/* snprintf-like: a short buffer gets a NUL-terminated prefix and the full length back. */
static void t_render_cut(void)
{
    struct mtr_view v = {.version = "x"}; /* no counters: rendered as zeros */
    char small[100];
    size_t full = mtr_render(&v, text, sizeof text);
    size_t n = mtr_render(&v, small, sizeof small);
    CHECK_INT(n, full);
    CHECK_INT(strlen(small), sizeof small - 1);
    CHECK(memcmp(small, text, sizeof small - 1) == 0);
    CHECK_INT(mtr_render(&v, NULL, 0), full);
}

static void t_paths(void)
{
    CHECK_INT(mtr_path_of(true, true, false), MTR_PATH_DIRECT);
    CHECK_INT(mtr_path_of(true, false, false), MTR_PATH_DIRECT_ONLY);
    CHECK_INT(mtr_path_of(true, true, true), MTR_PATH_BIRTHDAY);
    CHECK_INT(mtr_path_of(true, false, true), MTR_PATH_BIRTHDAY);
    CHECK_INT(mtr_path_of(false, true, false), MTR_PATH_RELAY);
    CHECK_INT(mtr_path_of(false, false, false), MTR_PATH_NONE);
}

/* ---- the request parser ---- */

static enum mh_verdict t_parse(const char *s, struct mh_req *r)
{
    return mh_parse(s, strlen(s), MH_MAX_HEAD, r);
}

static void t_parse_ok(void)
{
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9700\r\n"
                              "User-Agent: Prometheus/2.45.0\r\nAccept: text/plain\r\n\r\n";
    struct mh_req r;
    int page;
    CHECK_INT(t_parse(req, &r), MH_OK);
    CHECK_INT(r.method, MH_GET);
    CHECK_STR(r.path, "/metrics");
    CHECK_INT(mh_route(&r, true, &page), 200);
    CHECK_INT(page, 1);
    /* every shorter prefix is incomplete (the request line is valid as far as it goes) */
    for (size_t n = 0; n < sizeof req - 1; n++)
        if (!CHECK_INT(mh_parse(req, n, MH_MAX_HEAD, &r), MH_MORE))
            fprintf(stderr, "  prefix %zu\n", n);
    /* bytes after the head (a body nobody reads) change nothing */
    CHECK_INT(mh_parse("GET /healthz HTTP/1.0\n\nxyz", 26, MH_MAX_HEAD, &r), MH_OK);
    CHECK_STR(r.path, "/healthz");
    CHECK_INT(t_parse("HEAD /metrics?x=1 HTTP/1.1\r\n\r\n", &r), MH_OK);
    CHECK_INT(r.method, MH_HEAD);
    CHECK_STR(r.path, "/metrics");
    CHECK_INT(t_parse("GET /healthz HTTP/1.1\r\n\r\n", &r), MH_OK);
    CHECK_INT(mh_route(&r, true, &page), 200);
    CHECK_INT(mh_route(&r, false, &page), 503);
    CHECK_INT(page, 2);
}

static void t_parse_routes(void)
{
    struct mh_req r;
    int page;
    CHECK_INT(t_parse("POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", &r), MH_OK);
    CHECK_INT(r.method, MH_OTHER);
    CHECK_INT(mh_route(&r, true, &page), 405);
    CHECK_INT(t_parse("DELETE /healthz HTTP/1.1\r\n\r\n", &r), MH_OK);
    CHECK_INT(mh_route(&r, true, &page), 405);
    CHECK_INT(t_parse("GET / HTTP/1.1\r\n\r\n", &r), MH_OK);
    CHECK_INT(mh_route(&r, true, &page), 404);
    CHECK_INT(t_parse("GET /metrics/ HTTP/1.1\r\n\r\n", &r), MH_OK);
    CHECK_INT(mh_route(&r, true, &page), 404);
    CHECK_INT(t_parse("GET /../metrics HTTP/1.1\r\n\r\n", &r), MH_OK);
    CHECK_INT(mh_route(&r, true, &page), 404);
}

static void t_parse_bad(void)
{
    static const char *const bad[] = {
        "\x16\x03\x01\x02\x00\x01", /* a TLS ClientHello: refused before any newline */
        "get /metrics HTTP/1.1\r\n\r\n",
        "GET metrics HTTP/1.1\r\n\r\n",
        "GET http://x/metrics HTTP/1.1\r\n\r\n",
        "GET /metrics HTTP/2.0\r\n\r\n",
        "GET /metrics\r\n\r\n",
        "GET  /metrics HTTP/1.1\r\n\r\n",
        "GET /metrics HTTP/1.1 \r\n\r\n",
        "GET /metrics HTTP/1.1\r\nX: \x01\r\n\r\n",
        "GET /met\x7frics HTTP/1.1\r\n\r\n",
        "\r\n\r\n",
        "ABCDEFGHIJKLMNOPQRSTU /",
    };
    struct mh_req r;
    char head[MH_MAX_HEAD + 64];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (!CHECK_INT(t_parse(bad[i], &r), MH_BAD))
            fprintf(stderr, "  case %zu\n", i);
    /* a NUL inside */
    CHECK_INT(mh_parse("GET /metrics HTTP/1.1\r\nA\0B\r\n\r\n", 29, MH_MAX_HEAD, &r), MH_BAD);
    /* a path over the limit */
    snprintf(head, sizeof head, "GET /%0*d HTTP/1.1\r\n\r\n", MH_MAX_PATH, 0);
    CHECK_INT(t_parse(head, &r), MH_BAD);
    snprintf(head, sizeof head, "GET /%0*d HTTP/1.1\r\n\r\n", MH_MAX_PATH - 1, 0);
    CHECK_INT(t_parse(head, &r), MH_OK);
}

/* No end of the head within the limit: 431, whatever comes after; never read past len. */
static void t_parse_large(void)
{
    static char head[MH_MAX_HEAD * 2];
    struct mh_req r;
    size_t n = (size_t)snprintf(head, sizeof head, "GET /metrics HTTP/1.1\r\n");
    while (n + 10 < sizeof head)
        n += (size_t)snprintf(head + n, sizeof head - n, "X-A: b\r\n");
    CHECK_INT(mh_parse(head, MH_MAX_HEAD - 1, MH_MAX_HEAD, &r), MH_MORE);
    CHECK_INT(mh_parse(head, MH_MAX_HEAD, MH_MAX_HEAD, &r), MH_TOO_LARGE);
    CHECK_INT(mh_parse(head, sizeof head, MH_MAX_HEAD, &r), MH_TOO_LARGE);
    /* the end just past the limit is not looked at */
    memcpy(head + MH_MAX_HEAD - 1, "\r\n\r\n", 4);
    CHECK_INT(mh_parse(head, MH_MAX_HEAD, MH_MAX_HEAD, &r), MH_TOO_LARGE);
    /* ... and one within it is */
    memcpy(head + MH_MAX_HEAD - 4, "\r\n\r\n", 4);
    CHECK_INT(mh_parse(head, MH_MAX_HEAD, MH_MAX_HEAD, &r), MH_OK);
}

CHECK_MAIN(TEST(t_render_grammar), TEST(t_render_all_labels), TEST(t_nat_pairs), TEST(t_histogram),
           TEST(t_render_cut), TEST(t_paths), TEST(t_parse_ok), TEST(t_parse_routes),
           TEST(t_parse_bad), TEST(t_parse_large))
