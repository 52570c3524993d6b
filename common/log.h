/* Logging to stderr. The level is set once by main before any event loop runs. */
#ifndef TP_LOG_H
#define TP_LOG_H

/* LOG_SILENT, as the level given to log_init only: nothing at all (the fuzz harnesses) */
enum log_level {
    LOG_SILENT = -1,
    LOG_ERROR = 0,
    LOG_WARN = 1,
    LOG_NOTE = 2,
    LOG_INFO = 3,
    LOG_DEBUG = 4
};

/* prog prefixes each line; stamp adds an ISO-8601 UTC time (servers). */
void log_init(const char *prog, enum log_level level, int stamp);
int log_enabled(enum log_level level);
/* JSON mode (tcpunch --json): every line becomes {"event":"log","level":..,"message":..}, except
 * the first error, which is held for the program's final error event (log_first_error). */
void log_set_json(int on);
int log_json(void);
/* The first error logged in JSON mode, or NULL. */
const char *log_first_error(void);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_E(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define LOG_W(...) log_msg(LOG_WARN, __VA_ARGS__)
#define LOG_N(...) log_msg(LOG_NOTE, __VA_ARGS__)
#define LOG_I(...) log_msg(LOG_INFO, __VA_ARGS__)
#define LOG_D(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
