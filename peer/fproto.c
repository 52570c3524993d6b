#include "peer/fproto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/vis.h"

/* One component: 1..FPROTO_PART_MAX bytes, not "." or "..", no control character, C1 control,
 * direction mark or invalid UTF-8 (names are printed on the receiver's terminal and listed by
 * ls later). */
static bool fproto_check_part(const char *p, size_t n, char *why, size_t len)
{
    if (n == 0) {
        snprintf(why, len, "empty path component (leading, trailing or double '/')");
        return false;
    }
    if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
        snprintf(why, len, "'%.*s' component: names must stay inside the directory", (int)n, p);
        return false;
    }
    if (n > FPROTO_PART_MAX) {
        snprintf(why, len, "a path component over %d bytes", FPROTO_PART_MAX);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch < 0x20 || ch == 0x7f) {
            snprintf(why, len, "control character in the name");
            return false;
        }
    }
    /* what vis_mem would have to escape: a name that shows as something else in ls */
    if (!vis_clean(p, n)) {
        snprintf(why, len, "a C1 control, an invisible direction mark or invalid UTF-8 in the "
                           "name");
        return false;
    }
    return true;
}

bool fproto_check_name(const char *name, char *why, size_t len)
{
    size_t n = strlen(name);
    int depth = 0;
    if (n == 0 || n > FPROTO_NAME_MAX) {
        snprintf(why, len, "a name must be 1 to %d bytes", FPROTO_NAME_MAX);
        return false;
    }
    if (name[0] == '/') {
        snprintf(why, len, "absolute name");
        return false;
    }
    for (const char *q = name; (q = strchr(q, '/')); q++)
        if (++depth >= FPROTO_DEPTH_MAX) {
            snprintf(why, len, "more than %d components (directories and the file)",
                     FPROTO_DEPTH_MAX);
            return false;
        }
    for (const char *p = name;;) {
        const char *slash = strchr(p, '/');
        size_t part = slash ? (size_t)(slash - p) : strlen(p);
        if (!fproto_check_part(p, part, why, len))
            return false;
        if (!slash)
            return true;
        p = slash + 1;
    }
}

int fproto_send(struct chan *c, json_t *msg)
{
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    char *line = NULL;
    size_t n;
    int rc = -1;
    json_decref(msg);
    if (!text)
        goto oom;
    n = strlen(text);
    /* the line and its newline in one record */
    if (!(line = malloc(n + 1)))
        goto oom;
    memcpy(line, text, n);
    line[n] = '\n';
    rc = chan_write(c, line, n + 1);
    goto out;
oom:
    snprintf(c->err, sizeof c->err, "out of memory");
out:
    free(line);
    free(text);
    return rc;
}

int fproto_recv(struct chan *c, json_t **msg)
{
    char line[FPROTO_LINE];
    json_error_t jerr;
    long n = chan_readline(c, line, sizeof line);
    *msg = NULL;
    if (n <= 0)
        return (int)n;
    *msg = json_loadb(line, (size_t)n, 0, &jerr);
    if (!*msg || !json_is_object(*msg)) {
        json_decref(*msg);
        *msg = NULL;
        snprintf(c->err, sizeof c->err, "the peer sent something other than the file protocol");
        return -1;
    }
    return 1;
}
