#include "proto/code.h"

#include <stddef.h>
#include <string.h>

struct pc_entry {
    const char *name;
    enum proto_code_fatal fatal;
    bool passing;
};

static const struct pc_entry pc_table[PC_COUNT] = {
    [PC_BAD_JSON] = {"bad-json", PC_FATAL, false},
    [PC_BAD_MESSAGE] = {"bad-message", PC_FATAL, false},
    [PC_UNKNOWN_TYPE] = {"unknown-type", PC_FATAL, false},
    [PC_UNEXPECTED_TYPE] = {"unexpected-type", PC_EITHER, false}, /* non-fatal for code-* */
    [PC_BAD_FIELD] = {"bad-field", PC_FATAL, false},
    [PC_BAD_ID] = {"bad-id", PC_FATAL, false},
    [PC_BAD_ENDPOINT] = {"bad-endpoint", PC_FATAL, false},
    [PC_TOO_MANY_ENDPOINTS] = {"too-many-endpoints", PC_FATAL, false},
    [PC_LINE_TOO_LONG] = {"line-too-long", PC_FATAL, false},
    [PC_BAD_VERSION] = {"bad-version", PC_FATAL, false},
    [PC_NOT_REGISTERED] = {"not-registered", PC_FATAL, false},
    [PC_ALREADY_REGISTERED] = {"already-registered", PC_FATAL, false},
    [PC_ID_TAKEN] = {"id-taken", PC_FATAL, false},
    [PC_PEER_NOT_FOUND] = {"peer-not-found", PC_NONFATAL, false},
    [PC_SELF_CONNECT] = {"self-connect", PC_NONFATAL, false},
    [PC_HELLO_TIMEOUT] = {"hello-timeout", PC_FATAL, true},
    [PC_KEEPALIVE_TIMEOUT] = {"keepalive-timeout", PC_FATAL, true},
    [PC_SERVER_SHUTDOWN] = {"server-shutdown", PC_FATAL, true},
    [PC_SERVER_FULL] = {"server-full", PC_EITHER, true}, /* non-fatal for code-open */
    [PC_TOO_MANY_IDS] = {"too-many-ids", PC_FATAL, false},
    [PC_OVERLOADED] = {"overloaded", PC_FATAL, true},
    [PC_TOO_MANY_PINGS] = {"too-many-pings", PC_FATAL, false},
    [PC_NO_PATH] = {"no-path", PC_NONFATAL, false},
    [PC_RELAY_DISABLED] = {"relay-disabled", PC_FATAL, false},
    [PC_RELAY_REFUSED] = {"relay-refused", PC_FATAL, false},
    [PC_RELAY_FULL] = {"relay-full", PC_FATAL, false},
    [PC_RELAY_TIMEOUT] = {"relay-timeout", PC_FATAL, false},
    [PC_NOT_ADMITTED] = {"not-admitted", PC_FATAL, false},
    [PC_BAD_SIGNATURE] = {"bad-signature", PC_FATAL, false},
    [PC_NOT_AUTHORIZED] = {"not-authorized", PC_FATAL, false},
    [PC_ID_OWNED] = {"id-owned", PC_FATAL, false},
    [PC_TOO_MANY_CONNECTIONS] = {"too-many-connections", PC_FATAL, true},
    [PC_RATE_LIMITED] = {"rate-limited", PC_EITHER, true},
    [PC_INTERNAL] = {"internal", PC_EITHER, true},
    [PC_REPLACED] = {"replaced", PC_FATAL, false},
    [PC_CODE_UNKNOWN] = {"code-unknown", PC_NONFATAL, false},
    [PC_CODE_EXPIRED] = {"code-expired", PC_NONFATAL, false},
    [PC_CODE_WRONG] = {"code-wrong", PC_NONFATAL, false},
};

static const struct pc_entry *pc_get(enum proto_code c)
{
    return (unsigned)c < PC_COUNT && pc_table[c].name ? &pc_table[c] : NULL;
}

const char *proto_code_name(enum proto_code c)
{
    const struct pc_entry *e = pc_get(c);
    return e ? e->name : "?";
}

enum proto_code proto_code_parse(const char *text)
{
    for (int c = 0; text && c < PC_COUNT; c++)
        if (pc_table[c].name && strcmp(pc_table[c].name, text) == 0)
            return (enum proto_code)c;
    return PC_UNKNOWN;
}

enum proto_code_fatal proto_code_fatal(enum proto_code c)
{
    const struct pc_entry *e = pc_get(c);
    /* an unknown code: peers treat a missing `fatal` as true, and so an unknown code too */
    return e ? e->fatal : PC_FATAL;
}

bool proto_code_passing(enum proto_code c)
{
    const struct pc_entry *e = pc_get(c);
    return e && e->passing;
}
