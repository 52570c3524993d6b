/* Per-source limits on new connections: how many one address may hold open and how fast it may
 * open new ones (a token bucket). IPv6 sources are counted per /64, since one host usually owns a
 * whole /64 and could otherwise use a fresh address for every connection.
 *
 * The table keeps an entry only while its source has a connection open or a bucket that has not
 * refilled yet, and it never holds more than a fixed number of entries, so neither memory nor
 * CPU grows with the number of addresses that ever connected. */
#ifndef TP_LIMITS_H
#define TP_LIMITS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* IPv6 sources are also counted per /48 (a site's usual allocation: 65536 /64s), with this many
 * times the per-source limit (connections, their rate, new ids) */
#define LIM_SITE_FACTOR 8u

struct lim_cfg {
    unsigned max_per_ip;  /* connections open at once per source (0: no limit) */
    unsigned rate_per_ip; /* new connections per second per source, also the burst (0: none) */
    size_t max_sources;   /* entries in the table; beyond it new sources are refused */
};

enum lim_verdict {
    LIM_OK,
    LIM_CONNS, /* the source holds max_per_ip connections already */
    LIM_RATE,  /* the source's bucket is empty */
    LIM_FULL,  /* too many sources tracked at once, or out of memory */
};

struct lim;
struct lim_src;

/* Returns NULL when out of memory. */
struct lim *lim_new(const struct lim_cfg *cfg);
void lim_free(struct lim *l);

/* A new connection from sa at now_ms. On LIM_OK it is counted and *src must later be passed to
 * lim_release exactly once; on a refusal nothing is counted and *src is NULL. */
enum lim_verdict lim_admit(struct lim *l, const struct sockaddr *sa, uint64_t now_ms,
                           struct lim_src **src);
/* The connection admitted with src has closed. */
void lim_release(struct lim *l, struct lim_src *src, uint64_t now_ms);
/* Forgets sources that hold no connection and whose bucket has refilled. */
void lim_expire(struct lim *l, uint64_t now_ms);
size_t lim_sources(const struct lim *l);

/* The part of sa that names its source: family and 16 bytes (IPv4: 4, IPv6: the /64, the rest
 * zero). Returns 0 for other families (not counted). */
size_t lim_source_key(const struct sockaddr *sa, uint8_t *family, unsigned char out[16]);
/* The same as text ("192.0.2.7", "2001:0db8:0000:0001::/64"), for logs and Redis keys. */
int lim_source_text(const struct sockaddr *sa, char *out, size_t len);
/* An IPv6 source's /48 ("2001:0db8:0000::/48"); for any other source "" and 0. */
int lim_site_text(const struct sockaddr *sa, char *out, size_t len);

/* Fixed windows per source: at most max takes per window_ms, the window starting at the
 * source's first take; an IPv6 source's /48 has its own window with LIM_SITE_FACTOR x max.
 * Entries live one window; at most max_sources at once, and when that many are tracked the
 * oldest windows are forgotten to make room (never a refusal for everyone). */
struct limw;
struct limw *limw_new(size_t max_sources, uint64_t window_ms);
void limw_free(struct limw *w);
/* LIM_OK (counted), LIM_RATE (the source's or its /48's window is used up) or LIM_FULL (out of
 * memory). max 0: always LIM_OK. */
enum lim_verdict limw_take(struct limw *w, const struct sockaddr *sa, unsigned max,
                           uint64_t now_ms);
void limw_expire(struct limw *w, uint64_t now_ms);
size_t limw_sources(const struct limw *w);

/* A token bucket for any other rate (connect requests per peer): rate tokens per second, at
 * most rate of them banked. Zero-initialised means full; rate 0 never limits. */
struct lim_bucket {
    uint32_t milli;   /* tokens * 1000 missing from a full bucket */
    uint64_t last_ms; /* when milli was last brought up to date */
};
/* Takes one token; returns 0, or -1 when the bucket is empty. */
int lim_take(struct lim_bucket *b, unsigned rate, uint64_t now_ms);

#endif
