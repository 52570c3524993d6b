/* Clean restarts: hello.replace's per-id bucket, a drain's schedule (rendezvous/restart.c),
 * and the socket activation variables (common/sdlisten.c). */
#include "check.h"
#include "common/sdlisten.h"
#include "rendezvous/restart.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void t_replace_bucket(void)
{
    struct rst_bucket b = {0, 0};
    uint64_t now = 100000;
    for (int i = 0; i < RST_REPLACE_BURST; i++)
        CHECK_INT(rst_replace_take(&b, now), 0);
    CHECK_INT(rst_replace_take(&b, now), -1); /* a burst, then no more at once */
    CHECK_INT(rst_replace_take(&b, now + RST_REPLACE_EVERY_MS - 1), -1);
    CHECK_INT(rst_replace_take(&b, now + RST_REPLACE_EVERY_MS), 0); /* one per period */
    CHECK_INT(rst_replace_take(&b, now + RST_REPLACE_EVERY_MS), -1);
    /* a long pause pays everything back, never more than a burst */
    now += 1000000;
    for (int i = 0; i < RST_REPLACE_BURST; i++)
        CHECK_INT(rst_replace_take(&b, now), 0);
    CHECK_INT(rst_replace_take(&b, now), -1);
    /* a clock that goes back costs nothing and grants nothing */
    CHECK_INT(rst_replace_take(&b, now - 5000), -1);
}

static void t_drain_schedule(void)
{
    CHECK_INT(rst_spread_ms(1), 500);
    CHECK_INT(rst_spread_ms(4), 2000);
    CHECK_INT(rst_spread_ms(10), RST_SPREAD_MAX_MS);
    CHECK_INT(rst_spread_ms(86400), RST_SPREAD_MAX_MS);
    CHECK_INT(rst_due(0, 3000, 0), 0);
    CHECK_INT(rst_due(8, 3000, 0), 0);
    CHECK_INT(rst_due(8, 3000, 20), 1);   /* rounded up: the first goes at the first tick */
    CHECK_INT(rst_due(8, 3000, 1500), 4); /* linear */
    CHECK_INT(rst_due(8, 3000, 2999), 8);
    CHECK_INT(rst_due(8, 3000, 3000), 8);
    CHECK_INT(rst_due(8, 3000, 99999), 8); /* never more than there are */
    CHECK_INT(rst_due(8, 0, 0), 8);        /* no window: all at once */
    CHECK_INT(rst_due(100000, 3000, 30), 1000);
    /* monotonic over the window */
    size_t prev = 0;
    for (uint64_t t = 0; t <= 3000; t += 20) {
        size_t d = rst_due(1000, 3000, t);
        CHECK(d >= prev && d <= 1000);
        prev = d;
    }
}

static void t_sdl_parse(void)
{
    struct sdl_fd fds[SDL_MAX_FDS];
    char err[200];
    /* not set, or for another process: not activated */
    CHECK_INT(sdl_parse(NULL, NULL, NULL, 42, fds, SDL_MAX_FDS, err, sizeof err), 0);
    CHECK_INT(sdl_parse("42", NULL, NULL, 42, fds, SDL_MAX_FDS, err, sizeof err), 0);
    CHECK_INT(sdl_parse(NULL, "1", NULL, 42, fds, SDL_MAX_FDS, err, sizeof err), 0);
    CHECK_INT(sdl_parse("41", "1", NULL, 42, fds, SDL_MAX_FDS, err, sizeof err), 0);
    CHECK_INT(sdl_parse("042x", "1", NULL, 42, fds, SDL_MAX_FDS, err, sizeof err), 0);
    CHECK_INT(sdl_parse("+42", "1", NULL, 42, fds, SDL_MAX_FDS, err, sizeof err), 0);
    /* ours */
    CHECK_INT(sdl_parse("42", "2", NULL, 42, fds, SDL_MAX_FDS, err, sizeof err), 2);
    CHECK_INT(fds[0].fd, 3);
    CHECK_INT(fds[1].fd, 4);
    CHECK(!fds[0].probe && !fds[1].probe);
    CHECK_INT(sdl_parse("42", "3", "main:probe:main6", 42, fds, SDL_MAX_FDS, err, sizeof err), 3);
    CHECK(!fds[0].probe && fds[1].probe && !fds[2].probe);
    CHECK_INT(sdl_parse("42", "2", "probe:probes", 42, fds, SDL_MAX_FDS, err, sizeof err), 2);
    CHECK(fds[0].probe && !fds[1].probe); /* the exact name only */
    CHECK_INT(sdl_parse("42", "2", ":probe", 42, fds, SDL_MAX_FDS, err, sizeof err), 2);
    CHECK(!fds[0].probe && fds[1].probe);
    /* malformed: refused with a reason */
    CHECK_INT(sdl_parse("42", "0", NULL, 42, fds, SDL_MAX_FDS, err, sizeof err), -1);
    CHECK_INT(sdl_parse("42", "-1", NULL, 42, fds, SDL_MAX_FDS, err, sizeof err), -1);
    CHECK_INT(sdl_parse("42", "x", NULL, 42, fds, SDL_MAX_FDS, err, sizeof err), -1);
    CHECK_INT(sdl_parse("42", "33", NULL, 42, fds, SDL_MAX_FDS, err, sizeof err), -1);
    CHECK_INT(sdl_parse("42", "99999999999999999999", NULL, 42, fds, SDL_MAX_FDS, err, sizeof err),
              -1);
    CHECK_INT(sdl_parse("42", "3", NULL, 42, fds, 2, err, sizeof err), -1); /* room for 2 */
    CHECK_INT(sdl_parse("42", "2", "main", 42, fds, SDL_MAX_FDS, err, sizeof err), -1);
    CHECK_INT(sdl_parse("42", "1", "a:b", 42, fds, SDL_MAX_FDS, err, sizeof err), -1);
    CHECK(strstr(err, "names") != NULL);
}

static void t_sdl_check(void)
{
    char err[200];
    int l = socket(AF_INET, SOCK_STREAM, 0), u = socket(AF_INET, SOCK_DGRAM, 0);
    int t = socket(AF_INET, SOCK_STREAM, 0), p[2] = {-1, -1};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(l >= 0 && u >= 0 && t >= 0 && pipe(p) == 0);
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0 && listen(l, 4) == 0);
    CHECK_INT(sdl_check(l, err, sizeof err), 0);
    CHECK_INT(sdl_check(u, err, sizeof err), -1);
    CHECK_INT(sdl_check(t, err, sizeof err), -1); /* a stream socket, not listening */
    CHECK_INT(sdl_check(p[0], err, sizeof err), -1);
    CHECK(strstr(err, "not a socket") != NULL);
    CHECK_INT(sdl_check(9999, err, sizeof err), -1);
    close(l);
    close(u);
    close(t);
    close(p[0]);
    close(p[1]);
}

/* sdl_take unsets the variables whatever they said: children must not inherit them */
static void t_sdl_take_unsets(void)
{
    struct sdl_fd fds[SDL_MAX_FDS];
    char err[200];
    setenv("LISTEN_PID", "1", 1); /* another process's */
    setenv("LISTEN_FDS", "1", 1);
    setenv("LISTEN_FDNAMES", "main", 1);
    CHECK_INT(sdl_take(fds, SDL_MAX_FDS, err, sizeof err), 0);
    CHECK(!getenv("LISTEN_PID") && !getenv("LISTEN_FDS") && !getenv("LISTEN_FDNAMES"));
    setenv("LISTEN_FDS", "x", 1);
    setenv("LISTEN_PID", "1", 1);
    CHECK_INT(sdl_take(fds, SDL_MAX_FDS, err, sizeof err), 0);
    CHECK(!getenv("LISTEN_FDS"));
}

CHECK_MAIN(TEST(t_replace_bucket), TEST(t_drain_schedule), TEST(t_sdl_parse), TEST(t_sdl_check),
           TEST(t_sdl_take_unsets))
