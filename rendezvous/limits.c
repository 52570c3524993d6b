#include "rendezvous/limits.h"
#include "common/hmap.h"
#include "common/queue.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIM_MIN_BUCKETS 64u
/* A bucket holds at most one second's worth of tokens, so a source idle this long has a full
 * one and its entry carries no information any more. */
#define LIM_IDLE_MS 1000
/* IPv6 sources are also counted per /48 (a site's usual allocation: 65536 /64s), with
 * LIM_SITE_FACTOR times the per-source limits; its entries carry this pseudo family */
#define LIM_FAM_SITE6 0xff
#define LIM_RATE_MAX 4000000u /* lim_bucket counts milli-tokens in 32 bits */

/* What a table entry is found by: the family (or LIM_FAM_SITE6) and the 16 address bytes. */
#define LIM_KEY_LEN 17

struct lim_src {
    struct hmap_node node;
    struct q idle; /* on the idle list (linked) while conns == 0, oldest first */
    uint64_t idle_since;
    uint32_t conns;
    uint8_t family;
    unsigned char addr[16]; /* IPv4: 4 bytes; IPv6: the /64 prefix (/48: LIM_FAM_SITE6), rest 0 */
    struct lim_bucket bucket;
    /* an IPv6 /64's /48 entry, counting the same connections: valid while conns > 0 (it then
     * has conns > 0 itself and is never expired) */
    struct lim_src *site;
};

/* Sources choose their addresses (an IPv6 /48 holds 65536 /64s): the tables' keyed hash
 * (common/hmap) keeps them from piling into one chain. */
struct lim {
    struct lim_cfg cfg;
    struct hmap map; /* (family, addr) -> struct lim_src */
    struct q idle;   /* entries without a connection, oldest first */
};

/* The table key of (family, addr). */
static void lim_key(unsigned char out[LIM_KEY_LEN], uint8_t family, const unsigned char addr[16])
{
    out[0] = family;
    memcpy(out + 1, addr, 16);
}

int lim_take(struct lim_bucket *b, unsigned rate, uint64_t now_ms)
{
    uint64_t refill;
    if (rate == 0)
        return 0;
    refill = (now_ms - b->last_ms) * rate; /* rate tokens/s = rate milli-tokens/ms */
    b->milli = refill >= b->milli ? 0 : b->milli - (uint32_t)refill;
    b->last_ms = now_ms;
    if ((uint64_t)b->milli + 1000 > (uint64_t)rate * 1000)
        return -1;
    b->milli += 1000;
    return 0;
}

struct lim *lim_new(const struct lim_cfg *cfg)
{
    struct lim *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->cfg = *cfg;
    q_init(&l->idle);
    if (hmap_init(&l->map, LIM_MIN_BUCKETS) < 0) {
        free(l);
        return NULL;
    }
    return l;
}

void lim_free(struct lim *l)
{
    struct hmap_node *it, *tmp;
    if (!l)
        return;
    hmap_foreach_safe(it, tmp, &l->map)
        free(hmap_data(it, struct lim_src, node));
    hmap_fini(&l->map);
    free(l);
}

/* The part of the address that identifies a source. Returns its length, 0 for other families. */
static size_t lim_key_of(const struct sockaddr *sa, uint8_t *family, unsigned char out[16])
{
    return lim_source_key(sa, family, out);
}

size_t lim_source_key(const struct sockaddr *sa, uint8_t *family, unsigned char out[16])
{
    memset(out, 0, 16);
    *family = (uint8_t)sa->sa_family;
    if (sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 4;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 8);
        return 16;
    }
    return 0;
}

/* Whether an entry's (family, addr) is the table key k. */
static bool lim_key_eq(uint8_t family, const unsigned char addr[16], const unsigned char *k)
{
    return family == k[0] && memcmp(addr, k + 1, 16) == 0;
}

static bool lim_eq(const struct hmap_node *n, const void *key)
{
    const struct lim_src *e = hmap_data(n, struct lim_src, node);
    return lim_key_eq(e->family, e->addr, key);
}

static void lim_idle_unlink(struct lim_src *e)
{
    q_remove(&e->idle);
}

static void lim_idle_push(struct lim *l, struct lim_src *e, uint64_t now_ms)
{
    e->idle_since = now_ms;
    q_insert_tail(&l->idle, &e->idle);
}

static struct lim_src *lim_insert(struct lim *l, const unsigned char key[LIM_KEY_LEN], uint64_t h,
                                  uint64_t now_ms)
{
    struct lim_src *e;
    if (hmap_count(&l->map) >= l->cfg.max_sources)
        return NULL;
    e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    q_init(&e->idle);
    e->family = key[0];
    memcpy(e->addr, key + 1, 16);
    e->bucket.last_ms = now_ms;
    hmap_insert(&l->map, &e->node, h);
    return e;
}

static void lim_remove(struct lim *l, struct lim_src *e)
{
    hmap_remove(&l->map, &e->node);
    lim_idle_unlink(e);
    free(e);
}

/* The entry of (family, addr), created when missing; NULL when the table is full. */
static struct lim_src *lim_get(struct lim *l, uint8_t family, const unsigned char *addr,
                               uint64_t now_ms)
{
    unsigned char key[LIM_KEY_LEN];
    uint64_t h;
    struct hmap_node *n;
    lim_key(key, family, addr);
    h = hmap_hash(&l->map, key, sizeof key);
    n = hmap_find(&l->map, h, lim_eq, key);
    return n ? hmap_data(n, struct lim_src, node) : lim_insert(l, key, h, now_ms);
}

/* An entry that holds no connection waits on the idle list to be forgotten. */
static void lim_park(struct lim *l, struct lim_src *e, uint64_t now_ms)
{
    if (e && e->conns == 0 && !q_linked(&e->idle))
        lim_idle_push(l, e, now_ms);
}

static unsigned lim_scaled(unsigned v)
{
    uint64_t x = (uint64_t)v * LIM_SITE_FACTOR;
    return x > LIM_RATE_MAX ? LIM_RATE_MAX : (unsigned)x;
}

enum lim_verdict lim_admit(struct lim *l, const struct sockaddr *sa, uint64_t now_ms,
                           struct lim_src **src)
{
    unsigned char addr[16], site_addr[16] = {0};
    uint8_t family;
    struct lim_src *e, *site = NULL;
    unsigned site_max = lim_scaled(l->cfg.max_per_ip);
    enum lim_verdict v = LIM_OK;

    *src = NULL;
    if (lim_key_of(sa, &family, addr) == 0)
        return LIM_OK; /* not an IP source: nothing to count it by */
    lim_expire(l, now_ms);
    if (!(e = lim_get(l, family, addr, now_ms)))
        return LIM_FULL;
    if (family == AF_INET6) {
        memcpy(site_addr, addr, 6);
        if (!(site = lim_get(l, LIM_FAM_SITE6, site_addr, now_ms)))
            v = LIM_FULL;
    }
    if (v == LIM_OK && l->cfg.max_per_ip &&
        (e->conns >= l->cfg.max_per_ip || (site && site->conns >= site_max)))
        v = LIM_CONNS;
    if (v == LIM_OK && site && lim_take(&site->bucket, lim_scaled(l->cfg.rate_per_ip), now_ms) < 0)
        v = LIM_RATE;
    if (v == LIM_OK && lim_take(&e->bucket, l->cfg.rate_per_ip, now_ms) < 0)
        v = LIM_RATE;
    if (v != LIM_OK) {
        lim_park(l, e, now_ms); /* a fresh entry refused for its /48 */
        lim_park(l, site, now_ms);
        return v;
    }
    lim_idle_unlink(e);
    e->conns++;
    if (site) {
        lim_idle_unlink(site);
        site->conns++;
    }
    e->site = site;
    *src = e;
    return LIM_OK;
}

void lim_release(struct lim *l, struct lim_src *src, uint64_t now_ms)
{
    if (!src || src->conns == 0)
        return;
    if (src->site && src->site->conns > 0 && --src->site->conns == 0)
        lim_idle_push(l, src->site, now_ms);
    if (--src->conns == 0) {
        src->site = NULL;
        lim_idle_push(l, src, now_ms);
    }
}

void lim_expire(struct lim *l, uint64_t now_ms)
{
    struct q *it;
    while ((it = q_head(&l->idle))) {
        struct lim_src *e = q_data(it, struct lim_src, idle);
        if (now_ms - e->idle_since < LIM_IDLE_MS)
            break;
        lim_remove(l, e);
    }
}

size_t lim_sources(const struct lim *l)
{
    return hmap_count(&l->map);
}

int lim_source_text(const struct sockaddr *sa, char *out, size_t len)
{
    unsigned char a[16];
    uint8_t family;
    if (lim_source_key(sa, &family, a) == 0)
        return snprintf(out, len, "other");
    if (family == AF_INET)
        return snprintf(out, len, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
    return snprintf(out, len, "%02x%02x:%02x%02x:%02x%02x:%02x%02x::/64", a[0], a[1], a[2], a[3],
                    a[4], a[5], a[6], a[7]);
}

int lim_site_text(const struct sockaddr *sa, char *out, size_t len)
{
    unsigned char a[16];
    uint8_t family;
    if (lim_source_key(sa, &family, a) == 0 || family != AF_INET6) {
        if (len)
            out[0] = '\0';
        return 0;
    }
    return snprintf(out, len, "%02x%02x:%02x%02x:%02x%02x::/48", a[0], a[1], a[2], a[3], a[4],
                    a[5]);
}

/* ---- fixed windows (new ids per source per hour) ---- */

#define LIMW_MIN_BUCKETS 64u

struct limw_src {
    struct hmap_node node;
    struct q link; /* all entries, oldest window first */
    uint64_t start_ms;
    uint32_t taken;
    uint8_t family;
    unsigned char addr[16];
};

struct limw {
    size_t max;
    uint64_t window_ms;
    struct hmap map; /* (family, addr) -> struct limw_src */
    struct q all;    /* oldest window first */
};

struct limw *limw_new(size_t max_sources, uint64_t window_ms)
{
    struct limw *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->max = max_sources;
    w->window_ms = window_ms;
    q_init(&w->all);
    if (hmap_init(&w->map, LIMW_MIN_BUCKETS) < 0) {
        free(w);
        return NULL;
    }
    return w;
}

void limw_free(struct limw *w)
{
    struct q *it, *tmp;
    if (!w)
        return;
    q_foreach_safe(it, tmp, &w->all)
        free(q_data(it, struct limw_src, link));
    hmap_fini(&w->map);
    free(w);
}

static bool limw_eq(const struct hmap_node *n, const void *key)
{
    const struct limw_src *e = hmap_data(n, struct limw_src, node);
    return lim_key_eq(e->family, e->addr, key);
}

static struct limw_src *limw_head(const struct limw *w)
{
    struct q *it = q_head(&w->all);
    return it ? q_data(it, struct limw_src, link) : NULL;
}

/* Forgets the oldest window (the head): it is over, or room is needed. */
static void limw_drop_head(struct limw *w)
{
    struct limw_src *e = limw_head(w);
    hmap_remove(&w->map, &e->node);
    q_remove(&e->link);
    free(e);
}

/* Windows start in order, so the ones over are always at the head. */
void limw_expire(struct limw *w, uint64_t now_ms)
{
    struct limw_src *e;
    while ((e = limw_head(w)) && now_ms - e->start_ms >= w->window_ms)
        limw_drop_head(w);
}

static struct limw_src *limw_find(const struct limw *w, uint8_t family,
                                  const unsigned char addr[16])
{
    unsigned char key[LIM_KEY_LEN];
    struct hmap_node *n;
    lim_key(key, family, addr);
    n = hmap_find(&w->map, hmap_hash(&w->map, key, sizeof key), limw_eq, key);
    return n ? hmap_data(n, struct limw_src, node) : NULL;
}

static struct limw_src *limw_insert(struct limw *w, uint8_t family, const unsigned char addr[16],
                                    uint64_t now_ms)
{
    unsigned char key[LIM_KEY_LEN];
    struct limw_src *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->family = family;
    memcpy(e->addr, addr, 16);
    e->start_ms = now_ms;
    lim_key(key, family, addr);
    hmap_insert(&w->map, &e->node, hmap_hash(&w->map, key, sizeof key));
    q_insert_tail(&w->all, &e->link);
    return e;
}
enum lim_verdict limw_take(struct limw *w, const struct sockaddr *sa, unsigned max, uint64_t now_ms)
{
    unsigned char addr[16], site_addr[16] = {0};
    uint8_t family;
    unsigned site_max = lim_scaled(max);
    struct limw_src *e, *site = NULL, *head;
    size_t need;
    if (max == 0 || lim_source_key(sa, &family, addr) == 0)
        return LIM_OK;
    limw_expire(w, now_ms);
    e = limw_find(w, family, addr);
    if (family == AF_INET6) {
        /* a /48 holds 65536 /64s: without its own window one site could take 65536 x max */
        memcpy(site_addr, addr, 6);
        site = limw_find(w, LIM_FAM_SITE6, site_addr);
    }
    if ((e && e->taken >= max) || (site && site->taken >= site_max))
        return LIM_RATE;
    /* full: the oldest windows make room. Refusing instead would let whoever fills the table
     * lock every new source out for an hour; a forgotten window only hands its source a fresh
     * one, and the /48 windows bound how many sources one site can bring to push them out. */
    need = (e ? 0 : 1) + (family == AF_INET6 && !site ? 1 : 0);
    while (need && hmap_count(&w->map) + need > w->max && (head = limw_head(w))) {
        if (head == e)
            e = NULL, need++;
        else if (head == site)
            site = NULL, need++;
        limw_drop_head(w);
    }
    if (need && hmap_count(&w->map) + need > w->max)
        return LIM_FULL; /* max_sources below 2 */
    if (!e && !(e = limw_insert(w, family, addr, now_ms)))
        return LIM_FULL;
    if (family == AF_INET6 && !site && !(site = limw_insert(w, LIM_FAM_SITE6, site_addr, now_ms)))
        return LIM_FULL; /* e stays, untaken: it expires with its window */
    e->taken++;
    if (site)
        site->taken++;
    return LIM_OK;
}

size_t limw_sources(const struct limw *w)
{
    return hmap_count(&w->map);
}
