#include "common/linebuf.h"

#include <string.h>

void lb_init(struct lb *lb)
{
    lb->len = 0;
}

ssize_t lb_feed(struct lb *lb, const char *data, size_t n, lb_cb cb, void *ctx)
{
    size_t off = 0;
    while (off < n) {
        const char *nl = memchr(data + off, '\n', n - off);
        size_t chunk = nl ? (size_t)(nl - (data + off)) : n - off;
        /* chunk + newline must fit; a partial line may fill up to LB_MAX - 1 bytes */
        if (lb->len + chunk + 1 > LB_MAX)
            return -1;
        memcpy(lb->buf + lb->len, data + off, chunk);
        lb->len += chunk;
        off += chunk;
        if (!nl)
            break;
        off++; /* the newline */
        lb->buf[lb->len] = '\0';
        size_t len = lb->len;
        lb->len = 0;
        if (cb(ctx, lb->buf, len) != 0)
            return (ssize_t)off;
    }
    return (ssize_t)off;
}
