#include "common/linebuf.h"

#include <stdbool.h>
#include <stdlib.h>
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

void lbz_init(struct lbz *lb)
{
    lb->len = 0;
    lb->buf = NULL;
}

void lbz_free(struct lbz *lb)
{
    free(lb->buf);
    lbz_init(lb);
}

/* Appends a piece of the pending line; -1 when it would not fit. */
static int lbz_keep(struct lbz *lb, const char *p, size_t n)
{
    if (lb->len + n + 1 > LB_MAX)
        return -1;
    if (!lb->buf && !(lb->buf = malloc(LB_MAX + 1)))
        return -1;
    memcpy(lb->buf + lb->len, p, n);
    lb->len += n;
    return 0;
}

ssize_t lbz_feed(struct lbz *lb, char *data, size_t n, lb_cb cb, void *ctx)
{
    size_t off = 0;
    while (off < n) {
        char *line = data + off, *nl = memchr(line, '\n', n - off);
        size_t chunk = nl ? (size_t)(nl - line) : n - off, len;
        bool copied;
        int stop;
        if (!nl || lb->len) {
            if (lbz_keep(lb, line, chunk) < 0)
                return -1;
            off += chunk;
            if (!nl)
                break;
            line = lb->buf;
            len = lb->len;
        } else {
            if (chunk + 1 > LB_MAX)
                return -1;
            off += chunk;
            len = chunk;
        }
        off++; /* the newline */
        line[len] = '\0';
        copied = line == lb->buf;
        lb->len = 0;
        /* a stopping callback may have freed the owner, and lb with it: touch nothing after
         * that (the owner frees a kept buffer with lbz_free) */
        stop = cb(ctx, line, len);
        if (stop)
            return (ssize_t)off;
        if (copied)
            lbz_free(lb);
    }
    return (ssize_t)off;
}
