/* A test driver for one resume attempt (peer_resume_link, peer/rpath.h) with the real control
 * connection, punch engine and server: the path side of a suspended session without its data
 * plane, so that a test can resume a session made up on the command line.
 *
 *   rlinkdrv [tcpunch options] ROLE ROOT PEER PEER_KEY RS_HEX RX LAST_EPOCH SECONDS
 *
 * ROLE initiator|responder, ROOT the session's root id, PEER_KEY the peer's identity key
 * (base64, as `tcpunch id` shows it), RS_HEX the resumption secret (64 hex digits), RX our
 * receive offset, SECONDS the attempt's deadline. Prints one line on stdout:
 *   rc=N epoch=E peer_rx=R gone=G tx=H rx=H why=...
 * with H the first 8 bytes of BLAKE2b(key) in hex (the two sides' tx and rx must cross).
 *
 * ROLE rpath-initiator|rpath-responder runs the attempt the way a session does: rpath_start,
 * MB_LOST (RX, LAST_EPOCH), then the first message towards the data plane (MB_CONN: rc=0 and
 * the connection's fields; MB_GIVE_UP: rc=its status, why), MB_ENDED and rpath_stop; SECONDS is
 * the resume timeout. With RLINKDRV_END_MS=N it pushes MB_ENDED N ms after MB_LOST instead of
 * waiting. Both add stop_ms= (how long rpath_stop took). RLINKDRV_SERVER names the server
 * that introduced us (rpath_cfg.server: tried first). */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "common/clock.h"
#include "common/identity.h"
#include "common/log.h"
#include "peer/exit.h"
#include "peer/options.h"
#include "peer/rpath.h"

static void key_hash(const unsigned char *k, char *out)
{
    unsigned char h[8];
    crypto_generichash(h, sizeof h, k, 32, NULL, 0);
    sodium_bin2hex(out, 17, h, sizeof h);
}

static int parse_session(char **a, struct rpath_cfg *c, uint64_t *rx, uint32_t *epoch,
                         uint64_t *secs, bool *via_rpath)
{
    size_t n = 0;
    *via_rpath = !strncmp(a[0], "rpath-", 6);
    if (*via_rpath)
        a[0] += 6;
    if (!strcmp(a[0], "initiator"))
        c->role = PROTO_INITIATOR;
    else if (!strcmp(a[0], "responder"))
        c->role = PROTO_RESPONDER;
    else
        return -1;
    snprintf(c->root, sizeof c->root, "%s", a[1]);
    snprintf(c->peer, sizeof c->peer, "%s", a[2]);
    if (sodium_base642bin(c->peer_key, sizeof c->peer_key, a[3], strlen(a[3]), NULL, &n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        n != sizeof c->peer_key)
        return -1;
    if (sodium_hex2bin(c->rs, sizeof c->rs, a[4], strlen(a[4]), NULL, &n, NULL) != 0 ||
        n != sizeof c->rs)
        return -1;
    *rx = strtoull(a[5], NULL, 10);
    *epoch = (uint32_t)strtoul(a[6], NULL, 10);
    *secs = strtoull(a[7], NULL, 10);
    return 0;
}

static void push(struct rpath *r, enum mb_kind k, uint64_t rx, uint32_t epoch)
{
    struct mb_msg m;
    memset(&m, 0, sizeof m);
    m.kind = k;
    m.conn.fd = -1;
    m.conn.peer_rx = rx;
    m.conn.epoch = epoch;
    snprintf(m.why, sizeof m.why, "a test driver's MB_LOST");
    if (mb_to_path(rpath_mbox(r), &m) != 0)
        fprintf(stderr, "rlinkdrv: the mailbox is full\n");
}

/* The session's way: the path thread, MB_LOST, its answer. */
static int via_rpath(const struct rpath_cfg *c, uint64_t rx, uint32_t epoch, uint64_t secs)
{
    struct rpath *r = rpath_start(c);
    struct mb_msg m;
    const char *end = getenv("RLINKDRV_END_MS");
    char tx[17] = "-", rxh[17] = "-";
    int rc = EXIT_LOCAL;
    if (!r)
        return EXIT_LOCAL;
    memset(&m, 0, sizeof m);
    m.conn.fd = -1;
    push(r, MB_LOST, rx, epoch);
    struct pollfd p = {.fd = mb_fd(rpath_mbox(r)), .events = POLLIN};
    int wait_ms = end ? atoi(end) : (int)(secs * 1000 + 10000);
    if (poll(&p, 1, wait_ms) == 1 && mb_take(rpath_mbox(r), MB_DATA, &m))
        rc = m.kind == MB_CONN ? EXIT_DONE : m.status;
    if (m.kind == MB_CONN) {
        key_hash(m.conn.tx, tx);
        key_hash(m.conn.rx, rxh);
    }
    push(r, MB_ENDED, 0, 0);
    uint64_t t0 = clk_ms();
    rpath_stop(r);
    printf("rc=%d epoch=%u peer_rx=%llu gone=0 tx=%s rx=%s stop_ms=%llu why=%s\n", rc, m.conn.epoch,
           (unsigned long long)m.conn.peer_rx, tx, rxh, (unsigned long long)(clk_ms() - t0), m.why);
    if (m.kind == MB_CONN && m.conn.fd >= 0)
        close(m.conn.fd);
    sodium_memzero(&m, sizeof m);
    return rc;
}

int main(int argc, char **argv)
{
    struct peer_opts o;
    struct identity ident;
    struct rpath_cfg c;
    struct peer_link link;
    uint64_t rx, secs;
    uint32_t epoch;
    char err[512], why[512] = "", tx[17], rxh[17];
    bool created, rp;
    int first = 0, rc = opts_parse(argc, argv, &o, &first);

    if (rc != EXIT_DONE || sodium_init() < 0)
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    memset(&c, 0, sizeof c);
    if (argc - first != 8 || parse_session(argv + first, &c, &rx, &epoch, &secs, &rp) != 0) {
        fprintf(stderr, "usage: rlinkdrv [options] ROLE ROOT PEER PEER_KEY RS_HEX RX "
                        "LAST_EPOCH SECONDS\n");
        return EXIT_USAGE;
    }
    if (id_load_or_create(NULL, &ident, &created, err, sizeof err) < 0) {
        fprintf(stderr, "identity: %s\n", err);
        return EXIT_LOCAL;
    }
    o.ident = &ident;
    c.o = &o;
    c.timeout_ms = secs * 1000;
    /* the server that introduced us (tried first), as a link names it */
    snprintf(c.server, sizeof c.server, "%s",
             getenv("RLINKDRV_SERVER") ? getenv("RLINKDRV_SERVER") : "");
    if (rp) {
        rc = via_rpath(&c, rx, epoch, secs);
        sodium_memzero(&ident, sizeof ident);
        return rc;
    }
    int cancel = 0;
    struct resume_link_cfg r = {.c = &c,
                                .rx = rx,
                                .last_epoch = epoch,
                                .deadline_ms = clk_ms() + secs * 1000,
                                .cancel = &cancel};
    memset(&link, 0, sizeof link);
    link.fd = -1;
    rc = peer_resume_link(&r, &link, why, sizeof why);
    key_hash(link.tx_key, tx);
    key_hash(link.rx_key, rxh);
    printf("rc=%d epoch=%u peer_rx=%llu gone=%d tx=%s rx=%s why=%s\n", rc, link.epoch,
           (unsigned long long)link.peer_rx, link.gone, tx, rxh, rc == EXIT_DONE ? "" : why);
    if (link.fd >= 0)
        close(link.fd);
    sodium_memzero(&link, sizeof link);
    sodium_memzero(&ident, sizeof ident);
    return rc;
}
