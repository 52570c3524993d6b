#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/endpoint.h"
#include "common/identity.h"
#include "common/log.h"
#include "common/srvlist.h"
#include "common/vis.h"
#include "peer/config.h"
#include "peer/migrate.h"
#include "peer/options.h"
#include "proto/auth.h"
#include "proto/wcode.h"

enum { OPTS_JSON = 256 }; /* long options without a short form */
enum { OPTS_DIRECT_TIMEOUT = 300, OPTS_NO_RELAY, OPTS_RELAY_ONLY };
enum { OPTS_PEER_KEY = 400, OPTS_PLAIN };
enum { OPTS_SECRET_FILE = 500, OPTS_NO_RETRY };
enum { OPTS_DIR = 700, OPTS_FORCE, OPTS_FROM, OPTS_FROM_ANYONE, OPTS_DOTFILES,
       OPTS_MAX_BYTES, OPTS_MAX_FILES };
enum { OPTS_FORWARD = 600, OPTS_LOCAL, OPTS_ALLOW, OPTS_MAX_SESSIONS, OPTS_ALLOW_ANYONE };
enum { OPTS_BIRTHDAY_K = 800, OPTS_BIRTHDAY_M };
enum {
    OPTS_RESUME_TIMEOUT = 900,
    OPTS_RESUME_BUFFER,
    OPTS_RELAY_GRACE,
    OPTS_DIRECT_FIRST,
    OPTS_NO_REPORT
};
enum { OPTS_CODE = 1000, OPTS_CODE_WORDS, OPTS_REMEMBER, OPTS_TO };

void opts_usage(FILE *out)
{
    fputs("Usage: tcpunch [OPTIONS] COMMAND [ARGS]\n"
          "Direct TCP connections between peers behind NATs (TCP simultaneous open),\n"
          "introduced by a tcpunch-rendezvous server. Data flows on stdin/stdout like nc.\n"
          "\n"
          "Commands:\n"
          "  listen              register, wait for one peer to connect, then pipe stdin/stdout\n"
          "                      (--forward HOST:PORT --allow ID: serve those peers, each\n"
          "                      over its own connection to HOST:PORT)\n"
          "  connect PEER        ask the server for PEER, punch through, then pipe stdin/stdout\n"
          "  chat [PEER]         line chat with PEER (no PEER: wait for one); /quit ends it\n"
          "  direct --port LOCAL HOST:PORT\n"
          "                      no server: connect from port LOCAL to HOST:PORT again and\n"
          "                      again until the other side, doing the same, meets us\n"
          "                      (both know each other's public address and port)\n"
          "  nat-check           register, probe the server's probe port from the same\n"
          "                      local port (behind a NAT that maps per destination, up\n"
          "                      to 3 more from fresh ports) and report on stdout what\n"
          "                      our NAT does: the verdict (exit status 0, 7, 8 or 9),\n"
          "                      the kind of side (easy, hard with random or sequential\n"
          "                      ports) and what a punch with each kind of peer means\n"
          "  id                  print our public key and its fingerprint (creating the\n"
          "                      identity on first use); --json: as a JSON object\n"
          "  send PEER FILE...   send files (a directory: everything in it) to PEER, which\n"
          "                      runs receive; each is verified by checksum on arrival\n"
          "  send FILE...        no PEER: print a one-time code (Code: 7-guitar-ribbon),\n"
          "                      wait for `receive CODE` on the other machine, then send\n"
          "                      (the first argument is a FILE when it exists, else the\n"
          "                      PEER; --code or --to PEER say which)\n"
          "  receive --from ID[=KEY] | --from-anyone\n"
          "                      register, wait for one sender, store its files in --dir\n"
          "                      (never outside it; existing files only with --force;\n"
          "                      hidden names only with --dotfiles)\n"
          "  receive CODE        take the files of the `send FILE...` that printed CODE\n"
          "  listen --code       print a one-time code, wait for `connect --code CODE`,\n"
          "                      then pipe stdin/stdout\n"
          "  connect --code CODE join the `listen --code` that printed CODE, then pipe\n"
          "  config              print the settings in effect and where each came from\n"
          "\n"
          "Options (before or after the command):\n"
          "  -s, --server HOST:PORT[,HOST:PORT...]\n"
          "                          rendezvous server(s) (env TCPUNCH_SERVER): the first\n"
          "                          that answers is used (a name with several addresses\n"
          "                          counts as several); listen and receive move to the\n"
          "                          next when theirs is lost, keeping their id\n"
          "  -i, --id NAME           our id, [A-Za-z0-9._-]{1,64} (env TCPUNCH_ID;\n"
          "                          default: the host name)\n"
          "  -p, --port N            local port for the server connection and the punch\n"
          "                          (default 0: pick a free one)\n"
          "  -t, --timeout SEC       give up punching after SEC seconds (default 10;\n"
          "                          fractions allowed, 0.1 to 3600)\n"
          "      --direct-timeout SEC\n"
          "                          when the server offers a relay, open it if no direct\n"
          "                          connection is up after SEC seconds; direct attempts\n"
          "                          go on until --timeout (default 5; fractions allowed,\n"
          "                          0 to 3600)\n"
          "      --no-relay          direct connections only, never through the relay\n"
          "      --relay-only        through the server's relay only, no direct attempt\n"
          "      --peer-key KEY      the peer's public key or fingerprint (SHA256:...):\n"
          "                          refuse any other (default: known_peers, trust on\n"
          "                          first use)\n"
          "      --plain             direct only: no handshake, no encryption, to talk to\n"
          "                          a plain TCP program (nc, socat) on the other side\n"
          "      --secret-file FILE  the admission secret of a private server (its\n"
          "                          --secret-file; env TCPUNCH_SECRET_FILE)\n"
          "      --no-retry          listen, chat without PEER: exit 2 when the server is\n"
          "                          down or the connection to it is lost (default: keep\n"
          "                          reconnecting, 1 s doubling to 30 s)\n"
          "      --no-report         tell the server nothing of how our punches ended (by\n"
          "                          default each introduction's result, direct, relay or\n"
          "                          failed, goes to a server that asks for it)\n"
          "      --birthday-k N      birthday punching, behind a hard NAT (a new port per\n"
          "                          destination) meeting an easy one: open at most N\n"
          "                          sockets, one SYN each (default 256, 0 to 512; 0: do\n"
          "                          not take part, the server relays such pairs)\n"
          "      --birthday-m N      ... behind the easy NAT: send at most N guesses at\n"
          "                          the hard NAT's ports, one SYN each, within a second\n"
          "                          (default 1024, 0 to 4096; 0: do not take part)\n"
          "      --resume-timeout SEC\n"
          "                          sessions that survive their connection, where the\n"
          "                          server and the peer offer it: keep a session whose\n"
          "                          connection broke for up to SEC seconds and resume it\n"
          "                          (the smaller of both sides'; default 120, 0 to 3600;\n"
          "                          0: off, nothing announced, the stream as before)\n"
          "      --resume-buffer SIZE\n"
          "                          ... keep up to SIZE bytes sent but not yet\n"
          "                          acknowledged, to resend after a resume (K, M, G:\n"
          "                          powers of 1024; default 8M, 64K to 1G)\n"
          "      --relay-grace MS    connect, listen: relay first, then direct: when the\n"
          "                          server offers a relay and both sides resume, join it\n"
          "                          after MS ms (default: 2 server round trips, 50 ms at\n"
          "                          least; 0 to 60000) and move to direct when it comes\n"
          "      --direct-first      ... wait --direct-timeout for direct, as before; no\n"
          "                          upgrade\n"
          "      --forward HOST:PORT listen: stay registered and serve the peers that\n"
          "                          --allow or --allow-anyone admits, each over its own\n"
          "                          TCP connection to HOST:PORT (many at once)\n"
          "      --allow ID[=KEY]    listen --forward: serve peer ID (repeatable), and with\n"
          "                          KEY (a key or SHA256:... fingerprint) only that key\n"
          "                          (else keys as known_peers says)\n"
          "      --allow-anyone      listen --forward: serve anyone who knows our id (one\n"
          "                          of --allow and --allow-anyone is required)\n"
          "      --local [ADDR:]PORT connect: listen on ADDR:PORT (default 127.0.0.1) and\n"
          "                          punch a new connection to PEER for every local\n"
          "                          client, like ssh -L; runs until SIGINT/SIGTERM\n"
          "      --max-sessions N    --forward/--local: sessions at once (default 64);\n"
          "                          more are refused\n"
          "      --dir DIR           receive: store the files in DIR (default: the current\n"
          "                          directory)\n"
          "      --force             receive: replace existing files of the same name\n"
          "      --from ID[=KEY]     receive: take files only from peer ID (repeatable), and\n"
          "                          with KEY (a key or SHA256:... fingerprint) only under\n"
          "                          that key; other senders are refused at the punch\n"
          "                          order (their send times out) and receive waits on\n"
          "      --from-anyone       receive: take files from whoever knows our id (one of\n"
          "                          --from and --from-anyone is required)\n"
          "      --dotfiles          receive: take names with a component starting with '.'\n"
          "                          (.ssh/..., .bashrc); refused by default\n"
          "      --max-bytes N       receive: refuse a transfer that announces more than N\n"
          "                          bytes (K, M, G, T: powers of 1024; default 0: no\n"
          "                          fixed cap; each new directory counts 4 KiB); every\n"
          "                          file must also fit the free space of --dir, less a\n"
          "                          reserve of 1% (at most 1 GiB)\n"
          "      --max-files N       receive: refuse a transfer that announces more than N\n"
          "                          files (default 10000)\n"
          "      --code              send, listen: make a one-time code (send: even when the\n"
          "                          first argument could be a PEER); connect: the argument\n"
          "                          is a CODE. A code is good for one try: a wrong one\n"
          "                          burns it on both sides (exit 12)\n"
          "      --code-words N      the words of a code we make: 2 (default, 16 bits) or 3\n"
          "                          (24 bits)\n"
          "      --remember          with a code: record the peer's id and key in known_peers\n"
          "                          once the connection is verified, so that the next time\n"
          "                          needs no code (send PEER FILE, receive --from ID)\n"
          "      --to PEER           send: the peer to send to, even when a file of that name\n"
          "                          exists (send --to PEER FILE...)\n"
          "  -v, --verbose           say how the connection was made; twice: debug detail\n"
          "  -q, --quiet             print errors only\n"
          "      --json              events (registered, punching, connected, suspended,\n"
          "                          resumed, upgraded, closed, error; code: the code we\n"
          "                          made) as JSON lines on stderr; nat-check prints its\n"
          "                          report as one JSON object on stdout\n"
          "  -h, --help              show this help\n"
          "  -V, --version           show the version\n"
          "\n"
          "Exit status:\n"
          "  0  done: both directions finished\n"
          "  1  usage error\n"
          "  2  server unreachable, refused us (e.g. id taken), or lost before the punch\n"
          "  3  peer not found on the server\n"
          "  4  punch failed: no verified connection (direct or relayed) before\n"
          "     --timeout, or no path (relay refused, full, disabled or timed out);\n"
          "     or the peer's key is not the one known_peers or --peer-key expects\n"
          "  5  connection lost after it was established (a session that cannot be\n"
          "     resumed), its data failed authentication (modified in transit), or\n"
          "     the peer ended a resumable session (it stopped or answered gone)\n"
          "  6  local error: stdin/stdout, the local --port is in use, or our\n"
          "     identity cannot be read or created\n"
          "  nat-check, its verdict (failures as above):\n"
          "  0  no NAT: the server sees one of our own addresses\n"
          "  7  NAT with endpoint-independent mapping: direct connections can be punched\n"
          "  8  NAT with endpoint-dependent mapping (symmetric): a relay is needed,\n"
          "     except with an easy peer (birthday punching)\n"
          "  9  cannot tell: the server has no probe port, or the probe got no answer\n"
          "  send, receive (failures as above):\n"
          "  10 the transfer ended properly, but the receiver refused some files (or\n"
          "     all of them: an older receive --from that did not take our files)\n"
          "  resumable sessions (failures as above):\n"
          "  11 the connection was lost and no new one came within --resume-timeout\n"
          "  codes (failures as above):\n"
          "  12 the code exchange failed: a wrong code (or a guess) on either side, or\n"
          "     someone who knew the code is in the middle (the handshake refused it);\n"
          "     the code is burned, make a new one\n"
          "  13 no such code: it expired, was already used, or was never made\n"
          "\n"
          "Settings: flags > environment > config file ($TCPUNCH_HOME/config, default\n"
          "~/.config/tcpunch/config: key = value lines for server, id, port, timeout,\n"
          "direct-timeout, relay (auto/never/only), secret-file, verbose, quiet, no-retry,\n"
          "dir, birthday-k, birthday-m, resume-timeout, resume-buffer, relay-grace,\n"
          "direct-first, no-report) > defaults; `tcpunch config` shows them. See tcpunch(1).\n"
          "\n"
          "Examples:\n"
          "  tcpunch -s vps.example:7000 -i bob listen > received.bin\n"
          "  tcpunch -s vps.example:7000 -i alice connect bob < file.bin\n"
          "  tcpunch direct --port 40000 198.51.100.7:40000\n"
          "  tcpunch -s vps.example:7000 -i bob listen --forward 127.0.0.1:22 --allow alice\n"
          "  ssh -o ProxyCommand='tcpunch -s vps.example:7000 connect %h' user@bob\n"
          "  tcpunch -s vps.example:7000 connect bob --local 8080\n"
          "  tcpunch receive --from alice --dir ~/incoming   (server, id from the config file)\n"
          "  tcpunch send bob photos/ notes.txt\n",
          out);
}

int opts_bad(const char *fmt, ...)
{
    char msg[1024], shown[VIS_SIZE(sizeof msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (log_json()) { /* held for main's error event: stderr carries only JSON */
        log_msg(LOG_ERROR, "%s", msg);
        return EXIT_USAGE;
    }
    /* arguments may quote a config file or the environment: shown like every log line */
    fprintf(stderr, "tcpunch: %s\nTry 'tcpunch --help' for more information.\n",
            vis_str(msg, shown, sizeof shown));
    return EXIT_USAGE;
}


static int opts_number(const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (!s[0] || !end || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

int opts_resume_timeout(const char *s, uint32_t *out)
{
    double v;
    if (opts_number(s, 0, PROTO_RESUME_TIMEOUT_MAX, &v) < 0 || v != (uint32_t)v)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* --relay-grace: whole ms, 0..PEER_RELAY_GRACE_MAX ("auto" in a config file: automatic) */
int opts_relay_grace(const char *s, int64_t *out)
{
    double v;
    if (strcmp(s, "auto") == 0) {
        *out = MIGRATE_GRACE_AUTO;
        return 0;
    }
    if (opts_number(s, 0, PEER_RELAY_GRACE_MAX, &v) < 0 || v != (int64_t)v)
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* The ring's size is the protocol's shake.resume.buf: its range, not merely a byte count. */
int opts_resume_buffer(const char *s, uint64_t *out)
{
    uint64_t v;
    if (bytes_parse(s, "KMG", &v) < 0 || v < PROTO_RESUME_BUF_MIN || v > PROTO_RESUME_BUF_MAX)
        return -1;
    *out = v;
    return 0;
}

/* The host name, made into a valid id. */
static void opts_default_id(char *id, size_t cap)
{
    char host[256] = "";
    size_t n = 0;
    gethostname(host, sizeof host - 1);
    for (const char *p = host; *p && n + 1 < cap && n < PROTO_MAX_ID; p++) {
        char ch = *p;
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        id[n++] = ok ? ch : '-';
    }
    id[n] = '\0';
    if (n == 0)
        snprintf(id, cap, "tcpunch");
}

int opts_peer_entry(const char *opt, const char *arg, char *id, char *fp, size_t fplen)
{
    const char *eq = strchr(arg, '=');
    size_t idlen = eq ? (size_t)(eq - arg) : strlen(arg);
    fp[0] = '\0';
    if (idlen == 0 || idlen > PROTO_MAX_ID)
        return opts_bad("%s: \"%s\" does not start with a peer id", opt, arg);
    memcpy(id, arg, idlen);
    id[idlen] = '\0';
    if (!proto_valid_id(id))
        return opts_bad("%s: \"%s\" is not a valid peer id", opt, id);
    if (eq && opts_peer_key(eq + 1, fp, fplen) < 0)
        return opts_bad("%s: \"%s\" is neither a public key nor a fingerprint (SHA256:...)", opt,
                        eq + 1);
    return EXIT_DONE;
}

/* --peer-key takes a key or its fingerprint; both become the fingerprint, which is what the
 * handshake compares. */
int opts_peer_key(const char *v, char *fp, size_t len)
{
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], h[crypto_hash_sha256_BYTES];
    size_t n = 0;
    const char *end = NULL, *b64 = v + 7;
    if (id_pk_decode(v, pk) == 0) {
        id_fingerprint(pk, fp, len);
        return 0;
    }
    if (strncmp(v, "SHA256:", 7) != 0 || strlen(b64) != 43 ||
        sodium_base642bin(h, sizeof h, b64, strlen(b64), NULL, &n, &end,
                          sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0 ||
        n != sizeof h || *end)
        return -1;
    snprintf(fp, len, "%s", v);
    return 0;
}

static int opts_set_id(struct peer_opts *o, const char *v, const char *from)
{
    if (!proto_valid_id(v)) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s: id must be 1-64 characters of A-Z a-z 0-9 . _ -", from);
        return opts_bad("%s", msg);
    }
    snprintf(o->id, sizeof o->id, "%s", v);
    return EXIT_DONE;
}

/* The file's digest is all we keep: it keys the admit proofs (PROTOCOL.md, "Admission"). */
static int opts_load_secret(struct peer_opts *o, const char *path)
{
    char err[600];
    if (!path || !path[0])
        return EXIT_DONE;
    if (auth_secret_load(path, o->secret, err, sizeof err) < 0) {
        LOG_E("--secret-file: %s", err);
        return EXIT_LOCAL;
    }
    o->have_secret = true;
    return EXIT_DONE;
}

/* The long name of option ch, for `tcpunch config` to tell which settings the flags made. */
static const char *opts_long_name(const struct option *longs, int ch)
{
    for (; longs->name; longs++)
        if (longs->val == ch)
            return longs->name;
    return NULL;
}

int opts_parse(int argc, char **argv, struct peer_opts *o, int *first)
{
    static const struct option longs[] = {
        {"server", required_argument, NULL, 's'},
        {"id", required_argument, NULL, 'i'},
        {"port", required_argument, NULL, 'p'},
        {"timeout", required_argument, NULL, 't'},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"json", no_argument, NULL, OPTS_JSON},
        {"direct-timeout", required_argument, NULL, OPTS_DIRECT_TIMEOUT},
        {"no-relay", no_argument, NULL, OPTS_NO_RELAY},
        {"relay-only", no_argument, NULL, OPTS_RELAY_ONLY},
        {"peer-key", required_argument, NULL, OPTS_PEER_KEY},
        {"plain", no_argument, NULL, OPTS_PLAIN},
        {"secret-file", required_argument, NULL, OPTS_SECRET_FILE},
        {"no-retry", no_argument, NULL, OPTS_NO_RETRY},
        {"no-report", no_argument, NULL, OPTS_NO_REPORT},
        {"dir", required_argument, NULL, OPTS_DIR},
        {"force", no_argument, NULL, OPTS_FORCE},
        {"from", required_argument, NULL, OPTS_FROM},
        {"from-anyone", no_argument, NULL, OPTS_FROM_ANYONE},
        {"dotfiles", no_argument, NULL, OPTS_DOTFILES},
        {"max-bytes", required_argument, NULL, OPTS_MAX_BYTES},
        {"max-files", required_argument, NULL, OPTS_MAX_FILES},
        {"forward", required_argument, NULL, OPTS_FORWARD},
        {"local", required_argument, NULL, OPTS_LOCAL},
        {"allow", required_argument, NULL, OPTS_ALLOW},
        {"max-sessions", required_argument, NULL, OPTS_MAX_SESSIONS},
        {"allow-anyone", no_argument, NULL, OPTS_ALLOW_ANYONE},
        {"birthday-k", required_argument, NULL, OPTS_BIRTHDAY_K},
        {"birthday-m", required_argument, NULL, OPTS_BIRTHDAY_M},
        {"resume-timeout", required_argument, NULL, OPTS_RESUME_TIMEOUT},
        {"resume-buffer", required_argument, NULL, OPTS_RESUME_BUFFER},
        {"relay-grace", required_argument, NULL, OPTS_RELAY_GRACE},
        {"direct-first", no_argument, NULL, OPTS_DIRECT_FIRST},
        {"code", no_argument, NULL, OPTS_CODE},
        {"code-words", required_argument, NULL, OPTS_CODE_WORDS},
        {"remember", no_argument, NULL, OPTS_REMEMBER},
        {"to", required_argument, NULL, OPTS_TO},
        {NULL, 0, NULL, 0}};
    const char *env, *secret_file = getenv("TCPUNCH_SECRET_FILE");
    char cfg_err[PATH_MAX + 400];
    double num;
    int ch, rc;

    memset(o, 0, sizeof *o);
    o->timeout_ms = 10000;
    o->direct_timeout_ms = 5000;
    o->max_sessions = PEER_DEFAULT_SESSIONS;
    o->max_files = PEER_DEFAULT_MAX_FILES;
    o->birthday_k = PEER_DEFAULT_BIRTHDAY_K;
    o->birthday_m = PEER_DEFAULT_BIRTHDAY_M;
    o->resume_timeout_s = PEER_DEFAULT_RESUME_TIMEOUT;
    o->resume_buffer = PEER_DEFAULT_RESUME_BUFFER;
    o->relay_grace_ms = MIGRATE_GRACE_AUTO;
    opts_default_id(o->id, sizeof o->id);
    /* flags > environment > config file > defaults */
    if ((rc = cfg_load(o, cfg_err, sizeof cfg_err)) != EXIT_DONE)
        return rc == EXIT_USAGE ? opts_bad("%s", cfg_err) : rc;
    if ((env = getenv("TCPUNCH_SERVER")) && env[0]) {
        o->server = env;
        cfg_mark(o, "server", true);
    }
    if ((env = getenv("TCPUNCH_ID")) && env[0] && opts_set_id(o, env, "TCPUNCH_ID") != EXIT_DONE)
        return EXIT_USAGE;
    cfg_mark(o, env && env[0] ? "id" : NULL, true);
    if (secret_file && secret_file[0])
        cfg_mark(o, "secret-file", true);
    else if (o->cfg.secret_file[0])
        secret_file = o->cfg.secret_file;

    /* --json may follow a bad option; it must still turn that usage error into JSON */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--json") == 0)
            log_set_json(1);
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "s:i:p:t:vqhV", longs, NULL)) != -1) {
        switch (ch) {
        case 's':
            o->server = optarg;
            break;
        case 'i':
            if (opts_set_id(o, optarg, "--id") != EXIT_DONE)
                return EXIT_USAGE;
            break;
        case 'p':
            if (opts_number(optarg, 0, 65535, &num) < 0 || num != (int)num)
                return opts_bad("--port: \"%s\" is not a port number (0-65535)", optarg);
            o->port = (int)num;
            break;
        case 't':
            if (opts_number(optarg, 0.1, 3600, &num) < 0)
                return opts_bad("--timeout: \"%s\" is not a number of seconds (0.1-3600)", optarg);
            o->timeout_ms = (uint64_t)(num * 1000);
            break;
        case 'v':
            o->verbose++;
            break;
        case 'q':
            o->quiet = true;
            break;
        case OPTS_JSON:
            o->json = true;
            break;
        case OPTS_DIRECT_TIMEOUT:
            if (opts_number(optarg, 0, 3600, &num) < 0)
                return opts_bad("--direct-timeout: \"%s\" is not a number of seconds (0-3600)",
                                optarg);
            o->direct_timeout_ms = (uint64_t)(num * 1000);
            break;
        case OPTS_NO_RELAY:
        case OPTS_RELAY_ONLY:
            /* the config file's relay = ... is overridden, not contradicted */
            if (o->cfg.from[CFG_RELAY] == CFG_FROM_FLAG && o->path != PROTO_PATH_ANY &&
                o->path != (ch == OPTS_NO_RELAY ? PROTO_PATH_DIRECT : PROTO_PATH_RELAY))
                return opts_bad("%s", "--no-relay and --relay-only exclude each other");
            o->path = ch == OPTS_NO_RELAY ? PROTO_PATH_DIRECT : PROTO_PATH_RELAY;
            break;
        case OPTS_PEER_KEY:
            if (opts_peer_key(optarg, o->peer_fp, sizeof o->peer_fp) < 0)
                return opts_bad("--peer-key: \"%s\" is neither a public key (base64, as "
                                "`tcpunch id` prints it) nor a fingerprint (SHA256:...)",
                                optarg);
            break;
        case OPTS_PLAIN:
            o->plain = true;
            break;
        case OPTS_SECRET_FILE:
            secret_file = optarg;
            break;
        case OPTS_NO_RETRY:
            o->no_retry = true;
            break;
        case OPTS_FORWARD:
            o->forward = optarg;
            break;
        case OPTS_LOCAL:
            o->local = optarg;
            break;
        case OPTS_ALLOW:
            if (o->nallow >= PEER_MAX_ALLOW)
                return opts_bad("--allow: at most %s entries", "64");
            o->allow[o->nallow++] = optarg;
            break;
        case OPTS_ALLOW_ANYONE:
            o->allow_anyone = true;
            break;
        case OPTS_MAX_SESSIONS:
            if (opts_number(optarg, 1, 4096, &num) < 0 || num != (int)num)
                return opts_bad("--max-sessions: \"%s\" is not a number from 1 to 4096", optarg);
            o->max_sessions = (int)num;
            break;
        case OPTS_BIRTHDAY_K:
            if (opts_number(optarg, 0, PROTO_BDAY_MAX_K, &num) < 0 || num != (int)num)
                return opts_bad("--birthday-k: \"%s\" is not a number from 0 to %d", optarg,
                                PROTO_BDAY_MAX_K);
            o->birthday_k = (int)num;
            break;
        case OPTS_BIRTHDAY_M:
            if (opts_number(optarg, 0, PROTO_BDAY_MAX_M, &num) < 0 || num != (int)num)
                return opts_bad("--birthday-m: \"%s\" is not a number from 0 to %d", optarg,
                                PROTO_BDAY_MAX_M);
            o->birthday_m = (int)num;
            break;
        case OPTS_RESUME_TIMEOUT:
            if (opts_resume_timeout(optarg, &o->resume_timeout_s) < 0)
                return opts_bad("--resume-timeout: \"%s\" is not a number of seconds from 0 "
                                "to %d",
                                optarg, PROTO_RESUME_TIMEOUT_MAX);
            break;
        case OPTS_RESUME_BUFFER:
            if (opts_resume_buffer(optarg, &o->resume_buffer) < 0)
                return opts_bad("--resume-buffer: \"%s\" is not a size from 64K to 1G", optarg);
            break;
        case OPTS_RELAY_GRACE:
            if (opts_relay_grace(optarg, &o->relay_grace_ms) < 0)
                return opts_bad("--relay-grace: \"%s\" is not a number of ms from 0 to %d",
                                optarg, PEER_RELAY_GRACE_MAX);
            break;
        case OPTS_DIRECT_FIRST:
            o->direct_first = true;
            break;
        case OPTS_NO_REPORT:
            o->no_report = true;
            break;
        case OPTS_CODE:
            o->code = true;
            break;
        case OPTS_CODE_WORDS:
            if (opts_number(optarg, WCODE_WORDS_MIN, WCODE_WORDS_MAX, &num) < 0 ||
                num != (unsigned)num)
                return opts_bad("--code-words: \"%s\" is not %d or %d", optarg, WCODE_WORDS_MIN,
                                WCODE_WORDS_MAX);
            o->code_words = (unsigned)num;
            break;
        case OPTS_REMEMBER:
            o->remember = true;
            break;
        case OPTS_TO:
            o->send_to = optarg;
            break;
        case OPTS_DIR:
            o->dir = optarg;
            break;
        case OPTS_FORCE:
            o->force = true;
            break;
        case OPTS_FROM:
            if (o->nfrom >= PEER_MAX_ALLOW)
                return opts_bad("--from: at most %s entries", "64");
            o->from[o->nfrom++] = optarg;
            break;
        case OPTS_FROM_ANYONE:
            o->from_anyone = true;
            break;
        case OPTS_DOTFILES:
            o->dotfiles = true;
            break;
        case OPTS_MAX_BYTES:
            if (bytes_parse(optarg, "KMGT", &o->max_bytes) < 0)
                return opts_bad("--max-bytes: \"%s\" is not a byte count like 500M, 2G or 0",
                                optarg);
            break;
        case OPTS_MAX_FILES:
            if (opts_number(optarg, 1, 10000000, &num) < 0 || num != (unsigned)num)
                return opts_bad("--max-files: \"%s\" is not a number from 1 to 10000000", optarg);
            o->max_files = (unsigned)num;
            break;
        case 'h':
            opts_usage(stdout);
            return -1;
        case 'V':
            printf("tcpunch %s (protocol %d)\n", TCPUNCH_VERSION, PROTO_VERSION);
            return -1;
        case ':':
            return opts_bad("option %s needs a value", argv[optind - 1]);
        default:
            return opts_bad("unknown option %s", argv[optind - 1]);
        }
        cfg_mark(o, opts_long_name(longs, ch), false);
    }
    if (optind >= argc)
        return opts_bad("%s", "no command given (listen, connect, chat, direct, nat-check, id, "
                              "send, receive, config)");
    *first = optind;
    log_init("tcpunch",
             o->quiet ? LOG_ERROR
                      : (o->verbose >= 2 ? LOG_DEBUG
                         : o->verbose    ? LOG_INFO
                                         : LOG_NOTE), /* NOTE: the path line */
             0);
    o->secret_file = secret_file && secret_file[0] ? secret_file : NULL;
    return opts_load_secret(o, secret_file);
}

int opts_need_server(const struct peer_opts *o)
{
    char err[300];
    if (!o->server)
        return opts_bad("%s", "no server: give --server HOST:PORT or set TCPUNCH_SERVER");
    if (sl_check(o->server, err, sizeof err) < 0)
        return opts_bad("server %s", err);
    return EXIT_DONE;
}

int opts_check_peer(const struct peer_opts *o, const char *peer)
{
    if (!proto_valid_id(peer))
        return opts_bad("\"%s\" is not a valid peer id (1-64 characters of A-Z a-z 0-9 . _ -)",
                        peer);
    if (strcmp(peer, o->id) == 0)
        return opts_bad("cannot connect to yourself (our id is also \"%s\")", peer);
    return EXIT_DONE;
}
