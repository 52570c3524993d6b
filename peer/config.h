/* The config file ($TCPUNCH_HOME/config, default ~/.config/tcpunch/config): "key = value"
 * lines that set defaults for the options, so that everyday commands need no flags.
 * Precedence: flags > environment > config file > built-in defaults. */
#ifndef TP_CONFIG_H
#define TP_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>

struct peer_opts;

enum cfg_key {
    CFG_SERVER,
    CFG_ID,
    CFG_PORT,
    CFG_TIMEOUT,
    CFG_DIRECT_TIMEOUT,
    CFG_RELAY,
    CFG_SECRET_FILE,
    CFG_VERBOSE,
    CFG_QUIET,
    CFG_NO_RETRY,
    CFG_DIR,
    CFG_NKEYS
};

enum cfg_from { CFG_FROM_DEFAULT, CFG_FROM_FILE, CFG_FROM_ENV, CFG_FROM_FLAG };

struct cfg {
    char path[PATH_MAX]; /* the config file ("" when there is no home directory) */
    bool read;           /* it existed and was read */
    unsigned char from[CFG_NKEYS];
    /* string values from the file, which the options point into */
    char server[1024]; /* HOST:PORT, or a comma-separated list of them */
    char secret_file[PATH_MAX];
    char dir[PATH_MAX];
};

/* Reads the config file into o (after the built-in defaults, before the environment). A
 * missing file is no error. Returns EXIT_DONE, EXIT_USAGE after printing FILE:LINE and why, or
 * EXIT_LOCAL when the file exists but cannot be read. */
int cfg_load(struct peer_opts *o);

/* Records that the option with this long name (e.g. "timeout", "no-relay") was given as a flag,
 * or, env set, by the environment. */
void cfg_mark(struct peer_opts *o, const char *name, bool env);

/* `tcpunch config`: the settings in effect, each with where it came from, as a config file. */
void cfg_show(const struct peer_opts *o, FILE *out);

#endif
