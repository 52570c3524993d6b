/* peer/rwait: listen --forward's table of suspended sessions. The test plays both sides: the
 * path side (rwait_attempt on a thread of its own, as rpath runs it) and the control connection
 * (rwait_find before dialling, rwait_give with the won link). */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "peer/exit.h"
#include "peer/rpath.h"
#include "peer/rwait.h"

struct att {
    struct rpath_cfg c;
    struct resume_link_cfg r;
    volatile int cancel;
    struct peer_link link;
    char why[200];
    int rc;
    pthread_t t;
};

static void *att_main(void *arg)
{
    struct att *a = arg;
    a->rc = rwait_attempt(&a->r, &a->link, a->why, sizeof a->why);
    return NULL;
}

/* An attempt for the session with root, waiting up to ms, on the entry e. */
static void att_start(struct att *a, struct rwait_ent *e, const char *root, uint64_t ms)
{
    memset(a, 0, sizeof *a);
    snprintf(a->c.root, sizeof a->c.root, "%s", root);
    snprintf(a->c.peer, sizeof a->c.peer, "alice");
    memset(a->c.peer_key, 0xa1, sizeof a->c.peer_key);
    memset(a->c.rs, 0x5e, sizeof a->c.rs);
    a->c.role = PROTO_RESPONDER;
    a->c.attempt_arg = e;
    a->r = (struct resume_link_cfg){.c = &a->c,
                                    .rx = 4242,
                                    .last_epoch = 3,
                                    .deadline_ms = clk_ms() + ms,
                                    .cancel = &a->cancel};
    a->link.fd = -1;
    a->rc = -1;
    pthread_create(&a->t, NULL, att_main, a);
}

/* Until the table counts n suspensions (the attempt published its session). */
static bool wait_suspensions(struct rwait *t, unsigned n)
{
    for (int i = 0; i < 200; i++) {
        if (rwait_suspensions(t) >= n)
            return true;
        usleep(10 * 1000);
    }
    return false;
}

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/* Nothing waits before the attempt runs: an order for the root is refused (never dialled). */
static void t_idle_refused(void)
{
    struct rwait *t = rwait_new();
    struct rwait_ent *e = rwait_add(t);
    struct serve_resume sr;
    char why[200] = "";
    CHECK(e != NULL);
    CHECK(!rwait_find(t, "r1", &sr, why, sizeof why));
    CHECK(strstr(why, "r1") != NULL);
    CHECK_INT(rwait_suspensions(t), 0);
    rwait_remove(e);
    rwait_free(t);
}

/* The waiting session is found by its root only, with its state; the link given to it is what
 * the attempt returns. */
static void t_give_to_waiting(void)
{
    struct rwait *t = rwait_new();
    struct rwait_ent *e = rwait_add(t), *other = rwait_add(t);
    struct serve_resume sr;
    struct peer_link l;
    struct att a;
    char why[200];
    int sv[2];

    att_start(&a, e, "root-one", 5000);
    CHECK(wait_suspensions(t, 1));
    CHECK(!rwait_find(t, "root-two", &sr, why, sizeof why));
    CHECK(rwait_find(t, "root-one", &sr, why, sizeof why));
    CHECK(strcmp(sr.peer, "alice") == 0);
    CHECK(sr.role == PROTO_RESPONDER);
    CHECK(sr.rx == 4242);
    CHECK(sr.last_epoch == 3);
    CHECK(sr.rs[0] == 0x5e && sr.rs[31] == 0x5e);
    CHECK(sr.peer_key[0] == 0xa1);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    memset(&l, 0, sizeof l);
    l.fd = sv[0];
    l.epoch = 4;
    l.peer_rx = 99;
    rwait_give(t, "root-one", &l);
    CHECK_INT(l.fd, -1); /* taken */
    pthread_join(a.t, NULL);
    CHECK_INT(a.rc, EXIT_DONE);
    CHECK_INT(a.link.fd, sv[0]);
    CHECK(a.link.epoch == 4 && a.link.peer_rx == 99);
    /* over: the root is not taken any more */
    CHECK(!rwait_find(t, "root-one", &sr, why, sizeof why));
    close(a.link.fd);
    close(sv[1]);
    rwait_remove(other);
    rwait_remove(e);
    rwait_free(t);
}

/* A cancelled attempt returns at once; a link that comes later is closed, not leaked. */
static void t_cancel_then_late_link(void)
{
    struct rwait *t = rwait_new();
    struct rwait_ent *e = rwait_add(t);
    struct peer_link l;
    struct att a;
    int sv[2];
    uint64_t t0;

    att_start(&a, e, "r", 30000);
    CHECK(wait_suspensions(t, 1));
    t0 = clk_ms();
    __atomic_store_n(&a.cancel, 1, __ATOMIC_RELEASE);
    pthread_join(a.t, NULL);
    CHECK(clk_ms() - t0 < 2000);
    CHECK_INT(a.rc, EXIT_PUNCH);
    CHECK_INT(a.link.fd, -1);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    memset(&l, 0, sizeof l);
    l.fd = sv[0];
    rwait_give(t, "r", &l);
    CHECK(!fd_open(sv[0]));
    close(sv[1]);
    rwait_remove(e);
    rwait_free(t);
}

/* The deadline ends the wait by itself; a second suspension is counted again. */
static void t_deadline(void)
{
    struct rwait *t = rwait_new();
    struct rwait_ent *e = rwait_add(t);
    struct att a;

    att_start(&a, e, "r", 200);
    pthread_join(a.t, NULL);
    CHECK_INT(a.rc, EXIT_PUNCH);
    att_start(&a, e, "r", 100);
    pthread_join(a.t, NULL);
    CHECK_INT(rwait_suspensions(t), 2);
    rwait_remove(e);
    rwait_free(t);
}

/* No entry (out of memory at the session's start): the attempt fails, nothing is published. */
static void t_no_entry(void)
{
    struct att a;
    att_start(&a, NULL, "r", 1000);
    pthread_join(a.t, NULL);
    CHECK_INT(a.rc, EXIT_LOCAL);
}

CHECK_MAIN(TEST(t_idle_refused), TEST(t_give_to_waiting), TEST(t_cancel_then_late_link),
           TEST(t_deadline), TEST(t_no_entry))
