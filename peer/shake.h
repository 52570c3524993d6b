/* The end-to-end handshake on a punched or relayed connection (PROTOCOL.md, "Handshake"): the
 * responder offers a shake on every connection, the initiator answers with a signed shake on the
 * one it selects, the responder confirms it with its own signature. Both shakes carry the
 * sender's identity key and a fresh crypto_kx key; the signatures bind both to the session, and
 * the stream keys come from the crypto_kx exchange. Pure logic, no I/O: the punch engine and
 * direct mode move the lines. */
#ifndef TP_SHAKE_H
#define TP_SHAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/identity.h"
#include "common/known.h"
#include "proto/proto.h"

/* Who vouches for the peer's identity key, checked in this order (the first that is set). */
struct shake_trust {
    char name[300];      /* the peer as known_peers and our messages name it */
    char fp[ID_FP_SIZE]; /* --peer-key, as a fingerprint; "" when not given */
    int nknown;          /* known_peers lines for the peer: one must hold its key */
    struct kp_entry known[KP_MAX_KEYS];
    char known_path[512];
    bool server_key; /* the punch named the key the peer registered with */
    unsigned char server_pk[crypto_sign_PUBLICKEYBYTES];
};

struct shake_ctx {
    char session[PROTO_SESSION_LEN + 1];
    char self[PROTO_MAX_ID + 1];
    char peer[PROTO_MAX_ID + 1];
    enum proto_role role;
    /* direct mode: both sides send an unsigned shake at once, the roles follow from the two
     * ephemeral keys, and both confirm (see shake_direct_role) */
    bool symmetric;
    const struct identity *ident;
    unsigned char eph_pk[crypto_kx_PUBLICKEYBYTES], eph_sk[crypto_kx_SECRETKEYBYTES];
    struct shake_trust trust;
    /* The session layer (docs/design/resume.md 4.1, PROTOCOL.md section 18): our shake.resume
     * (has: our hello announced "resume"; v, buf, timeout: ours), and for the responder whether
     * the punch's peer_features listed it too. The responder sends shake.resume iff both; the
     * initiator iff the responder's shake carried it (and resume.has); never in direct mode.
     * All zero: today's handshake byte for byte. */
    struct proto_resume_caps resume;
    bool resume_listed;
    /* A wormhole code's binding key (SHAKE_BIND_BYTES, docs/design/wormhole.md 6.3: both
     * sides' cpace_binding_key of the code exchange's ISK), or NULL: no code, today's handshake
     * byte for byte. When set, our shake carries "code": true, the peer's must too (a shake
     * that differs is refused like a changed key: SHAKE_REFUSED), both signatures cover both
     * members and a proof of the signer's key (a peer of another code exchange: SHAKE_CODE),
     * and the stream keys and the resumption secret mix the key in (PROTOCOL.md 8.4,
     * 18.2), so only the two sides that ran the code's PAKE can read or write the stream, not
     * the server nor anyone else holding an identity key. Never in direct mode (symmetric:
     * ignored, as a shake's "code" is there). The caller owns the bytes, keeps them until
     * shake_keys and wipes them. */
    const unsigned char *code_bind;
};

#define SHAKE_BIND_BYTES 32 /* CPACE_BIND_BYTES */

/* What one connection has shown of the peer. */
struct shake_peer {
    bool seen; /* a valid shake arrived */
    unsigned char key[crypto_sign_PUBLICKEYBYTES];
    unsigned char eph[crypto_kx_PUBLICKEYBYTES];
    struct proto_resume_caps resume; /* the peer's shake.resume (has false: absent) */
    bool code;                       /* the peer's shake said "code": true */
};

enum shake_verdict {
    SHAKE_OK,
    SHAKE_BAD,     /* not the expected valid message: drop this connection */
    SHAKE_REFUSED, /* the peer's key is not the trusted one, or its shake says "code" where we
                    * have none or the other way round: end the whole attempt */
    /* A code session only: a signature by the trusted key (the one the code exchange
     * authenticated) that does not verify. Each side signs a proof of its own binding key
     * (PROTOCOL.md 8.2), so this is what two sides of different code exchanges see: someone
     * who knew the code ran one with each (exit status 12). It cannot be told from a signature
     * broken otherwise, and a peer with the real key that signs badly is no more honest. For
     * a shake, peer is filled as for SHAKE_OK, so that the responder can still answer with its
     * own confirm: its signature is how the initiator learns the same. */
    SHAKE_CODE,
};

/* Makes the fresh ephemeral key pair; the rest of s is the caller's to fill. */
void shake_init(struct shake_ctx *s);

/* Wipes the secrets in s. */
void shake_wipe(struct shake_ctx *s);

/* Encodes our shake (PROTO_SHAKE) or confirm (PROTO_CONFIRM) line. The initiator's shake and
 * every confirm are signed over what peer showed. Returns the length or -1. */
int shake_encode(const struct shake_ctx *s, enum proto_type type, const struct shake_peer *peer,
                 char *buf, size_t len);

/* Checks a received line: a message of type expect for our session (a shake also from our peer,
 * to us, with a valid signature when the initiator sent it, from a trusted key; a confirm signed
 * by the key peer holds). A valid shake fills peer (and one refused SHAKE_CODE). why says what
 * was wrong; for SHAKE_REFUSED and SHAKE_CODE it is the full warning for the user. */
enum shake_verdict shake_verify(const struct shake_ctx *s, enum proto_type expect, const char *line,
                                size_t len, struct shake_peer *peer, char *why, size_t whylen);

/* Whether key is trusted for the peer as t says (section 8.3 of PROTOCOL.md): SHAKE_OK, or
 * SHAKE_REFUSED with the full warning in why. A waiting peer asks it of the key a punch order
 * names, to turn a stranger away before dialling anything. */
enum shake_verdict shake_trust_key(const struct shake_trust *t, const unsigned char *key,
                                   char *why, size_t whylen);

/* Direct mode: after the peer's shake, takes the role given by the two ephemeral keys (the
 * lower one initiates). */
void shake_direct_role(struct shake_ctx *s, const struct shake_peer *peer);

/* Whether the session layer is on after a handshake with peer: both shakes carried
 * shake.resume. */
bool shake_resume_on(const struct shake_ctx *s, const struct shake_peer *peer);

/* The two stream keys for the peer of a finished handshake, bound to s->code_bind when set.
 * -1 when the peer's ephemeral key is unusable (a low-order point), or when the peer's "code"
 * is not what s->code_bind says (shake_verify refuses that first). */
int shake_keys(const struct shake_ctx *s, const struct shake_peer *peer, unsigned char *tx,
               unsigned char *rx);

/* shake_keys, and also the session's resumption secret rs (SHAKE_RS_BYTES; none when rs is NULL)
 * for the resume handshake of later connections (docs/design/resume.md 4.2, peer/rshake.h): both
 * sides of one handshake get the same rs, every handshake another; with s->code_bind, rs is
 * bound to the code as the stream keys are (it derives from the crypto_kx keys, not from tx and
 * rx, so the binding is mixed into it too). tx and rx are exactly shake_keys's. The caller keeps rs
 * with the session (locked memory) and wipes it at the end; nothing of it goes on the wire.
 * Dormant: no caller asks for it yet. */
#define SHAKE_RS_BYTES 32
int shake_keys_rs(const struct shake_ctx *s, const struct shake_peer *peer, unsigned char *tx,
                  unsigned char *rx, unsigned char *rs);

#endif
