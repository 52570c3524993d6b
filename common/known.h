/* known_peers: the peer keys we trust, one "NAME BASE64-KEY" line each, like ssh's known_hosts
 * (trust on first use; a changed key is refused until the user fixes the file). */
#ifndef TP_KNOWN_H
#define TP_KNOWN_H

#include <stddef.h>

#include <sodium.h>

#define KP_MAX_KEYS 8 /* keys per name that a lookup keeps */

struct kp_entry {
    int line; /* 1-based line number in the file */
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
};

/* The keys recorded for name in path, in file order: fills up to max entries and returns how
 * many lines name has (0 when none, or when the file does not exist); -1 with err when the file
 * cannot be read; -2 with err ("path:line: what") when a line that could be one for name cannot
 * be read as a pin — malformed, over-long, holding a NUL, or the max+1st key for name —, since
 * skipping it would trust the next key (fail closed). Comment and blank lines are skipped, and
 * malformed lines that clearly name another peer. */
int kp_find(const char *path, const char *name, struct kp_entry *out, int max, char *err,
            size_t errlen);

/* Index of the entry holding pk, or -1. */
int kp_match(const struct kp_entry *e, int n, const unsigned char *pk);

/* Appends "name base64(pk)" to path (created 0600 with a comment header). 0 or -1 with err. */
int kp_add(const char *path, const char *name, const unsigned char *pk, char *err, size_t errlen);

/* A name known_peers can hold: 1-255 printable characters, no white space, not starting '#'. */
int kp_valid_name(const char *name);

#endif
