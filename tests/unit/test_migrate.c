/* Relay first and the resume waits (peer/migrate.c, peer/resume.c; docs/design/resume.md 4.5,
 * 4.6): the grace's every branch and bound (unknown and huge RTTs, the floor, the cap, the
 * override), each reason relay first does not apply, the two tables of waits with their jitter's
 * range, and the resume deadline at its edges. All pure: no loop, no clock. */
#include <stdint.h>

#include "check.h"
#include "peer/migrate.h"
#include "peer/resume.h"

/* automatic: 2 x RTT, rounded up to whole ms */
static void t_grace_auto(void)
{
    CHECK_INT(migrate_grace_ms(40000, 5000, MIGRATE_GRACE_AUTO), 80);
    CHECK_INT(migrate_grace_ms(100000, 5000, -1), 200);
    CHECK_INT(migrate_grace_ms(100001, 5000, -1), 201); /* 200.002 ms rounds up */
    CHECK_INT(migrate_grace_ms(25000, 5000, -1), 50);   /* exactly the floor */
    CHECK_INT(migrate_grace_ms(25001, 5000, -1), 51);
    CHECK_INT(MIGRATE_GRACE_RTTS, 2);
    /* every negative flag is automatic */
    CHECK_INT(migrate_grace_ms(40000, 5000, -7), 80);
    CHECK_INT(migrate_grace_ms(40000, 5000, INT64_MIN), 80);
}

static void t_grace_floor(void)
{
    CHECK_INT(MIGRATE_GRACE_MIN_MS, 50);
    CHECK_INT(migrate_grace_ms(1, 5000, -1), 50); /* 1 us: the floor, not 1 ms */
    CHECK_INT(migrate_grace_ms(500, 5000, -1), 50);
    CHECK_INT(migrate_grace_ms(24999, 5000, -1), 50);
}

static void t_grace_unknown(void)
{
    CHECK_INT(MIGRATE_GRACE_UNKNOWN_MS, 250);
    CHECK_INT(migrate_grace_ms(0, 5000, -1), 250);
    /* capped like any other */
    CHECK_INT(migrate_grace_ms(0, 100, -1), 100);
    /* an override does not need an RTT */
    CHECK_INT(migrate_grace_ms(0, 5000, 30), 30);
}

static void t_grace_cap(void)
{
    CHECK_INT(migrate_grace_ms(3000000, 5000, -1), 5000); /* 6 s > --direct-timeout 5 s */
    CHECK_INT(migrate_grace_ms(2500000, 5000, -1), 5000); /* exactly at the cap */
    CHECK_INT(migrate_grace_ms(2499000, 5000, -1), 4998);
    /* the cap wins over the floor: --direct-timeout below 50 ms is kept */
    CHECK_INT(migrate_grace_ms(1000, 20, -1), 20);
    CHECK_INT(migrate_grace_ms(1000, 0, -1), 0);
    CHECK_INT(migrate_grace_ms(40000, 0, 100), 0);
}

/* the largest RTTs: computed in 64 bits, no wrap */
static void t_grace_huge(void)
{
    /* 2 x 4294967295 us = 8589934.59 ms, rounded up */
    CHECK_INT(migrate_grace_ms(UINT32_MAX, UINT64_MAX, -1), 8589935);
    CHECK_INT(migrate_grace_ms(UINT32_MAX, 5000, -1), 5000);
    CHECK_INT(migrate_grace_ms(UINT32_MAX / 2 + 1, UINT64_MAX, -1), 4294968);
    CHECK_INT(migrate_grace_ms(40000, UINT64_MAX, INT64_MAX) == (uint64_t)INT64_MAX, 1);
    CHECK(migrate_grace_ms(40000, UINT64_MAX - 1, INT64_MAX) == (uint64_t)INT64_MAX);
}

static void t_grace_override(void)
{
    CHECK_INT(migrate_grace_ms(40000, 5000, 0), 0);       /* join the relay at once */
    CHECK_INT(migrate_grace_ms(40000, 5000, 10), 10);     /* below the floor: as asked */
    CHECK_INT(migrate_grace_ms(40000, 5000, 1000), 1000); /* above the automatic 80 */
    CHECK_INT(migrate_grace_ms(40000, 5000, 5000), 5000);
    CHECK_INT(migrate_grace_ms(40000, 5000, 9000), 5000); /* never above --direct-timeout */
    CHECK_INT(migrate_grace_ms(UINT32_MAX, 5000, 0), 0);
}

static struct migrate_when all_yes(void)
{
    return (struct migrate_when){.relay_offered = true,
                                 .direct_punch = true,
                                 .no_relay = false,
                                 .relay_only = false,
                                 .direct_first = false,
                                 .self_resume = true,
                                 .peer_resume = true};
}

static void t_relay_first_yes(void)
{
    struct migrate_when w = all_yes();
    CHECK(migrate_relay_first(&w));
    CHECK_INT(migrate_relay_first_why(&w), MIGRATE_YES);
    CHECK_STR(migrate_why_str(MIGRATE_YES), "relay first");
}

/* each condition alone turns it off, with its own reason */
static void t_relay_first_each_no(void)
{
    struct migrate_when w;

    w = all_yes(), w.relay_offered = false;
    CHECK(!migrate_relay_first(&w));
    CHECK_INT(migrate_relay_first_why(&w), MIGRATE_NO_RELAY_OFFER);
    w = all_yes(), w.no_relay = true;
    CHECK(!migrate_relay_first(&w));
    CHECK_INT(migrate_relay_first_why(&w), MIGRATE_NO_RELAY_FLAG);
    w = all_yes(), w.relay_only = true;
    CHECK(!migrate_relay_first(&w));
    CHECK_INT(migrate_relay_first_why(&w), MIGRATE_RELAY_ONLY);
    w = all_yes(), w.direct_punch = false;
    CHECK(!migrate_relay_first(&w));
    CHECK_INT(migrate_relay_first_why(&w), MIGRATE_NO_DIRECT);
    w = all_yes(), w.direct_first = true;
    CHECK(!migrate_relay_first(&w));
    CHECK_INT(migrate_relay_first_why(&w), MIGRATE_DIRECT_FIRST);
    w = all_yes(), w.self_resume = false;
    CHECK(!migrate_relay_first(&w));
    CHECK_INT(migrate_relay_first_why(&w), MIGRATE_NO_SELF_RESUME);
    w = all_yes(), w.peer_resume = false;
    CHECK(!migrate_relay_first(&w));
    CHECK_INT(migrate_relay_first_why(&w), MIGRATE_NO_PEER_RESUME);
    w = all_yes(), w.birthday = true;
    CHECK(!migrate_relay_first(&w));
    CHECK_INT(migrate_relay_first_why(&w), MIGRATE_BIRTHDAY);

    /* all off: the first reason in the documented order */
    w = (struct migrate_when){.no_relay = true, .relay_only = true, .direct_first = true};
    CHECK_INT(migrate_relay_first_why(&w), MIGRATE_NO_RELAY_OFFER);
    w.relay_offered = true;
    CHECK_INT(migrate_relay_first_why(&w), MIGRATE_NO_RELAY_FLAG);
}

static void t_why_str(void)
{
    CHECK_STR(migrate_why_str(MIGRATE_NO_RELAY_OFFER), "no relay offered");
    CHECK_STR(migrate_why_str(MIGRATE_NO_RELAY_FLAG), "--no-relay");
    CHECK_STR(migrate_why_str(MIGRATE_RELAY_ONLY), "--relay-only");
    CHECK_STR(migrate_why_str(MIGRATE_NO_DIRECT), "no direct attempt");
    CHECK_STR(migrate_why_str(MIGRATE_DIRECT_FIRST), "--direct-first");
    CHECK_STR(migrate_why_str(MIGRATE_NO_SELF_RESUME), "resume not announced");
    CHECK_STR(migrate_why_str(MIGRATE_NO_PEER_RESUME), "the peer has no resume");
    CHECK_STR(migrate_why_str(MIGRATE_BIRTHDAY), "a birthday punch");
    CHECK_STR(migrate_why_str((enum migrate_why)99), "?");
}

/* the tables of 4.5 with rnd 0: exactly the design's values */
static void t_next_tables(void)
{
    static const uint64_t nf[] = {250, 500, 1000, 2000, 2000, 2000};
    static const uint64_t pf[] = {0, 1000, 2000, 4000, 5000, 5000, 5000};
    for (int i = 0; i < (int)(sizeof nf / sizeof nf[0]); i++)
        CHECK_INT(resume_next_ms(i, true, 0), nf[i]);
    for (int i = 0; i < (int)(sizeof pf / sizeof pf[0]); i++)
        CHECK_INT(resume_next_ms(i, false, 0), pf[i]);
    /* far past the table, and below it */
    CHECK_INT(resume_next_ms(INT32_MAX, true, 0), 2000);
    CHECK_INT(resume_next_ms(INT32_MAX, false, 0), 5000);
    CHECK_INT(resume_next_ms(-1, true, 0), 250);
    CHECK_INT(resume_next_ms(INT32_MIN, false, 0), 0);
}

/* the jitter: base .. base + base/4, both ends reached, never beyond, 0 stays 0 */
static void t_next_jitter(void)
{
    CHECK_INT(resume_next_ms(0, true, 62), 312); /* 250 + 62: the top (250/4 = 62) */
    CHECK_INT(resume_next_ms(0, true, 63), 250); /* wraps to the bottom */
    CHECK_INT(resume_next_ms(4, false, 1250), 6250);
    CHECK_INT(resume_next_ms(4, false, 1251), 5000);
    CHECK_INT(RESUME_MAX_WAIT_MS, 6250);
    for (uint32_t r = 0; r < 100; r++)
        CHECK_INT(resume_next_ms(0, false, r), 0);
    CHECK_INT(resume_next_ms(0, false, UINT32_MAX), 0);

    static const uint32_t rnds[] = {
        0,         1,   2,    61,   62,   63,          124,         125,
        499,       500, 1249, 1250, 1251, 0x7fffffffu, 0x80000000u, UINT32_MAX - 1,
        UINT32_MAX};
    for (int a = -2; a < 8; a++)
        for (int nfound = 0; nfound < 2; nfound++) {
            uint64_t base = resume_next_ms(a, nfound, 0);
            for (unsigned k = 0; k < sizeof rnds / sizeof rnds[0]; k++) {
                uint64_t v = resume_next_ms(a, nfound, rnds[k]);
                if (!CHECK(v >= base && v <= base + base / 4 && v <= RESUME_MAX_WAIT_MS))
                    fprintf(stderr, "  attempt %d nf %d rnd %u: %llu\n", a, nfound, rnds[k],
                            (unsigned long long)v);
            }
        }
    /* the jitter moves something: not always the base */
    CHECK(resume_next_ms(3, true, 7) == 2007);
}

static void t_give_up(void)
{
    const uint64_t T = 120000;
    CHECK(!resume_give_up(1000, 1000, T));
    CHECK(!resume_give_up(1000 + T - 1, 1000, T));
    CHECK(resume_give_up(1000 + T, 1000, T));
    CHECK(resume_give_up(1000 + T + 1, 1000, T));
    CHECK_INT(resume_left_ms(1000, 1000, T), T);
    CHECK_INT(resume_left_ms(1000 + T - 1, 1000, T), 1);
    CHECK_INT(resume_left_ms(1000 + T, 1000, T), 0);
    CHECK_INT(resume_left_ms(UINT64_MAX, 1000, T), 0);
    /* resume off: at once */
    CHECK(resume_give_up(5, 5, 0));
    CHECK_INT(resume_left_ms(5, 5, 0), 0);
    /* now before started counts as 0 elapsed */
    CHECK(!resume_give_up(10, 500, T));
    CHECK_INT(resume_left_ms(10, 500, T), T);
    CHECK(resume_give_up(10, 500, 0));
    /* no overflow where started + timeout would wrap */
    CHECK(!resume_give_up(UINT64_MAX, UINT64_MAX - 10, T));
    CHECK_INT(resume_left_ms(UINT64_MAX, UINT64_MAX - 10, T), T - 10);
    CHECK(!resume_give_up(UINT64_MAX - 1, 0, UINT64_MAX));
    CHECK(resume_give_up(UINT64_MAX, 0, UINT64_MAX));
    CHECK(resume_give_up(UINT64_MAX, 0, UINT64_MAX - 1));
    CHECK_INT(resume_left_ms(UINT64_MAX - 1, 0, UINT64_MAX), 1);
}

/* The upgrade's attempts: 3 in all, 1 s then 5 s between them, none after the third. */
static void t_upgrade_waits(void)
{
    CHECK_INT(MIGRATE_UPGRADE_TRIES, 3);
    CHECK(migrate_upgrade_wait_ms(0) == MIGRATE_UPGRADE_NO_MORE); /* nothing failed yet */
    CHECK(migrate_upgrade_wait_ms(1) == 1000);
    CHECK(migrate_upgrade_wait_ms(2) == 5000);
    CHECK(migrate_upgrade_wait_ms(3) == MIGRATE_UPGRADE_NO_MORE);
    CHECK(migrate_upgrade_wait_ms(99) == MIGRATE_UPGRADE_NO_MORE);
    CHECK(migrate_upgrade_wait_ms(-1) == MIGRATE_UPGRADE_NO_MORE);
}

CHECK_MAIN(TEST(t_grace_auto), TEST(t_grace_floor), TEST(t_grace_unknown), TEST(t_grace_cap),
           TEST(t_grace_huge), TEST(t_grace_override), TEST(t_relay_first_yes),
           TEST(t_relay_first_each_no), TEST(t_why_str), TEST(t_next_tables), TEST(t_next_jitter),
           TEST(t_give_up), TEST(t_upgrade_waits))
