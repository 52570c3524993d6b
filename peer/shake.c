#include "peer/shake.h"

#include <stdio.h>
#include <string.h>

int shake_encode(const struct shake_ctx *s, enum proto_type type, char *buf, size_t len)
{
    struct proto_msg m;
    memset(&m, 0, sizeof m);
    m.type = type;
    if (type == PROTO_CONFIRM) {
        memcpy(m.u.confirm.session, s->session, sizeof m.u.confirm.session);
        return proto_encode(&m, buf, len);
    }
    m.u.shake.version = PROTO_VERSION;
    memcpy(m.u.shake.session, s->session, sizeof m.u.shake.session);
    memcpy(m.u.shake.from, s->self, sizeof m.u.shake.from);
    memcpy(m.u.shake.to, s->peer, sizeof m.u.shake.to);
    return proto_encode(&m, buf, len);
}

bool shake_verify(const struct shake_ctx *s, enum proto_type expect, const char *line, size_t len,
                  char *why, size_t whylen)
{
    struct proto_msg m;
    char reason[200];
    enum proto_err e = proto_decode(line, len, PROTO_PEER_TO_PEER, &m, reason, sizeof reason);
    if (e != PROTO_OK) {
        snprintf(why, whylen, "%s: %s", proto_err_code(e), reason);
        return false;
    }
    if (m.type != expect) {
        snprintf(why, whylen, "got %s where %s was due", proto_type_name(m.type),
                 proto_type_name(expect));
        return false;
    }
    if (strcmp(expect == PROTO_CONFIRM ? m.u.confirm.session : m.u.shake.session, s->session)) {
        snprintf(why, whylen, "handshake for another session");
        return false;
    }
    if (expect == PROTO_SHAKE &&
        (strcmp(m.u.shake.from, s->peer) != 0 || strcmp(m.u.shake.to, s->self) != 0)) {
        snprintf(why, whylen, "handshake from \"%s\" to \"%s\", expected \"%s\" to \"%s\"",
                 m.u.shake.from, m.u.shake.to, s->peer, s->self);
        return false;
    }
    return true;
}
