#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "peer/bridge.h"
#include "peer/commands.h"
#include "peer/fsend.h"
#include "peer/options.h"
#include "peer/control.h"
#include "peer/events.h"
#include "peer/whcmd.h"

/* Which reading of `send ARGS...` applies (peer/whcmd.h): the peer, or NULL to make a code;
 * *files is where the FILEs start. */
static enum whcmd_send snd_reading(const struct peer_opts *o, int argc, char **argv,
                                   const char **peer, int *files)
{
    struct stat st;
    enum whcmd_send r =
        whcmd_send_reading(o->code, o->send_to != NULL, argc, lstat(argv[0], &st) == 0,
                           proto_valid_id(argv[0]));
    *peer = r != WHCMD_SEND_PEER ? NULL : o->send_to ? o->send_to : argv[0];
    *files = r == WHCMD_SEND_PEER && !o->send_to ? 1 : 0;
    /* nothing leaves before the other side types the code, so a wrong guess costs nothing */
    if (r == WHCMD_SEND_CODE_NOTE)
        LOG_N("note: \"%s\" exists here, so it is sent as a file, with a code; to send to the "
              "peer %s instead: tcpunch send --to %s FILE...",
              argv[0], argv[0], argv[0]);
    return r;
}

static int snd_usage(const struct peer_opts *o, int argc, char **argv, const char **peer,
                     int *files)
{
    const char *misfit;
    if (argc < 1)
        return opts_bad("%s", "send needs FILEs (to make a code) or a PEER and FILEs");
    if (o->code && o->send_to)
        return opts_bad("%s", "--code and --to exclude each other");
    snd_reading(o, argc, argv, peer, files);
    if ((misfit = whcmd_opts_misfit(o, *peer ? WHCMD_NONE : WHCMD_MAKE)))
        return opts_bad("%s", misfit);
    if (*files >= argc)
        /* the first argument was taken as the PEER because nothing of that name exists */
        return opts_bad(o->send_to ? "send --to %s needs at least one FILE"
                                   : "no file \"%s\" here, and as a PEER it needs at least one "
                                     "FILE after it",
                        o->send_to ? o->send_to : argv[0]);
    return *peer ? opts_check_peer(o, *peer) : EXIT_DONE;
}

int cmd_send(const struct peer_opts *o, int argc, char **argv)
{
    struct fsend_list files;
    struct peer_link link;
    const char *peer = NULL;
    int rc, first = 0;
    if ((rc = snd_usage(o, argc, argv, &peer, &first)) != EXIT_DONE ||
        (rc = opts_need_server(o)) != EXIT_DONE)
        return rc;
    /* every file is checked before the peer is bothered (or a code made) */
    if ((rc = fsend_collect(&files, argc - first, argv + first)) != EXIT_DONE)
        goto out;
    rc = peer ? peer_rendezvous(o, peer, &link) : peer_code_make(o, false, &link);
    if (rc != EXIT_DONE)
        goto out;
    peer_report(o, &link);
    /* a resumable session: the file protocol runs over the bridge's plain stream */
    if (bridge_start(o, &link, false, peer_pipe_session) < 0) {
        if (link.fd >= 0)
            close(link.fd);
        rc = EXIT_LOCAL;
        goto out;
    }
    rc = fsend_run(o, &link, &files);
out:
    fsend_free(&files);
    return rc;
}
