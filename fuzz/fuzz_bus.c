/* libFuzzer harness for the cluster bus (proto/bus.c). Every input is the JSON of one message as
 * it arrives after its MAC checked out (an instance's secret is no guarantee of sanity: a bug or
 * a newer version on another instance sends what it sends). It is decoded as instance "B", an
 * answer's content checked too; whatever passes must encode to JSON that decodes again to the
 * same message, re-encodes to the same bytes, and survives sealing and opening. The input also goes
 * through bus_open as a whole framed payload, whose checks run before any MAC is computed over
 * attacker-chosen lengths. A `code` message that passes carries only a line its direction
 * allows, for its own channel, and towards a claimer only this instance's. */
#include "fuzz/fuzz.h"
#include "proto/bus.h"

#include <string.h>

static const unsigned char fz_key[BUS_KEY_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8};

static void fz_failure(enum bus_err e, const char *why, size_t whylen, const struct bus_msg *m)
{
    FZ_CHECK(memchr(why, '\0', whylen) != NULL, "reason not terminated");
    FZ_CHECK(why[0] != '\0', "empty reason for error %d", (int)e);
    if (e != BUS_E_ENVELOPE) /* the receiver takes t before it looks further */
        FZ_CHECK(bus_valid_instance(m->sender) && strcmp(m->sender, "B") != 0 && m->t >= 1,
                 "error %d without a decoded envelope", (int)e);
}

static void fz_code(const struct bus_msg *m)
{
    if (m->type != BUS_CODE)
        return;
    FZ_CHECK(m->u.code.to_maker == (strcmp(m->u.code.claimer, m->sender) == 0),
             "code message direction wrong");
    FZ_CHECK(m->u.code.to_maker || strcmp(m->u.code.claimer, "B") == 0,
             "code message for another instance's claimer %s taken", m->u.code.claimer);
    FZ_CHECK(m->u.code.ref >= 1 && m->u.code.ref <= BUS_MAX_REF && m->u.code.channel >= 1,
             "code message ref or channel out of range");
    FZ_CHECK(m->u.code.gone ||
                 bus_code_line_ok(&m->u.code.line, m->u.code.to_maker, m->u.code.channel),
             "code message with a %s line taken", proto_type_name(m->u.code.line.type));
    if (m->u.code.gone)
        return;
    /* the order it may pass in: a step forward, the end, or nothing; never back */
    for (int st = BUS_CS_LOOKUP; st <= BUS_CS_END; st++) {
        int next = bus_code_next((enum bus_code_state)st, !m->u.code.to_maker, &m->u.code.line);
        FZ_CHECK(next == -1 || (next >= st && next <= BUS_CS_END && st != BUS_CS_LOOKUP &&
                                st != BUS_CS_END),
                 "%s moves a claim from state %d to %d", proto_type_name(m->u.code.line.type),
                 st, next);
    }
}

static void fz_round_trip(const struct bus_msg *m)
{
    static char json[BUS_MAX], again[BUS_MAX], sealed[BUS_MAX];
    static struct bus_msg m2;
    char why[512];
    const char *got;
    size_t glen;
    int n = bus_encode(m, json, sizeof json), n2, s;
    enum bus_err e;

    FZ_CHECK(n > 0, "%s from %s decoded but does not encode", bus_type_name(m->type), m->sender);
    FZ_CHECK((size_t)n == strlen(json), "encoding of %d bytes holds a NUL", n);
    e = bus_decode(json, (size_t)n, "B", &m2, why, sizeof why);
    if (e == BUS_OK && m2.type == BUS_ANSWER)
        e = bus_answer_is(&m2, NULL, why, sizeof why);
    FZ_CHECK(e == BUS_OK, "own encoding %s rejected (%d): %s", json, (int)e, why);
    FZ_CHECK(m2.type == m->type && m2.t == m->t && strcmp(m2.sender, m->sender) == 0 &&
                 strcmp(m2.session, m->session) == 0,
             "envelope changed in the round trip");
    n2 = bus_encode(&m2, again, sizeof again);
    FZ_CHECK(n2 == n && memcmp(json, again, (size_t)n) == 0,
             "round trip changed the message:\n  %s\n  %s", json, n2 > 0 ? again : "");
    s = bus_seal(fz_key, "tcpunch:inst:B", json, (size_t)n, sealed, sizeof sealed);
    FZ_CHECK(s == BUS_FRAME + n, "a message of %d bytes does not seal", n);
    FZ_CHECK(bus_open(fz_key, "tcpunch:inst:B", sealed, (size_t)s, &got, &glen, why, sizeof why) ==
                     0 &&
                 glen == (size_t)n && memcmp(got, json, glen) == 0,
             "sealed message does not open: %s", why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct bus_msg m;
    char why[512];
    const char *json;
    size_t jlen;
    enum bus_err e;

    memset(why, 0x5a, sizeof why);
    e = bus_decode((const char *)data, size, "B", &m, why, sizeof why);
    if (e == BUS_OK && m.type == BUS_ANSWER) /* as the receiver does once the session is its */
        e = bus_answer_is(&m, NULL, why, sizeof why);
    if (e == BUS_OK) {
        fz_code(&m);
        fz_round_trip(&m);
    } else
        fz_failure(e, why, sizeof why, &m);

    memset(why, 0x5a, sizeof why);
    if (bus_open(fz_key, "tcpunch:inst:B", (const char *)data, size, &json, &jlen, why,
                 sizeof why) == 0)
        FZ_CHECK(json == (const char *)data + BUS_FRAME && jlen == size - BUS_FRAME,
                 "opened JSON outside the payload");
    else
        FZ_CHECK(memchr(why, '\0', sizeof why) != NULL && why[0], "bus_open gave no reason");
    return 0;
}
