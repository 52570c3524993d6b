/* natkind.c: the kind of NAT side from tables of observed ports (the control connection, the
 * probe from the same local port, probes from fresh ports, in that order), and what a punch with
 * each kind of peer means today, birthday punching on or not. */
#include "check.h"
#include "peer/natkind.h"

struct row {
    const char *what;
    bool nat;
    int local;
    /* the public ports in the order made; "+": seen from another public address than the first;
     * more than NK_MAX_MAPS are ignored */
    const char *ports;
    enum nk_kind kind;
    enum nk_side side;
    bool preserved;
    const char *text; /* a part of the text that must be there */
};

static const struct row rows[] = {
    /* easy */
    {"no NAT: loopback, control and probe on one endpoint", false, 40000, "40000 40000", NK_EASY,
     NK_SIDE_EASY, true, "easy: no NAT, one mapping for all destinations"},
    {"no NAT, the probe failed: still no mapping to speak of", false, 40000, "40000", NK_EASY,
     NK_SIDE_EASY, true, "easy: no NAT"},
    {"EIM, port preserved", true, 40000, "40000 40000", NK_EASY, NK_SIDE_EASY, true,
     "easy: one mapping for all destinations, port preserved"},
    {"EIM, port changed", true, 40000, "61001 61001", NK_EASY, NK_SIDE_EASY, false,
     "easy: one mapping for all destinations, port changed"},
    {"EIM: fresh probes after it do not matter", true, 40000, "40000 40000 9 50000 3", NK_EASY,
     NK_SIDE_EASY, true, "port preserved"},
    /* hard, sequential */
    {"sequential, +1 each", true, 40000, "20001 20002 20003 20004 20005", NK_HARD_SEQUENTIAL,
     NK_SIDE_HARD, false, "port sequential (steps of at most 1;"},
    {"sequential, +2 and -3: the bound is on |step|", true, 40000, "20010 20012 20009 20011",
     NK_HARD_SEQUENTIAL, NK_SIDE_HARD, false, "steps of at most 3"},
    {"sequential, steps at the bound 16", true, 40000, "30000 30016 30032 30016",
     NK_HARD_SEQUENTIAL, NK_SIDE_HARD, false, "steps of at most 16"},
    {"sequential, the control mapping kept its port", true, 40000, "40000 40001 40002 40003",
     NK_HARD_SEQUENTIAL, NK_SIDE_HARD, true, "; public ports 40000, 40001, 40002, 40003)"},
    /* hard, random */
    {"random (masquerade random)", true, 40000, "33017 8011 50122 1999 47010", NK_HARD_RANDOM,
     NK_SIDE_HARD, false, "hard: a new mapping per destination, port random"},
    {"one step of 17: not sequential", true, 40000, "30000 30001 30018 30019", NK_HARD_RANDOM,
     NK_SIDE_HARD, false, "steps up to 17"},
    {"small steps but one jump: not consistently small", true, 40000, "20001 20002 20003 25000",
     NK_HARD_RANDOM, NK_SIDE_HARD, false, "steps up to 4997"},
    {"a step of 0 (a port given twice) is not sequential", true, 40000, "20001 20002 20002 20003",
     NK_HARD_RANDOM, NK_SIDE_HARD, false, "port random"},
    {"the public address changes: random even with few mappings", true, 40000, "20001 +20002",
     NK_HARD_RANDOM, NK_SIDE_HARD, false, "the public address changes too"},
    {"same port, another address: dependent too", true, 40000, "20001 +20001 20002 20003",
     NK_HARD_RANDOM, NK_SIDE_HARD, false, "address changes"},
    {"a wrap of the port range counts as large", true, 40000, "65534 65535 1024 1025",
     NK_HARD_RANDOM, NK_SIDE_HARD, false, "port random"},
    /* too little data */
    {"nothing seen", true, 40000, "", NK_UNKNOWN, NK_SIDE_UNKNOWN, false, "no mapping"},
    {"no probe answered", true, 40000, "40000", NK_UNKNOWN, NK_SIDE_UNKNOWN, true,
     "no second destination"},
    {"dependent, no fresh probe answered", true, 40000, "20001 40000", NK_UNKNOWN, NK_SIDE_HARD,
     false, "2 mappings seen (4 needed): cannot tell random from sequential"},
    {"dependent, one fresh probe: still too few steps", true, 40000, "20001 20002 20003",
     NK_UNKNOWN, NK_SIDE_HARD, false, "3 mappings seen (4 needed)"},
    {"more than NK_MAX_MAPS: the rest is ignored", true, 40000, "1 2 3 4 5 6 7 8 60000",
     NK_HARD_SEQUENTIAL, NK_SIDE_HARD, false, "; public ports 1, 2, 3, 4, 5, 6, 7, 8)"},
};

static void fill(const struct row *r, struct nk_obs *o)
{
    const char *p = r->ports;
    char *end;
    memset(o, 0, sizeof *o);
    o->nat = r->nat;
    o->local_port = r->local;
    for (int i = 0; *p; i++) {
        bool other = *p == '+';
        long port = strtol(p + other, &end, 10);
        if (i < NK_MAX_MAPS) {
            o->port[i] = (int)port;
            o->other_addr[i] = other;
        }
        o->n = i + 1;
        p = end + strspn(end, " ");
    }
}

static void t_table(void)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const struct row *r = &rows[i];
        struct nk_obs o;
        struct nk_verdict v;
        fill(r, &o);
        nk_classify(&o, &v);
        CHECK_MSG(v.kind == r->kind, "%s: kind %s, want %s", r->what, nk_name(v.kind),
                  nk_name(r->kind));
        CHECK_MSG(v.side == r->side, "%s: side %d, want %d", r->what, v.side, r->side);
        CHECK_MSG(v.preserved == r->preserved, "%s: preserved %d", r->what, v.preserved);
        CHECK_MSG(strstr(v.text, r->text) != NULL, "%s: text \"%s\" lacks \"%s\"", r->what, v.text,
                  r->text);
        /* the text begins with the kind's word, a reason exactly for unknown */
        CHECK_MSG(strncmp(v.text, nk_name(v.kind), 4) == 0, "%s: text \"%s\"", r->what, v.text);
        CHECK_MSG((v.kind == NK_UNKNOWN) == (v.why[0] != '\0'), "%s: why \"%s\"", r->what, v.why);
    }
}

static void t_steps(void)
{
    struct nk_obs o = {.nat = true, .local_port = 5, .n = 4, .port = {100, 90, 95, 81}};
    struct nk_verdict v;
    nk_classify(&o, &v);
    CHECK_INT(v.kind, NK_HARD_SEQUENTIAL);
    CHECK_INT(v.steps, 3);
    CHECK_INT(v.max_step, 14);
    o.n = -3; /* out of range counts as nothing */
    nk_classify(&o, &v);
    CHECK_INT(v.kind, NK_UNKNOWN);
    o.n = 99;
    o.port[4] = 82, o.port[5] = 83, o.port[6] = 84, o.port[7] = 85;
    nk_classify(&o, &v);
    CHECK_INT(v.kind, NK_HARD_SEQUENTIAL);
    CHECK_INT(v.steps, NK_MAX_MAPS - 1);
}

static void t_names(void)
{
    CHECK_STR(nk_name(NK_EASY), "easy");
    CHECK_STR(nk_name(NK_HARD_SEQUENTIAL), "hard-sequential");
    CHECK_STR(nk_name(NK_HARD_RANDOM), "hard-random");
    CHECK_STR(nk_name(NK_UNKNOWN), "unknown");
    CHECK_STR(nk_path_name(NK_PATH_DIRECT), "direct");
    CHECK_STR(nk_path_name(NK_PATH_RELAY), "relay");
    CHECK_STR(nk_path_name(NK_PATH_BIRTHDAY), "birthday");
    CHECK_STR(nk_path_name(NK_PATH_UNKNOWN), "unknown");
}

/* 1 - C(R-k, m) / C(R, m), R = 64,512: the numbers of PROTOCOL.md 17 and the design's table */
static void t_chance(void)
{
    double p = nk_bday_chance(256, 1024);
    CHECK_MSG(p > 0.983 && p < 0.984, "256/1024: %f, want ~98.3%%", p);
    p = nk_bday_chance(256, 2048);
    CHECK_MSG(p > 0.9997 && p < 0.9998, "256/2048: %f, want ~99.97%%", p);
    p = nk_bday_chance(128, 1024);
    CHECK_MSG(p > 0.871 && p < 0.872, "128/1024: %f, want ~87.1%%", p);
    p = nk_bday_chance(1, 1);
    CHECK_MSG(p > 1.0 / 64513 && p < 1.0 / 64511, "1/1: %g, want 1/64512", p);
    CHECK_MSG(nk_bday_chance(0, 1024) == 0.0 && nk_bday_chance(256, 0) == 0.0, "0: no chance");
    CHECK_MSG(nk_bday_chance(64512, 1) == 1.0 && nk_bday_chance(64000, 600) == 1.0,
              "every port taken or guessed: certain");
    CHECK_MSG(nk_bday_chance(512, 4096) <= 1.0 && nk_bday_chance(512, 4096) > 0.99999,
              "the caps: %f", nk_bday_chance(512, 4096));
}

/* every pair of sides, in every state of birthday punching: today's path, and a sentence that
 * says it; its first word is the path's */
static void t_punch(void)
{
    static const struct nk_bday_cfg on = {NK_BDAY_ON, 256, 1024}, off = {NK_BDAY_OFF, 0, 1024},
                                    nosrv = {NK_BDAY_NO_SRV, 256, 1024},
                                    nov4 = {NK_BDAY_NO_IPV4, 256, 1024},
                                    big = {NK_BDAY_ON, 512, 2048}, one = {NK_BDAY_ON, 1, 64};
    static const struct {
        enum nk_side us, peer;
        const struct nk_bday_cfg *b;
        enum nk_path path;
        const char *text;
    } pairs[] = {
        {NK_SIDE_EASY, NK_SIDE_EASY, &on, NK_PATH_DIRECT, "direct (both keep one mapping"},
        {NK_SIDE_EASY, NK_SIDE_EASY, &off, NK_PATH_DIRECT, "direct (both keep one mapping"},
        /* the easy side guesses: our M, the peer's default K 256 */
        {NK_SIDE_EASY, NK_SIDE_HARD, &on, NK_PATH_BIRTHDAY,
         "direct by birthday punching when the peer takes part too (we guess the hard NAT's "
         "ports: ~98% per attempt, at most 1536 SYNs), else relayed"},
        {NK_SIDE_EASY, NK_SIDE_HARD, &big, NK_PATH_BIRTHDAY,
         "~99.97% per attempt, at most 2560 SYNs"},
        {NK_SIDE_EASY, NK_SIDE_HARD, &one, NK_PATH_BIRTHDAY, "~22% per attempt, at most 576 SYNs"},
        /* the hard side opens the mappings: our K, the peer's default M 1024 */
        {NK_SIDE_HARD, NK_SIDE_EASY, &on, NK_PATH_BIRTHDAY,
         "direct by birthday punching when the peer takes part too (we open 256 mappings with "
         "low-TTL SYNs, the peer guesses their ports: ~98% per attempt), else relayed"},
        {NK_SIDE_HARD, NK_SIDE_EASY, &big, NK_PATH_BIRTHDAY,
         "512 mappings with low-TTL SYNs, the peer guesses their ports: ~99.97%"},
        {NK_SIDE_HARD, NK_SIDE_EASY, &one, NK_PATH_BIRTHDAY, "we open 1 mapping with"},
        /* birthday punching not to be had: relayed, saying why */
        {NK_SIDE_EASY, NK_SIDE_HARD, &off, NK_PATH_RELAY,
         "relayed (birthday punching is off here: --birthday-k or --birthday-m is 0)"},
        {NK_SIDE_HARD, NK_SIDE_EASY, &off, NK_PATH_RELAY,
         "relayed (birthday punching is off here: --birthday-k or --birthday-m is 0)"},
        {NK_SIDE_HARD, NK_SIDE_EASY, &nosrv, NK_PATH_RELAY,
         "relayed (this server does not offer birthday punching)"},
        {NK_SIDE_EASY, NK_SIDE_HARD, &nosrv, NK_PATH_RELAY, "does not offer"},
        {NK_SIDE_HARD, NK_SIDE_EASY, &nov4, NK_PATH_RELAY,
         "relayed (birthday punching needs the server reached over IPv4)"},
        {NK_SIDE_EASY, NK_SIDE_HARD, &nov4, NK_PATH_RELAY, "over IPv4"},
        /* two hard sides: relayed whatever the state */
        {NK_SIDE_HARD, NK_SIDE_HARD, &on, NK_PATH_RELAY,
         "relayed (both map per destination: birthday punching would need some 170,000 guesses)"},
        {NK_SIDE_HARD, NK_SIDE_HARD, &off, NK_PATH_RELAY, "relayed (both map per destination"},
        /* an unknown side */
        {NK_SIDE_UNKNOWN, NK_SIDE_EASY, &on, NK_PATH_UNKNOWN,
         "direct if our NAT keeps one mapping"},
        {NK_SIDE_UNKNOWN, NK_SIDE_HARD, &on, NK_PATH_RELAY, "needs our mapping known"},
        {NK_SIDE_EASY, NK_SIDE_UNKNOWN, &on, NK_PATH_UNKNOWN, "direct if the peer's NAT"},
        {NK_SIDE_HARD, NK_SIDE_UNKNOWN, &on, NK_PATH_UNKNOWN,
         "unknown: by birthday punching if the peer's NAT keeps one mapping, else relayed"},
        {NK_SIDE_HARD, NK_SIDE_UNKNOWN, &off, NK_PATH_RELAY, "is off here"},
        {NK_SIDE_UNKNOWN, NK_SIDE_UNKNOWN, &on, NK_PATH_UNKNOWN, "unknown"},
    };
    static const char *const first[] = {
        [NK_PATH_UNKNOWN] = "unknown",
        [NK_PATH_DIRECT] = "direct (",
        [NK_PATH_RELAY] = "relayed (",
        [NK_PATH_BIRTHDAY] = "direct by birthday punching when the peer takes part too (",
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char text[240];
        enum nk_path p;
        memset(text, 'x', sizeof text);
        p = nk_punch(pairs[i].us, pairs[i].peer, pairs[i].b, text, sizeof text);
        CHECK_MSG(p == pairs[i].path, "pair %zu: path %s, want %s", i, nk_path_name(p),
                  nk_path_name(pairs[i].path));
        if (!CHECK_MSG(memchr(text, '\0', sizeof text) != NULL && strlen(text) < sizeof text - 1,
                       "pair %zu: the sentence fills the buffer", i))
            continue;
        CHECK_MSG(strstr(text, pairs[i].text) != NULL, "pair %zu: \"%s\" lacks \"%s\"", i, text,
                  pairs[i].text);
        CHECK_MSG(strncmp(text, first[p], strlen(first[p])) == 0, "pair %zu: \"%s\"", i, text);
        /* only the birthday path promises a direct connection by it */
        CHECK_MSG((p == NK_PATH_BIRTHDAY) == (strstr(text, "direct by birthday") != NULL),
                  "pair %zu: \"%s\"", i, text);
    }
    /* a short buffer truncates, never overruns */
    {
        char small[8];
        nk_punch(NK_SIDE_HARD, NK_SIDE_EASY, &on, small, sizeof small);
        CHECK_STR(small, "direct ");
    }
}

CHECK_MAIN(TEST(t_table), TEST(t_steps), TEST(t_names), TEST(t_chance), TEST(t_punch))
