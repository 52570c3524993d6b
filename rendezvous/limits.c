#include "rendezvous/limits.h"

#include <netinet/in.h>
#include <sodium.h>
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

struct lim_src {
    struct lim_src *hnext;
    struct lim_src *prev, *next; /* on the idle list while conns == 0, oldest first */
    uint64_t hash;
    uint64_t idle_since;
    uint32_t conns;
    bool idle; /* on the idle list */
    uint8_t family;
    unsigned char addr[16]; /* IPv4: 4 bytes; IPv6: the /64 prefix (/48: LIM_FAM_SITE6), rest 0 */
    struct lim_bucket bucket;
    /* an IPv6 /64's /48 entry, counting the same connections: valid while conns > 0 (it then
     * has conns > 0 itself and is never expired) */
    struct lim_src *site;
};

struct lim {
    struct lim_cfg cfg;
    struct lim_src **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    struct lim_src *idle_head, *idle_tail;
    unsigned char key[crypto_shorthash_KEYBYTES];
};

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
    l->nbuckets = LIM_MIN_BUCKETS;
    l->buckets = calloc(l->nbuckets, sizeof *l->buckets);
    if (!l->buckets) {
        free(l);
        return NULL;
    }
    /* sources choose their addresses (an IPv6 /48 holds 65536 /64s): a keyed hash keeps them
     * from piling into one chain */
    randombytes_buf(l->key, sizeof l->key);
    return l;
}

void lim_free(struct lim *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->nbuckets; i++) {
        struct lim_src *e = l->buckets[i];
        while (e) {
            struct lim_src *next = e->hnext;
            free(e);
            e = next;
        }
    }
    free(l->buckets);
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

static uint64_t lim_hash(const struct lim *l, uint8_t family, const unsigned char addr[16])
{
    unsigned char in[17], out[crypto_shorthash_BYTES];
    uint64_t h;
    in[0] = family;
    memcpy(in + 1, addr, 16);
    crypto_shorthash(out, in, sizeof in, l->key);
    memcpy(&h, out, sizeof h);
    return h;
}

static void lim_idle_unlink(struct lim *l, struct lim_src *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        l->idle_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->idle_tail = e->prev;
    e->prev = e->next = NULL;
    e->idle = false;
}

static void lim_idle_push(struct lim *l, struct lim_src *e, uint64_t now_ms)
{
    e->idle_since = now_ms;
    e->idle = true;
    e->prev = l->idle_tail;
    e->next = NULL;
    if (l->idle_tail)
        l->idle_tail->next = e;
    else
        l->idle_head = e;
    l->idle_tail = e;
}

/* Doubles the table; on allocation failure the old one stays (correct, only slower). */
static void lim_grow(struct lim *l)
{
    size_t n = l->nbuckets * 2;
    struct lim_src **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < l->nbuckets; i++) {
        struct lim_src *e = l->buckets[i];
        while (e) {
            struct lim_src *next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(l->buckets);
    l->buckets = b;
    l->nbuckets = n;
}

static struct lim_src **lim_slot(const struct lim *l, uint8_t family, const unsigned char *addr,
                                 uint64_t h)
{
    struct lim_src **pp = &l->buckets[h & (l->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->hnext)
        if ((*pp)->hash == h && (*pp)->family == family && memcmp((*pp)->addr, addr, 16) == 0)
            break;
    return pp;
}

static struct lim_src *lim_insert(struct lim *l, uint8_t family, const unsigned char *addr,
                                  uint64_t h, uint64_t now_ms)
{
    struct lim_src *e;
    if (l->count >= l->cfg.max_sources)
        return NULL;
    e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->hash = h;
    e->family = family;
    memcpy(e->addr, addr, 16);
    e->bucket.last_ms = now_ms;
    e->hnext = l->buckets[h & (l->nbuckets - 1)];
    l->buckets[h & (l->nbuckets - 1)] = e;
    l->count++;
    if (l->count > l->nbuckets - l->nbuckets / 4)
        lim_grow(l);
    return e;
}

static void lim_remove(struct lim *l, struct lim_src *e)
{
    struct lim_src **pp = lim_slot(l, e->family, e->addr, e->hash);
    if (*pp == e)
        *pp = e->hnext;
    if (e->idle)
        lim_idle_unlink(l, e);
    l->count--;
    free(e);
}

/* The entry of (family, addr), created when missing; NULL when the table is full. */
static struct lim_src *lim_get(struct lim *l, uint8_t family, const unsigned char *addr,
                               uint64_t now_ms)
{
    uint64_t h = lim_hash(l, family, addr);
    struct lim_src *e = *lim_slot(l, family, addr, h);
    return e ? e : lim_insert(l, family, addr, h, now_ms);
}

/* An entry that holds no connection waits on the idle list to be forgotten. */
static void lim_park(struct lim *l, struct lim_src *e, uint64_t now_ms)
{
    if (e && e->conns == 0 && !e->idle)
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
    if (e->idle)
        lim_idle_unlink(l, e);
    e->conns++;
    if (site) {
        if (site->idle)
            lim_idle_unlink(l, site);
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
    struct lim_src *e;
    while ((e = l->idle_head) && now_ms - e->idle_since >= LIM_IDLE_MS)
        lim_remove(l, e);
}

size_t lim_sources(const struct lim *l)
{
    return l->count;
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

#define LIMW_BUCKETS 4096u

struct limw_src {
    struct limw_src *hnext;
    struct limw_src *next; /* all entries, oldest window first */
    uint64_t start_ms;
    uint32_t taken;
    uint8_t family;
    unsigned char addr[16];
};

struct limw {
    size_t max, count;
    uint64_t window_ms;
    struct limw_src *bucket[LIMW_BUCKETS];
    struct limw_src *head, *tail;
    unsigned char key[crypto_shorthash_KEYBYTES];
};

struct limw *limw_new(size_t max_sources, uint64_t window_ms)
{
    struct limw *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->max = max_sources;
    w->window_ms = window_ms;
    randombytes_buf(w->key, sizeof w->key);
    return w;
}

void limw_free(struct limw *w)
{
    if (!w)
        return;
    while (w->head) {
        struct limw_src *next = w->head->next;
        free(w->head);
        w->head = next;
    }
    free(w);
}

static unsigned limw_hash(const struct limw *w, uint8_t family, const unsigned char addr[16])
{
    unsigned char in[17], out[crypto_shorthash_BYTES];
    uint32_t h;
    in[0] = family;
    memcpy(in + 1, addr, 16);
    crypto_shorthash(out, in, sizeof in, w->key);
    memcpy(&h, out, sizeof h);
    return h % LIMW_BUCKETS;
}

/* Forgets the oldest window (the head): it is over, or room is needed. */
static void limw_drop_head(struct limw *w)
{
    struct limw_src *e = w->head;
    struct limw_src **pp = &w->bucket[limw_hash(w, e->family, e->addr)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    w->head = e->next;
    if (!w->head)
        w->tail = NULL;
    w->count--;
    free(e);
}

/* Windows start in order, so the ones over are always at the head. */
void limw_expire(struct limw *w, uint64_t now_ms)
{
    while (w->head && now_ms - w->head->start_ms >= w->window_ms)
        limw_drop_head(w);
}

static struct limw_src *limw_find(const struct limw *w, uint8_t family,
                                  const unsigned char addr[16])
{
    struct limw_src *e = w->bucket[limw_hash(w, family, addr)];
    while (e && !(e->family == family && memcmp(e->addr, addr, 16) == 0))
        e = e->hnext;
    return e;
}

static struct limw_src *limw_insert(struct limw *w, uint8_t family, const unsigned char addr[16],
                                    uint64_t now_ms)
{
    unsigned h = limw_hash(w, family, addr);
    struct limw_src *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->family = family;
    memcpy(e->addr, addr, 16);
    e->start_ms = now_ms;
    e->hnext = w->bucket[h];
    w->bucket[h] = e;
    if (w->tail)
        w->tail->next = e;
    else
        w->head = e;
    w->tail = e;
    w->count++;
    return e;
}

enum lim_verdict limw_take(struct limw *w, const struct sockaddr *sa, unsigned max, uint64_t now_ms)
{
    unsigned char addr[16], site_addr[16] = {0};
    uint8_t family;
    unsigned site_max = lim_scaled(max);
    struct limw_src *e, *site = NULL;
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
    while (need && w->count + need > w->max && w->head) {
        if (w->head == e)
            e = NULL, need++;
        else if (w->head == site)
            site = NULL, need++;
        limw_drop_head(w);
    }
    if (need && w->count + need > w->max)
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
    return w->count;
}
