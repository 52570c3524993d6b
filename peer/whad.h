/* The associated data (AD) of a wormhole code's CPace run (docs/design/wormhole.md 6.3): what
 * each side tells the other about itself, authenticated by the code. CPace puts both ADs into
 * ISK and each tag covers the sender's own, so a side whose code was right knows that the id
 * and identity key in the other's AD are the ones the other side sent, whatever the server
 * relaying them did. The peer then pins that key in the handshake (as --peer-key).
 *
 *   ad = lv_cat(label, mode, id, key)       (CPace's lv_cat: each part's LEB128 length, then it)
 *   label  "tcpunch-wormhole-1 A" from the maker (CPace initiator), "tcpunch-wormhole-1 B"
 *          from the claimer (responder): a reflected or swapped AD is refused by its label
 *   mode   "file" (send / receive) or "pipe" (listen --code / connect --code): a code made for
 *          one command cannot be taken by the other
 *   id     the sender's tcpunch id (proto_valid_id), 1..PROTO_MAX_ID bytes
 *   key    the sender's Ed25519 identity public key, exactly 32 bytes
 *
 * The AD reaches us from the other side through a server that may lie: whad_parse takes
 * exactly one spelling of each AD (shortest LEB128 lengths, the exact label, nothing after) and
 * its refusals never quote the AD's bytes. Pure: no I/O, no allocation. */
#ifndef TP_WHAD_H
#define TP_WHAD_H

#include <stddef.h>
#include <stdint.h>

#include "proto/cpace.h"
#include "proto/proto.h"

/* The sides, as the label's last letter. */
#define WHAD_MAKER 'A'   /* made the code: send FILE..., listen --code */
#define WHAD_CLAIMER 'B' /* typed the code: receive CODE, connect --code CODE */

/* The longest AD: 1+20 (label), 1+4 (mode), 1+64 (id), 1+32 (key). */
#define WHAD_MAX_BYTES (21 + 5 + 1 + PROTO_MAX_ID + 1 + PROTO_KEY_BYTES)
#if WHAD_MAX_BYTES > CPACE_AD_MAX
#error "an AD must fit CPace's bound"
#endif

enum whad_mode { WHAD_FILE, WHAD_PIPE };

/* "file" or "pipe" (the wire name; "?" for anything else). */
const char *whad_mode_name(enum whad_mode mode);

/* Our AD into out: its length (at most WHAD_MAX_BYTES), or -1 when side is neither WHAD_MAKER
 * nor WHAD_CLAIMER, mode is unknown, id is not a valid tcpunch id, or cap is too small. */
int whad_encode(uint8_t *out, size_t cap, char side, enum whad_mode mode, const char *id,
                const uint8_t key[PROTO_KEY_BYTES]);

/* The other side's AD, which must be from side (WHAD_MAKER when we are the claimer, and the
 * other way round): 0 with its mode, id (NUL-terminated) and key; or -1 with why (a fixed
 * text, never the AD's bytes) and mode, id and key zeroed. Refused: over CPACE_AD_MAX bytes;
 * a length that is overlong (a LEB128 with a needless 0x80 lead), runs past the end or over
 * its field's size; the label of the other side or any other; a mode not "file" or "pipe"; an
 * id that is not a valid tcpunch id (NUL included); a key that is not 32 bytes; anything after
 * the key. mode, id and key must not be NULL. The caller compares the mode with its own. */
int whad_parse(const uint8_t *ad, size_t len, char side, enum whad_mode *mode,
               char id[PROTO_MAX_ID + 1], uint8_t key[PROTO_KEY_BYTES], char *why, size_t whylen);

#endif
