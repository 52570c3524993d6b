#include <stdio.h>

#include "peer/commands.h"
#include "peer/config.h"
#include "peer/options.h"

int cmd_config(const struct peer_opts *o, int argc, char **argv)
{
    if (argc > 0)
        return opts_bad("config takes no arguments (got \"%s\")", argv[0]);
    cfg_show(o, stdout);
    return fflush(stdout) == 0 ? EXIT_DONE : EXIT_LOCAL;
}
