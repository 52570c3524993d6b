#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

#include "common/vis.h"

/* The only process-wide state: configuration written once by main, read everywhere, and in
 * JSON mode the first error, which main reports as the final error event. */
static struct {
    const char *prog;
    enum log_level level;
    int stamp;
    int json;
    int held;
    char first_error[VIS_SIZE(1024)];
} log_cfg = {"tcpunch", LOG_WARN, 0, 0, 0, ""};

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

void log_set_json(int on)
{
    log_cfg.json = on;
}

int log_json(void)
{
    return log_cfg.json;
}

const char *log_first_error(void)
{
    return log_cfg.held ? log_cfg.first_error : NULL;
}

/* Escapes text as the body of a JSON string; bytes >= 0x80 pass (vis_mem made it valid UTF-8). */
static void log_json_escape(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (; *in && o + 7 < len; in++) {
        unsigned char ch = (unsigned char)*in;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(out + o, len - o, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o] = '\0';
}

static void log_json_line(enum log_level level, const char *msg)
{
    static const char *const levels[] = {"error", "warning", "note", "info", "debug"};
    char esc[2 * VIS_SIZE(1024) + 8]; /* after vis_mem only '"' and '\\' grow, to two bytes */
    /* forwarding sessions log from their own threads: only one of them may take the slot */
    static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
    if (level == LOG_ERROR) {
        int took = 0;
        pthread_mutex_lock(&hold_lock);
        if (!log_cfg.held) {
            snprintf(log_cfg.first_error, sizeof log_cfg.first_error, "%s", msg);
            log_cfg.held = took = 1;
        }
        pthread_mutex_unlock(&hold_lock);
        if (took)
            return;
    }
    log_json_escape(msg, esc, sizeof esc);
    fprintf(stderr, "{\"event\":\"log\",\"level\":\"%s\",\"message\":\"%s\"}\n", levels[level],
            esc);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warning", "", "", "debug"};
    char line[1024], shown[VIS_SIZE(1024)];
    char ts[40] = "";
    int n = 0;
    va_list ap;

    if (!log_enabled(level))
        return;
    /* messages carry ids, reasons, error texts and file names from the network: every line is
     * rendered safe for a terminal (common/vis.h), whoever formatted it */
    if (log_cfg.json) {
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        log_json_line(level, vis_str(line, shown, sizeof shown));
        return;
    }
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
    fprintf(stderr, "%s\n", vis_str(line, shown, sizeof shown));
}
