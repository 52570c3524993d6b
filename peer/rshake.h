/* The resume handshake (docs/design/resume.md 4.4): how a later connection of a session (epoch
 * e >= 1) proves, without signatures, that both ends hold the session's resumption secret RS
 * (shake_keys_rs), and how it gets its own stream keys. Three lines, JSON like the shake:
 *
 *   responder -> initiator   resume  {session, root, from, to, epoch, eph}          (no MAC)
 *   initiator -> responder   resume  {session, root, from, to, epoch, eph, rx, mac}  (MAC_I)
 *   responder -> initiator   resumed {session, rx, gone, mac}                        (MAC_R)
 *
 * Each side brings a fresh crypto_kx key per attempt (rshake_init); the MACs cover both of
 * them, the new punch's session id, the root id, the epoch, both ids, the sender's role letter
 * and the offsets, so a recorded line verifies nowhere else and a reflected one not at all.
 * Pure logic, no I/O, like shake.h. The punch engine's resume mode (punch.h, cfg.resume) sends
 * them; nothing sets cfg.resume yet.
 *
 * The lines are encoded and decoded here with jansson rather than through proto/ (no PROTO_*
 * types for them yet); the rules are proto's: at most PROTO_MAX_LINE bytes with the newline,
 * strict (unknown or duplicate members are refused), binary members in canonical standard
 * base64, integers without fraction or exponent. */
#ifndef TP_RSHAKE_H
#define TP_RSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peer/shake.h"
#include "proto/proto.h"

#define RSHAKE_RX_MAX ((UINT64_C(1) << 53) - 1) /* offsets on the wire: exact in any JSON number   \
                                                 */

enum rshake_type {
    RSHAKE_RESUME,  /* "resume": the responder's offer or the initiator's answer (by role) */
    RSHAKE_RESUMED, /* "resumed": the responder's acceptance */
};

/* One attempt (one connection) of one side. Copy the session's fields into a fresh context per
 * connection and call rshake_init on it: every connection has its own ephemeral key. */
struct rshake_ctx {
    char session[PROTO_SESSION_LEN + 1]; /* the new punch's session id S */
    char root[PROTO_SESSION_LEN + 1];    /* the session's root id (epoch 0's punch.session) */
    char self[PROTO_MAX_ID + 1];
    char peer[PROTO_MAX_ID + 1];
    enum proto_role role;    /* the session's roles (the shake's) */
    const unsigned char *rs; /* SHAKE_RS_BYTES, the session's; not owned */
    uint32_t last_epoch;     /* the last epoch this side accepted (0: only the shake's) */
    uint64_t rx;             /* our receive offset announced in this attempt; keep it fixed
                                from our line until the exchange is over */
    bool gone;               /* responder: the session ended (tombstone): resumed says so */
    unsigned char eph_pk[crypto_kx_PUBLICKEYBYTES], eph_sk[crypto_kx_SECRETKEYBYTES];
};

/* What one connection has shown of the peer's attempt. */
struct rshake_peer {
    bool seen;                                   /* a valid resume line arrived */
    bool done;                                   /* initiator: a valid resumed arrived */
    unsigned char eph[crypto_kx_PUBLICKEYBYTES]; /* the peer's fresh key */
    uint32_t epoch;                              /* the epoch of this attempt */
    uint64_t rx;                                 /* the peer's receive offset (responder: after
                                                    the initiator's resume; initiator: after
                                                    resumed) */
    bool gone;                                   /* initiator: resumed said the session ended */
};

/* Makes the fresh ephemeral key pair of this attempt. */
void rshake_init(struct rshake_ctx *c);

/* Wipes the ephemeral secret (RS belongs to the session and is not touched). */
void rshake_wipe(struct rshake_ctx *c);

/* The epoch the responder offers: last_epoch + 1; 0 when no epoch is left. */
uint32_t rshake_next_epoch(const struct rshake_ctx *c);

/* Encodes our line of type t, newline included (not NUL-terminated): the responder's resume
 * (p unused), the initiator's resume (answering the responder's that p holds), the responder's
 * resumed (accepting the initiator's resume that p holds). Returns the length or -1 (a line not
 * ours to send in this role or state, no epoch left, no room). */
int rshake_encode(const struct rshake_ctx *c, enum rshake_type t, const struct rshake_peer *p,
                  char *buf, size_t len);

/* Checks a received line of type expect against this attempt: from our peer to us, for our
 * session and root, an epoch we may accept (initiator: above last_epoch; responder: the one it
 * offered, last_epoch + 1), not our own key back, and the MAC under RS. A valid resume fills p
 * (seen, eph, epoch, and rx from the initiator); a valid resumed sets p->done, rx and gone.
 * Returns SHAKE_OK or SHAKE_BAD (drop this connection; why says what was wrong). */
enum shake_verdict rshake_verify(const struct rshake_ctx *c, enum rshake_type expect,
                                 const char *line, size_t len, struct rshake_peer *p, char *why,
                                 size_t whylen);

/* The new connection's stream keys once the exchange verified (responder: after the initiator's
 * resume; initiator: after resumed): a fresh crypto_kx (initiator = client) mixed with RS, the
 * root, the session, the epoch and both fresh keys. -1 when the peer's key is unusable (a
 * low-order point) or the exchange is not complete. */
int rshake_keys(const struct rshake_ctx *c, const struct rshake_peer *p, unsigned char *tx,
                unsigned char *rx);

#endif
