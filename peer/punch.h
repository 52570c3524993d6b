/* The punch engine: simultaneous connect() from one local port to every candidate, a listener
 * on the same port, retries on RST, and the session handshake that picks exactly one winner. */
#ifndef TP_PUNCH_H
#define TP_PUNCH_H

#include <uv.h>

#include "peer/exit.h"
#include "peer/link.h"
#include "peer/rshake.h"
#include "peer/shake.h"

#define PUNCH_MAX_CAND (PROTO_MAX_ENDPOINTS + 2)

/* What one punch may spend (PROTOCOL.md, "Punch budget"): connect() calls, each one SYN (plus
 * the kernel's retransmissions while it is pending), bursts and stall re-dials included. The
 * other peer's self-declared endpoints may name any host: a few SYNs each, no bursts. What the
 * server observed (or the user gave) gets the retries that RST-answering NATs need, within a
 * total per punch whatever --timeout says. `tcpunch direct` is not budgeted: its one candidate
 * is the user's. */
#define PUNCH_BUDGET_DECLARED 16
#define PUNCH_BUDGET_OBSERVED 384
#define PUNCH_BUDGET_TOTAL 512

struct punch_cand {
    struct sockaddr_storage addr;
    const char *kind; /* "public", "port-preserved", "lan", "ipv6", "given" */
    /* self-declared by the other peer (or guessed from its word), not observed by the server:
     * PUNCH_BUDGET_DECLARED; false (observed, or given by the user): PUNCH_BUDGET_OBSERVED */
    bool declared;
};

struct punch_cfg {
    struct sockaddr_storage local; /* wildcard address with the shared port */
    /* [::] with the shared port when this host has a global IPv6 address and the port is free
     * there too (ss_family 0 otherwise): IPv6 candidates are dialled from it */
    struct sockaddr_storage local6;
    int ncand;
    struct punch_cand cand[PUNCH_MAX_CAND];
    uint64_t timeout_ms;
    uint32_t rtt_us; /* of the control connection (0: unknown): scales the handshake stall time */
    /* clk_us() time of the first SYN (0: at once); both peers aim at the same instant */
    uint64_t start_us;
    /* NULL (and resume NULL): plain TCP (direct mode) — the first connection wins, and inbound
     * ones only from the host of cand[0]. */
    const struct shake_ctx *shake;
    /* no direct attempt at all (punch said direct:false): no SYNs and no listener; only
     * connections given to punch_adopt compete */
    bool relay_only;
    /* no listener of its own: the caller listens on the shared port for several engines and
     * hands each its connections (punch_adopt, PUNCH_ADOPT_INBOUND); with one listener per engine
     * the kernel would spread inbound SYNs across them */
    bool shared_listener;
    /* the server is on loopback, so every peer it introduces is on this host: loopback
     * candidates are allowed (never otherwise; PROTOCOL.md, "Candidates") */
    bool loopback_ok;
    int nrefused; /* candidates of the punch left out by that policy (punch_candidates) */
    /* a birthday punch (peer/bday.c) runs beside this engine: its connections come through
     * punch_adopt (PUNCH_ADOPT_BIRTHDAY), only from bday_target's address, and it says how it
     * went with punch_note; the caller has left the IPv4 candidates out. With no candidate
     * left the engine waits for them until the deadline, as for inbound ones. */
    bool birthday;
    struct sockaddr_storage bday_target;
    /* Resume mode (docs/design/resume.md 4.4): every connection runs the resume lines of
     * peer/rshake under this context instead of the shake (shake is then NULL). The winner's link
     * gets the epoch's keys, link->epoch, link->peer_rx and link->gone; resume->rx is what we
     * announce and must not change during the punch. Not owned.
     * As built: every connection (direct attempts, inbound, birthday and relayed ones given to
     * punch_adopt) gets its own copy of the context with a fresh ephemeral key (rshake_init),
     * wiped when the connection closes. The responder sends its offer (epoch last_epoch + 1) on
     * each connection as soon as it is up and wins on the first one whose answer verifies (it
     * sends `resumed`); the initiator answers the first valid offer and keeps later ones as
     * spares, answered in turn if the answered connection fails, and wins on a valid
     * `resumed`. Anything else closes that connection only; stall times, re-dials, budgets and
     * the inbound checks are the shake's. The winner's link also gets resume = true,
     * encrypted, role and root (not rs, nor peer_pk: the caller's session holds them), and the
     * usual fd, remote, via, prefill, relayed. The caller raises last_epoch afterwards.
     * punch_start refuses (NULL, err) a resume punch with shake set too, or with no epoch left
     * (last_epoch UINT32_MAX). */
    const struct rshake_ctx *resume;
};

struct punch;
/* status: EXIT_DONE with link filled, or EXIT_PUNCH / EXIT_LOCAL with a reason in why; in a
 * code session EXIT_CODE_FAILED when nothing completed and a connection showed the peer's key
 * with a signature that does not cover our code exchange (SHAKE_CODE). */
typedef void (*punch_done_cb)(struct punch *p, int status, const char *why, void *arg);

/* Starts punching on loop; done is called exactly once, then the punch frees itself. */
struct punch *punch_start(uv_loop_t *loop, const struct punch_cfg *cfg, struct peer_link *link,
                          punch_done_cb done, void *arg, char *err, size_t errlen);

/* What a connection given to punch_adopt is. */
enum punch_adopt_kind {
    PUNCH_ADOPT_INBOUND, /* accepted by a shared listener (reported as "inbound") */
    PUNCH_ADOPT_RELAY,   /* joined through the server's relay (reported as the path's name) */
    /* completed by the birthday engine (reported as direct, "birthday"): taken only from the
     * address of cfg->bday_target, up to PUNCH_MAX_BIRTHDAY at once */
    PUNCH_ADOPT_BIRTHDAY,
};

/* Birthday connections handshaking at once: a hit is one connection, more than a few at once
 * is nobody's plan. */
#define PUNCH_MAX_BIRTHDAY 16

/* Takes over fd, a connected stream that is not one of our direct attempts (a relayed
 * connection, or an inbound one accepted by a shared listener): the same handshake runs on it
 * and it competes with the direct attempts. An inbound one is taken only from a host of the
 * peer's candidates, and only up to a bound. Nothing of the peer's may have been read from fd
 * yet: the engine reads the handshake and what follows it itself, in reads that fit
 * link->prefill. On failure fd is closed and -1 returned. */
int punch_adopt(struct punch *p, int fd, enum punch_adopt_kind kind);
/* punch_adopt, with the birthday engine's index of the connection (its socket or guess),
 * which the link reports when it wins (link->bday_n = index + 1). */
int punch_adopt_index(struct punch *p, int fd, enum punch_adopt_kind kind, int index);

/* Connections of kind adopted and still handshaking (on the engine's list, not yet closed): for
 * the birthday, whether a connection the engine handed over may still win. A connection that
 * failed or stalled in its handshake has left the list; one the engine refused (not from the
 * target, or past PUNCH_MAX_BIRTHDAY) never joined it. 0 after the punch finished. */
int punch_adopted_pending(const struct punch *p, enum punch_adopt_kind kind);

/* Birthday: what the attempt came to so far, for the failure texts (the punch's why, and
 * link->direct_why of a relayed link): "birthday: none of 1024 guesses met ...". */
void punch_note(struct punch *p, const char *note);

/* Birthday: our side of the attempt is over without a winner. With no candidate of our own
 * left, the engine has nothing to wait for but the connections that may still come (the other
 * side's window may end later) or finish their handshake: its deadline is brought forward to
 * after_ms from now (never put back), where it ends as at any deadline (EXIT_PUNCH, the note
 * in the reason); not while a relayed connection is handshaking. Returns whether the deadline
 * moved. */
bool punch_bday_over(struct punch *p, uint64_t after_ms);

/* Ends the punch now with status and why (done is called as for any end). */
void punch_abort(struct punch *p, int status, const char *why);
/* connect() calls made so far (a traversal report's attempts; valid in the done callback). */
unsigned punch_attempts(const struct punch *p);

/* Fills cfg->cand from a punch message: the peer's observed endpoint, its observed address with
 * its own port, its IPv6 endpoint as the server observed it (observed6, NULL: none), its global
 * IPv6 endpoints, then (when self, our observed endpoint, has the same public address: one NAT
 * for both) its LAN endpoints; other families than local's, duplicates and addresses that no
 * peer can have (loopback unless cfg->loopback_ok, link-local, multicast, broadcast,
 * unspecified, reserved: common/addrpol) left out, the latter logged with -v and counted in
 * nrefused. Only observed and observed6 count as observed for the budget. */
void punch_candidates(struct punch_cfg *cfg, const struct sockaddr_storage *observed,
                      const struct sockaddr_storage *observed6, const struct proto_eplist *lan,
                      const struct sockaddr_storage *self);

/* For an IPv4 control connection on local: when this host has global IPv6 addresses and can
 * bind [::] on the same port, sets *local6 to that wildcard endpoint and writes the global
 * endpoints (with the port) to out; returns how many (at most max), 0 when IPv6 is out. */
int punch_local6(const struct sockaddr_storage *local, struct sockaddr_storage *local6,
                 struct sockaddr_storage *out, int max);

#endif
