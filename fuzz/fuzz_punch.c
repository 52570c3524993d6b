/* libFuzzer harness for the punch engine's framing (peer/punch.c: punch_adopt, pu_feed, pu_win)
 * on a real libuv loop: the engine adopts one end of a socketpair as a relayed connection, the
 * harness plays the other peer on the other end. The input's first byte picks the case:
 *
 *   bits 0-1  0: the engine is the responder; the harness sends alice's genuine signed shake
 *                and then the rest of the input as the peer's data
 *             1: the engine is the initiator; the harness offers bob's shake, reads the
 *                engine's signed answer, sends bob's genuine confirm and then the data
 *             2: the engine is the responder and the rest of the input is the whole stream
 *                (no genuine line: the rejection paths)
 *             3: the same with the engine as the initiator
 *   bit 2     the data goes out four times over (past the engine's 4 KiB reads and the
 *             link's prefill, as the relay's early bytes can be)
 *
 * In cases 0 and 1 the handshake must win, and the peer's data must come out whole and in
 * order: the link's prefill (never more than it holds) followed by what is still in the
 * socket. That is the property the relay's early bytes once broke: bytes behind the winning
 * line were copied past the prefill, or (had they been cut) lost.
 *
 * Keys are fixed (constant seeds), so signed lines and crashes reproduce. */
#include "fuzz/fuzz.h"
#include "fuzz/fz_shake.h"
#include "common/log.h"
#include "peer/punch.h"
#include "peer/shake.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FZ_SESSION "5d0c7e1f2a3b4c5d6e7f8091a2b3c4d5"
#define FZ_REPEAT 4
#define FZ_SPINS 200 /* loop turns without progress before the harness gives up */

static struct identity fz_id_alice, fz_id_bob;
static uv_loop_t fz_loop;

struct fz_run {
    bool done;
    int status;
    struct peer_link link;
};

/* alice initiates, bob responds; the ephemeral keys come from fixed seeds (fz_shake.h) */
static void fz_ctx(struct shake_ctx *s, enum proto_role role)
{
    fz_shake_ctx(s, role, FZ_SESSION, &fz_id_alice, &fz_id_bob);
}

static void fz_done(struct punch *p, int status, const char *why, void *arg)
{
    struct fz_run *r = arg;
    (void)p;
    (void)why;
    r->done = true;
    r->status = status;
}

/* One loop turn that does not wait. */
static void fz_turn(void)
{
    uv_run(&fz_loop, UV_RUN_NOWAIT);
}

static bool fz_readable(int fd)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    return poll(&pf, 1, 0) == 1;
}

/* Reads one line (newline included) that the engine wrote to fd; -1 if none came. */
static ssize_t fz_read_line(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (int spin = 0; spin < FZ_SPINS && len < cap; spin++) {
        ssize_t n;
        if (!fz_readable(fd)) {
            fz_turn();
            continue;
        }
        n = recv(fd, buf + len, 1, 0);
        if (n <= 0)
            return -1;
        if (buf[len++] == '\n')
            return (ssize_t)len;
        spin = 0;
    }
    return -1;
}

static void fz_send(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        FZ_CHECK(w > 0, "socketpair send: %s", strerror(errno));
        b += w;
        n -= (size_t)w;
    }
}

/* The harness's side of a genuine handshake, up to the engine's win; false when the engine's
 * lines did not come or did not verify (a bug: these are its own genuine lines). */
static bool fz_genuine(int peer, enum proto_role engine_role)
{
    struct shake_ctx me;
    struct shake_peer seen = {0};
    char line[PROTO_MAX_LINE], why[512];
    ssize_t n;
    int len;

    if (engine_role == PROTO_RESPONDER) {
        /* bob (the engine) offered his shake on adoption; alice answers it, signed */
        fz_ctx(&me, PROTO_INITIATOR);
        n = fz_read_line(peer, line, sizeof line);
        FZ_CHECK(n > 0, "the responder engine sent no shake");
        FZ_CHECK(shake_verify(&me, PROTO_SHAKE, line, (size_t)n - 1, &seen, why, sizeof why) ==
                     SHAKE_OK,
                 "the engine's shake does not verify: %s", why);
        len = shake_encode(&me, PROTO_SHAKE, &seen, line, sizeof line);
    } else {
        /* bob offers, alice (the engine) answers signed, bob confirms */
        fz_ctx(&me, PROTO_RESPONDER);
        len = shake_encode(&me, PROTO_SHAKE, NULL, line, sizeof line);
        FZ_CHECK(len > 0, "bob's shake does not encode");
        fz_send(peer, line, (size_t)len);
        n = fz_read_line(peer, line, sizeof line);
        FZ_CHECK(n > 0, "the initiator engine did not answer a genuine shake");
        FZ_CHECK(shake_verify(&me, PROTO_SHAKE, line, (size_t)n - 1, &seen, why, sizeof why) ==
                     SHAKE_OK,
                 "the engine's answer does not verify: %s", why);
        len = shake_encode(&me, PROTO_CONFIRM, &seen, line, sizeof line);
    }
    FZ_CHECK(len > 0, "the harness's line does not encode");
    fz_send(peer, line, (size_t)len);
    shake_wipe(&me);
    return true;
}

/* What the link got: its prefill, then the rest of the socket up to the peer's EOF, must be
 * exactly want. */
static void fz_check_data(struct fz_run *r, const uint8_t *want, size_t wlen)
{
    static uint8_t got[FZ_REPEAT * 4096 + 8192];
    size_t len;

    FZ_CHECK(r->link.prefill_len <= sizeof r->link.prefill, "prefill of %zu bytes in %zu",
             r->link.prefill_len, sizeof r->link.prefill);
    FZ_CHECK(r->link.prefill_len <= wlen, "prefill of %zu bytes, %zu were sent",
             r->link.prefill_len, wlen);
    memcpy(got, r->link.prefill, r->link.prefill_len);
    len = r->link.prefill_len;
    for (;;) {
        ssize_t n = recv(r->link.fd, got + len, sizeof got - len, MSG_DONTWAIT);
        if (n == 0)
            break;
        FZ_CHECK(n > 0, "reading the link: %s", strerror(errno));
        len += (size_t)n;
        FZ_CHECK(len <= wlen, "the link holds more (%zu) than was sent (%zu)", len, wlen);
    }
    FZ_CHECK(len == wlen, "the peer sent %zu bytes behind the handshake, the link has %zu", wlen,
             len);
    FZ_CHECK(memcmp(got, want, wlen) == 0, "the peer's data changed on the way");
    FZ_CHECK(r->link.encrypted, "a won handshake left the link unencrypted");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    static struct shake_ctx engine;
    static uint8_t stream[FZ_REPEAT * 4096];
    struct fz_run r = {.link.fd = -1};
    struct punch_cfg cfg;
    struct punch *p;
    char err[200];
    int sv[2];
    bool genuine;
    enum proto_role role;
    size_t slen = 0;

    if (!ready) {
        FZ_CHECK(sodium_init() >= 0, "sodium_init failed");
        log_init("fuzz_punch", LOG_SILENT, 0); /* quiet: the engine logs every drop */
        fz_identity(&fz_id_alice, 'A');
        fz_identity(&fz_id_bob, 'B');
        FZ_CHECK(uv_loop_init(&fz_loop) == 0, "uv_loop_init");
        ready = true;
    }
    if (size < 1 || size - 1 > 4096)
        return 0;
    genuine = (data[0] & 3) < 2;
    role = (data[0] & 1) ? PROTO_INITIATOR : PROTO_RESPONDER;
    for (int i = 0; i < ((data[0] & 4) ? FZ_REPEAT : 1); i++) {
        memcpy(stream + slen, data + 1, size - 1);
        slen += size - 1;
    }

    fz_ctx(&engine, role);
    memset(&cfg, 0, sizeof cfg);
    cfg.local.ss_family = AF_INET; /* unused: no direct attempt, no listener */
    cfg.relay_only = true;
    cfg.timeout_ms = 60000; /* the harness ends the punch itself */
    cfg.shake = &engine;
    FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s",
             strerror(errno));
    p = punch_start(&fz_loop, &cfg, &r.link, fz_done, &r, err, sizeof err);
    FZ_CHECK(p != NULL, "punch_start: %s", err);
    FZ_CHECK(punch_adopt(p, sv[0], PUNCH_ADOPT_RELAY) == 0, "punch_adopt failed");
    if (genuine)
        fz_genuine(sv[1], role);
    fz_send(sv[1], stream, slen);
    shutdown(sv[1], SHUT_WR);
    for (int spin = 0; spin < FZ_SPINS && !r.done; spin++)
        fz_turn();
    if (genuine) {
        FZ_CHECK(r.done && r.status == EXIT_DONE, "a genuine handshake did not win (%s %d)",
                 r.done ? "status" : "not done", r.status);
        FZ_CHECK(r.link.relayed, "the adopted relay connection is not reported as relayed");
        FZ_CHECK(memcmp(r.link.peer_pk,
                        role == PROTO_RESPONDER ? fz_id_alice.pk : fz_id_bob.pk,
                        sizeof r.link.peer_pk) == 0,
                 "the link names another key than the peer's");
        fz_check_data(&r, stream, slen);
    } else if (r.done && r.status == EXIT_DONE) {
        FZ_CHECK(r.link.prefill_len <= sizeof r.link.prefill, "prefill of %zu bytes",
                 r.link.prefill_len);
    }
    if (!r.done)
        punch_abort(p, EXIT_PUNCH, "the harness ends it");
    uv_run(&fz_loop, UV_RUN_DEFAULT); /* the engine's handles close, it frees itself */
    if (r.link.fd >= 0)
        close(r.link.fd);
    close(sv[1]);
    shake_wipe(&engine);
    return 0;
}

/* `fuzz_punch_regress --write-seeds DIR`: one seed per case; the signed lines are made by the
 * harness at run time, so the seeds are only the case byte and the peer's data. */
int fuzz_write_seeds(const char *dir)
{
    static const struct {
        const char *name;
        unsigned char mode;
        const char *data;
    } seeds[] = {
        {"responder-data", 0, "hello from the peer\n"},
        {"initiator-data", 1, "hello from the peer\n"},
        {"responder-nothing", 0, ""},
        {"responder-lines", 0, "{\"type\":\"shake\"}\n{\"type\":\"confirm\"}\n"},
        {"responder-repeat", 4, NULL},
        {"initiator-repeat", 5, NULL},
        {"raw-responder", 2, "{\"type\":\"shake\",\"version\":1}\nxyz"},
        {"raw-initiator", 3, "{\"type\":\"confirm\"}\n\n\n"},
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[1024];
        FILE *f;
        snprintf(path, sizeof path, "%s/%s", dir, seeds[i].name);
        if (!(f = fopen(path, "wb")))
            return -1;
        fputc(seeds[i].mode, f);
        if (seeds[i].data) {
            fputs(seeds[i].data, f);
        } else {
            /* 4 KiB of the peer's data, 16 KiB on the wire: the relay-overflow shape */
            for (int k = 0; k < 4095; k++)
                fputc("0123456789abcdef\n"[k % 17], f);
        }
        if (fclose(f) != 0)
            return -1;
        printf("wrote %s\n", path);
    }
    return 0;
}
