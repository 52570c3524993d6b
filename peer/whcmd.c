/* The commands' side of wormhole codes: see whcmd.h. */
#include "peer/whcmd.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

enum whcmd_send whcmd_send_reading(bool code, bool to, int argc, bool first_exists,
                                   bool first_is_id)
{
    if (to)
        return WHCMD_SEND_PEER;
    if (code)
        return WHCMD_SEND_CODE;
    if (!first_exists)
        return WHCMD_SEND_PEER;
    return argc >= 2 && first_is_id ? WHCMD_SEND_CODE_NOTE : WHCMD_SEND_CODE;
}

int whcmd_code_arg(int argc, char *const *argv, struct wcode *c, char *err, size_t errlen)
{
    /* one more than wcode_parse reads: a longer text is refused by it, not cut here */
    char text[WCODE_INPUT_MAX + 2];
    size_t n = 0;
    int rc;
    text[0] = '\0';
    for (int i = 0; i < argc && n <= WCODE_INPUT_MAX; i++) {
        size_t len = strlen(argv[i]), room = sizeof text - 1 - n;
        if (i > 0 && room > 0) {
            text[n++] = ' ';
            room--;
        }
        if (len > room)
            len = room;
        memcpy(text + n, argv[i], len);
        n += len;
        text[n] = '\0';
    }
    if (argc <= 0) {
        snprintf(err, errlen, "no code given");
        return -1;
    }
    rc = wcode_parse(text, c, err, errlen);
    sodium_memzero(text, sizeof text); /* the words are the secret */
    return rc;
}

const char *whcmd_opts_misfit(const struct peer_opts *o, enum whcmd_mode mode)
{
    if (o->code_words && mode != WHCMD_MAKE)
        return mode == WHCMD_CLAIM
                   ? "--code-words is for the side that makes the code (the code typed has its "
                     "own words)"
                   : "--code-words is for making a code (send FILE..., listen --code)";
    if (o->remember && mode == WHCMD_NONE)
        return "--remember goes with a code (send FILE..., receive CODE, listen --code, "
               "connect --code CODE)";
    if (o->peer_fp[0] && mode != WHCMD_NONE)
        return "--peer-key is not for a code: the code exchange names the peer's key";
    return NULL;
}
