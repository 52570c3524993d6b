#include "rendezvous/rtable.h"

#include <string.h>

/* hex digit to its value; the caller has checked the grammar (proto_valid_session) */
static int rt_nibble(char c)
{
    return c <= '9' ? c - '0' : c - 'a' + 10;
}

static bool rt_sid(const char *session, unsigned char out[PROTO_SESSION_LEN / 2])
{
    if (!session || !proto_valid_session(session))
        return false;
    for (int i = 0; i < PROTO_SESSION_LEN / 2; i++)
        out[i] = (unsigned char)(rt_nibble(session[2 * i]) << 4 | rt_nibble(session[2 * i + 1]));
    return true;
}

static struct rt_slot *rt_find(struct rt_tab *t, const unsigned char *sid)
{
    for (int i = 0; i < RT_SLOTS; i++)
        if (t->s[i].used && memcmp(t->s[i].sid, sid, sizeof t->s[i].sid) == 0)
            return &t->s[i];
    return NULL;
}

/* A free slot, else the oldest punch's. */
static struct rt_slot *rt_victim(struct rt_tab *t)
{
    struct rt_slot *v = &t->s[0];
    for (int i = 0; i < RT_SLOTS; i++) {
        if (!t->s[i].used)
            return &t->s[i];
        if (t->s[i].at_ms < v->at_ms)
            v = &t->s[i];
    }
    return v;
}

void rt_note(struct rt_tab *t, const char *session, enum proto_nat self, enum proto_nat peer,
             uint64_t now_ms)
{
    unsigned char sid[PROTO_SESSION_LEN / 2];
    struct rt_slot *s;
    if (!rt_sid(session, sid) || rt_find(t, sid))
        return;
    s = rt_victim(t);
    memcpy(s->sid, sid, sizeof s->sid);
    s->at_ms = now_ms;
    s->nat_self = (uint8_t)((unsigned)self <= PROTO_NAT_DEPENDENT ? self : PROTO_NAT_UNKNOWN);
    s->nat_peer = (uint8_t)((unsigned)peer <= PROTO_NAT_DEPENDENT ? peer : PROTO_NAT_UNKNOWN);
    s->used = true;
    s->reported = false;
}

enum rt_verdict rt_take(struct rt_tab *t, const char *session, uint64_t now_ms,
                        enum proto_nat *self, enum proto_nat *peer)
{
    unsigned char sid[PROTO_SESSION_LEN / 2];
    struct rt_slot *s;
    if (!rt_sid(session, sid) || !(s = rt_find(t, sid)))
        return RT_UNKNOWN;
    if (s->reported)
        return RT_AGAIN;
    s->reported = true;
    /* a clock that went back (it does not: uv_now is monotonic) counts as fresh */
    if (now_ms > s->at_ms && now_ms - s->at_ms > RT_TTL_MS)
        return RT_EXPIRED;
    *self = (enum proto_nat)s->nat_self;
    *peer = (enum proto_nat)s->nat_peer;
    return RT_OK;
}

const char *rt_verdict_name(enum rt_verdict v)
{
    switch (v) {
    case RT_OK:
        return "ok";
    case RT_UNKNOWN:
        return "unknown session";
    case RT_AGAIN:
        return "already reported";
    case RT_EXPIRED:
        return "expired";
    }
    return "?";
}
