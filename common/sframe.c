#include "common/sframe.h"

#include <string.h>

size_t sf_len(int type)
{
    switch (type) {
    case SF_ACK:
    case SF_AT:
    case SF_FIN:
    case SF_RESEND:
        return 1 + 8;
    case SF_MOVE:
        return 1 + 8 + 4;
    case SF_ABORT:
        return 1 + 1;
    default:
        return 0;
    }
}

static void put_be(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

static uint64_t get_be(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

static int sf_valid(int type, uint32_t epoch, uint8_t reason)
{
    if (sf_len(type) == 0)
        return 0;
    if (type == SF_ABORT)
        return reason >= SF_ABORT_SIGNAL && reason <= SF_ABORT_GONE;
    if (type == SF_MOVE)
        return epoch != 0;
    return 1;
}

size_t sf_encode(const struct sf_ctl *c, unsigned char out[SF_MAX])
{
    int type = (int)c->type;
    if (!sf_valid(type, c->epoch, c->reason))
        return 0;
    out[0] = (unsigned char)type;
    if (type == SF_ABORT) {
        out[1] = c->reason;
        return 2;
    }
    put_be(out + 1, c->off, 8);
    if (type == SF_MOVE)
        put_be(out + 9, c->epoch, 4);
    return sf_len(type);
}

int sf_decode(const unsigned char *p, size_t n, struct sf_ctl *c)
{
    int type;
    memset(c, 0, sizeof *c);
    if (n == 0)
        return -1;
    type = p[0];
    if (sf_len(type) == 0 || n != sf_len(type))
        return -1;
    if (type == SF_ABORT) {
        if (!sf_valid(type, 0, p[1]))
            return -1;
        c->type = SF_ABORT;
        c->reason = p[1];
        return 0;
    }
    if (type == SF_MOVE) {
        uint32_t epoch = (uint32_t)get_be(p + 9, 4);
        if (!sf_valid(type, epoch, 0))
            return -1;
        c->epoch = epoch;
    }
    c->type = (enum sf_type)type;
    c->off = get_be(p + 1, 8);
    return 0;
}

const char *sf_type_name(int type)
{
    static const char *const names[] = {"?", "ACK", "AT", "MOVE", "FIN", "ABORT", "RESEND"};
    return type >= SF_ACK && type <= SF_RESEND ? names[type] : "?";
}

const char *sf_abort_str(int reason)
{
    switch (reason) {
    case SF_ABORT_SIGNAL:
        return "interrupted by a signal";
    case SF_ABORT_READ:
        return "reading its input failed";
    case SF_ABORT_WRITE:
        return "writing its output failed";
    case SF_ABORT_RESET:
        return "its local connection was reset";
    case SF_ABORT_GONE:
        return "the session is gone";
    default:
        return "unknown reason";
    }
}
