/* The process gauges from /proc/self (rendezvous/procself.c): right, and as cheap with 19 000
 * descriptors open as with 20, since the server reads them on its event loop. */
#include "check.h"
#include "rendezvous/procself.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double t_cpu_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void t_rss(void)
{
    CHECK(ps_rss_bytes() > 0);
}

/* Counting the entries of /proc/self/fd takes ~4 us each (80 ms at 19 000: a stall of every
 * peer's punch timing once a second while scraped); the count must not cost that. */
static void t_fds_many(void)
{
    struct rlimit rl;
    struct stat st;
    int want, opened = 0, *fds;
    uint64_t base = ps_open_fds(), got;
    double t0, spent;
    if (!CHECK(base > 0) || !CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0))
        return;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    want = rl.rlim_cur > 20000 ? 19000 : (int)rl.rlim_cur - (int)base - 16;
    if (!CHECK_MSG(want > 4 * PS_FD_SCAN, "descriptor limit %llu too low for the test",
                   (unsigned long long)rl.rlim_cur))
        return;
    if (!CHECK((fds = calloc((size_t)want, sizeof *fds)) != NULL))
        return;
    for (; opened < want; opened++)
        if ((fds[opened] = open("/dev/null", O_RDONLY)) < 0)
            break;
    CHECK_INT(opened, want);
    t0 = t_cpu_ms();
    got = ps_open_fds();
    spent = t_cpu_ms() - t0;
    CHECK_MSG(spent < 20.0, "counting %d descriptors took %.1f ms of CPU", opened + (int)base,
              spent);
    /* Linux 6.2 on tells the count as the directory's size; an older kernel gives up (0) */
    if (stat("/proc/self/fd", &st) == 0 && st.st_size > 0)
        CHECK_INT((long long)got, (long long)base + opened);
    else
        CHECK_INT((long long)got, 0);
    while (opened-- > 0)
        close(fds[opened]);
    free(fds);
    CHECK_INT((long long)ps_open_fds(), (long long)base);
}

CHECK_MAIN(TEST(t_rss), TEST(t_fds_many))
