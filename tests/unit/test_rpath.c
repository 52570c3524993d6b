/* peer/rpath: the path side's thread against a scripted attempt function (the real one is
 * peer_resume_link, which needs a server). The test plays the data plane: it pushes MB_LOST /
 * MB_ENDED and polls the mailbox's eventfd for MB_CONN / MB_GIVE_UP. Timing is checked only
 * with generous bounds (2 cores shared); the order and count of attempts exactly. */
#include "check.h"

#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "peer/exit.h"
#include "peer/migrate.h"
#include "peer/opts.h"
#include "peer/resume.h"
#include "peer/rpath.h"

/* rpath.c's default; every test here sets cfg.attempt, so reaching this is a failure */
int peer_resume_link(const struct resume_link_cfg *r, struct peer_link *link, char *why,
                     size_t whylen)
{
    (void)r;
    (void)link;
    snprintf(why, whylen, "the real attempt was called");
    check_fail_(__FILE__, __LINE__, "peer_resume_link called instead of the scripted attempt");
    return EXIT_LOCAL;
}

/* The open fds, after libuv's process-wide ones (its first loop opens a signal-lock pipe kept
 * until exit), so that a count before and after a path side compares only what it opened. */
static int count_fds(void)
{
    static bool warm;
    if (!warm) {
        uv_loop_t l;
        uv_loop_init(&l);
        uv_loop_close(&l);
        warm = true;
    }
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the DIR's own fd */
}

/* The script: what each attempt returns. */
enum step_kind {
    S_FAIL,  /* returns rc at once */
    S_CONN,  /* EXIT_DONE with a socketpair end, keys, epoch */
    S_GONE,  /* EXIT_DONE with gone set (and an fd the path side must close) */
    S_BLOCK, /* waits for cancel, then returns EXIT_PUNCH */
};

struct step {
    enum step_kind k;
    int rc;
};

#define MAX_CALLS 32
static struct {
    pthread_mutex_t mu;
    const struct step *steps;
    int nsteps;
    int calls;
    uint64_t at[MAX_CALLS]; /* clk_ms() of each call */
    uint64_t rx[MAX_CALLS];
    uint32_t epoch[MAX_CALLS];
    uint64_t deadline[MAX_CALLS];
    bool direct_only[MAX_CALLS];
    bool saw_cancel;
    uint64_t cancel_at;
    int other_end; /* the socketpair end the test keeps (S_CONN) */
} sc = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void script(const struct step *s, int n)
{
    pthread_mutex_lock(&sc.mu);
    sc.steps = s;
    sc.nsteps = n;
    sc.calls = 0;
    sc.saw_cancel = false;
    sc.cancel_at = 0;
    sc.other_end = -1;
    pthread_mutex_unlock(&sc.mu);
}

static void fill_conn(struct peer_link *link, bool gone)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        link->fd = -1;
        return;
    }
    link->fd = sv[0];
    sc.other_end = sv[1];
    link->epoch = 7;
    link->peer_rx = 123456;
    link->gone = gone;
    memset(link->tx_key, 0xA1, sizeof link->tx_key);
    memset(link->rx_key, 0xB2, sizeof link->rx_key);
    memcpy(link->prefill, "hello", 5);
    link->prefill_len = 5;
}

static int scripted(const struct resume_link_cfg *r, struct peer_link *link, char *why,
                    size_t whylen)
{
    pthread_mutex_lock(&sc.mu);
    int i = sc.calls++;
    if (i < MAX_CALLS) {
        sc.at[i] = clk_ms();
        sc.rx[i] = r->rx;
        sc.epoch[i] = r->last_epoch;
        sc.deadline[i] = r->deadline_ms;
        sc.direct_only[i] = r->direct_only;
    }
    struct step s = i < sc.nsteps ? sc.steps[i] : (struct step){S_FAIL, EXIT_PUNCH};
    if (s.k == S_CONN || s.k == S_GONE)
        fill_conn(link, s.k == S_GONE);
    pthread_mutex_unlock(&sc.mu);
    if (s.k == S_BLOCK) {
        uint64_t t0 = clk_ms();
        while (!__atomic_load_n(r->cancel, __ATOMIC_ACQUIRE) && clk_ms() - t0 < 10000)
            usleep(2000);
        pthread_mutex_lock(&sc.mu);
        sc.saw_cancel = __atomic_load_n(r->cancel, __ATOMIC_ACQUIRE) != 0;
        sc.cancel_at = clk_ms();
        pthread_mutex_unlock(&sc.mu);
        snprintf(why, whylen, "cancelled");
        return EXIT_PUNCH;
    }
    if (s.k == S_FAIL) {
        snprintf(why, whylen, "scripted failure %d", i);
        return s.rc;
    }
    return EXIT_DONE;
}

static struct rpath_cfg cfg_of(uint64_t timeout_ms)
{
    struct rpath_cfg c;
    memset(&c, 0, sizeof c);
    c.role = PROTO_INITIATOR;
    snprintf(c.root, sizeof c.root, "%s", "0123456789abcdef0123456789abcdef");
    snprintf(c.peer, sizeof c.peer, "%s", "bob");
    memset(c.rs, 0x55, sizeof c.rs);
    c.timeout_ms = timeout_ms;
    c.attempt = scripted;
    return c;
}

static void push_lost(struct rpath *r, uint64_t rx, uint32_t epoch)
{
    struct mb_msg m;
    memset(&m, 0, sizeof m);
    m.kind = MB_LOST;
    m.conn.fd = -1;
    m.conn.peer_rx = rx;
    m.conn.epoch = epoch;
    snprintf(m.why, sizeof m.why, "connection reset by peer");
    CHECK_INT(mb_to_path(rpath_mbox(r), &m), 0);
}

/* the data plane refused the connection just handed over (rpump: a lying offset) */
static void push_refused(struct rpath *r, uint64_t rx, uint32_t epoch)
{
    struct mb_msg m;
    memset(&m, 0, sizeof m);
    m.kind = MB_LOST;
    m.status = MB_LOST_REFUSED;
    m.conn.fd = -1;
    m.conn.peer_rx = rx;
    m.conn.epoch = epoch;
    snprintf(m.why, sizeof m.why, "the new connection was refused");
    CHECK_INT(mb_to_path(rpath_mbox(r), &m), 0);
}

static void push_ended(struct rpath *r)
{
    struct mb_msg m;
    memset(&m, 0, sizeof m);
    m.kind = MB_ENDED;
    m.conn.fd = -1;
    CHECK_INT(mb_to_path(rpath_mbox(r), &m), 0);
}

/* The data plane's wait: the next message towards it within ms, false if none. */
static bool wait_data(struct rpath *r, int ms, struct mb_msg *out)
{
    struct pollfd p = {.fd = mb_fd(rpath_mbox(r)), .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return false;
    return mb_take(rpath_mbox(r), MB_DATA, out);
}

static void t_conn(void)
{
    int fds0 = count_fds();
    static const struct step s[] = {{S_CONN, 0}};
    script(s, 1);
    struct rpath_cfg c = cfg_of(10000);
    struct rpath *r = rpath_start(&c);
    if (!CHECK(r))
        return;
    push_lost(r, 4242, 3);
    struct mb_msg m;
    if (CHECK(wait_data(r, 5000, &m))) {
        CHECK_INT(m.kind, MB_CONN);
        CHECK(m.conn.fd >= 0);
        CHECK_INT(m.conn.epoch, 7);
        CHECK_INT(m.conn.peer_rx, 123456);
        unsigned char a1[32], b2[32];
        memset(a1, 0xA1, 32);
        memset(b2, 0xB2, 32);
        CHECK(memcmp(m.conn.tx, a1, 32) == 0);
        CHECK(memcmp(m.conn.rx, b2, 32) == 0);
        CHECK_INT(m.conn.prefill_len, 5);
        CHECK(memcmp(m.conn.prefill, "hello", 5) == 0);
        /* the fd is the attempt's socket: what we write at the other end arrives */
        CHECK_INT(write(sc.other_end, "x", 1), 1);
        char ch = 0;
        CHECK_INT(read(m.conn.fd, &ch, 1), 1);
        CHECK_INT(ch, 'x');
        close(m.conn.fd);
    }
    CHECK_INT(sc.calls, 1);
    CHECK_INT(sc.rx[0], 4242);
    CHECK_INT(sc.epoch[0], 3);
    /* the attempt's deadline is the session's: about timeout_ms after the MB_LOST */
    CHECK(sc.deadline[0] > sc.at[0] + 8000 && sc.deadline[0] <= sc.at[0] + 10000);
    push_ended(r);
    rpath_stop(r);
    close(sc.other_end);
    CHECK_INT(count_fds(), fds0);
}

/* Failures are retried with the tables' waits: peer-not-found (EXIT_NO_PEER) 250, 500, 1000 ms,
 * a failed punch 0, 1000 ms. */
static void t_retries(void)
{
    int fds0 = count_fds();
    static const struct step s[] = {
        {S_FAIL, EXIT_NO_PEER}, {S_FAIL, EXIT_NO_PEER}, {S_FAIL, EXIT_NO_PEER}, {S_CONN, 0}};
    script(s, 4);
    struct rpath_cfg c = cfg_of(20000);
    struct rpath *r = rpath_start(&c);
    if (!CHECK(r))
        return;
    push_lost(r, 1, 1);
    struct mb_msg m;
    if (CHECK(wait_data(r, 10000, &m))) {
        CHECK_INT(m.kind, MB_CONN);
        close(m.conn.fd);
    }
    CHECK_INT(sc.calls, 4);
    for (int i = 1; i < 4 && i < sc.calls; i++) {
        uint64_t base = resume_next_ms(i - 1, true, 0), gap = sc.at[i] - sc.at[i - 1];
        /* never shorter than the table (a few ms of timer rounding), generous above */
        CHECK(gap + 5 >= base);
        CHECK(gap <= base + base / 4 + 1500);
    }
    push_ended(r);
    rpath_stop(r);
    close(sc.other_end);

    static const struct step p[] = {{S_FAIL, EXIT_PUNCH}, {S_FAIL, EXIT_PUNCH}, {S_CONN, 0}};
    script(p, 3);
    r = rpath_start(&c);
    if (!CHECK(r))
        return;
    push_lost(r, 1, 1);
    if (CHECK(wait_data(r, 10000, &m))) {
        CHECK_INT(m.kind, MB_CONN);
        close(m.conn.fd);
    }
    CHECK_INT(sc.calls, 3);
    if (sc.calls == 3) {
        CHECK(sc.at[1] - sc.at[0] < 1000); /* 0 ms: at once */
        CHECK(sc.at[2] - sc.at[1] + 5 >= 1000);
        CHECK(sc.at[2] - sc.at[1] <= 1250 + 1500);
    }
    push_ended(r);
    rpath_stop(r);
    close(sc.other_end);
    CHECK_INT(count_fds(), fds0);
}

static void t_deadline(void)
{
    int fds0 = count_fds();
    static const struct step s[] = {{S_FAIL, EXIT_PUNCH}};
    script(s, 1); /* then every call fails too */
    struct rpath_cfg c = cfg_of(1500);
    struct rpath *r = rpath_start(&c);
    if (!CHECK(r))
        return;
    uint64_t t0 = clk_ms();
    push_lost(r, 1, 1);
    struct mb_msg m;
    if (CHECK(wait_data(r, 8000, &m))) {
        CHECK_INT(m.kind, MB_GIVE_UP);
        CHECK_INT(m.status, EXIT_NOT_RESUMED);
        CHECK_STR(m.why, "the connection to bob was lost and not resumed within 1 s");
        uint64_t el = clk_ms() - t0;
        CHECK(el + 5 >= 1500 && el < 5000);
    }
    /* at 0, at once again (0 ms), after 1000-1250 ms, then the 2 s wait is cut by the deadline;
     * a loaded machine (CI runs tests two at a time) may not even reach the second before the
     * deadline: what is checked is that the deadline ends it, and that no more than the table
     * allows were made */
    CHECK_MSG(sc.calls >= 1 && sc.calls <= 3, "%d attempts", sc.calls);
    push_ended(r);
    rpath_stop(r);

    /* an attempt that outlives the deadline is cancelled by it, and the session gives up */
    static const struct step b[] = {{S_BLOCK, 0}};
    script(b, 1);
    c = cfg_of(800);
    r = rpath_start(&c);
    if (!CHECK(r))
        return;
    t0 = clk_ms();
    push_lost(r, 1, 1);
    if (CHECK(wait_data(r, 8000, &m))) {
        CHECK_INT(m.kind, MB_GIVE_UP);
        CHECK_INT(m.status, EXIT_NOT_RESUMED);
        CHECK(clk_ms() - t0 < 5000);
    }
    CHECK_INT(sc.calls, 1);
    CHECK(sc.saw_cancel);
    push_ended(r);
    rpath_stop(r);

    /* resume off (timeout 0): gives up at once, without an attempt */
    script(s, 1);
    c = cfg_of(0);
    r = rpath_start(&c);
    if (!CHECK(r))
        return;
    push_lost(r, 1, 1);
    if (CHECK(wait_data(r, 5000, &m)))
        CHECK_INT(m.status, EXIT_NOT_RESUMED);
    CHECK_INT(sc.calls, 0);
    push_ended(r);
    rpath_stop(r);
    CHECK_INT(count_fds(), fds0);
}

static void t_gone(void)
{
    int fds0 = count_fds();
    static const struct step s[] = {{S_GONE, 0}};
    script(s, 1);
    struct rpath_cfg c = cfg_of(10000);
    struct rpath *r = rpath_start(&c);
    if (!CHECK(r))
        return;
    push_lost(r, 1, 1);
    struct mb_msg m;
    if (CHECK(wait_data(r, 5000, &m))) {
        CHECK_INT(m.kind, MB_GIVE_UP);
        CHECK_INT(m.status, EXIT_LOST);
        CHECK_STR(m.why, "bob has ended this session");
    }
    CHECK_INT(sc.calls, 1);
    /* the gone link's socket was closed by the path side: our end sees EOF */
    char ch;
    CHECK_INT(read(sc.other_end, &ch, 1), 0);
    push_ended(r);
    rpath_stop(r);
    close(sc.other_end);
    CHECK_INT(count_fds(), fds0);
}

static void t_ended_during_attempt(void)
{
    int fds0 = count_fds();
    static const struct step s[] = {{S_BLOCK, 0}};
    script(s, 1);
    struct rpath_cfg c = cfg_of(60000);
    struct rpath *r = rpath_start(&c);
    if (!CHECK(r))
        return;
    push_lost(r, 1, 1);
    for (int i = 0; i < 500; i++) { /* until the attempt runs */
        pthread_mutex_lock(&sc.mu);
        int n = sc.calls;
        pthread_mutex_unlock(&sc.mu);
        if (n)
            break;
        usleep(2000);
    }
    uint64_t t0 = clk_ms();
    push_ended(r);
    rpath_stop(r);
    uint64_t el = clk_ms() - t0;
    CHECK(el < 2000);
    CHECK_INT(sc.calls, 1);
    CHECK(sc.saw_cancel);

    /* stop without MB_ENDED (the data plane could not push it) also stops the attempt */
    script(s, 1);
    r = rpath_start(&c);
    if (!CHECK(r))
        return;
    push_lost(r, 1, 1);
    usleep(50000);
    t0 = clk_ms();
    rpath_stop(r);
    CHECK(clk_ms() - t0 < 2000);
    CHECK(sc.saw_cancel);

    /* a stop with nothing running */
    r = rpath_start(&c);
    if (CHECK(r)) {
        push_ended(r);
        rpath_stop(r);
    }
    CHECK_INT(count_fds(), fds0);
}

/* After MB_CONN a second MB_LOST starts a new suspension: its own rx, epoch and waits. */
static void t_lost_again(void)
{
    int fds0 = count_fds();
    static const struct step s[] = {
        {S_FAIL, EXIT_PUNCH}, {S_CONN, 0}, {S_FAIL, EXIT_PUNCH}, {S_CONN, 0}};
    script(s, 4);
    struct rpath_cfg c = cfg_of(10000);
    struct rpath *r = rpath_start(&c);
    if (!CHECK(r))
        return;
    push_lost(r, 10, 1);
    struct mb_msg m;
    if (CHECK(wait_data(r, 5000, &m))) {
        CHECK_INT(m.kind, MB_CONN);
        close(m.conn.fd);
        close(sc.other_end);
    }
    push_lost(r, 20, 7);
    if (CHECK(wait_data(r, 5000, &m))) {
        CHECK_INT(m.kind, MB_CONN);
        close(m.conn.fd);
        close(sc.other_end);
    }
    CHECK_INT(sc.calls, 4);
    CHECK_INT(sc.rx[0], 10);
    CHECK_INT(sc.epoch[0], 1);
    CHECK_INT(sc.rx[2], 20);
    CHECK_INT(sc.epoch[2], 7);
    /* the new suspension's waits start again from the table's first (0 ms), not its second */
    CHECK(sc.at[3] - sc.at[2] < 900);
    push_ended(r);
    rpath_stop(r);
    CHECK_INT(count_fds(), fds0);
}

/* The calls so far (the attempt's thread writes them). */
static int calls_now(void)
{
    pthread_mutex_lock(&sc.mu);
    int n = sc.calls;
    pthread_mutex_unlock(&sc.mu);
    return n;
}

/* Relay first (cfg.upgrade): without any MB_LOST the path side tries to upgrade at once,
 * direct-only, rx 0 and epoch 0; a failed attempt is retried after 1 s; the won connection is
 * MB_CONN with upgrade set. */
static void t_upgrade(void)
{
    int fds0 = count_fds();
    static const struct step s[] = {{S_FAIL, EXIT_PUNCH}, {S_CONN, 0}, {S_CONN, 0}};
    static struct peer_opts o = {.timeout_ms = 3000};
    script(s, 3);
    struct rpath_cfg c = cfg_of(10000);
    c.o = &o;
    c.upgrade = true;
    uint64_t t0 = clk_ms();
    struct rpath *r = rpath_start(&c);
    if (!CHECK(r))
        return;
    struct mb_msg m;
    if (CHECK(wait_data(r, 5000, &m))) {
        CHECK_INT(m.kind, MB_CONN);
        CHECK(m.conn.upgrade);
        CHECK(m.conn.fd >= 0);
        close(m.conn.fd);
        close(sc.other_end);
    }
    CHECK_INT(sc.calls, 2);
    CHECK(sc.at[0] - t0 < 1000); /* at once */
    for (int i = 0; i < 2; i++) {
        CHECK(sc.direct_only[i]);
        CHECK_INT(sc.rx[i], 0);
        CHECK_INT(sc.epoch[i], 0);
        /* bounded by --timeout (plus a registration's time), not the resume timeout */
        CHECK(sc.deadline[i] <= sc.at[i] + 3000 + RESUME_NF_EVERY_MS);
    }
    CHECK(sc.at[1] - sc.at[0] + 5 >= (uint64_t)migrate_upgrade_wait_ms(1));
    CHECK(sc.at[1] - sc.at[0] <= (uint64_t)migrate_upgrade_wait_ms(1) + 1500);
    /* a later loss is an ordinary resume: not direct-only */
    push_lost(r, 77, 1);
    if (CHECK(wait_data(r, 5000, &m))) {
        CHECK_INT(m.kind, MB_CONN);
        CHECK(!m.conn.upgrade);
        close(m.conn.fd);
    }
    CHECK_INT(sc.calls, 3);
    CHECK(!sc.direct_only[2]);
    CHECK_INT(sc.rx[2], 77);
    push_ended(r);
    rpath_stop(r);
    close(sc.other_end);
    CHECK_INT(count_fds(), fds0);
}

/* Three failed upgrades, 1 s and 5 s apart, then none: the session stays where it is, and
 * nothing is pushed to the data plane. */
static void t_upgrade_gives_up(void)
{
    int fds0 = count_fds();
    static const struct step s[] = {
        {S_FAIL, EXIT_PUNCH}, {S_FAIL, EXIT_NO_PEER}, {S_FAIL, EXIT_PUNCH}, {S_CONN, 0}};
    static struct peer_opts o = {.timeout_ms = 1000};
    script(s, 4);
    struct rpath_cfg c = cfg_of(60000);
    c.o = &o;
    c.upgrade = true;
    struct rpath *r = rpath_start(&c);
    if (!CHECK(r))
        return;
    struct mb_msg m;
    CHECK(!wait_data(r, 8500, &m)); /* 0 + 1 s + 5 s, and then some */
    CHECK_INT(calls_now(), MIGRATE_UPGRADE_TRIES);
    if (sc.calls >= 3) {
        CHECK(sc.at[2] - sc.at[1] + 5 >= (uint64_t)migrate_upgrade_wait_ms(2));
        CHECK(sc.at[2] - sc.at[1] <= (uint64_t)migrate_upgrade_wait_ms(2) + 1500);
    }
    push_ended(r);
    rpath_stop(r);
    CHECK_INT(count_fds(), fds0);
}

/* A loss while an upgrade runs: the upgrade is cancelled and the ordinary resume takes over
 * (not direct-only, with the loss's rx); no upgrade after it. */
static void t_upgrade_lost(void)
{
    int fds0 = count_fds();
    static const struct step s[] = {{S_BLOCK, 0}, {S_CONN, 0}};
    static struct peer_opts o = {.timeout_ms = 5000};
    script(s, 2);
    struct rpath_cfg c = cfg_of(20000);
    c.o = &o;
    c.upgrade = true;
    struct rpath *r = rpath_start(&c);
    if (!CHECK(r))
        return;
    for (int i = 0; i < 500 && calls_now() == 0; i++)
        usleep(2000);
    push_lost(r, 99, 0);
    struct mb_msg m;
    if (CHECK(wait_data(r, 5000, &m))) {
        CHECK_INT(m.kind, MB_CONN);
        CHECK(!m.conn.upgrade);
        close(m.conn.fd);
    }
    CHECK(sc.saw_cancel);
    CHECK_INT(sc.calls, 2);
    CHECK(sc.direct_only[0]);
    CHECK(!sc.direct_only[1]);
    CHECK_INT(sc.rx[1], 99);
    usleep(1500 * 1000); /* no upgrade retry after the loss */
    CHECK_INT(calls_now(), 2);
    push_ended(r);
    rpath_stop(r);
    close(sc.other_end);
    CHECK_INT(count_fds(), fds0);
}

/* The data plane refuses every resumed connection (a peer whose resumes lie about its offset):
 * the refusals belong to the same suspension, so its deadline (1 s) still ends it with exit 11,
 * after waits between the attempts (the punch table: 0, 1000 ms: at most a few connections), not
 * dozens of re-punches (found by review: the deadline started again at each refusal). */
static void t_refused_loop(void)
{
    struct step st[32];
    for (int i = 0; i < 32; i++)
        st[i] = (struct step){S_CONN, 0};
    script(st, 32);
    struct rpath_cfg c = cfg_of(1000);
    struct rpath *r = rpath_start(&c);
    if (!CHECK(r))
        return;
    push_lost(r, 10, 1);
    uint64_t t0 = clk_ms();
    bool gave_up = false;
    int conns = 0, status = -1;
    struct mb_msg m;
    while (clk_ms() - t0 < 5000 && !gave_up) {
        if (!wait_data(r, 200, &m))
            continue;
        if (m.kind == MB_GIVE_UP) {
            gave_up = true;
            status = m.status;
            break;
        }
        if (m.kind == MB_CONN) {
            conns++;
            close(m.conn.fd);
            pthread_mutex_lock(&sc.mu);
            if (sc.other_end >= 0)
                close(sc.other_end);
            sc.other_end = -1;
            pthread_mutex_unlock(&sc.mu);
            push_refused(r, 10, 1);
        }
    }
    CHECK(gave_up);
    CHECK_INT(status, EXIT_NOT_RESUMED);
    CHECK_MSG(clk_ms() - t0 < 2500, "gave up after %llu ms", (unsigned long long)(clk_ms() - t0));
    CHECK_MSG(conns >= 1 && conns <= 4, "%d connections handed over", conns);
    push_ended(r);
    rpath_stop(r);
}

CHECK_MAIN(TEST(t_conn), TEST(t_refused_loop), TEST(t_retries), TEST(t_deadline), TEST(t_gone),
           TEST(t_ended_during_attempt), TEST(t_lost_again), TEST(t_upgrade),
           TEST(t_upgrade_gives_up), TEST(t_upgrade_lost))
