#include "common/stamp.h"

#include <string.h>
#include <sys/socket.h>

#include "common/clock.h"

static uint64_t stamp_us(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * 1000000u + (uint64_t)ts->tv_nsec / 1000u;
}

uint64_t stamp_real_to_mono(uint64_t rx_real, uint64_t real_now, uint64_t mono_now)
{
    if (rx_real > real_now || real_now - rx_real > mono_now)
        return mono_now;
    return mono_now - (real_now - rx_real);
}

uint64_t stamp_to_mono(const struct timespec *rx)
{
    struct timespec real;
    uint64_t now = clk_us();
    clock_gettime(CLOCK_REALTIME, &real);
    return stamp_real_to_mono(stamp_us(rx), stamp_us(&real), now);
}

ssize_t stamp_recv(int fd, void *buf, size_t len, uint64_t *rx_us)
{
    char cbuf[CMSG_SPACE(sizeof(struct timespec))];
    struct iovec iov = {buf, len};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
    *rx_us = clk_us();
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); n > 0 && cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof ts);
            *rx_us = stamp_to_mono(&ts);
        }
    return n;
}
