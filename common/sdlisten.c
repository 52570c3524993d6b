#include "common/sdlisten.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A whole decimal number in 1..max (no sign, no blanks); -1 otherwise. */
static long sdl_num(const char *s, long max)
{
    char *end;
    long v;
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < 1 || v > max)
        return -1;
    return v;
}

/* The i-th name of the colon-separated list is "probe". */
static bool sdl_is_probe(const char *names, int i)
{
    const char *p = names;
    for (; i > 0 && p; i--)
        if ((p = strchr(p, ':')))
            p++;
    return p && strncmp(p, "probe", 5) == 0 && (p[5] == ':' || p[5] == '\0');
}

static int sdl_count_names(const char *names)
{
    int n = 1;
    for (const char *p = names; *p; p++)
        n += *p == ':';
    return n;
}

int sdl_parse(const char *listen_pid, const char *listen_fds, const char *fdnames, long pid,
              struct sdl_fd *out, int max, char *err, size_t errlen)
{
    long n;
    if (!listen_pid || !listen_fds)
        return 0;
    if (sdl_num(listen_pid, 0x7fffffffL) != pid)
        return 0; /* for another process (a parent's, passed on by mistake) */
    n = sdl_num(listen_fds, max < SDL_MAX_FDS ? max : SDL_MAX_FDS);
    if (n < 0) {
        snprintf(err, errlen, "LISTEN_FDS=%.40s: want 1..%d sockets", listen_fds,
                 max < SDL_MAX_FDS ? max : SDL_MAX_FDS);
        return -1;
    }
    if (fdnames && strlen(fdnames) > (size_t)SDL_MAX_FDS * (SDL_NAME_MAX + 1)) {
        snprintf(err, errlen, "LISTEN_FDNAMES is too long");
        return -1;
    }
    if (fdnames && sdl_count_names(fdnames) != n) {
        snprintf(err, errlen, "LISTEN_FDNAMES has %d names for LISTEN_FDS=%ld sockets",
                 sdl_count_names(fdnames), n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        out[i].fd = SDL_FDS_START + i;
        out[i].probe = fdnames && sdl_is_probe(fdnames, i);
    }
    return (int)n;
}

int sdl_check(int fd, char *err, size_t errlen)
{
    int type = 0, acc = 0, flags;
    struct sockaddr_storage ss;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
        snprintf(err, errlen, "fd %d is not a socket (%s)", fd, strerror(errno));
        return -1;
    }
    len = sizeof acc;
    if (type != SOCK_STREAM || getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0 || !acc) {
        snprintf(err, errlen, "fd %d is not a listening stream socket (ListenStream=)", fd);
        return -1;
    }
    len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
        snprintf(err, errlen, "fd %d is not a TCP socket over IPv4 or IPv6", fd);
        return -1;
    }
    flags = fcntl(fd, F_GETFD);
    if (flags >= 0)
        fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    return 0;
}

int sdl_take(struct sdl_fd *out, int max, char *err, size_t errlen)
{
    int n = sdl_parse(getenv("LISTEN_PID"), getenv("LISTEN_FDS"), getenv("LISTEN_FDNAMES"),
                      (long)getpid(), out, max, err, errlen);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    for (int i = 0; i < n; i++)
        if (sdl_check(out[i].fd, err, errlen) < 0)
            return -1;
    return n;
}
