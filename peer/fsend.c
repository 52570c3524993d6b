#include "peer/fsend.h"
#include "peer/bridge.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "peer/events.h"
#include "peer/fproto.h"
#include "peer/progress.h"

#define FSEND_DEPTH 64 /* directory levels, to stop a loop of bind mounts */
#define FSEND_BUF (128 * 1024)

struct fsend {
    const struct peer_opts *o;
    struct peer_link *link;
    struct chan ch;
    struct progress pg;
    unsigned char *buf;
    unsigned ok, refused, skipped;
};

static int fsend_add(struct fsend_list *l, const char *path, const char *name,
                     const struct stat *st, bool follow)
{
    char why[200];
    if (!fproto_check_name(name, why, sizeof why)) {
        LOG_E("cannot send %s as \"%s\": %s", path, name, why);
        return EXIT_USAGE;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        struct fsend_file *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            goto oom;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n].path = strdup(path);
    l->v[l->n].name = strdup(name);
    if (!l->v[l->n].path || !l->v[l->n].name) {
        free(l->v[l->n].path);
        free(l->v[l->n].name);
        goto oom;
    }
    l->v[l->n].dev = st->st_dev;
    l->v[l->n].ino = st->st_ino;
    l->v[l->n].size = (uint64_t)st->st_size;
    l->v[l->n].follow = follow;
    l->n++;
    l->total += (uint64_t)st->st_size;
    return EXIT_DONE;
oom:
    LOG_E("out of memory");
    return EXIT_LOCAL;
}

static int fsend_walk(struct fsend_list *l, const char *path, const char *name, int depth);

static int fsend_entry(struct fsend_list *l, const char *dir, const char *dname, const char *entry,
                       int depth)
{
    char path[PATH_MAX], name[FPROTO_NAME_MAX + 1];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/%s", dir, entry) >= (int)sizeof path ||
        snprintf(name, sizeof name, "%s/%s", dname, entry) >= (int)sizeof name) {
        LOG_E("%s/%s: name too long", dir, entry);
        return EXIT_USAGE;
    }
    if (lstat(path, &st) < 0) {
        LOG_E("%s: %s", path, strerror(errno));
        return EXIT_LOCAL;
    }
    if (S_ISDIR(st.st_mode))
        return fsend_walk(l, path, name, depth + 1);
    if (!S_ISREG(st.st_mode)) {
        /* a link inside a tree may point anywhere: only what is really in it goes */
        LOG_W("skipping %s: not a regular file or directory", path);
        return EXIT_DONE;
    }
    return fsend_add(l, path, name, &st, false);
}

static int fsend_walk(struct fsend_list *l, const char *path, const char *name, int depth)
{
    DIR *d;
    struct dirent *e;
    int rc = EXIT_DONE;
    if (depth > FSEND_DEPTH) {
        LOG_E("%s: more than %d directory levels", path, FSEND_DEPTH);
        return EXIT_USAGE;
    }
    if (!(d = opendir(path))) {
        LOG_E("%s: %s", path, strerror(errno));
        return EXIT_LOCAL;
    }
    while (rc == EXIT_DONE && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        rc = fsend_entry(l, path, name, e->d_name, depth);
    }
    closedir(d);
    return rc;
}

/* A directory argument is named by its own last component ("." by its real name). */
static int fsend_arg(struct fsend_list *l, const char *arg)
{
    char real[PATH_MAX];
    const char *base;
    struct stat st;
    if (stat(arg, &st) < 0) {
        LOG_E("%s: %s", arg, strerror(errno));
        return EXIT_LOCAL;
    }
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
        LOG_E("%s: not a regular file or directory", arg);
        return EXIT_USAGE;
    }
    if (!realpath(arg, real)) {
        LOG_E("%s: %s", arg, strerror(errno));
        return EXIT_LOCAL;
    }
    base = strrchr(real, '/') ? strrchr(real, '/') + 1 : real;
    if (!base[0]) {
        LOG_E("%s: cannot send the root directory; name a directory inside it", arg);
        return EXIT_USAGE;
    }
    if (S_ISDIR(st.st_mode))
        return fsend_walk(l, arg, base, 0);
    return fsend_add(l, arg, base, &st, true);
}

static int fsend_cmp(const void *a, const void *b)
{
    return strcmp(((const struct fsend_file *)a)->name, ((const struct fsend_file *)b)->name);
}

int fsend_collect(struct fsend_list *l, int argc, char **argv)
{
    int rc = EXIT_DONE;
    memset(l, 0, sizeof *l);
    for (int i = 0; i < argc && rc == EXIT_DONE; i++)
        rc = fsend_arg(l, argv[i]);
    if (rc != EXIT_DONE)
        return rc;
    /* the receiver would refuse the second as existing: say so now, before connecting */
    qsort(l->v, l->n, sizeof *l->v, fsend_cmp);
    for (size_t i = 1; i < l->n; i++) {
        if (strcmp(l->v[i - 1].name, l->v[i].name) == 0) {
            LOG_E("%s and %s would both arrive as \"%s\"", l->v[i - 1].path, l->v[i].path,
                  l->v[i].name);
            return EXIT_USAGE;
        }
    }
    if (l->n == 0) {
        LOG_E("no files to send (the directories given are empty)");
        return EXIT_USAGE;
    }
    return EXIT_DONE;
}

void fsend_free(struct fsend_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].path);
        free(l->v[i].name);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

int fsend_open(const struct fsend_file *f, struct stat *st, char *why, size_t len)
{
    /* O_NONBLOCK: a FIFO swapped in would block open() for ever; no effect on a file */
    int fd = open(f->path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC |
                               (f->follow ? 0 : O_NOFOLLOW));
    if (fd < 0) {
        snprintf(why, len, "%s", errno == ELOOP ? "it became a symbolic link since it was listed"
                                                : strerror(errno));
        return -1;
    }
    if (fstat(fd, st) < 0)
        snprintf(why, len, "%s", strerror(errno));
    else if (!S_ISREG(st->st_mode))
        snprintf(why, len, "no longer a regular file");
    else if (st->st_dev != f->dev || st->st_ino != f->ino)
        snprintf(why, len, "another file took its place since it was listed");
    else if ((uint64_t)st->st_size != f->size)
        snprintf(why, len, "it changed size since it was listed (%llu bytes then, %llu now)",
                 (unsigned long long)f->size, (unsigned long long)st->st_size);
    else
        return fd;
    close(fd);
    return -1;
}

/* The receiver's answer: 1 accepted/ok, 0 refused (reason logged), -1 connection error. */
static int fsend_verdict(struct fsend *s, const char *name, const char *key)
{
    json_t *m = NULL;
    const char *why;
    int r = fproto_recv(&s->ch, &m);
    if (r <= 0) {
        if (r == 0)
            snprintf(s->ch.err, sizeof s->ch.err, "the receiver ended the transfer");
        return -1;
    }
    if (json_is_true(json_object_get(m, key))) {
        json_decref(m);
        return 1;
    }
    why = json_string_value(json_object_get(m, "refused"));
    pg_clear(&s->pg);
    LOG_E("%s refused %s: %s", s->link->peer, name, why ? why : "no reason given");
    json_decref(m);
    s->refused++;
    return 0;
}

/* The file's bytes, exactly size of them, and their checksum. -1: a local error (logged) or a
 * connection error (in ch.err), told apart by *local. */
static int fsend_body(struct fsend *s, int fd, const struct fsend_file *f, uint64_t size,
                      bool *local)
{
    crypto_generichash_state h;
    unsigned char sum[FPROTO_SUM_BYTES];
    char hex[FPROTO_SUM_HEX + 1];
    uint64_t left = size;
    crypto_generichash_init(&h, NULL, 0, sizeof sum);
    while (left > 0) {
        ssize_t r = read(fd, s->buf, left < FSEND_BUF ? (size_t)left : FSEND_BUF);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            /* the framing promised size bytes: the only way out is to drop the connection */
            pg_clear(&s->pg);
            LOG_E("%s: %s while sending", f->path, r < 0 ? strerror(errno) : "file shrank");
            *local = true;
            return -1;
        }
        crypto_generichash_update(&h, s->buf, (size_t)r);
        if (chan_write(&s->ch, s->buf, (size_t)r) < 0)
            return -1;
        left -= (uint64_t)r;
        pg_add(&s->pg, f->name, (uint64_t)r);
    }
    crypto_generichash_final(&h, sum, sizeof sum);
    sodium_bin2hex(hex, sizeof hex, sum, sizeof sum);
    return fproto_send(&s->ch, json_pack("{s:s}", "blake2b", hex));
}

static int fsend_one(struct fsend *s, const struct fsend_file *f)
{
    struct stat st;
    bool local = false;
    uint64_t t0 = clk_ms();
    char size[32], rate[32], why[200];
    int fd = fsend_open(f, &st, why, sizeof why), r = -1;
    if (fd < 0) {
        /* before its header: the stream stays in step, the other files still go */
        pg_clear(&s->pg);
        LOG_E("skipping %s: %s; not sent", f->path, why);
        s->skipped++;
        return 0;
    }
    if (fproto_send(&s->ch, json_pack("{s:s, s:I, s:i}", "name", f->name, "size",
                                      (json_int_t)st.st_size, "mode", (int)(st.st_mode & 0777))) <
            0 ||
        (r = fsend_verdict(s, f->name, "accept")) <= 0)
        goto out;
    if ((r = fsend_body(s, fd, f, (uint64_t)st.st_size, &local)) < 0)
        goto out;
    if ((r = fsend_verdict(s, f->name, "ok")) <= 0)
        goto out;
    s->ok++;
    pg_clear(&s->pg);
    LOG_N("sent %s (%s, %s): verified by %s", f->name,
          pg_bytes((uint64_t)st.st_size, size, sizeof size),
          pg_rate((uint64_t)st.st_size, clk_ms() - t0, rate, sizeof rate), s->link->peer);
out:
    if (fd >= 0)
        close(fd);
    return local ? -2 : r;
}

static int fsend_hello(struct fsend *s, size_t count, uint64_t total)
{
    json_t *m = NULL;
    const char *why;
    int r;
    if (fproto_send(&s->ch, json_pack("{s:i, s:I, s:I}", "files", FPROTO_VERSION, "count",
                                      (json_int_t)count, "bytes", (json_int_t)total)) < 0)
        return EXIT_LOST;
    r = fproto_recv(&s->ch, &m);
    if (r > 0 && json_integer_value(json_object_get(m, "files")) == FPROTO_VERSION) {
        json_decref(m);
        return EXIT_DONE;
    }
    why = r > 0 ? json_string_value(json_object_get(m, "refused")) : NULL;
    if (why) {
        /* receive --from: it does not take files from us; it ends the stream properly */
        LOG_E("%s refused the whole transfer (%zu file%s): %s", s->link->peer, count,
              count == 1 ? "" : "s", why);
        json_decref(m);
        m = NULL;
        s->refused = (unsigned)count;
        r = chan_finish(&s->ch) == 0 ? fproto_recv(&s->ch, &m) : -1;
        json_decref(m);
        if (r != 0)
            LOG_E("ending the transfer to %s: %s", s->link->peer, s->ch.err);
        return r == 0 ? EXIT_PARTIAL : EXIT_LOST;
    }
    json_decref(m);
    if (r < 0 && strstr(s->ch.err, "file protocol"))
        LOG_E("%s answered something other than the file protocol: is it running "
              "`tcpunch receive` (not listen)?",
              s->link->peer);
    else
        LOG_E("%s: %s", s->link->peer, r == 0 ? "ended the connection" : s->ch.err);
    return EXIT_LOST;
}

/* Our end marker and the receiver's, then both final records. */
static int fsend_end(struct fsend *s)
{
    json_t *m = NULL;
    if (fproto_send(&s->ch, json_pack("{s:b}", "end", 1)) < 0 || fproto_recv(&s->ch, &m) <= 0 ||
        !json_is_true(json_object_get(m, "end")) || chan_finish(&s->ch) < 0) {
        json_decref(m);
        return -1;
    }
    json_decref(m);
    return fproto_recv(&s->ch, &m) == 0 ? 0 : -1;
}

static int fsend_all(struct fsend *s, const struct fsend_list *l)
{
    char size[32], rate[32];
    int rc = fsend_hello(s, l->n, l->total);
    if (rc == EXIT_PARTIAL)
        return rc; /* the receiver refused us: nothing was sent */
    for (size_t i = 0; rc == EXIT_DONE && i < l->n; i++) {
        int r = fsend_one(s, &l->v[i]);
        if (r == -2)
            return EXIT_LOCAL;
        if (r < 0) {
            pg_clear(&s->pg);
            LOG_E("sending %s to %s: %s", l->v[i].name, s->link->peer, s->ch.err);
            return EXIT_LOST;
        }
    }
    if (rc != EXIT_DONE)
        return rc;
    if (fsend_end(s) < 0) {
        LOG_E("ending the transfer to %s: %s", s->link->peer, s->ch.err);
        return EXIT_LOST;
    }
    pg_clear(&s->pg);
    LOG_N("%u of %zu file%s sent to %s (%s in %.1f s, %s)", s->ok, l->n, l->n == 1 ? "" : "s",
          s->link->peer, pg_bytes(s->pg.done, size, sizeof size),
          (double)(clk_ms() - s->pg.start_ms) / 1000.0,
          pg_rate(s->pg.done, clk_ms() - s->pg.start_ms, rate, sizeof rate));
    if (s->skipped)
        LOG_E("%u file%s skipped: changed since they were listed", s->skipped,
              s->skipped == 1 ? "" : "s");
    /* a file we did not send is our failure, whatever the receiver did */
    return s->skipped ? EXIT_LOCAL : s->refused ? EXIT_PARTIAL : EXIT_DONE;
}

int fsend_run(const struct peer_opts *o, struct peer_link *link, const struct fsend_list *l)
{
    struct fsend *s = calloc(1, sizeof *s);
    int rc = EXIT_LOCAL;
    if (!s || !(s->buf = malloc(FSEND_BUF))) {
        LOG_E("out of memory");
        goto out;
    }
    if (chan_init(&s->ch, link) < 0) {
        LOG_E("out of memory");
        goto out;
    }
    s->o = o;
    s->link = link;
    pg_init(&s->pg, isatty(STDERR_FILENO) && !o->quiet && !o->json, l->total);
    rc = fsend_all(s, l);
    pg_clear(&s->pg);
    rc = bridge_end(link, rc);
    ev_closed(o, link->peer, s->pg.done, 0, rc);
    chan_free(&s->ch);
out:
    rc = bridge_end(link, rc);
    if (link->fd >= 0)
        close(link->fd);
    link->fd = -1;
    if (s)
        free(s->buf);
    free(s);
    return rc;
}
