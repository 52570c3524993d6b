/* tcpunch-rendezvous: option parsing, signals and the event loop around server.c. */
#include "common/bytes.h"
#include "common/endpoint.h"
#include "common/log.h"
#include "common/sdlisten.h"
#include "rendezvous/server.h"
#include "rendezvous/srv_metrics.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define PROG "tcpunch-rendezvous"
#define DEFAULT_LISTEN "0.0.0.0:7000"
#define DEFAULT_LISTEN6 "[::]:7000"

enum { EXIT_USAGE = 1, EXIT_LISTEN = 2, EXIT_CONFIG = 3 };

enum {
    OPT_KEEPALIVE = 256,
    OPT_HELLO_TIMEOUT,
    OPT_MAX_PEERS,
    OPT_PROBE_LISTEN,
    OPT_METRICS_LISTEN,
    OPT_DRAIN
};
/* the relay's options, parsed by parse_relay */
enum {
    OPT_NO_RELAY = 512,
    OPT_RELAY_MAX,
    OPT_RELAY_BYTES,
    OPT_RELAY_SECONDS,
    OPT_RELAY_RATE,
    OPT_RELAY_WAIT,
    OPT_RELAY_IDLE,
    OPT_RELAY_PER_PEER,
    OPT_RELAY_PER_IP,
    OPT_RELAY_OFFERS,
    OPT_RELAY_COPY
};
/* admission and limits, parsed by parse_gate */
enum {
    OPT_SECRET_FILE = 768,
    OPT_ID_DB,
    OPT_AUTHORIZED,
    OPT_MAX_IDS,
    OPT_MAX_PER_IP,
    OPT_RATE_PER_IP,
    OPT_CONNECT_RATE,
    OPT_BDAY_K_MAX,
    OPT_BDAY_M_MAX,
    OPT_NO_RESUME,
    OPT_IDS_PER_KEY,
    OPT_NEW_IDS_PER_HOUR,
    OPT_ID_EXPIRE
};
/* the wormhole mailbox, parsed by parse_code */
enum { OPT_CODE_TTL = 1280, OPT_CODE_MAX, OPT_CODE_RATE, OPT_NO_CODE };
/* cluster mode, parsed by parse_cluster */
enum {
    OPT_REDIS = 1024,
    OPT_REDIS_PASSWORD_FILE,
    OPT_CLUSTER_SECRET_FILE,
    OPT_REDIS_PREFIX,
    OPT_PUBLIC_ADDRESS,
    OPT_INSTANCE_ID,
    OPT_CLUSTER_TTL
};

/* Everything the process owns, on main's stack: no mutable globals. */
struct app {
    uv_loop_t loop;
    struct srv srv;
    uv_signal_t sigint, sigterm, sighup;
    bool signals;
    struct smx *metrics; /* --metrics-listen; NULL: off */
};

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: " PROG " [OPTIONS]\n"
            "\n"
            "Rendezvous server for tcpunch. Peers register under an id; when one asks for\n"
            "another, both are sent each other's public and local endpoints at about the\n"
            "same moment so that they can open a direct TCP connection through their NATs.\n"
            "\n"
            "Options:\n"
            "  -l, --listen HOST:PORT   address to listen on, repeatable (default " DEFAULT_LISTEN
            " and\n"
            "                           " DEFAULT_LISTEN6
            ", the latter skipped where IPv6 is off);\n"
            "                           IPv6 as [ADDR]:PORT, e.g. [::]:7000 (IPv6 only)\n"
            "      --probe-listen HOST:PORT\n"
            "                           also listen here for NAT probes only, repeatable\n"
            "                           (default none); welcome announces the first one's\n"
            "                           port, so peers (and tcpunch nat-check) can tell\n"
            "                           whether their NAT keeps one public port per local one;\n"
            "                           the first IPv6 one is where peers on IPv4 prove their\n"
            "                           IPv6 address (only proven ones are passed on)\n"
            "      --metrics-listen HOST:PORT\n"
            "                           serve Prometheus metrics on GET /metrics and a health\n"
            "                           check on GET /healthz (503 once stopping) at this\n"
            "                           address, e.g. 127.0.0.1:9700 or [::1]:9700 (default:\n"
            "                           off; see deploy/METRICS.md)\n"
            "      --keepalive SEC      drop a registered peer after SEC seconds without a\n"
            "                           message (default 60); peers ping every SEC/3\n"
            "      --hello-timeout SEC  drop a connection that has not sent hello after SEC\n"
            "                           seconds (default 10)\n"
            "      --max-peers N        refuse connections beyond N at once, registered or\n"
            "                           not yet (default 100000)\n"
            "      --drain SEC          on SIGTERM or SIGINT, drain: stop accepting, tell the\n"
            "                           registered peers to go (spread over min(SEC/2, 3) s;\n"
            "                           with a --server list they move to the next server),\n"
            "                           let relayed sessions finish, exit once all are gone\n"
            "                           or after SEC seconds (1..86400; default: no drain,\n"
            "                           every peer is told at once and relays are cut)\n"
            "      --no-relay           do not relay sessions whose direct path fails\n"
            "      --relay-max N        relay at most N sessions at once (default 64)\n"
            "      --relay-bytes N      cut a relayed session after N bytes, both directions\n"
            "                           together (default 1G; K, M, G = 1024-multiples;\n"
            "                           0: unlimited)\n"
            "      --relay-seconds N    cut a relayed session after N seconds (default 3600;\n"
            "                           0: unlimited)\n"
            "      --relay-rate N       at most N bytes/s per direction per relayed session\n"
            "                           (default 0: unlimited; K, M, G allowed)\n"
            "      --relay-wait SEC     how long the first peer at the relay waits for the\n"
            "                           second (default 30)\n"
            "      --relay-idle SEC     cut a relayed session that carried no byte for SEC\n"
            "                           seconds (default 300; 0: never); TCP keepalives\n"
            "                           carry no byte: an idle ssh needs ServerAliveInterval\n"
            "      --relay-per-peer N   relayed sessions at once per id and per key\n"
            "                           (default 4; 0: no limit)\n"
            "      --relay-per-ip N     relayed sessions at once per source address, IPv6\n"
            "                           per /64 and 8 times N (at most a quarter of\n"
            "                           --relay-max) per /48 (default 8; 0: no limit)\n"
            "      --relay-offers-per-peer N\n"
            "                           relay offers pending (60 s each) per initiating id,\n"
            "                           key and address, 8 times N per IPv6 /48 (default\n"
            "                           64; 0: no limit); beyond it and the two above,\n"
            "                           punches offer no relay\n"
            "      --relay-copy         copy relayed bytes through user space instead of\n"
            "                           splice(2) (the default moves them socket -> pipe ->\n"
            "                           socket in the kernel, 4 more descriptors a session)\n"
            "      --birthday-k-max N   birthday punching (a peer behind an endpoint-\n"
            "                           dependent NAT meets one behind an independent NAT):\n"
            "                           at most N sockets on the hard side (default 256,\n"
            "                           at most 512; 0: never plan birthday punching)\n"
            "      --birthday-m-max N   ... and at most N guesses on the easy side (default\n"
            "                           1024, at most 4096; 0: never)\n"
            "      --no-resume          do not offer resumable sessions (challenge without\n"
            "                           \"resume\"): hello.features and connect.resume are\n"
            "                           then ignored (hello.replace is still taken)\n"
            "\n"
            "Wormhole codes (tcpunch send/receive with a code; PROTOCOL.md section 20):\n"
            "      --code-ttl SEC       a code channel lives SEC seconds unclaimed (10..3600,\n"
            "                           default 600; a peer may ask for less)\n"
            "      --code-max N         open code channels at most (1..100000, default\n"
            "                           10000); beyond, code-open gets server-full\n"
            "      --code-rate N        code opens and claims per minute from one address,\n"
            "                           IPv6 per /64 and 8x N per /48 (default 20, burst N/2\n"
            "                           but at least 5; 0: no limit); a failed exchange costs\n"
            "                           its claimer 2 more; at most 4 open channels per\n"
            "                           address (IPv6: and 32 per /48)\n"
            "      --no-code            no code mailbox (challenge without \"code\")\n"
            "\n"
            "Who may register (each refusal is an error line to the peer and a log line):\n"
            "      --secret-file FILE   a private server: every connection must prove that it\n"
            "                           knows the contents of FILE (tcpunch --secret-file);\n"
            "                           others get not-admitted before anything else\n"
            "      --authorized FILE    only the ids and keys listed in FILE, one \"ID KEY\"\n"
            "                           per line (KEY as `tcpunch id` prints it), may\n"
            "                           register; read again on SIGHUP\n"
            "      --id-db FILE         remember which key owns each id in FILE, across\n"
            "                           restarts (default: in memory only); an id belongs\n"
            "                           to the first key that registers it\n"
            "      --max-ids N          owners remembered at most; beyond, new ids are\n"
            "                           refused (default 100000)\n"
            "      --ids-per-key N      ids one key may own (default 8; 0: no limit)\n"
            "      --new-ids-per-hour N new ids per source address per hour, IPv6 per /64\n"
            "                           and 8 times N per /48 (default 20; 0: no limit)\n"
            "      --id-expire DAYS     an id nobody registered for DAYS days loses its\n"
            "                           owner (default 90; 0: never)\n"
            "      --max-per-ip N       connections at once from one address, IPv6 counted\n"
            "                           per /64 and 8x N per /48 (default 32; 0: no limit)\n"
            "      --rate-per-ip N      new connections per second from one address\n"
            "                           (default 20, also the burst; IPv6 as above;\n"
            "                           0: no limit)\n"
            "      --connect-rate N     connect requests per second from one peer (default 5;\n"
            "                           0: no limit); more than 10 times N refused in a\n"
            "                           second drop the peer\n"
            "\n"
            "Cluster mode (several instances acting as one; see deploy/CLUSTER.md):\n"
            "      --redis HOST:PORT    share the directory of ids, id owners and messages\n"
            "                           between instances through this Redis (default: none,\n"
            "                           a single instance); needs --public-address; replaces\n"
            "                           --id-db (owners live in Redis)\n"
            "      --redis-password-file FILE\n"
            "                           send AUTH with the first line of FILE (default none)\n"
            "      --cluster-secret-file FILE\n"
            "                           required with --redis: the same FILE on every\n"
            "                           instance; every message between instances carries a\n"
            "                           MAC keyed by its hash (stale > 30 s or replayed ones\n"
            "                           are refused)\n"
            "      --redis-prefix P     prefix of every Redis key and channel (default\n"
            "                           " CL_DEFAULT_PREFIX ")\n"
            "      --public-address HOST:PORT\n"
            "                           how peers reach this instance (numeric): peers of\n"
            "                           other instances join relays here at this address\n"
            "      --instance-id NAME   this instance's name in the cluster (default\n"
            "                           HOSTNAME-PUBLIC_ADDRESS)\n"
            "      --cluster-ttl SEC    directory entries expire SEC seconds after the last\n"
            "                           refresh (every SEC/3), so the peers of a crashed\n"
            "                           instance disappear (default 30)\n"
            "\n"
            "  -v, --verbose            log details of every connection and message\n"
            "  -q, --quiet              log errors only\n"
            "  -h, --help               show this help and exit\n"
            "  -V, --version            show the version and exit\n"
            "\n"
            "Logs go to stderr, one line per event, with a UTC timestamp.\n"
            "SIGINT or SIGTERM: tell every peer server-shutdown and exit (with --drain:\n"
            "drain first, see above); a second one drops the remaining peers and relays\n"
            "at once. Started by systemd with socket activation (LISTEN_FDS, LISTEN_PID),\n"
            "it serves the sockets passed (a name \"probe\" in LISTEN_FDNAMES: a probe\n"
            "listener) instead of binding --listen. SIGHUP: read --authorized again (a bad\n"
            "file keeps the old list) and drop registered peers it no longer lists.\n"
            "\n"
            "Exit status:\n"
            "  0  clean shutdown after SIGINT or SIGTERM\n"
            "  1  usage error (unknown option, bad value or --listen address)\n"
            "  2  cannot listen (address in use, permission denied, ...), --metrics-listen\n"
            "     included\n"
            "  3  a --secret-file, --id-db, --authorized, --redis-password-file or\n"
            "     --cluster-secret-file\n"
            "     file cannot be used (the message names the file and line), or the\n"
            "     cluster configuration is invalid\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '" PROG " --help' for more information.\n");
    return EXIT_USAGE;
}

/* A whole decimal number in lo..hi; anything else (signs, blanks, suffixes) is refused. */
static int parse_num(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
    char *end;
    unsigned long v;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* A byte count with K, M or G (powers of 1024); 0 is allowed. At most 2^63-1, so that sums of
 * counts stay far from overflowing. */
static int parse_size(const char *s, uint64_t *out)
{
    uint64_t v;
    if (bytes_parse(s, "KMG", &v) < 0 || v > INT64_MAX)
        return -1;
    *out = v;
    return 0;
}

/* The relay's options; returns 0 or the exit code of a usage error. */
static int parse_relay(int opt, const char *arg, struct rly_cfg *r)
{
    unsigned long v;
    switch (opt) {
    case OPT_NO_RELAY:
        r->enabled = false;
        return 0;
    case OPT_RELAY_COPY:
        r->copy = true;
        return 0;
    case OPT_RELAY_MAX:
        if (parse_num(arg, 1, 1000000, &v) < 0)
            return usage_error("--relay-max must be 1..1000000 sessions, not '%s'", arg);
        r->max_sessions = v;
        return 0;
    case OPT_RELAY_BYTES:
        if (parse_size(arg, &r->max_bytes) < 0)
            return usage_error("--relay-bytes must be a byte count like 500M or 0, not '%s'", arg);
        return 0;
    case OPT_RELAY_SECONDS:
        if (parse_num(arg, 0, 31536000, &v) < 0)
            return usage_error("--relay-seconds must be 0..31536000 seconds, not '%s'", arg);
        r->max_seconds = v;
        return 0;
    case OPT_RELAY_RATE:
        if (parse_size(arg, &r->rate) < 0)
            return usage_error("--relay-rate must be bytes/s like 512K or 0, not '%s'", arg);
        return 0;
    case OPT_RELAY_WAIT:
        if (parse_num(arg, 1, 3600, &v) < 0)
            return usage_error("--relay-wait must be 1..3600 seconds, not '%s'", arg);
        r->wait = (unsigned)v;
        return 0;
    case OPT_RELAY_IDLE:
        if (parse_num(arg, 0, 31536000, &v) < 0)
            return usage_error("--relay-idle must be 0..31536000 seconds, not '%s'", arg);
        r->idle = (unsigned)v;
        return 0;
    case OPT_RELAY_PER_PEER:
        if (parse_num(arg, 0, 1000000, &v) < 0)
            return usage_error("--relay-per-peer must be 0..1000000 sessions, not '%s'", arg);
        r->per_peer = (unsigned)v;
        return 0;
    case OPT_RELAY_PER_IP:
        if (parse_num(arg, 0, 1000000, &v) < 0)
            return usage_error("--relay-per-ip must be 0..1000000 sessions, not '%s'", arg);
        r->per_ip = (unsigned)v;
        return 0;
    default: /* OPT_RELAY_OFFERS */
        if (parse_num(arg, 0, RLY_MAX_OFFERS, &v) < 0)
            return usage_error("--relay-offers-per-peer must be 0..16384 offers, not '%s'", arg);
        r->offers_per_peer = (unsigned)v;
        return 0;
    }
}

/* Cluster mode; returns 0 or the exit code of a usage error. */
static int parse_cluster(int opt, const char *arg, struct cl_cfg *cl)
{
    char err[160];
    unsigned long v;
    switch (opt) {
    case OPT_REDIS:
        cl->redis = arg;
        return 0;
    case OPT_REDIS_PASSWORD_FILE:
        cl->password_file = arg;
        return 0;
    case OPT_CLUSTER_SECRET_FILE:
        cl->secret_file = arg;
        return 0;
    case OPT_REDIS_PREFIX:
        if (!*arg || strlen(arg) > CL_MAX_PREFIX || strpbrk(arg, " \t\r\n"))
            return usage_error("--redis-prefix must be 1..64 bytes without blanks, not '%s'", arg);
        cl->prefix = arg;
        return 0;
    case OPT_PUBLIC_ADDRESS:
        if (ep_resolve(arg, false, &cl->public_addr, err, sizeof err) < 0)
            return usage_error("invalid --public-address: %s", err);
        return 0;
    case OPT_INSTANCE_ID:
        cl->instance_id = arg;
        return 0;
    default: /* OPT_CLUSTER_TTL */
        if (parse_num(arg, 3, 86400, &v) < 0)
            return usage_error("--cluster-ttl must be 3..86400 seconds, not '%s'", arg);
        cl->ttl = (unsigned)v;
        return 0;
    }
}

/* The cluster flags' combinations, once all are parsed. */
static int check_cluster(const struct srv_config *cfg, bool cluster_flags)
{
    if (!cfg->cluster.redis)
        return cluster_flags ? usage_error("%s", "cluster options need --redis HOST:PORT") : -1;
    if (cfg->cluster.public_addr.ss_family == AF_UNSPEC)
        return usage_error("%s", "--redis needs --public-address HOST:PORT (how peers reach "
                                 "this instance)");
    /* whoever may PUBLISH on Redis would otherwise speak for every instance */
    if (!cfg->cluster.secret_file)
        return usage_error("%s", "--redis needs --cluster-secret-file FILE (the shared key that "
                                 "authenticates the messages between instances)");
    if (cfg->gate.id_db)
        return usage_error("%s", "--id-db and --redis exclude each other: in cluster mode the id "
                                 "owners live in Redis");
    return -1;
}

/* The wormhole mailbox's options; returns 0 or the exit code of a usage error. */
static int parse_code(int opt, const char *arg, struct wh_cfg *code)
{
    unsigned long v;
    switch (opt) {
    case OPT_CODE_TTL:
        if (parse_num(arg, WH_TTL_MIN, WH_TTL_MAX, &v) < 0)
            return usage_error("--code-ttl must be %d..%d seconds, not '%s'", WH_TTL_MIN,
                               WH_TTL_MAX, arg);
        code->ttl_s = (unsigned)v;
        return 0;
    case OPT_CODE_MAX:
        if (parse_num(arg, 1, WH_MAX_MAX, &v) < 0)
            return usage_error("--code-max must be 1..%d channels, not '%s'", WH_MAX_MAX, arg);
        code->max = (unsigned)v;
        return 0;
    case OPT_CODE_RATE:
        if (parse_num(arg, 0, 100000, &v) < 0)
            return usage_error("--code-rate must be 0..100000 per minute, not '%s'", arg);
        code->rate = (unsigned)v;
        return 0;
    default: /* OPT_NO_CODE */
        code->enabled = false;
        return 0;
    }
}

/* Admission and limits; returns 0 or the exit code of a usage error. */
static int parse_gate(int opt, const char *arg, struct srv_config *cfg)
{
    unsigned long v;
    switch (opt) {
    case OPT_SECRET_FILE:
        cfg->gate.secret_file = arg;
        return 0;
    case OPT_ID_DB:
        cfg->gate.id_db = arg;
        return 0;
    case OPT_AUTHORIZED:
        cfg->gate.authorized = arg;
        return 0;
    case OPT_MAX_IDS:
        if (parse_num(arg, 1, 100000000, &v) < 0)
            return usage_error("--max-ids must be 1..100000000, not '%s'", arg);
        cfg->gate.max_ids = v;
        return 0;
    case OPT_MAX_PER_IP:
        if (parse_num(arg, 0, 1000000, &v) < 0)
            return usage_error("--max-per-ip must be 0..1000000 connections, not '%s'", arg);
        cfg->max_per_ip = (unsigned)v;
        return 0;
    case OPT_RATE_PER_IP:
        if (parse_num(arg, 0, 1000000, &v) < 0)
            return usage_error("--rate-per-ip must be 0..1000000 per second, not '%s'", arg);
        cfg->rate_per_ip = (unsigned)v;
        return 0;
    case OPT_CONNECT_RATE:
        if (parse_num(arg, 0, 1000000, &v) < 0)
            return usage_error("--connect-rate must be 0..1000000 per second, not '%s'", arg);
        cfg->connect_rate = (unsigned)v;
        return 0;
    case OPT_IDS_PER_KEY:
        if (parse_num(arg, 0, 100000000, &v) < 0)
            return usage_error("--ids-per-key must be 0..100000000, not '%s'", arg);
        cfg->gate.ids_per_key = (unsigned)v;
        return 0;
    case OPT_NEW_IDS_PER_HOUR:
        if (parse_num(arg, 0, 1000000, &v) < 0)
            return usage_error("--new-ids-per-hour must be 0..1000000, not '%s'", arg);
        cfg->gate.new_ids_per_hour = (unsigned)v;
        return 0;
    default: /* OPT_ID_EXPIRE */
        if (parse_num(arg, 0, 36500, &v) < 0)
            return usage_error("--id-expire must be 0..36500 days, not '%s'", arg);
        cfg->gate.id_expire_days = (unsigned)v;
        return 0;
    }
}

static int add_probe_listen(struct srv_config *cfg, const char *arg)
{
    char err[160];
    if (cfg->nprobe_listen >= SRV_MAX_LISTEN)
        return usage_error("too many --probe-listen addresses (at most %d)", SRV_MAX_LISTEN);
    if (ep_resolve(arg, false, &cfg->probe_listen[cfg->nprobe_listen], err, sizeof err) < 0)
        return usage_error("invalid --probe-listen address: %s", err);
    cfg->nprobe_listen++;
    return 0;
}

static int add_listen(struct srv_config *cfg, const char *arg)
{
    char err[160];
    if (cfg->nlisten >= SRV_MAX_LISTEN)
        return usage_error("too many --listen addresses (at most %d)", SRV_MAX_LISTEN);
    if (ep_resolve(arg, false, &cfg->listen[cfg->nlisten], err, sizeof err) < 0)
        return usage_error("invalid --listen address: %s", err);
    cfg->nlisten++;
    return 0;
}

/* Returns -1 to go on, or the exit code. */
static int parse_args(int argc, char **argv, struct srv_config *cfg, struct sockaddr_storage *mx,
                      enum log_level *level)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"keepalive", required_argument, NULL, OPT_KEEPALIVE},
        {"hello-timeout", required_argument, NULL, OPT_HELLO_TIMEOUT},
        {"max-peers", required_argument, NULL, OPT_MAX_PEERS},
        {"probe-listen", required_argument, NULL, OPT_PROBE_LISTEN},
        {"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
        {"drain", required_argument, NULL, OPT_DRAIN},
        {"no-relay", no_argument, NULL, OPT_NO_RELAY},
        {"relay-max", required_argument, NULL, OPT_RELAY_MAX},
        {"relay-bytes", required_argument, NULL, OPT_RELAY_BYTES},
        {"relay-seconds", required_argument, NULL, OPT_RELAY_SECONDS},
        {"relay-rate", required_argument, NULL, OPT_RELAY_RATE},
        {"relay-wait", required_argument, NULL, OPT_RELAY_WAIT},
        {"relay-idle", required_argument, NULL, OPT_RELAY_IDLE},
        {"relay-per-peer", required_argument, NULL, OPT_RELAY_PER_PEER},
        {"relay-per-ip", required_argument, NULL, OPT_RELAY_PER_IP},
        {"relay-offers-per-peer", required_argument, NULL, OPT_RELAY_OFFERS},
        {"relay-copy", no_argument, NULL, OPT_RELAY_COPY},
        {"secret-file", required_argument, NULL, OPT_SECRET_FILE},
        {"id-db", required_argument, NULL, OPT_ID_DB},
        {"authorized", required_argument, NULL, OPT_AUTHORIZED},
        {"max-ids", required_argument, NULL, OPT_MAX_IDS},
        {"max-per-ip", required_argument, NULL, OPT_MAX_PER_IP},
        {"rate-per-ip", required_argument, NULL, OPT_RATE_PER_IP},
        {"connect-rate", required_argument, NULL, OPT_CONNECT_RATE},
        {"birthday-k-max", required_argument, NULL, OPT_BDAY_K_MAX},
        {"birthday-m-max", required_argument, NULL, OPT_BDAY_M_MAX},
        {"no-resume", no_argument, NULL, OPT_NO_RESUME},
        {"code-ttl", required_argument, NULL, OPT_CODE_TTL},
        {"code-max", required_argument, NULL, OPT_CODE_MAX},
        {"code-rate", required_argument, NULL, OPT_CODE_RATE},
        {"no-code", no_argument, NULL, OPT_NO_CODE},
        {"ids-per-key", required_argument, NULL, OPT_IDS_PER_KEY},
        {"new-ids-per-hour", required_argument, NULL, OPT_NEW_IDS_PER_HOUR},
        {"id-expire", required_argument, NULL, OPT_ID_EXPIRE},
        {"redis", required_argument, NULL, OPT_REDIS},
        {"redis-password-file", required_argument, NULL, OPT_REDIS_PASSWORD_FILE},
        {"cluster-secret-file", required_argument, NULL, OPT_CLUSTER_SECRET_FILE},
        {"redis-prefix", required_argument, NULL, OPT_REDIS_PREFIX},
        {"public-address", required_argument, NULL, OPT_PUBLIC_ADDRESS},
        {"instance-id", required_argument, NULL, OPT_INSTANCE_ID},
        {"cluster-ttl", required_argument, NULL, OPT_CLUSTER_TTL},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    unsigned long v;
    int opt, rc;
    bool cluster_flags = false;

    while ((opt = getopt_long(argc, argv, "l:vqhV", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_REDIS_PASSWORD_FILE:
        case OPT_CLUSTER_SECRET_FILE:
        case OPT_REDIS_PREFIX:
        case OPT_PUBLIC_ADDRESS:
        case OPT_INSTANCE_ID:
        case OPT_CLUSTER_TTL:
            cluster_flags = true;
            /* fall through */
        case OPT_REDIS:
            if ((rc = parse_cluster(opt, optarg, &cfg->cluster)) != 0)
                return rc;
            break;
        case 'l':
            if ((rc = add_listen(cfg, optarg)) != 0)
                return rc;
            break;
        case OPT_PROBE_LISTEN:
            if ((rc = add_probe_listen(cfg, optarg)) != 0)
                return rc;
            break;
        case OPT_METRICS_LISTEN: {
            char err[160];
            if (ep_resolve(optarg, false, mx, err, sizeof err) < 0)
                return usage_error("invalid --metrics-listen address: %s", err);
            break;
        }
        case OPT_NO_RELAY:
        case OPT_RELAY_MAX:
        case OPT_RELAY_BYTES:
        case OPT_RELAY_SECONDS:
        case OPT_RELAY_RATE:
        case OPT_RELAY_WAIT:
        case OPT_RELAY_IDLE:
        case OPT_RELAY_PER_PEER:
        case OPT_RELAY_PER_IP:
        case OPT_RELAY_OFFERS:
        case OPT_RELAY_COPY:
            if ((rc = parse_relay(opt, optarg, &cfg->relay)) != 0)
                return rc;
            break;
        case OPT_SECRET_FILE:
        case OPT_ID_DB:
        case OPT_AUTHORIZED:
        case OPT_MAX_IDS:
        case OPT_MAX_PER_IP:
        case OPT_RATE_PER_IP:
        case OPT_CONNECT_RATE:
        case OPT_IDS_PER_KEY:
        case OPT_NEW_IDS_PER_HOUR:
        case OPT_ID_EXPIRE:
            if ((rc = parse_gate(opt, optarg, cfg)) != 0)
                return rc;
            break;
        case OPT_BDAY_K_MAX:
            if (parse_num(optarg, 0, PLAN_BDAY_K_CAP, &v) < 0)
                return usage_error("--birthday-k-max must be 0..%d sockets, not '%s'",
                                   PLAN_BDAY_K_CAP, optarg);
            cfg->bday.k_max = (int)v;
            break;
        case OPT_BDAY_M_MAX:
            if (parse_num(optarg, 0, PLAN_BDAY_M_CAP, &v) < 0)
                return usage_error("--birthday-m-max must be 0..%d guesses, not '%s'",
                                   PLAN_BDAY_M_CAP, optarg);
            cfg->bday.m_max = (int)v;
            break;
        case OPT_NO_RESUME:
            cfg->resume = false;
            break;
        case OPT_CODE_TTL:
        case OPT_CODE_MAX:
        case OPT_CODE_RATE:
        case OPT_NO_CODE:
            if ((rc = parse_code(opt, optarg, &cfg->code)) != 0)
                return rc;
            break;
        case OPT_DRAIN:
            if (parse_num(optarg, 1, 86400, &v) < 0)
                return usage_error("--drain must be 1..86400 seconds, not '%s'", optarg);
            cfg->drain = (unsigned)v;
            break;
        case OPT_KEEPALIVE:
            if (parse_num(optarg, 1, 86400, &v) < 0)
                return usage_error("--keepalive must be 1..86400 seconds, not '%s'", optarg);
            cfg->keepalive = (unsigned)v;
            break;
        case OPT_HELLO_TIMEOUT:
            if (parse_num(optarg, 1, 86400, &v) < 0)
                return usage_error("--hello-timeout must be 1..86400 seconds, not '%s'", optarg);
            cfg->hello_timeout = (unsigned)v;
            break;
        case OPT_MAX_PEERS:
            if (parse_num(optarg, 1, 100000000, &v) < 0)
                return usage_error("--max-peers must be 1..100000000, not '%s'", optarg);
            cfg->max_peers = v;
            break;
        case 'v':
            *level = LOG_DEBUG;
            break;
        case 'q':
            *level = LOG_ERROR;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf(PROG " " TCPUNCH_VERSION "\n");
            return 0;
        default: /* getopt_long has printed what was wrong */
            fprintf(stderr, "Try '" PROG " --help' for more information.\n");
            return EXIT_USAGE;
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if ((rc = check_cluster(cfg, cluster_flags)) >= 0)
        return rc;
    if (cfg->nlisten == 0) {
        cfg->listen_v6_optional = true;
        return add_listen(cfg, DEFAULT_LISTEN) == 0 && add_listen(cfg, DEFAULT_LISTEN6) == 0
                   ? -1
                   : EXIT_USAGE;
    }
    return -1;
}

static bool activated_probe(const struct srv_config *cfg)
{
    for (int i = 0; i < cfg->nactivated; i++)
        if (cfg->activated[i].probe)
            return true;
    return false;
}

static int activated_main(const struct srv_config *cfg)
{
    int n = 0;
    for (int i = 0; i < cfg->nactivated; i++)
        n += !cfg->activated[i].probe;
    return n;
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct app *app = h->data;
    if (signum == SIGHUP)
        srv_reload(&app->srv);
    else
        srv_shutdown(&app->srv, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void stop_signals(struct app *app)
{
    if (!app->signals)
        return;
    uv_close((uv_handle_t *)&app->sigint, NULL);
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_close((uv_handle_t *)&app->sighup, NULL);
    app->signals = false;
}

/* Signal handles are unreferenced: they must not keep uv_run going once the server's own
 * handles are all closed, which is how a shutdown ends. */
static int start_signals(struct app *app)
{
    if (uv_signal_init(&app->loop, &app->sigint) < 0)
        return -1;
    if (uv_signal_init(&app->loop, &app->sigterm) < 0) {
        uv_close((uv_handle_t *)&app->sigint, NULL);
        return -1;
    }
    if (uv_signal_init(&app->loop, &app->sighup) < 0) {
        uv_close((uv_handle_t *)&app->sigint, NULL);
        uv_close((uv_handle_t *)&app->sigterm, NULL);
        return -1;
    }
    app->signals = true;
    app->sigint.data = app->sigterm.data = app->sighup.data = app;
    if (uv_signal_start(&app->sigint, on_signal, SIGINT) < 0 ||
        uv_signal_start(&app->sigterm, on_signal, SIGTERM) < 0 ||
        uv_signal_start(&app->sighup, on_signal, SIGHUP) < 0) {
        stop_signals(app); /* an active referenced handle would keep uv_run going */
        return -1;
    }
    uv_unref((uv_handle_t *)&app->sigint);
    uv_unref((uv_handle_t *)&app->sigterm);
    uv_unref((uv_handle_t *)&app->sighup);
    return 0;
}

int main(int argc, char **argv)
{
    struct srv_config cfg = {.keepalive = 60,
                             .hello_timeout = 10,
                             .max_peers = 100000,
                             .relay = {.enabled = true,
                                       .max_sessions = 64,
                                       .max_bytes = 1ULL << 30,
                                       .max_seconds = 3600,
                                       .rate = 0,
                                       .wait = 30,
                                       .idle = 300,
                                       .per_peer = 4,
                                       .per_ip = 8,
                                       .offers_per_peer = 64},
                             .gate = {.max_ids = 100000,
                                      .ids_per_key = 8,
                                      .new_ids_per_hour = 20,
                                      .id_expire_days = 90},
                             .max_per_ip = 32,
                             .rate_per_ip = 20,
                             .connect_rate = 5,
                             .bday = {PLAN_BDAY_K_MAX, PLAN_BDAY_M_MAX},
                             .resume = true,
                             .code = {true, WH_TTL_DEFAULT, WH_MAX_DEFAULT, WH_RATE_DEFAULT},
                             .cluster = {.prefix = CL_DEFAULT_PREFIX, .ttl = CL_DEFAULT_TTL}};
    enum log_level level = LOG_NOTE;
    struct app *app = NULL;
    char err[256] = "";
    struct sockaddr_storage mx = {0}; /* --metrics-listen (ss_family 0: none) */
    int rc = parse_args(argc, argv, &cfg, &mx, &level);

    if (rc >= 0)
        return rc;
    log_init(PROG, level, 1);
    if (sodium_init() < 0) {
        LOG_E("libsodium cannot be initialised");
        return EXIT_LISTEN;
    }
    /* systemd socket activation: its sockets instead of --listen / --probe-listen */
    cfg.nactivated = sdl_take(cfg.activated, (int)(sizeof cfg.activated / sizeof cfg.activated[0]),
                              err, sizeof err);
    if (cfg.nactivated < 0) {
        LOG_E("socket activation: %s", err);
        return EXIT_LISTEN;
    }
    if (cfg.nactivated > 0)
        LOG_I("socket activation: %d sockets passed; --listen and --probe-listen are not bound",
              cfg.nactivated);
    if (cfg.nactivated > 0 && activated_main(&cfg) == 0) {
        /* probe listeners alone: up and healthy to systemd, and no peer could ever register */
        LOG_E("socket activation: every socket passed is named \"probe\": no main listener "
              "(FileDescriptorName=probe belongs to the probe sockets only)");
        return EXIT_LISTEN;
    }
    if (cfg.nactivated > 0 && cfg.nprobe_listen > 0 && !activated_probe(&cfg))
        LOG_W("socket activation: no socket named \"probe\" (FileDescriptorName=probe): no "
              "probe listener");
    /* a peer that vanished mid-write must cost an EPIPE, not the process */
    signal(SIGPIPE, SIG_IGN);

    app = calloc(1, sizeof *app); /* the server struct holds a 64 KiB read buffer */
    if (!app) {
        LOG_E("out of memory");
        return EXIT_LISTEN;
    }
    rc = uv_loop_init(&app->loop);
    if (rc < 0) {
        LOG_E("cannot create the event loop: %s", uv_strerror(rc));
        free(app);
        return EXIT_LISTEN;
    }
    rc = srv_init(&app->srv, &app->loop, &cfg, err, sizeof err);
    if (rc == SRV_E_CONFIG) {
        LOG_E("%s", err);
        rc = EXIT_CONFIG;
        srv_shutdown(&app->srv, NULL);
    } else if (rc < 0 || srv_listen(&app->srv, err, sizeof err) < 0 ||
               (mx.ss_family && !(app->metrics = smx_start(&app->srv, (struct sockaddr *)&mx, err,
                                                            sizeof err))) ||
               start_signals(app) < 0) {
        LOG_E("%s", err[0] ? err : "cannot set up signal handling");
        rc = EXIT_LISTEN;
        srv_shutdown(&app->srv, NULL);
    }
    uv_run(&app->loop, UV_RUN_DEFAULT);
    stop_signals(app);
    smx_stop(app->metrics); /* it served until now, a drain included (its handles are unref'd) */
    /* The shutdown is over but for freeing memory: closing the handles gave SIGINT and SIGTERM
     * their default action back, and a repeated signal (`timeout` sends its SIGTERM to the
     * whole process group too) must not turn a clean exit into a kill now. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    uv_run(&app->loop, UV_RUN_DEFAULT); /* the signal handles' close callbacks */
    srv_free(&app->srv);
    if (uv_loop_close(&app->loop) != 0)
        LOG_E("internal error: handles left open at exit");
    else if (rc == 0)
        LOG_N("stopped");
    free(app);
    return rc;
}
