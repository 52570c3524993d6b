/* What kind of side our NAT makes us, from the public ports of mappings made one after another
 * (nat-check): "easy" keeps one mapping for all destinations, "hard" makes a new one per
 * destination, its port random or sequential; and what a punch with each kind of peer means
 * today (birthday punching included). Pure: observed ports in, verdict and sentences out; no
 * sockets, no loop. */
#ifndef TP_PEER_NATKIND_H
#define TP_PEER_NATKIND_H

#include <stdbool.h>
#include <stddef.h>

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

/* NK_PATH_BIRTHDAY: direct by birthday punching (PROTOCOL.md 17) if the peer takes part too,
 * else relayed */
enum nk_path { NK_PATH_UNKNOWN, NK_PATH_DIRECT, NK_PATH_RELAY, NK_PATH_BIRTHDAY };

/* Whether the server can plan a birthday punch for us, as far as this side can tell. */
enum nk_bday {
    NK_BDAY_ON,      /* our K and M above 0, the server offers it, its connection over IPv4 */
    NK_BDAY_OFF,     /* --birthday-k 0 or --birthday-m 0: we do not take part */
    NK_BDAY_NO_SRV,  /* the server's challenge did not offer it */
    NK_BDAY_NO_IPV4, /* the server is reached over IPv6: plans are for IPv4 control connections */
};

/* Our side of birthday punching: the state, and our --birthday-k and --birthday-m (used for the
 * chance and the SYNs the sentence gives; the peer's part is taken at the defaults). */
struct nk_bday_cfg {
    enum nk_bday state;
    int k, m;
};

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
/* "direct", "relay", "birthday", "unknown" */
const char *nk_path_name(enum nk_path p);

/* The chance that one birthday punch meets: k mappings of the hard NAT among the 64,512 ports
 * of the plan's range, m distinct guesses (1 - C(R-k, m) / C(R, m)); 0 when either is 0. */
double nk_bday_chance(int k, int m);

/* What a punch between us and a peer of the given side means with today's tcpunch, given our
 * side of birthday punching (b), and one sentence saying so, written to text (len bytes; 240
 * is enough). */
enum nk_path nk_punch(enum nk_side us, enum nk_side peer, const struct nk_bday_cfg *b, char *text,
                      size_t len);

#endif
