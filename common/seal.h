/* The encrypted record stream of a peer-to-peer connection (PROTOCOL.md, "Encrypted stream"):
 * per direction one crypto_secretstream_xchacha20poly1305 stream, its 24-byte header first,
 * then records of a 2-byte big-endian ciphertext length and the ciphertext. No I/O here: the
 * callers own the sockets and buffers. */
#ifndef TP_SEAL_H
#define TP_SEAL_H

#include <stdbool.h>
#include <stddef.h>

#include <sodium.h>

#define SEAL_CHUNK 16384 /* plaintext bytes per record, at most */
#define SEAL_KEYBYTES crypto_secretstream_xchacha20poly1305_KEYBYTES
#define SEAL_HEADER crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define SEAL_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define SEAL_OVERHEAD (2 + SEAL_ABYTES)
#define SEAL_REC_MAX (SEAL_CHUNK + SEAL_OVERHEAD)

struct seal_tx {
    crypto_secretstream_xchacha20poly1305_state st;
};

struct seal_rx {
    crypto_secretstream_xchacha20poly1305_state st;
    unsigned char key[SEAL_KEYBYTES]; /* until the header arrived, then wiped */
    bool header;                      /* the header was read */
    bool final;                       /* the final record was read */
};

enum seal_status {
    SEAL_NEED,        /* not a whole record yet */
    SEAL_DATA,        /* one record opened */
    SEAL_FINAL,       /* the final record opened: the stream ended cleanly */
    SEAL_BAD_AUTH,    /* a record failed authentication */
    SEAL_BAD_LENGTH,  /* a length field out of range */
    SEAL_AFTER_FINAL, /* bytes after the final record */
};

/* Starts a sending stream: header receives the SEAL_HEADER bytes to send first. */
void seal_tx_init(struct seal_tx *t, const unsigned char *key, unsigned char *header);

/* Bytes that seal_tx_data writes for n plaintext bytes. */
size_t seal_tx_size(size_t n);

/* Seals n plaintext bytes (any number, 0 gives nothing) as records of up to SEAL_CHUNK bytes
 * into out, which holds seal_tx_size(n) bytes; returns how many were written. */
size_t seal_tx_data(struct seal_tx *t, const void *plain, size_t n, unsigned char *out);

/* Seals the empty final record (SEAL_OVERHEAD bytes) into out; returns its length. */
size_t seal_tx_final(struct seal_tx *t, unsigned char *out);

void seal_rx_init(struct seal_rx *r, const unsigned char *key);

/* Opens the next record from in[0..avail). Whatever the status, the caller drops the first
 * *used bytes (the stream header, the first time, and the record opened); on SEAL_DATA or
 * SEAL_FINAL *plen plaintext bytes (at most SEAL_CHUNK) are in plain. A record that fails writes
 * nothing to plain. */
enum seal_status seal_rx_next(struct seal_rx *r, const unsigned char *in, size_t avail,
                              size_t *used, unsigned char *plain, size_t *plen);

/* A sentence for an error status, for the user. */
const char *seal_strerror(enum seal_status s);

#endif
