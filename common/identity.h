/* A peer's long-term identity: an Ed25519 key pair kept under $TCPUNCH_HOME (default
 * ~/.config/tcpunch), and the encodings users and the wire see (PROTOCOL.md, "Identities"). */
#ifndef TP_IDENTITY_H
#define TP_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#include <sodium.h>

/* base64 (original alphabet, padded) of a public key, and its NUL */
#define ID_PK_B64_LEN 44
#define ID_PK_B64_SIZE (ID_PK_B64_LEN + 1)
/* "SHA256:" + base64 of 32 bytes without padding, and its NUL */
#define ID_FP_SIZE (7 + 43 + 1)
#define ID_SIG_B64_LEN 88

struct identity {
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
};

/* The directory that holds identity, identity.pub and known_peers: home if not NULL, else
 * $TCPUNCH_HOME, else $HOME/.config/tcpunch. Returns 0, or -1 with the reason in err. */
int id_home(const char *home, char *out, size_t len, char *err, size_t errlen);

/* Loads the identity from the home directory (see id_home), creating the directory (0700) and a
 * new key pair (identity 0600, identity.pub) when there is none; *created tells which. A secret
 * file that group or others may read is refused, like ssh does. Returns 0, or -1 with err. */
int id_load_or_create(const char *home, struct identity *out, bool *created, char *err,
                      size_t errlen);

/* "SHA256:" + unpadded base64 of SHA-256(pk), as ssh shows host keys. */
void id_fingerprint(const unsigned char *pk, char *out, size_t len);

/* The public key as padded base64 (ID_PK_B64_LEN characters). Returns 0, or -1 when out is
 * too small. */
int id_pk_encode(const unsigned char *pk, char *out, size_t len);

/* Decodes a padded base64 public key; -1 unless it is exactly crypto_sign_PUBLICKEYBYTES. */
int id_pk_decode(const char *b64, unsigned char *pk);

/* Generic base64 (original alphabet, padded, no newlines). encode returns 0 or -1 when out is
 * too small; decode returns the number of bytes, or -1 on bad input or when it would not be
 * exactly want bytes (want 0: any length up to max). */
int id_b64_encode(const void *bin, size_t n, char *out, size_t len);
int id_b64_decode(const char *b64, void *bin, size_t max, size_t want);

void id_sign(const struct identity *id, const void *msg, size_t len, unsigned char *sig);
bool id_verify(const unsigned char *pk, const void *msg, size_t len, const unsigned char *sig);

#endif
