/* systemd socket activation (sd_listen_fds(3), without libsystemd): LISTEN_PID names the
 * process the sockets are for, LISTEN_FDS how many (from fd 3 on), LISTEN_FDNAMES their
 * FileDescriptorName=s, colon-separated. */
#ifndef TP_SDLISTEN_H
#define TP_SDLISTEN_H

#include <stdbool.h>
#include <stddef.h>

#define SDL_FDS_START 3
#define SDL_MAX_FDS 32
#define SDL_NAME_MAX 255 /* systemd's limit on a FileDescriptorName= */

struct sdl_fd {
    int fd;
    bool probe; /* named "probe": takes only NAT probes (--probe-listen) */
};

/* The pure part: the variables' values (NULL: unset) for process pid. Returns how many fds
 * were passed to us (0: none, or they are another process's: LISTEN_PID is not pid), filling
 * out[0..n-1], or -1 with err set when the variables are malformed (not a number, too many
 * fds, as many names as fds not given). */
int sdl_parse(const char *listen_pid, const char *listen_fds, const char *fdnames, long pid,
              struct sdl_fd *out, int max, char *err, size_t errlen);

/* Whether fd is a listening TCP socket (SO_TYPE stream, SO_ACCEPTCONN, an IP family): 0, or
 * -1 with err saying what it is instead. Sets FD_CLOEXEC on it. */
int sdl_check(int fd, char *err, size_t errlen);

/* Reads and unsets LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES (children must not inherit
 * them), then checks every fd. Returns n (0: not socket-activated), or -1 with err set. */
int sdl_take(struct sdl_fd *out, int max, char *err, size_t errlen);

#endif
