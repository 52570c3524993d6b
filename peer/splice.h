/* Forwarding sessions (listen --forward, connect --local): every session is a thread that
 * splices one verified peer link with one local TCP connection through the sealed pump
 * (peer_pipe_fds), so that many run at once and the failure of one never touches another. */
#ifndef TP_SPLICE_H
#define TP_SPLICE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "peer/link.h"
#include "peer/opts.h"

/* How long a session waits for the local TCP connection (forward) to be accepted. */
#define SPL_DIAL_TIMEOUT_MS 10000

/* Sessions at once (--max-sessions), shared by the thread that admits them and the threads
 * that end them. */
struct spl_slots {
    atomic_int used;
    int max;
};

/* Takes a slot; false when all max are in use. */
bool spl_take(struct spl_slots *s);
void spl_give(struct spl_slots *s);

/* Runs fn(arg) on a detached thread. Returns 0, or -1 when it cannot start (fn not called). */
int spl_spawn(void *(*fn)(void *), void *arg);

/* A blocking TCP connection to `to` within timeout_ms; -1 with err when refused or too slow. */
int spl_dial(const struct sockaddr_storage *to, int timeout_ms, char *err, size_t errlen);

/* Splices link with the connected socket fd until both directions have ended (each end passed
 * on as a half-close); closes both and returns an exit code, as peer_pipe does. */
int spl_run(const struct peer_opts *o, struct peer_link *link, int fd);

/* listen --forward: serves every admitted peer with a connection to o->forward. Returns only
 * when the server is gone for good (an exit code). */
int spl_forward(const struct peer_opts *o);

/* connect PEER --local [ADDR:]PORT: a new punched connection to peer for every local client.
 * Returns only on a local error (an exit code); SIGINT/SIGTERM end it. */
int spl_local(const struct peer_opts *o, const char *peer);

#endif
