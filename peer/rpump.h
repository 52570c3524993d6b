/* The pipe loop of a resumable session (docs/design/resume.md 4.3, 5.1, 5.4): moves bytes between
 * a local side (in, out: stdin/stdout, or one socket for both) and the session's current
 * connection, through common/rstream (the ring, the records, the state machine of rsess). It is
 * the data plane: one thread blocking in poll(), never in libuv. When the current connection
 * fails it pushes MB_LOST to the path side through the mailbox and keeps the local side (reads
 * the source into the ring until it is full, writes out what it already holds); the path side
 * answers with MB_CONN (a new connection, which it attaches) or MB_GIVE_UP. It pushes MB_ENDED
 * once, whatever the outcome, before it returns.
 *
 * pump.c stays what it is for plain and legacy sealed streams. */
#ifndef TP_RPUMP_H
#define TP_RPUMP_H

#include <stddef.h>
#include <stdint.h>

#include "common/rsess.h"
#include "peer/mbox.h"

enum rpump_ev_kind {
    RPUMP_SUSPENDED, /* the current connection failed: why, tx, rx */
    RPUMP_RESUMED,   /* a new connection carries the session: ms (since the failure), epoch,
                        resent (bytes sent again) */
    RPUMP_UPGRADED,  /* a live session moved to a new connection (relay first, then direct):
                        ms since epoch 0 was attached, epoch, conn */
};

struct rpump_event {
    enum rpump_ev_kind kind;
    const char *why; /* SUSPENDED: what failed ("connection reset by peer") */
    uint64_t ms;
    uint32_t epoch;
    uint64_t resent;
    uint64_t tx, rx; /* session offsets: ours sent and acknowledged, the peer's received */
    const struct mb_conn *conn; /* RESUMED, UPGRADED: the connection attached (how it was made) */
};

struct rpump_cfg {
    size_t ring;              /* --resume-buffer: the resend ring's capacity */
    struct rs_params params;  /* rs_params_default with resume_ms = the effective timeout */
    /* called on the data plane's thread (may be NULL); it may log and print events */
    void (*event)(void *arg, const struct rpump_event *e);
    void *arg;
    /* a socket as both in and out: the end of our direction is shutdown(out, SHUT_WR) */
    bool splice;
    /* has_stop: stop_fd becoming readable ends the session at once (ABORT sent best effort,
     * RPUMP_LOCAL): the bridge's bound on a peer that never ends its direction */
    bool has_stop;
    int stop_fd;
};

enum rpump_status {
    RPUMP_DONE,    /* both directions ended deliberately: exit 0 */
    RPUMP_ABORTED, /* the peer ended the session (ABORT or `gone`), or a protocol error was
                      final: exit 5 */
    RPUMP_LOCAL,   /* reading in or writing out failed: exit 6, ABORT sent best effort */
    RPUMP_FAILED,  /* lost and not resumed within the resume timeout (or MB_GIVE_UP): exit 11 */
    RPUMP_SIGNAL,  /* SIGINT/SIGTERM/SIGHUP: ABORT sent best effort */
};

struct rpump_stats {
    uint64_t sent, received; /* application bytes: read from in, written to out */
    uint64_t first_rx_us;    /* clk_wall_us() of the first byte written out (0: none) */
    uint64_t resent;         /* bytes sealed again after resumes */
    unsigned resumes;
    unsigned upgrades; /* live moves (MB_CONN with upgrade) */
};

/* MB_LOST, as rpump pushes it: conn.peer_rx is OUR receive offset (rs_rx_offset: what the resume
 * handshake announces), conn.epoch the newest epoch attached (the handshake's last_epoch), why
 * the failure; conn.fd -1. MB_CONN answers it: fd, epoch (above every earlier one), keys, the
 * peer's rx from the handshake (peer_rx), prefill; a connection rs_attach refuses (a lying
 * peer_rx) is closed and MB_LOST pushed again. MB_CONN with upgrade set (relay first, 4.6) moves
 * a live session. */

/* MB_GIVE_UP's status: EXIT_LOST (5) when the peer answered the resume with `gone` (its session
 * ended: RPUMP_ABORTED), anything else RPUMP_FAILED. */

/* Runs the session from its first connection (epoch 0: first->epoch 0, first->peer_rx 0) until
 * it ends. mb is the session's mailbox (the path side holds the other end); first's fd and keys
 * are taken (the fd is closed when done, keys wiped). err says why for every status but DONE. */
enum rpump_status rpump_run(const struct rpump_cfg *c, struct mbox *mb, int in, int out,
                            struct mb_conn *first, struct rpump_stats *st, char *err,
                            size_t errlen);

#endif
