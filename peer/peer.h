/* Shared types of the tcpunch client: options, exit codes, the established link. */
#ifndef TP_PEER_H
#define TP_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/identity.h"
#include "common/srvlist.h"
#include "peer/config.h"
#include "peer/exit.h"
#include "proto/proto.h"

#define PEER_MAX_ALLOW 64
#define PEER_DEFAULT_SESSIONS 64
#define PEER_DEFAULT_MAX_FILES 10000 /* receive --max-files */

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
};

/* A verified connection to the other peer, out of the event loop, ready for the pump. */
struct peer_link {
    int fd;
    char peer[PROTO_MAX_ID + 1];
    struct sockaddr_storage remote;
    const char *via;   /* which candidate won: "public", "port-preserved", "lan", "inbound" */
    uint64_t punch_ms; /* from the punch order to the handshake done */
    unsigned attempts; /* connect() calls made */
    size_t prefill_len;
    char prefill[PROTO_MAX_LINE];         /* peer data that arrived with the handshake */
    bool relayed;                         /* through the server's relay, not direct */
    struct sockaddr_storage relay_server; /* the relay's endpoint, when relayed */
    char direct_why[256];                 /* relayed: why the direct path failed or was skipped */
    char server[SL_NAME];                 /* the rendezvous that introduced us (of --server) */
    /* the end-to-end keys of the stream (PROTOCOL.md, "Encrypted stream"); !encrypted only in
     * direct --plain */
    bool encrypted;
    unsigned char tx_key[crypto_kx_SESSIONKEYBYTES], rx_key[crypto_kx_SESSIONKEYBYTES];
    unsigned char peer_pk[crypto_sign_PUBLICKEYBYTES]; /* the peer's verified identity */
};

/* Registers with the server, asks for target (NULL: peer_wait, waits for someone to ask for
 * us), punches and verifies. Returns EXIT_DONE with *link filled, or an exit code after
 * printing why. */
int peer_rendezvous(const struct peer_opts *o, const char *target, struct peer_link *link);

/* The same for `connect`: the control connection is an auxiliary one (PROTOCOL.md, hello.aux),
 * so that any number of them may run at once under our id, next to a `listen` of that id. */
int peer_rendezvous_aux(const struct peer_opts *o, const char *target, struct peer_link *link);

/* listen --forward: what the control connection does with each punch order. */
struct peer_serve {
    /* Called before anything is dialled: false refuses the session (why says why). May set fp
     * to the fingerprint the peer's key must have ("" leaves the usual trust). */
    bool (*admit)(void *arg, const char *peer, char *fp, size_t fplen, char *why, size_t whylen);
    /* An admitted session ended without a link. */
    void (*failed)(void *arg, const char *peer);
    /* An admitted session is up: the callee copies *link and owns link->fd from now on. */
    void (*linked)(void *arg, struct peer_link *link);
    void *arg;
};

/* listen, receive, chat without a peer (peer_rendezvous with no target): stays registered and
 * sets up every punch order addressed to us, up to 8 at once and 2 per peer id (a newer order
 * replaces an older one, see ctl_wait_room), in parallel; the first session
 * that completes its handshake is the link, the others are aborted. A session that fails (a
 * stranger that never dials, a refused key, no path) is logged and waiting goes on. hooks may
 * be NULL; its admit (e.g. receive --from) and failed are called as for peer_serve, linked is
 * not used. Returns EXIT_DONE with *link filled, or an exit code when the server is lost for
 * good or refused us. Nothing is read from stdin before it returns. */
int peer_wait(const struct peer_opts *o, const struct peer_serve *hooks, struct peer_link *link);

/* receive --from: peer_wait with gate's admit (it may pin the peer's key; a refused order
 * leaves us waiting for the next). */
int peer_rendezvous_gate(const struct peer_opts *o, const struct peer_serve *gate,
                         struct peer_link *link);

/* Stays registered (across server restarts, unless --no-retry) and serves every punch order
 * addressed to us at once, each as its own session. Returns only when the server is lost for
 * good or refused us (an exit code). */
int peer_serve(const struct peer_opts *o, const struct peer_serve *sv);

/* Pipes stdin/stdout through the link with netcat semantics; returns an exit code. */
int peer_pipe(const struct peer_opts *o, struct peer_link *link);

/* The same between the link and in/out (one socket for both: a splice; its end is passed on
 * as shutdown(SHUT_WR)). Closes link->fd, not in or out. */
int peer_pipe_fds(const struct peer_opts *o, struct peer_link *link, int in, int out);

/* Reports how the link was made: the path line (unless -q), or the `connected` event. */
void peer_report(const struct peer_opts *o, const struct peer_link *link);

#endif
