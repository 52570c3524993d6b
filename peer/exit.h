/* The exit codes of tcpunch, documented in README and --help. */
#ifndef TP_EXIT_H
#define TP_EXIT_H

enum peer_exit {
    EXIT_DONE = 0,
    EXIT_USAGE = 1,
    EXIT_SERVER = 2,  /* server unreachable, refused us, or lost before the punch */
    EXIT_NO_PEER = 3, /* the peer is not registered */
    EXIT_PUNCH = 4,   /* no verified connection before the timeout */
    EXIT_LOST = 5,    /* the connection failed after it was established */
    EXIT_LOCAL = 6,   /* stdin/stdout or another local error */
    /* nat-check verdicts (0 above: no NAT) */
    EXIT_NAT_EIM = 7,     /* NAT with endpoint-independent mapping: punchable */
    EXIT_NAT_SYM = 8,     /* endpoint-dependent mapping (symmetric): a relay, or birthday
                           * punching with an easy peer */
    EXIT_NAT_UNKNOWN = 9, /* cannot tell: the server has no probe port, or it did not answer */
    /* send/receive: the transfer ran to its end, but the receiver refused some files */
    EXIT_PARTIAL = 10,
    /* a resumable session lost its connection and no new one came within --resume-timeout */
    EXIT_NOT_RESUMED = 11,
    /* wormhole codes: the code exchange failed (a wrong code or a guess, on either side; the
     * code is burned), and no such code (never made, expired, already used) */
    EXIT_CODE_FAILED = 12,
    EXIT_NO_CODE = 13,
};

#endif
