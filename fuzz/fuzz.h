/* The libFuzzer entry point each harness defines. Declared here so the harnesses build with
 * -Wmissing-prototypes, and so fuzz/regress_main.c can drive them without libFuzzer. */
#ifndef TP_FUZZ_H
#define TP_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Optional (weak): a harness whose seeds cannot be written by hand, such as signed handshake
 * lines, writes them into dir; `<harness>_regress --write-seeds DIR` calls it. 0 or -1. */
int fuzz_write_seeds(const char *dir) __attribute__((weak));

/* An invariant of the code under test: abort() so that libFuzzer records the input as a crash
 * and the regression runner fails, in builds with and without sanitizers alike. */
#define FZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
