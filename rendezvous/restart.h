/* Clean restarts (PROTOCOL.md 5.1 "replace", README "Restarts and upgrades"): the pure
 * decisions of hello.replace's rate and of a drain's schedule, apart from the loop. */
#ifndef TP_RESTART_H
#define TP_RESTART_H

#include <stddef.h>
#include <stdint.h>

/* hello.replace: an id's registration may be taken over this many times in a burst, then once
 * per RST_REPLACE_EVERY_MS. A restart needs one; a key's owner replacing in a loop (each
 * replace is a signature check, a refusal, and in a cluster a bus message) gets rate-limited. */
#define RST_REPLACE_BURST 5
#define RST_REPLACE_EVERY_MS 2000

/* --drain: the goodbyes are spread over min(SEC/2, RST_SPREAD_MAX_MS), so that the next
 * server does not get every peer in the same millisecond; RST_TICK_MS apart */
#define RST_SPREAD_MAX_MS 3000
#define RST_TICK_MS 20
/* cluster mode: after the last goodbye, the peers' own spread (FO_SPREAD_MS, 500 ms) and a
 * registration elsewhere; the drain ends no earlier (never after SEC), so that the directory
 * has them on another instance before this one goes */
#define RST_MOVE_GRACE_MS 1500

/* The replaces of one id's registration, handed on to the connection that takes it over. */
struct rst_bucket {
    uint32_t debt_ms; /* RST_REPLACE_EVERY_MS per replace, paid back by the clock */
    uint64_t last_ms;
};

/* One replace now: 0 when allowed (counted), -1 when the id is replaced too often. */
int rst_replace_take(struct rst_bucket *b, uint64_t now_ms);

/* The window the goodbyes of a drain of drain_s seconds are spread over, in ms. */
uint64_t rst_spread_ms(unsigned drain_s);

/* How many of total peers should have been told to go elapsed_ms into a window of window_ms:
 * a linear share rounded up, all of them once the window is over (or when it is 0). */
size_t rst_due(size_t total, uint64_t window_ms, uint64_t elapsed_ms);

#endif
