/* tcpunch: one small file per command, dispatched from this table. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/identity.h"
#include "common/log.h"
#include "peer/commands.h"
#include "peer/events.h"
#include "peer/options.h"

/* ident: the command needs our identity (to register, or for the end-to-end handshake) */
static const struct {
    const char *name;
    int (*run)(const struct peer_opts *o, int argc, char **argv);
    bool ident;
} commands[] = {
    {"listen", cmd_listen, true}, {"connect", cmd_connect, true},    {"chat", cmd_chat, true},
    {"direct", cmd_direct, true}, {"nat-check", cmd_natcheck, true}, {"id", cmd_id, true},
    {"send", cmd_send, true},     {"receive", cmd_receive, true},    {"config", cmd_config, false},
};

/* Loads (or on first use creates) our identity into ident and points o at it. */
static int load_identity(struct peer_opts *o, struct identity *ident)
{
    char err[512], fp[ID_FP_SIZE];
    bool created = false;
    if (id_load_or_create(NULL, ident, &created, err, sizeof err) < 0) {
        LOG_E("identity: %s", err);
        return EXIT_LOCAL;
    }
    o->ident = ident;
    if (created) {
        char dir[512];
        id_fingerprint(ident->pk, fp, sizeof fp);
        if (id_home(NULL, dir, sizeof dir, err, sizeof err) < 0)
            snprintf(dir, sizeof dir, "the tcpunch home directory");
        LOG_I("created our identity in %s/identity, key %s", dir, fp);
    }
    return EXIT_DONE;
}

static int dispatch(struct peer_opts *o, int argc, char **argv, int first)
{
    struct identity ident;
    int rc;
    /* a peer that vanished must show up as an error code, not kill us */
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(argv[first], "help") == 0) {
        opts_usage(stdout);
        return EXIT_DONE;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[first], commands[i].name) != 0)
            continue;
        /* forwarding flags belong to one command each; elsewhere they would be ignored */
        if ((o->forward || o->nallow || o->allow_anyone) && commands[i].run != cmd_listen)
            return opts_bad("--forward, --allow and --allow-anyone are for listen, not %s",
                            argv[first]);
        if ((o->nfrom || o->from_anyone || o->dotfiles) && commands[i].run != cmd_receive)
            return opts_bad("--from, --from-anyone and --dotfiles are for receive, not %s",
                            argv[first]);
        if (o->local && commands[i].run != cmd_connect)
            return opts_bad("--local is for connect, not %s", argv[first]);
        if (o->code && commands[i].run != cmd_send && commands[i].run != cmd_listen &&
            commands[i].run != cmd_connect)
            return opts_bad("--code is for send, listen and connect, not %s (receive takes "
                            "the code as its argument)",
                            argv[first]);
        if (o->send_to && commands[i].run != cmd_send)
            return opts_bad("--to is for send, not %s", argv[first]);
        /* encryption is never switched off by a stray flag: --plain means direct only */
        if (o->plain && commands[i].run != cmd_direct)
            return opts_bad("--plain is for direct only; %s is always encrypted", argv[first]);
        if (o->plain && o->peer_fp[0])
            return opts_bad("%s", "--peer-key needs the handshake, which --plain leaves out");
        /* direct --plain has no handshake, so no use for a key */
        if (commands[i].ident && !(o->plain && commands[i].run == cmd_direct) &&
            (rc = load_identity(o, &ident)) != EXIT_DONE)
            return rc;
        /* the session layer (README, "Sessions that survive their connection") carries every
         * stream made through a server: connect/listen (forwarding included), chat and files
         * (over peer/bridge.h); direct has no server to announce it through */
        rc = commands[i].run(o, argc - first - 1, argv + first + 1);
        sodium_memzero(&ident, sizeof ident);
        return rc;
    }
    return opts_bad("unknown command \"%s\" (listen, connect, chat, direct, nat-check, id, send, "
                    "receive, config)",
                    argv[first]);
}

/* Exit statuses 1-6 and 10-13 are failures; 7-9 are nat-check verdicts, reported on stdout. */
static bool failed(int rc)
{
    return (rc >= EXIT_USAGE && rc <= EXIT_LOCAL) || (rc >= EXIT_PARTIAL && rc <= EXIT_NO_CODE);
}

int main(int argc, char **argv)
{
    struct peer_opts o;
    int first = 0;
    int rc = opts_parse(argc, argv, &o, &first);

    if (rc < 0)
        return EXIT_DONE; /* --help or --version */
    if (rc == EXIT_DONE && sodium_init() < 0) {
        LOG_E("libsodium cannot be initialised");
        rc = EXIT_LOCAL;
    }
    if (rc == EXIT_DONE)
        rc = dispatch(&o, argc, argv, first);
    /* --json: the error the run logged first becomes the last line, with the exit status */
    if (log_json() && failed(rc))
        ev_error(rc, log_first_error());
    return rc;
}
