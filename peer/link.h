/* The established link: a verified connection to the other peer, how it was made, and the
 * keys of its stream. */
#ifndef TP_LINK_H
#define TP_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <sodium.h>

#include "common/srvlist.h"
#include "proto/proto.h"

/* A verified connection to the other peer, out of the event loop, ready for the pump. */
struct peer_link {
    int fd;
    char peer[PROTO_MAX_ID + 1];
    struct sockaddr_storage remote;
    /* which candidate won: "public", "port-preserved", "lan", "inbound", "birthday" */
    const char *via;
    uint64_t punch_ms; /* from the punch order to the handshake done */
    unsigned attempts; /* connect() calls made (a birthday punch's SYNs included) */
    /* via "birthday": our role, and which of our sockets (hard) or guesses (easy) met the
     * other side, bday_n (1-based) of bday_of */
    bool birthday;
    bool bday_easy;
    int bday_n, bday_of;
    size_t prefill_len;
    char prefill[PROTO_MAX_LINE];         /* peer data that arrived with the handshake */
    bool relayed;                         /* through the server's relay, not direct */
    struct sockaddr_storage relay_server; /* the relay's endpoint, when relayed */
    char direct_why[256];                 /* relayed: why the direct path failed or was skipped */
    char server[SL_NAME];                 /* the rendezvous that introduced us (of --server) */
    /* the end-to-end keys of the stream (PROTOCOL.md, "Encrypted stream"); !encrypted only in
     * direct --plain */
    bool encrypted;
    unsigned char tx_key[crypto_kx_SESSIONKEYBYTES], rx_key[crypto_kx_SESSIONKEYBYTES];
    unsigned char peer_pk[crypto_sign_PUBLICKEYBYTES]; /* the peer's verified identity */
    /* The session layer (PROTOCOL.md section 18, docs/design/resume.md): on when both shakes
     * carried shake.resume (epoch 0), or always on a link made by a resume handshake. */
    bool resume;
    enum proto_role role;             /* the session's roles (the shake's) */
    char root[PROTO_SESSION_LEN + 1]; /* the session's root id: epoch 0's punch.session */
    unsigned char rs[32];             /* resumption secret (SHAKE_RS_BYTES); wiped with the keys */
    uint64_t resume_ms;               /* effective --resume-timeout: min of both sides */
    uint64_t peer_buf;                /* the peer's shake.resume.buf */
    /* relay first applied at epoch 0 (docs/design/resume.md 4.6, as built): the relay was
     * joined after the grace, so a relayed epoch 0 is upgraded to direct by the path side */
    bool upgrade_wanted;
    /* a link made by a resume handshake (peer/rshake): its epoch (>= 1), the peer's receive
     * offset from it, and whether the peer answered `gone` (its session ended) */
    uint32_t epoch;
    uint64_t peer_rx;
    bool gone;
    /* set by bridge_start (peer/bridge.h): fd is the local end of the session bridge, a plain
     * stream that chan.c and chat.c use without seal */
    struct bridge *bridge;
};

#endif
