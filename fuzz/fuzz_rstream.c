/* libFuzzer harness for the data plane of a resumable session (common/rstream.c over
 * common/rsess.c, seal.c, sframe.c): what a peer holding the connection's key, or anyone on the
 * path, can put on a connection. The input is a program for the peer's side of one connection
 * (epoch 0, a socketpair), op by op:
 *   0  a data record of 1 + 64 * b bytes (b the next byte): honest content, the byte at session
 *      offset o is gen(o), o counted from 0 and set by the peer's own AT records;
 *   1  a control record of n = b % 16 bytes taken from the input, sealed (authentic, but any
 *      content: the lies rsess must refuse); an AT it decodes to moves the peer's offset;
 *   2  the final record;
 *   3  b % 64 raw bytes (not a record: forged, or a cut length);
 *   4  one bit of the last bytes flipped (a forged record);
 *   5  the stream header left out (when it is the first op).
 * The stream goes in part as prefill, the rest through the socket in pieces, with rst_handle in
 * between, and whatever rstream sends back is drained. Invariant: the output is exactly
 * gen(0), gen(1), ...: nothing of a forged record, of a refused one or a duplicate reaches it,
 * whatever the records say; and no crash, leak or UB (sanitizers). */
#include "common/rstream.h"
#include "common/sframe.h"
#include "fuzz/fuzz.h"

#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FZ_STREAM_MAX (1024 * 1024)

static const unsigned char fz_k_ours[SEAL_KEYBYTES] = {1, 2, 3};
static const unsigned char fz_k_peer[SEAL_KEYBYTES] = {7, 7, 7};

static unsigned char fz_byte(uint64_t o)
{
    uint64_t x = (o >> 3) * 0x9e3779b97f4a7c15ull;
    x ^= x >> 29;
    return (unsigned char)(x >> (8 * (o & 7)));
}

struct fz_peer {
    struct seal_tx tx;
    unsigned char *buf; /* the peer's bytes on the wire */
    size_t len;
    uint64_t off; /* the peer's idea of its next data offset */
    size_t last;  /* where the last record began */
};

static bool fz_room(const struct fz_peer *p, size_t n)
{
    return p->len + n <= FZ_STREAM_MAX;
}

static size_t fz_op(struct fz_peer *p, const uint8_t *d, size_t n, size_t i)
{
    unsigned op = d[i++] % 6;
    bool has_b = i < n;
    unsigned b = has_b ? d[i++] : 0;
    static unsigned char plain[SEAL_CHUNK];
    p->last = p->len;
    if (op == 0) {
        size_t len = 1 + 64 * (size_t)b;
        if (len > SEAL_CHUNK)
            len = SEAL_CHUNK;
        if (!fz_room(p, len + SEAL_OVERHEAD))
            return n;
        for (size_t k = 0; k < len; k++)
            plain[k] = fz_byte(p->off + k);
        p->len += seal_tx_data(&p->tx, plain, len, p->buf + p->len);
        p->off += len;
    } else if (op == 1) {
        size_t len = b % 16;
        struct sf_ctl c;
        if (len > n - i)
            len = n - i;
        if (len == 0 || !fz_room(p, len + SEAL_OVERHEAD))
            return i;
        p->len += seal_tx_ctl(&p->tx, d + i, len, p->buf + p->len);
        if (sf_decode(d + i, len, &c) == 0 && c.type == SF_AT)
            p->off = c.off;
        i += len;
    } else if (op == 2) {
        if (fz_room(p, SEAL_OVERHEAD))
            p->len += seal_tx_final(&p->tx, p->buf + p->len);
        i -= has_b; /* b was not used */
    } else if (op == 3) {
        size_t len = b % 64;
        if (len > n - i)
            len = n - i;
        if (!fz_room(p, len))
            return n;
        memcpy(p->buf + p->len, d + i, len);
        p->len += len;
        i += len;
    } else if (op == 4) {
        if (p->len > 0)
            p->buf[p->len - 1 - (b % (p->len < 64 ? p->len : 64))] ^=
                (unsigned char)(1u << (b % 8));
    } else {
        i -= has_b;
    }
    return i;
}

/* what rstream delivered must be the peer's honest bytes, in order, each once */
static void fz_check_out(struct rstream *r, uint64_t *out)
{
    const unsigned char *p;
    size_t n = rst_rx_peek(r, &p);
    for (size_t k = 0; k < n; k++)
        FZ_CHECK(p[k] == fz_byte(*out + k), "output byte %llu is not the peer's",
                 (unsigned long long)(*out + k));
    *out += n;
    rst_rx_consume(r, n);
}

static void fz_step(struct rstream *r, int peer, uint64_t now, uint64_t *out)
{
    struct pollfd pf[RST_MAX_FDS];
    int timeout = 0;
    int n = rst_pollfds(r, pf, now, &timeout);
    poll(pf, (nfds_t)n, 0);
    rst_handle(r, pf, now);
    fz_check_out(r, out);
    unsigned char sink[65536];
    while (read(peer, sink, sizeof sink) > 0) {
        /* what we send (header, ACKs, RESENDs) is not this harness's concern */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rstream r;
    struct fz_peer p;
    int sv[2];
    uint64_t now = 1000, out = 0;
    unsigned char hdr[SEAL_HEADER];

    memset(&p, 0, sizeof p);
    if (rst_init(&r, NULL, RBUF_MIN, now) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        abort();
    p.buf = malloc(FZ_STREAM_MAX);
    if (!p.buf)
        abort();
    seal_tx_init(&p.tx, fz_k_peer, hdr);
    if (!(size > 0 && data[0] % 6 == 5)) {
        memcpy(p.buf, hdr, SEAL_HEADER);
        p.len = SEAL_HEADER;
    }
    for (size_t i = 0; i < size;)
        i = fz_op(&p, data, size, i);

    size_t pre = p.len < 1000 ? p.len : 1000; /* a prefill, as a handshake leaves behind */
    struct rst_attach a = {.fd = sv[0],
                           .epoch = 0,
                           .tx = fz_k_ours,
                           .rx = fz_k_peer,
                           .prefill = p.buf,
                           .prefill_len = pre};
    FZ_CHECK(rst_attach(&r, &a, now) == 0, "epoch 0 refused");
    fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
    size_t sent = pre;
    for (int rounds = 0; rounds < 4096 && sent < p.len; rounds++) {
        ssize_t w = write(sv[1], p.buf + sent, p.len - sent > 7000 ? 7000 : p.len - sent);
        if (w > 0)
            sent += (size_t)w;
        fz_step(&r, sv[1], ++now, &out);
        if (rs_state(rst_sess(&r)) != RS_ACTIVE)
            break; /* the connection failed (suspended) or the session ended */
    }
    shutdown(sv[1], SHUT_WR);
    for (int k = 0; k < 8; k++)
        fz_step(&r, sv[1], ++now, &out);
    FZ_CHECK(rs_rx(rst_sess(&r)) >= out, "more output than the session took");
    if (getenv("FZ_RSTREAM_VERBOSE"))
        fprintf(stderr, "fuzz_rstream: %zu bytes on the wire, %llu delivered, state %s\n", p.len,
                (unsigned long long)out, rs_state_name(rs_state(rst_sess(&r))));

    rst_free(&r);
    close(sv[1]);
    sodium_memzero(&p.tx, sizeof p.tx);
    free(p.buf);
    return 0;
}
