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

enum ab_kind { AB_SECRETSTREAM, AB_CHACHA_IETF, AB_XCHACHA_IETF, AB_AESGCM, AB_MEMCPY };

/* Seals (open false) or opens n records of AB_REC bytes; returns seconds, -1 on a failed open. */
static double ab_run(enum ab_kind k, bool open, size_t n, unsigned char *pt, unsigned char *ct)
{
    unsigned char key[32], nonce[24] = {0}, hdr[SEAL_HEADER];
    crypto_secretstream_xchacha20poly1305_state st, rst;
    unsigned long long clen = 0, mlen = 0;
    double t0;
    int bad = 0;

    randombytes_buf(key, sizeof key);
    crypto_secretstream_xchacha20poly1305_init_push(&st, hdr, key);
    crypto_secretstream_xchacha20poly1305_init_pull(&rst, hdr, key);
    /* the ciphertext to open: one record sealed once (a stream opens every record anew,
     * so its opening is timed on a fresh seal each time, sealing taken out below) */
    if (open && k != AB_SECRETSTREAM && k != AB_MEMCPY) {
        if (k == AB_CHACHA_IETF)
            crypto_aead_chacha20poly1305_ietf_encrypt(ct, &clen, pt, AB_REC, NULL, 0, NULL, nonce,
                                                      key);
        else if (k == AB_XCHACHA_IETF)
            crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &clen, pt, AB_REC, NULL, 0, NULL, nonce,
                                                       key);
        else
            crypto_aead_aes256gcm_encrypt(ct, &clen, pt, AB_REC, NULL, 0, NULL, nonce, key);
    }
    t0 = ab_now();
    for (size_t i = 0; i < n; i++) {
        nonce[0] = (unsigned char)i; /* a nonce per record, as a real stream would */
        switch (k) {
        case AB_SECRETSTREAM:
            crypto_secretstream_xchacha20poly1305_push(&st, ct, &clen, pt, AB_REC, NULL, 0, 0);
            if (open)
                bad |= crypto_secretstream_xchacha20poly1305_pull(&rst, pt, &mlen, NULL, ct, clen,
                                                                  NULL, 0);
            break;
        case AB_CHACHA_IETF:
            if (open)
                bad |= crypto_aead_chacha20poly1305_ietf_decrypt(pt, &mlen, NULL, ct, clen, NULL,
                                                                 0, (nonce[0] = 0, nonce), key);
            else
                crypto_aead_chacha20poly1305_ietf_encrypt(ct, &clen, pt, AB_REC, NULL, 0, NULL,
                                                          nonce, key);
            break;
        case AB_XCHACHA_IETF:
            if (open)
                bad |= crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &mlen, NULL, ct, clen, NULL,
                                                                  0, (nonce[0] = 0, nonce), key);
            else
                crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &clen, pt, AB_REC, NULL, 0, NULL,
                                                           nonce, key);
            break;
        case AB_AESGCM:
            if (open)
                bad |= crypto_aead_aes256gcm_decrypt(pt, &mlen, NULL, ct, clen, NULL, 0,
                                                     (nonce[0] = 0, nonce), key);
            else
                crypto_aead_aes256gcm_encrypt(ct, &clen, pt, AB_REC, NULL, 0, NULL, nonce, key);
            break;
        case AB_MEMCPY:
            memcpy(ct, pt, AB_REC);
            pt[i % AB_REC] = ct[(i * 7) % AB_REC]; /* the copy is used: not optimised away */
            break;
        }
    }
    return bad ? -1 : ab_now() - t0;
}

static void ab_row(const char *name, enum ab_kind k, size_t n, unsigned char *pt, unsigned char *ct)
{
    double seal = ab_run(k, false, n, pt, ct), both = ab_run(k, true, n, pt, ct), open;
    double mib = (double)n * AB_REC / 1048576.0;

    if (both < 0) {
        printf("| %s | open FAILED | |\n", name);
        return;
    }
    /* a secretstream record can only be opened once, fresh: its opening is both minus seal */
    open = k == AB_SECRETSTREAM ? both - seal : both;
    if (k == AB_MEMCPY) {
        printf("| %s | %.0f | |\n", name, mib / seal);
        return;
    }
    printf("| %s | %.0f | %.0f |\n", name, mib / seal, open > 0 ? mib / open : 0.0);
}

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
    ab_row("secretstream_xchacha20poly1305 (tcpunch's stream)", AB_SECRETSTREAM, n, pt, ct);
    ab_row("chacha20poly1305_ietf", AB_CHACHA_IETF, n, pt, ct);
    ab_row("xchacha20poly1305_ietf", AB_XCHACHA_IETF, n, pt, ct);
    if (crypto_aead_aes256gcm_is_available())
        ab_row("aes256gcm (AES-NI)", AB_AESGCM, n, pt, ct);
    else
        printf("| aes256gcm | not available on this CPU | |\n");
    ab_row("memcpy (a copy, for scale)", AB_MEMCPY, n, pt, ct);
    free(pt);
    free(ct);
    return 0;
}
