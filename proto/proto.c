#include "proto/proto.h"
#include "common/endpoint.h"
#include "proto/cpace.h"

#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const proto_names[PROTO_TYPE_COUNT] = {
    "hello",      "welcome",      "connect",     "punch",        "error",       "ping",
    "pong",       "shake",        "confirm",     "probe",        "observed",    "relay",
    "relayed",    "challenge",    "report",      "code-open",    "code-opened", "code-post",
    "code-claim", "code-claimed", "code-answer", "code-confirm", "code-abort"};

/* The server relays the CPace bytes unchanged: the wire's sizes are the PAKE's. */
_Static_assert(PROTO_CODE_SHARE_BYTES == CPACE_SHARE_BYTES, "code share size");
_Static_assert(PROTO_CODE_TAG_BYTES == CPACE_TAG_BYTES, "code tag size");
_Static_assert(PROTO_CODE_AD_MAX == CPACE_AD_MAX, "code ad size");
_Static_assert(PROTO_CODE_SID_BYTES <= CPACE_SID_MAX, "code sid size");
_Static_assert(PROTO_TYPE_COUNT <= 32, "proto_allowed is a 32-bit mask per direction");

static const char *const proto_paths[] = {"any", "direct", "relay"};
static const char *const proto_nats[] = {"unknown", "independent", "dependent"};
static const char *const proto_roles[] = {"initiator", "responder"};
static const char *const proto_bday_roles[] = {"hard", "easy"};
static const char *const proto_results[PROTO_RES_COUNT] = {"direct", "relay", "failed"};
static const char *const proto_cands[PROTO_CAND_COUNT] = {
    "none", "public", "port-preserved", "lan", "ipv6", "inbound", "birthday", "relay"};

#define PROTO_COUNT(a) (sizeof a / sizeof a[0])

/* Fields each type may carry, "type" included; NULL-terminated. */
static const char *const proto_fields[PROTO_TYPE_COUNT][20] = {
    [PROTO_HELLO] = {"type", "version", "id", "endpoints", "path", "aux", "key", "sig", "admit",
                     "birthday", "features", "replace", NULL},
    [PROTO_WELCOME] = {"type", "version", "id", "observed", "keepalive", "relay", "probe_port",
                       "probe_token", "probe6", NULL},
    [PROTO_CONNECT] = {"type", "target", "resume", NULL},
    [PROTO_PUNCH] = {"type", "session", "peer", "role", "observed", "endpoints", "start_in_us",
                     "relay", "token", "direct", "reason", "nat", "key", "relay_addr", "observed6",
                     "birthday", "peer_features", "resume", NULL},
    [PROTO_ERROR] = {"type", "code", "message", "fatal", NULL},
    [PROTO_PING] = {"type", "seq", NULL},
    [PROTO_PONG] = {"type", "seq", NULL},
    [PROTO_SHAKE] = {"type", "version", "session", "from", "to", "key", "eph", "sig", "resume",
                     "code", NULL},
    [PROTO_CONFIRM] = {"type", "session", "sig", NULL},
    [PROTO_PROBE] = {"type", "version", "token", "admit", NULL},
    [PROTO_OBSERVED] = {"type", "observed", "mapping", NULL},
    [PROTO_RELAY] = {"type", "version", "session", "token", "admit", NULL},
    [PROTO_RELAYED] = {"type", "session", NULL},
    [PROTO_CHALLENGE] = {"type", "version", "nonce", "features", NULL},
    [PROTO_REPORT] = {"type", "session", "result", "candidate", "attempts", "ms", "nat", NULL},
    [PROTO_CODE_OPEN] = {"type", "ttl", NULL},
    [PROTO_CODE_OPENED] = {"type", "channel", "sid", "ttl", NULL},
    [PROTO_CODE_POST] = {"type", "channel", "share", "ad", NULL},
    [PROTO_CODE_CLAIM] = {"type", "channel", NULL},
    [PROTO_CODE_CLAIMED] = {"type", "channel", "sid", "share", "ad", NULL},
    [PROTO_CODE_ANSWER] = {"type", "channel", "share", "ad", "tag", NULL},
    [PROTO_CODE_CONFIRM] = {"type", "channel", "tag", NULL},
    [PROTO_CODE_ABORT] = {"type", "channel", NULL},
};

static const unsigned proto_allowed[] = {
    [PROTO_TO_SERVER] = 1u << PROTO_HELLO | 1u << PROTO_CONNECT | 1u << PROTO_PING |
                        1u << PROTO_PONG | 1u << PROTO_PROBE | 1u << PROTO_RELAY |
                        1u << PROTO_REPORT | 1u << PROTO_CODE_OPEN | 1u << PROTO_CODE_POST |
                        1u << PROTO_CODE_CLAIM | 1u << PROTO_CODE_ANSWER |
                        1u << PROTO_CODE_CONFIRM | 1u << PROTO_CODE_ABORT,
    [PROTO_TO_PEER] = 1u << PROTO_WELCOME | 1u << PROTO_PUNCH | 1u << PROTO_ERROR |
                      1u << PROTO_PING | 1u << PROTO_PONG | 1u << PROTO_OBSERVED |
                      1u << PROTO_RELAYED | 1u << PROTO_CHALLENGE | 1u << PROTO_CODE_OPENED |
                      1u << PROTO_CODE_CLAIMED | 1u << PROTO_CODE_ANSWER | 1u << PROTO_CODE_CONFIRM,
    [PROTO_PEER_TO_PEER] = 1u << PROTO_SHAKE | 1u << PROTO_CONFIRM,
};

enum proto_code proto_err_pc(enum proto_err e)
{
    static const enum proto_code codes[] = {
        [PROTO_E_JSON] = PC_BAD_JSON,
        [PROTO_E_MESSAGE] = PC_BAD_MESSAGE,
        [PROTO_E_TYPE] = PC_UNKNOWN_TYPE,
        [PROTO_E_UNEXPECTED] = PC_UNEXPECTED_TYPE,
        [PROTO_E_FIELD] = PC_BAD_FIELD,
        [PROTO_E_ID] = PC_BAD_ID,
        [PROTO_E_ENDPOINT] = PC_BAD_ENDPOINT,
        [PROTO_E_TOO_MANY] = PC_TOO_MANY_ENDPOINTS,
        [PROTO_E_VERSION] = PC_BAD_VERSION,
        [PROTO_E_LINE] = PC_LINE_TOO_LONG,
    };
    return e != PROTO_OK && (unsigned)e < sizeof codes / sizeof codes[0] ? codes[e] : PC_INTERNAL;
}

const char *proto_err_code(enum proto_err e)
{
    return e == PROTO_OK ? "ok" : proto_code_name(proto_err_pc(e));
}

const char *proto_type_name(enum proto_type t)
{
    return (unsigned)t < PROTO_TYPE_COUNT ? proto_names[t] : "?";
}

const char *proto_path_name(enum proto_path p)
{
    return (unsigned)p < PROTO_COUNT(proto_paths) ? proto_paths[p] : "?";
}

const char *proto_nat_name(enum proto_nat n)
{
    return (unsigned)n < PROTO_COUNT(proto_nats) ? proto_nats[n] : "?";
}

const char *proto_role_name(enum proto_role r)
{
    return (unsigned)r < PROTO_COUNT(proto_roles) ? proto_roles[r] : "?";
}

const char *proto_bday_role_name(enum proto_bday_role r)
{
    return (unsigned)r < PROTO_COUNT(proto_bday_roles) ? proto_bday_roles[r] : "?";
}

/* The index of text in names, or -1. */
static int proto_lookup(const char *text, const char *const *names, int n)
{
    for (int i = 0; text && i < n; i++)
        if (strcmp(text, names[i]) == 0)
            return i;
    return -1;
}

bool proto_path_parse(const char *text, enum proto_path *out)
{
    int i = proto_lookup(text, proto_paths, (int)PROTO_COUNT(proto_paths));
    if (i < 0)
        return false;
    *out = (enum proto_path)i;
    return true;
}

const char *proto_result_name(enum proto_result r)
{
    return (unsigned)r < PROTO_COUNT(proto_results) ? proto_results[r] : "?";
}

const char *proto_cand_name(enum proto_cand c)
{
    return (unsigned)c < PROTO_COUNT(proto_cands) ? proto_cands[c] : "?";
}

enum proto_cand proto_cand_of(const char *kind)
{
    int i = proto_lookup(kind, proto_cands, (int)PROTO_COUNT(proto_cands));
    return i < 0 ? PROTO_CAND_NONE : (enum proto_cand)i;
}

bool proto_bday_role_parse(const char *text, enum proto_bday_role *out)
{
    int i = proto_lookup(text, proto_bday_roles, (int)PROTO_COUNT(proto_bday_roles));
    if (i < 0)
        return false;
    *out = (enum proto_bday_role)i;
    return true;
}

bool proto_valid_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok || n >= PROTO_MAX_ID)
            return false;
    }
    return n > 0;
}

bool proto_valid_session(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    return n == PROTO_SESSION_LEN;
}

/* ---- decoding helpers: each returns PROTO_OK or an error with the reason in why ---- */

#define PD_TRY(expr)                                                                               \
    do {                                                                                           \
        enum proto_err e_ = (expr);                                                                \
        if (e_ != PROTO_OK)                                                                        \
            return e_;                                                                             \
    } while (0)

struct pd {
    json_t *obj;
    char *why;
    size_t whylen;
};

static enum proto_err pd_fail(struct pd *d, enum proto_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum proto_err pd_fail(struct pd *d, enum proto_err e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->why, d->whylen, fmt, ap);
    va_end(ap);
    return e;
}

static enum proto_err pd_str(struct pd *d, const char *key, char *out, size_t cap)
{
    json_t *v = json_object_get(d->obj, key);
    if (!v)
        return pd_fail(d, PROTO_E_FIELD, "missing field \"%s\"", key);
    if (!json_is_string(v))
        return pd_fail(d, PROTO_E_FIELD, "field \"%s\" must be a string", key);
    if (json_string_length(v) >= cap || strlen(json_string_value(v)) != json_string_length(v))
        return pd_fail(d, PROTO_E_FIELD, "field \"%s\" is too long or holds NUL", key);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return PROTO_OK;
}

static enum proto_err pd_id(struct pd *d, const char *key, char *out)
{
    char tmp[PROTO_MAX_TEXT + 1];
    enum proto_err e = pd_str(d, key, tmp, sizeof tmp);
    if (e != PROTO_OK)
        return e;
    if (!proto_valid_id(tmp))
        return pd_fail(d, PROTO_E_ID, "field \"%s\" is not an id ([A-Za-z0-9._-]{1,%d})", key,
                       PROTO_MAX_ID);
    memcpy(out, tmp, strlen(tmp) + 1);
    return PROTO_OK;
}

static enum proto_err pd_session(struct pd *d, const char *key, char *out)
{
    char tmp[PROTO_MAX_TEXT + 1];
    enum proto_err e = pd_str(d, key, tmp, sizeof tmp);
    if (e != PROTO_OK)
        return e;
    if (!proto_valid_session(tmp))
        return pd_fail(d, PROTO_E_FIELD, "field \"%s\" must be %d lowercase hex digits", key,
                       PROTO_SESSION_LEN);
    memcpy(out, tmp, PROTO_SESSION_LEN + 1);
    return PROTO_OK;
}

static enum proto_err pd_int(struct pd *d, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    json_t *v = json_object_get(d->obj, key);
    if (!v)
        return pd_fail(d, PROTO_E_FIELD, "missing field \"%s\"", key);
    if (!json_is_integer(v))
        return pd_fail(d, PROTO_E_FIELD, "field \"%s\" must be an integer", key);
    if (json_integer_value(v) < lo || json_integer_value(v) > hi)
        return pd_fail(d, PROTO_E_FIELD, "field \"%s\" is out of range", key);
    *out = json_integer_value(v);
    return PROTO_OK;
}

static enum proto_err pd_version(struct pd *d, int *out)
{
    int64_t v;
    enum proto_err e = pd_int(d, "version", 0, INT32_MAX, &v);
    if (e != PROTO_OK)
        return e;
    if (v != PROTO_VERSION) {
        snprintf(d->why, d->whylen, "protocol version %lld is not supported (this side speaks %d)",
                 (long long)v, PROTO_VERSION);
        return PROTO_E_VERSION;
    }
    *out = (int)v;
    return PROTO_OK;
}

static enum proto_err pd_endpoint_text(struct pd *d, const char *key, json_t *v,
                                       struct sockaddr_storage *out)
{
    char err[160] = "endpoint holds a NUL character";
    if (!json_is_string(v))
        return pd_fail(d, PROTO_E_FIELD, "field \"%s\" must hold endpoint strings", key);
    if (ep_parse(json_string_value(v), out, err, sizeof err) < 0 ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        snprintf(d->why, d->whylen, "field \"%s\": %s", key, err);
        return PROTO_E_ENDPOINT;
    }
    return PROTO_OK;
}

static enum proto_err pd_endpoint(struct pd *d, const char *key, struct sockaddr_storage *out)
{
    json_t *v = json_object_get(d->obj, key);
    if (!v)
        return pd_fail(d, PROTO_E_FIELD, "missing field \"%s\"", key);
    return pd_endpoint_text(d, key, v, out);
}

static enum proto_err pd_eplist(struct pd *d, const char *key, struct proto_eplist *out)
{
    json_t *v = json_object_get(d->obj, key);
    size_t i;
    json_t *item;
    out->n = 0;
    if (!v)
        return pd_fail(d, PROTO_E_FIELD, "missing field \"%s\"", key);
    if (!json_is_array(v))
        return pd_fail(d, PROTO_E_FIELD, "field \"%s\" must be an array", key);
    if (json_array_size(v) > PROTO_MAX_ENDPOINTS) {
        snprintf(d->why, d->whylen, "field \"%s\" lists %zu endpoints (at most %d)", key,
                 json_array_size(v), PROTO_MAX_ENDPOINTS);
        return PROTO_E_TOO_MANY;
    }
    json_array_foreach(v, i, item)
    {
        enum proto_err e = pd_endpoint_text(d, key, item, &out->ep[i]);
        if (e != PROTO_OK)
            return e;
        out->n++;
    }
    return PROTO_OK;
}

/* Optional fields: absent leaves *out as the caller's default. */
static enum proto_err pd_opt_bool(struct pd *d, const char *key, bool *out)
{
    json_t *v = json_object_get(d->obj, key);
    if (!v)
        return PROTO_OK;
    if (!json_is_boolean(v))
        return pd_fail(d, PROTO_E_FIELD, "field \"%s\" must be true or false", key);
    *out = json_is_true(v);
    return PROTO_OK;
}

static enum proto_err pd_opt_enum(struct pd *d, const char *key, const char *const *names,
                                  int n, int *out)
{
    char tmp[32];
    int i;
    if (!json_object_get(d->obj, key))
        return PROTO_OK;
    PD_TRY(pd_str(d, key, tmp, sizeof tmp));
    if ((i = proto_lookup(tmp, names, n)) < 0)
        return pd_fail(d, PROTO_E_FIELD, "field \"%s\" has an unknown value", key);
    *out = i;
    return PROTO_OK;
}

static enum proto_err pd_opt_token(struct pd *d, const char *key, char *out)
{
    if (!json_object_get(d->obj, key))
        return PROTO_OK;
    return pd_session(d, key, out);
}

/* The longest binary member (code ad) and its base64 text with the NUL. */
#define PB_MAX_BYTES PROTO_CODE_AD_MAX
#define PB_MAX_TEXT sodium_base64_ENCODED_LEN(PB_MAX_BYTES, sodium_base64_VARIANT_ORIGINAL)
_Static_assert(PROTO_SIG_BYTES <= PB_MAX_BYTES, "the longest binary member");

/* Standard base64 with padding that decodes to min..max bytes (*got of them; max <=
 * PB_MAX_BYTES). Only the canonical spelling is accepted (re-encoding must give the same text),
 * so one value has one form on the wire. The length is checked before anything is decoded. */
static bool pb_decode(const char *text, size_t len, unsigned char *out, size_t min, size_t max,
                      size_t *got)
{
    char again[PB_MAX_TEXT];
    *got = 0;
    if (len < sodium_base64_ENCODED_LEN(min, sodium_base64_VARIANT_ORIGINAL) - 1 ||
        len > sodium_base64_ENCODED_LEN(max, sodium_base64_VARIANT_ORIGINAL) - 1 ||
        strlen(text) != len ||
        sodium_base642bin(out, max, text, len, NULL, got, NULL, sodium_base64_VARIANT_ORIGINAL) !=
            0 ||
        *got < min || *got > max)
        return false;
    sodium_bin2base64(again, sizeof again, out, *got, sodium_base64_VARIANT_ORIGINAL);
    return strcmp(again, text) == 0;
}

/* A required binary member of min..max bytes; *got its length. */
static enum proto_err pd_b64_range(struct pd *d, const char *key, unsigned char *out, size_t min,
                                   size_t max, size_t *got)
{
    json_t *v = json_object_get(d->obj, key);
    if (!v)
        return pd_fail(d, PROTO_E_FIELD, "missing field \"%s\"", key);
    if (!json_is_string(v) ||
        !pb_decode(json_string_value(v), json_string_length(v), out, min, max, got)) {
        if (min == max)
            snprintf(d->why, d->whylen, "field \"%s\" must be %zu bytes in standard base64", key,
                     min);
        else
            snprintf(d->why, d->whylen, "field \"%s\" must be %zu to %zu bytes in standard base64",
                     key, min, max);
        return PROTO_E_FIELD;
    }
    return PROTO_OK;
}

static enum proto_err pd_b64(struct pd *d, const char *key, unsigned char *out, size_t n)
{
    size_t got;
    return pd_b64_range(d, key, out, n, n, &got);
}

/* An optional binary field: *has tells whether it was there. */
static enum proto_err pd_opt_b64(struct pd *d, const char *key, unsigned char *out, size_t n,
                                 bool *has)
{
    *has = json_object_get(d->obj, key) != NULL;
    return *has ? pd_b64(d, key, out, n) : PROTO_OK;
}

static enum proto_err pd_fields(struct pd *d, enum proto_type t, bool strict)
{
    const char *key;
    json_t *v;
    if (!strict)
        return PROTO_OK;
    json_object_foreach(d->obj, key, v)
    {
        bool known = false;
        for (const char *const *f = proto_fields[t]; *f && !known; f++)
            known = strcmp(*f, key) == 0;
        if (!known) {
            snprintf(d->why, d->whylen, "unknown field \"%.64s\" in %s", key, proto_names[t]);
            return PROTO_E_FIELD;
        }
    }
    return PROTO_OK;
}

/* ---- birthday punching (PROTOCOL.md, "Birthday punching") ---- */

/* The members an object inside a message may carry; NULL-terminated. */
static const char *const proto_bday_caps_members[] = {"k", "m", NULL};
static const char *const proto_bday_members[] = {"role",    "target", "k",     "m",
                                                 "ttl",     "pace_ms", "ports", "easy_delay_us",
                                                 NULL};

/* The object member key of d's message as a sub-decoder (the same reason buffer), or a
 * bad-field when it is there but not an object. *has: whether it is there. */
static enum proto_err pd_sub(struct pd *d, const char *key, struct pd *sub, bool *has)
{
    json_t *v = json_object_get(d->obj, key);
    *has = v != NULL;
    *sub = (struct pd){v, d->why, d->whylen};
    if (v && !json_is_object(v))
        return pd_fail(d, PROTO_E_FIELD, "field \"%s\" must be an object", key);
    return PROTO_OK;
}

/* Inside a strict message an object takes only its own members, as the message does. */
static enum proto_err pd_members(struct pd *sub, const char *key, const char *const *names,
                                 bool strict)
{
    const char *k;
    json_t *v;
    if (!strict)
        return PROTO_OK;
    json_object_foreach(sub->obj, k, v)
    {
        const char *const *n = names;
        while (*n && strcmp(*n, k) != 0)
            n++;
        if (!*n)
            return pd_fail(sub, PROTO_E_FIELD, "unknown member \"%.64s\" in \"%s\"", k, key);
    }
    return PROTO_OK;
}

/* Puts "in KEY: " before the reason a member's check gave. */
static enum proto_err pd_in(struct pd *d, const char *key, enum proto_err e)
{
    char inner[PROTO_MAX_TEXT];
    if (e == PROTO_OK)
        return e;
    snprintf(inner, sizeof inner, "%s", d->why);
    snprintf(d->why, d->whylen, "in \"%s\": %s", key, inner);
    return e;
}

static enum proto_err pd_int_to(struct pd *d, const char *key, int64_t lo, int64_t hi, int *out)
{
    int64_t v;
    PD_TRY(pd_int(d, key, lo, hi, &v));
    *out = (int)v;
    return PROTO_OK;
}

/* challenge.features: a short array of short strings (PROTO_MAX_FEATURES of at most
 * PROTO_MAX_FEATURE_LEN bytes, proto.h); names this side does not know are skipped, so that a
 * server can offer more than an older peer knows. */
static enum proto_err pd_features(struct pd *d, bool *birthday, bool *resume, bool *report,
                                  bool *replace, bool *code)
{
    json_t *v = json_object_get(d->obj, "features"), *item;
    size_t i;
    if (!v)
        return PROTO_OK;
    if (!json_is_array(v) || json_array_size(v) > PROTO_MAX_FEATURES)
        return pd_fail(d, PROTO_E_FIELD, "field \"features\" must be an array of at most %d strings",
                       PROTO_MAX_FEATURES);
    json_array_foreach(v, i, item)
    {
        const char *s = json_string_value(item);
        if (!s || json_string_length(item) > PROTO_MAX_FEATURE_LEN ||
            strlen(s) != json_string_length(item))
            return pd_fail(d, PROTO_E_FIELD,
                           "field \"features\" must hold strings of at most %d bytes",
                           PROTO_MAX_FEATURE_LEN);
        if (strcmp(s, "birthday") == 0)
            *birthday = true;
        if (strcmp(s, "resume") == 0)
            *resume = true;
        if (strcmp(s, "report") == 0)
            *report = true;
        if (strcmp(s, "replace") == 0)
            *replace = true;
        if (strcmp(s, "code") == 0)
            *code = true;
    }
    return PROTO_OK;
}

/* ---- sessions (PROTOCOL.md section 18, docs/design/resume.md 4.1) ---- */

/* The end-to-end feature names this version knows; bit i is PROTO_FEAT_* (1u << i). */
static const char *const proto_feat_names[] = {"resume"};
static const char *const proto_resume_members[] = {"v", "buf", "timeout", NULL};

/* One entry of an end-to-end feature list: 1..PROTO_MAX_FEATURE_LEN bytes, no NUL, not the
 * same as an earlier entry (a list means a set; a repeated name is a sender's bug). */
static enum proto_err pd_feat_item(struct pd *d, const char *key, json_t *list, size_t i)
{
    json_t *item = json_array_get(list, i);
    const char *s = json_string_value(item);
    size_t n = json_string_length(item);
    if (!s || n == 0 || n > PROTO_MAX_FEATURE_LEN || strlen(s) != n)
        return pd_fail(d, PROTO_E_FIELD, "field \"%s\" must hold strings of 1 to %d bytes", key,
                       PROTO_MAX_FEATURE_LEN);
    for (size_t j = 0; j < i; j++)
        if (strcmp(s, json_string_value(json_array_get(list, j))) == 0)
            return pd_fail(d, PROTO_E_FIELD, "field \"%s\" names \"%.32s\" twice", key, s);
    return PROTO_OK;
}

/* hello.features and punch.peer_features: the known names as PROTO_FEAT_* bits (absent: 0);
 * unknown names are accepted and skipped, so that a newer peer can announce more. */
static enum proto_err pd_feat_list(struct pd *d, const char *key, uint32_t *out)
{
    json_t *v = json_object_get(d->obj, key);
    *out = 0;
    if (!v)
        return PROTO_OK;
    if (!json_is_array(v) || json_array_size(v) > PROTO_MAX_FEATURES)
        return pd_fail(d, PROTO_E_FIELD, "field \"%s\" must be an array of at most %d strings", key,
                       PROTO_MAX_FEATURES);
    for (size_t i = 0; i < json_array_size(v); i++) {
        PD_TRY(pd_feat_item(d, key, v, i));
        int b = proto_lookup(json_string_value(json_array_get(v, i)), proto_feat_names,
                             (int)PROTO_COUNT(proto_feat_names));
        if (b >= 0)
            *out |= 1u << b;
    }
    return PROTO_OK;
}

static enum proto_err pd_resume_fields(struct pd *s, struct proto_resume_caps *r)
{
    int64_t v;
    PD_TRY(pd_members(s, "resume", proto_resume_members, true));
    PD_TRY(pd_int(s, "v", 0, INT32_MAX, &v));
    if (v != PROTO_RESUME_V)
        return pd_fail(s, PROTO_E_FIELD, "field \"v\" must be %d", PROTO_RESUME_V);
    r->v = (int)v;
    PD_TRY(pd_int(s, "buf", PROTO_RESUME_BUF_MIN, PROTO_RESUME_BUF_MAX, &v));
    r->buf = (uint64_t)v;
    PD_TRY(pd_int(s, "timeout", 1, PROTO_RESUME_TIMEOUT_MAX, &v));
    r->timeout = (uint32_t)v;
    return PROTO_OK;
}

/* shake.resume {v, buf, timeout}: exactly these members, each in its range (the shake is
 * strict: a value the signature covers has one meaning only). */
static enum proto_err pd_resume(struct pd *d, struct proto_resume_caps *out)
{
    struct pd sub;
    PD_TRY(pd_sub(d, "resume", &sub, &out->has));
    if (!out->has)
        return PROTO_OK;
    return pd_in(d, "resume", pd_resume_fields(&sub, out));
}

/* hello.birthday: {"k": K, "m": M}, the peer's own limits. */
static enum proto_err pd_bday_caps(struct pd *d, struct proto_bday_caps *out)
{
    struct pd sub;
    PD_TRY(pd_sub(d, "birthday", &sub, &out->has));
    if (!out->has)
        return PROTO_OK;
    PD_TRY(pd_in(d, "birthday", pd_members(&sub, "birthday", proto_bday_caps_members, true)));
    PD_TRY(pd_in(d, "birthday", pd_int_to(&sub, "k", 0, PROTO_BDAY_MAX_K, &out->k)));
    return pd_in(d, "birthday", pd_int_to(&sub, "m", 0, PROTO_BDAY_MAX_M, &out->m));
}

/* "ports": [lo, hi], 1 <= lo <= hi <= 65535. */
static enum proto_err pd_ports(struct pd *d, int *lo, int *hi)
{
    json_t *v = json_object_get(d->obj, "ports");
    json_t *a = json_array_get(v, 0), *b = json_array_get(v, 1);
    if (!v)
        return pd_fail(d, PROTO_E_FIELD, "missing field \"ports\"");
    if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(a) ||
        !json_is_integer(b) || json_integer_value(a) < 1 ||
        json_integer_value(a) > json_integer_value(b) || json_integer_value(b) > UINT16_MAX)
        return pd_fail(d, PROTO_E_FIELD,
                       "field \"ports\" must be [lo, hi] with 1 <= lo <= hi <= 65535");
    *lo = (int)json_integer_value(a);
    *hi = (int)json_integer_value(b);
    return PROTO_OK;
}

static enum proto_err pd_bday_fields(struct pd *s, struct proto_bday *b, bool strict)
{
    char role[16];
    PD_TRY(pd_members(s, "birthday", proto_bday_members, strict));
    PD_TRY(pd_str(s, "role", role, sizeof role));
    if (!proto_bday_role_parse(role, &b->role))
        return pd_fail(s, PROTO_E_FIELD, "field \"role\" must be %s or %s",
                       proto_bday_roles[PROTO_BDAY_HARD], proto_bday_roles[PROTO_BDAY_EASY]);
    PD_TRY(pd_endpoint(s, "target", &b->target));
    if (b->target.ss_family != AF_INET)
        return pd_fail(s, PROTO_E_FIELD, "field \"target\" must be an IPv4 endpoint");
    PD_TRY(pd_int_to(s, "k", 1, PROTO_BDAY_MAX_K, &b->k));
    PD_TRY(pd_int_to(s, "m", 1, PROTO_BDAY_MAX_M, &b->m));
    PD_TRY(pd_int_to(s, "ttl", 0, PROTO_BDAY_MAX_TTL, &b->ttl));
    PD_TRY(pd_int_to(s, "pace_ms", PROTO_BDAY_MIN_PACE_MS, PROTO_BDAY_MAX_PACE_MS, &b->pace_ms));
    PD_TRY(pd_ports(s, &b->port_lo, &b->port_hi));
    return pd_int_to(s, "easy_delay_us", 0, PROTO_BDAY_MAX_DELAY_US, &b->easy_delay_us);
}

/* punch.birthday: the server's plan; every member is required and checked against its range,
 * members this side does not know are skipped like the message's own (strict false). */
static enum proto_err pd_bday(struct pd *d, bool *has, struct proto_bday *out, bool strict)
{
    struct pd sub;
    PD_TRY(pd_sub(d, "birthday", &sub, has));
    if (!*has)
        return PROTO_OK;
    return pd_in(d, "birthday", pd_bday_fields(&sub, out, strict));
}

/* A required member naming one of names into *out. */
static enum proto_err pd_enum(struct pd *d, const char *key, const char *const *names, int n,
                              int *out)
{
    if (!json_object_get(d->obj, key))
        return pd_fail(d, PROTO_E_FIELD, "missing field \"%s\"", key);
    return pd_opt_enum(d, key, names, n, out);
}

/* report (PROTOCOL.md, "Traversal reports"): every member required, each in its closed set or
 * range, and the candidate must fit the result (direct: a punch's kind; relay: relay; failed:
 * none), so that one outcome has one spelling. */
static enum proto_err pd_report(struct pd *d, struct proto_msg *m)
{
    int64_t n;
    int r = 0, c = 0, k = 0;
    bool fits;
    PD_TRY(pd_session(d, "session", m->u.report.session));
    PD_TRY(pd_enum(d, "result", proto_results, (int)PROTO_COUNT(proto_results), &r));
    PD_TRY(pd_enum(d, "candidate", proto_cands, (int)PROTO_COUNT(proto_cands), &c));
    PD_TRY(pd_int(d, "attempts", 0, PROTO_REPORT_MAX_ATTEMPTS, &n));
    m->u.report.attempts = (int)n;
    PD_TRY(pd_int(d, "ms", 0, PROTO_REPORT_MAX_MS, &n));
    m->u.report.ms = (uint32_t)n;
    PD_TRY(pd_enum(d, "nat", proto_nats, (int)PROTO_COUNT(proto_nats), &k));
    m->u.report.result = (enum proto_result)r;
    m->u.report.candidate = (enum proto_cand)c;
    m->u.report.nat = (enum proto_nat)k;
    fits = r == PROTO_RES_DIRECT  ? c != PROTO_CAND_NONE && c != PROTO_CAND_RELAY
           : r == PROTO_RES_RELAY ? c == PROTO_CAND_RELAY
                                  : c == PROTO_CAND_NONE;
    if (!fits)
        return pd_fail(d, PROTO_E_FIELD, "candidate \"%s\" does not fit result \"%s\"",
                       proto_cands[c], proto_results[r]);
    return PROTO_OK;
}

/* ---- wormhole codes (PROTOCOL.md section 20) ---- */

/* Which members each code-* type carries beyond "type" (its proto_fields row says the same for
 * the strict check; these say what is required and encoded). */
enum { PC_M_CHANNEL = 1, PC_M_SID = 2, PC_M_SHARE = 4, PC_M_AD = 8, PC_M_TAG = 16, PC_M_TTL = 32 };
static unsigned pd_code_members(enum proto_type t)
{
    switch (t) {
    case PROTO_CODE_OPENED:
        return PC_M_CHANNEL | PC_M_SID | PC_M_TTL;
    case PROTO_CODE_POST:
        return PC_M_CHANNEL | PC_M_SHARE | PC_M_AD;
    case PROTO_CODE_CLAIMED:
        return PC_M_CHANNEL | PC_M_SID | PC_M_SHARE | PC_M_AD;
    case PROTO_CODE_ANSWER:
        return PC_M_CHANNEL | PC_M_SHARE | PC_M_AD | PC_M_TAG;
    case PROTO_CODE_CONFIRM:
        return PC_M_CHANNEL | PC_M_TAG;
    case PROTO_CODE_CLAIM:
    case PROTO_CODE_ABORT:
        return PC_M_CHANNEL;
    default: /* code-open: only the optional ttl */
        return 0;
    }
}

/* Every member a code-* type carries is required, except code-open's ttl. */
static enum proto_err pd_code(struct pd *d, struct proto_msg *m)
{
    unsigned want = pd_code_members(m->type);
    int64_t n;
    if (want & PC_M_CHANNEL) {
        PD_TRY(pd_int(d, "channel", 1, PROTO_CODE_CHANNEL_MAX, &n));
        m->u.code.channel = (int)n;
    }
    if ((want & PC_M_TTL) || (m->type == PROTO_CODE_OPEN && json_object_get(d->obj, "ttl"))) {
        PD_TRY(pd_int(d, "ttl", 1, PROTO_CODE_TTL_MAX, &n));
        m->u.code.ttl = (int)n;
    }
    if (want & PC_M_SID)
        PD_TRY(pd_b64(d, "sid", m->u.code.sid, PROTO_CODE_SID_BYTES));
    if (want & PC_M_SHARE)
        PD_TRY(pd_b64(d, "share", m->u.code.share, PROTO_CODE_SHARE_BYTES));
    if (want & PC_M_AD)
        PD_TRY(pd_b64_range(d, "ad", m->u.code.ad, 1, PROTO_CODE_AD_MAX, &m->u.code.ad_len));
    if (want & PC_M_TAG)
        PD_TRY(pd_b64(d, "tag", m->u.code.tag, PROTO_CODE_TAG_BYTES));
    return PROTO_OK;
}

static enum proto_err pd_body(struct pd *d, struct proto_msg *m, bool strict)
{
    int64_t n;
    int k = 0;
    switch (m->type) {
    case PROTO_HELLO:
        PD_TRY(pd_version(d, &m->u.hello.version));
        PD_TRY(pd_id(d, "id", m->u.hello.id));
        PD_TRY(pd_opt_enum(d, "path", proto_paths, (int)PROTO_COUNT(proto_paths), &k));
        m->u.hello.path = (enum proto_path)k;
        PD_TRY(pd_opt_bool(d, "aux", &m->u.hello.aux));
        PD_TRY(pd_eplist(d, "endpoints", &m->u.hello.endpoints));
        PD_TRY(pd_opt_b64(d, "key", m->u.hello.key, PROTO_KEY_BYTES, &m->u.hello.has_key));
        PD_TRY(pd_opt_b64(d, "sig", m->u.hello.sig, PROTO_SIG_BYTES, &m->u.hello.has_sig));
        PD_TRY(pd_bday_caps(d, &m->u.hello.birthday));
        PD_TRY(pd_feat_list(d, "features", &m->u.hello.features));
        PD_TRY(pd_opt_bool(d, "replace", &m->u.hello.replace));
        return pd_opt_b64(d, "admit", m->u.hello.admit, PROTO_ADMIT_BYTES, &m->u.hello.has_admit);
    case PROTO_WELCOME:
        PD_TRY(pd_version(d, &m->u.welcome.version));
        PD_TRY(pd_id(d, "id", m->u.welcome.id));
        PD_TRY(pd_endpoint(d, "observed", &m->u.welcome.observed));
        PD_TRY(pd_int(d, "keepalive", 1, PROTO_MAX_KEEPALIVE_S, &n));
        m->u.welcome.keepalive = (int)n;
        PD_TRY(pd_opt_bool(d, "relay", &m->u.welcome.relay));
        if (json_object_get(d->obj, "probe_port")) {
            PD_TRY(pd_int(d, "probe_port", 1, UINT16_MAX, &n));
            m->u.welcome.probe_port = (int)n;
            PD_TRY(pd_session(d, "probe_token", m->u.welcome.probe_token));
            m->u.welcome.has_probe6 = json_object_get(d->obj, "probe6") != NULL;
            if (m->u.welcome.has_probe6)
                PD_TRY(pd_endpoint(d, "probe6", &m->u.welcome.probe6));
        }
        return PROTO_OK;
    case PROTO_CONNECT:
        PD_TRY(pd_opt_token(d, "resume", m->u.connect.resume));
        return pd_id(d, "target", m->u.connect.target);
    case PROTO_PUNCH: {
        char role[16];
        PD_TRY(pd_session(d, "session", m->u.punch.session));
        PD_TRY(pd_id(d, "peer", m->u.punch.peer));
        PD_TRY(pd_str(d, "role", role, sizeof role));
        int r = proto_lookup(role, proto_roles, (int)PROTO_COUNT(proto_roles));
        if (r < 0)
            return pd_fail(d, PROTO_E_FIELD, "field \"%s\" must be %s or %s", "role",
                           proto_roles[PROTO_INITIATOR], proto_roles[PROTO_RESPONDER]);
        m->u.punch.role = (enum proto_role)r;
        PD_TRY(pd_endpoint(d, "observed", &m->u.punch.observed));
        m->u.punch.start_in_us = -1;
        if (json_object_get(d->obj, "start_in_us"))
            PD_TRY(pd_int(d, "start_in_us", 0, PROTO_MAX_START_IN_US, &m->u.punch.start_in_us));
        PD_TRY(pd_opt_bool(d, "relay", &m->u.punch.relay));
        if (m->u.punch.relay)
            PD_TRY(pd_session(d, "token", m->u.punch.token));
        bool direct = true;
        PD_TRY(pd_opt_bool(d, "direct", &direct));
        m->u.punch.no_direct = !direct;
        if (json_object_get(d->obj, "reason"))
            PD_TRY(pd_str(d, "reason", m->u.punch.reason, sizeof m->u.punch.reason));
        PD_TRY(pd_opt_enum(d, "nat", proto_nats, (int)PROTO_COUNT(proto_nats), &k));
        m->u.punch.nat = (enum proto_nat)k;
        PD_TRY(pd_opt_b64(d, "key", m->u.punch.key, PROTO_KEY_BYTES, &m->u.punch.has_key));
        m->u.punch.has_relay_addr = json_object_get(d->obj, "relay_addr") != NULL;
        if (m->u.punch.has_relay_addr)
            PD_TRY(pd_endpoint(d, "relay_addr", &m->u.punch.relay_addr));
        m->u.punch.has_observed6 = json_object_get(d->obj, "observed6") != NULL;
        if (m->u.punch.has_observed6)
            PD_TRY(pd_endpoint(d, "observed6", &m->u.punch.observed6));
        PD_TRY(pd_bday(d, &m->u.punch.has_birthday, &m->u.punch.birthday, strict));
        PD_TRY(pd_feat_list(d, "peer_features", &m->u.punch.peer_features));
        PD_TRY(pd_opt_token(d, "resume", m->u.punch.resume));
        return pd_eplist(d, "endpoints", &m->u.punch.endpoints);
    }
    case PROTO_ERROR: {
        json_t *f = json_object_get(d->obj, "fatal");
        PD_TRY(pd_str(d, "code", m->u.error.code, sizeof m->u.error.code));
        PD_TRY(pd_str(d, "message", m->u.error.message, sizeof m->u.error.message));
        if (f && !json_is_boolean(f))
            return pd_fail(d, PROTO_E_FIELD, "field \"%s\" must be true or false", "fatal");
        m->u.error.fatal = f ? json_is_true(f) : true;
        return PROTO_OK;
    }
    case PROTO_PING:
    case PROTO_PONG:
        return pd_int(d, "seq", 0, INT64_MAX, &m->u.ping.seq);
    case PROTO_SHAKE:
        PD_TRY(pd_version(d, &m->u.shake.version));
        PD_TRY(pd_session(d, "session", m->u.shake.session));
        PD_TRY(pd_id(d, "from", m->u.shake.from));
        PD_TRY(pd_id(d, "to", m->u.shake.to));
        PD_TRY(pd_b64(d, "key", m->u.shake.key, PROTO_KEY_BYTES));
        PD_TRY(pd_b64(d, "eph", m->u.shake.eph, PROTO_KEY_BYTES));
        PD_TRY(pd_resume(d, &m->u.shake.resume));
        /* one spelling: absent, or true (false would be a second way to say "no code") */
        PD_TRY(pd_opt_bool(d, "code", &m->u.shake.code));
        if (json_object_get(d->obj, "code") && !m->u.shake.code)
            return pd_fail(d, PROTO_E_FIELD, "field \"code\" must be true when present");
        return pd_opt_b64(d, "sig", m->u.shake.sig, PROTO_SIG_BYTES, &m->u.shake.has_sig);
    case PROTO_CONFIRM:
        PD_TRY(pd_session(d, "session", m->u.confirm.session));
        return pd_b64(d, "sig", m->u.confirm.sig, PROTO_SIG_BYTES);
    case PROTO_PROBE:
        PD_TRY(pd_version(d, &m->u.probe.version));
        PD_TRY(pd_opt_token(d, "token", m->u.probe.token));
        return pd_opt_b64(d, "admit", m->u.probe.admit, PROTO_ADMIT_BYTES, &m->u.probe.has_admit);
    case PROTO_OBSERVED:
        PD_TRY(pd_endpoint(d, "observed", &m->u.observed.observed));
        PD_TRY(pd_opt_enum(d, "mapping", proto_nats, (int)PROTO_COUNT(proto_nats), &k));
        m->u.observed.mapping = (enum proto_nat)k;
        return PROTO_OK;
    case PROTO_RELAY:
        PD_TRY(pd_version(d, &m->u.relay.version));
        PD_TRY(pd_session(d, "session", m->u.relay.session));
        PD_TRY(pd_session(d, "token", m->u.relay.token));
        return pd_opt_b64(d, "admit", m->u.relay.admit, PROTO_ADMIT_BYTES, &m->u.relay.has_admit);
    case PROTO_RELAYED:
        return pd_session(d, "session", m->u.relayed.session);
    case PROTO_CHALLENGE:
        PD_TRY(pd_version(d, &m->u.challenge.version));
        PD_TRY(pd_features(d, &m->u.challenge.feat_birthday, &m->u.challenge.feat_resume,
                           &m->u.challenge.feat_report, &m->u.challenge.feat_replace,
                           &m->u.challenge.feat_code));
        return pd_b64(d, "nonce", m->u.challenge.nonce, PROTO_NONCE_BYTES);
    case PROTO_REPORT:
        return pd_report(d, m);
    case PROTO_CODE_OPEN:
    case PROTO_CODE_OPENED:
    case PROTO_CODE_POST:
    case PROTO_CODE_CLAIM:
    case PROTO_CODE_CLAIMED:
    case PROTO_CODE_ANSWER:
    case PROTO_CODE_CONFIRM:
    case PROTO_CODE_ABORT:
        return pd_code(d, m);
    default:
        return PROTO_E_TYPE;
    }
}

enum proto_err proto_decode(const char *line, size_t len, enum proto_dir dir, struct proto_msg *out,
                            char *why, size_t whylen)
{
    json_error_t jerr;
    struct pd d = {NULL, why, whylen};
    json_t *type;
    enum proto_err e = PROTO_OK;
    int t;

    memset(out, 0, sizeof *out);
    if (len >= PROTO_MAX_LINE) {
        snprintf(why, whylen, "line of %zu bytes exceeds %d", len + 1, PROTO_MAX_LINE);
        return PROTO_E_LINE;
    }
    /* any JSON value, so a non-object is reported as bad-message rather than bad-json */
    d.obj = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!d.obj) {
        snprintf(why, whylen, "not JSON: %s at column %d", jerr.text, jerr.column);
        return PROTO_E_JSON;
    }
    if (!json_is_object(d.obj)) {
        snprintf(why, whylen, "message is not a JSON object");
        e = PROTO_E_MESSAGE;
        goto out;
    }
    type = json_object_get(d.obj, "type");
    if (!type || !json_is_string(type)) {
        snprintf(why, whylen, "message has no string field \"type\"");
        e = PROTO_E_MESSAGE;
        goto out;
    }
    if ((t = proto_lookup(json_string_value(type), proto_names, PROTO_TYPE_COUNT)) < 0) {
        snprintf(why, whylen, "unknown message type \"%.64s\"", json_string_value(type));
        e = PROTO_E_TYPE;
        goto out;
    }
    if (!(proto_allowed[dir] & (1u << t))) {
        snprintf(why, whylen, "message type \"%s\" is not valid here", proto_names[t]);
        e = PROTO_E_UNEXPECTED;
        goto out;
    }
    out->type = (enum proto_type)t;
    e = pd_fields(&d, out->type, dir != PROTO_TO_PEER);
    if (e == PROTO_OK)
        e = pd_body(&d, out, dir != PROTO_TO_PEER);
out:
    json_decref(d.obj);
    return e;
}

/* ---- encoding ---- */

/* A binary member: fails the whole message (NULL) when the value cannot be built. */
static json_t *pe_b64(json_t *o, const char *key, const unsigned char *bin, size_t n)
{
    char text[PB_MAX_TEXT];
    if (!o || n > PB_MAX_BYTES) {
        json_decref(o);
        return NULL;
    }
    sodium_bin2base64(text, sizeof text, bin, n, sodium_base64_VARIANT_ORIGINAL);
    if (json_object_set_new(o, key, json_string(text)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *pe_eplist(const struct proto_eplist *l)
{
    char ep[EP_STRLEN];
    json_t *a = json_array();
    for (int i = 0; a && i < l->n; i++)
        json_array_append_new(
            a, json_string(ep_format((const struct sockaddr *)&l->ep[i], ep, sizeof ep)));
    return a;
}

static json_t *pe_bday_caps(const struct proto_bday_caps *c)
{
    return json_pack("{s:i, s:i}", "k", c->k, "m", c->m);
}

static json_t *pe_bday(const struct proto_bday *b)
{
    char ep[EP_STRLEN];
    return json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:[i, i], s:i}", "role",
                     proto_bday_role_name(b->role), "target",
                     ep_format((const struct sockaddr *)&b->target, ep, sizeof ep), "k", b->k,
                     "m", b->m, "ttl", b->ttl, "pace_ms", b->pace_ms, "ports", b->port_lo,
                     b->port_hi, "easy_delay_us", b->easy_delay_us);
}

/* A feature list (hello.features, punch.peer_features): the known names of bits, in bit order;
 * NULL when no known bit is set, so that nothing is encoded. */
#define PE_FEAT_KNOWN ((1u << PROTO_COUNT(proto_feat_names)) - 1)
_Static_assert(PE_FEAT_KNOWN == PROTO_FEAT_KNOWN, "a PROTO_FEAT_* bit without its name");
static json_t *pe_feat_list(uint32_t bits)
{
    json_t *a = NULL;
    for (size_t i = 0; i < PROTO_COUNT(proto_feat_names); i++) {
        if (!(bits & (1u << i)))
            continue;
        if (!a && !(a = json_array()))
            return NULL;
        json_array_append_new(a, json_string(proto_feat_names[i]));
    }
    return a;
}

static json_t *pe_resume(const struct proto_resume_caps *r)
{
    return json_pack("{s:i, s:I, s:I}", "v", r->v, "buf", (json_int_t)r->buf, "timeout",
                     (json_int_t)r->timeout);
}

/* challenge.features: today's ["birthday"] stays byte for byte what it was. */
static json_t *pe_chal_features(bool birthday, bool resume, bool report, bool replace, bool code)
{
    json_t *a = json_array();
    if (a && birthday)
        json_array_append_new(a, json_string("birthday"));
    if (a && resume)
        json_array_append_new(a, json_string("resume"));
    if (a && report)
        json_array_append_new(a, json_string("report"));
    if (a && replace)
        json_array_append_new(a, json_string("replace"));
    if (a && code)
        json_array_append_new(a, json_string("code"));
    return a;
}

/* A member built by pe_bday*: fails the whole message (NULL) when it could not be built. */
static json_t *pe_obj(json_t *o, const char *key, json_t *v)
{
    if (!o || !v) {
        json_decref(v);
        json_decref(o);
        return NULL;
    }
    if (json_object_set_new(o, key, v) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* A code-* message: the members its type carries (pd_code_members); NULL when a value is out of
 * its range, so that nothing the decoder would refuse is ever sent. */
static json_t *pe_code(const struct proto_msg *m, const char *t)
{
    unsigned want = pd_code_members(m->type);
    json_t *o = json_pack("{s:s}", "type", t);
    bool ttl = (want & PC_M_TTL) || (m->type == PROTO_CODE_OPEN && m->u.code.ttl != 0);
    if ((want & PC_M_CHANNEL) &&
        (m->u.code.channel < 1 || m->u.code.channel > PROTO_CODE_CHANNEL_MAX))
        goto fail;
    if (ttl && (m->u.code.ttl < 1 || m->u.code.ttl > PROTO_CODE_TTL_MAX))
        goto fail;
    if ((want & PC_M_AD) && (m->u.code.ad_len < 1 || m->u.code.ad_len > PROTO_CODE_AD_MAX))
        goto fail;
    if (o && (want & PC_M_CHANNEL))
        json_object_set_new(o, "channel", json_integer(m->u.code.channel));
    if (o && ttl)
        json_object_set_new(o, "ttl", json_integer(m->u.code.ttl));
    if (want & PC_M_SID)
        o = pe_b64(o, "sid", m->u.code.sid, PROTO_CODE_SID_BYTES);
    if (want & PC_M_SHARE)
        o = pe_b64(o, "share", m->u.code.share, PROTO_CODE_SHARE_BYTES);
    if (want & PC_M_AD)
        o = pe_b64(o, "ad", m->u.code.ad, m->u.code.ad_len);
    if (want & PC_M_TAG)
        o = pe_b64(o, "tag", m->u.code.tag, PROTO_CODE_TAG_BYTES);
    return o;
fail:
    json_decref(o);
    return NULL;
}

static json_t *pe_build(const struct proto_msg *m)
{
    char ep[EP_STRLEN];
    const char *t = proto_type_name(m->type);
    switch (m->type) {
    case PROTO_HELLO: {
        json_t *o = json_pack("{s:s, s:i, s:s, s:o}", "type", t, "version", PROTO_VERSION, "id",
                              m->u.hello.id, "endpoints", pe_eplist(&m->u.hello.endpoints));
        if (o && m->u.hello.path != PROTO_PATH_ANY)
            json_object_set_new(o, "path", json_string(proto_path_name(m->u.hello.path)));
        if (o && m->u.hello.aux)
            json_object_set_new(o, "aux", json_true());
        if (m->u.hello.has_key)
            o = pe_b64(o, "key", m->u.hello.key, PROTO_KEY_BYTES);
        if (m->u.hello.has_sig)
            o = pe_b64(o, "sig", m->u.hello.sig, PROTO_SIG_BYTES);
        if (m->u.hello.birthday.has)
            o = pe_obj(o, "birthday", pe_bday_caps(&m->u.hello.birthday));
        if (m->u.hello.features & PE_FEAT_KNOWN)
            o = pe_obj(o, "features", pe_feat_list(m->u.hello.features));
        if (o && m->u.hello.replace)
            json_object_set_new(o, "replace", json_true());
        if (m->u.hello.has_admit)
            o = pe_b64(o, "admit", m->u.hello.admit, PROTO_ADMIT_BYTES);
        return o;
    }
    case PROTO_WELCOME: {
        json_t *o = json_pack(
            "{s:s, s:i, s:s, s:s, s:i, s:b}", "type", t, "version", PROTO_VERSION, "id",
            m->u.welcome.id, "observed",
            ep_format((const struct sockaddr *)&m->u.welcome.observed, ep, sizeof ep), "keepalive",
            m->u.welcome.keepalive, "relay", m->u.welcome.relay);
        if (o && m->u.welcome.probe_port > 0) {
            json_object_set_new(o, "probe_port", json_integer(m->u.welcome.probe_port));
            json_object_set_new(o, "probe_token", json_string(m->u.welcome.probe_token));
            if (m->u.welcome.has_probe6)
                json_object_set_new(
                    o, "probe6",
                    json_string(
                        ep_format((const struct sockaddr *)&m->u.welcome.probe6, ep, sizeof ep)));
        }
        return o;
    }
    case PROTO_CONNECT: {
        json_t *o = json_pack("{s:s, s:s}", "type", t, "target", m->u.connect.target);
        if (o && m->u.connect.resume[0])
            json_object_set_new(o, "resume", json_string(m->u.connect.resume));
        return o;
    }
    case PROTO_PUNCH: {
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:o}", "type", t, "session", m->u.punch.session, "peer",
            m->u.punch.peer, "role", proto_role_name(m->u.punch.role),
            "observed", ep_format((const struct sockaddr *)&m->u.punch.observed, ep, sizeof ep),
            "endpoints", pe_eplist(&m->u.punch.endpoints));
        if (!o)
            return NULL;
        if (m->u.punch.start_in_us >= 0)
            json_object_set_new(o, "start_in_us", json_integer(m->u.punch.start_in_us));
        if (m->u.punch.relay) {
            json_object_set_new(o, "relay", json_true());
            json_object_set_new(o, "token", json_string(m->u.punch.token));
        }
        if (m->u.punch.no_direct)
            json_object_set_new(o, "direct", json_false());
        if (m->u.punch.no_direct || m->u.punch.reason[0])
            json_object_set_new(o, "reason", json_string(m->u.punch.reason));
        if (m->u.punch.nat != PROTO_NAT_UNKNOWN)
            json_object_set_new(o, "nat", json_string(proto_nat_name(m->u.punch.nat)));
        if (m->u.punch.has_relay_addr)
            json_object_set_new(
                o, "relay_addr",
                json_string(
                    ep_format((const struct sockaddr *)&m->u.punch.relay_addr, ep, sizeof ep)));
        if (m->u.punch.has_observed6)
            json_object_set_new(
                o, "observed6",
                json_string(
                    ep_format((const struct sockaddr *)&m->u.punch.observed6, ep, sizeof ep)));
        if (m->u.punch.has_key)
            o = pe_b64(o, "key", m->u.punch.key, PROTO_KEY_BYTES);
        if (m->u.punch.has_birthday)
            o = pe_obj(o, "birthday", pe_bday(&m->u.punch.birthday));
        if (m->u.punch.peer_features & PE_FEAT_KNOWN)
            o = pe_obj(o, "peer_features", pe_feat_list(m->u.punch.peer_features));
        if (o && m->u.punch.resume[0])
            json_object_set_new(o, "resume", json_string(m->u.punch.resume));
        return o;
    }
    case PROTO_ERROR:
        return json_pack("{s:s, s:s, s:s, s:b}", "type", t, "code", m->u.error.code, "message",
                         m->u.error.message, "fatal", m->u.error.fatal);
    case PROTO_PING:
    case PROTO_PONG:
        return json_pack("{s:s, s:I}", "type", t, "seq", (json_int_t)m->u.ping.seq);
    case PROTO_SHAKE: {
        json_t *o =
            json_pack("{s:s, s:i, s:s, s:s, s:s}", "type", t, "version", PROTO_VERSION, "session",
                      m->u.shake.session, "from", m->u.shake.from, "to", m->u.shake.to);
        o = pe_b64(o, "key", m->u.shake.key, PROTO_KEY_BYTES);
        o = pe_b64(o, "eph", m->u.shake.eph, PROTO_KEY_BYTES);
        if (m->u.shake.resume.has)
            o = pe_obj(o, "resume", pe_resume(&m->u.shake.resume));
        if (m->u.shake.code)
            o = pe_obj(o, "code", json_true());
        if (m->u.shake.has_sig)
            o = pe_b64(o, "sig", m->u.shake.sig, PROTO_SIG_BYTES);
        return o;
    }
    case PROTO_CONFIRM:
        return pe_b64(json_pack("{s:s, s:s}", "type", t, "session", m->u.confirm.session), "sig",
                      m->u.confirm.sig, PROTO_SIG_BYTES);
    case PROTO_PROBE: {
        json_t *o = json_pack("{s:s, s:i}", "type", t, "version", PROTO_VERSION);
        if (o && m->u.probe.token[0])
            json_object_set_new(o, "token", json_string(m->u.probe.token));
        if (m->u.probe.has_admit)
            o = pe_b64(o, "admit", m->u.probe.admit, PROTO_ADMIT_BYTES);
        return o;
    }
    case PROTO_OBSERVED: {
        json_t *o = json_pack(
            "{s:s, s:s}", "type", t, "observed",
            ep_format((const struct sockaddr *)&m->u.observed.observed, ep, sizeof ep));
        if (o && m->u.observed.mapping != PROTO_NAT_UNKNOWN)
            json_object_set_new(o, "mapping", json_string(proto_nat_name(m->u.observed.mapping)));
        return o;
    }
    case PROTO_RELAY: {
        json_t *o = json_pack("{s:s, s:i, s:s, s:s}", "type", t, "version", PROTO_VERSION,
                              "session", m->u.relay.session, "token", m->u.relay.token);
        if (m->u.relay.has_admit)
            o = pe_b64(o, "admit", m->u.relay.admit, PROTO_ADMIT_BYTES);
        return o;
    }
    case PROTO_RELAYED:
        return json_pack("{s:s, s:s}", "type", t, "session", m->u.relayed.session);
    case PROTO_CHALLENGE: {
        json_t *o = pe_b64(json_pack("{s:s, s:i}", "type", t, "version", PROTO_VERSION), "nonce",
                           m->u.challenge.nonce, PROTO_NONCE_BYTES);
        if (m->u.challenge.feat_birthday || m->u.challenge.feat_resume ||
            m->u.challenge.feat_report || m->u.challenge.feat_replace || m->u.challenge.feat_code)
            o = pe_obj(o, "features",
                       pe_chal_features(m->u.challenge.feat_birthday, m->u.challenge.feat_resume,
                                        m->u.challenge.feat_report, m->u.challenge.feat_replace,
                                        m->u.challenge.feat_code));
        return o;
    }
    case PROTO_REPORT:
        return json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:s}", "type", t, "session",
                         m->u.report.session, "result", proto_result_name(m->u.report.result),
                         "candidate", proto_cand_name(m->u.report.candidate), "attempts",
                         m->u.report.attempts, "ms", (json_int_t)m->u.report.ms, "nat",
                         proto_nat_name(m->u.report.nat));
    case PROTO_CODE_OPEN:
    case PROTO_CODE_OPENED:
    case PROTO_CODE_POST:
    case PROTO_CODE_CLAIM:
    case PROTO_CODE_CLAIMED:
    case PROTO_CODE_ANSWER:
    case PROTO_CODE_CONFIRM:
    case PROTO_CODE_ABORT:
        return pe_code(m, t);
    default:
        return NULL;
    }
}

int proto_encode(const struct proto_msg *msg, char *buf, size_t buflen)
{
    json_t *o = pe_build(msg);
    size_t cap = buflen < PROTO_MAX_LINE ? buflen : PROTO_MAX_LINE;
    size_t n;
    if (!o)
        return -1;
    n = json_dumpb(o, buf, cap, JSON_COMPACT);
    json_decref(o);
    if (n == 0 || n + 1 > cap) /* room for the newline */
        return -1;
    buf[n] = '\n';
    return (int)n + 1;
}

int proto_encode_error(const char *code, const char *message, bool fatal, char *buf, size_t buflen)
{
    struct proto_msg m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_ERROR;
    snprintf(m.u.error.code, sizeof m.u.error.code, "%s", code);
    snprintf(m.u.error.message, sizeof m.u.error.message, "%s", message);
    m.u.error.fatal = fatal;
    return proto_encode(&m, buf, buflen);
}

int proto_encode_pc(enum proto_code code, const char *message, bool fatal, char *buf,
                    size_t buflen)
{
    return proto_encode_error(proto_code_name(code), message, fatal, buf, buflen);
}
