/* What kind of side our NAT makes us, from the public ports of mappings made one after another
 * (nat-check): "easy" keeps one mapping for all destinations, "hard" makes a new one per
 * destination, its port random or sequential; and what a punch with each kind of peer means
 * today. Pure: observed ports in, verdict and sentences out; no sockets, no loop. */
#ifndef TP_PEER_NATKIND_H
#define TP_PEER_NATKIND_H

#include <stdbool.h>

#define NK_MAX_MAPS 8      /* mappings one classification looks at */
#define NK_SEQ_MAX_STEP 16 /* |port step| between mappings made in a row: "sequential" */
#define NK_MIN_STEPS 3     /* steps needed to tell random from sequential */

enum nk_kind {
    NK_UNKNOWN,
    NK_EASY,            /* one mapping for all destinations (endpoint-independent) */
    NK_HARD_SEQUENTIAL, /* a new mapping per destination, each port a small step from the last */
    NK_HARD_RANDOM,     /* a new mapping per destination, no small steps */
};

/* How the other side of a punch is, as far as it matters to the path. */
enum nk_side { NK_SIDE_UNKNOWN, NK_SIDE_EASY, NK_SIDE_HARD };

enum nk_path { NK_PATH_UNKNOWN, NK_PATH_DIRECT, NK_PATH_RELAY };

/* The mappings, in the order they were made: [0] the control connection, [1] the probe from
 * the same local port to another server port, then probes from fresh local ports. */
struct nk_obs {
    bool nat;       /* the server saw an address that is not ours */
    int local_port; /* the control connection's (and [1]'s) local port */
    int n;          /* mappings observed, 0..NK_MAX_MAPS */
    int port[NK_MAX_MAPS];
    bool other_addr[NK_MAX_MAPS]; /* seen from another public address than [0] */
};

struct nk_verdict {
    enum nk_kind kind;
    enum nk_side side; /* hard also for an unknown kind whose mapping is known dependent */
    bool preserved;    /* easy: the public port is the local port */
    int steps;         /* port steps looked at (hard) */
    int max_step;      /* the largest |step| among them */
    char text[240];    /* "easy: one mapping for all destinations, port preserved" ... */
    char why[160];     /* unknown: why it cannot tell; else "" */
};

/* Classifies o (see the rules in natkind.c and README, nat-check). Never fails: too little data
 * gives NK_UNKNOWN with a reason. */
void nk_classify(const struct nk_obs *o, struct nk_verdict *v);

/* "easy", "hard-sequential", "hard-random", "unknown" */
const char *nk_name(enum nk_kind k);
/* "direct", "relay", "unknown" */
const char *nk_path_name(enum nk_path p);

/* What a punch between us and a peer of the given side means with today's tcpunch, and one
 * sentence saying so (a static string). */
enum nk_path nk_punch(enum nk_side us, enum nk_side peer, const char **text);

#endif
