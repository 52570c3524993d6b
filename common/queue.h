/* Intrusive doubly linked lists, in libuv's style: a list is a struct q that is its own head and
 * tail (an empty list points at itself), an element embeds a struct q and is recovered with
 * q_data. Every operation is O(1) and none allocates, so a list never fails and never costs a
 * peer more memory than the element it already is.
 *
 *   struct conn { struct q link; ... };
 *   struct q live; q_init(&live);
 *   q_insert_tail(&live, &c->link);
 *   struct q *it, *tmp;
 *   q_foreach_safe(it, tmp, &live) { struct conn *c = q_data(it, struct conn, link); ... }
 *
 * An element that was q_init-ed or q_remove-d is "unlinked" (q_linked is false), so removing
 * it twice is harmless: the close paths of a connection need not know which list holds it. */
#ifndef TP_QUEUE_H
#define TP_QUEUE_H

#include "common/container.h"

#include <stdbool.h>
#include <stddef.h>

struct q {
    struct q *next, *prev;
};

#define q_data(ptr, type, member) container_of(ptr, type, member)

static inline void q_init(struct q *h)
{
    h->next = h->prev = h;
}

static inline bool q_empty(const struct q *h)
{
    return h->next == h;
}

/* For an element: is it in a list? (For a list head: is the list non-empty?) */
static inline bool q_linked(const struct q *n)
{
    return n->next != n;
}

/* The first / last element, or NULL when the list is empty. */
static inline struct q *q_head(const struct q *h)
{
    return h->next == h ? NULL : h->next;
}

static inline struct q *q_tail(const struct q *h)
{
    return h->prev == h ? NULL : h->prev;
}

/* The element after n in list h, or NULL at its end. */
static inline struct q *q_next(const struct q *h, const struct q *n)
{
    return n->next == h ? NULL : n->next;
}

static inline void q_insert_tail(struct q *h, struct q *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static inline void q_insert_head(struct q *h, struct q *n)
{
    n->next = h->next;
    n->prev = h;
    h->next->prev = n;
    h->next = n;
}

/* Unlinks n from whatever list holds it and leaves it unlinked; a no-op on an unlinked one. */
static inline void q_remove(struct q *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

/* Moves every element of from to the tail of to, in order; from is left empty. */
static inline void q_move_all(struct q *from, struct q *to)
{
    if (q_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    q_init(from);
}

#define q_foreach(it, h) for ((it) = (h)->next; (it) != (h); (it) = (it)->next)
/* The same, where the body may remove (or free) the element it is at. */
#define q_foreach_safe(it, tmp, h)                                                                 \
    for ((it) = (h)->next, (tmp) = (it)->next; (it) != (h); (it) = (tmp), (tmp) = (it)->next)

#endif
