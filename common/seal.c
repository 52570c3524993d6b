#include "common/seal.h"

#include <string.h>

void seal_tx_init(struct seal_tx *t, const unsigned char *key, unsigned char *header)
{
    crypto_secretstream_xchacha20poly1305_init_push(&t->st, header, key);
}

size_t seal_tx_size(size_t n)
{
    return n + (n + SEAL_CHUNK - 1) / SEAL_CHUNK * SEAL_OVERHEAD;
}

static size_t seal_record(struct seal_tx *t, const unsigned char *plain, size_t n,
                          unsigned char tag, unsigned char *out)
{
    unsigned long long clen = 0;
    crypto_secretstream_xchacha20poly1305_push(&t->st, out + 2, &clen, plain, n, NULL, 0, tag);
    out[0] = (unsigned char)(clen >> 8);
    out[1] = (unsigned char)clen;
    return (size_t)clen + 2;
}

size_t seal_tx_data(struct seal_tx *t, const void *plain, size_t n, unsigned char *out)
{
    const unsigned char *p = plain;
    size_t off = 0;
    while (n > 0) {
        size_t k = n < SEAL_CHUNK ? n : SEAL_CHUNK;
        off += seal_record(t, p, k, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE, out + off);
        p += k;
        n -= k;
    }
    return off;
}

size_t seal_tx_final(struct seal_tx *t, unsigned char *out)
{
    return seal_record(t, NULL, 0, crypto_secretstream_xchacha20poly1305_TAG_FINAL, out);
}

size_t seal_tx_ctl(struct seal_tx *t, const void *plain, size_t n, unsigned char *out)
{
    if (n == 0 || n > SEAL_CHUNK)
        return 0;
    return seal_record(t, plain, n, crypto_secretstream_xchacha20poly1305_TAG_PUSH, out);
}

void seal_rx_init(struct seal_rx *r, const unsigned char *key)
{
    memset(r, 0, sizeof *r);
    memcpy(r->key, key, sizeof r->key);
}

void seal_rx_init_session(struct seal_rx *r, const unsigned char *key)
{
    seal_rx_init(r, key);
    r->session = true;
}

enum seal_status seal_rx_next(struct seal_rx *r, const unsigned char *in, size_t avail,
                              size_t *used, unsigned char *plain, size_t *plen)
{
    size_t off = 0, clen;
    unsigned long long mlen = 0;
    unsigned char tag = 0;

    *used = 0;
    *plen = 0;
    if (r->final)
        return avail ? SEAL_AFTER_FINAL : SEAL_NEED;
    if (!r->header) {
        if (avail < SEAL_HEADER)
            return SEAL_NEED;
        if (crypto_secretstream_xchacha20poly1305_init_pull(&r->st, in, r->key) != 0)
            return SEAL_BAD_AUTH;
        sodium_memzero(r->key, sizeof r->key);
        r->header = true;
        off = SEAL_HEADER;
        /* the header alone counts as consumed, so the caller can drop it */
        *used = off;
    }
    if (avail - off < 2)
        return SEAL_NEED;
    clen = (size_t)in[off] << 8 | in[off + 1];
    if (clen < SEAL_ABYTES || clen > SEAL_CHUNK + SEAL_ABYTES)
        return SEAL_BAD_LENGTH;
    if (avail - off - 2 < clen)
        return SEAL_NEED;
    if (crypto_secretstream_xchacha20poly1305_pull(&r->st, plain, &mlen, &tag, in + off + 2, clen,
                                                   NULL, 0) != 0)
        return SEAL_BAD_AUTH;
    *used = off + 2 + clen;
    *plen = (size_t)mlen;
    if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) {
        r->final = true;
        return SEAL_FINAL;
    }
    if (!r->session) /* legacy: every other tag is data, as it always was */
        return SEAL_DATA;
    if (tag == crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
        return SEAL_DATA;
    if (tag == crypto_secretstream_xchacha20poly1305_TAG_PUSH)
        return SEAL_CTL;
    /* authentic, but not ours to release: wipe it so no caller can use it by mistake */
    sodium_memzero(plain, *plen);
    *plen = 0;
    return SEAL_BAD_TAG;
}

const char *seal_strerror(enum seal_status s)
{
    switch (s) {
    case SEAL_BAD_AUTH:
        return "authentication failed: data was modified in transit";
    case SEAL_BAD_LENGTH:
        return "authentication failed: data was modified in transit (bad record length)";
    case SEAL_BAD_TAG:
        return "protocol error: a record of an unknown kind";
    case SEAL_AFTER_FINAL:
        return "authentication failed: data was modified in transit (bytes after the final "
               "record)";
    default:
        return "no error";
    }
}
