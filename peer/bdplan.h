/* Whether a peer takes part in the birthday punch a `punch` plans for it (PROTOCOL.md,
 * "Birthday punching"; docs/design/birthday.md, section 7, "What a peer refuses"): the pure
 * check of the plan against what this peer knows itself, and the caps of its own flags. No I/O;
 * the session logs the refusal and goes on with the ordinary punch or the relay. */
#ifndef TP_BDPLAN_H
#define TP_BDPLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "peer/bday.h"
#include "proto/proto.h"

/* A peer starts no birthday punch within PROTO_BDAY_GAP_MS (10 s) of its last start, however
 * that one ended (a winner, a failure, its session evicted or aborted): the server's rule of one
 * plan per pair per 10 s, kept by the peer itself, so that a lying server cannot restart the
 * burst by ordering punch after punch. And at most BDPLAN_MAX_PER_HOUR starts in any hour. */
#define BDPLAN_GAP_US ((uint64_t)PROTO_BDAY_GAP_MS * 1000u)
#define BDPLAN_MAX_PER_HOUR 60
#define BDPLAN_HOUR_US (3600ull * 1000000ull)
/* The hard side's first SYN gets at least this TTL: 1 dies at our own NAT (a dependent verdict
 * means one NAT hop at least), and opens no mapping there */
#define BDPLAN_MIN_TTL 2

/* What the plan is checked against. */
struct bdplan_ctx {
    /* the punch's observed endpoint of the other peer: the only address the plan may aim at */
    const struct sockaddr_storage *observed;
    /* our own mapping, as our probe measured it: we take only the role we measured */
    enum proto_nat verdict;
    /* a loopback target is allowed: only for tests (the session sets it when the server is on
     * loopback AND TCPUNCH_TEST_BIRTHDAY_LOOPBACK=1 is set; a lying server reached through
     * `ssh -L` is on loopback too, and a birthday at 127.0.0.1 is a scan of our own ports) */
    bool loopback_ok;
    /* our --birthday-k and --birthday-m: what we spend at most; 0 in either: we never take part */
    int cap_k, cap_m;
    /* our hello carried birthday (the server offered it): a plan is only for peers that did */
    bool announced;
    /* a birthday punch of this process is running: one at a time */
    bool busy;
    /* clk_us() now, and of this process's last birthday start (started: 0 when none yet) */
    uint64_t now_us, last_start_us;
    bool started;
    /* this process's birthday starts within the last BDPLAN_HOUR_US */
    int starts_hour;
};

/* Checks plan. Accepted: true, *out is the plan with the count we spend capped to ours (hard:
 * k to cap_k, easy: m to cap_m; the other side's count, only informational, is left; a ttl of 1
 * raised to BDPLAN_MIN_TTL). Refused: false with the reason in why (a sentence fragment: "its
 * target 198.51.100.7 is not the peer's observed address 203.0.113.20"). */
bool bdplan_check(const struct proto_bday *plan, const struct bdplan_ctx *ctx,
                  struct proto_bday *out, char *why, size_t whylen);

/* What an attempt that found no winner came to, for the log and the failure texts (the path
 * line's "direct failed: ..."), from our side's counts: "birthday: none of 1024 guesses met one
 * of 256 mappings", with "; 12 mappings lost to ICMP" or "; the easy NAT reset 13 SYNs" (hard
 * side) when they happened. The other side's count is the plan's (k or m). */
void bdplan_summary(const struct proto_bday *plan, const struct bday_stats *st, char *buf,
                    size_t len);

#endif
