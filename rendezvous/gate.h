/* Who may use the server: the shared admission secret (--secret-file), the allowlist
 * (--authorized, reloaded on SIGHUP) and the id owners (first key wins; --id-db keeps them
 * across restarts). The checks a hello goes through after its signature, in PROTOCOL.md's order. */
#ifndef TP_GATE_H
#define TP_GATE_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/auth.h"
#include "proto/proto.h"
#include "rendezvous/idkeys.h"
#include "rendezvous/limits.h"

#include <stdint.h>
#include <sys/socket.h>

#define GATE_HOUR_MS 3600000u
#define GATE_DAY_S 86400
#define GATE_NEWID_SOURCES 65536 /* sources whose hour of new ids is tracked at once */
#define GATE_DB_RETRY_MS 60000

struct gate_cfg {
    const char *secret_file;   /* NULL: anyone may talk to the server */
    const char *id_db;         /* NULL: owners are kept in memory only */
    const char *authorized;    /* NULL: any id may register */
    size_t max_ids;            /* owners kept at most */
    unsigned ids_per_key;      /* ids one key may own (0: no limit) */
    unsigned new_ids_per_hour; /* new ids per source address (/64) per hour (0: no limit) */
    unsigned id_expire_days;   /* an id unused this long loses its owner (0: never) */
};

struct gate {
    struct gate_cfg cfg;
    bool have_secret;
    unsigned char secret[AUTH_KEY_BYTES];
    struct ik *owners; /* id -> the first key that registered it */
    int db_fd;         /* --id-db opened for appending, or -1 */
    struct ik *allow;  /* --authorized; NULL without one */
    struct limw *newids;     /* --new-ids-per-hour, per source */
    uint64_t last_expire_ms; /* uv_now of the last --id-expire sweep */
    /* --id-db may not match the table (a partial append that could not be cut back, a failed
     * rewrite after ids lapsed): nothing is appended (new ids: internal) until a rewrite
     * succeeds, tried every GATE_DB_RETRY_MS */
    bool db_broken;
    uint64_t db_retry_ms;
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

/* A decoded hello answering nonce: signature, allowlist, ownership. Returns PC_UNKNOWN (no
 * code) when it may register, else the error code with the message in msg. */
enum proto_code gate_check_hello(const struct gate *g, const unsigned char *nonce,
                                 const struct proto_msg *hello, char *msg, size_t len);

/* Whether id/key may still register (the allowlist may have changed). */
bool gate_allowed(const struct gate *g, const char *id, const unsigned char *key);

/* Makes key the owner of id when it has none (written to --id-db first), after --max-ids,
 * --ids-per-key and --new-ids-per-hour (src: where the hello came from); an owned id is
 * touched (last-seen now). claimed: the cluster has bound it already, with those checks done
 * in Redis; only the local cache is updated. Returns PC_UNKNOWN (no code), or the error code
 * with the message in msg. */
enum proto_code gate_bind(struct gate *g, const char *id, const unsigned char *key,
                          const struct sockaddr *src, uint64_t now_ms, bool claimed, char *msg,
                          size_t len);

/* Called often (the server's sweep); once an hour lets ids unused for --id-expire days lapse
 * (rewriting --id-db when any did). online(arg, id) keeps the ids registered at the moment. */
void gate_tick(struct gate *g, uint64_t now_ms, bool (*online)(void *arg, const char *id),
               void *arg);

#endif
