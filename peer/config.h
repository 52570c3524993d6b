/* The config file ($TCPUNCH_HOME/config, default ~/.config/tcpunch/config): "key = value"
 * lines that set defaults for the options, so that everyday commands need no flags.
 * Precedence: flags > environment > config file > built-in defaults. */
#ifndef TP_CONFIG_H
#define TP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "peer/opts.h"

/* Reads the config file into o (after the built-in defaults, before the environment). A
 * missing file is no error. Returns EXIT_DONE, EXIT_USAGE with "FILE:LINE: why" in err (for the
 * caller to print as a usage error), or EXIT_LOCAL after printing why the file that exists
 * cannot be read. */
int cfg_load(struct peer_opts *o, char *err, size_t errlen);

/* Records that the option with this long name (e.g. "timeout", "no-relay") was given as a flag,
 * or, env set, by the environment. */
void cfg_mark(struct peer_opts *o, const char *name, bool env);

/* `tcpunch config`: the settings in effect, each with where it came from, as a config file. */
void cfg_show(const struct peer_opts *o, FILE *out);

#endif
