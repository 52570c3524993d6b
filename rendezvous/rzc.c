#include "rendezvous/rzc.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define RZC_FLAGS (SPLICE_F_NONBLOCK | SPLICE_F_MOVE)
/* bytes read past TCP urgent data by recv(2) (rzc_past_mark): within PIPE_BUF, so that one
 * write(2) into an empty pipe takes them all */
#define RZC_MARK_MAX 4096

int rzc_open(struct rzc_pipe *p, size_t need, size_t want)
{
    int fds[2], size, err;
    p->rd = p->wr = -1;
    p->held = p->size = 0;
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return -errno;
    p->rd = fds[0];
    p->wr = fds[1];
    size = fcntl(p->wr, F_GETPIPE_SZ);
    /* larger pipes mean fewer system calls per byte; past /proc/sys/fs/pipe-max-size or the
     * user's pipe-user-pages-soft the kernel refuses (or hands out one-page pipes), which is
     * still correct as long as what must go in first fits */
    if (size > 0 && (size_t)size < want && want <= (1u << 20)) {
        int grown = fcntl(p->wr, F_SETPIPE_SZ, (int)want);
        if (grown > 0)
            size = grown;
    }
    if (size <= 0 || (size_t)size < need) {
        err = size < 0 ? -errno : -ENOSPC;
        rzc_close(p);
        return err;
    }
    p->size = (size_t)size;
    return 0;
}

void rzc_close(struct rzc_pipe *p)
{
    if (p->rd >= 0)
        close(p->rd);
    if (p->wr >= 0)
        close(p->wr);
    p->rd = p->wr = -1;
    p->held = 0;
}

int rzc_put(struct rzc_pipe *p, const void *b, size_t n)
{
    ssize_t w;
    if (n > p->size - p->held)
        return -EAGAIN;
    while (n > 0) {
        w = write(p->wr, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EAGAIN;
        p->held += (size_t)w;
        b = (const char *)b + w;
        n -= (size_t)w;
    }
    return 0;
}

/* splice(2) never passes TCP urgent data (a byte sent with MSG_OOB): tcp_read_sock stops at
 * the urgent mark, so a socket with bytes after the mark stays readable and splice answers
 * EAGAIN forever (a busy poll loop and a stalled session), or 0 once a FIN has come (an EOF
 * that drops what follows the mark). recv(2) steps over the urgent byte, as the copy path's
 * reads do, and clears the mark; the bytes it returns go into the pipe by write(2). Returns
 * their count (> 0), 0 when fd is not at the mark (splice's answer stands), or -errno:
 * -EAGAIN when the pipe must empty first or the urgent byte was all there was. */
static ssize_t rzc_past_mark(struct rzc_pipe *p, int fd, size_t max)
{
    char buf[RZC_MARK_MAX];
    int at = 0, rc;
    ssize_t n;
    if (ioctl(fd, SIOCATMARK, &at) < 0 || !at)
        return 0;
    if (p->held)
        return -EAGAIN; /* an empty pipe takes RZC_MARK_MAX bytes in one write, always */
    do
        n = recv(fd, buf, max < sizeof buf ? max : sizeof buf, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return n < 0 ? -errno : 0; /* 0: the FIN right after the urgent byte, splice tells */
    if ((rc = rzc_put(p, buf, (size_t)n)) < 0)
        return rc == -EAGAIN ? -EIO : rc; /* never: the bytes would be lost */
    return n;
}

ssize_t rzc_fill(struct rzc_pipe *p, int fd, size_t max)
{
    ssize_t n, m;
    do
        n = splice(fd, NULL, p->wr, NULL, max, RZC_FLAGS);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        n = -errno;
    else
        p->held += (size_t)n;
    if (n == 0 || n == -EAGAIN) {
        m = rzc_past_mark(p, fd, max);
        if (m != 0)
            return m;
    }
    return n;
}

ssize_t rzc_drain(struct rzc_pipe *p, int fd)
{
    ssize_t n;
    if (!p->held)
        return 0;
    do
        n = splice(p->rd, NULL, fd, NULL, p->held, RZC_FLAGS);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -EPIPE; /* a pipe that holds bytes gave none: never loop on it */
    p->held -= (size_t)n;
    return n;
}

size_t rzc_want(size_t room, size_t chunk, bool capped, uint64_t left)
{
    size_t n = room < chunk ? room : chunk;
    if (capped && left < n)
        n = (size_t)left + 1; /* left < n <= SIZE_MAX: no overflow */
    return n;
}

/* Waits up to a second for events on fd. */
static bool rzc_wait(int fd, short events)
{
    struct pollfd pf = {.fd = fd, .events = events};
    return poll(&pf, 1, 1000) == 1 && (pf.revents & events);
}

/* A connected loopback pair: *a the connecting end, *b the accepted one, both nonblocking (a
 * firewall that drops loopback must not hold the server's start for a SYN timeout). -1 when it
 * cannot be made here within a second or two. */
static int rzc_pair(int *a, int *b)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), rc = -1, err = 0;
    *a = *b = -1;
    if (l < 0)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&sa, &sl) < 0)
        goto out;
    if ((*a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
        goto out;
    if (connect(*a, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
        goto out;
    sl = sizeof err;
    if (!rzc_wait(*a, POLLOUT) || getsockopt(*a, SOL_SOCKET, SO_ERROR, &err, &sl) < 0 || err ||
        !rzc_wait(l, POLLIN) || (*b = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) < 0)
        goto out;
    rc = 0;
out:
    close(l);
    if (rc < 0 && *a >= 0) {
        close(*a);
        *a = -1;
    }
    return rc;
}

bool rzc_probe(char *why, size_t len)
{
    struct rzc_pipe p;
    int a, b, err = 0;
    ssize_t n;
    bool ok = true;
    snprintf(why, len, "splice works");
    if (rzc_pair(&a, &b) < 0)
        return true;
    if (rzc_open(&p, 1, 0) < 0)
        goto out;
    if (send(a, "x", 1, MSG_NOSIGNAL) == 1 && rzc_wait(b, POLLIN)) {
        n = rzc_fill(&p, b, 1);
        err = n < 0 ? (int)-n : 0;
        if (err == EINVAL || err == ENOSYS || err == EPERM || err == EOPNOTSUPP) {
            ok = false;
            snprintf(why, len, "splice from a TCP socket: %s", strerror(err));
        }
    }
    rzc_close(&p);
out:
    close(a);
    close(b);
    return ok;
}
