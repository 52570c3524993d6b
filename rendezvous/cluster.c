#include "rendezvous/cluster.h"
#include "proto/auth.h"
#include "common/clock.h"
#include "common/endpoint.h"
#include "common/log.h"
#include "common/rand.h"
#include "rendezvous/gate.h"
#include "rendezvous/limits.h"
#include "rendezvous/plan.h"
#include "rendezvous/relay.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CL_TICK_MS 250
#define CL_STOP_MS 1000 /* at shutdown, how long queued commands get to leave */
#define CL_KEY_MAX (CL_MAX_PREFIX + PROTO_MAX_ID + 16)
#define CL_CHAN_MAX (CL_MAX_PREFIX + CL_MAX_INSTANCE + 16)
#define CL_TOUCH_MS 3600000 /* how often registered ids' last use moves in Redis */
#define CL_KEY_B64 (sodium_base64_ENCODED_LEN(PROTO_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL))
/* The bus (PROTOCOL.md, "Cluster"): "v1." HEX(MAC) "." JSON, MAC = HMAC-SHA-512-256 under a key
 * derived from --cluster-secret-file over the context, the channel it is published on and the
 * JSON bytes. The JSON carries its sender and "t", the sender's clock in microseconds, which
 * grows with every message it sends: a receiver takes from each sender only larger values. */
#define CL_BUS_CONTEXT "tcpunch-cluster-bus-v1"
#define CL_TAG_HEX (2 * crypto_auth_hmacsha512256_BYTES)
#define CL_MAX_DELAY_US 10000000 /* a punch held back longer than 10 s is not a timing */
#define CL_REJECT_BURST 10       /* rejection lines logged per CL_REJECT_MS, then a count */
#define CL_REJECT_MS 10000

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
/* refresh a directory entry unless another instance has taken the id since */
static const char cl_lua_refresh[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v == false or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) "
    "return 1 end return 0";
/* delete a directory entry only while it still names this instance */
static const char cl_lua_withdraw[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                      "return redis.call('DEL', KEYS[1]) end return 0";

enum cl_state { CL_DOWN, CL_CONNECTING, CL_UP, CL_STOPPED };
enum cl_kind { CL_INTRO, CL_CLAIM };

/* A request waiting for Redis or another instance. Every Redis callback that may still come
 * holds a reference, so the record outlives its answer or timeout until hiredis is done. */
struct cl_op {
    struct cl *cl;
    struct q link;    /* in cl->ops while not finished */
    struct q by_conn; /* in conn->ops while not finished and conn is there */
    enum cl_kind kind;
    bool finished;
    int refs;
    struct cl_link *conn; /* NULL once it has gone */
    char from[PROTO_MAX_ID + 1];     /* CL_INTRO: the initiator's id */
    uint64_t deadline_ms;
    char session[PROTO_SESSION_LEN + 1];
    char target[PROTO_MAX_ID + 1];
    char where[CL_MAX_INSTANCE + 1]; /* the target's instance, once known */
    struct proto_msg *hello;         /* CL_CLAIM: the hello to finish */
};

/* The last "t" taken from one instance: anything not larger is a replay. */
struct cl_sender {
    char inst[CL_MAX_INSTANCE + 1];
    int64_t last_t;
    uint64_t seen_ms;
};

struct cl {
    struct cl_user user;
    uv_loop_t *loop;
    unsigned ttl;
    char host[256];
    int port;
    char password[256];
    bool has_password;
    char prefix[CL_MAX_PREFIX + 1];
    char inst[CL_MAX_INSTANCE + 1];
    char chan[CL_CHAN_MAX];
    struct sockaddr_storage public_addr;
    char public_text[EP_STRLEN];
    redisAsyncContext *cmd, *sub;
    enum cl_state state;
    bool sub_ok, ping_ok, ever_up;
    unsigned backoff_s;
    uint64_t down_since_ms;
    uv_timer_t tick, retry, stop;
    int handles; /* initialised timers not yet closed */
    bool ping_out;
    uint64_t ping_sent_us, last_ping_ms, last_refresh_ms, last_touch_ms;
    uint32_t redis_rtt_us;
    struct q ops;
    size_t nops;
    unsigned char bus_key[crypto_auth_hmacsha512256_KEYBYTES];
    int64_t last_t_sent; /* the "t" of the last message sent */
    int64_t floor_t;     /* nothing older is taken: start time, or an evicted sender's last */
    struct cl_sender senders[CL_MAX_SENDERS];
    size_t nsenders;
    uint64_t reject_window_ms; /* rate limit of the rejection log lines */
    unsigned reject_logged, reject_quiet;
    unsigned long rejected; /* bus messages refused since start */
};

static void cl_lost(struct cl *c, const char *why);
static void cl_on_timer_closed(uv_handle_t *h);
static void cl_on_message(redisAsyncContext *ac, void *r, void *privdata);

/* ---- small helpers ---- */

static void cl_key(const struct cl *c, const char *kind, const char *id, char *out, size_t len)
{
    snprintf(out, len, "%s%s:%s", c->prefix, kind, id);
}

static void cl_chan_of(const struct cl *c, const char *inst, char *out, size_t len)
{
    snprintf(out, len, "%sinst:%s", c->prefix, inst);
}

static bool cl_valid_inst(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CL_MAX_INSTANCE)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("._-:[]", *s)))
            return false;
    return true;
}

/* HOST:PORT or [V6]:PORT; host names are fine (hiredis resolves them). */
static int cl_parse_hostport(const char *in, char *host, size_t hlen, int *port)
{
    const char *colon = strrchr(in, ':');
    const char *h = in;
    size_t n;
    char *end;
    long p;
    if (!colon || colon == in)
        return -1;
    n = (size_t)(colon - in);
    if (in[0] == '[' && n >= 2 && in[n - 1] == ']') {
        h = in + 1;
        n -= 2;
    }
    if (n == 0 || n >= hlen)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    p = strtol(colon + 1, &end, 10);
    if (*end || p < 1 || p > 65535 || colon[1] < '0' || colon[1] > '9')
        return -1;
    *port = (int)p;
    return 0;
}

static int cl_read_password(struct cl *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    size_t n;
    if (!f) {
        snprintf(err, errlen, "%s: cannot open the Redis password file: %s", path, strerror(errno));
        return -1;
    }
    if (!fgets(c->password, sizeof c->password, f))
        c->password[0] = '\0';
    fclose(f);
    n = strcspn(c->password, "\r\n");
    c->password[n] = '\0';
    if (n == 0) {
        snprintf(err, errlen, "%s: the Redis password file is empty", path);
        return -1;
    }
    c->has_password = true;
    return 0;
}

/* The bus key: keyed BLAKE2b of the file's SHA-256 (as --secret-file hashes its file), so that
 * a file also used as --secret-file gives an unrelated key. */
static int cl_read_secret(struct cl *c, const char *path, char *err, size_t errlen)
{
    static const unsigned char ctx[] = "tcpunch cluster bus key v1";
    unsigned char h[AUTH_KEY_BYTES];
    char why[200];
    if (!path) {
        snprintf(err, errlen,
                 "--redis needs --cluster-secret-file FILE (the key of the messages "
                 "between instances)");
        return -1;
    }
    if (auth_secret_load(path, h, why, sizeof why) < 0) {
        snprintf(err, errlen, "--cluster-secret-file: %s", why);
        return -1;
    }
    crypto_generichash(c->bus_key, sizeof c->bus_key, h, sizeof h, ctx, sizeof ctx - 1);
    sodium_memzero(h, sizeof h);
    return 0;
}

static bool cl_reply_ok(const redisReply *r)
{
    return r && r->type != REDIS_REPLY_ERROR;
}

static int64_t cl_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- the bus: every message is checked as strictly as a line from the wire ---- */

static void cl_reject(struct cl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Logs why a bus message was refused: a burst of lines, then one count per period, so that
 * a flood of forgeries cannot flood the log. */
static void cl_reject(struct cl *c, const char *fmt, ...)
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

/* Whether every member of o is one of the NULL-terminated names. */
static bool cl_only(json_t *o, const char *const *names)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        const char *const *n = names;
        while (*n && strcmp(*n, k) != 0)
            n++;
        if (!*n)
            return false;
    }
    return true;
}

/* A string member of at most max bytes, without NUL inside; NULL otherwise. */
static const char *cl_str(json_t *o, const char *k, size_t max)
{
    json_t *v = json_object_get(o, k);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    return s && n <= max && strlen(s) == n ? s : NULL;
}

static bool cl_int(json_t *o, const char *k, json_int_t lo, json_int_t hi, json_int_t *out)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return false;
    *out = json_integer_value(v);
    return true;
}

/* Printable ASCII only: quoted to peers and into logs. */
static bool cl_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* A punch line embedded in a bus message: exactly one line, decoded by the protocol's own
 * rules, for session, playing role, naming peer (NULL: any). */
static bool cl_punch_of(const char *line, enum proto_role role, const char *session,
                        const char *peer, struct proto_msg *m, char *why, size_t whylen)
{
    size_t n = strlen(line);
    if (n == 0 || n + 1 >= PROTO_MAX_LINE || strpbrk(line, "\r\n")) {
        snprintf(why, whylen, "the punch is not one line of the protocol");
        return false;
    }
    if (proto_decode(line, n, PROTO_TO_PEER, m, why, whylen) != PROTO_OK)
        return false;
    if (m->type != PROTO_PUNCH || m->u.punch.role != role ||
        strcmp(m->u.punch.session, session) != 0 || (peer && strcmp(m->u.punch.peer, peer) != 0)) {
        snprintf(why, whylen, "not the %s punch of session %s%s%s",
                 role == PROTO_INITIATOR ? "initiator's" : "responder's", session,
                 peer ? " with " : "", peer ? peer : "");
        return false;
    }
    return true;
}

/* Takes t from sender unless it is stale, from the future or not larger than the last one
 * taken from it (a replay). */
static bool cl_fresh(struct cl *c, const char *sender, int64_t t)
{
    int64_t now = cl_wall_us(), win = (int64_t)CL_BUS_FRESH_S * 1000000;
    struct cl_sender *e = NULL, *oldest = NULL;
    if (t < now - win || t > now + win) {
        cl_reject(c,
                  "from %s: stamped %+" PRId64 " ms from now, outside +-%d s (clock skew, "
                  "or a replay)",
                  sender, (t - now) / 1000, CL_BUS_FRESH_S);
        return false;
    }
    for (size_t i = 0; i < c->nsenders; i++) {
        if (strcmp(c->senders[i].inst, sender) == 0)
            e = &c->senders[i];
        if (!oldest || c->senders[i].seen_ms < oldest->seen_ms)
            oldest = &c->senders[i];
    }
    if (!e && t <= c->floor_t) {
        cl_reject(c, "from %s: older than this instance's start (a replay)", sender);
        return false;
    }
    if (e && t <= e->last_t) {
        cl_reject(c, "from %s: sequence %" PRId64 " not after %" PRId64 " (a replay)", sender, t,
                  e->last_t);
        return false;
    }
    if (!e && c->nsenders < CL_MAX_SENDERS)
        e = &c->senders[c->nsenders++];
    else if (!e) {
        /* more instances than remembered: the forgotten one's messages stay refused */
        if (oldest->last_t > c->floor_t)
            c->floor_t = oldest->last_t;
        e = oldest;
    }
    snprintf(e->inst, sizeof e->inst, "%s", sender);
    e->last_t = t;
    e->seen_ms = uv_now(c->loop);
    return true;
}

/* ---- operations in flight ---- */

void cl_link_init(struct cl_link *l)
{
    q_init(&l->ops);
}

static struct cl_op *cl_op_new(struct cl *c, enum cl_kind kind, struct cl_link *conn)
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
    q_insert_head(&conn->ops, &op->by_conn);
    c->nops++;
    return op;
}

static void cl_op_unref(struct cl_op *op)
{
    if (--op->refs > 0)
        return;
    free(op->hello);
    free(op);
}

/* Takes op out of the list: nothing will answer its connection any more. */
static void cl_op_finish(struct cl_op *op)
{
    struct cl *c = op->cl;
    if (op->finished)
        return;
    op->finished = true;
    q_remove(&op->link);
    q_remove(&op->by_conn);
    c->nops--;
    op->conn = NULL;
    cl_op_unref(op);
}

/* Ends op with an answer to its connection: an error for an introduction, the verdict for a
 * claim. */
static void cl_op_fail(struct cl_op *op, const char *code, const char *msg)
{
    struct cl *c = op->cl;
    struct cl_link *conn = op->conn;
    struct proto_msg *hello = op->hello;
    if (op->finished)
        return;
    op->hello = NULL;
    cl_op_finish(op);
    if (conn && hello)
        c->user.claimed(c->user.data, conn, hello, code, msg);
    else if (conn)
        c->user.refuse(c->user.data, conn, code, msg);
    free(hello);
}

static struct cl_op *cl_op_find(struct cl *c, const char *session)
{
    struct q *it;
    q_foreach(it, &c->ops) {
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
    q_foreach_safe(it, tmp, &conn->ops)
        cl_op_finish(q_data(it, struct cl_op, by_conn));
}

static struct cl_op *cl_op_first(const struct cl *c)
{
    struct q *h = q_head(&c->ops);
    return h ? q_data(h, struct cl_op, link) : NULL;
}

static void cl_fail_all(struct cl *c, const char *why)
{
    char msg[PROTO_MAX_TEXT];
    struct cl_op *op;
    while ((op = cl_op_first(c))) {
        if (op->kind == CL_CLAIM) {
            snprintf(msg, sizeof msg, "the server cannot check id ownership now (%s)", why);
            cl_op_fail(op, "internal", msg);
        } else {
            snprintf(msg, sizeof msg,
                     "%s is not registered on this server, and the cluster is "
                     "unavailable (%s)",
                     op->target, why);
            cl_op_fail(op, "peer-not-found", msg);
        }
    }
}

/* ---- the directory ---- */

static void cl_set_entry(struct cl *c, const char *id)
{
    char key[CL_KEY_MAX];
    cl_key(c, "peer", id, key, sizeof key);
    redisAsyncCommand(c->cmd, NULL, NULL, "SET %s %s EX %u", key, c->inst, c->ttl);
}

static void cl_announce_one(void *arg, const char *id, const unsigned char *key)
{
    (void)key;
    cl_set_entry(arg, id);
}

static void cl_refresh_one(void *arg, const char *id, const unsigned char *key_bytes)
{
    struct cl *c = arg;
    char key[CL_KEY_MAX], ttl[16];
    (void)key_bytes;
    snprintf(ttl, sizeof ttl, "%u", c->ttl);
    cl_key(c, "peer", id, key, sizeof key);
    redisAsyncCommand(c->cmd, NULL, NULL, "EVAL %s 1 %s %s %s", cl_lua_refresh, key, c->inst,
                      ttl);
}

/* Returns the number of registered connections. */
static size_t cl_announce_all(struct cl *c, bool refresh)
{
    return c->user.each_peer(c->user.data, refresh ? cl_refresh_one : cl_announce_one, c);
}

void cl_announce(struct cl *c, const char *id)
{
    if (!c || c->state != CL_UP)
        return;
    /* the latest registration wins: a peer that moved here after its instance died is
     * reachable at once, without waiting for the old entry to expire */
    cl_set_entry(c, id);
}

void cl_withdraw(struct cl *c, const char *id)
{
    char key[CL_KEY_MAX];
    if (!c || c->state != CL_UP)
        return;
    cl_key(c, "peer", id, key, sizeof key);
    redisAsyncCommand(c->cmd, NULL, NULL, "EVAL %s 1 %s %s", cl_lua_withdraw, key, c->inst);
}

/* ---- ownership ---- */

/* A new id the claim script refused for one of the limits; Redis holds nothing of it. */
static void cl_claim_refused(struct cl_op *op, const char *code)
{
    const struct gate_cfg *g = op->cl->user.gate;
    char msg[PROTO_MAX_TEXT];
    LOG_N("cluster: %s refused as a new id: %s", op->target, code);
    if (strcmp(code, "too-many-ids") == 0)
        snprintf(msg, sizeof msg, "this key owns %u ids already, the most one key may own here",
                 g->ids_per_key);
    else if (strcmp(code, "rate-limited") == 0)
        snprintf(msg, sizeof msg,
                 "at most %u new ids per hour from one address (%u from one IPv6 /48); try "
                 "again later",
                 g->new_ids_per_hour, g->new_ids_per_hour * LIM_SITE_FACTOR);
    else {
        code = "server-full";
        snprintf(msg, sizeof msg, "the cluster knows too many ids to take a new one");
    }
    cl_op_fail(op, code, msg);
}

static void cl_on_claim(redisAsyncContext *ac, void *r, void *privdata)
{
    struct cl_op *op = privdata;
    redisReply *reply = r;
    char mine[CL_KEY_B64], msg[PROTO_MAX_TEXT];
    (void)ac;
    if (op->finished) {
        cl_op_unref(op);
        return;
    }
    if (!cl_reply_ok(reply) || reply->type != REDIS_REPLY_STRING) {
        LOG_W("cluster: claiming %s: %s", op->target,
              reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "no answer from Redis");
        cl_op_fail(op, "internal", "the server cannot check id ownership now");
    } else if (strcmp(reply->str, "!") == 0) {
        snprintf(msg, sizeof msg, "%s with this key is not on the cluster's allowlist", op->target);
        cl_op_fail(op, "not-authorized", msg);
    } else if (reply->str[0] == '#') {
        cl_claim_refused(op, reply->str + 1);
    } else {
        sodium_bin2base64(mine, sizeof mine, op->hello->u.hello.key, PROTO_KEY_BYTES,
                          sodium_base64_VARIANT_ORIGINAL);
        if (strcmp(reply->str, mine) == 0) {
            cl_op_fail(op, NULL, NULL);
        } else {
            snprintf(msg, sizeof msg, "%s belongs to another key", op->target);
            cl_op_fail(op, "id-owned", msg);
        }
    }
    cl_op_unref(op);
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
    cl_key(c, "owner", id, a->owner, sizeof a->owner);
    snprintf(a->allow, sizeof a->allow, "%sauthorized", c->prefix);
    cl_key(c, "keyids", a->b64, a->keyids, sizeof a->keyids);
    snprintf(a->ids, sizeof a->ids, "%sids", c->prefix);
    if (src) {
        lim_source_text(src, from, sizeof from);
        lim_site_text(src, site, sizeof site);
    } else
        snprintf(from, sizeof from, "other");
    cl_key(c, "newids", from, a->newids, sizeof a->newids);
    /* one /48 holds 65536 /64s: counted as a whole too (IPv4 and others: key unused) */
    cl_key(c, "newids", site[0] ? site : "-", a->newsite, sizeof a->newsite);
    snprintf(a->per_site, sizeof a->per_site, "%u",
             site[0] ? g->new_ids_per_hour * LIM_SITE_FACTOR : 0);
    snprintf(a->now, sizeof a->now, "%lld", (long long)time(NULL));
    snprintf(a->exp, sizeof a->exp, "%llu", (unsigned long long)g->id_expire_days * 86400ULL);
    snprintf(a->max_ids, sizeof a->max_ids, "%zu", g->max_ids);
    snprintf(a->per_key, sizeof a->per_key, "%u", g->ids_per_key);
    snprintf(a->per_hour, sizeof a->per_hour, "%u", g->new_ids_per_hour);
}

static int cl_eval_claim(struct cl *c, const char *script, redisCallbackFn *cb, void *arg,
                         const struct cl_claim_args *a, const char *id)
{
    return redisAsyncCommand(c->cmd, cb, arg,
                             "EVAL %s 6 %s %s %s %s %s %s %s %s %s %s %s %s %s %s", script,
                             a->owner, a->allow, a->keyids, a->ids, a->newids, a->newsite,
                             a->b64, id, a->now, a->exp, a->max_ids, a->per_key, a->per_hour,
                             a->per_site);
}

int cl_claim(struct cl *c, struct cl_link *conn, const struct proto_msg *hello,
             const struct sockaddr *src)
{
    struct cl_claim_args a;
    struct cl_op *op;
    if (c->state != CL_UP || !(op = cl_op_new(c, CL_CLAIM, conn)))
        return -1;
    if (!(op->hello = malloc(sizeof *op->hello))) {
        cl_op_finish(op);
        return -1;
    }
    *op->hello = *hello;
    snprintf(op->target, sizeof op->target, "%s", hello->u.hello.id);
    cl_claim_args(c, hello->u.hello.id, hello->u.hello.key, src, &a);
    op->refs++;
    if (cl_eval_claim(c, cl_lua_claim, cl_on_claim, op, &a, hello->u.hello.id) != REDIS_OK) {
        op->refs--;
        free(op->hello);
        op->hello = NULL;
        cl_op_finish(op);
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
    cl_eval_claim(c, cl_lua_touch, NULL, NULL, &a, id);
}

static void cl_touch_all(struct cl *c)
{
    if (c->user.gate->id_expire_days)
        c->user.each_peer(c->user.data, cl_touch_one, c);
}

/* ---- introductions: the initiator's instance ---- */

static void cl_mac(const struct cl *c, const char *chan, const char *json, size_t len,
                   unsigned char tag[crypto_auth_hmacsha512256_BYTES])
{
    crypto_auth_hmacsha512256_state st;
    crypto_auth_hmacsha512256_init(&st, c->bus_key, sizeof c->bus_key);
    crypto_auth_hmacsha512256_update(&st, (const unsigned char *)CL_BUS_CONTEXT,
                                     sizeof CL_BUS_CONTEXT); /* with its NUL */
    crypto_auth_hmacsha512256_update(&st, (const unsigned char *)chan, strlen(chan) + 1);
    crypto_auth_hmacsha512256_update(&st, (const unsigned char *)json, len);
    crypto_auth_hmacsha512256_final(&st, tag);
}

/* Stamps msg with this instance and a fresh "t", MACs it for inst's channel and publishes. */
static int cl_publish(struct cl *c, const char *inst, json_t *msg, redisCallbackFn *cb, void *arg)
{
    char chan[CL_CHAN_MAX], *text = NULL, *payload = NULL;
    unsigned char tag[crypto_auth_hmacsha512256_BYTES];
    int64_t t = cl_wall_us();
    size_t n;
    int rc = -1;
    if (c->state != CL_UP)
        goto cleanup;
    c->last_t_sent = t > c->last_t_sent ? t : c->last_t_sent + 1;
    if (json_object_set_new(msg, "sender", json_string(c->inst)) < 0 ||
        json_object_set_new(msg, "t", json_integer((json_int_t)c->last_t_sent)) < 0 ||
        !(text = json_dumps(msg, JSON_COMPACT)))
        goto cleanup;
    n = strlen(text);
    if (3 + CL_TAG_HEX + 1 + n > CL_BUS_MAX || !(payload = malloc(3 + CL_TAG_HEX + 1 + n + 1)))
        goto cleanup;
    cl_chan_of(c, inst, chan, sizeof chan);
    cl_mac(c, chan, text, n, tag);
    memcpy(payload, "v1.", 3);
    sodium_bin2hex(payload + 3, CL_TAG_HEX + 1, tag, sizeof tag);
    payload[3 + CL_TAG_HEX] = '.';
    memcpy(payload + 3 + CL_TAG_HEX + 1, text, n + 1);
    rc = redisAsyncCommand(c->cmd, cb, arg, "PUBLISH %s %b", chan, payload,
                           3 + CL_TAG_HEX + 1 + n) == REDIS_OK
             ? 0
             : -1;
cleanup:
    json_decref(msg);
    free(text);
    free(payload);
    return rc;
}

static void cl_on_published(redisAsyncContext *ac, void *r, void *privdata)
{
    struct cl_op *op = privdata;
    redisReply *reply = r;
    char msg[PROTO_MAX_TEXT];
    (void)ac;
    if (!op->finished && (!cl_reply_ok(reply) || reply->type != REDIS_REPLY_INTEGER)) {
        snprintf(msg, sizeof msg, "%s cannot be reached now: the cluster store failed", op->target);
        cl_op_fail(op, "peer-not-found", msg);
    } else if (!op->finished && reply->integer == 0) {
        /* crashed, its directory entries not expired yet */
        LOG_I("cluster: %s is on instance %s, which is not running", op->target, op->where);
        snprintf(msg, sizeof msg, "%s was registered on instance %s, which is not running",
                 op->target, op->where);
        cl_op_fail(op, "peer-not-found", msg);
    }
    cl_op_unref(op);
}

/* The initiator as the target's instance will describe it to the target: a punch line (with
 * an empty plan), so that the receiving side decodes it with the protocol's own checks. */
static json_t *cl_introduce_msg(struct cl *c, struct cl_op *op, struct cl_link *from)
{
    struct plan_peer me;
    struct plan none;
    struct proto_msg m;
    char line[PROTO_MAX_LINE];
    int n;
    memset(&none, 0, sizeof none);
    none.direct = true;
    c->user.facts(c->user.data, from, &me);
    /* unfiltered: the target's instance knows both observed addresses and filters */
    plan_describe(&me, NULL, PROTO_RESPONDER, op->session, &none, NULL, &m);
    n = proto_encode(&m, line, sizeof line);
    if (n <= 0)
        return NULL;
    line[n - 1] = '\0'; /* no newline inside JSON */
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "type", "introduce", "session",
                     op->session, "from", c->inst, "target", op->target, "peer", line, "path",
                     proto_path_name(me.path), "rtt_us", (json_int_t)me.rtt_us,
                     "bus_rtt_us", (json_int_t)c->redis_rtt_us);
}

static void cl_on_located(redisAsyncContext *ac, void *r, void *privdata)
{
    struct cl_op *op = privdata;
    struct cl *c = op->cl;
    redisReply *reply = r;
    char msg[PROTO_MAX_TEXT];
    json_t *intro;
    (void)ac;
    if (op->finished) {
        cl_op_unref(op);
        return;
    }
    if (!cl_reply_ok(reply)) {
        snprintf(msg, sizeof msg, "%s cannot be looked up now: the cluster store failed",
                 op->target);
        cl_op_fail(op, "peer-not-found", msg);
    } else if (reply->type != REDIS_REPLY_STRING || strcmp(reply->str, c->inst) == 0 ||
               !cl_valid_inst(reply->str)) {
        /* our own name: a stale entry of a peer that has just left */
        snprintf(msg, sizeof msg, "%s is not registered on any server of this cluster", op->target);
        cl_op_fail(op, "peer-not-found", msg);
    } else {
        snprintf(op->where, sizeof op->where, "%s", reply->str);
        intro = op->conn ? cl_introduce_msg(c, op, op->conn) : NULL;
        op->refs++;
        if (!intro || cl_publish(c, op->where, intro, cl_on_published, op) < 0) {
            op->refs--;
            cl_op_fail(op, "internal", "the server cannot reach the cluster now");
        } else {
            LOG_I("cluster: introduce %s to %s on instance %s (session %s)", op->from,
                  op->target, op->where, op->session);
            op->deadline_ms = uv_now(c->loop) + CL_ANSWER_MS;
        }
    }
    cl_op_unref(op);
}

void cl_connect(struct cl *c, struct cl_link *from, const char *from_id, const char *target)
{
    char key[CL_KEY_MAX], msg[PROTO_MAX_TEXT];
    struct cl_op *op;
    if (c->state != CL_UP) {
        snprintf(msg, sizeof msg,
                 "%s is not registered on this server, and the cluster is "
                 "unavailable (Redis at %.64s:%d is down)",
                 target, c->host, c->port);
        c->user.refuse(c->user.data, from, "peer-not-found", msg);
        return;
    }
    if (!(op = cl_op_new(c, CL_INTRO, from))) {
        c->user.refuse(c->user.data, from, "rate-limited",
                       "the server has too many introductions in flight");
        return;
    }
    snprintf(op->target, sizeof op->target, "%s", target);
    snprintf(op->from, sizeof op->from, "%s", from_id);
    if (rnd_hex(op->session, PROTO_SESSION_LEN / 2) < 0) {
        cl_op_fail(op, "internal", "the server cannot create a session now");
        return;
    }
    cl_key(c, "peer", target, key, sizeof key);
    op->refs++;
    if (redisAsyncCommand(c->cmd, cl_on_located, op, "GET %s", key) != REDIS_OK) {
        op->refs--;
        cl_op_fail(op, "internal", "the server cannot reach the cluster now");
    }
}

/* The target's instance answered: forward the punch it made for our initiator. Only the
 * instance the introduction went to may answer, and only with that session's punch for the
 * initiator with the target, or with one of the errors an instance sends. */
static void cl_on_answer(struct cl *c, json_t *msg, const char *sender)
{
    static const char *const names[] = {"type",    "sender", "t",        "session", "code",
                                        "message", "line",   "delay_us", NULL};
    const char *session = cl_str(msg, "session", PROTO_SESSION_LEN);
    const char *code = cl_str(msg, "code", PROTO_MAX_CODE);
    const char *text = cl_str(msg, "message", PROTO_MAX_TEXT);
    const char *line = cl_str(msg, "line", PROTO_MAX_LINE);
    json_int_t delay = 0;
    struct cl_op *op;
    struct cl_link *conn;
    struct proto_msg m;
    char buf[PROTO_MAX_LINE], target[PROTO_MAX_ID + 1], where[CL_MAX_INSTANCE + 1];
    char from[PROTO_MAX_ID + 1];
    char sess[PROTO_SESSION_LEN + 1], why[PROTO_MAX_TEXT];
    int n;

    if (!cl_only(msg, names) || !session || !proto_valid_session(session) ||
        (code ? !text || line || json_object_get(msg, "delay_us")
              : !line || json_object_get(msg, "message") ||
                    !cl_int(msg, "delay_us", 0, CL_MAX_DELAY_US, &delay))) {
        cl_reject(c, "from %s: a malformed answer", sender);
        return;
    }
    op = cl_op_find(c, session);
    if (!op || !op->conn) {
        LOG_D("cluster: answer for unknown or expired session %s", session);
        return;
    }
    if (strcmp(op->where, sender) != 0) {
        cl_reject(c, "from %s: an answer for session %s, which went to instance %s", sender,
                  session, op->where[0] ? op->where : "(none yet)");
        return;
    }
    if (code) {
        if ((strcmp(code, "peer-not-found") != 0 && strcmp(code, "no-path") != 0 &&
             strcmp(code, "internal") != 0) ||
            !cl_printable(text)) {
            cl_reject(c, "from %s: an answer with error code %.32s, which instances do not send",
                      sender, cl_printable(code) ? code : "?");
            return;
        }
        cl_op_fail(op, code, text);
        return;
    }
    if (!cl_punch_of(line, PROTO_INITIATOR, session, op->target, &m, why, sizeof why)) {
        cl_reject(c, "from %s: answer for session %s: %s", sender, session, why);
        return;
    }
    /* re-encoded from the decoded message: what reaches the peer is one canonical line */
    n = proto_encode(&m, buf, sizeof buf);
    if (n <= 0) {
        cl_op_fail(op, "internal", "another server of the cluster sent a broken answer");
        return;
    }
    conn = op->conn;
    memcpy(sess, op->session, sizeof sess);
    memcpy(target, op->target, sizeof target);
    memcpy(where, op->where, sizeof where);
    memcpy(from, op->from, sizeof from);
    /* finished before sending: a send that drops conn must find no operation of it */
    cl_op_finish(op);
    LOG_N("punch sent: session %s, %s (initiator) <-> %s (responder, on instance %s), %lld us "
          "after the answer",
          sess, from, target, where, (long long)delay);
    /* another instance's word: held back no longer than this server holds its own punches */
    c->user.punch(c->user.data, conn, sess, buf, (size_t)n, plan_cap_us((uint64_t)delay));
}

/* ---- introductions: the target's instance ---- */

static void cl_answer_error(struct cl *c, const char *to, const char *session, const char *code,
                            const char *message)
{
    json_t *m = json_pack("{s:s, s:s, s:s, s:s}", "type", "answer", "session", session, "code",
                          code, "message", message);
    if (m)
        cl_publish(c, to, m, NULL, NULL);
}

/* The initiator from an introduce, checked as its own instance checked its hello: a punch line
 * for this session, candidates that may be offered. Returns 0, or -1 (logged) when the
 * message is malformed. */
static int cl_remote_peer(struct cl *c, json_t *msg, const char *sender, const char *session,
                          struct plan_peer *p, uint32_t *bus)
{
    const char *line = cl_str(msg, "peer", PROTO_MAX_LINE);
    const char *path = cl_str(msg, "path", 16);
    struct proto_msg m;
    char why[PROTO_MAX_TEXT], ep[EP_STRLEN];
    const char *bad;
    json_int_t r, b;
    bool loopback_ok;
    if (!line || !path || !cl_int(msg, "rtt_us", 0, CL_MAX_DELAY_US, &r) ||
        !cl_int(msg, "bus_rtt_us", 0, CL_MAX_DELAY_US, &b)) {
        cl_reject(c, "from %s: a malformed introduce", sender);
        return -1;
    }
    if (!cl_punch_of(line, PROTO_RESPONDER, session, NULL, &m, why, sizeof why)) {
        cl_reject(c, "from %s: introduce for session %s: %s", sender, session, why);
        return -1;
    }
    loopback_ok = ep_is_loopback((const struct sockaddr *)&m.u.punch.observed);
    /* the observed address too: the relay and a NAT-mapping peer dial it */
    if ((bad = c->user.bad_candidate((const struct sockaddr *)&m.u.punch.observed, true)))
        ep_format((const struct sockaddr *)&m.u.punch.observed, ep, sizeof ep);
    for (int i = 0; !bad && i < m.u.punch.endpoints.n; i++)
        if ((bad = c->user.bad_candidate((const struct sockaddr *)&m.u.punch.endpoints.ep[i],
                                     loopback_ok)))
            ep_format((const struct sockaddr *)&m.u.punch.endpoints.ep[i], ep, sizeof ep);
    if (bad) {
        cl_reject(c, "from %s: introduce for session %s: endpoint %s is %s", sender, session, ep,
                  bad);
        return -1;
    }
    memset(p, 0, sizeof *p);
    memcpy(p->id, m.u.punch.peer, sizeof p->id);
    p->observed = m.u.punch.observed;
    p->eps = m.u.punch.endpoints;
    p->has_obs6 = m.u.punch.has_observed6;
    p->obs6 = m.u.punch.observed6;
    p->nat = m.u.punch.nat;
    p->has_key = m.u.punch.has_key;
    memcpy(p->key, m.u.punch.key, sizeof p->key);
    if (strcmp(path, "relay") == 0)
        p->path = PROTO_PATH_RELAY;
    else if (strcmp(path, "direct") == 0)
        p->path = PROTO_PATH_DIRECT;
    else if (strcmp(path, "any") == 0)
        p->path = PROTO_PATH_ANY;
    else {
        cl_reject(c, "from %s: introduce with an unknown path", sender);
        return -1;
    }
    p->rtt_us = (uint32_t)r;
    *bus = (uint32_t)b;
    return 0;
}

/* The relay for a session whose initiator is on another instance: the quotas count the remote
 * initiator by its id, key and the address its own instance saw; they are this instance's
 * counts only (the relay runs here). Returns 0, or -1 when the relay was the only path and
 * refuses (msg: the no-path message). */
static int cl_offer(struct cl *c, const char *session, const struct plan_peer *pi,
                    const struct plan_peer *pt, struct plan *pl, char *msg, size_t len)
{
    struct rly_party qi = {.id = pi->id, .key = pi->has_key ? pi->key : NULL,
                           .src = (const struct sockaddr *)&pi->observed};
    struct rly_party qt = {.id = pt->id, .key = pt->key,
                           .src = (const struct sockaddr *)&pt->observed};
    char why[PROTO_MAX_TEXT];
    if (!pl->relay || rly_offer(c->user.rly, session, &qi, &qt, pl->token[0], pl->token[1], why,
                                sizeof why) == 0)
        return 0;
    LOG_N("cluster: session %s: %s -> %s: no relay%s: %s", session, pi->id, pt->id,
          pl->direct ? ", direct only" : "", why);
    return plan_no_relay(pl, why, msg, len);
}

static void cl_on_introduce(struct cl *c, json_t *msg, const char *sender)
{
    static const char *const names[] = {"type", "sender", "t",      "session",    "from", "target",
                                        "peer", "path",   "rtt_us", "bus_rtt_us", NULL};
    const char *session = cl_str(msg, "session", PROTO_SESSION_LEN);
    const char *from = cl_str(msg, "from", CL_MAX_INSTANCE);
    const char *target = cl_str(msg, "target", PROTO_MAX_ID);
    struct cl_link *to;
    struct plan_peer pi, pt;
    struct plan pl;
    struct plan_punches pp;
    struct plan_route route = {.across = true, .relay_addr = &c->public_addr};
    char li[PROTO_MAX_LINE], lt[PROTO_MAX_LINE], text[PROTO_MAX_TEXT];
    uint32_t bus_a;
    int ni, nt;
    json_t *ans;

    /* answers go to the sender: "from" is the same name, kept for older readers of logs */
    if (!cl_only(msg, names) || !session || !proto_valid_session(session) || !from ||
        strcmp(from, sender) != 0 || !target || !proto_valid_id(target)) {
        cl_reject(c, "from %s: a malformed introduce", sender);
        return;
    }
    if (cl_remote_peer(c, msg, sender, session, &pi, &bus_a) < 0)
        return;
    to = c->user.find(c->user.data, target);
    if (!to) {
        snprintf(text, sizeof text, "%s is not registered on any server of this cluster", target);
        cl_answer_error(c, from, session, "peer-not-found", text);
        return;
    }
    c->user.facts(c->user.data, to, &pt);
    if (plan_path(c->user.relays, &pi, &pt, &pl, text, sizeof text) < 0 ||
        cl_offer(c, session, &pi, &pt, &pl, text, sizeof text) < 0) {
        cl_answer_error(c, from, session, "no-path", text);
        return;
    }
    /* the initiator joins the relay here, through the address peers know this instance by */
    route.bus_rtt_us = bus_a + c->redis_rtt_us;
    plan_punches(&pl, &pi, &pt, session, &route, &pp);
    ni = proto_encode(&pp.s[PLAN_I].m, li, sizeof li);
    nt = proto_encode(&pp.s[PLAN_T].m, lt, sizeof lt);
    if (ni <= 0 || nt <= 0) {
        cl_answer_error(c, from, session, "internal", "the server cannot encode the punch");
        return;
    }
    li[ni - 1] = '\0';
    ans = json_pack("{s:s, s:s, s:s, s:I}", "type", "answer", "session", session, "line", li,
                    "delay_us", (json_int_t)pp.s[PLAN_I].delay_us);
    if (!ans || cl_publish(c, from, ans, NULL, NULL) < 0) {
        LOG_W("cluster: cannot answer instance %s for session %s", from, session);
        return;
    }
    c->user.punch(c->user.data, to, session, lt, (size_t)nt, pp.s[PLAN_T].delay_us);
    LOG_N("punch sent: session %s, %s (initiator, on instance %s) <-> %s (responder), %s %llu us "
          "later, direct %s, relay %s",
          session, pi.id, from, pt.id, pt.id, (unsigned long long)pp.s[PLAN_T].delay_us,
          pl.direct ? "yes" : "no", pl.relay ? "offered" : "no");
    if (pl.relay)
        LOG_I("cluster: session %s relays here, at %s", session, c->public_text);
}

/* ---- the subscription ---- */

/* One message from the subscription: authenticated, fresh, then strictly decoded. */
static void cl_dispatch(struct cl *c, const char *payload, size_t len)
{
    unsigned char tag[crypto_auth_hmacsha512256_BYTES], want[sizeof tag];
    const char *json, *type, *sender;
    size_t jlen, taglen;
    json_error_t jerr;
    json_t *msg = NULL;
    json_int_t t;

    if (len > CL_BUS_MAX || len <= 3 + CL_TAG_HEX + 1 || memcmp(payload, "v1.", 3) != 0 ||
        payload[3 + CL_TAG_HEX] != '.' ||
        sodium_hex2bin(tag, sizeof tag, payload + 3, CL_TAG_HEX, NULL, &taglen, NULL) != 0 ||
        taglen != sizeof tag) {
        cl_reject(c, "not a signed message of this version (%zu bytes)", len);
        return;
    }
    json = payload + 3 + CL_TAG_HEX + 1;
    jlen = len - (3 + CL_TAG_HEX + 1);
    cl_mac(c, c->chan, json, jlen, want);
    if (sodium_memcmp(tag, want, sizeof tag) != 0) {
        cl_reject(c, "bad MAC (not from an instance with this --cluster-secret-file)");
        return;
    }
    msg = json_loadb(json, jlen, JSON_REJECT_DUPLICATES, &jerr);
    type = cl_str(msg, "type", 16);
    sender = cl_str(msg, "sender", CL_MAX_INSTANCE);
    if (!json_is_object(msg) || !type || !sender || !cl_valid_inst(sender) ||
        strcmp(sender, c->inst) == 0 || !cl_int(msg, "t", 1, INT64_MAX, &t)) {
        cl_reject(c, "signed but malformed: %s", msg ? "bad type, sender or t" : jerr.text);
        goto cleanup;
    }
    if (!cl_fresh(c, sender, (int64_t)t))
        goto cleanup;
    if (strcmp(type, "introduce") == 0)
        cl_on_introduce(c, msg, sender);
    else if (strcmp(type, "answer") == 0)
        cl_on_answer(c, msg, sender);
    else
        LOG_D("cluster: message of unknown type %s from %s ignored", type, sender);
cleanup:
    json_decref(msg);
}

static void cl_set_up(struct cl *c)
{
    size_t n;
    if (c->state != CL_CONNECTING || !c->sub_ok || !c->ping_ok)
        return;
    c->state = CL_UP;
    c->backoff_s = CL_BACKOFF_MIN_S;
    n = cl_announce_all(c, false);
    c->last_refresh_ms = uv_now(c->loop);
    if (c->ever_up)
        LOG_N("cluster: Redis at %s:%d is back after %llu s: rejoined as %s, %zu peers "
              "announced",
              c->host, c->port,
              (unsigned long long)((uv_now(c->loop) - c->down_since_ms + 500) / 1000), c->inst,
              n);
    else
        LOG_N("cluster: joined via Redis at %s:%d as instance %s (public address %s, channel %s)",
              c->host, c->port, c->inst, c->public_text, c->chan);
    c->ever_up = true;
}

static void cl_on_message(redisAsyncContext *ac, void *r, void *privdata)
{
    struct cl *c = ac->data;
    redisReply *reply = r;
    const char *kind;
    (void)privdata;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    kind = reply->element[0]->str;
    if (strcmp(kind, "subscribe") == 0) {
        c->sub_ok = true;
        cl_set_up(c);
    } else if (strcmp(kind, "message") == 0 && reply->element[2]->type == REDIS_REPLY_STRING) {
        cl_dispatch(c, reply->element[2]->str, reply->element[2]->len);
    }
}

/* ---- the connections to Redis ---- */

static void cl_on_auth(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    (void)privdata;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        cl_lost(ac->data, reply->str); /* a wrong password: retried like an outage */
}

static void cl_on_ping(redisAsyncContext *ac, void *r, void *privdata)
{
    struct cl *c = ac->data;
    (void)privdata;
    if (!cl_reply_ok(r) || c->state == CL_DOWN || ac != c->cmd)
        return;
    c->ping_out = false;
    c->redis_rtt_us = (uint32_t)(clk_us() - c->ping_sent_us);
    if (!c->ping_ok) {
        c->ping_ok = true;
        cl_set_up(c);
    }
}

static void cl_send_ping(struct cl *c)
{
    c->ping_out = true;
    c->ping_sent_us = clk_us();
    c->last_ping_ms = uv_now(c->loop);
    redisAsyncCommand(c->cmd, cl_on_ping, NULL, "PING");
}

/* Both the connect callback (status: connected or not) and the disconnect callback: hiredis
 * frees ac itself after either reports a failure, so it is forgotten here first. */
static void cl_on_gone(const redisAsyncContext *ac, int status)
{
    struct cl *c = ac->data;
    if (status == REDIS_OK)
        return; /* a successful connect */
    if (ac == c->cmd)
        c->cmd = NULL;
    else if (ac == c->sub)
        c->sub = NULL;
    else
        return; /* freed by us already */
    cl_lost(c, ac->errstr[0] ? ac->errstr : "connection closed");
}

static void cl_on_connect(const redisAsyncContext *ac, int status)
{
    cl_on_gone(ac, status);
}

static void cl_on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    cl_on_gone(ac, REDIS_ERR);
}

static redisAsyncContext *cl_open(struct cl *c)
{
    redisAsyncContext *ac = redisAsyncConnect(c->host, c->port);
    if (!ac)
        return NULL;
    if (ac->err) {
        LOG_D("cluster: connecting to Redis at %s:%d: %s", c->host, c->port, ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = c;
    if (redisLibuvAttach(ac, c->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, cl_on_connect);
    redisAsyncSetDisconnectCallback(ac, cl_on_disconnect);
    if (c->has_password)
        redisAsyncCommand(ac, cl_on_auth, NULL, "AUTH %s", c->password);
    return ac;
}

static void cl_try(struct cl *c)
{
    c->state = CL_CONNECTING;
    c->sub_ok = c->ping_ok = false;
    c->ping_out = false;
    c->cmd = cl_open(c);
    c->sub = c->cmd ? cl_open(c) : NULL;
    if (!c->cmd || !c->sub) {
        cl_lost(c, "cannot create a connection");
        return;
    }
    redisAsyncCommand(c->sub, cl_on_message, NULL, "SUBSCRIBE %s", c->chan);
    cl_send_ping(c);
}

static void cl_on_retry(uv_timer_t *t)
{
    cl_try(t->data);
}

static void cl_drop_contexts(struct cl *c)
{
    redisAsyncContext *cmd = c->cmd, *sub = c->sub;
    c->cmd = c->sub = NULL;
    if (cmd)
        redisAsyncFree(cmd);
    if (sub)
        redisAsyncFree(sub);
}

static void cl_lost(struct cl *c, const char *why)
{
    bool was_up = c->state == CL_UP;
    char reason[200];
    if (c->state == CL_STOPPED) {
        cl_drop_contexts(c);
        /* the graceful disconnect at shutdown is over: nothing keeps the loop any more */
        if (!uv_is_closing((uv_handle_t *)&c->stop))
            uv_close((uv_handle_t *)&c->stop, cl_on_timer_closed);
        return;
    }
    if (c->state == CL_DOWN) {
        cl_drop_contexts(c);
        return;
    }
    snprintf(reason, sizeof reason, "%s", why); /* why may live in a context freed below */
    c->state = CL_DOWN;
    cl_drop_contexts(c);
    cl_fail_all(c, "Redis unavailable");
    if (was_up || (!c->ever_up && !c->down_since_ms)) {
        /* logged once per outage; the retries that follow are debug lines */
        LOG_W("cluster: Redis at %s:%d unavailable (%s): serving local peers only, retrying "
              "with back-off",
              c->host, c->port, reason);
        c->down_since_ms = uv_now(c->loop) | 1;
    }
    LOG_D("cluster: next attempt to reach Redis in %u s (%s)", c->backoff_s, reason);
    uv_timer_start(&c->retry, cl_on_retry, (uint64_t)c->backoff_s * 1000, 0);
    c->backoff_s = c->backoff_s * 2 > CL_BACKOFF_MAX_S ? CL_BACKOFF_MAX_S : c->backoff_s * 2;
}

/* ---- the tick: health, refresh, answers overdue ---- */

/* After each answer the scan starts over: answering may drop a connection, and with it
 * other operations of the list. */
static void cl_expire_ops(struct cl *c, uint64_t now)
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
            cl_op_fail(op, "internal", "the server cannot check id ownership now (Redis is slow)");
            op = cl_op_first(c);
            continue;
        }
        LOG_W("cluster: instance %s did not answer for %s within %d ms (session %s)",
              op->where[0] ? op->where : "?", op->target, CL_ANSWER_MS, op->session);
        snprintf(msg, sizeof msg,
                 "%s is registered on instance %.100s, which did not answer within "
                 "%d ms",
                 op->target, op->where[0] ? op->where : "?", CL_ANSWER_MS);
        cl_op_fail(op, "peer-not-found", msg);
        op = cl_op_first(c);
    }
}

static void cl_on_tick(uv_timer_t *t)
{
    struct cl *c = t->data;
    uint64_t now = uv_now(c->loop);
    cl_expire_ops(c, now);
    if (c->state == CL_CONNECTING && c->ping_out && now - c->last_ping_ms >= CL_PING_TIMEOUT_MS) {
        cl_lost(c, "no answer");
        return;
    }
    if (c->state != CL_UP)
        return;
    if (c->ping_out && now - c->last_ping_ms >= CL_PING_TIMEOUT_MS) {
        cl_lost(c, "no answer to PING");
        return;
    }
    if (!c->ping_out && now - c->last_ping_ms >= CL_PING_MS)
        cl_send_ping(c);
    if (now - c->last_refresh_ms >= (uint64_t)c->ttl * 1000 / 3) {
        c->last_refresh_ms = now;
        cl_announce_all(c, true);
    }
    if (now - c->last_touch_ms >= CL_TOUCH_MS) {
        c->last_touch_ms = now;
        cl_touch_all(c);
    }
}

/* ---- life cycle ---- */

static int cl_setup(struct cl *c, const struct cl_cfg *cfg, char *err, size_t errlen)
{
    char host[200] = "localhost";
    if (cl_parse_hostport(cfg->redis, c->host, sizeof c->host, &c->port) < 0) {
        snprintf(err, errlen, "invalid --redis address '%s' (want HOST:PORT)", cfg->redis);
        return -1;
    }
    if (cfg->password_file && cl_read_password(c, cfg->password_file, err, errlen) < 0)
        return -1;
    if (cl_read_secret(c, cfg->secret_file, err, errlen) < 0)
        return -1;
    if (strlen(cfg->prefix) > CL_MAX_PREFIX) {
        snprintf(err, errlen, "--redis-prefix is longer than %d bytes", CL_MAX_PREFIX);
        return -1;
    }
    snprintf(c->prefix, sizeof c->prefix, "%s", cfg->prefix);
    c->public_addr = cfg->public_addr;
    ep_format((const struct sockaddr *)&c->public_addr, c->public_text, sizeof c->public_text);
    if (cfg->instance_id)
        snprintf(c->inst, sizeof c->inst, "%s", cfg->instance_id);
    else {
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        snprintf(c->inst, sizeof c->inst, "%.60s-%s", host, c->public_text);
    }
    if (!cl_valid_inst(c->inst)) {
        snprintf(err, errlen, "invalid instance id '%s' (1-%d of A-Z a-z 0-9 . _ - : [ ])", c->inst,
                 CL_MAX_INSTANCE);
        return -1;
    }
    cl_chan_of(c, c->inst, c->chan, sizeof c->chan);
    c->ttl = cfg->ttl;
    return 0;
}

struct cl *cl_new(uv_loop_t *loop, const struct cl_cfg *cfg, const struct cl_user *user,
                  char *err, size_t errlen)
{
    struct cl *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->user = *user;
    c->loop = loop;
    q_init(&c->ops);
    c->backoff_s = CL_BACKOFF_MIN_S;
    c->floor_t = cl_wall_us(); /* what was published before this start is not for us */
    if (cl_setup(c, cfg, err, errlen) < 0) {
        free(c);
        return NULL;
    }
    uv_timer_init(loop, &c->tick);
    uv_timer_init(loop, &c->retry);
    uv_timer_init(loop, &c->stop);
    c->tick.data = c->retry.data = c->stop.data = c;
    c->handles = 3;
    uv_timer_start(&c->tick, cl_on_tick, CL_TICK_MS, CL_TICK_MS);
    LOG_N("cluster: instance %s, Redis at %s:%d, keys under \"%s\", directory TTL %u s", c->inst,
          c->host, c->port, c->prefix, c->ttl);
    cl_try(c);
    return c;
}

static void cl_on_timer_closed(uv_handle_t *h)
{
    struct cl *c = h->data;
    c->handles--;
}

static void cl_on_stop(uv_timer_t *t)
{
    struct cl *c = t->data;
    cl_drop_contexts(c); /* whatever did not leave in time is dropped */
    if (!uv_is_closing((uv_handle_t *)&c->stop))
        uv_close((uv_handle_t *)&c->stop, cl_on_timer_closed);
}

void cl_stop(struct cl *c)
{
    if (!c || c->state == CL_STOPPED)
        return;
    c->state = CL_STOPPED;
    cl_fail_all(c, "the server is shutting down");
    uv_close((uv_handle_t *)&c->tick, cl_on_timer_closed);
    uv_close((uv_handle_t *)&c->retry, cl_on_timer_closed);
    /* a graceful disconnect sends what is queued (withdrawals) and waits for the replies;
     * the stop timer bounds that wait when Redis hangs */
    if (c->cmd)
        redisAsyncDisconnect(c->cmd);
    if (c->sub) {
        redisAsyncContext *sub = c->sub;
        c->sub = NULL;
        redisAsyncFree(sub);
    }
    /* the disconnect may have failed at once (Redis gone): cl_lost has closed the timer */
    if (c->cmd)
        uv_timer_start(&c->stop, cl_on_stop, CL_STOP_MS, 0);
    else if (!uv_is_closing((uv_handle_t *)&c->stop))
        uv_close((uv_handle_t *)&c->stop, cl_on_timer_closed);
}

bool cl_is_up(const struct cl *c)
{
    return c && c->state == CL_UP;
}

void cl_free(struct cl *c)
{
    if (!c)
        return;
    sodium_memzero(c->password, sizeof c->password);
    sodium_memzero(c->bus_key, sizeof c->bus_key);
    free(c);
}
