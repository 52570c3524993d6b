/* Kernel receive stamps (SO_TIMESTAMPNS) on our monotonic clock: the kernel stamps arrivals on
 * CLOCK_REALTIME, while our deadlines run on CLOCK_MONOTONIC (common/clock.h). */
#ifndef TP_STAMP_H
#define TP_STAMP_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* The monotonic time (microseconds) of an arrival stamped rx_real, when the real-time clock
 * reads real_now and the monotonic one mono_now. A stamp from the future, or older than the
 * monotonic clock itself (the real-time clock was set back), is no stamp: mono_now. */
uint64_t stamp_real_to_mono(uint64_t rx_real, uint64_t real_now, uint64_t mono_now);

/* The same against the clocks as they read now. */
uint64_t stamp_to_mono(const struct timespec *rx);

/* recvmsg() on a socket with SO_TIMESTAMPNS on (MSG_DONTWAIT): its result, and in *rx_us the
 * arrival time of the bytes on our monotonic clock (now, without a stamp). */
ssize_t stamp_recv(int fd, void *buf, size_t len, uint64_t *rx_us);

#endif
