/* The intrusive list of common/queue.h: order, removal from anywhere (twice is harmless),
 * removal while iterating, moving a whole list, and the empty list's answers. */
#include "check.h"
#include "common/queue.h"

struct item {
    int v;
    struct q link;
};

static int collect(struct q *h, int *out, int max)
{
    int n = 0;
    struct q *it;
    q_foreach(it, h)
    {
        if (n < max)
            out[n] = q_data(it, struct item, link)->v;
        n++;
    }
    return n;
}

static void t_empty(void)
{
    struct q h;
    q_init(&h);
    CHECK(q_empty(&h));
    CHECK(!q_linked(&h));
    CHECK(q_head(&h) == NULL);
    CHECK(q_tail(&h) == NULL);
    int out[1];
    CHECK_INT(collect(&h, out, 1), 0);
}

static void t_order(void)
{
    struct q h;
    struct item a = {1, {0, 0}}, b = {2, {0, 0}}, c = {3, {0, 0}};
    q_init(&h);
    q_insert_tail(&h, &b.link);
    q_insert_tail(&h, &c.link);
    q_insert_head(&h, &a.link);
    int out[4];
    CHECK_INT(collect(&h, out, 4), 3);
    CHECK_INT(out[0], 1);
    CHECK_INT(out[1], 2);
    CHECK_INT(out[2], 3);
    CHECK(q_head(&h) == &a.link);
    CHECK(q_tail(&h) == &c.link);
    CHECK(q_next(&h, &a.link) == &b.link);
    CHECK(q_next(&h, &c.link) == NULL);
    CHECK(q_linked(&b.link));
}

static void t_remove(void)
{
    struct q h;
    struct item a = {1, {0, 0}}, b = {2, {0, 0}}, c = {3, {0, 0}};
    q_init(&h);
    q_init(&b.link);
    q_remove(&b.link); /* unlinked: a no-op */
    CHECK(!q_linked(&b.link));
    q_insert_tail(&h, &a.link);
    q_insert_tail(&h, &b.link);
    q_insert_tail(&h, &c.link);
    q_remove(&b.link);
    CHECK(!q_linked(&b.link));
    q_remove(&b.link); /* twice: still harmless, the list untouched */
    int out[4];
    CHECK_INT(collect(&h, out, 4), 2);
    CHECK_INT(out[0], 1);
    CHECK_INT(out[1], 3);
    q_remove(&a.link);
    q_remove(&c.link);
    CHECK(q_empty(&h));
}

static void t_remove_while_iterating(void)
{
    struct q h;
    struct item it[6];
    q_init(&h);
    for (int i = 0; i < 6; i++) {
        it[i].v = i;
        q_insert_tail(&h, &it[i].link);
    }
    struct q *p, *tmp;
    q_foreach_safe(p, tmp, &h)
    {
        if (q_data(p, struct item, link)->v % 2 == 0)
            q_remove(p);
    }
    int out[6];
    CHECK_INT(collect(&h, out, 6), 3);
    CHECK_INT(out[0], 1);
    CHECK_INT(out[1], 3);
    CHECK_INT(out[2], 5);
}

static void t_move_all(void)
{
    struct q from, to, empty;
    struct item a = {1, {0, 0}}, b = {2, {0, 0}}, c = {3, {0, 0}};
    q_init(&from);
    q_init(&to);
    q_init(&empty);
    q_insert_tail(&to, &a.link);
    q_insert_tail(&from, &b.link);
    q_insert_tail(&from, &c.link);
    q_move_all(&from, &to);
    CHECK(q_empty(&from));
    q_move_all(&empty, &to); /* an empty source changes nothing */
    int out[4];
    CHECK_INT(collect(&to, out, 4), 3);
    CHECK_INT(out[0], 1);
    CHECK_INT(out[1], 2);
    CHECK_INT(out[2], 3);
    CHECK(q_tail(&to) == &c.link);
}

CHECK_MAIN(TEST(t_empty), TEST(t_order), TEST(t_remove), TEST(t_remove_while_iterating),
           TEST(t_move_all))
