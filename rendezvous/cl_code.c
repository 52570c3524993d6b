/* Wormhole codes across instances (PROTOCOL.md 20.5, "In a cluster"; docs/design/wormhole.md
 * 6.2). The maker's instance holds a channel's whole state machine (wh.c); Redis is only the
 * directory of channel numbers, `P code:N` naming the instance that holds N, set with NX so
 * that no number is handed out twice while it lives. A claimer on another instance reaches
 * the maker's mailbox through a proxy here: its claim and its lines go over the bus as `code`
 * messages to the maker's instance, whose lines come back the same way, each checked and
 * decoded by proto/bus.c and re-encoded by the server before a peer sees it.
 *
 * A remote claimer gains nothing a local one lacks: one proxy per connection, a bounded table
 * (CL_CODE_MAX_PROXIES), deadlines no longer than the mailbox's own, lines passed on only in
 * the order the exchange allows and only from the instance the claim went to. */
#include "rendezvous/cluster.h"
#include "rendezvous/cluster_int.h"
#include "common/log.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* delete a channel's key only while it still names this instance: after an outage another
 * instance may hold the number */
static const char cl_lua_code_release[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                          "return redis.call('DEL', KEYS[1]) end return 0";

/* The states of a proxy are proto/bus.h's BUS_CS_*, its steps bus_code_next's: a line out of
 * turn stays here, so that a claimer cannot make the bus carry what the maker's mailbox would
 * refuse anyway, nor another instance make a claimer see lines out of the exchange's order. */

/* A local claimer whose channel lives on another instance. */
struct cl_px {
    struct cl *cl;
    struct q link;         /* in cl->pxs while live */
    struct hmap_node node; /* in cl->px_refs by ref while live */
    struct cl_link *conn;  /* the claimer; NULL once ended */
    enum bus_code_state state;
    int refs; /* the list's while live, and one per Redis callback still to come */
    uint64_t ref;
    uint32_t channel;
    uint64_t deadline_ms;
    char where[BUS_MAX_INSTANCE + 1]; /* the maker's instance, once known */
};

static void cl_code_key(const struct cl *c, uint32_t channel, char *out, size_t len)
{
    char n[16];
    snprintf(n, sizeof n, "%" PRIu32, channel);
    cl__key(c, "code", n, out, len);
}

/* ---- the directory of channel numbers ---- */

/* A number this instance holds in the directory: Redis forgets everything when it restarts,
 * and the channels here outlive an outage, so their keys are set again on rejoin. */
struct cl_num {
    struct hmap_node node;
    uint32_t channel;
    uint64_t expires_ms; /* its key's expiry as set */
    /* a reservation that timed out, its SET still unanswered: the number is not drawn again
     * until the answer is in (a late OK is released then; a new SET sent meanwhile would have
     * been deleted by that release, both keys naming this instance) */
    bool doubt;
};

static bool cl_num_eq(const struct hmap_node *n, const void *key)
{
    return hmap_data(n, struct cl_num, node)->channel == *(const uint32_t *)key;
}

static struct cl_num *cl_num_find(struct cl *c, uint32_t channel)
{
    struct hmap_node *n =
        hmap_find(&c->nums, hmap_hash(&c->nums, &channel, sizeof channel), cl_num_eq, &channel);
    return n ? hmap_data(n, struct cl_num, node) : NULL;
}

/* Without memory (or past the bound) the number is simply not set again after an outage. */
static void cl_num_add(struct cl *c, uint32_t channel, unsigned key_ttl_s)
{
    struct cl_num *e = cl_num_find(c, channel);
    if (!e && (hmap_count(&c->nums) >= CL_CODE_MAX_NUMS || !(e = calloc(1, sizeof *e))))
        return;
    if (!e->channel) {
        e->channel = channel;
        hmap_insert(&c->nums, &e->node, hmap_hash(&c->nums, &channel, sizeof channel));
    }
    e->expires_ms = uv_now(c->loop) + (uint64_t)key_ttl_s * 1000;
}

static void cl_num_drop(struct cl *c, struct cl_num *e)
{
    hmap_remove(&c->nums, &e->node);
    free(e);
}

static void cl_on_code_script_loaded(redisAsyncContext *ac, void *r, void *privdata)
{
    struct cl *c = ac->data;
    redisReply *reply = r;
    (void)privdata;
    if (reply && reply->type == REDIS_REPLY_STRING && reply->len == 40 && ac == c->cmd)
        snprintf(c->code_sha, sizeof c->code_sha, "%s", reply->str);
}

void cl__code_load_scripts(struct cl *c)
{
    if (c->cmd)
        redisAsyncCommand(c->cmd, cl_on_code_script_loaded, NULL, "SCRIPT LOAD %s",
                          cl_lua_code_release);
}

static void cl_send_release(struct cl *c, uint32_t channel, bool by_sha);

/* A release sent by SHA that Redis no longer knows (its script cache flushed): sent whole. */
static void cl_on_released(redisAsyncContext *ac, void *r, void *privdata)
{
    struct cl *c = ac->data;
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_ERROR || strncmp(reply->str, "NOSCRIPT", 8) != 0 ||
        c->state != CL_UP)
        return;
    c->code_sha[0] = '\0';
    cl__code_load_scripts(c);
    cl_send_release(c, (uint32_t)(uintptr_t)privdata, false);
}

static void cl_send_release(struct cl *c, uint32_t channel, bool by_sha)
{
    char key[CL_KEY_MAX];
    cl_code_key(c, channel, key, sizeof key);
    if (by_sha)
        redisAsyncCommand(c->cmd, cl_on_released, (void *)(uintptr_t)channel, "EVALSHA %s 1 %s %s",
                          c->code_sha, key, c->inst);
    else
        redisAsyncCommand(c->cmd, NULL, NULL, "EVAL %s 1 %s %s", cl_lua_code_release, key, c->inst);
}

void cl__code_doubt(struct cl *c, uint32_t channel)
{
    struct cl_num *e = cl_num_find(c, channel);
    if (!e && (e = calloc(1, sizeof *e))) {
        e->channel = channel;
        hmap_insert(&c->nums, &e->node, hmap_hash(&c->nums, &channel, sizeof channel));
    }
    if (e)
        e->doubt = true;
}

/* The reservation of (channel, serial) still waiting for Redis, if any, will find its channel
 * gone: its OK must not remember the number (a maker that left right after its code-open
 * would leave it in c->nums for good, set again in Redis at every rejoin). */
static void cl_code_unreserve(struct cl *c, uint32_t channel, uint64_t serial)
{
    struct q *it;
    q_foreach(it, &c->ops)
    {
        struct cl_op *op = q_data(it, struct cl_op, link);
        if (op->kind == CL_CODE_OPEN && op->channel == channel && op->serial == serial) {
            op->released = true;
            return;
        }
    }
}

void cl_code_release(struct cl *c, uint32_t channel, uint64_t serial)
{
    struct cl_num *e;
    if (!c)
        return;
    if ((e = cl_num_find(c, channel)) && !e->doubt)
        cl_num_drop(c, e);
    else if (serial) /* not answered yet (a number remembered was answered) */
        cl_code_unreserve(c, channel, serial);
    /* while Redis is down the key expires by itself (CL_CODE_KEY_SLACK_S after the ttl) */
    if (c->state != CL_UP || !c->cmd)
        return;
    cl_send_release(c, channel, c->code_sha[0] != '\0');
}

static void cl_on_reannounced(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    (void)ac;
    if (reply && reply->type == REDIS_REPLY_NIL)
        LOG_W("cluster: code channel %" PRIu32 " was taken by another instance during the "
              "outage: claims from other instances go there",
              (uint32_t)(uintptr_t)privdata);
}

void cl__code_announce_all(struct cl *c)
{
    struct hmap_node *it, *tmp;
    uint64_t now = uv_now(c->loop);
    char key[CL_KEY_MAX];
    if (!c->cmd)
        return;
    hmap_foreach_safe(it, tmp, &c->nums)
    {
        struct cl_num *e = hmap_data(it, struct cl_num, node);
        if (e->doubt)
            continue;
        if (e->expires_ms <= now) {
            cl_num_drop(c, e);
            continue;
        }
        cl_code_key(c, e->channel, key, sizeof key);
        redisAsyncCommand(c->cmd, cl_on_reannounced, (void *)(uintptr_t)e->channel,
                          "SET %s %s NX EX %u", key, c->inst,
                          (unsigned)((e->expires_ms - now + 999) / 1000));
    }
}

void cl__code_free(struct cl *c)
{
    struct hmap_node *it, *tmp;
    hmap_foreach_safe(it, tmp, &c->nums) cl_num_drop(c, hmap_data(it, struct cl_num, node));
    hmap_fini(&c->nums);
    hmap_fini(&c->px_refs); /* its proxies all ended at cl_stop */
}

/* SET NX answered: OK is ours, nil is another channel's (of any instance). */
static void cl_on_reserved(redisAsyncContext *ac, void *r, void *privdata)
{
    struct cl_op *op = privdata;
    struct cl *c = op->cl;
    redisReply *reply = r;
    bool ok = reply && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "OK") == 0;
    uint32_t channel = op->channel;
    uint64_t serial = op->serial;
    (void)ac;
    if (op->finished) {
        /* it timed out (answered "down"): a number reserved meanwhile is given back, and the
         * number may be drawn again (no other SET of it was sent while in doubt) */
        struct cl_num *e = cl_num_find(c, channel);
        if (e && e->doubt)
            cl_num_drop(c, e);
        if (ok)
            cl_code_release(c, channel, 0);
    } else if (ok) {
        if (!op->released)
            cl_num_add(c, channel, op->key_ttl);
        cl__op_fail(op, PC_UNKNOWN, NULL);
    } else if (cl__reply_ok(reply) && reply->type == REDIS_REPLY_NIL) {
        cl__op_finish(op);
        c->user.code_reserved(c->user.data, channel, serial, CL_CODE_TAKEN);
    } else {
        LOG_W("cluster: reserving code channel %" PRIu32 ": %s", channel,
              reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "no answer from Redis");
        cl__op_fail(op, PC_OVERLOADED, NULL);
    }
    cl__op_unref(op);
}

int cl_code_reserve(struct cl *c, uint32_t channel, uint64_t serial, unsigned ttl_s)
{
    char key[CL_KEY_MAX];
    struct cl_op *op;
    struct cl_num *e;
    if (!c || c->state != CL_UP)
        return -1;
    if ((e = cl_num_find(c, channel)) && e->doubt)
        return 1;
    if (!(op = cl__op_new(c, CL_CODE_OPEN, NULL)))
        return -1;
    op->channel = channel;
    op->serial = serial;
    op->key_ttl = ttl_s + CL_CODE_KEY_SLACK_S;
    cl_code_key(c, channel, key, sizeof key);
    op->refs++;
    if (redisAsyncCommand(c->cmd, cl_on_reserved, op, "SET %s %s NX EX %u", key, c->inst,
                          op->key_ttl) != REDIS_OK) {
        op->refs--;
        cl__op_finish(op);
        return -1;
    }
    return 0;
}

/* ---- the claimer's side: proxies ---- */

static void cl_px_unref(struct cl_px *px)
{
    if (--px->refs == 0)
        free(px);
}

/* Out of the table: nothing more reaches its claimer, nothing more goes out for it. */
static void cl_px_end(struct cl_px *px)
{
    struct cl *c = px->cl;
    if (!px->conn)
        return;
    struct cl_link *conn = px->conn;
    q_remove(&px->link);
    hmap_remove(&c->px_refs, &px->node);
    c->npx--;
    conn->px = NULL;
    px->conn = NULL;
    cl_px_unref(px);
    /* before any last line goes out: that send may drop the connection */
    if (c->user.code_ended)
        c->user.code_ended(c->user.data, conn);
}

/* The bus message for px's channel from this (the claimer's) instance: line, or NULL (gone). */
static int cl_px_send(struct cl_px *px, const struct proto_msg *line, redisCallbackFn *cb)
{
    struct cl *c = px->cl;
    struct bus_msg m;
    int rc;
    memset(&m, 0, sizeof m);
    m.type = BUS_CODE;
    snprintf(m.u.code.claimer, sizeof m.u.code.claimer, "%s", c->inst);
    m.u.code.ref = px->ref;
    m.u.code.channel = px->channel;
    m.u.code.gone = line == NULL;
    if (line)
        m.u.code.line = *line;
    if (cb)
        px->refs++;
    rc = cl__publish(c, px->where, &m, cb, px);
    if (rc < 0 && cb)
        px->refs--;
    return rc;
}

/* Ends px with a refusal to its claimer (non-fatal). */
static void cl_px_refuse(struct cl_px *px, enum proto_code code, const char *msg)
{
    struct cl *c = px->cl;
    struct cl_link *conn = px->conn;
    if (!conn)
        return;
    cl_px_end(px);
    c->user.refuse(c->user.data, conn, code, msg);
}

/* Ends px, telling the maker's instance when the claim may have reached it. */
static void cl_px_give_up(struct cl_px *px)
{
    if (px->conn && px->state != BUS_CS_LOOKUP)
        cl_px_send(px, NULL, NULL);
    cl_px_end(px);
}

static const char cl_msg_unknown[] =
    "no such code: it expired, was already used, or was never made";

static void cl_on_claim_published(redisAsyncContext *ac, void *r, void *privdata)
{
    struct cl_px *px = privdata;
    redisReply *reply = r;
    (void)ac;
    if (px->conn && px->state == BUS_CS_WAIT &&
        (!cl__reply_ok(reply) || reply->type != REDIS_REPLY_INTEGER))
        cl_px_refuse(px, PC_OVERLOADED, "the server cannot reach the cluster now");
    else if (px->conn && px->state == BUS_CS_WAIT && reply->integer == 0) {
        /* crashed, its keys not expired yet: its channels went with it */
        LOG_I("cluster: code channel %" PRIu32 " is on instance %s, which is not running",
              px->channel, px->where);
        cl_px_refuse(px, PC_CODE_UNKNOWN, cl_msg_unknown);
    }
    cl_px_unref(px);
}

/* The directory named the channel's instance: the claim goes there. */
static void cl_on_code_located(redisAsyncContext *ac, void *r, void *privdata)
{
    struct cl_px *px = privdata;
    struct cl *c = px->cl;
    redisReply *reply = r;
    struct proto_msg claim;
    (void)ac;
    if (!px->conn) {
        cl_px_unref(px);
        return;
    }
    if (!cl__reply_ok(reply)) {
        cl_px_refuse(px, PC_OVERLOADED, "the server cannot look the code up now");
    } else if (reply->type != REDIS_REPLY_STRING || strcmp(reply->str, c->inst) == 0 ||
               !bus_valid_instance(reply->str)) {
        /* none, or our own name: a channel of ours that has just ended (a live one is local,
         * and the server has looked there first) */
        cl_px_refuse(px, PC_CODE_UNKNOWN, cl_msg_unknown);
    } else {
        snprintf(px->where, sizeof px->where, "%s", reply->str);
        bus_code_claim_of(px->channel, &claim);
        px->state = BUS_CS_WAIT;
        px->deadline_ms = uv_now(c->loop) + CL_ANSWER_MS;
        if (cl_px_send(px, &claim, cl_on_claim_published) < 0)
            cl_px_refuse(px, PC_OVERLOADED, "the server cannot reach the cluster now");
        else
            LOG_I("cluster: claim of code channel %" PRIu32 " sent to instance %s (ref %" PRIu64
                  ")",
                  px->channel, px->where, px->ref);
    }
    cl_px_unref(px);
}

void cl_code_claim(struct cl *c, struct cl_link *conn, uint32_t channel)
{
    char key[CL_KEY_MAX];
    struct cl_px *px;
    if (conn->px) { /* the server checks first; one claim per connection all the same */
        c->user.refuse(c->user.data, conn, PC_UNEXPECTED_TYPE,
                       "this connection has claimed a code already");
        return;
    }
    if (c->state != CL_UP) {
        c->user.refuse(c->user.data, conn, PC_OVERLOADED,
                       "the server cannot look the code up now: the cluster's store is "
                       "unavailable");
        return;
    }
    if (c->npx >= CL_CODE_MAX_PROXIES || !(px = calloc(1, sizeof *px))) {
        c->user.refuse(c->user.data, conn, PC_OVERLOADED,
                       "the server has too many code claims in flight");
        return;
    }
    px->cl = c;
    px->conn = conn;
    px->refs = 1; /* the list's */
    px->ref = ++c->next_ref;
    px->channel = channel;
    px->state = BUS_CS_LOOKUP;
    px->deadline_ms = uv_now(c->loop) + CL_ANSWER_MS;
    q_insert_tail(&c->pxs, &px->link);
    hmap_insert(&c->px_refs, &px->node, hmap_hash(&c->px_refs, &px->ref, sizeof px->ref));
    c->npx++;
    conn->px = px;
    cl_code_key(c, channel, key, sizeof key);
    px->refs++;
    if (redisAsyncCommand(c->cmd, cl_on_code_located, px, "GET %s", key) != REDIS_OK) {
        px->refs--;
        cl_px_refuse(px, PC_OVERLOADED, "the server cannot look the code up now");
    }
}

bool cl_code_busy(const struct cl *c, const struct cl_link *conn)
{
    return c && conn->px;
}

int cl_code_forward(struct cl *c, struct cl_link *conn, const struct proto_msg *m)
{
    struct cl_px *px = conn->px;
    int next;
    if (!c || !px || bus_code_channel(m) != px->channel)
        return -1;
    /* the maker's mailbox checks the state again; this keeps what it would refuse off the bus */
    if ((next = bus_code_next(px->state, false, m)) < 0) {
        c->user.refuse(c->user.data, conn, PC_UNEXPECTED_TYPE,
                       "not a line this side of the code exchange may send now");
        return 0;
    }
    if (cl_px_send(px, m, NULL) < 0) {
        cl_px_refuse(px, PC_OVERLOADED, "the server cannot reach the cluster now");
        return 0;
    }
    px->state = (enum bus_code_state)next;
    if (next == BUS_CS_END) { /* an abort: the channel is burned, nothing more comes for it */
        cl_px_end(px);
        if (c->user.code_penalize)
            c->user.code_penalize(c->user.data, conn);
    }
    return 0;
}

void cl_code_gone(struct cl *c, struct cl_link *conn)
{
    /* leaving mid-exchange costs as a local claimer's leaving does (wh.c) */
    bool exchange =
        conn->px && (conn->px->state == BUS_CS_CLAIMED || conn->px->state == BUS_CS_ANSWERED);
    if (!c || !conn->px)
        return;
    cl_px_give_up(conn->px);
    if (exchange && c->user.code_penalize)
        c->user.code_penalize(c->user.data, conn);
}

static struct cl_px *cl_px_first(const struct cl *c)
{
    struct q *h = q_head(&c->pxs);
    return h ? q_data(h, struct cl_px, link) : NULL;
}

void cl__code_fail_all(struct cl *c, const char *why)
{
    char msg[PROTO_MAX_TEXT];
    struct cl_px *px;
    snprintf(msg, sizeof msg, "the server lost the cluster mid-exchange (%s)", why);
    while ((px = cl_px_first(c))) {
        if (px->state == BUS_CS_DONE) /* confirmed: the claimer has all it needs */
            cl_px_end(px);
        else
            cl_px_refuse(px, PC_OVERLOADED, msg);
    }
}

/* As in cl__expire_ops, the scan starts over after each answer: answering may drop a
 * connection, and with it another proxy. */
void cl__code_expire(struct cl *c, uint64_t now)
{
    struct cl_px *px = cl_px_first(c);
    char msg[PROTO_MAX_TEXT];
    while (px) {
        if (now < px->deadline_ms) {
            struct q *next = q_next(&c->pxs, &px->link);
            px = next ? q_data(next, struct cl_px, link) : NULL;
            continue;
        }
        if (px->state == BUS_CS_LOOKUP) {
            cl_px_refuse(px, PC_OVERLOADED,
                         "the server cannot look the code up now (Redis is slow)");
        } else if (px->state == BUS_CS_WAIT) {
            LOG_W("cluster: instance %s did not answer the claim of code channel %" PRIu32
                  " within %d ms",
                  px->where, px->channel, CL_ANSWER_MS);
            cl_px_send(px, NULL, NULL); /* a claim that arrives late is given up */
            snprintf(msg, sizeof msg, "%s (its server, %.100s, did not answer)", cl_msg_unknown,
                     px->where);
            cl_px_refuse(px, PC_CODE_UNKNOWN, msg);
        } else if (px->state == BUS_CS_CLAIMED || px->state == BUS_CS_ANSWERED) {
            /* the maker's instance says code-expired at CL_CODE_STEP_MS; this one is silent */
            cl_px_send(px, NULL, NULL);
            cl_px_refuse(px, PC_CODE_EXPIRED,
                         "the code exchange did not finish in time; the code is burned");
        } else {
            cl_px_end(px);
        }
        px = cl_px_first(c);
    }
}

/* ---- the bus ---- */

static bool cl_px_eq(const struct hmap_node *n, const void *key)
{
    return hmap_data(n, struct cl_px, node)->ref == *(const uint64_t *)key;
}

/* By hash: every code message towards a claimer looks its ref up. */
static struct cl_px *cl_px_find(struct cl *c, uint64_t ref)
{
    struct hmap_node *n =
        hmap_find(&c->px_refs, hmap_hash(&c->px_refs, &ref, sizeof ref), cl_px_eq, &ref);
    return n ? hmap_data(n, struct cl_px, node) : NULL;
}

/* A line of the maker's mailbox for a local claimer: passed on in the exchange's order only. */
static void cl_px_from_maker(struct cl *c, struct cl_px *px, const struct bus_msg *m)
{
    const struct proto_msg *l = &m->u.code.line;
    struct cl_link *conn = px->conn;
    enum bus_code_state was = px->state;
    enum proto_code pc;
    int next;
    if (m->u.code.gone) {
        /* the channel ended there without a word for us: the claimer must not wait on */
        if (px->state == BUS_CS_WAIT)
            cl_px_refuse(px, PC_CODE_UNKNOWN, cl_msg_unknown);
        else if (px->state == BUS_CS_CLAIMED || px->state == BUS_CS_ANSWERED)
            cl_px_refuse(px, PC_CODE_WRONG, "the other side left; the code is burned");
        else
            cl_px_end(px);
        return;
    }
    if ((next = bus_code_next(px->state, true, l)) < 0) {
        cl__reject(c, "from %s: %s for code channel %" PRIu32 " out of turn", m->sender,
                   proto_type_name(l->type), px->channel);
        return;
    }
    px->state = (enum bus_code_state)next;
    if (next == BUS_CS_CLAIMED || next == BUS_CS_DONE)
        px->deadline_ms = uv_now(c->loop) + CL_CODE_GRACE_MS +
                          (next == BUS_CS_CLAIMED ? CL_CODE_STEP_MS : CL_CODE_DONE_MS);
    if (next == BUS_CS_END) {
        cl_px_end(px);
        /* a code-expired in CLAIMED: the claimer owed its answer (wh.c charges it likewise) */
        pc = proto_code_parse(l->u.error.code);
        if ((pc == PC_CODE_WRONG || (pc == PC_CODE_EXPIRED && was == BUS_CS_CLAIMED)) &&
            c->user.code_penalize)
            c->user.code_penalize(c->user.data, conn);
    }
    c->user.code_deliver(c->user.data, conn, l);
}

void cl__code_on_bus(struct cl *c, const struct bus_msg *m)
{
    struct cl_px *px;
    if (m->u.code.to_maker) {
        if (!c->user.code_remote) {
            LOG_D("cluster: code message from %s, but codes are off here", m->sender);
            return;
        }
        c->user.code_remote(c->user.data, m->sender, m->u.code.ref, m->u.code.channel,
                            m->u.code.gone ? NULL : &m->u.code.line);
        return;
    }
    px = cl_px_find(c, m->u.code.ref);
    if (!px) {
        /* ended here (its claimer left, or it timed out): the maker's side learns it now
         * rather than at its own deadline; a gone is never answered, so this cannot loop */
        struct bus_msg g;
        LOG_D("cluster: code message from %s for an unknown claim ref %" PRIu64, m->sender,
              m->u.code.ref);
        if (m->u.code.gone)
            return;
        memset(&g, 0, sizeof g);
        g.type = BUS_CODE;
        snprintf(g.u.code.claimer, sizeof g.u.code.claimer, "%s", c->inst);
        g.u.code.ref = m->u.code.ref;
        g.u.code.channel = m->u.code.channel;
        g.u.code.gone = true;
        cl__publish(c, m->sender, &g, NULL, NULL);
        return;
    }
    /* only the instance the claim went to speaks for the channel */
    if (px->state == BUS_CS_LOOKUP || strcmp(px->where, m->sender) != 0 ||
        px->channel != m->u.code.channel) {
        cl__reject(c,
                   "from %s: a code message for claim ref %" PRIu64 " (channel %" PRIu32
                   "), which went to %s for channel %" PRIu32,
                   m->sender, m->u.code.ref, m->u.code.channel,
                   px->where[0] ? px->where : "(none yet)", px->channel);
        return;
    }
    cl_px_from_maker(c, px, m);
}

int cl_code_to_claimer(struct cl *c, const char *inst, uint64_t ref, uint32_t channel,
                       const char *line, size_t len)
{
    struct bus_msg m;
    char why[PROTO_MAX_TEXT] = "not one line";
    if (!c || !bus_valid_instance(inst))
        return -1;
    memset(&m, 0, sizeof m);
    m.type = BUS_CODE;
    snprintf(m.u.code.claimer, sizeof m.u.code.claimer, "%s", inst);
    m.u.code.ref = ref;
    m.u.code.channel = channel;
    m.u.code.gone = line == NULL;
    /* the mailbox's own line, decoded as the claimer's instance will: bus_encode then checks
     * it may go to a claimer at all */
    if (line &&
        (len < 2 || line[len - 1] != '\n' ||
         proto_decode(line, len - 1, PROTO_TO_PEER, &m.u.code.line, why, sizeof why) != PROTO_OK)) {
        LOG_W("cluster: a line for a claimer on %s does not decode: %s", inst, why);
        return -1;
    }
    return cl__publish(c, inst, &m, NULL, NULL);
}
