/* The file protocol of `send` and `receive` (PROTOCOL.md, "File transfer"): JSON lines and raw
 * file bytes over the encrypted stream. Shared by both ends. */
#ifndef TP_FPROTO_H
#define TP_FPROTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "peer/chan.h"

#define FPROTO_VERSION 1
#define FPROTO_LINE 8192     /* longest control line */
#define FPROTO_NAME_MAX 4096 /* longest name, in bytes */
/* most components of a name (the file and 31 directories above it): each directory the
 * receiver creates costs it an inode and a block, whatever the file's size */
#define FPROTO_DEPTH_MAX 32
#define FPROTO_PART_MAX 255  /* longest path component */
#define FPROTO_SUM_BYTES 32  /* BLAKE2b-256 */
#define FPROTO_SUM_HEX (2 * FPROTO_SUM_BYTES)

/* Whether name is a file name the receiver may create under its directory: relative, '/'
 * separators, no empty, "." or ".." component, no control character, within the limits.
 * If not, why says so. */
bool fproto_check_name(const char *name, char *why, size_t len);

/* Sends msg (taking the reference) as one line. Returns 0 or -1 with c->err. */
int fproto_send(struct chan *c, json_t *msg);

/* Reads one line as a JSON object into *msg (the caller's reference). Returns 1, 0 at the clean
 * end of the peer's stream, or -1 with c->err (also when the line is not a JSON object). */
int fproto_recv(struct chan *c, json_t **msg);

#endif
