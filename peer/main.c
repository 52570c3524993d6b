/* tcpunch: one small file per command, dispatched from this table. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "peer/commands.h"
#include "peer/options.h"

static const struct {
    const char *name;
    int (*run)(const struct peer_opts *o, int argc, char **argv);
} commands[] = {
    {"listen", cmd_listen},
    {"connect", cmd_connect},
    {"chat", cmd_chat},
    {"direct", cmd_direct},
};

int main(int argc, char **argv)
{
    struct peer_opts o;
    int first = 0;
    int rc = opts_parse(argc, argv, &o, &first);
    if (rc != EXIT_DONE)
        return rc < 0 ? EXIT_DONE : rc;
    /* a peer that vanished must show up as an error code, not kill us */
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(argv[first], "help") == 0) {
        opts_usage(stdout);
        return EXIT_DONE;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[first], commands[i].name) == 0)
            return commands[i].run(&o, argc - first - 1, argv + first + 1);
    fprintf(stderr,
            "tcpunch: unknown command \"%s\" (listen, connect, chat, direct)\n"
            "Try 'tcpunch --help' for more information.\n",
            argv[first]);
    return EXIT_USAGE;
}
