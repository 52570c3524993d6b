/* Transfer progress on stderr: a bar redrawn in place (at most 10 times a second) when stderr
 * is a terminal, else nothing until the summary lines. */
#ifndef TP_PROGRESS_H
#define TP_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct progress {
    bool bar;          /* draw the bar: stderr is a terminal, not -q, not --json */
    uint64_t total;    /* bytes of all files */
    uint64_t done;     /* bytes of all files so far */
    uint64_t start_ms; /* of the whole transfer */
    uint64_t last_ms;  /* of the last redraw */
    const char *name;  /* the file now moving */
    bool drawn;        /* a bar is on the screen (to be cleared before a log line) */
};

void pg_init(struct progress *p, bool bar, uint64_t total);

/* n more bytes of the current file moved; redraws when the last redraw is 100 ms old. */
void pg_add(struct progress *p, const char *name, uint64_t n);

/* Clears the bar, so that a log line does not land in the middle of it. */
void pg_clear(struct progress *p);

/* "1.5 MiB" style, into out. */
const char *pg_bytes(uint64_t n, char *out, size_t len);

/* Bytes per second over ms as "12.3 MiB/s". */
const char *pg_rate(uint64_t n, uint64_t ms, char *out, size_t len);

#endif
