#include "rendezvous/idkeys.h"
#include "common/identity.h"
#include "common/sock.h"
#include "rendezvous/registry.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IK_LINE_MAX 512 /* an id, a key, a time and generous blanks */
#define IK_KEY_BUCKETS 4096u
#define IK_MAX_SEEN 253402300799LL /* 9999-12-31: a larger stamp is a corrupt line */

struct ik_pair {
    struct ik_pair *prev, *next; /* all pairs, oldest first: the registry does not iterate */
    unsigned char key[PROTO_KEY_BYTES];
    char id[PROTO_MAX_ID + 1];
    int64_t seen;      /* last registration, unix seconds */
    int64_t seen_disk; /* the stamp the file holds for it */
};

/* How many ids each key owns (--ids-per-key). */
struct ik_keyn {
    struct ik_keyn *next;
    unsigned char key[PROTO_KEY_BYTES];
    size_t n;
};

struct ik {
    struct reg *reg; /* id -> struct ik_pair */
    struct ik_pair *all, *last;
    size_t max;
    struct ik_keyn *keyn[IK_KEY_BUCKETS];
    unsigned char hkey[crypto_shorthash_KEYBYTES];
};

/* Keys are chosen by whoever registers: a keyed hash keeps them from piling into one chain. */
static struct ik_keyn **ik_keyn_slot(struct ik *t, const unsigned char *key)
{
    unsigned char h[crypto_shorthash_BYTES];
    uint32_t b;
    struct ik_keyn **pp;
    crypto_shorthash(h, key, PROTO_KEY_BYTES, t->hkey);
    memcpy(&b, h, sizeof b);
    pp = &t->keyn[b % IK_KEY_BUCKETS];
    while (*pp && memcmp((*pp)->key, key, PROTO_KEY_BYTES) != 0)
        pp = &(*pp)->next;
    return pp;
}

size_t ik_key_ids(const struct ik *t, const unsigned char key[PROTO_KEY_BYTES])
{
    struct ik_keyn **pp = ik_keyn_slot((struct ik *)t, key);
    return *pp ? (*pp)->n : 0;
}

static int ik_keyn_add(struct ik *t, const unsigned char *key, int delta)
{
    struct ik_keyn **pp = ik_keyn_slot(t, key), *e = *pp;
    if (!e && delta > 0) {
        if (!(e = calloc(1, sizeof *e)))
            return -1;
        memcpy(e->key, key, PROTO_KEY_BYTES);
        *pp = e;
    }
    if (!e)
        return 0;
    if (delta > 0)
        e->n++;
    else if (e->n && --e->n == 0) {
        *pp = e->next;
        free(e);
    }
    return 0;
}

struct ik *ik_new(size_t max)
{
    struct ik *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->max = max;
    randombytes_buf(t->hkey, sizeof t->hkey);
    t->reg = reg_new();
    if (!t->reg) {
        free(t);
        return NULL;
    }
    return t;
}

void ik_free(struct ik *t)
{
    if (!t)
        return;
    while (t->all) {
        struct ik_pair *next = t->all->next;
        free(t->all);
        t->all = next;
    }
    for (unsigned i = 0; i < IK_KEY_BUCKETS; i++)
        while (t->keyn[i]) {
            struct ik_keyn *next = t->keyn[i]->next;
            free(t->keyn[i]);
            t->keyn[i] = next;
        }
    reg_free(t->reg);
    free(t);
}

const unsigned char *ik_find(const struct ik *t, const char *id)
{
    const struct ik_pair *p = reg_find(t->reg, id);
    return p ? p->key : NULL;
}

size_t ik_count(const struct ik *t)
{
    return reg_count(t->reg);
}

enum ik_status ik_add(struct ik *t, const char *id, const unsigned char key[PROTO_KEY_BYTES])
{
    return ik_add_seen(t, id, key, (int64_t)time(NULL));
}

enum ik_status ik_add_seen(struct ik *t, const char *id, const unsigned char key[PROTO_KEY_BYTES],
                           int64_t seen)
{
    struct ik_pair *p;
    enum reg_status rs;
    if (reg_find(t->reg, id))
        return IK_EXISTS;
    if (t->max && reg_count(t->reg) >= t->max)
        return IK_FULL;
    p = calloc(1, sizeof *p);
    if (!p)
        return IK_NOMEM;
    snprintf(p->id, sizeof p->id, "%s", id);
    memcpy(p->key, key, PROTO_KEY_BYTES);
    p->seen = p->seen_disk = seen;
    if (ik_keyn_add(t, key, 1) < 0) {
        free(p);
        return IK_NOMEM;
    }
    rs = reg_add(t->reg, p->id, p);
    if (rs != REG_OK) {
        ik_keyn_add(t, key, -1);
        free(p);
        return rs == REG_EXISTS ? IK_EXISTS : IK_NOMEM;
    }
    p->prev = t->last;
    if (t->last)
        t->last->next = p;
    else
        t->all = p;
    t->last = p;
    return IK_OK;
}

static void ik_unlink(struct ik *t, struct ik_pair *p)
{
    reg_remove(t->reg, p->id, p);
    ik_keyn_add(t, p->key, -1);
    if (p->prev)
        p->prev->next = p->next;
    else
        t->all = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        t->last = p->prev;
    free(p);
}

int ik_remove(struct ik *t, const char *id)
{
    struct ik_pair *p = reg_find(t->reg, id);
    if (!p)
        return -1;
    ik_unlink(t, p);
    return 0;
}

int64_t ik_seen(const struct ik *t, const char *id, int64_t *on_disk)
{
    const struct ik_pair *p = reg_find(t->reg, id);
    if (on_disk)
        *on_disk = p ? p->seen_disk : 0;
    return p ? p->seen : 0;
}

void ik_set_seen(struct ik *t, const char *id, int64_t seen, bool on_disk)
{
    struct ik_pair *p = reg_find(t->reg, id);
    if (!p)
        return;
    if (seen > p->seen)
        p->seen = seen;
    if (on_disk)
        p->seen_disk = p->seen;
}

size_t ik_expire(struct ik *t, int64_t before, bool (*keep)(void *arg, const char *id), void *arg)
{
    size_t n = 0;
    struct ik_pair *p = t->all, *next;
    for (; p; p = next) {
        next = p->next;
        if (p->seen >= before || (keep && keep(arg, p->id)))
            continue;
        ik_unlink(t, p);
        n++;
    }
    return n;
}

/* ---- reading ---- */

static char *ik_trim(char *s)
{
    char *end;
    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        *--end = '\0';
    return s;
}

/* "SECONDS" after the key of a database line. Returns 0, or -1 when it is not a stamp. */
static int ik_parse_seen(const char *s, int64_t *seen)
{
    char *end;
    long long v;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end || v > IK_MAX_SEEN)
        return -1;
    *seen = (int64_t)v;
    return 0;
}

/* One line, newline removed. Returns 1 for a pair, 0 for a blank or comment line, -1 with
 * the reason in why. *seen is -1 when the line has no stamp (an allowlist, or a database
 * written before stamps existed); a stamp is accepted only when seen is given. */
static int ik_parse_line(char *line, char *id, unsigned char *key, int64_t *seen, char *why,
                         size_t whylen)
{
    char *s = ik_trim(line), *sep, *k, *st;
    if (*s == '\0' || *s == '#')
        return 0;
    sep = strpbrk(s, " \t");
    if (!sep) {
        snprintf(why, whylen, "expected \"ID PUBLIC-KEY\"");
        return -1;
    }
    *sep = '\0';
    k = ik_trim(sep + 1);
    if (!proto_valid_id(s)) {
        snprintf(why, whylen, "\"%.64s\" is not an id ([A-Za-z0-9._-]{1,64})", s);
        return -1;
    }
    if (seen)
        *seen = -1;
    st = strpbrk(k, " \t");
    if (st && seen) {
        *st = '\0';
        if (ik_parse_seen(ik_trim(st + 1), seen) < 0) {
            snprintf(why, whylen, "the last-seen time of \"%s\" is not a number of seconds", s);
            return -1;
        }
    }
    if (strpbrk(k, " \t") || id_pk_decode(k, key) < 0) {
        snprintf(why, whylen, "the key of \"%s\" is not one base64 Ed25519 public key", s);
        return -1;
    }
    snprintf(id, PROTO_MAX_ID + 1, "%s", s);
    return 1;
}

/* A parsed pair: added, dropped (database, id seen before) or an error (allowlist). In the
 * database a later line for an id with the same key is a touch: it moves the id's last-seen
 * time. */
static int ik_take_pair(struct ik *t, enum ik_mode mode, const char *id, const unsigned char *key,
                        int64_t seen, struct ik_load_info *info, char *why, size_t whylen)
{
    const unsigned char *have;
    if (seen < 0) { /* no stamp: seen at this start, so an upgrade lapses nothing at once */
        seen = (int64_t)time(NULL);
        if (mode == IK_DATABASE)
            info->rewrite = true; /* the file gets its stamps */
    }
    switch (ik_add_seen(t, id, key, seen)) {
    case IK_OK:
        info->lines++;
        return 0;
    case IK_EXISTS:
        have = ik_find(t, id);
        if (mode == IK_DATABASE && memcmp(have, key, PROTO_KEY_BYTES) == 0) {
            ik_set_seen(t, id, seen, true);
            info->touches++;
            return 0;
        }
        if (mode == IK_DATABASE) {
            info->dropped++;
            info->rewrite = true;
            return 0;
        }
        snprintf(why, whylen, "\"%s\" is listed twice", id);
        return -1;
    case IK_FULL:
        snprintf(why, whylen, "more than %zu ids", t->max);
        return -1;
    default:
        snprintf(why, whylen, "out of memory");
        return -1;
    }
}

static int ik_read(struct ik *t, FILE *f, const char *path, enum ik_mode mode,
                   struct ik_load_info *info, char *err, size_t errlen)
{
    char line[IK_LINE_MAX + 2], id[PROTO_MAX_ID + 1], why[200];
    unsigned char key[PROTO_KEY_BYTES];
    int64_t seen = -1;
    size_t no = 0;

    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        bool terminated = len > 0 && line[len - 1] == '\n';
        int rc;
        no++;
        if (!terminated && !feof(f)) {
            snprintf(err, errlen, "%s:%zu: line longer than %d bytes", path, no, IK_LINE_MAX);
            return -1;
        }
        if (terminated)
            line[len - 1] = '\0';
        else
            info->rewrite = true; /* the next append must not continue this line */
        rc = ik_parse_line(line, id, key, mode == IK_DATABASE ? &seen : NULL, why, sizeof why);
        if (rc < 0 && !terminated && mode == IK_DATABASE) {
            info->dropped++; /* a torn last write */
            info->rewrite = true;
            continue;
        }
        if (rc < 0 && mode == IK_DATABASE) {
            /* dropping it could hand its id to another key, and a torn append followed by a
             * good one cannot be told apart for sure from a damaged owner line: the operator
             * decides (PROTOCOL.md 13) */
            snprintf(err, errlen,
                     "%s:%zu: %s; the database is damaged here (a write cut short and "
                     "continued?): fix or delete this line by hand, then start again",
                     path, no, why);
            return -1;
        }
        if (rc > 0)
            rc = ik_take_pair(t, mode, id, key, seen, info, why, sizeof why);
        if (rc < 0) {
            snprintf(err, errlen, "%s:%zu: %s", path, no, why);
            return -1;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int ik_load(struct ik *t, const char *path, enum ik_mode mode, bool missing_ok,
            struct ik_load_info *info, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    int rc;
    memset(info, 0, sizeof *info);
    if (!f && errno == ENOENT && missing_ok)
        return 0;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    rc = ik_read(t, f, path, mode, info, err, errlen);
    fclose(f);
    return rc;
}

/* ---- writing ---- */

static int ik_format(const char *id, const unsigned char *key, int64_t seen, char *line, size_t len)
{
    char b64[ID_PK_B64_SIZE];
    if (id_pk_encode(key, b64, sizeof b64) < 0)
        return -1;
    return snprintf(line, len, "%s %s %lld\n", id, b64, (long long)seen);
}

/* The directory entry of a rename must reach the disk as well as the file. */
static void ik_sync_dir(const char *path)
{
    char copy[4096];
    int fd;
    snprintf(copy, sizeof copy, "%s", path);
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int ik_rewrite(struct ik *t, const char *path, char *err, size_t errlen)
{
    char tmp[4096], line[IK_LINE_MAX];
    int fd, n;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fail;
    for (struct ik_pair *p = t->all; p; p = p->next) {
        n = ik_format(p->id, p->key, p->seen, line, sizeof line);
        if (n < 0 || sk_write_all(fd, line, (size_t)n) < 0)
            goto fail;
        p->seen_disk = p->seen;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0)
        goto fail;
    ik_sync_dir(path);
    return 0;
fail:
    snprintf(err, errlen, "cannot rewrite %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return -1;
}

int ik_open_append(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return fd;
}

int ik_append(int fd, const char *id, const unsigned char key[PROTO_KEY_BYTES], int64_t seen,
              bool sync, char *err, size_t errlen)
{
    char line[IK_LINE_MAX];
    int n = ik_format(id, key, seen, line, sizeof line), e;
    struct stat st;
    if (n < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "cannot record the id: %s", n < 0 ? "line too long" : strerror(errno));
        return -1;
    }
    /* one write per line (O_APPEND): a crash leaves at most this line torn, which the next
     * load drops as the unterminated last line */
    if (sk_write_all(fd, line, (size_t)n) == 0 && (!sync || fdatasync(fd) == 0))
        return 0;
    e = errno;
    /* a write cut short (ENOSPC, EIO, EFBIG) must not stay: the next append would continue
     * that line, and a broken line in the middle stops the next start */
    if (ftruncate(fd, st.st_size) < 0) {
        snprintf(err, errlen, "cannot record the id (%s), and cannot cut back what was written: %s",
                 strerror(e), strerror(errno));
        return -2;
    }
    snprintf(err, errlen, "cannot record the id: %s", strerror(e));
    return -1;
}
