/* The data pump over socketpairs, loopback TCP and pipes, with helper threads playing the
 * remote peer and the local stdin/stdout: bulk data both ways byte-identical, half-close in
 * either direction, prefill first, a reset connection reported as PUMP_NET_LOST, and a closed
 * stdout as PUMP_LOCAL_ERR. */
#include "check.h"
#include "common/pump.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024 * 1024)

static void fill(unsigned char *p, size_t n, uint32_t seed)
{
    /* pseudo-random bytes: NULs and newlines included */
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (unsigned char)(seed >> 16);
    }
}

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits for flag up to 10 s; returns whether it was set. */
static int wait_flag(atomic_int *flag)
{
    for (int i = 0; i < 2000 && !atomic_load(flag); i++)
        msleep(5);
    return atomic_load(flag);
}

/* ---- helper threads ---- */

enum after_write { AW_NOTHING, AW_SHUT, AW_CLOSE };

struct writer {
    pthread_t th;
    int fd;
    const unsigned char *data;
    size_t len;
    enum after_write after;
    atomic_int *wait_for; /* start writing only once this is set (NULL: at once) */
    int waited_ok;        /* the flag was set when writing began */
    size_t written;
    int err;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    if (w->wait_for)
        w->waited_ok = wait_flag(w->wait_for);
    while (w->written < w->len) {
        size_t chunk = w->len - w->written > 65536 ? 65536 : w->len - w->written;
        ssize_t r = write(w->fd, w->data + w->written, chunk);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            w->err = errno;
            break;
        }
        w->written += (size_t)r;
    }
    if (w->after == AW_SHUT)
        shutdown(w->fd, SHUT_WR);
    else if (w->after == AW_CLOSE)
        close(w->fd);
    return NULL;
}

struct reader {
    pthread_t th;
    int fd;
    unsigned char *buf;
    size_t cap, len;
    atomic_int eof; /* read returned 0 */
    int err;        /* errno of a failed read */
    size_t stop_at; /* stop reading after this many bytes (0: until EOF) */
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    for (;;) {
        unsigned char tmp[65536];
        ssize_t n = read(r->fd, tmp, sizeof tmp);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            r->err = errno;
            break;
        }
        if (n == 0) {
            atomic_store(&r->eof, 1);
            break;
        }
        if (r->len + (size_t)n <= r->cap)
            memcpy(r->buf + r->len, tmp, (size_t)n);
        r->len += (size_t)n;
        if (r->stop_at && r->len >= r->stop_at)
            break;
    }
    return NULL;
}

static void start_writer(struct writer *w, int fd, const void *data, size_t len,
                         enum after_write after, atomic_int *wait_for)
{
    memset(w, 0, sizeof *w);
    w->fd = fd;
    w->data = data;
    w->len = len;
    w->after = after;
    w->wait_for = wait_for;
    if (pthread_create(&w->th, NULL, writer_main, w) != 0) {
        check_fail_(__FILE__, __LINE__, "pthread_create");
        exit(2);
    }
}

static void start_reader(struct reader *r, int fd, size_t cap)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
    r->cap = cap;
    r->buf = malloc(cap ? cap : 1);
    if (!r->buf || pthread_create(&r->th, NULL, reader_main, r) != 0) {
        check_fail_(__FILE__, __LINE__, "reader start");
        exit(2);
    }
}

static int tcp_pair(int sv[2])
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) < 0)
        return -1;
    sv[1] = socket(AF_INET, SOCK_STREAM, 0);
    if (sv[1] < 0 || connect(sv[1], (struct sockaddr *)&a, sizeof a) < 0)
        return -1;
    sv[0] = accept(l, NULL, NULL);
    close(l);
    return sv[0] < 0 ? -1 : 0;
}

/* ---- tests ---- */

/* 1 MiB each way between a pipe pair (stdin/stdout) and net (socketpair or TCP); net[0] is
 * pumped, net[1] is the remote peer. std_out: the output is on fd 0 (a standard descriptor, as
 * stdout's 1): its end must leave the number taken (at /dev/null) while the reader sees EOF. */
static void bulk_to(int net[2], bool std_out)
{
    int in[2], out[2], saved = -1;
    unsigned char *up = malloc(MIB), *down = malloc(MIB);
    struct writer w_in, w_remote;
    struct reader r_out, r_remote;
    struct pump_stats st;
    char err[256] = "";
    enum pump_status s;

    if (!CHECK(up && down) || !CHECK(pipe(in) == 0) || !CHECK(pipe(out) == 0))
        return;
    fill(up, MIB, 1);
    fill(down, MIB, 2);
    start_writer(&w_in, in[1], up, MIB, AW_CLOSE, NULL);
    start_writer(&w_remote, net[1], down, MIB, AW_SHUT, NULL);
    start_reader(&r_out, out[0], MIB);
    start_reader(&r_remote, net[1], MIB);

    if (std_out) {
        saved = dup(0);
        CHECK(saved > 2 && dup2(out[1], 0) == 0);
        close(out[1]);
        out[1] = 0;
    }
    s = pump_run(net[0], in[0], out[1], NULL, 0, &st, err, sizeof err);
    CHECK_MSG(s == PUMP_DONE, "pump_run = %d: %s", (int)s, err);
    pthread_join(w_in.th, NULL);
    pthread_join(w_remote.th, NULL);
    pthread_join(r_out.th, NULL);
    pthread_join(r_remote.th, NULL);
    if (std_out) {
        CHECK_MSG(fcntl(0, F_GETFD) >= 0, "fd 0 was closed at the end");
        int k = socket(AF_INET, SOCK_STREAM, 0);
        CHECK_MSG(k > STDERR_FILENO, "a new socket got fd %d", k);
        if (k >= 0)
            close(k);
        dup2(saved, 0);
        close(saved);
    }
    CHECK_INT(w_in.written, MIB);
    CHECK_INT(w_remote.written, MIB);
    CHECK_INT(r_out.len, MIB);
    CHECK_INT(r_remote.len, MIB);
    CHECK(atomic_load(&r_out.eof));    /* pump closed stdout at the end */
    CHECK(atomic_load(&r_remote.eof)); /* and shut down its sending side */
    CHECK(r_out.len == MIB && memcmp(r_out.buf, down, MIB) == 0);
    CHECK(r_remote.len == MIB && memcmp(r_remote.buf, up, MIB) == 0);
    CHECK_INT(st.sent, MIB);
    CHECK_INT(st.received, MIB);
    CHECK_INT(st.spliced, 2 * MIB); /* pipes on the local side: both directions by splice */
    close(in[0]);
    close(out[0]); /* out[1] was closed by the pump */
    close(net[0]);
    close(net[1]);
    free(r_out.buf);
    free(r_remote.buf);
    free(up);
    free(down);
}

static void bulk(int net[2])
{
    bulk_to(net, false);
}

static void t_bulk_socketpair(void)
{
    int net[2];
    if (CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, net) == 0))
        bulk(net);
}

/* a closed standard descriptor goes to the next socket opened, and libuv aborts on handles
 * below 3 (uv__close asserts fd > STDERR_FILENO): test_relay "--direct-timeout 0", exit 134 */
static void t_std_output_kept(void)
{
    int net[2];
    if (CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, net) == 0))
        bulk_to(net, true);
}

static void t_bulk_tcp(void)
{
    int net[2];
    if (CHECK(tcp_pair(net) == 0))
        bulk(net);
}

/* stdin ends at once: the remote sees EOF, and only then sends; its data still arrives. */
static void half_close_stdin(int net[2])
{
    int in[2], out[2];
    size_t n = 256 * 1024;
    unsigned char *down = malloc(n);
    struct writer w_remote;
    struct reader r_out, r_remote;
    struct pump_stats st;
    char err[256] = "";
    enum pump_status s;

    if (!CHECK(down) || !CHECK(pipe(in) == 0) || !CHECK(pipe(out) == 0))
        return;
    fill(down, n, 3);
    close(in[1]); /* stdin EOF */
    start_reader(&r_remote, net[1], 16);
    start_writer(&w_remote, net[1], down, n, AW_SHUT, &r_remote.eof);
    start_reader(&r_out, out[0], n);

    s = pump_run(net[0], in[0], out[1], NULL, 0, &st, err, sizeof err);
    CHECK_MSG(s == PUMP_DONE, "pump_run = %d: %s", (int)s, err);
    pthread_join(w_remote.th, NULL);
    pthread_join(r_out.th, NULL);
    pthread_join(r_remote.th, NULL);
    CHECK(atomic_load(&r_remote.eof));
    CHECK_INT(r_remote.len, 0);
    CHECK_MSG(w_remote.waited_ok, "the remote never saw EOF before sending");
    CHECK_INT(w_remote.written, n);
    CHECK(r_out.len == n && memcmp(r_out.buf, down, n) == 0);
    CHECK(atomic_load(&r_out.eof));
    CHECK_INT(st.sent, 0);
    CHECK_INT(st.received, n);
    close(in[0]);
    close(out[0]);
    close(net[0]);
    close(net[1]);
    free(r_out.buf);
    free(r_remote.buf);
    free(down);
}

static void t_half_close_stdin_socketpair(void)
{
    int net[2];
    if (CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, net) == 0))
        half_close_stdin(net);
}

static void t_half_close_stdin_tcp(void)
{
    int net[2];
    if (CHECK(tcp_pair(net) == 0))
        half_close_stdin(net);
}

/* The remote ends its side at once: stdout is closed (the reader sees EOF), and only then
 * stdin sends; its data still reaches the remote. */
static void t_half_close_net(void)
{
    int net[2], in[2], out[2];
    size_t n = 256 * 1024;
    unsigned char *up = malloc(n);
    struct writer w_in;
    struct reader r_out, r_remote;
    struct pump_stats st;
    char err[256] = "";
    enum pump_status s;

    if (!CHECK(up) || !CHECK(tcp_pair(net) == 0) || !CHECK(pipe(in) == 0) || !CHECK(pipe(out) == 0))
        return;
    fill(up, n, 4);
    shutdown(net[1], SHUT_WR);
    start_reader(&r_out, out[0], 16);
    start_writer(&w_in, in[1], up, n, AW_CLOSE, &r_out.eof);
    start_reader(&r_remote, net[1], n);

    s = pump_run(net[0], in[0], out[1], NULL, 0, &st, err, sizeof err);
    CHECK_MSG(s == PUMP_DONE, "pump_run = %d: %s", (int)s, err);
    pthread_join(w_in.th, NULL);
    pthread_join(r_out.th, NULL);
    pthread_join(r_remote.th, NULL);
    CHECK(atomic_load(&r_out.eof));
    CHECK_INT(r_out.len, 0);
    CHECK_MSG(w_in.waited_ok, "stdout was not closed while stdin was still open");
    CHECK(r_remote.len == n && memcmp(r_remote.buf, up, n) == 0);
    CHECK(atomic_load(&r_remote.eof));
    CHECK_INT(st.sent, n);
    CHECK_INT(st.received, 0);
    close(in[0]);
    close(out[0]);
    close(net[0]);
    close(net[1]);
    free(r_out.buf);
    free(r_remote.buf);
    free(up);
}

/* Bytes already read from the connection (after the handshake line) come out first. */
static void t_prefill(void)
{
    int net[2], in[2], out[2];
    const char pre[] = "prefill\0bytes\n";
    const char rest[] = "then the stream";
    struct writer w_remote;
    struct reader r_out, r_remote;
    struct pump_stats st;
    char err[256] = "";
    enum pump_status s;

    if (!CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, net) == 0) || !CHECK(pipe(in) == 0) ||
        !CHECK(pipe(out) == 0))
        return;
    close(in[1]);
    /* the remote's bytes are already waiting when the pump starts */
    start_writer(&w_remote, net[1], rest, sizeof rest - 1, AW_SHUT, NULL);
    pthread_join(w_remote.th, NULL);
    start_reader(&r_out, out[0], 4096);
    start_reader(&r_remote, net[1], 16);
    s = pump_run(net[0], in[0], out[1], pre, sizeof pre - 1, &st, err, sizeof err);
    CHECK_MSG(s == PUMP_DONE, "pump_run = %d: %s", (int)s, err);
    pthread_join(r_out.th, NULL);
    pthread_join(r_remote.th, NULL);
    if (CHECK_INT(r_out.len, sizeof pre - 1 + sizeof rest - 1)) {
        CHECK(memcmp(r_out.buf, pre, sizeof pre - 1) == 0);
        CHECK(memcmp(r_out.buf + sizeof pre - 1, rest, sizeof rest - 1) == 0);
    }
    CHECK_INT(st.received, sizeof pre - 1 + sizeof rest - 1);
    /* prefill only, the remote closing at once */
    close(in[0]);
    close(out[0]);
    close(net[0]);
    close(net[1]);
    free(r_out.buf);
    free(r_remote.buf);

    if (!CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, net) == 0) || !CHECK(pipe(in) == 0) ||
        !CHECK(pipe(out) == 0))
        return;
    close(in[1]);
    shutdown(net[1], SHUT_WR);
    start_reader(&r_out, out[0], 4096);
    s = pump_run(net[0], in[0], out[1], pre, sizeof pre - 1, &st, err, sizeof err);
    CHECK_MSG(s == PUMP_DONE, "pump_run = %d: %s", (int)s, err);
    pthread_join(r_out.th, NULL);
    CHECK(r_out.len == sizeof pre - 1 && memcmp(r_out.buf, pre, sizeof pre - 1) == 0);
    close(in[0]);
    close(out[0]);
    close(net[0]);
    close(net[1]);
    free(r_out.buf);
}

static void rst_close(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* The remote resets the connection while the pump waits for data. */
static void t_reset_idle(void)
{
    int net[2], in[2], out[2];
    struct reader r_out;
    struct pump_stats st;
    char err[256] = "";
    enum pump_status s;

    if (!CHECK(tcp_pair(net) == 0) || !CHECK(pipe(in) == 0) || !CHECK(pipe(out) == 0))
        return;
    start_reader(&r_out, out[0], 4096);
    rst_close(net[1]);
    s = pump_run(net[0], in[0], out[1], NULL, 0, &st, err, sizeof err);
    CHECK_MSG(s == PUMP_NET_LOST, "pump_run = %d (%s), want PUMP_NET_LOST", (int)s, err);
    CHECK(err[0] != '\0');
    close(in[1]);
    close(in[0]);
    close(out[1]); /* a failed pump leaves stdout open */
    pthread_join(r_out.th, NULL);
    close(out[0]);
    close(net[0]);
    free(r_out.buf);
}

struct resetter {
    pthread_t th;
    int fd;
    size_t want, got;
};

/* Reads want bytes, then resets the connection. */
static void *resetter_main(void *arg)
{
    struct resetter *r = arg;
    char tmp[65536];
    while (r->got < r->want) {
        ssize_t n = read(r->fd, tmp, sizeof tmp);
        if (n <= 0)
            break;
        r->got += (size_t)n;
    }
    rst_close(r->fd);
    return NULL;
}

/* The remote reads a little, then resets while the pump is sending a lot. */
static void t_reset_busy(void)
{
    int net[2], in[2], out[2];
    size_t n = 8 * MIB;
    unsigned char *up = malloc(n);
    struct writer w_in;
    struct reader r_out;
    struct resetter rs = {.want = 64 * 1024};
    struct pump_stats st;
    char err[256] = "";
    enum pump_status s;

    if (!CHECK(up) || !CHECK(tcp_pair(net) == 0) || !CHECK(pipe(in) == 0) || !CHECK(pipe(out) == 0))
        return;
    fill(up, n, 5);
    start_writer(&w_in, in[1], up, n, AW_NOTHING, NULL);
    start_reader(&r_out, out[0], 4096);
    rs.fd = net[1];
    if (!CHECK(pthread_create(&rs.th, NULL, resetter_main, &rs) == 0))
        exit(2);
    s = pump_run(net[0], in[0], out[1], NULL, 0, &st, err, sizeof err);
    CHECK_MSG(s == PUMP_NET_LOST, "pump_run = %d (%s), want PUMP_NET_LOST", (int)s, err);
    CHECK(err[0] != '\0');
    pthread_join(rs.th, NULL);
    CHECK(rs.got >= rs.want);
    CHECK(st.sent >= rs.want && st.sent < n);
    close(in[0]); /* the stdin writer gets EPIPE and ends */
    pthread_join(w_in.th, NULL);
    CHECK_INT(w_in.err, EPIPE);
    close(in[1]);
    close(out[1]); /* a failed pump leaves stdout open */
    pthread_join(r_out.th, NULL);
    close(out[0]);
    close(net[0]);
    free(r_out.buf);
    free(up);
}

/* stdout's reader has gone away: writing it fails, which is a local error. */
static void t_stdout_closed(void)
{
    int net[2], in[2], out[2];
    const char data[] = "nobody reads this";
    struct pump_stats st;
    char err[256] = "";
    enum pump_status s;

    if (!CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, net) == 0) || !CHECK(pipe(in) == 0) ||
        !CHECK(pipe(out) == 0))
        return;
    close(out[0]);
    CHECK_INT(write(net[1], data, sizeof data - 1), sizeof data - 1);
    s = pump_run(net[0], in[0], out[1], NULL, 0, &st, err, sizeof err);
    CHECK_MSG(s == PUMP_LOCAL_ERR, "pump_run = %d (%s), want PUMP_LOCAL_ERR", (int)s, err);
    CHECK(err[0] != '\0');
    close(in[0]);
    close(in[1]);
    close(out[1]);
    close(net[0]);
    close(net[1]);
}

/* One socket as both stdin and stdout (inetd style): EOF on it shuts down only its writing
 * side, and data flows both ways. */
static void t_same_in_out(void)
{
    int net[2], loc[2];
    const char a[] = "from local\n", b[] = "from remote\0\n";
    struct writer w_loc, w_remote;
    struct reader r_loc, r_remote;
    struct pump_stats st;
    char err[256] = "";
    enum pump_status s;

    if (!CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, net) == 0) ||
        !CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, loc) == 0))
        return;
    start_writer(&w_loc, loc[1], a, sizeof a - 1, AW_SHUT, NULL);
    start_writer(&w_remote, net[1], b, sizeof b - 1, AW_SHUT, NULL);
    start_reader(&r_loc, loc[1], 4096);
    start_reader(&r_remote, net[1], 4096);
    s = pump_run(net[0], loc[0], loc[0], NULL, 0, &st, err, sizeof err);
    CHECK_MSG(s == PUMP_DONE, "pump_run = %d: %s", (int)s, err);
    pthread_join(w_loc.th, NULL);
    pthread_join(w_remote.th, NULL);
    pthread_join(r_loc.th, NULL);
    pthread_join(r_remote.th, NULL);
    CHECK(r_loc.len == sizeof b - 1 && memcmp(r_loc.buf, b, sizeof b - 1) == 0);
    CHECK(r_remote.len == sizeof a - 1 && memcmp(r_remote.buf, a, sizeof a - 1) == 0);
    CHECK(atomic_load(&r_loc.eof));
    CHECK(atomic_load(&r_remote.eof));
    /* the shared descriptor is still open (shut down, not closed) */
    CHECK(fcntl(loc[0], F_GETFD) != -1);
    close(loc[0]);
    close(loc[1]);
    close(net[0]);
    close(net[1]);
    free(r_loc.buf);
    free(r_remote.buf);
}

/* stdin and stdout regular files (splice needs a pipe on one end): read/write, same bytes. */
static void t_bulk_files(void)
{
    int net[2], in = -1, out = -1;
    size_t n = 3 * MIB + 123;
    unsigned char *up = malloc(n), *down = malloc(n), *got = malloc(n);
    struct writer w_remote;
    struct reader r_remote;
    struct pump_stats st;
    char err[256] = "";
    enum pump_status s;
    FILE *fi = tmpfile(), *fo = tmpfile();

    if (!CHECK(up && down && got && fi && fo) ||
        !CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, net) == 0))
        goto out;
    fill(up, n, 7);
    fill(down, n, 8);
    in = fileno(fi);
    out = dup(fileno(fo)); /* the pump closes out at the end */
    CHECK(write(in, up, n) == (ssize_t)n && lseek(in, 0, SEEK_SET) == 0);
    start_writer(&w_remote, net[1], down, n, AW_SHUT, NULL);
    start_reader(&r_remote, net[1], n);
    s = pump_run(net[0], in, out, NULL, 0, &st, err, sizeof err);
    CHECK_MSG(s == PUMP_DONE, "pump_run = %d: %s", (int)s, err);
    pthread_join(w_remote.th, NULL);
    pthread_join(r_remote.th, NULL);
    CHECK(r_remote.len == n && memcmp(r_remote.buf, up, n) == 0);
    CHECK(pread(fileno(fo), got, n, 0) == (ssize_t)n && memcmp(got, down, n) == 0);
    CHECK_INT(st.sent, n);
    CHECK_INT(st.received, n);
    CHECK_INT(st.spliced, 0);
    free(r_remote.buf);
    close(net[0]);
    close(net[1]);
out:
    if (fi)
        fclose(fi);
    if (fo)
        fclose(fo);
    free(up);
    free(down);
    free(got);
}

/* A hung pump must fail the test rather than hang ctest; a closed pipe must be an error, not
 * a signal. */
__attribute__((constructor)) static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(100);
}

CHECK_MAIN(TEST(t_bulk_socketpair), TEST(t_bulk_tcp), TEST(t_half_close_stdin_socketpair),
           TEST(t_half_close_stdin_tcp), TEST(t_half_close_net), TEST(t_prefill),
           TEST(t_reset_idle), TEST(t_reset_busy), TEST(t_stdout_closed), TEST(t_same_in_out),
           TEST(t_bulk_files), TEST(t_std_output_kept))
