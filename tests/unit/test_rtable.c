/* rtable.c: the sessions a connection may report on, once each, for RT_TTL_MS; the oldest of
 * a full table goes first. */
#include "check.h"
#include "rendezvous/rtable.h"

#include <stdio.h>

static void sid(char *out, int n)
{
    snprintf(out, PROTO_SESSION_LEN + 1, "%032x", n);
}

#define IND PROTO_NAT_INDEPENDENT
#define DEP PROTO_NAT_DEPENDENT
#define UNK PROTO_NAT_UNKNOWN

static void t_once(void)
{
    struct rt_tab t = {0};
    char s[PROTO_SESSION_LEN + 1];
    enum proto_nat a = UNK, b = UNK;
    sid(s, 1);
    CHECK_INT(rt_take(&t, s, 10, &a, &b), RT_UNKNOWN); /* before any punch */
    rt_note(&t, s, IND, DEP, 100);
    CHECK_INT(rt_take(&t, s, 200, &a, &b), RT_OK);
    CHECK(a == IND && b == DEP);
    CHECK_INT(rt_take(&t, s, 300, &a, &b), RT_AGAIN);
    /* a second punch note of the same session changes nothing: still reported */
    rt_note(&t, s, IND, DEP, 400);
    CHECK_INT(rt_take(&t, s, 500, &a, &b), RT_AGAIN);
    sid(s, 2);
    CHECK_INT(rt_take(&t, s, 500, &a, &b), RT_UNKNOWN); /* another session */
    CHECK_INT(rt_take(&t, "not a session", 500, &a, &b), RT_UNKNOWN);
    rt_note(&t, "0123", IND, IND, 500); /* ignored */
    CHECK_INT(rt_take(&t, "0123", 500, &a, &b), RT_UNKNOWN);
}

static void t_expiry(void)
{
    struct rt_tab t = {0};
    char s[PROTO_SESSION_LEN + 1], s2[PROTO_SESSION_LEN + 1];
    enum proto_nat a, b;
    sid(s, 7);
    sid(s2, 8);
    rt_note(&t, s, UNK, UNK, 1000);
    rt_note(&t, s2, UNK, IND, 1000);
    CHECK_INT(rt_take(&t, s, 1000 + RT_TTL_MS + 1, &a, &b), RT_EXPIRED);
    CHECK_INT(rt_take(&t, s, 1000 + RT_TTL_MS + 2, &a, &b), RT_AGAIN); /* spent */
    CHECK_INT(rt_take(&t, s2, 1000 + RT_TTL_MS, &a, &b), RT_OK);       /* the bound itself is in */
    CHECK(a == UNK && b == IND);
}

static void t_eviction(void)
{
    struct rt_tab t = {0};
    char s[RT_SLOTS + 2][PROTO_SESSION_LEN + 1];
    enum proto_nat a, b;
    for (int i = 0; i < RT_SLOTS + 2; i++)
        sid(s[i], 100 + i);
    for (int i = 0; i < RT_SLOTS; i++)
        rt_note(&t, s[i], IND, IND, 10 + (uint64_t)i);
    rt_note(&t, s[RT_SLOTS], DEP, DEP, 50); /* evicts s[0], the oldest */
    CHECK_INT(rt_take(&t, s[0], 60, &a, &b), RT_UNKNOWN);
    CHECK_INT(rt_take(&t, s[RT_SLOTS], 60, &a, &b), RT_OK);
    CHECK(a == DEP && b == DEP);
    for (int i = 1; i < RT_SLOTS; i++)
        CHECK_INT(rt_take(&t, s[i], 60, &a, &b), RT_OK);
    /* a reported entry is evicted like any other: the oldest one goes (s[1]) */
    rt_note(&t, s[RT_SLOTS + 1], UNK, UNK, 70);
    CHECK_INT(rt_take(&t, s[1], 80, &a, &b), RT_UNKNOWN);
    CHECK_INT(rt_take(&t, s[2], 80, &a, &b), RT_AGAIN);
    CHECK_INT(rt_take(&t, s[RT_SLOTS + 1], 80, &a, &b), RT_OK);
    /* out-of-range kinds are stored as unknown */
    rt_note(&t, s[0], (enum proto_nat)9, (enum proto_nat) - 1, 90);
    CHECK_INT(rt_take(&t, s[0], 91, &a, &b), RT_OK);
    CHECK(a == UNK && b == UNK);
    CHECK_STR(rt_verdict_name(RT_AGAIN), "already reported");
    CHECK_STR(rt_verdict_name(RT_UNKNOWN), "unknown session");
}

CHECK_MAIN(TEST(t_once), TEST(t_expiry), TEST(t_eviction))
