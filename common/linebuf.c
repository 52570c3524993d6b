#include "common/linebuf.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void lb_init(struct lb *lb)
{
    lb->len = 0;
    lb->buf = NULL;
}

void lb_free(struct lb *lb)
{
    free(lb->buf);
    lb_init(lb);
}

/* Appends a piece of the pending line; -1 when it would not fit (or no memory). */
static int lb_keep(struct lb *lb, const char *p, size_t n)
{
    /* chunk + newline must fit; a pending line may fill up to LB_MAX - 1 bytes */
    if (lb->len + n + 1 > LB_MAX)
        return -1;
    if (!lb->buf && !(lb->buf = malloc(LB_MAX + 1)))
        return -1;
    memcpy(lb->buf + lb->len, p, n);
    lb->len += n;
    return 0;
}

ssize_t lb_feed(struct lb *lb, char *data, size_t n, lb_cb cb, void *ctx)
{
    size_t off = 0;
    while (off < n) {
        char *line = data + off, *nl = memchr(line, '\n', n - off);
        size_t chunk = nl ? (size_t)(nl - line) : n - off, len;
        bool copied = !nl || lb->len;
        if (copied) {
            if (lb_keep(lb, line, chunk) < 0)
                goto overlong;
            off += chunk;
            if (!nl)
                break;
            line = lb->buf;
            len = lb->len;
        } else {
            if (chunk + 1 > LB_MAX)
                goto overlong;
            off += chunk;
            len = chunk;
        }
        off++; /* the newline */
        line[len] = '\0';
        lb->len = 0;
        /* a stopping callback may have freed the owner, and lb with it: touch nothing after
         * that (the owner frees a kept buffer with lb_free) */
        if (cb(ctx, line, len) != 0)
            return (ssize_t)off;
        if (copied)
            lb_free(lb);
    }
    return (ssize_t)off;
overlong:
    lb_free(lb);
    return -1;
}
