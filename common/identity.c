#include "common/identity.h"
#include "common/sock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ID_SK_B64_LEN 88 /* 64 bytes, padded */

int id_b64_encode(const void *bin, size_t n, char *out, size_t len)
{
    if (len < sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL))
        return -1;
    sodium_bin2base64(out, len, bin, n, sodium_base64_VARIANT_ORIGINAL);
    return 0;
}

int id_b64_decode(const char *b64, void *bin, size_t max, size_t want)
{
    size_t n = 0;
    const char *end = NULL;
    size_t slen = strlen(b64);
    if (sodium_base642bin(bin, max, b64, slen, NULL, &n, &end, sodium_base64_VARIANT_ORIGINAL) !=
            0 ||
        end != b64 + slen || (want && n != want))
        return -1;
    return (int)n;
}

int id_pk_encode(const unsigned char *pk, char *out, size_t len)
{
    return id_b64_encode(pk, crypto_sign_PUBLICKEYBYTES, out, len);
}

int id_pk_decode(const char *b64, unsigned char *pk)
{
    /* canonical length only: the same key always has the same text in known_peers */
    if (strlen(b64) != ID_PK_B64_LEN)
        return -1;
    return id_b64_decode(b64, pk, crypto_sign_PUBLICKEYBYTES, crypto_sign_PUBLICKEYBYTES) < 0 ? -1
                                                                                              : 0;
}

void id_fingerprint(const unsigned char *pk, char *out, size_t len)
{
    unsigned char h[crypto_hash_sha256_BYTES];
    char b64[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES,
                                       sodium_base64_VARIANT_ORIGINAL_NO_PADDING)];
    crypto_hash_sha256(h, pk, crypto_sign_PUBLICKEYBYTES);
    sodium_bin2base64(b64, sizeof b64, h, sizeof h, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    snprintf(out, len, "SHA256:%s", b64);
}

void id_sign(const struct identity *id, const void *msg, size_t len, unsigned char *sig)
{
    crypto_sign_detached(sig, NULL, msg, len, id->sk);
}

bool id_verify(const unsigned char *pk, const void *msg, size_t len, const unsigned char *sig)
{
    return crypto_sign_verify_detached(sig, msg, len, pk) == 0;
}

int id_home(const char *home, char *out, size_t len, char *err, size_t errlen)
{
    const char *env = getenv("TCPUNCH_HOME");
    const char *user = getenv("HOME");
    int n;
    if (home && home[0])
        n = snprintf(out, len, "%s", home);
    else if (env && env[0])
        n = snprintf(out, len, "%s", env);
    else {
        if (!user || !user[0]) {
            struct passwd *pw = getpwuid(getuid());
            user = pw ? pw->pw_dir : NULL;
        }
        if (!user) {
            snprintf(err, errlen, "no home directory: set TCPUNCH_HOME");
            return -1;
        }
        n = snprintf(out, len, "%s/.config/tcpunch", user);
    }
    if (n < 0 || (size_t)n >= len) {
        snprintf(err, errlen, "the tcpunch home directory path is too long");
        return -1;
    }
    return 0;
}

/* mkdir -p, every directory it makes private: the last one holds the secret key, and a
 * missing ~/.config is the user's own. */
static int id_mkdirs(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    size_t n = strlen(dir);
    if (n >= sizeof path) {
        snprintf(err, errlen, "path too long: %s", dir);
        return -1;
    }
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
            return -1;
        }
        path[i] = saved;
    }
    return 0;
}

static int id_path(const char *dir, const char *name, char *out, size_t len, char *err,
                   size_t errlen)
{
    int n = snprintf(out, len, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= len) {
        snprintf(err, errlen, "path too long: %s/%s", dir, name);
        return -1;
    }
    return 0;
}

/* Writes text to a fresh temporary file next to final, mode mode, synced. */
static int id_write_temp(const char *final, const char *text, mode_t mode, char *tmp, size_t tmplen,
                         char *err, size_t errlen)
{
    int fd;
    if (snprintf(tmp, tmplen, "%s.tmp.XXXXXX", final) >= (int)tmplen) {
        snprintf(err, errlen, "path too long: %s", final);
        return -1;
    }
    if ((fd = mkstemp(tmp)) < 0) {
        snprintf(err, errlen, "cannot create a file next to %s: %s", final, strerror(errno));
        return -1;
    }
    if (fchmod(fd, mode) < 0 || sk_write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    return 0;
}

/* Replaces path with text atomically (readers see the old or the new file, never a part). */
static int id_replace(const char *path, const char *text, mode_t mode, char *err, size_t errlen)
{
    char tmp[PATH_MAX + 16];
    if (id_write_temp(path, text, mode, tmp, sizeof tmp, err, errlen) < 0)
        return -1;
    if (rename(tmp, path) < 0) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Creates path with text unless it exists: 1 created, 0 someone else was first, -1 error.
 * link() rather than rename() so that two first runs at once cannot replace each other's key
 * after one of them has already used it. */
static int id_create_new(const char *path, const char *text, char *err, size_t errlen)
{
    char tmp[PATH_MAX + 16];
    int rc = 1;
    if (id_write_temp(path, text, 0600, tmp, sizeof tmp, err, errlen) < 0)
        return -1;
    if (link(tmp, path) < 0) {
        if (errno == EEXIST) {
            rc = 0;
        } else if (rename(tmp, path) < 0) { /* a file system without hard links */
            snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
            rc = -1;
        }
    }
    unlink(tmp);
    return rc;
}

static int id_read_secret(const char *path, char *text, size_t len, char *err, size_t errlen)
{
    struct stat st;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 1;
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_mode & 077) {
        snprintf(err, errlen,
                 "UNPROTECTED PRIVATE KEY FILE: permissions %04o for '%s' are too open; the "
                 "secret key must not be accessible by others. Fix it with: chmod 600 '%s'",
                 (unsigned)(st.st_mode & 07777), path, path);
        close(fd);
        return -1;
    }
    n = read(fd, text, len - 1);
    close(fd);
    if (n < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    text[n] = '\0';
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        text[--n] = '\0';
    return 0;
}

/* The secret key must decode and be a consistent Ed25519 key pair. */
static int id_parse_secret(const char *text, const char *path, struct identity *out, char *err,
                           size_t errlen)
{
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    unsigned char seed[crypto_sign_SEEDBYTES];
    int rc = -1;
    if (strlen(text) != ID_SK_B64_LEN ||
        id_b64_decode(text, out->sk, sizeof out->sk, sizeof out->sk) < 0) {
        snprintf(err, errlen, "%s is not a tcpunch secret key (one line of base64)", path);
        goto out;
    }
    crypto_sign_ed25519_sk_to_seed(seed, out->sk);
    crypto_sign_seed_keypair(pk, sk, seed);
    if (sodium_memcmp(sk, out->sk, sizeof sk) != 0) {
        snprintf(err, errlen, "%s is damaged: its public half does not match the secret one", path);
        goto out;
    }
    memcpy(out->pk, pk, sizeof pk);
    rc = 0;
out:
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(sk, sizeof sk);
    return rc;
}

/* identity.pub is for people (and tcpunch id); rewritten whenever it does not match. */
static int id_sync_pub(const char *dir, const struct identity *id, char *err, size_t errlen)
{
    char path[PATH_MAX], want[ID_PK_B64_SIZE + 1], have[ID_PK_B64_SIZE + 8] = "";
    FILE *f;
    if (id_path(dir, "identity.pub", path, sizeof path, err, errlen) < 0)
        return -1;
    id_pk_encode(id->pk, want, sizeof want);
    strcat(want, "\n");
    if ((f = fopen(path, "r"))) {
        size_t n = fread(have, 1, sizeof have - 1, f);
        have[n] = '\0';
        fclose(f);
        if (strcmp(have, want) == 0)
            return 0;
    }
    return id_replace(path, want, 0644, err, errlen);
}

static int id_generate(const char *path, char *err, size_t errlen)
{
    struct identity fresh;
    char text[ID_SK_B64_LEN + 2];
    int rc;
    crypto_sign_keypair(fresh.pk, fresh.sk);
    id_b64_encode(fresh.sk, sizeof fresh.sk, text, sizeof text - 1);
    strcat(text, "\n");
    rc = id_create_new(path, text, err, errlen);
    sodium_memzero(&fresh, sizeof fresh);
    sodium_memzero(text, sizeof text);
    return rc;
}

int id_load_or_create(const char *home, struct identity *out, bool *created, char *err,
                      size_t errlen)
{
    char dir[PATH_MAX], path[PATH_MAX], text[256];
    int rc = -1, r;

    *created = false;
    if (id_home(home, dir, sizeof dir, err, errlen) < 0 ||
        id_path(dir, "identity", path, sizeof path, err, errlen) < 0)
        return -1;
    r = id_read_secret(path, text, sizeof text, err, errlen);
    if (r > 0) {
        if (id_mkdirs(dir, err, errlen) < 0 || (r = id_generate(path, err, errlen)) < 0)
            goto out;
        *created = r == 1;
        r = id_read_secret(path, text, sizeof text, err, errlen);
    }
    if (r != 0) {
        if (r > 0)
            snprintf(err, errlen, "%s vanished while it was being created", path);
        goto out;
    }
    if (id_parse_secret(text, path, out, err, errlen) < 0 || id_sync_pub(dir, out, err, errlen) < 0)
        goto out;
    rc = 0;
out:
    sodium_memzero(text, sizeof text);
    if (rc < 0)
        sodium_memzero(out, sizeof *out);
    return rc;
}
