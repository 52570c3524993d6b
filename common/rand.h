#ifndef TP_RAND_H
#define TP_RAND_H
#include <stddef.h>
/* Fills out with 2*nbytes lowercase hex digits from the kernel CSPRNG, NUL-terminated.
 * out must hold 2*nbytes+1. Returns 0 or -1. */
int rnd_hex(char *out, size_t nbytes);
#endif
