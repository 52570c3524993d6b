/* The tcpunch wire protocol (PROTOCOL.md): one JSON object per line, strictly validated. */
#ifndef TP_PROTO_H
#define TP_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proto/code.h"

#define PROTO_VERSION 1
#define PROTO_MAX_LINE 4096 /* bytes, newline included */
#define PROTO_MAX_ID 64
#define PROTO_MAX_ENDPOINTS 8
#define PROTO_SESSION_LEN 32 /* hex digits: 128 random bits */
#define PROTO_MAX_CODE 32
#define PROTO_MAX_TEXT 256
#define PROTO_MAX_START_IN_US 1000000
#define PROTO_MAX_KEEPALIVE_S 86400 /* welcome.keepalive: a day */
#define PROTO_DEFAULT_START_IN_US 4000 /* punch.start_in_us when absent */
/* Binary fields travel as standard base64 with padding (PROTOCOL.md, "Grammars"). */
#define PROTO_NONCE_BYTES 32 /* challenge.nonce */
#define PROTO_KEY_BYTES 32   /* an Ed25519 public key */
#define PROTO_SIG_BYTES 64   /* an Ed25519 signature */
#define PROTO_ADMIT_BYTES 32 /* HMAC-SHA-256 of the first line under the shared secret */
/* Birthday punching through an endpoint-dependent NAT (PROTOCOL.md, "Birthday punching"):
 * the ranges a plan's fields must lie in; a value outside is bad-field. */
#define PROTO_BDAY_MAX_K 512        /* hard side: sockets, one SYN each */
#define PROTO_BDAY_MAX_M 4096       /* easy side: guesses, one SYN each */
#define PROTO_BDAY_MAX_TTL 16       /* hard side: TTL of the first SYN; 0 = the peer chooses */
#define PROTO_BDAY_MIN_PACE_MS 100  /* easy side: the guesses are spread over pace_ms */
#define PROTO_BDAY_MAX_PACE_MS 2000
#define PROTO_BDAY_MAX_DELAY_US 200000 /* easy side: starts this long after t0 */
/* At most one birthday plan per this long: the server gives a pair none within it of the last
 * (rendezvous/plan.h, PLAN_BDAY_GAP_MS), and a peer starts none within it of its own last start,
 * whatever the server says (peer/bdplan.h) */
#define PROTO_BDAY_GAP_MS 10000

enum proto_type {
    PROTO_HELLO,
    PROTO_WELCOME,
    PROTO_CONNECT,
    PROTO_PUNCH,
    PROTO_ERROR,
    PROTO_PING,
    PROTO_PONG,
    PROTO_SHAKE,
    PROTO_CONFIRM,
    PROTO_PROBE,
    PROTO_OBSERVED,
    PROTO_RELAY,
    PROTO_RELAYED,
    PROTO_CHALLENGE,
    PROTO_REPORT,
    /* wormhole codes (PROTOCOL.md section 20): the mailbox's messages */
    PROTO_CODE_OPEN,
    PROTO_CODE_OPENED,
    PROTO_CODE_POST,
    PROTO_CODE_CLAIM,
    PROTO_CODE_CLAIMED,
    PROTO_CODE_ANSWER,  /* both directions: claimer -> server -> maker, unchanged */
    PROTO_CODE_CONFIRM, /* both directions: maker -> server -> claimer, unchanged */
    PROTO_CODE_ABORT,
    PROTO_TYPE_COUNT
};

/* Who sends a message decides which types are acceptable and how strict field checks are:
 * peers are strict with what servers and other peers may be sent, and tolerate unknown fields
 * from a server (a newer server may add some). */
enum proto_dir { PROTO_TO_SERVER, PROTO_TO_PEER, PROTO_PEER_TO_PEER };

enum proto_role { PROTO_INITIATOR, PROTO_RESPONDER };

/* A peer's policy for its sessions (hello.path). */
enum proto_path { PROTO_PATH_ANY, PROTO_PATH_DIRECT, PROTO_PATH_RELAY };

/* How a NAT maps one local endpoint towards different destinations (RFC 4787). */
enum proto_nat { PROTO_NAT_UNKNOWN, PROTO_NAT_INDEPENDENT, PROTO_NAT_DEPENDENT };

/* A peer's part in a birthday punch (punch.birthday.role): "hard" behind the endpoint-dependent
 * NAT opens k mappings towards the easy peer; "easy" guesses m ports of the hard NAT. */
enum proto_bday_role { PROTO_BDAY_HARD, PROTO_BDAY_EASY };

/* hello.birthday: the peer's own limits; absent (has false) from peers that do not take part or
 * to servers that did not offer "birthday" in their challenge. k or m 0: the peer never takes
 * part (--birthday-k 0). */
struct proto_bday_caps {
    bool has;
    int k; /* 0..PROTO_BDAY_MAX_K */
    int m; /* 0..PROTO_BDAY_MAX_M */
};

/* Sessions that survive their connection (PROTOCOL.md section 18, docs/design/resume.md 4.1).
 * End-to-end features a peer announces in hello.features (an array of at most
 * PROTO_MAX_FEATURES strings of 1..PROTO_MAX_FEATURE_LEN bytes; unknown ones are accepted and
 * ignored, duplicates refused) and the server copies into the other peer's punch.peer_features:
 * a bit per feature this version knows. Sent only to servers whose challenge listed "resume". */
#define PROTO_FEAT_RESUME 0x1u
#define PROTO_FEAT_KNOWN PROTO_FEAT_RESUME /* every bit above: what is encoded and admitted */
#define PROTO_MAX_FEATURES 16
#define PROTO_MAX_FEATURE_LEN 32
/* shake.resume {v, buf, timeout}: the sender's session layer (--resume-buffer, --resume-timeout).
 * v is 1; buf in [PROTO_RESUME_BUF_MIN, PROTO_RESUME_BUF_MAX] bytes; timeout 1..3600 s. */
#define PROTO_RESUME_V 1
#define PROTO_RESUME_BUF_MIN (64u * 1024)
#define PROTO_RESUME_BUF_MAX (1024u * 1024 * 1024)
#define PROTO_RESUME_TIMEOUT_MAX 3600
struct proto_resume_caps {
    bool has;
    int v;
    uint64_t buf;     /* bytes */
    uint32_t timeout; /* seconds */
};

/* punch.birthday: the server's plan (PROTOCOL.md, "Birthday punching"). */
struct proto_bday {
    enum proto_bday_role role;
    /* hard: the easy peer's public endpoint; easy: the hard peer's public address (its port is
     * not used). Peers refuse a plan whose target address is not the punch's observed one. */
    struct sockaddr_storage target;
    int k;             /* 1..PROTO_BDAY_MAX_K: the hard side's sockets */
    int m;             /* 1..PROTO_BDAY_MAX_M: the easy side's guesses */
    int ttl;           /* 0..PROTO_BDAY_MAX_TTL */
    int pace_ms;       /* PROTO_BDAY_MIN_PACE_MS..PROTO_BDAY_MAX_PACE_MS */
    int port_lo;       /* 1..65535, port_lo <= port_hi: the range the easy side guesses in */
    int port_hi;
    int easy_delay_us; /* 0..PROTO_BDAY_MAX_DELAY_US */
};

/* report (PROTOCOL.md, "Traversal reports"): a peer's account of one introduction, sent only
 * to a server whose challenge listed "report". The result and the candidate are closed sets
 * (the server counts them into labelled metrics: nothing a peer sends may grow them). */
enum proto_result { PROTO_RES_DIRECT, PROTO_RES_RELAY, PROTO_RES_FAILED, PROTO_RES_COUNT };
/* which candidate won: punch.c's kinds, plus "relay" (relayed) and "none" (failed) */
enum proto_cand {
    PROTO_CAND_NONE,
    PROTO_CAND_PUBLIC,
    PROTO_CAND_PORT_PRESERVED,
    PROTO_CAND_LAN,
    PROTO_CAND_IPV6,
    PROTO_CAND_INBOUND,
    PROTO_CAND_BIRTHDAY,
    PROTO_CAND_RELAY,
    PROTO_CAND_COUNT
};
/* report.attempts: connect() calls of the punch and its birthday SYNs (PUNCH_BUDGET_TOTAL plus
 * PROTO_BDAY_MAX_M fit) */
#define PROTO_REPORT_MAX_ATTEMPTS 8192
/* report.ms: from the punch order to the outcome; a punch ends long before (--timeout) */
#define PROTO_REPORT_MAX_MS 600000

/* Wormhole codes (PROTOCOL.md section 20, docs/design/wormhole.md 6.1). The byte sizes are
 * CPace's (proto/cpace.h; proto.c checks they agree): the server relays them unchanged. */
#define PROTO_CODE_CHANNEL_MAX 999999 /* channel: 1..this, the number the code starts with */
#define PROTO_CODE_SID_BYTES 16       /* code-opened.sid, code-claimed.sid */
#define PROTO_CODE_SHARE_BYTES 32     /* a CPace share (CPACE_SHARE_BYTES) */
#define PROTO_CODE_AD_MAX 256   /* ad: 1..this many bytes (CPACE_AD_MAX), opaque to the server */
#define PROTO_CODE_TAG_BYTES 64 /* a CPace confirmation tag (CPACE_TAG_BYTES) */
#define PROTO_CODE_TTL_MAX 3600 /* code-open.ttl, code-opened.ttl: 1..this seconds */

#define PROTO_TOKEN_LEN PROTO_SESSION_LEN /* same grammar: 32 lowercase hex digits */

struct proto_eplist {
    int n;
    struct sockaddr_storage ep[PROTO_MAX_ENDPOINTS];
};

struct proto_msg {
    enum proto_type type;
    union {
        struct {
            int version;
            char id[PROTO_MAX_ID + 1];
            struct proto_eplist endpoints;
            enum proto_path path; /* optional, default any */
            /* an auxiliary connection of an id that may be registered elsewhere: never a
             * target, one session (PROTOCOL.md, "Auxiliary connections"); sent only when true */
            bool aux;
            /* key and sig are optional on the wire only so that the server can answer their
             * absence with bad-signature; the server requires both */
            bool has_key, has_sig, has_admit;
            unsigned char key[PROTO_KEY_BYTES];
            unsigned char sig[PROTO_SIG_BYTES];
            unsigned char admit[PROTO_ADMIT_BYTES];
            struct proto_bday_caps birthday; /* optional: only to servers that offered it */
            /* hello.features as PROTO_FEAT_* bits (0: absent); only to servers that offered
             * "resume" */
            uint32_t features;
            /* hello.replace: this id was held by a connection of ours that is gone; the server
             * gives the id to this connection when the key is the same (the old one gets the
             * fatal error `replaced`); sent only when true, only to servers that offered
             * "resume" */
            bool replace;
        } hello;
        struct {
            int version;
            char id[PROTO_MAX_ID + 1];
            struct sockaddr_storage observed;
            int keepalive; /* seconds of silence after which the server drops the peer */
            bool relay;    /* the server relays sessions */
            int probe_port; /* 0: no probe listener */
            char probe_token[PROTO_TOKEN_LEN + 1]; /* "" when probe_port is 0 */
            /* an IPv6 probe listener: where a peer on an IPv4 control connection proves its
             * IPv6 endpoint (PROTOCOL.md, 5.2); only with probe_port */
            bool has_probe6;
            struct sockaddr_storage probe6;
        } welcome;
        struct {
            char target[PROTO_MAX_ID + 1];
            /* connect.resume: the root session id of a session to resume ("" absent); the
             * server passes it unchanged into both punches as punch.resume */
            char resume[PROTO_SESSION_LEN + 1];
        } connect;
        struct {
            char session[PROTO_SESSION_LEN + 1];
            char peer[PROTO_MAX_ID + 1];
            enum proto_role role;
            struct sockaddr_storage observed;
            struct proto_eplist endpoints;
            /* send the first SYN this long after the punch arrived (-1: not given) */
            int64_t start_in_us;
            bool relay;                      /* the server will relay this session */
            char token[PROTO_TOKEN_LEN + 1]; /* this peer's relay token, "" unless relay */
            bool no_direct;                  /* wire "direct":false: skip the punch, relay at once */
            char reason[PROTO_MAX_TEXT + 1]; /* why not direct, "" when direct */
            enum proto_nat nat;              /* the other peer's NAT mapping */
            /* the other peer's registered public key; servers that send challenge always
             * send it */
            bool has_key;
            unsigned char key[PROTO_KEY_BYTES];
            /* where to join the relay: a cluster instance other than the peer's own server
             * (PROTOCOL.md, "Cluster"); absent: the server the peer is connected to */
            bool has_relay_addr;
            struct sockaddr_storage relay_addr;
            /* the other peer's IPv6 endpoint as the server saw it on a probe: observed, unlike
             * the self-declared `endpoints` (PROTOCOL.md, "Punch budget") */
            bool has_observed6;
            struct sockaddr_storage observed6;
            /* a birthday plan: only to peers whose hello carried birthday, IPv4 only */
            bool has_birthday;
            struct proto_bday birthday;
            /* the other peer's hello.features (PROTO_FEAT_* bits; absent: 0) */
            uint32_t peer_features;
            /* the connect's resume root ("" absent): this punch resumes that session */
            char resume[PROTO_SESSION_LEN + 1];
        } punch;
        struct {
            char code[PROTO_MAX_CODE + 1];
            char message[PROTO_MAX_TEXT + 1];
            bool fatal;
        } error;
        struct {
            int64_t seq;
        } ping; /* also pong */
        struct {
            int version;
            char session[PROTO_SESSION_LEN + 1];
            char from[PROTO_MAX_ID + 1];
            char to[PROTO_MAX_ID + 1];
            unsigned char key[PROTO_KEY_BYTES]; /* the sender's identity (Ed25519) */
            unsigned char eph[PROTO_KEY_BYTES]; /* the sender's fresh crypto_kx (X25519) key */
            bool has_sig;                       /* the initiator's shake is signed */
            unsigned char sig[PROTO_SIG_BYTES];
            /* shake.resume: the sender's session layer; covered by both signatures */
            struct proto_resume_caps resume;
            /* shake.code: the session comes from a wormhole code and its keys are bound to
             * it (PROTOCOL.md 8.4); on the wire only as true; covered by both signatures */
            bool code;
        } shake;
        struct {
            char session[PROTO_SESSION_LEN + 1];
            unsigned char sig[PROTO_SIG_BYTES];
        } confirm;
        struct {
            int version;
            char token[PROTO_TOKEN_LEN + 1]; /* "" when absent */
            bool has_admit;
            unsigned char admit[PROTO_ADMIT_BYTES];
        } probe;
        struct {
            struct sockaddr_storage observed;
            enum proto_nat mapping; /* unknown when absent */
        } observed;
        struct {
            int version;
            char session[PROTO_SESSION_LEN + 1];
            char token[PROTO_TOKEN_LEN + 1];
            bool has_admit;
            unsigned char admit[PROTO_ADMIT_BYTES];
        } relay;
        struct {
            char session[PROTO_SESSION_LEN + 1];
        } relayed;
        struct {
            int version;
            unsigned char nonce[PROTO_NONCE_BYTES];
            /* challenge.features (an array of strings, unknown ones ignored): "birthday",
             * "resume", "replace" (hello.replace is honoured without resume too) */
            bool feat_birthday;
            bool feat_resume;
            bool feat_report; /* "report": the server takes traversal reports */
            bool feat_replace;
            bool feat_code; /* "code": the server has the wormhole mailbox (section 20) */
        } challenge;
        struct {
            char session[PROTO_SESSION_LEN + 1]; /* the punch's session */
            enum proto_result result;
            /* direct: the winner's kind (not none, not relay); relay: relay; failed: none */
            enum proto_cand candidate;
            int attempts; /* 0..PROTO_REPORT_MAX_ATTEMPTS */
            uint32_t ms;  /* 0..PROTO_REPORT_MAX_MS */
            enum proto_nat nat; /* the reporter's own mapping, as its probe found */
        } report;
        /* every code-* message (PROTOCOL.md section 20); which members a type carries is
         * proto.c's table, the others stay zero */
        struct {
            int channel; /* 1..PROTO_CODE_CHANNEL_MAX; 0 in code-open */
            int ttl;     /* code-open: 0 when absent, else 1..PROTO_CODE_TTL_MAX; code-opened */
            unsigned char sid[PROTO_CODE_SID_BYTES];
            unsigned char share[PROTO_CODE_SHARE_BYTES];
            size_t ad_len; /* 1..PROTO_CODE_AD_MAX where the type carries ad */
            unsigned char ad[PROTO_CODE_AD_MAX];
            unsigned char tag[PROTO_CODE_TAG_BYTES];
        } code;
    } u;
};

/* Decoding failures, each with the error code PROTOCOL.md gives it. */
enum proto_err {
    PROTO_OK = 0,
    PROTO_E_JSON,       /* bad-json */
    PROTO_E_MESSAGE,    /* bad-message: not an object, no string "type" */
    PROTO_E_TYPE,       /* unknown-type */
    PROTO_E_UNEXPECTED, /* unexpected-type: known, but not valid in this direction */
    PROTO_E_FIELD,      /* bad-field */
    PROTO_E_ID,         /* bad-id */
    PROTO_E_ENDPOINT,   /* bad-endpoint */
    PROTO_E_TOO_MANY,   /* too-many-endpoints */
    PROTO_E_VERSION,    /* bad-version */
    PROTO_E_LINE,       /* line-too-long */
};

/* The error code a decoding failure is answered with (PC_INTERNAL for PROTO_OK or a value out
 * of range), and its wire spelling ("ok" for PROTO_OK). */
enum proto_code proto_err_pc(enum proto_err e);
const char *proto_err_code(enum proto_err e);
const char *proto_type_name(enum proto_type t);
const char *proto_path_name(enum proto_path p);
const char *proto_nat_name(enum proto_nat n);
const char *proto_role_name(enum proto_role r);
/* punch.birthday.role's wire spelling ("hard", "easy"; "?" out of range), and back (false for
 * anything else). */
const char *proto_bday_role_name(enum proto_bday_role r);
bool proto_bday_role_parse(const char *text, enum proto_bday_role *out);
/* A path's wire spelling ("any", "direct", "relay") into *out; false for anything else. */
bool proto_path_parse(const char *text, enum proto_path *out);
/* report.result's and report.candidate's wire spellings ("?" out of range), and a candidate
 * kind's enum (punch.c's names; NULL or anything else: PROTO_CAND_NONE). */
const char *proto_result_name(enum proto_result r);
const char *proto_cand_name(enum proto_cand c);
enum proto_cand proto_cand_of(const char *kind);
bool proto_valid_id(const char *s);
bool proto_valid_session(const char *s);

/* Decodes one line (without its newline). On failure returns the error and a human reason. */
enum proto_err proto_decode(const char *line, size_t len, enum proto_dir dir, struct proto_msg *out,
                            char *why, size_t whylen);

/* Encodes msg as one line ending in '\n'. Returns its length, or -1 if it would not fit in
 * buflen or in PROTO_MAX_LINE. */
int proto_encode(const struct proto_msg *msg, char *buf, size_t buflen);

/* Convenience: an error message line. code is a wire spelling; proto_encode_pc names it. */
int proto_encode_error(const char *code, const char *message, bool fatal, char *buf, size_t buflen);
int proto_encode_pc(enum proto_code code, const char *message, bool fatal, char *buf,
                    size_t buflen);

#endif
