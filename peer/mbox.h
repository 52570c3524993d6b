/* The mailbox between a session's data plane and its path side (docs/design/resume.md 5.1, 5.3).
 *
 * The data plane is a thread blocking in poll(); the path side (control connections, punches,
 * relays, resume handshakes) runs on a libuv loop in another thread. They exchange fixed-size
 * messages through two bounded FIFOs behind one mutex:
 *
 *   towards the data side (MB_DATA): mb_to_data pushes; the eventfd mb_fd() is readable exactly
 *       while messages wait there (the data plane adds it to its pollfds, POLLIN), and
 *       mb_take(m, MB_DATA, &out) pops one (the eventfd is drained when the queue empties);
 *   towards the path side (MB_PATH): mb_to_path pushes and wakes the loop through a uv_async_t;
 *       the callback given to mb_init runs on the loop's thread and drains with
 *       mb_take(m, MB_PATH, &out) until it returns false (uv_async coalesces wake-ups, so one
 *       callback may find several messages, or none).
 *
 * Neither push blocks or allocates: each queue holds MB_CAP messages and a push to a full queue
 * returns -1 (the caller decides: retry later, drop, give up). Messages are copied in and out.
 *
 * Ownership: a message of kind MB_CONN owns conn.fd (when >= 0) and carries key material; once
 * pushed the box owns them, once taken the taker does. The box's copy of the keys is wiped
 * (sodium_memzero) as a message is taken, and at mb_close; fds of MB_CONN messages still in a
 * box at mb_close are closed. For every other kind conn is ignored (its fd is never closed, so
 * a zero-initialised message does not close stdin).
 *
 * Threads:
 *   mb_init           on the path loop's thread (uv_async_init), before either side uses the box;
 *   mb_to_data, mb_to_path, mb_take, mb_count, mb_fd: from any thread (mutex inside), while the
 *                     box is open; by convention the path side pushes MB_DATA and takes MB_PATH,
 *                     the data side the reverse;
 *   mb_close          on the path loop's thread, once the data side has stopped using the box (its
 *                     thread joined, or it will never call mb_* again): uv_async_send after
 *                     uv_close is undefined behaviour in libuv. The box's memory must stay valid
 *                     until the `closed` callback (run from the loop, after the async is closed);
 *                     the callback may free it.
 *
 * Dormant: nothing uses the mailbox yet. */
#ifndef TP_MBOX_H
#define TP_MBOX_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>
#include <uv.h>

#define MB_CAP 16 /* messages per direction (a session exchanges a handful at a time) */
#define MB_WHY 256
#define MB_LOST_REFUSED 1 /* MB_LOST's status: rs_attach refused the MB_CONN just given */
#define MB_PREFILL 4096 /* PROTO_MAX_LINE: what a handshake read can leave behind */

enum mb_kind {
    MB_CONN = 1, /* path -> data: a connection to attach (epoch 0, a resume, or an upgrade) */
    MB_GIVE_UP,  /* path -> data: no connection will come (status, why) */
    MB_LOST,     /* data -> path: the current connection failed; find another (status
                    MB_LOST_REFUSED: the connection handed over was refused, same suspension) */
    MB_ENDED,    /* data -> path: the session ended (status: exit code, why) */
};

enum mb_dir {
    MB_DATA, /* the queue towards the data plane (filled by mb_to_data) */
    MB_PATH, /* the queue towards the path side (filled by mb_to_path) */
};

/* A connection handed to the data plane: the fields of the design's struct rs_conn that can
 * travel by value (common/rstream.h is not on main yet; the prefill pointer is left out). */
struct mb_conn {
    int fd; /* owned by the message (MB_CONN only), -1 for none */
    uint32_t epoch;
    unsigned char tx[32], rx[32]; /* stream keys: wiped in the box when taken or at close */
    uint64_t peer_rx;
    bool upgrade;
    /* how the path side made it, for the `resumed` line and event: relayed or direct, the
     * remote endpoint (the relay's when relayed), the winning candidate's kind ("public", ...) */
    bool relayed;
    struct sockaddr_storage remote;
    char via[16];
    /* the peer's bytes that arrived behind the handshake's last line (the stream's start) */
    size_t prefill_len;
    unsigned char prefill[MB_PREFILL];
};

struct mb_msg {
    enum mb_kind kind;
    struct mb_conn conn;
    int status;
    char why[MB_WHY];
};

struct mbox;
typedef void (*mb_path_cb)(struct mbox *m, void *arg); /* on the loop: drain MB_PATH */
typedef void (*mb_closed_cb)(struct mbox *m, void *arg);

struct mb_queue {
    struct mb_msg q[MB_CAP];
    unsigned head, n; /* oldest at q[head], n waiting */
};

struct mbox { /* members private; public only so that callers can embed it */
    pthread_mutex_t mu;
    struct mb_queue to_data, to_path;
    int efd; /* eventfd: non-zero exactly while to_data.n > 0 */
    uv_async_t async;
    mb_path_cb on_path;
    mb_closed_cb on_closed;
    void *arg;
    bool open;
};

/* 0, or -1 with errno (eventfd, mutex or uv_async_init failed; nothing is left allocated).
 * on_path may be NULL (the path side then polls with mb_take). */
int mb_init(struct mbox *m, uv_loop_t *path_loop, mb_path_cb on_path, void *arg);
/* 0 queued, -1 the queue is full (or the box is closed). */
int mb_to_data(struct mbox *m, const struct mb_msg *msg);
int mb_to_path(struct mbox *m, const struct mb_msg *msg);
/* the eventfd the data plane polls for POLLIN; it never reads it itself */
int mb_fd(const struct mbox *m);
/* pops the oldest message of that direction into *out; false when none waits */
bool mb_take(struct mbox *m, enum mb_dir dir, struct mb_msg *out);
size_t mb_count(struct mbox *m, enum mb_dir dir);
/* closes the fds of waiting MB_CONN messages, wipes every message, closes the eventfd, then
 * uv_close on the async; `closed` (may be NULL) runs from the loop when that is done. */
void mb_close(struct mbox *m, mb_closed_cb closed);

#endif
