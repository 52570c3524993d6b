#include "rendezvous/gate.h"
#include "common/identity.h"
#include "common/log.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int gate_load_db(struct gate *g, char *err, size_t errlen)
{
    struct ik_load_info info;
    if (ik_load(g->owners, g->cfg.id_db, IK_DATABASE, true, &info, err, errlen) < 0)
        return -1;
    if (info.rewrite) {
        LOG_W("%s: %zu line%s dropped (a repeated id or a write cut short); rewriting it",
              g->cfg.id_db, info.dropped, info.dropped == 1 ? "" : "s");
        if (ik_rewrite(g->owners, g->cfg.id_db, err, errlen) < 0)
            return -1;
    }
    g->db_fd = ik_open_append(g->cfg.id_db, err, errlen);
    if (g->db_fd < 0)
        return -1;
    LOG_N("id database %s: %zu id%s", g->cfg.id_db, info.lines, info.lines == 1 ? "" : "s");
    return 0;
}

/* A fresh table from the allowlist file. */
static struct ik *gate_read_allow(const char *path, char *err, size_t errlen)
{
    struct ik_load_info info;
    struct ik *t = ik_new(0);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (ik_load(t, path, IK_ALLOWLIST, false, &info, err, errlen) < 0) {
        ik_free(t);
        return NULL;
    }
    LOG_N("authorized %s: %zu id%s", path, info.lines, info.lines == 1 ? "" : "s");
    return t;
}

int gate_init(struct gate *g, const struct gate_cfg *cfg, char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    g->cfg = *cfg;
    g->db_fd = -1;
    if (cfg->secret_file) {
        if (auth_secret_load(cfg->secret_file, g->secret, err, errlen) < 0)
            return -1;
        g->have_secret = true;
    }
    g->owners = ik_new(cfg->max_ids);
    if (!g->owners) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (cfg->id_db && gate_load_db(g, err, errlen) < 0)
        return -1;
    if (cfg->authorized && !(g->allow = gate_read_allow(cfg->authorized, err, errlen)))
        return -1;
    return 0;
}

void gate_free(struct gate *g)
{
    sodium_memzero(g->secret, sizeof g->secret);
    ik_free(g->owners);
    ik_free(g->allow);
    if (g->db_fd >= 0)
        close(g->db_fd);
    g->owners = g->allow = NULL;
    g->db_fd = -1;
}

int gate_reload(struct gate *g, char *err, size_t errlen)
{
    struct ik *t;
    if (!g->cfg.authorized)
        return 0;
    t = gate_read_allow(g->cfg.authorized, err, errlen);
    if (!t)
        return -1;
    ik_free(g->allow);
    g->allow = t;
    return 0;
}

bool gate_admitted(const struct gate *g, const unsigned char *nonce, const struct proto_msg *m)
{
    if (!g->have_secret)
        return true;
    return m && auth_admit_ok(g->secret, nonce, m);
}

bool gate_allowed(const struct gate *g, const char *id, const unsigned char *key)
{
    const unsigned char *want;
    if (!g->allow)
        return true;
    want = ik_find(g->allow, id);
    return want && sodium_memcmp(want, key, PROTO_KEY_BYTES) == 0;
}

static bool gate_signed(const unsigned char *nonce, const struct proto_msg *m)
{
    unsigned char buf[AUTH_HELLO_MSG_MAX];
    size_t n;
    if (!m->u.hello.has_key || !m->u.hello.has_sig)
        return false;
    n = auth_hello_msg(nonce, m->u.hello.id, buf);
    return id_verify(m->u.hello.key, buf, n, m->u.hello.sig);
}

const char *gate_check_hello(const struct gate *g, const unsigned char *nonce,
                             const struct proto_msg *m, char *msg, size_t len)
{
    const char *id = m->u.hello.id;
    const unsigned char *owner;
    if (!gate_signed(nonce, m)) {
        snprintf(msg, len, "%s",
                 m->u.hello.has_key && m->u.hello.has_sig
                     ? "the signature does not match the key and this connection's challenge"
                     : "hello needs key and sig (a signature of the challenge)");
        return "bad-signature";
    }
    if (!gate_allowed(g, id, m->u.hello.key)) {
        snprintf(msg, len, "%s with this key is not authorized on this server", id);
        return "not-authorized";
    }
    owner = ik_find(g->owners, id);
    if (owner && sodium_memcmp(owner, m->u.hello.key, PROTO_KEY_BYTES) != 0) {
        snprintf(msg, len, "%s belongs to another key", id);
        return "id-owned";
    }
    return NULL;
}

const char *gate_bind(struct gate *g, const char *id, const unsigned char *key, char *msg,
                      size_t len)
{
    char err[300];
    if (ik_find(g->owners, id))
        return NULL; /* gate_check_hello saw that it is this key */
    if (g->cfg.max_ids && ik_count(g->owners) >= g->cfg.max_ids) {
        LOG_W("cannot bind %s: %zu ids known already (--max-ids)", id, ik_count(g->owners));
        snprintf(msg, len, "the server knows too many ids to take a new one");
        return "server-full";
    }
    /* on disk before in use: a restart must never forget an owner that was announced */
    if (g->db_fd >= 0 && ik_append(g->db_fd, id, key, err, sizeof err) < 0) {
        LOG_E("%s: %s", g->cfg.id_db, err);
        snprintf(msg, len, "the server cannot record the id now");
        return "internal";
    }
    if (ik_add(g->owners, id, key) != IK_OK) {
        snprintf(msg, len, "the server is out of memory");
        return "server-full";
    }
    return NULL;
}
