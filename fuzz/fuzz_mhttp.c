/* libFuzzer harness for the metrics port's request parser (rendezvous/mhttp.c, mh_parse and
 * mh_route). Every input is what a client sent, read in pieces: the verdict must be one of the
 * four, a decided verdict (a request, or a refusal) must not change when more bytes arrive (the
 * server acts on the first one), a request's path is bounded, NUL-terminated, printable and
 * starts with '/', 431 only once the limit is reached, and nothing is read past len or max. */
#include "fuzz/fuzz.h"
#include "rendezvous/mhttp.h"

#include <string.h>

static void fz_check_req(const struct mh_req *r)
{
    size_t n = strnlen(r->path, sizeof r->path);
    int page, st;
    FZ_CHECK(n < sizeof r->path, "path not terminated");
    FZ_CHECK(n >= 1 && r->path[0] == '/', "path \"%s\" does not start with /", r->path);
    for (size_t i = 0; i < n; i++)
        FZ_CHECK(r->path[i] > ' ' && r->path[i] < 0x7f && r->path[i] != '?', "byte %d in the path",
                 r->path[i]);
    FZ_CHECK(r->method == MH_GET || r->method == MH_HEAD || r->method == MH_OTHER, "method %d",
             (int)r->method);
    st = mh_route(r, true, &page);
    FZ_CHECK(st == 200 || st == 404 || st == 405, "status %d", st);
    FZ_CHECK(st != 200 || page == 1 || page == 2, "200 for page %d", page);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of exactly size bytes: ASan sees any read past the end */
    char *buf = malloc(size ? size : 1);
    struct mh_req full, part;
    size_t max = size > 64 ? MH_MAX_HEAD : 32; /* short inputs meet a short limit too */
    enum mh_verdict v, vp;
    size_t cuts[3];
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    v = mh_parse(buf, size, max, &full);
    FZ_CHECK(v == MH_MORE || v == MH_OK || v == MH_BAD || v == MH_TOO_LARGE, "verdict %d", v);
    FZ_CHECK(v != MH_TOO_LARGE || size >= max, "431 at %zu of %zu bytes", size, max);
    FZ_CHECK(v != MH_MORE || size < max, "more wanted at the limit");
    if (v == MH_OK)
        fz_check_req(&full);
    cuts[0] = size / 2;
    cuts[1] = size / 3;
    cuts[2] = size ? size - 1 : 0;
    for (int i = 0; i < 3; i++) {
        vp = mh_parse(buf, cuts[i], max, &part);
        if (vp == MH_OK || vp == MH_BAD) {
            FZ_CHECK(vp == v, "verdict %d at %zu bytes, %d at %zu", vp, cuts[i], v, size);
            FZ_CHECK(vp != MH_OK ||
                         (part.method == full.method && strcmp(part.path, full.path) == 0),
                     "the request changed with more bytes");
        }
        if (v == MH_MORE)
            FZ_CHECK(vp == MH_MORE, "%d at %zu bytes, more wanted at %zu", vp, cuts[i], size);
    }
    free(buf);
    return 0;
}
