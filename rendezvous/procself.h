/* The process's own gauges from /proc/self (deploy/METRICS.md, "Process"), read on the event
 * loop's thread: each must cost about the same at 20 descriptors as at 100 000. */
#ifndef TP_PROCSELF_H
#define TP_PROCSELF_H

#include <stdint.h>

/* Resident memory in bytes (/proc/self/statm); 0 where unreadable. */
uint64_t ps_rss_bytes(void);

/* Open descriptors: the size Linux (6.2 on) gives /proc/self/fd, one stat(). An older kernel
 * says 0 there; then the entries are counted, at most PS_FD_SCAN of them (a pass over 20 000
 * takes ~80 ms: the loop would stall). 0 where unreadable or over that. */
#define PS_FD_SCAN 2048
uint64_t ps_open_fds(void);

#endif
