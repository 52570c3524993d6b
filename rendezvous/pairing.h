/* Pairing: a registered peer asks for another id; both get a `punch` with the other's
 * endpoints, timed so that they arrive at about the same moment. */
#ifndef TP_PAIRING_H
#define TP_PAIRING_H

#include "rendezvous/server.h"

#define PAIR_MAX_DELAY_MS 2000                 /* cap on the head start given to the farther peer */
#define PAIR_LEAD_US PROTO_DEFAULT_START_IN_US /* time for peers to get ready to send SYNs */
#define PAIR_MAX_PENDING 16 /* delayed punches queued for one peer; more are sent at once */

/* What a punch tells about a peer and what the path decision needs of it: a local connection
 * (pair_peer_of) or a peer on another cluster instance (cluster.c, from its introduce). */
struct pair_peer {
    char id[PROTO_MAX_ID + 1];
    struct sockaddr_storage observed;
    struct proto_eplist eps; /* its hello endpoints: self-declared, passed on only as pair_encode says */
    bool has_obs6;           /* its IPv6 endpoint, seen by a probe: observed by the server */
    struct sockaddr_storage obs6;
    enum proto_nat nat;
    enum proto_path path;
    bool has_key;
    unsigned char key[PROTO_KEY_BYTES];
};

/* How a session may connect, decided at `connect` (PROTOCOL.md, "Choosing the path"). */
struct pair_plan {
    bool direct;
    bool relay;
    char reason[PROTO_MAX_TEXT + 1];    /* why not direct; with direct: why no relay */
    char token[2][PROTO_TOKEN_LEN + 1]; /* relay tokens: [0] initiator, [1] responder */
};

/* Handles `connect` from a registered peer: self-connect and peer-not-found are answered
 * with non-fatal errors; otherwise a session is created and punches are sent. A target held
 * by another cluster instance is handed to cluster.c. */
void pair_connect(struct srv *s, struct srv_conn *from, const char *target);

void pair_peer_of(const struct srv_conn *c, struct pair_peer *p);
/* Fills pl from both peers' policies and NAT mappings for a server that relays or not. Returns
 * 0, or -1 with the no-path message in msg when nothing can work. */
int pair_plan(bool relays, const struct pair_peer *from, const struct pair_peer *to,
              struct pair_plan *pl, char *msg, size_t len);
/* Offers the relay for session (rly_offer). On a refusal pl->relay is cleared and, when the
 * session still goes direct, pl->reason says why no relay was offered (the punch carries it);
 * returns -1 with the reason in why. */
int pair_offer(struct rly *r, const char *session, const struct rly_party *initiator,
               const struct rly_party *target, struct pair_plan *pl, char *why, size_t len);
/* The punch for the peer that `other` is described to, whose control connection the server
 * sees from `to` (its observed endpoint): other's self-declared endpoints go only to a peer
 * behind the same public address, others get what the server observed (PROTOCOL.md 5.4). to
 * NULL describes other unfiltered (a cluster's introduce: the target's instance filters).
 * relay_addr (NULL: none) is where the relay runs when it is not the recipient's own server.
 * Returns the line length or -1. */
int pair_encode(const struct pair_peer *other, const struct sockaddr_storage *to,
                enum proto_role role, const char *session, const struct pair_plan *pl,
                const struct sockaddr_storage *relay_addr, struct proto_msg *m, char *buf,
                size_t len);
/* Sends line to `to` after delay_us (rounded to ms; 0: now). A punch that cannot be delayed
 * (too many pending) is sent at once. */
void pair_send_later(struct srv_conn *to, const char *session, const char *line, size_t len,
                     uint64_t delay_us);
/* The kernel's smoothed RTT of c's connection, 0 when unknown. */
uint32_t pair_rtt_us(struct srv_conn *c);

/* Cancels the delayed punches addressed to c. The server calls it when c leaves the
 * registry (closing, fatal error), before c can be freed. */
void pair_cancel(struct srv_conn *c);

#endif
