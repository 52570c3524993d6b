/* The mailbox between the data plane and the path side: see mbox.h. */
#include "peer/mbox.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <sodium.h>

static void on_async(uv_async_t *a)
{
    struct mbox *m = a->data;
    if (m->on_path)
        m->on_path(m, m->arg);
}

int mb_init(struct mbox *m, uv_loop_t *path_loop, mb_path_cb on_path, void *arg)
{
    memset(m, 0, sizeof *m);
    m->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->efd < 0)
        return -1;
    int rc = pthread_mutex_init(&m->mu, NULL);
    if (rc != 0) {
        close(m->efd);
        errno = rc;
        return -1;
    }
    rc = uv_async_init(path_loop, &m->async, on_async);
    if (rc != 0) {
        pthread_mutex_destroy(&m->mu);
        close(m->efd);
        errno = -rc;
        return -1;
    }
    m->async.data = m;
    m->on_path = on_path;
    m->arg = arg;
    m->open = true;
    return 0;
}

/* with the mutex held */
static int push(struct mb_queue *q, const struct mb_msg *msg)
{
    if (q->n == MB_CAP)
        return -1;
    q->q[(q->head + q->n) % MB_CAP] = *msg;
    q->n++;
    return 0;
}

int mb_to_data(struct mbox *m, const struct mb_msg *msg)
{
    pthread_mutex_lock(&m->mu);
    int rc = m->open ? push(&m->to_data, msg) : -1;
    if (rc == 0 && m->to_data.n == 1) {
        /* 0 -> 1 under the mutex: the counter is 0 here, so this write cannot fail with
         * EAGAIN; the eventfd is readable from now until the queue is empty again */
        uint64_t one = 1;
        ssize_t w;
        do
            w = write(m->efd, &one, sizeof one);
        while (w < 0 && errno == EINTR);
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int mb_to_path(struct mbox *m, const struct mb_msg *msg)
{
    pthread_mutex_lock(&m->mu);
    int rc = m->open ? push(&m->to_path, msg) : -1;
    /* under the mutex, so that it cannot race mb_close's uv_close */
    if (rc == 0)
        uv_async_send(&m->async);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int mb_fd(const struct mbox *m)
{
    return m->efd;
}

bool mb_take(struct mbox *m, enum mb_dir dir, struct mb_msg *out)
{
    pthread_mutex_lock(&m->mu);
    struct mb_queue *q = dir == MB_DATA ? &m->to_data : &m->to_path;
    bool got = q->n > 0;
    if (got) {
        struct mb_msg *slot = &q->q[q->head];
        *out = *slot;
        sodium_memzero(slot, sizeof *slot);
        q->head = (q->head + 1) % MB_CAP;
        q->n--;
        if (dir == MB_DATA && q->n == 0) {
            uint64_t v;
            ssize_t r;
            do
                r = read(m->efd, &v, sizeof v);
            while (r < 0 && errno == EINTR);
        }
    }
    pthread_mutex_unlock(&m->mu);
    return got;
}

size_t mb_count(struct mbox *m, enum mb_dir dir)
{
    pthread_mutex_lock(&m->mu);
    size_t n = dir == MB_DATA ? m->to_data.n : m->to_path.n;
    pthread_mutex_unlock(&m->mu);
    return n;
}

static void drain(struct mb_queue *q)
{
    for (unsigned i = 0; i < q->n; i++) {
        struct mb_msg *msg = &q->q[(q->head + i) % MB_CAP];
        if (msg->kind == MB_CONN && msg->conn.fd >= 0)
            close(msg->conn.fd);
    }
    sodium_memzero(q, sizeof *q); /* every slot: taken ones are already zero */
}

static void on_async_closed(uv_handle_t *h)
{
    struct mbox *m = h->data;
    if (m->on_closed)
        m->on_closed(m, m->arg);
}

void mb_close(struct mbox *m, mb_closed_cb closed)
{
    pthread_mutex_lock(&m->mu);
    m->open = false;
    drain(&m->to_data);
    drain(&m->to_path);
    if (m->efd >= 0)
        close(m->efd);
    m->efd = -1;
    m->on_closed = closed;
    uv_close((uv_handle_t *)&m->async, on_async_closed);
    pthread_mutex_unlock(&m->mu);
    /* the data side has stopped (mbox.h), so nobody locks the mutex any more */
    pthread_mutex_destroy(&m->mu);
}
