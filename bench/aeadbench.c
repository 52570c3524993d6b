/* tcpunch-aeadbench: the AEADs libsodium offers, sealing and opening 16 KiB records (the
 * encrypted stream's SEAL_CHUNK), one core, so that the choice of cipher (PROTOCOL.md,
 * "Encrypted stream") rests on figures from this machine. Not a test: it prints MiB/s.
 *
 *   tcpunch-aeadbench [MIB]   (default 1024 MiB per figure)
 *
 * Rows: the stream's secretstream_xchacha20poly1305 (what tcpunch uses), the plain
 * chacha20poly1305_ietf and xchacha20poly1305_ietf constructions, aes256gcm when the CPU has
 * AES-NI and PCLMUL (crypto_aead_aes256gcm_is_available), and memcpy as the floor of a copy.
 * Times are the thread's CPU time, so other load on the machine does not count. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "common/seal.h"

#define AB_REC SEAL_CHUNK

/* CPU time of this thread, not wall time: on a busy machine the figures stay per core-second */
static double ab_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The one-shot AEADs share libsodium's signature, so one loop times them all. */
typedef int (*ab_seal_fn)(unsigned char *c, unsigned long long *clen, const unsigned char *m,
                          unsigned long long mlen, const unsigned char *ad,
                          unsigned long long adlen, const unsigned char *nsec,
                          const unsigned char *npub, const unsigned char *k);
typedef int (*ab_open_fn)(unsigned char *m, unsigned long long *mlen, unsigned char *nsec,
                          const unsigned char *c, unsigned long long clen,
                          const unsigned char *ad, unsigned long long adlen,
                          const unsigned char *npub, const unsigned char *k);

/* A row: a one-shot AEAD (seal/open), or NULL for the stream and memcpy, told by kind. */
enum ab_kind { AB_AEAD, AB_SECRETSTREAM, AB_MEMCPY };
struct ab_row {
    const char *name;
    enum ab_kind kind;
    ab_seal_fn seal;
    ab_open_fn open;
    int (*available)(void); /* NULL: always */
};

/* The stream's records, sealed (and, open, each opened right after: a stream opens a record
 * only once, so its opening is timed as both minus seal). Returns non-zero on a failed open. */
static int ab_stream(bool open, size_t n, unsigned char *pt, unsigned char *ct)
{
    unsigned char key[32], hdr[SEAL_HEADER];
    crypto_secretstream_xchacha20poly1305_state st, rst;
    unsigned long long clen = 0, mlen = 0;
    int bad = 0;

    randombytes_buf(key, sizeof key);
    crypto_secretstream_xchacha20poly1305_init_push(&st, hdr, key);
    crypto_secretstream_xchacha20poly1305_init_pull(&rst, hdr, key);
    for (size_t i = 0; i < n; i++) {
        crypto_secretstream_xchacha20poly1305_push(&st, ct, &clen, pt, AB_REC, NULL, 0, 0);
        if (open)
            bad |= crypto_secretstream_xchacha20poly1305_pull(&rst, pt, &mlen, NULL, ct, clen,
                                                              NULL, 0);
    }
    return bad;
}

/* A one-shot AEAD: seals n records under a nonce each, or opens one record sealed once (the
 * same bytes n times: opening costs the same whatever the nonce). */
static int ab_aead(const struct ab_row *r, bool open, size_t n, unsigned char *pt,
                   unsigned char *ct)
{
    unsigned char key[32], nonce[24] = {0};
    unsigned long long clen = 0, mlen = 0;
    int bad = 0;

    randombytes_buf(key, sizeof key);
    if (open)
        r->seal(ct, &clen, pt, AB_REC, NULL, 0, NULL, nonce, key);
    for (size_t i = 0; i < n; i++) {
        if (open) {
            bad |= r->open(pt, &mlen, NULL, ct, clen, NULL, 0, nonce, key);
        } else {
            nonce[0] = (unsigned char)i; /* a nonce per record, as a real stream would */
            r->seal(ct, &clen, pt, AB_REC, NULL, 0, NULL, nonce, key);
        }
    }
    return bad;
}

/* Seals (open false) or opens n records of AB_REC bytes; returns seconds, -1 on a failed open. */
static double ab_run(const struct ab_row *r, bool open, size_t n, unsigned char *pt,
                     unsigned char *ct)
{
    double t0 = ab_now();
    int bad = 0;

    switch (r->kind) {
    case AB_SECRETSTREAM:
        bad = ab_stream(open, n, pt, ct);
        break;
    case AB_AEAD:
        bad = ab_aead(r, open, n, pt, ct);
        break;
    case AB_MEMCPY:
        for (size_t i = 0; i < n; i++) {
            memcpy(ct, pt, AB_REC);
            pt[i % AB_REC] = ct[(i * 7) % AB_REC]; /* the copy is used: not optimised away */
        }
        break;
    }
    return bad ? -1 : ab_now() - t0;
}

static void ab_print(const struct ab_row *r, size_t n, unsigned char *pt, unsigned char *ct)
{
    double seal, both, open, mib = (double)n * AB_REC / 1048576.0;

    if (r->available && !r->available()) {
        printf("| %s | not available on this CPU | |\n", r->name);
        return;
    }
    seal = ab_run(r, false, n, pt, ct);
    both = ab_run(r, true, n, pt, ct);
    if (both < 0) {
        printf("| %s | open FAILED | |\n", r->name);
        return;
    }
    if (r->kind == AB_MEMCPY) {
        printf("| %s | %.0f | |\n", r->name, mib / seal);
        return;
    }
    open = r->kind == AB_SECRETSTREAM ? both - seal : both;
    printf("| %s | %.0f | %.0f |\n", r->name, mib / seal, open > 0 ? mib / open : 0.0);
}

static const struct ab_row ab_rows[] = {
    {"secretstream_xchacha20poly1305 (tcpunch's stream)", AB_SECRETSTREAM, NULL, NULL, NULL},
    {"chacha20poly1305_ietf", AB_AEAD, crypto_aead_chacha20poly1305_ietf_encrypt,
     crypto_aead_chacha20poly1305_ietf_decrypt, NULL},
    {"xchacha20poly1305_ietf", AB_AEAD, crypto_aead_xchacha20poly1305_ietf_encrypt,
     crypto_aead_xchacha20poly1305_ietf_decrypt, NULL},
    {"aes256gcm (AES-NI)", AB_AEAD, crypto_aead_aes256gcm_encrypt, crypto_aead_aes256gcm_decrypt,
     crypto_aead_aes256gcm_is_available},
    {"memcpy (a copy, for scale)", AB_MEMCPY, NULL, NULL, NULL},
};

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024, n;
    unsigned char *pt, *ct;

    if (sodium_init() < 0 || mib == 0 || mib > 1048576) {
        fprintf(stderr, "usage: tcpunch-aeadbench [MIB] (1..1048576)\n");
        return 2;
    }
    n = mib * 1048576 / AB_REC;
    pt = calloc(1, AB_REC);
    ct = calloc(1, AB_REC + 64);
    if (!pt || !ct)
        return 1;
    printf("%zu records of %d bytes per figure, MiB per CPU-second of one thread, libsodium %s\n\n", n, AB_REC,
           sodium_version_string());
    printf("| AEAD | seal MiB/s | open MiB/s |\n|---|---|---|\n");
    for (size_t i = 0; i < sizeof ab_rows / sizeof ab_rows[0]; i++)
        ab_print(&ab_rows[i], n, pt, ct);
    free(pt);
    free(ct);
    return 0;
}
