/* --metrics-listen: the server's side of the metrics (deploy/METRICS.md). It reads the server's
 * counters and gauges into a struct mtr_view at every scrape and hands mhttp.c the text of
 * metrics.c; neither of those knows the server. */
#ifndef TP_SRV_METRICS_H
#define TP_SRV_METRICS_H

#include "rendezvous/server.h"

#include <stddef.h>
#include <sys/socket.h>

struct smx;

/* Serves s's metrics on sa. Returns NULL with "cannot listen on ADDR: reason" in err. */
struct smx *smx_start(struct srv *s, const struct sockaddr *sa, char *err, size_t errlen);
/* After the server's loop has ended: closes the metrics port (run the loop once more for the
 * closes). NULL is allowed. */
void smx_stop(struct smx *x);

#endif
