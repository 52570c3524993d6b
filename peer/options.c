#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/endpoint.h"
#include "common/log.h"
#include "peer/options.h"

void opts_usage(FILE *out)
{
    fputs("Usage: tcpunch [OPTIONS] COMMAND [ARGS]\n"
          "Direct TCP connections between peers behind NATs (TCP simultaneous open),\n"
          "introduced by a tcpunch-rendezvous server. Data flows on stdin/stdout like nc.\n"
          "\n"
          "Commands:\n"
          "  listen              register, wait for one peer to connect, then pipe stdin/stdout\n"
          "  connect PEER        ask the server for PEER, punch through, then pipe stdin/stdout\n"
          "  chat [PEER]         line chat with PEER (no PEER: wait for one); /quit ends it\n"
          "  direct --port LOCAL HOST:PORT\n"
          "                      no server: connect from port LOCAL to HOST:PORT again and\n"
          "                      again until the other side, doing the same, meets us\n"
          "                      (both know each other's public address and port)\n"
          "\n"
          "Options (before or after the command):\n"
          "  -s, --server HOST:PORT  rendezvous server (env TCPUNCH_SERVER)\n"
          "  -i, --id NAME           our id, [A-Za-z0-9._-]{1,64} (env TCPUNCH_ID;\n"
          "                          default: the host name)\n"
          "  -p, --port N            local port for the server connection and the punch\n"
          "                          (default 0: pick a free one)\n"
          "  -t, --timeout SEC       give up punching after SEC seconds (default 10;\n"
          "                          fractions allowed, 0.1 to 3600)\n"
          "  -v, --verbose           say how the connection was made; twice: debug detail\n"
          "  -q, --quiet             print errors only\n"
          "  -h, --help              show this help\n"
          "  -V, --version           show the version\n"
          "\n"
          "Exit status:\n"
          "  0  done: both directions finished\n"
          "  1  usage error\n"
          "  2  server unreachable, refused us (e.g. id taken), or lost before the punch\n"
          "  3  peer not found on the server\n"
          "  4  punch failed: no verified direct connection before --timeout\n"
          "  5  connection lost after it was established\n"
          "  6  local error: stdin/stdout, or the local --port is in use\n"
          "\n"
          "Examples:\n"
          "  tcpunch -s vps.example:7000 -i bob listen > received.bin\n"
          "  tcpunch -s vps.example:7000 -i alice connect bob < file.bin\n"
          "  tcpunch direct --port 40000 198.51.100.7:40000\n",
          out);
}

int opts_bad(const char *fmt, const char *arg)
{
    fprintf(stderr, "tcpunch: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'tcpunch --help' for more information.\n");
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

int opts_parse(int argc, char **argv, struct peer_opts *o, int *first)
{
    static const struct option longs[] = {{"server", required_argument, NULL, 's'},
                                          {"id", required_argument, NULL, 'i'},
                                          {"port", required_argument, NULL, 'p'},
                                          {"timeout", required_argument, NULL, 't'},
                                          {"verbose", no_argument, NULL, 'v'},
                                          {"quiet", no_argument, NULL, 'q'},
                                          {"help", no_argument, NULL, 'h'},
                                          {"version", no_argument, NULL, 'V'},
                                          {NULL, 0, NULL, 0}};
    const char *env;
    double num;
    int ch;

    memset(o, 0, sizeof *o);
    o->timeout_ms = 10000;
    o->server = getenv("TCPUNCH_SERVER");
    if (o->server && !o->server[0])
        o->server = NULL;
    opts_default_id(o->id, sizeof o->id);
    if ((env = getenv("TCPUNCH_ID")) && env[0] && opts_set_id(o, env, "TCPUNCH_ID") != EXIT_DONE)
        return EXIT_USAGE;

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
    }
    if (optind >= argc)
        return opts_bad("%s", "no command given (listen, connect, chat, direct)");
    *first = optind;
    log_init("tcpunch",
             o->quiet ? LOG_ERROR
                      : (o->verbose >= 2 ? LOG_DEBUG
                         : o->verbose    ? LOG_INFO
                                         : LOG_WARN),
             0);
    return EXIT_DONE;
}

int opts_need_server(const struct peer_opts *o)
{
    char err[200];
    if (!o->server)
        return opts_bad("%s", "no server: give --server HOST:PORT or set TCPUNCH_SERVER");
    if (ep_check_syntax(o->server, false, err, sizeof err) < 0)
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
