#ifndef TP_OPTIONS_H
#define TP_OPTIONS_H

#include <stdio.h>

#include "peer/exit.h"
#include "peer/opts.h"

/* Parses options (before or after the command) and the environment into o; leaves the command
 * and its arguments in argv[*first .. argc-1]. Returns EXIT_DONE, EXIT_USAGE after printing why,
 * EXIT_LOCAL when the --secret-file cannot be read, or -1 when --help/--version was handled. */
int opts_parse(int argc, char **argv, struct peer_opts *o, int *first);

/* Checks that a server was given; prints the usual hint if not. */
int opts_need_server(const struct peer_opts *o);

/* Checks a peer id given on the command line. */
int opts_check_peer(const struct peer_opts *o, const char *peer);

/* A public key (base64) or its fingerprint (SHA256:...), as --peer-key takes it, into its
 * fingerprint. Returns 0, or -1 when it is neither. */
int opts_peer_key(const char *v, char *fp, size_t len);

/* An ID[=KEY] entry of option opt (--allow, --from): the id into id (PROTO_MAX_ID + 1 bytes),
 * the fingerprint of KEY (as --peer-key takes it) into fp, "" without one. Returns EXIT_DONE,
 * or EXIT_USAGE after saying what is wrong. */
int opts_peer_entry(const char *opt, const char *arg, char *id, char *fp, size_t fplen);

/* --resume-timeout SEC (whole seconds, 0 to PROTO_RESUME_TIMEOUT_MAX) and --resume-buffer SIZE
 * (K, M, G suffixes; PROTO_RESUME_BUF_MIN to _MAX), as the flags and the config file take
 * them. 0, or -1 when the value is not valid. */
int opts_resume_timeout(const char *s, uint32_t *out);
/* --relay-grace MS (0..PEER_RELAY_GRACE_MAX) or "auto" (MIGRATE_GRACE_AUTO); -1 when bad */
int opts_relay_grace(const char *s, int64_t *out);
int opts_resume_buffer(const char *s, uint64_t *out);

void opts_usage(FILE *out);

/* Prints "tcpunch: <fmt with arg>" and the --help hint; returns EXIT_USAGE. */
int opts_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
