/* A keyed, intrusive hash table (chained), in the style of queue.h: an element embeds a struct
 * hmap_node and is recovered with hmap_data; the table allocates only its bucket array, so an
 * insert never fails and costs no memory beyond the element.
 *
 *   struct ent { struct hmap_node node; char id[65]; };
 *   static bool ent_eq(const struct hmap_node *n, const void *key)
 *   { return strcmp(hmap_data(n, struct ent, node)->id, key) == 0; }
 *
 *   struct hmap m; hmap_init(&m, 64);
 *   hmap_insert(&m, &e->node, hmap_hash(&m, e->id, strlen(e->id)));
 *   struct hmap_node *n = hmap_find(&m, hmap_hash(&m, id, strlen(id)), ent_eq, id);
 *
 * Keys come from the network (ids, public keys, source addresses), so each table hashes with
 * its own random key (libsodium's crypto_shorthash, SipHash-2-4): nobody can choose keys that
 * all land in one chain and turn O(1) into O(n), nor learn one table's layout from another's.
 * Find, insert and remove are O(1) on average; a table doubles when its load passes 3/4 (an
 * O(n) rehash, amortised O(1) per insert) and never shrinks, like the tables it replaced. */
#ifndef TP_HMAP_H
#define TP_HMAP_H

#include "common/container.h"

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hmap_node {
    struct hmap_node *next; /* in its chain */
    uint64_t hash;
};

struct hmap {
    struct hmap_node **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    unsigned char key[crypto_shorthash_KEYBYTES];
};

#define hmap_data(ptr, type, member) container_of(ptr, type, member)

/* An empty table with at least min_buckets buckets (rounded up to a power of two) and a fresh
 * random key. Returns 0, or -1 when out of memory (m is then empty and hmap_fini harmless). */
int hmap_init(struct hmap *m, size_t min_buckets);
/* Frees the bucket array; the elements belong to the caller (free them first, with
 * hmap_foreach_safe). */
void hmap_fini(struct hmap *m);

/* The keyed hash of len bytes, for hmap_find and hmap_insert. */
uint64_t hmap_hash(const struct hmap *m, const void *data, size_t len);

/* The element with hash h for which eq(node, key) holds, or NULL. */
struct hmap_node *hmap_find(const struct hmap *m, uint64_t h,
                            bool (*eq)(const struct hmap_node *n, const void *key),
                            const void *key);
/* Adds n with hash h (the caller has made sure its key is not there yet). */
void hmap_insert(struct hmap *m, struct hmap_node *n, uint64_t h);
/* Takes n out of m; n must be in m. */
void hmap_remove(struct hmap *m, struct hmap_node *n);

/* String keys, the common case (ids, session names): the element holds its key as a
 * NUL-terminated char array field, so no equality function is needed.
 *   hmap_insert(&m, &e->node, hmap_hash_str(&m, e->id));
 *   n = hmap_find_str(&m, id, struct ent, node, id); */
uint64_t hmap_hash_str(const struct hmap *m, const char *s);
struct hmap_node *hmap_find_str_(const struct hmap *m, const char *s, ptrdiff_t field_from_node);
#define hmap_find_str(m, s, type, member, field)                                                   \
    hmap_find_str_((m), (s), (ptrdiff_t)offsetof(type, field) - (ptrdiff_t)offsetof(type, member))

static inline size_t hmap_count(const struct hmap *m)
{
    return m->count;
}

/* The element after n in bucket order (n NULL: the first), or NULL at the end. */
struct hmap_node *hmap_next(const struct hmap *m, const struct hmap_node *n);

/* Every element, in no particular order; the body may remove (or free) the one it is at. */
#define hmap_foreach_safe(it, tmp, m)                                                              \
    for ((it) = hmap_next((m), NULL); (it) && ((tmp) = hmap_next((m), (it)), 1); (it) = (tmp))

#endif
