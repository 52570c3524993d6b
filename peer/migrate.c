/* Relay first, then direct: the pure decisions (peer/migrate.h; docs/design/resume.md 4.6). */
#include "peer/migrate.h"

uint64_t migrate_grace_ms(uint32_t ctl_rtt_us, uint64_t direct_timeout_ms, int64_t flag_ms)
{
    uint64_t g;
    if (flag_ms >= 0) {
        g = (uint64_t)flag_ms;
    } else if (ctl_rtt_us == 0) {
        g = MIGRATE_GRACE_UNKNOWN_MS;
    } else {
        /* at most 2 x 4294967295 + 999: far inside 64 bits */
        g = ((uint64_t)ctl_rtt_us * MIGRATE_GRACE_RTTS + 999u) / 1000u;
        if (g < MIGRATE_GRACE_MIN_MS)
            g = MIGRATE_GRACE_MIN_MS;
    }
    return g < direct_timeout_ms ? g : direct_timeout_ms;
}

enum migrate_why migrate_relay_first_why(const struct migrate_when *w)
{
    if (!w->relay_offered)
        return MIGRATE_NO_RELAY_OFFER;
    if (w->no_relay)
        return MIGRATE_NO_RELAY_FLAG;
    if (w->relay_only)
        return MIGRATE_RELAY_ONLY;
    if (!w->direct_punch)
        return MIGRATE_NO_DIRECT;
    if (w->direct_first)
        return MIGRATE_DIRECT_FIRST;
    if (!w->self_resume)
        return MIGRATE_NO_SELF_RESUME;
    if (!w->peer_resume)
        return MIGRATE_NO_PEER_RESUME;
    if (w->birthday)
        return MIGRATE_BIRTHDAY;
    return MIGRATE_YES;
}

bool migrate_relay_first(const struct migrate_when *w)
{
    return migrate_relay_first_why(w) == MIGRATE_YES;
}

const char *migrate_why_str(enum migrate_why why)
{
    switch (why) {
    case MIGRATE_YES:
        return "relay first";
    case MIGRATE_NO_RELAY_OFFER:
        return "no relay offered";
    case MIGRATE_NO_RELAY_FLAG:
        return "--no-relay";
    case MIGRATE_RELAY_ONLY:
        return "--relay-only";
    case MIGRATE_NO_DIRECT:
        return "no direct attempt";
    case MIGRATE_DIRECT_FIRST:
        return "--direct-first";
    case MIGRATE_NO_SELF_RESUME:
        return "resume not announced";
    case MIGRATE_NO_PEER_RESUME:
        return "the peer has no resume";
    case MIGRATE_BIRTHDAY:
        return "a birthday punch";
    }
    return "?";
}

int64_t migrate_upgrade_wait_ms(int failed)
{
    static const int64_t waits[MIGRATE_UPGRADE_TRIES - 1] = {1000, 5000};
    if (failed < 1 || failed >= MIGRATE_UPGRADE_TRIES)
        return MIGRATE_UPGRADE_NO_MORE;
    return waits[failed - 1];
}
