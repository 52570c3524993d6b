/* A suspended session's path side (docs/design/resume.md, section 4.5, "Finding each other
 * again"). Only the pure part is built so far: the initiator's waits between attempts and the
 * resume deadline. No I/O, no clock of its own (time passed in), no randomness of its own (the
 * jitter's random input passed in), so every value is testable (tests/unit/test_migrate.c).
 * resume_start/resume_cancel (the tables' I/O) come with the path thread. */
#ifndef TP_RESUME_H
#define TP_RESUME_H

#include <stdbool.h>
#include <stdint.h>

/* ASK answered `peer-not-found` (the responder may still be re-registering): 250 ms, 500 ms,
 * 1 s, then every 2 s (design 4.5). */
#define RESUME_NF_FIRST_MS 250u
#define RESUME_NF_EVERY_MS 2000u
/* PUNCH failed: REGISTER again after 0, 1, 2, 4, then every 5 s (design 4.5). */
#define RESUME_PF_EVERY_MS 5000u
/* The jitter adds up to a quarter of the wait, never less than the design's value: as built,
 * so that the initiators of many sessions cut by one event (a server or router restart) do not
 * all ask the server in the same millisecond. Bounded: no wait exceeds
 * RESUME_MAX_WAIT_MS = 5000 + 5000/4. A 0 wait stays 0 (re-register at once). */
#define RESUME_JITTER_DIV 4u
#define RESUME_MAX_WAIT_MS (RESUME_PF_EVERY_MS + RESUME_PF_EVERY_MS / RESUME_JITTER_DIV)

/* The wait before the next attempt, in ms. attempt counts from 0 (the wait after the first
 * `peer-not-found`, or after the first failed punch); a negative attempt counts as 0 and any
 * attempt past the table gets its last value. not_found: the ASK table, else the punch table.
 * rnd: any 32-bit random value (the jitter is rnd % (base / 4 + 1), so 0 gives exactly the
 * design's value). */
uint64_t resume_next_ms(int attempt, bool not_found, uint32_t rnd);

/* The resume deadline (--resume-timeout, effective = min of both peers, design 4.3), counted
 * from this side's own failure detection at started_ms:
 * - resume_give_up: true when timeout_ms have passed (now_ms - started_ms >= timeout_ms);
 *   timeout_ms 0 (resume off) gives up at once; a now_ms before started_ms (a caller's mistake)
 *   counts as 0 elapsed.
 * - resume_left_ms: the ms left until then, 0 once given up (for the timer, and to cap a wait).
 * Both compute with a difference, never started_ms + timeout_ms, so no value overflows. */
bool resume_give_up(uint64_t now_ms, uint64_t started_ms, uint64_t timeout_ms);
uint64_t resume_left_ms(uint64_t now_ms, uint64_t started_ms, uint64_t timeout_ms);

#endif
