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
