#include "peer/bdplan.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/addrpol.h"
#include "common/endpoint.h"

static bool bp_refuse(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool bp_refuse(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return false;
}

static bool bp_in(int v, int lo, int hi)
{
    return v >= lo && v <= hi;
}

/* The fields' ranges (proto.h, PROTO_BDAY_*): decoding refuses anything else already; checked
 * again here, so that nothing but a valid plan ever reaches the socket engine. */
static bool bp_ranges(const struct proto_bday *p, char *why, size_t len)
{
    if (p->role != PROTO_BDAY_HARD && p->role != PROTO_BDAY_EASY)
        return bp_refuse(why, len, "its role is neither hard nor easy");
    if (!bp_in(p->k, 1, PROTO_BDAY_MAX_K))
        return bp_refuse(why, len, "k %d is outside 1-%d", p->k, PROTO_BDAY_MAX_K);
    if (!bp_in(p->m, 1, PROTO_BDAY_MAX_M))
        return bp_refuse(why, len, "m %d is outside 1-%d", p->m, PROTO_BDAY_MAX_M);
    if (!bp_in(p->ttl, 0, PROTO_BDAY_MAX_TTL))
        return bp_refuse(why, len, "ttl %d is outside 0-%d", p->ttl, PROTO_BDAY_MAX_TTL);
    if (!bp_in(p->pace_ms, PROTO_BDAY_MIN_PACE_MS, PROTO_BDAY_MAX_PACE_MS))
        return bp_refuse(why, len, "pace_ms %d is outside %d-%d", p->pace_ms,
                         PROTO_BDAY_MIN_PACE_MS, PROTO_BDAY_MAX_PACE_MS);
    if (!bp_in(p->port_lo, 1, 65535) || !bp_in(p->port_hi, p->port_lo, 65535))
        return bp_refuse(why, len, "its ports [%d, %d] are not a range inside 1-65535", p->port_lo,
                         p->port_hi);
    if (!bp_in(p->easy_delay_us, 0, PROTO_BDAY_MAX_DELAY_US))
        return bp_refuse(why, len, "easy_delay_us %d is outside 0-%d", p->easy_delay_us,
                         PROTO_BDAY_MAX_DELAY_US);
    return true;
}

bool bdplan_check(const struct proto_bday *plan, const struct bdplan_ctx *ctx,
                  struct proto_bday *out, char *why, size_t whylen)
{
    const struct sockaddr *target = (const struct sockaddr *)&plan->target;
    enum ap_class cls;
    char ep[EP_STRLEN], ob[EP_STRLEN];

    if (ctx->cap_k <= 0 || ctx->cap_m <= 0)
        return bp_refuse(why, whylen, "we do not take part (--birthday-k or --birthday-m is 0)");
    if (!ctx->announced)
        return bp_refuse(why, whylen, "we did not announce birthday punching to this server");
    if (ctx->busy)
        return bp_refuse(why, whylen, "another birthday punch of ours is running");
    /* counted from the last start, not the last end: an attempt ended early (its session
     * evicted, aborted, won) makes no room for the next */
    if (ctx->started &&
        (ctx->now_us < ctx->last_start_us || ctx->now_us - ctx->last_start_us < BDPLAN_GAP_US))
        return bp_refuse(why, whylen,
                         "our last birthday punch started %llu ms ago (one per %d s at most)",
                         (unsigned long long)((ctx->now_us - ctx->last_start_us) / 1000),
                         PROTO_BDAY_GAP_MS / 1000);
    if (ctx->starts_hour >= BDPLAN_MAX_PER_HOUR)
        return bp_refuse(why, whylen, "we started %d birthday punches within the hour (%d at most)",
                         ctx->starts_hour, BDPLAN_MAX_PER_HOUR);
    if (!bp_ranges(plan, why, whylen))
        return false;
    /* only the role our own probe measured: a server (or someone on its path) must not make an
     * easy side scan, nor a hard one open mappings for nothing */
    if (ctx->verdict == PROTO_NAT_UNKNOWN)
        return bp_refuse(why, whylen, "it makes us %s, but our probe did not measure our NAT",
                         plan->role == PROTO_BDAY_HARD ? "hard" : "easy");
    if (plan->role == PROTO_BDAY_HARD && ctx->verdict != PROTO_NAT_DEPENDENT)
        return bp_refuse(why, whylen,
                         "it makes us hard, but our probe saw one mapping for all destinations");
    if (plan->role == PROTO_BDAY_EASY && ctx->verdict != PROTO_NAT_INDEPENDENT)
        return bp_refuse(why, whylen,
                         "it makes us easy, but our probe saw a new mapping per destination");
    /* IPv4 global unicast only (the candidate rules, loopback as punch_candidates allows it) */
    if (target->sa_family != AF_INET)
        return bp_refuse(why, whylen, "its target is not an IPv4 address");
    cls = ap_classify(target);
    if (cls == AP_LOOPBACK && !ctx->loopback_ok)
        return bp_refuse(why, whylen,
                         "its target %s is a loopback address (a scan of our own ports; allowed "
                         "only in tests, with TCPUNCH_TEST_BIRTHDAY_LOOPBACK=1 and a server on "
                         "loopback)",
                         ep_format(target, ep, sizeof ep));
    if (!(cls == AP_GLOBAL || (cls == AP_LOOPBACK && ctx->loopback_ok)))
        return bp_refuse(why, whylen, "its target %s is %s, not a global unicast one",
                         ep_format(target, ep, sizeof ep), ap_describe(target));
    /* the server must not aim our SYNs at a third party */
    if (!ap_same_host(target, (const struct sockaddr *)ctx->observed))
        return bp_refuse(why, whylen, "its target %s is not the peer's observed address %s",
                         ep_format(target, ep, sizeof ep),
                         ep_format((const struct sockaddr *)ctx->observed, ob, sizeof ob));
    *out = *plan;
    if (plan->role == PROTO_BDAY_HARD && out->k > ctx->cap_k)
        out->k = ctx->cap_k;
    if (plan->role == PROTO_BDAY_EASY && out->m > ctx->cap_m)
        out->m = ctx->cap_m;
    if (out->ttl > 0 && out->ttl < BDPLAN_MIN_TTL)
        out->ttl = BDPLAN_MIN_TTL;
    return true;
}

/* Appends to buf (of len, holding a string) what fmt says. */
static void bp_add(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bp_add(char *buf, size_t len, const char *fmt, ...)
{
    size_t off = strlen(buf);
    va_list ap;
    if (off + 1 >= len)
        return;
    va_start(ap, fmt);
    vsnprintf(buf + off, len - off, fmt, ap);
    va_end(ap);
}

void bdplan_summary(const struct proto_bday *plan, const struct bday_stats *st, char *buf,
                    size_t len)
{
    bool easy = plan->role == PROTO_BDAY_EASY;
    /* guesses and mappings: ours counted, the other side's as planned */
    int guesses = easy ? st->sent : plan->m, mappings = easy ? plan->k : st->sent;
    if (!len)
        return;
    buf[0] = '\0';
    if (st->connected > 0)
        bp_add(buf, len, "birthday: %d %s sent, %d connected", st->sent,
               easy ? (st->sent == 1 ? "guess" : "guesses")
                    : (st->sent == 1 ? "socket" : "sockets"),
               st->connected);
    else
        bp_add(buf, len, "birthday: none of %d guess%s met one of %d mapping%s", guesses,
               guesses == 1 ? "" : "es", mappings, mappings == 1 ? "" : "s");
    if (!easy && st->icmp > 0)
        bp_add(buf, len, "; %d mapping%s lost to ICMP", st->icmp, st->icmp == 1 ? "" : "s");
    if (!easy && st->refused > 0)
        bp_add(buf, len, "; the easy NAT reset %d SYN%s", st->refused, st->refused == 1 ? "" : "s");
    if (easy && st->refused > 0)
        bp_add(buf, len, "; %d guess%s answered with RST", st->refused,
               st->refused == 1 ? "" : "es");
    if (st->other_err > 0)
        bp_add(buf, len, "; %d socket%s failed otherwise", st->other_err,
               st->other_err == 1 ? "" : "s");
    if (st->fitted)
        bp_add(buf, len, "; %s lowered to %d to fit the descriptor limit", easy ? "m" : "k",
               st->planned);
}
