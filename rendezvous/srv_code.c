/* The mailbox (wh.c) in cluster mode: the glue between its directory hooks (struct wh_dir) and
 * the cluster's code operations (cl_code.c), so that neither module knows the other. Two kinds
 * of side meet here:
 *
 *   - a local claimer whose channel lives on another instance: wh.c hands its claim to
 *     claim_elsewhere, the cluster keeps a proxy for it (cl_link.px) and its later lines come
 *     through forward; what the maker's mailbox says reaches it through code_deliver;
 *   - a claimer on another instance of a channel here: a remote link (struct srv_rlink, a
 *     wh_link with remote set) per (instance, ref), made at its code-claim and freed when the
 *     mailbox releases it; its lines go back through cl_code_to_claimer.
 *
 * PROTOCOL.md 20.5, "In a cluster". */
#include "rendezvous/srv_code.h"
#include "common/log.h"
#include "common/hmap.h"
#include "proto/bus.h"
#include "rendezvous/conn.h"
#include "rendezvous/server.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A claimer on another instance: the mailbox's side for it. */
struct srv_rlink {
    struct wh_link wh;
    struct srv *srv;
    struct hmap_node node; /* in srv->rlinks by (inst, ref) */
    char inst[BUS_MAX_INSTANCE + 1];
    uint64_t ref;
    uint32_t channel;
    bool in_call;  /* inside a call of the mailbox: released only marks it */
    bool released; /* the mailbox holds it no more */
};

static struct conn *srv_code_conn_of_wh(struct wh_link *l)
{
    return container_of(l, struct conn, wh);
}

static struct conn *srv_code_conn_of_cl(struct cl_link *l)
{
    return container_of(l, struct conn, cl);
}

/* ---- the directory hooks (wh.h struct wh_dir) ---- */

static enum wh_dir_result srv_code_reserve(void *data, uint32_t channel, uint64_t serial,
                                           unsigned ttl_s)
{
    struct srv *s = data;
    int r = cl_code_reserve(s->cl, channel, serial, ttl_s);
    return r == 0 ? WH_DIR_PENDING : r > 0 ? WH_DIR_TAKEN : WH_DIR_DOWN;
}

static void srv_code_release(void *data, uint32_t channel, uint64_t serial)
{
    struct srv *s = data;
    /* the directory's commands run in order: a release follows its reserve */
    cl_code_release(s->cl, channel, serial);
}

/* The claim's token is taken already (wh.c). With Redis down the claim is refused here with
 * a passing error rather than code-unknown: the code may well exist elsewhere. */
static bool srv_code_claim_elsewhere(void *data, struct wh_link *claimer, uint32_t channel)
{
    struct srv *s = data;
    struct conn *c = srv_code_conn_of_wh(claimer);
    if (claimer->remote)
        return false; /* a claimer from the bus claims only what is here */
    cl_code_claim(s->cl, &c->cl, channel);
    /* a refusal at once (Redis down, too many claims) leaves no proxy behind */
    claimer->proxy = cl_code_busy(s->cl, &c->cl) ? &c->cl : NULL;
    return true;
}

static void srv_code_forward(void *data, struct wh_link *from, const struct proto_msg *m)
{
    struct srv *s = data;
    struct conn *c = srv_code_conn_of_wh(from);
    if (cl_code_forward(s->cl, &c->cl, m) < 0)
        conn_refuse(c, PC_UNEXPECTED_TYPE, "this connection holds no such code channel", false);
}

static void srv_code_forward_gone(void *data, struct wh_link *l)
{
    struct srv *s = data;
    cl_code_gone(s->cl, &srv_code_conn_of_wh(l)->cl);
}

/* ---- the cluster's callbacks for a local claimer (struct cl_user) ---- */

static void srv_code_reserved(void *data, uint32_t channel, uint64_t serial, enum cl_code_res r)
{
    struct srv *s = data;
    wh_dir_reserved(s->wh, channel, serial,
                    r == CL_CODE_OK      ? WH_DIR_OK
                    : r == CL_CODE_TAKEN ? WH_DIR_TAKEN
                                         : WH_DIR_DOWN,
                    uv_now(s->loop));
}

static void srv_code_deliver(void *data, struct cl_link *l, const struct proto_msg *m)
{
    char line[PROTO_MAX_LINE];
    int n = proto_encode(m, line, sizeof line);
    (void)data;
    if (n > 0)
        conn_send(srv_code_conn_of_cl(l), line, (size_t)n);
}

static void srv_code_ended(void *data, struct cl_link *l)
{
    (void)data;
    wh_link_unproxy(&srv_code_conn_of_cl(l)->wh);
}

static void srv_code_penalize(void *data, struct cl_link *l)
{
    struct srv *s = data;
    struct conn *c = srv_code_conn_of_cl(l);
    wh_penalize_source(s->wh, c->wh.src, uv_now(s->loop));
}

/* ---- claimers on other instances ---- */

struct srv_rlink_key {
    const char *inst;
    uint64_t ref;
};

static uint64_t srv_rlink_hash(const struct hmap *m, const char *inst, uint64_t ref)
{
    char k[BUS_MAX_INSTANCE + 1 + sizeof ref];
    size_t n = strlen(inst);
    memcpy(k, inst, n + 1); /* with its NUL: no two (inst, ref) give the same bytes */
    memcpy(k + n + 1, &ref, sizeof ref);
    return hmap_hash(m, k, n + 1 + sizeof ref);
}

static bool srv_rlink_eq(const struct hmap_node *n, const void *key)
{
    const struct srv_rlink *r = hmap_data(n, struct srv_rlink, node);
    const struct srv_rlink_key *k = key;
    return r->ref == k->ref && strcmp(r->inst, k->inst) == 0;
}

/* By hash: every code message towards the maker looks its claimer up. */
static struct srv_rlink *srv_rlink_find(struct srv *s, const char *inst, uint64_t ref)
{
    struct srv_rlink_key k = {inst, ref};
    struct hmap_node *n =
        hmap_find(&s->rlinks, srv_rlink_hash(&s->rlinks, inst, ref), srv_rlink_eq, &k);
    return n ? hmap_data(n, struct srv_rlink, node) : NULL;
}

static void srv_rlink_free(struct srv_rlink *r)
{
    hmap_remove(&r->srv->rlinks, &r->node);
    free(r);
}

/* A line of the mailbox to the remote claimer; one that cannot leave (Redis down) leaves the
 * claimer as good as gone, which the mailbox may hear from inside its own call (wh.h). */
static void srv_rlink_send(struct wh_link *l, const char *line, size_t len)
{
    struct srv_rlink *r = container_of(l, struct srv_rlink, wh);
    if (cl_code_to_claimer(r->srv->cl, r->inst, r->ref, r->channel, line, len) < 0 && l->chan)
        wh_gone(r->srv->wh, l, uv_now(r->srv->loop));
}

/* Never fatal across the bus: only the claimer's own instance may cut its connection. */
static void srv_rlink_refuse(struct wh_link *l, enum proto_code code, const char *msg, bool fatal)
{
    char line[PROTO_MAX_LINE];
    int n = proto_encode_pc(code, msg, false, line, sizeof line);
    (void)fatal;
    if (n > 0)
        srv_rlink_send(l, line, (size_t)n);
}

/* The mailbox holds it no more: the claimer's instance hears that the channel ended (its
 * proxy, waiting only for a late abort after a confirm, ends too). */
static void srv_rlink_released(struct wh_link *l)
{
    struct srv_rlink *r = container_of(l, struct srv_rlink, wh);
    cl_code_to_claimer(r->srv->cl, r->inst, r->ref, r->channel, NULL, 0);
    if (r->in_call)
        r->released = true;
    else
        srv_rlink_free(r);
}

/* The extra cost of a failed exchange is the claimer's instance's to charge, where its source
 * is counted: it sees the code-wrong or the abort pass (cl_code.c). */
static void srv_rlink_penalize(struct wh_link *l)
{
    (void)l;
}

static const struct wh_link_ops srv_rlink_ops = {.send = srv_rlink_send,
                                                 .refuse = srv_rlink_refuse,
                                                 .released = srv_rlink_released,
                                                 .penalize = srv_rlink_penalize};

/* m into the mailbox for r (NULL: r's claimer has gone). r is freed once the mailbox holds it
 * no more: released, or never taken (a claim refused code-unknown). */
static void srv_rlink_call(struct srv_rlink *r, const struct proto_msg *m)
{
    struct srv *s = r->srv;
    r->in_call = true;
    if (m)
        wh_msg(s->wh, &r->wh, m, uv_now(s->loop));
    else
        wh_gone(s->wh, &r->wh, uv_now(s->loop));
    r->in_call = false;
    if (r->released || !r->wh.chan)
        srv_rlink_free(r);
}

static void srv_rlink_claim(struct srv *s, const char *inst, uint64_t ref,
                            const struct proto_msg *m)
{
    struct srv_rlink *r;
    char id[PROTO_MAX_ID + 1];
    /* the same claim twice (a buggy instance): the first one stands */
    if (srv_rlink_find(s, inst, ref) || hmap_count(&s->rlinks) >= SRV_CODE_MAX_REMOTE ||
        !(r = calloc(1, sizeof *r))) {
        LOG_I("code %d: claim from instance %s (ref %" PRIu64 ") dropped", m->u.code.channel, inst,
              ref);
        return;
    }
    r->srv = s;
    snprintf(r->inst, sizeof r->inst, "%s", inst);
    r->ref = ref;
    r->channel = (uint32_t)m->u.code.channel;
    hmap_insert(&s->rlinks, &r->node, srv_rlink_hash(&s->rlinks, r->inst, r->ref));
    /* for logs: which instance, which claim */
    snprintf(id, sizeof id, "%.40s#%" PRIu64, inst, ref);
    wh_link_init(&r->wh, &srv_rlink_ops, id, NULL, false, true);
    srv_rlink_call(r, m);
}

static void srv_code_remote(void *data, const char *inst, uint64_t ref, uint32_t channel,
                            const struct proto_msg *m)
{
    struct srv *s = data;
    struct srv_rlink *r;
    if (m && m->type == PROTO_CODE_CLAIM) {
        srv_rlink_claim(s, inst, ref, m);
        return;
    }
    /* the (instance, ref) that holds the claim of this channel, and no other, speaks for it */
    r = srv_rlink_find(s, inst, ref);
    if (!r || r->channel != channel) {
        LOG_D("code %" PRIu32 ": a line from instance %s for claim ref %" PRIu64
              ", which holds no claim of it here",
              channel, inst, ref);
        return;
    }
    srv_rlink_call(r, m);
}

/* ---- wiring ---- */

void srv_code_user(struct cl_user *u)
{
    u->code_reserved = srv_code_reserved;
    u->code_remote = srv_code_remote;
    u->code_deliver = srv_code_deliver;
    u->code_ended = srv_code_ended;
    u->code_penalize = srv_code_penalize;
}

int srv_code_wire(struct srv *s)
{
    struct wh_dir dir = {.data = s,
                         .reserve = srv_code_reserve,
                         .release = srv_code_release,
                         .claim_elsewhere = srv_code_claim_elsewhere,
                         .forward = srv_code_forward,
                         .forward_gone = srv_code_forward_gone};
    if (hmap_init(&s->rlinks, 64) < 0)
        return -1;
    if (s->cl && wh_enabled(s->wh))
        wh_set_dir(s->wh, &dir);
    return 0;
}

void srv_code_free(struct srv *s)
{
    struct hmap_node *it, *tmp;
    hmap_foreach_safe(it, tmp, &s->rlinks) free(hmap_data(it, struct srv_rlink, node));
    hmap_fini(&s->rlinks);
}
