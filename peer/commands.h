#ifndef TP_COMMANDS_H
#define TP_COMMANDS_H

#include "peer/opts.h"

/* Each command gets the parsed options and its own arguments; returns an exit code. */
int cmd_listen(const struct peer_opts *o, int argc, char **argv);
int cmd_connect(const struct peer_opts *o, int argc, char **argv);
int cmd_chat(const struct peer_opts *o, int argc, char **argv);
int cmd_direct(const struct peer_opts *o, int argc, char **argv);
int cmd_natcheck(const struct peer_opts *o, int argc, char **argv);
int cmd_id(const struct peer_opts *o, int argc, char **argv);
int cmd_send(const struct peer_opts *o, int argc, char **argv);
int cmd_receive(const struct peer_opts *o, int argc, char **argv);
int cmd_config(const struct peer_opts *o, int argc, char **argv);

#endif
