/* Byte counts as people write them on a command line: "1G", "512K", "0". */
#ifndef TP_BYTES_H
#define TP_BYTES_H

#include <stdint.h>

/* Parses decimal digits with an optional unit letter from units (case-insensitive; the i-th
 * letter is 1024^(i+1)), e.g. units "KMG". Returns 0 with *out set, or -1 for anything else:
 * an empty or signed number, another suffix, trailing text, or a value over 2^64-1. */
int bytes_parse(const char *s, const char *units, uint64_t *out);

#endif
