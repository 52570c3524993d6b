/* Wire protocol codec: every message type round-trips, every malformed line is rejected with
 * the error code PROTOCOL.md gives it, and random garbage never crashes the decoder. */
#include "check.h"
#include "common/endpoint.h"
#include "proto/auth.h"
#include "proto/proto.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static char why_[512];
static struct proto_msg msg_;

static enum proto_err dec_n(enum proto_dir dir, const char *line, size_t len)
{
    why_[0] = '\0';
    return proto_decode(line, len, dir, &msg_, why_, sizeof why_);
}

static enum proto_err dec(enum proto_dir dir, const char *line)
{
    return dec_n(dir, line, strlen(line));
}

/* Decoding line in direction dir must fail with exactly e, and say why. */
#define REJECT(dir, line, e)                                                                       \
    __extension__({                                                                                \
        const char *rl_ = (line);                                                                  \
        enum proto_err rg_ = dec(dir, rl_);                                                        \
        CHECK_MSG(rg_ == (e), "decode(%.200s) = %s (%s), want %s", rl_, proto_err_code(rg_), why_, \
                  proto_err_code(e)) &&                                                            \
            CHECK_MSG(why_[0] != '\0', "decode(%.200s): empty reason", rl_);                       \
    })

#define ACCEPT(dir, line)                                                                          \
    __extension__({                                                                                \
        const char *al_ = (line);                                                                  \
        enum proto_err ag_ = dec(dir, al_);                                                        \
        CHECK_MSG(ag_ == PROTO_OK, "decode(%.200s) = %s (%s), want ok", al_, proto_err_code(ag_),  \
                  why_);                                                                           \
    })

static const char SESSION[] = "0123456789abcdef0123456789abcdef";

static void set_ep(struct sockaddr_storage *ss, const char *text)
{
    char err[160];
    if (ep_parse(text, ss, err, sizeof err) < 0)
        check_fail_(__FILE__, __LINE__, "ep_parse(%s): %s", text, err);
}

static int same_ep(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    return ep_equal((const struct sockaddr *)a, (const struct sockaddr *)b);
}

static int same_eplist(const struct proto_eplist *a, const struct proto_eplist *b)
{
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; i++)
        if (!same_ep(&a->ep[i], &b->ep[i]))
            return 0;
    return 1;
}

/* Encodes m, decodes it in dir into out, and checks the re-encoding is byte-identical. */
static int roundtrip(const struct proto_msg *m, enum proto_dir dir, struct proto_msg *out)
{
    char a[PROTO_MAX_LINE], b[PROTO_MAX_LINE];
    int n = proto_encode(m, a, sizeof a), n2;
    enum proto_err e;
    if (!CHECK_MSG(n > 0, "encode %s failed", proto_type_name(m->type)))
        return 0;
    CHECK(a[n - 1] == '\n');
    CHECK(memchr(a, '\n', (size_t)n - 1) == NULL);
    e = proto_decode(a, (size_t)n - 1, dir, out, why_, sizeof why_);
    if (!CHECK_MSG(e == PROTO_OK, "decode(%.*s) = %s: %s", n - 1, a, proto_err_code(e), why_))
        return 0;
    CHECK_INT(out->type, m->type);
    n2 = proto_encode(out, b, sizeof b);
    CHECK_MSG(n2 == n && memcmp(a, b, (size_t)n) == 0, "re-encoding differs: %.*s vs %.*s", n, a,
              n2 > 0 ? n2 : 0, b);
    return 1;
}

static void t_roundtrip_hello(void)
{
    struct proto_msg m, o;
    memset(&m, 0, sizeof m);
    m.type = PROTO_HELLO;
    m.u.hello.version = PROTO_VERSION;
    strcpy(m.u.hello.id, "bob.example_1-x");
    m.u.hello.endpoints.n = 3;
    set_ep(&m.u.hello.endpoints.ep[0], "10.0.1.2:40000");
    set_ep(&m.u.hello.endpoints.ep[1], "[2001:db8::1]:65535");
    set_ep(&m.u.hello.endpoints.ep[2], "192.168.1.9:1");
    if (roundtrip(&m, PROTO_TO_SERVER, &o)) {
        CHECK_INT(o.u.hello.version, PROTO_VERSION);
        CHECK_STR(o.u.hello.id, "bob.example_1-x");
        CHECK(same_eplist(&o.u.hello.endpoints, &m.u.hello.endpoints));
    }
    /* empty endpoint list, and the largest allowed */
    m.u.hello.endpoints.n = 0;
    if (roundtrip(&m, PROTO_TO_SERVER, &o))
        CHECK_INT(o.u.hello.endpoints.n, 0);
    m.u.hello.endpoints.n = PROTO_MAX_ENDPOINTS;
    for (int i = 0; i < PROTO_MAX_ENDPOINTS; i++) {
        char t[EP_STRLEN];
        snprintf(t, sizeof t, "10.0.0.%d:%d", i + 1, 1000 + i);
        set_ep(&m.u.hello.endpoints.ep[i], t);
    }
    if (roundtrip(&m, PROTO_TO_SERVER, &o))
        CHECK(same_eplist(&o.u.hello.endpoints, &m.u.hello.endpoints));
    /* aux: sent only when true, and it survives the trip */
    m.u.hello.aux = true;
    if (roundtrip(&m, PROTO_TO_SERVER, &o))
        CHECK(o.u.hello.aux);
    m.u.hello.aux = false;
    if (roundtrip(&m, PROTO_TO_SERVER, &o))
        CHECK(!o.u.hello.aux);
    /* a 64-character id is the longest valid */
    memset(m.u.hello.id, 'z', PROTO_MAX_ID);
    m.u.hello.id[PROTO_MAX_ID] = '\0';
    if (roundtrip(&m, PROTO_TO_SERVER, &o))
        CHECK_STR(o.u.hello.id, m.u.hello.id);
}

static void t_roundtrip_welcome(void)
{
    struct proto_msg m, o;
    memset(&m, 0, sizeof m);
    m.type = PROTO_WELCOME;
    m.u.welcome.version = PROTO_VERSION;
    strcpy(m.u.welcome.id, "alice");
    set_ep(&m.u.welcome.observed, "203.0.113.10:40000");
    m.u.welcome.keepalive = 60;
    if (roundtrip(&m, PROTO_TO_PEER, &o)) {
        CHECK_STR(o.u.welcome.id, "alice");
        CHECK(same_ep(&o.u.welcome.observed, &m.u.welcome.observed));
        CHECK_INT(o.u.welcome.keepalive, 60);
        CHECK_INT(o.u.welcome.version, PROTO_VERSION);
    }
    set_ep(&m.u.welcome.observed, "[::ffff:1.2.3.4]:7");
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK(same_ep(&o.u.welcome.observed, &m.u.welcome.observed));
}

static void t_roundtrip_connect(void)
{
    struct proto_msg m, o;
    memset(&m, 0, sizeof m);
    m.type = PROTO_CONNECT;
    strcpy(m.u.connect.target, "alice");
    if (roundtrip(&m, PROTO_TO_SERVER, &o))
        CHECK_STR(o.u.connect.target, "alice");
}

static void t_roundtrip_punch(void)
{
    struct proto_msg m, o;
    memset(&m, 0, sizeof m);
    m.type = PROTO_PUNCH;
    strcpy(m.u.punch.session, SESSION);
    strcpy(m.u.punch.peer, "alice");
    m.u.punch.role = PROTO_INITIATOR;
    set_ep(&m.u.punch.observed, "198.51.100.7:51000");
    m.u.punch.endpoints.n = 2;
    set_ep(&m.u.punch.endpoints.ep[0], "192.168.1.9:51000");
    set_ep(&m.u.punch.endpoints.ep[1], "[fe80::1]:51000");
    if (roundtrip(&m, PROTO_TO_PEER, &o)) {
        CHECK_STR(o.u.punch.session, SESSION);
        CHECK_STR(o.u.punch.peer, "alice");
        CHECK_INT(o.u.punch.role, PROTO_INITIATOR);
        CHECK(same_ep(&o.u.punch.observed, &m.u.punch.observed));
        CHECK(same_eplist(&o.u.punch.endpoints, &m.u.punch.endpoints));
    }
    m.u.punch.role = PROTO_RESPONDER;
    m.u.punch.endpoints.n = 0;
    if (roundtrip(&m, PROTO_TO_PEER, &o)) {
        CHECK_INT(o.u.punch.role, PROTO_RESPONDER);
        CHECK_INT(o.u.punch.endpoints.n, 0);
    }
}

static void t_roundtrip_error(void)
{
    struct proto_msg m, o;
    char line[PROTO_MAX_LINE];
    int n;
    memset(&m, 0, sizeof m);
    m.type = PROTO_ERROR;
    strcpy(m.u.error.code, "peer-not-found");
    strcpy(m.u.error.message, "no peer \"alice\" \\ here\t\x01 caf\xc3\xa9");
    m.u.error.fatal = false;
    if (roundtrip(&m, PROTO_TO_PEER, &o)) {
        CHECK_STR(o.u.error.code, "peer-not-found");
        CHECK_STR(o.u.error.message, m.u.error.message);
        CHECK(!o.u.error.fatal);
    }
    m.u.error.fatal = true;
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK(o.u.error.fatal);
    /* a message of the maximum length */
    memset(m.u.error.message, 'm', PROTO_MAX_TEXT);
    m.u.error.message[PROTO_MAX_TEXT] = '\0';
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK_STR(o.u.error.message, m.u.error.message);

    n = proto_encode_error("id-taken", "id \"bob\" is taken", true, line, sizeof line);
    if (CHECK(n > 0) && CHECK(line[n - 1] == '\n') &&
        CHECK_INT(dec_n(PROTO_TO_PEER, line, (size_t)n - 1), PROTO_OK)) {
        CHECK_INT(msg_.type, PROTO_ERROR);
        CHECK_STR(msg_.u.error.code, "id-taken");
        CHECK_STR(msg_.u.error.message, "id \"bob\" is taken");
        CHECK(msg_.u.error.fatal);
    }
    n = proto_encode_error("self-connect", "that is you", false, line, sizeof line);
    if (CHECK(n > 0) && CHECK_INT(dec_n(PROTO_TO_PEER, line, (size_t)n - 1), PROTO_OK))
        CHECK(!msg_.u.error.fatal);
    /* "fatal" missing means true */
    if (ACCEPT(PROTO_TO_PEER, "{\"type\":\"error\",\"code\":\"x\",\"message\":\"y\"}"))
        CHECK(msg_.u.error.fatal);
}

static void t_roundtrip_ping_pong(void)
{
    struct proto_msg m, o;
    int64_t seqs[] = {0, 7, 4294967296LL, INT64_MAX};
    for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
        memset(&m, 0, sizeof m);
        m.type = PROTO_PING;
        m.u.ping.seq = seqs[i];
        if (roundtrip(&m, PROTO_TO_SERVER, &o))
            CHECK(o.u.ping.seq == seqs[i]);
        if (roundtrip(&m, PROTO_TO_PEER, &o))
            CHECK(o.u.ping.seq == seqs[i]);
        m.type = PROTO_PONG;
        if (roundtrip(&m, PROTO_TO_SERVER, &o))
            CHECK(o.u.ping.seq == seqs[i]);
        if (roundtrip(&m, PROTO_TO_PEER, &o))
            CHECK(o.u.ping.seq == seqs[i]);
    }
}

static void t_roundtrip_shake(void)
{
    struct proto_msg m, o;
    memset(&m, 0, sizeof m);
    m.type = PROTO_SHAKE;
    m.u.shake.version = PROTO_VERSION;
    strcpy(m.u.shake.session, SESSION);
    strcpy(m.u.shake.from, "bob");
    strcpy(m.u.shake.to, "alice");
    for (int i = 0; i < PROTO_KEY_BYTES; i++) {
        m.u.shake.key[i] = (unsigned char)i;
        m.u.shake.eph[i] = (unsigned char)(255 - i);
    }
    if (roundtrip(&m, PROTO_PEER_TO_PEER, &o)) {
        CHECK_INT(o.u.shake.version, PROTO_VERSION);
        CHECK_STR(o.u.shake.session, SESSION);
        CHECK_STR(o.u.shake.from, "bob");
        CHECK_STR(o.u.shake.to, "alice");
        CHECK(memcmp(o.u.shake.key, m.u.shake.key, PROTO_KEY_BYTES) == 0);
        CHECK(memcmp(o.u.shake.eph, m.u.shake.eph, PROTO_KEY_BYTES) == 0);
        CHECK(!o.u.shake.has_sig);
    }
    /* the initiator's shake is signed */
    m.u.shake.has_sig = true;
    memset(m.u.shake.sig, 0xa5, sizeof m.u.shake.sig);
    if (roundtrip(&m, PROTO_PEER_TO_PEER, &o))
        CHECK(o.u.shake.has_sig && memcmp(o.u.shake.sig, m.u.shake.sig, PROTO_SIG_BYTES) == 0);
    memset(&m, 0, sizeof m);
    m.type = PROTO_CONFIRM;
    strcpy(m.u.confirm.session, SESSION);
    memset(m.u.confirm.sig, 0x5a, sizeof m.u.confirm.sig);
    if (roundtrip(&m, PROTO_PEER_TO_PEER, &o)) {
        CHECK_STR(o.u.confirm.session, SESSION);
        CHECK(memcmp(o.u.confirm.sig, m.u.confirm.sig, PROTO_SIG_BYTES) == 0);
    }
}

/* shake and confirm carry keys and signatures: required, exact length, canonical base64 */
static void t_shake_crypto_fields(void)
{
#define SHK                                                                                        \
    "{\"type\":\"shake\",\"version\":1,\"session\":\"0123456789abcdef0123456789abcdef\","          \
    "\"from\":\"a\",\"to\":\"b\""
    ACCEPT(PROTO_PEER_TO_PEER, SHK ",\"key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","
                                   "\"eph\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}");
    ACCEPT(PROTO_PEER_TO_PEER,
           SHK ",\"key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\",\"eph\":"
               "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\",\"sig\":"
               "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
               "AAAAA==\"}");
    REJECT(PROTO_PEER_TO_PEER, SHK "}", PROTO_E_FIELD);
    REJECT(PROTO_PEER_TO_PEER, SHK ",\"key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_PEER_TO_PEER, SHK ",\"eph\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}",
           PROTO_E_FIELD);
    /* 31 bytes, unpadded, a signature where a key belongs, not a string */
    REJECT(PROTO_PEER_TO_PEER,
           SHK ",\"key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\",\"eph\":"
               "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_PEER_TO_PEER,
           SHK ",\"key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\",\"eph\":"
               "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_PEER_TO_PEER,
           SHK ",\"key\":"
               "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
               "AAAAA==\",\"eph\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_PEER_TO_PEER,
           SHK ",\"key\":5,\"eph\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_PEER_TO_PEER,
           SHK ",\"key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\",\"eph\":"
               "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\",\"sig\":"
               "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}",
           PROTO_E_FIELD);
    ACCEPT(PROTO_PEER_TO_PEER,
           "{\"type\":\"confirm\",\"session\":\"0123456789abcdef0123456789abcdef\","
           "\"sig\":"
           "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
           "A==\"}");
    REJECT(PROTO_PEER_TO_PEER,
           "{\"type\":\"confirm\",\"session\":\"0123456789abcdef0123456789abcdef\"}",
           PROTO_E_FIELD);
#undef SHK
}

static void t_encode_limits(void)
{
    struct proto_msg m;
    char small[8];
    memset(&m, 0, sizeof m);
    m.type = PROTO_PING;
    m.u.ping.seq = 1;
    CHECK_INT(proto_encode(&m, small, sizeof small), -1);
    m.type = PROTO_TYPE_COUNT;
    {
        char buf[PROTO_MAX_LINE];
        CHECK_INT(proto_encode(&m, buf, sizeof buf), -1);
    }
    CHECK_STR(proto_type_name(PROTO_SHAKE), "shake");
    CHECK_STR(proto_type_name(PROTO_TYPE_COUNT), "?");
}

static void t_err_codes(void)
{
    CHECK_STR(proto_err_code(PROTO_E_JSON), "bad-json");
    CHECK_STR(proto_err_code(PROTO_E_MESSAGE), "bad-message");
    CHECK_STR(proto_err_code(PROTO_E_TYPE), "unknown-type");
    CHECK_STR(proto_err_code(PROTO_E_UNEXPECTED), "unexpected-type");
    CHECK_STR(proto_err_code(PROTO_E_FIELD), "bad-field");
    CHECK_STR(proto_err_code(PROTO_E_ID), "bad-id");
    CHECK_STR(proto_err_code(PROTO_E_ENDPOINT), "bad-endpoint");
    CHECK_STR(proto_err_code(PROTO_E_TOO_MANY), "too-many-endpoints");
    CHECK_STR(proto_err_code(PROTO_E_VERSION), "bad-version");
    CHECK_STR(proto_err_code(PROTO_E_LINE), "line-too-long");
}

static void t_reject_not_json(void)
{
    REJECT(PROTO_TO_SERVER, "", PROTO_E_JSON);
    REJECT(PROTO_TO_SERVER, "hello", PROTO_E_JSON);
    REJECT(PROTO_TO_SERVER, "{", PROTO_E_JSON);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"ping\",\"seq\":1", PROTO_E_JSON);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"ping\",\"seq\":1} x", PROTO_E_JSON);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"ping\",\"seq\":1}{}", PROTO_E_JSON);
    REJECT(PROTO_TO_SERVER, "{'type':'ping','seq':1}", PROTO_E_JSON);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"ping\",\"seq\":01}", PROTO_E_JSON);
    REJECT(PROTO_TO_PEER, "\xff\xfe{}", PROTO_E_JSON);
    /* invalid UTF-8 inside a string */
    REJECT(PROTO_TO_SERVER, "{\"type\":\"connect\",\"target\":\"a\xc3\"}", PROTO_E_JSON);
}

static void t_reject_not_object(void)
{
    REJECT(PROTO_TO_SERVER, "[]", PROTO_E_MESSAGE);
    REJECT(PROTO_TO_SERVER, "[{\"type\":\"ping\",\"seq\":1}]", PROTO_E_MESSAGE);
    /* valid JSON that is not an object is a bad message, not bad JSON */
    REJECT(PROTO_TO_SERVER, "42", PROTO_E_MESSAGE);
    REJECT(PROTO_TO_SERVER, "\"hello\"", PROTO_E_MESSAGE);
    REJECT(PROTO_TO_PEER, "null", PROTO_E_MESSAGE);
    REJECT(PROTO_TO_PEER, "true", PROTO_E_MESSAGE);
}

static void t_reject_type(void)
{
    /* no type, non-string type */
    REJECT(PROTO_TO_SERVER, "{}", PROTO_E_MESSAGE);
    REJECT(PROTO_TO_SERVER, "{\"seq\":1}", PROTO_E_MESSAGE);
    REJECT(PROTO_TO_SERVER, "{\"type\":1,\"seq\":1}", PROTO_E_MESSAGE);
    REJECT(PROTO_TO_SERVER, "{\"type\":null}", PROTO_E_MESSAGE);
    REJECT(PROTO_TO_PEER, "{\"type\":[\"ping\"],\"seq\":1}", PROTO_E_MESSAGE);
    REJECT(PROTO_PEER_TO_PEER, "{\"type\":{}}", PROTO_E_MESSAGE);
    /* unknown type */
    REJECT(PROTO_TO_SERVER, "{\"type\":\"bogus\"}", PROTO_E_TYPE);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"HELLO\"}", PROTO_E_TYPE);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"\"}", PROTO_E_TYPE);
    REJECT(PROTO_TO_PEER, "{\"type\":\"pingx\",\"seq\":1}", PROTO_E_TYPE);
    REJECT(PROTO_PEER_TO_PEER, "{\"type\":\"shake \"}", PROTO_E_TYPE);
}

static void t_reject_direction(void)
{
    const char *hello = "{\"type\":\"hello\",\"version\":1,\"id\":\"bob\",\"endpoints\":[]}";
    const char *welcome = "{\"type\":\"welcome\",\"version\":1,\"id\":\"bob\","
                          "\"observed\":\"1.2.3.4:5\",\"keepalive\":60}";
    const char *connect = "{\"type\":\"connect\",\"target\":\"alice\"}";
    const char *punch = "{\"type\":\"punch\",\"session\":\"0123456789abcdef0123456789abcdef\","
                        "\"peer\":\"alice\",\"role\":\"initiator\",\"observed\":\"1.2.3.4:5\","
                        "\"endpoints\":[]}";
    const char *error = "{\"type\":\"error\",\"code\":\"x\",\"message\":\"y\",\"fatal\":true}";
    const char *ping = "{\"type\":\"ping\",\"seq\":1}";
    const char *pong = "{\"type\":\"pong\",\"seq\":1}";
    const char *shake = "{\"type\":\"shake\",\"version\":1,\"session\":"
                        "\"0123456789abcdef0123456789abcdef\",\"from\":\"a\",\"to\":\"b\","
                        "\"key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\",\"eph\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}";

    ACCEPT(PROTO_TO_SERVER, hello);
    ACCEPT(PROTO_TO_SERVER, connect);
    ACCEPT(PROTO_TO_SERVER, ping);
    ACCEPT(PROTO_TO_SERVER, pong);
    REJECT(PROTO_TO_SERVER, welcome, PROTO_E_UNEXPECTED);
    REJECT(PROTO_TO_SERVER, punch, PROTO_E_UNEXPECTED);
    REJECT(PROTO_TO_SERVER, error, PROTO_E_UNEXPECTED);
    REJECT(PROTO_TO_SERVER, shake, PROTO_E_UNEXPECTED);

    ACCEPT(PROTO_TO_PEER, welcome);
    ACCEPT(PROTO_TO_PEER, punch);
    ACCEPT(PROTO_TO_PEER, error);
    ACCEPT(PROTO_TO_PEER, ping);
    ACCEPT(PROTO_TO_PEER, pong);
    REJECT(PROTO_TO_PEER, hello, PROTO_E_UNEXPECTED);
    REJECT(PROTO_TO_PEER, connect, PROTO_E_UNEXPECTED);
    REJECT(PROTO_TO_PEER, shake, PROTO_E_UNEXPECTED);

    ACCEPT(PROTO_PEER_TO_PEER, shake);
    REJECT(PROTO_PEER_TO_PEER, hello, PROTO_E_UNEXPECTED);
    REJECT(PROTO_PEER_TO_PEER, welcome, PROTO_E_UNEXPECTED);
    REJECT(PROTO_PEER_TO_PEER, connect, PROTO_E_UNEXPECTED);
    REJECT(PROTO_PEER_TO_PEER, punch, PROTO_E_UNEXPECTED);
    REJECT(PROTO_PEER_TO_PEER, error, PROTO_E_UNEXPECTED);
    REJECT(PROTO_PEER_TO_PEER, ping, PROTO_E_UNEXPECTED);
    REJECT(PROTO_PEER_TO_PEER, pong, PROTO_E_UNEXPECTED);
    /* direction is checked before the fields */
    REJECT(PROTO_TO_SERVER, "{\"type\":\"welcome\"}", PROTO_E_UNEXPECTED);
}

static void t_reject_missing_field(void)
{
    REJECT(PROTO_TO_SERVER, "{\"type\":\"hello\",\"id\":\"bob\",\"endpoints\":[]}", PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"hello\",\"version\":1,\"endpoints\":[]}", PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"hello\",\"version\":1,\"id\":\"bob\"}", PROTO_E_FIELD);
    /* aux is a boolean, nothing else */
    REJECT(PROTO_TO_SERVER,
           "{\"type\":\"hello\",\"version\":1,\"id\":\"bob\",\"endpoints\":[],\"aux\":1}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"connect\"}", PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"ping\"}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, "{\"type\":\"pong\"}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"welcome\",\"version\":1,\"id\":\"bob\",\"observed\":\"1.2.3.4:5\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, "{\"type\":\"welcome\",\"version\":1,\"id\":\"bob\",\"keepalive\":60}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"punch\",\"peer\":\"alice\",\"role\":\"initiator\","
           "\"observed\":\"1.2.3.4:5\",\"endpoints\":[]}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"punch\",\"session\":\"0123456789abcdef0123456789abcdef\","
           "\"peer\":\"alice\",\"observed\":\"1.2.3.4:5\",\"endpoints\":[]}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"punch\",\"session\":\"0123456789abcdef0123456789abcdef\","
           "\"peer\":\"alice\",\"role\":\"initiator\",\"endpoints\":[]}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"punch\",\"session\":\"0123456789abcdef0123456789abcdef\","
           "\"peer\":\"alice\",\"role\":\"initiator\",\"observed\":\"1.2.3.4:5\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, "{\"type\":\"error\",\"message\":\"y\"}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, "{\"type\":\"error\",\"code\":\"x\"}", PROTO_E_FIELD);
    REJECT(PROTO_PEER_TO_PEER,
           "{\"type\":\"shake\",\"version\":1,\"session\":\"0123456789abcdef0123456789abcdef\","
           "\"from\":\"a\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_PEER_TO_PEER,
           "{\"type\":\"shake\",\"session\":\"0123456789abcdef0123456789abcdef\","
           "\"from\":\"a\",\"to\":\"b\"}",
           PROTO_E_FIELD);
}

static void t_reject_ill_typed(void)
{
    REJECT(PROTO_TO_SERVER,
           "{\"type\":\"hello\",\"version\":\"1\",\"id\":\"bob\",\"endpoints\":[]}", PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"hello\",\"version\":1.0,\"id\":\"bob\",\"endpoints\":[]}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"hello\",\"version\":1,\"id\":\"bob\",\"endpoints\":\"\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"hello\",\"version\":1,\"id\":\"bob\",\"endpoints\":{}}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"hello\",\"version\":1,\"id\":\"bob\",\"endpoints\":[5]}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER,
           "{\"type\":\"hello\",\"version\":1,\"id\":\"bob\",\"endpoints\":[[\"1.2.3.4:5\"]]}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"ping\",\"seq\":\"1\"}", PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"ping\",\"seq\":1.5}", PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"ping\",\"seq\":-1}", PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"ping\",\"seq\":null}", PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"pong\",\"seq\":true}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, "{\"type\":\"error\",\"code\":\"x\",\"message\":\"y\",\"fatal\":\"yes\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, "{\"type\":\"error\",\"code\":\"x\",\"message\":\"y\",\"fatal\":1}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, "{\"type\":\"error\",\"code\":5,\"message\":\"y\"}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, "{\"type\":\"error\",\"code\":\"x\",\"message\":[]}", PROTO_E_FIELD);
    {
        /* longer than the fields hold */
        char line[1024];
        char code[PROTO_MAX_CODE + 2];
        memset(code, 'c', sizeof code - 1);
        code[sizeof code - 1] = '\0';
        snprintf(line, sizeof line, "{\"type\":\"error\",\"code\":\"%s\",\"message\":\"y\"}", code);
        REJECT(PROTO_TO_PEER, line, PROTO_E_FIELD);
        char text[PROTO_MAX_TEXT + 2];
        memset(text, 't', sizeof text - 1);
        text[sizeof text - 1] = '\0';
        snprintf(line, sizeof line, "{\"type\":\"error\",\"code\":\"x\",\"message\":\"%s\"}", text);
        REJECT(PROTO_TO_PEER, line, PROTO_E_FIELD);
    }
#define WELCOME_KA "{\"type\":\"welcome\",\"version\":1,\"id\":\"bob\",\"observed\":\"1.2.3.4:5\"," \
                   "\"keepalive\":%s}"
    const char *bad_ka[] = {"0", "-5", "86401", "\"60\"", "60.5", "null"};
    for (size_t i = 0; i < sizeof bad_ka / sizeof bad_ka[0]; i++) {
        char line[256];
        snprintf(line, sizeof line, WELCOME_KA, bad_ka[i]);
        REJECT(PROTO_TO_PEER, line, PROTO_E_FIELD);
    }
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"welcome\",\"version\":1,\"id\":\"bob\",\"observed\":5,\"keepalive\":60}",
           PROTO_E_FIELD);
}

static void t_unknown_fields(void)
{
    /* strict towards the server and between peers */
    REJECT(PROTO_TO_SERVER,
           "{\"type\":\"hello\",\"version\":1,\"id\":\"bob\",\"endpoints\":[],\"extra\":1}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"connect\",\"target\":\"alice\",\"via\":\"x\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"ping\",\"seq\":1,\"Seq\":1}", PROTO_E_FIELD);
    /* a field of another message type is unknown here too */
    REJECT(PROTO_TO_SERVER, "{\"type\":\"connect\",\"target\":\"alice\",\"id\":\"bob\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_PEER_TO_PEER,
           "{\"type\":\"shake\",\"version\":1,\"session\":\"0123456789abcdef0123456789abcdef\","
           "\"from\":\"a\",\"to\":\"b\",\"x\":null}",
           PROTO_E_FIELD);
    /* ignored in what a server sends (forward compatibility) */
    if (ACCEPT(PROTO_TO_PEER,
               "{\"type\":\"welcome\",\"version\":1,\"id\":\"bob\",\"observed\":\"1.2.3.4:5\","
               "\"keepalive\":60,\"motd\":\"hi\",\"features\":[1,{\"a\":2}]}")) {
        CHECK_INT(msg_.type, PROTO_WELCOME);
        CHECK_STR(msg_.u.welcome.id, "bob");
        CHECK_INT(msg_.u.welcome.keepalive, 60);
    }
    if (ACCEPT(PROTO_TO_PEER,
               "{\"type\":\"punch\",\"session\":\"0123456789abcdef0123456789abcdef\","
               "\"peer\":\"alice\",\"role\":\"responder\",\"observed\":\"1.2.3.4:5\","
               "\"endpoints\":[\"10.0.0.1:9\"],\"delay\":12}")) {
        CHECK_INT(msg_.u.punch.role, PROTO_RESPONDER);
        CHECK_INT(msg_.u.punch.endpoints.n, 1);
    }
    ACCEPT(PROTO_TO_PEER, "{\"type\":\"ping\",\"seq\":3,\"t\":1}");
    ACCEPT(PROTO_TO_PEER, "{\"type\":\"error\",\"code\":\"x\",\"message\":\"y\",\"hint\":\"z\"}");
}

static void t_reject_bad_id(void)
{
    char line[512], id[PROTO_MAX_ID + 2];
    const char *bad[] = {"",    "a b",  "a/b",     "caf\xc3\xa9", "bob\\n",
                         "a:b", "-\\t", "\\u00e9", "a\\\"b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(line, sizeof line,
                 "{\"type\":\"hello\",\"version\":1,\"id\":\"%s\",\"endpoints\":[]}", bad[i]);
        REJECT(PROTO_TO_SERVER, line, PROTO_E_ID);
        snprintf(line, sizeof line, "{\"type\":\"connect\",\"target\":\"%s\"}", bad[i]);
        REJECT(PROTO_TO_SERVER, line, PROTO_E_ID);
    }
    /* 64 characters are fine, 65 are not */
    memset(id, 'a', PROTO_MAX_ID);
    id[PROTO_MAX_ID] = '\0';
    snprintf(line, sizeof line, "{\"type\":\"connect\",\"target\":\"%s\"}", id);
    ACCEPT(PROTO_TO_SERVER, line);
    memset(id, 'a', PROTO_MAX_ID + 1);
    id[PROTO_MAX_ID + 1] = '\0';
    snprintf(line, sizeof line, "{\"type\":\"connect\",\"target\":\"%s\"}", id);
    REJECT(PROTO_TO_SERVER, line, PROTO_E_ID);
    snprintf(line, sizeof line, "{\"type\":\"hello\",\"version\":1,\"id\":\"%s\",\"endpoints\":[]}",
             id);
    REJECT(PROTO_TO_SERVER, line, PROTO_E_ID);
    /* ids in the other messages */
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"welcome\",\"version\":1,\"id\":\"b b\",\"observed\":\"1.2.3.4:5\","
           "\"keepalive\":60}",
           PROTO_E_ID);
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"punch\",\"session\":\"0123456789abcdef0123456789abcdef\","
           "\"peer\":\"\",\"role\":\"initiator\",\"observed\":\"1.2.3.4:5\",\"endpoints\":[]}",
           PROTO_E_ID);
    REJECT(PROTO_PEER_TO_PEER,
           "{\"type\":\"shake\",\"version\":1,\"session\":\"0123456789abcdef0123456789abcdef\","
           "\"from\":\"a!\",\"to\":\"b\"}",
           PROTO_E_ID);
    REJECT(PROTO_PEER_TO_PEER,
           "{\"type\":\"shake\",\"version\":1,\"session\":\"0123456789abcdef0123456789abcdef\","
           "\"from\":\"a\",\"to\":\"\"}",
           PROTO_E_ID);
    /* a non-string id is an ill-typed field */
    REJECT(PROTO_TO_SERVER, "{\"type\":\"hello\",\"version\":1,\"id\":5,\"endpoints\":[]}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"connect\",\"target\":null}", PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"connect\",\"target\":[\"alice\"]}", PROTO_E_FIELD);

    CHECK(proto_valid_id("a"));
    CHECK(proto_valid_id("A-Z_a.z-0_9"));
    CHECK(!proto_valid_id(""));
    CHECK(!proto_valid_id("a b"));
    CHECK(!proto_valid_id(id)); /* 65 */
    id[PROTO_MAX_ID] = '\0';
    CHECK(proto_valid_id(id)); /* 64 */
}

static void t_reject_bad_endpoint(void)
{
    const char *bad[] = {"example.com:80",
                         "localhost:7000",
                         "1.2.3.4",
                         "1.2.3.4:",
                         "1.2.3.4:0",
                         "1.2.3.4:65536",
                         "1.2.3.4:99999",
                         "1.2.3.4:-1",
                         "1.2.3.4:8a",
                         "1.2.3.4:+80",
                         "::1:80",
                         "2001:db8::1:80",
                         "[::1]",
                         "[::1]:",
                         "[::1]80",
                         "[::1]:0",
                         "[fe80::1%eth0]:80",
                         "[fe80::1%1]:80",
                         "[1.2.3.4]:80",
                         "1.2.3:80",
                         "256.1.1.1:80",
                         " 1.2.3.4:80",
                         "1.2.3.4:80 ",
                         ":80",
                         "",
                         "[]:80",
                         "[::1:80"};
    char line[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(line, sizeof line,
                 "{\"type\":\"hello\",\"version\":1,\"id\":\"bob\",\"endpoints\":[\"%s\"]}",
                 bad[i]);
        REJECT(PROTO_TO_SERVER, line, PROTO_E_ENDPOINT);
        snprintf(line, sizeof line,
                 "{\"type\":\"welcome\",\"version\":1,\"id\":\"bob\",\"observed\":\"%s\","
                 "\"keepalive\":60}",
                 bad[i]);
        REJECT(PROTO_TO_PEER, line, PROTO_E_ENDPOINT);
        snprintf(line, sizeof line,
                 "{\"type\":\"punch\",\"session\":\"0123456789abcdef0123456789abcdef\","
                 "\"peer\":\"alice\",\"role\":\"initiator\",\"observed\":\"1.2.3.4:5\","
                 "\"endpoints\":[\"10.0.0.1:1\",\"%s\"]}",
                 bad[i]);
        REJECT(PROTO_TO_PEER, line, PROTO_E_ENDPOINT);
    }
    /* the extremes that are fine */
    ACCEPT(PROTO_TO_SERVER, "{\"type\":\"hello\",\"version\":1,\"id\":\"bob\",\"endpoints\":"
                            "[\"0.0.0.1:1\",\"255.255.255.255:65535\",\"[::]:1\","
                            "\"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535\"]}");
}

static void t_reject_too_many(void)
{
    char line[1024];
    size_t off;
    for (int n = 8; n <= 9; n++) {
        off = (size_t)snprintf(line, sizeof line,
                               "{\"type\":\"hello\",\"version\":1,\"id\":\"bob\",\"endpoints\":[");
        for (int i = 0; i < n; i++)
            off += (size_t)snprintf(line + off, sizeof line - off, "%s\"10.0.0.%d:80\"",
                                    i ? "," : "", i + 1);
        snprintf(line + off, sizeof line - off, "]}");
        if (n == 8) {
            if (ACCEPT(PROTO_TO_SERVER, line))
                CHECK_INT(msg_.u.hello.endpoints.n, 8);
        } else {
            REJECT(PROTO_TO_SERVER, line, PROTO_E_TOO_MANY);
        }
    }
    off = (size_t)snprintf(line, sizeof line,
                           "{\"type\":\"punch\",\"session\":\"0123456789abcdef0123456789abcdef\","
                           "\"peer\":\"alice\",\"role\":\"initiator\",\"observed\":\"1.2.3.4:5\","
                           "\"endpoints\":[");
    for (int i = 0; i < 9; i++)
        off +=
            (size_t)snprintf(line + off, sizeof line - off, "%s\"[::%d]:80\"", i ? "," : "", i + 1);
    snprintf(line + off, sizeof line - off, "]}");
    REJECT(PROTO_TO_PEER, line, PROTO_E_TOO_MANY);
}

static void t_reject_version(void)
{
    const char *bad[] = {"0", "2", "999", "2147483647"};
    char line[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(line, sizeof line,
                 "{\"type\":\"hello\",\"version\":%s,\"id\":\"bob\",\"endpoints\":[]}", bad[i]);
        REJECT(PROTO_TO_SERVER, line, PROTO_E_VERSION);
        snprintf(line, sizeof line,
                 "{\"type\":\"welcome\",\"version\":%s,\"id\":\"bob\",\"observed\":\"1.2.3.4:5\","
                 "\"keepalive\":60}",
                 bad[i]);
        REJECT(PROTO_TO_PEER, line, PROTO_E_VERSION);
        snprintf(line, sizeof line,
                 "{\"type\":\"shake\",\"version\":%s,\"session\":"
                 "\"0123456789abcdef0123456789abcdef\",\"from\":\"a\",\"to\":\"b\"}",
                 bad[i]);
        REJECT(PROTO_PEER_TO_PEER, line, PROTO_E_VERSION);
    }
    /* not an integer at all: an ill-typed field */
    REJECT(PROTO_TO_SERVER, "{\"type\":\"hello\",\"version\":-1,\"id\":\"bob\",\"endpoints\":[]}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"hello\",\"version\":[1],\"id\":\"bob\",\"endpoints\":[]}",
           PROTO_E_FIELD);
}

static void t_line_length(void)
{
    static char line[PROTO_MAX_LINE + 64];
    const char *ping = "{\"type\":\"ping\",\"seq\":1}";
    size_t plen = strlen(ping);
    /* 4095 bytes of content (+ newline = 4096) is the longest valid line */
    memcpy(line, ping, plen);
    memset(line + plen, ' ', sizeof line - plen);
    CHECK_MSG(dec_n(PROTO_TO_SERVER, line, PROTO_MAX_LINE - 1) == PROTO_OK, "4095 bytes: %s", why_);
    CHECK_INT(dec_n(PROTO_TO_SERVER, line, PROTO_MAX_LINE), PROTO_E_LINE);
    CHECK(why_[0] != '\0');
    CHECK_INT(dec_n(PROTO_TO_SERVER, line, PROTO_MAX_LINE + 63), PROTO_E_LINE);
    CHECK_INT(dec_n(PROTO_TO_PEER, line, PROTO_MAX_LINE), PROTO_E_LINE);
    CHECK_INT(dec_n(PROTO_PEER_TO_PEER, line, PROTO_MAX_LINE), PROTO_E_LINE);
    /* a long string value inside a 5000-byte line: the length check comes first */
    {
        static char big[5001];
        size_t off = (size_t)snprintf(big, sizeof big, "{\"type\":\"connect\",\"target\":\"");
        memset(big + off, 'a', 5000 - off - 2);
        memcpy(big + 4998, "\"}", 2);
        CHECK_INT(dec_n(PROTO_TO_SERVER, big, 5000), PROTO_E_LINE);
    }
}

static void t_reject_duplicates(void)
{
    REJECT(PROTO_TO_SERVER, "{\"type\":\"ping\",\"seq\":1,\"seq\":2}", PROTO_E_JSON);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"ping\",\"type\":\"pong\",\"seq\":1}", PROTO_E_JSON);
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"error\",\"code\":\"x\",\"message\":\"y\",\"fatal\":true,\"fatal\":false}",
           PROTO_E_JSON);
    /* also in fields a peer would otherwise ignore */
    REJECT(PROTO_TO_PEER, "{\"type\":\"ping\",\"seq\":1,\"x\":1,\"x\":2}", PROTO_E_JSON);
}

static void t_reject_nul(void)
{
    /* escaped NUL inside strings */
    REJECT(PROTO_TO_SERVER, "{\"type\":\"connect\",\"target\":\"ali\\u0000ce\"}", PROTO_E_JSON);
    REJECT(
        PROTO_TO_SERVER,
        "{\"type\":\"hello\",\"version\":1,\"id\":\"bob\",\"endpoints\":[\"1.2.3.4:5\\u0000x\"]}",
        PROTO_E_JSON);
    REJECT(PROTO_TO_PEER, "{\"type\":\"error\",\"code\":\"x\",\"message\":\"a\\u0000b\"}",
           PROTO_E_JSON);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"ping\\u0000\",\"seq\":1}", PROTO_E_JSON);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"ping\",\"seq\":1,\"a\\u0000\":1}", PROTO_E_JSON);
    /* raw NUL bytes in the line */
    {
        const char raw[] = "{\"type\":\"connect\",\"target\":\"ali\0ce\"}";
        CHECK_INT(dec_n(PROTO_TO_SERVER, raw, sizeof raw - 1), PROTO_E_JSON);
        const char tail[] = "{\"type\":\"ping\",\"seq\":1}\0garbage";
        CHECK_INT(dec_n(PROTO_TO_SERVER, tail, sizeof tail - 1), PROTO_E_JSON);
        const char lead[] = "\0{\"type\":\"ping\",\"seq\":1}";
        CHECK_INT(dec_n(PROTO_TO_SERVER, lead, sizeof lead - 1), PROTO_E_JSON);
    }
}

static void t_reject_nested(void)
{
    static char line[PROTO_MAX_LINE];
    size_t n = PROTO_MAX_LINE - 1;
    /* 4095 '[' : never closed, deeper than any parser limit */
    memset(line, '[', n);
    CHECK_INT(dec_n(PROTO_TO_SERVER, line, n), PROTO_E_JSON);
    memset(line, '{', n);
    CHECK_INT(dec_n(PROTO_TO_SERVER, line, n), PROTO_E_JSON);
    /* balanced, 2047 deep: a valid array, but not an object */
    memset(line, '[', 2047);
    memset(line + 2047, ']', 2047);
    CHECK(dec_n(PROTO_TO_SERVER, line, 4094) != PROTO_OK);
    /* {"a":{"a":...}} nested deeply inside a field */
    {
        size_t off = (size_t)snprintf(line, sizeof line, "{\"type\":\"ping\",\"seq\":");
        int depth = 0;
        while (off + 6 + (size_t)depth + 2 < sizeof line - 1) {
            memcpy(line + off, "{\"a\":", 5);
            off += 5;
            depth++;
        }
        line[off++] = '1';
        for (int i = 0; i < depth; i++)
            line[off++] = '}';
        line[off++] = '}';
        CHECK(off < PROTO_MAX_LINE);
        enum proto_err e = dec_n(PROTO_TO_SERVER, line, off);
        CHECK_MSG(e == PROTO_E_FIELD || e == PROTO_E_JSON, "nested seq: %s", proto_err_code(e));
        e = dec_n(PROTO_TO_PEER, line, off);
        CHECK_MSG(e == PROTO_E_FIELD || e == PROTO_E_JSON, "nested seq: %s", proto_err_code(e));
    }
    /* moderately nested garbage as an unknown field: strict rejects it, peers ignore it */
    REJECT(PROTO_TO_SERVER, "{\"type\":\"ping\",\"seq\":1,\"x\":[[[[{\"y\":[{}]}]]]]}",
           PROTO_E_FIELD);
    ACCEPT(PROTO_TO_PEER, "{\"type\":\"ping\",\"seq\":1,\"x\":[[[[{\"y\":[{}]}]]]]}");
}

static void t_reject_session(void)
{
    const char *bad[] = {"",
                         "0123456789abcdef0123456789abcde",
                         "0123456789abcdef0123456789abcdef0",
                         "0123456789ABCDEF0123456789abcdef",
                         "0123456789abcdef0123456789abcdeg",
                         "0123456789abcdef 123456789abcdef",
                         "g123456789abcdef0123456789abcdef"};
    char line[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(line, sizeof line,
                 "{\"type\":\"punch\",\"session\":\"%s\",\"peer\":\"alice\",\"role\":\"initiator\","
                 "\"observed\":\"1.2.3.4:5\",\"endpoints\":[]}",
                 bad[i]);
        REJECT(PROTO_TO_PEER, line, PROTO_E_FIELD);
        snprintf(
            line, sizeof line,
            "{\"type\":\"shake\",\"version\":1,\"session\":\"%s\",\"from\":\"a\",\"to\":\"b\"}",
            bad[i]);
        REJECT(PROTO_PEER_TO_PEER, line, PROTO_E_FIELD);
        CHECK(!proto_valid_session(bad[i]));
    }
    REJECT(PROTO_PEER_TO_PEER,
           "{\"type\":\"shake\",\"version\":1,\"session\":5,\"from\":\"a\",\"to\":\"b\"}",
           PROTO_E_FIELD);
    CHECK(proto_valid_session(SESSION));
}

static void t_reject_role(void)
{
    const char *bad[] = {"\"boss\"", "\"\"", "\"Initiator\"",   "\"initiator \"",
                         "1",        "null", "[\"initiator\"]", "true"};
    char line[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(line, sizeof line,
                 "{\"type\":\"punch\",\"session\":\"0123456789abcdef0123456789abcdef\","
                 "\"peer\":\"alice\",\"role\":%s,\"observed\":\"1.2.3.4:5\",\"endpoints\":[]}",
                 bad[i]);
        REJECT(PROTO_TO_PEER, line, PROTO_E_FIELD);
    }
}

/* ---- fuzzing: deterministic xorshift so a failure can be reproduced ---- */

static uint64_t rng_ = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return rng_;
}

static const char *const seeds_[] = {
    "{\"type\":\"hello\",\"version\":1,\"id\":\"bob\",\"endpoints\":[\"10.0.1.2:40000\","
    "\"[2001:db8::1]:5\"]}",
    "{\"type\":\"welcome\",\"version\":1,\"id\":\"bob\",\"observed\":\"203.0.113.10:40000\","
    "\"keepalive\":60}",
    "{\"type\":\"connect\",\"target\":\"alice\"}",
    "{\"type\":\"punch\",\"session\":\"0123456789abcdef0123456789abcdef\",\"peer\":\"alice\","
    "\"role\":\"initiator\",\"observed\":\"198.51.100.7:51000\",\"endpoints\":"
    "[\"192.168.1.9:51000\"]}",
    "{\"type\":\"error\",\"code\":\"peer-not-found\",\"message\":\"human text\",\"fatal\":false}",
    "{\"type\":\"ping\",\"seq\":7}",
    "{\"type\":\"pong\",\"seq\":7}",
    "{\"type\":\"shake\",\"version\":1,\"session\":\"0123456789abcdef0123456789abcdef\","
    "\"from\":\"bob\",\"to\":\"alice\",\"key\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","
    "\"eph\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}",
};

static const char alphabet_[] = "{}[]\":,0123456789.-eE tfnrul\\u[]abcdef:\"type\"\n\t\x80\xff\0";

static int fuzz_one(const char *line, size_t len)
{
    static const enum proto_dir dirs[] = {PROTO_TO_SERVER, PROTO_TO_PEER, PROTO_PEER_TO_PEER};
    int ok = 0;
    for (size_t d = 0; d < 3; d++) {
        char why[256];
        struct proto_msg m;
        enum proto_err e = proto_decode(line, len, dirs[d], &m, why, sizeof why);
        if (!CHECK_MSG(e >= PROTO_OK && e <= PROTO_E_LINE, "decode returned %d", (int)e))
            return 0;
        if (e == PROTO_OK) {
            char buf[PROTO_MAX_LINE];
            /* anything accepted can be encoded again and decodes to the same line */
            int n = proto_encode(&m, buf, sizeof buf);
            if (!CHECK_MSG(n > 0, "accepted %.*s but cannot encode it", (int)len, line))
                return 0;
            struct proto_msg m2;
            CHECK_INT(proto_decode(buf, (size_t)n - 1, dirs[d], &m2, why, sizeof why), PROTO_OK);
            ok++;
        } else {
            CHECK(why[0] != '\0');
        }
    }
    return ok;
}

static void t_fuzz(void)
{
    static char line[PROTO_MAX_LINE + 128];
    int accepted = 0, total = 0;
    /* the seeds themselves decode */
    for (size_t s = 0; s < sizeof seeds_ / sizeof seeds_[0]; s++)
        CHECK(fuzz_one(seeds_[s], strlen(seeds_[s])) >= 1);
    /* mutated seeds */
    for (int iter = 0; iter < 30000; iter++) {
        const char *seed = seeds_[rnd() % (sizeof seeds_ / sizeof seeds_[0])];
        size_t len = strlen(seed);
        memcpy(line, seed, len);
        int edits = 1 + (int)(rnd() % 4);
        for (int k = 0; k < edits; k++) {
            size_t pos = len ? rnd() % len : 0;
            switch (rnd() % 5) {
            case 0: /* replace a byte */
                if (len)
                    line[pos] = (char)(rnd() & 0xff);
                break;
            case 1: /* replace with a JSON-ish character */
                if (len)
                    line[pos] = alphabet_[rnd() % (sizeof alphabet_ - 1)];
                break;
            case 2: /* delete a byte */
                if (len) {
                    memmove(line + pos, line + pos + 1, len - pos - 1);
                    len--;
                }
                break;
            case 3: /* insert a byte */
                if (len < sizeof line - 1) {
                    memmove(line + pos + 1, line + pos, len - pos);
                    line[pos] = alphabet_[rnd() % (sizeof alphabet_ - 1)];
                    len++;
                }
                break;
            default: /* truncate */
                len = pos;
                break;
            }
        }
        accepted += fuzz_one(line, len) > 0;
        total++;
    }
    /* random bytes and random JSON-ish tokens, up to past the line limit */
    for (int iter = 0; iter < 5000; iter++) {
        size_t len = rnd() % (iter % 50 == 0 ? sizeof line : 200);
        bool json_ish = rnd() & 1;
        for (size_t i = 0; i < len; i++)
            line[i] = json_ish ? alphabet_[rnd() % (sizeof alphabet_ - 1)] : (char)(rnd() & 0xff);
        fuzz_one(line, len);
        total++;
    }
    /* some mutations keep the line valid (e.g. a digit of seq changed) */
    CHECK_MSG(accepted > 0, "no mutated line was accepted");
    CHECK_INT(total, 35000);
}

/* ---- NAT probe: probe, observed, and welcome's probe fields ---- */

static void t_roundtrip_probe(void)
{
    struct proto_msg m, o;
    memset(&m, 0, sizeof m);
    m.type = PROTO_PROBE;
    m.u.probe.version = PROTO_VERSION;
    strcpy(m.u.probe.token, SESSION);
    if (roundtrip(&m, PROTO_TO_SERVER, &o)) {
        CHECK_INT(o.u.probe.version, PROTO_VERSION);
        CHECK_STR(o.u.probe.token, SESSION);
    }
    m.u.probe.token[0] = '\0'; /* the token is optional */
    if (roundtrip(&m, PROTO_TO_SERVER, &o))
        CHECK_STR(o.u.probe.token, "");
    if (ACCEPT(PROTO_TO_SERVER, "{\"type\":\"probe\",\"version\":1}"))
        CHECK_STR(msg_.u.probe.token, "");
}

static void t_roundtrip_observed(void)
{
    static const enum proto_nat maps[] = {PROTO_NAT_UNKNOWN, PROTO_NAT_INDEPENDENT,
                                          PROTO_NAT_DEPENDENT};
    struct proto_msg m, o;
    char line[PROTO_MAX_LINE];
    memset(&m, 0, sizeof m);
    m.type = PROTO_OBSERVED;
    set_ep(&m.u.observed.observed, "203.0.113.10:40000");
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++) {
        m.u.observed.mapping = maps[i];
        if (roundtrip(&m, PROTO_TO_PEER, &o)) {
            CHECK(same_ep(&o.u.observed.observed, &m.u.observed.observed));
            CHECK_INT(o.u.observed.mapping, maps[i]);
        }
    }
    /* unknown mapping is written by leaving the field out */
    m.u.observed.mapping = PROTO_NAT_UNKNOWN;
    CHECK(proto_encode(&m, line, sizeof line) > 0 && !strstr(line, "mapping"));
    set_ep(&m.u.observed.observed, "[2001:db8::7]:7000");
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK(same_ep(&o.u.observed.observed, &m.u.observed.observed));
}

static void t_roundtrip_welcome_probe(void)
{
    struct proto_msg m, o;
    char line[PROTO_MAX_LINE];
    memset(&m, 0, sizeof m);
    m.type = PROTO_WELCOME;
    m.u.welcome.version = PROTO_VERSION;
    strcpy(m.u.welcome.id, "alice");
    set_ep(&m.u.welcome.observed, "203.0.113.10:40000");
    m.u.welcome.keepalive = 60;
    m.u.welcome.probe_port = 7001;
    strcpy(m.u.welcome.probe_token, SESSION);
    if (roundtrip(&m, PROTO_TO_PEER, &o)) {
        CHECK_INT(o.u.welcome.probe_port, 7001);
        CHECK_STR(o.u.welcome.probe_token, SESSION);
    }
    m.u.welcome.probe_port = 65535;
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK_INT(o.u.welcome.probe_port, 65535);
    /* no probe listener: neither field is sent, and a decoded welcome says port 0 */
    m.u.welcome.probe_port = 0;
    m.u.welcome.probe_token[0] = '\0';
    CHECK(proto_encode(&m, line, sizeof line) > 0 && !strstr(line, "probe"));
    if (roundtrip(&m, PROTO_TO_PEER, &o)) {
        CHECK_INT(o.u.welcome.probe_port, 0);
        CHECK_STR(o.u.welcome.probe_token, "");
    }
    /* the IPv6 probe listener (probe6), only with probe_port */
    m.u.welcome.probe_port = 7001;
    strcpy(m.u.welcome.probe_token, SESSION);
    m.u.welcome.has_probe6 = true;
    set_ep(&m.u.welcome.probe6, "[2001:db8::1]:7001");
    if (roundtrip(&m, PROTO_TO_PEER, &o)) {
        CHECK(o.u.welcome.has_probe6);
        CHECK(same_ep(&o.u.welcome.probe6, &m.u.welcome.probe6));
    }
    m.u.welcome.has_probe6 = false;
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK(!o.u.welcome.has_probe6);
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"welcome\",\"version\":1,\"id\":\"a\",\"observed\":\"1.2.3.4:5\","
           "\"keepalive\":60,\"probe_port\":7001,\"probe_token\":\"0123456789abcdef0123456789abcdef\","
           "\"probe6\":\"::1:7001\"}",
           PROTO_E_ENDPOINT);
}

#define TOKEN_LIT "0123456789abcdef0123456789abcdef"
#define WELCOME_HEAD                                                                               \
    "{\"type\":\"welcome\",\"version\":1,\"id\":\"bob\",\"observed\":\"1.2.3.4:5\","               \
    "\"keepalive\":60"

static void t_reject_probe(void)
{
    /* direction: a probe is for servers, observed for peers */
    REJECT(PROTO_TO_PEER, "{\"type\":\"probe\",\"version\":1}", PROTO_E_UNEXPECTED);
    REJECT(PROTO_PEER_TO_PEER, "{\"type\":\"probe\",\"version\":1}", PROTO_E_UNEXPECTED);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"observed\",\"observed\":\"1.2.3.4:5\"}",
           PROTO_E_UNEXPECTED);
    /* probe fields */
    REJECT(PROTO_TO_SERVER, "{\"type\":\"probe\"}", PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"probe\",\"version\":2}", PROTO_E_VERSION);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"probe\",\"version\":\"1\"}", PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"probe\",\"version\":1,\"token\":\"abc\"}", PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER,
           "{\"type\":\"probe\",\"version\":1,\"token\":\"0123456789ABCDEF0123456789abcdef\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER,
           "{\"type\":\"probe\",\"version\":1,\"token\":\"0123456789abcdef0123456789abcdef0\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"probe\",\"version\":1,\"token\":7}", PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"probe\",\"version\":1,\"token\":null}", PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"probe\",\"version\":1,\"id\":\"bob\"}", PROTO_E_FIELD);
    /* observed fields */
    REJECT(PROTO_TO_PEER, "{\"type\":\"observed\"}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, "{\"type\":\"observed\",\"observed\":\"1.2.3.4\"}", PROTO_E_ENDPOINT);
    REJECT(PROTO_TO_PEER, "{\"type\":\"observed\",\"observed\":\"host:80\"}", PROTO_E_ENDPOINT);
    REJECT(PROTO_TO_PEER, "{\"type\":\"observed\",\"observed\":12}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"observed\",\"observed\":\"1.2.3.4:5\",\"mapping\":\"symmetric\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, "{\"type\":\"observed\",\"observed\":\"1.2.3.4:5\",\"mapping\":1}",
           PROTO_E_FIELD);
    /* from a server, unknown fields are tolerated */
    if (ACCEPT(PROTO_TO_PEER,
               "{\"type\":\"observed\",\"observed\":\"1.2.3.4:5\",\"mapping\":\"dependent\","
               "\"later\":true}"))
        CHECK_INT(msg_.u.observed.mapping, PROTO_NAT_DEPENDENT);
    /* welcome's probe fields: port in range, and never without its token */
    REJECT(PROTO_TO_PEER, WELCOME_HEAD ",\"probe_port\":0,\"probe_token\":\"" TOKEN_LIT "\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, WELCOME_HEAD ",\"probe_port\":65536,\"probe_token\":\"" TOKEN_LIT "\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           WELCOME_HEAD ",\"probe_port\":\"7001\",\"probe_token\":\"" TOKEN_LIT "\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, WELCOME_HEAD ",\"probe_port\":7001}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, WELCOME_HEAD ",\"probe_port\":7001,\"probe_token\":\"xyz\"}",
           PROTO_E_FIELD);
    if (ACCEPT(PROTO_TO_PEER,
               WELCOME_HEAD ",\"probe_port\":7001,\"probe_token\":\"" TOKEN_LIT "\"}"))
        CHECK_INT(msg_.u.welcome.probe_port, 7001);
}

/* ---- relay: relay, relayed, hello.path, welcome.relay and punch's relay fields ---- */

#define RLY_TOKEN "fedcba9876543210fedcba9876543210"
#define PUNCH_HEAD                                                                                 \
    "{\"type\":\"punch\",\"session\":\"" SESSION_LIT "\",\"peer\":\"alice\",\"role\":"             \
    "\"responder\",\"observed\":\"1.2.3.4:5\",\"endpoints\":[]"
#define SESSION_LIT "0123456789abcdef0123456789abcdef"

static void t_roundtrip_relay(void)
{
    struct proto_msg m, o;
    char line[PROTO_MAX_LINE];
    static const enum proto_path paths[] = {PROTO_PATH_ANY, PROTO_PATH_DIRECT, PROTO_PATH_RELAY};

    memset(&m, 0, sizeof m);
    m.type = PROTO_RELAY;
    m.u.relay.version = PROTO_VERSION;
    strcpy(m.u.relay.session, SESSION);
    strcpy(m.u.relay.token, RLY_TOKEN);
    if (roundtrip(&m, PROTO_TO_SERVER, &o)) {
        CHECK_STR(o.u.relay.session, SESSION);
        CHECK_STR(o.u.relay.token, RLY_TOKEN);
        CHECK_INT(o.u.relay.version, PROTO_VERSION);
    }
    memset(&m, 0, sizeof m);
    m.type = PROTO_RELAYED;
    strcpy(m.u.relayed.session, SESSION);
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK_STR(o.u.relayed.session, SESSION);

    /* hello.path: "any" is the default and is written by leaving the field out */
    memset(&m, 0, sizeof m);
    m.type = PROTO_HELLO;
    m.u.hello.version = PROTO_VERSION;
    strcpy(m.u.hello.id, "bob");
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        m.u.hello.path = paths[i];
        if (roundtrip(&m, PROTO_TO_SERVER, &o))
            CHECK_INT(o.u.hello.path, paths[i]);
    }
    m.u.hello.path = PROTO_PATH_ANY;
    CHECK(proto_encode(&m, line, sizeof line) > 0 && !strstr(line, "path"));
    m.u.hello.path = PROTO_PATH_RELAY;
    CHECK(proto_encode(&m, line, sizeof line) > 0 && strstr(line, "\"path\":\"relay\""));

    /* welcome.relay both ways */
    memset(&m, 0, sizeof m);
    m.type = PROTO_WELCOME;
    m.u.welcome.version = PROTO_VERSION;
    strcpy(m.u.welcome.id, "bob");
    set_ep(&m.u.welcome.observed, "203.0.113.10:40000");
    m.u.welcome.keepalive = 60;
    for (int b = 0; b < 2; b++) {
        m.u.welcome.relay = b;
        if (roundtrip(&m, PROTO_TO_PEER, &o))
            CHECK_INT(o.u.welcome.relay, b);
    }

    /* punch with every relay field, then without any */
    memset(&m, 0, sizeof m);
    m.type = PROTO_PUNCH;
    strcpy(m.u.punch.session, SESSION);
    strcpy(m.u.punch.peer, "alice");
    m.u.punch.role = PROTO_RESPONDER;
    set_ep(&m.u.punch.observed, "198.51.100.7:51000");
    m.u.punch.start_in_us = 4000;
    m.u.punch.relay = true;
    strcpy(m.u.punch.token, RLY_TOKEN);
    m.u.punch.no_direct = true;
    strcpy(m.u.punch.reason, "both NATs map endpoint-dependently (symmetric)");
    m.u.punch.nat = PROTO_NAT_DEPENDENT;
    if (roundtrip(&m, PROTO_TO_PEER, &o)) {
        CHECK_INT(o.u.punch.relay, 1);
        CHECK_STR(o.u.punch.token, RLY_TOKEN);
        CHECK_INT(o.u.punch.no_direct, 1);
        CHECK_STR(o.u.punch.reason, "both NATs map endpoint-dependently (symmetric)");
        CHECK_INT(o.u.punch.nat, PROTO_NAT_DEPENDENT);
    }
    CHECK(proto_encode(&m, line, sizeof line) > 0 && strstr(line, "\"direct\":false") &&
          strstr(line, "\"relay\":true"));
    m.u.punch.no_direct = false; /* relay offered, direct allowed */
    m.u.punch.reason[0] = '\0';
    if (roundtrip(&m, PROTO_TO_PEER, &o)) {
        CHECK_INT(o.u.punch.no_direct, 0);
        CHECK_INT(o.u.punch.relay, 1);
    }
    CHECK(proto_encode(&m, line, sizeof line) > 0 && !strstr(line, "direct") &&
          !strstr(line, "reason"));
    if (ACCEPT(PROTO_TO_PEER, PUNCH_HEAD "}")) { /* a phase-1 punch: defaults */
        CHECK_INT(msg_.u.punch.relay, 0);
        CHECK_STR(msg_.u.punch.token, "");
        CHECK_INT(msg_.u.punch.no_direct, 0);
        CHECK_STR(msg_.u.punch.reason, "");
        CHECK_INT(msg_.u.punch.nat, PROTO_NAT_UNKNOWN);
    }
    if (ACCEPT(PROTO_TO_PEER, PUNCH_HEAD ",\"relay\":false,\"direct\":true}")) {
        CHECK_INT(msg_.u.punch.relay, 0);
        CHECK_INT(msg_.u.punch.no_direct, 0);
    }

    /* relay_addr (cluster): an endpoint, absent unless set, both address families */
    CHECK(proto_encode(&m, line, sizeof line) > 0 && !strstr(line, "relay_addr"));
    m.u.punch.has_relay_addr = true;
    set_ep(&m.u.punch.relay_addr, "203.0.113.5:7000");
    if (roundtrip(&m, PROTO_TO_PEER, &o)) {
        CHECK_INT(o.u.punch.has_relay_addr, 1);
        CHECK(same_ep(&o.u.punch.relay_addr, &m.u.punch.relay_addr));
    }
    CHECK(proto_encode(&m, line, sizeof line) > 0 &&
          strstr(line, "\"relay_addr\":\"203.0.113.5:7000\""));
    set_ep(&m.u.punch.relay_addr, "[2001:db8::7]:7000");
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK(same_ep(&o.u.punch.relay_addr, &m.u.punch.relay_addr));
    if (ACCEPT(PROTO_TO_PEER, PUNCH_HEAD "}"))
        CHECK_INT(msg_.u.punch.has_relay_addr, 0);
    if (ACCEPT(PROTO_TO_PEER, PUNCH_HEAD ",\"relay_addr\":\"10.0.0.1:7000\"}"))
        CHECK_INT(msg_.u.punch.has_relay_addr, 1);
    REJECT(PROTO_TO_PEER, PUNCH_HEAD ",\"relay_addr\":\"vps.example:7000\"}", PROTO_E_ENDPOINT);
    REJECT(PROTO_TO_PEER, PUNCH_HEAD ",\"relay_addr\":\"10.0.0.1:0\"}", PROTO_E_ENDPOINT);
    REJECT(PROTO_TO_PEER, PUNCH_HEAD ",\"relay_addr\":7000}", PROTO_E_FIELD);
}

#define RELAY_LINE(session, token)                                                                 \
    "{\"type\":\"relay\",\"version\":1,\"session\":\"" session "\",\"token\":\"" token "\"}"

static void t_reject_relay(void)
{
    /* direction: relay goes to servers only, relayed to peers only */
    REJECT(PROTO_TO_PEER, RELAY_LINE(SESSION_LIT, RLY_TOKEN), PROTO_E_UNEXPECTED);
    REJECT(PROTO_PEER_TO_PEER, RELAY_LINE(SESSION_LIT, RLY_TOKEN), PROTO_E_UNEXPECTED);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"relayed\",\"session\":\"" SESSION_LIT "\"}",
           PROTO_E_UNEXPECTED);
    REJECT(PROTO_PEER_TO_PEER, "{\"type\":\"relayed\",\"session\":\"" SESSION_LIT "\"}",
           PROTO_E_UNEXPECTED);
    ACCEPT(PROTO_TO_SERVER, RELAY_LINE(SESSION_LIT, RLY_TOKEN));
    /* relay fields */
    REJECT(PROTO_TO_SERVER, "{\"type\":\"relay\",\"version\":1,\"token\":\"" RLY_TOKEN "\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"relay\",\"version\":1,\"session\":\"" SESSION_LIT "\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER,
           "{\"type\":\"relay\",\"session\":\"" SESSION_LIT "\",\"token\":\"" RLY_TOKEN "\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER,
           "{\"type\":\"relay\",\"version\":2,\"session\":\"" SESSION_LIT
           "\",\"token\":\"" RLY_TOKEN "\"}",
           PROTO_E_VERSION);
    REJECT(PROTO_TO_SERVER, RELAY_LINE(SESSION_LIT, "FEDCBA9876543210FEDCBA9876543210"),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, RELAY_LINE(SESSION_LIT, "fedcba9876543210"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, RELAY_LINE("0123", RLY_TOKEN), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER,
           "{\"type\":\"relay\",\"version\":1,\"session\":\"" SESSION_LIT "\",\"token\":7}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER,
           "{\"type\":\"relay\",\"version\":1,\"session\":\"" SESSION_LIT
           "\",\"token\":\"" RLY_TOKEN "\",\"id\":\"bob\"}",
           PROTO_E_FIELD);
    /* relayed fields */
    REJECT(PROTO_TO_PEER, "{\"type\":\"relayed\"}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, "{\"type\":\"relayed\",\"session\":\"xyz\"}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, "{\"type\":\"relayed\",\"session\":1}", PROTO_E_FIELD);
    /* hello.path */
    REJECT(PROTO_TO_SERVER,
           "{\"type\":\"hello\",\"version\":1,\"id\":\"bob\",\"endpoints\":[],\"path\":\"both\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER,
           "{\"type\":\"hello\",\"version\":1,\"id\":\"bob\",\"endpoints\":[],\"path\":1}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER,
           "{\"type\":\"hello\",\"version\":1,\"id\":\"bob\",\"endpoints\":[],\"path\":\"Relay\"}",
           PROTO_E_FIELD);
    /* welcome.relay */
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"welcome\",\"version\":1,\"id\":\"bob\",\"observed\":\"1.2.3.4:5\","
           "\"keepalive\":60,\"relay\":\"true\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"welcome\",\"version\":1,\"id\":\"bob\",\"observed\":\"1.2.3.4:5\","
           "\"keepalive\":60,\"relay\":1}",
           PROTO_E_FIELD);
    /* punch: relay needs its token, booleans are booleans, the reason is bounded */
    REJECT(PROTO_TO_PEER, PUNCH_HEAD ",\"relay\":true}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, PUNCH_HEAD ",\"relay\":true,\"token\":\"abc\"}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, PUNCH_HEAD ",\"relay\":\"yes\",\"token\":\"" RLY_TOKEN "\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, PUNCH_HEAD ",\"direct\":0}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, PUNCH_HEAD ",\"direct\":false,\"reason\":5}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, PUNCH_HEAD ",\"nat\":\"symmetric\"}", PROTO_E_FIELD);
    {
        char line[PROTO_MAX_LINE];
        char reason[PROTO_MAX_TEXT + 2];
        memset(reason, 'r', sizeof reason - 1);
        reason[sizeof reason - 1] = '\0';
        snprintf(line, sizeof line, PUNCH_HEAD ",\"direct\":false,\"reason\":\"%s\"}", reason);
        REJECT(PROTO_TO_PEER, line, PROTO_E_FIELD);
        reason[PROTO_MAX_TEXT] = '\0'; /* 256 bytes: the longest allowed */
        snprintf(line, sizeof line, PUNCH_HEAD ",\"direct\":false,\"reason\":\"%s\"}", reason);
        if (ACCEPT(PROTO_TO_PEER, line))
            CHECK_INT((long long)strlen(msg_.u.punch.reason), PROTO_MAX_TEXT);
    }
    if (ACCEPT(PROTO_TO_PEER,
               PUNCH_HEAD ",\"relay\":true,\"token\":\"" RLY_TOKEN
                          "\",\"direct\":false,\"reason\":\"x\",\"nat\":\"independent\"}")) {
        CHECK_INT(msg_.u.punch.relay, 1);
        CHECK_INT(msg_.u.punch.no_direct, 1);
        CHECK_INT(msg_.u.punch.nat, PROTO_NAT_INDEPENDENT);
    }
}

/* ---- Phase 3: challenge, hello key/sig/admit, punch key, admit on relay and probe ---- */

#define B64_32A "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" /* bytes 0..31 */
#define B64_64A                                                                                    \
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="

static void fill(unsigned char *p, size_t n, unsigned char first)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(first + i);
}

static void t_roundtrip_challenge(void)
{
    struct proto_msg m, o;
    memset(&m, 0, sizeof m);
    m.type = PROTO_CHALLENGE;
    m.u.challenge.version = PROTO_VERSION;
    fill(m.u.challenge.nonce, PROTO_NONCE_BYTES, 0);
    if (roundtrip(&m, PROTO_TO_PEER, &o)) {
        CHECK_INT(o.u.challenge.version, PROTO_VERSION);
        CHECK(memcmp(o.u.challenge.nonce, m.u.challenge.nonce, PROTO_NONCE_BYTES) == 0);
    }
    ACCEPT(PROTO_TO_PEER, "{\"type\":\"challenge\",\"version\":1,\"nonce\":\"" B64_32A "\"}");
    CHECK(msg_.u.challenge.nonce[31] == 31);
    /* unknown members from a server are ignored, as for every server message */
    ACCEPT(PROTO_TO_PEER,
           "{\"type\":\"challenge\",\"version\":1,\"nonce\":\"" B64_32A "\",\"later\":true}");
}

static void t_reject_challenge(void)
{
    const char *ok = "{\"type\":\"challenge\",\"version\":1,\"nonce\":\"" B64_32A "\"}";
    REJECT(PROTO_TO_SERVER, ok, PROTO_E_UNEXPECTED);
    REJECT(PROTO_PEER_TO_PEER, ok, PROTO_E_UNEXPECTED);
    REJECT(PROTO_TO_PEER, "{\"type\":\"challenge\",\"version\":1}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, "{\"type\":\"challenge\",\"nonce\":\"" B64_32A "\"}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, "{\"type\":\"challenge\",\"version\":2,\"nonce\":\"" B64_32A "\"}",
           PROTO_E_VERSION);
    /* 31 bytes, 33 bytes, no padding, URL alphabet, not a string, embedded blank */
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"challenge\",\"version\":1,\"nonce\":"
           "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"challenge\",\"version\":1,\"nonce\":"
           "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"challenge\",\"version\":1,\"nonce\":"
           "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"challenge\",\"version\":1,\"nonce\":"
           "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh_=\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, "{\"type\":\"challenge\",\"version\":1,\"nonce\":32}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"challenge\",\"version\":1,\"nonce\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBk "
           "aGxwdHh8=\"}",
           PROTO_E_FIELD);
    /* non-canonical: the last character carries bits that padding says are unused */
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"challenge\",\"version\":1,\"nonce\":"
           "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=\"}",
           PROTO_E_FIELD);
}

static void t_roundtrip_hello_auth(void)
{
    struct proto_msg m, o;
    memset(&m, 0, sizeof m);
    m.type = PROTO_HELLO;
    m.u.hello.version = PROTO_VERSION;
    strcpy(m.u.hello.id, "bob");
    m.u.hello.has_key = m.u.hello.has_sig = true;
    fill(m.u.hello.key, PROTO_KEY_BYTES, 1);
    fill(m.u.hello.sig, PROTO_SIG_BYTES, 2);
    if (roundtrip(&m, PROTO_TO_SERVER, &o)) {
        CHECK(o.u.hello.has_key && o.u.hello.has_sig && !o.u.hello.has_admit);
        CHECK(memcmp(o.u.hello.key, m.u.hello.key, PROTO_KEY_BYTES) == 0);
        CHECK(memcmp(o.u.hello.sig, m.u.hello.sig, PROTO_SIG_BYTES) == 0);
    }
    m.u.hello.has_admit = true;
    fill(m.u.hello.admit, PROTO_ADMIT_BYTES, 3);
    m.u.hello.endpoints.n = PROTO_MAX_ENDPOINTS;
    for (int i = 0; i < PROTO_MAX_ENDPOINTS; i++)
        set_ep(&m.u.hello.endpoints.ep[i], "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535");
    memset(m.u.hello.id, 'z', PROTO_MAX_ID);
    m.u.hello.id[PROTO_MAX_ID] = '\0';
    if (roundtrip(&m, PROTO_TO_SERVER, &o)) { /* the largest hello still fits a line */
        CHECK(o.u.hello.has_admit);
        CHECK(memcmp(o.u.hello.admit, m.u.hello.admit, PROTO_ADMIT_BYTES) == 0);
    }
    ACCEPT(PROTO_TO_SERVER,
           "{\"type\":\"hello\",\"version\":1,\"id\":\"b\",\"endpoints\":[],"
           "\"key\":\"" B64_32A "\",\"sig\":\"" B64_64A "\",\"admit\":\"" B64_32A "\"}");
    CHECK(msg_.u.hello.sig[63] == 63 && msg_.u.hello.admit[0] == 0);
}

static void t_reject_hello_auth(void)
{
    REJECT(PROTO_TO_SERVER,
           "{\"type\":\"hello\",\"version\":1,\"id\":\"b\",\"endpoints\":[],\"key\":\"" B64_64A
           "\",\"sig\":\"" B64_64A "\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER,
           "{\"type\":\"hello\",\"version\":1,\"id\":\"b\",\"endpoints\":[],\"key\":\"" B64_32A
           "\",\"sig\":\"" B64_32A "\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER,
           "{\"type\":\"hello\",\"version\":1,\"id\":\"b\",\"endpoints\":[],\"key\":\"" B64_32A
           "\",\"sig\":\"" B64_64A "\",\"admit\":true}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER,
           "{\"type\":\"hello\",\"version\":1,\"id\":\"b\",\"endpoints\":[],\"key\":\"\"}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER,
           "{\"type\":\"hello\",\"version\":1,\"id\":\"b\",\"endpoints\":[],\"key\":\"" B64_32A
           "\",\"sig\":\"" B64_64A "\",\"nonce\":\"" B64_32A "\"}",
           PROTO_E_FIELD);
}

static void t_roundtrip_punch_key(void)
{
    struct proto_msg m, o;
    memset(&m, 0, sizeof m);
    m.type = PROTO_PUNCH;
    strcpy(m.u.punch.session, SESSION);
    strcpy(m.u.punch.peer, "alice");
    set_ep(&m.u.punch.observed, "198.51.100.7:51000");
    m.u.punch.start_in_us = -1;
    m.u.punch.has_key = true;
    fill(m.u.punch.key, PROTO_KEY_BYTES, 9);
    if (roundtrip(&m, PROTO_TO_PEER, &o)) {
        CHECK(o.u.punch.has_key);
        CHECK(memcmp(o.u.punch.key, m.u.punch.key, PROTO_KEY_BYTES) == 0);
    }
    m.u.punch.has_key = false;
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK(!o.u.punch.has_key && !o.u.punch.has_observed6);
    /* the other peer's IPv6 endpoint as the server saw it */
    m.u.punch.has_observed6 = true;
    set_ep(&m.u.punch.observed6, "[2001:db8:2::2]:40000");
    if (roundtrip(&m, PROTO_TO_PEER, &o)) {
        CHECK(o.u.punch.has_observed6);
        CHECK(same_ep(&o.u.punch.observed6, &m.u.punch.observed6));
    }
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"punch\",\"session\":\"0123456789abcdef0123456789abcdef\",\"peer\":\"a\","
           "\"role\":\"initiator\",\"observed\":\"1.2.3.4:5\",\"endpoints\":[],\"observed6\":7}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"punch\",\"session\":\"0123456789abcdef0123456789abcdef\",\"peer\":\"a\","
           "\"role\":\"initiator\",\"observed\":\"1.2.3.4:5\",\"endpoints\":[],\"key\":\"x\"}",
           PROTO_E_FIELD);
}

/* The admit input of PROTOCOL.md "Admission", checked against vectors computed independently
 * (tests/integration/tpauth.py): secret file "test-secret\n", nonce bytes 0..31. */
static void hex32(const char *hex, unsigned char *out)
{
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
}

static bool admit_is(const struct proto_msg *m, const unsigned char *key, const char *hex)
{
    unsigned char got[PROTO_ADMIT_BYTES], want[PROTO_ADMIT_BYTES], nonce[PROTO_NONCE_BYTES];
    fill(nonce, sizeof nonce, 0);
    hex32(hex, want);
    return auth_admit(key, nonce, m, got) && memcmp(got, want, sizeof got) == 0;
}

static void t_admit_binding(void)
{
    unsigned char key[AUTH_KEY_BYTES], nonce[PROTO_NONCE_BYTES], mac[PROTO_ADMIT_BYTES];
    const char *hello_hex = "2fe837a76bab018f1e42b1241d68ce6470ae17d09f0a605b16b3e382c10d053a";
    char why[200];
    struct proto_msg m, o;

    crypto_hash_sha256(key, (const unsigned char *)"test-secret\n", 12);
    fill(nonce, sizeof nonce, 0);
    memset(&m, 0, sizeof m);
    m.type = PROTO_HELLO;
    strcpy(m.u.hello.id, "bob");
    m.u.hello.has_key = true;
    fill(m.u.hello.key, PROTO_KEY_BYTES, 0);
    CHECK(ep_parse("10.0.1.2:40000", &m.u.hello.endpoints.ep[0], why, sizeof why) == 0);
    CHECK(ep_parse("[2001:db8::7]:7000", &m.u.hello.endpoints.ep[1], why, sizeof why) == 0);
    m.u.hello.endpoints.n = 2;
    CHECK(admit_is(&m, key, hello_hex));
    /* every covered field changes it */
    o = m;
    strcpy(o.u.hello.id, "bob2");
    CHECK(!admit_is(&o, key, hello_hex));
    o = m;
    o.u.hello.key[5] ^= 1;
    CHECK(!admit_is(&o, key, hello_hex));
    o = m;
    o.u.hello.aux = true;
    CHECK(!admit_is(&o, key, hello_hex));
    o = m;
    o.u.hello.path = PROTO_PATH_RELAY;
    CHECK(!admit_is(&o, key, hello_hex));
    o = m;
    o.u.hello.endpoints.n = 1;
    CHECK(!admit_is(&o, key, hello_hex));
    o = m;
    ep_set_port((struct sockaddr *)&o.u.hello.endpoints.ep[1], 7001);
    CHECK(!admit_is(&o, key, hello_hex));
    /* the signature is not covered; another spelling of an address is the same address */
    o = m;
    o.u.hello.has_sig = true;
    fill(o.u.hello.sig, PROTO_SIG_BYTES, 9);
    CHECK(ep_parse("[2001:0db8:0:0::7]:7000", &o.u.hello.endpoints.ep[1], why, sizeof why) == 0);
    CHECK(admit_is(&o, key, hello_hex));
    /* the check reads the admit the message carries */
    o.u.hello.has_admit = auth_admit(key, nonce, &o, o.u.hello.admit);
    CHECK(auth_admit_ok(key, nonce, &o));
    nonce[0] ^= 1;
    CHECK(!auth_admit_ok(key, nonce, &o));
    nonce[0] ^= 1;
    o.u.hello.has_admit = false;
    CHECK(!auth_admit_ok(key, nonce, &o));

    memset(&m, 0, sizeof m);
    m.type = PROTO_RELAY;
    strcpy(m.u.relay.session, "0123456789abcdef0123456789abcdef");
    strcpy(m.u.relay.token, "fedcba9876543210fedcba9876543210");
    CHECK(admit_is(&m, key, "1367ac4f96a0f0a4c2cfd6d6b88c4c3f07a87e3e77daeb29f7e9c042fb1f4242"));
    memset(&m, 0, sizeof m);
    m.type = PROTO_PROBE;
    CHECK(admit_is(&m, key, "de21d1264119d976e7b04957d6efa0716bfdd6277b0a8a2ed7e02fec7226522a"));
    /* a type without admit has none */
    memset(&m, 0, sizeof m);
    m.type = PROTO_CONNECT;
    CHECK(!auth_admit(key, nonce, &m, mac));
    CHECK(!auth_admit_ok(key, nonce, &m));
}

static void t_admit_relay_probe(void)
{
    struct proto_msg m, o;
    memset(&m, 0, sizeof m);
    m.type = PROTO_RELAY;
    m.u.relay.version = PROTO_VERSION;
    strcpy(m.u.relay.session, SESSION);
    strcpy(m.u.relay.token, SESSION);
    m.u.relay.has_admit = true;
    fill(m.u.relay.admit, PROTO_ADMIT_BYTES, 4);
    if (roundtrip(&m, PROTO_TO_SERVER, &o))
        CHECK(o.u.relay.has_admit && memcmp(o.u.relay.admit, m.u.relay.admit, 32) == 0);
    memset(&m, 0, sizeof m);
    m.type = PROTO_PROBE;
    m.u.probe.version = PROTO_VERSION;
    m.u.probe.has_admit = true;
    fill(m.u.probe.admit, PROTO_ADMIT_BYTES, 5);
    if (roundtrip(&m, PROTO_TO_SERVER, &o))
        CHECK(o.u.probe.has_admit && memcmp(o.u.probe.admit, m.u.probe.admit, 32) == 0);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"probe\",\"version\":1,\"admit\":\"AA==\"}", PROTO_E_FIELD);

}
/* ---- error codes (proto/code.c) ---- */

static void t_code_roundtrip(void)
{
    for (int c = PC_UNKNOWN + 1; c < PC_COUNT; c++) {
        const char *name = proto_code_name((enum proto_code)c);
        CHECK_MSG(strcmp(name, "?") != 0, "code %d has no name", c);
        CHECK_MSG(proto_code_parse(name) == (enum proto_code)c, "%s does not parse back", name);
        CHECK_MSG(strlen(name) <= PROTO_MAX_CODE, "%s is longer than a code may be", name);
        for (int d = PC_UNKNOWN + 1; d < c; d++)
            CHECK_MSG(strcmp(name, proto_code_name((enum proto_code)d)) != 0, "%s twice", name);
    }
    CHECK_STR(proto_code_name(PC_SERVER_FULL), "server-full");
    CHECK_STR(proto_code_name(PC_RELAY_FULL), "relay-full");
    CHECK_INT(proto_code_parse("too-many-connections"), PC_TOO_MANY_CONNECTIONS);
    /* each decoding failure answers with its own code */
    for (int e = PROTO_E_JSON; e <= PROTO_E_LINE; e++)
        CHECK_STR(proto_code_name(proto_err_pc((enum proto_err)e)), proto_err_code((enum proto_err)e));
    CHECK_INT(proto_err_pc(PROTO_E_LINE), PC_LINE_TOO_LONG);
    CHECK_INT(proto_err_pc(PROTO_OK), PC_INTERNAL);
    CHECK_INT(proto_code_fatal(PC_PEER_NOT_FOUND), PC_NONFATAL);
    CHECK_INT(proto_code_fatal(PC_RATE_LIMITED), PC_EITHER);
    CHECK_INT(proto_code_fatal(PC_ID_OWNED), PC_FATAL);
    CHECK(proto_code_passing(PC_SERVER_SHUTDOWN));
    CHECK(!proto_code_passing(PC_ID_TAKEN)); /* only after a registration: the peer's call */
    CHECK(!proto_code_passing(PC_NOT_AUTHORIZED));
}

static void t_code_unknown(void)
{
    CHECK_INT(proto_code_parse("no-such-code"), PC_UNKNOWN);
    CHECK_INT(proto_code_parse(""), PC_UNKNOWN);
    CHECK_INT(proto_code_parse(NULL), PC_UNKNOWN);
    CHECK_INT(proto_code_parse("Server-Full"), PC_UNKNOWN); /* codes are case-sensitive */
    CHECK_INT(proto_code_parse("server-full "), PC_UNKNOWN);
    CHECK_INT(proto_code_parse("?"), PC_UNKNOWN);
    CHECK_STR(proto_code_name(PC_UNKNOWN), "?");
    CHECK_STR(proto_code_name(PC_COUNT), "?");
    CHECK_STR(proto_code_name((enum proto_code)-1), "?");
    CHECK_INT(proto_code_fatal(PC_UNKNOWN), PC_FATAL); /* as a missing "fatal" */
    CHECK(!proto_code_passing(PC_UNKNOWN));
    CHECK(!proto_code_passing(PC_COUNT));
}

/* PROTOCOL.md as the reference: its table in section 9 and the table in proto/code.c list the
 * same codes with the same "Fatal" column, and its list of passing reasons (section 13) is the
 * table's. */
static char *md_read(void)
{
    FILE *f = fopen(TP_PROTOCOL_MD, "r");
    char *buf = NULL;
    long n;
    if (!CHECK_MSG(f != NULL, "cannot open %s", TP_PROTOCOL_MD))
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = calloc(1, (size_t)n + 1)) && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    CHECK(buf != NULL);
    return buf;
}

static void t_code_protocol_md(void)
{
    char *md = md_read(), *sec, *end, *line, *save = NULL;
    bool seen[PC_COUNT] = {false};
    int rows = 0;
    if (!md)
        return;
    sec = strstr(md, "\n## 9. Errors");
    end = sec ? strstr(sec + 1, "\n## ") : NULL;
    if (!CHECK(sec && end)) {
        free(md);
        return;
    }
    *end = '\0';
    for (line = strtok_r(sec, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char code[PROTO_MAX_CODE + 2], fatal[16];
        enum proto_code c;
        enum proto_code_fatal want;
        if (sscanf(line, "| `%33[a-z-]` | %15[^|]", code, fatal) != 2)
            continue;
        rows++;
        c = proto_code_parse(code);
        if (!CHECK_MSG(c != PC_UNKNOWN, "PROTOCOL.md's code %s is not in the table", code))
            continue;
        CHECK_MSG(!seen[c], "PROTOCOL.md lists %s twice", code);
        seen[c] = true;
        want = strncmp(fatal, "yes", 3) == 0      ? PC_FATAL
               : strncmp(fatal, "**no**", 6) == 0 ? PC_NONFATAL
                                                  : PC_EITHER;
        CHECK_MSG(strncmp(fatal, "see text", 8) == 0 || want != PC_EITHER,
                  "%s: unknown Fatal column \"%s\"", code, fatal);
        CHECK_MSG(proto_code_fatal(c) == want, "%s: fatal %d in the table, %d in PROTOCOL.md",
                  code, (int)proto_code_fatal(c), (int)want);
    }
    CHECK_INT(rows, PC_COUNT - 1);
    for (int c = PC_UNKNOWN + 1; c < PC_COUNT; c++)
        CHECK_MSG(seen[c], "%s is missing from PROTOCOL.md's table",
                  proto_code_name((enum proto_code)c));
    free(md);
}

static void t_code_passing_md(void)
{
    char *md = md_read(), *p, *end;
    int n = 0;
    if (!md)
        return;
    p = strstr(md, "with a passing reason (");
    end = p ? strstr(p, "or `id-taken`") : NULL;
    if (!CHECK(p && end)) {
        free(md);
        return;
    }
    *end = '\0';
    while ((p = strchr(p, '`'))) {
        char code[PROTO_MAX_CODE + 2];
        if (sscanf(p, "`%33[a-z-]`", code) == 1) {
            CHECK_MSG(proto_code_passing(proto_code_parse(code)), "%s is passing in PROTOCOL.md",
                      code);
            n++;
        }
        p = strchr(p + 1, '`');
        if (!p)
            break;
        p++;
    }
    for (int c = PC_UNKNOWN + 1; c < PC_COUNT; c++)
        n -= proto_code_passing((enum proto_code)c);
    CHECK_MSG(n == 0, "the table and PROTOCOL.md differ by %d passing codes", n);
    free(md);
}
/* ---- birthday punching: challenge.features, hello.birthday, punch.birthday ---- */

#define HELLO_B(extra)                                                                             \
    "{\"type\":\"hello\",\"version\":1,\"id\":\"b\",\"endpoints\":[]" extra "}"
#define BD_OK                                                                                      \
    "\"role\":\"hard\",\"target\":\"198.51.100.7:51000\",\"k\":256,\"m\":1024,\"ttl\":0,"         \
    "\"pace_ms\":800,\"ports\":[1024,65535],\"easy_delay_us\":50000"
#define PUNCH_B(bd)                                                                                \
    "{\"type\":\"punch\",\"session\":\"0123456789abcdef0123456789abcdef\",\"peer\":\"alice\","    \
    "\"role\":\"initiator\",\"observed\":\"198.51.100.7:51000\",\"endpoints\":[]"                 \
    ",\"birthday\":{" bd "}}"
#define CHAL_F(f) "{\"type\":\"challenge\",\"version\":1,\"nonce\":\"" B64_32A "\"" f "}"

/* proto_encode into line, NUL-terminated for strstr; > 0 on success. */
static int enc_z(const struct proto_msg *m, char *line, size_t cap)
{
    int n = proto_encode(m, line, cap - 1);
    line[n > 0 ? n : 0] = '\0';
    return n;
}

static void t_bday_features(void)
{
    struct proto_msg m, o;
    char line[PROTO_MAX_LINE];
    int n;
    memset(&m, 0, sizeof m);
    m.type = PROTO_CHALLENGE;
    fill(m.u.challenge.nonce, PROTO_NONCE_BYTES, 0);
    /* no feature: today's line, without the member */
    n = enc_z(&m, line, sizeof line);
    CHECK(n > 0 && !strstr(line, "features"));
    m.u.challenge.feat_birthday = true;
    n = enc_z(&m, line, sizeof line);
    CHECK(n > 0 && strstr(line, "\"features\":[\"birthday\"]"));
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK(o.u.challenge.feat_birthday);
    ACCEPT(PROTO_TO_PEER, CHAL_F(""));
    CHECK(!msg_.u.challenge.feat_birthday);
    ACCEPT(PROTO_TO_PEER, CHAL_F(",\"features\":[]"));
    CHECK(!msg_.u.challenge.feat_birthday);
    /* unknown names are skipped, wherever "birthday" stands */
    ACCEPT(PROTO_TO_PEER, CHAL_F(",\"features\":[\"later\",\"birthday\",\"x\"]"));
    CHECK(msg_.u.challenge.feat_birthday);
    ACCEPT(PROTO_TO_PEER, CHAL_F(",\"features\":[\"later\"]"));
    CHECK(!msg_.u.challenge.feat_birthday);
    /* 16 entries, 32 bytes each: the most */
    ACCEPT(PROTO_TO_PEER, CHAL_F(",\"features\":[\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
                                 "\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"birthday\"]"));
    CHECK(msg_.u.challenge.feat_birthday);
    ACCEPT(PROTO_TO_PEER, CHAL_F(",\"features\":[\"0123456789abcdef0123456789abcdef\"]"));
    REJECT(PROTO_TO_PEER,
           CHAL_F(",\"features\":[\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
                  "\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"birthday\"]"),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, CHAL_F(",\"features\":[\"0123456789abcdef0123456789abcdefX\"]"),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, CHAL_F(",\"features\":\"birthday\""), PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, CHAL_F(",\"features\":{\"birthday\":true}"), PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, CHAL_F(",\"features\":[1]"), PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, CHAL_F(",\"features\":[\"birthday\",null]"), PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, CHAL_F(",\"features\":[\"birth\\u0000day\"]"), PROTO_E_JSON);
    REJECT(PROTO_TO_PEER, CHAL_F(",\"features\":null"), PROTO_E_FIELD);
}

static void t_bday_hello(void)
{
    struct proto_msg m, o;
    char line[PROTO_MAX_LINE];
    memset(&m, 0, sizeof m);
    m.type = PROTO_HELLO;
    strcpy(m.u.hello.id, "bob");
    CHECK(enc_z(&m, line, sizeof line) > 0 && !strstr(line, "birthday"));
    if (roundtrip(&m, PROTO_TO_SERVER, &o))
        CHECK(!o.u.hello.birthday.has);
    m.u.hello.birthday = (struct proto_bday_caps){true, 256, 1024};
    CHECK(enc_z(&m, line, sizeof line) > 0 &&
          strstr(line, "\"birthday\":{\"k\":256,\"m\":1024}"));
    if (roundtrip(&m, PROTO_TO_SERVER, &o))
        CHECK(o.u.hello.birthday.has && o.u.hello.birthday.k == 256 &&
              o.u.hello.birthday.m == 1024);
    /* the edges of both ranges; 0 = the peer does not take part, still announced */
    m.u.hello.birthday = (struct proto_bday_caps){true, 0, 0};
    if (roundtrip(&m, PROTO_TO_SERVER, &o))
        CHECK(o.u.hello.birthday.has && o.u.hello.birthday.k == 0 && o.u.hello.birthday.m == 0);
    m.u.hello.birthday = (struct proto_bday_caps){true, PROTO_BDAY_MAX_K, PROTO_BDAY_MAX_M};
    if (roundtrip(&m, PROTO_TO_SERVER, &o))
        CHECK(o.u.hello.birthday.k == 512 && o.u.hello.birthday.m == 4096);
    ACCEPT(PROTO_TO_SERVER, HELLO_B(",\"birthday\":{\"m\":1,\"k\":512}"));
    CHECK(msg_.u.hello.birthday.has && msg_.u.hello.birthday.k == 512 &&
          msg_.u.hello.birthday.m == 1);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"birthday\":{\"k\":513,\"m\":1024}"), PROTO_E_FIELD);
    CHECK(strstr(why_, "birthday") && strstr(why_, "\"k\""));
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"birthday\":{\"k\":-1,\"m\":1024}"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"birthday\":{\"k\":256,\"m\":4097}"), PROTO_E_FIELD);
    CHECK(strstr(why_, "\"m\""));
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"birthday\":{\"k\":256,\"m\":-1}"), PROTO_E_FIELD);
    /* missing and extra members, wrong types */
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"birthday\":{\"k\":256}"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"birthday\":{\"m\":256}"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"birthday\":{}"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"birthday\":{\"k\":1,\"m\":1,\"ttl\":2}"), PROTO_E_FIELD);
    CHECK(strstr(why_, "ttl"));
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"birthday\":{\"k\":\"256\",\"m\":1}"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"birthday\":{\"k\":1.5,\"m\":1}"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"birthday\":{\"k\":true,\"m\":1}"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"birthday\":[256,1024]"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"birthday\":true"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"birthday\":null"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"birthday\":{\"k\":1,\"m\":1,\"k\":2}"), PROTO_E_JSON);
}

static struct proto_msg bday_punch(void)
{
    struct proto_msg m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_PUNCH;
    strcpy(m.u.punch.session, SESSION);
    strcpy(m.u.punch.peer, "alice");
    set_ep(&m.u.punch.observed, "198.51.100.7:51000");
    m.u.punch.start_in_us = 50000;
    m.u.punch.has_birthday = true;
    m.u.punch.birthday = (struct proto_bday){.role = PROTO_BDAY_EASY,
                                             .k = 256,
                                             .m = 1024,
                                             .ttl = 0,
                                             .pace_ms = 800,
                                             .port_lo = 1024,
                                             .port_hi = 65535,
                                             .easy_delay_us = 50000};
    set_ep(&m.u.punch.birthday.target, "198.51.100.7:51000");
    return m;
}

static void t_bday_punch_roundtrip(void)
{
    struct proto_msg m = bday_punch(), o;
    char line[PROTO_MAX_LINE];
    const struct proto_bday *b = &o.u.punch.birthday;
    CHECK(enc_z(&m, line, sizeof line) > 0 &&
          strstr(line, "\"birthday\":{\"role\":\"easy\",\"target\":\"198.51.100.7:51000\","
                       "\"k\":256,\"m\":1024,\"ttl\":0,\"pace_ms\":800,\"ports\":[1024,65535],"
                       "\"easy_delay_us\":50000}"));
    if (roundtrip(&m, PROTO_TO_PEER, &o)) {
        CHECK(o.u.punch.has_birthday);
        CHECK_INT(b->role, PROTO_BDAY_EASY);
        CHECK(same_ep(&b->target, &m.u.punch.birthday.target));
        CHECK(b->k == 256 && b->m == 1024 && b->ttl == 0 && b->pace_ms == 800);
        CHECK(b->port_lo == 1024 && b->port_hi == 65535 && b->easy_delay_us == 50000);
    }
    /* the other edge of every range */
    m.u.punch.birthday = (struct proto_bday){.role = PROTO_BDAY_HARD,
                                             .k = 1,
                                             .m = 1,
                                             .ttl = PROTO_BDAY_MAX_TTL,
                                             .pace_ms = PROTO_BDAY_MIN_PACE_MS,
                                             .port_lo = 1,
                                             .port_hi = 1,
                                             .easy_delay_us = 0};
    set_ep(&m.u.punch.birthday.target, "203.0.113.9:1");
    if (roundtrip(&m, PROTO_TO_PEER, &o)) {
        CHECK_INT(b->role, PROTO_BDAY_HARD);
        CHECK(b->k == 1 && b->m == 1 && b->ttl == 16 && b->pace_ms == 100);
        CHECK(b->port_lo == 1 && b->port_hi == 1 && b->easy_delay_us == 0);
    }
    m.u.punch.birthday.k = PROTO_BDAY_MAX_K;
    m.u.punch.birthday.m = PROTO_BDAY_MAX_M;
    m.u.punch.birthday.pace_ms = PROTO_BDAY_MAX_PACE_MS;
    m.u.punch.birthday.easy_delay_us = PROTO_BDAY_MAX_DELAY_US;
    m.u.punch.birthday.port_hi = 65535;
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK(b->k == 512 && b->m == 4096 && b->pace_ms == 2000 && b->easy_delay_us == 200000 &&
              b->port_hi == 65535);
    /* absent: not in the line, has_birthday false */
    m.u.punch.has_birthday = false;
    CHECK(enc_z(&m, line, sizeof line) > 0 && !strstr(line, "birthday"));
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK(!o.u.punch.has_birthday);
    /* the longest punch with a plan still fits a line */
    m = bday_punch();
    memset(m.u.punch.peer, 'z', PROTO_MAX_ID);
    m.u.punch.peer[PROTO_MAX_ID] = '\0';
    m.u.punch.relay = true;
    strcpy(m.u.punch.token, SESSION);
    m.u.punch.has_key = true;
    m.u.punch.has_relay_addr = m.u.punch.has_observed6 = true;
    set_ep(&m.u.punch.relay_addr, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535");
    set_ep(&m.u.punch.observed6, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535");
    memset(m.u.punch.reason, 'r', PROTO_MAX_TEXT);
    m.u.punch.endpoints.n = PROTO_MAX_ENDPOINTS;
    for (int i = 0; i < PROTO_MAX_ENDPOINTS; i++)
        set_ep(&m.u.punch.endpoints.ep[i], "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535");
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK(o.u.punch.has_birthday);
}

static void t_bday_punch_reject(void)
{
    ACCEPT(PROTO_TO_PEER, PUNCH_B(BD_OK));
    CHECK(msg_.u.punch.has_birthday && msg_.u.punch.birthday.role == PROTO_BDAY_HARD);
    /* members a later server adds are skipped, as in the punch itself */
    ACCEPT(PROTO_TO_PEER, PUNCH_B(BD_OK ",\"later\":[1,2]"));
    CHECK(msg_.u.punch.has_birthday && msg_.u.punch.birthday.m == 1024);
    /* every range, one past each edge */
    static const char *const bad[] = {
        "\"k\":0", "\"k\":513", "\"m\":0", "\"m\":4097", "\"ttl\":-1", "\"ttl\":17",
        "\"pace_ms\":99", "\"pace_ms\":2001", "\"easy_delay_us\":-1", "\"easy_delay_us\":200001",
        "\"ports\":[0,65535]", "\"ports\":[1024,65536]", "\"ports\":[2000,1999]",
        "\"ports\":[1024]", "\"ports\":[1024,2048,4096]", "\"ports\":\"1024-65535\"",
        "\"ports\":[1024,\"2048\"]", "\"ports\":[1024.5,2048]", "\"role\":\"medium\"",
        "\"role\":\"Hard\"", "\"role\":1", "\"k\":\"256\"", "\"m\":null", "\"ttl\":0.5",
        "\"pace_ms\":true"};
    static const char *const members[] = {"role", "target", "k",     "m",
                                          "ttl",  "pace_ms", "ports", "easy_delay_us"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* the bad value replaces its member in the good plan */
        char bd[512], line[1024], name[32];
        const char *colon = strchr(bad[i], ':');
        snprintf(name, sizeof name, "%.*s", (int)(colon - bad[i]), bad[i]);
        bd[0] = '\0';
        for (size_t j = 0; j < sizeof members / sizeof members[0]; j++) {
            char q[40];
            snprintf(q, sizeof q, "\"%s\"", members[j]);
            if (strcmp(q, name) == 0) {
                snprintf(bd + strlen(bd), sizeof bd - strlen(bd), "%s%s", j ? "," : "", bad[i]);
                continue;
            }
            const char *at = strstr(BD_OK, q), *end = at + strlen(q) + 1;
            int depth = 0;
            while (*end && (depth || *end != ',')) {
                depth += *end == '[' ? 1 : *end == ']' ? -1 : 0;
                end++;
            }
            snprintf(bd + strlen(bd), sizeof bd - strlen(bd), "%s%.*s", j ? "," : "",
                     (int)(end - at), at);
        }
        snprintf(line, sizeof line,
                 "{\"type\":\"punch\",\"session\":\"%s\",\"peer\":\"alice\",\"role\":\"initiator\","
                 "\"observed\":\"198.51.100.7:51000\",\"endpoints\":[],\"birthday\":{%s}}",
                 SESSION, bd);
        REJECT(PROTO_TO_PEER, line, PROTO_E_FIELD);
        CHECK_MSG(strstr(why_, "birthday") != NULL, "%s: reason %s", bad[i], why_);
    }
    /* each member missing */
    for (size_t j = 0; j < sizeof members / sizeof members[0]; j++) {
        char bd[512] = "", line[1024], q[40];
        int first = 1;
        for (size_t k = 0; k < sizeof members / sizeof members[0]; k++) {
            if (k == j)
                continue;
            snprintf(q, sizeof q, "\"%s\"", members[k]);
            const char *at = strstr(BD_OK, q), *end = at + strlen(q) + 1;
            int depth = 0;
            while (*end && (depth || *end != ',')) {
                depth += *end == '[' ? 1 : *end == ']' ? -1 : 0;
                end++;
            }
            snprintf(bd + strlen(bd), sizeof bd - strlen(bd), "%s%.*s", first ? "" : ",",
                     (int)(end - at), at);
            first = 0;
        }
        snprintf(line, sizeof line,
                 "{\"type\":\"punch\",\"session\":\"%s\",\"peer\":\"alice\",\"role\":\"initiator\","
                 "\"observed\":\"198.51.100.7:51000\",\"endpoints\":[],\"birthday\":{%s}}",
                 SESSION, bd);
        enum proto_err want = PROTO_E_FIELD;
        REJECT(PROTO_TO_PEER, line, want);
        CHECK_MSG(strstr(why_, members[j]) != NULL, "missing %s: reason %s", members[j], why_);
    }
    /* the target: an IPv4 endpoint as other endpoints are written */
    REJECT(PROTO_TO_PEER,
           PUNCH_B("\"role\":\"hard\",\"target\":\"[2001:db8::1]:51000\",\"k\":256,\"m\":1024,"
                   "\"ttl\":0,\"pace_ms\":800,\"ports\":[1024,65535],\"easy_delay_us\":50000"),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           PUNCH_B("\"role\":\"hard\",\"target\":\"[::ffff:198.51.100.7]:51000\",\"k\":256,"
                   "\"m\":1024,\"ttl\":0,\"pace_ms\":800,\"ports\":[1024,65535],"
                   "\"easy_delay_us\":50000"),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           PUNCH_B("\"role\":\"hard\",\"target\":\"198.51.100.7\",\"k\":256,\"m\":1024,"
                   "\"ttl\":0,\"pace_ms\":800,\"ports\":[1024,65535],\"easy_delay_us\":50000"),
           PROTO_E_ENDPOINT);
    REJECT(PROTO_TO_PEER,
           PUNCH_B("\"role\":\"hard\",\"target\":51000,\"k\":256,\"m\":1024,"
                   "\"ttl\":0,\"pace_ms\":800,\"ports\":[1024,65535],\"easy_delay_us\":50000"),
           PROTO_E_FIELD);
    /* not an object */
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"punch\",\"session\":\"0123456789abcdef0123456789abcdef\",\"peer\":\"a\","
           "\"role\":\"initiator\",\"observed\":\"198.51.100.7:51000\",\"endpoints\":[],"
           "\"birthday\":true}",
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           "{\"type\":\"punch\",\"session\":\"0123456789abcdef0123456789abcdef\",\"peer\":\"a\","
           "\"role\":\"initiator\",\"observed\":\"198.51.100.7:51000\",\"endpoints\":[],"
           "\"birthday\":[]}",
           PROTO_E_FIELD);
}

static void t_bday_admit(void)
{
    unsigned char key[AUTH_KEY_BYTES], nonce[PROTO_NONCE_BYTES], a[PROTO_ADMIT_BYTES],
        b[PROTO_ADMIT_BYTES];
    /* the vector of t_admit_binding: a hello without birthday keeps today's admit */
    const char *hello_hex = "2fe837a76bab018f1e42b1241d68ce6470ae17d09f0a605b16b3e382c10d053a";
    char why[200];
    struct proto_msg m, o;
    crypto_hash_sha256(key, (const unsigned char *)"test-secret\n", 12);
    fill(nonce, sizeof nonce, 0);
    memset(&m, 0, sizeof m);
    m.type = PROTO_HELLO;
    strcpy(m.u.hello.id, "bob");
    m.u.hello.has_key = true;
    fill(m.u.hello.key, PROTO_KEY_BYTES, 0);
    CHECK(ep_parse("10.0.1.2:40000", &m.u.hello.endpoints.ep[0], why, sizeof why) == 0);
    CHECK(ep_parse("[2001:db8::7]:7000", &m.u.hello.endpoints.ep[1], why, sizeof why) == 0);
    m.u.hello.endpoints.n = 2;
    CHECK(admit_is(&m, key, hello_hex));
    /* has false: k and m are not read */
    o = m;
    o.u.hello.birthday.k = 7;
    o.u.hello.birthday.m = 9;
    CHECK(admit_is(&o, key, hello_hex));
    /* present, it is covered: adding it, and each of k and m, change the admit */
    o = m;
    o.u.hello.birthday = (struct proto_bday_caps){true, 256, 1024};
    CHECK(!admit_is(&o, key, hello_hex));
    CHECK(auth_admit(key, nonce, &o, a));
    o.u.hello.birthday.k = 255;
    CHECK(auth_admit(key, nonce, &o, b) && memcmp(a, b, sizeof a) != 0);
    o.u.hello.birthday = (struct proto_bday_caps){true, 256, 1023};
    CHECK(auth_admit(key, nonce, &o, b) && memcmp(a, b, sizeof a) != 0);
    /* k and m do not trade places */
    o.u.hello.birthday = (struct proto_bday_caps){true, 1024, 256};
    CHECK(auth_admit(key, nonce, &o, b) && memcmp(a, b, sizeof a) != 0);
    /* {0, 0} is still a birthday member, not its absence */
    o.u.hello.birthday = (struct proto_bday_caps){true, 0, 0};
    CHECK(!admit_is(&o, key, hello_hex));
    /* the same caps again: the same admit; and a line stripped of the member fails */
    o.u.hello.birthday = (struct proto_bday_caps){true, 256, 1024};
    CHECK(auth_admit(key, nonce, &o, b) && memcmp(a, b, sizeof a) == 0);
    o.u.hello.has_admit = auth_admit(key, nonce, &o, o.u.hello.admit);
    CHECK(auth_admit_ok(key, nonce, &o));
    o.u.hello.birthday.has = false;
    CHECK(!auth_admit_ok(key, nonce, &o));
    o.u.hello.birthday = (struct proto_bday_caps){true, 512, 1024};
    CHECK(!auth_admit_ok(key, nonce, &o));
}

static void t_bday_names(void)
{
    enum proto_bday_role r = PROTO_BDAY_EASY;
    CHECK_STR(proto_bday_role_name(PROTO_BDAY_HARD), "hard");
    CHECK_STR(proto_bday_role_name(PROTO_BDAY_EASY), "easy");
    CHECK_STR(proto_bday_role_name((enum proto_bday_role)2), "?");
    CHECK(proto_bday_role_parse("hard", &r) && r == PROTO_BDAY_HARD);
    CHECK(proto_bday_role_parse("easy", &r) && r == PROTO_BDAY_EASY);
    CHECK(!proto_bday_role_parse("initiator", &r) && r == PROTO_BDAY_EASY);
    CHECK(!proto_bday_role_parse("", &r));
    CHECK(!proto_bday_role_parse(NULL, &r));
}

/* ---- sessions: challenge "resume", hello.features/replace, connect/punch resume,
 * punch.peer_features, shake.resume (PROTOCOL.md section 18) ---- */

#define CONNECT_R(extra) "{\"type\":\"connect\",\"target\":\"alice\"" extra "}"
#define PUNCH_R(extra)                                                                             \
    "{\"type\":\"punch\",\"session\":\"0123456789abcdef0123456789abcdef\",\"peer\":\"alice\","     \
    "\"role\":\"initiator\",\"observed\":\"198.51.100.7:51000\",\"endpoints\":[]" extra "}"
#define SHAKE_R(extra)                                                                             \
    "{\"type\":\"shake\",\"version\":1,\"session\":\"0123456789abcdef0123456789abcdef\","          \
    "\"from\":\"a\",\"to\":\"b\",\"key\":\"" B64_32A "\",\"eph\":\"" B64_32A "\"" extra "}"

static void t_sess_challenge(void)
{
    struct proto_msg m, o;
    char line[PROTO_MAX_LINE];
    memset(&m, 0, sizeof m);
    m.type = PROTO_CHALLENGE;
    fill(m.u.challenge.nonce, PROTO_NONCE_BYTES, 0);
    m.u.challenge.feat_resume = true;
    CHECK(enc_z(&m, line, sizeof line) > 0 && strstr(line, "\"features\":[\"resume\"]"));
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK(o.u.challenge.feat_resume && !o.u.challenge.feat_birthday);
    m.u.challenge.feat_birthday = true;
    CHECK(enc_z(&m, line, sizeof line) > 0 &&
          strstr(line, "\"features\":[\"birthday\",\"resume\"]"));
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK(o.u.challenge.feat_resume && o.u.challenge.feat_birthday);
    /* birthday alone: today's line */
    m.u.challenge.feat_resume = false;
    CHECK(enc_z(&m, line, sizeof line) > 0 && strstr(line, "\"features\":[\"birthday\"]}"));
    ACCEPT(PROTO_TO_PEER, CHAL_F(",\"features\":[\"x\",\"resume\"]"));
    CHECK(msg_.u.challenge.feat_resume && !msg_.u.challenge.feat_birthday);
    ACCEPT(PROTO_TO_PEER, CHAL_F(",\"features\":[\"resumex\",\"Resume\"]"));
    CHECK(!msg_.u.challenge.feat_resume);
    /* "replace" (hello.replace taken without resume): last, alone or with the others */
    m.u.challenge.feat_birthday = false;
    m.u.challenge.feat_replace = true;
    CHECK(enc_z(&m, line, sizeof line) > 0 && strstr(line, "\"features\":[\"replace\"]}"));
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK(o.u.challenge.feat_replace && !o.u.challenge.feat_resume);
    m.u.challenge.feat_resume = m.u.challenge.feat_birthday = true;
    CHECK(enc_z(&m, line, sizeof line) > 0 &&
          strstr(line, "\"features\":[\"birthday\",\"resume\",\"replace\"]}"));
    ACCEPT(PROTO_TO_PEER, CHAL_F(",\"features\":[\"resume\"]"));
    CHECK(!msg_.u.challenge.feat_replace); /* an older server: the peer infers it from resume */
    ACCEPT(PROTO_TO_PEER, CHAL_F(",\"features\":[\"replaced\"]"));
    CHECK(!msg_.u.challenge.feat_replace);
}

static void t_sess_hello(void)
{
    struct proto_msg m, o;
    char line[PROTO_MAX_LINE], today[PROTO_MAX_LINE];
    memset(&m, 0, sizeof m);
    m.type = PROTO_HELLO;
    strcpy(m.u.hello.id, "bob");
    /* absent: today's line byte for byte */
    CHECK(enc_z(&m, today, sizeof today) > 0);
    CHECK_STR(today, "{\"type\":\"hello\",\"version\":1,\"id\":\"bob\",\"endpoints\":[]}\n");
    m.u.hello.features = PROTO_FEAT_RESUME;
    CHECK(enc_z(&m, line, sizeof line) > 0 && strstr(line, "\"features\":[\"resume\"]"));
    if (roundtrip(&m, PROTO_TO_SERVER, &o))
        CHECK(o.u.hello.features == PROTO_FEAT_RESUME && !o.u.hello.replace);
    m.u.hello.replace = true;
    CHECK(enc_z(&m, line, sizeof line) > 0 && strstr(line, "\"replace\":true"));
    if (roundtrip(&m, PROTO_TO_SERVER, &o))
        CHECK(o.u.hello.features == PROTO_FEAT_RESUME && o.u.hello.replace);
    /* bits this version has no name for are not encoded */
    m.u.hello.features = 0x80000000u;
    m.u.hello.replace = false;
    CHECK(enc_z(&m, line, sizeof line) > 0 && strcmp(line, today) == 0);
    /* unknown names accepted and skipped; [] and false are absence */
    ACCEPT(PROTO_TO_SERVER, HELLO_B(",\"features\":[\"later\",\"resume\",\"x\"]"));
    CHECK(msg_.u.hello.features == PROTO_FEAT_RESUME);
    ACCEPT(PROTO_TO_SERVER, HELLO_B(",\"features\":[\"later\"]"));
    CHECK(msg_.u.hello.features == 0);
    ACCEPT(PROTO_TO_SERVER, HELLO_B(",\"features\":[]"));
    CHECK(msg_.u.hello.features == 0);
    ACCEPT(PROTO_TO_SERVER, HELLO_B(",\"replace\":false"));
    CHECK(!msg_.u.hello.replace);
    ACCEPT(PROTO_TO_SERVER, HELLO_B(",\"features\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\","
                                    "\"8\",\"9\",\"10\",\"11\",\"12\",\"13\",\"14\",\"15\","
                                    "\"resume\"]"));
    CHECK(msg_.u.hello.features == PROTO_FEAT_RESUME);
    ACCEPT(PROTO_TO_SERVER, HELLO_B(",\"features\":[\"12345678901234567890123456789012\"]"));
    /* each bad value */
    REJECT(PROTO_TO_SERVER,
           HELLO_B(",\"features\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\","
                   "\"8\",\"9\",\"10\",\"11\",\"12\",\"13\",\"14\",\"15\","
                   "\"16\",\"resume\"]"),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"features\":[\"123456789012345678901234567890123\"]"),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"features\":[\"\"]"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"features\":[\"resume\",\"resume\"]"), PROTO_E_FIELD);
    CHECK(strstr(why_, "twice") != NULL);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"features\":[\"x\",\"y\",\"x\"]"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"features\":[\"a\\u0000b\"]"), PROTO_E_JSON);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"features\":[1]"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"features\":[null]"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"features\":[[\"resume\"]]"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"features\":\"resume\""), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"features\":{\"resume\":true}"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"features\":null"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"replace\":1"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"replace\":\"true\""), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, HELLO_B(",\"replace\":null"), PROTO_E_FIELD);
}

static void t_sess_connect(void)
{
    struct proto_msg m, o;
    char line[PROTO_MAX_LINE];
    memset(&m, 0, sizeof m);
    m.type = PROTO_CONNECT;
    strcpy(m.u.connect.target, "alice");
    CHECK(enc_z(&m, line, sizeof line) > 0);
    CHECK_STR(line, "{\"type\":\"connect\",\"target\":\"alice\"}\n");
    strcpy(m.u.connect.resume, SESSION);
    CHECK(enc_z(&m, line, sizeof line) > 0 &&
          strstr(line, "\"resume\":\"0123456789abcdef0123456789abcdef\""));
    if (roundtrip(&m, PROTO_TO_SERVER, &o)) {
        CHECK_STR(o.u.connect.resume, SESSION);
        CHECK_STR(o.u.connect.target, "alice");
    }
    REJECT(PROTO_TO_SERVER, CONNECT_R(",\"resume\":\"0123456789ABCDEF0123456789abcdef\""),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, CONNECT_R(",\"resume\":\"0123456789abcdef0123456789abcde\""),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, CONNECT_R(",\"resume\":\"0123456789abcdef0123456789abcdef0\""),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, CONNECT_R(",\"resume\":\"\""), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, CONNECT_R(",\"resume\":1"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, CONNECT_R(",\"resume\":null"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, CONNECT_R(",\"resume\":true"), PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, CONNECT_R(",\"resumes\":\"0123456789abcdef0123456789abcdef\""),
           PROTO_E_FIELD);
}

static void t_sess_punch(void)
{
    struct proto_msg m = bday_punch(), o;
    char line[PROTO_MAX_LINE], today[PROTO_MAX_LINE];
    m.u.punch.has_birthday = false;
    CHECK(enc_z(&m, today, sizeof today) > 0 && !strstr(today, "resume") &&
          !strstr(today, "peer_features"));
    m.u.punch.peer_features = PROTO_FEAT_RESUME;
    CHECK(enc_z(&m, line, sizeof line) > 0 && strstr(line, "\"peer_features\":[\"resume\"]"));
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK(o.u.punch.peer_features == PROTO_FEAT_RESUME && !o.u.punch.resume[0]);
    strcpy(m.u.punch.resume, SESSION);
    if (roundtrip(&m, PROTO_TO_PEER, &o)) {
        CHECK(o.u.punch.peer_features == PROTO_FEAT_RESUME);
        CHECK_STR(o.u.punch.resume, SESSION);
    }
    m.u.punch.peer_features = 0x40u; /* no name: not encoded */
    m.u.punch.resume[0] = '\0';
    CHECK(enc_z(&m, line, sizeof line) > 0 && strcmp(line, today) == 0);
    ACCEPT(PROTO_TO_PEER, PUNCH_R(",\"peer_features\":[\"soon\",\"resume\"]"));
    CHECK(msg_.u.punch.peer_features == PROTO_FEAT_RESUME);
    ACCEPT(PROTO_TO_PEER, PUNCH_R(",\"peer_features\":[]"));
    CHECK(msg_.u.punch.peer_features == 0);
    REJECT(PROTO_TO_PEER, PUNCH_R(",\"peer_features\":[\"resume\",\"resume\"]"), PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, PUNCH_R(",\"peer_features\":[\"\"]"), PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, PUNCH_R(",\"peer_features\":[true]"), PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, PUNCH_R(",\"peer_features\":\"resume\""), PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           PUNCH_R(",\"peer_features\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\","
                   "\"7\",\"8\",\"9\",\"10\",\"11\",\"12\",\"13\",\"14\",\"15\","
                   "\"16\",\"17\"]"),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, PUNCH_R(",\"peer_features\":[\"123456789012345678901234567890123\"]"),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, PUNCH_R(",\"resume\":\"0123456789abcdef\""), PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, PUNCH_R(",\"resume\":\"0123456789abcdeg0123456789abcdef\""),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, PUNCH_R(",\"resume\":42"), PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, PUNCH_R(",\"resume\":{}"), PROTO_E_FIELD);
}

static struct proto_msg sess_shake(void)
{
    struct proto_msg m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_SHAKE;
    m.u.shake.version = PROTO_VERSION;
    strcpy(m.u.shake.session, SESSION);
    strcpy(m.u.shake.from, "bob");
    strcpy(m.u.shake.to, "alice");
    fill(m.u.shake.key, PROTO_KEY_BYTES, 0);
    fill(m.u.shake.eph, PROTO_KEY_BYTES, 1);
    return m;
}

static void t_sess_shake(void)
{
    struct proto_msg m = sess_shake(), o;
    char line[PROTO_MAX_LINE], today[PROTO_MAX_LINE];
    CHECK(enc_z(&m, today, sizeof today) > 0 && !strstr(today, "resume"));
    m.u.shake.resume = (struct proto_resume_caps){true, 1, 8u << 20, 120};
    CHECK(enc_z(&m, line, sizeof line) > 0 &&
          strstr(line, "\"resume\":{\"v\":1,\"buf\":8388608,\"timeout\":120}"));
    if (roundtrip(&m, PROTO_PEER_TO_PEER, &o)) {
        CHECK(o.u.shake.resume.has && o.u.shake.resume.v == 1);
        CHECK(o.u.shake.resume.buf == 8u << 20 && o.u.shake.resume.timeout == 120);
    }
    /* the ends of the ranges, signed or not */
    m.u.shake.resume =
        (struct proto_resume_caps){true, 1, PROTO_RESUME_BUF_MAX, PROTO_RESUME_TIMEOUT_MAX};
    m.u.shake.has_sig = true;
    memset(m.u.shake.sig, 0x11, sizeof m.u.shake.sig);
    if (roundtrip(&m, PROTO_PEER_TO_PEER, &o))
        CHECK(o.u.shake.resume.buf == PROTO_RESUME_BUF_MAX &&
              o.u.shake.resume.timeout == PROTO_RESUME_TIMEOUT_MAX && o.u.shake.has_sig);
    m.u.shake.resume = (struct proto_resume_caps){true, 1, PROTO_RESUME_BUF_MIN, 1};
    if (roundtrip(&m, PROTO_PEER_TO_PEER, &o))
        CHECK(o.u.shake.resume.buf == PROTO_RESUME_BUF_MIN && o.u.shake.resume.timeout == 1);
    ACCEPT(PROTO_PEER_TO_PEER, SHAKE_R(",\"resume\":{\"timeout\":5,\"buf\":65536,\"v\":1}"));
    CHECK(msg_.u.shake.resume.has && msg_.u.shake.resume.timeout == 5);
    ACCEPT(PROTO_PEER_TO_PEER, SHAKE_R(""));
    CHECK(!msg_.u.shake.resume.has);
    static const char *const bad[] = {
        ",\"resume\":{\"v\":2,\"buf\":65536,\"timeout\":5}",
        ",\"resume\":{\"v\":0,\"buf\":65536,\"timeout\":5}",
        ",\"resume\":{\"v\":\"1\",\"buf\":65536,\"timeout\":5}",
        ",\"resume\":{\"v\":1.0,\"buf\":65536,\"timeout\":5}",
        ",\"resume\":{\"v\":1,\"buf\":65535,\"timeout\":5}",
        ",\"resume\":{\"v\":1,\"buf\":1073741825,\"timeout\":5}",
        ",\"resume\":{\"v\":1,\"buf\":-1,\"timeout\":5}",
        ",\"resume\":{\"v\":1,\"buf\":65536.5,\"timeout\":5}",
        ",\"resume\":{\"v\":1,\"buf\":\"65536\",\"timeout\":5}",
        ",\"resume\":{\"v\":1,\"buf\":65536,\"timeout\":0}",
        ",\"resume\":{\"v\":1,\"buf\":65536,\"timeout\":3601}",
        ",\"resume\":{\"v\":1,\"buf\":65536,\"timeout\":-5}",
        ",\"resume\":{\"v\":1,\"buf\":65536,\"timeout\":true}",
        ",\"resume\":{\"buf\":65536,\"timeout\":5}",
        ",\"resume\":{\"v\":1,\"timeout\":5}",
        ",\"resume\":{\"v\":1,\"buf\":65536}",
        ",\"resume\":{\"v\":1,\"buf\":65536,\"timeout\":5,\"x\":1}",
        ",\"resume\":{}",
        ",\"resume\":[1,65536,5]",
        ",\"resume\":true",
        ",\"resume\":null",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char l[512];
        snprintf(l, sizeof l, SHAKE_R("%s"), bad[i]);
        REJECT(PROTO_PEER_TO_PEER, l, PROTO_E_FIELD);
        CHECK_MSG(strstr(why_, "resume") != NULL, "%s: reason %s", bad[i], why_);
    }
    REJECT(PROTO_PEER_TO_PEER, SHAKE_R(",\"resume\":{\"v\":1,\"buf\":65536,\"timeout\":5,\"v\":1}"),
           PROTO_E_JSON);
}

/* shake.code (PROTOCOL.md 5.7, 8.4): absent is today's line byte for byte; present only as
 * true, so one shake has one spelling */
static void t_shake_code(void)
{
    struct proto_msg m = sess_shake(), o;
    char line[PROTO_MAX_LINE], today[PROTO_MAX_LINE];
    CHECK(enc_z(&m, today, sizeof today) > 0 && !strstr(today, "code"));
    m.u.shake.code = true;
    CHECK(enc_z(&m, line, sizeof line) > 0 && strstr(line, ",\"code\":true"));
    if (roundtrip(&m, PROTO_PEER_TO_PEER, &o))
        CHECK(o.u.shake.code && !o.u.shake.resume.has && !o.u.shake.has_sig);
    /* with the other optional members, signed */
    m.u.shake.resume = (struct proto_resume_caps){true, 1, 8u << 20, 120};
    m.u.shake.has_sig = true;
    memset(m.u.shake.sig, 0x5a, sizeof m.u.shake.sig);
    if (roundtrip(&m, PROTO_PEER_TO_PEER, &o))
        CHECK(o.u.shake.code && o.u.shake.resume.has && o.u.shake.has_sig);
    m.u.shake.code = false;
    if (roundtrip(&m, PROTO_PEER_TO_PEER, &o))
        CHECK(!o.u.shake.code && o.u.shake.resume.has);
    ACCEPT(PROTO_PEER_TO_PEER, SHAKE_R(",\"code\":true"));
    CHECK(msg_.u.shake.code);
    ACCEPT(PROTO_PEER_TO_PEER, SHAKE_R(""));
    CHECK(!msg_.u.shake.code);
    REJECT(PROTO_PEER_TO_PEER, SHAKE_R(",\"code\":false"), PROTO_E_FIELD);
    REJECT(PROTO_PEER_TO_PEER, SHAKE_R(",\"code\":1"), PROTO_E_FIELD);
    REJECT(PROTO_PEER_TO_PEER, SHAKE_R(",\"code\":\"true\""), PROTO_E_FIELD);
    REJECT(PROTO_PEER_TO_PEER, SHAKE_R(",\"code\":null"), PROTO_E_FIELD);
    REJECT(PROTO_PEER_TO_PEER, SHAKE_R(",\"code\":{}"), PROTO_E_FIELD);
    REJECT(PROTO_PEER_TO_PEER, SHAKE_R(",\"code\":true,\"code\":true"), PROTO_E_JSON);
    REJECT(PROTO_PEER_TO_PEER, SHAKE_R(",\"Code\":true"), PROTO_E_FIELD);
    /* only in a shake: the confirm keeps its strict member list */
    REJECT(PROTO_PEER_TO_PEER,
           "{\"type\":\"confirm\",\"session\":\"0123456789abcdef0123456789abcdef\","
           "\"sig\":\"" B64_64A "\",\"code\":true}",
           PROTO_E_FIELD);
}

static void t_sess_admit(void)
{
    unsigned char key[AUTH_KEY_BYTES], nonce[PROTO_NONCE_BYTES], a[PROTO_ADMIT_BYTES],
        b[PROTO_ADMIT_BYTES];
    /* the vector of t_admit_binding: absent members keep today's admit */
    const char *hello_hex = "2fe837a76bab018f1e42b1241d68ce6470ae17d09f0a605b16b3e382c10d053a";
    char why[200];
    struct proto_msg m, o;
    crypto_hash_sha256(key, (const unsigned char *)"test-secret\n", 12);
    fill(nonce, sizeof nonce, 0);
    memset(&m, 0, sizeof m);
    m.type = PROTO_HELLO;
    strcpy(m.u.hello.id, "bob");
    m.u.hello.has_key = true;
    fill(m.u.hello.key, PROTO_KEY_BYTES, 0);
    CHECK(ep_parse("10.0.1.2:40000", &m.u.hello.endpoints.ep[0], why, sizeof why) == 0);
    CHECK(ep_parse("[2001:db8::7]:7000", &m.u.hello.endpoints.ep[1], why, sizeof why) == 0);
    m.u.hello.endpoints.n = 2;
    CHECK(admit_is(&m, key, hello_hex));
    /* features and replace are each covered, and not the same input */
    o = m;
    o.u.hello.features = PROTO_FEAT_RESUME;
    CHECK(!admit_is(&o, key, hello_hex) && auth_admit(key, nonce, &o, a));
    /* bits without a name are neither encoded nor admitted: the server never sees them */
    o.u.hello.features = PROTO_FEAT_RESUME | 0x80000000u;
    CHECK(auth_admit(key, nonce, &o, b) && memcmp(a, b, sizeof a) == 0);
    o.u.hello.features = 0x80000000u;
    CHECK(admit_is(&o, key, hello_hex));
    o.u.hello.features = 0;
    o.u.hello.replace = true;
    CHECK(!admit_is(&o, key, hello_hex) && auth_admit(key, nonce, &o, b));
    CHECK(memcmp(a, b, sizeof a) != 0);
    o.u.hello.features = PROTO_FEAT_RESUME;
    CHECK(auth_admit(key, nonce, &o, b) && memcmp(a, b, sizeof a) != 0);
    /* stripping either one from a line the admit covered fails the check */
    o.u.hello.has_admit = auth_admit(key, nonce, &o, o.u.hello.admit);
    CHECK(auth_admit_ok(key, nonce, &o));
    o.u.hello.replace = false;
    CHECK(!auth_admit_ok(key, nonce, &o));
    o.u.hello.replace = true;
    o.u.hello.features = 0;
    CHECK(!auth_admit_ok(key, nonce, &o));
    /* with birthday: still distinct from birthday alone */
    o = m;
    o.u.hello.birthday = (struct proto_bday_caps){true, 256, 1024};
    CHECK(auth_admit(key, nonce, &o, a));
    o.u.hello.features = PROTO_FEAT_RESUME;
    CHECK(auth_admit(key, nonce, &o, b) && memcmp(a, b, sizeof a) != 0);
}

static void t_names(void)
{
    enum proto_path p = PROTO_PATH_ANY;
    CHECK_STR(proto_role_name(PROTO_INITIATOR), "initiator");
    CHECK_STR(proto_role_name(PROTO_RESPONDER), "responder");
    CHECK_STR(proto_role_name((enum proto_role)2), "?");
    for (int i = PROTO_PATH_ANY; i <= PROTO_PATH_RELAY; i++)
        CHECK(proto_path_parse(proto_path_name((enum proto_path)i), &p) && p == (enum proto_path)i);
    CHECK(proto_path_parse("relay", &p) && p == PROTO_PATH_RELAY);
    CHECK(proto_path_parse("direct", &p) && p == PROTO_PATH_DIRECT);
    p = PROTO_PATH_DIRECT;
    CHECK(!proto_path_parse("inbound", &p) && p == PROTO_PATH_DIRECT); /* untouched */
    CHECK(!proto_path_parse("Relay", &p));
    CHECK(!proto_path_parse("", &p));
    CHECK(!proto_path_parse(NULL, &p));
    CHECK_STR(proto_path_name((enum proto_path)3), "?");
    CHECK_STR(proto_nat_name(PROTO_NAT_DEPENDENT), "dependent");
    CHECK_STR(proto_nat_name((enum proto_nat)3), "?");
}

/* ---- traversal reports (PROTOCOL.md, "Traversal reports") ---- */

#define REP_S "\"session\":\"0123456789abcdef0123456789abcdef\""
#define REP(f) "{\"type\":\"report\"," REP_S f "}"
#define Q(x) "\"" x "\""
/* a report with these members' values (JSON tokens) */
#define REPF(r, c, a, ms, nat)                                                                     \
    REP(",\"result\":" r ",\"candidate\":" c ",\"attempts\":" a ",\"ms\":" ms ",\"nat\":" nat)
#define REP_OK ",\"result\":\"direct\",\"candidate\":\"public\",\"attempts\":3,\"ms\":120," \
               "\"nat\":\"independent\""

static void t_report_roundtrip(void)
{
    static const struct {
        enum proto_result r;
        enum proto_cand c;
    } fit[] = {
        {PROTO_RES_DIRECT, PROTO_CAND_PUBLIC},  {PROTO_RES_DIRECT, PROTO_CAND_PORT_PRESERVED},
        {PROTO_RES_DIRECT, PROTO_CAND_LAN},     {PROTO_RES_DIRECT, PROTO_CAND_IPV6},
        {PROTO_RES_DIRECT, PROTO_CAND_INBOUND}, {PROTO_RES_DIRECT, PROTO_CAND_BIRTHDAY},
        {PROTO_RES_RELAY, PROTO_CAND_RELAY},    {PROTO_RES_FAILED, PROTO_CAND_NONE}};
    struct proto_msg m, o;
    char line[PROTO_MAX_LINE];
    for (size_t i = 0; i < sizeof fit / sizeof fit[0]; i++) {
        memset(&m, 0, sizeof m);
        m.type = PROTO_REPORT;
        memcpy(m.u.report.session, SESSION, sizeof SESSION);
        m.u.report.result = fit[i].r;
        m.u.report.candidate = fit[i].c;
        m.u.report.attempts = (int)i * 1000;
        m.u.report.ms = (uint32_t)i * 80000;
        m.u.report.nat = (enum proto_nat)(i % 3);
        if (!roundtrip(&m, PROTO_TO_SERVER, &o))
            continue;
        CHECK_STR(o.u.report.session, SESSION);
        CHECK_INT(o.u.report.result, fit[i].r);
        CHECK_INT(o.u.report.candidate, fit[i].c);
        CHECK_INT(o.u.report.attempts, (int)i * 1000);
        CHECK_INT(o.u.report.ms, i * 80000);
        CHECK_INT(o.u.report.nat, i % 3);
    }
    /* the bounds themselves */
    m.u.report.result = PROTO_RES_FAILED;
    m.u.report.candidate = PROTO_CAND_NONE;
    m.u.report.attempts = PROTO_REPORT_MAX_ATTEMPTS;
    m.u.report.ms = PROTO_REPORT_MAX_MS;
    if (roundtrip(&m, PROTO_TO_SERVER, &o))
        CHECK(o.u.report.attempts == PROTO_REPORT_MAX_ATTEMPTS &&
              o.u.report.ms == PROTO_REPORT_MAX_MS);
    CHECK(enc_z(&m, line, sizeof line) > 0);
    CHECK(strstr(line, "\"result\":\"failed\"") && strstr(line, "\"candidate\":\"none\""));
    ACCEPT(PROTO_TO_SERVER, REP(REP_OK));
    CHECK_INT(msg_.u.report.attempts, 3);
}

static void t_report_reject(void)
{
    static const char *const bad[] = {
        /* every member is required */
        "{\"type\":\"report\",\"result\":\"direct\",\"candidate\":\"public\",\"attempts\":3,"
        "\"ms\":120,\"nat\":\"independent\"}",
        REP(",\"candidate\":\"public\",\"attempts\":3,\"ms\":1,\"nat\":\"unknown\""),
        REP(",\"result\":\"direct\",\"attempts\":3,\"ms\":1,\"nat\":\"unknown\""),
        REP(",\"result\":\"direct\",\"candidate\":\"lan\",\"ms\":1,\"nat\":\"unknown\""),
        REP(",\"result\":\"direct\",\"candidate\":\"lan\",\"attempts\":1,\"nat\":\"unknown\""),
        REP(",\"result\":\"direct\",\"candidate\":\"lan\",\"attempts\":1,\"ms\":1"),
        /* unknown members, as for every message to a server */
        REP(REP_OK ",\"peer\":\"bob\""),
        /* closed sets */
        REPF(Q("Direct"), Q("public"), "3", "1", Q("unknown")),
        REPF(Q("direct"), Q("given"), "3", "1", Q("unknown")),
        REPF(Q("direct"), Q("public"), "3", "1", Q("symmetric")),
        REPF("1", Q("public"), "3", "1", Q("unknown")),
        REPF(Q("direct"), "null", "3", "1", Q("unknown")),
        /* bounds */
        REPF(Q("direct"), Q("public"), "-1", "1", Q("unknown")),
        REPF(Q("direct"), Q("public"), "8193", "1", Q("unknown")),
        REPF(Q("direct"), Q("public"), "1", "600001", Q("unknown")),
        REPF(Q("direct"), Q("public"), "1", "-5", Q("unknown")),
        REPF(Q("direct"), Q("public"), "1.5", "1", Q("unknown")),
        REPF(Q("direct"), Q("public"), "1", "\"7\"", Q("unknown")),
        /* the candidate must fit the result */
        REPF(Q("direct"), Q("relay"), "1", "1", Q("unknown")),
        REPF(Q("direct"), Q("none"), "1", "1", Q("unknown")),
        REPF(Q("relay"), Q("public"), "1", "1", Q("unknown")),
        REPF(Q("relay"), Q("none"), "1", "1", Q("unknown")),
        REPF(Q("failed"), Q("relay"), "1", "1", Q("unknown")),
        REPF(Q("failed"), Q("lan"), "1", "1", Q("unknown")),
        /* the session's grammar */
        "{\"type\":\"report\",\"session\":\"0123456789ABCDEF0123456789abcdef\"" REP_OK "}",
        "{\"type\":\"report\",\"session\":\"0123\"" REP_OK "}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        REJECT(PROTO_TO_SERVER, bad[i], PROTO_E_FIELD);
    /* a server never sends one, peers never to each other */
    REJECT(PROTO_TO_PEER, REP(REP_OK), PROTO_E_UNEXPECTED);
    REJECT(PROTO_PEER_TO_PEER, REP(REP_OK), PROTO_E_UNEXPECTED);
}

static void t_report_feature(void)
{
    struct proto_msg m, o;
    char line[PROTO_MAX_LINE];
    memset(&m, 0, sizeof m);
    m.type = PROTO_CHALLENGE;
    fill(m.u.challenge.nonce, PROTO_NONCE_BYTES, 0);
    m.u.challenge.feat_report = true;
    CHECK(enc_z(&m, line, sizeof line) > 0 && strstr(line, "\"features\":[\"report\"]"));
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK(o.u.challenge.feat_report && !o.u.challenge.feat_resume);
    m.u.challenge.feat_birthday = m.u.challenge.feat_resume = true;
    CHECK(enc_z(&m, line, sizeof line) > 0 &&
          strstr(line, "\"features\":[\"birthday\",\"resume\",\"report\"]"));
    /* without it, today's lines */
    m.u.challenge.feat_report = false;
    CHECK(enc_z(&m, line, sizeof line) > 0 &&
          strstr(line, "\"features\":[\"birthday\",\"resume\"]}"));
    ACCEPT(PROTO_TO_PEER, CHAL_F(",\"features\":[\"reports\",\"Report\"]"));
    CHECK(!msg_.u.challenge.feat_report);
    /* names */
    CHECK_STR(proto_result_name(PROTO_RES_RELAY), "relay");
    CHECK_STR(proto_result_name(PROTO_RES_COUNT), "?");
    CHECK_STR(proto_cand_name(PROTO_CAND_PORT_PRESERVED), "port-preserved");
    CHECK_STR(proto_cand_name(PROTO_CAND_COUNT), "?");
    CHECK_INT(proto_cand_of("inbound"), PROTO_CAND_INBOUND);
    CHECK_INT(proto_cand_of("birthday"), PROTO_CAND_BIRTHDAY);
    CHECK_INT(proto_cand_of("given"), PROTO_CAND_NONE);
    CHECK_INT(proto_cand_of(NULL), PROTO_CAND_NONE);
}

/* ---- wormhole codes (PROTOCOL.md section 20) ---- */

/* n bytes of first, first+1, ... in standard base64 into out (static, for one use at a time) */
static const char *b64_of(char *out, size_t cap, size_t n, unsigned char first)
{
    unsigned char bin[PROTO_CODE_AD_MAX + 2];
    fill(bin, n, first);
    return sodium_bin2base64(out, cap, bin, n, sodium_base64_VARIANT_ORIGINAL);
}

/* A code-* line: snprintf into a static buffer. */
static const char *cline(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *cline(const char *fmt, ...)
{
    static char line[PROTO_MAX_LINE * 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    return line;
}

static void code_fill(struct proto_msg *m, enum proto_type t)
{
    memset(m, 0, sizeof *m);
    m->type = t;
    m->u.code.channel = 7;
    m->u.code.ttl = 600;
    fill(m->u.code.sid, PROTO_CODE_SID_BYTES, 1);
    fill(m->u.code.share, PROTO_CODE_SHARE_BYTES, 2);
    m->u.code.ad_len = 70;
    fill(m->u.code.ad, m->u.code.ad_len, 3);
    fill(m->u.code.tag, PROTO_CODE_TAG_BYTES, 4);
}

/* a code-answer's members, as the server forwards them */
static int code_same(const struct proto_msg *a, const struct proto_msg *b)
{
    return a->u.code.channel == b->u.code.channel && a->u.code.ad_len == b->u.code.ad_len &&
           memcmp(a->u.code.ad, b->u.code.ad, a->u.code.ad_len) == 0 &&
           memcmp(a->u.code.share, b->u.code.share, PROTO_CODE_SHARE_BYTES) == 0 &&
           memcmp(a->u.code.tag, b->u.code.tag, PROTO_CODE_TAG_BYTES) == 0;
}

static void t_codemsg_roundtrip(void)
{
    static const struct {
        enum proto_type t;
        enum proto_dir dir;
    } rt[] = {
        {PROTO_CODE_OPENED, PROTO_TO_PEER},    {PROTO_CODE_POST, PROTO_TO_SERVER},
        {PROTO_CODE_CLAIM, PROTO_TO_SERVER},   {PROTO_CODE_CLAIMED, PROTO_TO_PEER},
        {PROTO_CODE_ANSWER, PROTO_TO_SERVER},  {PROTO_CODE_ANSWER, PROTO_TO_PEER},
        {PROTO_CODE_CONFIRM, PROTO_TO_SERVER}, {PROTO_CODE_CONFIRM, PROTO_TO_PEER},
        {PROTO_CODE_ABORT, PROTO_TO_SERVER},
    };
    struct proto_msg m, o;
    char line[PROTO_MAX_LINE];
    for (size_t i = 0; i < sizeof rt / sizeof rt[0]; i++) {
        enum proto_type t = rt[i].t;
        code_fill(&m, t);
        if (!roundtrip(&m, rt[i].dir, &o))
            continue;
        CHECK_INT(o.u.code.channel, 7);
        if (t == PROTO_CODE_OPENED)
            CHECK(o.u.code.ttl == 600 && memcmp(o.u.code.sid, m.u.code.sid, 16) == 0);
        if (t == PROTO_CODE_CLAIMED)
            CHECK(memcmp(o.u.code.sid, m.u.code.sid, 16) == 0 &&
                  memcmp(o.u.code.share, m.u.code.share, 32) == 0 && o.u.code.ad_len == 70 &&
                  memcmp(o.u.code.ad, m.u.code.ad, 70) == 0);
        if (t == PROTO_CODE_ANSWER)
            CHECK(o.u.code.ad_len == 70 && memcmp(o.u.code.ad, m.u.code.ad, 70) == 0 &&
                  memcmp(o.u.code.tag, m.u.code.tag, 64) == 0 &&
                  memcmp(o.u.code.share, m.u.code.share, 32) == 0);
        if (t == PROTO_CODE_CONFIRM)
            CHECK(memcmp(o.u.code.tag, m.u.code.tag, 64) == 0 && o.u.code.ad_len == 0);
    }
    /* code-open: ttl only when given */
    code_fill(&m, PROTO_CODE_OPEN);
    m.u.code.ttl = 0;
    CHECK(enc_z(&m, line, sizeof line) > 0 && strcmp(line, "{\"type\":\"code-open\"}\n") == 0);
    if (roundtrip(&m, PROTO_TO_SERVER, &o))
        CHECK_INT(o.u.code.ttl, 0);
    m.u.code.ttl = PROTO_CODE_TTL_MAX;
    if (roundtrip(&m, PROTO_TO_SERVER, &o))
        CHECK_INT(o.u.code.ttl, PROTO_CODE_TTL_MAX);
    /* the extremes of every range: channel 1 and 999999, ad of 1 and 256 bytes */
    code_fill(&m, PROTO_CODE_ANSWER);
    m.u.code.channel = PROTO_CODE_CHANNEL_MAX;
    m.u.code.ad_len = PROTO_CODE_AD_MAX;
    fill(m.u.code.ad, PROTO_CODE_AD_MAX, 9);
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK(o.u.code.channel == PROTO_CODE_CHANNEL_MAX && code_same(&m, &o));
    m.u.code.channel = 1;
    m.u.code.ad_len = 1;
    if (roundtrip(&m, PROTO_TO_SERVER, &o))
        CHECK(o.u.code.channel == 1 && code_same(&m, &o));
    /* the byte sizes on the wire */
    code_fill(&m, PROTO_CODE_CLAIMED);
    m.u.code.ad_len = 1;
    CHECK(enc_z(&m, line, sizeof line) > 0 &&
          strcmp(line,
                 "{\"type\":\"code-claimed\",\"channel\":7,\"sid\":\"AQIDBAUGBwgJCgsMDQ4PEA==\","
                 "\"share\":\"AgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fICE=\",\"ad\":\"Aw==\"}\n") ==
              0);
    /* an encoder never writes what the decoder refuses */
    code_fill(&m, PROTO_CODE_POST);
    m.u.code.channel = 0;
    CHECK_INT(enc_z(&m, line, sizeof line), -1);
    m.u.code.channel = PROTO_CODE_CHANNEL_MAX + 1;
    CHECK_INT(enc_z(&m, line, sizeof line), -1);
    code_fill(&m, PROTO_CODE_POST);
    m.u.code.ad_len = 0;
    CHECK_INT(enc_z(&m, line, sizeof line), -1);
    m.u.code.ad_len = PROTO_CODE_AD_MAX + 1;
    CHECK_INT(enc_z(&m, line, sizeof line), -1);
    code_fill(&m, PROTO_CODE_OPENED);
    m.u.code.ttl = 0;
    CHECK_INT(enc_z(&m, line, sizeof line), -1);
    code_fill(&m, PROTO_CODE_OPEN);
    m.u.code.ttl = PROTO_CODE_TTL_MAX + 1;
    CHECK_INT(enc_z(&m, line, sizeof line), -1);
    /* the longest line the mailbox sends fits a line */
    code_fill(&m, PROTO_CODE_ANSWER);
    m.u.code.channel = PROTO_CODE_CHANNEL_MAX;
    m.u.code.ad_len = PROTO_CODE_AD_MAX;
    CHECK(enc_z(&m, line, sizeof line) > 0 && strlen(line) < 700);
}

static void t_codemsg_reject(void)
{
    char sid[64], share[64], ad[400], tag[128], big[400], s15[64], s17[64], sh31[64], sh33[64];
    char t63[128], t65[128];
    b64_of(sid, sizeof sid, 16, 1);
    b64_of(share, sizeof share, 32, 2);
    b64_of(ad, sizeof ad, 5, 3);
    b64_of(tag, sizeof tag, 64, 4);
    b64_of(big, sizeof big, PROTO_CODE_AD_MAX + 1, 5);
    b64_of(s15, sizeof s15, 15, 1);
    b64_of(s17, sizeof s17, 17, 1);
    b64_of(sh31, sizeof sh31, 31, 1);
    b64_of(sh33, sizeof sh33, 33, 1);
    b64_of(t63, sizeof t63, 63, 1);
    b64_of(t65, sizeof t65, 65, 1);

    /* the good lines, for the record */
    ACCEPT(PROTO_TO_SERVER, "{\"type\":\"code-open\"}");
    ACCEPT(PROTO_TO_SERVER, "{\"type\":\"code-open\",\"ttl\":1}");
    ACCEPT(PROTO_TO_SERVER, "{\"type\":\"code-claim\",\"channel\":999999}");
    ACCEPT(PROTO_TO_SERVER, cline("{\"type\":\"code-post\",\"channel\":1,\"share\":\"%s\","
                                  "\"ad\":\"%s\"}",
                                  share, ad));
    CHECK(msg_.u.code.ad_len == 5 && msg_.u.code.ad[4] == 7);
    ACCEPT(PROTO_TO_PEER, cline("{\"type\":\"code-opened\",\"channel\":12,\"sid\":\"%s\","
                                "\"ttl\":600}",
                                sid));
    /* a server may add members (a peer tolerates them, as for every server message) */
    ACCEPT(PROTO_TO_PEER, cline("{\"type\":\"code-opened\",\"channel\":12,\"sid\":\"%s\","
                                "\"ttl\":600,\"later\":1}",
                                sid));

    static const char *const chan_bad[] = {"0",    "-1",   "1000000", "1.0",       "\"7\"",
                                           "true", "null", "1e3",     "4294967303"};
    for (size_t i = 0; i < sizeof chan_bad / sizeof chan_bad[0]; i++) {
        REJECT(PROTO_TO_SERVER, cline("{\"type\":\"code-claim\",\"channel\":%s}", chan_bad[i]),
               PROTO_E_FIELD);
        REJECT(PROTO_TO_SERVER, cline("{\"type\":\"code-abort\",\"channel\":%s}", chan_bad[i]),
               PROTO_E_FIELD);
        REJECT(PROTO_TO_PEER,
               cline("{\"type\":\"code-confirm\",\"channel\":%s,\"tag\":\"%s\"}", chan_bad[i], tag),
               PROTO_E_FIELD);
    }
    /* every member is required */
    REJECT(PROTO_TO_SERVER, "{\"type\":\"code-claim\"}", PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, cline("{\"type\":\"code-post\",\"channel\":1,\"share\":\"%s\"}", share),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, cline("{\"type\":\"code-post\",\"channel\":1,\"ad\":\"%s\"}", ad),
           PROTO_E_FIELD);
    REJECT(
        PROTO_TO_SERVER,
        cline("{\"type\":\"code-answer\",\"channel\":1,\"share\":\"%s\",\"ad\":\"%s\"}", share, ad),
        PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"code-confirm\",\"channel\":1}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, cline("{\"type\":\"code-opened\",\"channel\":1,\"sid\":\"%s\"}", sid),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER, "{\"type\":\"code-opened\",\"channel\":1,\"ttl\":9}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           cline("{\"type\":\"code-claimed\",\"channel\":1,\"share\":\"%s\",\"ad\":\"%s\"}", share,
                 ad),
           PROTO_E_FIELD);
    /* ttl */
    REJECT(PROTO_TO_SERVER, "{\"type\":\"code-open\",\"ttl\":0}", PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"code-open\",\"ttl\":3601}", PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"code-open\",\"ttl\":\"60\"}", PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           cline("{\"type\":\"code-opened\",\"channel\":1,\"sid\":\"%s\",\"ttl\":0}", sid),
           PROTO_E_FIELD);
    /* lengths */
    REJECT(PROTO_TO_PEER,
           cline("{\"type\":\"code-opened\",\"channel\":1,\"sid\":\"%s\",\"ttl\":9}", s15),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           cline("{\"type\":\"code-opened\",\"channel\":1,\"sid\":\"%s\",\"ttl\":9}", s17),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER,
           cline("{\"type\":\"code-post\",\"channel\":1,\"share\":\"%s\",\"ad\":\"%s\"}", sh31, ad),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER,
           cline("{\"type\":\"code-post\",\"channel\":1,\"share\":\"%s\",\"ad\":\"%s\"}", sh33, ad),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER,
           cline("{\"type\":\"code-post\",\"channel\":1,\"share\":\"%s\",\"ad\":\"\"}", share),
           PROTO_E_FIELD);
    REJECT(
        PROTO_TO_SERVER,
        cline("{\"type\":\"code-post\",\"channel\":1,\"share\":\"%s\",\"ad\":\"%s\"}", share, big),
        PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, cline("{\"type\":\"code-confirm\",\"channel\":1,\"tag\":\"%s\"}", t63),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, cline("{\"type\":\"code-confirm\",\"channel\":1,\"tag\":\"%s\"}", t65),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_PEER,
           cline("{\"type\":\"code-answer\",\"channel\":1,\"share\":\"%s\",\"ad\":"
                 "\"%s\",\"tag\":\"%s\"}",
                 share, big, tag),
           PROTO_E_FIELD);
    /* non-canonical base64: spare bits set, no padding, URL alphabet, blanks, not a string */
    static const char *const ad_bad[] = {"Aw==x", "Ax==",  "Aw",    "Aw=",     "A===",
                                         "-_8=",  "Aw ==", " Aw==", "Aw==\\n", "QUJD\\r\\nREVG"};
    for (size_t i = 0; i < sizeof ad_bad / sizeof ad_bad[0]; i++)
        REJECT(PROTO_TO_SERVER,
               cline("{\"type\":\"code-post\",\"channel\":1,\"share\":\"%s\",\"ad\":\"%s\"}", share,
                     ad_bad[i]),
               PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER,
           cline("{\"type\":\"code-post\",\"channel\":1,\"share\":\"%s\",\"ad\":[1]}", share),
           PROTO_E_FIELD);
    share[42] = 'B'; /* 32 bytes leave 2 spare bits in the last character */
    REJECT(
        PROTO_TO_SERVER,
        cline("{\"type\":\"code-post\",\"channel\":1,\"share\":\"%s\",\"ad\":\"%s\"}", share, ad),
        PROTO_E_FIELD);
    b64_of(share, sizeof share, 32, 2);
    tag[85] = 'B'; /* 64 bytes: 4 spare bits */
    REJECT(PROTO_TO_SERVER, cline("{\"type\":\"code-confirm\",\"channel\":1,\"tag\":\"%s\"}", tag),
           PROTO_E_FIELD);
    b64_of(tag, sizeof tag, 64, 4);
    /* unknown members, and members of another code-* type, are refused towards the server */
    REJECT(PROTO_TO_SERVER, "{\"type\":\"code-open\",\"channel\":5}", PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"code-claim\",\"channel\":5,\"ttl\":10}", PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER, cline("{\"type\":\"code-abort\",\"channel\":5,\"tag\":\"%s\"}", tag),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER,
           cline("{\"type\":\"code-post\",\"channel\":1,\"share\":\"%s\",\"ad\":\"%s\",\"sid\":"
                 "\"%s\"}",
                 share, ad, sid),
           PROTO_E_FIELD);
    REJECT(PROTO_TO_SERVER,
           cline("{\"type\":\"code-confirm\",\"channel\":1,\"tag\":\"%s\","
                 "\"why\":\"x\"}",
                 tag),
           PROTO_E_FIELD);
    /* direction: what only the server sends, what only a peer sends, nothing peer-to-peer */
    REJECT(PROTO_TO_SERVER,
           cline("{\"type\":\"code-opened\",\"channel\":1,\"sid\":\"%s\","
                 "\"ttl\":9}",
                 sid),
           PROTO_E_UNEXPECTED);
    REJECT(PROTO_TO_SERVER,
           cline("{\"type\":\"code-claimed\",\"channel\":1,\"sid\":\"%s\",\"share\":\"%s\",\"ad\":"
                 "\"%s\"}",
                 sid, share, ad),
           PROTO_E_UNEXPECTED);
    REJECT(PROTO_TO_PEER, "{\"type\":\"code-open\"}", PROTO_E_UNEXPECTED);
    REJECT(PROTO_TO_PEER, "{\"type\":\"code-claim\",\"channel\":1}", PROTO_E_UNEXPECTED);
    REJECT(PROTO_TO_PEER, "{\"type\":\"code-abort\",\"channel\":1}", PROTO_E_UNEXPECTED);
    REJECT(
        PROTO_TO_PEER,
        cline("{\"type\":\"code-post\",\"channel\":1,\"share\":\"%s\",\"ad\":\"%s\"}", share, ad),
        PROTO_E_UNEXPECTED);
    REJECT(PROTO_PEER_TO_PEER, "{\"type\":\"code-open\"}", PROTO_E_UNEXPECTED);
    REJECT(PROTO_PEER_TO_PEER,
           cline("{\"type\":\"code-confirm\",\"channel\":1,\"tag\":\"%s\"}", tag),
           PROTO_E_UNEXPECTED);
    /* type names are exact */
    REJECT(PROTO_TO_SERVER, "{\"type\":\"code_open\"}", PROTO_E_TYPE);
    REJECT(PROTO_TO_SERVER, "{\"type\":\"Code-open\"}", PROTO_E_TYPE);
}

static void t_codemsg_feature(void)
{
    struct proto_msg m, o;
    char line[PROTO_MAX_LINE];
    memset(&m, 0, sizeof m);
    m.type = PROTO_CHALLENGE;
    fill(m.u.challenge.nonce, PROTO_NONCE_BYTES, 0);
    m.u.challenge.feat_code = true;
    CHECK(enc_z(&m, line, sizeof line) > 0 && strstr(line, "\"features\":[\"code\"]"));
    if (roundtrip(&m, PROTO_TO_PEER, &o))
        CHECK(o.u.challenge.feat_code && !o.u.challenge.feat_report);
    m.u.challenge.feat_report = m.u.challenge.feat_replace = true;
    CHECK(enc_z(&m, line, sizeof line) > 0 &&
          strstr(line, "\"features\":[\"report\",\"replace\",\"code\"]"));
    ACCEPT(PROTO_TO_PEER, CHAL_F(",\"features\":[\"codes\",\"Code\"]"));
    CHECK(!msg_.u.challenge.feat_code);
    ACCEPT(PROTO_TO_PEER, CHAL_F(",\"features\":[\"code\"]"));
    CHECK(msg_.u.challenge.feat_code);
    /* the new error codes: non-fatal, not passing (a code does not come back by waiting) */
    CHECK_STR(proto_code_name(PC_CODE_UNKNOWN), "code-unknown");
    CHECK_STR(proto_code_name(PC_CODE_EXPIRED), "code-expired");
    CHECK_STR(proto_code_name(PC_CODE_WRONG), "code-wrong");
    for (int c = PC_CODE_UNKNOWN; c <= PC_CODE_WRONG; c++) {
        CHECK_INT(proto_code_fatal((enum proto_code)c), PC_NONFATAL);
        CHECK(!proto_code_passing((enum proto_code)c));
    }
    CHECK_STR(proto_type_name(PROTO_CODE_ABORT), "code-abort");
    CHECK_STR(proto_type_name(PROTO_CODE_OPENED), "code-opened");
}

CHECK_MAIN(TEST(t_roundtrip_hello), TEST(t_roundtrip_welcome), TEST(t_roundtrip_connect),
           TEST(t_roundtrip_punch), TEST(t_roundtrip_error), TEST(t_roundtrip_ping_pong),
           TEST(t_roundtrip_shake), TEST(t_shake_crypto_fields), TEST(t_encode_limits),
           TEST(t_err_codes), TEST(t_reject_not_json), TEST(t_reject_not_object),
           TEST(t_reject_type), TEST(t_reject_direction), TEST(t_reject_missing_field),
           TEST(t_reject_ill_typed), TEST(t_unknown_fields), TEST(t_reject_bad_id),
           TEST(t_reject_bad_endpoint), TEST(t_reject_too_many), TEST(t_reject_version),
           TEST(t_line_length), TEST(t_reject_duplicates), TEST(t_reject_nul),
           TEST(t_reject_nested), TEST(t_reject_session), TEST(t_reject_role), TEST(t_fuzz),
           TEST(t_roundtrip_probe), TEST(t_roundtrip_observed), TEST(t_roundtrip_welcome_probe),
           TEST(t_reject_probe), TEST(t_roundtrip_relay), TEST(t_reject_relay),
           TEST(t_roundtrip_challenge), TEST(t_reject_challenge), TEST(t_roundtrip_hello_auth),
           TEST(t_reject_hello_auth), TEST(t_roundtrip_punch_key), TEST(t_admit_relay_probe),
           TEST(t_admit_binding), TEST(t_code_roundtrip), TEST(t_code_unknown),
           TEST(t_code_protocol_md), TEST(t_code_passing_md), TEST(t_names), TEST(t_bday_features),
           TEST(t_bday_hello), TEST(t_bday_punch_roundtrip), TEST(t_bday_punch_reject),
           TEST(t_bday_admit), TEST(t_bday_names), TEST(t_sess_challenge), TEST(t_sess_hello),
           TEST(t_sess_connect), TEST(t_sess_punch), TEST(t_sess_shake), TEST(t_shake_code),
           TEST(t_sess_admit), TEST(t_report_roundtrip), TEST(t_report_reject),
           TEST(t_report_feature), TEST(t_codemsg_roundtrip), TEST(t_codemsg_reject),
           TEST(t_codemsg_feature))
