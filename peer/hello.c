#include "peer/hello.h"
#include "common/auth.h"

#include <string.h>

void hello_admit(const unsigned char *secret, const unsigned char *nonce, bool *has,
                 unsigned char *admit)
{
    *has = secret != NULL;
    if (secret)
        auth_admit(secret, nonce, admit);
}

void hello_sign(const struct peer_opts *o, const unsigned char *nonce, struct proto_msg *hello)
{
    unsigned char msg[AUTH_HELLO_MSG_MAX];
    size_t n = auth_hello_msg(nonce, hello->u.hello.id, msg);
    memcpy(hello->u.hello.key, o->ident->pk, PROTO_KEY_BYTES);
    id_sign(o->ident, msg, n, hello->u.hello.sig);
    hello->u.hello.has_key = hello->u.hello.has_sig = true;
    hello_admit(o->have_secret ? o->secret : NULL, nonce, &hello->u.hello.has_admit,
                hello->u.hello.admit);
}
