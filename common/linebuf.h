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

#endif
