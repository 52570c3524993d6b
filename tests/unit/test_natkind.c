/* natkind.c: the kind of NAT side from tables of observed ports (the control connection, the
 * probe from the same local port, probes from fresh ports, in that order), and what a punch with
 * each kind of peer means today. */
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
    CHECK_STR(nk_path_name(NK_PATH_UNKNOWN), "unknown");
}

/* every pair of sides: today's path, and a sentence that says it (never a planned feature) */
static void t_punch(void)
{
    static const struct {
        enum nk_side us, peer;
        enum nk_path path;
        const char *text;
    } pairs[] = {
        {NK_SIDE_EASY, NK_SIDE_EASY, NK_PATH_DIRECT, "direct"},
        {NK_SIDE_EASY, NK_SIDE_HARD, NK_PATH_RELAY, "relayed (the server cannot predict the port)"},
        {NK_SIDE_HARD, NK_SIDE_EASY, NK_PATH_RELAY, "relayed (the server cannot predict the port)"},
        {NK_SIDE_HARD, NK_SIDE_HARD, NK_PATH_RELAY, "relayed (both map per destination)"},
        {NK_SIDE_UNKNOWN, NK_SIDE_EASY, NK_PATH_UNKNOWN, "direct if our NAT keeps one mapping"},
        {NK_SIDE_UNKNOWN, NK_SIDE_HARD, NK_PATH_RELAY, "relayed"},
        {NK_SIDE_EASY, NK_SIDE_UNKNOWN, NK_PATH_UNKNOWN, "direct if the peer's NAT"},
        {NK_SIDE_HARD, NK_SIDE_UNKNOWN, NK_PATH_RELAY, "relayed"},
        {NK_SIDE_UNKNOWN, NK_SIDE_UNKNOWN, NK_PATH_UNKNOWN, "unknown"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const char *text = NULL;
        enum nk_path p = nk_punch(pairs[i].us, pairs[i].peer, &text);
        CHECK_MSG(p == pairs[i].path, "pair %zu: path %s", i, nk_path_name(p));
        if (!CHECK(text != NULL))
            continue;
        CHECK_MSG(strstr(text, pairs[i].text) != NULL, "pair %zu: \"%s\"", i, text);
        CHECK_MSG(strstr(text, "birthday") == NULL && strstr(text, "planned") == NULL,
                  "pair %zu claims what does not exist: \"%s\"", i, text);
    }
}

CHECK_MAIN(TEST(t_table), TEST(t_steps), TEST(t_names), TEST(t_punch))
