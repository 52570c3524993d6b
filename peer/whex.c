/* The peer's side of a wormhole code exchange: see whex.h. */
#include "peer/whex.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

enum whex_act whex_decide(enum whex_role role, enum whex_state st, enum whex_kind k)
{
    bool err = k == WHEX_E_UNKNOWN || k == WHEX_E_EXPIRED || k == WHEX_E_WRONG;
    if (st == WHEX_S_END || st == WHEX_S_IDLE)
        return WHEX_A_IGNORE;
    if (st == WHEX_S_OK)
        /* the server keeps a confirmed channel a while so that the claimer's late abort
         * reaches the maker (6.2, DONE); anything else now is noise that changes nothing */
        return role == WHEX_MAKER && k == WHEX_E_WRONG ? WHEX_A_LATE : WHEX_A_IGNORE;
    if (err)
        return WHEX_A_ERROR;
    if (role == WHEX_MAKER && st == WHEX_S_OPENING && k == WHEX_OPENED)
        return WHEX_A_OPENED;
    if (role == WHEX_MAKER && st == WHEX_S_POSTED && k == WHEX_ANSWER)
        return WHEX_A_ANSWER;
    if (role == WHEX_CLAIMER && st == WHEX_S_CLAIMING && k == WHEX_CLAIMED)
        return WHEX_A_CLAIMED;
    if (role == WHEX_CLAIMER && st == WHEX_S_ANSWERED && k == WHEX_CONFIRM)
        return WHEX_A_CONFIRM;
    /* a second opened, a claimed to the maker, our own message sent back: a server that
     * lies or is broken; the exchange cannot be trusted past this point */
    return WHEX_A_REFUSE;
}

enum whex_end whex_error_end(enum whex_kind k)
{
    switch (k) {
    case WHEX_E_UNKNOWN:
        return WHEX_UNKNOWN;
    case WHEX_E_EXPIRED:
        return WHEX_EXPIRED;
    case WHEX_E_WRONG:
        return WHEX_PEER_WRONG;
    default:
        return WHEX_SERVER;
    }
}

int whex_init(struct whex *x, const struct whex_cfg *cfg, const struct whex_cbs *cb)
{
    memset(x, 0, sizeof *x);
    if (!cfg->ad || cfg->ad_len == 0 || cfg->ad_len > sizeof x->ad || !cb->send || !cb->end ||
        !cb->check_ad || (cfg->role == WHEX_MAKER && !cb->code))
        return -1;
    if (cfg->role == WHEX_MAKER &&
        (cfg->nwords < WCODE_WORDS_MIN || cfg->nwords > WCODE_WORDS_MAX))
        return -1;
    if (cfg->role == WHEX_CLAIMER && !cfg->code)
        return -1;
    x->role = cfg->role;
    x->cb = *cb;
    x->nwords = cfg->nwords;
    if (cfg->role == WHEX_CLAIMER) {
        x->code = *cfg->code;
        x->channel = cfg->code->channel;
    }
    memcpy(x->ad, cfg->ad, cfg->ad_len);
    x->ad_len = cfg->ad_len;
    x->state = WHEX_S_IDLE;
    return 0;
}

static void whex_send(struct whex *x, struct whex_msg *m, enum whex_kind k)
{
    m->kind = k;
    m->channel = x->channel;
    x->cb.send(x->cb.arg, m);
}

static void whex_send_bare(struct whex *x, enum whex_kind k)
{
    struct whex_msg m;
    memset(&m, 0, sizeof m);
    whex_send(x, &m, k);
}

/* The end of a failed exchange: the PAKE state goes (one run per code), the words with it,
 * and the server burns the channel when we tell it (a channel we hold or claimed). */
static void whex_fail(struct whex *x, bool abort, enum whex_end e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void whex_fail(struct whex *x, bool abort, enum whex_end e, const char *fmt, ...)
{
    char why[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    cpace_wipe(&x->cp);
    wcode_wipe(&x->code);
    sodium_memzero(x->bind, sizeof x->bind);
    x->state = WHEX_S_END;
    if (abort && x->channel)
        whex_send_bare(x, WHEX_ABORT);
    x->cb.end(x->cb.arg, e, why);
}

void whex_start(struct whex *x)
{
    if (x->state != WHEX_S_IDLE)
        return;
    x->state = x->role == WHEX_MAKER ? WHEX_S_OPENING : WHEX_S_CLAIMING;
    whex_send_bare(x, x->role == WHEX_MAKER ? WHEX_OPEN : WHEX_CLAIM);
}

/* CPace's inputs for our code and the channel's sid: the password (the words), the channel
 * identifier (the channel) and our own AD. 0, or -1 when the code cannot give them. */
static int whex_inputs(const struct whex *x, const uint8_t *sid, struct cpace_in *in,
                       uint8_t prs[WCODE_PRS_MAX], uint8_t ci[WCODE_CI_MAX])
{
    size_t np = wcode_prs(&x->code, prs, WCODE_PRS_MAX), nc = wcode_ci(&x->code, ci, WCODE_CI_MAX);
    if (!np || !nc)
        return -1;
    *in = (struct cpace_in){.prs = prs,
                            .prs_len = np,
                            .ci = ci,
                            .ci_len = nc,
                            .sid = sid,
                            .sid_len = WHEX_SID_BYTES,
                            .ad = x->ad,
                            .ad_len = x->ad_len};
    return 0;
}

static int whex_begin(struct whex *x, enum cpace_role role, const uint8_t *sid,
                      uint8_t share[CPACE_SHARE_BYTES])
{
    uint8_t prs[WCODE_PRS_MAX], ci[WCODE_CI_MAX];
    struct cpace_in in;
    int rc = whex_inputs(x, sid, &in, prs, ci);
    if (rc == 0)
        rc = cpace_start(&x->cp, role, &in, share);
    sodium_memzero(prs, sizeof prs);
    return rc;
}

/* Maker: the server allocated our channel. The words are drawn only now (they go with this
 * channel alone), the share posted, and only then is the code shown: nobody can type it
 * before the server holds what a claimer needs. */
static void whex_on_opened(struct whex *x, const struct whex_msg *m)
{
    struct whex_msg out;
    char text[WCODE_TEXT_MAX];
    memset(&out, 0, sizeof out);
    if (wcode_generate(&x->code, m->channel, x->nwords) < 0) {
        whex_fail(x, false, WHEX_SERVER, "the server opened channel %u, not a valid one",
                  (unsigned)m->channel);
        return;
    }
    x->channel = m->channel;
    if (whex_begin(x, CPACE_INITIATOR, m->sid, out.share) < 0) {
        whex_fail(x, true, WHEX_LOCAL, "%s", "cannot start the PAKE");
        return;
    }
    memcpy(out.ad, x->ad, x->ad_len);
    out.ad_len = x->ad_len;
    x->state = WHEX_S_POSTED;
    whex_send(x, &out, WHEX_POST);
    if (x->state != WHEX_S_POSTED || !wcode_format(&x->code, text, sizeof text))
        return;
    x->cb.code(x->cb.arg, text);
    sodium_memzero(text, sizeof text);
}

/* The other side's AD, before any of its share is used: a share from a side we would refuse
 * anyway is never mixed into our PAKE. true when it passed. */
static bool whex_ad_ok(struct whex *x, const struct whex_msg *m)
{
    char why[200] = "";
    enum whex_end e = x->cb.check_ad(x->cb.arg, m->ad, m->ad_len, &x->peer, why, sizeof why);
    if (e == WHEX_OK)
        return true;
    whex_fail(x, true, e == WHEX_MODE ? WHEX_MODE : WHEX_BAD_AD, "%s", why);
    return false;
}

static void whex_confirmed_now(struct whex *x, const uint8_t isk[CPACE_ISK_BYTES])
{
    static const char label[] = WHEX_BIND_LABEL;
    if (cpace_binding_key(isk, (const uint8_t *)label, sizeof label - 1, x->bind) < 0) {
        whex_fail(x, x->role == WHEX_MAKER, WHEX_LOCAL, "%s", "cannot derive the binding key");
        return;
    }
    /* the words did their work: nothing needs them any more */
    wcode_wipe(&x->code);
    x->state = WHEX_S_OK;
}

/* Maker: the claimer's answer. Its tag is checked before ours goes out, so a claimer with a
 * wrong guess learns nothing but "wrong". */
static void whex_on_answer(struct whex *x, const struct whex_msg *m)
{
    uint8_t isk[CPACE_ISK_BYTES];
    struct whex_msg out;
    memset(&out, 0, sizeof out);
    if (!whex_ad_ok(x, m))
        return;
    if (cpace_finish(&x->cp, m->share, m->ad, m->ad_len, isk) < 0) {
        whex_fail(x, true, WHEX_WRONG, "%s", "its PAKE share is not valid");
        goto out;
    }
    if (cpace_check_tag(&x->cp, m->tag) < 0) {
        whex_fail(x, true, WHEX_WRONG, "%s", "its key confirmation did not match");
        goto out;
    }
    if (cpace_tag(&x->cp, out.tag) < 0) {
        whex_fail(x, true, WHEX_LOCAL, "%s", "cannot make our key confirmation");
        goto out;
    }
    whex_confirmed_now(x, isk);
    if (x->state != WHEX_S_OK)
        goto out;
    cpace_wipe(&x->cp);
    whex_send(x, &out, WHEX_CONFIRM);
    if (x->state == WHEX_S_OK)
        x->cb.end(x->cb.arg, WHEX_OK, "");
out:
    sodium_memzero(isk, sizeof isk);
    sodium_memzero(&out, sizeof out);
}

/* Claimer: the maker's post. Our share, our AD and our tag go back at once; the binding key
 * is derived now but used only once the maker's tag checks out. */
static void whex_on_claimed(struct whex *x, const struct whex_msg *m)
{
    uint8_t isk[CPACE_ISK_BYTES];
    struct whex_msg out;
    memset(&out, 0, sizeof out);
    if (!whex_ad_ok(x, m))
        return;
    if (whex_begin(x, CPACE_RESPONDER, m->sid, out.share) < 0) {
        whex_fail(x, true, WHEX_LOCAL, "%s", "cannot start the PAKE");
        goto out;
    }
    if (cpace_finish(&x->cp, m->share, m->ad, m->ad_len, isk) < 0) {
        whex_fail(x, true, WHEX_WRONG, "%s", "the other side's PAKE share is not valid");
        goto out;
    }
    if (cpace_tag(&x->cp, out.tag) < 0 ||
        cpace_binding_key(isk, (const uint8_t *)WHEX_BIND_LABEL, sizeof WHEX_BIND_LABEL - 1,
                          x->bind) < 0) {
        whex_fail(x, true, WHEX_LOCAL, "%s", "cannot make our key confirmation");
        goto out;
    }
    memcpy(out.ad, x->ad, x->ad_len);
    out.ad_len = x->ad_len;
    x->state = WHEX_S_ANSWERED;
    whex_send(x, &out, WHEX_ANSWER);
out:
    sodium_memzero(isk, sizeof isk);
    sodium_memzero(&out, sizeof out);
}

/* Claimer: the maker's tag. */
static void whex_on_confirm(struct whex *x, const struct whex_msg *m)
{
    if (cpace_check_tag(&x->cp, m->tag) < 0) {
        whex_fail(x, true, WHEX_WRONG, "%s", "its key confirmation did not match");
        return;
    }
    cpace_wipe(&x->cp);
    wcode_wipe(&x->code);
    x->state = WHEX_S_OK;
    x->cb.end(x->cb.arg, WHEX_OK, "");
}

static const char *whex_kind_name(enum whex_kind k)
{
    static const char *const names[WHEX_KIND_COUNT] = {
        [WHEX_OPEN] = "code-open",       [WHEX_OPENED] = "code-opened",
        [WHEX_POST] = "code-post",       [WHEX_CLAIM] = "code-claim",
        [WHEX_CLAIMED] = "code-claimed", [WHEX_ANSWER] = "code-answer",
        [WHEX_CONFIRM] = "code-confirm", [WHEX_ABORT] = "code-abort",
        [WHEX_E_UNKNOWN] = "code-unknown", [WHEX_E_EXPIRED] = "code-expired",
        [WHEX_E_WRONG] = "code-wrong"};
    return (unsigned)k < WHEX_KIND_COUNT ? names[k] : "?";
}

/* The errors carry no channel; every other message must name ours (the maker's before
 * code-opened has none yet, and code-opened names the new one). */
static bool whex_channel_ok(const struct whex *x, const struct whex_msg *m)
{
    if (m->kind >= WHEX_E_UNKNOWN || m->kind == WHEX_OPENED)
        return true;
    return m->channel == x->channel;
}

void whex_feed(struct whex *x, const struct whex_msg *m)
{
    enum whex_act a = whex_decide(x->role, x->state, m->kind);
    if (a != WHEX_A_IGNORE && a != WHEX_A_ERROR && a != WHEX_A_LATE && !whex_channel_ok(x, m))
        a = WHEX_A_REFUSE;
    switch (a) {
    case WHEX_A_OPENED:
        whex_on_opened(x, m);
        break;
    case WHEX_A_ANSWER:
        whex_on_answer(x, m);
        break;
    case WHEX_A_CLAIMED:
        whex_on_claimed(x, m);
        break;
    case WHEX_A_CONFIRM:
        whex_on_confirm(x, m);
        break;
    case WHEX_A_ERROR:
        /* the server has ended the channel already: no abort to send */
        whex_fail(x, false, whex_error_end(m->kind), "%s", whex_kind_name(m->kind));
        break;
    case WHEX_A_LATE:
        x->state = WHEX_S_END;
        sodium_memzero(x->bind, sizeof x->bind);
        x->cb.end(x->cb.arg, WHEX_PEER_WRONG, "the other side refused our key confirmation");
        break;
    case WHEX_A_REFUSE:
        whex_fail(x, true, WHEX_SERVER, "the server sent %s out of turn (channel %u)",
                  whex_kind_name(m->kind), (unsigned)m->channel);
        break;
    case WHEX_A_IGNORE:
        break;
    }
}

bool whex_live(const struct whex *x)
{
    return x->state != WHEX_S_IDLE && x->state != WHEX_S_OK && x->state != WHEX_S_END;
}

bool whex_confirmed(const struct whex *x)
{
    return x->state == WHEX_S_OK;
}

const struct whex_peer *whex_peer(const struct whex *x)
{
    return x->state == WHEX_S_OK ? &x->peer : NULL;
}

const uint8_t *whex_bind(const struct whex *x)
{
    return x->state == WHEX_S_OK ? x->bind : NULL;
}

void whex_wipe(struct whex *x)
{
    cpace_wipe(&x->cp);
    sodium_memzero(x, sizeof *x);
    x->state = WHEX_S_END;
}

/* What the user typed the code into, or made it with, for a message on a mode mismatch. */
static const char *whex_mode_cmd(enum whex_role role, enum whad_mode mode)
{
    if (role == WHEX_MAKER)
        return mode == WHAD_FILE ? "`tcpunch send`" : "`tcpunch listen --code`";
    return mode == WHAD_FILE ? "`tcpunch receive CODE`" : "`tcpunch connect --code CODE`";
}

enum whex_end whex_check_ad(enum whex_role role, enum whad_mode mode, const uint8_t *ad,
                            size_t len, struct whex_peer *p, char *why, size_t whylen)
{
    enum whad_mode theirs;
    char err[200];
    enum whex_role other = role == WHEX_MAKER ? WHEX_CLAIMER : WHEX_MAKER;
    if (whad_parse(ad, len, role == WHEX_MAKER ? WHAD_CLAIMER : WHAD_MAKER, &theirs, p->id,
                   p->key, err, sizeof err) < 0) {
        snprintf(why, whylen, "the other side's PAKE data is not valid: %s", err);
        return WHEX_BAD_AD;
    }
    if (theirs != mode) {
        if (role == WHEX_CLAIMER)
            snprintf(why, whylen, "this code was made for %s (the other side ran %s)",
                     whex_mode_cmd(role, theirs), whex_mode_cmd(other, theirs));
        else
            snprintf(why, whylen, "the other side typed the code into %s, which does not go "
                     "with %s",
                     whex_mode_cmd(other, theirs), whex_mode_cmd(role, mode));
        sodium_memzero(p, sizeof *p);
        return WHEX_MODE;
    }
    return WHEX_OK;
}
