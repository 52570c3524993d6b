/* The cluster's directory (which instance holds a registered id) and the ownership of ids
 * (which key owns one, with the limits on new ids), both kept in Redis (PROTOCOL.md,
 * "Cluster"). */
#include "rendezvous/cluster.h"
#include "rendezvous/cluster_int.h"
#include "common/log.h"
#include "rendezvous/gate.h"
#include "rendezvous/limits.h"

#include <hiredis/hiredis.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CL_KEY_B64 (sodium_base64_ENCODED_LEN(PROTO_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL))

/* Lua, so that each read-modify-write is atomic in Redis (PROTOCOL.md, "Cluster"). */
/* The claim. KEYS: 1 owner:ID, 2 authorized, 3 keyids:KEY (the key's ids, scored by last
 * use), 4 ids (every owned id, scored by last use), 5 newids:SOURCE (new ids from that address
 * this hour), 6 newids:SITE (from its IPv6 /48). ARGV: 1 key, 2 id, 3 now (unix s),
 * 4 --id-expire in s (0: never), 5 --max-ids, 6 --ids-per-key, 7 --new-ids-per-hour (0: no
 * limit), 8 the /48's limit (0: not IPv6, KEYS[6] unused).
 * While the hash KEYS[2] (id -> key) exists only its pairs may register ("!" otherwise). An
 * owned id answers its owner; a new one is checked against the three limits ("#CODE", and
 * then nothing at all has been written) before it is bound. Every claim by the owner moves
 * the id's last use and its owner key's TTL, so an id unused for --id-expire lapses. */
static const char cl_lua_claim[] =
    "if redis.call('EXISTS', KEYS[2]) == 1 and "
    "redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[1] then return '!' end "
    "local now = tonumber(ARGV[3]) local exp = tonumber(ARGV[4]) "
    "local v = redis.call('GET', KEYS[1]) "
    "if v and v ~= ARGV[1] then return v end "
    "if not v then "
    "  local function live(k) if exp > 0 then return redis.call('ZCOUNT', k, now - exp, '+inf') "
    "    end return redis.call('ZCARD', k) end "
    "  local hour = tonumber(ARGV[7]) "
    "  if tonumber(ARGV[6]) > 0 and live(KEYS[3]) >= tonumber(ARGV[6]) then "
    "    return '#too-many-ids' end "
    "  if tonumber(ARGV[5]) > 0 and live(KEYS[4]) >= tonumber(ARGV[5]) then "
    "    return '#server-full' end "
    "  local site = tonumber(ARGV[8]) if hour == 0 then site = 0 end "
    "  if hour > 0 and tonumber(redis.call('GET', KEYS[5]) or '0') >= hour then "
    "    return '#rate-limited' end "
    "  if site > 0 and tonumber(redis.call('GET', KEYS[6]) or '0') >= site then "
    "    return '#rate-limited' end "
    "  if hour > 0 and redis.call('INCR', KEYS[5]) == 1 then "
    "    redis.call('EXPIRE', KEYS[5], 3600) end "
    "  if site > 0 and redis.call('INCR', KEYS[6]) == 1 then "
    "    redis.call('EXPIRE', KEYS[6], 3600) end "
    "  if exp > 0 then "
    "    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. (now - exp)) "
    "    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (now - exp)) end "
    "end "
    "if exp > 0 then redis.call('SET', KEYS[1], ARGV[1], 'EX', exp) "
    "else redis.call('SET', KEYS[1], ARGV[1]) end "
    "redis.call('ZADD', KEYS[4], now, ARGV[2]) redis.call('ZADD', KEYS[3], now, ARGV[2]) "
    "if exp > 0 then redis.call('EXPIRE', KEYS[3], exp) end "
    "return ARGV[1]";

/* An id registered here for long: its last use moves as a claim's would (same KEYS/ARGV). */
static const char cl_lua_touch[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "local exp = tonumber(ARGV[4]) "
    "redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2]) redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2]) "
    "if exp > 0 then redis.call('EXPIRE', KEYS[1], exp) redis.call('EXPIRE', KEYS[3], exp) end "
    "return 1";

/* Refresh directory entries (KEYS, up to CL_REFRESH_BATCH) unless another instance has taken
 * the id since; returns how many. One script for many entries: a sweep of every peer each
 * ttl/3 s was one EVAL per peer, 100,000 commands every 10 s at 100,000 peers, and the sweep of
 * one instance sat in Redis's queue ahead of the claims of new registrations until they timed
 * out (BENCHMARKS.md, "100,000 peers"). */
static const char cl_lua_refresh[] =
    "local n = 0 for i = 1, #KEYS do local v = redis.call('GET', KEYS[i]) "
    "if v == false or v == ARGV[1] then redis.call('SET', KEYS[i], ARGV[1], 'EX', ARGV[2]) "
    "n = n + 1 end end return n";

/* delete a directory entry only while it still names this instance */
static const char cl_lua_withdraw[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                      "return redis.call('DEL', KEYS[1]) end return 0";

/* ---- the directory ---- */

static void cl_set_entry(struct cl *c, redisAsyncContext *ac, const char *id)
{
    char key[CL_KEY_MAX];
    cl__key(c, "peer", id, key, sizeof key);
    redisAsyncCommand(ac, NULL, NULL, "SET %s %s EX %u", key, c->inst, c->ttl);
}

static void cl_announce_one(void *arg, const char *id, const unsigned char *key)
{
    struct cl *c = arg;
    (void)key;
    cl_set_entry(c, c->bulk, id);
}

/* A refresh of the directory: the ids registered here when it began, renewed CL_REFRESH_BATCH
 * per script and a share per tick. All at once, one instance's 16,666 peers were 130 scripts in
 * a burst every 10 s: Redis served them before the lookups and bus messages of introductions,
 * whose p99 across instances was 0.8 s at 2,000/s (0.12 s with no refresh at all; BENCHMARKS.md,
 * "100,000 peers"). An id that left since the sweep began is skipped, so that its withdrawn
 * entry is not set again. */
struct cl_sweep {
    char (*ids)[PROTO_MAX_ID + 1];
    size_t n, cap, next;
    unsigned ticks_left;
    bool oom;
    char keys[CL_REFRESH_BATCH][CL_KEY_MAX]; /* the batch being built */
};

/* EVAL script n KEYS... inst ttl: one command for n entries of the sweep's batch. */
static void cl_sweep_flush(struct cl *c, struct cl_sweep *sw, size_t n)
{
    const char *argv[CL_REFRESH_BATCH + 5];
    size_t argvlen[CL_REFRESH_BATCH + 5];
    char nkeys[24], ttl[16];
    int argc = 0;
    if (!n)
        return;
    snprintf(nkeys, sizeof nkeys, "%zu", n);
    snprintf(ttl, sizeof ttl, "%u", c->ttl);
    argv[argc++] = "EVAL";
    argv[argc++] = cl_lua_refresh;
    argv[argc++] = nkeys;
    for (size_t i = 0; i < n; i++)
        argv[argc++] = sw->keys[i];
    argv[argc++] = c->inst;
    argv[argc++] = ttl;
    for (int i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);
    redisAsyncCommandArgv(c->bulk, NULL, NULL, argc, argv, argvlen);
}

static void cl_sweep_add(void *arg, const char *id, const unsigned char *key_bytes)
{
    struct cl_sweep *sw = arg;
    (void)key_bytes;
    if (sw->oom)
        return;
    if (sw->n == sw->cap) {
        size_t cap = sw->cap ? sw->cap * 2 : 1024;
        void *ids = realloc(sw->ids, cap * sizeof *sw->ids);
        if (!ids) {
            sw->oom = true;
            return;
        }
        sw->ids = ids;
        sw->cap = cap;
    }
    snprintf(sw->ids[sw->n++], sizeof sw->ids[0], "%s", id);
}

void cl__sweep_end(struct cl *c)
{
    if (!c->sweep)
        return;
    free(c->sweep->ids);
    free(c->sweep);
    c->sweep = NULL;
}

void cl__sweep_step(struct cl *c)
{
    struct cl_sweep *sw = c->sweep;
    size_t batches, send;
    if (!sw)
        return;
    if (!c->bulk) {
        cl__sweep_end(c);
        return;
    }
    batches = (sw->n - sw->next + CL_REFRESH_BATCH - 1) / CL_REFRESH_BATCH;
    send = sw->ticks_left > 1 ? (batches + sw->ticks_left - 1) / sw->ticks_left : batches;
    while (send-- > 0 && sw->next < sw->n) {
        size_t k = 0;
        for (; sw->next < sw->n && k < CL_REFRESH_BATCH; sw->next++)
            if (c->user.find(c->user.data, sw->ids[sw->next]))
                cl__key(c, "peer", sw->ids[sw->next], sw->keys[k++], sizeof sw->keys[0]);
        cl_sweep_flush(c, sw, k);
    }
    if (sw->ticks_left > 0)
        sw->ticks_left--;
    if (sw->next >= sw->n)
        cl__sweep_end(c);
}

void cl__sweep_start(struct cl *c, unsigned ticks)
{
    struct cl_sweep *sw;
    if (c->sweep) { /* not done within its share of the interval: the rest goes now */
        c->sweep->ticks_left = 0;
        cl__sweep_step(c);
        cl__sweep_end(c);
    }
    if (!c->bulk)
        return;
    /* without memory the entries lapse, and come back with the next sweep that finds some (a
     * lookup meanwhile says "not found", as for an outage) */
    if (!(sw = calloc(1, sizeof *sw))) {
        LOG_W("cluster: no memory to refresh the directory entries");
        return;
    }
    c->user.each_peer(c->user.data, cl_sweep_add, sw);
    if (sw->oom) {
        LOG_W("cluster: no memory to refresh the directory entries");
        free(sw->ids);
        free(sw);
        return;
    }
    sw->ticks_left = ticks ? ticks : 1;
    c->sweep = sw;
    cl__sweep_step(c);
}

/* Returns the number of registered connections. */
size_t cl__announce_all(struct cl *c)
{
    if (!c->bulk)
        return 0;
    return c->user.each_peer(c->user.data, cl_announce_one, c);
}

void cl_announce(struct cl *c, const char *id)
{
    if (!c || c->state != CL_UP)
        return;
    /* the latest registration wins: a peer that moved here after its instance died is
     * reachable at once, without waiting for the old entry to expire */
    cl_set_entry(c, c->cmd, id);
}

void cl_withdraw(struct cl *c, const char *id)
{
    char key[CL_KEY_MAX];
    if (!c || c->state != CL_UP)
        return;
    cl__key(c, "peer", id, key, sizeof key);
    redisAsyncCommand(c->cmd, NULL, NULL, "EVAL %s 1 %s %s", cl_lua_withdraw, key, c->inst);
}

/* ---- ownership ---- */

/* A new id the claim script refused for one of the limits (said: the code after its "#");
 * Redis holds nothing of it. */
static void cl_claim_refused(struct cl_op *op, const char *said)
{
    const struct gate_cfg *g = op->cl->user.gate;
    enum proto_code code = proto_code_parse(said);
    char msg[PROTO_MAX_TEXT];
    LOG_N("cluster: %s refused as a new id: %s", op->target, said);
    if (code == PC_TOO_MANY_IDS)
        snprintf(msg, sizeof msg, "this key owns %u ids already, the most one key may own here",
                 g->ids_per_key);
    else if (code == PC_RATE_LIMITED)
        snprintf(msg, sizeof msg,
                 "at most %u new ids per hour from one address (%u from one IPv6 /48); try "
                 "again later",
                 g->new_ids_per_hour, g->new_ids_per_hour * LIM_SITE_FACTOR);
    else {
        code = PC_SERVER_FULL;
        snprintf(msg, sizeof msg, "the cluster knows too many ids to take a new one");
    }
    cl__op_fail(op, code, msg);
}

static int cl_send_claim(struct cl_op *op);

/* A claim sent by SHA that Redis no longer knows (its script cache flushed): sent again whole,
 * and the script loaded again for those that follow. */
static bool cl_claim_noscript(struct cl_op *op, const redisReply *reply)
{
    struct cl *c = op->cl;
    if (!op->by_sha || !reply || reply->type != REDIS_REPLY_ERROR ||
        strncmp(reply->str, "NOSCRIPT", 8) != 0 || c->state != CL_UP)
        return false;
    LOG_N("cluster: Redis forgot the claim script: loading it again");
    c->claim_sha[0] = '\0';
    cl__load_scripts(c);
    return cl_send_claim(op) == 0;
}

static void cl_on_claim(redisAsyncContext *ac, void *r, void *privdata)
{
    struct cl_op *op = privdata;
    redisReply *reply = r;
    char mine[CL_KEY_B64], msg[PROTO_MAX_TEXT];
    (void)ac;
    if (op->finished) {
        cl__op_unref(op);
        return;
    }
    if (cl_claim_noscript(op, reply)) {
        cl__op_unref(op); /* this answer's reference; the new command holds its own */
        return;
    }
    if (!cl__reply_ok(reply) || reply->type != REDIS_REPLY_STRING) {
        LOG_W("cluster: claiming %s: %s", op->target,
              reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "no answer from Redis");
        cl__op_fail(op, PC_INTERNAL, "the server cannot check id ownership now");
    } else if (strcmp(reply->str, "!") == 0) {
        snprintf(msg, sizeof msg, "%s with this key is not on the cluster's allowlist", op->target);
        cl__op_fail(op, PC_NOT_AUTHORIZED, msg);
    } else if (reply->str[0] == '#') {
        cl_claim_refused(op, reply->str + 1);
    } else {
        sodium_bin2base64(mine, sizeof mine, op->hello->u.hello.key, PROTO_KEY_BYTES,
                          sodium_base64_VARIANT_ORIGINAL);
        if (strcmp(reply->str, mine) == 0) {
            cl__op_fail(op, PC_UNKNOWN, NULL);
        } else {
            snprintf(msg, sizeof msg, "%s belongs to another key", op->target);
            cl__op_fail(op, PC_ID_OWNED, msg);
        }
    }
    cl__op_unref(op);
}

/* KEYS and ARGV of the claim and touch scripts for id/key registered from src. */
struct cl_claim_args {
    char owner[CL_KEY_MAX], allow[CL_KEY_MAX], keyids[CL_KEY_MAX], ids[CL_KEY_MAX],
        newids[CL_KEY_MAX], newsite[CL_KEY_MAX];
    char b64[CL_KEY_B64], now[24], exp[24], max_ids[24], per_key[24], per_hour[24], per_site[24];
};

static void cl_claim_args(const struct cl *c, const char *id, const unsigned char *key,
                          const struct sockaddr *src, struct cl_claim_args *a)
{
    const struct gate_cfg *g = c->user.gate;
    char from[64], site[64] = "";
    sodium_bin2base64(a->b64, sizeof a->b64, key, PROTO_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL);
    cl__key(c, "owner", id, a->owner, sizeof a->owner);
    snprintf(a->allow, sizeof a->allow, "%sauthorized", c->prefix);
    cl__key(c, "keyids", a->b64, a->keyids, sizeof a->keyids);
    snprintf(a->ids, sizeof a->ids, "%sids", c->prefix);
    if (src) {
        lim_source_text(src, from, sizeof from);
        lim_site_text(src, site, sizeof site);
    } else
        snprintf(from, sizeof from, "other");
    cl__key(c, "newids", from, a->newids, sizeof a->newids);
    /* one /48 holds 65536 /64s: counted as a whole too (IPv4 and others: key unused) */
    cl__key(c, "newids", site[0] ? site : "-", a->newsite, sizeof a->newsite);
    snprintf(a->per_site, sizeof a->per_site, "%u",
             site[0] ? g->new_ids_per_hour * LIM_SITE_FACTOR : 0);
    snprintf(a->now, sizeof a->now, "%lld", (long long)time(NULL));
    snprintf(a->exp, sizeof a->exp, "%llu", (unsigned long long)g->id_expire_days * 86400ULL);
    snprintf(a->max_ids, sizeof a->max_ids, "%zu", g->max_ids);
    snprintf(a->per_key, sizeof a->per_key, "%u", g->ids_per_key);
    snprintf(a->per_hour, sizeof a->per_hour, "%u", g->new_ids_per_hour);
}

/* EVAL script, or EVALSHA sha when sha is given (Redis has the script cached), on ac. */
static int cl_eval_claim(redisAsyncContext *ac, const char *script, const char *sha,
                         redisCallbackFn *cb, void *arg, const struct cl_claim_args *a,
                         const char *id)
{
    return redisAsyncCommand(ac, cb, arg, "%s %s 6 %s %s %s %s %s %s %s %s %s %s %s %s %s %s",
                             sha ? "EVALSHA" : "EVAL", sha ? sha : script, a->owner, a->allow,
                             a->keyids, a->ids, a->newids, a->newsite, a->b64, id, a->now, a->exp,
                             a->max_ids, a->per_key, a->per_hour, a->per_site);
}

static void cl_on_script_loaded(redisAsyncContext *ac, void *r, void *privdata)
{
    struct cl *c = ac->data;
    redisReply *reply = r;
    (void)privdata;
    if (reply && reply->type == REDIS_REPLY_STRING && reply->len == 40 && ac == c->cmd)
        snprintf(c->claim_sha, sizeof c->claim_sha, "%s", reply->str);
}

/* The claim script is 1.4 KB: sent whole with every registration, Redis hashed it each time
 * (SHA1 was 7 % of its CPU while 100,000 peers registered, BENCHMARKS.md "100,000 peers"). */
void cl__load_scripts(struct cl *c)
{
    if (c->cmd)
        redisAsyncCommand(c->cmd, cl_on_script_loaded, NULL, "SCRIPT LOAD %s", cl_lua_claim);
}

/* Sends op's claim, with a reference for the answer; -1: not sent (op untouched). */
static int cl_send_claim(struct cl_op *op)
{
    struct cl *c = op->cl;
    struct cl_claim_args a;
    const struct sockaddr *src =
        op->src.ss_family != AF_UNSPEC ? (const struct sockaddr *)&op->src : NULL;
    cl_claim_args(c, op->hello->u.hello.id, op->hello->u.hello.key, src, &a);
    op->by_sha = c->claim_sha[0] != '\0';
    op->refs++;
    if (cl_eval_claim(c->cmd, cl_lua_claim, op->by_sha ? c->claim_sha : NULL, cl_on_claim, op, &a,
                      op->hello->u.hello.id) != REDIS_OK) {
        op->refs--;
        return -1;
    }
    return 0;
}

int cl_claim(struct cl *c, struct cl_link *conn, const struct proto_msg *hello,
             const struct sockaddr *src)
{
    struct cl_op *op;
    if (c->state != CL_UP || !(op = cl__op_new(c, CL_CLAIM, conn)))
        return -1;
    if (!(op->hello = malloc(sizeof *op->hello))) {
        cl__op_finish(op);
        return -1;
    }
    *op->hello = *hello;
    snprintf(op->target, sizeof op->target, "%s", hello->u.hello.id);
    op->src.ss_family = AF_UNSPEC;
    if (src)
        memcpy(&op->src, src,
               src->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                          : sizeof(struct sockaddr_in));
    if (cl_send_claim(op) < 0) {
        free(op->hello);
        op->hello = NULL;
        cl__op_finish(op);
        return -1;
    }
    return 0;
}

/* Ids that stay registered here for days claim nothing: once an hour their last use moves in
 * Redis, so that --id-expire never takes the id of a peer that is online. */
static void cl_touch_one(void *arg, const char *id, const unsigned char *key)
{
    struct cl *c = arg;
    struct cl_claim_args a;
    cl_claim_args(c, id, key, NULL, &a);
    cl_eval_claim(c->bulk, cl_lua_touch, NULL, NULL, NULL, &a, id);
}

void cl__touch_all(struct cl *c)
{
    if (c->user.gate->id_expire_days && c->bulk)
        c->user.each_peer(c->user.data, cl_touch_one, c);
}
