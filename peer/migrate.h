/* Relay first, then direct (docs/design/resume.md, section 4.6): the pure decisions. Whether a
 * punch joins its relay early (after the grace instead of --direct-timeout) and keeps punching
 * for an upgrade, and how long that grace is. No I/O, no clock, no peer_opts: the caller passes
 * plain values (taken from peer_opts, the punch and the hello exchange), so every branch is
 * testable on its own (tests/unit/test_migrate.c). The engine's upgrade hand-off comes later. */
#ifndef TP_MIGRATE_H
#define TP_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

/* The grace is at least this (design 4.6), unless --relay-grace says less or --direct-timeout
 * is shorter. */
#define MIGRATE_GRACE_MIN_MS 50u
/* The grace when the control connection's RTT is unknown (sk_rtt_us 0: no sample yet). As
 * built: 250 ms, two round trips of a 125 ms path, about the RTT between continents; a
 * punch that completes within it never touches the relay, and one that does not is upgraded
 * later anyway, so erring short costs little. */
#define MIGRATE_GRACE_UNKNOWN_MS 250u
/* How many control round trips the automatic grace is (design 4.6: a simultaneous open plus
 * the shake is about 1.5-2 peer RTTs). */
#define MIGRATE_GRACE_RTTS 2u
/* flag_ms for "no --relay-grace": the automatic grace. Every negative value means the same. */
#define MIGRATE_GRACE_AUTO (-1)

/* The relay-first grace in ms, for sess_relay_start.
 * - flag_ms >= 0 (--relay-grace MS): that value, but never above direct_timeout_ms; 0 joins the
 *   relay at once (the punch still goes on, for an upgrade). The 50 ms floor does not apply:
 *   the user asked for it.
 * - flag_ms < 0 (MIGRATE_GRACE_AUTO): MIGRATE_GRACE_RTTS x ctl_rtt_us, rounded up to whole ms,
 *   at least MIGRATE_GRACE_MIN_MS; MIGRATE_GRACE_UNKNOWN_MS when ctl_rtt_us is 0 (unknown);
 *   then never above direct_timeout_ms (which wins over the floor, so a --direct-timeout below
 *   50 ms is kept as given).
 * Computed in 64 bits: any uint32_t RTT is exact (no overflow). */
uint64_t migrate_grace_ms(uint32_t ctl_rtt_us, uint64_t direct_timeout_ms, int64_t flag_ms);

/* What migrate_relay_first looks at, all plain values (design 4.6, "When"). */
struct migrate_when {
    bool relay_offered; /* the punch carries a relay offer */
    bool direct_punch;  /* the punch lets us try direct (no "direct":false, a target to dial) */
    bool no_relay;      /* --no-relay: the relay is never joined */
    bool relay_only;    /* --relay-only: never punches, so never upgrades */
    bool direct_first;  /* --direct-first: today's timing */
    bool self_resume; /* our hello announced "resume" (the server offered it, --resume-timeout > 0)
                       */
    bool peer_resume; /* punch.peer_features has "resume" */
    /* the punch carries a birthday plan (punch.birthday). As built, an upgrade is a new punch,
     * and the server plans no second birthday punch within PROTO_BDAY_GAP_MS: relay first
     * would trade the plan's likely direct path for the relay, so today's timing */
    bool birthday;
};

/* Why relay first does not apply (MIGRATE_YES when it does); the first reason in this order. */
enum migrate_why {
    MIGRATE_YES = 0,
    MIGRATE_NO_RELAY_OFFER, /* no relay in the punch */
    MIGRATE_NO_RELAY_FLAG,  /* --no-relay */
    MIGRATE_RELAY_ONLY,     /* --relay-only */
    MIGRATE_NO_DIRECT,      /* the punch has no direct attempt */
    MIGRATE_DIRECT_FIRST,   /* --direct-first */
    MIGRATE_NO_SELF_RESUME, /* resume not announced by us (or --resume-timeout 0) */
    MIGRATE_NO_PEER_RESUME, /* the peer did not announce resume: a relayed stream could never move
                             */
    MIGRATE_BIRTHDAY,       /* a birthday plan: its window is longer than any grace, and an
                               upgrade could not birthday-punch again for 10 s */
};

enum migrate_why migrate_relay_first_why(const struct migrate_when *w);
/* Relay first applies: join the relay after migrate_grace_ms and keep punching for an upgrade.
 * false: today's timing (relay at --direct-timeout, if at all). */
bool migrate_relay_first(const struct migrate_when *w);
/* The upgrade's attempts (as built, resume.md 4.6): at most MIGRATE_UPGRADE_TRIES (DCUtR's
 * 3), the second 1 s after the first failed, the third 5 s after the second: a direct path
 * slowed by loss usually comes within seconds, and a failed attempt costs a control connection
 * and a punch. The wait before the next attempt after `failed` failed ones (1..), or
 * MIGRATE_UPGRADE_NO_MORE when the session stays on the relay. */
#define MIGRATE_UPGRADE_TRIES 3
#define MIGRATE_UPGRADE_NO_MORE (-1)
int64_t migrate_upgrade_wait_ms(int failed);

/* A few words for -v ("relay first", "no relay offered", ...); never NULL. */
const char *migrate_why_str(enum migrate_why why);

#endif
