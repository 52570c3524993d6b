/* The failover across --server: the order of attempts, when a round ends, the back-off and its
 * spread, which refusals are worth another attempt, and a whole run over a fake attempt. */
#include <string.h>

#include "check.h"
#include "peer/exit.h"
#include "peer/failover.h"

static void t_round_order(void)
{
    struct fo f;
    fo_init(&f, false);
    f.multi = true;
    fo_round(&f, 3);
    CHECK_INT(f.cur, 0);
    CHECK_INT(fo_after(&f, true, false), FO_NEXT);
    CHECK_INT(f.cur, 1);
    CHECK_INT(fo_after(&f, true, false), FO_NEXT);
    CHECK_INT(f.cur, 2);
    CHECK_INT(fo_after(&f, true, false), FO_ROUND_OVER);
    CHECK_INT(f.cur, 0); /* the next round starts after the server last used */
    CHECK(fo_give_up(&f));
}

static void t_stop(void)
{
    struct fo f;
    fo_init(&f, true);
    fo_round(&f, 2);
    CHECK_INT(fo_after(&f, false, true), FO_STOP);
    CHECK_INT(f.cur, 0); /* nothing moves: the run is over */
    CHECK_INT(f.left, 2);
}

static void t_move_after_registration(void)
{
    struct fo f;
    fo_init(&f, true);
    f.multi = true;
    fo_round(&f, 3);
    CHECK_INT(fo_after(&f, true, false), FO_NEXT);
    f.wait = 8000;
    /* lost after a welcome: a new round from the next server, the back-off back to its start */
    CHECK_INT(fo_after(&f, true, true), FO_MOVE);
    CHECK_INT(f.left, 0);
    CHECK_INT(f.cur, 2);
    CHECK(f.was_registered);
    CHECK(f.wait == FO_RETRY_MIN_MS);
    fo_round(&f, 3);
    CHECK_INT(f.cur, 2);
    /* a single server that was lost: its round is over (a pause follows) */
    fo_init(&f, true);
    fo_round(&f, 1);
    CHECK_INT(fo_after(&f, true, true), FO_ROUND_OVER);
    CHECK(!fo_give_up(&f));
    /* a round of fewer servers than before keeps cur inside it */
    f.cur = 5;
    fo_round(&f, 2);
    CHECK_INT(f.cur, 1);
    fo_round(&f, 0);
    CHECK_INT(f.cur, 0);
    CHECK_INT(f.left, 0);
}

static uint32_t lowest(uint32_t n)
{
    (void)n;
    return 0;
}

static uint32_t highest(uint32_t n)
{
    return n - 1;
}

static void t_backoff(void)
{
    struct fo f;
    uint64_t expect[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000};
    fo_init(&f, true);
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        CHECK(f.wait == expect[i]);
        struct fo g = f;
        /* spread by +-20% */
        CHECK(fo_pause_ms(&g, lowest) == expect[i] - expect[i] / 5);
        CHECK(fo_pause_ms(&f, highest) == expect[i] + expect[i] / 5);
    }
}

static void t_transient(void)
{
    CHECK(fo_transient("server-shutdown", false));
    CHECK(fo_transient("keepalive-timeout", false));
    CHECK(fo_transient("hello-timeout", false));
    CHECK(fo_transient("server-full", false));
    CHECK(fo_transient("too-many-connections", false));
    CHECK(fo_transient("rate-limited", false));
    CHECK(fo_transient("overloaded", false));
    CHECK(fo_transient("internal", false));
    CHECK(!fo_transient("id-taken", false));
    CHECK(fo_transient("id-taken", true));
    CHECK(!fo_transient("id-owned", true));
    CHECK(!fo_transient("not-authorized", true));
    CHECK(!fo_transient("not-admitted", false));
    CHECK(!fo_transient("bad-json", false));
}

/* A fake attempt: records which server it was given, and ends as told. */
struct fake {
    int n;
    char seen[8][SL_NAME];
    struct fo_outcome ends[8];
};

static void fake_attempt(void *data, uv_loop_t *loop, const struct sl_server *s, bool multi,
                         bool was_registered, struct fo_outcome *out)
{
    struct fake *fk = data;
    (void)loop;
    (void)multi;
    (void)was_registered;
    snprintf(fk->seen[fk->n], sizeof fk->seen[fk->n], "%s", s->name);
    *out = fk->ends[fk->n++];
}

static void t_run(void)
{
    struct fake fk;
    struct fo_cbs cb = {fake_attempt, &fk};
    memset(&fk, 0, sizeof fk);
    /* one round, nobody takes us: EXIT_SERVER after trying each once, in order */
    fk.ends[0].retry = fk.ends[1].retry = true;
    CHECK_INT(fo_run("127.0.0.1:7001, 127.0.0.1:7002", false, &cb), EXIT_SERVER);
    CHECK_INT(fk.n, 2);
    CHECK_STR(fk.seen[0], "127.0.0.1:7001");
    CHECK_STR(fk.seen[1], "127.0.0.1:7002");
    /* the second takes us: its result is the run's */
    memset(&fk, 0, sizeof fk);
    fk.ends[0].retry = true;
    fk.ends[1].rc = EXIT_NO_PEER;
    CHECK_INT(fo_run("127.0.0.1:7001,127.0.0.1:7002", false, &cb), EXIT_NO_PEER);
    CHECK_INT(fk.n, 2);
    /* registered on the first, then lost: the next one follows, after the spread */
    memset(&fk, 0, sizeof fk);
    fk.ends[0].retry = fk.ends[0].registered = true;
    fk.ends[1].rc = EXIT_DONE;
    CHECK_INT(fo_run("127.0.0.1:7001,127.0.0.1:7002", true, &cb), EXIT_DONE);
    CHECK_INT(fk.n, 2);
    CHECK_STR(fk.seen[1], "127.0.0.1:7002");
}

CHECK_MAIN(TEST(t_round_order), TEST(t_stop), TEST(t_move_after_registration), TEST(t_backoff),
           TEST(t_transient), TEST(t_run))
