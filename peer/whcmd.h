/* The commands' side of wormhole codes (README, "Codes"; docs/design/wormhole.md 6.3): which
 * reading of `send` applies, a code from the command line, and which options go with which
 * mode. Pure, but for the messages it prints (usage errors, the note on `send`'s reading). */
#ifndef TP_WHCMD_H
#define TP_WHCMD_H

#include <stdbool.h>
#include <stddef.h>

#include "peer/opts.h"
#include "proto/wcode.h"

/* The two readings of `send ARGS...`. */
enum whcmd_send {
    WHCMD_SEND_PEER,      /* send PEER FILE... (or --to PEER FILE...) */
    WHCMD_SEND_CODE,      /* send FILE...: make a code */
    WHCMD_SEND_CODE_NOTE, /* ... where the first FILE could also have been a PEER: say so */
};

/* The rule (wormhole.md 6.3): --to PEER and --code decide; else the first argument is a FILE
 * when it exists (first_exists: lstat succeeded), else the PEER. Taken as a file while it is a
 * valid id with more arguments after it, the reading is worth a note (nothing leaves before
 * the other side typed the code, so the note is all it needs). */
enum whcmd_send whcmd_send_reading(bool code, bool to, int argc, bool first_exists,
                                   bool first_is_id);

/* The code typed as the command's arguments: one ("7-guitar-ribbon") or several joined by
 * spaces ("7 guitar ribbon", as someone may type what they heard). 0, or -1 with the parser's
 * message in err (a usage error: nothing has touched the network). */
int whcmd_code_arg(int argc, char *const *argv, struct wcode *c, char *err, size_t errlen);

/* What a command does with codes. */
enum whcmd_mode {
    WHCMD_NONE,  /* no code */
    WHCMD_MAKE,  /* send FILE..., listen --code */
    WHCMD_CLAIM, /* receive CODE, connect --code CODE */
};

/* The options that go with a mode: --code-words only when we make the code, --remember only
 * with one, --peer-key never (the code names the peer's key). NULL when fine, else the
 * complaint for opts_bad. */
const char *whcmd_opts_misfit(const struct peer_opts *o, enum whcmd_mode mode);

#endif
