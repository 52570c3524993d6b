/* The sending side of the file transfer (`tcpunch send PEER FILE...`). */
#ifndef TP_FSEND_H
#define TP_FSEND_H

#include <stddef.h>
#include <stdint.h>

#include "peer/peer.h"

struct fsend_file {
    char *path; /* where we read it */
    char *name; /* what the receiver calls it: relative, '/' separators */
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

/* Sends the files over the link and reports each receiver verdict. Returns EXIT_DONE when every
 * file arrived and was verified, EXIT_PARTIAL when the receiver refused some, or another exit
 * code. */
int fsend_run(const struct peer_opts *o, struct peer_link *link, const struct fsend_list *l);

#endif
