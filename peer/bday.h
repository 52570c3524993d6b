/* The birthday engine (PROTOCOL.md, "Birthday punching"; docs/design/birthday.md): the socket
 * work of one birthday attempt, without the handshake. The hard side opens k connections to the
 * easy peer's public endpoint, each from its own ephemeral port, the first SYN sent with a low
 * IP TTL (it opens a mapping in our NATs and dies before the other NAT) and the normal TTL set
 * back at once; the easy side dials m guesses at ports of the hard NAT's address from the shared
 * port, paced over pace_ms, each closed before its first retransmission. Every connection that
 * completes is handed to the caller (which runs the handshake on it), and the guessing goes on
 * (a completed connection may be anyone's: only the handshake says it is the peer's); the
 * caller stops the engine when one has won, which closes every other socket at once.
 *
 * The engine never sends to anything but cfg->target's address, never more than k (hard) or m
 * (easy) connect() calls, never more than 2 SYNs per hard socket (TCP_SYNCNT 1) or 1 per guess,
 * and closes every socket within its window: it ends by itself. */
#ifndef TP_BDAY_H
#define TP_BDAY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "proto/proto.h"

/* Each guess lives this long: closed before the kernel's first SYN retransmission (1 s), so a
 * guess costs exactly one SYN. */
#define BDAY_GUESS_LIFE_MS 600
/* The hard sockets live until t0 + pace + BDAY_HARD_GRACE_MS, but never past t0 +
 * BDAY_HARD_MAX_LIFE_MS (bday_hard_close_ms): each sends its first SYN (low TTL) and one
 * retransmission (normal TTL) 1 s later, and is closed before the next, which Linux 6.7+ sends
 * 2 s after the first (net.ipv4.tcp_syn_linear_timeouts, default 4: the first retransmissions
 * 1 s apart; the classic backoff sends it at 3 s). Each also has TCP_SYNCNT 1: the kernel gives
 * it up by itself 3 s after its first SYN (measured on 6.18 with linear timeouts: SYNs at 0, 1
 * and 2 s, then ETIMEDOUT at 3 s; with the classic backoff: 0 and 1 s), so even a close delayed
 * by a stalled loop costs one SYN more at most. So a hard socket sends 2 SYNs. */
#define BDAY_HARD_GRACE_MS 1500
#define BDAY_HARD_MAX_LIFE_MS 1800
/* Descriptors left for everything else when the engine raises or fits RLIMIT_NOFILE. */
#define BDAY_FD_RESERVE 64

struct bday_cfg {
    enum proto_bday_role role;
    /* hard: the easy peer's endpoint; easy: the hard NAT's address (port ignored) */
    struct sockaddr_storage target;
    /* easy: the shared port (bound with SO_REUSEADDR/SO_REUSEPORT like the punch engine);
     * hard: the wildcard address, port 0 (each socket gets its own ephemeral port) */
    struct sockaddr_storage local;
    int k, m;
    int ttl;     /* hard: TTL of the first SYN (>= 1; the caller resolves the plan's 0) */
    int pace_ms; /* easy: spread the guesses over this */
    int port_lo, port_hi; /* easy: guess in this range */
    uint64_t start_us;    /* clk_us() of t0; the easy side starts easy_delay_us later */
    uint64_t easy_delay_us;
};

/* What an attempt did, for the path line and the -v log. */
struct bday_stats {
    int sent;        /* connect() calls made (SYNs) */
    int planned;     /* k (hard) or m (easy), after fitting the descriptor limit */
    int live_max;    /* most sockets open at once */
    int icmp;        /* hard: sockets ended by an ICMP error (EHOSTUNREACH, ENETUNREACH...) */
    int refused;     /* sockets ended by a RST (ECONNREFUSED) */
    int other_err;   /* sockets ended by another error */
    int connected;   /* connections handed to the caller */
    int winner_index; /* hard: which socket; easy: which guess (0-based); -1: none yet */
    bool fitted;     /* k or m was lowered to fit RLIMIT_NOFILE */
};

struct bday;

/* A connection completed (fd is connected, nonblocking, TTL normal; the caller owns it now).
 * index is the socket (hard) or guess (easy) number. */
typedef void (*bday_conn_cb)(struct bday *b, int fd, int index, void *arg);
/* The window is over: every socket is closed and no more connections will come (called at
 * most once, never after bday_stop). */
typedef void (*bday_over_cb)(struct bday *b, void *arg);

/* Starts the attempt on loop. NULL with a reason in err when it cannot (a socket error before
 * anything was sent). */
struct bday *bday_start(uv_loop_t *loop, const struct bday_cfg *cfg, bday_conn_cb conn,
                        bday_over_cb over, void *arg, char *err, size_t errlen);

/* Closes every socket at once (sends nothing: a socket in SYN_SENT closes silently) and frees
 * the engine; no callback after. NULL is a no-op. */
void bday_stop(struct bday *b);

void bday_get_stats(const struct bday *b, struct bday_stats *out);

/* ---- the pure parts, unit-tested ---- */

/* The order of the easy side's guesses: n distinct ports of [lo, hi] into out (n <= hi - lo + 1,
 * else as many as there are), those of [1024, 2047] inside the range first (Linux picks them
 * twice as often: design section 3, finding 5), each part in random order drawn from rnd (a
 * uniform 32-bit source, for tests). Returns how many. */
int bday_guess_order(int lo, int hi, int n, uint16_t *out, uint32_t (*rnd)(void *), void *rarg);

/* When guess i of m goes out, in microseconds after the easy side's start: evenly over pace_ms. */
uint64_t bday_guess_at_us(int i, int m, int pace_ms);

/* When the hard sockets are closed, in ms after t0: pace_ms + BDAY_HARD_GRACE_MS, at most
 * BDAY_HARD_MAX_LIFE_MS. */
uint64_t bday_hard_close_ms(int pace_ms);

/* Most guesses alive at once for m guesses over pace_ms, each living BDAY_GUESS_LIFE_MS. */
int bday_live_guesses(int m, int pace_ms);

/* Fits an attempt into a descriptor limit: the sockets it needs at once (hard: k; easy:
 * bday_live_guesses) plus `open` already in use plus BDAY_FD_RESERVE must be <= limit. Returns
 * the largest count <= want that fits (hard: k; easy: m at pace_ms), 0 when none does. */
int bday_fit(enum proto_bday_role role, int want, int pace_ms, long open, long limit);

#endif
