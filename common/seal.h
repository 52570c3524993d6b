/* The encrypted record stream of a peer-to-peer connection (PROTOCOL.md, "Encrypted stream"):
 * per direction one crypto_secretstream_xchacha20poly1305 stream, its 24-byte header first,
 * then records of a 2-byte big-endian ciphertext length and the ciphertext. No I/O here: the
 * callers own the sockets and buffers.
 *
 * Two kinds of receiver share the format (issue 15, docs/design/resume.md 4.3):
 *   - a legacy stream (seal_rx_init), today's: TAG_FINAL ends it and every other tag, TAG_PUSH
 *     and TAG_REKEY included, is data (SEAL_DATA). Nobody sends anything but TAG_MESSAGE and
 *     TAG_FINAL today; a TAG_PUSH record that arrives in a legacy stream anyway (only the
 *     holder of the key can make one) is delivered as data, exactly as before this file knew
 *     control records, so no caller of a legacy stream sees a new status;
 *   - a session stream (seal_rx_init_session), only on a connection whose shakes both carried
 *     `resume` (not yet: nothing calls it): TAG_MESSAGE is data, TAG_PUSH a control record
 *     (SEAL_CTL, its plaintext decoded by common/sframe.h), TAG_FINAL the end, and any other
 *     tag a protocol error (SEAL_BAD_TAG). A control record looks like a data record on the
 *     wire: the tag is encrypted, only its length tells them apart. */
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
    bool session;                     /* TAG_PUSH is a control record (seal_rx_init_session) */
};

enum seal_status {
    SEAL_NEED,        /* not a whole record yet */
    SEAL_DATA,        /* one record opened */
    SEAL_FINAL,       /* the final record opened: the stream ended cleanly */
    SEAL_BAD_AUTH,    /* a record failed authentication */
    SEAL_BAD_LENGTH,  /* a length field out of range */
    SEAL_AFTER_FINAL, /* bytes after the final record */
    SEAL_CTL,         /* session streams only: one control record (TAG_PUSH) opened */
    SEAL_BAD_TAG,     /* session streams only: a record with a tag they never carry */
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

/* Seals n plaintext bytes, 1..SEAL_CHUNK, as one control record (TAG_PUSH) into out, which holds
 * n + SEAL_OVERHEAD bytes; returns its length. Outside 1..SEAL_CHUNK nothing is sealed, the
 * stream is unchanged, and it returns 0. For session streams only: a legacy receiver would take
 * the record for data. */
size_t seal_tx_ctl(struct seal_tx *t, const void *plain, size_t n, unsigned char *out);

/* A receiver of a legacy stream: see the top of this file. */
void seal_rx_init(struct seal_rx *r, const unsigned char *key);

/* A receiver of a session stream: seal_rx_next reports control records as SEAL_CTL and refuses
 * tags other than TAG_MESSAGE, TAG_PUSH and TAG_FINAL with SEAL_BAD_TAG. What a record may hold
 * (data records of 1..SEAL_CHUNK bytes, an empty final, the control record's layout) is the
 * session layer's rule, not this file's: the plaintext is handed over whatever its length. */
void seal_rx_init_session(struct seal_rx *r, const unsigned char *key);

/* Opens the next record from in[0..avail). Whatever the status, the caller drops the first
 * *used bytes (the stream header, the first time, and the record opened); on SEAL_DATA,
 * SEAL_FINAL or SEAL_CTL *plen plaintext bytes (at most SEAL_CHUNK) are in plain. A record that
 * fails writes nothing to plain; one refused with SEAL_BAD_TAG was authentic but is not released
 * either (*plen 0; it counts as used, and the caller ends the connection). */
enum seal_status seal_rx_next(struct seal_rx *r, const unsigned char *in, size_t avail,
                              size_t *used, unsigned char *plain, size_t *plen);

/* A sentence for an error status, for the user. */
const char *seal_strerror(enum seal_status s);

#endif
