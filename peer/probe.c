#include "peer/probe.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer/hello.h"
#include "peer/srvconn.h"

struct prb {
    struct sc *sc; /* NULL once it has ended */
    prb_done_cb done;
    void *arg;
    char token[PROTO_TOKEN_LEN + 1];
    bool have_secret;
    unsigned char secret[32];
};

/* Reports once and frees the probe; the exchange has been closed already. */
static void prb_finish(struct prb *p, const struct prb_result *r)
{
    p->done(p, r, p->arg);
    free(p);
}

static void prb_fail(struct prb *p, const char *what, const char *detail)
{
    struct prb_result r;
    memset(&r, 0, sizeof r);
    snprintf(r.why, sizeof r.why, "%s%s%s", what, detail[0] ? ": " : "", detail);
    sc_close(p->sc);
    p->sc = NULL;
    prb_finish(p, &r);
}

static void prb_first(struct sc *sc, void *data, const unsigned char *nonce, struct proto_msg *m)
{
    struct prb *p = data;
    (void)sc;
    m->type = PROTO_PROBE;
    m->u.probe.version = PROTO_VERSION;
    memcpy(m->u.probe.token, p->token, sizeof m->u.probe.token);
    hello_admit(p->have_secret ? p->secret : NULL, nonce, m);
}

static void prb_on_msg(struct sc *sc, void *data, const struct proto_msg *m, uint64_t rx_us)
{
    struct prb *p = data;
    struct prb_result r;
    (void)rx_us;
    if (m->type == PROTO_ERROR) {
        prb_fail(p, "refused", m->u.error.message);
        return;
    }
    if (sc_phase(sc) != SC_ANSWER || m->type != PROTO_OBSERVED) {
        prb_fail(p, "unexpected answer", proto_type_name(m->type));
        return;
    }
    memset(&r, 0, sizeof r);
    r.ok = 1;
    r.observed = m->u.observed.observed;
    r.mapping = m->u.observed.mapping;
    sc_close(p->sc);
    p->sc = NULL;
    prb_finish(p, &r);
}

static void prb_on_fail(struct sc *sc, void *data, const struct sc_error *e)
{
    static const char *const what[] = {
        [SC_FAIL_CONNECT] = "cannot connect", [SC_FAIL_CLOSED] = "no answer",
        [SC_FAIL_LONG] = "invalid answer",    [SC_FAIL_INVALID] = "invalid answer",
        [SC_FAIL_SEND] = "cannot send"};
    struct prb *p = data;
    (void)sc;
    p->sc = NULL;
    if (e->kind == SC_FAIL_TIMEOUT)
        prb_fail(p, e->phase == SC_CONNECTING ? "cannot connect" : "no answer", e->detail);
    else if (e->kind == SC_FAIL_LONG)
        prb_fail(p, what[e->kind], "line too long");
    else
        prb_fail(p, what[e->kind] ? what[e->kind] : "cannot connect", e->detail);
}

static const struct sc_cbs prb_cbs = {
    .first = prb_first, .msg = prb_on_msg, .fail = prb_on_fail};

struct prb *prb_start(uv_loop_t *loop, const struct sockaddr *local, const struct sockaddr *server,
                      const char *token, const unsigned char *secret, uint64_t timeout_ms,
                      prb_done_cb done, void *arg, char *err, size_t errlen)
{
    /* one limit for the whole exchange: a probe costs two round trips */
    struct sc_cfg cfg = {.server = server,
                         .local = local,
                         .connect_ms = timeout_ms,
                         .answer_ms = SC_KEEP_DEADLINE};
    struct sc_error e;
    struct prb *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->done = done;
    p->arg = arg;
    snprintf(p->token, sizeof p->token, "%s", token);
    p->have_secret = secret != NULL;
    if (secret)
        memcpy(p->secret, secret, sizeof p->secret);
    p->sc = sc_open(loop, &cfg, &prb_cbs, p, &e);
    if (!p->sc) {
        if (e.kind == SC_FAIL_CONNECT)
            snprintf(err, errlen, "connect: %s", e.detail);
        else if (e.kind == SC_FAIL_WATCH)
            snprintf(err, errlen, "cannot watch the probe socket");
        else
            snprintf(err, errlen, "%s", e.detail);
        free(p);
        return NULL;
    }
    return p;
}

void prb_cancel(struct prb *p)
{
    if (!p)
        return;
    sc_close(p->sc);
    free(p);
}
