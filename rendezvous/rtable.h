/* The sessions a connection was punched into, for their traversal reports (PROTOCOL.md,
 * "Traversal reports"): a peer may report on its own sessions only, once each, soon after.
 * Pure: no loop, no sockets, the caller gives the time. */
#ifndef TP_RTABLE_H
#define TP_RTABLE_H

#include "proto/proto.h"

#include <stdbool.h>
#include <stdint.h>

/* punches remembered per connection; a newer one evicts the oldest. A peer reports within its
 * punch's --timeout, so a few cover every punch of a peer that asks at --connect-rate; a busy
 * listener's reports beyond them are rejected (unknown), never miscounted. */
#define RT_SLOTS 4
/* how long after its punch a session may be reported: the report's own bound on ms */
#define RT_TTL_MS ((uint64_t)PROTO_REPORT_MAX_MS)

struct rt_slot {
    unsigned char sid[PROTO_SESSION_LEN / 2]; /* the session id, as bytes */
    uint64_t at_ms;                           /* when the punch was sent */
    uint8_t nat_self, nat_peer;               /* enum proto_nat, the server's view then */
    bool used, reported;
};

struct rt_tab {
    struct rt_slot s[RT_SLOTS];
};

enum rt_verdict {
    RT_OK,      /* counted now: *self and *peer are the pair's NAT kinds */
    RT_UNKNOWN, /* no punch of this connection had that session (never, or evicted) */
    RT_AGAIN,   /* reported already */
    RT_EXPIRED, /* the punch was more than RT_TTL_MS ago (now marked reported) */
};

/* The connection got a punch for session (PROTO_SESSION_LEN lowercase hex) at now_ms, itself
 * behind a NAT of kind self, its peer behind peer. A session it holds already is left as it is;
 * a full table loses its oldest entry. An invalid session is ignored. */
void rt_note(struct rt_tab *t, const char *session, enum proto_nat self, enum proto_nat peer,
             uint64_t now_ms);

/* A report on session at now_ms: RT_OK the first time within RT_TTL_MS (the entry is marked
 * reported), else why not. */
enum rt_verdict rt_take(struct rt_tab *t, const char *session, uint64_t now_ms,
                        enum proto_nat *self, enum proto_nat *peer);

/* The verdict's words for the log ("ok", "unknown session", "already reported", "expired"). */
const char *rt_verdict_name(enum rt_verdict v);

#endif
