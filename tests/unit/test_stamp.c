/* Kernel receive stamps onto the monotonic clock: an honest stamp keeps its age, a stamp from
 * the future or from before the monotonic clock began reads as now. */
#include "check.h"
#include "common/clock.h"
#include "common/stamp.h"

static void t_age_kept(void)
{
    /* 300 us old on the real-time clock: 300 us before now on the monotonic one */
    CHECK(stamp_real_to_mono(1000000700, 1000001000, 5000) == 4700);
    CHECK(stamp_real_to_mono(1000001000, 1000001000, 5000) == 5000);
    /* as old as the monotonic clock itself is still a stamp */
    CHECK(stamp_real_to_mono(1000000000, 1000005000, 5000) == 0);
}

static void t_no_stamp(void)
{
    /* from the future (the real-time clock was set back after the arrival) */
    CHECK(stamp_real_to_mono(1000001001, 1000001000, 5000) == 5000);
    /* older than the monotonic clock: it would go below zero */
    CHECK(stamp_real_to_mono(1000000000, 1000005001, 5000) == 5000);
}

/* Against the real clocks: a stamp taken 300 ms ago reads as 300 ms before now, give or take
 * the moment between reading the two clocks (a generous slack: the machine may be busy). */
static void t_clocks(void)
{
    struct timespec rx;
    uint64_t before = clk_us(), got, after;
    clock_gettime(CLOCK_REALTIME, &rx);
    rx.tv_nsec -= 300000000L;
    if (rx.tv_nsec < 0) {
        rx.tv_nsec += 1000000000L;
        rx.tv_sec--;
    }
    got = stamp_to_mono(&rx);
    after = clk_us();
    CHECK(got + 300000 <= after);
    CHECK(got + 300000 + 500000 >= before);
}

CHECK_MAIN(TEST(t_age_kept), TEST(t_no_stamp), TEST(t_clocks))
