#include "peer/frecv.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/sock.h"
#include "common/log.h"
#include "common/rand.h"
#include "peer/events.h"
#include "peer/fproto.h"
#include "peer/progress.h"

#define FRECV_BUF (128 * 1024)
#define FRECV_PART_BASE 200 /* bytes of the final name kept in the part file's name */
/* a refused sender gets this long, each way, to take its refusal and end its stream */
#define FRECV_REFUSE_S 5
/* what a sender's mode may ask for: never setuid, setgid or sticky, never group or world
 * writable (the umask takes away more); directories we create get the same at most */
#define FRECV_MODE_MAX 0755

struct frecv {
    const struct peer_opts *o;
    struct peer_link *link;
    struct chan ch;
    struct progress pg;
    int dirfd;
    bool force;
    mode_t umask;
    unsigned char *buf;
    unsigned ok, refused;
};

/* One file in progress. */
struct frecv_file {
    const char *name;
    uint64_t size;
    int mode;
    int parent; /* directory fd the file goes in */
    char base[FPROTO_PART_MAX + 1];
    char part[FPROTO_PART_MAX + 1];
    int fd;        /* the part file */
    char why[300]; /* set: refused for this reason */
};

int frecv_open_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        LOG_E("--dir %s: %s", dir, strerror(errno));
    return fd;
}

/* Opens (creating if needed) the directory of name below dirfd, never through a symbolic link,
 * and leaves the last component in f->base. */
static int frecv_parent(struct frecv *r, struct frecv_file *f)
{
    char path[FPROTO_NAME_MAX + 1], *p = path, *slash;
    int cur = dup(r->dirfd);
    snprintf(path, sizeof path, "%s", f->name);
    while (cur >= 0 && (slash = strchr(p, '/'))) {
        int next;
        *slash = '\0';
        next = openat(cur, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT && mkdirat(cur, p, FRECV_MODE_MAX) == 0)
            next = openat(cur, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            struct stat st;
            bool link = fstatat(cur, p, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
            snprintf(f->why, sizeof f->why, "%.*s%s", (int)(slash - path), path,
                     link               ? " is a symbolic link: not followed"
                     : errno == ENOTDIR ? " is not a directory"
                                        : ": cannot create");
            if (!link && errno != ENOTDIR)
                snprintf(f->why + strlen(f->why), sizeof f->why - strlen(f->why), " (%s)",
                         strerror(errno));
        }
        close(cur);
        cur = next;
        p = slash + 1;
    }
    if (cur < 0 && !f->why[0])
        snprintf(f->why, sizeof f->why, "cannot open the directory: %s", strerror(errno));
    snprintf(f->base, sizeof f->base, "%.*s", FPROTO_PART_MAX, p);
    return cur;
}

/* Why the final name cannot take the file, or NULL. */
static const char *frecv_taken(struct frecv *r, struct frecv_file *f)
{
    struct stat st;
    if (fstatat(f->parent, f->base, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return NULL;
    if (S_ISDIR(st.st_mode))
        return "a directory of that name exists";
    if (!r->force)
        return "it already exists (the receiver's --force replaces it)";
    return NULL;
}

/* Whether a component of name starts with '.'. */
static bool frecv_hidden(const char *name)
{
    for (const char *p = name; p; p = strchr(p, '/'), p = p ? p + 1 : NULL)
        if (p[0] == '.')
            return true;
    return false;
}

/* Checks the header and prepares the part file; on refusal f->why says why. */
static void frecv_prepare(struct frecv *r, struct frecv_file *f, json_t *hdr)
{
    json_t *size = json_object_get(hdr, "size"), *mode = json_object_get(hdr, "mode");
    const char *taken;
    char hex[9];
    f->name = json_string_value(json_object_get(hdr, "name"));
    if (!f->name || strlen(f->name) != json_string_length(json_object_get(hdr, "name")) ||
        !json_is_integer(size) || json_integer_value(size) < 0) {
        snprintf(f->why, sizeof f->why, "malformed file header");
        f->name = f->name ? f->name : "(no name)";
        return;
    }
    f->size = (uint64_t)json_integer_value(size);
    f->mode = json_is_integer(mode) ? (int)(json_integer_value(mode) & FRECV_MODE_MAX) : 0644;
    if (!fproto_check_name(f->name, f->why, sizeof f->why))
        return;
    /* .ssh/authorized_keys, .bashrc, .config/tcpunch/config: a sender could plant files that
     * run or redirect things the next time we log in or run tcpunch */
    if (!r->o->dotfiles && frecv_hidden(f->name)) {
        snprintf(f->why, sizeof f->why,
                 "a hidden name (a component starts with '.'): the receiver takes those only "
                 "with --dotfiles");
        return;
    }
    if ((f->parent = frecv_parent(r, f)) < 0)
        return;
    if ((taken = frecv_taken(r, f))) {
        snprintf(f->why, sizeof f->why, "%s", taken);
        return;
    }
    /* hidden, unique and never mistaken for the real thing; O_EXCL: never an existing file */
    rnd_hex(hex, 4);
    snprintf(f->part, sizeof f->part, ".%.*s.tcpunch-part-%s", FRECV_PART_BASE, f->base, hex);
    f->fd = openat(f->parent, f->part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (f->fd < 0)
        snprintf(f->why, sizeof f->why, "cannot create a file there: %s", strerror(errno));
}

/* Reads exactly f->size bytes into the part file, hashing them. A write error is remembered in
 * f->why and the rest is read and dropped, so the stream stays in step. -1: connection error. */
static int frecv_body(struct frecv *r, struct frecv_file *f, unsigned char *sum)
{
    crypto_generichash_state h;
    uint64_t left = f->size;
    crypto_generichash_init(&h, NULL, 0, FPROTO_SUM_BYTES);
    while (left > 0) {
        long n = chan_read(&r->ch, r->buf, left < FRECV_BUF ? (size_t)left : FRECV_BUF);
        if (n <= 0) {
            if (n == 0)
                snprintf(r->ch.err, sizeof r->ch.err, "the sender ended inside %s", f->name);
            return -1;
        }
        crypto_generichash_update(&h, r->buf, (size_t)n);
        if (!f->why[0] && sk_write_all(f->fd, r->buf, (size_t)n) < 0)
            snprintf(f->why, sizeof f->why, "writing: %s", strerror(errno));
        left -= (uint64_t)n;
        pg_add(&r->pg, f->name, (uint64_t)n);
    }
    crypto_generichash_final(&h, sum, FPROTO_SUM_BYTES);
    return 0;
}

/* Checksum, then durable, then the final name (without --force never over a file that
 * appeared meanwhile). */
static void frecv_commit(struct frecv *r, struct frecv_file *f, const unsigned char *sum,
                         json_t *trailer)
{
    unsigned char want[FPROTO_SUM_BYTES];
    const char *hex = json_string_value(json_object_get(trailer, "blake2b"));
    size_t n = 0;
    int rc;
    if (f->why[0])
        return;
    if (!hex || sodium_hex2bin(want, sizeof want, hex, strlen(hex), NULL, &n, NULL) != 0 ||
        n != sizeof want || sodium_memcmp(want, sum, sizeof want) != 0) {
        snprintf(f->why, sizeof f->why, "checksum mismatch (BLAKE2b-256)");
        return;
    }
    if (fchmod(f->fd, (mode_t)f->mode & ~r->umask) < 0 || fsync(f->fd) < 0) {
        snprintf(f->why, sizeof f->why, "storing: %s", strerror(errno));
        return;
    }
    rc = r->force ? renameat(f->parent, f->part, f->parent, f->base)
                  : renameat2(f->parent, f->part, f->parent, f->base, RENAME_NOREPLACE);
    if (rc < 0 && !r->force && errno == EINVAL) {
        /* a file system without RENAME_NOREPLACE: a hard link fails on an existing name too */
        rc = linkat(f->parent, f->part, f->parent, f->base, 0);
        if (rc == 0)
            unlinkat(f->parent, f->part, 0);
    }
    if (rc < 0) {
        snprintf(f->why, sizeof f->why, "%s",
                 errno == EEXIST ? "it already exists (the receiver's --force replaces it)"
                                 : strerror(errno));
        return;
    }
    f->part[0] = '\0';
    fsync(f->parent);
}

static void frecv_release(struct frecv_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    if (f->part[0] && f->parent >= 0)
        unlinkat(f->parent, f->part, 0);
    if (f->parent >= 0)
        close(f->parent);
    f->fd = f->parent = -1;
    f->part[0] = '\0';
}

static int frecv_reply(struct frecv *r, const struct frecv_file *f, const char *key)
{
    if (!f->why[0])
        return fproto_send(&r->ch, json_pack("{s:b}", key, 1));
    r->refused++;
    pg_clear(&r->pg);
    LOG_E("refused %s from %s: %s", f->name, r->link->peer, f->why);
    return fproto_send(&r->ch, json_pack("{s:s}", "refused", f->why));
}

/* One file, from its header on. -1: connection error (in ch.err). */
static int frecv_one(struct frecv *r, json_t *hdr)
{
    struct frecv_file f = {.fd = -1, .parent = -1};
    unsigned char sum[FPROTO_SUM_BYTES];
    json_t *trailer = NULL;
    char size[32], rate[32];
    uint64_t t0 = clk_ms();
    int rc = -1;
    frecv_prepare(r, &f, hdr);
    if (f.why[0]) {
        rc = frecv_reply(r, &f, "accept");
        goto out;
    }
    if (fproto_send(&r->ch, json_pack("{s:b}", "accept", 1)) < 0 || frecv_body(r, &f, sum) < 0)
        goto out;
    if (fproto_recv(&r->ch, &trailer) <= 0) {
        if (!r->ch.err[0])
            snprintf(r->ch.err, sizeof r->ch.err, "the sender ended without the checksum");
        goto out;
    }
    frecv_commit(r, &f, sum, trailer);
    if ((rc = frecv_reply(r, &f, "ok")) == 0 && !f.why[0]) {
        r->ok++;
        pg_clear(&r->pg);
        LOG_N("received %s (%s, %s): verified", f.name, pg_bytes(f.size, size, sizeof size),
              pg_rate(f.size, clk_ms() - t0, rate, sizeof rate));
    }
out:
    if (rc < 0 && f.name) {
        pg_clear(&r->pg);
        LOG_E("receiving %s from %s: %s", f.name, r->link->peer, r->ch.err);
    }
    json_decref(trailer);
    frecv_release(&f);
    return rc;
}

static int frecv_hello(struct frecv *r)
{
    json_t *m = NULL;
    int n = fproto_recv(&r->ch, &m);
    json_t *v = json_object_get(m, "files");
    if (n > 0 && json_integer_value(v) == FPROTO_VERSION) {
        pg_init(&r->pg, r->pg.bar, (uint64_t)json_integer_value(json_object_get(m, "bytes")));
        json_decref(m);
        return fproto_send(&r->ch, json_pack("{s:i}", "files", FPROTO_VERSION));
    }
    if (n > 0 && json_is_integer(v))
        snprintf(r->ch.err, sizeof r->ch.err, "file protocol version %lld, we speak %d",
                 (long long)json_integer_value(v), FPROTO_VERSION);
    else if (n >= 0 || strstr(r->ch.err, "file protocol"))
        snprintf(r->ch.err, sizeof r->ch.err,
                 "it does not speak the file protocol: is it running `tcpunch send` (not "
                 "connect)?");
    json_decref(m);
    return -1;
}

static int frecv_all(struct frecv *r)
{
    char size[32];
    json_t *m = NULL;
    if (frecv_hello(r) < 0)
        goto lost;
    for (;;) {
        int n = fproto_recv(&r->ch, &m);
        if (n == 0)
            snprintf(r->ch.err, sizeof r->ch.err, "the sender ended without its end marker");
        if (n <= 0)
            goto lost;
        if (json_is_true(json_object_get(m, "end")))
            break;
        n = frecv_one(r, m);
        json_decref(m);
        m = NULL;
        if (n < 0)
            return EXIT_LOST;
    }
    json_decref(m);
    m = NULL;
    if (fproto_send(&r->ch, json_pack("{s:b, s:i, s:i}", "end", 1, "ok", (int)r->ok, "refused",
                                      (int)r->refused)) < 0 ||
        chan_finish(&r->ch) < 0 || fproto_recv(&r->ch, &m) != 0)
        goto lost;
    pg_clear(&r->pg);
    LOG_N("%u file%s received from %s (%s), %u refused", r->ok, r->ok == 1 ? "" : "s",
          r->link->peer, pg_bytes(r->pg.done, size, sizeof size), r->refused);
    return r->refused ? EXIT_PARTIAL : EXIT_DONE;
lost:
    json_decref(m);
    pg_clear(&r->pg);
    LOG_E("%s: %s", r->link->peer, r->ch.err);
    return EXIT_LOST;
}

int frecv_run(const struct peer_opts *o, struct peer_link *link, int dirfd, bool force)
{
    struct frecv *r = calloc(1, sizeof *r);
    int rc = EXIT_LOCAL;
    if (!r || !(r->buf = malloc(FRECV_BUF)) || chan_init(&r->ch, link) < 0) {
        LOG_E("out of memory");
        goto out;
    }
    r->o = o;
    r->link = link;
    r->dirfd = dirfd;
    r->force = force;
    /* read, then put back: the process's own umask decides the final mode, as for cp */
    r->umask = umask(0);
    umask(r->umask);
    pg_init(&r->pg, isatty(STDERR_FILENO) && !o->quiet && !o->json, 0);
    rc = frecv_all(r);
    pg_clear(&r->pg);
    ev_closed(o, link->peer, 0, r->pg.done, rc);
    chan_free(&r->ch);
out:
    close(link->fd);
    link->fd = -1;
    if (r)
        free(r->buf);
    free(r);
    return rc;
}

int frecv_refuse(const struct peer_opts *o, struct peer_link *link, const char *why)
{
    struct timeval tv = {.tv_sec = FRECV_REFUSE_S};
    struct chan *ch = calloc(1, sizeof *ch);
    json_t *m = NULL;
    int rc = EXIT_LOST;
    if (!ch || chan_init(ch, link) < 0) {
        LOG_E("out of memory");
        rc = EXIT_LOCAL;
        goto out;
    }
    setsockopt(link->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(link->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    /* its opening line first, whatever it is; nothing after it is read but the end */
    if (fproto_recv(ch, &m) > 0 && fproto_send(ch, json_pack("{s:s}", "refused", why)) == 0 &&
        chan_finish(ch) == 0) {
        json_decref(m);
        m = NULL;
        if (fproto_recv(ch, &m) == 0)
            rc = EXIT_PARTIAL;
    }
    json_decref(m);
    ev_closed(o, link->peer, 0, 0, rc);
out:
    if (ch)
        chan_free(ch);
    free(ch);
    close(link->fd);
    link->fd = -1;
    return rc;
}
