#include "peer/failover.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/log.h"
#include "peer/exit.h"
#include "proto/code.h"

void fo_init(struct fo *f, bool may_retry)
{
    memset(f, 0, sizeof *f);
    f->wait = FO_RETRY_MIN_MS;
    f->may_retry = may_retry;
}

void fo_round(struct fo *f, int n)
{
    f->n = f->left = n;
    f->cur = n ? f->cur % n : 0;
}

enum fo_step fo_after(struct fo *f, bool retry, bool registered)
{
    if (!retry)
        return FO_STOP;
    f->cur = (f->cur + 1) % f->n;
    f->left--;
    if (registered) {
        f->was_registered = true;
        f->wait = FO_RETRY_MIN_MS;
    }
    if (registered && f->multi) {
        f->left = 0; /* a full round of the others, the next one first */
        return FO_MOVE;
    }
    return f->left > 0 ? FO_NEXT : FO_ROUND_OVER;
}

bool fo_give_up(const struct fo *f)
{
    return !f->may_retry;
}

uint64_t fo_pause_ms(struct fo *f, uint32_t (*uniform)(uint32_t n))
{
    uint64_t w = f->wait;
    f->wait = w * 2 > FO_RETRY_MAX_MS ? FO_RETRY_MAX_MS : w * 2;
    return w - w / 5 + uniform((uint32_t)(w * 2 / 5) + 1);
}

bool fo_transient(const char *code, bool was_registered)
{
    enum proto_code pc = proto_code_parse(code);
    return proto_code_passing(pc) || (was_registered && pc == PC_ID_TAKEN);
}

static void fo_woke(uv_timer_t *t)
{
    (void)t; /* the pause is over: uv_run returns, the run goes on */
}

/* The pause between attempts: the loop runs nothing else meanwhile, so it returns when the
 * timer fires. */
static void fo_sleep(uv_loop_t *loop, uv_timer_t *t, uint64_t ms)
{
    uv_timer_start(t, fo_woke, ms, 0);
    uv_run(loop, UV_RUN_DEFAULT);
}

/* The servers of one round, resolved again for each: a name that does not resolve now may
 * resolve later (the network may be coming up). */
static void fo_resolve(struct fo *f, const char *list, struct sl_list *l, char *tried, size_t len)
{
    char skipped[600];
    int n = sl_resolve(list, l, skipped, sizeof skipped);
    f->multi = l->items > 1 || n > 1;
    if (skipped[0]) {
        log_msg(f->may_retry || n > 0 ? LOG_WARN : LOG_ERROR, "server %s", skipped);
        sl_join(tried, len, skipped);
    }
    fo_round(f, n);
}

/* Runs the rounds on loop; see fo_run. */
static int fo_rounds(const char *list, struct fo *f, struct sl_list *l, uv_loop_t *loop,
                     uv_timer_t *pause, const struct fo_cbs *cb)
{
    char tried[1000] = "";
    struct fo_outcome out;
    enum fo_step step;
    uint64_t ms;

    for (;;) {
        if (f->left == 0) { /* a new round, from the server after the one last used */
            tried[0] = '\0';
            fo_resolve(f, list, l, tried, sizeof tried);
        }
        step = FO_ROUND_OVER; /* also when nothing resolved */
        if (f->left > 0) {
            memset(&out, 0, sizeof out);
            cb->attempt(cb->data, loop, &l->s[f->cur], f->multi, f->was_registered, &out);
            if ((step = fo_after(f, out.retry, out.registered)) == FO_STOP)
                return out.rc;
            sl_join(tried, sizeof tried, out.why);
        }
        if (step == FO_MOVE) {
            ms = randombytes_uniform(FO_SPREAD_MS + 1);
            LOG_N("moving to the next server, %s, in %.1f s", l->s[f->cur].name,
                  (double)ms / 1000.0);
            fo_sleep(loop, pause, ms);
            continue;
        }
        if (step == FO_NEXT) {
            LOG_I("trying the next server, %s", l->s[f->cur].name);
            continue;
        }
        /* a whole round and nobody took us */
        if (fo_give_up(f)) {
            if (f->multi && f->n > 0)
                LOG_E("no server could be used; tried: %s (check the addresses; is "
                      "tcpunch-rendezvous running there, its port open in the firewall?)",
                      tried);
            return EXIT_SERVER;
        }
        ms = fo_pause_ms(f, randombytes_uniform);
        LOG_N("reconnecting to the server%s %s in %.1f s", f->multi ? "s" : "", list,
              (double)ms / 1000.0);
        fo_sleep(loop, pause, ms);
    }
}

int fo_run(const char *list, bool may_retry, const struct fo_cbs *cb)
{
    struct sl_list *l = malloc(sizeof *l);
    struct fo f;
    uv_loop_t loop;
    uv_timer_t pause;
    int rc;

    if (!l) {
        LOG_E("out of memory");
        return EXIT_LOCAL;
    }
    fo_init(&f, may_retry);
    uv_loop_init(&loop);
    uv_timer_init(&loop, &pause);
    rc = fo_rounds(list, &f, l, &loop, &pause, cb);
    uv_close((uv_handle_t *)&pause, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        LOG_D("event loop still had handles at exit");
    free(l);
    return rc;
}
