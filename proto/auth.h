/* Registration proof and admission, shared by peers and the server (PROTOCOL.md, "Challenge"):
 * the bytes a hello signature covers, and the `admit` proof of a shared secret. */
#ifndef TP_PROTO_AUTH_H
#define TP_PROTO_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/proto.h"

#define AUTH_HELLO_CONTEXT "tcpunch-hello-v1" /* followed by a NUL in the signed bytes */
#define AUTH_HELLO_MSG_MAX (sizeof AUTH_HELLO_CONTEXT + PROTO_NONCE_BYTES + PROTO_MAX_ID)
#define AUTH_SECRET_MAX 65536 /* bytes in a secret file */
#define AUTH_KEY_BYTES 32

/* The admission key: SHA-256 of the whole contents of the secret file, byte for byte. An empty,
 * unreadable or oversized file is refused. Returns 0, or -1 with the reason in err. */
int auth_secret_load(const char *path, unsigned char key[AUTH_KEY_BYTES], char *err, size_t errlen);

#define AUTH_ADMIT_CONTEXT "tcpunch-admit-v1"

/* admit = HMAC-SHA-256(key, the canonical encoding of m's fields that matter, after a context
 * string and the challenge nonce: PROTOCOL.md, "Admission"). So an admit is worth something
 * only on its own connection and for its own line: relayed to another connection, or put into
 * another hello (another id, key, endpoints...), it no longer matches. m is a hello, relay or
 * probe; returns false for any other type (admit is undefined there). */
bool auth_admit(const unsigned char key[AUTH_KEY_BYTES], const unsigned char *nonce,
                const struct proto_msg *m, unsigned char admit[PROTO_ADMIT_BYTES]);
/* Whether m carries the admit that auth_admit computes for it (constant-time comparison). */
bool auth_admit_ok(const unsigned char key[AUTH_KEY_BYTES], const unsigned char *nonce,
                   const struct proto_msg *m);

/* The bytes a hello signature covers: "tcpunch-hello-v1" NUL nonce id. Returns their length;
 * out must hold AUTH_HELLO_MSG_MAX. */
size_t auth_hello_msg(const unsigned char *nonce, const char *id,
                      unsigned char out[AUTH_HELLO_MSG_MAX]);

#endif
