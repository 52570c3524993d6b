/* libFuzzer harness for the protocol codec (proto/proto.c). Every input is one line as read
 * from a socket, newline removed: it is decoded in all three directions, and whatever decodes
 * must encode to one line that decodes again to the same message. The round trip matters because the server forwards what it decoded (punch.endpoints,
 * punch.observed, the peers' keys) to the other peer: a message it accepts but cannot
 * re-encode, or re-encodes differently, would break the other side. */
#include "fuzz/fuzz.h"
#include "proto/proto.h"

#include <stdbool.h>
#include <string.h>

static const char *const dir_names[] = {"to-server", "to-peer", "peer-to-peer"};

/* After a failed decode the reason must be a terminated, non-empty string (it is logged and
 * sent back in error.message) and the error must have a code of its own. */
static void check_failure(enum proto_err e, const char *why, size_t whylen)
{
    FZ_CHECK(memchr(why, '\0', whylen) != NULL, "reason not terminated");
    FZ_CHECK(why[0] != '\0', "empty reason for %s", proto_err_code(e));
    FZ_CHECK(strcmp(proto_err_code(e), "internal") != 0, "error %d has no code", (int)e);
}

/* encode(m) must fit exactly its own length and fail one byte short, without writing past
 * either buffer (heap buffers of the exact size, so ASan sees any overflow). */
static void check_encode_bounds(const struct proto_msg *m, const char *line, int n)
{
    char *exact = malloc((size_t)n), *shrt = malloc((size_t)n - 1);
    FZ_CHECK(exact && shrt, "out of memory");
    FZ_CHECK(proto_encode(m, exact, (size_t)n) == n, "encode into %d bytes failed", n);
    FZ_CHECK(memcmp(exact, line, (size_t)n) == 0, "encode differs with an exact buffer");
    FZ_CHECK(proto_encode(m, shrt, (size_t)n - 1) == -1, "encode into %d bytes of %d", n - 1, n);
    free(exact);
    free(shrt);
}

static void round_trip(const struct proto_msg *m, enum proto_dir dir)
{
    char line[PROTO_MAX_LINE], again[PROTO_MAX_LINE], why[256];
    struct proto_msg m2;
    int n = proto_encode(m, line, sizeof line), n2;
    enum proto_err e;

    FZ_CHECK(n > 0, "%s %s decoded but does not encode", dir_names[dir], proto_type_name(m->type));
    FZ_CHECK(line[n - 1] == '\n' && memchr(line, '\n', (size_t)n - 1) == NULL,
             "encoding is not exactly one line");
    check_encode_bounds(m, line, n);
    e = proto_decode(line, (size_t)n - 1, dir, &m2, why, sizeof why);
    FZ_CHECK(e == PROTO_OK, "own encoding %.*s rejected (%s): %s", n - 1, line, proto_err_code(e),
             why);
    FZ_CHECK(m2.type == m->type, "type changed in the round trip");
    n2 = proto_encode(&m2, again, sizeof again);
    FZ_CHECK(n2 == n && memcmp(line, again, (size_t)n) == 0,
             "round trip changed the message:\n  %.*s\n  %.*s", n - 1, line, n2 > 0 ? n2 - 1 : 0,
             again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *line = (const char *)data;

    for (int d = 0; d <= PROTO_PEER_TO_PEER; d++) {
        struct proto_msg m;
        char why[256];
        enum proto_err e;

        memset(why, 0x5a, sizeof why);
        e = proto_decode(line, size, (enum proto_dir)d, &m, why, sizeof why);
        if (e != PROTO_OK) {
            check_failure(e, why, sizeof why);
            continue;
        }
        FZ_CHECK((unsigned)m.type < PROTO_TYPE_COUNT, "decoded type %d", (int)m.type);
        round_trip(&m, (enum proto_dir)d);
    }

    /* the grammar checks on their own, as the peer uses them on command-line ids */
    if (size <= PROTO_MAX_LINE) {
        char s[PROTO_MAX_LINE + 1];
        memcpy(s, data, size);
        s[size] = '\0';
        if (proto_valid_id(s))
            FZ_CHECK(strlen(s) >= 1 && strlen(s) <= PROTO_MAX_ID, "id of %zu bytes", strlen(s));
        if (proto_valid_session(s))
            FZ_CHECK(strlen(s) == PROTO_SESSION_LEN, "session of %zu bytes", strlen(s));
    }
    return 0;
}
