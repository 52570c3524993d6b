/* The control records of a resumable session (issue 15, docs/design/resume.md 4.3): the
 * plaintext of a TAG_PUSH record (common/seal.h, seal_tx_ctl / SEAL_CTL). Pure: bytes in,
 * bytes out; what a record means for the session (offsets checked against the buffer, the
 * move, the end) is the session layer's.
 *
 * Layout: one type byte, then the type's fields, big-endian, nothing else (no padding, no
 * length byte: the record's length is the secretstream's):
 *
 *   type  name     bytes  fields
 *   0x01  ACK        9    rx(8)         I hold every byte of yours below rx (FIN counts one)
 *   0x02  AT         9    off(8)        my data records on this connection start at off
 *   0x03  MOVE      13    end(8) epoch(4)  no more data from me here; it ended at end; go on
 *                                          with epoch (>= 1)
 *   0x04  FIN        9    end(8)        my direction ends at end
 *   0x05  ABORT      2    reason(1)     I end the session now; reason 1..5 (SF_ABORT_*)
 *   0x06  RESEND     9    from(8)       I have a gap; send again from from on this connection
 *
 * Decoding is strict: a type byte outside 0x01..0x06, a length other than the type's, an ABORT
 * reason outside 1..5 or a MOVE to epoch 0 is refused (-1); the session layer closes the
 * connection as failed. Every value the decoder accepts re-encodes to the same bytes, and every
 * value the encoder accepts decodes to itself: the encoding is canonical. Offsets take any
 * 64-bit value here; bounds are the session's. */
#ifndef TP_SFRAME_H
#define TP_SFRAME_H

#include <stddef.h>
#include <stdint.h>

#define SF_MAX 13 /* bytes of the longest control record (MOVE) */

enum sf_type { SF_ACK = 1, SF_AT, SF_MOVE, SF_FIN, SF_ABORT, SF_RESEND };

/* Why a peer aborted (ABORT's reason byte). */
enum sf_abort {
    SF_ABORT_SIGNAL = 1, /* SIGINT, SIGTERM or SIGHUP */
    SF_ABORT_READ = 2,   /* reading the local source failed */
    SF_ABORT_WRITE = 3,  /* writing the local output failed */
    SF_ABORT_RESET = 4,  /* the local peer (the forwarded connection) was reset */
    SF_ABORT_GONE = 5,   /* the session is gone (ended) on this side */
};

/* One control record. off is ACK's rx, AT's off, MOVE's and FIN's end, RESEND's from; epoch is
 * MOVE's; reason is ABORT's. Fields a type does not have are 0 after sf_decode and ignored by
 * sf_encode. */
struct sf_ctl {
    enum sf_type type;
    uint64_t off;
    uint32_t epoch;
    uint8_t reason;
};

/* The record's plaintext length for a type: 9, 13 or 2; 0 for anything else. */
size_t sf_len(int type);

/* Writes c's plaintext into out; returns its length (sf_len(c->type)), or 0, writing nothing,
 * when c is not a valid record (unknown type, reason outside 1..5, MOVE to epoch 0). */
size_t sf_encode(const struct sf_ctl *c, unsigned char out[SF_MAX]);

/* Reads the plaintext p[0..n) of one control record into c: 0, or -1 (c zeroed) when it is not a
 * valid record by the rules above. */
int sf_decode(const unsigned char *p, size_t n, struct sf_ctl *c);

/* "ACK", "AT", ... for logs; "?" for anything else. */
const char *sf_type_name(int type);

/* The reason for the user, "PEER ended the session (...)": "interrupted by a signal", ...;
 * "unknown reason" outside 1..5. */
const char *sf_abort_str(int reason);

#endif
