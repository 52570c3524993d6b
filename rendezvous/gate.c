#include "rendezvous/gate.h"
#include "common/identity.h"
#include "common/log.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The time before which an id counts as unused, or 0 without --id-expire. */
static int64_t gate_expire_before(const struct gate *g)
{
    if (!g->cfg.id_expire_days)
        return 0;
    return (int64_t)time(NULL) - (int64_t)g->cfg.id_expire_days * GATE_DAY_S;
}

/* The file is compacted at every start that finds touches, lapsed ids, old-format lines or
 * damage in it, so that it never grows by more than one touch per id and day of uptime. */
static int gate_load_db(struct gate *g, char *err, size_t errlen)
{
    struct ik_load_info info;
    size_t lapsed = 0;
    int64_t before = gate_expire_before(g);
    if (ik_load(g->owners, g->cfg.id_db, IK_DATABASE, true, &info, err, errlen) < 0)
        return -1;
    if (before)
        lapsed = ik_expire(g->owners, before, NULL, NULL);
    if (info.dropped)
        LOG_W("%s: %zu line%s dropped (a repeated id or a write cut short)", g->cfg.id_db,
              info.dropped, info.dropped == 1 ? "" : "s");
    if (lapsed)
        LOG_N("%s: %zu id%s unused for more than %u days lapsed (--id-expire)", g->cfg.id_db,
              lapsed, lapsed == 1 ? "" : "s", g->cfg.id_expire_days);
    if (info.rewrite || info.touches || lapsed) {
        LOG_I("%s: rewriting it (%zu ids)", g->cfg.id_db, ik_count(g->owners));
        if (ik_rewrite(g->owners, g->cfg.id_db, err, errlen) < 0)
            return -1;
    }
    g->db_fd = ik_open_append(g->cfg.id_db, err, errlen);
    if (g->db_fd < 0)
        return -1;
    LOG_N("id database %s: %zu id%s", g->cfg.id_db, ik_count(g->owners),
          ik_count(g->owners) == 1 ? "" : "s");
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
    g->newids = limw_new(GATE_NEWID_SOURCES, GATE_HOUR_MS);
    if (!g->owners || !g->newids) {
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
    limw_free(g->newids);
    g->newids = NULL;
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

enum proto_code gate_check_hello(const struct gate *g, const unsigned char *nonce,
                                 const struct proto_msg *m, char *msg, size_t len)
{
    const char *id = m->u.hello.id;
    const unsigned char *owner;
    if (!gate_signed(nonce, m)) {
        snprintf(msg, len, "%s",
                 m->u.hello.has_key && m->u.hello.has_sig
                     ? "the signature does not match the key and this connection's challenge"
                     : "hello needs key and sig (a signature of the challenge)");
        return PC_BAD_SIGNATURE;
    }
    if (!gate_allowed(g, id, m->u.hello.key)) {
        snprintf(msg, len, "%s with this key is not authorized on this server", id);
        return PC_NOT_AUTHORIZED;
    }
    owner = ik_find(g->owners, id);
    if (owner && sodium_memcmp(owner, m->u.hello.key, PROTO_KEY_BYTES) != 0) {
        snprintf(msg, len, "%s belongs to another key", id);
        return PC_ID_OWNED;
    }
    return PC_UNKNOWN;
}

/* The file may not match the table any more: stop appending to it until gate_tick rewrites it
 * (a line continued by the next append, or a lapsed owner still on disk, would be worse). */
static void gate_db_lost(struct gate *g, const char *why)
{
    LOG_E("%s: %s; recording no ids until it has been rewritten", g->cfg.id_db, why);
    if (g->db_fd >= 0)
        close(g->db_fd);
    g->db_fd = -1;
    g->db_broken = true;
}

static void gate_db_repair(struct gate *g, uint64_t now_ms)
{
    char err[300];
    if (!g->db_broken || (g->db_retry_ms && now_ms - g->db_retry_ms < GATE_DB_RETRY_MS))
        return;
    g->db_retry_ms = now_ms ? now_ms : 1;
    if (ik_rewrite(g->owners, g->cfg.id_db, err, sizeof err) < 0 ||
        (g->db_fd = ik_open_append(g->cfg.id_db, err, sizeof err)) < 0) {
        LOG_E("%s (trying again in %d s)", err, GATE_DB_RETRY_MS / 1000);
        return;
    }
    g->db_broken = false;
    LOG_N("%s: rewritten (%zu ids); recording ids again", g->cfg.id_db, ik_count(g->owners));
}

/* An owned id registers again: last-seen now, and on disk at most once a day (without an
 * fdatasync: a touch lost in a crash costs a day of last-seen, not an owner). */
static void gate_touch(struct gate *g, const char *id, const unsigned char *key)
{
    int64_t now = (int64_t)time(NULL), disk;
    char err[300];
    ik_seen(g->owners, id, &disk);
    ik_set_seen(g->owners, id, now, false);
    if (g->db_fd < 0 || now - disk < GATE_DAY_S)
        return;
    switch (ik_append(g->db_fd, id, key, now, false, err, sizeof err)) {
    case 0:
        ik_set_seen(g->owners, id, now, true);
        break;
    case -1:
        LOG_W("%s: %s", g->cfg.id_db, err);
        break;
    default:
        gate_db_lost(g, err);
    }
}

/* The limits on new ids a single instance checks itself (a cluster checks them in Redis). */
static enum proto_code gate_new_id_ok(struct gate *g, const char *id, const unsigned char *key,
                                      const struct sockaddr *src, uint64_t now_ms, char *msg,
                                      size_t len)
{
    char who[64];
    if (g->cfg.ids_per_key && ik_key_ids(g->owners, key) >= g->cfg.ids_per_key) {
        snprintf(msg, len, "this key owns %u ids already, the most one key may own here",
                 g->cfg.ids_per_key);
        return PC_TOO_MANY_IDS;
    }
    if (g->cfg.max_ids && ik_count(g->owners) >= g->cfg.max_ids) {
        LOG_W("cannot bind %s: %zu ids known already (--max-ids)", id, ik_count(g->owners));
        snprintf(msg, len, "the server knows too many ids to take a new one");
        return PC_SERVER_FULL;
    }
    switch (limw_take(g->newids, src, g->cfg.new_ids_per_hour, now_ms)) {
    case LIM_OK:
        return PC_UNKNOWN;
    case LIM_RATE:
        lim_source_text(src, who, sizeof who);
        LOG_N("cannot bind %s: %s (or its /48) registered its new ids for the hour "
              "(--new-ids-per-hour %u)",
              id, who, g->cfg.new_ids_per_hour);
        snprintf(msg, len,
                 "at most %u new ids per hour from one address (%u from one IPv6 /48); try "
                 "again later",
                 g->cfg.new_ids_per_hour, g->cfg.new_ids_per_hour * LIM_SITE_FACTOR);
        return PC_RATE_LIMITED;
    default:
        snprintf(msg, len, "the server is out of memory");
        return PC_SERVER_FULL;
    }
}

enum proto_code gate_bind(struct gate *g, const char *id, const unsigned char *key,
                          const struct sockaddr *src, uint64_t now_ms, bool claimed, char *msg,
                          size_t len)
{
    char err[300];
    enum proto_code code;
    int64_t now = (int64_t)time(NULL);
    int rc;
    if (ik_find(g->owners, id)) {
        gate_touch(g, id, key); /* gate_check_hello saw that it is this key */
        return PC_UNKNOWN;
    }
    if (claimed) {
        /* the cache of what Redis said: only for outages, and bounded like a single
         * instance's table (full: not cached, the registration still stands) */
        ik_add_seen(g->owners, id, key, now);
        return PC_UNKNOWN;
    }
    if ((code = gate_new_id_ok(g, id, key, src, now_ms, msg, len)) != PC_UNKNOWN)
        return code;
    if (g->cfg.id_db && g->db_fd < 0) {
        snprintf(msg, len, "the server cannot record the id now");
        return PC_INTERNAL;
    }
    /* on disk before in use: a restart must never forget an owner that was announced */
    if (g->db_fd >= 0 && (rc = ik_append(g->db_fd, id, key, now, true, err, sizeof err)) < 0) {
        if (rc == -1)
            LOG_E("%s: %s", g->cfg.id_db, err);
        else
            gate_db_lost(g, err);
        snprintf(msg, len, "the server cannot record the id now");
        return PC_INTERNAL;
    }
    if (ik_add_seen(g->owners, id, key, now) != IK_OK) {
        snprintf(msg, len, "the server is out of memory");
        return PC_SERVER_FULL;
    }
    return PC_UNKNOWN;
}

struct gate_keep {
    struct gate *g;
    bool (*online)(void *arg, const char *id);
    void *arg;
};

/* Registered now: never lapses, and counts as seen. */
static bool gate_keep_online(void *arg, const char *id)
{
    struct gate_keep *k = arg;
    if (!k->online || !k->online(k->arg, id))
        return false;
    gate_touch(k->g, id, ik_find(k->g->owners, id));
    return true;
}

void gate_tick(struct gate *g, uint64_t now_ms, bool (*online)(void *arg, const char *id),
               void *arg)
{
    struct gate_keep k = {g, online, arg};
    char err[300];
    size_t n;
    if (g->newids)
        limw_expire(g->newids, now_ms);
    gate_db_repair(g, now_ms);
    if (!g->cfg.id_expire_days || now_ms - g->last_expire_ms < GATE_HOUR_MS)
        return;
    g->last_expire_ms = now_ms;
    n = ik_expire(g->owners, gate_expire_before(g), gate_keep_online, &k);
    if (!n)
        return;
    LOG_N("%zu id%s unused for more than %u days lapsed (--id-expire)", n, n == 1 ? "" : "s",
          g->cfg.id_expire_days);
    /* before any other key can take a lapsed id, the file must forget its owner: until it has,
     * no new id is recorded (a restart would give a lapsed id back to its old key) */
    if (g->db_fd >= 0 && ik_rewrite(g->owners, g->cfg.id_db, err, sizeof err) < 0)
        gate_db_lost(g, err);
    else if (g->db_fd >= 0) {
        close(g->db_fd);
        g->db_fd = ik_open_append(g->cfg.id_db, err, sizeof err);
        if (g->db_fd < 0)
            gate_db_lost(g, err);
    }
}
