/* Endpoints: numeric "IP:PORT" / "[IPv6]:PORT" on the wire, host names on the command line. */
#ifndef TP_ENDPOINT_H
#define TP_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Longest formatted endpoint: "[" + INET6_ADDRSTRLEN + "]:65535". */
#define EP_STRLEN 56

/* Parses a numeric endpoint exactly as PROTOCOL.md defines it (no names, no scope ids,
 * port 1..65535). Returns 0, or -1 with a reason in err. */
int ep_parse(const char *s, struct sockaddr_storage *out, char *err, size_t errlen);

/* Resolves "HOST:PORT" (HOST may be a name, "[v6]" or empty for the wildcard address) for the
 * command line. Port 0 is allowed only when allow_zero is set. */
int ep_resolve(const char *s, bool allow_zero, struct sockaddr_storage *out, char *err,
               size_t errlen);

/* The same, every address of the name (a name may stand for several servers): IPv4 ones first,
 * duplicates left out. Returns how many were written to out (1..max), or -1 with err. */
int ep_resolve_all(const char *s, bool allow_zero, struct sockaddr_storage *out, int max, char *err,
                   size_t errlen);

/* Checks only the shape of "HOST:PORT" (no name lookup), for early usage errors. */
int ep_check_syntax(const char *s, bool allow_zero, char *err, size_t errlen);

/* Writes the canonical text form; returns buf ("?" for an unknown family). */
const char *ep_format(const struct sockaddr *sa, char *buf, size_t len);

socklen_t ep_len(const struct sockaddr *sa);
/* 127.0.0.0/8 or ::1, also IPv4-mapped (common/addrpol decides). */
bool ep_is_loopback(const struct sockaddr *sa);
int ep_port(const struct sockaddr *sa);
void ep_set_port(struct sockaddr *sa, int port);
bool ep_equal(const struct sockaddr *a, const struct sockaddr *b);
/* Same address, port ignored. */
bool ep_same_host(const struct sockaddr *a, const struct sockaddr *b);
/* IPv4-mapped IPv6 addresses (from a dual-stack listener) become plain IPv4. */
void ep_unmap(struct sockaddr_storage *ss);

#endif
