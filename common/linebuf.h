/* Newline framing with a hard cap on line length (the protocol's 4096 bytes). */
#ifndef TP_LINEBUF_H
#define TP_LINEBUF_H

#include <stddef.h>
#include <sys/types.h>

#define LB_MAX 4096 /* bytes in a line, newline included */

struct lb {
    size_t len;
    char buf[LB_MAX + 1];
};

/* Called per complete line, newline removed and NUL-terminated. Non-zero stops the feed:
 * the callback may have freed the owner of the buffer. */
typedef int (*lb_cb)(void *ctx, char *line, size_t len);

void lb_init(struct lb *lb);

/* Returns the bytes of data consumed (all of them unless the callback stopped the feed;
 * what follows a stopping line is left to the caller), or -1 when a line exceeds LB_MAX. */
ssize_t lb_feed(struct lb *lb, const char *data, size_t n, lb_cb cb, void *ctx);

/* The same framing for servers holding many idle connections: no buffer of its own until a
 * read ends inside a line. Whole lines are handed to the callback in place (data is modified:
 * each newline becomes a NUL); a started line is copied to a buffer allocated then and freed
 * when the line is complete. */
struct lbz {
    size_t len;
    char *buf; /* NULL unless a line is pending */
};

void lbz_init(struct lbz *lb);
void lbz_free(struct lbz *lb);

/* As lb_feed; also -1 when out of memory. */
ssize_t lbz_feed(struct lbz *lb, char *data, size_t n, lb_cb cb, void *ctx);

#endif
