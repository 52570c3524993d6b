/* The peer's side of a wormhole code exchange (docs/design/wormhole.md 6.3): the maker (send
 * FILE..., listen --code) opens a channel at the server's mailbox, draws the words and posts
 * its CPace share; the claimer (receive CODE, connect --code CODE) claims the channel and
 * answers; each checks the other's tag, and a confirmed exchange gives both the other side's id
 * and key (from its AD) and the key that binds the session's handshake to the code.
 *
 * A state machine fed with the server's code-* messages, already decoded (the control
 * connection turns the wire's lines into struct whex_msg and back): it never sees the
 * connection, and answers through callbacks only. What each message means in each state is
 * one pure function, whex_decide.
 *
 *   whex_init(&x, &cfg, &cbs);  whex_start(&x);        sends code-open or code-claim
 *   whex_feed(&x, &msg) ...                            each code-* message or code error
 *   cbs.end(arg, WHEX_OK, ...): whex_peer(&x), whex_bind(&x)
 *   whex_wipe(&x)
 *
 * One run per code: a failed check wipes the PAKE state and burns the code (code-abort), so a
 * guesser gets exactly one try, whatever the server does. */
#ifndef TP_WHEX_H
#define TP_WHEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peer/whad.h"
#include "proto/cpace.h"
#include "proto/proto.h"
#include "proto/wcode.h"

#define WHEX_SID_BYTES 16
/* the binding key's label (wormhole.md 6.3): both sides derive cpace_binding_key(ISK, it) */
#define WHEX_BIND_LABEL "tcpunch session v1"

enum whex_role { WHEX_MAKER, WHEX_CLAIMER };

/* The messages of the exchange (wormhole.md 6.1), without their wire form. */
enum whex_kind {
    WHEX_OPEN,      /* maker -> server */
    WHEX_OPENED,    /* server -> maker: channel, sid, ttl */
    WHEX_POST,      /* maker -> server: channel, share, ad */
    WHEX_CLAIM,     /* claimer -> server: channel */
    WHEX_CLAIMED,   /* server -> claimer: channel, sid, share, ad (the maker's post) */
    WHEX_ANSWER,    /* claimer -> server -> maker: channel, share, ad, tag (Tb) */
    WHEX_CONFIRM,   /* maker -> server -> claimer: channel, tag (Ta) */
    WHEX_ABORT,     /* either -> server: channel */
    WHEX_E_UNKNOWN, /* the server's error code-unknown */
    WHEX_E_EXPIRED, /* code-expired */
    WHEX_E_WRONG,   /* code-wrong */
    WHEX_KIND_COUNT
};

struct whex_msg {
    enum whex_kind kind;
    uint32_t channel;
    uint32_t ttl; /* OPENED: seconds */
    uint8_t sid[WHEX_SID_BYTES];
    uint8_t share[CPACE_SHARE_BYTES];
    uint8_t ad[CPACE_AD_MAX];
    size_t ad_len; /* 1..CPACE_AD_MAX where the kind has an ad */
    uint8_t tag[CPACE_TAG_BYTES];
};

/* How an exchange ended. */
enum whex_end {
    WHEX_OK,         /* confirmed: whex_peer and whex_bind are valid */
    WHEX_WRONG,      /* our check of the other side failed: a wrong code, a guess, a meddler */
    WHEX_BAD_AD,     /* the other side's AD is not one of the other role */
    WHEX_MODE,       /* its AD is for the other use (a file code typed into connect --code) */
    WHEX_PEER_WRONG, /* code-wrong: the other side found it wrong (or left mid-exchange) */
    WHEX_UNKNOWN,    /* code-unknown: no such code (never made, expired, used) */
    WHEX_EXPIRED,    /* code-expired */
    WHEX_SERVER,     /* a message out of turn: the server broke the exchange */
    WHEX_LOCAL,      /* our own inputs were unusable */
};

/* The other side, as its AD names it. */
struct whex_peer {
    char id[PROTO_MAX_ID + 1];
    uint8_t key[PROTO_KEY_BYTES];
};

struct whex_cbs {
    /* a message for the server */
    void (*send)(void *arg, const struct whex_msg *m);
    /* maker: the code to show the user, once the share is posted (secret: not to be kept) */
    void (*code)(void *arg, const char *text);
    /* the end (why: for the user, "" for WHEX_OK). Called once; after WHEX_OK the maker may
     * hear once more, WHEX_PEER_WRONG, when the claimer refused our tag after all */
    void (*end)(void *arg, enum whex_end e, const char *why);
    /* the other side's AD: WHEX_OK with *p filled, else WHEX_BAD_AD or WHEX_MODE with why */
    enum whex_end (*check_ad)(void *arg, const uint8_t *ad, size_t len, struct whex_peer *p,
                              char *why, size_t whylen);
    void *arg;
};

struct whex_cfg {
    enum whex_role role;
    unsigned nwords;         /* maker: WCODE_WORDS_MIN..WCODE_WORDS_MAX */
    const struct wcode *code; /* claimer: the code as typed, parsed */
    const uint8_t *ad;       /* our own AD (1..CPACE_AD_MAX bytes) */
    size_t ad_len;
};

enum whex_state {
    WHEX_S_IDLE,     /* not started */
    WHEX_S_OPENING,  /* maker: code-open sent */
    WHEX_S_POSTED,   /* maker: our share is posted, the code shown; waiting for an answer */
    WHEX_S_CLAIMING, /* claimer: code-claim sent */
    WHEX_S_ANSWERED, /* claimer: our answer sent, waiting for the maker's tag */
    WHEX_S_OK,       /* confirmed */
    WHEX_S_END,      /* failed: nothing more */
};

/* What a message of kind k means to role in state st: the pure heart of the exchange. */
enum whex_act {
    WHEX_A_OPENED,  /* maker: draw the words, post the share, show the code */
    WHEX_A_ANSWER,  /* maker: check the claimer's AD, share and tag; confirm or abort */
    WHEX_A_CLAIMED, /* claimer: check the maker's AD, answer */
    WHEX_A_CONFIRM, /* claimer: check the maker's tag */
    WHEX_A_ERROR,   /* a code error from the server ends the exchange (whex_error_end) */
    WHEX_A_LATE,    /* maker, confirmed: the claimer refused our tag (code-wrong) */
    WHEX_A_REFUSE,  /* out of turn: abort (the server broke the exchange) */
    WHEX_A_IGNORE,  /* after the end: nothing to do */
};
enum whex_act whex_decide(enum whex_role role, enum whex_state st, enum whex_kind k);
/* The end a code error means (WHEX_E_* kinds). */
enum whex_end whex_error_end(enum whex_kind k);

struct whex {
    enum whex_role role;
    enum whex_state state;
    struct whex_cbs cb;
    unsigned nwords;
    struct wcode code; /* claimer: from the start; maker: from code-opened */
    uint32_t channel;
    uint8_t ad[CPACE_AD_MAX];
    size_t ad_len;
    struct cpace cp;
    struct whex_peer peer;
    uint8_t bind[CPACE_BIND_BYTES]; /* claimer: from its answer on; exposed once confirmed */
};

/* 0, or -1 when cfg is not usable (nothing kept). */
int whex_init(struct whex *x, const struct whex_cfg *cfg, const struct whex_cbs *cb);
/* Sends code-open (maker) or code-claim (claimer). */
void whex_start(struct whex *x);
/* One message from the server. */
void whex_feed(struct whex *x, const struct whex_msg *m);
/* Started and not ended: the caller bounds the wait for the server's next message. */
bool whex_live(const struct whex *x);
bool whex_confirmed(const struct whex *x);
/* After WHEX_OK: the other side, and the session-binding key (CPACE_BIND_BYTES). */
const struct whex_peer *whex_peer(const struct whex *x);
const uint8_t *whex_bind(const struct whex *x);
/* Wipes every secret (the words, the PAKE state, the binding key). */
void whex_wipe(struct whex *x);

/* The check_ad of a real run (peer/whad): the other side's AD must be a valid one of the other
 * role, for our mode (a file code is not taken by connect --code, nor a pipe code by receive):
 * WHEX_OK with *p, WHEX_BAD_AD or WHEX_MODE with why for the user. */
enum whex_end whex_check_ad(enum whex_role role, enum whad_mode mode, const uint8_t *ad,
                            size_t len, struct whex_peer *p, char *why, size_t whylen);

#endif
