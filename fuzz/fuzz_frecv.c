/* libFuzzer harness for the receiving side of the file transfer (peer/frecv.c, peer/fproto.c,
 * peer/chan.c): `tcpunch receive` run on one end of a socketpair, the harness as the sender on
 * the other. The sender is whoever won the handshake (README: receive without --from takes
 * anyone), so everything it says is hostile: the control lines (JSON), the names, sizes and
 * modes, the file bytes, the checksums.
 *
 * The input's first byte shapes the stream, the rest is the sender's plaintext:
 *   bit 0     --force
 *   bit 1     no final record (the stream just ends)
 *   bits 2-4  the plaintext is sealed into records of 16384 (the sender's size), 1, 7, 64,
 *             512 or 4096 bytes (common/seal.c), so a line or a file body may straddle records
 * The harness seals it with the link's keys, as a sender's chan would.
 *
 * Files land in a fresh directory <tmp>/in. Invariants after each run: nothing appeared next
 * to it (a name got out), no part file (.NAME.tcpunch-part-*) is left anywhere under it, no
 * symbolic link was made, and the status is one that frecv_run documents. */
#include "fuzz/fuzz.h"
#include "common/log.h"
#include "common/seal.h"
#include "peer/frecv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static char fz_top[64], fz_in[80];
static int fz_violations;
static const uint8_t *fz_input; /* the sender's plaintext of this run */
static size_t fz_input_len;

static const size_t fz_chunks[] = {16384, 1, 7, 64, 512, 4096, 16384, 16384};

static void fz_keys(unsigned char *k, unsigned char c)
{
    memset(k, c, SEAL_KEYBYTES);
}

/* The sender's stream: header, records of chunk bytes, the final record unless !final. */
static size_t fz_seal(const uint8_t *plain, size_t n, size_t chunk, bool final,
                      unsigned char *out)
{
    struct seal_tx tx;
    unsigned char key[SEAL_KEYBYTES];
    size_t len = SEAL_HEADER;
    fz_keys(key, 'S');
    seal_tx_init(&tx, key, out);
    for (size_t off = 0; off < n; off += chunk) {
        size_t take = n - off < chunk ? n - off : chunk;
        len += seal_tx_data(&tx, plain + off, take, out + len);
    }
    if (final)
        len += seal_tx_final(&tx, out + len);
    return len;
}

struct fz_sender {
    int fd;
    const unsigned char *wire;
    size_t len;
};

/* Writes the stream, half-closes, then reads the receiver's answers until it closes: the
 * receiver's replies must never fill the socket and stall it. */
static void *fz_sender_run(void *arg)
{
    struct fz_sender *s = arg;
    char sink[4096];
    for (size_t off = 0; off < s->len;) {
        ssize_t w = send(s->fd, s->wire + off, s->len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the receiver gave up and closed: fine */
        off += (size_t)w;
    }
    shutdown(s->fd, SHUT_WR);
    while (recv(s->fd, sink, sizeof sink, 0) > 0)
        ;
    return NULL;
}

/* A part file of the receiver's: ".NAME.tcpunch-part-" and 8 random hex digits. The sender may
 * name a file like that too, but it cannot guess the digits: a name found in its input is its. */
static bool fz_is_part(const char *base)
{
    static const char tag[] = ".tcpunch-part-";
    size_t n = strlen(base), t = sizeof tag - 1;
    if (n < 1 + t + 8 || base[0] != '.' || memcmp(base + n - 8 - t, tag, t) != 0)
        return false;
    for (size_t i = n - 8; i < n; i++)
        if (!strchr("0123456789abcdef", base[i]))
            return false;
    return !memmem(fz_input, fz_input_len, base, n);
}

static int fz_check_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    const char *base = path + ftw->base;
    (void)st;
    if (flag == FTW_SL || flag == FTW_SLN) {
        fprintf(stderr, "symbolic link made: %s\n", path);
        fz_violations++;
    }
    if (fz_is_part(base)) {
        fprintf(stderr, "part file left behind: %s\n", path);
        fz_violations++;
    }
    return 0;
}

static int fz_remove(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    if (ftw->level > 0 && remove(path) != 0)
        FZ_CHECK(0, "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

/* Only `in` may exist in the top directory. */
static void fz_check_top(void)
{
    DIR *d = opendir(fz_top);
    struct dirent *e;
    FZ_CHECK(d != NULL, "%s: %s", fz_top, strerror(errno));
    while ((e = readdir(d)) != NULL)
        FZ_CHECK(strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
                     strcmp(e->d_name, "in") == 0,
                 "a file got out of the receive directory: %s/%s", fz_top, e->d_name);
    closedir(d);
}

/* The directories go with the process (after a clean exit; a crash leaves them to look at). */
static void fz_cleanup(void)
{
    nftw(fz_in, fz_remove, 16, FTW_PHYS | FTW_DEPTH);
    rmdir(fz_in);
    rmdir(fz_top);
}

static void fz_setup(void)
{
    const char *tmp = getenv("TMPDIR");
    FZ_CHECK(sodium_init() >= 0, "sodium_init failed");
    log_init("fuzz_frecv", LOG_SILENT, 0);
    /* tmpfs when there is one: the receiver fsyncs every file */
    if (access("/dev/shm", W_OK) == 0)
        tmp = "/dev/shm";
    snprintf(fz_top, sizeof fz_top, "%s/fuzz_frecv.XXXXXX", tmp ? tmp : "/tmp");
    FZ_CHECK(mkdtemp(fz_top) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(fz_in, sizeof fz_in, "%s/in", fz_top);
    FZ_CHECK(mkdir(fz_in, 0700) == 0, "mkdir %s: %s", fz_in, strerror(errno));
    atexit(fz_cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    static unsigned char wire[SEAL_HEADER + 4096 * (SEAL_OVERHEAD + 1) + SEAL_OVERHEAD];
    static struct peer_opts o;
    struct peer_link link;
    struct fz_sender s;
    pthread_t th;
    int sv[2], dirfd, rc;

    if (!ready) {
        fz_setup();
        o.quiet = true;
        ready = true;
    }
    if (size < 1 || size - 1 > 4096)
        return 0;
    memset(&link, 0, sizeof link);
    snprintf(link.peer, sizeof link.peer, "alice");
    link.encrypted = true;
    fz_keys(link.rx_key, 'S'); /* the sender's tx key */
    fz_keys(link.tx_key, 'R');
    s.wire = wire;
    s.len = fz_seal(data + 1, size - 1, fz_chunks[(data[0] >> 2) & 7], !(data[0] & 2), wire);
    FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s",
             strerror(errno));
    link.fd = sv[0];
    s.fd = sv[1];
    dirfd = open(fz_in, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    FZ_CHECK(dirfd >= 0, "%s: %s", fz_in, strerror(errno));
    FZ_CHECK(pthread_create(&th, NULL, fz_sender_run, &s) == 0, "pthread_create");
    rc = frecv_run(&o, &link, dirfd, data[0] & 1); /* closes link.fd */
    pthread_join(th, NULL);
    close(sv[1]);
    close(dirfd);
    FZ_CHECK(rc == EXIT_DONE || rc == EXIT_PARTIAL || rc == EXIT_LOST, "frecv_run returned %d",
             rc);
    fz_check_top();
    fz_input = data + 1;
    fz_input_len = size - 1;
    fz_violations = 0;
    nftw(fz_in, fz_check_entry, 16, FTW_PHYS);
    FZ_CHECK(fz_violations == 0, "%d violation(s) in the receive directory", fz_violations);
    nftw(fz_in, fz_remove, 16, FTW_PHYS | FTW_DEPTH);
    return 0;
}

/* `fuzz_frecv_regress --write-seeds DIR`: whole transfers with genuine checksums (a fuzzer
 * cannot find BLAKE2b sums by itself). A file the receiver refuses at its header gets no body,
 * as the sender does it. */
struct fz_file {
    const char *name, *body;
    bool refused;
};

static int fz_seed(const char *dir, const char *name, unsigned char mode,
                   const struct fz_file *files, int nfiles)
{
    char path[1024];
    unsigned long long total = 0;
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!(f = fopen(path, "wb")))
        return -1;
    fputc(mode, f);
    for (int i = 0; i < nfiles; i++)
        total += strlen(files[i].body);
    fprintf(f, "{\"files\":1,\"bytes\":%llu}\n", total);
    for (int i = 0; i < nfiles; i++) {
        unsigned char sum[32];
        char hex[65];
        size_t n = strlen(files[i].body);
        fprintf(f, "{\"name\":\"%s\",\"size\":%zu,\"mode\":420}\n", files[i].name, n);
        if (files[i].refused)
            continue;
        crypto_generichash(sum, sizeof sum, (const unsigned char *)files[i].body, n, NULL, 0);
        sodium_bin2hex(hex, sizeof hex, sum, sizeof sum);
        fwrite(files[i].body, 1, n, f);
        fprintf(f, "{\"blake2b\":\"%s\"}\n", hex);
    }
    fputs("{\"end\":true}\n", f);
    if (fclose(f) != 0)
        return -1;
    printf("wrote %s\n", path);
    return 0;
}

int fuzz_write_seeds(const char *dir)
{
    static const struct fz_file one[] = {{"a.txt", "hello\n", false}};
    static const struct fz_file nested[] = {{"d/e/f.bin", "bin\x01\x02\n{\"x\":1}\n", false},
                                            {"d/g", "", false}};
    static const struct fz_file twice[] = {{"same", "first", false}, {"same", "second", true}};
    static const struct fz_file twice_force[] = {{"same", "first", false},
                                                 {"same", "second", false}};
    static const struct fz_file hostile[] = {
        {"../escape", "x", true}, {"/abs", "y", true}, {"a/../b", "y", true}, {"ok", "z", false}};
    if (sodium_init() < 0)
        return -1;
    return fz_seed(dir, "one-file", 0, one, 1) || fz_seed(dir, "one-file-bytewise", 1 << 2, one, 1) ||
                   fz_seed(dir, "nested-records7", 2 << 2, nested, 2) ||
                   fz_seed(dir, "same-name", 0, twice, 2) ||
                   fz_seed(dir, "same-name-force", 1, twice_force, 2) ||
                   fz_seed(dir, "hostile-names", 3 << 2, hostile, 4) ||
                   fz_seed(dir, "no-final", 2, one, 1)
               ? -1
               : 0;
}
