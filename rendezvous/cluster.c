/* The cluster's ground floor (the other files: cluster_int.h). Its operations in flight: id
 * claims waiting for Redis, introductions waiting for Redis and another instance. Each belongs to
 * the connection that asked, and ends once with an answer to it (through the cl_user callbacks)
 * unless that connection has gone. */
#include "rendezvous/cluster.h"
#include "rendezvous/cluster_int.h"
#include "common/log.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- small helpers ---- */

void cl__key(const struct cl *c, const char *kind, const char *id, char *out, size_t len)
{
    snprintf(out, len, "%s%s:%s", c->prefix, kind, id);
}

void cl__chan_of(const struct cl *c, const char *inst, char *out, size_t len)
{
    snprintf(out, len, "%sinst:%s", c->prefix, inst);
}

bool cl__reply_ok(const redisReply *r)
{
    return r && r->type != REDIS_REPLY_ERROR;
}

int64_t cl__wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#define CL_REJECT_BURST 10 /* rejection lines logged per CL_REJECT_MS, then a count */
#define CL_REJECT_MS 10000

/* ---- the bus, both ways: what introductions (cl_intro.c) and codes (cl_code.c) share ---- */

/* Logs why a bus message was refused: a burst of lines, then one count per period, so that
 * a flood of forgeries cannot flood the log. */
void cl__reject(struct cl *c, const char *fmt, ...)
{
    uint64_t now = uv_now(c->loop);
    char why[256];
    va_list ap;
    c->rejected++;
    /* the period's start + 1 (0: none yet); "now | 1" was up to 1 ms ahead of now, and the
     * unsigned difference then wrapped, starting a new period at every message */
    if (!c->reject_window_ms || now + 1 - c->reject_window_ms >= CL_REJECT_MS) {
        if (c->reject_quiet)
            LOG_W("cluster: %u more bus messages rejected (not logged)", c->reject_quiet);
        c->reject_window_ms = now + 1;
        c->reject_logged = c->reject_quiet = 0;
    }
    if (c->reject_logged >= CL_REJECT_BURST) {
        c->reject_quiet++;
        return;
    }
    c->reject_logged++;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    LOG_W("cluster: bus message on %s rejected: %s", c->chan, why);
}

/* Stamps m with this instance and a fresh "t", MACs it for inst's channel and publishes. The
 * bus (PROTOCOL.md, "Cluster"): a receiver takes from each sender only larger values of t. */
int cl__publish(struct cl *c, const char *inst, struct bus_msg *m, redisCallbackFn *cb, void *arg)
{
    char chan[CL_CHAN_MAX], json[BUS_MAX], payload[BUS_MAX];
    int64_t t = cl__wall_us();
    int n;
    if (c->state != CL_UP)
        return -1;
    c->last_t_sent = t > c->last_t_sent ? t : c->last_t_sent + 1;
    snprintf(m->sender, sizeof m->sender, "%s", c->inst);
    m->t = c->last_t_sent;
    cl__chan_of(c, inst, chan, sizeof chan);
    if ((n = bus_encode(m, json, sizeof json)) < 0 ||
        (n = bus_seal(c->bus_key, chan, json, (size_t)n, payload, sizeof payload)) < 0)
        return -1;
    return redisAsyncCommand(c->cmd, cb, arg, "PUBLISH %s %b", chan, payload, (size_t)n) == REDIS_OK
               ? 0
               : -1;
}

/* ---- operations in flight ---- */

void cl_link_init(struct cl_link *l)
{
    q_init(&l->ops);
    l->px = NULL;
}

struct cl_op *cl__op_new(struct cl *c, enum cl_kind kind, struct cl_link *conn)
{
    struct cl_op *op;
    if (c->nops >= CL_MAX_OPS || !(op = calloc(1, sizeof *op)))
        return NULL;
    op->cl = c;
    op->kind = kind;
    op->conn = conn;
    op->refs = 1; /* the list's */
    op->deadline_ms = uv_now(c->loop) + CL_ANSWER_MS;
    q_insert_head(&c->ops, &op->link);
    if (conn)
        q_insert_head(&conn->ops, &op->by_conn);
    else
        q_init(&op->by_conn);
    c->nops++;
    return op;
}

void cl__op_unref(struct cl_op *op)
{
    if (--op->refs > 0)
        return;
    free(op->hello);
    free(op);
}

/* Takes op out of the list: nothing will answer its connection any more. */
void cl__op_finish(struct cl_op *op)
{
    struct cl *c = op->cl;
    if (op->finished)
        return;
    op->finished = true;
    q_remove(&op->link);
    q_remove(&op->by_conn);
    c->nops--;
    op->conn = NULL;
    cl__op_unref(op);
}

/* Ends op with an answer to its connection: an error for an introduction, the verdict for a
 * claim; for a code number's reservation its answer (PC_UNKNOWN: reserved, else down). */
void cl__op_fail(struct cl_op *op, enum proto_code code, const char *msg)
{
    struct cl *c = op->cl;
    struct cl_link *conn = op->conn;
    struct proto_msg *hello = op->hello;
    enum cl_kind kind = op->kind;
    uint32_t channel = op->channel;
    uint64_t serial = op->serial;
    if (op->finished)
        return;
    op->hello = NULL;
    cl__op_finish(op);
    if (kind == CL_CODE_OPEN) /* a reservation belongs to no connection */
        c->user.code_reserved(c->user.data, channel, serial,
                              code == PC_UNKNOWN ? CL_CODE_OK : CL_CODE_DOWN);
    else if (conn && hello)
        c->user.claimed(c->user.data, conn, hello, code, msg);
    else if (conn)
        c->user.refuse(c->user.data, conn, code, msg);
    free(hello);
}

struct cl_op *cl__op_find(struct cl *c, const char *session)
{
    struct q *it;
    q_foreach(it, &c->ops)
    {
        struct cl_op *op = q_data(it, struct cl_op, link);
        if (op->kind == CL_INTRO && strcmp(op->session, session) == 0)
            return op;
    }
    return NULL;
}

void cl_conn_gone(struct cl *c, struct cl_link *conn)
{
    struct q *it, *tmp;
    if (!c)
        return;
    q_foreach_safe(it, tmp, &conn->ops) cl__op_finish(q_data(it, struct cl_op, by_conn));
    cl_code_gone(c, conn);
}

static struct cl_op *cl_op_first(const struct cl *c)
{
    struct q *h = q_head(&c->ops);
    return h ? q_data(h, struct cl_op, link) : NULL;
}

void cl__fail_all(struct cl *c, const char *why)
{
    char msg[PROTO_MAX_TEXT];
    struct cl_op *op;
    while ((op = cl_op_first(c))) {
        if (op->kind == CL_CLAIM) {
            snprintf(msg, sizeof msg, "the server cannot check id ownership now (%s)", why);
            cl__op_fail(op, PC_INTERNAL, msg);
        } else if (op->kind == CL_CODE_OPEN) {
            snprintf(msg, sizeof msg, "the server cannot make a code now (%s)", why);
            cl__op_fail(op, PC_OVERLOADED, msg);
        } else {
            snprintf(msg, sizeof msg,
                     "%s is not registered on this server, and the cluster is "
                     "unavailable (%s)",
                     op->target, why);
            cl__op_fail(op, PC_PEER_NOT_FOUND, msg);
        }
    }
    cl__code_fail_all(c, why);
}

/* After each answer the scan starts over: answering may drop a connection, and with it
 * other operations of the list. */
void cl__expire_ops(struct cl *c, uint64_t now)
{
    char msg[PROTO_MAX_TEXT];
    struct cl_op *op = cl_op_first(c);
    while (op) {
        if (now < op->deadline_ms) {
            struct q *next = q_next(&c->ops, &op->link);
            op = next ? q_data(next, struct cl_op, link) : NULL;
            continue;
        }
        if (op->kind == CL_CLAIM) {
            cl__op_fail(op, PC_INTERNAL,
                        "the server cannot check id ownership now (Redis is slow)");
            op = cl_op_first(c);
            continue;
        }
        if (op->kind == CL_CODE_OPEN) {
            /* a SET answered after this is given back (cl_code.c) */
            cl__code_doubt(c, op->channel);
            cl__op_fail(op, PC_OVERLOADED, "the server cannot make a code now (Redis is slow)");
            op = cl_op_first(c);
            continue;
        }
        LOG_W("cluster: instance %s did not answer for %s within %d ms (session %s)",
              op->where[0] ? op->where : "?", op->target, CL_ANSWER_MS, op->session);
        snprintf(msg, sizeof msg,
                 "%s is registered on instance %.100s, which did not answer within "
                 "%d ms",
                 op->target, op->where[0] ? op->where : "?", CL_ANSWER_MS);
        cl__op_fail(op, PC_PEER_NOT_FOUND, msg);
        op = cl_op_first(c);
    }
}
