/* The path side of a resumable session: see rpath.h.
 *
 * Threads: the path thread runs the loop (the mailbox's async, a timer, the attempt's done
 * async); each attempt runs on a thread of its own, because peer_resume_link blocks (it runs a
 * loop of its own inside) and the path loop must stay free to take MB_ENDED meanwhile and set
 * `cancel`. At most one attempt runs at a time; its results (rc, link, why) are read by the path
 * thread only after it joined the attempt's thread. */
#include "peer/rpath.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "common/clock.h"
#include "common/log.h"
#include "peer/exit.h"
#include "peer/migrate.h"
#include "peer/resume.h"

struct rpath {
    struct rpath_cfg c; /* c.rs wiped at rpath_stop */
    uv_loop_t loop;
    struct mbox mb;
    uv_timer_t wait;           /* between attempts */
    uv_timer_t deadline;       /* the resume deadline: cancels a running attempt */
    uv_async_t done;           /* the attempt's thread finished */
    uv_async_t stop;           /* rpath_stop without MB_ENDED (the data plane could not push it) */
    pthread_t thread;          /* the path thread */
    pthread_t worker;          /* the running attempt */
    bool working;              /* an attempt's thread runs (or is not joined yet) */
    bool suspended;            /* between MB_LOST and MB_CONN / MB_GIVE_UP */
    bool ended;                /* MB_ENDED (or rpath_stop): no more attempts, the loop stops */
    volatile int cancel;       /* polled by the attempt */
    uint64_t lost_ms;          /* clk_ms() of the MB_LOST: the deadline counts from it */
    uint64_t rx;               /* our receive offset at the failure (MB_LOST's conn.peer_rx) */
    uint32_t last_epoch;       /* the newest epoch attached (MB_LOST's conn.epoch) */
    int failures;              /* attempts failed in this suspension: the index into the waits */
    /* the upgrade (rpath.h, cfg.upgrade): the running attempt is one, how many failed, and
     * the timer between them; a loss or the session's end stops upgrading for good */
    bool upgrading;
    bool upgrade_over;
    int up_failed;
    uv_timer_t up_wait;
    struct resume_link_cfg rl; /* the running attempt's input */
    int rc;                    /* the attempt's result, its link and why */
    struct peer_link link;
    char why[MB_WHY];
};

static void wipe_link(struct peer_link *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    sodium_memzero(l->tx_key, sizeof l->tx_key);
    sodium_memzero(l->rx_key, sizeof l->rx_key);
    sodium_memzero(l->rs, sizeof l->rs);
}

/* MB_GIVE_UP ends the suspension: the data plane ends with status. */
static void give_up(struct rpath *r, int status, const char *why)
{
    struct mb_msg m = {.kind = MB_GIVE_UP, .status = status};
    m.conn.fd = -1;
    snprintf(m.why, sizeof m.why, "%s", why);
    r->suspended = false;
    uv_timer_stop(&r->wait);
    uv_timer_stop(&r->deadline);
    if (mb_to_data(&r->mb, &m) != 0)
        LOG_W("resume: the data plane's mailbox is full; %s", why);
}

static void give_up_deadline(struct rpath *r)
{
    char why[MB_WHY];
    snprintf(why, sizeof why, "the connection to %s was lost and not resumed within %llu s",
             r->c.peer, (unsigned long long)(r->c.timeout_ms / 1000));
    give_up(r, EXIT_NOT_RESUMED, why);
}

/* The attempt's link becomes MB_CONN; the box owns fd and keys from here, ours are wiped. */
static void hand_over(struct rpath *r, bool upgrade)
{
    struct mb_msg m = {.kind = MB_CONN};
    m.conn.upgrade = upgrade;
    m.conn.fd = r->link.fd;
    m.conn.epoch = r->link.epoch;
    memcpy(m.conn.tx, r->link.tx_key, sizeof m.conn.tx);
    memcpy(m.conn.rx, r->link.rx_key, sizeof m.conn.rx);
    m.conn.peer_rx = r->link.peer_rx;
    size_t n = r->link.prefill_len;
    if (n > sizeof m.conn.prefill)
        n = sizeof m.conn.prefill; /* cannot happen: both are a protocol line's size */
    memcpy(m.conn.prefill, r->link.prefill, n);
    m.conn.prefill_len = n;
    m.conn.relayed = r->link.relayed;
    m.conn.remote = r->link.relayed ? r->link.relay_server : r->link.remote;
    snprintf(m.conn.via, sizeof m.conn.via, "%s", r->link.via ? r->link.via : "");
    if (mb_to_data(&r->mb, &m) == 0) {
        r->link.fd = -1; /* the box's now */
        r->suspended = false;
        uv_timer_stop(&r->deadline);
    } else {
        LOG_W("resume: the data plane's mailbox is full; dropping the resumed connection");
    }
    sodium_memzero(&m, sizeof m);
    wipe_link(&r->link);
}

static void *attempt_main(void *arg)
{
    struct rpath *r = arg;
    int (*fn)(const struct resume_link_cfg *, struct peer_link *, char *, size_t) =
        r->c.attempt ? r->c.attempt : peer_resume_link;
    r->rc = fn(&r->rl, &r->link, r->why, sizeof r->why);
    uv_async_send(&r->done);
    return NULL;
}

static void finish(struct rpath *r);
static void retry_later(struct rpath *r, bool not_found);
static void start_attempt(struct rpath *r);

/* --- the upgrade (relay first, docs/design/resume.md 4.6 "As built") ---------------------
 * A resume order for the live session, direct-only, through peer_resume_link: the initiator
 * asks, the responder re-registers with replace and waits for it, both at once. A won
 * connection goes to the data plane as MB_CONN with upgrade (rpump moves the session off the
 * relay). A failure changes nothing for the session: it stays on the relay. */

/* Long enough for a registration and a whole punch (--timeout), bounded so that a peer that
 * does not take part (--direct-first there) costs a few asks, not the session's life. */
static uint64_t up_deadline(const struct rpath *r, uint64_t now)
{
    return now + r->c.o->timeout_ms + RESUME_NF_EVERY_MS;
}

static void up_start(struct rpath *r)
{
    uint64_t now = clk_ms();
    if (r->ended || r->suspended || r->working || r->upgrade_over)
        return;
    memset(&r->link, 0, sizeof r->link);
    r->link.fd = -1;
    r->why[0] = '\0';
    r->cancel = 0;
    /* rx 0: a stale ACK the peer takes as "nothing new" (rs_upgrade), and epoch 0 the only
     * one attached: the upgrade is epoch 1 */
    r->rl = (struct resume_link_cfg){.c = &r->c,
                                     .rx = 0,
                                     .last_epoch = 0,
                                     .deadline_ms = up_deadline(r, now),
                                     .cancel = &r->cancel,
                                     .direct_only = true};
    int rc = pthread_create(&r->worker, NULL, attempt_main, r);
    if (rc != 0) {
        LOG_D("upgrade: cannot start an attempt: %s; staying on the relay", strerror(rc));
        r->upgrade_over = true;
        return;
    }
    LOG_D("upgrade: attempt %d of %d to move the session with %s to direct", r->up_failed + 1,
          MIGRATE_UPGRADE_TRIES, r->c.peer);
    r->working = r->upgrading = true;
}

static void on_up_wait(uv_timer_t *t)
{
    up_start(t->data);
}

/* The upgrade attempt returned (its thread joined). */
static void up_done(struct rpath *r)
{
    r->upgrading = false;
    if (r->suspended) {
        /* lost meanwhile (on_lost cancelled us): the resume takes over; whatever the upgrade
         * won is dropped (the peer sees it fail and resumes too) */
        wipe_link(&r->link);
        r->cancel = 0;
        r->upgrade_over = true;
        start_attempt(r);
        return;
    }
    if (r->rc == EXIT_DONE && !r->link.gone && !r->link.relayed) {
        r->upgrade_over = true;
        hand_over(r, true);
        return;
    }
    wipe_link(&r->link);
    int64_t w = migrate_upgrade_wait_ms(++r->up_failed);
    if (w == MIGRATE_UPGRADE_NO_MORE) {
        LOG_I("upgrade to direct with %s failed %d times (%s); staying on the relay", r->c.peer,
              r->up_failed, r->why[0] ? r->why : "no reason");
        r->upgrade_over = true;
        return;
    }
    LOG_D("upgrade: attempt failed (%s); next in %lld ms", r->why[0] ? r->why : "no reason",
          (long long)w);
    uv_timer_start(&r->up_wait, on_up_wait, (uint64_t)w, 0);
}

/* The next attempt, unless the deadline passed. */
static void start_attempt(struct rpath *r)
{
    uint64_t now = clk_ms();
    if (resume_give_up(now, r->lost_ms, r->c.timeout_ms)) {
        give_up_deadline(r);
        return;
    }
    memset(&r->link, 0, sizeof r->link);
    r->link.fd = -1;
    r->why[0] = '\0';
    r->rl = (struct resume_link_cfg){.c = &r->c,
                                     .rx = r->rx,
                                     .last_epoch = r->last_epoch,
                                     .deadline_ms =
                                         now + resume_left_ms(now, r->lost_ms, r->c.timeout_ms),
                                     .cancel = &r->cancel};
    int rc = pthread_create(&r->worker, NULL, attempt_main, r);
    if (rc != 0) {
        /* no thread now: a failed attempt, the waits bring the next one */
        snprintf(r->why, sizeof r->why, "cannot start an attempt: %s", strerror(rc));
        retry_later(r, false);
        return;
    }
    r->working = true;
}

static void on_wait(uv_timer_t *t)
{
    struct rpath *r = t->data;
    if (!r->ended && r->suspended && !r->working)
        start_attempt(r);
}

static void on_deadline(uv_timer_t *t)
{
    struct rpath *r = t->data;
    if (!r->suspended)
        return;
    if (r->working) {
        /* atomic: the attempt's thread polls it; its result then gives up (on_done) */
        __atomic_store_n(&r->cancel, 1, __ATOMIC_RELEASE);
        return;
    }
    give_up_deadline(r);
}

/* A failed attempt: wait per the tables (capped by what is left of the deadline). */
static void retry_later(struct rpath *r, bool not_found)
{
    uint64_t now = clk_ms();
    if (resume_give_up(now, r->lost_ms, r->c.timeout_ms)) {
        give_up_deadline(r);
        return;
    }
    uint64_t w = resume_next_ms(r->failures++, not_found, randombytes_random());
    uint64_t left = resume_left_ms(now, r->lost_ms, r->c.timeout_ms);
    if (w >= left) {
        /* the deadline comes first: its timer (running while suspended) gives up. A wait cut to
         * `left` would be due at the same moment, and measured from the loop's cached time it
         * could fire before the deadline's timer and start one more attempt of a few ms */
        LOG_D("resume: attempt failed (%s); the deadline comes before the next",
              r->why[0] ? r->why : "no reason");
        return;
    }
    LOG_D("resume: attempt failed (%s); next in %llu ms", r->why[0] ? r->why : "no reason",
          (unsigned long long)w);
    uv_timer_start(&r->wait, on_wait, w, 0);
}

static void on_done(uv_async_t *a)
{
    struct rpath *r = a->data;
    if (!r->working)
        return; /* a coalesced wake-up */
    pthread_join(r->worker, NULL);
    r->working = false;
    if (r->ended) {
        wipe_link(&r->link);
        finish(r);
        return;
    }
    if (r->upgrading) {
        up_done(r);
        return;
    }
    if (r->rc == EXIT_DONE && r->link.gone) {
        char why[MB_WHY];
        snprintf(why, sizeof why, "%s has ended this session", r->c.peer);
        wipe_link(&r->link);
        give_up(r, EXIT_LOST, why);
    } else if (r->rc == EXIT_DONE) {
        hand_over(r, false);
        if (r->suspended) /* the mailbox refused it: try again */
            retry_later(r, false);
    } else {
        wipe_link(&r->link);
        if (r->cancel)
            give_up_deadline(r); /* only the deadline cancels while not ended */
        else
            retry_later(r, r->rc == EXIT_NO_PEER);
    }
}

static void on_lost(struct rpath *r, const struct mb_msg *m)
{
    if (r->suspended)
        return; /* already looking (a repeated MB_LOST changes nothing for the attempt) */
    if (m->status == MB_LOST_REFUSED && r->lost_ms) {
        /* the connection we handed over was refused (a lying offset): the same suspension, its
         * deadline and its waits go on; a fresh deadline per refusal would never end */
        uint64_t now = clk_ms();
        r->suspended = true;
        if (resume_give_up(now, r->lost_ms, r->c.timeout_ms)) {
            give_up_deadline(r);
            return;
        }
        uv_timer_start(&r->deadline, on_deadline, resume_left_ms(now, r->lost_ms, r->c.timeout_ms),
                       0);
        snprintf(r->why, sizeof r->why, "the resumed connection was refused");
        retry_later(r, false);
        return;
    }
    r->suspended = true;
    r->lost_ms = clk_ms();
    r->rx = m->conn.peer_rx;
    r->last_epoch = m->conn.epoch;
    r->failures = 0;
    if (!r->working)
        r->cancel = 0;
    LOG_D("resume: lost (%s); looking for %s for up to %llu ms", m->why, r->c.peer,
          (unsigned long long)r->c.timeout_ms);
    uv_timer_start(&r->deadline, on_deadline, r->c.timeout_ms, 0);
    uv_timer_stop(&r->up_wait);
    r->upgrade_over = true; /* the resume may come direct anyway; no upgrade after a loss */
    if (r->working && r->upgrading) {
        /* the upgrade's thread stops soon; up_done starts the resume */
        __atomic_store_n(&r->cancel, 1, __ATOMIC_RELEASE);
        return;
    }
    start_attempt(r);
}

/* MB_ENDED: no more attempts; the loop stops once a running attempt returned. */
static void finish(struct rpath *r)
{
    r->ended = true;
    __atomic_store_n(&r->cancel, 1, __ATOMIC_RELEASE);
    r->suspended = false;
    uv_timer_stop(&r->wait);
    uv_timer_stop(&r->deadline);
    uv_timer_stop(&r->up_wait);
    if (!r->working)
        uv_stop(&r->loop);
}

static void on_path(struct mbox *mb, void *arg)
{
    struct rpath *r = arg;
    struct mb_msg m;
    while (mb_take(mb, MB_PATH, &m)) {
        if (r->ended)
            continue;
        if (m.kind == MB_LOST)
            on_lost(r, &m);
        else if (m.kind == MB_ENDED)
            finish(r);
    }
    sodium_memzero(&m, sizeof m);
}

static void on_stop(uv_async_t *a)
{
    finish(a->data);
}

static void *path_main(void *arg)
{
    struct rpath *r = arg;
    uv_run(&r->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Everything but the thread: the loop, the box, the handles. -1 with errno, nothing left. */
static int open_loop(struct rpath *r)
{
    int rc = uv_loop_init(&r->loop), e;
    if (rc != 0) {
        errno = -rc;
        return -1;
    }
    if ((rc = uv_async_init(&r->loop, &r->done, on_done)) != 0)
        goto no_done;
    if ((rc = uv_async_init(&r->loop, &r->stop, on_stop)) != 0)
        goto no_stop;
    if (mb_init(&r->mb, &r->loop, on_path, r) != 0) {
        rc = -errno;
        goto no_box;
    }
    uv_timer_init(&r->loop, &r->wait); /* cannot fail */
    uv_timer_init(&r->loop, &r->deadline);
    uv_timer_init(&r->loop, &r->up_wait);
    r->wait.data = r->deadline.data = r->done.data = r->stop.data = r->up_wait.data = r;
    return 0;
no_box:
    uv_close((uv_handle_t *)&r->stop, NULL);
no_stop:
    uv_close((uv_handle_t *)&r->done, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT); /* the close callbacks */
no_done:
    e = -rc;
    uv_loop_close(&r->loop);
    errno = e;
    return -1;
}

static void on_closed(struct mbox *m, void *arg)
{
    (void)m;
    (void)arg;
}

/* On the caller's thread once the path thread is joined: the loop is ours now. */
static void close_loop(struct rpath *r)
{
    uv_close((uv_handle_t *)&r->wait, NULL);
    uv_close((uv_handle_t *)&r->deadline, NULL);
    uv_close((uv_handle_t *)&r->up_wait, NULL);
    uv_close((uv_handle_t *)&r->done, NULL);
    uv_close((uv_handle_t *)&r->stop, NULL);
    mb_close(&r->mb, on_closed);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
}

struct rpath *rpath_start(const struct rpath_cfg *c)
{
    struct rpath *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->c = *c;
    r->link.fd = -1;
    if (open_loop(r) != 0)
        goto fail;
    /* the upgrade starts with the session (both sides at once); the timer runs once the path
     * thread's loop does (pthread_create orders this before it) */
    r->upgrade_over = !c->upgrade;
    if (c->upgrade)
        uv_timer_start(&r->up_wait, on_up_wait, 0, 0);
    int rc = pthread_create(&r->thread, NULL, path_main, r);
    if (rc != 0) {
        close_loop(r);
        errno = rc;
        goto fail;
    }
    return r;
fail:;
    int e = errno;
    sodium_memzero(r, sizeof *r);
    free(r);
    errno = e;
    return NULL;
}

struct mbox *rpath_mbox(struct rpath *r)
{
    return &r->mb;
}

void rpath_stop(struct rpath *r)
{
    if (!r)
        return;
    uv_async_send(&r->stop); /* harmless after MB_ENDED: finish() runs twice */
    pthread_join(r->thread, NULL);
    close_loop(r);
    wipe_link(&r->link);
    sodium_memzero(r, sizeof *r);
    free(r);
}
