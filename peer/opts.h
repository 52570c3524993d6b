/* The options in effect for a command (flags > environment > config file > defaults; options.c
 * and config.c fill them in), and where each setting came from. */
#ifndef TP_OPTS_H
#define TP_OPTS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/identity.h"
#include "proto/proto.h"

enum cfg_key {
    CFG_SERVER,
    CFG_ID,
    CFG_PORT,
    CFG_TIMEOUT,
    CFG_DIRECT_TIMEOUT,
    CFG_RELAY,
    CFG_SECRET_FILE,
    CFG_VERBOSE,
    CFG_QUIET,
    CFG_NO_RETRY,
    CFG_DIR,
    CFG_BIRTHDAY_K,
    CFG_BIRTHDAY_M,
    CFG_RESUME_TIMEOUT,
    CFG_RESUME_BUFFER,
    CFG_RELAY_GRACE,
    CFG_DIRECT_FIRST,
    CFG_NO_REPORT,
    CFG_NKEYS
};

enum cfg_from { CFG_FROM_DEFAULT, CFG_FROM_FILE, CFG_FROM_ENV, CFG_FROM_FLAG };

struct cfg {
    char path[PATH_MAX]; /* the config file ("" when there is no home directory) */
    bool read;           /* it existed and was read */
    unsigned char from[CFG_NKEYS];
    /* string values from the file, which the options point into */
    char server[1024]; /* HOST:PORT, or a comma-separated list of them */
    char secret_file[PATH_MAX];
    char dir[PATH_MAX];
};

#define PEER_MAX_ALLOW 64
#define PEER_DEFAULT_SESSIONS 64
#define PEER_DEFAULT_MAX_FILES 10000 /* receive --max-files */
/* --birthday-k, --birthday-m: what we spend on one birthday punch at most (PROTOCOL.md,
 * "Birthday punching"); the caps are the protocol's */
#define PEER_DEFAULT_BIRTHDAY_K 256
#define PEER_DEFAULT_BIRTHDAY_M 1024
/* --resume-timeout (s) and --resume-buffer (bytes): docs/design/resume.md 4.3 */
#define PEER_DEFAULT_RESUME_TIMEOUT 120
#define PEER_DEFAULT_RESUME_BUFFER (8u * 1024 * 1024)
/* --relay-grace MS: at most a minute (--direct-timeout caps it anyway) */
#define PEER_RELAY_GRACE_MAX 60000

struct peer_opts {
    const char *server; /* HOST:PORT as given, or a comma-separated list of them */
    char id[PROTO_MAX_ID + 1];
    int port;            /* local port, 0 = pick */
    uint64_t timeout_ms; /* for the punch */
    int verbose;
    bool quiet;
    bool json; /* --json: events as JSON lines on stderr (nat-check: its report on stdout) */
    uint64_t direct_timeout_ms; /* open the offered relay when no direct path won by then */
    enum proto_path path;       /* hello.path: --no-relay "direct", --relay-only "relay" */
    bool plain;                 /* --plain (direct only): no handshake, no encryption */
    /* --peer-key, as the fingerprint of the key it names ("" when not given) */
    char peer_fp[ID_FP_SIZE];
    /* our identity, loaded by main for every command that needs one (NULL otherwise) */
    const struct identity *ident;
    /* --secret-file: SHA-256 of the file, proven to the server as `admit` (PROTOCOL.md) */
    bool have_secret;
    unsigned char secret[32];
    bool no_retry; /* --no-retry: listen/chat give up when the server is down or lost */
    bool no_report; /* --no-report: no traversal reports to the server (PROTOCOL.md) */
    /* receive: --dir (NULL: the current directory) and --force (replace existing files) */
    const char *dir;
    bool force;
    /* receive: --from ID[=KEY] entries (the only senders taken), --from-anyone, and --dotfiles
     * (take names with a component starting with '.') */
    const char *from[PEER_MAX_ALLOW];
    int nfrom;
    bool from_anyone;
    bool dotfiles;
    /* receive: --max-bytes (0: no fixed cap; free space still bounds every file) and
     * --max-files, both for one transfer */
    uint64_t max_bytes;
    unsigned max_files;
    const char *secret_file; /* --secret-file as given (NULL: none), for `tcpunch config` */
    struct cfg cfg;          /* the config file, and where each setting came from */
    /* forwarding (README, "Forwarding"): listen --forward HOST:PORT, its --allow ID[=KEY]
     * entries, connect --local [ADDR:]PORT, and the sessions either keeps at once */
    const char *forward;
    const char *local;
    const char *allow[PEER_MAX_ALLOW];
    int nallow;
    bool allow_anyone; /* --allow-anyone: --forward serves whoever knows our id */
    int max_sessions;
    /* birthday punching: the sockets we open behind a hard NAT (k, 0..PROTO_BDAY_MAX_K) and
     * the guesses we send behind an easy one (m, 0..PROTO_BDAY_MAX_M); 0 in either: we do not
     * take part (hello.birthday is not sent) */
    int birthday_k, birthday_m;
    /* sessions that survive their connection (README, "Resuming"): --resume-timeout SEC (0: the
     * session layer is off, today's stream), --resume-buffer BYTES (the resend ring) */
    uint32_t resume_timeout_s;
    uint64_t resume_buffer;
    /* relay first, then direct (README, "Relay first"; docs/design/resume.md 4.6):
     * --relay-grace MS (MIGRATE_GRACE_AUTO, -1: automatic) and --direct-first (today's timing,
     * no upgrade) */
    int64_t relay_grace_ms;
    bool direct_first;
    /* wormhole codes (README, "Codes"; docs/design/wormhole.md 6.3): --code (send, listen:
     * make a code; connect: the argument is a code), --code-words N (2 or 3: the words of a
     * code we make; 0: not given, 2), and send --to PEER (the PEER reading of `send`, whatever
     * is on disk); --remember is below */
    bool code;
    unsigned code_words;
    const char *send_to;
    /* a wormhole code's binding key (32 bytes: cpace_binding_key(ISK, "tcpunch session v1"),
     * docs/design/wormhole.md 6.3), set by the command after a code exchange for the session
     * with the code's peer; NULL: none. The sessions' handshakes (shake_ctx.code_bind) are
     * bound to it. The command owns and wipes the bytes. */
    const unsigned char *code_bind;
    /* --remember: after a session bound to a code, record the peer's key in known_peers
     * (trust_remember); without it a code session records nothing */
    bool remember;
};

#endif
