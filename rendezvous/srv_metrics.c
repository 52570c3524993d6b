#include "rendezvous/srv_metrics.h"

#include "rendezvous/metrics.h"
#include "rendezvous/mhttp.h"
#include "rendezvous/procself.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/* /proc is read at most this often, so that a scraper that asks in a loop never turns it into
 * work for the server's loop (each read is bounded too: procself.h) */
#define SMX_PROC_MS 1000

struct smx {
    struct srv *s;
    struct mh *mh;
    double start_s;
    uint64_t proc_ms; /* uv_now of the last /proc read + 1 (0: never) */
    uint64_t rss, fds;
};

static void smx_proc(struct smx *x)
{
    uint64_t now = uv_now(x->s->loop);
    if (x->proc_ms && now + 1 - x->proc_ms < SMX_PROC_MS)
        return;
    x->proc_ms = now + 1;
    x->rss = ps_rss_bytes();
    x->fds = ps_open_fds();
}

static void smx_view(struct smx *x, struct mtr_view *v)
{
    struct srv *s = x->s;
    struct rly_stats rs = {0};
    memset(v, 0, sizeof *v);
    v->m = &s->mtr;
    /* counted as they move (conn.c): a scrape costs the same at 10 peers as at 100 000 */
    v->peers[MTR_FAM_IPV4] = s->conns.peers[0];
    v->peers[MTR_FAM_IPV6] = s->conns.peers[1];
    v->conns[MTR_CONN_HELLO] = s->conns.fresh.n;
    v->conns[MTR_CONN_LIVE] = s->conns.live.n;
    v->conns[MTR_CONN_LINGER] = s->conns.linger.n;
    v->max_peers = s->cfg.max_peers;
    if (s->rly)
        rly_stats(s->rly, &rs);
    v->relay_active = rs.active;
    v->relay_total = rs.sessions;
    v->relay_bytes = rs.bytes;
    smx_proc(x);
    v->rss_bytes = x->rss;
    v->open_fds = x->fds;
    v->cluster = s->cl != NULL;
    v->redis_up = cl_is_up(s->cl);
    v->redis_rtt_s = cl_redis_rtt_us(s->cl) / 1e6;
    v->draining = s->stopping;
    v->codes_open = s->wh ? wh_open_count(s->wh) : 0;
    v->version = TCPUNCH_VERSION;
    v->start_time_s = x->start_s;
}

static size_t smx_render(void *data, char *buf, size_t cap)
{
    struct smx *x = data;
    struct mtr_view v;
    struct mtr m = x->s->mtr;
    struct rly_stats rs = {0};
    smx_view(x, &v);
    /* the relay's own error lines (relay-timeout, server-shutdown to a waiting side) */
    if (x->s->rly) {
        rly_stats(x->s->rly, &rs);
        for (int c = 0; c < PC_COUNT; c++)
            m.errors[c] += rs.errors[c];
    }
    v.m = &m;
    return mtr_render(&v, buf, cap);
}

static bool smx_healthy(void *data)
{
    struct smx *x = data;
    return !x->s->stopping;
}

struct smx *smx_start(struct srv *s, const struct sockaddr *sa, char *err, size_t errlen)
{
    struct smx *x = calloc(1, sizeof *x);
    struct mh_user u = {.render = smx_render, .healthy = smx_healthy};
    struct timeval tv;
    if (!x) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    x->s = s;
    gettimeofday(&tv, NULL);
    x->start_s = (double)tv.tv_sec + tv.tv_usec / 1e6;
    u.data = x;
    if (!(x->mh = mh_start(s->loop, sa, &u, err, errlen))) {
        free(x);
        return NULL;
    }
    return x;
}

void smx_stop(struct smx *x)
{
    if (!x)
        return;
    mh_close(x->mh);
    free(x);
}
