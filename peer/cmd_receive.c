#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "peer/bridge.h"
#include "peer/commands.h"
#include "peer/frecv.h"
#include "peer/options.h"
#include "peer/control.h"
#include "peer/events.h"
#include "peer/whcmd.h"

/* Whose files we take: the --from entries, or anyone (--from-anyone). */
struct rcv_from {
    bool anyone;
    int n;
    struct {
        char id[PROTO_MAX_ID + 1];
        char fp[ID_FP_SIZE]; /* "" when no key is pinned */
    } e[PEER_MAX_ALLOW];
};

static int rcv_find(const struct rcv_from *f, const char *peer)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->e[i].id, peer) == 0)
            return i;
    return -1;
}

/* A receive that takes files from whoever knows its id lets a stranger plant .bashrc or
 * .ssh/authorized_keys, so it must be asked for by name. */
static int rcv_parse(const struct peer_opts *o, struct rcv_from *f)
{
    if (!o->nfrom && !o->from_anyone)
        return opts_bad("%s", "receive needs --from ID[=KEY] (the senders whose files it takes, "
                              "repeatable) or --from-anyone (files from whoever knows our id)");
    if (o->nfrom && o->from_anyone)
        return opts_bad("%s", "--from and --from-anyone exclude each other");
    f->anyone = o->from_anyone;
    for (int i = 0; i < o->nfrom; i++) {
        if (opts_peer_entry("--from", o->from[i], f->e[f->n].id, f->e[f->n].fp,
                            sizeof f->e[f->n].fp) != EXIT_DONE)
            return EXIT_USAGE;
        if (rcv_find(f, f->e[f->n].id) >= 0)
            return opts_bad("--from: %s is listed twice", f->e[f->n].id);
        f->n++;
    }
    return EXIT_DONE;
}

/* At the punch order, before anything is dialled: a named sender's pinned key becomes the only
 * one its handshake accepts (no other key is ever recorded for it). A sender not named is
 * refused right here (its connect times out): let through to the handshake, its sessions
 * would take setup slots from the named sender, could win over hers and abort it, and its key
 * would be recorded in known_peers. */
static bool rcv_admit(void *arg, const char *peer, char *fp, size_t fplen, char *why,
                      size_t whylen)
{
    const struct rcv_from *f = arg;
    int i = rcv_find(f, peer);
    if (!f->anyone && i < 0) {
        snprintf(why, whylen, "not a sender named by --from");
        return false;
    }
    snprintf(fp, fplen, "%s", i >= 0 ? f->e[i].fp : "");
    return true;
}

/* receive CODE: the code names the sender (its id and key come out of the exchange), so
 * --from has nothing to add; a typo is a usage error before anything touches the network. */
static int rcv_code(const struct peer_opts *o, int argc, char **argv)
{
    struct wcode code;
    struct peer_link link;
    char err[300];
    const char *misfit = whcmd_opts_misfit(o, WHCMD_CLAIM);
    int rc, dirfd;
    if (misfit)
        return opts_bad("%s", misfit);
    if (o->nfrom || o->from_anyone)
        return opts_bad("%s", "--from and --from-anyone are not for receive CODE: the code "
                              "names the sender");
    if (whcmd_code_arg(argc, argv, &code, err, sizeof err) < 0)
        return opts_bad("%s", err);
    if ((rc = opts_need_server(o)) != EXIT_DONE)
        goto out;
    if ((dirfd = frecv_open_dir(o->dir ? o->dir : ".")) < 0) {
        rc = EXIT_LOCAL;
        goto out;
    }
    rc = peer_code_claim(o, false, &code, &link);
    if (rc == EXIT_DONE) {
        peer_report(o, &link);
        if (bridge_start(o, &link, false, peer_pipe_session) < 0) {
            if (link.fd >= 0)
                close(link.fd);
            rc = EXIT_LOCAL;
        } else {
            rc = frecv_run(o, &link, dirfd, o->force);
        }
    }
    close(dirfd);
out:
    wcode_wipe(&code);
    return rc;
}

int cmd_receive(const struct peer_opts *o, int argc, char **argv)
{
    static struct rcv_from from; /* 64 entries: not for the stack */
    struct peer_serve gate = {.admit = rcv_admit, .arg = &from};
    struct peer_link link;
    const char *misfit = whcmd_opts_misfit(o, WHCMD_NONE);
    int rc, dirfd;
    if (argc > 0)
        return rcv_code(o, argc, argv);
    if (misfit)
        return opts_bad("%s", misfit);
    if ((rc = rcv_parse(o, &from)) != EXIT_DONE || (rc = opts_need_server(o)) != EXIT_DONE)
        return rc;
    if ((dirfd = frecv_open_dir(o->dir ? o->dir : ".")) < 0)
        return EXIT_LOCAL;
    /* like listen: one sender, then we are done. rcv_admit already turned away the senders
     * --from does not name; should one get here all the same, it is refused, not served */
    while ((rc = peer_rendezvous_gate(o, &gate, &link)) == EXIT_DONE) {
        peer_report(o, &link);
        /* a resumable session: the file protocol (or the refusal) runs over the bridge */
        if (bridge_start(o, &link, false, peer_pipe_session) < 0) {
            if (link.fd >= 0)
                close(link.fd);
            rc = EXIT_LOCAL;
            break;
        }
        if (from.anyone || rcv_find(&from, link.peer) >= 0) {
            rc = frecv_run(o, &link, dirfd, o->force);
            break;
        }
        LOG_W("refused the files of %s: not a sender named by --from; waiting for another",
              link.peer);
        frecv_refuse(o, &link,
                     "this receiver takes files only from the senders it names (--from), and "
                     "you are not one of them");
    }
    close(dirfd);
    return rc;
}
