/* nat-check: what does our NAT do to one local port? Register (the server reports the public
 * endpoint of the control connection), probe the server's probe port from the same local port,
 * and compare the two observations. When they differ (a new mapping per destination), a few more
 * probes from fresh local ports, one after another, show how the NAT picks its ports: in small
 * steps (sequential) or not (random); natkind.c judges. The report is the command's output:
 * stdout. */
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
#include "peer/natkind.h"
#include "peer/options.h"
#include "peer/probe.h"
#include "peer/srvconn.h"

#define NC_STEP_MS 10000        /* connecting, and waiting for welcome */
#define NC_LIST_CONNECT_MS 3000 /* connecting to one of a list: a dead one must not stall */
#define NC_PROBE_MS 5000        /* one-off check: more patience than the automatic probe */
#define NC_MAX_LOCAL_ADDRS 32   /* our interface addresses compared with the observed one */
/* behind a NAT that maps per destination: this many more probes from fresh local ports, one at
 * a time, each within PRB_TIMEOUT_MS; the first that fails ends them (at most 3 connections and
 * 6 s more; README, nat-check) */
#define NC_EXTRA_PROBES 3
#define NC_EXTRA_MS PRB_TIMEOUT_MS

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
    bool srv_birthday; /* the server's challenge offered birthday punching */
    int fail;          /* exit status once something went wrong, else EXIT_DONE */
    struct prb_result probe;
    bool probed; /* probe holds a result (ok or not) */
    /* the probes from fresh local ports, in the order made; nextra answered them */
    struct sockaddr_storage extra[NC_EXTRA_PROBES];
    int nextra;
    char extra_why[320]; /* why the last one tried got no answer; "" when all did */
};

struct nc_verdict {
    int exit;
    const char *key;  /* "no-nat", "independent", "dependent", "unknown" */
    const char *text; /* one human sentence */
    bool nat;
    char reason[400];       /* why it cannot tell; "" otherwise */
    struct nk_obs obs;      /* the public ports of the mappings, in the order made */
    struct nk_verdict kind; /* easy / hard-sequential / hard-random / unknown */
    char kind_text[700];    /* the kind's sentence as printed (unknown: with the reason) */
    enum nk_path with[2];   /* a punch with an easy [0] and a hard [1] peer */
    char with_text[2][240];
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

static void nc_extra(struct nc *n);

static void nc_extra_done(struct prb *p, const struct prb_result *r, void *arg)
{
    struct nc *n = arg;
    (void)p;
    if (!r->ok) {
        snprintf(n->extra_why, sizeof n->extra_why, "%s", r->why);
        LOG_I("probe %d from a fresh port failed: %s", n->nextra + 1, r->why);
        return;
    }
    n->extra[n->nextra++] = r->observed;
    if (n->nextra < NC_EXTRA_PROBES)
        nc_extra(n);
}

/* One more probe from a fresh local port (the kernel's choice), without a token: it is not our
 * registration's (the server records nothing for it, PROTOCOL.md 5.9), it only shows the
 * public port of one more new mapping. */
static void nc_extra(struct nc *n)
{
    struct sockaddr_storage to = n->server;
    char err[200];
    ep_set_port((struct sockaddr *)&to, n->probe_port);
    if (!prb_start(&n->loop, NULL, (struct sockaddr *)&to, "",
                   n->o->have_secret ? n->o->secret : NULL, NC_EXTRA_MS, nc_extra_done, n, err,
                   sizeof err)) {
        snprintf(n->extra_why, sizeof n->extra_why, "%s", err);
        LOG_I("probe %d from a fresh port failed: %s", n->nextra + 1, err);
    }
}

static void nc_probe_done(struct prb *p, const struct prb_result *r, void *arg)
{
    struct nc *n = arg;
    (void)p;
    n->probe = *r;
    n->probed = true;
    /* a new mapping for the second destination: how does the NAT pick its ports? */
    if (r->ok &&
        !ep_equal((const struct sockaddr *)&n->observed, (const struct sockaddr *)&r->observed))
        nc_extra(n);
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
    n->srv_birthday = sc_feat_birthday(n->sc);
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

/* The mappings in the order they were made: the control connection, the probe from its port,
 * then the probes from fresh ports; with their public ports, for natkind.c. */
static void nc_observations(const struct nc *n, bool nat, struct nk_obs *o)
{
    const struct sockaddr *first = (const struct sockaddr *)&n->observed;
    const struct sockaddr_storage *seen[2 + NC_EXTRA_PROBES];
    int k = 0;

    memset(o, 0, sizeof *o);
    o->nat = nat;
    o->local_port = ep_port((const struct sockaddr *)&n->local);
    seen[k++] = &n->observed;
    if (n->probe.ok) {
        seen[k++] = &n->probe.observed;
        for (int i = 0; i < n->nextra; i++)
            seen[k++] = &n->extra[i];
    }
    for (int i = 0; i < k && i < NK_MAX_MAPS; i++) {
        o->port[i] = ep_port((const struct sockaddr *)seen[i]);
        o->other_addr[i] = !ep_same_host((const struct sockaddr *)seen[i], first);
        o->n = i + 1;
    }
}

/* Whether a birthday punch can be planned for us (PROTOCOL.md 17, "When the server plans it"):
 * our own --birthday-k/-m, the server's offer, a control connection over IPv4. */
static void nc_bday(const struct nc *n, struct nk_bday_cfg *b)
{
    b->k = n->o->birthday_k;
    b->m = n->o->birthday_m;
    if (b->k <= 0 || b->m <= 0)
        b->state = NK_BDAY_OFF;
    else if (!n->srv_birthday)
        b->state = NK_BDAY_NO_SRV;
    else if (n->observed.ss_family != AF_INET)
        b->state = NK_BDAY_NO_IPV4;
    else
        b->state = NK_BDAY_ON;
}

/* The kind of side we are, and what that means for a punch with each kind of peer. */
static void nc_kind(const struct nc *n, struct nc_verdict *v)
{
    struct nk_bday_cfg b;
    nc_bday(n, &b);
    nc_observations(n, v->nat, &v->obs);
    nk_classify(&v->obs, &v->kind);
    if (v->kind.kind == NK_UNKNOWN && v->obs.n == 1 && v->reason[0])
        /* no second destination: the probe's reason says why */
        snprintf(v->kind_text, sizeof v->kind_text, "unknown: %s", v->reason);
    else if (v->kind.kind == NK_UNKNOWN && n->extra_why[0])
        snprintf(v->kind_text, sizeof v->kind_text, "%s; a probe from a fresh port: %s",
                 v->kind.text, n->extra_why);
    else
        snprintf(v->kind_text, sizeof v->kind_text, "%s", v->kind.text);
    v->with[0] = nk_punch(v->kind.side, NK_SIDE_EASY, &b, v->with_text[0], sizeof v->with_text[0]);
    v->with[1] = nk_punch(v->kind.side, NK_SIDE_HARD, &b, v->with_text[1], sizeof v->with_text[1]);
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
        v->text = "NAT with endpoint-dependent mapping (symmetric): a relay is needed, except "
                  "with an easy peer (birthday punching)";
    }
    nc_kind(n, v);
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
    char kind[VIS_SIZE(sizeof v->kind_text)];
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
    /* the reasons may quote the server */
    printf("NAT kind:        %s\n", vis_str(v->kind_text, kind, sizeof kind));
    printf("with easy peer:  %s\n", v->with_text[0]);
    printf("with hard peer:  %s\n", v->with_text[1]);
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
    char kind[VIS_SIZE(sizeof v->kind_text)], kwhy[VIS_SIZE(sizeof v->kind_text)];
    json_t *ports = json_array(), *more;
    for (int i = 0; ports && i < v->obs.n; i++)
        json_array_append_new(ports, json_integer(v->obs.port[i]));
    /* "unknown: <why>": the reason alone */
    if (v->kind.kind == NK_UNKNOWN)
        vis_str(v->kind_text + strlen("unknown: "), kwhy, sizeof kwhy);
    more =
        json_pack("{s:s, s:s, s:s?, s:O?, s:{s:s, s:s}, s:{s:s, s:s}}", "kind",
                  nk_name(v->kind.kind), "kind_message", vis_str(v->kind_text, kind, sizeof kind),
                  "kind_reason", v->kind.kind == NK_UNKNOWN ? kwhy : NULL, "ports", ports,
                  "with_easy", "path", nk_path_name(v->with[0]), "message", v->with_text[0],
                  "with_hard", "path", nk_path_name(v->with[1]), "message", v->with_text[1]);
    json_decref(ports);
    if (!more || !ports || (obj && json_object_update(obj, more) != 0)) {
        json_decref(obj);
        obj = NULL;
    }
    json_decref(more);
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
    n->have_welcome = n->probed = n->srv_birthday = false;
    memset(&n->probe, 0, sizeof n->probe);
    n->nextra = 0;
    n->extra_why[0] = '\0';
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
