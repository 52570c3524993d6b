/* The error codes of the protocol (PROTOCOL.md, section 9) as names the compiler checks: one
 * enum, one table of their wire spellings. The texts on the wire are the table's, byte for byte;
 * code that sends or tests an error names it by its enum value, never by a string literal. */
#ifndef TP_PROTO_CODE_H
#define TP_PROTO_CODE_H

#include <stdbool.h>

/* In the order of PROTOCOL.md's table. */
enum proto_code {
    PC_UNKNOWN = 0, /* not a code of this version (a newer server may send more) */
    PC_BAD_JSON,
    PC_BAD_MESSAGE,
    PC_UNKNOWN_TYPE,
    PC_UNEXPECTED_TYPE,
    PC_BAD_FIELD,
    PC_BAD_ID,
    PC_BAD_ENDPOINT,
    PC_TOO_MANY_ENDPOINTS,
    PC_LINE_TOO_LONG,
    PC_BAD_VERSION,
    PC_NOT_REGISTERED,
    PC_ALREADY_REGISTERED,
    PC_ID_TAKEN,
    PC_PEER_NOT_FOUND,
    PC_SELF_CONNECT,
    PC_HELLO_TIMEOUT,
    PC_KEEPALIVE_TIMEOUT,
    PC_SERVER_SHUTDOWN,
    PC_SERVER_FULL,
    PC_TOO_MANY_IDS,
    PC_OVERLOADED,
    PC_TOO_MANY_PINGS,
    PC_NO_PATH,
    PC_RELAY_DISABLED,
    PC_RELAY_REFUSED,
    PC_RELAY_FULL,
    PC_RELAY_TIMEOUT,
    PC_NOT_ADMITTED,
    PC_BAD_SIGNATURE,
    PC_NOT_AUTHORIZED,
    PC_ID_OWNED,
    PC_TOO_MANY_CONNECTIONS,
    PC_RATE_LIMITED,
    PC_INTERNAL,
    PC_REPLACED, /* replaced: a newer connection with the same key took the id (fatal) */
    /* wormhole codes (PROTOCOL.md section 20), all non-fatal */
    PC_CODE_UNKNOWN, /* no such code: never made, expired, already claimed, maker gone */
    PC_CODE_EXPIRED, /* the channel lived its ttl unclaimed, or the exchange took too long */
    PC_CODE_WRONG,   /* the other side aborted (found the code wrong) or left mid-exchange */
    PC_COUNT
};

/* PROTOCOL.md's "Fatal" column: whether the server closes the connection after the error. */
enum proto_code_fatal {
    PC_FATAL,    /* "yes" */
    PC_NONFATAL, /* "no": the answer to one `connect`; the peer stays registered */
    PC_EITHER,   /* "see text": which one depends on what was refused */
};

/* The wire spelling ("server-full"); "?" for PC_UNKNOWN or a value out of range. */
const char *proto_code_name(enum proto_code c);
/* The code spelled text, or PC_UNKNOWN (also for NULL). */
enum proto_code proto_code_parse(const char *text);
enum proto_code_fatal proto_code_fatal(enum proto_code c);
/* A "passing reason" (PROTOCOL.md, section 13, "Peers and a lost server"): a refusal that goes
 * away by itself, after which a waiting peer connects again. id-taken is one only for a peer
 * that had registered once; that condition is the peer's to check, so it is not listed here. */
bool proto_code_passing(enum proto_code c);

#endif
