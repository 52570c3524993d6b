#include "common/hmap.h"

#include <stdlib.h>
#include <string.h>

static size_t hmap_slot(const struct hmap *m, uint64_t h)
{
    return (size_t)(h & (m->nbuckets - 1));
}

int hmap_init(struct hmap *m, size_t min_buckets)
{
    size_t n = 1;
    while (n < min_buckets)
        n *= 2;
    memset(m, 0, sizeof *m);
    m->buckets = calloc(n, sizeof *m->buckets);
    if (!m->buckets)
        return -1;
    m->nbuckets = n;
    randombytes_buf(m->key, sizeof m->key);
    return 0;
}

void hmap_fini(struct hmap *m)
{
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = m->count = 0;
}

uint64_t hmap_hash(const struct hmap *m, const void *data, size_t len)
{
    unsigned char out[crypto_shorthash_BYTES];
    uint64_t h;
    crypto_shorthash(out, data, len, m->key);
    memcpy(&h, out, sizeof h);
    return h;
}

struct hmap_node *hmap_find(const struct hmap *m, uint64_t h,
                            bool (*eq)(const struct hmap_node *n, const void *key),
                            const void *key)
{
    struct hmap_node *n;
    if (!m->nbuckets)
        return NULL;
    for (n = m->buckets[hmap_slot(m, h)]; n; n = n->next)
        if (n->hash == h && eq(n, key))
            return n;
    return NULL;
}

uint64_t hmap_hash_str(const struct hmap *m, const char *s)
{
    return hmap_hash(m, s, strlen(s));
}

struct hmap_node *hmap_find_str_(const struct hmap *m, const char *s, ptrdiff_t field_from_node)
{
    struct hmap_node *n;
    uint64_t h;
    if (!m->nbuckets)
        return NULL;
    h = hmap_hash_str(m, s);
    for (n = m->buckets[hmap_slot(m, h)]; n; n = n->next)
        if (n->hash == h && strcmp((const char *)n + field_from_node, s) == 0)
            return n;
    return NULL;
}

/* Doubles the table; on allocation failure the old one stays (correct, only slower). */
static void hmap_grow(struct hmap *m)
{
    size_t n = m->nbuckets * 2;
    struct hmap_node **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct hmap_node *e = m->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

void hmap_insert(struct hmap *m, struct hmap_node *n, uint64_t h)
{
    size_t i = hmap_slot(m, h);
    n->hash = h;
    n->next = m->buckets[i];
    m->buckets[i] = n;
    m->count++;
    if (m->count > m->nbuckets - m->nbuckets / 4) /* keep chains short: load <= 0.75 */
        hmap_grow(m);
}

void hmap_remove(struct hmap *m, struct hmap_node *n)
{
    struct hmap_node **pp = &m->buckets[hmap_slot(m, n->hash)];
    while (*pp && *pp != n)
        pp = &(*pp)->next;
    if (!*pp)
        return; /* not in m: nothing to undo */
    *pp = n->next;
    n->next = NULL;
    m->count--;
}

struct hmap_node *hmap_next(const struct hmap *m, const struct hmap_node *n)
{
    size_t i = 0;
    if (n) {
        if (n->next)
            return n->next;
        i = hmap_slot(m, n->hash) + 1;
    }
    for (; i < m->nbuckets; i++)
        if (m->buckets[i])
            return m->buckets[i];
    return NULL;
}
