#include "peer/frecv.h"
#include "peer/bridge.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
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
/* a file must leave this much of its file system free: 1% of it, at most 1 GiB */
#define FRECV_RESERVE_MAX (1024ull * 1024 * 1024)
/* after ending a transfer early, at most this much of the sender's stream is read (and
 * dropped) while waiting for its end */
#define FRECV_DRAIN_MAX (1024 * 1024)
/* a directory we create costs an inode and a block whatever the files in it: each counts this
 * much against --max-bytes and the free space, and a transfer creates at most FRECV_DIRS_MAX
 * (names have at most FPROTO_DEPTH_MAX components) */
#define FRECV_DIR_COST 4096
#define FRECV_DIRS_MAX 4096

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
    /* what the hello announced, and what the headers so far declared against it */
    uint64_t bytes, declared;
    uint64_t count, seen;
    bool overflow; /* a header beyond the announced totals: the transfer ends after it */
    uint64_t ndirs; /* directories created by this transfer */
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

static uint64_t frecv_room(int fd);

/* Why one more directory may not be created in cur for f (f->why), or true. Asked before each
 * mkdirat: empty files in new directories would otherwise fill the disk's blocks and inodes
 * while counting nothing against the limits. */
static bool frecv_may_mkdir(struct frecv *r, struct frecv_file *f, int cur)
{
    struct statvfs v;
    uint64_t room;
    char b1[32];
    if (r->ndirs >= FRECV_DIRS_MAX) {
        snprintf(f->why, sizeof f->why,
                 "its directories would be more than the %d a transfer may create", FRECV_DIRS_MAX);
        return false;
    }
    if (r->o->max_bytes && r->declared + (r->ndirs + 1) * FRECV_DIR_COST > r->o->max_bytes) {
        snprintf(f->why, sizeof f->why,
                 "with its new directories (%d bytes each) the transfer exceeds --max-bytes %s",
                 FRECV_DIR_COST, pg_bytes(r->o->max_bytes, b1, sizeof b1));
        return false;
    }
    if ((room = frecv_room(cur)) < FRECV_DIR_COST || f->size > room - FRECV_DIR_COST) {
        snprintf(f->why, sizeof f->why, "it and its new directories do not fit: %s may be used",
                 pg_bytes(room, b1, sizeof b1));
        return false;
    }
    /* inodes too, with the same 1% reserve for the rest of the system */
    if (fstatvfs(cur, &v) == 0 && v.f_files > 0 && v.f_favail <= v.f_files / 100 + 1) {
        snprintf(f->why, sizeof f->why, "no inodes to spare for its directories");
        return false;
    }
    return true;
}

/* Opens (creating if needed, within frecv_may_mkdir) the directory of name below dirfd, never
 * through a symbolic link, and leaves the last component in f->base. */
static int frecv_parent(struct frecv *r, struct frecv_file *f)
{
    char path[FPROTO_NAME_MAX + 1], *p = path, *slash;
    int cur = dup(r->dirfd);
    snprintf(path, sizeof path, "%s", f->name);
    while (cur >= 0 && (slash = strchr(p, '/'))) {
        int next;
        *slash = '\0';
        next = openat(cur, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT) {
            if (!frecv_may_mkdir(r, f, cur)) {
                close(cur);
                return -1;
            }
            if (mkdirat(cur, p, FRECV_MODE_MAX) == 0) {
                r->ndirs++;
                next = openat(cur, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            }
        }
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

/* Bytes a file on fd's file system may take: what unprivileged users may still write, less a
 * reserve, so that a transfer never fills the disk that the rest of the system needs.
 * UINT64_MAX when the file system does not say. */
static uint64_t frecv_room(int fd)
{
    struct statvfs v;
    uint64_t avail, reserve;
    if (fstatvfs(fd, &v) < 0 || v.f_frsize == 0)
        return UINT64_MAX;
    avail = (uint64_t)v.f_bavail * v.f_frsize;
    reserve = (uint64_t)v.f_blocks * v.f_frsize / 100;
    reserve = reserve < FRECV_RESERVE_MAX ? reserve : FRECV_RESERVE_MAX;
    return avail > reserve ? avail - reserve : 0;
}

/* Counts the header against what the hello announced: a sender that goes beyond it lied, and
 * the transfer ends (r->overflow) after refusing this file. */
static bool frecv_within(struct frecv *r, struct frecv_file *f)
{
    char b[32];
    if (++r->seen > r->count) {
        snprintf(f->why, sizeof f->why,
                 "more files than the %llu announced: the receiver ends the transfer",
                 (unsigned long long)r->count);
        r->overflow = true;
        return false;
    }
    if (f->size > r->bytes - r->declared) {
        snprintf(f->why, sizeof f->why,
                 "more bytes than the %s announced: the receiver ends the transfer",
                 pg_bytes(r->bytes, b, sizeof b));
        r->overflow = true;
        return false;
    }
    r->declared += f->size;
    return true;
}

/* Checks the header and prepares the part file; on refusal f->why says why. */
static void frecv_prepare(struct frecv *r, struct frecv_file *f, json_t *hdr)
{
    json_t *size = json_object_get(hdr, "size"), *mode = json_object_get(hdr, "mode");
    const char *taken;
    char hex[9], b1[32], b2[32];
    uint64_t room;
    f->name = json_string_value(json_object_get(hdr, "name"));
    if (!f->name || strlen(f->name) != json_string_length(json_object_get(hdr, "name")) ||
        !json_is_integer(size) || json_integer_value(size) < 0) {
        snprintf(f->why, sizeof f->why, "malformed file header");
        f->name = f->name ? f->name : "(no name)";
        /* it still counts: a stream of bad headers is not a way around the limits */
        if (++r->seen > r->count)
            r->overflow = true;
        return;
    }
    f->size = (uint64_t)json_integer_value(size);
    if (!frecv_within(r, f))
        return;
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
    /* before any directory is made for it */
    if (f->size > (room = frecv_room(r->dirfd))) {
        snprintf(f->why, sizeof f->why, "it does not fit: %s, and %s may be used here",
                 pg_bytes(f->size, b1, sizeof b1), pg_bytes(room, b2, sizeof b2));
        return;
    }
    if ((f->parent = frecv_parent(r, f)) < 0)
        return;
    if ((taken = frecv_taken(r, f))) {
        snprintf(f->why, sizeof f->why, "%s", taken);
        return;
    }
    /* before the first byte: an ENOSPC halfway would waste the whole transfer of it */
    if (f->size > (room = frecv_room(f->parent))) {
        snprintf(f->why, sizeof f->why, "it does not fit: %s, and %s may be used here",
                 pg_bytes(f->size, b1, sizeof b1), pg_bytes(room, b2, sizeof b2));
        return;
    }
    /* hidden, unique and never mistaken for the real thing; O_EXCL: never an existing file */
    rnd_hex(hex, 4);
    snprintf(f->part, sizeof f->part, ".%.*s.tcpunch-part-%s", FRECV_PART_BASE, f->base, hex);
    f->fd = openat(f->parent, f->part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (f->fd < 0)
        snprintf(f->why, sizeof f->why, "cannot create a file there: %s", strerror(errno));
}

/* Reads exactly f->size bytes into the part file, hashing them. At a write error (a full disk)
 * the part file goes at once, the error is remembered in f->why, and the rest is read and
 * dropped, so the stream stays in step. -1: connection error. */
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
        if (!f->why[0] && sk_write_all(f->fd, r->buf, (size_t)n) < 0) {
            snprintf(f->why, sizeof f->why, "writing: %s", strerror(errno));
            close(f->fd);
            unlinkat(f->parent, f->part, 0);
            f->fd = -1;
            f->part[0] = '\0';
        }
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

/* Why the announced totals are refused, or NULL. */
static const char *frecv_too_much(struct frecv *r, json_t *count, json_t *bytes, char *why,
                                  size_t len)
{
    char b1[32], b2[32];
    uint64_t room;
    if (!json_is_integer(count) || json_integer_value(count) < 0 || !json_is_integer(bytes) ||
        json_integer_value(bytes) < 0)
        return "the sender did not announce how many files and bytes it sends";
    r->count = (uint64_t)json_integer_value(count);
    r->bytes = (uint64_t)json_integer_value(bytes);
    if (r->count > r->o->max_files)
        snprintf(why, len, "%llu files: this receiver takes at most %u at once (--max-files)",
                 (unsigned long long)r->count, r->o->max_files);
    else if (r->o->max_bytes && r->bytes > r->o->max_bytes)
        snprintf(why, len, "%s: this receiver takes at most %s at once (--max-bytes)",
                 pg_bytes(r->bytes, b1, sizeof b1), pg_bytes(r->o->max_bytes, b2, sizeof b2));
    else if (r->bytes > (room = frecv_room(r->dirfd)))
        snprintf(why, len, "%s do not fit: %s may be used in the receiver's directory",
                 pg_bytes(r->bytes, b1, sizeof b1), pg_bytes(room, b2, sizeof b2));
    else
        return NULL;
    return why;
}

/* Refuses the transfer as a whole (our answer, REASON, is sent already or goes now), then
 * ends the stream properly: our final record, and the sender's end waited for a few seconds,
 * whatever it still sends dropped. EXIT_PARTIAL when the sender ended properly, else
 * EXIT_LOST. */
static int frecv_end_early(struct frecv *r, const char *why)
{
    size_t drained = 0;
    uint64_t t0;
    long n = 1;
    if (why && fproto_send(&r->ch, json_pack("{s:s}", "refused", why)) < 0)
        return EXIT_LOST;
    if (chan_finish(&r->ch) < 0)
        return EXIT_LOST;
    r->ch.stall_ms = FRECV_REFUSE_S * 1000;
    t0 = clk_ms();
    /* bounded in bytes and, roughly, in time: a sender that keeps sending gets no more */
    while (drained < FRECV_DRAIN_MAX && clk_ms() - t0 < FRECV_REFUSE_S * 1000 &&
           (n = chan_read(&r->ch, r->buf, FRECV_BUF)) > 0)
        drained += (size_t)n;
    return n == 0 ? EXIT_PARTIAL : EXIT_LOST;
}

static int frecv_hello(struct frecv *r)
{
    json_t *m = NULL;
    int n = fproto_recv(&r->ch, &m);
    json_t *v = json_object_get(m, "files");
    if (n > 0 && json_integer_value(v) == FPROTO_VERSION) {
        char buf[300];
        const char *why = frecv_too_much(r, json_object_get(m, "count"),
                                         json_object_get(m, "bytes"), buf, sizeof buf);
        json_decref(m);
        if (why) {
            pg_clear(&r->pg);
            LOG_E("refused the whole transfer of %s: %s", r->link->peer, why);
            r->refused = 1;
            return frecv_end_early(r, why) == EXIT_PARTIAL ? 1 : -1;
        }
        pg_init(&r->pg, r->pg.bar, r->bytes);
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
    int h = frecv_hello(r);
    if (h > 0)
        return EXIT_PARTIAL; /* refused as a whole: nothing was written */
    if (h < 0 && r->refused)
        return EXIT_LOST;
    if (h < 0)
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
        if (r->overflow) {
            /* the refusal went as the answer to that header */
            n = frecv_end_early(r, NULL);
            LOG_N("%u file%s received from %s, %u refused; the transfer was ended early", r->ok,
                  r->ok == 1 ? "" : "s", r->link->peer, r->refused);
            return n;
        }
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
    if (!r || !(r->buf = malloc(FRECV_BUF))) {
        LOG_E("out of memory");
        goto out;
    }
    if (chan_init(&r->ch, link) < 0) {
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
    rc = bridge_end(link, rc);
    ev_closed(o, link->peer, 0, r->pg.done, rc);
    chan_free(&r->ch);
out:
    rc = bridge_end(link, rc);
    if (link->fd >= 0)
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
    int rc = EXIT_LOCAL;
    if (!ch || chan_init(ch, link) < 0) {
        LOG_E("out of memory");
        goto out;
    }
    rc = EXIT_LOST;
    ch->stall_ms = FRECV_REFUSE_S * 1000;
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
    rc = bridge_end(link, rc);
    ev_closed(o, link->peer, 0, 0, rc);
out:
    rc = bridge_end(link, rc);
    if (ch)
        chan_free(ch);
    free(ch);
    if (link->fd >= 0)
        close(link->fd);
    link->fd = -1;
    return rc;
}
