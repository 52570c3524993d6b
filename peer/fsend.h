/* The sending side of the file transfer (`tcpunch send PEER FILE...`). */
#ifndef TP_FSEND_H
#define TP_FSEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "peer/exit.h"
#include "peer/link.h"
#include "peer/opts.h"

struct fsend_file {
    char *path; /* where we read it */
    char *name; /* what the receiver calls it: relative, '/' separators */
    /* what the collection saw: the file sent must still be that one (not a link or another
     * file swapped in since, such as a link to ~/.ssh/id_ed25519) */
    dev_t dev;
    ino_t ino;
    uint64_t size;
    bool follow; /* named on the command line: a symbolic link there is the user's choice */
};

struct fsend_list {
    struct fsend_file *v;
    size_t n, cap;
    uint64_t total; /* bytes, as the files were when collected */
};

/* The files to send, from the command line: a regular file goes by its base name, a directory
 * with everything below it (symbolic links and special files inside are skipped, with a
 * warning) as DIRNAME/... . Returns EXIT_DONE, or an exit code after printing why (a missing
 * file, two files with one name), before any connection is made. */
int fsend_collect(struct fsend_list *l, int argc, char **argv);

void fsend_free(struct fsend_list *l);

/* Opens f for reading, never through a symbolic link inside a tree, never blocking on a FIFO,
 * and checks that it is still the regular file the collection saw (device, inode, size).
 * Returns the descriptor with its fstat in *st, or -1 with why (a sentence). */
int fsend_open(const struct fsend_file *f, struct stat *st, char *why, size_t len);

/* Sends the files over the link and reports each receiver verdict. Returns EXIT_DONE when every
 * file arrived and was verified, EXIT_PARTIAL when the receiver refused some, or another exit
 * code. */
int fsend_run(const struct peer_opts *o, struct peer_link *link, const struct fsend_list *l);

#endif
