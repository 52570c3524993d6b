/* tcpunch-loadgen: many simulated peers against rendezvous servers on loopback.
 *
 * Phase 1 registers N peers (source addresses spread over 127.0.0.0/8 so N may exceed the
 * ephemeral ports of one address), phase 2 has pairs ask for each other at a set rate and times
 * each introduction from the `connect` sent to both `punch` messages received. Several servers
 * (the instances of a cluster) share the peers round-robin, and each pair then sits on two
 * different instances (--pairs cross, the default) or on one (--pairs same). The servers'
 * memory and CPU are read from /proc when their pids are given. Bounded: every phase has a
 * deadline and the program stops by itself.
 *
 * One process holds one descriptor per peer, so a count above the file limit is split over
 * cooperating processes (--base, --sync DIR): each owns a range of peer numbers (ids and source
 * addresses) and its pairs, so it times its own introductions; they meet at files in DIR
 * between the phases (bench/multi.py drives them and merges what they report). */
#include <errno.h>
#include <netinet/in.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <sodium.h>

#include "common/endpoint.h"
#include "common/srvlist.h"
#include "proto/auth.h"
#include "proto/proto.h"

#define LG_BUF 1024 /* per-peer read buffer: welcome and punch lines on loopback are short */
#define LG_CONNECTING_MAX 256 /* --in-flight default: stay under the server's listen backlog */
#define LG_PEERS_PER_SRC 5000 /* well under the ephemeral ports of one source address */
/* instances announce registrations to the cluster's directory asynchronously: introductions
 * start this long after the last registration, so they measure introductions, not that race */
#define LG_SETTLE_NS 500000000ull
#define LG_MAX_ROUNDS 4 /* --pairs same,cross,...: introduction rounds one after the other */
/* a round whose last introductions have had no answer for this long ends: they count as lost */
#define LG_LOST_NS 5000000000ull

struct lg;

struct lg_peer {
    uv_tcp_t tcp;
    uv_connect_t creq;
    struct lg *lg;
    unsigned idx;
    bool registered;
    bool dead;
    bool in_flight;       /* counted in lg->connecting: connecting or not yet welcomed */
    uint64_t intro_t0;    /* uv_hrtime of the pending introduction this peer is part of, 0: none */
    unsigned pair;        /* the pair of that introduction */
    uint64_t reg_t0;      /* uv_hrtime of its connect() */
    struct lg_peer *mate; /* and its other end */
    size_t len;
    char buf[LG_BUF];
};

struct lg_opts {
    const char *server; /* HOST:PORT[,HOST:PORT...] */
    unsigned peers;
    unsigned rate[LG_MAX_ROUNDS]; /* introductions per second, per round */
    int nrates;
    unsigned intros; /* total introductions */
    unsigned seconds;
    unsigned in_flight; /* registrations under way at once */
    int pid[SL_MAX]; /* the servers' pids, for /proc */
    int npid;
    bool same[LG_MAX_ROUNDS]; /* per round: both ends of a pair on one instance */
    int rounds;
    unsigned base;    /* --base: the number of this process's first peer */
    const char *sync; /* --sync DIR: one of several cooperating processes */
    bool json;
};

/* /proc readings of one server process */
struct lg_proc {
    long rss_base_kb, rss_reg_kb;
    unsigned long long cpu0, cpu1;
};

struct lg {
    uv_loop_t *loop;
    /* one identity for every simulated peer: the server still verifies one signature per
     * hello, which is the cost being measured; making 100k key pairs would only slow us */
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    struct lg_opts o;
    struct sl_list servers;
    struct lg_peer *peer;
    uv_timer_t tick;
    unsigned next_connect, connecting, registered, failed;
    uint64_t reg_t0, reg_t1;
    /* introductions */
    unsigned sent, done, busy_skips, intro_failed;
    uint64_t last_progress;
    uint64_t intro_t0, intro_t1;
    double credit;
    int round;
    uint64_t *lat_ns;
    uint64_t *reg_ns; /* per registration: connect() to welcome */
    unsigned *halves;            /* per pair: how many of its two punches arrived */
    struct lg_proc proc[SL_MAX]; /* per pid of o.pid */
    struct lg_round {
        unsigned n, skipped, failed, lost;
        double secs, p50, p99, max, cpu;
    } res[LG_MAX_ROUNDS];
    int phase;                   /* 1 register, 2 introduce, 3 done, 4 wait for --sync */
    uint64_t settle_until;
    uint64_t deadline;
};

/* ---- /proc readings of the server ---- */

static long lg_rss_kb(int pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static unsigned long long lg_cpu_ticks(int pid)
{
    char path[64], buf[1024];
    unsigned long long ut = 0, st = 0;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if (!(f = fopen(path, "r")))
        return 0;
    if (fgets(buf, sizeof buf, f)) {
        /* fields 14 and 15 (utime, stime) follow the parenthesised command name */
        char *p = strrchr(buf, ')');
        if (p)
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st);
    }
    fclose(f);
    return ut + st;
}

/* Reads every server process: when (0 base, 1 registered, 2 introduced, 3 a round begins). */
static void lg_read_procs(struct lg *lg, int when)
{
    for (int i = 0; i < lg->o.npid; i++) {
        struct lg_proc *pr = &lg->proc[i];
        if (when == 0)
            pr->rss_base_kb = lg_rss_kb(lg->o.pid[i]);
        if (when == 1)
            pr->rss_reg_kb = lg_rss_kb(lg->o.pid[i]);
        if (when == 1 || when == 3)
            pr->cpu0 = lg_cpu_ticks(lg->o.pid[i]);
        if (when == 2)
            pr->cpu1 = lg_cpu_ticks(lg->o.pid[i]);
    }
}

/* ---- peers ---- */

/* The instance of peer idx: the first half of the peers goes round-robin over the instances,
 * the second half too, so that peers m and m + peers/2 share one. */
static int lg_instance(const struct lg *lg, unsigned idx)
{
    unsigned half = lg->o.peers / 2, k = (unsigned)lg->servers.n;
    return (int)((idx < half ? idx : idx - half) % k);
}

/* The other end of pair m (whose first end is peer m): on the same instance, or (cross) on the
 * next one, whatever the round; with one server both are the same. */
static unsigned lg_partner(unsigned half, unsigned m, bool same)
{
    return half + (same ? m : (m + 1) % half);
}

static void lg_id(const struct lg *lg, unsigned idx, char *out, size_t len)
{
    snprintf(out, len, "lg%07u", lg->o.base + idx);
}

/* --sync: DIR/NAME.BASE, the file by which this process tells the others where it stands */
static void lg_sync_path(const struct lg *lg, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s.%u", lg->o.sync, name, lg->o.base);
}

static bool lg_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Writes the file, whole or not at all (written aside, then renamed): the reader never sees a
 * part. text may be NULL (an empty marker). */
static void lg_sync_write(const struct lg *lg, const char *name, const uint64_t *lat, unsigned n)
{
    char path[4096], tmp[4200];
    FILE *f;
    lg_sync_path(lg, name, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (!(f = fopen(tmp, "w"))) {
        fprintf(stderr, "loadgen: %s: %s\n", tmp, strerror(errno));
        return;
    }
    for (unsigned i = 0; i < n; i++)
        fprintf(f, "%" PRIu64 "\n", lat[i]);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        fprintf(stderr, "loadgen: %s: %s\n", path, strerror(errno));
}

/* p's introduction, if one is open, cannot end: counted as failed, its pair free again. */
static void lg_intro_fail(struct lg_peer *p)
{
    struct lg *lg = p->lg;
    if (!p->intro_t0)
        return;
    p->intro_t0 = 0;
    if (p->mate)
        p->mate->intro_t0 = 0;
    lg->halves[p->pair] = 0;
    lg->intro_failed++;
    lg->last_progress = uv_hrtime();
}

/* p is of no more use (an error, its connection gone): counted once. */
static void lg_dead(struct lg_peer *p)
{
    if (p->dead)
        return;
    p->dead = true;
    p->lg->failed++;
    /* a refused registration frees its place among those in flight, or a few hundred refusals
     * would stop the registration phase */
    if (p->in_flight) {
        p->in_flight = false;
        p->lg->connecting--;
    }
    lg_intro_fail(p);
}

static void lg_send(struct lg_peer *p, const char *line, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)line, (unsigned)n);
    /* lines are short and the socket buffer is empty or nearly so; a partial write is a
     * failure of the run, counted, not retried */
    if (uv_try_write((uv_stream_t *)&p->tcp, &b, 1) != (int)n)
        lg_dead(p);
}

/* The answer to the server's challenge: a hello signed over its nonce. */
static void lg_send_hello(struct lg_peer *p, const char *challenge)
{
    struct proto_msg c, m;
    char line[PROTO_MAX_LINE], why[160];
    unsigned char msg[AUTH_HELLO_MSG_MAX];
    size_t mlen;
    int n;
    if (proto_decode(challenge, strlen(challenge), PROTO_TO_PEER, &c, why, sizeof why) !=
            PROTO_OK ||
        c.type != PROTO_CHALLENGE) {
        fprintf(stderr, "loadgen: peer %u: bad challenge: %s\n", p->idx, why);
        lg_dead(p);
        return;
    }
    memset(&m, 0, sizeof m);
    m.type = PROTO_HELLO;
    m.u.hello.version = PROTO_VERSION;
    lg_id(p->lg, p->idx, m.u.hello.id, sizeof m.u.hello.id);
    mlen = auth_hello_msg(c.u.challenge.nonce, m.u.hello.id, msg);
    memcpy(m.u.hello.key, p->lg->pk, sizeof p->lg->pk);
    crypto_sign_detached(m.u.hello.sig, NULL, msg, mlen, p->lg->sk);
    m.u.hello.has_key = m.u.hello.has_sig = true;
    if ((n = proto_encode(&m, line, sizeof line)) > 0)
        lg_send(p, line, (size_t)n);
}

static void lg_intro_half(struct lg *lg, struct lg_peer *p)
{
    unsigned pair = p->pair;
    uint64_t t0 = p->intro_t0;
    if (!t0)
        return;
    p->intro_t0 = 0;
    if (++lg->halves[pair] < 2)
        return;
    lg->halves[pair] = 0;
    if (lg->done < lg->o.intros)
        lg->lat_ns[lg->done] = uv_hrtime() - t0;
    lg->done++;
    lg->intro_t1 = lg->last_progress = uv_hrtime();
}

static void lg_on_line(struct lg_peer *p, const char *line)
{
    struct lg *lg = p->lg;
    if (strstr(line, "\"type\":\"challenge\"")) {
        lg_send_hello(p, line);
    } else if (strstr(line, "\"type\":\"welcome\"") && !p->registered) {
        p->registered = true;
        lg->reg_ns[lg->registered] = uv_hrtime() - p->reg_t0;
        lg->registered++;
        p->in_flight = false;
        lg->connecting--;
        lg->reg_t1 = uv_hrtime();
    } else if (strstr(line, "\"type\":\"punch\"")) {
        lg_intro_half(lg, p);
    } else if (strstr(line, "\"type\":\"ping\"")) {
        /* answer, or the server takes us for dead */
        const char *seq = strstr(line, "\"seq\":");
        char pong[64];
        int n = snprintf(pong, sizeof pong, "{\"type\":\"pong\",\"seq\":%lld}\n",
                         seq ? atoll(seq + 6) : 0LL);
        lg_send(p, pong, (size_t)n);
    } else if (strstr(line, "\"type\":\"error\"") && !p->dead) {
        /* the first few of each kind say why; the counts say how many */
        if (p->intro_t0 ? lg->intro_failed < 5 : lg->failed < 5)
            fprintf(stderr, "loadgen: peer %u%s: %s\n", lg->o.base + p->idx,
                    p->intro_t0 ? " (introduction)" : "", line);
        lg_dead(p);
    }
}

static void lg_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct lg_peer *p = (struct lg_peer *)h;
    (void)suggested;
    *buf = uv_buf_init(p->buf + p->len, (unsigned)(sizeof p->buf - 1 - p->len));
}

static void lg_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct lg_peer *p = (struct lg_peer *)s;
    char *start, *nl;
    (void)buf;
    if (nread < 0) {
        lg_dead(p);
        uv_read_stop(s);
        return;
    }
    p->len += (size_t)nread;
    p->buf[p->len] = '\0';
    start = p->buf;
    while ((nl = strchr(start, '\n'))) {
        *nl = '\0';
        lg_on_line(p, start);
        start = nl + 1;
    }
    p->len -= (size_t)(start - p->buf);
    memmove(p->buf, start, p->len);
    if (p->len >= sizeof p->buf - 1) /* a line longer than we expect: drop it */
        p->len = 0;
}

static void lg_on_connect(uv_connect_t *req, int status)
{
    struct lg_peer *p = req->data;
    if (status < 0) {
        lg_dead(p);
        return;
    }
    uv_read_start((uv_stream_t *)&p->tcp, lg_alloc, lg_on_read);
}

static int lg_open(struct lg *lg, unsigned idx)
{
    struct lg_peer *p = &lg->peer[idx];
    struct sockaddr_in src = {.sin_family = AF_INET};
    unsigned k = (lg->o.base + idx) / LG_PEERS_PER_SRC;
    int rc, one = 1, fd;
    p->lg = lg;
    p->idx = idx;
    uv_tcp_init(lg->loop, &p->tcp);
    /* 127.1.k.1 ...: every source address brings its own ephemeral ports. The port is chosen
     * at connect() (IP_BIND_ADDRESS_NO_PORT), against the whole 4-tuple, so the TIME_WAIT
     * sockets of an earlier run against another server port do not use the ports up. */
    src.sin_addr.s_addr = htonl(0x7f010001u + (k << 8));
    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        return uv_translate_sys_error(errno);
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
        rc = uv_translate_sys_error(errno);
        close(fd);
        return rc;
    }
    if ((rc = uv_tcp_open(&p->tcp, fd)) < 0) {
        close(fd);
        return rc;
    }
    p->creq.data = p;
    p->reg_t0 = uv_hrtime();
    return uv_tcp_connect(&p->creq, &p->tcp,
                          (struct sockaddr *)&lg->servers.s[lg_instance(lg, idx)].addr,
                          lg_on_connect);
}

/* ---- phases ---- */

static void lg_register_more(struct lg *lg)
{
    while (lg->next_connect < lg->o.peers && lg->connecting < lg->o.in_flight) {
        int rc = lg_open(lg, lg->next_connect);
        lg->next_connect++;
        if (rc < 0) {
            fprintf(stderr, "loadgen: connect: %s\n", uv_strerror(rc));
            lg->failed++;
            continue;
        }
        lg->peer[lg->next_connect - 1].in_flight = true;
        lg->connecting++;
    }
}

static void lg_introduce(struct lg *lg, uint64_t now)
{
    unsigned half = lg->o.peers / 2;
    char line[160], target[PROTO_MAX_ID + 1];
    lg->credit += lg->o.rate[lg->round] / 1000.0;
    while (lg->credit >= 1 && lg->sent < lg->o.intros) {
        unsigned pair = lg->sent % half;
        struct lg_peer *a = &lg->peer[pair],
                       *b = &lg->peer[lg_partner(half, pair, lg->o.same[lg->round])];
        int n;
        lg->credit -= 1;
        if (a->intro_t0 || b->intro_t0 || a->dead || b->dead) {
            /* the pair's previous introduction is still open: skip it this time */
            lg->busy_skips++;
            lg->sent++;
            continue;
        }
        lg_id(lg, b->idx, target, sizeof target);
        n = snprintf(line, sizeof line, "{\"type\":\"connect\",\"target\":\"%s\"}\n", target);
        a->intro_t0 = b->intro_t0 = now;
        a->pair = b->pair = pair;
        a->mate = b;
        b->mate = a;
        lg_send(a, line, (size_t)n);
        lg->sent++;
    }
}

static void lg_stop(struct lg *lg)
{
    lg->phase = 3;
    uv_timer_stop(&lg->tick);
    uv_stop(lg->loop);
}

/* ---- figures ---- */

static int lg_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double lg_pct(const uint64_t *v, unsigned n, double q)
{
    if (!n)
        return 0;
    return v[(unsigned)((n - 1) * q)] / 1e6;
}

/* One server process's CPU, as a share of one core over the introductions (-1: unknown). */
static double lg_cpu(const struct lg *lg, int i, double intro_s)
{
    const struct lg_proc *pr = &lg->proc[i];
    if (intro_s <= 0 || pr->cpu1 < pr->cpu0)
        return -1;
    return (double)(pr->cpu1 - pr->cpu0) / (double)sysconf(_SC_CLK_TCK) / intro_s;
}

/* The figures of the round just done (its latencies told to the others first, with --sync). */
static void lg_round_end(struct lg *lg)
{
    struct lg_round *r = &lg->res[lg->round];
    unsigned n = lg->done < lg->o.intros ? lg->done : lg->o.intros;
    char name[32];
    lg_read_procs(lg, 2);
    if (lg->o.sync) {
        snprintf(name, sizeof name, "lat-%d", lg->round);
        lg_sync_write(lg, name, lg->lat_ns, n);
    }
    qsort(lg->lat_ns, n, sizeof *lg->lat_ns, lg_cmp);
    r->n = n;
    r->skipped = lg->busy_skips;
    r->failed = lg->intro_failed;
    r->lost = lg->o.intros - lg->busy_skips - lg->intro_failed - n;
    r->secs = (lg->intro_t1 - lg->intro_t0) / 1e9;
    r->p50 = lg_pct(lg->lat_ns, n, 0.5);
    r->p99 = lg_pct(lg->lat_ns, n, 0.99);
    r->max = lg_pct(lg->lat_ns, n, 1);
    r->cpu = lg->o.npid ? 0 : -1;
    for (int i = 0; i < lg->o.npid && r->cpu >= 0; i++)
        r->cpu = lg_cpu(lg, i, r->secs) < 0 ? -1 : r->cpu + lg_cpu(lg, i, r->secs);
}

/* Round lg->round begins now, or (--sync) once DIR/go.ROUND exists. */
static void lg_round_begin(struct lg *lg, uint64_t now)
{
    lg->sent = lg->done = lg->busy_skips = lg->intro_failed = 0;
    lg->last_progress = now;
    lg->credit = 0;
    lg->phase = lg->o.sync ? 4 : 2;
    lg->intro_t0 = lg->intro_t1 = lg->settle_until = now;
    lg_read_procs(lg, 3);
}

static void lg_on_tick(uv_timer_t *t)
{
    struct lg *lg = t->data;
    uint64_t now = uv_hrtime();
    char path[4096];
    if (now > lg->deadline) {
        fprintf(stderr, "loadgen: deadline reached in phase %d\n", lg->phase);
        lg_stop(lg);
        return;
    }
    if (lg->phase == 1) {
        lg_register_more(lg);
        if (lg->registered + lg->failed >= lg->o.peers) {
            lg_read_procs(lg, 1);
            if (lg->o.sync)
                lg_sync_write(lg, "ready", lg->reg_ns, lg->registered);
            qsort(lg->reg_ns, lg->registered, sizeof *lg->reg_ns, lg_cmp);
            lg_round_begin(lg, now);
            /* alone, the instances get their moment to announce what registered */
            if (!lg->o.sync && lg->servers.n > 1)
                lg->settle_until = lg->intro_t0 = lg->intro_t1 = now + LG_SETTLE_NS;
        }
        return;
    }
    if (lg->phase == 4) {
        snprintf(path, sizeof path, "%s/go.%d", lg->o.sync, lg->round);
        if (lg_exists(path)) {
            lg->phase = 2;
            lg->intro_t0 = lg->intro_t1 = lg->last_progress = now;
            lg_read_procs(lg, 3);
        }
        return;
    }
    if (lg->phase == 2 && now < lg->settle_until)
        return;
    if (lg->phase == 2) {
        lg_introduce(lg, now);
        unsigned ended = lg->done + lg->busy_skips + lg->intro_failed;
        if (lg->sent >= lg->o.intros &&
            (ended >= lg->o.intros || now - lg->last_progress > LG_LOST_NS)) {
            lg_round_end(lg);
            if (++lg->round < lg->o.rounds)
                lg_round_begin(lg, now);
            else
                lg_stop(lg);
        }
    }
}

/* ---- report ---- */

/* Memory of all server processes per registered peer (-1: unknown). */
static double lg_per_peer(const struct lg *lg)
{
    double kb = 0;
    if (!lg->o.npid || !lg->registered)
        return -1;
    for (int i = 0; i < lg->o.npid; i++) {
        if (lg->proc[i].rss_reg_kb <= 0)
            return -1;
        kb += (double)(lg->proc[i].rss_reg_kb - lg->proc[i].rss_base_kb);
    }
    return kb * 1024.0 / lg->registered;
}

static const char *lg_pairs_name(const struct lg *lg, int round)
{
    return lg->o.same[round] || lg->servers.n < 2 ? "same" : "cross";
}

static void lg_report_json(const struct lg *lg, double reg_s, double per_peer)
{
    const struct lg_round *r0 = &lg->res[0];
    printf("{\"peers\":%u,\"base\":%u,\"registered\":%u,\"failed\":%u,"
           "\"registrations_per_s\":%.0f,\"intros\":%u,\"intros_per_s\":%.0f,\"skipped\":%u,"
           "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"rss_per_peer_bytes\":%.0f,"
           "\"server_cpu\":%.3f,\"instances\":%d,\"pairs\":\"%s\",\"reg_p50_ms\":%.3f,"
           "\"reg_p99_ms\":%.3f,\"reg_max_ms\":%.3f,\"rounds\":[",
           lg->o.peers, lg->o.base, lg->registered, lg->failed,
           reg_s > 0 ? lg->registered / reg_s : 0, r0->n, r0->secs > 0 ? r0->n / r0->secs : 0,
           r0->skipped, r0->p50, r0->p99, r0->max, per_peer, r0->cpu, lg->servers.n,
           lg_pairs_name(lg, 0), lg_pct(lg->reg_ns, lg->registered, 0.5),
           lg_pct(lg->reg_ns, lg->registered, 0.99), lg_pct(lg->reg_ns, lg->registered, 1));
    for (int i = 0; i < lg->o.rounds; i++) {
        const struct lg_round *r = &lg->res[i];
        printf("%s{\"pairs\":\"%s\",\"intros\":%u,\"secs\":%.3f,\"intros_per_s\":%.0f,"
               "\"skipped\":%u,\"failed\":%u,\"lost\":%u,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
               "\"max_ms\":%.3f,\"server_cpu\":%.3f}",
               i ? "," : "", lg_pairs_name(lg, i), r->n, r->secs, r->secs > 0 ? r->n / r->secs : 0,
               r->skipped, r->failed, r->lost, r->p50, r->p99, r->max, r->cpu);
    }
    printf("],\"per_instance\":[");
    for (int i = 0; i < lg->o.npid; i++)
        printf("%s{\"pid\":%d,\"rss_kb\":%ld,\"cpu\":%.3f}", i ? "," : "", lg->o.pid[i],
               lg->proc[i].rss_reg_kb, lg_cpu(lg, i, lg->res[lg->o.rounds - 1].secs));
    printf("]}\n");
}

static void lg_report(struct lg *lg)
{
    double reg_s = (lg->reg_t1 - lg->reg_t0) / 1e9, per_peer = lg_per_peer(lg);
    if (lg->o.json) {
        lg_report_json(lg, reg_s, per_peer);
        return;
    }
    if (lg->servers.n > 1)
        printf("instances          %d\n", lg->servers.n);
    printf("peers registered   %u of %u (%u failed) in %.2f s: %.0f/s\n", lg->registered,
           lg->o.peers, lg->failed, reg_s, reg_s > 0 ? lg->registered / reg_s : 0);
    printf("registration       p50 %.3f ms, p99 %.3f ms, max %.3f ms (connect to welcome)\n",
           lg_pct(lg->reg_ns, lg->registered, 0.5), lg_pct(lg->reg_ns, lg->registered, 0.99),
           lg_pct(lg->reg_ns, lg->registered, 1));
    for (int i = 0; i < lg->o.rounds; i++) {
        const struct lg_round *r = &lg->res[i];
        printf("introductions      %s pairs: %u done in %.2f s: %.0f/s (%u skipped: pair still "
               "busy; %u failed, %u lost)\n",
               lg_pairs_name(lg, i), r->n, r->secs, r->secs > 0 ? r->n / r->secs : 0, r->skipped,
               r->failed, r->lost);
        printf("latency            p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", r->p50, r->p99,
               r->max);
        if (r->cpu >= 0)
            printf("server CPU         %.0f %% of one core during introductions\n", r->cpu * 100);
    }
    if (per_peer >= 0)
        printf("server memory      %.0f bytes RSS per registered peer\n", per_peer);
    for (int i = 0; i < lg->o.npid && lg->o.npid > 1; i++)
        printf("  pid %-8d      RSS %ld kB, CPU %.0f %% (last round)\n", lg->o.pid[i],
               lg->proc[i].rss_reg_kb, lg_cpu(lg, i, lg->res[lg->o.rounds - 1].secs) * 100);
}

/* ---- setup ---- */

static void lg_usage(FILE *f)
{
    fprintf(f, "Usage: tcpunch-loadgen [OPTIONS]\n"
               "Simulated peers against tcpunch-rendezvous instances on loopback.\n\n"
               "  -s, --server HOST:PORT[,HOST:PORT...]\n"
               "                          server, or the instances of a cluster: peers go\n"
               "                          round-robin over them (default 127.0.0.1:7000)\n"
               "      --pairs P[,P...]    P cross or same: with several servers, each introduced\n"
               "                          pair sits on two different instances (cross, the\n"
               "                          default) or on one (same); a list runs a round of\n"
               "                          introductions of each kind, one after the other\n"
               "      --base N            number of this process's first peer (ids, source\n"
               "                          addresses), for several processes (default 0)\n"
               "      --sync DIR          one of several processes: once registered, write\n"
               "                          DIR/ready.BASE (registration times, ns, a line\n"
               "                          each); start round R once DIR/go.R exists;\n"
               "                          after it write its latencies (ns, a line each) to\n"
               "                          DIR/lat-R.BASE\n"
               "  -n, --peers N           peers to register, even, >= 2 (default 1000)\n"
               "  -r, --rate N[,N...]     introductions per second (default 1000); a list\n"
               "                          gives each round of --pairs its own\n"
               "  -i, --intros N          introductions in total (default peers/2)\n"
               "  -t, --seconds N         stop after N seconds whatever happens (default 120)\n"
               "      --in-flight N       registrations under way at once (default 256)\n"
               "  -p, --server-pid PID[,PID...]\n"
               "                          read the servers' RSS and CPU from /proc\n"
               "                          (repeatable; totals, and each with several)\n"
               "      --json              one JSON object on stdout\n"
               "  -h, --help\n\n"
               "The server needs --max-peers and a file limit above N; peers answer pings.\n"
               "Exit: 0 all registered and introduced, 1 usage, 2 some failed or timed out.\n");
}

/* -p PID[,PID...], repeatable. */
static int lg_parse_pids(const char *arg, struct lg_opts *o)
{
    const char *p = arg;
    for (;;) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p || v <= 0 || v > 1 << 22 || (*end && *end != ',') || o->npid >= SL_MAX) {
            fprintf(stderr, "loadgen: --server-pid: \"%s\" is not a list of at most %d pids\n", arg,
                    SL_MAX);
            return -1;
        }
        o->pid[o->npid++] = (int)v;
        if (!*end)
            return 0;
        p = end + 1;
    }
}

/* -r N[,N...]: the rate of every round, or of each. */
static int lg_parse_rates(const char *arg, struct lg_opts *o)
{
    const char *p = arg;
    o->nrates = 0;
    for (;;) {
        char *end = NULL;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p || v < 1 || v > 10000000 || (*end && *end != ',') ||
            o->nrates >= LG_MAX_ROUNDS) {
            fprintf(stderr, "loadgen: --rate: \"%s\" is not a list of at most %d rates\n", arg,
                    LG_MAX_ROUNDS);
            return -1;
        }
        o->rate[o->nrates++] = (unsigned)v;
        if (!*end)
            return 0;
        p = end + 1;
    }
}

/* --pairs cross|same[,...]: the kinds of the rounds. */
static int lg_parse_pairs(const char *arg, struct lg_opts *o)
{
    const char *p = arg;
    o->rounds = 0;
    for (;;) {
        size_t n = strcspn(p, ",");
        bool same = n == 4 && strncmp(p, "same", 4) == 0;
        if ((!same && !(n == 5 && strncmp(p, "cross", 5) == 0)) || o->rounds >= LG_MAX_ROUNDS) {
            fprintf(stderr,
                    "loadgen: --pairs is a list of at most %d of cross and same, not \"%s\"\n",
                    LG_MAX_ROUNDS, arg);
            return -1;
        }
        o->same[o->rounds++] = same;
        if (!p[n])
            return 0;
        p += n + 1;
    }
}

static int lg_parse(int argc, char **argv, struct lg_opts *o)
{
    static const struct option longs[] = {
        {"server", required_argument, NULL, 's'},    {"peers", required_argument, NULL, 'n'},
        {"rate", required_argument, NULL, 'r'},      {"intros", required_argument, NULL, 'i'},
        {"seconds", required_argument, NULL, 't'},   {"server-pid", required_argument, NULL, 'p'},
        {"json", no_argument, NULL, 'j'},            {"help", no_argument, NULL, 'h'},
        {"pairs", required_argument, NULL, 'P'},     {"base", required_argument, NULL, 'B'},
        {"sync", required_argument, NULL, 'S'},      {"in-flight", required_argument, NULL, 'F'},
        {NULL, 0, NULL, 0}};
    int c;
    *o = (struct lg_opts){
        .server = "127.0.0.1:7000", .peers = 1000, .rate = {1000}, .seconds = 120, .rounds = 1,
        .in_flight = LG_CONNECTING_MAX};
    while ((c = getopt_long(argc, argv, "s:n:r:i:t:p:h", longs, NULL)) != -1) {
        switch (c) {
        case 's': o->server = optarg; break;
        case 'n': o->peers = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'r':
            if (lg_parse_rates(optarg, o) < 0)
                return -1;
            break;
        case 'i': o->intros = (unsigned)strtoul(optarg, NULL, 10); break;
        case 't': o->seconds = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'p':
            if (lg_parse_pids(optarg, o) < 0)
                return -1;
            break;
        case 'P':
            if (lg_parse_pairs(optarg, o) < 0)
                return -1;
            break;
        case 'B': o->base = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'S': o->sync = optarg; break;
        case 'F': o->in_flight = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'j': o->json = true; break;
        case 'h': lg_usage(stdout); exit(0);
        default: lg_usage(stderr); return -1;
        }
    }
    /* one rate for every round, or one per round */
    for (int i = o->nrates; i < LG_MAX_ROUNDS; i++)
        o->rate[i] = o->rate[o->nrates ? o->nrates - 1 : 0];
    if (o->peers < 2 || o->peers % 2 || o->peers > 2000000 || o->rate[0] < 1 ||
        o->seconds < 1 || o->in_flight < 1 || (o->nrates > 1 && o->nrates != o->rounds)) {
        fprintf(stderr, "loadgen: --peers must be even and 2..2000000, --rate, --seconds and "
                        "--in-flight >= 1, and a list of rates has one per round of --pairs\n");
        return -1;
    }
    /* ids are lg%07u, and each 5000 peers have a source address 127.1.k.1 (k < 256) */
    if (o->base > 1000000 || o->base + o->peers > 1000000) {
        fprintf(stderr, "loadgen: --base plus --peers must stay within 1000000\n");
        return -1;
    }
    if (!o->intros)
        o->intros = o->peers / 2;
    return 0;
}

static void lg_raise_nofile(unsigned peers)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)peers + 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (rl.rlim_max < want)
            rl.rlim_max = want; /* root may raise the hard limit */
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            fprintf(stderr, "loadgen: cannot raise the file limit to %llu: %s\n",
                    (unsigned long long)want, strerror(errno));
    }
}

int main(int argc, char **argv)
{
    struct lg lg;
    char err[200];
    int rc = 2;
    memset(&lg, 0, sizeof lg);
    if (lg_parse(argc, argv, &lg.o) < 0)
        return 1;
    if (sodium_init() < 0) {
        fprintf(stderr, "loadgen: libsodium failed to initialise\n");
        return 1;
    }
    crypto_sign_keypair(lg.pk, lg.sk);
    /* a name with several addresses stands for as many instances */
    if (sl_check(lg.o.server, err, sizeof err) < 0 ||
        sl_resolve(lg.o.server, &lg.servers, err, sizeof err) == 0 || err[0]) {
        fprintf(stderr, "loadgen: --server: %s\n", err);
        return 1;
    }
    lg_raise_nofile(lg.o.peers);
    lg.peer = calloc(lg.o.peers, sizeof *lg.peer);
    lg.lat_ns = calloc(lg.o.intros, sizeof *lg.lat_ns);
    lg.halves = calloc(lg.o.peers / 2, sizeof *lg.halves);
    lg.reg_ns = calloc(lg.o.peers, sizeof *lg.reg_ns);
    if (!lg.peer || !lg.lat_ns || !lg.halves || !lg.reg_ns) {
        fprintf(stderr, "loadgen: out of memory\n");
        goto out;
    }
    lg.loop = uv_default_loop();
    lg_read_procs(&lg, 0);
    lg.phase = 1;
    lg.reg_t0 = uv_hrtime();
    lg.deadline = lg.reg_t0 + (uint64_t)lg.o.seconds * 1000000000u;
    uv_timer_init(lg.loop, &lg.tick);
    lg.tick.data = &lg;
    uv_timer_start(&lg.tick, lg_on_tick, 0, 1);
    uv_run(lg.loop, UV_RUN_DEFAULT);
    lg_report(&lg);
    rc = lg.registered == lg.o.peers && lg.round == lg.o.rounds ? 0 : 2;
out:
    /* the process ends here: the kernel closes every socket at once, which is also the fastest
     * way to let the server see 100k peers leave */
    free(lg.peer);
    free(lg.lat_ns);
    free(lg.halves);
    free(lg.reg_ns);
    return rc;
}
