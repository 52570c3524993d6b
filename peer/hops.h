/* How many IP hops a SYN must travel to have passed every NAT of ours (design/birthday.md,
 * section 6, "TTL"): a few UDP datagrams towards the rendezvous server with TTL 1..HOPS_MAX_TTL,
 * their ICMP time exceeded read back with IP_RECVERR. The first TTL whose ICMP comes from a
 * global address expired past our outermost NAT: a SYN with that TTL has opened our mappings and
 * dies there, before any peer's NAT could answer it with a RST. IPv4 only. */
#ifndef TP_HOPS_H
#define TP_HOPS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#define HOPS_MAX_TTL 8
#define HOPS_DEFAULT_TTL 3  /* when no router answers */
#define HOPS_WAIT_MS 300    /* how long the answers are awaited */

struct hops_result {
    int ttl;         /* the TTL to use (HOPS_DEFAULT_TTL when nothing told) */
    bool measured;   /* ttl came from an ICMP answer */
    int answers;     /* ICMP time exceeded received */
    char why[160];   /* how it was chosen, for -v */
};

struct hops;
typedef void (*hops_done_cb)(struct hops *h, const struct hops_result *r, void *arg);

/* Sends one UDP datagram per TTL 1..HOPS_MAX_TTL to `to` (the server's address, a traceroute
 * port) and reads the errors for HOPS_WAIT_MS (less when the answer is known). done is called
 * once, then the scan frees itself. NULL with err when it cannot start. */
struct hops *hops_start(uv_loop_t *loop, const struct sockaddr *to, hops_done_cb done, void *arg,
                        char *err, size_t errlen);
void hops_cancel(struct hops *h); /* NULL is a no-op; no callback after */

/* The pure rule: given for each TTL 1..n whether an ICMP time exceeded came back and from
 * which IPv4 address (from[i] for TTL i+1, family 0 when none), the TTL to use. */
struct hops_result hops_choose(const struct sockaddr_storage *from, int n);
/* The same, knowing also that the server itself answered (ICMP port unreachable) at TTL
 * dest_ttl (0 = it never did): only the TTLs below it count, and with no global router before
 * it, dest_ttl is the choice (hops.c has the whole rule). hops_choose is dest_ttl 0. */
struct hops_result hops_choose_dest(const struct sockaddr_storage *from, int n, int dest_ttl);

/* Whether an IPv4 address is one a NAT's inside may have: 10/8, 172.16/12, 192.168/16,
 * 100.64/10 (RFC 6598, carrier NAT), 169.254/16, 127/8. Documentation ranges count as global
 * (the lab's "internet" uses them). */
bool hops_private4(const struct sockaddr *a);

#endif
