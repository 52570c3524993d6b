#include "common/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

_Static_assert(AUTH_KEY_BYTES == crypto_auth_hmacsha256_KEYBYTES, "HMAC key size");
_Static_assert(PROTO_ADMIT_BYTES == crypto_auth_hmacsha256_BYTES, "HMAC size");
_Static_assert(AUTH_KEY_BYTES == crypto_hash_sha256_BYTES, "SHA-256 size");

/* Hashes the whole file in chunks; -1 with errno on a read error, else the bytes read (stops
 * counting just past AUTH_SECRET_MAX, so that an oversized file is noticed, not cut). */
static ssize_t auth_hash_fd(int fd, unsigned char key[AUTH_KEY_BYTES])
{
    crypto_hash_sha256_state st;
    unsigned char buf[4096];
    size_t total = 0;
    crypto_hash_sha256_init(&st);
    while (total <= AUTH_SECRET_MAX) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        crypto_hash_sha256_update(&st, buf, (unsigned long long)r);
        total += (size_t)r;
    }
    crypto_hash_sha256_final(&st, key);
    sodium_memzero(buf, sizeof buf);
    sodium_memzero(&st, sizeof st);
    return (ssize_t)total;
}

int auth_secret_load(const char *path, unsigned char key[AUTH_KEY_BYTES], char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0) {
        snprintf(err, errlen, "cannot read the secret file %s: %s", path, strerror(errno));
        return -1;
    }
    n = auth_hash_fd(fd, key);
    if (n < 0)
        snprintf(err, errlen, "cannot read the secret file %s: %s", path, strerror(errno));
    else if (n == 0)
        snprintf(err, errlen, "the secret file %s is empty", path);
    else if (n > AUTH_SECRET_MAX)
        snprintf(err, errlen, "the secret file %s is larger than %d bytes", path, AUTH_SECRET_MAX);
    close(fd);
    if (n > 0 && n <= AUTH_SECRET_MAX)
        return 0;
    sodium_memzero(key, AUTH_KEY_BYTES);
    return -1;
}

void auth_admit(const unsigned char key[AUTH_KEY_BYTES], const unsigned char *nonce,
                unsigned char admit[PROTO_ADMIT_BYTES])
{
    crypto_auth_hmacsha256(admit, nonce, PROTO_NONCE_BYTES, key);
}

bool auth_admit_ok(const unsigned char key[AUTH_KEY_BYTES], const unsigned char *nonce,
                   const unsigned char admit[PROTO_ADMIT_BYTES])
{
    return crypto_auth_hmacsha256_verify(admit, nonce, PROTO_NONCE_BYTES, key) == 0;
}

size_t auth_hello_msg(const unsigned char *nonce, const char *id,
                      unsigned char out[AUTH_HELLO_MSG_MAX])
{
    size_t idlen = strnlen(id, PROTO_MAX_ID);
    memcpy(out, AUTH_HELLO_CONTEXT, sizeof AUTH_HELLO_CONTEXT); /* with its NUL */
    memcpy(out + sizeof AUTH_HELLO_CONTEXT, nonce, PROTO_NONCE_BYTES);
    memcpy(out + sizeof AUTH_HELLO_CONTEXT + PROTO_NONCE_BYTES, id, idlen);
    return sizeof AUTH_HELLO_CONTEXT + PROTO_NONCE_BYTES + idlen;
}
