/* The keyed intrusive hash table (common/hmap): insert/find/remove, growth under many keys,
 * removal while iterating, and a key of its own per table. */
#include "check.h"
#include "common/hmap.h"

#include <stdio.h>

struct ent {
    struct hmap_node node;
    char id[16];
};

static bool ent_eq(const struct hmap_node *n, const void *key)
{
    return strcmp(hmap_data(n, struct ent, node)->id, key) == 0;
}

static uint64_t h_of(const struct hmap *m, const char *id)
{
    return hmap_hash(m, id, strlen(id));
}

static struct ent *find(const struct hmap *m, const char *id)
{
    struct hmap_node *n = hmap_find(m, h_of(m, id), ent_eq, id);
    return n ? hmap_data(n, struct ent, node) : NULL;
}

static void add(struct hmap *m, struct ent *e, const char *id)
{
    snprintf(e->id, sizeof e->id, "%s", id);
    hmap_insert(m, &e->node, h_of(m, e->id));
}

static void t_basic(void)
{
    struct hmap m;
    struct ent a, b;
    if (!CHECK_INT(hmap_init(&m, 5), 0))
        return;
    CHECK_INT(m.nbuckets, 8); /* rounded up to a power of two */
    CHECK(find(&m, "alice") == NULL);
    add(&m, &a, "alice");
    add(&m, &b, "bob");
    CHECK_INT(hmap_count(&m), 2);
    CHECK(find(&m, "alice") == &a);
    CHECK(find(&m, "bob") == &b);
    CHECK(find(&m, "carol") == NULL);
    hmap_remove(&m, &a.node);
    CHECK_INT(hmap_count(&m), 1);
    CHECK(find(&m, "alice") == NULL);
    CHECK(find(&m, "bob") == &b);
    hmap_remove(&m, &a.node); /* not in the table any more: nothing happens */
    CHECK_INT(hmap_count(&m), 1);
    add(&m, &a, "alice");
    CHECK(find(&m, "alice") == &a);
    hmap_fini(&m);
    hmap_fini(&m); /* harmless twice */
}

#define MANY 20000

static void t_growth(void)
{
    struct hmap m;
    struct ent *e = calloc(MANY, sizeof *e);
    char id[16];
    size_t first;
    if (!CHECK(e) || !CHECK_INT(hmap_init(&m, 1), 0)) {
        free(e);
        return;
    }
    first = m.nbuckets;
    for (int i = 0; i < MANY; i++) {
        snprintf(id, sizeof id, "id%d", i);
        add(&m, &e[i], id);
        CHECK(m.count <= m.nbuckets - m.nbuckets / 4); /* the load stays below 3/4 */
    }
    CHECK(m.nbuckets > first);
    CHECK_INT(hmap_count(&m), MANY);
    for (int i = 0; i < MANY; i++) {
        snprintf(id, sizeof id, "id%d", i);
        if (!CHECK(find(&m, id) == &e[i]))
            break;
    }
    /* remove every other one: the rest stay findable */
    for (int i = 0; i < MANY; i += 2)
        hmap_remove(&m, &e[i].node);
    CHECK_INT(hmap_count(&m), MANY / 2);
    for (int i = 0; i < MANY; i++) {
        snprintf(id, sizeof id, "id%d", i);
        if (!CHECK(find(&m, id) == (i % 2 ? &e[i] : NULL)))
            break;
    }
    hmap_fini(&m);
    free(e);
}

static void t_iterate_remove(void)
{
    struct hmap m;
    struct ent e[100];
    struct hmap_node *it, *tmp;
    char id[16];
    int seen[100] = {0}, n = 0;
    if (!CHECK_INT(hmap_init(&m, 4), 0))
        return;
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "k%d", i);
        add(&m, &e[i], id);
    }
    hmap_foreach_safe(it, tmp, &m) {
        struct ent *x = hmap_data(it, struct ent, node);
        seen[x - e]++;
        n++;
        if ((x - e) % 3 == 0)
            hmap_remove(&m, it);
    }
    CHECK_INT(n, 100);
    for (int i = 0; i < 100; i++)
        CHECK_INT(seen[i], 1); /* each exactly once, removals or not */
    CHECK_INT(hmap_count(&m), 100 - 34);
    n = 0;
    hmap_foreach_safe(it, tmp, &m) {
        CHECK((hmap_data(it, struct ent, node) - e) % 3 != 0);
        n++;
        hmap_remove(&m, it);
    }
    CHECK_INT(n, 100 - 34);
    CHECK_INT(hmap_count(&m), 0);
    CHECK(hmap_next(&m, NULL) == NULL);
    hmap_fini(&m);
}

static void t_keys_differ(void)
{
    struct hmap a, b;
    int same = 0;
    char id[16];
    if (!CHECK_INT(hmap_init(&a, 8), 0) || !CHECK_INT(hmap_init(&b, 8), 0))
        return;
    CHECK(memcmp(a.key, b.key, sizeof a.key) != 0);
    for (int i = 0; i < 64; i++) {
        snprintf(id, sizeof id, "x%d", i);
        same += h_of(&a, id) == h_of(&b, id);
        CHECK(h_of(&a, id) == h_of(&a, id)); /* stable within a table */
    }
    CHECK_INT(same, 0);
    hmap_fini(&a);
    hmap_fini(&b);
}

static void t_string_keys(void)
{
    struct hmap m;
    struct ent a, b;
    struct hmap_node *n;
    if (!CHECK_INT(hmap_init(&m, 8), 0))
        return;
    snprintf(a.id, sizeof a.id, "alice");
    snprintf(b.id, sizeof b.id, "bob");
    hmap_insert(&m, &a.node, hmap_hash_str(&m, a.id));
    hmap_insert(&m, &b.node, hmap_hash_str(&m, b.id));
    CHECK(hmap_hash_str(&m, "alice") == h_of(&m, "alice"));
    n = hmap_find_str(&m, "alice", struct ent, node, id);
    CHECK(n == &a.node);
    n = hmap_find_str(&m, "bob", struct ent, node, id);
    CHECK(n == &b.node);
    CHECK(hmap_find_str(&m, "alicE", struct ent, node, id) == NULL);
    CHECK(hmap_find_str(&m, "", struct ent, node, id) == NULL);
    hmap_remove(&m, &a.node);
    CHECK(hmap_find_str(&m, "alice", struct ent, node, id) == NULL);
    hmap_fini(&m);
}

CHECK_MAIN(TEST(t_basic), TEST(t_growth), TEST(t_iterate_remove), TEST(t_keys_differ), TEST(t_string_keys))
