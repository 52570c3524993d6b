#include "peer/progress.h"

#include <stdio.h>

#include "common/clock.h"
#include "common/vis.h"

#define PG_INTERVAL_MS 100

void pg_init(struct progress *p, bool bar, uint64_t total)
{
    *p = (struct progress){.bar = bar, .total = total, .start_ms = clk_ms()};
}

const char *pg_bytes(uint64_t n, char *out, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, len, "%llu B", (unsigned long long)n);
    else
        snprintf(out, len, "%.1f %s", v, units[u]);
    return out;
}

const char *pg_rate(uint64_t n, uint64_t ms, char *out, size_t len)
{
    char b[32];
    /* under a millisecond: as if it took one, rather than dividing by zero */
    uint64_t per_s = (uint64_t)((double)n * 1000.0 / (double)(ms ? ms : 1));
    snprintf(out, len, "%s/s", pg_bytes(per_s, b, sizeof b));
    return out;
}

static void pg_draw(struct progress *p, uint64_t now)
{
    char done[32], total[32], rate[32], eta[32] = "--:--", name[31];
    uint64_t ms = now - p->start_ms;
    unsigned pct = p->total ? (unsigned)(p->done * 100 / p->total) : 100;
    if (p->done > 0 && ms > 0 && p->total >= p->done) {
        uint64_t left_s =
            (uint64_t)((double)(p->total - p->done) * (double)ms / (double)p->done / 1000.0);
        snprintf(eta, sizeof eta, "%llu:%02llu", (unsigned long long)(left_s / 60),
                 (unsigned long long)(left_s % 60));
    }
    /* \r and erase-to-end-of-line: one line redrawn in place */
    /* the name came from the sender: rendered safe, and cut at a character boundary */
    vis_str(p->name ? p->name : "", name, sizeof name);
    fprintf(stderr, "\r%s %3u%% %s / %s  %s  ETA %s\033[K", name, pct,
            pg_bytes(p->done, done, sizeof done), pg_bytes(p->total, total, sizeof total),
            pg_rate(p->done, ms, rate, sizeof rate), eta);
    fflush(stderr);
    p->drawn = true;
    p->last_ms = now;
}

void pg_add(struct progress *p, const char *name, uint64_t n)
{
    uint64_t now;
    p->done += n;
    p->name = name;
    if (!p->bar)
        return;
    now = clk_ms();
    if (!p->drawn || now - p->last_ms >= PG_INTERVAL_MS || p->done == p->total)
        pg_draw(p, now);
}

void pg_clear(struct progress *p)
{
    if (!p->drawn)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->drawn = false;
}
