/* The relay path: a fresh connection to the rendezvous server that joins the session the punch
 * offered a relay for (PROTOCOL.md, "Relay"). Once the server answers `relayed`, the socket is
 * a byte pipe to the other peer, ready for the session handshake. */
#ifndef TP_PEER_RELAY_H
#define TP_PEER_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "proto/proto.h"

struct rl;

/* status EXIT_DONE: fd is the spliced connection (now the callee's), positioned right after
 * the `relayed` line: nothing the other peer sent has been read from it; otherwise EXIT_PUNCH (the relay refused: full, disabled, timed out)
 * or EXIT_SERVER (the server could not be reached or went away) with why. The relay attempt
 * frees itself after this call. */
typedef void (*rl_done_cb)(struct rl *r, int status, const char *why, int fd, void *arg);

/* Connects to server after delay_ms (0: at once) from an ephemeral port and, once the server's
 * challenge has arrived, sends the relay line for session/token, with the admit proof when
 * secret (the --secret-file digest) is not NULL. Returns NULL (with err) when out of memory. */
struct rl *rl_start(uv_loop_t *loop, const struct sockaddr *server, const char *session,
                    const char *token, const unsigned char *secret, uint64_t delay_ms,
                    rl_done_cb done, void *arg, char *err, size_t errlen);

/* Opens an attempt still waiting for its delay now (the direct path is known to have failed);
 * otherwise nothing. */
void rl_now(struct rl *r);

/* Stops an attempt that has not called done yet; done will not be called. */
void rl_cancel(struct rl *r);

/* Where the attempt stands, for a failure message: "not opened yet (...)", "connecting to
 * ...", "waiting at ... for the other peer to join". */
void rl_describe(const struct rl *r, char *buf, size_t len);

#endif
