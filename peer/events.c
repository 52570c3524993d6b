#include "peer/events.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/endpoint.h"
#include "common/log.h"
#include "common/vis.h"
#include "peer/rpump.h"

/* One compact object per line, written with one call so lines never interleave. */
static void ev_emit(json_t *ev)
{
    char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    if (text)
        fprintf(stderr, "%s\n", text);
    free(text);
    json_decref(ev);
}

static bool ev_wanted(const struct peer_opts *o)
{
    return o->json && !o->quiet;
}

static json_t *ev_endpoint(const struct sockaddr_storage *ss)
{
    char ep[EP_STRLEN];
    return json_string(ep_format((const struct sockaddr *)ss, ep, sizeof ep));
}

void ev_registered(const struct peer_opts *o, const char *server, const struct proto_msg *welcome)
{
    if (!ev_wanted(o))
        return;
    ev_emit(json_pack("{s:s, s:s, s:s, s:o}", "event", "registered", "id", welcome->u.welcome.id,
                      "server", server, "observed", ev_endpoint(&welcome->u.welcome.observed)));
}

void ev_punching(const struct peer_opts *o, const struct proto_msg *punch,
                 const struct punch_cfg *cfg)
{
    json_t *cands, *ev;
    if (!ev_wanted(o))
        return;
    cands = json_array();
    for (int i = 0; cands && i < cfg->ncand; i++)
        json_array_append_new(cands, ev_endpoint(&cfg->cand[i].addr));
    ev = json_pack("{s:s, s:s, s:s, s:s, s:o, s:b, s:b}", "event", "punching", "peer",
                   punch->u.punch.peer, "session", punch->u.punch.session, "role",
                   proto_role_name(punch->u.punch.role), "candidates", cands, "direct",
                   !punch->u.punch.no_direct, "relay", punch->u.punch.relay);
    /* a birthday punch we take part in: our role (its connections are not candidates) */
    if (ev && cfg->birthday)
        json_object_set_new(
            ev, "birthday",
            json_string(punch->u.punch.birthday.role == PROTO_BDAY_EASY ? "easy" : "hard"));
    ev_emit(ev);
}

static void ev_connected(const struct peer_link *link)
{
    json_t *ev = json_pack(
        "{s:s, s:s, s:s, s:o, s:s, s:I, s:I}", "event", "connected", "peer", link->peer, "path",
        proto_path_name(link->relayed ? PROTO_PATH_RELAY : PROTO_PATH_DIRECT), "remote",
        ev_endpoint(&link->remote), "via", link->relayed ? proto_path_name(PROTO_PATH_RELAY)
        : link->via   ? link->via
                      : "?",
        "ms", (json_int_t)link->punch_ms, "attempts", (json_int_t)link->attempts);
    if (ev && link->server[0])
        json_object_set_new(ev, "server", json_string(link->server));
    if (ev && link->birthday && !link->relayed) {
        /* easy: the winning guess was the bday_n-th of bday_of; hard: our socket bday_n of
         * bday_of met the other side's guess (how many it sent we do not know) */
        json_object_set_new(ev, "guesses",
                            link->bday_easy ? json_integer(link->bday_n) : json_null());
        if (!link->bday_easy)
            json_object_set_new(ev, "socket", json_integer(link->bday_n));
        json_object_set_new(ev, "of", json_integer(link->bday_of));
    }
    if (ev && link->relayed) {
        /* the server's words (punch.reason): JSON-escaped by jansson, and made safe for
         * whatever prints the event to a terminal */
        char why[VIS_SIZE(sizeof link->direct_why)];
        json_object_set_new(ev, "relay", ev_endpoint(&link->relay_server));
        json_object_set_new(ev, "reason",
                            json_string(vis_str(link->direct_why, why, sizeof why)));
    } else if (ev) {
        json_object_set_new(ev, "reason", json_null());
    }
    ev_emit(ev);
}

/* The path line: how this connection was made, at the default verbosity. When --server named
 * several, it says which one introduced us. */
void peer_report(const struct peer_opts *o, const struct peer_link *link)
{
    char ep[EP_STRLEN], peer[SL_NAME + PROTO_MAX_ID + 32], via[64];
    if (o->json) {
        if (ev_wanted(o))
            ev_connected(link);
        return;
    }
    if (link->server[0] && o->server && strcmp(link->server, o->server) != 0)
        snprintf(peer, sizeof peer, "%s (introduced by %s)", link->peer, link->server);
    else
        snprintf(peer, sizeof peer, "%s", link->peer);
    if (link->relayed && link->resume && link->upgrade_wanted) {
        /* relay first: the session moves to direct when an upgrade succeeds (pipe.c) */
        LOG_N("connected to %s: relay via %s, %llu ms (relay first); direct not up yet (%s): "
              "upgrading when it is",
              peer, ep_format((const struct sockaddr *)&link->relay_server, ep, sizeof ep),
              (unsigned long long)link->punch_ms,
              link->direct_why[0] ? link->direct_why : "no reason given");
        return;
    }
    if (link->relayed) {
        LOG_N("connected to %s: relay via %s, %llu ms; direct %s: %s", peer,
              ep_format((const struct sockaddr *)&link->relay_server, ep, sizeof ep),
              (unsigned long long)link->punch_ms, link->attempts ? "failed" : "skipped",
              link->direct_why[0] ? link->direct_why : "no reason given");
        return;
    }
    if (link->birthday && link->bday_easy)
        snprintf(via, sizeof via, "birthday, %d guess%s of %d", link->bday_n,
                 link->bday_n == 1 ? "" : "es", link->bday_of);
    else if (link->birthday)
        snprintf(via, sizeof via, "birthday, socket %d of %d", link->bday_n, link->bday_of);
    else
        snprintf(via, sizeof via, "%s", link->via ? link->via : "?");
    LOG_N("connected to %s: direct, %s (%s), %llu ms, %u attempt%s", peer,
          ep_format((const struct sockaddr *)&link->remote, ep, sizeof ep), via,
          (unsigned long long)link->punch_ms, link->attempts, link->attempts == 1 ? "" : "s");
}

void ev_closed(const struct peer_opts *o, const char *peer, uint64_t sent, uint64_t received,
               int status)
{
    if (!ev_wanted(o))
        return;
    ev_emit(json_pack("{s:s, s:s, s:I, s:I, s:i}", "event", "closed", "peer", peer, "sent",
                      (json_int_t)sent, "received", (json_int_t)received, "status", status));
}

void ev_suspended(const struct peer_opts *o, const char *peer, const char *why, uint64_t tx,
                  uint64_t rx)
{
    if (!ev_wanted(o))
        return;
    ev_emit(json_pack("{s:s, s:s, s:s, s:I, s:I}", "event", "suspended", "peer", peer, "why",
                      why ? why : "", "tx", (json_int_t)tx, "rx", (json_int_t)rx));
}

/* "resumed with bob after 3200 ms via direct, 203.0.113.30:51000 (public); resent 412 KiB" */
void ev_resumed(const struct peer_opts *o, const char *peer, const struct rpump_event *e)
{
    const struct mb_conn *c = e->conn;
    const char *via = c && c->relayed ? "relay" : "direct";
    char ep[EP_STRLEN] = "?";
    if (c && c->remote.ss_family)
        ep_format((const struct sockaddr *)&c->remote, ep, sizeof ep);
    if (o->json) {
        if (!ev_wanted(o))
            return;
        json_t *ev = json_pack("{s:s, s:s, s:I, s:s, s:s, s:I, s:I}", "event", "resumed", "peer",
                               peer, "ms", (json_int_t)e->ms, "via", via, "remote", ep, "epoch",
                               (json_int_t)e->epoch, "resent", (json_int_t)e->resent);
        ev_emit(ev);
        return;
    }
    if (c && !c->relayed && c->via[0])
        LOG_N("resumed with %s after %llu ms via direct, %s (%s); resent %llu bytes", peer,
              (unsigned long long)e->ms, ep, c->via, (unsigned long long)e->resent);
    else
        LOG_N("resumed with %s after %llu ms via %s, %s; resent %llu bytes", peer,
              (unsigned long long)e->ms, via, ep, (unsigned long long)e->resent);
}

void ev_upgraded(const struct peer_opts *o, const char *peer, const struct rpump_event *e)
{
    const struct mb_conn *c = e->conn;
    const char *via = c && c->via[0] ? c->via : "direct";
    char ep[EP_STRLEN] = "?";
    if (c && c->remote.ss_family)
        ep_format((const struct sockaddr *)&c->remote, ep, sizeof ep);
    if (o->json) {
        if (!ev_wanted(o))
            return;
        json_t *ev = json_pack("{s:s, s:s, s:I, s:s, s:s}", "event", "upgraded", "peer", peer,
                               "ms", (json_int_t)e->ms, "remote", ep, "via", via);
        ev_emit(ev);
        return;
    }
    LOG_N("%s: relay, upgraded to direct after %llu ms (%s, %s)", peer, (unsigned long long)e->ms,
          ep, via);
}

const char *ev_exit_code(int status)
{
    static const char *const codes[] = {
        [EXIT_DONE] = "ok",
        [EXIT_USAGE] = "usage",
        [EXIT_SERVER] = "server",
        [EXIT_NO_PEER] = "peer-not-found",
        [EXIT_PUNCH] = "punch-failed",
        [EXIT_LOST] = "connection-lost",
        [EXIT_LOCAL] = "local",
        [EXIT_PARTIAL] = "partial",
        [EXIT_NOT_RESUMED] = "not-resumed",
        [EXIT_CODE_FAILED] = "code-failed",
        [EXIT_NO_CODE] = "no-code",
    };
    /* 7-9 (nat-check verdicts) have no entry */
    return status >= 0 && (size_t)status < sizeof codes / sizeof codes[0] && codes[status]
               ? codes[status]
               : "internal";
}

static const char *ev_exit_text(int status)
{
    static const char *const texts[] = {
        [EXIT_DONE] = "done",
        [EXIT_USAGE] = "usage error",
        [EXIT_SERVER] = "server unreachable, refused us, or lost before the punch",
        [EXIT_NO_PEER] = "peer not found on the server",
        [EXIT_PUNCH] = "punch failed: no verified connection before the timeout",
        [EXIT_LOST] = "connection lost after it was established",
        [EXIT_LOCAL] = "local error",
        [EXIT_PARTIAL] = "the receiver refused some files",
        [EXIT_NOT_RESUMED] = "the connection was lost and not resumed within --resume-timeout",
        [EXIT_CODE_FAILED] = "the code exchange failed (a wrong code, or someone who knew it in "
                             "the middle); the code is burned",
        [EXIT_NO_CODE] = "no such code: it expired, was already used, or was never made",
    };
    return status >= 0 && (size_t)status < sizeof texts / sizeof texts[0] && texts[status]
               ? texts[status]
               : "internal error";
}

void ev_code(const struct peer_opts *o, const char *code, unsigned ttl_s, const char *hint)
{
    if (!o->json) {
        /* the code is what this run is for: shown even with -q, alone on its line so that a
         * script (or a test) can read it */
        fprintf(stderr, "Code: %s\n", code);
        if (!o->quiet)
            fprintf(stderr, "On the other machine: %s %s (the code works once, for %u min)\n",
                    hint, code, (ttl_s + 59) / 60);
        return;
    }
    /* message: the human line, so that what reads "Code: ..." reads both forms */
    char line[64];
    snprintf(line, sizeof line, "Code: %s", code);
    ev_emit(json_pack("{s:s, s:s, s:i, s:s, s:s}", "event", "code", "code", code, "ttl",
                      (int)ttl_s, "command", hint, "message", line));
    sodium_memzero(line, sizeof line);
}

void ev_error(int status, const char *message)
{
    /* a message cut inside a UTF-8 sequence is no JSON string: fall back to the generic one */
    json_t *msg = message ? json_string(message) : NULL;
    if (!msg)
        msg = json_string(ev_exit_text(status));
    ev_emit(json_pack("{s:s, s:s, s:o, s:i}", "event", "error", "code", ev_exit_code(status),
                      "message", msg, "exit", status));
}
