#include "peer/splice.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "common/endpoint.h"
#include "common/log.h"
#include "common/sock.h"
#include "peer/options.h"
#include "peer/control.h"
#include "peer/pipe.h"
#include "peer/events.h"
#include "peer/rwait.h"

/* ---- shared pieces ---- */

bool spl_take(struct spl_slots *s)
{
    int n = atomic_load(&s->used);
    while (n < s->max)
        if (atomic_compare_exchange_weak(&s->used, &n, n + 1))
            return true;
    return false;
}

void spl_give(struct spl_slots *s)
{
    atomic_fetch_sub(&s->used, 1);
}

int spl_spawn(void *(*fn)(void *), void *arg)
{
    pthread_attr_t at;
    pthread_t t;
    int rc;
    if (pthread_attr_init(&at) != 0)
        return -1;
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    /* a session needs little stack: the pump's buffers are on the heap */
    pthread_attr_setstacksize(&at, 256 * 1024);
    rc = pthread_create(&t, &at, fn, arg);
    pthread_attr_destroy(&at);
    return rc == 0 ? 0 : -1;
}

int spl_dial(const struct sockaddr_storage *to, int timeout_ms, char *err, size_t errlen)
{
    const struct sockaddr *sa = (const struct sockaddr *)to;
    struct pollfd pf;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), e = 0;
    socklen_t elen = sizeof e;

    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, sa, ep_len(sa)) < 0 && errno != EINPROGRESS) {
        e = errno;
        goto fail;
    }
    pf = (struct pollfd){.fd = fd, .events = POLLOUT};
    while ((e = poll(&pf, 1, timeout_ms)) < 0 && errno == EINTR)
        ;
    if (e == 0) {
        e = ETIMEDOUT;
        goto fail;
    }
    e = 0;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen);
    if (e)
        goto fail;
    sk_set_blocking(fd, true);
    return fd;
fail:
    snprintf(err, errlen, "%s", strerror(e ? e : errno));
    close(fd);
    return -1;
}

int spl_run(const struct peer_opts *o, struct peer_link *link, int fd)
{
    int rc = peer_pipe_fds(o, link, fd, fd);
    close(fd);
    return rc;
}

/* ---- listen --forward ---- */

struct spl_allow {
    char id[PROTO_MAX_ID + 1];
    char fp[ID_FP_SIZE]; /* "" when no key is pinned */
};

struct spl_fwd {
    const struct peer_opts *o;
    struct sockaddr_storage to;
    struct rwait *rw; /* the suspended sessions, for resume orders on our control connection */
    struct spl_slots slots;
    int nallow;
    struct spl_allow allow[PEER_MAX_ALLOW];
};

struct spl_fwd_job {
    struct spl_fwd *f;
    struct peer_link link;
};

static const struct spl_allow *spl_allowed(const struct spl_fwd *f, const char *peer)
{
    for (int i = 0; i < f->nallow; i++)
        if (strcmp(f->allow[i].id, peer) == 0)
            return &f->allow[i];
    return NULL;
}

/* Runs on the control connection's thread, before anything is dialled: a refused peer never
 * causes a connection to HOST:PORT. */
static bool spl_fwd_admit(void *arg, const char *peer, char *fp, size_t fplen, char *why,
                          size_t whylen)
{
    struct spl_fwd *f = arg;
    const struct spl_allow *a = spl_allowed(f, peer);
    if (f->nallow && !a) {
        snprintf(why, whylen, "not allowed (--allow)");
        return false;
    }
    if (!spl_take(&f->slots)) {
        snprintf(why, whylen, "%d sessions are running already (--max-sessions)", f->slots.max);
        return false;
    }
    snprintf(fp, fplen, "%s", a ? a->fp : "");
    return true;
}

static void spl_fwd_failed(void *arg, const char *peer, int status)
{
    struct spl_fwd *f = arg;
    (void)peer, (void)status;
    spl_give(&f->slots);
}

/* A resumable session's path side waits in f->rw (peer/rwait.h) for the resume order our
 * control connection takes; it never registers again, and the local connection fd stays. */
static void spl_fwd_run(struct spl_fwd *f, struct peer_link *link, int fd)
{
    struct rwait_ent *e = NULL;
    struct pipe_path pp = {rwait_attempt, NULL};
    if (link->encrypted && link->resume && !(e = rwait_add(f->rw)))
        LOG_W("session with %s: out of memory; it cannot be resumed", link->peer);
    pp.arg = e;
    peer_pipe_fds_path(f->o, link, fd, fd, &pp);
    close(fd);
    rwait_remove(e);
}

static bool spl_fwd_resume_find(void *arg, const char *root, struct serve_resume *sr, char *why,
                                size_t whylen)
{
    struct spl_fwd *f = arg;
    return rwait_find(f->rw, root, sr, why, whylen);
}

static void spl_fwd_resumed(void *arg, const char *root, struct peer_link *link)
{
    struct spl_fwd *f = arg;
    rwait_give(f->rw, root, link);
}

static unsigned spl_fwd_suspensions(void *arg)
{
    struct spl_fwd *f = arg;
    return rwait_suspensions(f->rw);
}

static void *spl_fwd_thread(void *arg)
{
    struct spl_fwd_job *j = arg;
    struct spl_fwd *f = j->f;
    char err[300], ep[EP_STRLEN];
    int fd;

    peer_report(f->o, &j->link);
    fd = spl_dial(&f->to, SPL_DIAL_TIMEOUT_MS, err, sizeof err);
    if (fd < 0) {
        /* the peer sees the stream end without its final record: not a clean end */
        LOG_E("session with %s: cannot connect to %s: %s", j->link.peer,
              ep_format((const struct sockaddr *)&f->to, ep, sizeof ep), err);
        close(j->link.fd);
    } else {
        LOG_I("session with %s: forwarding to %s", j->link.peer,
              ep_format((const struct sockaddr *)&f->to, ep, sizeof ep));
        spl_fwd_run(f, &j->link, fd);
    }
    sodium_memzero(&j->link, sizeof j->link);
    free(j);
    spl_give(&f->slots);
    return NULL;
}

static void spl_fwd_linked(void *arg, struct peer_link *link)
{
    struct spl_fwd *f = arg;
    struct spl_fwd_job *j = malloc(sizeof *j);
    if (j) {
        j->f = f;
        j->link = *link;
        if (spl_spawn(spl_fwd_thread, j) == 0)
            return;
        sodium_memzero(&j->link, sizeof j->link);
        free(j);
    }
    LOG_E("session with %s: cannot start a thread for it", link->peer);
    close(link->fd);
    spl_give(&f->slots);
}

/* --allow ID or ID=KEY, KEY as --peer-key takes it. */
static int spl_parse_allow(struct spl_fwd *f, const char *arg)
{
    struct spl_allow *a = &f->allow[f->nallow];
    if (opts_peer_entry("--allow", arg, a->id, a->fp, sizeof a->fp) != EXIT_DONE)
        return EXIT_USAGE;
    if (spl_allowed(f, a->id))
        return opts_bad("--allow: %s is listed twice", a->id);
    f->nallow++;
    return EXIT_DONE;
}

int spl_forward(const struct peer_opts *o)
{
    struct spl_fwd *f = calloc(1, sizeof *f);
    struct peer_serve sv = {.admit = spl_fwd_admit,
                            .failed = spl_fwd_failed,
                            .linked = spl_fwd_linked,
                            .resume_find = spl_fwd_resume_find,
                            .resumed = spl_fwd_resumed,
                            .suspensions = spl_fwd_suspensions,
                            .arg = f};
    char err[300], ep[EP_STRLEN];
    int rc = EXIT_DONE;

    if (!f) {
        LOG_E("out of memory");
        return EXIT_LOCAL;
    }
    f->o = o;
    f->slots.max = o->max_sessions;
    if (!(f->rw = rwait_new())) {
        LOG_E("out of memory");
        rc = EXIT_LOCAL;
        goto out;
    }
    for (int i = 0; i < o->nallow && rc == EXIT_DONE; i++)
        rc = spl_parse_allow(f, o->allow[i]);
    if (rc != EXIT_DONE)
        goto out;
    if (ep_check_syntax(o->forward, false, err, sizeof err) < 0) {
        rc = opts_bad("--forward %s", err);
        goto out;
    }
    if (ep_resolve(o->forward, false, &f->to, err, sizeof err) < 0) {
        LOG_E("--forward %s", err);
        rc = EXIT_LOCAL;
        goto out;
    }
    LOG_I("forwarding every session to %s", ep_format((struct sockaddr *)&f->to, ep, sizeof ep));
    /* threads still splicing hold f: it lives until the process ends */
    return peer_serve(o, &sv);
out:
    rwait_free(f->rw);
    free(f);
    return rc;
}

/* ---- connect --local ---- */

struct spl_loc {
    const struct peer_opts *o;
    const char *peer;
    struct spl_slots slots;
};

struct spl_loc_job {
    struct spl_loc *l;
    int fd;
};

static void *spl_loc_thread(void *arg)
{
    struct spl_loc_job *j = arg;
    struct spl_loc *l = j->l;
    struct peer_link link;

    /* a fresh auxiliary control connection: a new local port, so a new NAT mapping and a
     * 4-tuple no other session uses */
    if (peer_rendezvous_aux(l->o, l->peer, &link) == EXIT_DONE) {
        peer_report(l->o, &link);
        spl_run(l->o, &link, j->fd);
    } else {
        close(j->fd);
    }
    sodium_memzero(&link, sizeof link);
    free(j);
    spl_give(&l->slots);
    return NULL;
}

/* [ADDR:]PORT, the address 127.0.0.1 when left out. */
static int spl_loc_addr(const char *arg, struct sockaddr_storage *out)
{
    char buf[300], err[300];
    if (!strchr(arg, ':'))
        snprintf(buf, sizeof buf, "127.0.0.1:%s", arg);
    else
        snprintf(buf, sizeof buf, "%s", arg);
    if (ep_check_syntax(buf, false, err, sizeof err) < 0)
        return opts_bad("--local %s", err);
    if (ep_resolve(buf, false, out, err, sizeof err) < 0) {
        LOG_E("--local %s", err);
        return EXIT_LOCAL;
    }
    return EXIT_DONE;
}

/* A blocking listener. No SO_REUSEPORT, unlike the punch port: a second tcpunch on the same
 * port must fail, not quietly take half of the clients. */
static int spl_listen(const struct sockaddr_storage *at, char *err, size_t errlen)
{
    const struct sockaddr *sa = (const struct sockaddr *)at;
    int one = 1, fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, sa, ep_len(sa)) < 0 || listen(fd, 64) < 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void spl_loc_accepted(struct spl_loc *l, int fd)
{
    struct spl_loc_job *j;
    if (!spl_take(&l->slots)) {
        LOG_W("refusing a local client: %d sessions are running already (--max-sessions)",
              l->slots.max);
        close(fd);
        return;
    }
    if ((j = malloc(sizeof *j))) {
        j->l = l;
        j->fd = fd;
        if (spl_spawn(spl_loc_thread, j) == 0)
            return;
        free(j);
    }
    LOG_E("cannot start a session for a local client (out of memory or threads)");
    close(fd);
    spl_give(&l->slots);
}

int spl_local(const struct peer_opts *o, const char *peer)
{
    struct spl_loc *l = calloc(1, sizeof *l);
    struct sockaddr_storage at;
    char err[300], ep[EP_STRLEN];
    int lfd, rc;

    if (!l) {
        LOG_E("out of memory");
        return EXIT_LOCAL;
    }
    l->o = o;
    l->peer = peer;
    l->slots.max = o->max_sessions;
    if ((rc = spl_loc_addr(o->local, &at)) != EXIT_DONE)
        goto out;
    if ((lfd = spl_listen(&at, err, sizeof err)) < 0) {
        LOG_E("--local %s: %s", ep_format((struct sockaddr *)&at, ep, sizeof ep), err);
        rc = EXIT_LOCAL;
        goto out;
    }
    LOG_N("listening on %s; every connection goes to %s",
          ep_format((struct sockaddr *)&at, ep, sizeof ep), peer);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            spl_loc_accepted(l, fd);
        } else if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            LOG_W("cannot accept a local client: %s", strerror(errno));
            usleep(100 * 1000); /* until a session ends and frees a descriptor */
        } else if (errno != EINTR && errno != ECONNABORTED) {
            LOG_E("--local: accept: %s", strerror(errno));
            break;
        }
    }
    close(lfd);
    return EXIT_LOCAL; /* sessions still running hold l: it is not freed */
out:
    free(l);
    return rc;
}
