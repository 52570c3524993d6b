#include "peer/shake.h"

#include <stdio.h>
#include <string.h>

#include "proto/cpace.h"

_Static_assert(SHAKE_BIND_BYTES == CPACE_BIND_BYTES, "the binding key is CPace's");

#define SHAKE_SIGN_PREFIX "tcpunch-shake-v1" /* with its NUL */
#define SHAKE_KEYS_PREFIX "tcpunch-keys-v1"  /* without */
#define SHAKE_RS_PREFIX "tcpunch-resume-v1"  /* without */
#define SHAKE_CODE_LABEL "code"              /* without: a signed block, and the keys' suffix */
#define SHAKE_PROOF_LABEL "tcpunch-code-proof-v1" /* without: the proof's HMAC message */
#define SHAKE_PROOF_BYTES crypto_auth_hmacsha512256_BYTES
#define SHAKE_TRANSCRIPT_MAX 512

void shake_init(struct shake_ctx *s)
{
    crypto_kx_keypair(s->eph_pk, s->eph_sk);
}

void shake_wipe(struct shake_ctx *s)
{
    sodium_memzero(s->eph_sk, sizeof s->eph_sk);
}

static char shake_letter(enum proto_role r)
{
    return r == PROTO_INITIATOR ? 'I' : 'R';
}

static size_t shake_put(unsigned char *out, size_t off, const void *p, size_t n)
{
    memcpy(out + off, p, n);
    return off + n;
}

/* Our shake.resume, or NULL when we send none (4.1 "Acceptance"): the responder speaks first
 * and sends it iff its punch listed the feature; the initiator answers in kind, so stripping
 * one punch's copy cannot make the two sides disagree. */
static const struct proto_resume_caps *shake_our_resume(const struct shake_ctx *s,
                                                        const struct shake_peer *p)
{
    if (s->symmetric || !s->resume.has)
        return NULL;
    if (s->role == PROTO_RESPONDER)
        return s->resume_listed ? &s->resume : NULL;
    return p && p->resume.has ? &s->resume : NULL;
}

/* Whether this handshake is bound to a wormhole code: our shake says "code" exactly then, and
 * the peer's must say the same. Direct mode has no code (no server, no mailbox). */
static bool shake_our_code(const struct shake_ctx *s)
{
    return !s->symmetric && s->code_bind != NULL;
}

bool shake_resume_on(const struct shake_ctx *s, const struct shake_peer *peer)
{
    return peer->resume.has && shake_our_resume(s, peer) != NULL;
}

/* "resume" || v (1 byte) || buf (8, big-endian) || timeout (4, big-endian); nothing when r
 * is NULL, so a transcript without the member is today's. */
static size_t shake_put_resume(unsigned char *out, size_t off, const struct proto_resume_caps *r)
{
    unsigned char b[1 + 8 + 4];
    if (!r)
        return off;
    b[0] = (unsigned char)r->v;
    for (int k = 0; k < 8; k++)
        b[1 + k] = (unsigned char)(r->buf >> (56 - 8 * k));
    for (int k = 0; k < 4; k++)
        b[9 + k] = (unsigned char)(r->timeout >> (24 - 8 * k));
    off = shake_put(out, off, "resume", 6);
    return shake_put(out, off, b, sizeof b);
}

/* After today's bytes, the responder's shake.resume then the initiator's, each when present:
 * both signatures cover what both sides sent, so a relay that strips or changes either one
 * breaks the handshake instead of silently turning the session layer off. */
static size_t shake_put_resumes(const struct shake_ctx *s, const struct shake_peer *p,
                                unsigned char *out, size_t off)
{
    const struct proto_resume_caps *ours = shake_our_resume(s, p);
    const struct proto_resume_caps *theirs = p->resume.has ? &p->resume : NULL;
    bool init = s->role == PROTO_INITIATOR;
    off = shake_put_resume(out, off, init ? theirs : ours);
    return shake_put_resume(out, off, init ? ours : theirs);
}

/* The proof of our binding key: HMAC-SHA-512-256(key = code_bind, "tcpunch-code-proof-v1" ||
 * session). Both sides of one code exchange compute the same 32 bytes, and each signs them
 * (shake_put_codes) and checks the other's signature over its own: two sides of two different
 * exchanges (a server that knew the code and ran one with each) fail at the signature, at the
 * handshake, instead of at the first record. Never sent: it is as secret as the key it comes
 * from, which needs the exchange's ISK, so its DH. */
static size_t shake_put_proof(const struct shake_ctx *s, unsigned char *out, size_t off)
{
    unsigned char msg[sizeof SHAKE_PROOF_LABEL - 1 + PROTO_SESSION_LEN];
    memcpy(msg, SHAKE_PROOF_LABEL, sizeof SHAKE_PROOF_LABEL - 1);
    memcpy(msg + sizeof SHAKE_PROOF_LABEL - 1, s->session, PROTO_SESSION_LEN);
    crypto_auth_hmacsha512256(out + off, msg, sizeof msg, s->code_bind);
    return off + SHAKE_PROOF_BYTES;
}

/* After the resume blocks, "code" (4 bytes) for each shake that said "code", the responder's
 * then the initiator's, as for shake.resume, then, when this side has a binding key, its proof
 * (shake_put_proof): nothing without a code, so a handshake without one signs today's bytes.
 * The binding key itself is not signed: it goes into the stream keys. */
static size_t shake_put_codes(const struct shake_ctx *s, const struct shake_peer *p,
                              unsigned char *out, size_t off)
{
    bool ours = shake_our_code(s), theirs = p->code;
    bool init = s->role == PROTO_INITIATOR;
    if (init ? theirs : ours)
        off = shake_put(out, off, SHAKE_CODE_LABEL, strlen(SHAKE_CODE_LABEL));
    if (init ? ours : theirs)
        off = shake_put(out, off, SHAKE_CODE_LABEL, strlen(SHAKE_CODE_LABEL));
    return ours ? shake_put_proof(s, out, off) : off;
}

/* What a signature covers: "tcpunch-shake-v1\0" || session || signer role letter || the other
 * side's eph || the signer's eph || the other's identity key || the signer's || the other's
 * id "\0" || the signer's id "\0", then the shake.resume blocks when present
 * (shake_put_resumes), then the "code" blocks (shake_put_codes). Each side signs the other's fresh
 * key, which makes a replayed signature useless, and both identities, so a signature cannot be
 * passed off as made for another peer. */
static size_t shake_transcript(const struct shake_ctx *s, const struct shake_peer *p, bool by_self,
                               unsigned char *out)
{
    enum proto_role other = s->role == PROTO_INITIATOR ? PROTO_RESPONDER : PROTO_INITIATOR;
    char letter = shake_letter(by_self ? s->role : other);
    const unsigned char *eph_o = by_self ? p->eph : s->eph_pk;
    const unsigned char *eph_s = by_self ? s->eph_pk : p->eph;
    const unsigned char *key_o = by_self ? p->key : s->ident->pk;
    const unsigned char *key_s = by_self ? s->ident->pk : p->key;
    const char *id_o = by_self ? s->peer : s->self;
    const char *id_s = by_self ? s->self : s->peer;
    size_t off = 0;

    off = shake_put(out, off, SHAKE_SIGN_PREFIX, sizeof SHAKE_SIGN_PREFIX);
    off = shake_put(out, off, s->session, PROTO_SESSION_LEN);
    off = shake_put(out, off, &letter, 1);
    off = shake_put(out, off, eph_o, crypto_kx_PUBLICKEYBYTES);
    off = shake_put(out, off, eph_s, crypto_kx_PUBLICKEYBYTES);
    off = shake_put(out, off, key_o, crypto_sign_PUBLICKEYBYTES);
    off = shake_put(out, off, key_s, crypto_sign_PUBLICKEYBYTES);
    off = shake_put(out, off, id_o, strlen(id_o) + 1);
    off = shake_put(out, off, id_s, strlen(id_s) + 1);
    off = shake_put_resumes(s, p, out, off);
    return shake_put_codes(s, p, out, off);
}

/* The transcript holds the binding key's proof in a code session: wiped after use. */
static void shake_sign(const struct shake_ctx *s, const struct shake_peer *p, unsigned char *sig)
{
    unsigned char t[SHAKE_TRANSCRIPT_MAX];
    id_sign(s->ident, t, shake_transcript(s, p, true, t), sig);
    sodium_memzero(t, sizeof t);
}

static bool shake_sig_ok(const struct shake_ctx *s, const struct shake_peer *p,
                         const unsigned char *sig)
{
    unsigned char t[SHAKE_TRANSCRIPT_MAX];
    bool ok = id_verify(p->key, t, shake_transcript(s, p, false, t), sig);
    sodium_memzero(t, sizeof t);
    return ok;
}

/* A signature that failed in a code session, from the key the code exchange authenticated
 * (the trusted one: a stranger's key is refused as such): the two sides' binding keys differ,
 * or the peer signed badly; neither is our peer of the code exchange (SHAKE_CODE). */
static enum shake_verdict shake_code_sig(const struct shake_ctx *s, const char *what, char *why,
                                         size_t whylen)
{
    snprintf(why, whylen,
             "CODE EXCHANGE NOT WITH THIS PEER: %s's %s signature does not cover our code "
             "exchange's key. The code exchange was not with this peer: someone who knew the "
             "code is in the middle (it ran one exchange with each side); the code is burned, "
             "make a new one and pass it on another way. Connection refused",
             s->trust.name, what);
    return SHAKE_CODE;
}

int shake_encode(const struct shake_ctx *s, enum proto_type type, const struct shake_peer *peer,
                 char *buf, size_t len)
{
    struct proto_msg m;
    memset(&m, 0, sizeof m);
    m.type = type;
    if (type == PROTO_CONFIRM) {
        if (!peer || !peer->seen)
            return -1;
        memcpy(m.u.confirm.session, s->session, sizeof m.u.confirm.session);
        shake_sign(s, peer, m.u.confirm.sig);
        return proto_encode(&m, buf, len);
    }
    m.u.shake.version = PROTO_VERSION;
    memcpy(m.u.shake.session, s->session, sizeof m.u.shake.session);
    memcpy(m.u.shake.from, s->self, sizeof m.u.shake.from);
    memcpy(m.u.shake.to, s->peer, sizeof m.u.shake.to);
    memcpy(m.u.shake.key, s->ident->pk, sizeof m.u.shake.key);
    memcpy(m.u.shake.eph, s->eph_pk, sizeof m.u.shake.eph);
    if (!s->symmetric && s->role == PROTO_INITIATOR && (!peer || !peer->seen))
        return -1;
    if (shake_our_resume(s, peer))
        m.u.shake.resume = *shake_our_resume(s, peer);
    m.u.shake.code = shake_our_code(s);
    if (!s->symmetric && s->role == PROTO_INITIATOR) {
        m.u.shake.has_sig = true;
        shake_sign(s, peer, m.u.shake.sig);
    }
    return proto_encode(&m, buf, len);
}

/* Is key the one we trust for the peer? The warning for a refusal names the file and line to
 * fix, as ssh does for known_hosts. */
static enum shake_verdict shake_trusted(const struct shake_trust *t, const unsigned char *key,
                                        char *why, size_t whylen)
{
    char fp[ID_FP_SIZE], want[ID_FP_SIZE];
    id_fingerprint(key, fp, sizeof fp);
    if (t->fp[0]) {
        if (strcmp(fp, t->fp) == 0)
            return SHAKE_OK;
        snprintf(why, whylen,
                 "PEER KEY MISMATCH: %s showed the key %s, not %s given with --peer-key. Someone "
                 "may be intercepting the connection (man-in-the-middle); connection refused",
                 t->name, fp, t->fp);
        return SHAKE_REFUSED;
    }
    if (t->nknown > 0) {
        int n = t->nknown < KP_MAX_KEYS ? t->nknown : KP_MAX_KEYS;
        if (kp_match(t->known, n, key) >= 0)
            return SHAKE_OK;
        id_fingerprint(t->known[0].pk, want, sizeof want);
        snprintf(why, whylen,
                 "WARNING: THE KEY OF PEER %s HAS CHANGED! Someone may be intercepting the "
                 "connection (man-in-the-middle), or %s has a new identity. It showed %s; %s line "
                 "%d has %s. If the change is expected, delete line %d of %s (or give the new key "
                 "with --peer-key). Connection refused",
                 t->name, t->name, fp, t->known_path, t->known[0].line, want, t->known[0].line,
                 t->known_path);
        return SHAKE_REFUSED;
    }
    if (t->server_key && sodium_memcmp(t->server_pk, key, sizeof t->server_pk) != 0) {
        id_fingerprint(t->server_pk, want, sizeof want);
        snprintf(why, whylen,
                 "PEER KEY MISMATCH: %s showed the key %s, but registered on the server with %s. "
                 "Someone may be intercepting the connection; connection refused",
                 t->name, fp, want);
        return SHAKE_REFUSED;
    }
    return SHAKE_OK;
}

/* A shake whose "code" is not ours is refused like a changed key (exit status 4): with a code,
 * a shake without it comes from someone who did not run the code's PAKE with us (or strips
 * the member); without one, a shake saying "code" is not the session we are in. Checked before
 * the signature, as the key is on the responder's unsigned shake; the signature covers it too. */
static enum shake_verdict shake_code_ok(const struct shake_ctx *s, bool theirs, char *why,
                                        size_t whylen)
{
    if (theirs == shake_our_code(s))
        return SHAKE_OK;
    if (!theirs)
        snprintf(why, whylen,
                 "CODE MISMATCH: %s's handshake is not bound to the code we exchanged (its shake "
                 "has no \"code\"). Someone who did not take part in the code exchange may be "
                 "intercepting the connection (man-in-the-middle); connection refused",
                 s->trust.name);
    else
        snprintf(why, whylen,
                 "CODE MISMATCH: %s's handshake says it comes from a code exchange, but this "
                 "session has none; connection refused",
                 s->trust.name);
    return SHAKE_REFUSED;
}

enum shake_verdict shake_trust_key(const struct shake_trust *t, const unsigned char *key,
                                   char *why, size_t whylen)
{
    return shake_trusted(t, key, why, whylen);
}

static enum shake_verdict shake_check_shake(const struct shake_ctx *s, const struct proto_msg *m,
                                            struct shake_peer *peer, char *why, size_t whylen)
{
    struct shake_peer got = {.seen = true};
    bool want_sig = !s->symmetric && s->role == PROTO_RESPONDER;
    enum shake_verdict v;

    if (strcmp(m->u.shake.from, s->peer) != 0 || strcmp(m->u.shake.to, s->self) != 0) {
        snprintf(why, whylen, "handshake from \"%s\" to \"%s\", expected \"%s\" to \"%s\"",
                 m->u.shake.from, m->u.shake.to, s->peer, s->self);
        return SHAKE_BAD;
    }
    if (sodium_memcmp(m->u.shake.eph, s->eph_pk, sizeof s->eph_pk) == 0) {
        snprintf(why, whylen, "our own handshake came back");
        return SHAKE_BAD;
    }
    if (m->u.shake.has_sig != want_sig) {
        snprintf(why, whylen, "a %s shake %s", want_sig ? "initiator's" : "responder's",
                 want_sig ? "without its signature" : "with a signature");
        return SHAKE_BAD;
    }
    /* direct mode announces nothing (4.1): a member there is not part of the handshake */
    if (!s->symmetric) {
        got.resume = m->u.shake.resume;
        got.code = m->u.shake.code;
    }
    if (want_sig && got.resume.has && !shake_our_resume(s, NULL)) {
        snprintf(why, whylen, "the initiator's shake.resume answers none of ours");
        return SHAKE_BAD;
    }
    if ((v = shake_code_ok(s, got.code, why, whylen)) != SHAKE_OK)
        return v;
    memcpy(got.key, m->u.shake.key, sizeof got.key);
    memcpy(got.eph, m->u.shake.eph, sizeof got.eph);
    if (want_sig && !shake_sig_ok(s, &got, m->u.shake.sig)) {
        char untrusted[8];
        if (shake_our_code(s) &&
            shake_trusted(&s->trust, got.key, untrusted, sizeof untrusted) == SHAKE_OK) {
            *peer = got;
            return shake_code_sig(s, "shake", why, whylen);
        }
        snprintf(why, whylen, "the shake's signature does not verify");
        return SHAKE_BAD;
    }
    if ((v = shake_trusted(&s->trust, got.key, why, whylen)) != SHAKE_OK)
        return v;
    *peer = got;
    return SHAKE_OK;
}

enum shake_verdict shake_verify(const struct shake_ctx *s, enum proto_type expect, const char *line,
                                size_t len, struct shake_peer *peer, char *why, size_t whylen)
{
    struct proto_msg m;
    char reason[200];
    enum proto_err e = proto_decode(line, len, PROTO_PEER_TO_PEER, &m, reason, sizeof reason);
    if (e != PROTO_OK) {
        snprintf(why, whylen, "%s: %s", proto_err_code(e), reason);
        return SHAKE_BAD;
    }
    if (m.type != expect) {
        snprintf(why, whylen, "got %s where %s was due", proto_type_name(m.type),
                 proto_type_name(expect));
        return SHAKE_BAD;
    }
    if (strcmp(expect == PROTO_CONFIRM ? m.u.confirm.session : m.u.shake.session, s->session)) {
        snprintf(why, whylen, "handshake for another session");
        return SHAKE_BAD;
    }
    if (expect == PROTO_SHAKE)
        return shake_check_shake(s, &m, peer, why, whylen);
    if (!peer->seen || !shake_sig_ok(s, peer, m.u.confirm.sig)) {
        /* peer's key was trusted when its shake came (shake_check_shake) */
        if (peer->seen && shake_our_code(s))
            return shake_code_sig(s, "confirm", why, whylen);
        snprintf(why, whylen, "the confirm's signature does not verify");
        return SHAKE_BAD;
    }
    return SHAKE_OK;
}

void shake_direct_role(struct shake_ctx *s, const struct shake_peer *peer)
{
    s->role =
        memcmp(s->eph_pk, peer->eph, sizeof s->eph_pk) < 0 ? PROTO_INITIATOR : PROTO_RESPONDER;
}

/* Each crypto_kx key is hashed with the whole exchange: both ephemeral and both identity keys
 * and the session, so the stream keys belong to this handshake only. The resumption secret is
 * the same transcript under its own label, keyed with both crypto_kx keys (initiator's tx then
 * rx, so both sides use the same 64 bytes). With a code, "code" || its binding key ends the
 * transcript of both: an ephemeral exchange alone (the server's, in the middle of two shakes
 * it could sign for) gives neither the stream keys nor RS; without one the bytes are today's. */
static void shake_bind(const struct shake_ctx *s, const struct shake_peer *p, const char *prefix,
                       const unsigned char *kx, size_t kxlen, unsigned char *out)
{
    bool init = s->role == PROTO_INITIATOR;
    unsigned char t[SHAKE_TRANSCRIPT_MAX];
    size_t off = 0;
    off = shake_put(t, off, prefix, strlen(prefix));
    off = shake_put(t, off, s->session, PROTO_SESSION_LEN);
    off = shake_put(t, off, init ? s->eph_pk : p->eph, crypto_kx_PUBLICKEYBYTES);
    off = shake_put(t, off, init ? p->eph : s->eph_pk, crypto_kx_PUBLICKEYBYTES);
    off = shake_put(t, off, init ? s->ident->pk : p->key, crypto_sign_PUBLICKEYBYTES);
    off = shake_put(t, off, init ? p->key : s->ident->pk, crypto_sign_PUBLICKEYBYTES);
    if (shake_our_code(s)) {
        off = shake_put(t, off, SHAKE_CODE_LABEL, strlen(SHAKE_CODE_LABEL));
        off = shake_put(t, off, s->code_bind, SHAKE_BIND_BYTES);
    }
    crypto_generichash(out, crypto_kx_SESSIONKEYBYTES, t, off, kx, kxlen);
    sodium_memzero(t, sizeof t);
}

int shake_keys(const struct shake_ctx *s, const struct shake_peer *peer, unsigned char *tx,
               unsigned char *rx)
{
    return shake_keys_rs(s, peer, tx, rx, NULL);
}

int shake_keys_rs(const struct shake_ctx *s, const struct shake_peer *peer, unsigned char *tx,
                  unsigned char *rx, unsigned char *rs)
{
    unsigned char ktx[crypto_kx_SESSIONKEYBYTES], krx[crypto_kx_SESSIONKEYBYTES];
    unsigned char both[2 * crypto_kx_SESSIONKEYBYTES];
    bool init = s->role == PROTO_INITIATOR;
    int rc;
    /* keys for a peer whose "code" is not ours would be keys nobody shares: refuse outright */
    if (peer->code != shake_our_code(s))
        return -1;
    rc = init ? crypto_kx_client_session_keys(krx, ktx, s->eph_pk, s->eph_sk, peer->eph)
              : crypto_kx_server_session_keys(krx, ktx, s->eph_pk, s->eph_sk, peer->eph);
    if (rc == 0) {
        shake_bind(s, peer, SHAKE_KEYS_PREFIX, ktx, sizeof ktx, tx);
        shake_bind(s, peer, SHAKE_KEYS_PREFIX, krx, sizeof krx, rx);
        if (rs) {
            memcpy(both, init ? ktx : krx, crypto_kx_SESSIONKEYBYTES);
            memcpy(both + crypto_kx_SESSIONKEYBYTES, init ? krx : ktx, crypto_kx_SESSIONKEYBYTES);
            shake_bind(s, peer, SHAKE_RS_PREFIX, both, sizeof both, rs);
        }
    }
    sodium_memzero(ktx, sizeof ktx);
    sodium_memzero(krx, sizeof krx);
    sodium_memzero(both, sizeof both);
    return rc == 0 ? 0 : -1;
}
