#include "peer/session.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "common/addrpol.h"
#include "common/clock.h"
#include "common/endpoint.h"
#include "common/log.h"
#include "common/sock.h"
#include "peer/bdplan.h"
#include "peer/events.h"
#include "peer/exit.h"
#include "peer/hops.h"
#include "peer/migrate.h"
#include "peer/relay.h"
#include "peer/trust.h"

/* Birthday punches of this process running now: one at a time (PROTOCOL.md, "Birthday
 * punching"), whatever the mode or the number of server connections. One runs from its start
 * until its punch ends (a winner, a failure, the relay), not only while its sockets are open:
 * a server cannot make us open one window right after the other within one punch's time. */
static int sess_bday_running;
/* The starts of this process's birthday punches (clk_us), the newest BDPLAN_MAX_PER_HOUR: the
 * last one refuses any plan within PROTO_BDAY_GAP_MS, all of them more than BDPLAN_MAX_PER_HOUR
 * in an hour (bdplan_check), however each attempt ended */
static uint64_t sess_bday_starts[BDPLAN_MAX_PER_HOUR];
static int sess_bday_nstarts; /* recorded so far, capped at BDPLAN_MAX_PER_HOUR */
static int sess_bday_newest;  /* index of the newest */

static void sess_bday_started(uint64_t now)
{
    sess_bday_newest = sess_bday_nstarts ? (sess_bday_newest + 1) % BDPLAN_MAX_PER_HOUR : 0;
    sess_bday_starts[sess_bday_newest] = now;
    if (sess_bday_nstarts < BDPLAN_MAX_PER_HOUR)
        sess_bday_nstarts++;
}

static int sess_bday_starts_within(uint64_t now, uint64_t span)
{
    int n = 0;
    for (int i = 0; i < sess_bday_nstarts; i++)
        if (now - sess_bday_starts[i] < span)
            n++;
    return n;
}

/* After the birthday window (the hard side's, the longer one), time for a last connection's
 * handshake before a punch without a relay gives up. */
#define SESS_BDAY_SHAKE_MS 500

/* At any end of the punch (a winner, a failure, an abort): every birthday socket closes now,
 * and the attempt no longer counts as running. */
static void sess_bday_end(struct sess *ss)
{
    if (!ss->bday)
        return;
    sess_bday_running--;
    bday_stop(ss->bday);
    ss->bday = NULL;
}

void sess_init(struct sess_set *set)
{
    q_init(&set->list);
    set->won = false;
}

bool sess_any(const struct sess_set *set)
{
    return !q_empty(&set->list);
}

static void sess_free(struct sess *ss)
{
    struct sess_set *set = ss->set;
    q_remove(&ss->node);
    sess_bday_end(ss);
    rl_cancel(ss->relay);
    shake_wipe(&ss->shake);
    rshake_wipe(&ss->rshake);
    sodium_memzero(&ss->sr, sizeof ss->sr);
    sodium_memzero(&ss->own, sizeof ss->own);
    free(ss);
    if (!sess_any(set))
        set->cb.idle(set->cb.data);
}

/* An admitted session ended without a link: its admit hook's slot goes back. */
static void sess_hook_failed(struct sess_set *set, const char *peer, int status)
{
    if (set->serve && set->serve->failed)
        set->serve->failed(set->serve->arg, peer, status);
}

/* The same for a session: a served resume took no slot, so it gives none back. */
static void sess_failed(struct sess *ss, int status)
{
    if (!ss->serve_resume)
        sess_hook_failed(ss->set, ss->shake.peer, status);
}

/* SESS_WAIT: the first session to complete its handshake is the one; every other session in
 * setup is aborted (a stranger's, or a slower path of the same peer's). */
static void sess_wait_won(struct sess_set *set, struct sess *ss)
{
    struct q *it;
    *set->link = *ss->link;
    set->won = true;
    sess_free(ss);
    while ((it = q_head(&set->list))) {
        ss = q_data(it, struct sess, node);
        ss->no_report = true;
        if (ss->punch)
            punch_abort(ss->punch, EXIT_PUNCH, "another session completed first");
        else
            sess_free(ss);
    }
    set->cb.won(set->cb.data);
}

/* A birthday punch's part in the link: its SYNs count as attempts, and when one of its
 * connections won, the path line says which socket or guess of how many. */
static void sess_bday_link(struct sess *ss, int status)
{
    struct peer_link *l = ss->link;
    struct bday_stats st;
    if (!ss->bday)
        return;
    bday_get_stats(ss->bday, &st);
    l->attempts += (unsigned)st.sent;
    ss->bday_sent = (unsigned)st.sent;
    if (status != EXIT_DONE || !l->birthday)
        return;
    l->bday_easy = ss->bplan.role == PROTO_BDAY_EASY;
    l->bday_of = st.planned;
    LOG_I("birthday: %s %d of %d won (%d sent, %d connected, %d refused, %d ended by ICMP)",
          l->bday_easy ? "guess" : "socket", l->bday_n, st.planned, st.sent, st.connected,
          st.refused, st.icmp);
}

void sess_report_of(const char *session, int status, const struct peer_link *l, uint64_t ms,
                    unsigned attempts, enum proto_nat nat, struct proto_msg *out)
{
    memset(out, 0, sizeof *out);
    out->type = PROTO_REPORT;
    snprintf(out->u.report.session, sizeof out->u.report.session, "%s", session);
    out->u.report.nat = (unsigned)nat <= PROTO_NAT_DEPENDENT ? nat : PROTO_NAT_UNKNOWN;
    if (status == EXIT_DONE) {
        attempts = l->attempts;
        ms = l->punch_ms;
        out->u.report.result = l->relayed ? PROTO_RES_RELAY : PROTO_RES_DIRECT;
        out->u.report.candidate = l->relayed ? PROTO_CAND_RELAY : proto_cand_of(l->via);
        /* a winner of a kind the protocol does not name (none here: punch.c's kinds are its
         * set) still went direct: "public" is the nearest truthful word */
        if (!l->relayed && out->u.report.candidate == PROTO_CAND_NONE)
            out->u.report.candidate = PROTO_CAND_PUBLIC;
    } else {
        out->u.report.result = PROTO_RES_FAILED;
        out->u.report.candidate = PROTO_CAND_NONE;
    }
    /* clamped to the message's bounds: a report never fails to encode */
    out->u.report.attempts =
        (int)(attempts < PROTO_REPORT_MAX_ATTEMPTS ? attempts : PROTO_REPORT_MAX_ATTEMPTS);
    out->u.report.ms = (uint32_t)(ms < PROTO_REPORT_MAX_MS ? ms : PROTO_REPORT_MAX_MS);
}

/* The punch's outcome to the control connection (cb.report), before anything else hears of
 * the session's end: a one-shot control connection closes right after. */
static void sess_report(struct sess *ss, struct punch *p, int status)
{
    struct sess_set *set = ss->set;
    struct proto_msg m;
    bool upgrade = ss->res && set->resume && set->resume->direct_only;
    if (!set->cb.report || ss->no_report || set->won || !ss->sid[0] ||
        (upgrade && status != EXIT_DONE))
        return;
    sess_report_of(ss->sid, status, ss->link, clk_ms() - ss->order_ms,
                   punch_attempts(p) + ss->bday_sent, set->nat ? *set->nat : PROTO_NAT_UNKNOWN, &m);
    set->cb.report(set->cb.data, &m);
}

static void sess_punch_done(struct punch *p, int status, const char *why, void *arg)
{
    struct sess *ss = arg;
    struct sess_set *set = ss->set;
    char note[400];
    ss->punch = NULL;
    /* the first handshake ends the punch: the other birthday sockets close at once */
    sess_bday_link(ss, status);
    sess_bday_end(ss);
    sess_report(ss, p, status);
    if (set->won) { /* aborted: another session won */
        LOG_D("session with %s aborted: another one completed first", ss->shake.peer);
        sess_failed(ss, status);
        sess_free(ss);
        return;
    }
    if (ss->relay)
        rl_describe(ss->relay, note, sizeof note);
    else
        snprintf(note, sizeof note, "%s", ss->relay_note);
    shake_wipe(&ss->shake);
    /* a resume proves the session's RS, not a key: trust was settled at epoch 0 */
    if (status == EXIT_DONE && !ss->res)
        trust_after_shake(&ss->shake.trust, ss->link->peer_pk, ss->shake.code_bind != NULL,
                          set->o->remember);
    if (status == EXIT_DONE) {
        snprintf(ss->link->server, sizeof ss->link->server, "%s", set->name);
    }
    /* waiting: one failed session (a stranger's, a refused key, a punch that found no path)
     * is not the end; the next punch order may be the peer's; nor is a failed resume punch
     * (the path side tries again) */
    enum log_level lv = set->mode == SESS_WAIT || ss->res ? LOG_WARN : LOG_ERROR;
    if (status != EXIT_DONE && ss->relay_only)
        log_msg(lv,
                "punch to %s failed: relay: %s; direct skipped: %s%s", ss->shake.peer, note,
                ss->link->direct_why, set->mode == SESS_WAIT ? "; still waiting" : "");
    else if (status != EXIT_DONE)
        log_msg(lv,
                "punch to %s failed: direct: %s; relay: %s%s", ss->shake.peer, why, note,
                set->mode == SESS_WAIT ? "; still waiting" : "");
    if (set->mode == SESS_ONE) {
        sess_free(ss);
        set->cb.ended(set->cb.data, status);
        return;
    }
    if (status == EXIT_DONE && set->mode == SESS_WAIT) {
        sess_wait_won(set, ss);
        return;
    }
    /* serve mode: the link (and its descriptor) is the callee's; the control connection
     * stays for the next punch order */
    if (status == EXIT_DONE && ss->serve_resume)
        set->serve->resumed(set->serve->arg, ss->sr.root, ss->link);
    else if (status == EXIT_DONE)
        set->serve->linked(set->serve->arg, ss->link);
    else
        sess_failed(ss, status);
    sess_free(ss);
}

static void sess_relay_done(struct rl *r, int status, const char *why, int fd, void *arg)
{
    struct sess *ss = arg;
    (void)r;
    ss->relay = NULL;
    if (status == EXIT_DONE) {
        snprintf(ss->relay_note, sizeof ss->relay_note, "joined, but no handshake through it");
        if (!ss->punch)
            close(fd);
        else
            punch_adopt(ss->punch, fd, PUNCH_ADOPT_RELAY);
        return;
    }
    snprintf(ss->relay_note, sizeof ss->relay_note, "%s", why);
    if (ss->relay_only && ss->punch)
        punch_abort(ss->punch, status, why);
    else
        LOG_W("%s; still trying direct", why);
}

/* What this session tries: direct attempts, the relay, or both. Returns 1 when the relay is
 * used, 0 when not, -1 after logging why (no path at all). */
static int sess_plan(struct sess *ss, const struct proto_msg *m, struct punch_cfg *cfg)
{
    const struct peer_opts *o = ss->set->o;
    bool relay = m->u.punch.relay && o->path != PROTO_PATH_DIRECT;
    const char *skip = NULL;
    if (ss->set->resume && ss->set->resume->direct_only) {
        /* an upgrade (4.6): the session already runs on the relay; only direct helps */
        if (m->u.punch.no_direct) {
            LOG_I("upgrade to direct with %s: the server says there is no direct path (%s)",
                  m->u.punch.peer, m->u.punch.reason[0] ? m->u.punch.reason : "no reason");
            return -1;
        }
        snprintf(ss->relay_note, sizeof ss->relay_note, "not used (an upgrade)");
        return 0;
    }
    if (m->u.punch.no_direct)
        skip = m->u.punch.reason[0] ? m->u.punch.reason : "the server says there is no direct path";
    else if (o->path == PROTO_PATH_RELAY)
        skip = "--relay-only";
    /* with a direct path, reason says why the server offered no relay (a quota) */
    snprintf(ss->relay_note, sizeof ss->relay_note, "%.200s",
             o->path == PROTO_PATH_DIRECT                              ? "not used (--no-relay)"
             : !relay && !m->u.punch.no_direct && m->u.punch.reason[0] ? m->u.punch.reason
             : !relay                                                  ? "not offered by the server"
                                                                       : "not tried");
    if (skip && !relay) {
        LOG_E("no path to %s: direct skipped (%s), relay not offered", m->u.punch.peer, skip);
        return -1;
    }
    if (skip) {
        cfg->relay_only = true;
        snprintf(ss->link->direct_why, sizeof ss->link->direct_why, "%.200s", skip);
    }
    ss->relay_only = cfg->relay_only;
    return relay;
}

/* Relay first (docs/design/resume.md 4.6): the relay is joined after the grace rather than
 * --direct-timeout when both sides resume (only then can a relayed stream move to direct
 * later), and the link remembers it so that the path side upgrades a relayed epoch 0. */
static uint64_t sess_relay_delay(struct sess *ss, const struct proto_msg *m)
{
    const struct sess_set *set = ss->set;
    const struct peer_opts *o = set->o;
    struct migrate_when w = {
        .relay_offered = true, /* sess_relay_start runs only then */
        .direct_punch = !ss->relay_only,
        .no_relay = o->path == PROTO_PATH_DIRECT,
        .relay_only = o->path == PROTO_PATH_RELAY,
        .direct_first = o->direct_first,
        .self_resume = set->resume_announced && *set->resume_announced && o->resume_timeout_s > 0,
        .peer_resume = (m->u.punch.peer_features & PROTO_FEAT_RESUME) != 0,
        /* the plan, not whether we took part: both sides see the same punch, so decide alike */
        .birthday = m->u.punch.has_birthday};
    enum migrate_why why;
    uint64_t grace;
    if (ss->relay_only)
        return 0;
    if (set->resume) /* a resume's relay keeps its timing; the upgrade is direct-only */
        return o->direct_timeout_ms;
    why = migrate_relay_first_why(&w);
    if (why != MIGRATE_YES) {
        LOG_D("relay at --direct-timeout (%s)", migrate_why_str(why));
        return o->direct_timeout_ms;
    }
    grace = migrate_grace_ms(ss->cfg.rtt_us, o->direct_timeout_ms, o->relay_grace_ms);
    ss->link->upgrade_wanted = true;
    LOG_I("relay first: joining the relay in %llu ms unless direct is up; then upgrading",
          (unsigned long long)grace);
    return grace;
}

/* The relay goes to the address the control connection uses, or to the punch's relay_addr,
 * from a fresh ephemeral port. */
static void sess_relay_start(struct sess *ss, const struct proto_msg *m)
{
    struct sess_set *set = ss->set;
    char err[200];
    uint64_t delay = sess_relay_delay(ss, m);
    /* a cluster may run the session's relay on another instance (punch.relay_addr) */
    const struct sockaddr *at = m->u.punch.has_relay_addr
                                    ? (const struct sockaddr *)&m->u.punch.relay_addr
                                    : (const struct sockaddr *)set->server;
    const char *bad = ap_bad_relay(at, (const struct sockaddr *)set->server);
    char ep[EP_STRLEN];
    if (bad) {
        /* only the server's own address or a global one: a lying server must not aim our
         * relay connection (and its token line) at our own host or LAN */
        snprintf(ss->relay_note, sizeof ss->relay_note,
                 "refused the relay address %s: it is %s, neither the server's own address nor "
                 "a global one",
                 ep_format(at, ep, sizeof ep), bad);
        LOG_W("%s", ss->relay_note);
        if (ss->relay_only)
            punch_abort(ss->punch, EXIT_PUNCH, ss->relay_note);
        return;
    }
    ss->relay = rl_start(set->loop, at, m->u.punch.session, m->u.punch.token,
                         set->o->have_secret ? set->o->secret : NULL, delay, sess_relay_done, ss,
                         err, sizeof err);
    if (ss->relay)
        return;
    snprintf(ss->relay_note, sizeof ss->relay_note, "%s", err);
    if (ss->relay_only)
        punch_abort(ss->punch, EXIT_LOCAL, err);
}

/* The session layer's part of the handshake (resume.md 4.1): our shake.resume when our hello
 * announced "resume", and whether the punch says the peer's did too (punch.peer_features);
 * shake.c decides from these who sends it. Not announced: all zero, today's handshake. */
static void sess_shake_resume(struct sess *ss, const struct proto_msg *m)
{
    const struct sess_set *set = ss->set;
    if (!set->resume_announced || !*set->resume_announced)
        return;
    ss->shake.resume = (struct proto_resume_caps){.has = true,
                                                  .v = PROTO_RESUME_V,
                                                  .buf = set->o->resume_buffer,
                                                  .timeout = set->o->resume_timeout_s};
    ss->shake.resume_listed = (m->u.punch.peer_features & PROTO_FEAT_RESUME) != 0;
}

/* The session's handshake context and trust; EXIT_DONE or trust_prepare's failure. */
static int sess_shake(struct sess *ss, const struct proto_msg *m, const char *fp)
{
    struct sess_set *set = ss->set;
    int rc;
    memcpy(ss->shake.session, m->u.punch.session, sizeof ss->shake.session);
    memcpy(ss->shake.self, set->o->id, sizeof ss->shake.self);
    memcpy(ss->shake.peer, m->u.punch.peer, sizeof ss->shake.peer);
    ss->shake.role = m->u.punch.role;
    ss->shake.ident = set->o->ident;
    ss->shake.code_bind = set->o->code_bind; /* NULL: no code, today's handshake */
    sess_shake_resume(ss, m);
    shake_init(&ss->shake);
    if ((rc = trust_prepare(set->o, m->u.punch.peer, m->u.punch.has_key ? m->u.punch.key : NULL,
                            &ss->shake.trust)) != EXIT_DONE)
        return rc;
    /* --allow ID=KEY pins the key like --peer-key, for this peer only */
    if (fp[0])
        snprintf(ss->shake.trust.fp, sizeof ss->shake.trust.fp, "%s", fp);
    memcpy(ss->link->peer, m->u.punch.peer, sizeof ss->link->peer);
    return EXIT_DONE;
}

bool sess_resume_refused(const struct sess_resume *r, const struct proto_msg *m, char *why,
                         size_t whylen)
{
    const char *bad = NULL;
    if (!m->u.punch.resume[0])
        bad = "it resumes no session";
    else if (strcmp(m->u.punch.resume, r->root) != 0)
        bad = "it resumes another session";
    else if (strcmp(m->u.punch.peer, r->peer) != 0)
        bad = "it comes from another peer";
    else if (!m->u.punch.has_key)
        bad = "it carries no key";
    else if (sodium_memcmp(m->u.punch.key, r->peer_key, sizeof m->u.punch.key) != 0)
        bad = "its key is not the session's peer's";
    else if (m->u.punch.role != r->role)
        bad = "its role is not ours in the session";
    if (!bad)
        return false;
    snprintf(why, whylen, "%s", bad);
    return true;
}

/* Resume mode: the engine runs the resume lines under this session's context; the punch's
 * own session id is the new S, everything else is the suspended session's. */
static void sess_rshake(struct sess *ss, const struct proto_msg *m)
{
    const struct sess_resume *r = ss->res;
    struct rshake_ctx *x = &ss->rshake;
    memcpy(x->session, m->u.punch.session, sizeof x->session);
    snprintf(x->root, sizeof x->root, "%s", r->root);
    memcpy(x->self, ss->set->o->id, sizeof x->self);
    snprintf(x->peer, sizeof x->peer, "%s", r->peer);
    x->role = r->role;
    x->rs = r->rs;
    x->last_epoch = r->last_epoch;
    x->rx = r->rx;
    x->gone = false;
    rshake_init(x);
    memcpy(ss->link->peer, m->u.punch.peer, sizeof ss->link->peer);
    ss->cfg.resume = x;
    ss->cfg.shake = NULL;
}

/* A waiting peer turns away, before dialling anything, a peer whose registered key (the
 * punch's word) it would refuse in the handshake anyway: a stranger knocking while we pin
 * the real peer (--peer-key, --allow ID=KEY, known_peers). A server that lies about the key
 * gains nothing: the handshake checks the key the connection shows. */
static bool sess_key_refused(struct sess *ss, const struct proto_msg *m)
{
    char why[1024];
    if (ss->set->mode == SESS_ONE || !m->u.punch.has_key ||
        shake_trust_key(&ss->shake.trust, m->u.punch.key, why, sizeof why) != SHAKE_REFUSED)
        return false;
    LOG_W("refusing a session with %s, by the key it registered with: %s", m->u.punch.peer, why);
    return true;
}

int sess_oldest(const char *const ids[], int n, const char *peer)
{
    int old = -1;
    for (int i = 0; i < n; i++) {
        int same = 0;
        if (peer) {
            if (strcmp(ids[i], peer) == 0)
                old = i;
            continue;
        }
        for (int j = 0; j < n; j++)
            same += strcmp(ids[i], ids[j]) == 0;
        if (same > 1)
            old = i;
    }
    return old;
}

enum sess_room sess_room(const char *const ids[], int n, const char *peer, bool same_done,
                         int *victim)
{
    int mine = 0;
    for (int i = 0; i < n; i++)
        mine += strcmp(ids[i], peer) == 0;
    if (!same_done && mine >= SESS_WAIT_PER_ID && (*victim = sess_oldest(ids, n, peer)) >= 0)
        return SESS_EVICT_SAME;
    if (n < SESS_WAIT_SETUPS)
        return SESS_ROOM;
    *victim = sess_oldest(ids, n, NULL);
    return *victim < 0 ? SESS_REFUSE : SESS_EVICT_FULL;
}

/* The peer ids of the sessions (newest first) into ids and ss, at most max; returns how many. */
static int sess_ids(struct sess_set *set, const char *ids[], struct sess *all[], int max)
{
    struct q *it;
    int n = 0;
    q_foreach(it, &set->list)
    {
        if (n == max)
            break;
        all[n] = q_data(it, struct sess, node);
        ids[n] = all[n]->shake.peer;
        n++;
    }
    return n;
}

static void sess_evict(struct sess *ss, const char *why)
{
    LOG_W("dropping a session in setup with %s: %s", ss->shake.peer, why);
    if (ss->punch) {
        punch_abort(ss->punch, EXIT_PUNCH, why); /* sess_punch_done frees it */
    } else {
        sess_failed(ss, EXIT_PUNCH);
        sess_free(ss);
    }
}

/* SESS_WAIT: room for a punch order of peer. An id already holding SESS_WAIT_PER_ID gives up
 * its oldest (the newest order is the likeliest to be answered); a full table gives up the
 * oldest session of an id holding more than one, so that against strangers of fewer than
 * SESS_WAIT_SETUPS / SESS_WAIT_PER_ID ids a distinct peer always gets a slot. */
static bool sess_wait_room(struct sess_set *set, const char *peer)
{
    /* the set never holds more than SESS_WAIT_SETUPS in this mode: room is made first */
    const char *ids[SESS_WAIT_SETUPS + 1];
    struct sess *all[SESS_WAIT_SETUPS + 1];
    int victim = -1, n = sess_ids(set, ids, all, SESS_WAIT_SETUPS + 1);
    enum sess_room r = sess_room(ids, n, peer, false, &victim);
    if (r == SESS_EVICT_SAME) {
        sess_evict(all[victim], "a newer punch order of the same id");
        n = sess_ids(set, ids, all, SESS_WAIT_SETUPS + 1);
        r = sess_room(ids, n, peer, true, &victim);
    }
    switch (r) {
    case SESS_REFUSE:
        LOG_W("refusing a session with %s: %d are being set up already", peer, SESS_WAIT_SETUPS);
        return false;
    case SESS_EVICT_FULL:
        sess_evict(all[victim], "all setup slots are taken; its id holds more than one");
        return true;
    default:
        return true;
    }
}

/* Whether a punch order may start a session in the waiting modes: both ask the admit callback
 * (--allow, --max-sessions, receive --from) first, which may pin the key; SESS_WAIT takes up
 * to SESS_WAIT_SETUPS at once (sess_wait_room). A refused order takes no slot and evicts
 * nothing. (One-shot admission is the control connection's: the peer it asked for, once.) */
static bool sess_admit(struct sess_set *set, const struct proto_msg *m, char *fp, size_t fplen)
{
    char why[300];
    fp[0] = '\0';
    if (set->mode == SESS_ONE)
        return true;
    if (set->serve && set->serve->admit &&
        !set->serve->admit(set->serve->arg, m->u.punch.peer, fp, fplen, why, sizeof why)) {
        LOG_W("refusing a session with %s: %s", m->u.punch.peer, why);
        return false;
    }
    if (set->mode == SESS_WAIT && !sess_wait_room(set, m->u.punch.peer)) {
        sess_hook_failed(set, m->u.punch.peer, EXIT_PUNCH);
        return false;
    }
    return true;
}

/* A session that could not start: one-shot ends with status, serve mode releases its slot. */
static enum sess_start sess_abandon(struct sess *ss, int status, const char *err)
{
    struct sess_set *set = ss->set;
    if (err)
        LOG_E("%s", err);
    if (set->mode != SESS_ONE)
        sess_failed(ss, status);
    sess_free(ss);
    if (set->mode == SESS_ONE)
        set->cb.ended(set->cb.data, status);
    return SESS_NONE;
}

/* The engine's configuration from the order: candidates, timing, the shared listener. */
static void sess_punch_cfg(struct sess *ss, const struct proto_msg *m, uint32_t rtt_us,
                           uint64_t rx_us)
{
    struct sess_set *set = ss->set;
    struct punch_cfg *cfg = &ss->cfg;
    cfg->local = *set->local;
    cfg->local6 = *set->local6;
    cfg->timeout_ms = set->o->timeout_ms;
    cfg->rtt_us = rtt_us;
    cfg->shared_listener = set->mode != SESS_ONE;
    cfg->loopback_ok = ep_is_loopback((const struct sockaddr *)set->server);
    /* the server timed both orders to arrive together: aim both first SYNs at the same moment
     * after the kernel's arrival stamp, leaving time to get ready */
    cfg->start_us = rx_us + (m->u.punch.start_in_us >= 0 ? (uint64_t)m->u.punch.start_in_us
                                                         : PROTO_DEFAULT_START_IN_US);
    if (!cfg->relay_only)
        punch_candidates(cfg, &m->u.punch.observed,
                         m->u.punch.has_observed6 ? &m->u.punch.observed6 : NULL,
                         &m->u.punch.endpoints, set->observed);
}

/* A connection of the birthday engine: the handshake decides, as for any other. */
static void sess_bday_conn(struct bday *b, int fd, int index, void *arg)
{
    struct sess *ss = arg;
    (void)b;
    if (!ss->punch) {
        close(fd);
        return;
    }
    LOG_D("birthday: %s %d connected; handshaking",
          ss->bplan.role == PROTO_BDAY_EASY ? "guess" : "socket", index + 1);
    punch_adopt_index(ss->punch, fd, PUNCH_ADOPT_BIRTHDAY, index);
}

/* The window is over with no winner yet (a winner ends the punch, which stops the engine). */
static void sess_bday_over(struct bday *b, void *arg)
{
    struct sess *ss = arg;
    struct bday_stats st;
    char note[200];
    bday_get_stats(b, &st);
    bdplan_summary(&ss->bplan, &st, note, sizeof note);
    if (!ss->punch)
        return;
    punch_note(ss->punch, note);
    /* a birthday connection may still finish its handshake, or a candidate may answer (one
     * that completed TCP and failed its handshake, a decoy's, counts for nothing) */
    if (punch_adopted_pending(ss->punch, PUNCH_ADOPT_BIRTHDAY) > 0 || ss->cfg.ncand > 0)
        return;
    /* nothing direct is left but what the other side's window may still bring: the relay need
     * not wait for --direct-timeout, and without one the punch fails once that window is over
     * (plus a handshake's time) rather than at --timeout */
    if (ss->relay) {
        LOG_I("%s; opening the relay now", note);
        rl_now(ss->relay);
    } else {
        uint64_t now = clk_us(),
                 end = ss->cfg.start_us +
                       (bday_hard_close_ms(ss->bplan.pace_ms) + SESS_BDAY_SHAKE_MS) * 1000;
        punch_bday_over(ss->punch, end > now ? (end - now) / 1000 : 0);
    }
}

/* Takes part in the punch's birthday plan, when it has one and we accept it (bdplan_check;
 * refused: logged, and the ordinary punch goes on). Started, the punch leaves its IPv4
 * candidates out: the hard side's first socket is the observed-endpoint candidate, and the
 * easy side's dial at the hard side's observed port would only be one more guess. */
static void sess_bday_begin(struct sess *ss, const struct proto_msg *m)
{
    struct sess_set *set = ss->set;
    struct punch_cfg *cfg = &ss->cfg;
    const struct proto_bday *plan = &m->u.punch.birthday;
    const char *lo_env = getenv("TCPUNCH_TEST_BIRTHDAY_LOOPBACK");
    uint64_t now = clk_us();
    struct bdplan_ctx ctx = {.observed = &m->u.punch.observed,
                             .verdict = set->nat ? *set->nat : PROTO_NAT_UNKNOWN,
                             /* a test switch: see struct bdplan_ctx */
                             .loopback_ok = cfg->loopback_ok && lo_env && !strcmp(lo_env, "1"),
                             .now_us = now,
                             .last_start_us =
                                 sess_bday_nstarts ? sess_bday_starts[sess_bday_newest] : 0,
                             .started = sess_bday_nstarts > 0,
                             .starts_hour = sess_bday_starts_within(now, BDPLAN_HOUR_US),
                             .cap_k = set->o->birthday_k,
                             .cap_m = set->o->birthday_m,
                             .announced = set->bday_announced && *set->bday_announced,
                             .busy = sess_bday_running > 0};
    struct bday_cfg bc;
    const char *ttl_from;
    char why[300], err[200], ep[EP_STRLEN];
    int n = 0;

    if (!m->u.punch.has_birthday || cfg->relay_only)
        return;
    if (!bdplan_check(plan, &ctx, &ss->bplan, why, sizeof why)) {
        LOG_W("refusing the birthday punch with %s: %s; punching as usual", m->u.punch.peer, why);
        return;
    }
    if (set->local->ss_family != AF_INET ||
        sk_is_subnet_broadcast((const struct sockaddr *)&plan->target)) {
        LOG_W("refusing the birthday punch with %s: %s; punching as usual", m->u.punch.peer,
              set->local->ss_family != AF_INET ? "our server connection is not IPv4"
                                               : "its target is a local subnet's broadcast "
                                                 "address");
        return;
    }
    memset(&bc, 0, sizeof bc);
    bc.role = ss->bplan.role;
    bc.target = ss->bplan.target;
    /* easy: the guesses leave from the shared port, whose mapping the other side's SYNs aim at;
     * hard: each socket from its own ephemeral port, each one mapping */
    if (bc.role == PROTO_BDAY_EASY)
        bc.local = *set->local;
    else
        bc.local.ss_family = AF_INET;
    bc.k = ss->bplan.k;
    bc.m = ss->bplan.m;
    ttl_from = ss->bplan.ttl                     ? "the server's"
               : set->bday_ttl && *set->bday_ttl ? "measured"
                                                 : "default";
    bc.ttl = ss->bplan.ttl                     ? ss->bplan.ttl
             : set->bday_ttl && *set->bday_ttl ? *set->bday_ttl
                                               : HOPS_DEFAULT_TTL;
    if (bc.ttl < BDPLAN_MIN_TTL)
        bc.ttl = BDPLAN_MIN_TTL;
    bc.pace_ms = ss->bplan.pace_ms;
    bc.port_lo = ss->bplan.port_lo;
    bc.port_hi = ss->bplan.port_hi;
    bc.start_us = cfg->start_us;
    bc.easy_delay_us = (uint64_t)ss->bplan.easy_delay_us;
    ss->bday = bday_start(set->loop, &bc, sess_bday_conn, sess_bday_over, ss, err, sizeof err);
    if (!ss->bday) {
        LOG_W("birthday punch with %s not started (%s); punching as usual", m->u.punch.peer, err);
        return;
    }
    sess_bday_running++;
    sess_bday_started(now);
    if (bc.role == PROTO_BDAY_HARD)
        LOG_I("birthday punch with %s: we are the hard side, %d socket%s towards %s, first SYNs "
              "with TTL %d (%s)",
              m->u.punch.peer, bc.k, bc.k == 1 ? "" : "s",
              ep_format((const struct sockaddr *)&bc.target, ep, sizeof ep), bc.ttl, ttl_from);
    else if (inet_ntop(AF_INET, &((const struct sockaddr_in *)&bc.target)->sin_addr, ep, sizeof ep))
        LOG_I("birthday punch with %s: we are the easy side, %d guess%s at ports %d-%d of %s "
              "over %d ms",
              m->u.punch.peer, bc.m, bc.m == 1 ? "" : "es", bc.port_lo, bc.port_hi, ep, bc.pace_ms);
    /* the birthday engine is the IPv4 path; IPv6 candidates stay */
    for (int i = 0; i < cfg->ncand; i++)
        if (cfg->cand[i].addr.ss_family != AF_INET)
            cfg->cand[n++] = cfg->cand[i];
    cfg->ncand = n;
    cfg->birthday = true;
    cfg->bday_target = ss->bplan.target;
}

/* SESS_SERVE, an order with punch.resume (design 4.5, "A resume order is routed by
 * punch.resume"): only the suspended session with that root takes it, and only from that
 * session's peer, key and role; anything else is refused before anything is dialled. The
 * order never reaches admit: it takes no --max-sessions slot and dials no --forward target. */
static bool sess_serve_found(struct sess_set *set, const struct proto_msg *m,
                             struct serve_resume *sr)
{
    char why[200] = "no session of ours is suspended";
    bool ok = set->serve && set->serve->resume_find &&
              set->serve->resume_find(set->serve->arg, m->u.punch.resume, sr, why, sizeof why);
    if (ok) {
        struct sess_resume r = {.root = sr->root,
                                .peer = sr->peer,
                                .peer_key = sr->peer_key,
                                .role = sr->role};
        ok = !sess_resume_refused(&r, m, why, sizeof why);
    }
    if (!ok) {
        LOG_I("refusing a resume order from %s: %s", m->u.punch.peer, why);
        sodium_memzero(sr, sizeof *sr);
    }
    return ok;
}

/* The session's resume context: the set's, or the served order's own copy. */
static void sess_resume_ctx(struct sess *ss, const struct serve_resume *sr)
{
    if (!sr) {
        ss->res = ss->set->resume;
        return;
    }
    ss->sr = *sr;
    ss->serve_resume = true;
    ss->sres = (struct sess_resume){.root = ss->sr.root,
                                    .peer = ss->sr.peer,
                                    .peer_key = ss->sr.peer_key,
                                    .role = ss->sr.role,
                                    .rs = ss->sr.rs,
                                    .last_epoch = ss->sr.last_epoch,
                                    .rx = ss->sr.rx};
    ss->res = &ss->sres;
}

/* listen --forward: the resume punches running for served sessions. One per root, the newest
 * (the one the peer is answering) replacing an older; and at most SESS_MAX_SERVED_RESUMES in
 * all, so that a lying server naming a suspended session's peer cannot make us run punches
 * without bound (found by review). false: refuse this order. */
#define SESS_MAX_SERVED_RESUMES 16
static bool sess_served_room(struct sess_set *set, const char *root)
{
    struct sess *older = NULL;
    struct q *it;
    int n = 0;
    q_foreach(it, &set->list)
    {
        struct sess *ss = q_data(it, struct sess, node);
        if (!ss->serve_resume)
            continue;
        n++;
        if (ss->punch && strcmp(ss->sr.root, root) == 0)
            older = ss;
    }
    if (older) {
        /* sess_punch_done frees it (and takes it off the list) */
        older->no_report = true;
        punch_abort(older->punch, EXIT_PUNCH, "a newer resume order for this session came");
        return true;
    }
    if (n >= SESS_MAX_SERVED_RESUMES) {
        LOG_D("refusing a resume order: %d resume punches run already", n);
        return false;
    }
    return true;
}

enum sess_start sess_start(struct sess_set *set, const struct proto_msg *m, uint32_t rtt_us,
                           uint64_t rx_us)
{
    struct punch_cfg *cfg;
    struct sess *ss;
    struct serve_resume sr;
    char ep[EP_STRLEN], err[200], fp[ID_FP_SIZE];
    bool served = set->mode == SESS_SERVE && m->u.punch.resume[0];
    int relay, rc;

    if (served ? !sess_serve_found(set, m, &sr) : !sess_admit(set, m, fp, sizeof fp))
        return SESS_NONE;
    if (served && !sess_served_room(set, sr.root)) {
        sodium_memzero(&sr, sizeof sr);
        return SESS_NONE;
    }
    if (!(ss = calloc(1, sizeof *ss))) {
        if (set->mode != SESS_ONE && !served)
            sess_hook_failed(set, m->u.punch.peer, EXIT_PUNCH);
        sodium_memzero(&sr, sizeof sr);
        return SESS_NOMEM;
    }
    ss->set = set;
    ss->order_ms = clk_ms() - (clk_us() > rx_us ? (clk_us() - rx_us) / 1000 : 0);
    memcpy(ss->sid, m->u.punch.session, sizeof ss->sid);
    sess_resume_ctx(ss, served ? &sr : NULL);
    sodium_memzero(&sr, sizeof sr);
    ss->link = set->mode != SESS_ONE ? &ss->own : set->link;
    ss->own.fd = -1;
    memcpy(ss->shake.peer, m->u.punch.peer, sizeof ss->shake.peer);
    q_insert_head(&set->list, &ss->node);
    cfg = &ss->cfg;
    if ((relay = sess_plan(ss, m, cfg)) < 0)
        return sess_abandon(ss, EXIT_PUNCH, NULL);
    sess_punch_cfg(ss, m, rtt_us, rx_us);
    if (ss->res) {
        sess_rshake(ss, m);
    } else {
        if ((rc = sess_shake(ss, m, fp)) != EXIT_DONE)
            return sess_abandon(ss, rc, NULL);
        if (sess_key_refused(ss, m))
            return sess_abandon(ss, EXIT_PUNCH, NULL);
        cfg->shake = &ss->shake;
    }
    sess_bday_begin(ss, m);
    LOG_I("punching to %s at %s (%d candidate%s%s, %s)", m->u.punch.peer,
          ep_format((const struct sockaddr *)&m->u.punch.observed, ep, sizeof ep), cfg->ncand,
          cfg->ncand == 1 ? "" : "s", cfg->birthday ? " and a birthday punch" : "",
          proto_role_name(m->u.punch.role));
    if (!ss->res) /* a resume's events are the data plane's (suspended, resumed) */
        ev_punching(set->o, m, cfg);
    for (int i = 0; i < cfg->ncand; i++)
        LOG_D("candidate %d: %s (%s)", i,
              ep_format((struct sockaddr *)&cfg->cand[i].addr, ep, sizeof ep), cfg->cand[i].kind);
    ss->punch = punch_start(set->loop, cfg, ss->link, sess_punch_done, ss, err, sizeof err);
    if (!ss->punch)
        return sess_abandon(ss, EXIT_LOCAL, err);
    if (relay)
        sess_relay_start(ss, m);
    return SESS_STARTED;
}

void sess_abort(struct sess_set *set, const char *why)
{
    struct q *it;
    /* each abort ends its session at once (sess_punch_done frees it): take the head again */
    while ((it = q_head(&set->list))) {
        struct sess *ss = q_data(it, struct sess, node);
        ss->no_report = true; /* a cancel or a newer order: no traversal outcome */
        if (ss->punch)
            punch_abort(ss->punch, EXIT_PUNCH, why);
        else
            sess_free(ss);
    }
}

void sess_cancel_relays(struct sess_set *set)
{
    struct q *it;
    q_foreach(it, &set->list)
    {
        struct sess *ss = q_data(it, struct sess, node);
        rl_cancel(ss->relay);
        ss->relay = NULL;
    }
}

/* The one dialling that exact endpoint, else the only one dialling that host. Anything else is
 * closed before a byte is written: a connection from a host that is none of the peers' is not
 * a peer (a NAT may change the port, not the address), and our shake would tell a stranger the
 * session. */
struct sess *sess_route(struct sess_set *set, const struct sockaddr *from)
{
    struct sess *host = NULL;
    struct q *it;
    int nhost = 0;
    q_foreach(it, &set->list)
    {
        struct sess *ss = q_data(it, struct sess, node);
        bool same_host = false;
        if (!ss->punch || ss->cfg.relay_only)
            continue;
        /* a birthday punch's target is the peer's public address (no candidate of its own) */
        if (ss->cfg.birthday && ep_same_host((const struct sockaddr *)&ss->cfg.bday_target, from)) {
            host = ss;
            nhost++;
            continue;
        }
        for (int i = 0; i < ss->cfg.ncand; i++) {
            const struct sockaddr *cand = (const struct sockaddr *)&ss->cfg.cand[i].addr;
            if (ep_equal(cand, from))
                return ss;
            same_host = same_host || ep_same_host(cand, from);
        }
        if (same_host) {
            host = ss;
            nhost++;
        }
    }
    return nhost == 1 ? host : NULL;
}

void sess_adopt(struct sess *ss, int fd)
{
    punch_adopt(ss->punch, fd, PUNCH_ADOPT_INBOUND);
}
