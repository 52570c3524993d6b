#include "proto/bus.h"

#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

_Static_assert(BUS_TAG_BYTES == crypto_auth_hmacsha512256_BYTES, "bus tag size");
_Static_assert(BUS_KEY_BYTES == crypto_auth_hmacsha512256_KEYBYTES, "bus key size");

static const char *const bus_names[BUS_TYPE_COUNT] = {"introduce", "answer", "replace", "code"};

/* The members each type may carry, the envelope's included; NULL-terminated. */
static const char *const bus_members[BUS_TYPE_COUNT][16] = {
    [BUS_INTRODUCE] = {"type", "sender", "t", "session", "from", "target", "peer", "path", "rtt_us",
                       "bus_rtt_us", "birthday", "features", "resume", NULL},
    [BUS_ANSWER] = {"type", "sender", "t", "session", "code", "message", "line", "delay_us", NULL},
    [BUS_REPLACE] = {"type", "sender", "t", "id", "key", NULL},
    [BUS_CODE] = {"type", "sender", "t", "claimer", "ref", "channel", "line", "gone", NULL},
};

const char *bus_type_name(enum bus_type t)
{
    return (unsigned)t < BUS_TYPE_COUNT ? bus_names[t] : "?";
}

bool bus_valid_instance(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > BUS_MAX_INSTANCE)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("._-:[]", *s)))
            return false;
    return true;
}

bool bus_answer_code(enum proto_code c)
{
    return c == PC_PEER_NOT_FOUND || c == PC_NO_PATH || c == PC_INTERNAL;
}

/* Printable ASCII only: an answer's message is quoted to peers and into logs. */
static bool bus_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* ---- code messages: which lines travel ---- */

uint32_t bus_code_channel(const struct proto_msg *m)
{
    return m->type >= PROTO_CODE_OPEN && m->type <= PROTO_CODE_ABORT && m->u.code.channel > 0
               ? (uint32_t)m->u.code.channel
               : 0;
}

void bus_code_claim_of(uint32_t channel, struct proto_msg *m)
{
    memset(m, 0, sizeof *m);
    m->type = PROTO_CODE_CLAIM;
    m->u.code.channel = (int)channel;
}

/* Towards the maker only what a claimer may send; towards the claimer only what the mailbox
 * sends a claimer: its post, the maker's tag, or one of its non-fatal errors. Anything else
 * (a code-post, a punch, a fatal error) would let one instance make a peer on another see
 * what no local exchange shows it. */
bool bus_code_line_ok(const struct proto_msg *m, bool to_maker, uint32_t channel)
{
    enum proto_code c;
    if (m->type == PROTO_ERROR && !to_maker) {
        c = proto_code_parse(m->u.error.code);
        return !m->u.error.fatal && bus_printable(m->u.error.message) &&
               (c == PC_CODE_UNKNOWN || c == PC_CODE_EXPIRED || c == PC_CODE_WRONG ||
                c == PC_UNEXPECTED_TYPE);
    }
    if (bus_code_channel(m) != channel || channel == 0)
        return false;
    if (to_maker)
        return m->type == PROTO_CODE_CLAIM || m->type == PROTO_CODE_ANSWER ||
               m->type == PROTO_CODE_ABORT;
    return m->type == PROTO_CODE_CLAIMED || m->type == PROTO_CODE_CONFIRM;
}

/* The exchange's order, one step each: code-claimed once after the claim, the claimer's answer
 * once after it, code-confirm once after that; errors of the mailbox at any time after the
 * claim (all but unexpected-type end it); the claimer's abort at any time after the claim. */
int bus_code_next(enum bus_code_state st, bool from_maker, const struct proto_msg *m)
{
    enum proto_code c;
    if (st == BUS_CS_LOOKUP || st == BUS_CS_END)
        return -1;
    if (!from_maker) {
        if (m->type == PROTO_CODE_ANSWER && st == BUS_CS_CLAIMED)
            return BUS_CS_ANSWERED;
        return m->type == PROTO_CODE_ABORT ? BUS_CS_END : -1;
    }
    if (m->type == PROTO_CODE_CLAIMED && st == BUS_CS_WAIT)
        return BUS_CS_CLAIMED;
    if (m->type == PROTO_CODE_CONFIRM && st == BUS_CS_ANSWERED)
        return BUS_CS_DONE;
    if (m->type != PROTO_ERROR)
        return -1;
    c = proto_code_parse(m->u.error.code);
    return c == PC_UNEXPECTED_TYPE ? (int)st : BUS_CS_END;
}

/* ---- framing ---- */

void bus_key_of(const unsigned char digest[AUTH_KEY_BYTES], unsigned char key[BUS_KEY_BYTES])
{
    crypto_generichash(key, BUS_KEY_BYTES, digest, AUTH_KEY_BYTES,
                       (const unsigned char *)BUS_KEY_CONTEXT, sizeof BUS_KEY_CONTEXT - 1);
}

/* tag = HMAC-SHA-512-256(K, BUS_CONTEXT NUL chan NUL json): the channel is covered, so a
 * message cannot be moved to another instance's channel. */
static void bus_mac(const unsigned char key[BUS_KEY_BYTES], const char *chan, const char *json,
                    size_t len, unsigned char tag[BUS_TAG_BYTES])
{
    crypto_auth_hmacsha512256_state st;
    crypto_auth_hmacsha512256_init(&st, key, BUS_KEY_BYTES);
    crypto_auth_hmacsha512256_update(&st, (const unsigned char *)BUS_CONTEXT,
                                     sizeof BUS_CONTEXT); /* with its NUL */
    crypto_auth_hmacsha512256_update(&st, (const unsigned char *)chan, strlen(chan) + 1);
    crypto_auth_hmacsha512256_update(&st, (const unsigned char *)json, len);
    crypto_auth_hmacsha512256_final(&st, tag);
    sodium_memzero(&st, sizeof st);
}

int bus_seal(const unsigned char key[BUS_KEY_BYTES], const char *chan, const char *json, size_t len,
             char *out, size_t cap)
{
    unsigned char tag[BUS_TAG_BYTES];
    char hex[2 * BUS_TAG_BYTES + 1];
    if (BUS_FRAME + len > BUS_MAX || BUS_FRAME + len > cap)
        return -1;
    bus_mac(key, chan, json, len, tag);
    sodium_bin2hex(hex, sizeof hex, tag, sizeof tag);
    memcpy(out, "v1.", 3);
    memcpy(out + 3, hex, 2 * BUS_TAG_BYTES);
    out[BUS_FRAME - 1] = '.';
    memcpy(out + BUS_FRAME, json, len);
    return (int)(BUS_FRAME + len);
}

int bus_open(const unsigned char key[BUS_KEY_BYTES], const char *chan, const char *payload,
             size_t len, const char **json, size_t *jlen, char *why, size_t whylen)
{
    unsigned char tag[BUS_TAG_BYTES], want[BUS_TAG_BYTES];
    size_t taglen;
    if (len > BUS_MAX || len <= BUS_FRAME || memcmp(payload, "v1.", 3) != 0 ||
        payload[BUS_FRAME - 1] != '.' ||
        sodium_hex2bin(tag, sizeof tag, payload + 3, 2 * BUS_TAG_BYTES, NULL, &taglen, NULL) != 0 ||
        taglen != sizeof tag) {
        snprintf(why, whylen, "not a signed message of this version (%zu bytes)", len);
        return -1;
    }
    bus_mac(key, chan, payload + BUS_FRAME, len - BUS_FRAME, want);
    if (sodium_memcmp(tag, want, sizeof tag) != 0) {
        snprintf(why, whylen, "bad MAC (not from an instance with this --cluster-secret-file)");
        return -1;
    }
    *json = payload + BUS_FRAME;
    *jlen = len - BUS_FRAME;
    return 0;
}

/* ---- the embedded punch ---- */

bool bus_punch_is(const struct proto_msg *m, enum proto_role role, const char *session,
                  const char *peer, char *why, size_t whylen)
{
    if (m->type == PROTO_PUNCH && m->u.punch.role == role &&
        strcmp(m->u.punch.session, session) == 0 && (!peer || strcmp(m->u.punch.peer, peer) == 0))
        return true;
    snprintf(why, whylen, "not the %s punch of session %s%s%s",
             role == PROTO_INITIATOR ? "initiator's" : "responder's", session, peer ? " with " : "",
             peer ? peer : "");
    return false;
}

bool bus_punch_of(const char *line, enum proto_role role, const char *session, const char *peer,
                  struct proto_msg *m, char *why, size_t whylen)
{
    size_t n = strlen(line);
    if (n == 0 || n + 1 >= PROTO_MAX_LINE || strpbrk(line, "\r\n")) {
        snprintf(why, whylen, "the punch is not one line of the protocol");
        return false;
    }
    if (proto_decode(line, n, PROTO_TO_PEER, m, why, whylen) != PROTO_OK)
        return false;
    return bus_punch_is(m, role, session, peer, why, whylen);
}

/* ---- decoding ---- */

struct bd {
    json_t *o;
    const char *sender;
    char *why;
    size_t whylen;
};

/* The reason, "from SENDER: " and fmt's text, in why; returns e. */
static enum bus_err bus_vfail(char *why, size_t whylen, const char *sender, enum bus_err e,
                              const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
static enum bus_err bus_vfail(char *why, size_t whylen, const char *sender, enum bus_err e,
                              const char *fmt, va_list ap)
{
    int n = snprintf(why, whylen, "from %s: ", sender);
    if (n >= 0 && (size_t)n < whylen)
        vsnprintf(why + n, whylen - (size_t)n, fmt, ap);
    return e;
}

static enum bus_err bus_fail(char *why, size_t whylen, const char *sender, enum bus_err e,
                             const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static enum bus_err bus_fail(char *why, size_t whylen, const char *sender, enum bus_err e,
                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    e = bus_vfail(why, whylen, sender, e, fmt, ap);
    va_end(ap);
    return e;
}

static enum bus_err bd_fail(struct bd *d, enum bus_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum bus_err bd_fail(struct bd *d, enum bus_err e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    e = bus_vfail(d->why, d->whylen, d->sender, e, fmt, ap);
    va_end(ap);
    return e;
}

/* A string member of at most max bytes, without NUL inside; NULL otherwise (absent too). */
static const char *bd_str(json_t *o, const char *k, size_t max)
{
    json_t *v = json_object_get(o, k);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    return s && n <= max && strlen(s) == n ? s : NULL;
}

static bool bd_int(json_t *o, const char *k, json_int_t lo, json_int_t hi, json_int_t *out)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return false;
    *out = json_integer_value(v);
    return true;
}

/* Whether every member of o is one the type may carry. */
static bool bd_only(json_t *o, enum bus_type t)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        const char *const *n = bus_members[t];
        while (*n && strcmp(*n, k) != 0)
            n++;
        if (!*n)
            return false;
    }
    return true;
}

static void bd_copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

/* introduce.birthday: absent, or exactly {"k": 0..PROTO_BDAY_MAX_K, "m": 0..PROTO_BDAY_MAX_M}. */
static bool bd_bday_caps(json_t *o, struct proto_bday_caps *out)
{
    json_t *v = json_object_get(o, "birthday");
    json_int_t k, m;
    out->has = v != NULL;
    if (!v)
        return true;
    if (!json_is_object(v) || json_object_size(v) != 2 || !bd_int(v, "k", 0, PROTO_BDAY_MAX_K, &k) ||
        !bd_int(v, "m", 0, PROTO_BDAY_MAX_M, &m))
        return false;
    out->k = (int)k;
    out->m = (int)m;
    return true;
}

/* The end-to-end feature names this version knows: bit i is PROTO_FEAT_* (1u << i), as in
 * hello.features (proto.c). */
static const char *const bus_feat_names[] = {"resume"};
#define BUS_NFEAT (sizeof bus_feat_names / sizeof bus_feat_names[0])
_Static_assert(((1u << BUS_NFEAT) - 1) == PROTO_FEAT_KNOWN, "a name for every known feature bit");

/* One name of a feature list: 1..PROTO_MAX_FEATURE_LEN bytes, not earlier in the list. */
static bool bd_feat_item(json_t *a, size_t i)
{
    const char *s = json_string_value(json_array_get(a, i));
    size_t n = json_string_length(json_array_get(a, i));
    if (!s || n == 0 || n > PROTO_MAX_FEATURE_LEN || strlen(s) != n)
        return false;
    for (size_t j = 0; j < i; j++)
        if (strcmp(s, json_string_value(json_array_get(a, j))) == 0)
            return false; /* duplicates are refused, as in hello */
    return true;
}

/* introduce.features: absent, or an array of at most PROTO_MAX_FEATURES names, as the
 * initiator's hello.features; unknown names are ignored, so a newer instance may list more. */
static bool bd_features(json_t *o, uint32_t *out)
{
    json_t *a = json_object_get(o, "features");
    *out = 0;
    if (!a)
        return true;
    if (!json_is_array(a) || json_array_size(a) > PROTO_MAX_FEATURES)
        return false;
    for (size_t i = 0; i < json_array_size(a); i++) {
        if (!bd_feat_item(a, i))
            return false;
        for (size_t k = 0; k < BUS_NFEAT; k++)
            if (strcmp(json_string_value(json_array_get(a, i)), bus_feat_names[k]) == 0)
                *out |= 1u << k;
    }
    return true;
}

/* introduce.resume: absent, or a root session id (session grammar). */
static bool bd_resume(json_t *o, char *out, size_t cap)
{
    const char *s = bd_str(o, "resume", PROTO_SESSION_LEN);
    out[0] = '\0';
    if (!json_object_get(o, "resume"))
        return true;
    if (!s || !proto_valid_session(s))
        return false;
    bd_copy(out, cap, s);
    return true;
}

static enum bus_err bd_introduce(struct bd *d, struct bus_msg *m)
{
    const char *from = bd_str(d->o, "from", BUS_MAX_INSTANCE);
    const char *target = bd_str(d->o, "target", PROTO_MAX_ID);
    const char *peer = bd_str(d->o, "peer", PROTO_MAX_LINE);
    const char *path = bd_str(d->o, "path", BUS_MAX_TYPE);
    json_int_t rtt, bus;
    char why[PROTO_MAX_TEXT];
    /* answers go to the sender: "from" is the same name, kept for older readers of logs */
    if (!from || strcmp(from, m->sender) != 0 || !target || !proto_valid_id(target) || !peer ||
        !path || !bd_int(d->o, "rtt_us", 0, BUS_MAX_DELAY_US, &rtt) ||
        !bd_int(d->o, "bus_rtt_us", 0, BUS_MAX_DELAY_US, &bus) ||
        !bd_bday_caps(d->o, &m->u.introduce.bday) || !bd_features(d->o, &m->u.introduce.features) ||
        !bd_resume(d->o, m->u.introduce.resume, sizeof m->u.introduce.resume))
        return bd_fail(d, BUS_E_BODY, "a malformed introduce");
    bd_copy(m->u.introduce.from, sizeof m->u.introduce.from, from);
    bd_copy(m->u.introduce.target, sizeof m->u.introduce.target, target);
    m->u.introduce.rtt_us = (uint32_t)rtt;
    m->u.introduce.bus_rtt_us = (uint32_t)bus;
    if (!bus_punch_of(peer, PROTO_RESPONDER, m->session, NULL, &m->u.introduce.peer, why,
                      sizeof why))
        return bd_fail(d, BUS_E_PUNCH, "introduce for session %s: %s", m->session, why);
    if (!proto_path_parse(path, &m->u.introduce.path))
        return bd_fail(d, BUS_E_PATH, "introduce with an unknown path");
    return BUS_OK;
}

/* replace: an id and the key it was registered with, standard base64 of exactly
 * PROTO_KEY_BYTES (the canonical spelling only). */
static enum bus_err bd_replace(struct bd *d, struct bus_msg *m)
{
    const char *id = bd_str(d->o, "id", PROTO_MAX_ID);
    const char *key = bd_str(d->o, "key", 2 * PROTO_KEY_BYTES);
    size_t len = key ? strlen(key) : 0, got = 0;
    if (!id || !proto_valid_id(id) || !key ||
        len != sodium_base64_ENCODED_LEN(PROTO_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL) - 1 ||
        sodium_base642bin(m->u.replace.key, PROTO_KEY_BYTES, key, len, NULL, &got, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        got != PROTO_KEY_BYTES)
        return bd_fail(d, BUS_E_BODY, "a malformed replace");
    bd_copy(m->u.replace.id, sizeof m->u.replace.id, id);
    return BUS_OK;
}

/* code: the claimer's instance, the claim's ref, the channel, and a line or "gone": true. The
 * line is decoded as its receiver would take it from a peer (towards the maker: as a server
 * decodes a claimer's line) or from a server (towards the claimer). */
static enum bus_err bd_code(struct bd *d, struct bus_msg *m, const char *self)
{
    const char *claimer = bd_str(d->o, "claimer", BUS_MAX_INSTANCE);
    const char *line = bd_str(d->o, "line", PROTO_MAX_LINE);
    json_t *gone = json_object_get(d->o, "gone");
    json_int_t ref, ch;
    char why[PROTO_MAX_TEXT];
    size_t n;
    if (!claimer || !bus_valid_instance(claimer) || !bd_int(d->o, "ref", 1, BUS_MAX_REF, &ref) ||
        !bd_int(d->o, "channel", 1, PROTO_CODE_CHANNEL_MAX, &ch) ||
        (gone ? !json_is_true(gone) || json_object_get(d->o, "line") : !line))
        return bd_fail(d, BUS_E_BODY, "a malformed code message");
    bd_copy(m->u.code.claimer, sizeof m->u.code.claimer, claimer);
    m->u.code.ref = (uint64_t)ref;
    m->u.code.channel = (uint32_t)ch;
    m->u.code.to_maker = strcmp(claimer, m->sender) == 0;
    m->u.code.gone = gone != NULL;
    /* towards a claimer: ours, or the message went astray */
    if (!m->u.code.to_maker && self && strcmp(claimer, self) != 0)
        return bd_fail(d, BUS_E_BODY, "a code message for the claimers of instance %s", claimer);
    if (gone)
        return BUS_OK;
    n = strlen(line);
    if (n == 0 || n + 1 >= PROTO_MAX_LINE || strpbrk(line, "\r\n"))
        return bd_fail(d, BUS_E_BODY, "a code message whose line is not one line");
    if (proto_decode(line, n, m->u.code.to_maker ? PROTO_TO_SERVER : PROTO_TO_PEER, &m->u.code.line,
                     why, sizeof why) != PROTO_OK)
        return bd_fail(d, BUS_E_BODY, "a code message for channel %u: %s", (unsigned)ch, why);
    if (!bus_code_line_ok(&m->u.code.line, m->u.code.to_maker, m->u.code.channel)) {
        const struct proto_msg *l = &m->u.code.line;
        bool err = l->type == PROTO_ERROR;
        return bd_fail(d, BUS_E_BODY, "a code message for channel %u: %s%s%s is not for the %s",
                       (unsigned)ch, proto_type_name(l->type), err ? " " : "",
                       err ? (bus_printable(l->u.error.code) ? l->u.error.code : "?") : "",
                       m->u.code.to_maker ? "maker" : "claimer");
    }
    return BUS_OK;
}

static enum bus_err bd_answer(struct bd *d, struct bus_msg *m)
{
    const char *code = bd_str(d->o, "code", PROTO_MAX_CODE);
    const char *text = bd_str(d->o, "message", PROTO_MAX_TEXT);
    const char *line = bd_str(d->o, "line", PROTO_MAX_LINE);
    json_int_t delay = 0;
    /* either an error (code and message) or a punch (line and delay_us), never a mixture; a
     * "code" that is no string of a code's length counts as absent */
    if (code ? !text || json_object_get(d->o, "line") || json_object_get(d->o, "delay_us")
             : !line || json_object_get(d->o, "message") ||
                   !bd_int(d->o, "delay_us", 0, BUS_MAX_DELAY_US, &delay))
        return bd_fail(d, BUS_E_BODY, "a malformed answer");
    if (code) {
        bd_copy(m->u.answer.code_text, sizeof m->u.answer.code_text, code);
        bd_copy(m->u.answer.message, sizeof m->u.answer.message, text);
    } else {
        bd_copy(m->u.answer.line_text, sizeof m->u.answer.line_text, line);
        m->u.answer.delay_us = (uint32_t)delay;
    }
    return BUS_OK;
}

enum bus_err bus_answer_is(struct bus_msg *m, const char *peer, char *why, size_t whylen)
{
    const char *code = m->u.answer.code_text;
    char inner[PROTO_MAX_TEXT];
    if (code[0]) {
        m->u.answer.code = proto_code_parse(code);
        if (!bus_answer_code(m->u.answer.code) || !bus_printable(m->u.answer.message))
            return bus_fail(why, whylen, m->sender, BUS_E_CODE,
                            "an answer with error code %.32s, which instances do not send",
                            bus_printable(code) ? code : "?");
        return BUS_OK;
    }
    m->u.answer.code = PC_UNKNOWN;
    if (!bus_punch_of(m->u.answer.line_text, PROTO_INITIATOR, m->session, peer, &m->u.answer.line,
                      inner, sizeof inner))
        return bus_fail(why, whylen, m->sender, BUS_E_PUNCH, "answer for session %s: %s",
                        m->session, inner);
    return BUS_OK;
}

enum bus_err bus_decode(const char *json, size_t len, const char *self, struct bus_msg *out,
                        char *why, size_t whylen)
{
    json_error_t jerr;
    struct bd d = {NULL, NULL, why, whylen};
    const char *type, *session;
    json_int_t t;
    enum bus_err e = BUS_OK;
    int k;

    memset(out, 0, sizeof *out);
    if (len > BUS_MAX - BUS_FRAME) {
        snprintf(why, whylen, "signed but malformed: %zu bytes of JSON (at most %d)", len,
                 BUS_MAX - BUS_FRAME);
        return BUS_E_ENVELOPE;
    }
    d.o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    type = bd_str(d.o, "type", BUS_MAX_TYPE);
    d.sender = bd_str(d.o, "sender", BUS_MAX_INSTANCE);
    if (!json_is_object(d.o) || !type || !d.sender || !bus_valid_instance(d.sender) ||
        (self && strcmp(d.sender, self) == 0) || !bd_int(d.o, "t", 1, INT64_MAX, &t)) {
        snprintf(why, whylen, "signed but malformed: %s",
                 d.o ? "bad type, sender or t" : jerr.text);
        e = BUS_E_ENVELOPE;
        goto cleanup;
    }
    bd_copy(out->sender, sizeof out->sender, d.sender);
    out->t = (int64_t)t;
    for (k = 0; k < BUS_TYPE_COUNT && strcmp(type, bus_names[k]) != 0; k++)
        ;
    if (k == BUS_TYPE_COUNT) {
        snprintf(why, whylen, "message of unknown type %s from %s ignored", type, d.sender);
        e = BUS_E_TYPE;
        goto cleanup;
    }
    out->type = (enum bus_type)k;
    if (out->type == BUS_REPLACE || out->type == BUS_CODE) { /* belong to no session */
        e = !bd_only(d.o, out->type)   ? bd_fail(&d, BUS_E_BODY, "a malformed %s", type)
            : out->type == BUS_REPLACE ? bd_replace(&d, out)
                                       : bd_code(&d, out, self);
        goto cleanup;
    }
    session = bd_str(d.o, "session", PROTO_SESSION_LEN);
    if (!bd_only(d.o, out->type) || !session || !proto_valid_session(session)) {
        e = bd_fail(&d, BUS_E_BODY, "a malformed %s", bus_names[k]);
        goto cleanup;
    }
    bd_copy(out->session, sizeof out->session, session);
    e = out->type == BUS_INTRODUCE ? bd_introduce(&d, out) : bd_answer(&d, out);
cleanup:
    json_decref(d.o);
    return e;
}

/* ---- encoding ---- */

/* The punch as a JSON string member: one line, its newline dropped, that bus_punch_of takes
 * back (so one byte shorter than the longest protocol line). */
static int be_punch(json_t *o, const char *key, const struct proto_msg *p, enum proto_role role,
                    const char *session)
{
    char line[PROTO_MAX_LINE], why[PROTO_MAX_TEXT];
    int n;
    if (!bus_punch_is(p, role, session, NULL, why, sizeof why))
        return -1;
    n = proto_encode(p, line, sizeof line);
    if (n <= 0 || n >= PROTO_MAX_LINE)
        return -1;
    line[n - 1] = '\0';
    return json_object_set_new(o, key, json_string(line));
}

/* A feature list: the known names of bits, in bit order. */
static json_t *be_features(uint32_t bits)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < BUS_NFEAT; i++)
        if ((bits & (1u << i)) && json_array_append_new(a, json_string(bus_feat_names[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* introduce's optional members of resumable sessions, each only when present. */
static int be_resume_members(json_t *o, const struct bus_msg *m)
{
    if ((m->u.introduce.features & PROTO_FEAT_KNOWN) &&
        json_object_set_new(o, "features", be_features(m->u.introduce.features)) < 0)
        return -1;
    if (m->u.introduce.resume[0] &&
        (!proto_valid_session(m->u.introduce.resume) ||
         json_object_set_new(o, "resume", json_string(m->u.introduce.resume)) < 0))
        return -1;
    return 0;
}

/* A code message: the line as one protocol line without its newline, checked as bd_code
 * checks it (the direction from whether the claimer is the sender). */
static json_t *be_code(const struct bus_msg *m)
{
    const char *t = bus_type_name(m->type);
    bool to_maker = strcmp(m->u.code.claimer, m->sender) == 0;
    char line[PROTO_MAX_LINE];
    json_t *o;
    int n = 0;
    if (!bus_valid_instance(m->u.code.claimer) || m->u.code.ref < 1 ||
        m->u.code.ref > BUS_MAX_REF || m->u.code.channel < 1 ||
        m->u.code.channel > PROTO_CODE_CHANNEL_MAX)
        return NULL;
    if (!m->u.code.gone) {
        if (!bus_code_line_ok(&m->u.code.line, to_maker, m->u.code.channel))
            return NULL;
        n = proto_encode(&m->u.code.line, line, sizeof line);
        if (n <= 1 || n >= PROTO_MAX_LINE)
            return NULL;
        line[n - 1] = '\0';
    }
    o = json_pack("{s:s, s:s, s:I, s:i}", "type", t, "claimer", m->u.code.claimer, "ref",
                  (json_int_t)m->u.code.ref, "channel", (int)m->u.code.channel);
    if (!o ||
        json_object_set_new(o, m->u.code.gone ? "gone" : "line",
                            m->u.code.gone ? json_true() : json_string(line)) < 0 ||
        json_object_set_new(o, "sender", json_string(m->sender)) < 0 ||
        json_object_set_new(o, "t", json_integer((json_int_t)m->t)) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *be_build(const struct bus_msg *m)
{
    const char *t = bus_type_name(m->type);
    json_t *o;
    char b64[sodium_base64_ENCODED_LEN(PROTO_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    if (!bus_valid_instance(m->sender) || m->t < 1 ||
        (m->type != BUS_REPLACE && m->type != BUS_CODE && !proto_valid_session(m->session)))
        return NULL;
    if (m->type == BUS_CODE)
        return be_code(m);
    if (m->type == BUS_REPLACE) {
        if (!proto_valid_id(m->u.replace.id))
            return NULL;
        sodium_bin2base64(b64, sizeof b64, m->u.replace.key, PROTO_KEY_BYTES,
                          sodium_base64_VARIANT_ORIGINAL);
        o = json_pack("{s:s, s:s, s:s}", "type", t, "id", m->u.replace.id, "key", b64);
    } else if (m->type == BUS_INTRODUCE) {
        if (strcmp(m->u.introduce.from, m->sender) != 0 || !proto_valid_id(m->u.introduce.target) ||
            m->u.introduce.rtt_us > BUS_MAX_DELAY_US ||
            m->u.introduce.bus_rtt_us > BUS_MAX_DELAY_US ||
            (m->u.introduce.bday.has &&
             (m->u.introduce.bday.k < 0 || m->u.introduce.bday.k > PROTO_BDAY_MAX_K ||
              m->u.introduce.bday.m < 0 || m->u.introduce.bday.m > PROTO_BDAY_MAX_M)))
            return NULL;
        o = json_pack("{s:s, s:s, s:s, s:s}", "type", t, "session", m->session, "from",
                      m->u.introduce.from, "target", m->u.introduce.target);
        if (!o || be_punch(o, "peer", &m->u.introduce.peer, PROTO_RESPONDER, m->session) < 0 ||
            json_object_set_new(o, "path", json_string(proto_path_name(m->u.introduce.path))) < 0 ||
            json_object_set_new(o, "rtt_us", json_integer(m->u.introduce.rtt_us)) < 0 ||
            json_object_set_new(o, "bus_rtt_us", json_integer(m->u.introduce.bus_rtt_us)) < 0 ||
            (m->u.introduce.bday.has &&
             json_object_set_new(o, "birthday",
                                 json_pack("{s:i, s:i}", "k", m->u.introduce.bday.k, "m",
                                           m->u.introduce.bday.m)) < 0) ||
            be_resume_members(o, m) < 0)
            goto fail;
    } else if (m->type == BUS_ANSWER && m->u.answer.code != PC_UNKNOWN) {
        if (!bus_answer_code(m->u.answer.code) || !bus_printable(m->u.answer.message))
            return NULL;
        o = json_pack("{s:s, s:s, s:s, s:s}", "type", t, "session", m->session, "code",
                      proto_code_name(m->u.answer.code), "message", m->u.answer.message);
    } else if (m->type == BUS_ANSWER) {
        if (m->u.answer.delay_us > BUS_MAX_DELAY_US)
            return NULL;
        o = json_pack("{s:s, s:s}", "type", t, "session", m->session);
        if (!o || be_punch(o, "line", &m->u.answer.line, PROTO_INITIATOR, m->session) < 0 ||
            json_object_set_new(o, "delay_us", json_integer(m->u.answer.delay_us)) < 0)
            goto fail;
    } else {
        return NULL;
    }
    if (!o || json_object_set_new(o, "sender", json_string(m->sender)) < 0 ||
        json_object_set_new(o, "t", json_integer((json_int_t)m->t)) < 0)
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

int bus_encode(const struct bus_msg *m, char *out, size_t cap)
{
    json_t *o = be_build(m);
    size_t n, max = cap < BUS_MAX - BUS_FRAME + 1 ? cap : BUS_MAX - BUS_FRAME + 1;
    if (!o)
        return -1;
    n = json_dumpb(o, out, max, JSON_COMPACT);
    json_decref(o);
    if (n == 0 || n + 1 > max) /* room for the NUL */
        return -1;
    out[n] = '\0';
    return (int)n;
}
