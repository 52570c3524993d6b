/* Newline framing with a hard cap on line length (the protocol's 4096 bytes).
 *
 * One framer for the server's many idle connections and the peer's few: it holds no memory
 * until a read ends inside a line. Whole lines are handed to the callback in place (data is
 * modified: each newline becomes a NUL); only a started line is copied, to a buffer allocated
 * then and freed once the line is complete. */
#ifndef TP_LINEBUF_H
#define TP_LINEBUF_H

#include <stddef.h>
#include <sys/types.h>

#define LB_MAX 4096 /* bytes in a line, newline included */

struct lb {
    size_t len; /* bytes of the pending line */
    char *buf;  /* LB_MAX + 1 bytes while a line is pending, else NULL */
};

/* Called per complete line, newline removed and NUL-terminated. Non-zero stops the feed:
 * the callback may have freed the owner of the framer. */
typedef int (*lb_cb)(void *ctx, char *line, size_t len);

void lb_init(struct lb *lb);

/* Frees a pending line's buffer (harmless on an idle framer): the owner calls it before it
 * goes away. */
void lb_free(struct lb *lb);

/* Returns the bytes of data consumed (all of them unless the callback stopped the feed;
 * what follows a stopping line is left to the caller), or -1 when a line exceeds LB_MAX or
 * memory runs out; the framer is then empty again (a caller drops the connection anyway). */
ssize_t lb_feed(struct lb *lb, char *data, size_t n, lb_cb cb, void *ctx);

#endif
