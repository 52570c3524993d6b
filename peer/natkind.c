/* The kind of NAT side, from mappings made in a row (natkind.h). The rules:
 *   - no NAT (the server sees our own address) and one public endpoint towards both server
 *     ports: easy;
 *   - the control connection and the probe from the same local port seen with one public
 *     endpoint: easy (endpoint-independent mapping), the port preserved or not;
 *   - otherwise hard (a new mapping per destination). A mapping from another public address
 *     makes it random at once; else the steps between the ports of consecutive mappings decide:
 *     at least NK_MIN_STEPS of them, every one with 1 <= |step| <= NK_SEQ_MAX_STEP: sequential;
 *     any larger (or zero): random; fewer steps: unknown (hard, but which kind cannot be told).
 * A wrap of the port range (65535 to 1024) counts as a large step: one chance in thousands, and
 * it errs on the side of "random". */
#include "peer/natkind.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *nk_name(enum nk_kind k)
{
    switch (k) {
    case NK_EASY:
        return "easy";
    case NK_HARD_SEQUENTIAL:
        return "hard-sequential";
    case NK_HARD_RANDOM:
        return "hard-random";
    default:
        return "unknown";
    }
}

const char *nk_path_name(enum nk_path p)
{
    return p == NK_PATH_DIRECT ? "direct" : p == NK_PATH_RELAY ? "relay" : "unknown";
}

/* "public ports a, b, c" for the hard verdicts: what the classification saw. */
static void nk_ports(const struct nk_obs *o, int n, char *out, size_t len)
{
    size_t used;
    snprintf(out, len, "public ports");
    for (int i = 0; i < n; i++) {
        used = strlen(out);
        snprintf(out + used, len - used, "%s %d", i ? "," : "", o->port[i]);
    }
}

void nk_classify(const struct nk_obs *o, struct nk_verdict *v)
{
    int n = o->n < 0 ? 0 : o->n > NK_MAX_MAPS ? NK_MAX_MAPS : o->n;
    bool dependent, moved = false, small = true;
    char ports[NK_MAX_MAPS * 8 + 20];

    memset(v, 0, sizeof *v);
    if (n == 0) {
        v->kind = NK_UNKNOWN;
        snprintf(v->why, sizeof v->why, "no mapping was observed");
        snprintf(v->text, sizeof v->text, "unknown: %s", v->why);
        return;
    }
    v->preserved = o->port[0] == o->local_port;
    dependent = n >= 2 && (o->port[1] != o->port[0] || o->other_addr[1]);
    if (!o->nat && !dependent) {
        v->kind = NK_EASY;
        v->side = NK_SIDE_EASY;
        snprintf(v->text, sizeof v->text,
                 "easy: no NAT, one mapping for all destinations (our own address)");
        return;
    }
    if (n == 1) {
        v->kind = NK_UNKNOWN;
        snprintf(v->why, sizeof v->why,
                 "only the server connection's mapping was seen, no second destination");
        snprintf(v->text, sizeof v->text, "unknown: %s", v->why);
        return;
    }
    if (!dependent) {
        v->kind = NK_EASY;
        v->side = NK_SIDE_EASY;
        snprintf(v->text, sizeof v->text, "easy: one mapping for all destinations, port %s",
                 v->preserved ? "preserved" : "changed");
        return;
    }

    v->side = NK_SIDE_HARD;
    v->steps = n - 1;
    for (int i = 1; i < n; i++) {
        int step = abs(o->port[i] - o->port[i - 1]);
        moved |= o->other_addr[i];
        if (step > v->max_step)
            v->max_step = step;
        if (step < 1 || step > NK_SEQ_MAX_STEP)
            small = false;
    }
    nk_ports(o, n, ports, sizeof ports);
    if (moved) {
        v->kind = NK_HARD_RANDOM;
        snprintf(v->text, sizeof v->text,
                 "hard: a new mapping per destination, port random (the public address changes "
                 "too; %s)",
                 ports);
    } else if (v->steps < NK_MIN_STEPS) {
        v->kind = NK_UNKNOWN;
        snprintf(v->why, sizeof v->why,
                 "a new mapping per destination, but %d mappings seen (%d needed): cannot tell "
                 "random from sequential ports",
                 n, NK_MIN_STEPS + 1);
        snprintf(v->text, sizeof v->text, "unknown: %s (%s)", v->why, ports);
    } else if (small) {
        v->kind = NK_HARD_SEQUENTIAL;
        snprintf(v->text, sizeof v->text,
                 "hard: a new mapping per destination, port sequential (steps of at most %d; %s)",
                 v->max_step, ports);
    } else {
        v->kind = NK_HARD_RANDOM;
        snprintf(v->text, sizeof v->text,
                 "hard: a new mapping per destination, port random (steps up to %d; %s)",
                 v->max_step, ports);
    }
}

/* Today's paths (rendezvous/plan.c): two easy sides punch; an easy and a hard side try the punch,
 * which aims at the port the server saw, not the one the hard NAT will pick, and fall back to the
 * relay; two hard sides are relayed at once. */
enum nk_path nk_punch(enum nk_side us, enum nk_side peer, const char **text)
{
    if (us == NK_SIDE_EASY && peer == NK_SIDE_EASY) {
        *text = "direct (both keep one mapping: the punch meets it)";
        return NK_PATH_DIRECT;
    }
    if (us == NK_SIDE_HARD && peer == NK_SIDE_HARD) {
        *text = "relayed (both map per destination)";
        return NK_PATH_RELAY;
    }
    if (us == NK_SIDE_HARD || peer == NK_SIDE_HARD) {
        /* the other side easy or unknown: relayed either way */
        *text = "relayed (the server cannot predict the port)";
        return NK_PATH_RELAY;
    }
    if (us == NK_SIDE_UNKNOWN && peer == NK_SIDE_EASY) {
        *text = "unknown: direct if our NAT keeps one mapping, else relayed";
        return NK_PATH_UNKNOWN;
    }
    if (us == NK_SIDE_EASY) {
        *text = "unknown: direct if the peer's NAT keeps one mapping, else relayed";
        return NK_PATH_UNKNOWN;
    }
    *text = "unknown";
    return NK_PATH_UNKNOWN;
}
