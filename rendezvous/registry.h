/* Online ids: id -> connection, O(1) add/find/remove.
 *
 * Kept behind this small opaque API (values are plain pointers the registry never touches)
 * so that a shared registry, e.g. one backed by Redis for several server instances, can
 * replace the in-process table without changes to the server or pairing code. */
#ifndef TP_REGISTRY_H
#define TP_REGISTRY_H

#include <stddef.h>

struct reg;

enum reg_status {
    REG_OK = 0,
    REG_EXISTS = 1, /* the id is already registered (the first holder keeps it) */
    REG_NOMEM = -1,
};

/* Returns NULL when out of memory. */
struct reg *reg_new(void);
/* Frees the table only; the values belong to the caller. */
void reg_free(struct reg *r);

/* id must be a valid protocol id (at most PROTO_MAX_ID bytes); it is copied. */
enum reg_status reg_add(struct reg *r, const char *id, void *val);
void *reg_find(const struct reg *r, const char *id);
/* Removes id only while it still maps to val, so a connection that lost a race for an id can
 * never unregister the holder. Returns 0 when removed, -1 when not found. */
int reg_remove(struct reg *r, const char *id, const void *val);
size_t reg_count(const struct reg *r);

#endif
