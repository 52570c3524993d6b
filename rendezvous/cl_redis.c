/* The cluster's top floor: its connections to Redis (one for commands, one for the
 * subscription), their health, the back-off after an outage, the tick and the life cycle.
 * What the cluster does with them lives below: cl_claim.c (directory, ownership), cl_intro.c
 * (the bus and introductions), cluster.c (operations in flight); cluster_int.h draws the
 * layers. */
#include "rendezvous/cluster.h"
#include "rendezvous/cluster_int.h"
#include "proto/auth.h"
#include "common/clock.h"
#include "common/log.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/hiredis.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CL_TICK_MS 250
/* a refresh of the directory is spread over half of its interval (ttl/3) */
#define CL_SWEEP_TICKS(ttl) ((unsigned)((uint64_t)(ttl) * 1000 / 3 / 2 / CL_TICK_MS))
#define CL_STOP_MS 1000     /* at shutdown, how long queued commands get to leave */
#define CL_TOUCH_MS 3600000 /* how often registered ids' last use moves in Redis */

static void cl_lost(struct cl *c, const char *why);
static void cl_on_timer_closed(uv_handle_t *h);
static void cl_on_message(redisAsyncContext *ac, void *r, void *privdata);

/* ---- configuration ---- */

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
    bus_key_of(h, c->bus_key);
    sodium_memzero(h, sizeof h);
    return 0;
}

/* ---- the subscription: what comes in goes to cl__dispatch (cl_intro.c) ---- */

static void cl_set_up(struct cl *c)
{
    size_t n;
    if (c->state != CL_CONNECTING || !c->sub_ok || !c->ping_ok)
        return;
    c->state = CL_UP;
    c->backoff_s = CL_BACKOFF_MIN_S;
    n = cl__announce_all(c);
    cl__code_announce_all(c);
    c->last_refresh_ms = uv_now(c->loop);
    /* the first touch an hour after joining, not at the first tick: from 0 it came at once on
     * any host up for an hour, one script per peer just registered (each claim had moved its
     * id's last use already) */
    if (!c->ever_up)
        c->last_touch_ms = uv_now(c->loop);
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
        cl__dispatch(c, reply->element[2]->str, reply->element[2]->len);
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
    if (!cl__reply_ok(r) || c->state == CL_DOWN || ac != c->cmd)
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
    else if (ac == c->bulk)
        c->bulk = NULL;
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
    c->bulk = c->sub ? cl_open(c) : NULL;
    if (!c->cmd || !c->sub || !c->bulk) {
        cl_lost(c, "cannot create a connection");
        return;
    }
    redisAsyncCommand(c->sub, cl_on_message, NULL, "SUBSCRIBE %s", c->chan);
    /* ahead of every claim on this connection: Redis runs its commands in order */
    cl__load_scripts(c);
    cl__code_load_scripts(c);
    cl_send_ping(c);
}

static void cl_on_retry(uv_timer_t *t)
{
    cl_try(t->data);
}

static void cl_drop_contexts(struct cl *c)
{
    redisAsyncContext *cmd = c->cmd, *sub = c->sub, *bulk = c->bulk;
    c->cmd = c->sub = c->bulk = NULL;
    cl__sweep_end(c);
    if (bulk)
        redisAsyncFree(bulk);
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
    cl__fail_all(c, "Redis unavailable");
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

static void cl_on_tick(uv_timer_t *t)
{
    struct cl *c = t->data;
    uint64_t now = uv_now(c->loop);
    cl__expire_ops(c, now);
    cl__code_expire(c, now);
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
        cl__sweep_start(c, CL_SWEEP_TICKS(c->ttl));
    } else {
        cl__sweep_step(c);
    }
    if (now - c->last_touch_ms >= CL_TOUCH_MS) {
        c->last_touch_ms = now;
        cl__touch_all(c);
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
    if (!bus_valid_instance(c->inst)) {
        snprintf(err, errlen, "invalid instance id '%s' (1-%d of A-Z a-z 0-9 . _ - : [ ])", c->inst,
                 BUS_MAX_INSTANCE);
        return -1;
    }
    cl__chan_of(c, c->inst, c->chan, sizeof c->chan);
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
    q_init(&c->pxs);
    /* claim refs start at random: a ref of the instance before a restart names no claim of
     * this one (the bus's freshness floor refuses those messages already) */
    c->next_ref = ((uint64_t)randombytes_random() << 20) | randombytes_uniform(1u << 20);
    c->backoff_s = CL_BACKOFF_MIN_S;
    if (hmap_init(&c->nums, 64) < 0 || hmap_init(&c->px_refs, 64) < 0) {
        snprintf(err, errlen, "out of memory");
        hmap_fini(&c->nums);
        free(c);
        return NULL;
    }
    c->floor_t = cl__wall_us(); /* what was published before this start is not for us */
    if (cl_setup(c, cfg, err, errlen) < 0) {
        hmap_fini(&c->nums);
        hmap_fini(&c->px_refs);
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
    cl__fail_all(c, "the server is shutting down");
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
    /* what a sweep left queued renews entries the withdrawals are about to delete */
    if (c->bulk) {
        redisAsyncContext *bulk = c->bulk;
        c->bulk = NULL;
        redisAsyncFree(bulk);
    }
    cl__sweep_end(c);
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

uint32_t cl_redis_rtt_us(const struct cl *c)
{
    return c ? c->redis_rtt_us : 0;
}

void cl_free(struct cl *c)
{
    if (!c)
        return;
    cl__sweep_end(c);
    cl__code_free(c);
    sodium_memzero(c->password, sizeof c->password);
    sodium_memzero(c->bus_key, sizeof c->bus_key);
    free(c);
}
