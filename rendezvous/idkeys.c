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
#include <sys/stat.h>
#include <unistd.h>

#define IK_LINE_MAX 512 /* an id, a key and generous blanks */

struct ik_pair {
    struct ik_pair *next; /* all pairs, oldest first: the registry does not iterate */
    unsigned char key[PROTO_KEY_BYTES];
    char id[PROTO_MAX_ID + 1];
};

struct ik {
    struct reg *reg; /* id -> struct ik_pair */
    struct ik_pair *all, *last;
    size_t max;
};

struct ik *ik_new(size_t max)
{
    struct ik *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->max = max;
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
    rs = reg_add(t->reg, p->id, p);
    if (rs != REG_OK) {
        free(p);
        return rs == REG_EXISTS ? IK_EXISTS : IK_NOMEM;
    }
    if (t->last)
        t->last->next = p;
    else
        t->all = p;
    t->last = p;
    return IK_OK;
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

/* One line, newline removed. Returns 1 for a pair, 0 for a blank or comment line, -1 with
 * the reason in why. */
static int ik_parse_line(char *line, char *id, unsigned char *key, char *why, size_t whylen)
{
    char *s = ik_trim(line), *sep, *k;
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
    if (strpbrk(k, " \t") || id_pk_decode(k, key) < 0) {
        snprintf(why, whylen, "the key of \"%s\" is not one base64 Ed25519 public key", s);
        return -1;
    }
    snprintf(id, PROTO_MAX_ID + 1, "%s", s);
    return 1;
}

/* A parsed pair: added, dropped (database, id seen before) or an error (allowlist). */
static int ik_take_pair(struct ik *t, enum ik_mode mode, const char *id, const unsigned char *key,
                        struct ik_load_info *info, char *why, size_t whylen)
{
    switch (ik_add(t, id, key)) {
    case IK_OK:
        info->lines++;
        return 0;
    case IK_EXISTS:
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
        rc = ik_parse_line(line, id, key, why, sizeof why);
        if (rc < 0 && !terminated && mode == IK_DATABASE) {
            info->dropped++; /* a torn last write */
            info->rewrite = true;
            continue;
        }
        if (rc > 0)
            rc = ik_take_pair(t, mode, id, key, info, why, sizeof why);
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

static int ik_format(const char *id, const unsigned char *key, char *line, size_t len)
{
    char b64[ID_PK_B64_SIZE];
    if (id_pk_encode(key, b64, sizeof b64) < 0)
        return -1;
    return snprintf(line, len, "%s %s\n", id, b64);
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

int ik_rewrite(const struct ik *t, const char *path, char *err, size_t errlen)
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
    for (const struct ik_pair *p = t->all; p; p = p->next) {
        n = ik_format(p->id, p->key, line, sizeof line);
        if (n < 0 || sk_write_all(fd, line, (size_t)n) < 0)
            goto fail;
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

int ik_append(int fd, const char *id, const unsigned char key[PROTO_KEY_BYTES], char *err,
              size_t errlen)
{
    char line[IK_LINE_MAX];
    int n = ik_format(id, key, line, sizeof line);
    /* one write per line (O_APPEND): a crash leaves at most this line torn, which the next
     * load drops */
    if (n < 0 || sk_write_all(fd, line, (size_t)n) < 0 || fdatasync(fd) < 0) {
        snprintf(err, errlen, "cannot record the id: %s", strerror(errno));
        return -1;
    }
    return 0;
}
