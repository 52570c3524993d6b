#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

/* The only process-wide state: configuration written once by main, read everywhere. */
static struct {
    const char *prog;
    enum log_level level;
    int stamp;
} log_cfg = {"tcpunch", LOG_WARN, 0};

void log_init(const char *prog, enum log_level level, int stamp)
{
    log_cfg.prog = prog;
    log_cfg.level = level;
    log_cfg.stamp = stamp;
}

int log_enabled(enum log_level level)
{
    return level <= log_cfg.level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warning", "", "", "debug"};
    char line[1024];
    char ts[40] = "";
    int n = 0;
    va_list ap;

    if (!log_enabled(level))
        return;
    if (log_cfg.stamp) {
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        size_t k = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(ts + k, sizeof ts - k, ".%03ldZ ", (long)tv.tv_usec / 1000);
    }
    n = snprintf(line, sizeof line, "%s%s: %s%s", ts, log_cfg.prog, names[level],
                 names[level][0] ? ": " : "");
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* one fputs per line so lines from concurrent processes do not interleave */
    fprintf(stderr, "%s\n", line);
}
