/* Fixed keys for the harnesses that run the end-to-end handshake (shake, punch): alice
 * initiates, bob responds, and every key comes from a fixed seed, so that the signed lines of
 * the seed corpora stay valid from one build to the next. */
#ifndef TP_FZ_SHAKE_H
#define TP_FZ_SHAKE_H

#include "common/identity.h"
#include "peer/shake.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* The identity whose seed is the byte c repeated. */
static inline void fz_identity(struct identity *id, char c)
{
    unsigned char seed[crypto_sign_SEEDBYTES];
    memset(seed, c, sizeof seed);
    crypto_sign_seed_keypair(id->pk, id->sk, seed);
}

/* role's side of session between alice and bob, with a fixed ephemeral key instead of the
 * random one shake_init makes; trust names the other side, nothing more. */
static inline void fz_shake_ctx(struct shake_ctx *s, enum proto_role role, const char *session,
                                const struct identity *alice, const struct identity *bob)
{
    bool init = role == PROTO_INITIATOR;
    unsigned char seed[crypto_kx_SEEDBYTES];
    memset(s, 0, sizeof *s);
    memset(seed, init ? 'a' : 'b', sizeof seed);
    crypto_kx_seed_keypair(s->eph_pk, s->eph_sk, seed);
    snprintf(s->session, sizeof s->session, "%s", session);
    snprintf(s->self, sizeof s->self, "%s", init ? "alice" : "bob");
    snprintf(s->peer, sizeof s->peer, "%s", init ? "bob" : "alice");
    s->role = role;
    s->ident = init ? alice : bob;
    snprintf(s->trust.name, sizeof s->trust.name, "%s", s->peer);
}

#endif
