/* nat-check: what does our NAT do to one local port? Register (the server reports the public
 * endpoint of the control connection), probe the server's probe port from the same local port,
 * and compare the two observations. The report is the command's output: stdout. */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "common/clock.h"
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

#define NC_STEP_MS 10000        /* connecting, and waiting for welcome */
#define NC_LIST_CONNECT_MS 3000 /* connecting to one of a list: a dead one must not stall */
#define NC_PROBE_MS 5000        /* one-off check: more patience than the automatic probe */
#define NC_MAX_LOCAL_ADDRS 32   /* our interface addresses compared with the observed one */

struct nc {
    const struct peer_opts *o;
    int fd;
    struct sockaddr_storage server;
    const char *name; /* the server, as messages name it */
    bool multi;       /* one of several: failing before the welcome moves on to the next */
    char why[800];    /* how it failed */
    struct sockaddr_storage local;    /* control connection, as bound by the kernel */
    struct sockaddr_storage observed; /* control connection, as the server saw it */
    int probe_port;                   /* 0: the server has none */
    char token[PROTO_TOKEN_LEN + 1];
    bool have_challenge; /* hello has been sent in answer */
    bool have_welcome;
    int fail; /* exit status once something went wrong, else EXIT_DONE */
    struct prb_result probe;
    bool probed; /* probe holds a result (ok or not) */
    struct lb lb;
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

/* The same for messages that name the server and one more thing. */
static int nc_fail2(struct nc *n, const char *what, const char *arg)
{
    return nc_fail(n, EXIT_SERVER, "%s the server %s: %s", what, n->name, arg);
}

/* Waits up to ms for events on the control socket. */
static int nc_wait(struct nc *n, short events, uint64_t deadline)
{
    struct pollfd pf = {.fd = n->fd, .events = events};
    for (;;) {
        uint64_t now = clk_ms();
        int rc;
        if (now >= deadline)
            return 0;
        rc = poll(&pf, 1, (int)(deadline - now));
        if (rc >= 0 || errno != EINTR)
            return rc;
    }
}

static int nc_connect(struct nc *n)
{
    struct sockaddr_storage any;
    char err[300];
    int so_err = 0;
    socklen_t len = sizeof so_err;

    memset(&any, 0, sizeof any);
    any.ss_family = n->server.ss_family;
    ep_set_port((struct sockaddr *)&any, n->o->port);
    n->fd = sk_open_bound((struct sockaddr *)&any, err, sizeof err);
    if (n->fd < 0)
        return nc_fail(n, EXIT_LOCAL, "cannot use the local port: %s", err);
    if (connect(n->fd, (struct sockaddr *)&n->server, ep_len((struct sockaddr *)&n->server)) < 0 &&
        errno != EINPROGRESS)
        return nc_fail2(n, "cannot reach", strerror(errno));
    if (nc_wait(n, POLLOUT, clk_ms() + (n->multi ? NC_LIST_CONNECT_MS : NC_STEP_MS)) <= 0)
        return nc_fail(n, EXIT_SERVER, "cannot reach the server %s: timed out", n->name);
    getsockopt(n->fd, SOL_SOCKET, SO_ERROR, &so_err, &len);
    if (so_err)
        return nc_fail2(n, "cannot reach", strerror(so_err));
    sk_local(n->fd, &n->local);
    return EXIT_DONE;
}

static int nc_send_hello(struct nc *n, const unsigned char *nonce)
{
    struct proto_msg m;
    char line[PROTO_MAX_LINE];
    int len;

    memset(&m, 0, sizeof m);
    m.type = PROTO_HELLO;
    m.u.hello.version = PROTO_VERSION;
    memcpy(m.u.hello.id, n->o->id, sizeof m.u.hello.id);
    hello_sign(n->o, nonce, &m);
    len = proto_encode(&m, line, sizeof line);
    if (len <= 0 || send(n->fd, line, (size_t)len, MSG_NOSIGNAL) != len)
        return nc_fail(n, EXIT_SERVER, "cannot send to the server %s", n->name);
    return EXIT_DONE;
}

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
}

static int nc_on_line(void *arg, char *line, size_t len)
{
    struct nc *n = arg;
    struct proto_msg m;
    char why[300], msg[600];
    enum proto_err e = proto_decode(line, len, PROTO_TO_PEER, &m, why, sizeof why);

    if (e != PROTO_OK) {
        nc_fail(n, EXIT_SERVER, "the server sent an invalid message: %s", why);
        return 1;
    }
    if (m.type == PROTO_ERROR) {
        snprintf(msg, sizeof msg, "server %s refused: %s (%s)", n->name, m.u.error.message,
                 m.u.error.code);
        nc_fail(n, EXIT_SERVER, "%s", msg);
        return 1;
    }
    if (m.type == PROTO_CHALLENGE && !n->have_challenge) {
        n->have_challenge = true;
        return nc_send_hello(n, m.u.challenge.nonce) != EXIT_DONE;
    }
    if (m.type == PROTO_WELCOME) {
        nc_on_welcome(n, &m);
        return 1;
    }
    return 0; /* a ping so early does not matter: we leave long before the keepalive */
}

static int nc_register(struct nc *n)
{
    uint64_t deadline = clk_ms() + NC_STEP_MS;
    char buf[PROTO_MAX_LINE];

    /* the server speaks first: nc_on_line answers its challenge with hello */
    while (!n->have_welcome && n->fail == EXIT_DONE) {
        ssize_t r;
        if (nc_wait(n, POLLIN, deadline) <= 0)
            return nc_fail(n, EXIT_SERVER, "the server %s did not answer within 10 s", n->name);
        r = recv(n->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r <= 0)
            return nc_fail2(n, "lost the connection to",
                            r == 0 ? "closed by the server" : strerror(errno));
        if (lb_feed(&n->lb, buf, (size_t)r, nc_on_line, n) < 0)
            return nc_fail(n, EXIT_SERVER, "the server %s sent a line over 4096 bytes", n->name);
    }
    return n->fail;
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
    uv_loop_t loop;

    memset(&local, 0, sizeof local);
    local.ss_family = n->server.ss_family;
    ep_set_port((struct sockaddr *)&local, ep_port((struct sockaddr *)&n->local));
    ep_set_port((struct sockaddr *)&to, n->probe_port);
    uv_loop_init(&loop);
    if (!prb_start(&loop, (struct sockaddr *)&local, (struct sockaddr *)&to, n->token,
                   n->o->have_secret ? n->o->secret : NULL, NC_PROBE_MS, nc_probe_done, n, err,
                   sizeof err)) {
        snprintf(n->probe.why, sizeof n->probe.why, "%s", err);
        n->probed = true;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
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
    if (nc_connect(n) != EXIT_DONE || nc_register(n) != EXIT_DONE)
        return n->fail;
    if (n->probe_port)
        nc_probe(n);
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
    lb_init(&n->lb);
    n->server = s->addr;
    n->name = s->name;
    n->have_challenge = n->have_welcome = n->probed = false;
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
    sl_resolve(o->server, l, tried, sizeof tried);
    n->multi = l->items > 1 || l->n > 1;
    if (tried[0])
        log_msg(l->n ? LOG_WARN : LOG_ERROR, "server %s", tried);
    rc = l->n ? nc_run_list(n, l, tried, sizeof tried) : EXIT_SERVER;
    if (n->fd >= 0)
        close(n->fd); /* leaving: the server drops our registration */
    free(n);
    free(l);
    return rc;
}
