/* The cluster bus (PROTOCOL.md, "Cluster"): the messages rendezvous instances publish to each
 * other through Redis, encoded and strictly validated here as proto.c does the lines between
 * peers and servers. Three layers, each its own call, so that the receiver can put its own
 * checks (freshness, the operation an answer belongs to) between them:
 *
 *   bus_seal / bus_open       the framing "v1." HEX(tag) "." JSON and its MAC;
 *   bus_encode / bus_decode   the JSON: the envelope (type, sender, t) and each type's members;
 *   bus_answer_is             what an answer says (an error code instances send, or the punch of
 *                             the initiator with the target asked for), checked once the receiver
 *                             knows the session is one it asked about.
 *
 * What needs the receiver's state stays with the receiver: whether t is fresh and larger than
 * the sender's last, whether an answer's session is pending and comes from the instance the
 * introduce went to, and whether the introduced peer's endpoints may be offered (the server's
 * address policy). */
#ifndef TP_PROTO_BUS_H
#define TP_PROTO_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/auth.h"
#include "proto/proto.h"

#define BUS_MAX 8192              /* bytes of one message, framing included */
#define BUS_MAX_INSTANCE 128      /* bytes of an instance id */
#define BUS_MAX_TYPE 16           /* bytes of a "type" */
#define BUS_MAX_DELAY_US 10000000 /* rtt_us, bus_rtt_us, delay_us: beyond 10 s it is no timing */
#define BUS_KEY_BYTES 32
#define BUS_TAG_BYTES 32                     /* HMAC-SHA-512-256 */
#define BUS_CONTEXT "tcpunch-cluster-bus-v1" /* MACed with its NUL */
#define BUS_KEY_CONTEXT "tcpunch cluster bus key v1"
#define BUS_FRAME (3 + 2 * BUS_TAG_BYTES + 1) /* "v1." HEX "." before the JSON */

#define BUS_MAX_REF ((UINT64_C(1) << 53) - 1) /* a code claim's ref: exact in any JSON reader */

enum bus_type { BUS_INTRODUCE, BUS_ANSWER, BUS_REPLACE, BUS_CODE, BUS_TYPE_COUNT };

struct bus_msg {
    enum bus_type type;
    char sender[BUS_MAX_INSTANCE + 1];
    int64_t t; /* the sender's clock in microseconds, strictly growing; >= 1 */
    char session[PROTO_SESSION_LEN + 1]; /* "" in a replace, which belongs to no session */
    union {
        struct {
            char from[BUS_MAX_INSTANCE + 1]; /* equal to sender */
            char target[PROTO_MAX_ID + 1];
            /* the initiator as a responder's punch of this session describes it, with the
             * endpoints of its hello (unfiltered) */
            struct proto_msg peer;
            enum proto_path path;
            uint32_t rtt_us, bus_rtt_us;
            /* the initiator's hello.birthday (optional member "birthday": {"k", "m"}), sent
             * only while its instance would let it take part in a birthday punch now */
            struct proto_bday_caps bday;
            /* the initiator's hello.features (optional member "features": an array of
             * strings, as in hello), PROTO_FEAT_* bits, 0: absent */
            uint32_t features;
            /* the connect's resume root (optional member "resume"; "": absent) */
            char resume[PROTO_SESSION_LEN + 1];
        } introduce;
        struct {
            /* as received: bus_decode checks their form, bus_answer_is what they say (and
             * fills code or line); bus_encode does not read them. code_text "": a punch. */
            char code_text[PROTO_MAX_CODE + 1];
            char line_text[PROTO_MAX_LINE + 1];
            /* PC_UNKNOWN: a punch in line; else one of the codes instances send
             * (bus_answer_code) with message */
            enum proto_code code;
            char message[PROTO_MAX_TEXT + 1];
            struct proto_msg line; /* the initiator's punch of this session */
            uint32_t delay_us;
        } answer;
        struct {
            /* a hello with replace registered id with key on the sender: the receiver closes
             * its own registration of id with that key (error replaced), if it has one */
            char id[PROTO_MAX_ID + 1];
            unsigned char key[PROTO_KEY_BYTES];
        } replace;
        struct {
            /* a wormhole code's exchange between the claimer's instance and the maker's
             * (which holds the channel): the claimer's instance, which is the sender towards
             * the maker and the receiver towards the claimer; the claim's ref there */
            char claimer[BUS_MAX_INSTANCE + 1];
            uint64_t ref; /* 1..BUS_MAX_REF */
            uint32_t channel;
            bool to_maker; /* claimer is the sender (decoded; bus_encode derives it too) */
            /* no line: the side that sent it has gone (the claimer left; the channel ended) */
            bool gone;
            /* else one line: towards the maker the claimer's code-claim, code-answer or
             * code-abort, as a server decodes it; towards the claimer code-claimed or
             * code-confirm, or a non-fatal error code-unknown, code-expired, code-wrong or
             * unexpected-type with a printable message, as a peer decodes it. Its channel is
             * the message's. Decoded: the receiver re-encodes it, never passes the bytes. */
            struct proto_msg line;
        } code;
    } u;
};

/* Why a message was refused. Every error but BUS_E_ENVELOPE leaves sender and t decoded, so
 * that the receiver can take t (or refuse it as stale) before it looks at the rest. */
enum bus_err {
    BUS_OK = 0,
    BUS_E_ENVELOPE, /* not a JSON object with a known-length type, a valid sender, other than
                     * the receiver, and an integer t */
    BUS_E_TYPE,     /* a type this version does not know: ignored, not refused */
    BUS_E_BODY,     /* a member missing, unknown, ill-typed or out of range */
    BUS_E_PUNCH,    /* the embedded punch line is not this session's punch of its role */
    BUS_E_PATH,     /* introduce.path is not any, direct or relay; the rest of the introduce is
                     * decoded, so that the receiver can check its endpoints first */
    BUS_E_CODE,     /* answer.code is not one instances send, or its message is not printable */
};

const char *bus_type_name(enum bus_type t);
/* Instance ids: 1-BUS_MAX_INSTANCE of A-Z a-z 0-9 . _ - : [ ] */
bool bus_valid_instance(const char *s);
/* The error codes an answer may carry instead of a punch. */
bool bus_answer_code(enum proto_code c);

/* K = BLAKE2b-256(key = BUS_KEY_CONTEXT, digest), digest the secret file's (auth_secret_load). */
void bus_key_of(const unsigned char digest[AUTH_KEY_BYTES], unsigned char key[BUS_KEY_BYTES]);

/* Frames json (len bytes) for the channel chan into out: returns the message's length, or -1
 * when it would exceed BUS_MAX or cap. out is not NUL-terminated. */
int bus_seal(const unsigned char key[BUS_KEY_BYTES], const char *chan, const char *json, size_t len,
             char *out, size_t cap);
/* Checks the framing and the MAC of a message received on chan (constant-time comparison);
 * on success *json and *jlen point into payload. Returns 0, or -1 with the reason in why. */
int bus_open(const unsigned char key[BUS_KEY_BYTES], const char *chan, const char *payload,
             size_t len, const char **json, size_t *jlen, char *why, size_t whylen);

/* m as one compact JSON object (members in a fixed order, sender and t last), NUL-terminated
 * in out. Returns its length, or -1 when it does not fit in cap or BUS_MAX - BUS_FRAME, or m
 * does not hold a valid message. */
int bus_encode(const struct bus_msg *m, char *out, size_t cap);
/* Decodes and validates the JSON of a message; self (NULL: none) is the receiver's instance id,
 * which no sender may claim. On failure why holds the reason as the receiver logs it ("from
 * SENDER: ..." once the sender is known). Of an answer only the form is checked (never
 * BUS_E_CODE or BUS_E_PUNCH): an answer for a session the receiver never asked about is
 * ignored, whatever it says. */
enum bus_err bus_decode(const char *json, size_t len, const char *self, struct bus_msg *out,
                        char *why, size_t whylen);
/* What a decoded answer says: an error code instances send with a printable message (in
 * m->u.answer.code), or the initiator's punch of m->session naming peer (NULL: any; in
 * m->u.answer.line). BUS_OK, or BUS_E_CODE / BUS_E_PUNCH with the reason in why. */
enum bus_err bus_answer_is(struct bus_msg *m, const char *peer, char *why, size_t whylen);

/* A claim held on another instance as the claimer's instance follows it (PROTOCOL.md 20.5):
 * looking the number up, the claim sent, code-claimed passed on, the answer passed on,
 * code-confirm passed on; END: nothing more passes. */
enum bus_code_state {
    BUS_CS_LOOKUP,
    BUS_CS_WAIT,
    BUS_CS_CLAIMED,
    BUS_CS_ANSWERED,
    BUS_CS_DONE,
    BUS_CS_END
};
/* What line m does to a claim in st: from_maker, a line of the maker's mailbox for the claimer
 * (as bus_code_line_ok admits them); else the claimer's own line for the maker. Returns the
 * next state (BUS_CS_END: the claim is over once m has passed), or -1: m is out of turn and
 * does not pass. */
int bus_code_next(enum bus_code_state st, bool from_maker, const struct proto_msg *m);

/* Whether m may travel in a `code` message (towards the maker or the claimer) for channel. */
bool bus_code_line_ok(const struct proto_msg *m, bool to_maker, uint32_t channel);
/* The channel of a code-* message (0: none, or not a code-* message). */
uint32_t bus_code_channel(const struct proto_msg *m);
/* The code-claim of channel, as a claimer's instance sends it on. */
void bus_code_claim_of(uint32_t channel, struct proto_msg *m);

/* Whether line is exactly one protocol line that decodes (as sent to a peer) to a punch for
 * session, playing role, naming peer (NULL: any); the punch in *m. Otherwise why says what. */
bool bus_punch_of(const char *line, enum proto_role role, const char *session, const char *peer,
                  struct proto_msg *m, char *why, size_t whylen);
/* The same check on a punch already decoded (an answer's, against the target asked for). */
bool bus_punch_is(const struct proto_msg *m, enum proto_role role, const char *session,
                  const char *peer, char *why, size_t whylen);

#endif
