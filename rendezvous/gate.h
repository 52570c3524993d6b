/* Who may use the server: the shared admission secret (--secret-file), the allowlist
 * (--authorized, reloaded on SIGHUP) and the id owners (first key wins; --id-db keeps them
 * across restarts). The checks a hello goes through after its signature, in PROTOCOL.md's order. */
#ifndef TP_GATE_H
#define TP_GATE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/auth.h"
#include "proto/proto.h"
#include "rendezvous/idkeys.h"

struct gate_cfg {
    const char *secret_file; /* NULL: anyone may talk to the server */
    const char *id_db;       /* NULL: owners are kept in memory only */
    const char *authorized;  /* NULL: any id may register */
    size_t max_ids;          /* owners kept at most */
};

struct gate {
    struct gate_cfg cfg;
    bool have_secret;
    unsigned char secret[AUTH_KEY_BYTES];
    struct ik *owners; /* id -> the first key that registered it */
    int db_fd;         /* --id-db opened for appending, or -1 */
    struct ik *allow;  /* --authorized; NULL without one */
};

/* Loads the secret, the id database (rewriting it when it held a torn or repeated line) and the
 * allowlist. Returns 0, or -1 with err naming the file and line. */
int gate_init(struct gate *g, const struct gate_cfg *cfg, char *err, size_t errlen);
void gate_free(struct gate *g);

/* Reads the allowlist again (SIGHUP). On error the old list stays and err says why. */
int gate_reload(struct gate *g, char *err, size_t errlen);

/* The first line of a connection, decoded (m; NULL when it did not decode), proves the secret
 * with an admit made for this connection's nonce and this very line (always true without a
 * secret). A line that does not decode cannot be checked, so with a secret it is refused. */
bool gate_admitted(const struct gate *g, const unsigned char *nonce, const struct proto_msg *m);

/* A decoded hello answering nonce: signature, allowlist, ownership. Returns NULL when it may
 * register, else the error code with the message in msg. */
const char *gate_check_hello(const struct gate *g, const unsigned char *nonce,
                             const struct proto_msg *hello, char *msg, size_t len);

/* Whether id/key may still register (the allowlist may have changed). */
bool gate_allowed(const struct gate *g, const char *id, const unsigned char *key);

/* Makes key the owner of id when it has none (written to --id-db first). Returns NULL, or the
 * error code with the message in msg. */
const char *gate_bind(struct gate *g, const char *id, const unsigned char *key, char *msg,
                      size_t len);

#endif
