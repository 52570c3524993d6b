/* The relay's zero-copy path: bytes go socket -> pipe -> socket with splice(2) and never enter
 * user space (the relay never decrypts, so it has no reason to see them). One struct rzc_pipe per
 * direction of a session; the caller decides when to fill and drain (relay.c), this module only
 * moves bytes and says what the kernel answered. */
#ifndef TP_RZC_H
#define TP_RZC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The descriptors a session's zero-copy path adds to its two sockets: a pipe per direction */
#define RZC_FDS_PER_SESSION 4

struct rzc_pipe {
    int rd, wr;  /* -1: closed */
    size_t held; /* bytes in the pipe, spliced in and not yet out */
    size_t size; /* its capacity in bytes (F_GETPIPE_SZ) */
};

/* A nonblocking pipe of want bytes if the kernel agrees (F_SETPIPE_SZ), else of its default
 * size, able to hold at least need bytes. Returns 0, or -errno (EMFILE, ENFILE: out of
 * descriptors; ENOSPC: need does not fit) with p closed. */
int rzc_open(struct rzc_pipe *p, size_t need, size_t want);
void rzc_close(struct rzc_pipe *p);

/* Puts n bytes (a server line, bytes read before the splice) into the pipe, ahead of what is
 * spliced after them. Returns 0, or -errno: -EAGAIN when they do not all fit. */
int rzc_put(struct rzc_pipe *p, const void *b, size_t n);

/* At most max bytes (max > 0) from socket fd into the pipe. Returns the count (> 0), 0 at the
 * socket's EOF, or -errno: -EAGAIN when the socket had nothing or the pipe is full. TCP urgent
 * data (MSG_OOB), where splice stops, is stepped over as a plain read would. */
ssize_t rzc_fill(struct rzc_pipe *p, int fd, size_t max);

/* What the pipe holds, towards socket fd. Returns the count moved (> 0; held shrinks by it), 0
 * when the pipe is empty, or -errno: -EAGAIN when the socket's send buffer is full. */
ssize_t rzc_drain(struct rzc_pipe *p, int fd);

/* How much one fill may take: the room left in the pipe, at most chunk (the rate limit's
 * read size), and with a byte limit (capped) at most one byte past what the limit leaves, so
 * that the byte beyond the limit is seen without more being taken. Pure. */
size_t rzc_want(size_t room, size_t chunk, bool capped, uint64_t left);

/* Whether splice(2) moves bytes out of a TCP socket here (a loopback pair, once): false with
 * the reason in why when the kernel or a seccomp filter refuses it (EINVAL, ENOSYS, EPERM).
 * When the test itself cannot be set up (no loopback), it says true: each session's first
 * splice then tells. */
bool rzc_probe(char *why, size_t len);

#endif
