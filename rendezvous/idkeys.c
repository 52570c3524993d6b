#include "rendezvous/idkeys.h"
#include "common/hmap.h"
#include "common/identity.h"
#include "common/queue.h"
#include "common/sock.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IK_LINE_MAX 512 /* an id, a key, a time and generous blanks */
#define IK_MIN_BUCKETS 64u
#define IK_MAX_SEEN 253402300799LL /* 9999-12-31: a larger stamp is a corrupt line */

struct ik_pair {
    struct hmap_node node; /* in ik.ids */
    struct q link;         /* in ik.all */
    unsigned char key[PROTO_KEY_BYTES];
    char id[PROTO_MAX_ID + 1];
    int64_t seen;      /* last registration, unix seconds */
    int64_t seen_disk; /* the stamp the file holds for it */
};

/* How many ids each key owns (--ids-per-key). */
struct ik_keyn {
    struct hmap_node node;
    unsigned char key[PROTO_KEY_BYTES];
    size_t n;
};

/* Ids and keys are chosen by whoever registers: the tables' keyed hash (common/hmap) keeps them
 * from piling into one chain. */
struct ik {
    struct hmap ids;  /* id -> struct ik_pair */
    struct q all;     /* every pair, oldest first: ik_rewrite writes them in this order */
    struct hmap keyn; /* key -> struct ik_keyn */
    size_t max;
};

static bool ik_keyn_eq(const struct hmap_node *n, const void *key)
{
    return memcmp(hmap_data(n, struct ik_keyn, node)->key, key, PROTO_KEY_BYTES) == 0;
}

static struct ik_keyn *ik_keyn_find(const struct ik *t, const unsigned char *key, uint64_t h)
{
    struct hmap_node *n = hmap_find(&t->keyn, h, ik_keyn_eq, key);
    return n ? hmap_data(n, struct ik_keyn, node) : NULL;
}

size_t ik_key_ids(const struct ik *t, const unsigned char key[PROTO_KEY_BYTES])
{
    struct ik_keyn *e = ik_keyn_find(t, key, hmap_hash(&t->keyn, key, PROTO_KEY_BYTES));
    return e ? e->n : 0;
}

static int ik_keyn_add(struct ik *t, const unsigned char *key, int delta)
{
    uint64_t h = hmap_hash(&t->keyn, key, PROTO_KEY_BYTES);
    struct ik_keyn *e = ik_keyn_find(t, key, h);
    if (!e && delta > 0) {
        if (!(e = calloc(1, sizeof *e)))
            return -1;
        memcpy(e->key, key, PROTO_KEY_BYTES);
        hmap_insert(&t->keyn, &e->node, h);
    }
    if (!e)
        return 0;
    if (delta > 0)
        e->n++;
    else if (e->n && --e->n == 0) {
        hmap_remove(&t->keyn, &e->node);
        free(e);
    }
    return 0;
}

static struct ik_pair *ik_pair_find(const struct ik *t, const char *id)
{
    struct hmap_node *n = hmap_find_str(&t->ids, id, struct ik_pair, node, id);
    return n ? hmap_data(n, struct ik_pair, node) : NULL;
}

struct ik *ik_new(size_t max)
{
    struct ik *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->max = max;
    q_init(&t->all);
    if (hmap_init(&t->ids, IK_MIN_BUCKETS) < 0 || hmap_init(&t->keyn, IK_MIN_BUCKETS) < 0) {
        hmap_fini(&t->ids);
        free(t);
        return NULL;
    }
    return t;
}

void ik_free(struct ik *t)
{
    struct q *it, *tmp;
    struct hmap_node *n, *ntmp;
    if (!t)
        return;
    q_foreach_safe(it, tmp, &t->all)
        free(q_data(it, struct ik_pair, link));
    hmap_foreach_safe(n, ntmp, &t->keyn)
        free(hmap_data(n, struct ik_keyn, node));
    hmap_fini(&t->ids);
    hmap_fini(&t->keyn);
    free(t);
}

const unsigned char *ik_find(const struct ik *t, const char *id)
{
    const struct ik_pair *p = ik_pair_find(t, id);
    return p ? p->key : NULL;
}

size_t ik_count(const struct ik *t)
{
    return hmap_count(&t->ids);
}

enum ik_status ik_add(struct ik *t, const char *id, const unsigned char key[PROTO_KEY_BYTES])
{
    return ik_add_seen(t, id, key, (int64_t)time(NULL));
}

enum ik_status ik_add_seen(struct ik *t, const char *id, const unsigned char key[PROTO_KEY_BYTES],
                           int64_t seen)
{
    struct ik_pair *p;
    if (ik_pair_find(t, id))
        return IK_EXISTS;
    if (t->max && hmap_count(&t->ids) >= t->max)
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
    hmap_insert(&t->ids, &p->node, hmap_hash_str(&t->ids, p->id));
    q_insert_tail(&t->all, &p->link);
    return IK_OK;
}

static void ik_unlink(struct ik *t, struct ik_pair *p)
{
    hmap_remove(&t->ids, &p->node);
    ik_keyn_add(t, p->key, -1);
    q_remove(&p->link);
    free(p);
}

int ik_remove(struct ik *t, const char *id)
{
    struct ik_pair *p = ik_pair_find(t, id);
    if (!p)
        return -1;
    ik_unlink(t, p);
    return 0;
}

int64_t ik_seen(const struct ik *t, const char *id, int64_t *on_disk)
{
    const struct ik_pair *p = ik_pair_find(t, id);
    if (on_disk)
        *on_disk = p ? p->seen_disk : 0;
    return p ? p->seen : 0;
}

void ik_set_seen(struct ik *t, const char *id, int64_t seen, bool on_disk)
{
    struct ik_pair *p = ik_pair_find(t, id);
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
    struct q *it, *tmp;
    q_foreach_safe(it, tmp, &t->all) {
        struct ik_pair *p = q_data(it, struct ik_pair, link);
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
        snprintf(why, whylen, "\"%.*s\" is not an id ([A-Za-z0-9._-]{1,%d})", PROTO_MAX_ID, s,
                 PROTO_MAX_ID);
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
    struct q *it;
    int fd, n;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fail;
    q_foreach(it, &t->all) {
        struct ik_pair *p = q_data(it, struct ik_pair, link);
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
