#ifndef TP_CLOCK_H
#define TP_CLOCK_H
#include <stdint.h>
/* Monotonic milliseconds / microseconds, for deadlines and measured durations. */
uint64_t clk_ms(void);
uint64_t clk_us(void);
#endif
