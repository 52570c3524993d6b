/* The NAT probe: a second connection from the control connection's local port to the server's
 * probe port, asking where it came from. Comparing that with the control connection's observed
 * endpoint tells whether the NAT keeps one public port per local port (PROTOCOL.md, probe). */
#ifndef TP_PROBE_H
#define TP_PROBE_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "proto/proto.h"

#define PRB_TIMEOUT_MS 2000 /* a probe costs two round trips; more means it is not answered */

struct prb_result {
    int ok; /* 1: observed is set; 0: the probe failed, why says how */
    struct sockaddr_storage observed;
    enum proto_nat mapping; /* the server's verdict; unknown when the token did not match */
    char why[320];
};

struct prb;
/* Called exactly once (unless cancelled); the probe frees itself afterwards. */
typedef void (*prb_done_cb)(struct prb *p, const struct prb_result *r, void *arg);

/* Connects from local (wildcard address, the shared port) to server, reads its challenge, sends
 * `probe` with token ("" for none) and the admit proof when secret (the --secret-file digest) is
 * not NULL, and reads one `observed`, all within timeout_ms. Returns NULL with a reason in err
 * when it cannot even start. */
struct prb *prb_start(uv_loop_t *loop, const struct sockaddr *local, const struct sockaddr *server,
                      const char *token, const unsigned char *secret, uint64_t timeout_ms,
                      prb_done_cb done, void *arg, char *err, size_t errlen);

/* Stops a running probe without calling done; its connection closes on the next loop turn. Not
 * to be called once done has run (the probe may be freed by then). */
void prb_cancel(struct prb *p);

#endif
