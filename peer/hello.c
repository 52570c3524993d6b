#include "peer/hello.h"
#include "proto/auth.h"

#include <string.h>

void hello_admit(const unsigned char *secret, const unsigned char *nonce, struct proto_msg *m)
{
    bool *has = m->type == PROTO_HELLO   ? &m->u.hello.has_admit
                : m->type == PROTO_RELAY ? &m->u.relay.has_admit
                                         : &m->u.probe.has_admit;
    unsigned char *admit = m->type == PROTO_HELLO   ? m->u.hello.admit
                           : m->type == PROTO_RELAY ? m->u.relay.admit
                                                    : m->u.probe.admit;
    *has = secret && auth_admit(secret, nonce, m, admit);
}

bool hello_features(const struct peer_opts *o, bool offered, struct proto_msg *hello)
{
    bool on = offered && o->resume_timeout_s > 0 &&
              o->resume_timeout_s <= PROTO_RESUME_TIMEOUT_MAX &&
              o->resume_buffer >= PROTO_RESUME_BUF_MIN && o->resume_buffer <= PROTO_RESUME_BUF_MAX;
    if (on)
        hello->u.hello.features |= PROTO_FEAT_RESUME;
    return on;
}

void hello_sign(const struct peer_opts *o, const unsigned char *nonce, struct proto_msg *hello)
{
    unsigned char msg[AUTH_HELLO_MSG_MAX];
    size_t n = auth_hello_msg(nonce, hello->u.hello.id, msg);
    memcpy(hello->u.hello.key, o->ident->pk, PROTO_KEY_BYTES);
    id_sign(o->ident, msg, n, hello->u.hello.sig);
    hello->u.hello.has_key = hello->u.hello.has_sig = true;
    /* the admit covers the key too: after it is set */
    hello_admit(o->have_secret ? o->secret : NULL, nonce, hello);
}
