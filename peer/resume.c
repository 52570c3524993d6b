/* A suspended session's path side: the pure part (peer/resume.h; docs/design/resume.md 4.5). */
#include "peer/resume.h"

static const uint32_t nf_table[] = {RESUME_NF_FIRST_MS, 500, 1000, RESUME_NF_EVERY_MS};
static const uint32_t pf_table[] = {0, 1000, 2000, 4000, RESUME_PF_EVERY_MS};

#define COUNT(a) (sizeof(a) / sizeof(a)[0])

uint64_t resume_next_ms(int attempt, bool not_found, uint32_t rnd)
{
    const uint32_t *t = not_found ? nf_table : pf_table;
    unsigned n = not_found ? (unsigned)COUNT(nf_table) : (unsigned)COUNT(pf_table);
    unsigned i = attempt < 0 ? 0u : (unsigned)attempt;
    if (i >= n)
        i = n - 1;
    uint64_t base = t[i];
    return base + rnd % (base / RESUME_JITTER_DIV + 1u);
}

static uint64_t elapsed(uint64_t now_ms, uint64_t started_ms)
{
    return now_ms > started_ms ? now_ms - started_ms : 0;
}

bool resume_give_up(uint64_t now_ms, uint64_t started_ms, uint64_t timeout_ms)
{
    return elapsed(now_ms, started_ms) >= timeout_ms;
}

uint64_t resume_left_ms(uint64_t now_ms, uint64_t started_ms, uint64_t timeout_ms)
{
    uint64_t e = elapsed(now_ms, started_ms);
    return e >= timeout_ms ? 0 : timeout_ms - e;
}
