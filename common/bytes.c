#include "common/bytes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int bytes_parse(const char *s, const char *units, uint64_t *out)
{
    char *end;
    unsigned long long v;
    unsigned shift = 0;
    /* strtoull takes blanks and a sign; a byte count has neither */
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    if (*end) {
        /* & ~0x20 upper-cases a letter; a blank would become NUL, which strchr finds too */
        const char *u = strchr(units, end[0] & ~0x20);
        if (!u || !*u || end[1])
            return -1;
        shift = 10 * (unsigned)(u - units + 1);
    }
    if (shift && v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}
