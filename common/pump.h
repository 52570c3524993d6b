/* The data pump: stdin -> connection, connection -> stdout, with netcat semantics. */
#ifndef TP_PUMP_H
#define TP_PUMP_H

#include <stddef.h>
#include <stdint.h>

#define PUMP_BUF (128 * 1024)
/* sealed: after both final records, the peer's FIN is waited for this long at most */
#define PUMP_LINGER_MS 10000

struct pump_stats {
    uint64_t sent;     /* bytes from in written to the connection */
    uint64_t received; /* bytes from the connection written to out */
    /* wall-clock time (CLOCK_REALTIME, µs) the first received byte reached out, 0 if none:
     * benchmarks compare it with another process's start on the same host */
    uint64_t first_rx_us;
    /* of sent + received, the bytes pump_run moved by splice(2), kernel to kernel (a direction
     * whose local end is a pipe; a file, a tty or the same socket both ways go by read/write) */
    uint64_t spliced;
};

enum pump_status {
    PUMP_DONE = 0,  /* both directions finished cleanly */
    PUMP_NET_LOST,  /* the connection failed (reset, timeout) */
    PUMP_LOCAL_ERR, /* reading in or writing out failed */
};

/* Binary safe; EOF on in becomes shutdown(SHUT_WR) on net while reading goes on; EOF from net
 * closes out; returns when both directions are done. Never holds more than PUMP_BUF bytes per
 * direction, so a slow side stops the reading of the other. prefill holds bytes already read
 * from net (they go to out first). */
enum pump_status pump_run(int net, int in, int out, const void *prefill, size_t prefill_len,
                          struct pump_stats *st, char *err, size_t errlen);

/* The same through the encrypted record stream of common/seal.h: tx_key seals what in gives,
 * rx_key opens what net gives (prefill included). EOF on in sends the final record before the
 * half-close; a connection that ends without the peer's final record, or a record that fails
 * authentication, is PUMP_NET_LOST with err saying which, and nothing of a failed record reaches
 * out. Once both final records are through, the peer's FIN is waited for PUMP_LINGER_MS at most,
 * then the pump ends with PUMP_DONE as if it had come (all data was in). There is no idle
 * timeout otherwise. The counts are of plaintext. */
enum pump_status pump_run_sealed(int net, int in, int out, const void *prefill, size_t prefill_len,
                                 const unsigned char *tx_key, const unsigned char *rx_key,
                                 struct pump_stats *st, char *err, size_t errlen);

#endif
