/* The cluster bus (proto/bus.c): framing and MAC, the envelope, each type decoded strictly
 * (PROTOCOL.md, "Cluster"), and encoding that decodes back to the same message. */
#include "check.h"
#include "common/endpoint.h"
#include "proto/bus.h"

#include <sodium.h>
#include <stdio.h>

static const char SESSION[] = "0123456789abcdef0123456789abcdef";
static const char OTHER[] = "fedcba9876543210fedcba9876543210";
static char why_[512];
static struct bus_msg msg_;

/* As the receiver takes a message: decoded, and an answer's content checked (with any peer). */
static enum bus_err dec(const char *json)
{
    enum bus_err e;
    why_[0] = '\0';
    e = bus_decode(json, strlen(json), "B", &msg_, why_, sizeof why_);
    if (e == BUS_OK && msg_.type == BUS_ANSWER)
        e = bus_answer_is(&msg_, NULL, why_, sizeof why_);
    return e;
}

#define DEC_IS(json, e)                                                                            \
    __extension__({                                                                                \
        const char *dj_ = (json);                                                                  \
        enum bus_err dg_ = dec(dj_);                                                               \
        CHECK_MSG(dg_ == (e), "decode(%.300s) = %d (%s), want %d", dj_, (int)dg_, why_,            \
                  (int)(e)) &&                                                                     \
            CHECK_MSG((e) == BUS_OK || why_[0] != '\0', "decode(%.200s): no reason", dj_);         \
    })

static void punch_of(struct proto_msg *m, enum proto_role role, const char *session)
{
    char err[128];
    memset(m, 0, sizeof *m);
    m->type = PROTO_PUNCH;
    snprintf(m->u.punch.session, sizeof m->u.punch.session, "%s", session);
    snprintf(m->u.punch.peer, sizeof m->u.punch.peer, "%s", "alice");
    m->u.punch.role = role;
    m->u.punch.start_in_us = -1;
    ep_parse("198.51.100.7:51000", &m->u.punch.observed, err, sizeof err);
    m->u.punch.endpoints.n = 1;
    ep_parse("10.0.0.5:51000", &m->u.punch.endpoints.ep[0], err, sizeof err);
}

/* A punch line as JSON string contents (its quotes escaped). */
static void punch_json(enum proto_role role, const char *session, char *out, size_t cap)
{
    struct proto_msg m;
    char line[PROTO_MAX_LINE];
    int n;
    size_t o = 0;
    punch_of(&m, role, session);
    n = proto_encode(&m, line, sizeof line);
    for (int i = 0; i < n - 1 && o + 2 < cap; i++) {
        if (line[i] == '"')
            out[o++] = '\\';
        out[o++] = line[i];
    }
    out[o] = '\0';
}

static void intro_msg(struct bus_msg *m)
{
    memset(m, 0, sizeof *m);
    m->type = BUS_INTRODUCE;
    strcpy(m->sender, "A");
    m->t = 1700000000000000;
    strcpy(m->session, SESSION);
    strcpy(m->u.introduce.from, "A");
    strcpy(m->u.introduce.target, "bob");
    punch_of(&m->u.introduce.peer, PROTO_RESPONDER, SESSION);
    m->u.introduce.path = PROTO_PATH_RELAY;
    m->u.introduce.rtt_us = 1500;
    m->u.introduce.bus_rtt_us = 300;
}

/* encode -> decode -> encode gives the same bytes; the decoded message in msg_. */
static bool roundtrip(const struct bus_msg *m, char *json, size_t cap)
{
    char again[BUS_MAX];
    int n = bus_encode(m, json, cap), n2;
    if (!CHECK(n > 0) || !CHECK_INT(strlen(json), n))
        return false;
    if (!CHECK_MSG(dec(json) == BUS_OK, "own encoding %s rejected: %s", json, why_))
        return false;
    n2 = bus_encode(&msg_, again, sizeof again);
    return CHECK_INT(n2, n) && CHECK_STR(again, json);
}

static void t_roundtrip_introduce(void)
{
    struct bus_msg m;
    char json[BUS_MAX], line[PROTO_MAX_LINE];
    intro_msg(&m);
    if (!roundtrip(&m, json, sizeof json))
        return;
    CHECK_INT(msg_.type, BUS_INTRODUCE);
    CHECK_STR(msg_.sender, "A");
    CHECK_INT(msg_.t, 1700000000000000);
    CHECK_STR(msg_.session, SESSION);
    CHECK_STR(msg_.u.introduce.from, "A");
    CHECK_STR(msg_.u.introduce.target, "bob");
    CHECK_INT(msg_.u.introduce.path, PROTO_PATH_RELAY);
    CHECK_INT(msg_.u.introduce.rtt_us, 1500);
    CHECK_INT(msg_.u.introduce.bus_rtt_us, 300);
    CHECK_INT(msg_.u.introduce.peer.u.punch.role, PROTO_RESPONDER);
    CHECK_STR(msg_.u.introduce.peer.u.punch.peer, "alice");
    CHECK_INT(msg_.u.introduce.peer.u.punch.endpoints.n, 1);
    /* the members in the order the cluster has always sent them, sender and t last */
    punch_json(PROTO_RESPONDER, SESSION, line, sizeof line);
    {
        char want[BUS_MAX];
        snprintf(want, sizeof want,
                 "{\"type\":\"introduce\",\"session\":\"%s\",\"from\":\"A\",\"target\":\"bob\","
                 "\"peer\":\"%s\",\"path\":\"relay\",\"rtt_us\":1500,\"bus_rtt_us\":300,"
                 "\"sender\":\"A\",\"t\":1700000000000000}",
                 SESSION, line);
        CHECK_STR(json, want);
    }
    m.u.introduce.rtt_us = BUS_MAX_DELAY_US;
    m.u.introduce.path = PROTO_PATH_ANY;
    if (roundtrip(&m, json, sizeof json))
        CHECK_INT(msg_.u.introduce.path, PROTO_PATH_ANY);
}

static void t_roundtrip_answer(void)
{
    struct bus_msg m;
    char json[BUS_MAX], want[BUS_MAX], line[PROTO_MAX_LINE];
    memset(&m, 0, sizeof m);
    m.type = BUS_ANSWER;
    strcpy(m.sender, "inst-B:[::1]");
    m.t = 42;
    strcpy(m.session, SESSION);
    punch_of(&m.u.answer.line, PROTO_INITIATOR, SESSION);
    m.u.answer.delay_us = 2000000;
    if (roundtrip(&m, json, sizeof json)) {
        CHECK_INT(msg_.u.answer.code, PC_UNKNOWN);
        CHECK_INT(msg_.u.answer.delay_us, 2000000);
        CHECK_INT(msg_.u.answer.line.u.punch.role, PROTO_INITIATOR);
        punch_json(PROTO_INITIATOR, SESSION, line, sizeof line);
        snprintf(want, sizeof want,
                 "{\"type\":\"answer\",\"session\":\"%s\",\"line\":\"%s\",\"delay_us\":2000000,"
                 "\"sender\":\"inst-B:[::1]\",\"t\":42}",
                 SESSION, line);
        CHECK_STR(json, want);
    }
    m.u.answer.code = PC_NO_PATH;
    strcpy(m.u.answer.message, "no path: both say direct");
    if (roundtrip(&m, json, sizeof json)) {
        CHECK_INT(msg_.u.answer.code, PC_NO_PATH);
        CHECK_STR(msg_.u.answer.message, "no path: both say direct");
        snprintf(want, sizeof want,
                 "{\"type\":\"answer\",\"session\":\"%s\",\"code\":\"no-path\",\"message\":"
                 "\"no path: both say direct\",\"sender\":\"inst-B:[::1]\",\"t\":42}",
                 SESSION);
        CHECK_STR(json, want);
    }
    m.u.answer.code = PC_PEER_NOT_FOUND;
    CHECK(roundtrip(&m, json, sizeof json));
    m.u.answer.code = PC_INTERNAL;
    CHECK(roundtrip(&m, json, sizeof json));
}

/* What bus_encode refuses: anything bus_decode would refuse. */
static void t_encode_refuses(void)
{
    struct bus_msg m;
    char json[BUS_MAX];
    intro_msg(&m);
    strcpy(m.u.introduce.from, "C"); /* from must be the sender */
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
    intro_msg(&m);
    m.t = 0;
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
    intro_msg(&m);
    strcpy(m.sender, "a b");
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
    intro_msg(&m);
    m.session[0] = 'X';
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
    intro_msg(&m);
    m.u.introduce.bus_rtt_us = BUS_MAX_DELAY_US + 1;
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
    intro_msg(&m);
    m.u.introduce.peer.u.punch.role = PROTO_INITIATOR; /* the initiator is described as responder */
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
    intro_msg(&m);
    strcpy(m.u.introduce.peer.u.punch.session, OTHER);
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
    intro_msg(&m);
    CHECK_INT(bus_encode(&m, json, 40), -1); /* does not fit */
    memset(&m, 0, sizeof m);
    m.type = BUS_ANSWER;
    strcpy(m.sender, "A");
    m.t = 1;
    strcpy(m.session, SESSION);
    m.u.answer.code = PC_SERVER_FULL; /* not one instances send */
    strcpy(m.u.answer.message, "x");
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
    m.u.answer.code = PC_NO_PATH;
    strcpy(m.u.answer.message, "tab\there");
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
    m.u.answer.code = PC_UNKNOWN; /* a punch answer without its punch */
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
    m.type = BUS_TYPE_COUNT;
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
}

static void t_envelope(void)
{
    static const char *const bad[] = {
        "not json",
        "[1,2]",
        "{}",
        "{\"sender\":\"A\",\"t\":1}",
        "{\"type\":\"answer\",\"t\":1}",
        "{\"type\":\"answer\",\"sender\":\"A\"}",
        "{\"type\":5,\"sender\":\"A\",\"t\":1}",
        "{\"type\":\"answerxxxxxxxxxxxx\",\"sender\":\"A\",\"t\":1}", /* type longer than 16 */
        "{\"type\":\"answer\",\"sender\":\"\",\"t\":1}",
        "{\"type\":\"answer\",\"sender\":\"a b\",\"t\":1}",
        "{\"type\":\"answer\",\"sender\":\"a/b\",\"t\":1}",
        "{\"type\":\"answer\",\"sender\":\"B\",\"t\":1}", /* the receiver itself */
        "{\"type\":\"answer\",\"sender\":\"A\",\"t\":0}",
        "{\"type\":\"answer\",\"sender\":\"A\",\"t\":-5}",
        "{\"type\":\"answer\",\"sender\":\"A\",\"t\":1.5}",
        "{\"type\":\"answer\",\"sender\":\"A\",\"t\":\"1\"}",
        "{\"type\":\"answer\",\"sender\":\"A\",\"sender\":\"C\",\"t\":1}", /* duplicate */
        "{\"type\":\"answer\",\"sender\":\"A\\u0000\",\"t\":1}",
    };
    char big[BUS_MAX + 16];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (DEC_IS(bad[i], BUS_E_ENVELOPE))
            CHECK_MSG(strncmp(why_, "signed but malformed: ", 22) == 0, "%s", why_);
    /* sender of 128 bytes is an instance id, 129 is not */
    {
        char s[BUS_MAX_INSTANCE + 2], json[400];
        memset(s, 'x', sizeof s - 1);
        s[sizeof s - 1] = '\0';
        snprintf(json, sizeof json, "{\"type\":\"nope\",\"sender\":\"%s\",\"t\":1}", s);
        DEC_IS(json, BUS_E_ENVELOPE);
        s[BUS_MAX_INSTANCE] = '\0';
        snprintf(json, sizeof json, "{\"type\":\"nope\",\"sender\":\"%s\",\"t\":1}", s);
        DEC_IS(json, BUS_E_TYPE);
    }
    /* more JSON than a message may hold */
    memset(big, ' ', sizeof big);
    {
        static const char head[] = "{\"type\":\"nope\",\"sender\":\"A\",\"t\":1}";
        memcpy(big, head, sizeof head - 1);
    }
    CHECK_INT(bus_decode(big, BUS_MAX - BUS_FRAME + 1, NULL, &msg_, why_, sizeof why_),
              BUS_E_ENVELOPE);
    CHECK_INT(bus_decode(big, BUS_MAX - BUS_FRAME, NULL, &msg_, why_, sizeof why_), BUS_E_TYPE);
    /* without self, any valid sender */
    {
        static const char any[] = "{\"type\":\"x\",\"sender\":\"B\",\"t\":1}";
        CHECK_INT(bus_decode(any, sizeof any - 1, NULL, &msg_, why_, sizeof why_), BUS_E_TYPE);
    }
}

static void t_unknown_type(void)
{
    if (DEC_IS("{\"type\":\"gossip\",\"sender\":\"A\",\"t\":77,\"extra\":[1]}", BUS_E_TYPE)) {
        /* the envelope is decoded: the receiver takes t before it ignores the message */
        CHECK_STR(msg_.sender, "A");
        CHECK_INT(msg_.t, 77);
        CHECK_STR(why_, "message of unknown type gossip from A ignored");
    }
}

static void t_reject_introduce(void)
{
    char line[PROTO_MAX_LINE], wrong[2 * PROTO_MAX_LINE + 8], json[3 * BUS_MAX];
    punch_json(PROTO_RESPONDER, SESSION, line, sizeof line);
#define INTRO(fmt, ...)                                                                            \
    (snprintf(json, sizeof json, "{\"type\":\"introduce\",\"sender\":\"A\",\"t\":9," fmt "}",      \
              __VA_ARGS__),                                                                        \
     json)
#define GOOD_REST "\"peer\":\"%s\",\"path\":\"any\",\"rtt_us\":0,\"bus_rtt_us\":0"
    DEC_IS(INTRO("\"session\":\"%s\",\"from\":\"A\",\"target\":\"bob\"," GOOD_REST, SESSION, line),
           BUS_OK);
    if (DEC_IS(
            INTRO("\"session\":\"%s\",\"from\":\"C\",\"target\":\"bob\"," GOOD_REST, SESSION, line),
            BUS_E_BODY))
        CHECK_STR(why_, "from A: a malformed introduce");
    DEC_IS(INTRO("\"session\":\"%s\",\"from\":\"A\",\"target\":\"bob\"," GOOD_REST ",\"x\":1",
                 SESSION, line),
           BUS_E_BODY); /* an unknown member */
    DEC_IS(
        INTRO(
            "\"session\":\"%s\",\"from\":\"A\",\"target\":\"bob\",\"code\":\"internal\"," GOOD_REST,
            SESSION, line),
        BUS_E_BODY); /* an answer's member */
    DEC_IS(INTRO("\"session\":\"%s\",\"from\":\"A\",\"target\":\"bob\"," GOOD_REST, "0123", line),
           BUS_E_BODY);
    DEC_IS(INTRO("\"session\":\"%s\",\"from\":\"A\",\"target\":\"b/b\"," GOOD_REST, SESSION, line),
           BUS_E_BODY);
    DEC_IS(INTRO("\"session\":\"%s\",\"from\":\"A\",\"target\":\"bob\",\"peer\":\"%s\","
                 "\"path\":\"any\",\"rtt_us\":10000001,\"bus_rtt_us\":0",
                 SESSION, line),
           BUS_E_BODY);
    DEC_IS(INTRO("\"session\":\"%s\",\"from\":\"A\",\"target\":\"bob\",\"peer\":\"%s\","
                 "\"path\":\"any\",\"rtt_us\":0,\"bus_rtt_us\":-1",
                 SESSION, line),
           BUS_E_BODY);
    DEC_IS(INTRO("\"session\":\"%s\",\"from\":\"A\",\"target\":\"bob\",\"peer\":\"%s\","
                 "\"path\":\"any\",\"rtt_us\":0",
                 SESSION, line),
           BUS_E_BODY);
    DEC_IS(INTRO("\"session\":\"%s\",\"from\":\"A\",\"target\":\"bob\",\"peer\":%d,"
                 "\"path\":\"any\",\"rtt_us\":0,\"bus_rtt_us\":0",
                 SESSION, 5),
           BUS_E_BODY);
    /* the embedded punch: another role, another session, not one line, not a punch */
    punch_json(PROTO_INITIATOR, SESSION, wrong, sizeof wrong);
    if (DEC_IS(INTRO("\"session\":\"%s\",\"from\":\"A\",\"target\":\"bob\"," GOOD_REST, SESSION,
                     wrong),
               BUS_E_PUNCH)) {
        char want[200];
        snprintf(want, sizeof want,
                 "from A: introduce for session %s: not the responder's punch of session %s",
                 SESSION, SESSION);
        CHECK_STR(why_, want);
    }
    punch_json(PROTO_RESPONDER, OTHER, wrong, sizeof wrong);
    DEC_IS(INTRO("\"session\":\"%s\",\"from\":\"A\",\"target\":\"bob\"," GOOD_REST, SESSION, wrong),
           BUS_E_PUNCH);
    snprintf(wrong, sizeof wrong, "%s\\n%s", line, line);
    DEC_IS(INTRO("\"session\":\"%s\",\"from\":\"A\",\"target\":\"bob\"," GOOD_REST, SESSION, wrong),
           BUS_E_PUNCH);
    DEC_IS(INTRO("\"session\":\"%s\",\"from\":\"A\",\"target\":\"bob\"," GOOD_REST, SESSION, ""),
           BUS_E_PUNCH);
    DEC_IS(INTRO("\"session\":\"%s\",\"from\":\"A\",\"target\":\"bob\"," GOOD_REST, SESSION,
                 "{\\\"type\\\":\\\"ping\\\",\\\"seq\\\":1}"),
           BUS_E_PUNCH);
    if (DEC_IS(INTRO("\"session\":\"%s\",\"from\":\"A\",\"target\":\"bob\",\"peer\":\"%s\","
                     "\"path\":\"sideways\",\"rtt_us\":0,\"bus_rtt_us\":0",
                     SESSION, line),
               BUS_E_PATH))
        CHECK_STR(why_, "from A: introduce with an unknown path");
    DEC_IS(INTRO("\"session\":\"%s\",\"from\":\"A\",\"target\":\"bob\",\"peer\":\"%s\","
                 "\"path\":\"Relay\",\"rtt_us\":0,\"bus_rtt_us\":0",
                 SESSION, line),
           BUS_E_PATH);
#undef INTRO
#undef GOOD_REST
}

static void t_reject_answer(void)
{
    char line[PROTO_MAX_LINE], wrong[2 * PROTO_MAX_LINE + 8], json[3 * BUS_MAX];
    punch_json(PROTO_INITIATOR, SESSION, line, sizeof line);
#define ANS(fmt, ...)                                                                              \
    (snprintf(json, sizeof json,                                                                   \
              "{\"type\":\"answer\",\"sender\":\"A\",\"t\":9,\"session\":\"%s\"," fmt "}",         \
              SESSION, __VA_ARGS__),                                                               \
     json)
    DEC_IS(ANS("\"line\":\"%s\",\"delay_us\":0", line), BUS_OK);
    DEC_IS(ANS("\"code\":\"%s\",\"message\":\"gone\"", "peer-not-found"), BUS_OK);
    /* a mixture of the two forms, or half of one */
    if (DEC_IS(ANS("\"line\":\"%s\",\"delay_us\":0,\"code\":\"internal\"", line), BUS_E_BODY))
        CHECK_STR(why_, "from A: a malformed answer");
    DEC_IS(ANS("\"line\":\"%s\",\"delay_us\":0,\"message\":\"x\"", line), BUS_E_BODY);
    DEC_IS(ANS("\"code\":\"internal\",\"message\":\"x\",\"delay_us\":%d", 0), BUS_E_BODY);
    DEC_IS(ANS("\"code\":\"%s\"", "internal"), BUS_E_BODY);
    DEC_IS(ANS("\"line\":\"%s\"", line), BUS_E_BODY);
    DEC_IS(ANS("\"line\":\"%s\",\"delay_us\":10000001", line), BUS_E_BODY);
    DEC_IS(ANS("\"line\":\"%s\",\"delay_us\":-1", line), BUS_E_BODY);
    DEC_IS(ANS("\"line\":\"%s\",\"delay_us\":0,\"target\":\"bob\"", line), BUS_E_BODY);
    DEC_IS(ANS("\"code\":%d,\"message\":\"x\"", 7), BUS_E_BODY);
    DEC_IS(ANS("\"code\":\"internal\",\"message\":%d", 7), BUS_E_BODY);
    /* codes an instance never sends, and messages that are not printable */
    if (DEC_IS(ANS("\"code\":\"%s\",\"message\":\"x\"", "INJECTED-CODE"), BUS_E_CODE))
        CHECK_STR(why_, "from A: an answer with error code INJECTED-CODE, which instances do not "
                        "send");
    DEC_IS(ANS("\"code\":\"%s\",\"message\":\"x\"", "server-full"), BUS_E_CODE);
    if (DEC_IS(ANS("\"code\":\"%s\",\"message\":\"x\"", "bad\\u0007code"), BUS_E_CODE))
        CHECK_STR(why_, "from A: an answer with error code ?, which instances do not send");
    DEC_IS(ANS("\"code\":\"no-path\",\"message\":\"%s\"", "new\\nline"), BUS_E_CODE);
    DEC_IS(ANS("\"code\":\"no-path\",\"message\":\"%s\"", "caf\\u00e9"), BUS_E_CODE);
    /* the punch: the initiator's, of this session */
    punch_json(PROTO_RESPONDER, SESSION, wrong, sizeof wrong);
    if (DEC_IS(ANS("\"line\":\"%s\",\"delay_us\":0", wrong), BUS_E_PUNCH))
        CHECK(strncmp(why_, "from A: answer for session ", 27) == 0);
    punch_json(PROTO_INITIATOR, OTHER, wrong, sizeof wrong);
    DEC_IS(ANS("\"line\":\"%s\",\"delay_us\":0", wrong), BUS_E_PUNCH);
    DEC_IS(ANS("\"line\":\"%s\",\"delay_us\":0", "not a line"), BUS_E_PUNCH);
    snprintf(wrong, sizeof wrong, "%s\\r", line);
    DEC_IS(ANS("\"line\":\"%s\",\"delay_us\":0", wrong), BUS_E_PUNCH);
#undef ANS
}

/* An answer's content waits for bus_answer_is: the receiver first looks its session up (an
 * answer for a session never asked about is ignored, whatever it says), then checks it names
 * the target it asked for. */
static void t_answer_later(void)
{
    char line[PROTO_MAX_LINE], json[3 * BUS_MAX], want[300];
    punch_json(PROTO_INITIATOR, SESSION, line, sizeof line);
    snprintf(json, sizeof json,
             "{\"type\":\"answer\",\"sender\":\"A\",\"t\":9,\"session\":\"%s\","
             "\"code\":\"server-full\",\"message\":\"x\"}",
             SESSION);
    if (CHECK_INT(bus_decode(json, strlen(json), "B", &msg_, why_, sizeof why_), BUS_OK)) {
        CHECK_STR(msg_.session, SESSION);
        CHECK_STR(msg_.u.answer.code_text, "server-full");
        CHECK_INT(bus_answer_is(&msg_, "alice", why_, sizeof why_), BUS_E_CODE);
    }
    snprintf(json, sizeof json,
             "{\"type\":\"answer\",\"sender\":\"A\",\"t\":9,\"session\":\"%s\","
             "\"line\":\"%s\",\"delay_us\":5}",
             SESSION, line);
    if (!CHECK_INT(bus_decode(json, strlen(json), "B", &msg_, why_, sizeof why_), BUS_OK))
        return;
    CHECK_INT(msg_.u.answer.delay_us, 5);
    CHECK_INT(bus_answer_is(&msg_, "bob", why_, sizeof why_), BUS_E_PUNCH);
    snprintf(want, sizeof want,
             "from A: answer for session %s: not the initiator's punch of session %s with bob",
             SESSION, SESSION);
    CHECK_STR(why_, want);
    if (CHECK_INT(bus_answer_is(&msg_, "alice", why_, sizeof why_), BUS_OK)) {
        CHECK_INT(msg_.u.answer.code, PC_UNKNOWN);
        CHECK_STR(msg_.u.answer.line.u.punch.peer, "alice");
    }
    /* a "code" that is not a code's string is no error answer: the punch is what counts */
    snprintf(json, sizeof json,
             "{\"type\":\"answer\",\"sender\":\"A\",\"t\":9,\"session\":\"%s\","
             "\"code\":7,\"line\":\"%s\",\"delay_us\":0}",
             SESSION, line);
    DEC_IS(json, BUS_OK);
    CHECK_INT(msg_.u.answer.code, PC_UNKNOWN);
}

/* An unknown path leaves the rest decoded: the receiver refuses bad endpoints before it. */
static void t_path_later(void)
{
    char line[PROTO_MAX_LINE], json[3 * BUS_MAX];
    punch_json(PROTO_RESPONDER, SESSION, line, sizeof line);
    snprintf(json, sizeof json,
             "{\"type\":\"introduce\",\"sender\":\"A\",\"t\":9,\"session\":\"%s\","
             "\"from\":\"A\",\"target\":\"bob\",\"peer\":\"%s\",\"path\":\"up\","
             "\"rtt_us\":7,\"bus_rtt_us\":8}",
             SESSION, line);
    if (DEC_IS(json, BUS_E_PATH)) {
        CHECK_STR(msg_.u.introduce.target, "bob");
        CHECK_INT(msg_.u.introduce.rtt_us, 7);
        CHECK_INT(msg_.u.introduce.bus_rtt_us, 8);
        CHECK_STR(msg_.u.introduce.peer.u.punch.peer, "alice");
        CHECK_INT(msg_.u.introduce.peer.u.punch.endpoints.n, 1);
    }
}

static void t_punch_is(void)
{
    struct proto_msg m;
    char why[200];
    punch_of(&m, PROTO_INITIATOR, SESSION);
    CHECK(bus_punch_is(&m, PROTO_INITIATOR, SESSION, "alice", why, sizeof why));
    CHECK(bus_punch_is(&m, PROTO_INITIATOR, SESSION, NULL, why, sizeof why));
    if (CHECK(!bus_punch_is(&m, PROTO_INITIATOR, SESSION, "bob", why, sizeof why))) {
        char want[200];
        snprintf(want, sizeof want, "not the initiator's punch of session %s with bob", SESSION);
        CHECK_STR(why, want);
    }
    CHECK(!bus_punch_is(&m, PROTO_RESPONDER, SESSION, NULL, why, sizeof why));
    CHECK(!bus_punch_is(&m, PROTO_INITIATOR, OTHER, NULL, why, sizeof why));
    m.type = PROTO_PING;
    CHECK(!bus_punch_is(&m, PROTO_INITIATOR, SESSION, NULL, why, sizeof why));
}

static void t_instance(void)
{
    char s[BUS_MAX_INSTANCE + 2];
    CHECK(bus_valid_instance("host-1.example:[2001:db8::1]:7000"));
    CHECK(bus_valid_instance("A_b"));
    CHECK(!bus_valid_instance(""));
    CHECK(!bus_valid_instance("a b"));
    CHECK(!bus_valid_instance("a/b"));
    CHECK(!bus_valid_instance("caf\xc3\xa9"));
    memset(s, 'i', sizeof s - 1);
    s[sizeof s - 1] = '\0';
    CHECK(!bus_valid_instance(s));
    s[BUS_MAX_INSTANCE] = '\0';
    CHECK(bus_valid_instance(s));
    CHECK(bus_answer_code(PC_PEER_NOT_FOUND) && bus_answer_code(PC_NO_PATH) &&
          bus_answer_code(PC_INTERNAL));
    CHECK(!bus_answer_code(PC_SERVER_FULL) && !bus_answer_code(PC_UNKNOWN));
    CHECK_STR(bus_type_name(BUS_INTRODUCE), "introduce");
    CHECK_STR(bus_type_name(BUS_ANSWER), "answer");
    CHECK_STR(bus_type_name(BUS_TYPE_COUNT), "?");
}

static void key_of(unsigned char key[BUS_KEY_BYTES], unsigned char fill)
{
    unsigned char digest[AUTH_KEY_BYTES];
    memset(digest, fill, sizeof digest);
    bus_key_of(digest, key);
}

static void t_key(void)
{
    unsigned char digest[AUTH_KEY_BYTES], key[BUS_KEY_BYTES], want[BUS_KEY_BYTES];
    static const unsigned char ctx[] = "tcpunch cluster bus key v1";
    memset(digest, 7, sizeof digest);
    bus_key_of(digest, key);
    /* PROTOCOL.md: K = BLAKE2b-256(key = "tcpunch cluster bus key v1", SHA-256(secret file)) */
    crypto_generichash(want, sizeof want, digest, sizeof digest, ctx, sizeof ctx - 1);
    CHECK(memcmp(key, want, sizeof key) == 0);
    CHECK(memcmp(digest, key, sizeof key) != 0);
}

static void t_seal_open(void)
{
    unsigned char key[BUS_KEY_BYTES], other[BUS_KEY_BYTES], tag[BUS_TAG_BYTES];
    const char *json = "{\"type\":\"answer\"}", *got = NULL;
    char out[BUS_MAX], hex[2 * BUS_TAG_BYTES + 1], why[200];
    size_t jlen = 0, len = strlen(json);
    int n;
    crypto_auth_hmacsha512256_state st;
    key_of(key, 1);
    key_of(other, 2);
    n = bus_seal(key, "tcpunch:inst:B", json, len, out, sizeof out);
    if (!CHECK_INT(n, BUS_FRAME + len))
        return;
    CHECK(memcmp(out, "v1.", 3) == 0 && out[BUS_FRAME - 1] == '.');
    CHECK(memcmp(out + BUS_FRAME, json, len) == 0);
    /* the tag as PROTOCOL.md defines it, computed here independently */
    crypto_auth_hmacsha512256_init(&st, key, sizeof key);
    crypto_auth_hmacsha512256_update(&st, (const unsigned char *)"tcpunch-cluster-bus-v1", 23);
    crypto_auth_hmacsha512256_update(&st, (const unsigned char *)"tcpunch:inst:B", 15);
    crypto_auth_hmacsha512256_update(&st, (const unsigned char *)json, len);
    crypto_auth_hmacsha512256_final(&st, tag);
    sodium_bin2hex(hex, sizeof hex, tag, sizeof tag);
    CHECK(memcmp(out + 3, hex, 2 * BUS_TAG_BYTES) == 0);

    CHECK_INT(bus_open(key, "tcpunch:inst:B", out, (size_t)n, &got, &jlen, why, sizeof why), 0);
    CHECK(got == out + BUS_FRAME && jlen == len);
    /* another channel, another key, one flipped bit: bad MAC */
    CHECK_INT(bus_open(key, "tcpunch:inst:A", out, (size_t)n, &got, &jlen, why, sizeof why), -1);
    CHECK(strncmp(why, "bad MAC", 7) == 0);
    CHECK_INT(bus_open(other, "tcpunch:inst:B", out, (size_t)n, &got, &jlen, why, sizeof why), -1);
    out[n - 2] ^= 1;
    CHECK_INT(bus_open(key, "tcpunch:inst:B", out, (size_t)n, &got, &jlen, why, sizeof why), -1);
    out[n - 2] ^= 1;
    out[10] = out[10] == 'a' ? 'b' : 'a';
    CHECK_INT(bus_open(key, "tcpunch:inst:B", out, (size_t)n, &got, &jlen, why, sizeof why), -1);
    out[10] = 'G'; /* not hex */
    CHECK_INT(bus_open(key, "tcpunch:inst:B", out, (size_t)n, &got, &jlen, why, sizeof why), -1);
    CHECK(strncmp(why, "not a signed message of this version", 36) == 0);
    /* the framing: version, separator, length */
    n = bus_seal(key, "c", json, len, out, sizeof out);
    out[1] = '2';
    CHECK_INT(bus_open(key, "c", out, (size_t)n, &got, &jlen, why, sizeof why), -1);
    out[1] = '1';
    out[BUS_FRAME - 1] = ':';
    CHECK_INT(bus_open(key, "c", out, (size_t)n, &got, &jlen, why, sizeof why), -1);
    out[BUS_FRAME - 1] = '.';
    CHECK_INT(bus_open(key, "c", out, BUS_FRAME, &got, &jlen, why, sizeof why), -1); /* no JSON */
    CHECK_INT(bus_open(key, "c", out, (size_t)n, &got, &jlen, why, sizeof why), 0);
    /* at most BUS_MAX bytes, both ways */
    {
        static char big[BUS_MAX + 1], sealed[BUS_MAX + 64];
        memset(big, 'x', sizeof big);
        CHECK_INT(bus_seal(key, "c", big, BUS_MAX - BUS_FRAME, sealed, sizeof sealed), BUS_MAX);
        CHECK_INT(bus_open(key, "c", sealed, BUS_MAX, &got, &jlen, why, sizeof why), 0);
        CHECK_INT(bus_seal(key, "c", big, BUS_MAX - BUS_FRAME + 1, sealed, sizeof sealed), -1);
        CHECK_INT(bus_seal(key, "c", big, 10, sealed, BUS_FRAME + 9), -1); /* cap */
        n = bus_seal(key, "c", big, BUS_MAX - BUS_FRAME, sealed, sizeof sealed);
        sealed[BUS_MAX] = 'x';
        CHECK_INT(bus_open(key, "c", sealed, BUS_MAX + 1, &got, &jlen, why, sizeof why), -1);
    }
}

/* introduce.birthday: the initiator's hello.birthday across instances, optional, strict, and
 * under the MAC as every member. */
static void t_bday_introduce(void)
{
    struct bus_msg m;
    char json[BUS_MAX], line[PROTO_MAX_LINE], big[3 * BUS_MAX], sealed[BUS_MAX];
    unsigned char key[BUS_KEY_BYTES];
    const char *got;
    size_t jlen;
    intro_msg(&m);
    /* absent: the encoding of before, and has false */
    if (roundtrip(&m, json, sizeof json))
        CHECK(!msg_.u.introduce.bday.has && !strstr(json, "birthday"));
    m.u.introduce.bday = (struct proto_bday_caps){true, 256, 1024};
    if (roundtrip(&m, json, sizeof json)) {
        CHECK(msg_.u.introduce.bday.has);
        CHECK_INT(msg_.u.introduce.bday.k, 256);
        CHECK_INT(msg_.u.introduce.bday.m, 1024);
        CHECK(strstr(json, "\"bus_rtt_us\":300,\"birthday\":{\"k\":256,\"m\":1024},\"sender\"") !=
              NULL);
    }
    m.u.introduce.bday = (struct proto_bday_caps){true, 0, PROTO_BDAY_MAX_M};
    if (roundtrip(&m, json, sizeof json))
        CHECK(msg_.u.introduce.bday.k == 0 && msg_.u.introduce.bday.m == 4096);
    m.u.introduce.bday = (struct proto_bday_caps){true, PROTO_BDAY_MAX_K, 0};
    if (roundtrip(&m, json, sizeof json))
        CHECK(msg_.u.introduce.bday.k == 512 && msg_.u.introduce.bday.m == 0);
    /* out of range: not encoded */
    m.u.introduce.bday = (struct proto_bday_caps){true, 513, 1};
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
    m.u.introduce.bday = (struct proto_bday_caps){true, 1, 4097};
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
    m.u.introduce.bday = (struct proto_bday_caps){true, -1, 1};
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);

    punch_json(PROTO_RESPONDER, SESSION, line, sizeof line);
#define INTRO_B(bd)                                                                                \
    (snprintf(big, sizeof big,                                                                     \
              "{\"type\":\"introduce\",\"sender\":\"A\",\"t\":9,\"session\":\"%s\",\"from\":\"A\"," \
              "\"target\":\"bob\",\"peer\":\"%s\",\"path\":\"any\",\"rtt_us\":0,\"bus_rtt_us\":0," \
              "\"birthday\":" bd "}",                                                              \
              SESSION, line),                                                                      \
     big)
    if (DEC_IS(INTRO_B("{\"m\":3,\"k\":2}"), BUS_OK))
        CHECK(msg_.u.introduce.bday.has && msg_.u.introduce.bday.k == 2 &&
              msg_.u.introduce.bday.m == 3);
    DEC_IS(INTRO_B("{\"k\":513,\"m\":1}"), BUS_E_BODY);
    DEC_IS(INTRO_B("{\"k\":-1,\"m\":1}"), BUS_E_BODY);
    DEC_IS(INTRO_B("{\"k\":1,\"m\":4097}"), BUS_E_BODY);
    DEC_IS(INTRO_B("{\"k\":1}"), BUS_E_BODY);
    DEC_IS(INTRO_B("{\"m\":1}"), BUS_E_BODY);
    DEC_IS(INTRO_B("{}"), BUS_E_BODY);
    DEC_IS(INTRO_B("{\"k\":1,\"m\":1,\"ttl\":2}"), BUS_E_BODY);
    DEC_IS(INTRO_B("{\"k\":\"1\",\"m\":1}"), BUS_E_BODY);
    DEC_IS(INTRO_B("{\"k\":1.0,\"m\":1}"), BUS_E_BODY);
    DEC_IS(INTRO_B("[1,1]"), BUS_E_BODY);
    DEC_IS(INTRO_B("null"), BUS_E_BODY);
    DEC_IS(INTRO_B("true"), BUS_E_BODY);
#undef INTRO_B
    /* sealed, the caps are under the MAC: changing k breaks it */
    memset(key, 7, sizeof key);
    intro_msg(&m);
    m.u.introduce.bday = (struct proto_bday_caps){true, 256, 1024};
    int n = bus_encode(&m, json, sizeof json);
    CHECK(n > 0);
    n = bus_seal(key, "chan", json, (size_t)n, sealed, sizeof sealed);
    CHECK(n > 0);
    CHECK_INT(bus_open(key, "chan", sealed, (size_t)n, &got, &jlen, why_, sizeof why_), 0);
    {
        char *k = memmem(sealed, (size_t)n, "\"k\":256", 7);
        if (CHECK(k != NULL)) {
            k[6] = '5'; /* 255 */
            CHECK_INT(bus_open(key, "chan", sealed, (size_t)n, &got, &jlen, why_, sizeof why_), -1);
        }
    }
}

/* introduce.features and introduce.resume (resumable sessions): optional, absent as before,
 * strict like hello's list (unknown names ignored, duplicates refused). */
static void t_resume_introduce(void)
{
    struct bus_msg m;
    char json[BUS_MAX], line[PROTO_MAX_LINE], big[3 * BUS_MAX];
    intro_msg(&m);
    if (roundtrip(&m, json, sizeof json))
        CHECK(!msg_.u.introduce.features && !msg_.u.introduce.resume[0] &&
              !strstr(json, "features") && !strstr(json, "resume"));
    m.u.introduce.features = PROTO_FEAT_RESUME;
    strcpy(m.u.introduce.resume, OTHER);
    if (roundtrip(&m, json, sizeof json)) {
        CHECK_INT(msg_.u.introduce.features, PROTO_FEAT_RESUME);
        CHECK_STR(msg_.u.introduce.resume, OTHER);
        CHECK(strstr(json, "\"bus_rtt_us\":300,\"features\":[\"resume\"],\"resume\":\"") != NULL);
    }
    /* bits this version has no name for are not sent */
    m.u.introduce.features = 0x80u;
    m.u.introduce.resume[0] = '\0';
    if (roundtrip(&m, json, sizeof json))
        CHECK(!strstr(json, "features") && msg_.u.introduce.features == 0);
    strcpy(m.u.introduce.resume, "not-a-session");
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);

    punch_json(PROTO_RESPONDER, SESSION, line, sizeof line);
#define INTRO_R(extra)                                                                             \
    (snprintf(                                                                                     \
         big, sizeof big,                                                                          \
         "{\"type\":\"introduce\",\"sender\":\"A\",\"t\":9,\"session\":\"%s\",\"from\":\"A\","     \
         "\"target\":\"bob\",\"peer\":\"%s\",\"path\":\"any\",\"rtt_us\":0,\"bus_rtt_us\":"        \
         "0," extra "}",                                                                           \
         SESSION, line),                                                                           \
     big)
    if (DEC_IS(INTRO_R("\"features\":[\"x-later\",\"resume\"]"), BUS_OK))
        CHECK_INT(msg_.u.introduce.features, PROTO_FEAT_RESUME);
    if (DEC_IS(INTRO_R("\"features\":[]"), BUS_OK))
        CHECK_INT(msg_.u.introduce.features, 0);
    DEC_IS(INTRO_R("\"features\":[\"resume\",\"resume\"]"), BUS_E_BODY);
    DEC_IS(INTRO_R("\"features\":[\"\"]"), BUS_E_BODY);
    DEC_IS(INTRO_R("\"features\":[\"123456789012345678901234567890123\"]"), BUS_E_BODY);
    DEC_IS(INTRO_R("\"features\":[1]"), BUS_E_BODY);
    DEC_IS(INTRO_R("\"features\":\"resume\""), BUS_E_BODY);
    DEC_IS(INTRO_R("\"features\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\","
                   "\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\"]"),
           BUS_E_BODY);
    if (DEC_IS(INTRO_R("\"resume\":\"fedcba9876543210fedcba9876543210\""), BUS_OK))
        CHECK_STR(msg_.u.introduce.resume, OTHER);
    DEC_IS(INTRO_R("\"resume\":\"xyz\""), BUS_E_BODY);
    DEC_IS(INTRO_R("\"resume\":\"\""), BUS_E_BODY);
    DEC_IS(INTRO_R("\"resume\":7"), BUS_E_BODY);
#undef INTRO_R
}

/* replace: an id and its key, no session; strict. */
static void t_replace(void)
{
    struct bus_msg m;
    char json[BUS_MAX];
    memset(&m, 0, sizeof m);
    m.type = BUS_REPLACE;
    strcpy(m.sender, "A");
    m.t = 5;
    strcpy(m.u.replace.id, "bob");
    memset(m.u.replace.key, 1, sizeof m.u.replace.key);
    if (roundtrip(&m, json, sizeof json)) {
        CHECK_INT(msg_.type, BUS_REPLACE);
        CHECK_STR(msg_.u.replace.id, "bob");
        CHECK(msg_.u.replace.key[0] == 1 && msg_.u.replace.key[PROTO_KEY_BYTES - 1] == 1);
        CHECK_STR(json,
                  "{\"type\":\"replace\",\"id\":\"bob\",\"key\":\"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB"
                  "AQEBAQEBAQE=\",\"sender\":\"A\",\"t\":5}");
    }
    CHECK_STR(bus_type_name(BUS_REPLACE), "replace");
    strcpy(m.u.replace.id, "");
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
    DEC_IS(
        "{\"type\":\"replace\",\"sender\":\"A\",\"t\":5,\"id\":\"bob\",\"key\":\"AQEBAQEBAQEBAQEBAQ"
        "EBAQEBAQEBAQEBAQEBAQEBAQE=\"}",
        BUS_OK);
    DEC_IS("{\"type\":\"replace\",\"sender\":\"A\",\"t\":5,\"id\":\"bob\"}", BUS_E_BODY);
    DEC_IS(
        "{\"type\":\"replace\",\"sender\":\"A\",\"t\":5,\"key\":\"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB"
        "AQEBAQEBAQE=\"}",
        BUS_E_BODY);
    DEC_IS("{\"type\":\"replace\",\"sender\":\"A\",\"t\":5,\"id\":\"bob\",\"key\":\"AQEB\"}",
           BUS_E_BODY);
    DEC_IS(
        "{\"type\":\"replace\",\"sender\":\"A\",\"t\":5,\"id\":\"b o b\",\"key\":\"AQEBAQEBAQEBAQEB"
        "AQEBAQEBAQEBAQEBAQEBAQEBAQE=\"}",
        BUS_E_BODY);
    DEC_IS(
        "{\"type\":\"replace\",\"sender\":\"A\",\"t\":5,\"id\":\"bob\",\"key\":\"AQEBAQEBAQEBAQEB"
        "AQEBAQEBAQEBAQEBAQEBAQEBAQE=\",\"session\":\"0123456789abcdef0123456789abcdef\"}",
        BUS_E_BODY);
}

/* ---- code: a wormhole code's exchange between the claimer's instance and the maker's ---- */

#define SHARE_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define SID_B64 "ZmVkY2JhOTg3NjU0MzIxMA=="
#define AD_B64 "YWQ="
#define TAG_B64                                                                                    \
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="

/* A code message from instance from (the claimer when it is "A", the maker when it is "M")
 * with the given members after type. */
#define CODE(fmt, ...)                                                                             \
    (snprintf(json_, sizeof json_, "{\"type\":\"code\",\"sender\":\"%s\",\"t\":9," fmt "}",        \
              __VA_ARGS__),                                                                        \
     json_)
static char json_[3 * BUS_MAX];

/* A line as proto_decode takes it (dir) into m; false if it does not decode. */
static bool line_of(const char *line, enum proto_dir dir, struct proto_msg *m)
{
    char why[200];
    return CHECK_MSG(proto_decode(line, strlen(line), dir, m, why, sizeof why) == PROTO_OK,
                     "%s: %s", line, why);
}

static void code_msg(struct bus_msg *m, const char *sender, const char *claimer, const char *line,
                     enum proto_dir dir)
{
    memset(m, 0, sizeof *m);
    m->type = BUS_CODE;
    strcpy(m->sender, sender);
    m->t = 77;
    strcpy(m->u.code.claimer, claimer);
    m->u.code.ref = 123456789;
    m->u.code.channel = 42;
    if (line)
        line_of(line, dir, &m->u.code.line);
    else
        m->u.code.gone = true;
}

static void t_roundtrip_code(void)
{
    static const char *const to_maker[] = {
        "{\"type\":\"code-claim\",\"channel\":42}",
        "{\"type\":\"code-answer\",\"channel\":42,\"share\":\"" SHARE_B64 "\",\"ad\":\"" AD_B64
        "\",\"tag\":\"" TAG_B64 "\"}",
        "{\"type\":\"code-abort\",\"channel\":42}",
    };
    static const char *const to_claimer[] = {
        "{\"type\":\"code-claimed\",\"channel\":42,\"sid\":\"" SID_B64 "\",\"share\":\"" SHARE_B64
        "\",\"ad\":\"" AD_B64 "\"}",
        "{\"type\":\"code-confirm\",\"channel\":42,\"tag\":\"" TAG_B64 "\"}",
        "{\"type\":\"error\",\"code\":\"code-wrong\",\"message\":\"burned\",\"fatal\":false}",
        "{\"type\":\"error\",\"code\":\"code-unknown\",\"message\":\"no\",\"fatal\":false}",
        "{\"type\":\"error\",\"code\":\"code-expired\",\"message\":\"late\",\"fatal\":false}",
        "{\"type\":\"error\",\"code\":\"unexpected-type\",\"message\":\"no\",\"fatal\":false}",
    };
    struct bus_msg m;
    char json[BUS_MAX];
    for (size_t i = 0; i < sizeof to_maker / sizeof to_maker[0]; i++) {
        /* from the claimer's instance A (the claimer) to the maker's, B */
        code_msg(&m, "A", "A", to_maker[i], PROTO_TO_SERVER);
        if (roundtrip(&m, json, sizeof json)) {
            CHECK(msg_.u.code.to_maker && !msg_.u.code.gone);
            CHECK_INT(msg_.u.code.line.type, m.u.code.line.type);
        }
    }
    for (size_t i = 0; i < sizeof to_claimer / sizeof to_claimer[0]; i++) {
        /* from the maker's instance A to the claimer's, B (the receiver) */
        code_msg(&m, "A", "B", to_claimer[i], PROTO_TO_PEER);
        if (roundtrip(&m, json, sizeof json)) {
            CHECK(!msg_.u.code.to_maker);
            CHECK_INT(msg_.u.code.line.type, m.u.code.line.type);
            CHECK_STR(msg_.u.code.claimer, "B");
        }
    }
    /* the form on the wire, and the maker's bytes kept */
    code_msg(&m, "A", "B", to_claimer[0], PROTO_TO_PEER);
    if (roundtrip(&m, json, sizeof json)) {
        CHECK_STR(json, "{\"type\":\"code\",\"claimer\":\"B\",\"ref\":123456789,\"channel\":42,"
                        "\"line\":\"{\\\"type\\\":\\\"code-claimed\\\",\\\"channel\\\":42,"
                        "\\\"sid\\\":\\\"" SID_B64 "\\\",\\\"share\\\":\\\"" SHARE_B64
                        "\\\",\\\"ad\\\":\\\"" AD_B64 "\\\"}\",\"sender\":\"A\",\"t\":77}");
        CHECK(memcmp(msg_.u.code.line.u.code.share, m.u.code.line.u.code.share,
                     PROTO_CODE_SHARE_BYTES) == 0);
        CHECK_INT(msg_.u.code.ref, 123456789);
        CHECK_INT(msg_.u.code.channel, 42);
    }
    /* gone, both ways */
    code_msg(&m, "A", "A", NULL, PROTO_TO_SERVER);
    if (roundtrip(&m, json, sizeof json)) {
        CHECK(msg_.u.code.gone && msg_.u.code.to_maker);
        CHECK_STR(json, "{\"type\":\"code\",\"claimer\":\"A\",\"ref\":123456789,\"channel\":42,"
                        "\"gone\":true,\"sender\":\"A\",\"t\":77}");
    }
    code_msg(&m, "A", "B", NULL, PROTO_TO_PEER);
    if (roundtrip(&m, json, sizeof json))
        CHECK(msg_.u.code.gone && !msg_.u.code.to_maker);
    m.u.code.ref = BUS_MAX_REF;
    m.u.code.channel = 999999;
    CHECK(roundtrip(&m, json, sizeof json));
    CHECK_STR(bus_type_name(BUS_CODE), "code");
}

static void t_reject_code(void)
{
    static const char claim[] = "{\\\"type\\\":\\\"code-claim\\\",\\\"channel\\\":42}";
    static const char claimed[] =
        "{\\\"type\\\":\\\"code-claimed\\\",\\\"channel\\\":42,\\\"sid\\\":\\\"" SID_B64
        "\\\",\\\"share\\\":\\\"" SHARE_B64 "\\\",\\\"ad\\\":\\\"" AD_B64 "\\\"}";
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":1,\"channel\":42,\"line\":\"%s\"", "A", claim), BUS_OK);
    DEC_IS(CODE("\"claimer\":\"B\",\"ref\":1,\"channel\":42,\"line\":\"%s\"", "A", claimed),
           BUS_OK);
    /* the envelope's and the body's members, each missing, out of range or extra */
    if (DEC_IS(CODE("\"ref\":1,\"channel\":42,\"line\":\"%s\"", "A", claim), BUS_E_BODY))
        CHECK_STR(why_, "from A: a malformed code message");
    DEC_IS(CODE("\"claimer\":\"A\",\"channel\":42,\"line\":\"%s\"", "A", claim), BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":1,\"line\":\"%s\"", "A", claim), BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":1,\"channel\":42%s", "A", ""), BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":0,\"channel\":42,\"line\":\"%s\"", "A", claim),
           BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":9007199254740992,\"channel\":42,\"line\":\"%s\"", "A",
                claim),
           BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":\"1\",\"channel\":42,\"line\":\"%s\"", "A", claim),
           BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":1,\"channel\":0,\"gone\":true%s", "A", ""), BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":1,\"channel\":1000000,\"gone\":true%s", "A", ""),
           BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"a b\",\"ref\":1,\"channel\":4,\"gone\":true%s", "A", ""),
           BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":1,\"channel\":42,\"gone\":false%s", "A", ""),
           BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":1,\"channel\":42,\"gone\":1%s", "A", ""), BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":1,\"channel\":42,\"gone\":true,\"line\":\"%s\"", "A",
                claim),
           BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":1,\"channel\":42,\"line\":\"%s\",\"x\":1", "A", claim),
           BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":1,\"channel\":42,\"line\":\"%s\",\"session\":\"%s\"",
                "A", claim, SESSION),
           BUS_E_BODY);
    /* towards a claimer that is neither the sender nor this instance (B) */
    if (DEC_IS(CODE("\"claimer\":\"C\",\"ref\":1,\"channel\":42,\"gone\":true%s", "A", ""),
               BUS_E_BODY))
        CHECK_STR(why_, "from A: a code message for the claimers of instance C");
    /* the line: not one line, not decoding, another channel, a type the direction does not
     * carry (a post to the maker, a claimed to the maker, a claim to the claimer, a punch) */
    DEC_IS(
        CODE("\"claimer\":\"A\",\"ref\":1,\"channel\":42,\"line\":\"%s\\n%s\"", "A", claim, claim),
        BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":1,\"channel\":42,\"line\":\"%s\"", "A", ""), BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":1,\"channel\":42,\"line\":\"%s\"", "A", "{\\\"type"),
           BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":1,\"channel\":43,\"line\":\"%s\"", "A", claim),
           BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":1,\"channel\":42,\"line\":\"%s\"", "A",
                "{\\\"type\\\":\\\"code-post\\\",\\\"channel\\\":42,\\\"share\\\":\\\"" SHARE_B64
                "\\\",\\\"ad\\\":\\\"" AD_B64 "\\\"}"),
           BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":1,\"channel\":42,\"line\":\"%s\"", "A", claimed),
           BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"B\",\"ref\":1,\"channel\":42,\"line\":\"%s\"", "A", claim),
           BUS_E_BODY); /* not a line a server sends */
    /* lines both directions know, each on the wrong side: an answer to the claimer, a
     * confirm to the maker */
    if (DEC_IS(
            CODE("\"claimer\":\"B\",\"ref\":1,\"channel\":42,\"line\":\"%s\"", "A",
                 "{\\\"type\\\":\\\"code-answer\\\",\\\"channel\\\":42,\\\"share\\\":\\\"" SHARE_B64
                 "\\\",\\\"ad\\\":\\\"" AD_B64 "\\\",\\\"tag\\\":\\\"" TAG_B64 "\\\"}"),
            BUS_E_BODY))
        CHECK_STR(why_, "from A: a code message for channel 42: code-answer is not for the "
                        "claimer");
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":1,\"channel\":42,\"line\":\"%s\"", "A",
                "{\\\"type\\\":\\\"code-confirm\\\",\\\"channel\\\":42,\\\"tag\\\":\\\"" TAG_B64
                "\\\"}"),
           BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"B\",\"ref\":1,\"channel\":42,\"line\":\"%s\"", "A",
                "{\\\"type\\\":\\\"ping\\\",\\\"seq\\\":1}"),
           BUS_E_BODY);
    /* errors towards the claimer: only the mailbox's, non-fatal, printable */
    DEC_IS(CODE("\"claimer\":\"B\",\"ref\":1,\"channel\":42,\"line\":\"%s\"", "A",
                "{\\\"type\\\":\\\"error\\\",\\\"code\\\":\\\"code-wrong\\\",\\\"message\\\":"
                "\\\"x\\\",\\\"fatal\\\":true}"),
           BUS_E_BODY);
    if (DEC_IS(CODE("\"claimer\":\"B\",\"ref\":1,\"channel\":42,\"line\":\"%s\"", "A",
                    "{\\\"type\\\":\\\"error\\\",\\\"code\\\":\\\"internal\\\",\\\"message\\\":"
                    "\\\"x\\\",\\\"fatal\\\":false}"),
               BUS_E_BODY))
        CHECK_STR(why_, "from A: a code message for channel 42: error internal is not for the "
                        "claimer");
    DEC_IS(CODE("\"claimer\":\"B\",\"ref\":1,\"channel\":42,\"line\":\"%s\"", "A",
                "{\\\"type\\\":\\\"error\\\",\\\"code\\\":\\\"code-wrong\\\",\\\"message\\\":"
                "\\\"\\\\u001b[2J\\\",\\\"fatal\\\":false}"),
           BUS_E_BODY);
    DEC_IS(CODE("\"claimer\":\"A\",\"ref\":1,\"channel\":42,\"line\":\"%s\"", "A",
                "{\\\"type\\\":\\\"error\\\",\\\"code\\\":\\\"code-wrong\\\",\\\"message\\\":"
                "\\\"x\\\",\\\"fatal\\\":false}"),
           BUS_E_BODY); /* an error towards the maker: not a claimer's line */
}

/* What bus_encode refuses for code: what bus_decode would. */
static void t_encode_refuses_code(void)
{
    struct bus_msg m;
    char json[BUS_MAX];
    code_msg(&m, "A", "A", "{\"type\":\"code-claim\",\"channel\":42}", PROTO_TO_SERVER);
    m.u.code.ref = 0;
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
    m.u.code.ref = BUS_MAX_REF + 1;
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
    m.u.code.ref = 1;
    m.u.code.channel = 43; /* not the line's */
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
    m.u.code.channel = 42;
    strcpy(m.u.code.claimer, "B"); /* a claim towards a claimer */
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
    strcpy(m.u.code.claimer, "a b");
    m.u.code.gone = true;
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
    strcpy(m.u.code.claimer, "A");
    m.u.code.channel = 0;
    CHECK_INT(bus_encode(&m, json, sizeof json), -1);
    m.u.code.channel = 1;
    CHECK(bus_encode(&m, json, sizeof json) > 0);
}

static void t_code_helpers(void)
{
    struct proto_msg m;
    bus_code_claim_of(77, &m);
    CHECK_INT(m.type, PROTO_CODE_CLAIM);
    CHECK_INT(bus_code_channel(&m), 77);
    CHECK(bus_code_line_ok(&m, true, 77));
    CHECK(!bus_code_line_ok(&m, true, 78));
    CHECK(!bus_code_line_ok(&m, false, 77));
    m.type = PROTO_PING;
    CHECK_INT(bus_code_channel(&m), 0);
}

/* The exchange's order as the claimer's instance follows it (PROTOCOL.md 20.5). */
static void t_code_next(void)
{
    struct proto_msg claimed, confirm, answer, abort_, err, unexpected, post;
    memset(&claimed, 0, sizeof claimed);
    claimed.type = PROTO_CODE_CLAIMED;
    confirm = answer = abort_ = post = err = unexpected = claimed;
    confirm.type = PROTO_CODE_CONFIRM;
    answer.type = PROTO_CODE_ANSWER;
    abort_.type = PROTO_CODE_ABORT;
    post.type = PROTO_CODE_POST;
    err.type = unexpected.type = PROTO_ERROR;
    strcpy(err.u.error.code, "code-wrong");
    strcpy(unexpected.u.error.code, "unexpected-type");
    /* the whole way, in order */
    CHECK_INT(bus_code_next(BUS_CS_WAIT, true, &claimed), BUS_CS_CLAIMED);
    CHECK_INT(bus_code_next(BUS_CS_CLAIMED, false, &answer), BUS_CS_ANSWERED);
    CHECK_INT(bus_code_next(BUS_CS_ANSWERED, true, &confirm), BUS_CS_DONE);
    CHECK_INT(bus_code_next(BUS_CS_DONE, false, &abort_), BUS_CS_END);
    /* each step only once, and not early */
    CHECK_INT(bus_code_next(BUS_CS_CLAIMED, true, &claimed), -1);
    CHECK_INT(bus_code_next(BUS_CS_ANSWERED, false, &answer), -1);
    CHECK_INT(bus_code_next(BUS_CS_WAIT, false, &answer), -1);
    CHECK_INT(bus_code_next(BUS_CS_CLAIMED, true, &confirm), -1);
    CHECK_INT(bus_code_next(BUS_CS_DONE, true, &confirm), -1);
    CHECK_INT(bus_code_next(BUS_CS_WAIT, true, &confirm), -1);
    /* errors: any time after the claim; unexpected-type changes nothing */
    for (int st = BUS_CS_WAIT; st <= BUS_CS_DONE; st++) {
        CHECK_INT(bus_code_next((enum bus_code_state)st, true, &err), BUS_CS_END);
        CHECK_INT(bus_code_next((enum bus_code_state)st, true, &unexpected), st);
        CHECK_INT(bus_code_next((enum bus_code_state)st, false, &abort_), BUS_CS_END);
        CHECK_INT(bus_code_next((enum bus_code_state)st, false, &confirm), -1);
        CHECK_INT(bus_code_next((enum bus_code_state)st, false, &post), -1);
        CHECK_INT(bus_code_next((enum bus_code_state)st, true, &answer), -1);
    }
    /* nothing before the claim has gone out, nothing after the end */
    CHECK_INT(bus_code_next(BUS_CS_LOOKUP, true, &claimed), -1);
    CHECK_INT(bus_code_next(BUS_CS_LOOKUP, false, &abort_), -1);
    CHECK_INT(bus_code_next(BUS_CS_END, true, &err), -1);
    CHECK_INT(bus_code_next(BUS_CS_END, false, &abort_), -1);
}

#undef CODE

CHECK_MAIN(TEST(t_roundtrip_introduce), TEST(t_roundtrip_answer), TEST(t_encode_refuses),
           TEST(t_envelope), TEST(t_unknown_type), TEST(t_reject_introduce), TEST(t_reject_answer),
           TEST(t_answer_later), TEST(t_path_later), TEST(t_punch_is), TEST(t_instance),
           TEST(t_key), TEST(t_seal_open), TEST(t_bday_introduce), TEST(t_resume_introduce),
           TEST(t_replace), TEST(t_roundtrip_code), TEST(t_reject_code),
           TEST(t_encode_refuses_code), TEST(t_code_helpers), TEST(t_code_next))
