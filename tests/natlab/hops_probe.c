/* hops_probe ADDR: runs one TTL discovery (peer/hops.c) towards the IPv4 address ADDR and
 * prints its result on one line for test_hops.sh:
 *   ttl=2 measured=1 answers=2 ms=3 why=TTL 2: 203.0.113.254 is the first global router (...)
 * Exit 0 when the scan reported, 1 when it could not start, 2 on usage. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "peer/hops.h"

static uint64_t t0_ms, dt_ms;
static int reported;

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void on_done(struct hops *h, const struct hops_result *r, void *arg)
{
    (void)h;
    (void)arg;
    dt_ms = ms_now() - t0_ms;
    reported++;
    printf("ttl=%d measured=%d answers=%d ms=%llu why=%s\n", r->ttl, r->measured ? 1 : 0,
           r->answers, (unsigned long long)dt_ms, r->why);
}

int main(int argc, char **argv)
{
    struct sockaddr_in to;
    char err[160] = "";
    uv_loop_t *loop = uv_default_loop();
    if (argc != 2) {
        fprintf(stderr, "usage: hops_probe IPV4-ADDRESS\n");
        return 2;
    }
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) {
        fprintf(stderr, "hops_probe: not an IPv4 address: %s\n", argv[1]);
        return 2;
    }
    t0_ms = ms_now();
    if (!hops_start(loop, (const struct sockaddr *)&to, on_done, NULL, err, sizeof err)) {
        fprintf(stderr, "hops_probe: %s\n", err);
        return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    if (reported != 1) {
        fprintf(stderr, "hops_probe: %d reports\n", reported);
        return 1;
    }
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
