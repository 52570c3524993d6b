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
#include "peer/opts.h" /* the birthday defaults, the other side's part */

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
    switch (p) {
    case NK_PATH_DIRECT:
        return "direct";
    case NK_PATH_RELAY:
        return "relay";
    case NK_PATH_BIRTHDAY:
        return "birthday";
    default:
        return "unknown";
    }
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

/* The range a birthday plan guesses in (the server's `ports`, PROTOCOL.md 17: [1024, 65535]). */
#define NK_BDAY_PORTS (65535 - 1024 + 1)

double nk_bday_chance(int k, int m)
{
    double miss = 1.0;
    if (k <= 0 || m <= 0)
        return 0.0;
    if (k >= NK_BDAY_PORTS || m > NK_BDAY_PORTS - k)
        return 1.0;
    /* C(R-k, m) / C(R, m) = prod over i < m of (R-k-i) / (R-i) */
    for (int i = 0; i < m; i++)
        miss *= (double)(NK_BDAY_PORTS - k - i) / (double)(NK_BDAY_PORTS - i);
    return 1.0 - miss;
}

/* "98%", "99.9%", "99.97%": as many digits as the chance of a miss needs, never "100%". */
static void nk_pct(double p, char *out, size_t len)
{
    double pct = p * 100.0, miss = 100.0 - pct;
    if (pct < 1.0)
        snprintf(out, len, "%.1f%%", pct);
    else if (miss >= 1.0)
        snprintf(out, len, "%.0f%%", pct);
    else if (miss >= 0.1)
        snprintf(out, len, "%.1f%%", pct);
    else if (miss >= 0.01)
        snprintf(out, len, "%.2f%%", pct);
    else
        snprintf(out, len, "99.99%%");
}

/* Why no birthday punch can be planned for us (b->state not NK_BDAY_ON): "relayed (...)". */
static enum nk_path nk_no_bday(const struct nk_bday_cfg *b, char *text, size_t len)
{
    snprintf(text, len, "relayed (%s)",
             b->state == NK_BDAY_OFF      ? "birthday punching is off here: --birthday-k or "
                                            "--birthday-m is 0"
             : b->state == NK_BDAY_NO_SRV ? "this server does not offer birthday punching"
                                          : "birthday punching needs the server reached over IPv4");
    return NK_PATH_RELAY;
}

/* Today's paths (rendezvous/plan.c): two easy sides punch; an easy and a hard side, both probed,
 * get a birthday punch when both peers and the server take part (plan_birthday; the relay stays
 * the fallback), else the ordinary punch, which aims at the port the server saw, not the one the
 * hard NAT will pick, and falls back to the relay; two hard sides are relayed at once. The
 * chance and the SYNs take our K (hard) or M (easy) and the peer's default for the other. */
enum nk_path nk_punch(enum nk_side us, enum nk_side peer, const struct nk_bday_cfg *b, char *text,
                      size_t len)
{
    char pct[16];
    if (us == NK_SIDE_EASY && peer == NK_SIDE_EASY) {
        snprintf(text, len, "direct (both keep one mapping: the punch meets it)");
        return NK_PATH_DIRECT;
    }
    if (us == NK_SIDE_HARD && peer == NK_SIDE_HARD) {
        snprintf(text, len,
                 "relayed (both map per destination: birthday punching would need "
                 "some 170,000 guesses)");
        return NK_PATH_RELAY;
    }
    if (us == NK_SIDE_EASY && peer == NK_SIDE_HARD) {
        if (b->state != NK_BDAY_ON)
            return nk_no_bday(b, text, len);
        nk_pct(nk_bday_chance(PEER_DEFAULT_BIRTHDAY_K, b->m), pct, sizeof pct);
        snprintf(text, len,
                 "direct by birthday punching when the peer takes part too (we guess the hard "
                 "NAT's ports: ~%s per attempt, at most %d SYNs), else relayed",
                 pct, 2 * PEER_DEFAULT_BIRTHDAY_K + b->m);
        return NK_PATH_BIRTHDAY;
    }
    if (us == NK_SIDE_HARD && peer == NK_SIDE_EASY) {
        if (b->state != NK_BDAY_ON)
            return nk_no_bday(b, text, len);
        nk_pct(nk_bday_chance(b->k, PEER_DEFAULT_BIRTHDAY_M), pct, sizeof pct);
        snprintf(text, len,
                 "direct by birthday punching when the peer takes part too (we open %d mapping%s "
                 "with low-TTL SYNs, the peer guesses their ports: ~%s per attempt), else relayed",
                 b->k, b->k == 1 ? "" : "s", pct);
        return NK_PATH_BIRTHDAY;
    }
    if (us == NK_SIDE_UNKNOWN && peer == NK_SIDE_EASY) {
        snprintf(text, len, "unknown: direct if our NAT keeps one mapping, else relayed");
        return NK_PATH_UNKNOWN;
    }
    if (us == NK_SIDE_UNKNOWN && peer == NK_SIDE_HARD) {
        /* the server plans a birthday punch only for probed sides */
        snprintf(text, len,
                 "relayed (the peer maps per destination, and birthday punching "
                 "needs our mapping known)");
        return NK_PATH_RELAY;
    }
    if (us == NK_SIDE_EASY) {
        snprintf(text, len, "unknown: direct if the peer's NAT keeps one mapping, else relayed");
        return NK_PATH_UNKNOWN;
    }
    if (us == NK_SIDE_HARD) {
        if (b->state != NK_BDAY_ON)
            return nk_no_bday(b, text, len);
        snprintf(text, len,
                 "unknown: by birthday punching if the peer's NAT keeps one mapping, "
                 "else relayed");
        return NK_PATH_UNKNOWN;
    }
    snprintf(text, len, "unknown");
    return NK_PATH_UNKNOWN;
}
