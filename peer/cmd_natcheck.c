/* nat-check: what does our NAT do to one local port? Register (the server reports the public
 * endpoint of the control connection), probe the server's probe port from the same local port,
 * and compare the two observations. The report is the command's output: stdout. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "common/endpoint.h"
#include "common/linebuf.h"
#include "common/log.h"
#include "common/srvlist.h"
#include "common/sock.h"
#include "common/vis.h"
#include "peer/commands.h"
#include "peer/events.h"
#include "peer/hello.h"
#include "peer/options.h"
#include "peer/probe.h"
#include "peer/srvconn.h"

#define NC_STEP_MS 10000        /* connecting, and waiting for welcome */
#define NC_LIST_CONNECT_MS 3000 /* connecting to one of a list: a dead one must not stall */
#define NC_PROBE_MS 5000        /* one-off check: more patience than the automatic probe */
#define NC_MAX_LOCAL_ADDRS 32   /* our interface addresses compared with the observed one */

struct nc {
    const struct peer_opts *o;
    uv_loop_t loop; /* the exchange with the server, then the probe */
    struct sc *sc;  /* the exchange while it runs */
    int fd;         /* the control connection after the welcome, open until we leave */
    struct sockaddr_storage server;
    const char *name; /* the server, as messages name it */
    bool multi;       /* one of several: failing before the welcome moves on to the next */
    char why[800];    /* how it failed */
    struct sockaddr_storage local;    /* control connection, as bound by the kernel */
    struct sockaddr_storage observed; /* control connection, as the server saw it */
    int probe_port;                   /* 0: the server has none */
    char token[PROTO_TOKEN_LEN + 1];
    bool have_welcome;
    int fail; /* exit status once something went wrong, else EXIT_DONE */
    struct prb_result probe;
    bool probed; /* probe holds a result (ok or not) */
};

struct nc_verdict {
    int exit;
    const char *key;  /* "no-nat", "independent", "dependent", "unknown" */
    const char *text; /* one human sentence */
    bool nat;
    char reason[400]; /* why it cannot tell; "" otherwise */
};

static int nc_fail(struct nc *n, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int nc_fail(struct nc *n, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(n->why, sizeof n->why, fmt, ap);
    va_end(ap);
    /* a list's next server may still do: the summary is the error (cmd_natcheck) */
    log_msg(n->multi && status == EXIT_SERVER && !n->have_welcome ? LOG_WARN : LOG_ERROR, "%s",
            n->why);
    n->fail = status;
    return status;
}

/* The same for messages that name the server: "<what> the server <name>: <fmt...>". */
static int nc_fail2(struct nc *n, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int nc_fail2(struct nc *n, const char *what, const char *fmt, ...)
{
    char detail[SC_DETAIL];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return nc_fail(n, EXIT_SERVER, "%s the server %s: %s", what, n->name, detail);
}

static void nc_probe_done(struct prb *p, const struct prb_result *r, void *arg)
{
    struct nc *n = arg;
    (void)p;
    n->probe = *r;
    n->probed = true;
}

/* The probe leaves from the control connection's port while that connection stays open, so
 * the NAT still holds its mapping and the server can match our token. */
static void nc_probe(struct nc *n)
{
    struct sockaddr_storage local, to = n->server;
    char err[200];

    memset(&local, 0, sizeof local);
    local.ss_family = n->server.ss_family;
    ep_set_port((struct sockaddr *)&local, ep_port((struct sockaddr *)&n->local));
    ep_set_port((struct sockaddr *)&to, n->probe_port);
    if (!prb_start(&n->loop, (struct sockaddr *)&local, (struct sockaddr *)&to, n->token,
                   n->o->have_secret ? n->o->secret : NULL, NC_PROBE_MS, nc_probe_done, n, err,
                   sizeof err)) {
        snprintf(n->probe.why, sizeof n->probe.why, "%s", err);
        n->probed = true;
    }
}

static void nc_on_connected(struct sc *sc, void *data, const struct sockaddr_storage *local)
{
    struct nc *n = data;
    (void)sc;
    n->local = *local;
}

static void nc_first(struct sc *sc, void *data, const unsigned char *nonce, struct proto_msg *m)
{
    struct nc *n = data;
    (void)sc;
    m->type = PROTO_HELLO;
    m->u.hello.version = PROTO_VERSION;
    memcpy(m->u.hello.id, n->o->id, sizeof m->u.hello.id);
    hello_sign(n->o, nonce, m);
}

/* Registered: the exchange is over, its connection stays open (unread) until we leave, and
 * the probe follows on the same loop. */
static void nc_on_welcome(struct nc *n, const struct proto_msg *m)
{
    char ep[EP_STRLEN];
    n->have_welcome = true;
    n->observed = m->u.welcome.observed;
    n->probe_port = m->u.welcome.probe_port;
    memcpy(n->token, m->u.welcome.probe_token, sizeof n->token);
    log_msg(n->multi ? LOG_NOTE : LOG_INFO,
            "registered as %s on %s, public endpoint %s, probe port %d", m->u.welcome.id, n->name,
            ep_format((const struct sockaddr *)&n->observed, ep, sizeof ep), n->probe_port);
    ev_registered(n->o, n->name, m);
    n->fd = sc_detach(n->sc);
    n->sc = NULL;
    if (n->probe_port)
        nc_probe(n);
}

static void nc_on_msg(struct sc *sc, void *data, const struct proto_msg *m, uint64_t rx_us)
{
    struct nc *n = data;
    (void)rx_us;
    if (m->type == PROTO_ERROR) {
        nc_fail(n, EXIT_SERVER, "server %s refused: %s (%s)", n->name, m->u.error.message,
                m->u.error.code);
        sc_close(sc);
        n->sc = NULL;
    } else if (m->type == PROTO_WELCOME) {
        nc_on_welcome(n, m);
    }
    /* a ping so early does not matter: we leave long before the keepalive */
}

static void nc_on_fail(struct sc *sc, void *data, const struct sc_error *e)
{
    struct nc *n = data;
    (void)sc;
    n->sc = NULL;
    switch (e->kind) {
    case SC_FAIL_TIMEOUT:
        if (e->phase == SC_CONNECTING)
            nc_fail2(n, "cannot reach", "%s", e->detail);
        else
            nc_fail(n, EXIT_SERVER, "the server %s did not answer within %d s", n->name,
                    NC_STEP_MS / 1000);
        break;
    case SC_FAIL_CLOSED:
        nc_fail2(n, "lost the connection to", "%s", e->detail);
        break;
    case SC_FAIL_LONG:
        nc_fail(n, EXIT_SERVER, "the server %s sent a line over %d bytes", n->name, LB_MAX);
        break;
    case SC_FAIL_INVALID:
        nc_fail(n, EXIT_SERVER, "the server sent an invalid message: %s", e->detail);
        break;
    case SC_FAIL_SEND:
        nc_fail(n, EXIT_SERVER, "cannot send to the server %s", n->name);
        break;
    default: /* connect: the only other failure once opened */
        nc_fail2(n, "cannot reach", "%s", e->detail);
        break;
    }
}

static const struct sc_cbs nc_cbs = {
    .connected = nc_on_connected, .first = nc_first, .msg = nc_on_msg, .fail = nc_on_fail};

/* Registers from our port (the server reports the public endpoint of this connection), then
 * probes; returns once both have ended. */
static int nc_register(struct nc *n)
{
    struct sockaddr_storage any;
    struct sc_error e;
    struct sc_cfg cfg = {.server = (struct sockaddr *)&n->server,
                         .local = (struct sockaddr *)&any,
                         .connect_ms = n->multi ? NC_LIST_CONNECT_MS : NC_STEP_MS,
                         .answer_ms = NC_STEP_MS};

    memset(&any, 0, sizeof any);
    any.ss_family = n->server.ss_family;
    ep_set_port((struct sockaddr *)&any, n->o->port);
    n->sc = sc_open(&n->loop, &cfg, &nc_cbs, n, &e);
    if (!n->sc && e.kind == SC_FAIL_CONNECT)
        return nc_fail2(n, "cannot reach", "%s", e.detail);
    if (!n->sc && e.kind == SC_FAIL_WATCH)
        return nc_fail(n, EXIT_LOCAL, "cannot watch the server connection: %s", e.detail);
    if (!n->sc)
        return nc_fail(n, EXIT_LOCAL, "cannot use the local port: %s", e.detail);
    /* the server speaks first: nc_first answers its challenge with hello */
    uv_run(&n->loop, UV_RUN_DEFAULT);
    return n->fail;
}

/* Whether the server saw one of our own addresses: then nothing translated us. */
static bool nc_is_local(const struct nc *n)
{
    struct sockaddr_storage addrs[NC_MAX_LOCAL_ADDRS];
    const struct sockaddr *obs = (const struct sockaddr *)&n->observed;
    int k;
    if (ep_same_host(obs, (const struct sockaddr *)&n->local))
        return true;
    k = sk_local_addrs(obs->sa_family, 0, addrs, NC_MAX_LOCAL_ADDRS);
    for (int i = 0; i < k; i++)
        if (ep_same_host(obs, (const struct sockaddr *)&addrs[i]))
            return true;
    return false;
}

/* What the two observations say about the mapping, whatever the verdict. */
static enum proto_nat nc_mapping(const struct nc *n)
{
    if (!n->probe.ok)
        return PROTO_NAT_UNKNOWN;
    return ep_equal((const struct sockaddr *)&n->observed,
                    (const struct sockaddr *)&n->probe.observed)
               ? PROTO_NAT_INDEPENDENT
               : PROTO_NAT_DEPENDENT;
}

static void nc_judge(const struct nc *n, struct nc_verdict *v)
{
    memset(v, 0, sizeof *v);
    v->nat = !nc_is_local(n);
    if (!n->probe_port || !n->probe.ok) {
        v->exit = EXIT_NAT_UNKNOWN;
        v->key = proto_nat_name(PROTO_NAT_UNKNOWN);
        v->text = "cannot tell whether the NAT keeps one public port per local port";
        if (!n->probe_port)
            snprintf(v->reason, sizeof v->reason,
                     "the server has no probe port: run it with --probe-listen");
        else
            snprintf(v->reason, sizeof v->reason, "the probe got no answer: %s", n->probe.why);
    } else if (!v->nat) {
        v->exit = EXIT_DONE;
        v->key = "no-nat";
        v->text = "no NAT: the server sees one of our own addresses";
    } else if (nc_mapping(n) == PROTO_NAT_INDEPENDENT) {
        v->exit = EXIT_NAT_EIM;
        v->key = proto_nat_name(PROTO_NAT_INDEPENDENT);
        v->text = "NAT with endpoint-independent mapping: direct connections can be punched";
    } else {
        v->exit = EXIT_NAT_SYM;
        v->key = proto_nat_name(PROTO_NAT_DEPENDENT);
        v->text = "NAT with endpoint-dependent mapping (symmetric): a relay is needed";
    }
}

static const char *nc_ep(const struct sockaddr_storage *ss, char *buf)
{
    return ep_format((const struct sockaddr *)ss, buf, EP_STRLEN);
}

static bool nc_port_kept(const struct nc *n)
{
    return ep_port((const struct sockaddr *)&n->observed) ==
           ep_port((const struct sockaddr *)&n->local);
}

static void nc_print_human(const struct nc *n, const struct nc_verdict *v)
{
    char a[EP_STRLEN], b[EP_STRLEN], why[VIS_SIZE(sizeof v->reason)];
    nc_ep(&n->server, a);
    if (strcmp(a, n->name) == 0)
        printf("server:          %s\n", a);
    else
        printf("server:          %s (%s)\n", n->name, a);
    printf("local endpoint:  %s\n", nc_ep(&n->local, a));
    printf("public endpoint: %s (seen on the server connection)\n", nc_ep(&n->observed, a));
    if (n->probe.ok)
        printf("probe endpoint:  %s (seen on probe port %d)\n", nc_ep(&n->probe.observed, b),
               n->probe_port);
    else
        /* the reason may quote the server */
        printf("probe endpoint:  none (%s)\n", vis_str(v->reason, why, sizeof why));
    printf("NAT:             %s\n", v->nat ? "yes" : "no (the public address is our own)");
    printf("NAT mapping:     %s\n", nc_mapping(n) == PROTO_NAT_INDEPENDENT
                                        ? "endpoint-independent (one public port for all)"
                                    : nc_mapping(n) == PROTO_NAT_DEPENDENT
                                        ? "endpoint-dependent (a public port per destination)"
                                        : "unknown");
    printf("port preserved:  %s\n", nc_port_kept(n) ? "yes" : "no");
    printf("verdict:         %s (exit %d)\n", v->text, v->exit);
}

static void nc_print_json(const struct nc *n, const struct nc_verdict *v)
{
    char a[EP_STRLEN], b[EP_STRLEN], c[EP_STRLEN], d[EP_STRLEN], why[VIS_SIZE(sizeof v->reason)];
    /* the reason may quote the server: JSON escapes C0 but passes C1 and direction marks */
    json_t *obj =
        json_pack("{s:s, s:i, s:s, s:b, s:b, s:s, s:s, s:s, s:s, s:o, s:o, s:o}", "verdict", v->key,
                  "exit", v->exit, "message", v->text, "nat", v->nat, "port_preserved",
                  nc_port_kept(n), "server", nc_ep(&n->server, a), "local", nc_ep(&n->local, b),
                  "observed", nc_ep(&n->observed, c), "mapping", proto_nat_name(nc_mapping(n)), "probe_port",
                  n->probe_port ? json_integer(n->probe_port) : json_null(), "probe_observed",
                  n->probe.ok ? json_string(nc_ep(&n->probe.observed, d)) : json_null(), "reason",
                  v->reason[0] ? json_string(vis_str(v->reason, why, sizeof why)) : json_null());
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(obj);
}

static int nc_run(struct nc *n)
{
    struct nc_verdict v;
    if (nc_register(n) != EXIT_DONE)
        return n->fail;
    if (n->probed && !n->probe.ok)
        LOG_I("probe failed: %s", n->probe.why);
    nc_judge(n, &v);
    if (n->o->json)
        nc_print_json(n, &v);
    else
        nc_print_human(n, &v);
    if (fflush(stdout) != 0 || ferror(stdout))
        return nc_fail(n, EXIT_LOCAL, "writing the report: %s", strerror(errno));
    return v.exit;
}

/* One check against server s; failures before the welcome leave n->fail EXIT_SERVER and
 * n->have_welcome false, for the next server to be tried. */
static int nc_run_on(struct nc *n, const struct sl_server *s)
{
    if (n->fd >= 0)
        close(n->fd);
    n->fd = -1;
    n->server = s->addr;
    n->name = s->name;
    n->have_welcome = n->probed = false;
    memset(&n->probe, 0, sizeof n->probe);
    n->fail = EXIT_DONE;
    n->why[0] = '\0';
    return nc_run(n);
}

/* The servers of --server in their order, until one answers (a one-shot command: one round). */
static int nc_run_list(struct nc *n, const struct sl_list *l, char *tried, size_t len)
{
    int rc = EXIT_SERVER;
    for (int i = 0; i < l->n; i++) {
        rc = nc_run_on(n, &l->s[i]);
        if (rc != EXIT_SERVER || n->have_welcome || !n->multi)
            return rc;
        sl_join(tried, len, n->why);
    }
    if (n->multi && l->n > 0)
        LOG_E("no server could be used; tried: %s", tried);
    return EXIT_SERVER;
}

int cmd_natcheck(const struct peer_opts *o, int argc, char **argv)
{
    struct nc *n;
    struct sl_list *l;
    char tried[1000] = "";
    int rc;

    if (argc > 0)
        return opts_bad("nat-check takes no arguments (got \"%s\")", argv[0]);
    if ((rc = opts_need_server(o)) != EXIT_DONE)
        return rc;
    n = calloc(1, sizeof *n);
    l = malloc(sizeof *l);
    if (!n || !l) {
        LOG_E("out of memory");
        free(n);
        free(l);
        return EXIT_LOCAL;
    }
    n->o = o;
    n->fd = -1;
    uv_loop_init(&n->loop);
    sl_resolve(o->server, l, tried, sizeof tried);
    n->multi = l->items > 1 || l->n > 1;
    if (tried[0])
        log_msg(l->n ? LOG_WARN : LOG_ERROR, "server %s", tried);
    rc = l->n ? nc_run_list(n, l, tried, sizeof tried) : EXIT_SERVER;
    if (n->fd >= 0)
        close(n->fd); /* leaving: the server drops our registration */
    uv_run(&n->loop, UV_RUN_DEFAULT); /* nothing runs by now: this lets closed handles go */
    uv_loop_close(&n->loop);
    free(n);
    free(l);
    return rc;
}
