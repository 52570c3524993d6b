/* The pure rules of pairing: which path a session may take (PROTOCOL.md 5.4, "Choosing the
 * path"), what each peer's punch says about the other, and who waits how long so that both
 * punches arrive together (section 6, step 3; across cluster instances section 16, step 4).
 *
 * No event loop, no sockets, no server structs: the facts of both sides go in, the decision and
 * two (message, delay) pairs come out. The callers (pairing.c for two peers of this instance,
 * cluster.c for a pair across instances) offer the relay, encode and deliver. */
#ifndef TP_PLAN_H
#define TP_PLAN_H

#include "proto/proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PLAN_MAX_DELAY_US (2000 * 1000)        /* cap on the head start given to the farther peer */
#define PLAN_LEAD_US PROTO_DEFAULT_START_IN_US /* time for peers to get ready to send SYNs */

/* Birthday punching (PROTOCOL.md, "Birthday punching"): the server's caps on K and M (its
 * --birthday-k-max / --birthday-m-max: defaults, and the most a flag may give), and the plan's
 * fixed parts. */
#define PLAN_BDAY_K_MAX 256
#define PLAN_BDAY_M_MAX 1024
#define PLAN_BDAY_K_CAP PROTO_BDAY_MAX_K
#define PLAN_BDAY_M_CAP PROTO_BDAY_MAX_M
#define PLAN_BDAY_TTL 0 /* the hard side finds its own */
#define PLAN_BDAY_PACE_MS 800
#define PLAN_BDAY_PORT_LO 1024
#define PLAN_BDAY_PORT_HI 65535
#define PLAN_BDAY_EASY_DELAY_US 50000
/* a peer that had a birthday plan less than this long ago gets none now: a peer re-issuing
 * connect cannot make another one send K or M SYNs per connect */
#define PLAN_BDAY_GAP_MS PROTO_BDAY_GAP_MS

/* One side of a pair as the decision and its punch need it: a local connection or a peer on
 * another cluster instance (from its introduce). */
struct plan_peer {
    char id[PROTO_MAX_ID + 1];
    struct sockaddr_storage observed;
    struct proto_eplist eps; /* its hello endpoints: self-declared, passed on only as plan_describe says */
    bool has_obs6;           /* its IPv6 endpoint, seen by a probe: observed by the server */
    struct sockaddr_storage obs6;
    enum proto_nat nat;
    enum proto_path path;
    bool has_key;
    unsigned char key[PROTO_KEY_BYTES];
    uint32_t rtt_us; /* smoothed RTT of its control connection, 0 when unknown */
    struct proto_bday_caps bday; /* its hello.birthday (has false: never takes part) */
    /* it had a birthday plan within PLAN_BDAY_GAP_MS: none now (its connection keeps the
     * time; plan.c only reads the verdict) */
    bool bday_recent;
    /* its hello.features (PROTO_FEAT_* bits; 0: none, or the server does not offer resume):
     * the other peer's punch carries them as peer_features */
    uint32_t features;
};

/* The server's limits on a birthday plan; 0 for either: it never plans one. */
struct plan_bday_cfg {
    int k_max; /* 0..PLAN_BDAY_K_CAP */
    int m_max; /* 0..PLAN_BDAY_M_CAP */
};

/* How a session may connect. */
struct plan {
    bool direct;
    bool relay;
    char reason[PROTO_MAX_TEXT + 1];    /* why not direct; with direct: why no relay */
    char token[2][PROTO_TOKEN_LEN + 1]; /* relay tokens: [0] initiator, [1] responder */
    /* a birthday punch (plan_birthday): direct is true, and both punches carry the plan */
    bool bday;
    int bday_hard;      /* the side behind the endpoint-dependent NAT: 0 initiator, 1 target */
    int bday_k, bday_m; /* the hard side's sockets, the easy side's guesses */
    /* connect.resume, set by the caller after plan_path ("" none): both punches carry it
     * unchanged as punch.resume; the server checks nothing more for it (resume.md 4.5) */
    char resume[PROTO_SESSION_LEN + 1];
};

/* The path decision from both peers' policies and NAT mappings, for a server that relays or
 * not. Returns 0, or -1 with the no-path message in msg when nothing can work. */
int plan_path(bool relays, const struct plan_peer *i, const struct plan_peer *t, struct plan *pl,
              char *msg, size_t len);

/* Whether the pair gets a birthday punch (PROTOCOL.md 5.4, the birthday row): a direct plan
 * (plan_path's) between one peer behind an endpoint-dependent NAT and one behind an independent
 * one (both probed), both announcing K and M above 0 and neither with a recent plan, neither
 * asking for relay only, on IPv4 from two different public addresses, not both with an IPv6
 * endpoint; and a server whose caps are above 0. Then fills pl's birthday plan (K the smaller
 * of the server's cap and the hard peer's k, M the same of the easy peer's m) and returns
 * true; otherwise leaves pl as it was. */
bool plan_birthday(const struct plan_bday_cfg *cfg, const struct plan_peer *i,
                   const struct plan_peer *t, struct plan *pl);

/* The relay was wanted (pl->relay) but refused the offer for `why`: the session goes direct only
 * (returns 0, pl->reason tells both peers why no relay) or, when the relay was the only path,
 * returns -1 with the no-path message in msg. */
int plan_no_relay(struct plan *pl, const char *why, char *msg, size_t len);

/* The punch for the peer that `other` is described to, whose control connection the server
 * sees from `to` (its observed endpoint): other's self-declared endpoints go only to a peer
 * behind the same public address, others get what the server observed (PROTOCOL.md 5.4). to
 * NULL describes other unfiltered (a cluster's introduce: the target's instance filters).
 * relay_addr (NULL: none) is where the relay runs when it is not the recipient's own server. */
void plan_describe(const struct plan_peer *other, const struct sockaddr_storage *to,
                   enum proto_role role, const char *session, const struct plan *pl,
                   const struct sockaddr_storage *relay_addr, struct proto_msg *m);

enum { PLAN_I = 0, PLAN_T = 1 }; /* the initiator's and the target's punch */

struct plan_send {
    struct proto_msg m; /* the punch, to encode */
    uint64_t delay_us;  /* hold it back this long (capped at PLAN_MAX_DELAY_US) */
    /* it leaves right after the other over this same server: when it is not held back, the
     * time the first send took comes off its lead (plan_lead_after) */
    bool second;
};

struct plan_punches {
    struct plan_send s[2]; /* [PLAN_I], [PLAN_T] */
    int first;             /* which one goes out first */
};

/* How the initiator's punch travels: from this server (a local pair), or across instances. */
struct plan_route {
    bool across; /* the initiator is on another cluster instance */
    /* across: the round trip of the bus the initiator's punch takes before its own server
     * sends it (the sum of both instances' Redis round trips), and where the initiator joins
     * the relay (this instance's public address) */
    uint32_t bus_rtt_us;
    const struct sockaddr_storage *relay_addr;
};

/* Both punches of a session planned by pl. */
void plan_punches(const struct plan *pl, const struct plan_peer *i, const struct plan_peer *t,
                  const char *session, const struct plan_route *route, struct plan_punches *out);

/* A delay as the server may apply it: at most PLAN_MAX_DELAY_US. Also for a delay another
 * instance asks for. */
uint64_t plan_cap_us(uint64_t us);

/* The lead of a punch sent gap_us after its pair's first copy left: both first SYNs should
 * still leave together. */
int64_t plan_lead_after(uint64_t gap_us);

#endif
