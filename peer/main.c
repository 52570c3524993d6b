/* tcpunch: one small file per command, dispatched from this table. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "peer/commands.h"
#include "peer/events.h"
#include "peer/options.h"

static const struct {
    const char *name;
    int (*run)(const struct peer_opts *o, int argc, char **argv);
} commands[] = {
    {"listen", cmd_listen}, {"connect", cmd_connect},    {"chat", cmd_chat},
    {"direct", cmd_direct}, {"nat-check", cmd_natcheck},
};

static int dispatch(const struct peer_opts *o, int argc, char **argv, int first)
{
    /* a peer that vanished must show up as an error code, not kill us */
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(argv[first], "help") == 0) {
        opts_usage(stdout);
        return EXIT_DONE;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[first], commands[i].name) == 0)
            return commands[i].run(o, argc - first - 1, argv + first + 1);
    return opts_bad("unknown command \"%s\" (listen, connect, chat, direct, nat-check)",
                    argv[first]);
}

/* Exit statuses 1-6 are failures; 7-9 are nat-check verdicts, reported on stdout. */
static bool failed(int rc)
{
    return rc >= EXIT_USAGE && rc <= EXIT_LOCAL;
}

int main(int argc, char **argv)
{
    struct peer_opts o;
    int first = 0;
    int rc = opts_parse(argc, argv, &o, &first);

    if (rc < 0)
        return EXIT_DONE; /* --help or --version */
    if (rc == EXIT_DONE)
        rc = dispatch(&o, argc, argv, first);
    /* --json: the error the run logged first becomes the last line, with the exit status */
    if (log_json() && failed(rc))
        ev_error(rc, log_first_error());
    return rc;
}
