/* libFuzzer harness for the socket activation variables (common/sdlisten.c, sdl_parse): the
 * input is split at the first two NUL bytes into LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES
 * (a missing part: unset). The service manager is trusted more than the network, but a wrong
 * unit file or an environment passed on by mistake must give a clean refusal, never a read
 * past a string or an fd outside 3..3+n-1.
 *
 * Invariants: the result is -1 (with a message), 0, or 1..max; fds are consecutive from 3; with
 * names, a probe flag only where that name is exactly "probe". */
#include "fuzz/fuzz.h"
#include "common/sdlisten.h"

#include <string.h>

#define FZ_PID 4242
#define FZ_MAX 8

/* The i-th colon-separated name is exactly "probe". */
static int fz_named_probe(const char *names, int i)
{
    const char *p = names, *end;
    for (; i > 0; i--) {
        p = strchr(p, ':');
        if (!p)
            return 0;
        p++;
    }
    end = strchr(p, ':');
    return (end ? (size_t)(end - p) : strlen(p)) == 5 && strncmp(p, "probe", 5) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1), *part[3] = {NULL, NULL, NULL}, err[200];
    struct sdl_fd fds[FZ_MAX];
    size_t at = 0;
    int n;
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    for (int i = 0; i < 3 && at <= size; i++) {
        part[i] = buf + at;
        at += strlen(buf + at) + 1;
    }
    err[0] = '\0';
    n = sdl_parse(part[0], part[1], part[2], FZ_PID, fds, FZ_MAX, err, sizeof err);
    FZ_CHECK(n >= -1 && n <= FZ_MAX, "n = %d", n);
    FZ_CHECK(n >= 0 || err[0], "a refusal without a message");
    for (int i = 0; i < n; i++) {
        FZ_CHECK(fds[i].fd == SDL_FDS_START + i, "fd %d at %d", fds[i].fd, i);
        FZ_CHECK(fds[i].probe == (part[2] && fz_named_probe(part[2], i)), "probe flag of %d", i);
    }
    free(buf);
    return 0;
}
