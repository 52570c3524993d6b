#include "rendezvous/registry.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define REG_MIN_BUCKETS 64u

struct reg_entry {
    struct reg_entry *next;
    void *val;
    uint64_t hash;
    char id[]; /* NUL-terminated copy */
};

struct reg {
    struct reg_entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    uint64_t key[2]; /* SipHash key */
};

/* Ids come from the network, so the hash is keyed with a per-process random key (SipHash-2-4):
 * nobody can choose ids that all land in one bucket and turn O(1) into O(n). */
static uint64_t reg_rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

#define REG_SIPROUND                                                                               \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = reg_rotl(v1, 13);                                                                     \
        v1 ^= v0;                                                                                  \
        v0 = reg_rotl(v0, 32);                                                                     \
        v2 += v3;                                                                                  \
        v3 = reg_rotl(v3, 16);                                                                     \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = reg_rotl(v3, 21);                                                                     \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = reg_rotl(v1, 17);                                                                     \
        v1 ^= v2;                                                                                  \
        v2 = reg_rotl(v2, 32);                                                                     \
    } while (0)

static uint64_t reg_hash(const struct reg *r, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    uint64_t v0 = 0x736f6d6570736575ULL ^ r->key[0];
    uint64_t v1 = 0x646f72616e646f6dULL ^ r->key[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ r->key[0];
    uint64_t v3 = 0x7465646279746573ULL ^ r->key[1];
    uint64_t b = (uint64_t)len << 56;
    size_t i, full = len & ~(size_t)7;

    for (i = 0; i < full; i += 8) {
        uint64_t m = 0;
        for (int j = 0; j < 8; j++)
            m |= (uint64_t)p[i + (size_t)j] << (8 * j);
        v3 ^= m;
        REG_SIPROUND;
        REG_SIPROUND;
        v0 ^= m;
    }
    for (int j = 0; i + (size_t)j < len; j++)
        b |= (uint64_t)p[i + (size_t)j] << (8 * j);
    v3 ^= b;
    REG_SIPROUND;
    REG_SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    REG_SIPROUND;
    REG_SIPROUND;
    REG_SIPROUND;
    REG_SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

struct reg *reg_new(void)
{
    struct reg *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->nbuckets = REG_MIN_BUCKETS;
    r->buckets = calloc(r->nbuckets, sizeof *r->buckets);
    if (!r->buckets) {
        free(r);
        return NULL;
    }
    if (getrandom(r->key, sizeof r->key, GRND_NONBLOCK) != (ssize_t)sizeof r->key) {
        /* no entropy yet: a weaker key still hashes correctly, only flooding gets easier */
        r->key[0] = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)r;
        r->key[1] = (uint64_t)clock() ^ 0x9e3779b97f4a7c15ULL;
    }
    return r;
}

void reg_free(struct reg *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nbuckets; i++) {
        struct reg_entry *e = r->buckets[i];
        while (e) {
            struct reg_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(r->buckets);
    free(r);
}

/* Doubles the table; on allocation failure the old one stays (correct, only slower). */
static void reg_grow(struct reg *r)
{
    size_t n = r->nbuckets * 2;
    struct reg_entry **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < r->nbuckets; i++) {
        struct reg_entry *e = r->buckets[i];
        while (e) {
            struct reg_entry *next = e->next;
            size_t k = (size_t)(e->hash & (n - 1));
            e->next = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(r->buckets);
    r->buckets = b;
    r->nbuckets = n;
}

static struct reg_entry **reg_slot(const struct reg *r, const char *id, uint64_t h)
{
    struct reg_entry **pp = &r->buckets[h & (r->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && strcmp((*pp)->id, id) == 0)
            break;
    return pp;
}

enum reg_status reg_add(struct reg *r, const char *id, void *val)
{
    size_t len = strlen(id);
    uint64_t h = reg_hash(r, id, len);
    struct reg_entry **pp = reg_slot(r, id, h);
    struct reg_entry *e;

    if (*pp)
        return REG_EXISTS;
    e = malloc(sizeof *e + len + 1);
    if (!e)
        return REG_NOMEM;
    e->val = val;
    e->hash = h;
    memcpy(e->id, id, len + 1);
    e->next = r->buckets[h & (r->nbuckets - 1)];
    r->buckets[h & (r->nbuckets - 1)] = e;
    r->count++;
    if (r->count > r->nbuckets - r->nbuckets / 4) /* keep chains short: load <= 0.75 */
        reg_grow(r);
    return REG_OK;
}

void *reg_find(const struct reg *r, const char *id)
{
    struct reg_entry **pp = reg_slot(r, id, reg_hash(r, id, strlen(id)));
    return *pp ? (*pp)->val : NULL;
}

int reg_remove(struct reg *r, const char *id, const void *val)
{
    struct reg_entry **pp = reg_slot(r, id, reg_hash(r, id, strlen(id)));
    struct reg_entry *e = *pp;
    if (!e || e->val != val)
        return -1;
    *pp = e->next;
    free(e);
    r->count--;
    return 0;
}

size_t reg_count(const struct reg *r)
{
    return r->count;
}
