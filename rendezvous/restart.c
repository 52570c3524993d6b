#include "rendezvous/restart.h"

int rst_replace_take(struct rst_bucket *b, uint64_t now_ms)
{
    uint64_t paid = now_ms > b->last_ms ? now_ms - b->last_ms : 0;
    b->debt_ms = paid >= b->debt_ms ? 0 : b->debt_ms - (uint32_t)paid;
    b->last_ms = now_ms;
    if ((uint64_t)b->debt_ms + RST_REPLACE_EVERY_MS >
        (uint64_t)RST_REPLACE_BURST * RST_REPLACE_EVERY_MS)
        return -1;
    b->debt_ms += RST_REPLACE_EVERY_MS;
    return 0;
}

uint64_t rst_spread_ms(unsigned drain_s)
{
    uint64_t half = (uint64_t)drain_s * 1000 / 2;
    return half < RST_SPREAD_MAX_MS ? half : RST_SPREAD_MAX_MS;
}

size_t rst_due(size_t total, uint64_t window_ms, uint64_t elapsed_ms)
{
    if (window_ms == 0 || elapsed_ms >= window_ms)
        return total;
    /* total is at most the peers a server holds (far below 2^40): no overflow */
    return (size_t)(((uint64_t)total * elapsed_ms + window_ms - 1) / window_ms);
}
