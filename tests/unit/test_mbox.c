/* peer/mbox: the bounded FIFOs each way, the eventfd's readability, a producer thread against a
 * poll loop and a uv loop, and what mb_close does with messages left in the box. */
#include "check.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "peer/mbox.h"

static bool readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static int count_fds(void)
{
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

static struct mb_msg msg_n(enum mb_kind k, int i)
{
    struct mb_msg m;
    memset(&m, 0, sizeof m);
    m.kind = k;
    m.conn.fd = -1;
    m.status = i;
    snprintf(m.why, sizeof m.why, "msg %d", i);
    return m;
}

static int closed_calls;
static void on_closed(struct mbox *m, void *arg)
{
    (void)m;
    (void)arg;
    closed_calls++;
}

static void t_flags_and_full(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    static struct mbox m;
    CHECK_INT(mb_init(&m, &loop, NULL, NULL), 0);
    int fl = fcntl(mb_fd(&m), F_GETFL), fd = fcntl(mb_fd(&m), F_GETFD);
    CHECK(fl >= 0 && (fl & O_NONBLOCK));
    CHECK(fd >= 0 && (fd & FD_CLOEXEC));
    CHECK(!readable(mb_fd(&m)));
    for (int round = 0; round < 2; round++) { /* the second round crosses the ring's wrap */
        for (int i = 0; i < MB_CAP; i++) {
            struct mb_msg a = msg_n(MB_CONN, i), b = msg_n(MB_LOST, 1000 + i);
            CHECK_INT(mb_to_data(&m, &a), 0);
            CHECK_INT(mb_to_path(&m, &b), 0);
        }
        struct mb_msg x = msg_n(MB_GIVE_UP, -1);
        CHECK_INT(mb_to_data(&m, &x), -1);
        CHECK_INT(mb_to_path(&m, &x), -1);
        CHECK_INT(mb_count(&m, MB_DATA), MB_CAP);
        CHECK_INT(mb_count(&m, MB_PATH), MB_CAP);
        for (int i = 0; i < MB_CAP; i++) {
            struct mb_msg o;
            CHECK(readable(mb_fd(&m)));
            CHECK(mb_take(&m, MB_DATA, &o));
            CHECK_INT(o.status, i);
            CHECK_INT(o.kind, MB_CONN);
            CHECK(mb_take(&m, MB_PATH, &o));
            CHECK_INT(o.status, 1000 + i);
            CHECK_INT(o.kind, MB_LOST);
            if (round == 0 && i == 0) { /* room for one again after a take */
                struct mb_msg y = msg_n(MB_CONN, 5000);
                CHECK_INT(mb_to_data(&m, &y), 0);
                CHECK_INT(mb_to_data(&m, &y), -1);
            }
        }
        struct mb_msg o;
        /* round 0: the extra message is the last one */
        if (round == 0) {
            CHECK(readable(mb_fd(&m)));
            CHECK(mb_take(&m, MB_DATA, &o));
            CHECK_INT(o.status, 5000);
        }
        CHECK(!mb_take(&m, MB_DATA, &o));
        CHECK(!mb_take(&m, MB_PATH, &o));
        CHECK(!readable(mb_fd(&m)));
    }
    closed_calls = 0;
    mb_close(&m, on_closed);
    CHECK_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_INT(closed_calls, 1);
    CHECK_INT(uv_loop_close(&loop), 0);
}

/* readable exactly while messages wait, however many pushes and takes */
static void t_eventfd_exact(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    static struct mbox m;
    CHECK_INT(mb_init(&m, &loop, NULL, NULL), 0);
    struct mb_msg a = msg_n(MB_CONN, 1), o;
    CHECK(!readable(mb_fd(&m)));
    CHECK_INT(mb_to_data(&m, &a), 0);
    CHECK(readable(mb_fd(&m)));
    CHECK(readable(mb_fd(&m))); /* polling does not consume it */
    CHECK(mb_take(&m, MB_DATA, &o));
    CHECK(!readable(mb_fd(&m)));
    CHECK_INT(mb_to_data(&m, &a), 0);
    CHECK_INT(mb_to_data(&m, &a), 0);
    CHECK_INT(mb_to_data(&m, &a), 0);
    CHECK(mb_take(&m, MB_DATA, &o));
    CHECK(readable(mb_fd(&m)));
    CHECK(mb_take(&m, MB_DATA, &o));
    CHECK(readable(mb_fd(&m)));
    CHECK(mb_take(&m, MB_DATA, &o));
    CHECK(!readable(mb_fd(&m)));
    /* the path direction does not touch it */
    CHECK_INT(mb_to_path(&m, &a), 0);
    CHECK(!readable(mb_fd(&m)));
    CHECK(mb_take(&m, MB_PATH, &o));
    CHECK(!readable(mb_fd(&m)));
    mb_close(&m, NULL);
    CHECK_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_INT(uv_loop_close(&loop), 0);
}

/* --- a producer thread, a poll-loop consumer thread, and the uv loop on the main thread --- */

#define N 20000

static struct mbox tm;
static int path_got, path_bad, data_got, data_bad, prod_fail;
static uv_loop_t tloop;

static void push_retry(int (*f)(struct mbox *, const struct mb_msg *), const struct mb_msg *msg)
{
    for (long tries = 0; tries < 2000000; tries++) {
        if (f(&tm, msg) == 0)
            return;
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    prod_fail++;
}

static void *producer(void *arg)
{
    (void)arg;
    for (int i = 0; i < N; i++) {
        struct mb_msg a = msg_n(MB_CONN, i), b = msg_n(MB_LOST, i);
        a.conn.epoch = (uint32_t)i;
        memset(a.conn.tx, i & 0xff, sizeof a.conn.tx);
        push_retry(mb_to_data, &a);
        push_retry(mb_to_path, &b);
    }
    return NULL;
}

static void *data_side(void *arg)
{
    (void)arg;
    while (data_got < N) {
        struct pollfd p = {.fd = mb_fd(&tm), .events = POLLIN};
        int r = poll(&p, 1, 10000);
        if (r <= 0) {
            data_bad++;
            break;
        }
        struct mb_msg o;
        while (mb_take(&tm, MB_DATA, &o)) {
            if (o.status != data_got || o.conn.epoch != (uint32_t)data_got ||
                o.conn.tx[31] != (data_got & 0xff) || o.kind != MB_CONN)
                data_bad++;
            data_got++;
        }
    }
    return NULL;
}

static void on_path(struct mbox *m, void *arg)
{
    CHECK(arg == &tloop);
    struct mb_msg o;
    while (mb_take(m, MB_PATH, &o)) {
        if (o.status != path_got || o.kind != MB_LOST || strcmp(o.why, "msg") < 0)
            path_bad++;
        path_got++;
    }
    if (path_got >= N)
        uv_stop(&tloop);
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
    path_bad++;
    uv_stop(&tloop);
}

static void t_threads(void)
{
    uv_loop_init(&tloop);
    CHECK_INT(mb_init(&tm, &tloop, on_path, &tloop), 0);
    uv_timer_t guard;
    uv_timer_init(&tloop, &guard);
    uv_timer_start(&guard, on_guard, 30000, 0);
    uv_unref((uv_handle_t *)&guard);
    pthread_t pt, dt;
    CHECK_INT(pthread_create(&dt, NULL, data_side, NULL), 0);
    CHECK_INT(pthread_create(&pt, NULL, producer, NULL), 0);
    uv_run(&tloop, UV_RUN_DEFAULT);
    pthread_join(pt, NULL);
    pthread_join(dt, NULL);
    CHECK_INT(prod_fail, 0);
    CHECK_INT(path_got, N);
    CHECK_INT(path_bad, 0);
    CHECK_INT(data_got, N);
    CHECK_INT(data_bad, 0);
    CHECK(!readable(mb_fd(&tm)));
    uv_close((uv_handle_t *)&guard, NULL);
    closed_calls = 0;
    mb_close(&tm, on_closed);
    CHECK_INT(uv_run(&tloop, UV_RUN_DEFAULT), 0);
    CHECK_INT(closed_calls, 1);
    CHECK_INT(uv_loop_close(&tloop), 0);
}

static bool has_run(const void *p, size_t len, unsigned char c, size_t run)
{
    const unsigned char *b = p;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        k = b[i] == c ? k + 1 : 0;
        if (k >= run)
            return true;
    }
    return false;
}

/* fds of MB_CONN messages left at close are closed; keys are wiped on take and at close */
static void t_close_leftovers(void)
{
    int before = count_fds();
    CHECK(before > 0);
    int stdin_fl = fcntl(0, F_GETFD);
    uv_loop_t loop;
    uv_loop_init(&loop);
    static struct mbox m;
    CHECK_INT(mb_init(&m, &loop, NULL, NULL), 0);
    int base = count_fds(); /* + the loop's own fds and the eventfd */
    CHECK(base > before);
    int p[3][2];
    for (int i = 0; i < 3; i++)
        CHECK_INT(pipe(p[i]), 0);
    CHECK_INT(count_fds(), base + 6);
    for (int i = 0; i < 3; i++) {
        struct mb_msg a = msg_n(MB_CONN, i), b = msg_n(MB_CONN, 10 + i);
        a.conn.fd = p[i][0];
        b.conn.fd = p[i][1];
        memset(a.conn.tx, 0xAB, 32);
        memset(a.conn.rx, 0xCD, 32);
        memset(b.conn.tx, 0xAB, 32);
        memset(b.conn.rx, 0xCD, 32);
        CHECK_INT(mb_to_data(&m, &a), 0);
        CHECK_INT(mb_to_path(&m, &b), 0);
    }
    /* other kinds: their conn.fd (0 here, zero-initialised) is not the box's to close */
    struct mb_msg g;
    memset(&g, 0, sizeof g);
    g.kind = MB_GIVE_UP;
    CHECK_INT(mb_to_data(&m, &g), 0);
    CHECK(has_run(&m, sizeof m, 0xAB, 32));

    /* taking one: the taker owns its fd and keys, the box's slot is wiped */
    struct mb_msg o;
    unsigned head = m.to_data.head;
    CHECK(mb_take(&m, MB_DATA, &o));
    CHECK_INT(o.conn.fd, p[0][0]);
    CHECK(has_run(o.conn.tx, 32, 0xAB, 32) && has_run(o.conn.rx, 32, 0xCD, 32));
    CHECK(!has_run(&m.to_data.q[head], sizeof m.to_data.q[head], 0xAB, 1));
    CHECK(!has_run(&m.to_data.q[head], sizeof m.to_data.q[head], 0xCD, 1));
    close(o.conn.fd);

    int efd = mb_fd(&m);
    mb_close(&m, NULL);
    CHECK_INT(count_fds(), base - 1); /* the five fds left in the box and the eventfd */
    CHECK_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_INT(uv_loop_close(&loop), 0);
    CHECK_INT(count_fds(), before);
    for (int i = 0; i < 3; i++)
        CHECK(fcntl(p[i][1], F_GETFD) < 0 && (i == 0 || fcntl(p[i][0], F_GETFD) < 0));
    CHECK(fcntl(efd, F_GETFD) < 0);
    CHECK_INT(fcntl(0, F_GETFD), stdin_fl);
    CHECK(!has_run(&m, sizeof m, 0xAB, 4));
    CHECK(!has_run(&m, sizeof m, 0xCD, 4));
    static const struct mb_queue zero;
    CHECK(memcmp(&m.to_data, &zero, sizeof zero) == 0); /* why, status, fds: every slot */
    CHECK(memcmp(&m.to_path, &zero, sizeof zero) == 0);
}

CHECK_MAIN(TEST(t_flags_and_full), TEST(t_eventfd_exact), TEST(t_threads), TEST(t_close_leftovers))
