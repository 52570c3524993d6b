/* The serving responder's table of suspended sessions: see rwait.h. */
#include "peer/rwait.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/clock.h"
#include "common/log.h"
#include "peer/exit.h"
#include "peer/rpath.h"

struct rwait_ent {
    struct rwait_ent *next;
    struct rwait *t;
    bool waiting;           /* its attempt runs: resume orders for root are taken */
    struct serve_resume sr; /* valid while waiting */
    bool has_link;          /* a won link not taken by the attempt yet */
    struct peer_link link;
};

struct rwait {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a link was given */
    struct rwait_ent *head;
    unsigned suspensions; /* attempts begun, under mu */
};

#define RWAIT_POLL_MS 50 /* how soon a cancel or the deadline is seen */

struct rwait *rwait_new(void)
{
    struct rwait *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    return t;
}

void rwait_free(struct rwait *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
}

struct rwait_ent *rwait_add(struct rwait *t)
{
    struct rwait_ent *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->t = t;
    e->link.fd = -1;
    pthread_mutex_lock(&t->mu);
    e->next = t->head;
    t->head = e;
    pthread_mutex_unlock(&t->mu);
    return e;
}

static void drop_link(struct peer_link *l)
{
    if (l->fd >= 0)
        close(l->fd);
    sodium_memzero(l, sizeof *l);
    l->fd = -1;
}

void rwait_remove(struct rwait_ent *e)
{
    if (!e)
        return;
    struct rwait *t = e->t;
    pthread_mutex_lock(&t->mu);
    for (struct rwait_ent **p = &t->head; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            break;
        }
    pthread_mutex_unlock(&t->mu);
    drop_link(&e->link);
    sodium_memzero(e, sizeof *e);
    free(e);
}

/* Under the lock: the entry waiting for root, or NULL. */
static struct rwait_ent *find_waiting(struct rwait *t, const char *root)
{
    for (struct rwait_ent *e = t->head; e; e = e->next)
        if (e->waiting && strcmp(e->sr.root, root) == 0)
            return e;
    return NULL;
}

bool rwait_find(struct rwait *t, const char *root, struct serve_resume *sr, char *why,
                size_t whylen)
{
    struct rwait_ent *e;
    pthread_mutex_lock(&t->mu);
    if ((e = find_waiting(t, root)))
        *sr = e->sr;
    pthread_mutex_unlock(&t->mu);
    if (!e)
        snprintf(why, whylen, "no session of ours with root %s is suspended", root);
    return e != NULL;
}

void rwait_give(struct rwait *t, const char *root, struct peer_link *link)
{
    struct rwait_ent *e;
    pthread_mutex_lock(&t->mu);
    e = find_waiting(t, root);
    if (e && !e->has_link) {
        e->link = *link;
        e->has_link = true;
        link->fd = -1;
        pthread_cond_broadcast(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    if (link->fd >= 0)
        LOG_I("resume of %s: nobody waits for it any more; closing the connection", root);
    drop_link(link);
}

/* The suspended session, as a resume order is checked against and punched with. */
static void publish(struct rwait_ent *e, const struct resume_link_cfg *r)
{
    const struct rpath_cfg *c = r->c;
    struct serve_resume *sr = &e->sr;
    snprintf(sr->root, sizeof sr->root, "%s", c->root);
    snprintf(sr->peer, sizeof sr->peer, "%s", c->peer);
    memcpy(sr->peer_key, c->peer_key, sizeof sr->peer_key);
    sr->role = c->role;
    memcpy(sr->rs, c->rs, sizeof sr->rs);
    sr->last_epoch = r->last_epoch;
    sr->rx = r->rx;
    e->waiting = true;
    e->t->suspensions++;
}

unsigned rwait_suspensions(struct rwait *t)
{
    pthread_mutex_lock(&t->mu);
    unsigned n = t->suspensions;
    pthread_mutex_unlock(&t->mu);
    return n;
}

static bool over(const struct resume_link_cfg *r)
{
    return __atomic_load_n(r->cancel, __ATOMIC_ACQUIRE) != 0 || clk_ms() >= r->deadline_ms;
}

static void wait_a_little(struct rwait *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += RWAIT_POLL_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&t->cv, &t->mu, &ts);
}

int rwait_attempt(const struct resume_link_cfg *r, struct peer_link *link, char *why, size_t whylen)
{
    struct rwait_ent *e = r->c->attempt_arg;
    int rc = EXIT_PUNCH;
    if (!e) { /* rwait_add failed: nothing can route an order here */
        snprintf(why, whylen, "out of memory for the resume table");
        return EXIT_LOCAL;
    }
    pthread_mutex_lock(&e->t->mu);
    publish(e, r);
    LOG_D("resume: waiting for %s's resume order on our control connection", r->c->peer);
    while (!e->has_link && !over(r))
        wait_a_little(e->t);
    if (e->has_link) {
        *link = e->link;
        sodium_memzero(&e->link, sizeof e->link);
        e->link.fd = -1;
        e->has_link = false;
        rc = EXIT_DONE;
    } else {
        snprintf(why, whylen, "the resume was cancelled or its time is over");
    }
    e->waiting = false;
    sodium_memzero(&e->sr, sizeof e->sr);
    pthread_mutex_unlock(&e->t->mu);
    return rc;
}
