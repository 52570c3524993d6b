#include "proto/auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdint.h>
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

/* One field of the admit input: its length as two bytes, big-endian, then its bytes. Every
 * field is length-prefixed, so no two different messages encode to the same bytes. */
static void auth_field(crypto_auth_hmacsha256_state *st, const void *data, size_t len)
{
    unsigned char n[2] = {(unsigned char)(len >> 8), (unsigned char)len};
    crypto_auth_hmacsha256_update(st, n, sizeof n);
    if (len)
        crypto_auth_hmacsha256_update(st, data, len);
}

static void auth_str(crypto_auth_hmacsha256_state *st, const char *s, size_t max)
{
    auth_field(st, s, strnlen(s, max));
}

/* An endpoint as it was parsed: 4 (IPv4: 4 address bytes) or 6 (bracketed: 16 bytes), then the
 * port, big-endian. Binary, so that two spellings of one address give one encoding. */
static void auth_endpoint(crypto_auth_hmacsha256_state *st, const struct sockaddr_storage *ss)
{
    unsigned char b[1 + 16 + 2];
    size_t n;
    uint16_t port;
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ss;
        b[0] = 6;
        memcpy(b + 1, &a6->sin6_addr, 16);
        port = ntohs(a6->sin6_port);
        n = 17;
    } else {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)ss;
        b[0] = 4;
        memcpy(b + 1, &a4->sin_addr, 4);
        port = ntohs(a4->sin_port);
        n = 5;
    }
    b[n] = (unsigned char)(port >> 8);
    b[n + 1] = (unsigned char)port;
    auth_field(st, b, n + 2);
}

/* hello.features and hello.replace (PROTOCOL.md section 18), each only when present, after
 * birthday, for the same reason: a name, then the PROTO_FEAT_* bits as four bytes big-endian
 * (the bits, not the names: the server checks what it decoded, and unknown names are not
 * kept); replace is the name alone. */
static void auth_session_fields(crypto_auth_hmacsha256_state *st, const struct proto_msg *m)
{
    uint32_t f = m->u.hello.features & PROTO_FEAT_KNOWN; /* as proto_encode writes them */
    if (f) {
        unsigned char b[4] = {(unsigned char)(f >> 24), (unsigned char)(f >> 16),
                              (unsigned char)(f >> 8), (unsigned char)f};
        auth_str(st, "features", 16);
        auth_field(st, b, sizeof b);
    }
    if (m->u.hello.replace)
        auth_str(st, "replace", 16);
}

static void auth_hello_fields(crypto_auth_hmacsha256_state *st, const struct proto_msg *m)
{
    unsigned char aux = m->u.hello.aux ? 1 : 0, count = (unsigned char)m->u.hello.endpoints.n;
    auth_str(st, m->u.hello.id, PROTO_MAX_ID);
    auth_field(st, m->u.hello.key, m->u.hello.has_key ? PROTO_KEY_BYTES : 0);
    auth_str(st, proto_path_name(m->u.hello.path), 16);
    auth_field(st, &aux, 1);
    auth_field(st, &count, 1);
    for (int i = 0; i < m->u.hello.endpoints.n; i++)
        auth_endpoint(st, &m->u.hello.endpoints.ep[i]);
    /* hello.birthday, only when present: without it the input is what it was before the
     * member existed, so that older peers and servers agree on the admit. With it, a name and
     * k, m as two bytes each, big-endian (both are below 65536). */
    if (m->u.hello.birthday.has) {
        unsigned k = (unsigned)m->u.hello.birthday.k & 0xffffu;
        unsigned mm = (unsigned)m->u.hello.birthday.m & 0xffffu;
        unsigned char b[4] = {(unsigned char)(k >> 8), (unsigned char)k, (unsigned char)(mm >> 8),
                              (unsigned char)mm};
        auth_str(st, "birthday", 16);
        auth_field(st, b, sizeof b);
    }
    auth_session_fields(st, m);
}

bool auth_admit(const unsigned char key[AUTH_KEY_BYTES], const unsigned char *nonce,
                const struct proto_msg *m, unsigned char admit[PROTO_ADMIT_BYTES])
{
    crypto_auth_hmacsha256_state st;
    if (m->type != PROTO_HELLO && m->type != PROTO_RELAY && m->type != PROTO_PROBE)
        return false;
    crypto_auth_hmacsha256_init(&st, key, AUTH_KEY_BYTES);
    auth_str(&st, AUTH_ADMIT_CONTEXT, sizeof AUTH_ADMIT_CONTEXT);
    auth_str(&st, proto_type_name(m->type), 16);
    auth_field(&st, nonce, PROTO_NONCE_BYTES);
    if (m->type == PROTO_HELLO) {
        auth_hello_fields(&st, m);
    } else if (m->type == PROTO_RELAY) {
        auth_str(&st, m->u.relay.session, PROTO_SESSION_LEN);
        auth_str(&st, m->u.relay.token, PROTO_TOKEN_LEN);
    } else {
        auth_str(&st, m->u.probe.token, PROTO_TOKEN_LEN); /* "" without a token */
    }
    crypto_auth_hmacsha256_final(&st, admit);
    sodium_memzero(&st, sizeof st);
    return true;
}

bool auth_admit_ok(const unsigned char key[AUTH_KEY_BYTES], const unsigned char *nonce,
                   const struct proto_msg *m)
{
    unsigned char want[PROTO_ADMIT_BYTES];
    const unsigned char *got = m->type == PROTO_HELLO && m->u.hello.has_admit ? m->u.hello.admit
                               : m->type == PROTO_RELAY && m->u.relay.has_admit ? m->u.relay.admit
                               : m->type == PROTO_PROBE && m->u.probe.has_admit ? m->u.probe.admit
                                                                                : NULL;
    bool ok = got && auth_admit(key, nonce, m, want) &&
              sodium_memcmp(want, got, PROTO_ADMIT_BYTES) == 0;
    sodium_memzero(want, sizeof want);
    return ok;
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
