/* Traversal reports on the server side (PROTOCOL.md, "Traversal reports"): which sessions each
 * connection was punched into (rtable.h), and the reports checked against them and counted
 * into the metrics. */
#ifndef TP_REPORTS_H
#define TP_REPORTS_H

#include "proto/proto.h"
#include "rendezvous/conn.h"
#include "rendezvous/metrics.h"

#include <stddef.h>

/* c gets a punch for session: it may report on it. self: c's NAT kind, peer: the other side's,
 * as this server (or, across instances, the cluster) knew them at the punch. Out of memory:
 * not remembered, the report will be rejected (unknown). */
void rpt_note(struct conn *c, const char *session, enum proto_nat self, enum proto_nat peer);
/* The same for a punch line made elsewhere (another cluster instance): the other side's NAT
 * kind is the line's punch.nat. line ends in its newline. */
void rpt_note_line(struct conn *c, const char *session, const char *line, size_t len);
/* c's report m: counted (mtr_punch_result, logged at -v as "report from ID: session S ...") or
 * rejected (mtr_report_rejected, "report refused from ID: session S: REASON", throttled like
 * refusals). Answered with nothing either way. */
void rpt_recv(struct conn *c, struct mtr *mtr, const struct proto_msg *m);
/* (conn.c frees the table with the connection.) */

#endif
