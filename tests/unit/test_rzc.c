/* The relay's splice primitives (rendezvous/rzc.c) on a real loopback TCP pair: how much a fill
 * may take (never 0, never past the byte limit's one extra byte), bytes through socket -> pipe ->
 * socket intact, EOF as 0, a full pipe or send buffer as -EAGAIN, put beyond the pipe refused. */
#include "check.h"
#include "rendezvous/rzc.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void t_want(void)
{
    CHECK_INT(rzc_want(65536, 131072, false, 0), 65536);
    CHECK_INT(rzc_want(65536, 1024, false, 0), 1024);
    CHECK_INT(rzc_want(65536, 131072, true, 100), 101); /* the byte past the limit is seen */
    CHECK_INT(rzc_want(65536, 131072, true, 0), 1);     /* at the limit: one byte tells */
    CHECK_INT(rzc_want(65536, 131072, true, 1u << 30), 65536);
    CHECK_INT(rzc_want(10, 131072, true, UINT64_MAX), 10);
    for (size_t room = 1; room < 5; room++)
        for (uint64_t left = 0; left < 5; left++)
            CHECK(rzc_want(room, 3, true, left) > 0); /* never a zero-length splice */
}

/* A connected loopback pair, both ends nonblocking. */
static int pair(int *a, int *b)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&sa, &sl) < 0)
        return -1;
    *a = socket(AF_INET, SOCK_STREAM, 0);
    if (*a < 0 || connect(*a, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        (*b = accept(l, NULL, NULL)) < 0)
        return -1;
    close(l);
    fcntl(*a, F_SETFL, O_NONBLOCK);
    fcntl(*b, F_SETFL, O_NONBLOCK);
    return 0;
}

static void wait_in(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    poll(&p, 1, 2000);
}

static void t_through(void)
{
    int a, b, c, d;
    struct rzc_pipe p;
    unsigned char out[50000], in[50000];
    size_t got = 0;
    ssize_t n;
    CHECK(rzc_probe((char[80]){0}, 80));
    if (!CHECK(pair(&a, &b) == 0 && pair(&c, &d) == 0))
        return;
    CHECK_INT(rzc_open(&p, 100, 0), 0);
    CHECK(p.size >= 4096 && p.held == 0);
    CHECK_INT(rzc_fill(&p, b, 1000), -EAGAIN); /* nothing sent yet */
    CHECK_INT(rzc_put(&p, "hi", 2), 0);
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (unsigned char)(i * 7 + 3);
    CHECK_INT(send(a, out, sizeof out, 0), (ssize_t)sizeof out);
    shutdown(a, SHUT_WR);
    /* a -> b -> pipe -> c -> d, "hi" first */
    for (int round = 0; round < 1000 && got < sizeof out + 2; round++) {
        unsigned char tmp[65536];
        ssize_t r;
        wait_in(b);
        n = rzc_fill(&p, b, p.size - p.held);
        CHECK(n > 0 || n == -EAGAIN);
        while (rzc_drain(&p, c) > 0)
            ;
        wait_in(d);
        r = recv(d, tmp, sizeof tmp, 0);
        for (ssize_t k = 0; k < r; k++, got++) {
            if (got < 2)
                CHECK_INT(tmp[k], (unsigned char)"hi"[got]);
            else if (got - 2 < sizeof in)
                in[got - 2] = tmp[k];
        }
    }
    CHECK_INT(got, sizeof out + 2);
    CHECK(memcmp(in, out, sizeof out) == 0);
    CHECK_INT(rzc_fill(&p, b, 100), 0); /* a's FIN */
    CHECK_INT(rzc_drain(&p, c), 0);     /* empty: nothing to do */
    rzc_close(&p);
    close(a), close(b), close(c), close(d);
}

static void t_full(void)
{
    int a, b;
    struct rzc_pipe p;
    char big[8192];
    ssize_t n = 1;
    int rounds = 0;
    if (!CHECK(pair(&a, &b) == 0))
        return;
    CHECK_INT(rzc_open(&p, 1, 0), 0);
    memset(big, 'x', sizeof big);
    while (p.held + sizeof big <= p.size)
        CHECK_INT(rzc_put(&p, big, sizeof big), 0);
    CHECK_INT(rzc_put(&p, big, sizeof big), -EAGAIN); /* beyond the pipe: refused, not cut */
    /* b never reads: a's send buffer fills, the drain says EAGAIN (and never loops on 0) */
    while (n > 0 && rounds++ < 100000) {
        n = rzc_drain(&p, a);
        if (p.held < sizeof big)
            rzc_put(&p, big, sizeof big);
    }
    CHECK_INT(n, -EAGAIN);
    rzc_close(&p);
    CHECK(p.rd == -1 && p.wr == -1);
    close(a), close(b);
}

/* Fills from b, emptying the pipe into out, until want bytes came out or a fill says EOF;
 * returns the last fill's answer. Bounded: a fill that keeps saying EAGAIN on a readable
 * socket is the bug this catches. */
static ssize_t fill_until(struct rzc_pipe *p, int b, char *out, size_t *got, size_t want)
{
    ssize_t n = -EAGAIN, r;
    for (int round = 0; round < 50 && *got < want; round++) {
        wait_in(b);
        n = rzc_fill(p, b, p->size - p->held);
        if (p->held && (r = read(p->rd, out + *got, p->held)) > 0) {
            *got += (size_t)r;
            p->held -= (size_t)r;
        }
        if (n == 0)
            break;
    }
    return n;
}

/* TCP urgent data (MSG_OOB): splice stops at the mark and never passes it. The fill steps over
 * the urgent byte as recv does (so the bytes are what the copy path forwards: an urgent byte
 * that a later one replaced is plain data again) and goes on splicing; with a FIN after the
 * bytes that follow the mark, those bytes come before the EOF. */
static void t_urgent(void)
{
    int a, b;
    struct rzc_pipe p;
    char in[64];
    size_t got = 0;
    if (!CHECK(pair(&a, &b) == 0))
        return;
    CHECK_INT(rzc_open(&p, 1, 0), 0);
    CHECK_INT(send(a, "ab", 2, 0), 2);
    CHECK_INT(send(a, "X", 1, MSG_OOB), 1);
    CHECK_INT(send(a, "cd", 2, 0), 2);
    CHECK_INT(send(a, "Y", 1, MSG_OOB), 1);
    CHECK_INT(send(a, "ef", 2, 0), 2);
    usleep(50000);
    fill_until(&p, b, in, &got, 7);
    CHECK_INT(got, 7);
    CHECK(memcmp(in, "abXcdef", 7) == 0); /* what recv(2) gives for these sends */
    /* the mark, then bytes, then the FIN: the bytes, then EOF */
    CHECK_INT(send(a, "Z", 1, MSG_OOB), 1);
    CHECK_INT(send(a, "gh", 2, 0), 2);
    shutdown(a, SHUT_WR);
    usleep(50000);
    got = 0;
    CHECK_INT(fill_until(&p, b, in, &got, sizeof in), 0);
    CHECK_INT(got, 2);
    CHECK(memcmp(in, "gh", 2) == 0);
    rzc_close(&p);
    close(a), close(b);
}

CHECK_MAIN(TEST(t_want), TEST(t_through), TEST(t_full), TEST(t_urgent))
