/* The receiving side of the file transfer (`tcpunch receive`): every name is checked, every
 * file lands under the directory only, under its final name only once verified. */
#ifndef TP_FRECV_H
#define TP_FRECV_H

#include <stdbool.h>

#include "peer/exit.h"
#include "peer/link.h"
#include "peer/opts.h"

/* Opens the directory files go to (before any connection, so that a typo fails fast).
 * Returns the descriptor, or -1 after printing why. */
int frecv_open_dir(const char *dir);

/* Receives files into dirfd until the sender's end marker. force: replace existing regular
 * files; o->dotfiles: take names with a component starting with '.'; o->max_files and
 * o->max_bytes (0: none) bound the announced totals, and so does the free space of dirfd's file
 * system less a reserve; a sender that goes beyond what it announced ends the transfer.
 * Returns EXIT_DONE when every file was stored, EXIT_PARTIAL when some (or the whole transfer)
 * were refused, EXIT_LOST when the connection failed or stalled (the file in progress is
 * removed). */
int frecv_run(const struct peer_opts *o, struct peer_link *link, int dirfd, bool force);

/* Refuses the whole transfer of a sender we do not take files from (receive --from): reads
 * its opening line, answers {"refused": why} and ends the stream properly, waiting a few
 * seconds at most; nothing is written. Returns EXIT_PARTIAL when the sender took the refusal,
 * EXIT_LOST when the connection failed first. Closes link->fd. */
int frecv_refuse(const struct peer_opts *o, struct peer_link *link, const char *why);

#endif
