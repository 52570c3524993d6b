/* The metrics port's server half (rendezvous/mhttp.c) on a real loop over loopback: the
 * lifetimes of its handles. (The pure parser is test_metrics'.) */
#include "check.h"
#include "rendezvous/mhttp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static size_t t_render(void *data, char *buf, size_t cap)
{
    (void)data;
    return (size_t)snprintf(buf, cap, "x 1\n");
}

static bool t_healthy(void *data)
{
    (void)data;
    return true;
}

/* A free loopback port (bound, read, released: loopback only, for the test's own listener). */
static int t_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int t_dial(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static struct mh *t_closing;

static void t_close_in_check(uv_check_t *h)
{
    mh_close(t_closing);
    t_closing = NULL;
    uv_close((uv_handle_t *)h, NULL);
}

/* More clients than MH_MAX_CONNS arrive in the loop iteration that also closes the port (a
 * SIGTERM during a connection flood): the one over the cap is closed uncounted, and its close
 * callback runs after the others' (libuv runs the closes newest first). The port's memory must
 * outlive it: freed earlier, that callback reads (and frees) it again (ASan: use after free;
 * glibc: double free). */
static void t_over_cap_at_close(void)
{
    uv_loop_t loop;
    uv_check_t chk;
    struct sockaddr_in sa;
    struct mh_user u = {.render = t_render, .healthy = t_healthy};
    char err[128];
    int port = t_port(), fds[MH_MAX_CONNS + 2], n = 0;
    if (!CHECK(port > 0) || !CHECK_INT(uv_loop_init(&loop), 0))
        return;
    uv_ip4_addr("127.0.0.1", port, &sa);
    t_closing = mh_start(&loop, (const struct sockaddr *)&sa, &u, err, sizeof err);
    if (!CHECK_MSG(t_closing != NULL, "mh_start: %s", err))
        goto cleanup;
    /* the kernel completes each handshake: all of them wait in the backlog for one poll */
    for (; n < MH_MAX_CONNS + 2; n++)
        if (!CHECK((fds[n] = t_dial(port)) >= 0))
            break;
    uv_check_init(&loop, &chk);
    uv_check_start(&chk, t_close_in_check);
    uv_run(&loop, UV_RUN_NOWAIT); /* accepts them all, then the check closes the port */
    CHECK(t_closing == NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
cleanup:
    while (n-- > 0)
        close(fds[n]);
}

/* A renderer whose text needs more than MH_MAX_BODY: it fills what it is given with whole
 * lines and says it needs 2 MiB. */
static size_t t_render_huge(void *data, char *buf, size_t cap)
{
    size_t n = 0;
    (void)data;
    while (cap > 0 && n + 12 < cap)
        n += (size_t)snprintf(buf + n, cap - n, "x_total %d\n", (int)(n % 10));
    return 2 * 1024 * 1024;
}

/* The answer to req from a server on loop at port: the client dials, sends, and reads until
 * the server closes, while the test runs the loop (at most 3 s). Returns the bytes read. */
static void t_idle(uv_idle_t *h)
{
    (void)h;
}

static size_t t_fetch(uv_loop_t *loop, int port, const char *req, char *out, size_t cap)
{
    struct timespec t0, t;
    size_t got = 0;
    uv_idle_t idle; /* mhttp's handles are unreferenced: without one, uv_run returns at once */
    int fd = t_dial(port);
    uv_idle_init(loop, &idle);
    uv_idle_start(&idle, t_idle);
    if (fd < 0)
        goto cleanup;
    if (send(fd, req, strlen(req), 0) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
        goto cleanup;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        ssize_t n;
        uv_run(loop, UV_RUN_NOWAIT);
        n = recv(fd, out + got, cap - 1 - got, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            break;
        if (n > 0 && (got += (size_t)n) >= cap - 1)
            break;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 3)
            break;
        if (n < 0)
            usleep(1000);
    }
cleanup:
    out[got] = '\0';
    if (fd >= 0)
        close(fd);
    uv_close((uv_handle_t *)&idle, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return got;
}

/* A text over MH_MAX_BODY is not served cut (a cut last sample would be a wrong number, taken
 * as right): the scrape fails with a 500 instead. */
static void t_body_over_limit(void)
{
    static char answer[3 * MH_MAX_BODY];
    uv_loop_t loop;
    struct sockaddr_in sa;
    struct mh_user u = {.render = t_render_huge, .healthy = t_healthy};
    struct mh *m;
    char err[128];
    int port = t_port();
    if (!CHECK(port > 0) || !CHECK_INT(uv_loop_init(&loop), 0))
        return;
    uv_ip4_addr("127.0.0.1", port, &sa);
    m = mh_start(&loop, (const struct sockaddr *)&sa, &u, err, sizeof err);
    if (!CHECK_MSG(m != NULL, "mh_start: %s", err))
        goto cleanup;
    t_fetch(&loop, port, "GET /metrics HTTP/1.1\r\n\r\n", answer, sizeof answer);
    CHECK_MSG(strncmp(answer, "HTTP/1.1 500 ", 13) == 0, "answer: %.40s", answer);
    /* a page that fits is still served */
    u.render = t_render;
    mh_close(m);
    uv_run(&loop, UV_RUN_DEFAULT);
    m = mh_start(&loop, (const struct sockaddr *)&sa, &u, err, sizeof err);
    if (!CHECK_MSG(m != NULL, "mh_start again: %s", err))
        goto cleanup;
    t_fetch(&loop, port, "GET /metrics HTTP/1.1\r\n\r\n", answer, sizeof answer);
    CHECK_MSG(strncmp(answer, "HTTP/1.1 200 ", 13) == 0 && strstr(answer, "\r\n\r\nx 1\n"),
              "answer: %.80s", answer);
    mh_close(m);
cleanup:
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
}

CHECK_MAIN(TEST(t_over_cap_at_close), TEST(t_body_over_limit))
