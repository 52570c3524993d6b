/* Kernel receive stamps onto the monotonic clock: an honest stamp keeps its age, a stamp from
 * the future or from before the monotonic clock began reads as now. */
#include "check.h"
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

static void t_clocks(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t a = stamp_to_mono(&now);
    /* now, read a moment later: not in the future, and not far in the past */
    struct timespec later;
    clock_gettime(CLOCK_REALTIME, &later);
    uint64_t b = stamp_to_mono(&later);
    CHECK(b >= a);
}

CHECK_MAIN(TEST(t_age_kept), TEST(t_no_stamp), TEST(t_clocks))
