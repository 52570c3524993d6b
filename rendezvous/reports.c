#include "rendezvous/reports.h"

#include "common/log.h"
#include "rendezvous/rtable.h"

#include <stdlib.h>

/* Only a connection that was punched holds a table: an idle peer costs nothing more. */
void rpt_note(struct conn *c, const char *session, enum proto_nat self, enum proto_nat peer)
{
    if (!c->rt && !(c->rt = calloc(1, sizeof *c->rt)))
        return;
    rt_note(c->rt, session, self, peer, uv_now(c->set->loop));
}

void rpt_note_line(struct conn *c, const char *session, const char *line, size_t len)
{
    struct proto_msg m;
    char why[PROTO_MAX_TEXT];
    enum proto_nat peer = PROTO_NAT_UNKNOWN;
    /* our own instance's or a peer instance's canonical punch line (cl_intro.c re-encodes it) */
    if (len >= 2 && line[len - 1] == '\n' &&
        proto_decode(line, len - 1, PROTO_TO_PEER, &m, why, sizeof why) == PROTO_OK &&
        m.type == PROTO_PUNCH)
        peer = m.u.punch.nat;
    rpt_note(c, session, c->nat, peer);
}

static enum mtr_result rpt_result(enum proto_result r)
{
    return r == PROTO_RES_DIRECT  ? MTR_RES_DIRECT
           : r == PROTO_RES_RELAY ? MTR_RES_RELAY
                                  : MTR_RES_FAILED;
}

static enum mtr_rej rpt_rej(enum rt_verdict v)
{
    return v == RT_AGAIN ? MTR_REJ_AGAIN : v == RT_EXPIRED ? MTR_REJ_EXPIRED : MTR_REJ_UNKNOWN;
}

void rpt_recv(struct conn *c, struct mtr *mtr, const struct proto_msg *m)
{
    char who[PROTO_MAX_ID + EP_STRLEN + 4];
    enum proto_nat self = PROTO_NAT_UNKNOWN, peer = PROTO_NAT_UNKNOWN;
    enum rt_verdict v =
        c->rt ? rt_take(c->rt, m->u.report.session, uv_now(c->set->loop), &self, &peer)
              : RT_UNKNOWN;
    if (v != RT_OK) {
        mtr_report_rejected(mtr, rpt_rej(v));
        /* a flood of them is one line per CONN_REFUSE_LOG_MS beyond the first few */
        if (log_enabled(LOG_INFO) && conn_log_quota(c))
            LOG_I("report refused from %s: session %s: %s", conn_who(c, who, sizeof who),
                  m->u.report.session, rt_verdict_name(v));
        return;
    }
    /* the pair's NAT kinds are the server's view at the punch, never the report's claim */
    mtr_punch_result(mtr, rpt_result(m->u.report.result), self, peer, m->u.report.ms);
    LOG_I("report from %s: session %s %s via %s, %d attempt%s, %u ms, nat %s/%s (says %s)",
          conn_who(c, who, sizeof who), m->u.report.session, proto_result_name(m->u.report.result),
          proto_cand_name(m->u.report.candidate), m->u.report.attempts,
          m->u.report.attempts == 1 ? "" : "s", (unsigned)m->u.report.ms, proto_nat_name(self),
          proto_nat_name(peer), proto_nat_name(m->u.report.nat));
}
