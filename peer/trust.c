#include "peer/trust.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"

int trust_prepare(const struct peer_opts *o, const char *name, const unsigned char *server_pk,
                  struct shake_trust *t)
{
    char dir[400], err[600];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->fp, sizeof t->fp, "%s", o->peer_fp);
    if (id_home(NULL, dir, sizeof dir, err, sizeof err) < 0) {
        LOG_E("%s", err);
        return EXIT_LOCAL;
    }
    snprintf(t->known_path, sizeof t->known_path, "%s/known_peers", dir);
    t->nknown = kp_find(t->known_path, name, t->known, KP_MAX_KEYS, err, sizeof err);
    if (t->nknown == -2) {
        /* refused like a changed key: the file may hold a pin for name that we cannot read */
        LOG_E("%s: refusing %s until this line is fixed or removed (a pin that cannot be read "
              "must not let another key in)",
              err, name);
        return EXIT_PUNCH;
    }
    if (t->nknown < 0) {
        LOG_E("%s", err);
        return EXIT_LOCAL;
    }
    if (server_pk) {
        t->server_key = true;
        memcpy(t->server_pk, server_pk, sizeof t->server_pk);
    }
    return EXIT_DONE;
}

void trust_record(const struct shake_trust *t, const unsigned char *pk)
{
    char fp[ID_FP_SIZE], err[600];
    int n = t->nknown < KP_MAX_KEYS ? t->nknown : KP_MAX_KEYS;
    id_fingerprint(pk, fp, sizeof fp);
    if (n > 0 && kp_match(t->known, n, pk) >= 0)
        return;
    if (n > 0) {
        /* only --peer-key gets here: it overrides, and the user's file stays as it is */
        LOG_W("%s line %d has another key for %s; trusting %s because of --peer-key", t->known_path,
              t->known[0].line, t->name, fp);
        return;
    }
    if (kp_add(t->known_path, t->name, pk, err, sizeof err) < 0) {
        LOG_W("new peer %s, key %s, not recorded: %s", t->name, fp, err);
        return;
    }
    LOG_N("new peer %s, key %s, recorded in %s", t->name, fp, t->known_path);
}

enum trust_remember trust_remember(const struct shake_trust *t, const unsigned char *pk, char *msg,
                                   size_t msglen)
{
    struct kp_entry known[KP_MAX_KEYS];
    char fp[ID_FP_SIZE], err[600];
    int n = kp_find(t->known_path, t->name, known, KP_MAX_KEYS, err, sizeof err);
    id_fingerprint(pk, fp, sizeof fp);
    if (n < 0) {
        snprintf(msg, msglen, "%s not recorded: %s", t->name, err);
        return TRUST_REM_ERROR;
    }
    if (n > 0 && kp_match(known, n < KP_MAX_KEYS ? n : KP_MAX_KEYS, pk) >= 0) {
        snprintf(msg, msglen, "%s with key %s is already in %s", t->name, fp, t->known_path);
        return TRUST_REM_KNOWN;
    }
    if (n > 0) {
        snprintf(msg, msglen,
                 "known_peers already has another key for %s (%s line %d); not changed (remove "
                 "the line to replace it)",
                 t->name, t->known_path, known[0].line);
        return TRUST_REM_OTHER;
    }
    if (kp_add(t->known_path, t->name, pk, err, sizeof err) < 0) {
        snprintf(msg, msglen, "%s, key %s, not recorded: %s", t->name, fp, err);
        return TRUST_REM_ERROR;
    }
    snprintf(msg, msglen, "remembered %s, key %s (authenticated by the code), in %s", t->name, fp,
             t->known_path);
    return TRUST_REM_ADDED;
}

void trust_after_shake(const struct shake_trust *t, const unsigned char *pk, bool code,
                       bool remember)
{
    char msg[1400];
    if (!code) {
        trust_record(t, pk);
        return;
    }
    if (!remember)
        return;
    switch (trust_remember(t, pk, msg, sizeof msg)) {
    case TRUST_REM_ADDED:
    case TRUST_REM_KNOWN:
        LOG_N("%s", msg);
        break;
    case TRUST_REM_OTHER:
    case TRUST_REM_ERROR:
        LOG_W("%s", msg);
        break;
    }
}
