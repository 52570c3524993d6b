/* The metrics port (--metrics-listen): a deliberately tiny HTTP/1.x server on libuv that answers
 * GET/HEAD /metrics and /healthz and nothing else (deploy/METRICS.md, "The HTTP side").
 *
 * It must never harm the main port: at most MH_MAX_CONNS connections (more are closed at once),
 * a request head of at most MH_MAX_HEAD bytes (431), MH_HEAD_TIMEOUT_MS to send it (slowloris:
 * closed), one response per connection (Connection: close), no body ever read. Its handles are
 * unreferenced: it serves while the server runs (a drain included) and never keeps the loop
 * alive by itself. It knows nothing of the server: its user renders the body. */
#ifndef TP_MHTTP_H
#define TP_MHTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#define MH_MAX_HEAD 4096          /* request line and headers, the blank line included */
#define MH_MAX_PATH 256           /* the request target without its query */
#define MH_MAX_CONNS 16           /* metrics connections at once */
#define MH_HEAD_TIMEOUT_MS 5000   /* to send the whole head */
#define MH_LINGER_MS 2000         /* after the response, for the client's EOF */
#define MH_MAX_BODY (1024 * 1024) /* the renderer's text is cut to this (it is ~20 KiB) */

/* ---- the pure request parser ---- */

enum mh_verdict {
    MH_MORE,      /* no complete head yet: read on */
    MH_OK,        /* a complete head: method and path are filled in */
    MH_BAD,       /* 400: not an HTTP/1.x request head */
    MH_TOO_LARGE, /* 431: no end of head within the limit */
};

enum mh_method { MH_GET, MH_HEAD, MH_OTHER };

struct mh_req {
    enum mh_method method;
    char path[MH_MAX_PATH + 1]; /* NUL-terminated; the query (from '?') is cut off */
};

/* Looks at the first len bytes of what a client sent (max: the head's limit). Never reads past
 * len nor past max. */
enum mh_verdict mh_parse(const char *buf, size_t len, size_t max, struct mh_req *out);

/* What the answer to a parsed head is: 200, 404, 405 or 503 (healthz while draining); *page is
 * set to 1 for /metrics, 2 for /healthz, 0 otherwise. */
int mh_route(const struct mh_req *req, bool healthy, int *page);

/* ---- the server ---- */

struct mh_user {
    void *data;
    /* the /metrics text into buf (cap bytes), snprintf-like: returns the length it needs */
    size_t (*render)(void *data, char *buf, size_t cap);
    /* false once the server is stopping: /healthz answers 503 */
    bool (*healthy)(void *data);
};

struct mh;

/* Listens on sa. Returns NULL with "cannot listen on ADDR: reason" (or out of memory) in err. */
struct mh *mh_start(uv_loop_t *loop, const struct sockaddr *sa, const struct mh_user *user,
                    char *err, size_t errlen);
/* Closes the listener and every connection; the memory goes when the loop has run the closes.
 * NULL is allowed. */
void mh_close(struct mh *m);

#endif
