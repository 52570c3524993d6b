#include "rendezvous/registry.h"
#include "common/hmap.h"

#include <stdlib.h>
#include <string.h>

#define REG_MIN_BUCKETS 64u

struct reg_entry {
    struct hmap_node node;
    void *val;
    char id[]; /* NUL-terminated copy */
};

/* Ids come from the network: the table's keyed hash (common/hmap) keeps anyone from choosing
 * ids that all land in one chain. */
struct reg {
    struct hmap map; /* id -> struct reg_entry */
};

static struct reg_entry *reg_lookup(const struct reg *r, const char *id)
{
    struct hmap_node *n = hmap_find_str(&r->map, id, struct reg_entry, node, id);
    return n ? hmap_data(n, struct reg_entry, node) : NULL;
}

struct reg *reg_new(void)
{
    struct reg *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    if (hmap_init(&r->map, REG_MIN_BUCKETS) < 0) {
        free(r);
        return NULL;
    }
    return r;
}

void reg_free(struct reg *r)
{
    struct hmap_node *it, *tmp;
    if (!r)
        return;
    hmap_foreach_safe(it, tmp, &r->map)
        free(hmap_data(it, struct reg_entry, node));
    hmap_fini(&r->map);
    free(r);
}

enum reg_status reg_add(struct reg *r, const char *id, void *val)
{
    size_t len = strlen(id);
    struct reg_entry *e;

    if (reg_lookup(r, id))
        return REG_EXISTS;
    e = malloc(sizeof *e + len + 1);
    if (!e)
        return REG_NOMEM;
    e->val = val;
    memcpy(e->id, id, len + 1);
    hmap_insert(&r->map, &e->node, hmap_hash_str(&r->map, e->id));
    return REG_OK;
}

void *reg_find(const struct reg *r, const char *id)
{
    struct reg_entry *e = reg_lookup(r, id);
    return e ? e->val : NULL;
}

int reg_remove(struct reg *r, const char *id, const void *val)
{
    struct reg_entry *e = reg_lookup(r, id);
    if (!e || e->val != val)
        return -1;
    hmap_remove(&r->map, &e->node);
    free(e);
    return 0;
}

size_t reg_count(const struct reg *r)
{
    return hmap_count(&r->map);
}
