/* Whether a peer takes part in the birthday punch a `punch` plans for it (PROTOCOL.md,
 * "Birthday punching"; docs/design/birthday.md, section 7, "What a peer refuses"): the pure
 * check of the plan against what this peer knows itself, and the caps of its own flags. No I/O;
 * the session logs the refusal and goes on with the ordinary punch or the relay. */
#ifndef TP_BDPLAN_H
#define TP_BDPLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "peer/bday.h"
#include "proto/proto.h"

/* What the plan is checked against. */
struct bdplan_ctx {
    /* the punch's observed endpoint of the other peer: the only address the plan may aim at */
    const struct sockaddr_storage *observed;
    /* our own mapping, as our probe measured it: we take only the role we measured */
    enum proto_nat verdict;
    /* the server is on loopback (every peer it introduces is on this host): a loopback target
     * is allowed, as punch_candidates allows loopback candidates */
    bool loopback_ok;
    /* our --birthday-k and --birthday-m: what we spend at most; 0 in either: we never take part */
    int cap_k, cap_m;
    /* our hello carried birthday (the server offered it): a plan is only for peers that did */
    bool announced;
    /* a birthday punch of this process is running: one at a time */
    bool busy;
};

/* Checks plan. Accepted: true, *out is the plan with the count we spend capped to ours (hard:
 * k to cap_k, easy: m to cap_m; the other side's count, only informational, is left). Refused:
 * false with the reason in why (a sentence fragment: "its target 198.51.100.7 is not the
 * peer's observed address 203.0.113.20"). */
bool bdplan_check(const struct proto_bday *plan, const struct bdplan_ctx *ctx,
                  struct proto_bday *out, char *why, size_t whylen);

/* What an attempt that found no winner came to, for the log and the failure texts (the path
 * line's "direct failed: ..."), from our side's counts: "birthday: none of 1024 guesses met one
 * of 256 mappings", with "; 12 mappings lost to ICMP" or "; the easy NAT reset 13 SYNs" (hard
 * side) when they happened. The other side's count is the plan's (k or m). */
void bdplan_summary(const struct proto_bday *plan, const struct bday_stats *st, char *buf,
                    size_t len);

#endif
